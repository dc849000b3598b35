"""Full-batch training of a linear model on mse (+ L2) from the data's moments: one pass, then O(d²) a step.

With A = [X 1] (n rows) and Θ = [W; b], the objective and its gradient depend on the data only
through G = AᵀA, C = Aᵀy, Σy² and n:

    mean((AΘ - y)²) = (Σy² - 2·⟨Θ, C⟩ + ⟨Θ, GΘ⟩) / (n·k)        ∇Θ = 2·(GΘ - C) / (n·k)

(k outputs; ⟨·,·⟩ sums over every entry). So after one pass over the data, in float64, a
full-batch step costs a (d+1)×(d+1) product instead of two passes over X: on a million rows
the data are read once for the whole of `fit`, not twice a step. The moments are centred (the
columns' means apart, `Moments`) and the loss is written around the least-squares optimum, so
that neither loses the digits of a small loss on data far from zero.

The iterates are gradient descent's (Adam's, ...) up to rounding: float64's on the moments
instead of the data's dtype on the rows. That is all the difference there is, and where the
eager step's own rounding of the rows would move the loss by more than `ROUNDING_BOUND`
(relative), the moments are not used (`GramStep.refusal` says why) and fit steps as usual. For
float64 parameters the two then agree to ~1e-9 relative, loss history included; for float32
ones to float32's rounding, the eager step's own precision. The pass costs about (d+1)/2 steps'
worth of arithmetic, so `fit` uses it only when it pays: full batches, a single Linear layer,
mse (+ l2), data in memory of at least `MIN_ROWS` rows (below that a step is cheap anyway, and
the captured step keeps the eager numbers to the bit), and more epochs than (d+1)/2.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tinygrad_lr.tensor import Tensor

__all__ = ["MIN_ROWS", "GramStep", "pays_off"]

MIN_ROWS = 1 << 16
_BLOCK_ROWS = 1 << 15  # rows turned to float64 at a time: the pass needs no data-sized copy
# The moments serve only where the eager step's own rounding of the rows (float64's, on values as large
# as the data's offset) moves the loss at the optimum by less than this, relative: there the two agree.
ROUNDING_BOUND = 1e-10


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


@dataclass
class Moments:
    """The centred moments of (x, y): n rows, the means, and the sums of products of the centred
    columns, Sxx = Σ (x - x̄)(x - x̄)ᵀ (d, d), Sxy = Σ (x - x̄)(y - ȳ)ᵀ (d, k) and Syy = Σ (y - ȳ)²
    (k,), in float64."""

    n: int
    x_mean: np.ndarray
    y_mean: np.ndarray
    sxx: np.ndarray
    sxy: np.ndarray
    syy: np.ndarray

    def root_mean_squares(self) -> tuple[np.ndarray, np.ndarray]:
        """√mean(x²) per column of x, and of y: the size of a typical row's values."""
        return np.sqrt(self.x_mean**2 + np.diag(self.sxx) / self.n), np.sqrt(self.y_mean**2 + self.syy / self.n)

    @classmethod
    def of(cls, x: np.ndarray, y: np.ndarray) -> Moments:
        """One pass over the rows, a block at a time: each block's own centred moments, merged into
        the total by Chan, Golub and LeVeque's pairwise update. Centring first keeps the digits that
        Σ xxᵀ - n·x̄x̄ᵀ would lose when the columns' means are large against their spread."""
        total = None
        for rows, targets in _blocks(x, y):
            ones = np.full(len(rows), 1 / len(rows))  # (the means as products: faster than .mean(axis=0))
            x_mean, y_mean = ones @ rows, ones @ targets
            rows, targets = rows - x_mean, targets - y_mean
            block = cls(
                len(rows), x_mean, y_mean, rows.T @ rows, rows.T @ targets, np.einsum("ij,ij->j", targets, targets)
            )
            total = block if total is None else total.merged(block)
        assert total is not None  # (fit has at least MIN_ROWS rows here)
        return total

    def merged(self, other: Moments) -> Moments:
        n = self.n + other.n
        dx, dy = other.x_mean - self.x_mean, other.y_mean - self.y_mean
        weight = self.n * other.n / n
        return Moments(
            n,
            self.x_mean + dx * (other.n / n),
            self.y_mean + dy * (other.n / n),
            self.sxx + other.sxx + weight * np.outer(dx, dx),
            self.sxy + other.sxy + weight * np.outer(dx, dy),
            self.syy + other.syy + weight * dy**2,
        )


