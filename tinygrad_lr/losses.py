"""Losses: mean squared error, mean absolute error, the L2 penalty (their fused ops are in ops.py); and R²."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from tinygrad_lr import ops
from tinygrad_lr.tensor import Tensor

__all__ = ["l2_penalty", "mae", "mse", "r2_of_sums", "r2_score"]


def _aligned(pred: Any, target: Any, name: str) -> tuple[Tensor, Tensor]:
    """Both operands as Tensors of one shape; the target takes the prediction's dtype.

    `(n,)` against `(n, 1)` is read as n samples of one output (never an (n, n) broadcast);
    any other mismatch is an error.
    """
    pred = pred if isinstance(pred, Tensor) else Tensor(pred)
    if not isinstance(target, Tensor):
        target = np.asarray(target, dtype=pred.dtype)  # plain data: reshaped as an array, not through the graph
    p, t = pred.shape, target.shape
    if p != t:
        if len(p) == 1 and t == (p[0], 1):
            pred = pred.reshape(p[0], 1)
        elif len(t) == 1 and p == (t[0], 1):
            target = target.reshape(t[0], 1)
        else:
            raise ValueError(
                f"{name}: prediction has shape {p} but target has shape {t}; they must describe the same "
                "samples: equal shapes, or (n,) against (n, 1)"
            )
    return pred, (target if isinstance(target, Tensor) else Tensor(target))


def mse(pred: Tensor | np.ndarray, target: Tensor | np.ndarray, sample_weight: Any = None) -> Tensor:
    """Mean squared error, a scalar Tensor. pred, target: (n,), (n, 1) or (n, k).

    With `sample_weight` (n,), Keras 3's rule: each sample's loss (its mean over the k outputs) times its
    weight, summed, over n: sum(w·loss)/n, the weights taken as constants in the prediction's dtype."""
    pred, target = _aligned(pred, target, "mse")
    if sample_weight is None:
        return ops.MeanSquaredError.apply(pred, target)
    difference = pred - target
    return _weighted(difference * difference, sample_weight, "mse")


def mae(pred: Tensor | np.ndarray, target: Tensor | np.ndarray, sample_weight: Any = None) -> Tensor:
    """Mean absolute error, a scalar Tensor. Shapes and `sample_weight` as in `mse`."""
    pred, target = _aligned(pred, target, "mae")
    if sample_weight is None:
        return (pred - target).abs().mean()
    return _weighted((pred - target).abs(), sample_weight, "mae")


def _weighted(elementwise: Tensor, sample_weight: Any, name: str) -> Tensor:
    """sum over samples of w · (the sample's mean over its outputs), over n. elementwise: (n,) or (n, k)."""
    n = elementwise.shape[0] if elementwise.ndim else 1
    # (a Tensor stays the Tensor it is, as an input of a captured step must: its values change every batch)
    weights = sample_weight if isinstance(sample_weight, Tensor) else Tensor(np.asarray(sample_weight))
    if weights.shape != (n,):
        raise ValueError(f"{name}: sample_weight has shape {weights.shape}; it must hold one weight per sample, ({n},)")
    per_sample = elementwise.reshape(n, -1).mean(axis=1) if elementwise.ndim > 1 else elementwise
    return (per_sample * ops.cast(weights, elementwise.dtype)).mean()


def l2_penalty(params: Iterable[Tensor], l2: float) -> Tensor:
    """`l2 · Σ w²` over the given parameters (by convention the weights, not the biases)."""
    params = list(params)
    return ops.L2Penalty.apply(*params, l2=l2) if params else Tensor(0.0)


def r2_score(pred: Any, target: Any) -> float:
    """The coefficient of determination 1 - Σ(y - ŷ)² / Σ(y - ȳ)², a float (NaN for a constant target).

    pred, target: arrays (or Tensors) of the same samples, with the shape rule of `mse`; the order
    is every loss's `(pred, target)` (scikit-learn's `r2_score` takes `(y_true, y_pred)` instead).
    1 is a perfect fit; 0 is no better than predicting the mean.
    """
    pred, target = _aligned(np.asarray(pred, dtype=np.float64), np.asarray(target, dtype=np.float64), "r2_score")
    y, residual = target.data, pred.data - target.data
    return r2_of_sums(float(np.sum(residual**2)), float(np.sum((y - y.mean(axis=0)) ** 2)))


def r2_of_sums(residual: float, total: float) -> float:
    """R² from Σ(y - ŷ)² and Σ(y - ȳ)² (NaN when the target is constant: total 0)."""
    return 1 - residual / total if total > 0 else float("nan")
