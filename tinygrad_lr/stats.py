"""What a regression's numbers are worth: what statsmodels' `OLS(...).fit().summary()` answers.

`ols(X, y)` fits least squares in closed form (`tl.solvers.ols`; weighted with `sample_weight`, as
statsmodels' `WLS`); `summarize(model, X, y)` takes a `Linear` layer trained by the engine as it
is. Both return a `RegressionResults` with statsmodels' names (`params`, `bse`, `tvalues`,
`pvalues`, `conf_int()`, `rsquared`, `fvalue`, `aic`, ...) and a `summary()` table.

`ols` takes its residuals, rank and classical covariance scale·(AᵀWA)⁻¹ from the solver, computed with
its care (`tl.solvers.ols`: double-double residuals, (AᵀWA)⁻¹ refined as the answer is, the rank decided
after scaling). Otherwise the covariance of the coefficients comes from the engine's own Hessian of the
(weighted) mean squared error at the weights, the observed information. For least squares that Hessian is
H = 2/n·AᵀWA, A the design with its column of ones first, so the classical covariance
scale·(AᵀWA)⁻¹ is scale·(2/n)·H⁻¹, scale = SSR/df_resid. (H is taken about the mean row and
inverted with its diagonal scaled to 1, which keeps the digits that offsets and scales would cost.)
A robust one (HC0-HC3, White's and MacKinnon's) is a sandwich of that bread around a meat that is a
Hessian too: the one of the loss whose rows are reweighted by their squared residuals, held fixed,
½·∂²/∂θ² Σ cᵢ·rᵢ(θ)² = Σ cᵢ·aᵢaᵢᵀ. At weights that are not the optimum the same code answers for
the weights as they are, and says so. p-values and quantiles come from SciPy (the `[stats]`
extra): t and F for the classical covariance, the normal distribution for the robust ones, as
statsmodels does by default.
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
        # (no rows to spare, or a perfect fit, give nan and inf as statsmodels does, not an error)
        with np.errstate(divide="ignore", invalid="ignore"):
            inverse = fit.inverse_gram() if fit is not None and cov_type == "nonrobust" else None
            self._figures(X, y, w, coef, intercept, cov_type, whitened, inverse)
        self.notes = notes + self._notes(X, n)

    def _figures(
        self,
        X: np.ndarray,
        y: np.ndarray,
        w: np.ndarray,
        coef: np.ndarray,
        intercept: float | None,
        cov_type: str,
        whitened: np.ndarray,
        inverse: np.ndarray | None,
    ) -> None:
        """Every figure past the residuals. whitened: √w·A, A the design (the column of ones first); inverse:
        (AᵀWA)⁻¹ from the solver, or None to take it from the engine's Hessian."""
        n = len(y)
        # no residual degrees of freedom: the fit passes through every point, and the error's variance is not
        # defined (nan, whether the rounded parameters leave residuals of 1e-17 or exactly 0)
        self.scale = float(np.float64(self.ssr) / self.df_resid) if self.df_resid else math.nan

        if inverse is not None:
            # the solver's (AᵀWA)⁻¹, refined as its answer is, keeps digits that inverting a float64 Hessian cannot:
            # the Hessian's own rounding costs its condition number's worth of them, the square of the design's
            self._cov = self.scale * inverse
        else:
            self._cov = self._covariance(X, w, coef, intercept, cov_type, y)
        self.use_t = cov_type == "nonrobust"
        self.bse = np.sqrt(np.diag(self._cov))
        with np.errstate(divide="ignore", invalid="ignore"):
            self.tvalues = self.params / self.bse
        self.pvalues = 2 * self._distribution.sf(np.abs(self.tvalues))

        mean = np.average(y, weights=w)
        tss = float(np.sum(w * (y - mean) ** 2)) if self.k_constant else float(np.sum(w * y**2))
        self.centered_tss = tss
        self.rsquared = float(1 - np.float64(self.ssr) / tss)
        self.rsquared_adj = float(1 - np.float64(n - self.k_constant) / self.df_resid * (1 - self.rsquared))
        self.fvalue, self.f_pvalue = self._f_test(tss)
        self.llf = float(-n / 2 * (np.log(self.ssr) + 1 + math.log(math.pi / (n / 2))) + 0.5 * np.sum(np.log(w)))
        self.aic = -2 * self.llf + 2 * (self.df_model + self.k_constant)
        self.bic = -2 * self.llf + math.log(n) * (self.df_model + self.k_constant)
        singular = np.linalg.svd(whitened, compute_uv=False)
        self.condition_number = float(singular[0] / singular[-1]) if singular[-1] > 0 else math.inf

    def _covariance(
        self, X: np.ndarray, w: np.ndarray, coef: np.ndarray, intercept: float | None, cov_type: str, y: np.ndarray
    ) -> np.ndarray:
        """The covariance of `params` from the engine's Hessian at them (a sandwich for the robust types)."""
        n = len(y)
        # The Hessian is taken where it is well conditioned: about the (weighted) mean row, whose prediction
        # becomes the intercept (b' = b + x̄·coef, the same function of the same weights), and each parameter
        # scaled to a unit diagonal. Inverting 2/n·AᵀWA itself would lose digits to the square of the columns'
        # offsets and scales; the covariance is then carried back to (b, coef) by the Jacobian of b = b' - x̄·coef.
        center = np.average(X, axis=0, weights=w) if self.k_constant else np.zeros(X.shape[1])
        centred = X - center
        moved = None if intercept is None else intercept + float(center @ coef)
        normalized = _normalized(_hessian(centred, y, w, coef, moved), n)  # (A'ᵀWA')⁻¹, A' = [1, X - x̄]
        back = np.eye(len(self.params))
        if self.k_constant:
            back[0, 1:] = -center
        if cov_type == "nonrobust":
            cov = self.scale * normalized
        else:
            design = np.column_stack([np.ones(n), centred]) if self.k_constant else centred
            rows = np.sqrt(w)[:, None] * design
            leverage = np.einsum("ij,jk,ik->i", rows, normalized, rows)  # (the same in either coordinates)
            squared = w * self.resid**2  # the whitened residuals, squared
            het = {
                "HC0": squared,
                "HC1": squared * n / self.df_resid,
                "HC2": squared / (1 - leverage),
                "HC3": squared / (1 - leverage) ** 2,
            }[cov_type]
            meat = _hessian(centred, y, w * het, coef, moved) * (n / 2)  # Σ cᵢ·a'ᵢa'ᵢᵀ, cᵢ = wᵢ·hetᵢ
            cov = normalized @ meat @ normalized
        return back @ cov @ back.T

    @property
    def _distribution(self) -> Any:
        return distributions.t(self.df_resid) if self.use_t else distributions.norm

    def _f_test(self, tss: float) -> tuple[float, float]:
        """The F-statistic that every coefficient but the intercept is 0, and its p-value."""
        if self.df_model == 0:
            return math.nan, math.nan
        if self.use_t:
            fvalue = float(((tss - self.ssr) / self.df_model) / (np.float64(self.ssr) / self.df_resid))
            return fvalue, float(distributions.f.sf(fvalue, self.df_model, self.df_resid))
        # robust: the Wald statistic of those coefficients under the robust covariance, over their number
        slopes = self.params[self.k_constant :]
        cov = self._cov[self.k_constant :, self.k_constant :]
        fvalue = float(slopes @ np.linalg.solve(cov, slopes)) / len(slopes)
        return fvalue, float(distributions.f.sf(fvalue, len(slopes), self.df_resid))

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


def _normalized(hessian: np.ndarray, n: int) -> np.ndarray:
    """(AᵀWA)⁻¹ from the Hessian 2/n·AᵀWA, inverted with each parameter scaled to a unit diagonal (a
    pseudo-inverse where it is singular, as statsmodels' pinv)."""
    diagonal = np.diag(hessian)
    scale = 1 / np.sqrt(np.where(diagonal > 0, diagonal, 1.0))
    return (2 / n) * scale[:, None] * np.linalg.pinv(scale[:, None] * hessian * scale[None, :]) * scale[None, :]


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
