"""Closed-form linear regression: the optimum that gradient descent should reach, and how fast it can.

`ols` and `ridge` solve the training objective of a linear model exactly,

    mean((X @ coef + intercept - y)**2) + l2 * sum(coef**2)        (the intercept is not penalised)

by least squares on well-behaved matrices: the data are centred (which takes the intercept out of
the problem), and ridge becomes an ordinary least-squares problem on the design stacked over
sqrt(n·l2)·I. Neither forms XᵀX: its condition number is the square of X's, so solving the normal
equations loses twice as many digits as `numpy.linalg.lstsq` (an SVD of X itself) does.

`stable_learning_rate` and `hessian_condition_number` describe the same objective as seen by plain
gradient descent: the largest step that still converges, and how slowly the flattest direction
moves at that step.

Pure NumPy, no other dependency.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tinygrad_lr.checks import as_real_array, as_real_data, check_number, check_sample_weight
from tinygrad_lr.sources import as_source

__all__ = ["hessian_condition_number", "ols", "ridge", "stable_learning_rate"]


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


# ----- the closed form -----


def _least_squares(
    caller: str, X: Any, y: Any, l2: Any, fit_intercept: bool, sample_weight: Any = None
) -> tuple[np.ndarray, Any]:
    if as_source(X, y).reads_blocks:
        return _least_squares_in_one_pass(caller, X, y, l2, fit_intercept, sample_weight)
    X, y = _validate(caller, X, y)
    l2 = _check_l2(caller, l2)
    d = X.shape[1]
    y2 = y[:, None] if y.ndim == 1 else y
    w = None if sample_weight is None else check_sample_weight(f"{caller}: sample_weight", sample_weight, len(X))
    if fit_intercept:
        # At the optimum the (weighted) residual has mean zero, so intercept = y_mean - x_mean @ coef and
        # coef solves the same problem on centred data, with no intercept and no unpenalised column.
        x_mean, y_mean = np.average(X, axis=0, weights=w), np.average(y2, axis=0, weights=w)
        X, y2 = X - x_mean, y2 - y_mean
    if w is not None:
        # mean(w·r²) is the plain mean of the squared residuals of the rows scaled by √w
        root = np.sqrt(w)[:, None]
        X, y2 = root * X, root * y2
    if l2 > 0:
        # mean(r²) + l2·|coef|² = (|r|² + |sqrt(n·k·l2)·coef|²) / (n·k): least squares on the design
        # stacked over sqrt(n·k·l2)·I. The mean runs over all n·k entries of a 2-D y (as the mse
        # loss does), so each target column is a ridge problem with penalty n·k·l2.
        penalty = np.sqrt(y2.size) * np.sqrt(l2)  # not sqrt(n·k·l2): that product could overflow
        X = np.vstack([X, penalty * np.eye(d)])
        y2 = np.vstack([y2, np.zeros((d, y2.shape[1]))])
    # SVD-based: accurate to the condition number of X (never of XᵀX), and on a rank-deficient X
    # the minimum-norm solution.
    coef = np.linalg.lstsq(X, y2, rcond=None)[0]
    intercept = y_mean - x_mean @ coef if fit_intercept else np.zeros(y2.shape[1])
    if y.ndim == 1:
        return coef[:, 0], float(intercept[0])
    return coef, intercept


def _least_squares_in_one_pass(
    caller: str, X: Any, y: Any, l2: Any, fit_intercept: bool, sample_weight: Any = None
) -> tuple[np.ndarray, Any]:
    """`_least_squares` for a memory map or Dask arrays: one pass over the blocks, which builds the
    triangular factor R of A = [1 X y] (RᵀR = AᵀA, the QR of tall-skinny A; of √w·A with weights),
    then a small solve."""
    X, y = _validate(caller, X, y, blocks=True)
    l2 = _check_l2(caller, l2)
    n, d = X.shape
    k = y.shape[1] if y.ndim == 2 else 1
    w = None if sample_weight is None else check_sample_weight(f"{caller}: sample_weight", sample_weight, n)
    R = as_source(X, y, w=w).triangular_factor(fit_intercept, caller)  # a 1-D y's blocks are read as one column
    R = np.vstack([R, np.zeros((R.shape[1] - len(R), R.shape[1]))])  # fewer rows than columns: zero rows
    if fit_intercept:
        # The first column of A is 1 (√w), so R's first row is ±(√n, column sums / √n) (±(√Σw, weighted
        # column sums / √Σw)): the (weighted) column means are its ratios. What remains below and right
        # of it is the factor of the centred [X y] (its Gram matrix is AᵀA less the means' part), so the
        # centred problem needs no second pass.
        means = R[0, 1:] / R[0, 0]
        x_mean, y_mean, R = means[:d], means[d:], R[1:, 1:]
    # |[Xc yc] (coef, -1)|² = |R (coef, -1)|², so coef is least squares on R's top d rows
    design, target = R[:d, :d], R[:d, d:]
    if l2 > 0:  # as in _least_squares: the design stacked over sqrt(n·k·l2)·I
        design = np.vstack([design, np.sqrt(n * k) * np.sqrt(l2) * np.eye(d)])
        target = np.vstack([target, np.zeros((d, k))])
    coef = np.linalg.lstsq(design, target, rcond=None)[0]
    intercept = y_mean - x_mean @ coef if fit_intercept else np.zeros(k)
    if y.ndim == 1:
        return coef[:, 0], float(intercept[0])
    return coef, intercept


def ols(X: Any, y: Any, fit_intercept: bool = True, sample_weight: Any = None) -> tuple[np.ndarray, Any]:
    """Ordinary least squares: the coef and intercept minimising mean((X @ coef + intercept - y)**2)
    (with `sample_weight` (n,), mean(w·(...)**2): weighted least squares, statsmodels' WLS).

    X: (n, d), or (n,) for one feature; y: (n,) or (n, k). Returns coef (d,) and intercept a float
    for a 1-D y, coef (d, k) and intercept (k,) for a 2-D y; float64. The intercept is 0 when
    `fit_intercept=False`. With an intercept the data are centred first; a rank-deficient problem
    gets the minimum-norm coef (of the centred problem), as scikit-learn's LinearRegression.
    Solved by `numpy.linalg.lstsq` (an SVD of X), never by inverting XᵀX, whose condition number
    is the square of X's. Mismatched sample counts, non-finite or empty data raise ValueError.
    A memory map or Dask arrays are read once, a block (a chunk) at a time: the QR of the tall,
    skinny [1 X y] reduced to its small triangular factor, then `lstsq` on that.
    """
    return _least_squares("ols", X, y, 0.0, fit_intercept, sample_weight)


def ridge(X: Any, y: Any, l2: float, fit_intercept: bool = True, sample_weight: Any = None) -> tuple[np.ndarray, Any]:
    """Ridge regression: minimises mean((X @ coef + intercept - y)**2) + l2 * sum(coef**2)
    (with `sample_weight` (n,), mean(w·(...)**2) + l2 * sum(coef**2)).

    The intercept is not penalised, so this is the point that gradient descent on
    `mse + l2_penalty` converges to; for a 1-D y it is scikit-learn's `Ridge(alpha=n * l2)`.
    For a 2-D y (n, k) the mean runs over all n·k entries, like the mse loss, so each column gets
    `Ridge(alpha=n * k * l2)`. X: (n, d), or (n,) for one feature; y: (n,) or (n, k); l2 >= 0.
    Returns (coef, intercept) shaped as `ols`'s; `ridge(X, y, 0.0)` is `ols(X, y)`.
    Solved by `numpy.linalg.lstsq` on centred data stacked over sqrt(n·k·l2)·I — an ordinary
    least-squares problem as well conditioned as X — never by inverting XᵀX + n·k·l2·I, whose
    condition number can be the square of X's.
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
