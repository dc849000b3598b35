"""tinygrad_lr: a small reverse-mode autodiff engine on NumPy, and linear regression built on it.

Layers, lowest first: tensor/ops (the engine) ← gradcheck, losses, nn, optim, solvers, data,
datasets ← callbacks, training ← plot, cli. A module never imports one above it.
"""

from tinygrad_lr import autograd, callbacks, data, datasets, losses, nn, ops, optim, plot, solvers
from tinygrad_lr.gradcheck import GradcheckError, gradcheck, gradgradcheck
from tinygrad_lr.tensor import Function, Tensor, is_grad_enabled, no_grad
from tinygrad_lr.training import TrainingDivergedError

__version__ = "0.1.0"

__all__ = [
    "Function",
    "GradcheckError",
    "Tensor",
    "TrainingDivergedError",
    "autograd",
    "callbacks",
    "data",
    "datasets",
    "gradcheck",
    "gradgradcheck",
    "is_grad_enabled",
    "losses",
    "nn",
    "no_grad",
    "ops",
    "optim",
    "plot",
    "solvers",
]
