"""What a regression's numbers are worth: what statsmodels' `OLS(...).fit().summary()` answers.

`ols(X, y)` fits least squares in closed form (`tl.solvers.ols`; weighted with `sample_weight`, as
statsmodels' `WLS`); `summarize(model, X, y)` takes a `Linear` layer trained by the engine as it
is. Both return a `RegressionResults` with statsmodels' names (`params`, `bse`, `tvalues`,
`pvalues`, `conf_int()`, `rsquared`, `fvalue`, `aic`, ...) and a `summary()` table.

`ols` takes its residuals, rank and classical covariance scale·(AᵀWA)⁻¹ from the solver, computed with
its care (`tl.solvers.ols`: double-double residuals, (AᵀWA)⁻¹ refined as the answer is, the rank decided
after scaling). Otherwise the covariance of the coefficients comes from the engine's own Hessian of the
(weighted) mean squared error at the weights, the observed information: for least squares that Hessian is
H = 2/n·AᵀWA, A the design with its column of ones first, so the classical covariance scale·(AᵀWA)⁻¹ is
scale·(2/n)·H⁻¹, scale = SSR/df_resid. A robust one (HC0-HC3, White's and MacKinnon's, with statsmodels'
formulas) is a sandwich of that bread around a meat that is a Hessian too: the one of the loss whose rows
are reweighted by their squared residuals (and leverages), held fixed, ½·∂²/∂θ² Σ cᵢ·rᵢ(θ)² = Σ cᵢ·aᵢaᵢᵀ.

Those Hessians are taken where they lose nothing. The bread's in coordinates φ of the weights, θ = M·φ, in
which the design B = A·M is orthonormal (BᵀWB ≈ I; M from a QR of the centred design, each column scaled by a
power of two): B is formed from the data as given in double-double arithmetic and rounded once
(`tl.solvers.residuals`), so it is A·M to the last bit whatever A's offsets, scales and collinearity, the
engine's Hessian of a design that well conditioned and its inverse are exact to a few ulps, and M carries them
back. The sandwich is the Hessian of the reweighted loss in the coordinates ψ = AᵀWA·θ, whose design is
A·(AᵀWA)⁻¹: each variance a sum of positive terms. Taken on A itself, the Hessian's rounding would cost the
square of the design's condition number in digits (the robust standard errors of a degree-10 polynomial had
none left). The leverages hᵢ of HC2 and HC3 come from B, and 1 - hᵢ, where hᵢ is near 1, from the solver (the
fit of the i-th unit vector: 1 - hᵢ computed as a difference would lose log10(1/(1 - hᵢ)) digits). In `ols`,
the meat's residuals are the solver's, less their projection on the design (the exact answer's residuals have
none). So the robust standard errors of `ols` and of `summarize` at the optimum carry about as many correct
digits as the classical ones (tests/test_accuracy.py measures them against an exact rational oracle). The robust
F-test, a Wald statistic of the slopes, is taken in the orthonormal design's coordinates too (`_wald`): from the
covariance itself it keeps no digit where the design's columns are nearly dependent (tests/test_stats.py measures
it, and the p-values, against the same oracle).

At weights that are not the optimum the same code answers for the weights as they are, and says so.
p-values and quantiles come from SciPy (the `[stats]` extra): t and F for the classical covariance, the
normal distribution for the robust ones, as statsmodels does by default.
"""

from __future__ import annotations

import datetime
import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

try:
    from scipy import stats as distributions
except ImportError as error:
    raise ImportError(f"tinygrad_lr.stats needs SciPy ({error}); pip install 'tinygrad_lr[stats]'") from error

from tinygrad_lr import autograd, checks, losses, solvers
from tinygrad_lr.nn import Linear, Module, Sequential
from tinygrad_lr.tensor import Tensor

__all__ = ["COV_TYPES", "LARGE_CONDITION", "RegressionResults", "ols", "summarize"]

COV_TYPES = ("nonrobust", "HC0", "HC1", "HC2", "HC3")
LARGE_CONDITION = 1000.0  # statsmodels' threshold for its note on multicollinearity
AT_THE_OPTIMUM = 1e-6  # summarize: a gradient norm above this share of the one at zero weights is noted


