"""The closed form against an oracle that knows the answer (issue 26).

Every float64 is a rational number, so the data of a least-squares problem define one exact answer; the
oracle computes it in rational arithmetic (the normal equations, solved in `fractions.Fraction`: exact, so
their condition number costs nothing), and a solver's answer is worth its correct digits,
-log10(|estimate - exact| / |exact|), the worst over its parameters (McCullough's log relative error, as
the NIST StRD problems are scored). A float64 holds 15.95 of them at most.

The designs are drawn (tests/strategies.py): polynomials of degree up to 10 on intervals away from 0 (as
NIST's Wampler and Filip problems), nearly collinear columns, columns of wildly different scales, columns
far from the origin; with and without an intercept, weighted or not. `tl.solvers.ols` must return as many
correct digits as the best of numpy's lstsq, statsmodels (pinv and qr) and scikit-learn on each of them,
and `tl.stats` as many as statsmodels in its standard errors, residual sum of squares and R², its robust
standard errors (HC0-HC3) and what rests on them (t-values, confidence intervals) included; `tl.stats.summarize`
of a model at the optimum agrees with `tl.stats.ols` to the digits the two exact answers share.
"""

import decimal
import math
import tempfile
import warnings
from fractions import Fraction
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy import stats as distributions

import tinygrad_lr as tl
from tests.strategies import accuracy_problems, filip_design

FLOAT64_DIGITS = -math.log10(2.0**-53)  # 15.95: the rounding of an exact answer is off by at most half an ulp
# Past 14 digits, what is left is a few units in the last place, which the rounding of each reference scatters
# from draw to draw; so "as many digits as the best reference" is asked up to 14, and to within 0.3 of a digit
# (a factor of 2 in the error: one more rounding of the answer's own size).
ENOUGH, SLACK = 14.0, 0.3

# ----- the oracle -----


def _integers(M):
    """M (n, c) float64 as Python integers, column by column: M[:, j] = integers[:, j] · 2**exponents[j] exactly."""
    columns, exponents = [], []
    for column in np.asarray(M, np.float64).T:
        ratios = [float(value).as_integer_ratio() for value in column]  # (each denominator a power of two)
        shift = max(denominator.bit_length() - 1 for _, denominator in ratios)
        columns.append([numerator << (shift - denominator.bit_length() + 1) for numerator, denominator in ratios])
        exponents.append(-shift)
    return np.array(columns, dtype=object).T, exponents


def _gauss_jordan(G, right):
    """G⁻¹·right for Fraction matrices G (p, p) and right (p, m), exactly."""
    p = len(G)
    rows = [list(G[i]) + list(right[i]) for i in range(p)]
    for column in range(p):
        pivot = next(i for i in range(column, p) if rows[i][column] != 0)
        rows[column], rows[pivot] = rows[pivot], rows[column]
        inverse = 1 / rows[column][column]
        rows[column] = [value * inverse for value in rows[column]]
        for i in range(p):
            if i != column and rows[i][column] != 0:
                factor = rows[i][column]
                rows[i] = [a - factor * b for a, b in zip(rows[i], rows[column])]
    return [row[p:] for row in rows]


def _normal_equations(X, y, fit_intercept, w):
    """AᵀWA and AᵀWy as Fractions, exactly, A = [1 X] (X without an intercept): sums of products of integers."""
    A = np.column_stack([np.ones(len(X)), X]) if fit_intercept else np.asarray(X, np.float64)
    integers, exponents = _integers(np.column_stack([A, y]))
    weights, (weight_exponent,) = _integers(np.ones((len(A), 1)) if w is None else np.asarray(w)[:, None])
    gram = integers.T @ (integers * weights)  # (p + 1, p + 1) Python integers
    p = A.shape[1]

    def entry(i, j):
        return Fraction(int(gram[i, j])) * Fraction(2) ** (exponents[i] + exponents[j] + weight_exponent)

    return [[entry(i, j) for j in range(p)] for i in range(p)], [[entry(i, p)] for i in range(p)]


def exact_least_squares(X, y, fit_intercept=True, w=None, penalty=0.0):
    """The exact minimiser of Σ w·(y - A·θ)² + penalty·|coef|² (the intercept first in θ, not penalised)."""
    G, right = _normal_equations(X, y, fit_intercept, w)
    for j in range(int(fit_intercept), len(G)):
        G[j][j] += Fraction(penalty)
    return [row[0] for row in _gauss_jordan(G, right)]


