"""Full-batch training of a linear model on mse (+ L2) from the data's moments: one pass, then O(d²) a step.

With A = [X 1] (n rows) and Θ = [W; b], the objective and its gradient depend on the data only
through G = AᵀA, C = Aᵀy, Σy² and n:

    mean((AΘ - y)²) = (Σy² - 2·⟨Θ, C⟩ + ⟨Θ, GΘ⟩) / (n·k)        ∇Θ = 2·(GΘ - C) / (n·k)

(k outputs; ⟨·,·⟩ sums over every entry). So after one pass over the data, in float64, a
full-batch step costs a (d+1)×(d+1) product instead of two passes over X: the data are read once
for the whole of `fit`, not twice a step — on a million rows in memory, on a memory map (read once,
not once an epoch), on a Dask array (one reduction up a tree, not one distributed round a step).

The moments (`Moments`) are taken in one pass over any source, a block (a Dask chunk) at a time, and
stay exact in the digits that matter wherever the data sit:
- each block is centred on its own means (and the rounding of those taken out again, a correcting
  term computed from the centred block), so its sums of products never subtract n·x̄x̄ᵀ from Σxxᵀ:
  data far from zero keep their digits;
- blocks are combined by Chan, Golub and LeVeque's pairwise update, which adds two blocks' centred
  sums and a term for how far apart their means are — in any grouping: one after another, a balanced
  tree (`combined`), or Dask's reduction tree on the workers;
- the targets enter as the residuals r = y - x·W₀ of a reference fit W₀ (the least squares of the
  first block): Σr² is then about the loss left at the optimum, which is Σr² minus a small term,
  instead of Σ(y - ȳ)² minus nearly all of it (the digits of a good fit's small loss would go). So the
  pass needs no second one over the rows for that loss: a memory map is read once, a CSV parsed once.
Sample weights w make every sum a weighted one (Σw·…, the means weighted), and the loss Keras'
sum(w·loss)/n.

The iterates are gradient descent's (Adam's, ...) up to rounding: float64's on the moments instead
of the data's dtype on the rows. That is all the difference there is, and where the eager step's own
rounding of the rows would move the loss by more than `ROUNDING_BOUND` (relative), the moments are
not used (`GramStep.refusal` says why) and fit steps as usual. For float64 parameters the two then
agree to ~1e-9 relative, loss history included; for float32 ones to float32's rounding, the eager
step's own precision. The pass costs about (d+1)/2 steps' worth of arithmetic, so `fit` uses it only
when it pays (`pays_off`).
"""

from __future__ import annotations

import collections
import concurrent.futures
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tinygrad_lr import losses
from tinygrad_lr.tensor import Tensor

__all__ = ["MIN_ROWS", "ROUNDING_BOUND", "GramStep", "Moments", "of_blocks", "pays_off"]

MIN_ROWS = 1 << 16
# rows turned to float64 at a time: the pass needs no data-sized copy, and a block's table stays in cache
_BLOCK_ROWS = 1 << 15
# pieces taken at once (`of_blocks`): this machine's two cores; a memory map's reads take a third thread
_THREADS = 2
# The moments serve only where the eager step's own rounding of the rows (float64's, on values as large
# as the data's offset) moves the loss at the optimum by less than this, relative: there the two agree.
ROUNDING_BOUND = 1e-10
_EPS = float(np.finfo(np.float64).eps)


def pays_off(n: int, features: int, epochs: int, reads_blocks: bool = False) -> bool:
    """Whether one pass for the moments costs less than the full-batch steps it replaces: its arithmetic
    is about (features + 1)/2 steps' worth. Data in memory need `MIN_ROWS` rows besides (below that a
    step is cheap anyway, and the captured step keeps the eager numbers to the bit); data read a block
    at a time (a memory map, a Dask array) do not: there every step is a pass, a read or a round trip."""
    return (reads_blocks or n >= MIN_ROWS) and epochs > max(1, (features + 1) / 2)


def _solve(gram: np.ndarray, cross: np.ndarray) -> np.ndarray:
    """The least-squares solution V of gram·V = cross (gram symmetric, (d, d); cross (d, k)): the
    minimum-norm one where gram is singular. The columns are scaled to a unit diagonal first, so that
    columns of very different sizes do not read as rank-deficient."""
    scale = _unit_diagonal(gram)
    scaled = np.linalg.lstsq(gram * np.outer(scale, scale), cross * scale[:, None], rcond=None)[0]
    return scaled * scale[:, None]