class RegressionResults:
    """A linear regression's figures, under statsmodels' names; `params` and the arrays beside it
    put the intercept first ("const"), then one entry per feature. See the module for the method."""

    def __init__(
        self,
        X: np.ndarray,
        y: np.ndarray,
        weights: np.ndarray | None,
        coef: np.ndarray,
        intercept: float | None,
        cov_type: str,
        param_names: list[str],
        notes: list[str],
        fit: solvers.LeastSquares | None = None,
    ):
        """`fit`: the closed form's answer, when these are its figures: its residuals and (AᵀWA)⁻¹, solved
        to the answer's accuracy, replace the ones computed here from the weights as they are."""
        n = len(y)
        w = np.ones(n) if weights is None else weights
        self.weighted = weights is not None
        self.k_constant = int(intercept is not None)
        A = np.column_stack([np.ones(n), X]) if self.k_constant else X
        self.params = np.concatenate([[intercept], coef]) if self.k_constant else np.asarray(coef, np.float64)
        self.param_names = param_names
        self.cov_type, self.nobs = cov_type, float(n)
        self.fittedvalues = A @ self.params
        # the residuals rounded once from double-double: y - A·params in float64 would round terms far larger
        # than a residual of a good fit (offsets, ill-conditioned columns) and lose its digits, and the SSR's
        if fit is not None:
            self.resid = fit.residuals()[:, 0]
            rank, self.dependent = fit.rank, fit.dependent
        else:
            self.resid = solvers.residuals(X, y, coef, 0.0 if intercept is None else intercept)
            rank, self.dependent = solvers.design_rank(X, bool(self.k_constant), weights)
        whitened = np.sqrt(w)[:, None] * A
        self.df_model, self.df_resid = float(rank - self.k_constant), float(n - rank)
        self.ssr = float(np.sum(w * self.resid**2))
        # no residual degrees of freedom: the fit passes through every point, and the error's variance is not
        # defined (nan, whether the rounded parameters leave residuals of 1e-17 or exactly 0)
        self.scale = float(np.float64(self.ssr) / self.df_resid) if self.df_resid else math.nan
        # (no rows to spare, or a perfect fit, give nan and inf as statsmodels does, not an error)
        with np.errstate(divide="ignore", invalid="ignore"):
            wald = None
            if fit is not None and cov_type == "nonrobust":
                # the solver's (AᵀWA)⁻¹, refined as its answer is: digits that no float64 inverse keeps
                self._cov = self.scale * fit.inverse_gram()
            else:
                self._cov, wald = self._covariance(X, y, weights, cov_type, rank, fit)
            self._figures(y, w, cov_type, whitened, wald)
        self.notes = notes + self._notes(X, n)

    def _figures(
        self, y: np.ndarray, w: np.ndarray, cov_type: str, whitened: np.ndarray, wald: tuple[float, int] | None
    ) -> None:
        """Every figure past the residuals and the covariance. whitened: √w·A, A the design (the column of
        ones first); wald: the robust Wald statistic of the slopes and its number of restrictions (`_wald`),
        None for the classical covariance."""
        n = len(y)
        self.use_t = cov_type == "nonrobust"
        self.bse = np.sqrt(np.diag(self._cov))
        self.tvalues = self.params / self.bse
        self.pvalues = 2 * self._distribution.sf(np.abs(self.tvalues))

        mean = np.average(y, weights=w)
        tss = float(np.sum(w * (y - mean) ** 2)) if self.k_constant else float(np.sum(w * y**2))
        self.centered_tss = tss
        self.rsquared = float(1 - np.float64(self.ssr) / tss)
        self.rsquared_adj = float(1 - np.float64(n - self.k_constant) / self.df_resid * (1 - self.rsquared))
        self.fvalue, self.f_pvalue = self._f_test(tss, wald)
        self.llf = float(-n / 2 * (np.log(self.ssr) + 1 + math.log(math.pi / (n / 2))) + 0.5 * np.sum(np.log(w)))
        self.aic = -2 * self.llf + 2 * (self.df_model + self.k_constant)
        self.bic = -2 * self.llf + math.log(n) * (self.df_model + self.k_constant)
        singular = np.linalg.svd(whitened, compute_uv=False)
        self.condition_number = float(singular[0] / singular[-1]) if singular[-1] > 0 else math.inf

    def _covariance(
        self,
        X: np.ndarray,
        y: np.ndarray,
        weights: np.ndarray | None,
        cov_type: str,
        rank: int,
        fit: solvers.LeastSquares | None,
    ) -> tuple[np.ndarray, tuple[float, int] | None]:
        """(covariance, wald): the covariance of `params` from the engine's Hessians at them, scale·(AᵀWA)⁻¹, or
        the sandwich (AᵀWA)⁻¹·(Σ wᵢ²·rᵢ²·cᵢ·aᵢaᵢᵀ)·(AᵀWA)⁻¹ of HC0-HC3 (cᵢ = 1, n/df_resid, 1/(1 - hᵢ),
        1/(1 - hᵢ)²); and for the sandwich the Wald statistic of the slopes, from the same pieces (`_wald`; None
        for the classical covariance).

        What the engine contributes: the curvature of its own loss, mse as training minimises it (the mean over
        n, the factor 2, the sample weights as the loss applies them), differentiated twice by autodiff. What
        keeps the digits: the coordinates it differentiates in. First φ, θ = M·φ, whose design B = A·M is
        orthonormal (`_orthonormal_design`): the Hessian 2/n·BᵀWB is near 2/n·I, its rounding and its
        inverse's cost nothing, and M carries it back, (AᵀWA)⁻¹ = M·(BᵀWB)⁻¹·Mᵀ. Then, for the sandwich, ψ =
        AᵀWA·θ, whose design is D = A·(AᵀWA)⁻¹ = B·(BᵀWB)⁻¹·Mᵀ: by the chain rule the Hessian of the loss with
        its rows reweighted, 2/n·Σ vᵢ·aᵢaᵢᵀ with respect to θ, is 2/n·(AᵀWA)⁻¹·(Σ vᵢ·aᵢaᵢᵀ)·(AᵀWA)⁻¹ with
        respect to ψ: the sandwich itself, each of its variances a sum of positive terms vᵢ·dᵢⱼ², none of them
        rounded into another. (The product of the bread, the meat and the bread again, in float64, rounds the
        largest term of the meat into every entry: a row of leverage near 1 weighs 1e7 times the others, and
        the smallest variances kept ten digits.)"""
        n = len(y)
        w = np.ones(n) if weights is None else weights
        M, B = _orthonormal_design(X, w, bool(self.k_constant), rank)
        # the weights in those coordinates, where the engine takes its Hessians (the same at every point, since
        # the loss is quadratic in the weights: the point need not be exact)
        phi = np.linalg.lstsq(M, self.params, rcond=None)[0]
        # (BᵀWB)⁻¹ from the engine's Hessian 2/n·BᵀWB: near I, so that an LU inverse keeps every digit (an SVD's
        # pseudo-inverse, rounding twice more, loses a third of one); B has full column rank by construction
        bread = (2 / n) * np.linalg.inv(_hessian(B, y, w, phi, None))
        if cov_type == "nonrobust":
            return self.scale * (M @ bread @ M.T), None
        resid = self.resid
        if fit is not None:
            # The solver's residuals are y - A·θ at its double-double answer θ, in double-double: off by A·δθ (δθ
            # the answer's own error, a small part of an ulp of θ) and by the double-double rounding, about
            # eps²·|y|. Where the fit is nearly perfect (y exactly linear: residuals of 1e-16·|y|), or at a row of
            # leverage near 1 (whose residual is 1 - h times the others'), that is a large share of them. The
            # exact answer's residuals have no projection on the design (AᵀW·r = 0 at the optimum): taking theirs
            # away, B·(BᵀWB)⁻¹·Mᵀ·AᵀW·r, removes A·δθ, and most of the rounding at such a row (its unit vector
            # nearly lies in the design's span). AᵀW·r, a sum of terms far larger than itself, is taken from the
            # data as given in double-double (`solvers.residuals`, Xᵀ for X); the rest is in float64, its rounding
            # of the correction's size. (Not BᵀW·r: B's own rounding is not orthogonal to r, and BᵀW·r would carry
            # eps·|r|, more than the residual at a row of leverage near 1.)
            weighted = w * resid
            pull = -solvers.residuals(X.T, np.zeros(X.shape[1]), weighted, 0.0)  # XᵀW·r
            if self.k_constant:
                pull = np.concatenate([[math.fsum(weighted)], pull])  # AᵀW·r
            resid = resid - B @ (bread @ (M.T @ pull))
        het = w * resid**2  # the whitened residuals, squared
        if cov_type == "HC1":
            het = het * n / self.df_resid
        transposed = bread @ M.T
        design = B @ transposed  # D, whose row i is dᵢ = (AᵀWA)⁻¹aᵢ
        if cov_type in ("HC2", "HC3"):
            remaining, near, rows = _leverages(X, weights, B, bread, bool(self.k_constant))
            het = het / remaining if cov_type == "HC2" else het / remaining**2
            if rank == len(self.params):  # (the solver's, where the sandwich weighs them most: see `_leverages`)
                design[near] = rows
        psi = np.linalg.lstsq(transposed, phi, rcond=None)[0]  # the weights again: D·ψ = B·φ
        covariance = (n / 2) * _hessian(design, y, w * het, psi, None)  # Σ wᵢ·hetᵢ·dᵢdᵢᵀ
        # A·params less a constant, each entry rounded about once (A·params in float64 would round terms as large as
        # the columns' offsets): the fitted values of the weights as they are (of the exact answer in `ols`, whose
        # residuals have lost their projection on the design above)
        fitted = (y - (np.average(y, weights=w) if self.k_constant else 0.0)) - resid
        return covariance, _wald(B, bread, np.sqrt(w * het), w, fitted, bool(self.k_constant))

    @property
    def _distribution(self) -> Any:
        return distributions.t(self.df_resid) if self.use_t else distributions.norm

    def _f_test(self, tss: float, wald: tuple[float, int] | None) -> tuple[float, float]:
        """The F-statistic that every coefficient but the intercept is 0, and its p-value. wald: the robust Wald
        statistic of those coefficients and its number of restrictions, None for the classical covariance."""
        if self.df_model == 0:
            return math.nan, math.nan
        if wald is None:
            fvalue = float(((tss - self.ssr) / self.df_model) / (np.float64(self.ssr) / self.df_resid))
            return fvalue, float(distributions.f.sf(fvalue, self.df_model, self.df_resid))
        # robust: the Wald statistic of those coefficients under the robust covariance, over their number (as
        # statsmodels' `f_test`, with the F distribution on df_resid degrees of freedom)
        statistic, restrictions = wald
        if restrictions == 0 or not math.isfinite(statistic):
            return math.nan, math.nan
        fvalue = statistic / restrictions
        return fvalue, float(distributions.f.sf(fvalue, restrictions, self.df_resid))

    def _notes(self, X: np.ndarray, n: int) -> list[str]:
        notes = [
            "Standard Errors assume that the covariance matrix of the errors is correctly specified."
            if self.use_t
            else f"Standard Errors are heteroscedasticity robust ({self.cov_type})"
        ]
        if len(X) and np.any(np.ptp(X, axis=0) == 0):
            columns = [self.param_names[self.k_constant + j] for j in np.flatnonzero(np.ptp(X, axis=0) == 0)]
            notes.append(f"The column{'s' if len(columns) > 1 else ''} {', '.join(columns)} is constant.")
        if n < len(self.params):
            notes.append(
                f"There are {n} observations and {len(self.params)} parameters: the fit is not unique and the "
                "standard errors are not defined."
            )
        else:
            constant = set(np.flatnonzero(np.ptp(X, axis=0) == 0)) if len(X) else set()
            columns = [self.param_names[self.k_constant + j] for j in self.dependent if j not in constant]
            if columns:
                rank = self.df_model + self.k_constant
                notes.append(
                    f"The column{'s' if len(columns) > 1 else ''} {', '.join(columns)} "
                    f"{'are' if len(columns) > 1 else 'is a'} linear combination{'s' if len(columns) > 1 else ''} "
                    f"of the columns before {'them' if len(columns) > 1 else 'it'}: the design has rank {rank:.0f} "
                    f"for {len(self.params)} parameters, with each column centred and scaled to unit norm "
                    "(tl.solvers.rank_tolerance); the coefficients are the minimum-norm choice."
                )
        if self.condition_number > LARGE_CONDITION:
            notes.append(
                f"The condition number is large, {self.condition_number:.3g}. This might indicate that there are "
                "strong multicollinearity or other numerical problems."
            )
        return notes

    def cov_params(self) -> np.ndarray:
        """The covariance of `params`: (k, k)."""
        return self._cov.copy()

    def conf_int(self, alpha: float = 0.05) -> np.ndarray:
        """The (1 - alpha) confidence interval of each parameter: (k, 2), lower and upper."""
        alpha = checks.check_number("conf_int: alpha", alpha, low=0.0, high=1.0, low_inclusive=False)
        half = self._distribution.ppf(1 - alpha / 2) * self.bse
        return np.column_stack([self.params - half, self.params + half])

    def summary(self, yname: str = "y", alpha: float = 0.05) -> str:
        """The table statsmodels prints: the fit's figures, the coefficients, the notes."""
        width = 78
        now = datetime.datetime.now()
        left = [
            ("Dep. Variable:", yname),
            ("Model:", "WLS" if self.weighted else "OLS"),
            ("Method:", "Least Squares"),
            ("Date:", now.strftime("%a, %d %b %Y")),
            ("Time:", now.strftime("%H:%M:%S")),
            ("No. Observations:", f"{self.nobs:.0f}"),
            ("Df Residuals:", f"{self.df_resid:.0f}"),
            ("Df Model:", f"{self.df_model:.0f}"),
            ("Covariance Type:", self.cov_type),
        ]
        right = [
            ("R-squared:", f"{self.rsquared:.3f}"),
            ("Adj. R-squared:", f"{self.rsquared_adj:.3f}"),
            ("F-statistic:", _short(self.fvalue)),
            ("Prob (F-statistic):", f"{self.f_pvalue:.3g}"),
            ("Log-Likelihood:", _short(self.llf)),
            ("AIC:", _short(self.aic)),
            ("BIC:", _short(self.bic)),
            ("", ""),
            ("", ""),
        ]
        title = f"{'WLS' if self.weighted else 'OLS'} Regression Results"
        lines = [title.center(width), "=" * width]
        for (a, b), (c, d) in zip(left, right):
            lines.append(f"{a:<21}{b:>17}   {c:<21}{d:>16}".rstrip())
        lines.append("=" * width)
        stat = "t" if self.use_t else "z"
        low, high = f"[{alpha / 2:g}", f"{1 - alpha / 2:g}]"
        lines.append(f"{'':<14}{'coef':>10}{'std err':>11}{stat:>11}{f'P>|{stat}|':>11}{low:>11}{high:>11}")
        lines.append("-" * width)
        for name, (coef, *rest) in zip(self.param_names, self._rows(alpha)):
            lines.append(f"{name[:14]:<14}{coef:>10}" + "".join(f" {value:>10}" for value in rest))
        lines.append("=" * width)
        lines.append("Notes:")
        lines += [f"[{i}] {note}" for i, note in enumerate(self.notes, start=1)]
        return "\n".join(lines)

    def _rows(self, alpha: float) -> list[list[str]]:
        interval = self.conf_int(alpha)
        return [
            [_coefficient(c), *(_cell(value) for value in (s, t, p, lo, hi))]
            for c, s, t, p, (lo, hi) in zip(self.params, self.bse, self.tvalues, self.pvalues, interval)
        ]