def exact_statistics(X, y, fit_intercept=True, w=None):
    """θ, SSR, the variances scale·(AᵀWA)⁻¹ of θ (their square roots are the standard errors), R²: exactly."""
    G, right = _normal_equations(X, y, fit_intercept, w)
    p = len(G)
    solved = _gauss_jordan(G, [row + [Fraction(int(i == j)) for j in range(p)] for i, row in enumerate(right)])
    theta, inverse_diagonal = [row[0] for row in solved], [solved[j][1 + j] for j in range(p)]
    A = np.column_stack([np.ones(len(X)), X]) if fit_intercept else np.asarray(X, np.float64)
    weights = [Fraction(1)] * len(A) if w is None else [Fraction(float(v)) for v in w]
    targets = [Fraction(float(v)) for v in y]
    residuals = [t - sum(Fraction(float(a)) * c for a, c in zip(row, theta)) for row, t in zip(A, targets)]
    ssr = sum(v * r * r for v, r in zip(weights, residuals))
    centre = sum(v * t for v, t in zip(weights, targets)) / sum(weights) if fit_intercept else Fraction(0)
    tss = sum(v * (t - centre) ** 2 for v, t in zip(weights, targets))
    return theta, ssr, [ssr / (len(A) - p) * d for d in inverse_diagonal], 1 - ssr / tss


def correct_digits(estimate, exact):
    """The worst over the entries of -log10(|estimate - exact| / |exact|) (of |estimate| where exact is 0),
    between 0 and FLOAT64_DIGITS."""
    worst = FLOAT64_DIGITS
    for value, truth in zip(np.ravel(estimate), exact):
        if not np.isfinite(value):
            return 0.0
        error = abs(Fraction(float(value)) - truth) / (abs(truth) if truth else 1)
        worst = min(worst, FLOAT64_DIGITS if error == 0 else -math.log10(error))
    return max(worst, 0.0)


def correct_digits_of_roots(estimate, exact_squares):
    """`correct_digits` of estimates of the square roots of `exact_squares` (standard errors from variances)."""
    with decimal.localcontext() as context:
        context.prec = 50
        roots = [decimal.Decimal(v.numerator) / decimal.Decimal(v.denominator) for v in exact_squares]
        return correct_digits(estimate, [Fraction(root.sqrt()) for root in roots])


ROBUST = ("HC0", "HC1", "HC2", "HC3")


def _decimal(value):
    """A Fraction as a Decimal of the context's precision: rounded once."""
    return decimal.Decimal(value.numerator) / decimal.Decimal(value.denominator)


def exact_covariances(X, y, fit_intercept=True, w=None, params=None):
    """(θ, {cov_type: covariance}): θ the exact answer (the intercept first), or `params` (float64) when given,
    and the covariances of θ as statsmodels' OLS/WLS defines them, each a (p, p) list of Fractions: "nonrobust",
    SSR/(n - p)·(AᵀWA)⁻¹, and the sandwiches (AᵀWA)⁻¹·(Σ wᵢ²·rᵢ²·cᵢ·aᵢaᵢᵀ)·(AᵀWA)⁻¹ of HC0-HC3, cᵢ = 1, n/(n - p),
    1/(1 - hᵢ), 1/(1 - hᵢ)², with the leverages hᵢ = wᵢ·aᵢᵀ(AᵀWA)⁻¹aᵢ and the residuals r = y - A·θ.

    (AᵀWA)⁻¹, r, bᵢ = (AᵀWA)⁻¹aᵢ and h are rational functions of the data, computed exactly; so is the classical
    covariance. The sandwich's sums of n terms Σ wᵢ²·rᵢ²·cᵢ·bᵢbᵢᵀ are taken in 60-digit decimals, each factor
    rounded once (1 - hᵢ after its exact subtraction): every entry is then within about n·1e-59 of the exact
    one, relative to √(covⱼⱼ·covₖₖ) (the diagonal's terms are positive), 40 digits beyond a float64's. In
    exact fractions those sums of terms of n different denominators take seconds; this, a tenth of one, for
    60 rows and 8 columns."""
    G, right = _normal_equations(X, y, fit_intercept, w)
    p = len(G)
    solved = _gauss_jordan(G, [row + [Fraction(int(i == j)) for j in range(p)] for i, row in enumerate(right)])
    inverse = [row[1:] for row in solved]
    theta = [row[0] for row in solved] if params is None else [Fraction(float(v)) for v in params]
    A = [[Fraction(float(v)) for v in row] for row in _design(X, fit_intercept)]
    n = len(A)
    weights = [Fraction(1)] * n if w is None else [Fraction(float(v)) for v in w]
    residuals = [Fraction(float(t)) - sum(a * c for a, c in zip(row, theta)) for row, t in zip(A, y)]
    ssr = sum(v * r * r for v, r in zip(weights, residuals))
    covariances = {"nonrobust": [[ssr / (n - p) * inverse[i][j] for j in range(p)] for i in range(p)]}
    columns = [[sum(inverse[i][j] * row[j] for j in range(p)) for i in range(p)] for row in A]  # the bᵢ
    remaining = [1 - v * sum(a * b for a, b in zip(row, b_row)) for v, row, b_row in zip(weights, A, columns)]
    with decimal.localcontext() as context:
        context.prec = 60
        b = [[_decimal(value) for value in row] for row in columns]
        squares = [_decimal(v * v * r * r) for v, r in zip(weights, residuals)]
        ones, left = [decimal.Decimal(1)] * n, [_decimal(m) for m in remaining]
        factors = {
            "HC0": ones,
            "HC1": [decimal.Decimal(n) / (n - p)] * n,
            "HC2": [1 / m for m in left],
            "HC3": [1 / (m * m) for m in left],
        }
        for cov_type, factor in factors.items():
            u = [s * c for s, c in zip(squares, factor)]
            covariances[cov_type] = [
                [Fraction(sum(u_i * b_i[j] * b_i[k] for u_i, b_i in zip(u, b))) for k in range(p)] for j in range(p)
            ]
    return theta, covariances


