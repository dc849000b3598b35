"""tinygrad_lr: a small reverse-mode autodiff engine on NumPy, and linear regression built on it.

Quick start: a line through noisy points, trained by Adam, beside the least-squares answer:

    import numpy as np
    import tinygrad_lr as tl

    x = np.linspace(0.0, 10.0, 100)
    y = 3.5 * x + 2.0 + np.random.default_rng(0).normal(size=100)
    model = tl.nn.Sequential([tl.nn.Linear(1, 1, seed=0)])  # y = x @ weight + bias
    model.compile(loss="mse", optimizer=tl.optim.Adam(lr=0.1))
    model.fit(x, y, epochs=200, verbose=0, seed=0)
    print(model.predict([10.0]).round(2))  # [[37.18]]
    coef, intercept = tl.solvers.ols(x, y)  # the optimum, in closed form
    print(coef.round(2), round(intercept, 2))  # [3.51] 2.01

Layers, lowest first: checks (input checks) ← tensor/ops (the engine) ← autograd, capture, gradcheck,
moments, losses, nn, optim, data, datasets ← blockwise (data read a block at a time: memory maps, the
shuffle buffer, per-block sums) ← dask_chunks (the same work on Dask chunks; Dask imported only when
a Dask array is given) ← sources (the kind of data, decided once) ← solvers, steps (which step fit
takes, and why) ← callbacks, training ← estimators, plot, report, cli.
A module never imports one above it: `nn.Module`'s Keras-style methods (`compile`, `fit`, `evaluate`,
`predict`, `summary`), which every model has, as in Keras, hand the model to `training`, which puts
itself in `nn.Module.trainer` when it is imported (below, always).
"""

import sys

from tinygrad_lr import (
    autograd,
    blockwise,
    callbacks,
    capture,
    checks,
    dask_chunks,
    data,
    datasets,
    losses,
    moments,
    nn,
    ops,
    optim,
    plot,
    solvers,
    sources,
    steps,
    tensor,
    training,
)
from tinygrad_lr.capture import capture_step
from tinygrad_lr.gradcheck import GradcheckError, gradcheck, gradgradcheck
from tinygrad_lr.tensor import Function, Tensor, is_grad_enabled, no_grad
from tinygrad_lr.training import TrainingDivergedError

__version__ = "0.1.0"


def _show_only_the_api(module) -> None:
    """`dir(module)` lists its `__all__`, not the names it imports (np, os, zipfile): PEP 562's `__dir__`."""
    module.__dir__ = lambda: sorted(module.__all__)


# every public module; `tl.gradcheck` is the function, so its module is looked up by name
for _module in (autograd, callbacks, checks, dask_chunks, data, datasets, losses, nn, ops, optim, plot, solvers):
    _show_only_the_api(_module)
for _module in (capture, moments, sources, steps, blockwise, tensor, training):
    _show_only_the_api(_module)
_show_only_the_api(sys.modules["tinygrad_lr.gradcheck"])


_ON_FIRST_USE = ("estimators", "stats")


def __getattr__(name: str):
    """`tl.estimators` and `tl.stats` are imported on first use (PEP 562): they import scikit-learn and
    SciPy, optional extras that `import tinygrad_lr` must not load. (Not in `__all__`, so `import *`
    does not load them either.)"""
    if name in _ON_FIRST_USE:
        import importlib

        module = importlib.import_module(f"tinygrad_lr.{name}")
        _show_only_the_api(module)
        return module
    raise AttributeError(f"module 'tinygrad_lr' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_ON_FIRST_USE])


__all__ = [
    "Function",
    "GradcheckError",
    "Tensor",
    "TrainingDivergedError",
    "autograd",
    "blockwise",
    "callbacks",
    "capture",
    "capture_step",
    "checks",
    "dask_chunks",
    "data",
    "datasets",
    "gradcheck",
    "gradgradcheck",
    "is_grad_enabled",
    "losses",
    "moments",
    "nn",
    "no_grad",
    "ops",
    "optim",
    "plot",
    "solvers",
    "sources",
    "steps",
    "tensor",
    "training",
]