def _short(value: float) -> str:
    """A figure of the header in about six characters, as statsmodels writes them."""
    return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.3e}"


def _cell(value: float) -> str:
    """A figure of the coefficients' table past the coefficient: three decimals while that fits its ten
    characters, else scientific notation."""
    return f"{value:.3f}" if abs(value) < 1e5 else f"{value:.3e}"


def _coefficient(value: float) -> str:
    """A coefficient in its ten characters: four decimals from 1e-4 to 1e4, else scientific notation."""
    return f"{value:.4f}" if 1e-4 <= abs(value) < 1e4 or value == 0 else f"{value:.3e}"


def _orthonormal_design(X: np.ndarray, w: np.ndarray, fit_intercept: bool, rank: int) -> tuple[np.ndarray, np.ndarray]:
    """(M, B): coordinates φ of the weights, θ = M·φ (M (p, r), r = rank; θ the intercept first), in which the
    design is orthonormal, and that design B = A·M (n, r), A = [1 X] ([X] without an intercept).

    M comes from a QR of the design centred about its (weighted) mean row, rows weighted by √w, each column
    divided by a power of two near its norm (as the solver's factor): R⁻¹ makes those columns orthonormal, up
    to the factor's rounding (condition number times eps), which only leaves BᵀWB a little off I and costs
    no digit, because B is formed from the data as given and M as it is, in double-double, and rounded once:
    A·M exactly, whatever A's offsets, scales and near-dependences. Dependent directions (beyond the rank) are
    left out: the covariance is then a pseudo-inverse's, in the centred and scaled coordinates."""
    n, d = X.shape
    centre = np.average(X, axis=0, weights=w) if fit_intercept else np.zeros(d)
    centred = np.column_stack([np.ones(n), X - centre]) if fit_intercept else X.copy()
    centred *= np.sqrt(w)[:, None]
    norms = np.linalg.norm(centred, axis=0)
    scale = np.ldexp(1.0, np.frexp(np.where(norms > 0, norms, 1.0))[1])
    _, sigma, rows = np.linalg.svd(np.linalg.qr(centred / scale, mode="r"))
    rank = min(rank, int(np.sum(sigma > 0)))
    M = rows[:rank].T / sigma[:rank] / scale[:, None]
    if fit_intercept:  # from (b', coef), b' the intercept at the centre, to (b, coef): b = b' - centre·coef
        M[0] -= centre @ M[1:]
    B = np.empty((n, rank))
    zeros = np.zeros(n)
    for j in range(rank):  # A·M's column j, as 0 - intercept - X·coef with (intercept, coef) = -M's column j
        coef, intercept = (M[1:, j], M[0, j]) if fit_intercept else (M[:, j], 0.0)
        B[:, j] = solvers.residuals(X, zeros, -coef, -intercept)
    return M, B