def exact_figures(theta, cov, quantile):
    """What rests on a covariance, exactly (to 50 digits), as Fractions: the standard errors √covⱼⱼ, the t-values
    θⱼ/√covⱼⱼ and the confidence intervals θⱼ ∓ quantile·√covⱼⱼ (quantile the float64 the estimates use, so that
    only the standard errors' digits are measured)."""
    with decimal.localcontext() as context:
        context.prec = 50
        roots = [Fraction(_decimal(cov[j][j]).sqrt()) for j in range(len(theta))]
    return {
        "bse": roots,
        "tvalues": [t / root if root else Fraction(0) for t, root in zip(theta, roots)],
        "conf_int": [(t - Fraction(quantile) * root, t + Fraction(quantile) * root) for t, root in zip(theta, roots)],
    }


def _worst(errors):
    """-log10 of the largest of the relative errors (error, size) given, between 0 and FLOAT64_DIGITS."""
    worst = max((error / size if size else error for error, size in errors), default=Fraction(0))
    return max(min(FLOAT64_DIGITS, -math.log10(worst) if worst else FLOAT64_DIGITS), 0.0)


def _fraction(value):
    return value if isinstance(value, Fraction) else Fraction(float(value))


def figure_digits(figures, exact):
    """Correct digits of the standard errors, t-values and confidence intervals {figure: values} (floats, or
    Fractions) against `exact_figures`: each entry relative to itself, an interval's ends relative to the larger
    of the two (an end near 0 is the difference of the coefficient and a multiple of its standard error)."""
    digits = {}
    for name in ("bse", "tvalues", "conf_int"):
        values = [tuple(pair) for pair in figures[name]] if name == "conf_int" else list(np.ravel(figures[name]))
        if not np.all(np.isfinite(np.asarray(values, np.float64))):
            digits[name] = 0.0
        elif name == "conf_int":
            digits[name] = _worst(
                (max(abs(_fraction(lo) - a), abs(_fraction(hi) - b)), max(abs(a), abs(b)))
                for (lo, hi), (a, b) in zip(values, exact[name])
            )
        else:
            digits[name] = _worst((abs(_fraction(v) - t), abs(t)) for v, t in zip(values, exact[name]))
    return digits


def figures_of(results, alpha=0.05):
    """{figure: values} of a tl.stats or statsmodels results object."""
    return {"bse": results.bse, "tvalues": results.tvalues, "conf_int": results.conf_int(alpha)}


def small(X, y, w, rows=60, columns=8):
    """A drawn design cut to at most `rows` rows, evenly spread (a polynomial keeps its interval), and its first
    `columns` columns, with its targets and weights: a size where the exact sandwich is a matter of 0.1 s."""
    keep = np.unique(np.linspace(0, len(X) - 1, min(len(X), rows)).round().astype(int))
    return X[keep, :columns], y[keep], None if w is None else w[keep]


# ----- the references -----


def _design(X, fit_intercept):
    return np.column_stack([np.ones(len(X)), X]) if fit_intercept else X


def _statsmodels(X, y, w, fit_intercept, method, cov_type="nonrobust"):
    import statsmodels.api as sm

    model = sm.OLS(y, _design(X, fit_intercept)) if w is None else sm.WLS(y, _design(X, fit_intercept), weights=w)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            return model.fit(method=method, cov_type=cov_type)
        except np.linalg.LinAlgError:  # ("qr" inverts RᵀR for its covariance: a singular one is an error)
            return None


def reference_answers(X, y, w, fit_intercept):
    """θ (the intercept first) from numpy's lstsq, statsmodels' OLS/WLS (pinv and qr) and scikit-learn."""
    from sklearn.linear_model import LinearRegression

    root = np.ones(len(X)) if w is None else np.sqrt(w)
    answers = {"numpy lstsq": np.linalg.lstsq(_design(X, fit_intercept) * root[:, None], y * root, rcond=None)[0]}
    for method in ("pinv", "qr"):
        fit = _statsmodels(X, y, w, fit_intercept, method)
        answers[f"statsmodels {method}"] = np.full(X.shape[1] + fit_intercept, np.nan) if fit is None else fit.params
    sklearn = LinearRegression(fit_intercept=fit_intercept).fit(X, y, sample_weight=w)
    answers["scikit-learn"] = np.append(sklearn.intercept_, sklearn.coef_) if fit_intercept else sklearn.coef_
    return answers


