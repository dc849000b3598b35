"""Losses: mean squared error, mean absolute error, the L2 penalty (their fused ops are in ops.py); and R²."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from tinygrad_lr import ops
from tinygrad_lr.tensor import Tensor

__all__ = ["R2Sums", "l2_penalty", "mae", "mse", "r2_of_sums", "r2_score", "r2_sums"]


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


@dataclass(frozen=True, eq=False)  # (arrays: no == of their own)
class R2Sums:
    """What some rows add to an R² over more rows (Keras' `R2Score` accumulates the same): per output
    (k,), in float64, the count, the mean of y, Σ(y - ȳ)² about that mean, and Σ(y - ŷ)².

    An R² is no mean of the R²s of parts; its sums are what add up. `a + b` are the sums of both
    parts' rows, merged by Chan, Golub and LeVeque's pairwise update, which keeps the digits that
    Σy² - n·ȳ² loses when the mean is large against the spread. `result()` is the R².
    """

    count: int
    mean: np.ndarray
    total: np.ndarray
    residual: np.ndarray

    def __add__(self, other: R2Sums) -> R2Sums:
        count = self.count + other.count
        if count == 0:  # (two parts of no rows)
            return self
        delta = other.mean - self.mean
        return R2Sums(
            count,
            self.mean + delta * (other.count / count),
            self.total + other.total + delta**2 * (self.count * other.count / count),
            self.residual + other.residual,
        )

    def result(self) -> float:
        """R² of each output (`r2_of_sums`: NaN where y is constant), averaged over the outputs: Keras'
        and scikit-learn's default ("uniform_average"); for one output, `r2_score` of the same rows."""
        return float(np.mean([r2_of_sums(float(r), float(t)) for r, t in zip(self.residual, self.total)]))


def r2_sums(pred: Any, target: Any) -> R2Sums:
    """The `R2Sums` of a batch: pred, target (n,), (n, 1) or (n, k), with the shape rule of `mse`.

    This is compile's metric "r2": its value for many batches is the `result()` of their sums added."""
    pred, target = _aligned(pred, target, "r2")
    n = target.shape[0] if target.ndim else 1
    columns = target.shape[1] if target.ndim == 2 else 1
    y = target.data.reshape(n, columns).astype(np.float64)
    residual = pred.data.reshape(n, columns) - y
    mean = y.mean(axis=0) if n else np.zeros(columns)  # (no rows: a mean that adds nothing, `R2Sums.__add__`)
    return R2Sums(n, mean, np.sum((y - mean) ** 2, axis=0), np.sum(residual**2, axis=0))
