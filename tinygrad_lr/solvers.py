"""Closed-form linear regression: the optimum that gradient descent should reach, and how fast it can.

`ols` and `ridge` solve the training objective of a linear model,

    mean((X @ coef + intercept - y)**2) + l2 * sum(coef**2)        (the intercept is not penalised)

to as many correct digits as double precision allows. Every float64 is a rational number, so the
data define one exact answer; what keeps a solver from it is rounding, and `numpy.linalg.lstsq` on
the raw design [1 X] loses digits three ways: to the condition number of that design (offsets and
column scales inflate it, though they change nothing in the answer), to its fixed cut-off on
singular values (a full-rank degree-10 polynomial of condition 1e15 is solved as rank 9), and to the
cancellation of large terms in its arithmetic (an intercept of 0.26 next to x̄·coef of 420). Here:

1. The design is centred about its (weighted) mean row, its column of ones kept first, and each
   column divided by a power of two near its norm (exact): the matrix the factorisation sees is as
   well conditioned as the problem itself, and rank deficiency is decided there: a singular value of
   that matrix below eps·√max(n, d) times the largest counts as zero (`rank_tolerance`).
2. A factor of that matrix — the Cholesky factor of its Gram matrix where that is well conditioned
   (condition number up to 2**20: cheap, and its rounding costs at most a refinement step), else the
   R of a Householder QR — gives a first answer. XᵀX of the raw data is never formed.
3. Iterative refinement (Björck's, on the corrected semi-normal equations): the residual
   r = y - intercept - X·coef and the gradient Xᵀ·W·r are computed from the data as given, in
   double-double arithmetic (about 32 digits, from error-free transformations in plain NumPy), and
   the factor turns them into a correction. The factor's rounding only decides how fast this
   converges; the answer is as accurate as the gradient's arithmetic, which is far beyond float64.

Memory maps and Dask arrays are read once: the QR of the tall, skinny [X y], each block centred on
its own (weighted) mean and the blocks merged by Chan's update (`blockwise.Factor`), reduced to the
triangular factor of the centred data and its mean; then the same scaling and rank decision on that
factor, and back substitution (no refinement: that would take a second pass over the data).

`stable_learning_rate` and `hessian_condition_number` describe the same objective as seen by plain
gradient descent: the largest step that still converges, and how slowly the flattest direction
moves at that step.

Pure NumPy, no other dependency.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from tinygrad_lr.checks import as_real_array, as_real_data, check_number, check_sample_weight
from tinygrad_lr.sources import as_source

__all__ = ["hessian_condition_number", "ols", "rank_tolerance", "ridge", "stable_learning_rate"]

_EPS = float(np.finfo(np.float64).eps)
# The Gram matrix's Cholesky factor is the preconditioner up to this condition number of the Gram matrix:
# its own rounding (about cond·eps relative) then costs at most one more refinement step; beyond it,
# a Householder QR of the scaled design (rounding about cond(design)·eps, the square root of that).
_CHOLESKY_CONDITION = 2.0**20
_MAX_STEPS = 12  # refinement steps at most (two or three are the rule; a step gains -log10(contraction) digits)
# Rows per block of the double-double arithmetic: a block's (d, rows) temporaries then stay in the CPU's
# cache, where NumPy's elementwise operations run about four times faster than over whole columns.
_BLOCK_ROWS = 8192


# ----- input checks, shared by every public function -----


def _validate(caller: str, X: Any, y: Any = None, blocks: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """Check and normalise the data: X as float64 (n, d) (a 1-D X is one feature), y as float64
    (n,) or (n, k) as given, or None when there is no y. Every failure is a ValueError naming `caller`.
    With `blocks`, memory maps and Dask arrays stay as they are: their values are checked as they are read."""
    as_real = as_real_data if blocks else as_real_array
    X = as_real(f"{caller}: X", X)
    if X.ndim not in (1, 2):
        raise ValueError(
            f"{caller}: X must be 1-D (n samples of one feature) or 2-D (n samples, d features); got shape {X.shape}"
        )
    if y is not None:
        y = as_real(f"{caller}: y", y)
        if y.ndim not in (1, 2):
            raise ValueError(f"{caller}: y must be 1-D (n targets) or 2-D (n samples, k targets); got shape {y.shape}")
        if len(y) != len(X):
            raise ValueError(
                f"{caller}: X has {len(X)} samples but y has {len(y)}; they must describe the same samples "
                f"(X has shape {X.shape}, y has shape {y.shape})"
            )
    if len(X) == 0:
        raise ValueError(f"{caller}: no samples (X has shape {X.shape}); at least one is needed")
    if X.ndim == 2 and X.shape[1] == 0:
        raise ValueError(f"{caller}: X has no features (shape {X.shape}); at least one column is needed")
    if y is not None and y.ndim == 2 and y.shape[1] == 0:
        raise ValueError(f"{caller}: y has no target columns (shape {y.shape}); at least one is needed")
    return (X[:, None] if X.ndim == 1 else X), y


def _check_l2(caller: str, l2: Any) -> float:
    """The penalty as a float: a finite number >= 0."""
    return check_number(f"{caller}: l2", l2.item() if isinstance(l2, np.ndarray) and l2.ndim == 0 else l2, low=0.0)


# ----- double-double arithmetic: sums and products that keep their rounding error -----
# A value is carried as an unevaluated sum high + low of two float64s. The transformations below are
# error-free: their two outputs add up to the exact result. They are written in plain NumPy so that
# they vectorise and give the same digits on every platform (np.longdouble is float64 on some).

_SPLITTER = 2.0**27 + 1.0


def _split(a: Any) -> tuple[Any, Any]:
    """a = high + low exactly, each with at most 26 significant bits (Veltkamp's splitting), so that
    the product of two parts is exact in float64. |a| must stay below about 1e300."""
    c = _SPLITTER * a
    high = c - (c - a)
    return high, a - high


def _two_sum(a: Any, b: Any) -> tuple[Any, Any]:
    """(s, e): s = fl(a + b) and s + e = a + b exactly, whatever the magnitudes (Knuth's TwoSum)."""
    s = a + b
    z = s - a
    return s, (a - (s - z)) + (b - z)


def _product_error(a: Any, a_parts: tuple, b: Any, b_parts: tuple, product: Any) -> Any:
    """e with product + e = a·b exactly, for product = fl(a·b); the parts are `_split`'s (Dekker's TwoProduct)."""
    (a_high, a_low), (b_high, b_low) = a_parts, b_parts
    return ((a_high * b_high - product) + a_high * b_low + a_low * b_high) + a_low * b_low


def _sum_first_axis(terms: np.ndarray, low: Any) -> tuple[np.ndarray, np.ndarray]:
    """Σ terms over axis 0, plus `low`, as double-double (high, low): pairwise TwoSums, whose errors
    (each eps times smaller than its terms) are summed in plain float64 with `low`."""
    high = terms
    while len(high) > 1:
        half = len(high) // 2
        pair_sums, errors = _two_sum(high[:half], high[half : 2 * half])
        low = low + errors.sum(axis=0)
        high = np.concatenate([pair_sums, high[2 * half :]]) if len(high) % 2 else pair_sums
    return _two_sum(high[0], low)


def _accumulate(sums: np.ndarray, lows: np.ndarray, high: np.ndarray, low: np.ndarray) -> None:
    """sums + lows += high + low, in place, elementwise: the running double-double totals of a blocked sum."""
    sums[...], error = _two_sum(sums, high)
    lows += error + low


def _subtract_product(high: Any, low: Any, a: Any, b_high: Any, b_low: Any) -> tuple[Any, Any]:
    """(high + low) - a·(b_high + b_low), double-double: a·b_high exactly (TwoProduct), a·b_low (eps times
    smaller) in float64."""
    product = a * b_high
    total, carry = _two_sum(high, -product)
    return total, low + carry - _product_error(a, _split(a), b_high, _split(b_high), product) - a * b_low


# ----- one problem, in the units its arithmetic uses -----


@dataclass
class _Data:
    """A least-squares problem with each column of X, each target column and the weights divided by a
    power of two (exact), so that the largest magnitude of each lies in [0.5, 1): nothing below
    overflows or underflows, and the answer is carried back exactly (but for entries 2**1000 times smaller
    than their column's largest, which would lose bits). The objective, per target column:
    Σ w·(y - intercept - X·coef)² + Σ_j penalty_j · coef_j²."""

    XT: np.ndarray  # (d, n): X transposed, so that a block of rows is d contiguous runs
    YT: np.ndarray  # (k, n)
    w: np.ndarray | None  # (n,), or None: every row counts once
    root_penalty: np.ndarray  # (d,): the penalty's square root, rounded (for the factor)
    penalty: np.ndarray  # (d,): the penalty exactly, penalty + penalty_low, times 2**-penalty_exponent
    penalty_low: np.ndarray  # (d,)
    penalty_exponent: np.ndarray  # (d,) ints >= 0
    fit_intercept: bool
    x_exponents: np.ndarray  # (d,) ints: X[:, j] = XT[j] · 2**x_exponents[j]
    y_exponents: np.ndarray  # (k,) ints
    w_exponent: int  # the weights as given are w · 2**w_exponent

    @classmethod
    def scaled(cls, X: np.ndarray, Y: np.ndarray, w: np.ndarray | None, l2: float, fit_intercept: bool) -> _Data:
        """X (n, d), Y (n, k), w (n,) or None, the objective mean(w·r²) + l2·Σcoef² over all n·k entries."""
        n, d = X.shape
        XT, YT = np.empty((d, n)), np.empty((Y.shape[1], n))  # (copies: the caller's arrays are left as they are)
        XT[...], YT[...] = X.T, Y.T
        x_exponents, y_exponents = _exponents(XT), _exponents(YT)
        # (ldexp of the values themselves: 2**-e as a factor would overflow for subnormal columns, e < -1022)
        XT, YT = np.ldexp(XT, -x_exponents[:, None]), np.ldexp(YT, -y_exponents[:, None])
        w_exponent = 0
        if w is not None:
            w_exponent = 2 * ((int(_exponents(w[None, :])[0]) + 1) // 2)  # even: its square root is a power of two
            w = np.ldexp(w, -w_exponent)
        # n·k·(mean + l2·Σcoef²) = Σ w·r² + n·k·l2·Σcoef²; in these units coef_j is scaled by 2**(f - e_j) and the
        # sum by 2**(2f + w_exponent), so coef_j's penalty becomes n·k·l2·2**(-2·e_j - w_exponent)
        penalty = _penalty(l2, Y.size, 2 * x_exponents + w_exponent)
        return cls(XT, YT, w, *penalty, fit_intercept, x_exponents, y_exponents, w_exponent)

    def unscaled(self, coef: np.ndarray, intercept: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(coef (d, k), intercept (k,)) in the units of the data as given: ±inf where the answer is beyond
        float64 (a weight of 1e320 on a column of 1e-320s), as the rounding of any float operation gives it."""
        with np.errstate(over="ignore"):
            coef = np.ldexp(coef, self.y_exponents[None, :] - self.x_exponents[:, None])
            return coef, np.ldexp(intercept, self.y_exponents)


def _penalty(l2: float, count: int, exponents: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The ridge penalty count·l2·2**-exponents on each coefficient (exponents (d,) ints), as `_Data` holds it:
    its square root (rounded), and the penalty exactly, as a double-double times 2**exponent (d,)."""
    root = np.ldexp(np.sqrt(count) * np.sqrt(l2), -exponents // 2)  # (not sqrt(count·l2): that could overflow)
    with np.errstate(over="ignore", invalid="ignore"):
        scaled_l2 = np.ldexp(l2, -exponents)
        high = count * scaled_l2  # count, an integer, and l2 times a power of two: their product, exactly
        low = _product_error(float(count), _split(float(count)), scaled_l2, _split(scaled_l2), high)
    if not np.all(np.isfinite(low)):  # (a penalty near float64's largest: rounded, and the answer ~0 anyway)
        high, low = np.minimum(root * root, np.finfo(np.float64).max), np.zeros(len(exponents))
    # above 1 the penalty is kept in [0.5, 1), its exponent apart (its split cannot overflow then)
    exponent = np.maximum(np.frexp(high)[1], 0)
    return root, np.ldexp(high, -exponent), np.ldexp(low, -exponent), exponent


def _exponents(M: np.ndarray) -> np.ndarray:
    """For each row of M (c, n): the e (an int) with max |row| in [2**(e-1), 2**e); 0 for a row of zeros."""
    largest = np.maximum(np.max(M, axis=1, initial=0.0), -np.min(M, axis=1, initial=0.0))  # (no |M| made)
    return np.frexp(largest)[1].astype(np.int64)


def _residual_rows(
    X: np.ndarray, X_parts: tuple, y: np.ndarray, coef: tuple, intercept: tuple, terms: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """r = y - intercept - X·coef for a block of rows, double-double (high, low) (m,): X (d, m) a block of
    XT and its `_split` parts, y (m,), coef (high, low) (d,) and intercept (high, low) floats, `terms` a
    (d + 2, m) scratch array. The products are exact (TwoProduct), their sum too (TwoSum); the low parts
    of the parameters, eps times smaller, are multiplied in plain float64."""
    (coef_high, coef_low), (intercept_high, intercept_low) = coef, intercept
    terms[0] = y
    terms[1] = -intercept_high
    minus_coef = -coef_high[:, None]
    products = np.multiply(X, minus_coef, out=terms[2:])
    errors = _product_error(X, X_parts, minus_coef, _split(minus_coef), products)
    if coef_low.any():  # (not at the first step, which starts from float64 parameters)
        errors -= X * coef_low[:, None]
    return _sum_first_axis(terms, errors.sum(axis=0) - intercept_low)


def _gradient(
    data: _Data, coef: tuple, intercept: tuple, centre: np.ndarray, extra: np.ndarray | None = None
) -> np.ndarray:
    """The residuals' pull on the parameters (minus half the objective's gradient), in double-double,
    each entry rounded once, r = y - intercept - X·coef for each target column; coef (high, low) (d, k),
    intercept (high, low) (k,). With an intercept: the pull on (b', coef), b' = b + centre·coef the
    intercept at `centre` (d,), (d + 1, k): Σ W·r, then (X - centre)ᵀ·W·r - penalty·coef; without one,
    Xᵀ·W·r - penalty·coef (d, k). `extra` (p, k), a constant pull on (b, coef), is added before rounding.

    Rounded once, the result is accurate to its own size even where it is the tiny difference of
    large terms, as it is near the optimum: that is what lets refinement reach the exact answer."""
    d, n = data.XT.shape
    k = len(data.YT)
    block = min(n, _BLOCK_ROWS)
    sums = np.zeros((k, d + 1, block))  # Σ x·v and Σ v (v = w·r), elementwise over the blocks, then over a block
    lows = np.zeros_like(sums)
    terms = np.empty((d + 2, block))
    for start in range(0, n, block):
        X = data.XT[:, start : start + block]
        m = X.shape[1]
        X_parts = _split(X)
        w = None if data.w is None else data.w[start : start + m]
        for t in range(k):
            r_high, r_low = _residual_rows(
                X,
                X_parts,
                data.YT[t, start : start + m],
                (coef[0][:, t], coef[1][:, t]),
                (intercept[0][t], intercept[1][t]),
                terms[:, :m],
            )
            if w is None:
                v_high, v_low = r_high, r_low
            else:
                v_high = w * r_high
                v_low = _product_error(w, _split(w), r_high, _split(r_high), v_high) + w * r_low
            products = X * v_high
            errors = _product_error(X, X_parts, v_high, _split(v_high), products) + X * v_low
            _accumulate(sums[t, :d, :m], lows[t, :d, :m], products, errors)
            _accumulate(sums[t, d, :m], lows[t, d, :m], v_high, v_low)
    high, low = np.empty((d + 1, k)), np.empty((d + 1, k))  # Σ x·v (d rows), then Σ v
    for t in range(k):
        high[:, t], low[:, t] = _sum_first_axis(sums[t].T, lows[t].sum(axis=1))
    if extra is not None:  # (the intercept's row first in `extra`, last here)
        extra = np.vstack([extra[1:], extra[:1]]) if len(extra) > d else np.vstack([extra, np.zeros((1, k))])
        high, error = _two_sum(high, extra)
        low = low + error
    high_coef, low_coef = high[:d], low[:d]
    if data.fit_intercept:
        # Σ (x - centre)·v = Σ x·v - centre·Σ v, in double-double: far from the origin the two are nearly
        # equal, and their difference, rounded only once, keeps its own digits
        high_coef, low_coef = _subtract_product(high_coef, low_coef, centre[:, None], high[d], low[d])
    # the penalty's pull in double-double too: near the optimum it is as large as the data's, and where the
    # penalty decides a coefficient, that coefficient is as exact as the penalty
    # (a penalty beyond 1 is held as a mantissa and an exponent; the exponent multiplies coef, exactly)
    shift = data.penalty_exponent[:, None]
    coef_high, coef_low = np.ldexp(coef[0], shift), np.ldexp(coef[1], shift)
    high_coef, low_coef = _subtract_product(high_coef, low_coef, data.penalty[:, None], coef_high, coef_low)
    low_coef = low_coef - data.penalty_low[:, None] * coef_high
    pull_coef = high_coef + low_coef
    return np.vstack([high[d] + low[d], pull_coef]) if data.fit_intercept else pull_coef


def _residuals(data: _Data, coef: tuple, intercept: tuple) -> np.ndarray:
    """r = y - intercept - X·coef (n, k), each entry rounded once from double-double; coef (high, low)
    (d, k) and intercept (high, low) (k,)."""
    d, n = data.XT.shape
    out = np.empty((n, len(data.YT)))
    terms = np.empty((d + 2, min(n, _BLOCK_ROWS)))
    for start in range(0, n, _BLOCK_ROWS):
        X = data.XT[:, start : start + _BLOCK_ROWS]
        m = X.shape[1]
        for t in range(len(data.YT)):
            y = data.YT[t, start : start + m]
            parameters = (coef[0][:, t], coef[1][:, t]), (intercept[0][t], intercept[1][t])
            high, low = _residual_rows(X, _split(X), y, *parameters, terms[:, :m])
            out[start : start + m, t] = high + low
    return out


# ----- the preconditioner: a factor of the centred, scaled design -----


@dataclass
class _Factor:
    """What refinement needs from the design about its centre, A' = [1, X - centre] ([X] without an
    intercept), its rows weighted by √w and its columns divided by `scale`: the Gram matrix of that
    design plus the penalty, as V·diag(σ²)·Vᵀ (an SVD of its Cholesky factor, or of the R of its QR),
    with the directions it cannot resolve set apart. In the parameters (b', coef), b' = b + centre·coef
    the intercept at the centre, it is the objective's Hessian (halved) itself, with no approximation:
    only its rounding (`contraction`) keeps a step from landing on the answer."""

    centre: np.ndarray  # (d,): the (weighted) column means of X, rounded; 0 without an intercept
    scale: np.ndarray  # (p,): powers of two near the norms of the columns of √w·A' (p = d + 1 with an intercept)
    basis: np.ndarray  # (p, rank): the right singular vectors kept
    sigma: np.ndarray  # (rank,): their singular values
    null: np.ndarray  # (p, p - rank): the others, the directions of dependent columns (scaled coordinates)
    dependent: list[int]  # the columns of X that are combinations of the columns before them
    contraction: float  # the estimated factor by which each refinement step shrinks the error

    def solve(self, pull: np.ndarray) -> np.ndarray:
        """The step (p, k) in the parameters (b', coef) of the Hessian's model for a pull (p, k) on them;
        on the dependent directions, none (a pseudo-inverse)."""
        scaled = self.basis @ ((self.basis.T @ (pull / self.scale[:, None])) / self.sigma[:, None] ** 2)
        return scaled / self.scale[:, None]


def _precondition(factor: _Factor, pull: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The step (coef (d, k), intercept (k,)) the factor gives for a pull (p, k) on (b', coef) (on coef
    alone without an intercept): solved for (b', coef), then carried back to b = b' - centre·coef."""
    step = factor.solve(pull)
    d = len(factor.centre)
    if len(step) == d:  # no intercept
        return step, np.zeros(step.shape[1])
    return step[1:], step[0] - factor.centre @ step[1:]


def _factor(data: _Data) -> tuple[_Factor, np.ndarray, np.ndarray]:
    """The preconditioner of `data`, and a first answer (coef (d, k), intercept (k,)) from it."""
    d, n = data.XT.shape
    k = len(data.YT)
    w = data.w
    if data.fit_intercept:  # (weighted) means by BLAS, float64: only a shift of the parameters, rounded or not
        weight_sum = float(n if w is None else w.sum())
        centre = data.XT.mean(axis=1) if w is None else data.XT @ w / weight_sum
        y_centre = data.YT.mean(axis=1) if w is None else data.YT @ w / weight_sum
    else:
        centre, y_centre = np.zeros(d), np.zeros(k)
    # The column of ones stays first in the design: the centring's rounding moves each column by a
    # multiple of it, which the factor then absorbs exactly, so the columns it sees past the first are
    # the exactly centred ones, and a dependence among them survives the centring's rounding.
    design = np.ones((d + data.fit_intercept, n))
    np.subtract(data.XT, centre[:, None], out=design[data.fit_intercept :])
    targets = data.YT - y_centre[:, None]
    weighted = design if w is None else design * w
    gram = weighted @ design.T
    # powers of two near the column norms: dividing by them is exact, and makes every column of unit size
    norms = np.sqrt(np.diag(gram))
    scale = np.ldexp(1.0, np.frexp(np.where(norms > 0, norms, 1.0))[1])
    penalty = np.concatenate([np.zeros(len(scale) - d), data.root_penalty]) / scale  # (the intercept has none)
    factor = _cholesky(gram / np.outer(scale, scale), penalty, centre, scale, n)
    if factor is not None:
        first = factor.solve(weighted @ targets.T)  # the normal equations' answer
    else:
        factor, first = _householder(design, targets, w, penalty, centre, scale)
    if data.fit_intercept:
        coef = first[1:]
        return factor, coef, y_centre + first[0] - centre @ coef
    return factor, first, np.zeros(k)


def _rounding(n: int, p: int) -> float:
    """About the relative rounding of a factor of an (n, p) design: the rounding of a sum of n terms grows as √n."""
    return 2 * np.sqrt(n * p) * _EPS


def _cholesky(gram: np.ndarray, penalty: np.ndarray, centre: np.ndarray, scale: np.ndarray, n: int) -> _Factor | None:
    """The factor from the Cholesky factor of the scaled design's Gram matrix (p, p) plus its penalty (p,),
    when that is well conditioned (`_CHOLESKY_CONDITION`); else None."""
    try:
        with np.errstate(over="ignore", invalid="ignore"):  # (a penalty near float64's largest: the QR then)
            cholesky = np.linalg.cholesky(gram + np.diag(penalty**2))
            _, sigma, rows = np.linalg.svd(cholesky.T)
            condition = (sigma[0] / sigma[-1]) ** 2
    except np.linalg.LinAlgError:  # not positive definite in float64: dependent columns, or nearly
        return None
    if not condition <= _CHOLESKY_CONDITION:
        return None
    return _Factor(centre, scale, rows.T, sigma, np.zeros((len(scale), 0)), [], _rounding(n, len(scale)) * condition)


def _householder(
    design: np.ndarray,
    targets: np.ndarray,
    w: np.ndarray | None,
    penalty: np.ndarray,
    centre: np.ndarray,
    scale: np.ndarray,
) -> tuple[_Factor, np.ndarray]:
    """The factor and the minimum-norm first answer (p, k) from a Householder QR of the design (p, n) scaled,
    with its targets (k, n) beside it (R's last columns are then Qᵀ·y) and the penalty as more rows."""
    (p, n), k = design.shape, len(targets)
    rows_of_penalty = np.flatnonzero(penalty)
    stacked = np.zeros((p + k, n + len(rows_of_penalty)))  # transposed: stacked.T is Fortran-ordered, as LAPACK reads
    np.divide(design, scale[:, None], out=stacked[:p, :n])
    stacked[p:, :n] = targets
    if w is not None:
        stacked[:, :n] *= np.sqrt(w)
    stacked[rows_of_penalty, n + np.arange(len(rows_of_penalty))] = penalty[rows_of_penalty]
    factor, first = _from_triangular(np.asarray(np.linalg.qr(stacked.T, mode="r")), p, n, centre, scale)
    factor.contraction = _rounding(n, p) * (factor.sigma[0] / factor.sigma[-1] if len(factor.sigma) else 1.0)
    return factor, first


def rank_tolerance(n: int, d: int) -> float:
    """The share of the largest singular value below which a singular value of the centred design, each
    column scaled to unit norm, counts as zero: eps·√max(n, d), for n rows and d columns.

    An exactly dependent column (a duplicate, a constant one once centred, more columns than rows) leaves
    a singular value of at most about 2·eps after a Householder QR of the scaled design, for any n; the
    rounding of a sum of n terms grows about as √n. Anything above that is a direction the data do
    resolve, and refinement recovers its coefficient (12 digits at a scaled condition number of 3e14).
    numpy's lstsq and matrix_rank cut at max(n, d)·eps on the raw design, R's lm at 1e-7 of a pivoted
    QR: both drop a term of full-rank polynomial designs such as NIST's Filip."""
    return _EPS * float(np.sqrt(max(n, d)))


def _from_triangular(
    triangular: np.ndarray, p: int, n: int, centre: np.ndarray, scale: np.ndarray
) -> tuple[_Factor, np.ndarray]:
    """The factor and the minimum-norm answer (p, k) in the scaled design's parameters, from the R of
    [C Y] = Q·R: C (n, p) the scaled design (the column of ones first, when there is one, and the
    penalty's rows included), Y its targets beside it.

    The rank is decided here, on the singular values of R's first p columns (those of C): below
    `rank_tolerance(n, p)` times the largest, zero. A column depends on the ones before it when the
    first j + 1 columns have the rank of the first j (as R's lm names its aliased columns)."""
    size = triangular.shape[1]
    R = np.zeros((size, size))
    R[: len(triangular)] = triangular[:size]  # fewer rows than columns: zero rows
    U, sigma, rows = np.linalg.svd(R[:p, :p])
    cut = rank_tolerance(n, p) * sigma[0]
    rank = int(np.sum(sigma > cut))
    basis = rows[:rank].T
    first = basis @ ((U[:, :rank].T @ R[:p, p:]) / sigma[:rank, None]) / scale[:, None]
    dependent = []
    if rank < p:
        ranks = [0] + [int(np.sum(np.linalg.svd(R[: j + 1, : j + 1], compute_uv=False) > cut)) for j in range(p)]
        ones = p - len(centre)  # (1 with the column of ones first: a column of X is numbered from 0 after it)
        dependent = [j - ones for j in range(ones, p) if ranks[j + 1] == ranks[j]]
    return _Factor(centre, scale, basis, sigma[:rank], rows[rank:].T, dependent, 1.0), first


# ----- refinement, and the answer -----


def _refine(
    data: _Data, factor: _Factor, coef: np.ndarray, intercept: np.ndarray, pull: np.ndarray | None = None
) -> tuple[tuple, tuple]:
    """Newton steps with the factor's Hessian and the exact (double-double) gradient, from (coef (d, k),
    intercept (k,)): each shrinks the error by about `factor.contraction`. `pull` (p, k), a constant added
    to the gradient on (b, coef), makes it solve AᵀWA·θ = pull instead (with y = 0).

    The parameters are carried, and returned, as double-double ((coef, low), (intercept, low)): rounded
    once at the end, each is the exact answer's own float64. Carried in float64, the intercept would
    follow the rounding of coef (b = b' - centre·coef moves by |centre| times coef's last digit). The steps
    stop when the next one could not change the answer's float64 digits, or when a step is no smaller
    than half the one before: the gradient's own rounding is reached."""
    coef_low, intercept_low = np.zeros_like(coef), np.zeros_like(intercept)
    # the factor measures error in the scaled parameters (b'·scale_0, coef·scale); an error e there is
    # e / scale_j in coef_j, and up to e·`reach` in b
    scale, d = factor.scale[:, None], len(coef)
    reach = float(np.sum(1 / factor.scale[: len(factor.scale) - d]) + np.sum(np.abs(factor.centre) / factor.scale[-d:]))
    previous = np.inf
    for _ in range(_MAX_STEPS):
        pulls = _gradient(data, (coef, coef_low), (intercept, intercept_low), factor.centre, pull)
        step_coef, step_intercept = _precondition(factor, pulls)
        step = _scaled(factor, step_coef, step_intercept)
        size = _ratio(step, _scaled(factor, coef, intercept))
        if size == 0:
            break  # (the gradient is 0: nothing left to change)
        if size > previous:
            break  # (diverging: the design is singular to the factor's precision; keep the best answer)
        coef, coef_low = _add(coef, coef_low, step_coef)
        intercept, intercept_low = _add(intercept, intercept_low, step_intercept)
        # the error the step leaves (k,), at most: its size times the contraction, as the factor's rounding
        # bounds it or, from the second step on, as the steps themselves shrink (the bound is pessimistic)
        contraction = factor.contraction if previous == np.inf else min(factor.contraction, size / previous)
        left = contraction * np.max(np.abs(step), axis=0)
        exact_intercept = not data.fit_intercept or np.all(left * reach <= _EPS / 4 * np.abs(intercept))
        if exact_intercept and np.all(left / scale[-d:] <= _EPS / 4 * np.abs(coef)):
            break  # (each parameter is as exact as float64 holds it)
        if size > previous / 2:
            break  # (no faster than that: the steps are the gradient's rounding now)
        previous = size
    return (coef, coef_low), (intercept, intercept_low)


def _scaled(factor: _Factor, coef: np.ndarray, intercept: np.ndarray) -> np.ndarray:
    """(b', coef) times `factor.scale` (p, k), b' = intercept + centre·coef: the parameters the factor sees."""
    if len(factor.scale) == len(coef):
        return coef * factor.scale[:, None]
    return np.vstack([intercept + factor.centre @ coef, coef]) * factor.scale[:, None]


def _add(high: np.ndarray, low: np.ndarray, step: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(high, low) + step, renormalised: a double-double plus a float64."""
    total, error = _two_sum(high, step)
    return _two_sum(total, error + low)


def _ratio(step: np.ndarray, value: np.ndarray) -> float:
    """max |step| / max |value| over each column (each entry of a 1-D array), the largest; 0 where step is 0."""
    step, value = np.abs(np.atleast_2d(step)), np.abs(np.atleast_2d(value))
    top, whole = step.max(axis=0, initial=0.0), value.max(axis=0, initial=0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.max(np.where(top > 0, top / whole, 0.0), initial=0.0))


def _minimum_norm(coef: np.ndarray, null: np.ndarray, metric: np.ndarray) -> np.ndarray:
    """What to take from coef (d, k) to leave, among coef + any of the null directions (d, q), the one of
    least norm once each coef_j is multiplied by metric_j (the data's units)."""
    directions = null * metric[:, None]
    return null @ np.linalg.lstsq(directions, coef * metric[:, None], rcond=None)[0]


@dataclass
class LeastSquares:
    """A least-squares answer, with what `tl.stats` needs to say what it is worth.

    coef (d, k) and intercept (k,) in the data's units (intercept 0 without one); rank: the rank of the
    design [1 X] ([X] without an intercept) once centred and scaled; dependent: the columns of X found to
    be combinations of the columns before them (their coefficients are the minimum-norm choice)."""

    coef: np.ndarray
    intercept: np.ndarray
    rank: int
    dependent: list[int]
    _data: _Data
    _factor: _Factor
    _coef: tuple  # coef and intercept in _data's units, double-double: (high, low) each
    _intercept: tuple

    def residuals(self) -> np.ndarray:
        """y - intercept - X·coef (n, k) at the double-double answer, each entry rounded once: the exact
        answer's residuals, also where they are far smaller than the rounding of coef could leave."""
        return np.ldexp(_residuals(self._data, self._coef, self._intercept), self._data.y_exponents[None, :])

    def inverse_gram(self) -> np.ndarray:
        """(AᵀWA)⁻¹ (p, p), A = [1 X] ([X] without an intercept), the intercept first: the covariance of
        the parameters, unscaled. Its column j is the θ with AᵀWA·θ = e_j, solved by the same factor and
        refinement as the answer (on dependent directions, the pseudo-inverse's)."""
        data, factor = self._data, self._factor
        d, n = data.XT.shape
        p = len(factor.scale)
        none = np.zeros(d)  # (no penalty: this is AᵀWA's inverse, for ols)
        zeros = dataclasses.replace(
            data, YT=np.zeros((p, n)), y_exponents=np.zeros(p, int), root_penalty=none, penalty=none,
            penalty_low=none, penalty_exponent=np.zeros(d, int),
        )  # fmt: skip
        identity = np.eye(p)
        moved = identity.copy()  # the pull e_j on (b, coef) is, on (b', coef), e_j - centre·[j is b]
        moved[p - d :] -= np.outer(factor.centre, identity[0]) if p > d else 0.0
        (coef, coef_low), (intercept, intercept_low) = _refine(zeros, factor, *_precondition(factor, moved), identity)
        coef, intercept = coef + coef_low, intercept + intercept_low
        if factor.null.shape[1]:
            removed = _minimum_norm(coef, _null_coef(factor, d), np.ldexp(1.0, -data.x_exponents))
            coef, intercept = coef - removed, intercept + factor.centre @ removed
        inverse = np.vstack([intercept, coef]) if p > d else coef
        # into the data's units: A = A'·diag(1, 2**e) and W = W'·2**w_exponent
        exponents = -np.concatenate([np.zeros(p - d, np.int64), data.x_exponents])
        return np.ldexp(inverse, exponents[:, None] + exponents[None, :] - data.w_exponent)


def _null_coef(factor: _Factor, d: int) -> np.ndarray:
    """The coef part (d, q) of the factor's dependent directions, in coef's units (their b' part is 0:
    the columns of ones and of the centred design are orthogonal)."""
    return (factor.null / factor.scale[:, None])[-d:]


def least_squares(
    X: np.ndarray, y: np.ndarray, l2: float = 0.0, fit_intercept: bool = True, sample_weight: np.ndarray | None = None
) -> LeastSquares:
    """The least-squares answer of checked data: X (n, d), y (n, k), float64; see `ols` and `ridge`."""
    data = _Data.scaled(X, y, sample_weight, l2, fit_intercept)
    factor, first_coef, first_intercept = _factor(data)
    (coef, coef_low), (intercept, intercept_low) = _refine(data, factor, first_coef, first_intercept)
    if factor.null.shape[1]:
        # the least norm in the data's units, where coef_j is coef_j · 2**(f - e_j): 2**(-e_j) up to a common factor,
        # here 2**min(e) (2**-e_j itself overflows for a column of subnormal numbers, e_j < -1023)
        exponents = data.x_exponents
        removed = _minimum_norm(coef, _null_coef(factor, X.shape[1]), np.ldexp(1.0, exponents.min() - exponents))
        coef, coef_low = _add(coef, coef_low, -removed)
        intercept, intercept_low = _add(intercept, intercept_low, factor.centre @ removed)  # (b' stays)
    unscaled_coef, unscaled_intercept = data.unscaled(coef + coef_low, intercept + intercept_low)
    parameters = (coef, coef_low), (intercept, intercept_low)
    return LeastSquares(
        unscaled_coef, unscaled_intercept, len(factor.sigma), factor.dependent, data, factor, *parameters
    )


def residuals(X: np.ndarray, y: np.ndarray, coef: np.ndarray, intercept: Any) -> np.ndarray:
    """y - intercept - X @ coef for checked float64 data, each entry rounded once from double-double (not
    from a float64 sum of terms that may be far larger than it): X (n, d), y (n,), coef (d,), intercept a float."""
    data = _Data.scaled(X, y[:, None], None, 0.0, True)
    # the parameters in the data's units: coef_j · 2**(e_j - f) and intercept · 2**(-f), exactly
    coef = np.ldexp(np.asarray(coef, np.float64), data.x_exponents - data.y_exponents[0])[:, None]
    intercept = np.ldexp(np.float64(intercept), -data.y_exponents)
    return np.ldexp(_residuals(data, (coef, 0 * coef), (intercept, 0 * intercept))[:, 0], data.y_exponents[0])


def design_rank(X: np.ndarray, fit_intercept: bool = True, sample_weight: np.ndarray | None = None) -> tuple[int, list]:
    """The rank of the design [1 X] ([X] without an intercept; rows weighted by √w) as `ols` decides it,
    after centring and scaling (`rank_tolerance`), and the columns of X that are combinations of the columns
    before them. X (n, d) float64, checked."""
    factor, _, _ = _factor(_Data.scaled(X, np.zeros((len(X), 1)), sample_weight, 0.0, fit_intercept))
    return len(factor.sigma), factor.dependent


def _shaped(coef: np.ndarray, intercept: np.ndarray, y_ndim: int) -> tuple[np.ndarray, Any]:
    """(coef (d,), intercept a float) for a 1-D y; (coef (d, k), intercept (k,)) for a 2-D one."""
    if y_ndim == 1:
        return coef[:, 0], float(intercept[0])
    return coef, intercept


def _least_squares(
    caller: str, X: Any, y: Any, l2: Any, fit_intercept: bool, sample_weight: Any = None
) -> tuple[np.ndarray, Any]:
    if as_source(X, y).reads_blocks:
        return _least_squares_in_one_pass(caller, X, y, l2, fit_intercept, sample_weight)
    X, y = _validate(caller, X, y)
    l2 = _check_l2(caller, l2)
    w = None if sample_weight is None else check_sample_weight(f"{caller}: sample_weight", sample_weight, len(X))
    answer = least_squares(X, y[:, None] if y.ndim == 1 else y, l2, fit_intercept, w)
    return _shaped(answer.coef, answer.intercept, y.ndim)


def _least_squares_in_one_pass(
    caller: str, X: Any, y: Any, l2: Any, fit_intercept: bool, sample_weight: Any = None
) -> tuple[np.ndarray, Any]:
    """`_least_squares` for a memory map or Dask arrays: one pass over the blocks, which builds the
    triangular factor R of [X y] centred on its (weighted) mean, and that mean (`blockwise.Factor`: each
    block centred on its own, merged by Chan's update), then the scaling and rank decision of the in-memory
    path on that factor, and back substitution (the minimum-norm solve where the rank falls short)."""
    X, y = _validate(caller, X, y, blocks=True)
    l2 = _check_l2(caller, l2)
    n, d = X.shape
    k = y.shape[1] if y.ndim == 2 else 1
    w = None if sample_weight is None else check_sample_weight(f"{caller}: sample_weight", sample_weight, n)
    found = as_source(X, y, w=w).triangular_factor(fit_intercept, caller)  # a 1-D y's blocks are read as one column
    R = found.centred
    x_mean, y_mean = (found.mean[:d], found.mean[d:]) if fit_intercept else (np.zeros(d), np.zeros(k))
    # |[Xc yc] (coef, -1)|² = |R (coef, -1)|²: the same problem on R, scaled and decided as in memory
    norms = np.linalg.norm(R[:, :d], axis=0)
    scale = np.ldexp(1.0, np.frexp(np.where(norms > 0, norms, 1.0))[1])
    stacked = np.hstack([R[:, :d] / scale, R[:, d:]])
    if l2 > 0:  # the design stacked over sqrt(n·k·l2)·I, as in memory
        penalty = np.hstack([np.diag(np.sqrt(n * k) * np.sqrt(l2) / scale), np.zeros((d, k))])
        stacked = np.asarray(np.linalg.qr(np.vstack([stacked, penalty]), mode="r"))
    factor, coef = _from_triangular(stacked, d, n, x_mean, scale)
    if factor.null.shape[1]:
        coef = coef - _minimum_norm(coef, _null_coef(factor, d), np.ones(d))
    else:
        # of full rank, the triangle itself solves it: back substitution is componentwise backward stable, and
        # keeps about half a digit that the SVD's rotations lose on well-conditioned designs (issue 26's
        # measurements); LAPACK's LU of an upper-triangular matrix pivots and eliminates nothing, so this is it
        coef = np.linalg.solve(stacked[:d, :d], stacked[:d, d:]) / scale[:, None]
    intercept = y_mean - x_mean @ coef if fit_intercept else np.zeros(k)
    return _shaped(coef, intercept, y.ndim)


def ols(X: Any, y: Any, fit_intercept: bool = True, sample_weight: Any = None) -> tuple[np.ndarray, Any]:
    """Ordinary least squares: the coef and intercept minimising mean((X @ coef + intercept - y)**2)
    (with `sample_weight` (n,), mean(w·(...)**2): weighted least squares, statsmodels' WLS).

    X: (n, d), or (n,) for one feature; y: (n,) or (n, k). Returns coef (d,) and intercept a float
    for a 1-D y, coef (d, k) and intercept (k,) for a 2-D y; float64. The intercept is 0 when
    `fit_intercept=False`. As many correct digits as double precision allows (see the module): the
    centred, scaled design is factored (never XᵀX of the raw data) and the answer refined with
    residuals and gradients computed in double-double. A problem is rank-deficient only when its
    columns are dependent after scaling (`rank_tolerance`); it then gets the minimum-norm coef (of
    the centred problem), as scikit-learn's LinearRegression. Mismatched sample counts, non-finite
    or empty data raise ValueError. A memory map or Dask arrays are read once, a block (a chunk) at
    a time: the QR of the tall, skinny [X y], each block centred on its own mean, reduced to a small
    triangular factor and the mean, then solved (no refinement: as exact as a QR of the centred data).
    """
    return _least_squares("ols", X, y, 0.0, fit_intercept, sample_weight)


def ridge(X: Any, y: Any, l2: float, fit_intercept: bool = True, sample_weight: Any = None) -> tuple[np.ndarray, Any]:
    """Ridge regression: minimises mean((X @ coef + intercept - y)**2) + l2 * sum(coef**2)
    (with `sample_weight` (n,), mean(w·(...)**2) + l2 * sum(coef**2)).

    The intercept is not penalised, so this is the point that gradient descent on
    `mse + l2_penalty` converges to; for a 1-D y it is scikit-learn's `Ridge(alpha=n * l2)`.
    For a 2-D y (n, k) the mean runs over all n·k entries, like the mse loss, so each column gets
    `Ridge(alpha=n * k * l2)`. X: (n, d), or (n,) for one feature; y: (n,) or (n, k); l2 >= 0.
    Returns (coef, intercept) shaped as `ols`'s; `ridge(X, y, 0.0)` is `ols(X, y)`. Solved as `ols`
    is, the penalty a diagonal added to the factor's Gram matrix (d more rows of its QR), never by
    inverting XᵀX + n·k·l2·I of the raw data.
    """
    return _least_squares("ridge", X, y, l2, fit_intercept, sample_weight)


# ----- what gradient descent sees -----


def _hessian_singular_values(caller: str, X: Any, l2: Any, fit_intercept: bool) -> tuple[float, np.ndarray]:
    """(s, σ): the Hessian H = (2/n)·AᵀA + 2·l2·D of mean((X@w + b - y)**2) + l2·sum(w**2) has the
    eigenvalues 2·(s·σ)², largest first (A = [X, 1] with an intercept, else X; D = I on the
    weights, 0 on the bias).

    H = 2·BᵀB with B = [A / sqrt(n); sqrt(l2)·D], so its eigenvalues are 2·σ_B² for the singular
    values σ_B of B. Taking them from B rather than from H keeps the small ones accurate: an
    eigensolver on H cannot resolve eigenvalues below about 1e-16 times the largest. B is first
    divided by its largest entry s, so that σ = σ_B / s lies in [0, sqrt(B.size)]: squaring σ_B
    itself would overflow for features above ~1e154 and underflow below ~1e-154.
    """
    X, _ = _validate(caller, X)
    l2 = _check_l2(caller, l2)
    n, d = X.shape
    A = np.hstack([X, np.ones((n, 1))]) if fit_intercept else X
    B = np.vstack([A / np.sqrt(n), np.sqrt(l2) * np.eye(d, A.shape[1])]) if l2 > 0 else A / np.sqrt(n)
    scale = float(np.abs(B).max())
    if scale == 0:
        return 0.0, np.zeros(A.shape[1])
    sigma = np.linalg.svd(B / scale, compute_uv=False)
    # B may have fewer rows than columns; the eigenvalues it does not reach are 0. A singular
    # value below the rank tolerance of numpy.linalg.matrix_rank is rounding noise: 0 as well.
    sigma = np.concatenate([sigma, np.zeros(A.shape[1] - len(sigma))])
    sigma[sigma <= sigma[0] * max(B.shape) * np.finfo(np.float64).eps] = 0.0
    return scale, sigma


def stable_learning_rate(X: Any, l2: float = 0.0, fit_intercept: bool = True) -> float:
    """The learning-rate bound of full-batch gradient descent on mean((X@w + b - y)**2) + l2·sum(w**2).

    X: (n, d), or (n,) for one feature; y does not matter. Plain gradient descent on this
    quadratic multiplies the error along each eigenvector of the Hessian H by (1 - lr·λ), so it
    converges for every lr strictly below 2/λ_max and diverges above it. H = (2/n)·AᵀA + 2·l2·D,
    with A = [X, 1] when `fit_intercept` (else X) and D = I on the weights, 0 on the bias.
    Returns 2/λ_max (inf when H is zero; 0.0 or inf where 2/λ_max itself is beyond float64's
    range). For one target column; with k targets averaged by the mse loss the data term is
    divided by k as well.
    """
    scale, sigma = _hessian_singular_values("stable_learning_rate", X, l2, fit_intercept)
    if sigma[0] == 0:
        return float("inf")
    # 2/λ_max = 1/(scale·σ_max)², where scale² alone overflows for features beyond ~1e154: 1/σ_max²
    # lies in [1/B.size, 1], and dividing it by scale twice keeps the intermediate between that and
    # the answer, so it leaves float64's range only where the answer does.
    with np.errstate(over="ignore", under="ignore"):
        return float(np.float64(1 / sigma[0] ** 2) / scale / scale)


def hessian_condition_number(X: Any, l2: float = 0.0, fit_intercept: bool = True) -> float:
    """λ_max / λ_min of the Hessian of mean((X@w + b - y)**2) + l2·sum(w**2) (see
    `stable_learning_rate`); inf when it is singular. X: (n, d), or (n,) for one feature.

    At the largest stable learning rate the flattest direction shrinks by only about
    (1 - 2/condition number) per step: unscaled features (x in 0..9999 next to a bias of 1) make
    this number huge and gradient descent crawl; standardising the features brings it near 1.
    """
    _, sigma = _hessian_singular_values("hessian_condition_number", X, l2, fit_intercept)
    if sigma[-1] == 0:
        return float("inf")
    with np.errstate(over="ignore"):  # a ratio beyond 1e154 squares to inf, as it should
        return float((sigma[0] / sigma[-1]) ** 2)