def ols_answer(X, y, w, fit_intercept):
    coef, intercept = tl.solvers.ols(X, y, fit_intercept=fit_intercept, sample_weight=w)
    return np.append(intercept, coef) if fit_intercept else coef


# ----- the arithmetic the answer rests on -----

_moderate = st.floats(1e-100, 1e100).flatmap(lambda v: st.sampled_from([v, -v]))


@settings(max_examples=200, deadline=None)
@given(_moderate, _moderate)
def test_two_sum_and_two_product_are_error_free(a, b):
    # what double-double arithmetic rests on: the rounded result plus the error term is the exact result
    s, e = tl.solvers._two_sum(a, b)
    assert Fraction(s) + Fraction(e) == Fraction(a) + Fraction(b)
    product = a * b
    error = tl.solvers._product_error(a, tl.solvers._split(a), b, tl.solvers._split(b), product)
    assert Fraction(product) + Fraction(error) == Fraction(a) * Fraction(b)


# ----- the answer -----


@settings(max_examples=40, deadline=None)
@given(accuracy_problems())
def test_ols_has_the_digits_of_the_best_of_numpy_statsmodels_and_scikit_learn(problem):
    family, X, y, w, fit_intercept = problem
    exact = exact_least_squares(X, y, fit_intercept, w)
    ours = correct_digits(ols_answer(X, y, w, fit_intercept), exact)
    theirs = {name: correct_digits(answer, exact) for name, answer in reference_answers(X, y, w, fit_intercept).items()}
    assert ours >= min(max(theirs.values()), ENOUGH) - SLACK, (family, ours, theirs)
    # and in fact all that double precision allows, on every family (their designs are all of full rank)
    assert ours >= ENOUGH, (family, ours, theirs)


@st.composite
def _degree_10_polynomials(draw):
    """[x, ..., x^10] on 20 to 100 points of an interval of width 2 to 10 between -10 and 10, of condition
    number (of [1 X]) 1e8 to 1e15; y a smooth function of x plus noise, so that no degree fits it exactly."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    start, width = draw(st.floats(-10, 0)), draw(st.sampled_from([2.0, 4.0, 6.0, 10.0]))
    x = np.sort(rng.uniform(start, start + width, draw(st.integers(20, 100))))
    X = x[:, None] ** np.arange(1, 11)
    assume(1e8 <= np.linalg.cond(_design(X, True)) <= 1e15)
    return X, np.cos(x) + draw(st.sampled_from([0.0, 1e-6, 1e-2])) * rng.normal(size=len(x))


@settings(max_examples=15, deadline=None)
@given(_degree_10_polynomials())
def test_degree_10_polynomials_up_to_condition_1e15_keep_at_least_7_digits(problem):
    X, y = problem
    assert correct_digits(ols_answer(X, y, None, True), exact_least_squares(X, y)) >= 7


# NIST StRD's Filip problem (Filippelli, NIST): y against x to x^10, 82 rows; the certified values are the exact
# answer of its decimal data, to 15 digits.
FILIP_Y = [
    0.8116, 0.9072, 0.9052, 0.9039, 0.8053, 0.8377, 0.8667, 0.8809, 0.7975, 0.8162, 0.8515, 0.8766, 0.8885, 0.8859,
    0.8959, 0.8913, 0.8959, 0.8971, 0.9021, 0.909, 0.9139, 0.9199, 0.8692, 0.8872, 0.89, 0.891, 0.8977, 0.9035,
    0.9078, 0.7675, 0.7705, 0.7713, 0.7736, 0.7775, 0.7841, 0.7971, 0.8329, 0.8641, 0.8804, 0.7668, 0.7633, 0.7678,
    0.7697, 0.77, 0.7749, 0.7796, 0.7897, 0.8131, 0.8498, 0.8741, 0.8061, 0.846, 0.8751, 0.8856, 0.8919, 0.8934,
    0.894, 0.8957, 0.9047, 0.9129, 0.9209, 0.9219, 0.7739, 0.7681, 0.7665, 0.7703, 0.7702, 0.7761, 0.7809, 0.7961,
    0.8253, 0.8602, 0.8809, 0.8301, 0.8664, 0.8834, 0.8898, 0.8964, 0.8963, 0.9074, 0.9119, 0.9228,
]  # fmt: skip
FILIP_X = [
    -6.860120914, -4.324130045, -4.358625055, -4.358426747, -6.955852379, -6.661145254, -6.355462942, -6.118102026,
    -7.115148017, -6.815308569, -6.519993057, -6.204119983, -5.853871964, -6.109523091, -5.79832982, -5.482672118,
    -5.171791386, -4.851705903, -4.517126416, -4.143573228, -3.709075441, -3.499489089, -6.300769497, -5.953504836,
    -5.642065153, -5.031376979, -4.680685696, -4.329846955, -3.928486195, -8.56735134, -8.363211311, -8.107682739,
    -7.823908741, -7.522878745, -7.218819279, -6.920818754, -6.628932138, -6.323946875, -5.991399828, -8.781464495,
    -8.663140179, -8.473531488, -8.247337057, -7.971428747, -7.676129393, -7.352812702, -7.072065318, -6.774174009,
    -6.478861916, -6.159517513, -6.835647144, -6.53165267, -6.224098421, -5.910094889, -5.598599459, -5.290645224,
    -4.974284616, -4.64454848, -4.290560426, -3.885055584, -3.408378962, -3.13200249, -8.726767166, -8.66695597,
    -8.511026475, -8.165388579, -7.886056648, -7.588043762, -7.283412422, -6.995678626, -6.691862621, -6.392544977,
    -6.067374056, -6.684029655, -6.378719832, -6.065855188, -5.752272167, -5.132414673, -4.811352704, -4.098269308,
    -3.66174277, -3.2644011,
]  # fmt: skip
FILIP_CERTIFIED = [
    "-1467.48961422980", "-2772.17959193342", "-2316.37108160893", "-1127.97394098372", "-354.478233703349",
    "-75.1242017393757", "-10.8753180355343", "-1.06221498588947", "-0.670191154593408E-01",
    "-0.246781078275479E-02", "-0.402962525080404E-04",
]  # fmt: skip


def filip():
    """NIST's Filip data as float64: X (82, 10) = [x, ..., x^10], y (82,), and the certified θ as Fractions."""
    x = np.array(FILIP_X)
    return x[:, None] ** np.arange(1, 11), np.array(FILIP_Y), [Fraction(value) for value in FILIP_CERTIFIED]


