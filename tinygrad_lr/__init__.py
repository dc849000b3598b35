"""tinygrad_lr: a small reverse-mode autodiff engine on NumPy, and linear regression built on it."""

from tinygrad_lr.gradcheck import GradcheckError, gradcheck
from tinygrad_lr.tensor import Function, Tensor, is_grad_enabled, no_grad

__version__ = "0.1.0"

__all__ = ["Function", "GradcheckError", "Tensor", "gradcheck", "is_grad_enabled", "no_grad"]
