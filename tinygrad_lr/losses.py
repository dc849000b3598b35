"""Losses: mean squared error (with its own fused op), mean absolute error, the L2 penalty; and R²."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from tinygrad_lr.tensor import Function, Tensor


class MeanSquaredError(Function):
    """mean((pred - target)²) as one op, pred and target of one shape (`mse` sees to that).

    Nothing of the data's size is kept for backward but the inputs themselves, and the difference
    is made a cache-sized block at a time, so each pass over it is a pass over cache, not memory.
    """

    block = 1 << 15

    def _blocks(self, *arrays: np.ndarray):
        """Matching flat slices of the arrays, `block` elements at a time (small arrays: just them)."""
        if arrays[0].size <= self.block:
            yield arrays
            return
        flat = [a.reshape(-1) for a in arrays]
        for start in range(0, flat[0].size, self.block):
            yield [a[start : start + self.block] for a in flat]

    def forward(self, pred, target):
        self.pred, self.target = pred, target
        total = 0.0
        for pred_part, target_part in self._blocks(pred, target):
            diff = pred_part - target_part
            total += float(np.vdot(diff, diff))
        # the mean of nothing is nan, as NumPy's and PyTorch's
        return np.asarray(total / pred.size if pred.size else np.nan, dtype=np.result_type(pred, target))

    def backward(self, grad):
        # d/dpred mean((pred - target)²) = 2·(pred - target) / N, and the target gets the opposite
        scale = float(grad) * 2 / max(self.pred.size, 1)
        grad_pred = np.empty(self.pred.shape, np.result_type(self.pred, self.target))
        for out, pred_part, target_part in self._blocks(grad_pred, self.pred, self.target):
            np.subtract(pred_part, target_part, out=out)
            out *= scale
        return grad_pred, (-grad_pred if self.needs_input_grad[1] else None)


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


def mse(pred: Tensor | np.ndarray, target: Tensor | np.ndarray) -> Tensor:
    """Mean squared error, a scalar Tensor. pred, target: (n,), (n, 1) or (n, k)."""
    return MeanSquaredError.apply(*_aligned(pred, target, "mse"))


def mae(pred: Tensor | np.ndarray, target: Tensor | np.ndarray) -> Tensor:
    """Mean absolute error, a scalar Tensor. Shapes as in `mse`."""
    pred, target = _aligned(pred, target, "mae")
    return (pred - target).abs().mean()


class L2Penalty(Function):
    """l2 · Σ w² over several tensors as one op (one dot product per tensor, no temporaries)."""

    def forward(self, *weights, l2):
        self.weights, self.l2 = weights, l2
        return np.asarray(l2 * sum(float(np.vdot(w, w)) for w in weights), dtype=weights[0].dtype)

    def backward(self, grad):
        # d/dw (l2·Σw²) = 2·l2·w
        scale = 2 * self.l2 * float(grad)
        return tuple(scale * w for w in self.weights)


def l2_penalty(params: Iterable[Tensor], l2: float) -> Tensor:
    """`l2 · Σ w²` over the given parameters (by convention the weights, not the biases)."""
    params = list(params)
    return L2Penalty.apply(*params, l2=l2) if params else Tensor(0.0)


def r2_score(pred: Any, target: Any) -> float:
    """The coefficient of determination 1 - Σ(y - ŷ)² / Σ(y - ȳ)², a float (NaN for a constant target).

    pred, target: arrays (or Tensors) of the same samples, with the shape rule of `mse`; the order
    is every loss's `(pred, target)` (scikit-learn's `r2_score` takes `(y_true, y_pred)` instead).
    1 is a perfect fit; 0 is no better than predicting the mean.
    """
    pred, target = _aligned(np.asarray(pred, dtype=np.float64), np.asarray(target, dtype=np.float64), "r2_score")
    y, residual = target.data, pred.data - target.data
    total = float(np.sum((y - y.mean(axis=0)) ** 2))
    return 1 - float(np.sum(residual**2)) / total if total > 0 else float("nan")