def _unit_diagonal(gram: np.ndarray) -> np.ndarray:
    """The scale (d,) of each column that gives gram (d, d) a unit diagonal (1 where its diagonal is 0)."""
    diagonal = np.diag(gram)
    return np.where(diagonal > 0, 1 / np.sqrt(np.where(diagonal > 0, diagonal, 1)), 1.0)


@dataclass
class Moments:
    """The centred (weighted) moments of the rows (x, y), in float64: x (n, d), y (n, k), weights w (n,).

    n: rows; weight: Σw (n without weights); x_mean (d,), y_mean (k,): the weighted means;
    reference W₀ (d, k): the residuals r = (y - ȳ) - (x - x̄)W₀ stand in for y (see the module);
    sxx = Σ w(x - x̄)(x - x̄)ᵀ (d, d), sxr = Σ w(x - x̄)rᵀ (d, k), srr = Σ w·r² (k,) and
    syy = Σ w(y - ȳ)² (k,), per output.

    Moments of parts of the rows combine (`merged`, `combined`) into those of all of them when they have
    the same reference. Pickled as one float64 array (what a Dask chunk sends up the tree)."""

    n: int
    weight: float
    x_mean: np.ndarray
    y_mean: np.ndarray
    reference: np.ndarray
    sxx: np.ndarray
    sxr: np.ndarray
    srr: np.ndarray
    syy: np.ndarray

    @property
    def sxy(self) -> np.ndarray:
        """Σ w(x - x̄)(y - ȳ)ᵀ (d, k)."""
        return self.sxr + self.sxx @ self.reference

    @property
    def r_mean(self) -> np.ndarray:
        """The weighted mean of y - x·W₀ (k,)."""
        return self.y_mean - self.x_mean @ self.reference

    def root_mean_squares(self) -> tuple[np.ndarray, np.ndarray]:
        """√mean(x²) per column of x, and of y (weighted means): the size of a typical row's values."""
        total = self.weight if self.weight > 0 else 1.0
        return np.sqrt(self.x_mean**2 + np.diag(self.sxx) / total), np.sqrt(self.y_mean**2 + self.syy / total)

    @classmethod
    def of_block(
        cls, x: np.ndarray, y: np.ndarray, w: np.ndarray | None = None, reference: np.ndarray | None = None
    ) -> Moments:
        """The moments of one block of rows held in memory: x (m, d) or (m,), y (m, k) or (m,), of any real
        dtype (read in float64); w (m,) or None; reference W₀ (d, k), or None for zeros (r = y - ȳ). Sums
        beyond float64 are inf, quietly (`is_finite` says so)."""
        return _products(_centred(x, y, w), reference)

    @classmethod
    def of(cls, x: np.ndarray, y: np.ndarray, w: np.ndarray | None = None) -> Moments:
        """The moments of (x, y) in memory (x (n, d), y (n, k); w (n,) or None), a block at a time."""
        return of_blocks([(x, y, w)])

    def is_finite(self) -> bool:
        """Whether every sum is finite (a non-finite value in the rows, or sums of squares beyond float64,
        make them not)."""
        sums = (self.x_mean, self.y_mean, self.sxx, self.sxr, self.srr, self.syy)
        return bool(np.isfinite(self.weight) and all(np.isfinite(a).all() for a in sums))

    def reference_fit(self) -> np.ndarray:
        """The coefficients (d, k) of these rows' least squares, to serve as another pass's reference W₀;
        zeros where the sums are not finite (that pass will find out why)."""
        return self.least_squares()[0] if self.is_finite() else np.zeros_like(self.reference)

    def least_squares(self, l2: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """(coef (d, k), intercept (k,)) minimising mean(w·(x @ coef + intercept - y)²) + l2·Σcoef² (the mean
        over the n·k values, as `tl.solvers.ridge`'s): from the normal equations of the centred problem,
        (Sxx + n·k·l2·I)·coef = Sxy, its columns scaled first; the minimum-norm coef where they are dependent.
        (Their rounding grows with the square of the columns' condition number, where `tl.solvers.ols`'
        grows with it: for the closed form of data in memory, that is the one to use.)"""
        coef = _solve(self._normal_matrix(l2), self.sxy)
        return coef, self.y_mean - self.x_mean @ coef

    def _normal_matrix(self, l2: float) -> np.ndarray:
        return self.sxx + self.n * self.y_mean.size * l2 * np.eye(len(self.x_mean))

    def normal_condition(self, l2: float = 0.0) -> float:
        """The condition number of `least_squares`' normal equations, their columns scaled as it scales them
        (inf where they are singular): that solve's relative rounding is about this times eps (the square of
        the centred design's condition number, without l2)."""
        matrix = self._normal_matrix(l2)
        diagonal = np.diag(matrix)
        if len(diagonal) == 0:
            return 1.0
        if not np.all(diagonal > 0):
            return math.inf
        scale = _unit_diagonal(matrix)
        return float(np.linalg.cond(matrix * np.outer(scale, scale)))

    def squared_errors(self, coef: np.ndarray, intercept: np.ndarray | None = None) -> np.ndarray:
        """Σ w·(x @ coef + intercept - y)² of each output (k,) (no intercept when None), for coef (d, k):
        around the reference fit, Σ w(x̃V - r̃)² = Σw·r̃² - 2⟨V, Sxr⟩ + ⟨V, Sxx·V⟩ with V = coef - W₀ (x̃, r̃
        centred), plus Σw·e² for the mean residual e = intercept + x̄·coef - ȳ (a mean residual of r - x̄V
        without an intercept)."""
        change = coef - self.reference
        centred = (
            self.srr - 2 * np.einsum("ij,ij->j", change, self.sxr) + np.einsum("ij,ij->j", change, self.sxx @ change)
        )
        e = self.x_mean @ coef - self.y_mean + (0.0 if intercept is None else intercept)
        return np.maximum(centred, 0.0) + self.weight * e**2

    def merged(self, other: Moments) -> Moments:
        """The moments of the rows of both (the same reference W₀): Chan, Golub and LeVeque's update.

        With δ the difference of the two parts' means and W_a, W_b their weights, the centred sums of the
        union are the parts' sums plus (W_a·W_b/(W_a + W_b))·δδᵀ: only sums about each part's own mean are
        ever added, never a large Σxxᵀ less a large n·x̄x̄ᵀ. (Sums beyond float64 are inf, quietly.)"""
        with np.errstate(over="ignore", invalid="ignore"):
            return self._merged(other)

    def _merged(self, other: Moments) -> Moments:
        n, total = self.n + other.n, self.weight + other.weight
        if other.weight == 0 or total == 0:
            fraction, factor = 0.0, 0.0
        elif self.weight == 0:
            fraction, factor = 1.0, 0.0
        else:
            fraction, factor = other.weight / total, self.weight * other.weight / total
        dx, dy = other.x_mean - self.x_mean, other.y_mean - self.y_mean
        dr = dy - dx @ self.reference  # the difference of the residuals' means
        return Moments(
            n,
            total,
            self.x_mean + dx * fraction,
            self.y_mean + dy * fraction,
            self.reference,
            self.sxx + other.sxx + factor * np.outer(dx, dx),
            self.sxr + other.sxr + factor * np.outer(dx, dr),
            self.srr + other.srr + factor * dr**2,
            self.syy + other.syy + factor * dy**2,
        )

    @staticmethod
    def combined(parts: Sequence[Moments]) -> Moments:
        """The moments of all the parts' rows, merged pairwise (a balanced tree: each sum's rounding grows
        with log(len(parts)), not with len(parts))."""
        level = list(parts)
        while len(level) > 1:
            level = [level[i].merged(level[i + 1]) if i + 1 < len(level) else level[i] for i in range(0, len(level), 2)]
        return level[0]

    def scaled(self, mean: np.ndarray, scale: np.ndarray) -> Moments:
        """The moments of ((x - mean)/scale, y): standardised columns (mean, scale (d,)), without a pass.
        The residuals stay the same numbers with the reference W₀·scale."""
        return Moments(
            self.n,
            self.weight,
            (self.x_mean - mean) / scale,
            self.y_mean,
            self.reference * scale[:, None],
            self.sxx / np.outer(scale, scale),
            self.sxr / scale[:, None],
            self.srr,
            self.syy,
        )

    def __reduce__(self) -> tuple[Any, ...]:
        d, k = self.reference.shape
        packed = np.concatenate(
            [
                [self.n, self.weight],
                *(
                    a.ravel()
                    for a in (self.x_mean, self.y_mean, self.reference, self.sxx, self.sxr, self.srr, self.syy)
                ),
            ]
        )
        return _unpacked, (d, k, packed)


def _unpacked(d: int, k: int, packed: np.ndarray) -> Moments:
    """The Moments that `Moments.__reduce__` packed into one array."""
    sizes = [d, k, d * k, d * d, d * k, k, k]
    parts = np.split(packed[2:], np.cumsum(sizes)[:-1])
    shapes = [(d,), (k,), (d, k), (d, d), (d, k), (k,), (k,)]
    return Moments(int(packed[0]), float(packed[1]), *(p.reshape(s) for p, s in zip(parts, shapes)))


@dataclass
class _Centred:
    """One block of m rows as `_products` takes it: the float64 table z (d + k, m), a column per row (x's d
    values, then y's k), centred on the means first computed (`mean` (d + k,)) and times √w; `correction`
    (d + k,): the mean still left in z (that first mean's rounding); total: Σw (m without weights)."""

    d: int
    m: int
    total: float
    z: np.ndarray
    mean: np.ndarray
    correction: np.ndarray


def _centred(x: np.ndarray, y: np.ndarray, w: np.ndarray | None) -> _Centred:
    """The first half of a block's moments (x (m, d) or (m,), y (m, k) or (m,), w (m,) or None): the table
    in float64, centred. (`of_blocks` keeps the first block's for its reference fit and then its products.)"""
    m = len(x)
    x, y = x.reshape(m, -1), y.reshape(m, -1)
    d, k = x.shape[1], y.shape[1]
    # one (d + k, m) table, a column per row: so laid out, its sums (pairwise) and centring run along
    # contiguous memory: 1.4x faster a block
    z = np.empty((d + k, m))
    with np.errstate(over="ignore", invalid="ignore"):
        z[:d], z[d:] = x.T, y.T
        if w is None:
            total, share = float(m), None
        else:
            w = np.asarray(w, dtype=np.float64)
            total = float(w.sum())
            share = w / total if total > 0 else np.full(m, 1 / m)  # (all weights 0: any centre will do)
        # Corrected two-pass centring: the mean computed first is off by the rounding of a sum of m values,
        # ~eps·m·|x̄| at worst, which a large offset makes as large as the spread. The values centred on it
        # have the mean c, that error alone, computed to full precision; the sums about the true mean are
        # those about the first less W·ccᵀ (Σ w(z - c)(z - c)ᵀ = Σ w·zzᵀ - W·ccᵀ, no digits lost: c is small).
        mean = _row_means(z, share)
        z -= mean[:, None]
        correction = _row_means(z, share)
        if w is not None:
            z *= np.sqrt(w)  # Σ (√w·z)(√w·z)ᵀ = Σ w·z zᵀ
    return _Centred(d, m, total, z, mean, correction)


def _products(block: _Centred, reference: np.ndarray | None) -> Moments:
    """The second half of a block's moments: its sums of products, about the residuals of `reference` W₀
    (d, k), or of zeros when None. (The table is read, not changed.)"""
    d, z, total, c = block.d, block.z, block.total, block.correction
    x, y = z[:d], z[d:]
    reference = np.zeros((d, len(y))) if reference is None else reference
    # Every product by np.dot, which lets go of the GIL (the `@` of NumPy 2.4 keeps it for a transposed
    # operand), so that two threads take two blocks' products at once; and x's own apart from the residuals'
    # (a symmetric product of d rows, BLAS syrk, and a (d, k) one cost less here than one syrk of d + k rows).
    with np.errstate(over="ignore", invalid="ignore"):
        c_x, c_y = c[:d], c[d:]
        syy = np.einsum("ij,ij->i", y, y) - total * c_y**2
        r, c_r = y, c_y
        if reference.any():
            r = y - np.dot(reference.T, x)  # r - r̄ = (y - ȳ) - (x - x̄)W₀, row by row
            c_r = c_y - c_x @ reference  # (and its mean with it)
        sxx = np.dot(x, x.T) - total * np.outer(c_x, c_x)
        sxr = np.dot(x, r.T) - total * np.outer(c_x, c_r)
        srr = np.einsum("ij,ij->i", r, r) - total * c_r**2
        mean = block.mean + c
    return Moments(block.m, total, mean[:d], mean[d:], reference, sxx, sxr, srr, syy)


def _row_means(z: np.ndarray, share: np.ndarray | None) -> np.ndarray:
    """The mean of each row of z (rows, columns): weighted by `share` (columns,), summing to 1; else plain,
    by NumPy's pairwise sums."""
    return z.sum(axis=1) / z.shape[1] if share is None else z @ share


def _pieces(blocks: Iterable[tuple[Any, Any, Any]]) -> Iterator[tuple[Any, Any, Any]]:
    """The blocks' (x, y, w) in pieces of _BLOCK_ROWS rows: a piece's float64 table then stays in the
    processor's cache while it is centred and multiplied (four times faster than 65,536-row pieces, here)."""
    for rows, targets, weights in blocks:
        for start in range(0, len(rows), _BLOCK_ROWS):
            stop = start + _BLOCK_ROWS
            yield rows[start:stop], targets[start:stop], None if weights is None else weights[start:stop]


def of_blocks(blocks: Iterable[tuple[Any, Any, Any]], reference: np.ndarray | None = None) -> Moments:
    """The moments of the rows of `blocks`, (x, y, w) triples of arrays in memory (w None without weights),
    one pass: each block's, combined pairwise. Without a `reference`, the least squares of the first block
    serves as W₀ (that block is in memory: it is not read again).

    Pieces are taken in `_THREADS` threads at once (NumPy and BLAS let go of the GIL for all of a piece's
    arithmetic), at most two pieces ahead of the one awaited; the parts combine in the rows' order, so the
    sums are the same whatever the threads' timing."""
    pieces = _pieces(blocks)
    first = next(pieces, None)
    if first is None:
        raise ValueError("moments: there are no rows")
    centred = _centred(*first)
    if reference is None:
        reference = _products(centred, None).reference_fit()
    parts = [_products(centred, reference)]
    with concurrent.futures.ThreadPoolExecutor(_THREADS) as pool:
        pending: collections.deque[concurrent.futures.Future[Moments]] = collections.deque()
        try:
            for piece in pieces:
                pending.append(pool.submit(Moments.of_block, *piece, reference))
                if len(pending) > _THREADS:
                    parts.append(pending.popleft().result())
            parts.extend(future.result() for future in pending)
        finally:
            for future in pending:
                future.cancel()
    return Moments.combined(parts)


class GramStep:
    """`step(xb, yb)` for `fit`: a full-batch step of `x @ weight + bias` on `mse + l2·Σ weight²`
    from the moments of (x, y), then `optimizer.safe_step`. Returns the objective before the step
    (as fit's eager step does) and the metrics named in `metrics`, of which it knows "mse" and "r2".
    `objective()` is the objective and metrics alone (of validation data, say) and `gradient()` the
    gradient, at the weights the layer has now, without stepping.

    moments: a `Moments` of x (n, d), y (n, k), of the values in the parameters' dtype; weight (d, k),
    bias (k,) or None; optimizer None for `objective` and `gradient` alone. `refusal` is None when the
    moments can serve, else why not (see `ROUNDING_BOUND`); `serves(weight, bias)` says whether they still
    describe the step (the same weight and bias, both still trained).
    """

    def __init__(
        self,
        moments: Moments,
        weight: Tensor,
        bias: Tensor | None,
        l2: float,
        optimizer: Any,
        metrics: Sequence[str] = (),
    ):
        self.weight, self.bias, self.l2, self.optimizer, self.metrics = weight, bias, l2, optimizer, list(metrics)
        m = self.moments = moments
        self.count = m.n * m.y_mean.size  # the mean runs over n·k values
        self._last: tuple[Any, tuple[Any, ...]] | None = None  # (the point, `_checked` there)
        self.usable = m.is_finite()  # (sums of squares beyond float64: the eager loss overflows too)
        if not self.usable:
            self.refusal: str | None = "the data's sums of squares are beyond float64"
            return
        # With A = [x 1] and Θ = [W; b] the residual AΘ - y splits, for centred columns, into
        # (x - x̄)W - (y - ȳ) and the constant e = b + x̄W - ȳ, whose cross term sums to zero:
        #   Σ w‖AΘ - y‖² = Σ w‖(x - x̄)W - (y - ȳ)‖² + Σw·‖e‖².
        # Without a bias there is no centring to be had: G = Σ w·xxᵀ = Sxx + Σw·x̄x̄ᵀ (and C likewise).
        # Both in terms of V = W - W₀, against the residuals r of the reference fit (see `Moments`):
        #   ‖(x - x̄)W - (y - ȳ)‖² = ‖(x - x̄)V - (r - r̄)‖²,  C = Σ w(x - x̄)(r - r̄)ᵀ.
        srr = m.srr
        if bias is None:
            r_mean = m.r_mean
            self.gram = m.sxx + m.weight * np.outer(m.x_mean, m.x_mean)
            cross = m.sxr + m.weight * np.outer(m.x_mean, r_mean)
            srr = srr + m.weight * r_mean**2
        else:
            self.gram, cross = m.sxx, m.sxr
        # The error is written around its optimum W* = W₀ + V*: with W = W* + δ,
        #   ‖(x - x̄)W - (y - ȳ)‖² = RSS* + 2⟨δ, GV* - C⟩ + ⟨δ, Gδ⟩   exactly,
        # each term computed without subtracting two large sums (a good fit's small loss keeps its digits:
        # RSS* = Σr² - 2⟨V*, C⟩ + ⟨V*, GV*⟩, of which Σr² is nearly all when W₀ is near W*).
        self.abs_gram = np.abs(self.gram)
        change = self.change = _solve(self.gram, cross)  # V*
        self.optimum = m.reference + change
        self.optimum_gradient = self.gram @ change - cross  # GV* - C, ~0
        fitted = np.einsum("ij,ij->j", change, cross)  # ⟨V*, C⟩ per output
        self.optimum_residuals = srr - 2 * fitted + np.einsum("ij,ij->j", change, self.gram @ change)
        self.optimum_residual = float(self.optimum_residuals.sum())
        self.optimum_sizes = float(np.sum(srr + 3 * np.abs(fitted)))  # the size of what RSS* is summed from
        self.x_size, self.y_size = m.root_mean_squares()
        # where the fit ends: W*, b* = ȳ - x̄W*
        optimum_bias = None if bias is None else m.y_mean - m.x_mean @ self.optimum
        self.refusal = self._rounding(self.optimum, optimum_bias, self.optimum_residual, self.optimum_sizes)

    def _roundings(
        self, weight: np.ndarray, bias: np.ndarray | None, squared_error: float, sizes: float
    ) -> tuple[float, float, float, float]:
        """(eager, moments, row, residual): the two roundings `_rounding` weighs, relative to the summed
        squared error, and the sizes the eager one comes from."""
        row = float((self.x_size @ np.abs(weight) + self.y_size + (0 if bias is None else np.abs(bias))).max())
        values = self.moments.weight * self.moments.y_mean.size  # the weighted count of residuals
        residual = float(np.sqrt(squared_error / values)) if squared_error > 0 and values > 0 else 0.0
        eager = 2 * _EPS * row / residual if residual > 0 else np.inf
        moments = 4 * _EPS * sizes / squared_error if squared_error > 0 else np.inf
        return eager, moments, row, residual

    def _rounding(self, weight: np.ndarray, bias: np.ndarray | None, squared_error: float, sizes: float) -> str | None:
        """Why the moments cannot keep the eager loss to `ROUNDING_BOUND` at (weight, bias), or None.

        Two roundings must stay below it, relative to the summed squared error there: the eager step's,
        which rounds each row's residual at the size of its terms (|x|·|W| + |b| + |y|, root mean squares:
        by Cauchy-Schwarz its effect on Σr² is at most 2·eps·that / the RMS residual), and the moments'
        own, which sum terms of total size `sizes` (4·eps·sizes)."""
        eager, moments, row, residual = self._roundings(weight, bias, squared_error, sizes)
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

    def _errors(self, weight: np.ndarray, bias: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, Any, float]:
        """At (weight, bias), in float64: the summed squared error of each output (k,), the gradient of
        their sum in W over 2 (GW - C, plus Σw·x̄eᵀ with a bias), e (None without a bias) and the total
        size of the terms summed for the error."""
        m = self.moments
        delta = (weight - m.reference) - self.change  # V - V* = W - W*
        g_delta = self.gram @ delta
        linear = 2 * np.einsum("ij,ij->j", delta, self.optimum_gradient)
        errors = self.optimum_residuals + linear + np.einsum("ij,ij->j", delta, g_delta)
        # the sizes of what is summed: RSS*, ⟨δ, Gδ⟩ and ⟨δ, GV* - C⟩: their rounding, against the total
        sizes = (
            self.optimum_sizes
            + float(np.vdot(np.abs(delta), self.abs_gram @ np.abs(delta)))
            + float(np.abs(linear).sum())
        )
        grad_weight = g_delta + self.optimum_gradient  # GW - C
        e = None
        if bias is not None:
            e = bias + m.x_mean @ weight - m.y_mean
            errors = errors + m.weight * e**2
            grad_weight = grad_weight + m.weight * np.outer(m.x_mean, e)
            # e is a difference of terms the size of |b| + |x̄|·|W| + |ȳ|
            parts = np.abs(bias) + np.abs(m.x_mean) @ np.abs(weight) + np.abs(m.y_mean)
            sizes += 2 * m.weight * float(np.vdot(np.abs(e), parts))
        return errors, grad_weight, e, sizes

    def _at(self, weight: np.ndarray, bias: np.ndarray | None) -> tuple[float, np.ndarray, Any, float]:
        """`_errors` with the squared error summed over the outputs."""
        errors, grad_weight, e, sizes = self._errors(weight, bias)
        return float(errors.sum()), grad_weight, e, sizes

    def _parameters(self) -> tuple[np.ndarray, np.ndarray | None]:
        weight = self.weight.data.astype(np.float64)
        return weight, None if self.bias is None else self.bias.data.astype(np.float64)

    def _logs(self, errors: np.ndarray, rounding: float) -> tuple[float, dict[str, Any]] | str:
        """The objective (mse + the L2 term) and the metrics, as a step returns them, from the summed
        squared error of each output, known to `rounding` (relative to their sum); or why R² cannot be
        told to `ROUNDING_BOUND` from them (near 0, R² = 1 - Σr²/Σ(y - ȳ)² is a difference of two
        numbers near 1, and inherits their rounding, relative to it, many times over)."""
        m = self.moments
        mse = float(errors.sum()) / self.count
        loss = mse + (self.l2 * float(np.vdot(self.weight.data, self.weight.data)) if self.l2 else 0.0)
        metrics: dict[str, Any] = {}
        for name in self.metrics:
            if name != "r2":
                metrics[name] = mse
                continue
            # Keras' R2Score from its sums: Σ(y - ȳ)² and Σ(y - ŷ)² per output
            sums = metrics[name] = losses.R2Sums(m.n, m.y_mean.copy(), m.syy.copy(), np.maximum(errors, 0.0))
            value = sums.result()
            off = rounding * float(errors.sum()) * float(np.mean(1 / np.where(m.syy > 0, m.syy, np.inf)))
            if not (np.isfinite(value) and off <= ROUNDING_BOUND * abs(value)):
                return f"R² ({value:.3g}) is too near 0 to be told from the moments to {ROUNDING_BOUND:g} (relative)"
        return loss, metrics

    def _checked(self, weight: np.ndarray, bias: np.ndarray | None) -> tuple[Any, ...]:
        """`_errors` at (weight, bias), the refusal there (`_rounding`, or None) and the larger of the two
        roundings. The last point's are kept: a step's check of where it lands is the next step's start."""
        key = (weight.tobytes(), None if bias is None else bias.tobytes())
        if self._last is not None and self._last[0] == key:
            return self._last[1]
        errors, grad_weight, e, sizes = self._errors(weight, bias)
        squared_error = float(errors.sum())
        refusal = self._rounding(weight, bias, squared_error, sizes)
        rounding = max(self._roundings(weight, bias, squared_error, sizes)[:2])
        found = (errors, grad_weight, e, sizes, refusal, rounding)
        self._last = (key, found)
        return found

    def objective(self) -> tuple[float, dict[str, Any]] | None:
        """The objective and the metrics at the weights the layer has now (as `steps.evaluated` gives them),
        or None, saying why in `refusal`, where the moments and the rows could differ by more than
        `ROUNDING_BOUND` there."""
        if not self.usable:
            return None
        errors, _, _, _, refusal, rounding = self._checked(*self._parameters())
        logs = self._logs(errors, rounding)
        if refusal is not None or isinstance(logs, str):
            self.refusal = refusal or str(logs)
            return None
        return logs

    def gradient(self) -> list[np.ndarray] | None:
        """The gradient of the objective (L2 term included) in the weight and the bias, in their dtypes, at
        the weights the layer has now; or None, saying why in `refusal`, where the rounding of the eager
        gradient (Σ x·r over the rows, each r rounded at the size of its row) could move it by more than
        `ROUNDING_BOUND` relative to its norm."""
        if not self.usable:
            return None
        weight, bias = self._parameters()
        _, half, e, _ = self._errors(weight, bias)
        m = self.moments
        grad_weight = 2 * half / self.count + (2 * self.l2 * weight if self.l2 else 0.0)
        gradient = [grad_weight] + ([] if e is None else [2 * m.weight * e / self.count])
        norm = float(np.sqrt(sum(float(np.sum(g**2)) for g in gradient)))
        # the eager rounding: each row's residual off by eps·(its row's size), times that row's |x| (and 1
        # for the bias), summed: by Cauchy-Schwarz at most eps·Σw·(|x|_rms + 1)·row_rms
        row = float((self.x_size @ np.abs(weight) + self.y_size + (0 if bias is None else np.abs(bias))).max())
        column = float(np.sqrt(np.sum(self.x_size**2) + (0 if e is None else 1)))
        eager = 2 * _EPS * m.weight * column * row / self.count
        # the moments' own: |G|·|δ| and, with a bias, Σw·|x̄|·|e|'s parts
        delta = np.abs(weight - self.optimum)
        own = float(np.abs(self.abs_gram @ delta).sum() + np.abs(self.optimum_gradient).sum())
        if bias is not None:
            parts = np.abs(bias) + np.abs(m.x_mean) @ np.abs(weight) + np.abs(m.y_mean)
            own += m.weight * float((np.abs(m.x_mean).sum() + 1) * parts.sum())
        bound = max(eager, 4 * _EPS * own / self.count)
        if not norm > 0 or bound / norm > ROUNDING_BOUND:
            self.refusal = (
                f"the gradient's norm, {norm:.3g}, is within ~{bound:.1e} of what rounding the rows could make "
                f"it (relative {bound / norm if norm > 0 else np.inf:.1e}, more than {ROUNDING_BOUND:g})"
            )
            return None
        params = [self.weight] + ([] if self.bias is None else [self.bias])
        return [g.astype(p.dtype) for g, p in zip(gradient, params)]

    def __call__(self, *batch: Any) -> tuple[float, dict[str, Any]] | None:
        """The step (the batch is the whole data, whose moments these are: it is not read), or None (changing
        nothing, and saying why in `refusal`) when at these weights, or at those the step leads to, the
        moments and the eager step could differ by more than `ROUNDING_BOUND` (see `_rounding`): a weight
        far along a direction the data hardly vary in, or rows whose terms dwarf their residual (there the
        weights an ulp apart give losses further apart than that)."""
        if not self.usable:
            return None
        weight, bias = self._parameters()
        errors, grad_weight, e, _, refusal, rounding = self._checked(weight, bias)
        logs = self._logs(errors, rounding)
        if refusal is not None or isinstance(logs, str):
            self.refusal = f"at step {self.optimizer.steps + 1}: {refusal or logs}"
            return None
        loss, metrics = logs
        grad_weight = 2 * grad_weight / self.count
        if self.l2:
            grad_weight = grad_weight + 2 * self.l2 * weight
        self.optimizer.zero_grad()
        self.weight.grad = grad_weight.astype(self.weight.dtype)
        if self.bias is not None:
            self.bias.grad = (2 * e / self.count * self.moments.weight).astype(self.bias.dtype)
        saved = self.optimizer._copy_of_what_a_step_changes()
        self.optimizer.safe_step(loss)
        refusal = self._checked(*self._parameters())[4]
        if refusal is not None:  # taken back: the eager step takes it instead
            self.optimizer._put_back(saved)
            self.optimizer.steps -= 1
            self.refusal = f"after step {self.optimizer.steps + 1}: {refusal}"
            return None
        return loss, metrics