class GramStep:
    """`step(xb, yb)` for `fit`: a full-batch step of `x @ weight + bias` on `mse + l2·Σ weight²`
    from the moments of (x, y), then `optimizer.safe_step`. Returns the objective before the step
    (as fit's eager step does) and the metrics named in `metrics`, of which it knows "mse".

    x: (n, d), y: (n, k), both already in the parameters' dtype; weight (d, k), bias (k,) or None.
    `refusal` is None when the moments can serve, else why not (see `ROUNDING_BOUND`); `serves(layer)`
    says whether they still describe the step (the same weight and bias, both still trained).
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
        m = self.moments = Moments.of(x, y)
        # With A = [x 1] and Θ = [W; b] the residual AΘ - y splits, for centred columns, into
        # (x - x̄)W - (y - ȳ) and the constant e = b + x̄W - ȳ, whose cross term sums to zero:
        #   ‖AΘ - y‖² = ‖(x - x̄)W - (y - ȳ)‖² + n‖e‖².
        # Without a bias there is no centring to be had: G = Σ xxᵀ = Sxx + n·x̄x̄ᵀ (and C = Σ xyᵀ likewise).
        if bias is None:
            self.gram = m.sxx + m.n * np.outer(m.x_mean, m.x_mean)
            cross = m.sxy + m.n * np.outer(m.x_mean, m.y_mean)
        else:
            self.gram, cross = m.sxx, m.sxy
        # The first term is written around its optimum W*: with W = W* + δ,
        #   ‖(x - x̄)W - (y - ȳ)‖² = RSS* + 2⟨δ, GW* - C⟩ + ⟨δ, Gδ⟩   exactly,
        # each term computed without subtracting two large sums (a good fit's small loss keeps its
        # digits); RSS* takes a second pass over the rows.
        self.abs_gram = np.abs(self.gram)
        self.optimum = np.linalg.lstsq(self.gram, cross, rcond=None)[0]
        self.optimum_gradient = self.gram @ self.optimum - cross  # GW* - C, ~0
        # where the fit ends: W*, b* = ȳ - x̄W*, and the loss left there (not centred: where that loses
        # digits, so does the eager step's every row, and `_rounding` refuses the moments anyway)
        optimum_bias = None if bias is None else m.y_mean - m.x_mean @ self.optimum
        self.optimum_residual = 0.0
        for rows, targets in _blocks(x, y):
            residual = rows @ self.optimum
            residual += 0.0 if optimum_bias is None else optimum_bias
            residual -= targets
            self.optimum_residual += float(np.vdot(residual, residual))
        self.x_size, self.y_size = m.root_mean_squares()
        self.refusal = self._rounding(self.optimum, optimum_bias, self.optimum_residual, 0.0)

    def _rounding(self, weight: np.ndarray, bias: np.ndarray | None, squared_error: float, sizes: float) -> str | None:
        """Why the moments cannot keep the eager loss to `ROUNDING_BOUND` at (weight, bias), or None.

        Two roundings must stay below it, relative to the summed squared error there: the eager step's,
        which rounds each row's residual at the size of its terms (|x|·|W| + |b| + |y|, root mean squares:
        by Cauchy-Schwarz its effect on Σr² is at most 2·eps·that / the RMS residual), and the moments'
        own, which sum terms of total size `sizes` (4·eps·sizes)."""
        eps = np.finfo(np.float64).eps
        row = float((self.x_size @ np.abs(weight) + self.y_size + (0 if bias is None else np.abs(bias))).max())
        residual = np.sqrt(squared_error / self.count) if squared_error > 0 else 0.0
        eager = 2 * eps * row / residual if residual > 0 else np.inf
        moments = 4 * eps * sizes / squared_error if squared_error > 0 else np.inf
        if max(eager, moments) <= ROUNDING_BOUND:
            return None
        if eager >= moments:
            return (
                f"the rows' values reach {row:.3g} where the fit leaves residuals of {residual:.3g}: rounding "
                f"each row, as an eager step does, moves the loss by ~{eager:.1e} (relative), more than the "
                f"moments may differ ({ROUNDING_BOUND:g})"
            )
        return (
            f"the loss from the moments would be summed from terms {sizes / squared_error:.3g} times its size "
            f"(rounding ~{moments:.1e}, relative, more than {ROUNDING_BOUND:g})"
        )

    def serves(self, weight: Tensor, bias: Tensor | None) -> bool:
        """Whether the moments still describe the step: the same weight and bias, each still trained."""
        same = weight is self.weight and bias is self.bias and weight.requires_grad
        return same and (bias is None or bias.requires_grad)

    def _at(self, weight: np.ndarray, bias: np.ndarray | None) -> tuple[float, np.ndarray, Any, float]:
        """At (weight, bias), in float64: the summed squared error, its gradient in W over 2 (GW - C, plus
        n·x̄eᵀ with a bias), e (None without a bias) and the total size of the terms summed for the error."""
        m = self.moments
        delta = weight - self.optimum
        g_delta = self.gram @ delta
        terms = [
            self.optimum_residual,
            2 * float(np.vdot(delta, self.optimum_gradient)),
            float(np.vdot(delta, g_delta)),
        ]
        # the sizes of what is summed into ⟨δ, Gδ⟩ and ⟨δ, GW* - C⟩: their rounding, against the total
        sizes = float(np.vdot(np.abs(delta), self.abs_gram @ np.abs(delta))) + abs(terms[1])
        grad_weight = g_delta + self.optimum_gradient  # GW - C
        e = None
        if bias is not None:
            e = bias + m.x_mean @ weight - m.y_mean
            terms.append(m.n * float(np.vdot(e, e)))
            grad_weight = grad_weight + m.n * np.outer(m.x_mean, e)
            # e is a difference of terms the size of |b| + |x̄|·|W| + |ȳ|
            parts = np.abs(bias) + np.abs(m.x_mean) @ np.abs(weight) + np.abs(m.y_mean)
            sizes += 2 * m.n * float(np.vdot(np.abs(e), parts))
        return sum(terms), grad_weight, e, sizes

    def _parameters(self) -> tuple[np.ndarray, np.ndarray | None]:
        weight = self.weight.data.astype(np.float64)
        return weight, None if self.bias is None else self.bias.data.astype(np.float64)

    def __call__(self, xb: Any = None, yb: Any = None) -> tuple[float, dict[str, float]] | None:
        """The step, or None (changing nothing, and saying why in `refusal`) when at these weights, or at
        those the step leads to, the moments and the eager step could differ by more than `ROUNDING_BOUND`
        (see `_rounding`): a weight far along a direction the data hardly vary in, or rows whose terms
        dwarf their residual (there the weights an ulp apart give losses further apart than that)."""
        weight, bias = self._parameters()
        squared_error, grad_weight, e, sizes = self._at(weight, bias)
        refusal = self._rounding(weight, bias, squared_error, sizes)
        if refusal is not None:
            self.refusal = f"at step {self.optimizer.steps + 1}: {refusal}"
            return None
        mse = squared_error / self.count
        grad_weight = 2 * grad_weight / self.count
        loss = mse
        if self.l2:
            loss += self.l2 * float(np.vdot(self.weight.data, self.weight.data))
            grad_weight = grad_weight + 2 * self.l2 * weight
        self.optimizer.zero_grad()
        self.weight.grad = grad_weight.astype(self.weight.dtype)
        if self.bias is not None:
            self.bias.grad = (2 * e / self.count * self.moments.n).astype(self.bias.dtype)
        saved = self.optimizer._copy_of_what_a_step_changes()
        self.optimizer.safe_step(loss)
        after = self._parameters()
        squared_error, _, _, sizes = self._at(*after)
        refusal = self._rounding(*after, squared_error, sizes)
        if refusal is not None:  # taken back: the eager step takes it instead
            self.optimizer._put_back(saved)
            self.optimizer.steps -= 1
            self.refusal = f"after step {self.optimizer.steps + 1}: {refusal}"
            return None
        return loss, dict.fromkeys(self.metrics, mse)