def _leverages(
    X: np.ndarray, weights: np.ndarray | None, B: np.ndarray, bread: np.ndarray, fit_intercept: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(1 - h (n,), near (q,), rows (q, p)) for the leverages hᵢ = wᵢ·aᵢᵀ(AᵀWA)⁻¹aᵢ = wᵢ·bᵢᵀ(BᵀWB)⁻¹bᵢ (bread:
    (BᵀWB)⁻¹): the rows `near` where hᵢ > 1/2, and there (AᵀWA)⁻¹aᵢ from the solver (the intercept first).

    From B, well conditioned, each hᵢ is within a few ulps of the exact one, but 1 - hᵢ, where hᵢ is near 1,
    is the difference of two nearly equal numbers and has lost log10(1/(1 - hᵢ)) digits (HC3 divides by its
    square). There it comes from the solver instead: ρ = eᵢ - A·(AᵀWA)⁻¹AᵀW·eᵢ, the residuals of the weighted
    least-squares fit of the i-th unit vector, has ρᵢ = 1 - hᵢ, and also ρᵀWρ = wᵢ·(1 - hᵢ), since I - H
    (H = A(AᵀWA)⁻¹AᵀW) is a projection. That sum of squares is what is taken: the solver's residuals are off
    by A·δθ, δθ the error of its answer, which is orthogonal to ρ (AᵀWρ = 0), so that it enters the sum only
    squared: 1 - hᵢ keeps its relative precision, however near 1 hᵢ is (ρᵢ itself would keep eps/(1 - hᵢ)
    of it). The same fit's coefficients are wᵢ·(AᵀWA)⁻¹aᵢ, each exact to its own last digit: the rows that
    the sandwich weighs by 1/(1 - hᵢ) or its square. Those rows are at most twice the rank (the leverages
    add up to it): one more solve, of that many targets."""
    n = len(X)
    w = np.ones(n) if weights is None else weights
    leverage = w * np.einsum("ij,jk,ik->i", B, bread, B)
    remaining = 1 - leverage
    near = np.flatnonzero(leverage > 0.5)
    rows = np.empty((0, B.shape[1]))
    if len(near):
        units = np.zeros((n, len(near)))
        units[near, np.arange(len(near))] = 1.0
        fit = solvers.least_squares(X, units, fit_intercept=fit_intercept, sample_weight=weights)
        remaining[near] = np.sum(w[:, None] * fit.residuals() ** 2, axis=0) / w[near]
        rows = (np.vstack([fit.intercept, fit.coef]) if fit_intercept else fit.coef).T / w[near, None]
    return remaining, near, rows


def _wald(
    B: np.ndarray, bread: np.ndarray, root: np.ndarray, w: np.ndarray, fitted: np.ndarray, fit_intercept: bool
) -> tuple[float, int]:
    """(bᵀC⁺b, q): the Wald statistic that the slopes b (the coefficients but the intercept; all of them without
    one) are 0 under their robust covariance C, and its number of restrictions q, C's rank, from the sandwich's
    pieces in the coordinates φ of `_orthonormal_design`, θ = M·φ. B (n, r): the orthonormal design A·M; bread
    (r, r): (BᵀWB)⁻¹; root (n,): √(wᵢ·hetᵢ), the meat's weights' roots; fitted (n,): A·θ (less any constant
    where there is an intercept).

    Taken from C, the statistic is as ill-conditioned as the design: C's correlations reach a condition number
    κ of 1e17 on a degree-10 polynomial, and bᵀC⁻¹b from C's eigenvalues (statsmodels' pseudo-inverse) keeps
    eps·κ of relative precision, from C's square root eps·√κ. In φ it is not: φ's covariance K = ΨᵀΨ, Ψ's rows
    √(wᵢ·hetᵢ)·(BᵀWB)⁻¹bᵢ, is as well conditioned as the meat's weights make it. b = 0 says that φ lies along
    g = (BᵀWB)⁻¹BᵀW·1, the coordinates of the column of ones (b = M_s·φ, M_s M's rows of the slopes, whose null
    space g is); with N an orthonormal basis of g's complement, M_s = L·Nᵀ for L of full column rank, and a Wald
    statistic does not change when its restriction is multiplied by such a matrix: bᵀC⁺b = zᵀ(NᵀKN)⁻¹z, z = Nᵀφ.
    φ comes from the fitted values, φ = (BᵀWB)⁻¹BᵀW·A·θ (a constant added to A·θ moves it along g only), not
    from θ through M's inverse; and (NᵀKN)⁻¹ from the SVD of Ψ·N, not from NᵀKN, as lstsq works on A and not
    on AᵀA. The restrictions are the design's rank less the intercept (the solver's, decided after scaling: a
    dependent column leaves C singular, and statsmodels' Wald test takes its rank too), less any direction that
    numpy's matrix_rank would call 0 in Ψ·N (a meat of too few nonzero residuals)."""
    if len(bread) <= fit_intercept or not (np.all(np.isfinite(root)) and np.all(np.isfinite(fitted))):
        return math.nan, 0
    coordinates = bread @ (B.T @ (w * fitted))  # φ
    basis = np.eye(len(bread))
    if fit_intercept:  # N: the last r - 1 columns of a complete QR of g
        basis = np.linalg.qr((bread @ (B.T @ w))[:, None], mode="complete")[0][:, 1:]
    factor = (root[:, None] * (B @ bread)) @ basis  # Ψ·N, whose Gram NᵀKN is z's covariance
    size = np.linalg.norm(factor, axis=0)  # (in its columns' own scale: a pseudo-inverse's cut is relative)
    size = np.where(size > 0, size, 1.0)
    _, singular, rows = np.linalg.svd(factor / size, full_matrices=False)
    kept = singular > singular[0] * max(factor.shape) * np.finfo(np.float64).eps
    scaled = rows[kept] @ (basis.T @ coordinates / size) / singular[kept]
    return float(scaled @ scaled), int(np.count_nonzero(kept))


