"""Full-batch training of a linear model on mse (+ L2) from the data's moments: one pass, then O(d²) a step.

With A = [X 1] (n rows) and Θ = [W; b], the objective and its gradient depend on the data only
through G = AᵀA, C = Aᵀy, Σy² and n:

    mean((AΘ - y)²) = (Σy² - 2·⟨Θ, C⟩ + ⟨Θ, GΘ⟩) / (n·k)        ∇Θ = 2·(GΘ - C) / (n·k)

(k outputs; ⟨·,·⟩ sums over every entry). So after one pass over the data, in float64, a
full-batch step costs a (d+1)×(d+1) product instead of two passes over X: on a million rows
the data are read once for the whole of `fit`, not twice a step. The iterates are gradient
descent's (Adam's, ...) up to rounding, which here is float64's on the moments instead of the
data's dtype on the rows. The pass costs about (d+1)/2 steps' worth of arithmetic, so `fit`
uses it only when it pays: full batches, a single Linear layer, mse (+ l2), data in memory of at
least `MIN_ROWS` rows (below that a step is cheap anyway, and the captured step keeps the
eager numbers to the bit), and more epochs than (d+1)/2.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from tinygrad_lr.tensor import Tensor

__all__ = ["MIN_ROWS", "GramStep", "pays_off"]

MIN_ROWS = 1 << 16
_BLOCK_ROWS = 1 << 15  # rows turned to float64 at a time: the pass needs no data-sized copy


def _blocks(x: np.ndarray, y: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(x, y) a block of rows at a time, in float64."""
    for start in range(0, len(x), _BLOCK_ROWS):
        yield (
            np.asarray(x[start : start + _BLOCK_ROWS], dtype=np.float64),
            np.asarray(y[start : start + _BLOCK_ROWS], dtype=np.float64),
        )


def pays_off(n: int, features: int, epochs: int) -> bool:
    """Whether one pass for the moments costs less than the full-batch steps it replaces."""
    return n >= MIN_ROWS and epochs > (features + 1) / 2


class GramStep:
    """`step(xb, yb)` for `fit`: a full-batch step of `x @ weight + bias` on `mse + l2·Σ weight²`
    from the moments of (x, y), then `optimizer.safe_step`. Returns the objective before the step
    (as fit's eager step does) and the metrics named in `metrics`, of which it knows "mse".

    x: (n, d), y: (n, k), both already in the parameters' dtype; weight (d, k), bias (k,) or None.
    """

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray,
        weight: Tensor,
        bias: Tensor | None,
        l2: float,
        optimizer: Any,
        metrics: Sequence[str] = (),
    ):
        self.weight, self.bias, self.l2, self.optimizer, self.metrics = weight, bias, l2, optimizer, list(metrics)
        self.count = y.size  # the mean runs over n·k values
        d = x.shape[1]
        xtx, x_sum, xty, y_sum = np.zeros((d, d)), np.zeros(d), np.zeros((d, y.shape[1])), np.zeros(y.shape[1])
        for rows, targets in _blocks(x, y):
            xtx += rows.T @ rows
            x_sum += np.ones(len(rows)) @ rows  # (a product: 3-4x faster than rows.sum(axis=0) here)
            xty += rows.T @ targets
            y_sum += targets.sum(axis=0)
        # G = AᵀA and C = Aᵀy for A = [x 1]: the ones column is assembled here, never stored with the rows
        if bias is None:
            self.gram, cross = xtx, xty
        else:
            self.gram = np.block([[xtx, x_sum[:, None]], [x_sum[None, :], np.array([[len(x)]])]])
            cross = np.vstack([xty, y_sum[None, :]])
        # The loss is written around the least-squares optimum Θ*, found from the moments: with
        # Θ = Θ* + δ, ‖AΘ - y‖² = ‖AΘ* - y‖² + 2⟨δ, GΘ* - C⟩ + ⟨δ, Gδ⟩ exactly. Each term is
        # computed without subtracting two large sums (Σy² - 2⟨Θ, C⟩ + ... would lose the digits of
        # a good fit's small loss), the first in a second pass over the data.
        self.optimum = np.linalg.lstsq(self.gram, cross, rcond=None)[0]
        self.optimum_gradient = self.gram @ self.optimum - cross  # GΘ* - C, ~0
        weights, intercept = self.optimum[:d], (self.optimum[d] if bias is not None else 0.0)
        self.optimum_residual = 0.0
        for rows, targets in _blocks(x, y):
            residual = rows @ weights + intercept - targets
            self.optimum_residual += float(np.vdot(residual, residual))

    def __call__(self, xb: Any = None, yb: Any = None) -> tuple[float, dict[str, float]]:
        weight = self.weight.data.astype(np.float64)
        theta = weight if self.bias is None else np.vstack([weight, self.bias.data.astype(np.float64)[None, :]])
        delta = theta - self.optimum
        g_delta = self.gram @ delta
        squared_error = self.optimum_residual + 2 * float(np.vdot(delta, self.optimum_gradient))
        mse = max(squared_error + float(np.vdot(delta, g_delta)), 0.0) / self.count
        gradient = 2 * (g_delta + self.optimum_gradient) / self.count  # 2·(GΘ - C)/(n·k)
        grad_weight = gradient[: len(weight)]
        loss = mse
        if self.l2:
            loss += self.l2 * float(np.vdot(self.weight.data, self.weight.data))
            grad_weight = grad_weight + 2 * self.l2 * weight
        self.optimizer.zero_grad()
        self.weight.grad = grad_weight.astype(self.weight.dtype)
        if self.bias is not None:
            self.bias.grad = gradient[-1].astype(self.bias.dtype)
        self.optimizer.safe_step(loss)
        return loss, dict.fromkeys(self.metrics, mse)