def test_nist_filip_is_the_exact_answer_of_its_float64_data_rounded():
    X, y, certified = filip()
    exact = exact_least_squares(X, y)
    ours = ols_answer(X, y, None, True)
    assert correct_digits(ours, exact) >= 15.6  # each parameter within an ulp or so of the exact answer
    # the float64 data are the decimal data rounded, which moves the exact answer itself in its 8th digit: that
    # is as close to the certified values as any float64 solver can come, and where this one is
    limit = correct_digits([float(value) for value in exact], certified)
    assert correct_digits(ours, certified) == pytest.approx(limit, abs=0.05)
    assert correct_digits(ours, certified) > 7
    # numpy's lstsq cuts its singular values at max(n, d)·eps of the largest: Filip's 11th is below, and the
    # minimum-norm answer of rank 10 has no correct digit
    assert np.linalg.lstsq(_design(X, True), y, rcond=None)[2] == 10
    assert correct_digits(reference_answers(X, y, None, True)["numpy lstsq"], exact) < 1


def test_an_intercept_much_smaller_than_the_mean_times_coef_keeps_its_digits():
    # x near 1e5, slope 6 and intercept 1: ȳ - x̄·coef cancels 6e5 against 6e5 - 1, and a coef rounded in its
    # last digit moves the intercept by 1e5 of its own ulps; refined and rounded once, it is the exact answer's
    rng = np.random.default_rng(26)
    x = 1e5 + rng.normal(size=50)
    y = 6 * x + 1 + 1e-3 * rng.normal(size=50)
    exact = exact_least_squares(x[:, None], y)
    coef, intercept = tl.solvers.ols(x, y)
    assert correct_digits([intercept], exact[:1]) >= 15.5 and correct_digits(coef, exact[1:]) >= 15.5


@settings(max_examples=15, deadline=None)
@given(accuracy_problems(), st.floats(-6, 2))
def test_ridge_is_as_exact_as_ols(problem, log_l2):
    family, X, y, w, fit_intercept = problem
    l2 = 10.0**log_l2
    # the objective mean(w·r²) + l2·|coef|², times n: Σ w·r² + n·l2·|coef|²
    exact = exact_least_squares(X, y, fit_intercept, w, penalty=Fraction(len(X)) * Fraction(l2))
    coef, intercept = tl.solvers.ridge(X, y, l2, fit_intercept=fit_intercept, sample_weight=w)
    assert correct_digits(np.append(intercept, coef) if fit_intercept else coef, exact) >= ENOUGH, family


# ----- what the numbers are worth -----


