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
and `tl.stats` as many as statsmodels in its standard errors, residual sum of squares and R².
"""

import decimal
import math
import warnings
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

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


# ----- the references -----


def _design(X, fit_intercept):
    return np.column_stack([np.ones(len(X)), X]) if fit_intercept else X


def _statsmodels(X, y, w, fit_intercept, method):
    import statsmodels.api as sm

    model = sm.OLS(y, _design(X, fit_intercept)) if w is None else sm.WLS(y, _design(X, fit_intercept), weights=w)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return model.fit(method=method)
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