def _parameters(coef: np.ndarray, intercept: float | None) -> list[Tensor]:
    """The weights as Tensors to differentiate by, float64: the intercept first when there is one, then coef."""
    coef_tensor = Tensor(np.asarray(coef, np.float64), requires_grad=True)
    return [coef_tensor] if intercept is None else [Tensor(np.float64(intercept), requires_grad=True), coef_tensor]


def _objective(X: np.ndarray, y: np.ndarray, w: np.ndarray) -> Callable[..., Tensor]:
    """fit's weighted mean squared error, mean(w·(X @ coef + intercept - y)²), as a function of
    `_parameters`' Tensors."""
    x = Tensor(X)

    def objective(*params: Tensor) -> Tensor:
        pred = x @ params[-1] + params[0] if len(params) == 2 else x @ params[0]
        return losses.mse(pred, y, sample_weight=w)

    return objective


def _hessian(X: np.ndarray, y: np.ndarray, w: np.ndarray, coef: np.ndarray, intercept: float | None) -> np.ndarray:
    """The engine's Hessian of `_objective` at (coef, intercept), the intercept's row and column first: (k, k)."""
    inputs = _parameters(coef, intercept)
    blocks = autograd.hessian(_objective(X, y, w), *inputs)
    if len(inputs) == 1:
        return np.asarray(blocks.data, np.float64).reshape(len(coef), len(coef))
    sizes = [1, len(coef)]
    return np.block([[np.asarray(blocks[i][j].data).reshape(sizes[i], sizes[j]) for j in range(2)] for i in range(2)])