@settings(max_examples=12, deadline=None)
@given(accuracy_problems())
def test_stats_standard_errors_ssr_and_r_squared_have_the_digits_of_statsmodels(problem):
    family, X, y, w, fit_intercept = problem
    _, ssr, variances, rsquared = exact_statistics(X, y, fit_intercept, w)
    ours = tl.stats.ols(X, y, fit_intercept=fit_intercept, sample_weight=w)
    for method in ("pinv", "qr"):
        theirs = _statsmodels(X, y, w, fit_intercept, method)
        for name, exact, digits in [
            ("bse", variances, correct_digits_of_roots),
            ("ssr", [ssr], correct_digits),
            ("rsquared", [rsquared], correct_digits),
        ]:
            mine = digits(np.atleast_1d(getattr(ours, name)), exact)
            with np.errstate(invalid="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # (statsmodels' square roots of negative variances: nan, 0 digits)
                best = 0.0 if theirs is None else digits(np.atleast_1d(getattr(theirs, name)), exact)
            assert mine >= min(best, ENOUGH) - SLACK, (family, name, method, mine, best)
            assert mine >= ENOUGH, (family, name, mine)


# ----- the robust standard errors, and summarize at the optimum -----


def _small_problems():
    """`accuracy_problems` cut to at most 60 rows and 8 columns (`small`): where the exact sandwich is quick."""
    return accuracy_problems().map(lambda problem: (problem[0], *small(*problem[1:4]), problem[4]))


@settings(max_examples=8, deadline=None)
@given(_small_problems())
def test_robust_standard_errors_t_values_and_intervals_have_the_digits_of_statsmodels(problem):
    family, X, y, w, fit_intercept = problem
    theta, covariances = exact_covariances(X, y, fit_intercept, w)
    quantile = distributions.norm.ppf(0.975)  # (robust figures use the normal distribution, as statsmodels')
    for cov_type in ROBUST:
        exact = exact_figures(theta, covariances[cov_type], quantile)
        ours = tl.stats.ols(X, y, fit_intercept=fit_intercept, sample_weight=w, cov_type=cov_type)
        mine = figure_digits(figures_of(ours), exact)
        theirs = []
        for method in ("pinv", "qr"):
            fit = _statsmodels(X, y, w, fit_intercept, method, cov_type)
            with np.errstate(all="ignore"):  # (statsmodels' square roots of negative variances: nan, 0 digits)
                theirs.append({} if fit is None else figure_digits(figures_of(fit), exact))
        for figure, digits in mine.items():
            best = max(reference.get(figure, 0.0) for reference in theirs)
            assert digits >= min(best, ENOUGH) - SLACK, (family, cov_type, figure, digits, best)
            # and as many as the classical standard errors have: all that double precision allows
            assert digits >= ENOUGH, (family, cov_type, figure, digits, theirs)


def _trained_to(params, fit_intercept):
    """A float64 Linear layer whose weights are `params` (the intercept first), as a converged fit leaves them."""
    layer = tl.nn.Linear(len(params) - fit_intercept, 1, bias=fit_intercept, dtype=np.float64)
    layer.set_weights([params[fit_intercept:].reshape(-1, 1)] + ([params[:1]] if fit_intercept else []))
    return layer


@settings(max_examples=5, deadline=None)
@given(_small_problems())
def test_summarize_at_the_optimum_equals_ols_to_the_digits_the_oracle_allows(problem):
    family, X, y, w, fit_intercept = problem
    closed_form = {
        cov_type: tl.stats.ols(X, y, fit_intercept=fit_intercept, sample_weight=w, cov_type=cov_type)
        for cov_type in tl.stats.COV_TYPES
    }
    params = closed_form["nonrobust"].params
    layer = _trained_to(params, fit_intercept)
    # summarize describes the weights as they are: the exact answer rounded, whose residuals (all the more where
    # the fit is nearly perfect) and the figures resting on them are not quite the exact answer's
    theta, at_optimum = exact_covariances(X, y, fit_intercept, w)
    _, at_weights = exact_covariances(X, y, fit_intercept, w, params=params)
    for cov_type, closed in closed_form.items():
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # at the optimum: no warning
            summarized = tl.stats.summarize(layer, X, y, sample_weight=w, cov_type=cov_type)
        robust = cov_type != "nonrobust"
        quantile = distributions.norm.ppf(0.975) if robust else distributions.t.ppf(0.975, summarized.df_resid)
        exact = exact_figures([Fraction(float(v)) for v in params], at_weights[cov_type], quantile)
        # the engine's Hessians, taken on the orthonormal design, keep every digit of the weights' own figures
        digits = figure_digits(figures_of(summarized), exact)
        assert min(digits.values()) >= ENOUGH, (family, cov_type, digits)
        # and so summarize and ols agree as far as their exact figures do (or to ENOUGH digits)
        allowed = figure_digits(exact, exact_figures(theta, at_optimum[cov_type], quantile))
        closed_figures = figures_of(closed)
        agreement = figure_digits(
            figures_of(summarized),
            {
                "bse": [Fraction(float(v)) for v in closed_figures["bse"]],
                "tvalues": [Fraction(float(v)) for v in closed_figures["tvalues"]],
                "conf_int": [(Fraction(float(a)), Fraction(float(b))) for a, b in closed_figures["conf_int"]],
            },
        )
        for figure in digits:
            assert agreement[figure] >= min(allowed[figure], ENOUGH) - SLACK, (family, cov_type, figure, agreement)


def _robust_digits(X, y, cov_type):
    """(tl.stats', statsmodels' best) correct digits of the robust standard errors of a fit with an intercept."""
    theta, covariances = exact_covariances(X, y)
    exact = exact_figures(theta, covariances[cov_type], distributions.norm.ppf(0.975))
    ours = figure_digits(figures_of(tl.stats.ols(X, y, cov_type=cov_type)), exact)["bse"]
    theirs = [
        figure_digits(figures_of(_statsmodels(X, y, None, True, method, cov_type)), exact)["bse"]
        for method in ("pinv", "qr")
    ]
    return ours, max(theirs)


def test_hc3_at_a_row_of_leverage_near_1_keeps_its_digits():
    # x2 is 1 at the first row and 1e-6 times smaller elsewhere: that row's leverage is 1 - 3e-11, and HC3 divides
    # its squared residual by (1 - h)², 1e21. Computed as 1 - h, 1 - h keeps 5 digits (statsmodels' too); the solver
    # gives it as the residual of the fit of that row's unit vector, and (AᵀWA)⁻¹aᵢ there as that fit's answer
    rng = np.random.default_rng(7)
    x1, x2 = rng.normal(size=30), rng.normal(size=30) * 1e-6
    x2[0] = 1.0
    X = np.column_stack([x1, x2])
    ours, theirs = _robust_digits(X, 1 + x1 + x2 + rng.normal(size=30), "HC3")
    assert ours >= ENOUGH and theirs < 6, (ours, theirs)


def test_robust_standard_errors_of_a_target_exactly_linear_keep_their_digits():
    # y a polynomial of x to the rounding of its float64 values: the exact residuals are 1e-16 of y, and the solver's,
    # exact to a small part of an ulp of its answer, keep 10 of their digits; less their projection on the design,
    # all of them (statsmodels', from an answer rounded to float64: none)
    rng = np.random.default_rng(26)
    X = np.sort(rng.uniform(2, 3, 20))[:, None] ** np.arange(1, 6)
    y = X @ rng.normal(size=5) + 1.0
    for cov_type in ROBUST:
        ours, theirs = _robust_digits(X, y, cov_type)
        assert ours >= ENOUGH and theirs < 1, (cov_type, ours, theirs)


# ----- rank, decided after scaling -----


def test_rank_tolerance_is_eps_times_the_root_of_the_larger_dimension():
    assert tl.solvers.rank_tolerance(100, 7) == pytest.approx(np.finfo(np.float64).eps * 10)
    assert tl.solvers.rank_tolerance(4, 16) == pytest.approx(np.finfo(np.float64).eps * 4)


def test_a_design_that_lstsq_calls_rank_deficient_is_of_full_rank_once_scaled():
    X, _, _ = filip()
    assert np.linalg.matrix_rank(_design(X, True)) == 10  # numpy's rule, on the raw design: 10 of 11
    assert tl.solvers.design_rank(X) == (11, [])
    # and the same for designs drawn like it
    rng = np.random.default_rng(1)
    assert tl.solvers.design_rank(filip_design(rng)) == (11, [])


def test_columns_of_any_units_are_dependent_only_when_they_are_once_scaled():
    rng = np.random.default_rng(4)
    x1, x2 = rng.normal(size=40), rng.normal(size=40)
    # x3 is x1 in other units (2**40 times: exact), x4 far from the origin: dependent, and not
    X = np.column_stack([x1, x2, x1 * 2.0**40, 1e7 + x2 * 1e-3 + rng.normal(size=40)])
    rank, dependent = tl.solvers.design_rank(X)
    assert (rank, dependent) == (4, [2])  # the column of ones, x1, x2 and x4
    y = x1 + x2 + rng.normal(size=40)
    coef, intercept = tl.solvers.ols(X, y)
    # the minimum-norm answer of the centred problem: x1's coefficient β shared by x1 and x3 in proportion
    # 1 : 2**40, so that β = coef_1 + 2**40·coef_3 and coef_1² + coef_3² is least
    without, intercept_without = tl.solvers.ols(X[:, [0, 1, 3]], y)
    beta = without[0]
    np.testing.assert_allclose(coef[[1, 3]], without[1:], rtol=1e-12)
    assert coef[2] == pytest.approx(beta * 2.0**40 / (1 + 2.0**80), rel=1e-9)
    assert abs(coef[0]) <= 1e-9 * abs(beta)
    assert intercept == pytest.approx(intercept_without, rel=1e-12)
    results = tl.stats.ols(X, y)
    assert results.df_model == 3 and results.df_resid == 36
    note = next(note for note in results.notes if "linear combination" in note)
    assert note.startswith("The column x3 is a linear combination of the columns before it: the design has rank 4")


# ----- one pass over memory maps and Dask chunks -----
# A memory map or Dask arrays are read once, with no refinement: each block's QR centred on its own mean, the
# blocks merged by Chan's update. What that guarantees is what a backward-stable solver of the centred problem
# guarantees (`backward_stable_digits`); where the best reference does better, that is the bar, to SLACK.


def backward_stable_digits(X, y, w, fit_intercept, exact):
    """The correct digits (the worst parameter) that a backward-stable QR of the centred, column-scaled design
    is sure of, by Wedin's bound (Higham, Accuracy and Stability of Numerical Algorithms, Thm 20.1): data moved
    by ε relative give ‖Δθ‖/‖θ‖ ≤ κε/(1 - κε)·(2 + (κ + 1)·‖r‖/(‖A‖·‖θ‖)), κ the condition number of the scaled
    design (a QR's backward error is columnwise, so scaling the columns changes nothing in it). ε = √(n·p)·u:
    a rounding of u per sum of n terms, growing as their square root. A coefficient is as exact as ‖Δθ‖ relative
    to its own size; the intercept ȳ - x̄·coef adds x̄ times the error of coef and the rounding of the means."""
    theta = np.array([float(value) for value in exact])
    coef = theta[int(fit_intercept) :]
    root = np.ones(len(X)) if w is None else np.sqrt(w)
    x_mean, y_mean = (np.average(X, axis=0, weights=w), np.average(y, weights=w)) if fit_intercept else (0.0, 0.0)
    A = root[:, None] * (X - x_mean)
    norms = np.linalg.norm(A, axis=0)
    sigma = np.linalg.svd(A / norms, compute_uv=False)
    kappa, scaled = sigma[0] / sigma[-1], coef * norms
    residual = root * (y - y_mean) - A @ coef
    eps = math.sqrt(len(X) * (X.shape[1] + 1 + fit_intercept)) * 2.0**-53
    if kappa * eps >= 1:
        return 0.0
    share = np.linalg.norm(residual) / (sigma[0] * np.linalg.norm(scaled))
    error = kappa * eps / (1 - kappa * eps) * (2 + (kappa + 1) * share) * np.linalg.norm(scaled)
    relative = error / np.abs(scaled)
    if fit_intercept:
        intercept_error = np.linalg.norm(x_mean / norms) * error + eps * (abs(y_mean) + abs(x_mean @ coef))
        relative = np.append(intercept_error / abs(theta[0]), relative)
    return min(FLOAT64_DIGITS, max(0.0, -math.log10(np.max(relative))))


def one_pass_answers(X, y, w, fit_intercept, rows):
    """θ (the intercept first) from `tl.solvers.ols` on a memory map read in blocks of `rows` rows, and on Dask
    arrays in chunks of `rows` rows (the default scheduler): several blocks, merged."""
    import dask.array as da

    with tempfile.TemporaryDirectory() as folder:
        np.save(Path(folder, "X.npy"), X)
        np.save(Path(folder, "y.npy"), y)
        mapped = np.load(Path(folder, "X.npy"), mmap_mode="r"), np.load(Path(folder, "y.npy"), mmap_mode="r")
        with mock.patch.object(tl.blockwise, "BLOCK_ROWS", rows):
            answers = {"memory map": ols_answer(*mapped, w, fit_intercept)}
        del mapped  # (the files close before the folder goes)
    chunked = da.from_array(X, chunks=(rows, -1)), da.from_array(y, chunks=(rows,))
    answers["dask"] = ols_answer(*chunked, w, fit_intercept)
    return answers


def _assert_one_pass_has_the_digits_of_the_best_reference_or_of_a_backward_stable_solver(problem, rows):
    family, X, y, w, fit_intercept = problem
    exact = exact_least_squares(X, y, fit_intercept, w)
    best = max(correct_digits(answer, exact) for answer in reference_answers(X, y, w, fit_intercept).values())
    floor = backward_stable_digits(X, y, w, fit_intercept, exact)
    for kind, answer in one_pass_answers(X, y, w, fit_intercept, rows).items():
        digits = correct_digits(answer, exact)
        assert digits >= min(best, floor) - SLACK, (family, kind, rows, digits, best, floor)


@settings(max_examples=40, deadline=None)
@given(accuracy_problems(), st.integers(7, 40))
def test_ols_in_one_pass_has_the_digits_of_the_best_reference_or_of_a_backward_stable_solver(problem, rows):
    pytest.importorskip("dask.array")
    _assert_one_pass_has_the_digits_of_the_best_reference_or_of_a_backward_stable_solver(problem, rows)


@settings(max_examples=10, deadline=None)
@given(_degree_10_polynomials(), st.integers(7, 40))
def test_degree_10_polynomials_in_one_pass_have_the_digits_of_a_backward_stable_solver(problem, rows):
    # (not the 7 digits of the refined answer in memory: a QR of the centred data of condition up to 1e15 keeps
    # 16 - log10 of its scaled condition, 1e11 at worst, and no reference does better)
    pytest.importorskip("dask.array")
    X, y = problem
    _assert_one_pass_has_the_digits_of_the_best_reference_or_of_a_backward_stable_solver(
        ("degree 10", X, y, None, True), rows
    )
