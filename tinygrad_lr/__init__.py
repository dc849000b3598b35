"""tinygrad_lr: a small reverse-mode autodiff engine on NumPy, and linear regression built on it.

Layers, lowest first: checks (input checks) ← tensor/ops (the engine) ← autograd, gradcheck,
losses, nn, optim, solvers, data, datasets ← callbacks, training ← plot, report, cli. A module
never imports one above it, with one exception: `nn.Module`'s Keras-style methods (`compile`,
`fit`, `evaluate`, `predict`, `summary`) load `training` when first called, so that every model
has them, as in Keras, while `nn` stays importable without the training loop.
"""

import sys

from tinygrad_lr import (
    autograd,
    callbacks,
    checks,
    data,
    datasets,
    losses,
    nn,
    ops,
    optim,
    plot,
    solvers,
    tensor,
    training,
)
from tinygrad_lr.gradcheck import GradcheckError, gradcheck, gradgradcheck
from tinygrad_lr.tensor import Function, Tensor, is_grad_enabled, no_grad
from tinygrad_lr.training import TrainingDivergedError

__version__ = "0.1.0"


def _show_only_the_api(module) -> None:
    """`dir(module)` lists its `__all__`, not the names it imports (np, os, zipfile): PEP 562's `__dir__`."""
    module.__dir__ = lambda: sorted(module.__all__)


# every public module; `tl.gradcheck` is the function, so its module is looked up by name
for _module in (autograd, callbacks, checks, data, datasets, losses, nn, ops, optim, plot, solvers, tensor, training):
    _show_only_the_api(_module)
_show_only_the_api(sys.modules["tinygrad_lr.gradcheck"])

__all__ = [
    "Function",
    "GradcheckError",
    "Tensor",
    "TrainingDivergedError",
    "autograd",
    "callbacks",
    "checks",
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
    "tensor",
    "training",
]