def _inputs(caller: str, X: Any, y: Any, sample_weight: Any, cov_type: str) -> tuple:
    X = checks.as_real_array(f"{caller}: X", X)
    X = X.reshape(-1, 1) if X.ndim == 1 else X
    y = checks.as_real_array(f"{caller}: y", y)
    if X.ndim != 2 or y.ndim != 1 or len(X) != len(y):
        raise ValueError(
            f"{caller}: X must be (n, d) or (n,) and y (n,) for the same n samples; got X {X.shape} and y {y.shape}"
        )
    if len(y) == 0:
        raise ValueError(f"{caller}: no samples (X has shape {X.shape}); at least one is needed")
    if cov_type not in COV_TYPES:
        raise ValueError(f"{caller}: cov_type must be one of {', '.join(COV_TYPES)}; got {cov_type!r}")
    weights = None
    if sample_weight is not None:  # (> 0: the log-likelihood takes their logarithms, as statsmodels' WLS)
        weights = checks.check_sample_weight(f"{caller}: sample_weight", sample_weight, len(y), positive=True)
    return X, y, weights


def _names(feature_names: Any, X: Any, d: int, intercept: bool) -> list[str]:
    names = list(feature_names) if feature_names is not None else None
    if names is None and hasattr(X, "columns"):
        names = [str(c) for c in X.columns]
    if names is None:
        names = [f"x{j + 1}" for j in range(d)]
    if len(names) != d:
        raise ValueError(f"feature_names: {len(names)} names for {d} features")
    return (["const"] if intercept else []) + [str(name) for name in names]


def ols(
    X: Any,
    y: Any,
    fit_intercept: bool = True,
    sample_weight: Any = None,
    cov_type: str = "nonrobust",
    feature_names: Any = None,
) -> RegressionResults:
    """Least squares in closed form and what its numbers are worth: statsmodels' `OLS(y, add_constant(X))`
    (`WLS` with `sample_weight`). X: (n, d) or (n,), y: (n,)."""
    data, target, weights = _inputs("stats.ols", X, y, sample_weight, cov_type)
    if data.shape[1] == 0 and not fit_intercept:
        raise ValueError(
            f"stats.ols: X has no features (shape {data.shape}) and fit_intercept=False: "
            "there is no parameter to estimate"
        )
    fit = solvers.least_squares(data, target[:, None], fit_intercept=fit_intercept, sample_weight=weights)
    intercept = float(fit.intercept[0]) if fit_intercept else None
    names = _names(feature_names, X, data.shape[1], fit_intercept)
    return RegressionResults(data, target, weights, fit.coef[:, 0], intercept, cov_type, names, [], fit)


def summarize(
    model: Module, X: Any, y: Any, sample_weight: Any = None, cov_type: str = "nonrobust", feature_names: Any = None
) -> RegressionResults:
    """What the numbers of a trained single-output `Linear` (or a `Sequential` of one) are worth, at its
    weights as they are. A warning, and a note in the summary, when they are not the optimum."""
    layer = model.layers[0] if isinstance(model, Sequential) and len(model.layers) == 1 else model
    if not isinstance(layer, Linear) or layer.out_features != 1:
        raise TypeError(
            f"stats.summarize: model must be a Linear layer of one output (or a Sequential of just one); got {model!r}"
        )
    data, target, weights = _inputs("stats.summarize", X, y, sample_weight, cov_type)
    if data.shape[1] != layer.in_features:
        raise ValueError(f"stats.summarize: X has {data.shape[1]} features; the layer takes {layer.in_features}")
    coef = layer.weight.data[:, 0].astype(np.float64)
    intercept = None if layer.bias is None else float(layer.bias.data[0])
    notes = []
    w = np.ones(len(target)) if weights is None else weights
    gradient = np.linalg.norm(_gradient(data, target, w, coef, intercept))
    start = np.linalg.norm(_gradient(data, target, w, np.zeros_like(coef), None if intercept is None else 0.0))
    if gradient > AT_THE_OPTIMUM * start:
        message = (
            f"the weights are not at the least-squares optimum: the gradient of the mean squared error there has "
            f"norm {gradient:.3g} ({gradient / start:.2g} of its norm at zero weights); the figures describe "
            "these weights, not the best fit"
        )
        warnings.warn(f"stats.summarize: {message}", RuntimeWarning, stacklevel=2)
        notes.append(message[0].upper() + message[1:] + ".")
    names = _names(feature_names, X, data.shape[1], intercept is not None)
    return RegressionResults(data, target, weights, coef, intercept, cov_type, names, notes)


def _gradient(X: np.ndarray, y: np.ndarray, w: np.ndarray, coef: np.ndarray, intercept: float | None) -> np.ndarray:
    """The engine's gradient of `_objective` at (coef, intercept), the intercept's part first."""
    params = _parameters(coef, intercept)
    return np.concatenate([np.ravel(g.data) for g in autograd.grad(_objective(X, y, w)(*params), params)])
