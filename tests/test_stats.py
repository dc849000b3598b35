"""tl.stats against statsmodels itself: every figure of OLS and WLS, classical and robust, to 1e-8; and the
figures that rest on the tests' distributions (p-values, the F-test, the likelihood and adjusted R²) against an
exact oracle, with at least statsmodels' correct digits on issue 26's drawn designs (tests/test_accuracy.py has
the coefficients', standard errors' and intervals')."""

import subprocess
import sys
import warnings
from fractions import Fraction

import mpmath
import numpy as np
import pytest
import statsmodels.api as sm
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_lr as tl
from tests import test_accuracy as accuracy
from tests.strategies import accuracy_problems
from tests.test_accuracy import ENOUGH, FLOAT64_DIGITS, ROBUST, SLACK

COV_TYPES = st.sampled_from(["nonrobust", "HC0", "HC1", "HC2", "HC3"])
FIGURES = [
    "params",
    "bse",
    "tvalues",
    "pvalues",
    "rsquared",
    "rsquared_adj",
    "fvalue",
    "f_pvalue",
    "llf",
    "aic",
    "bic",
    "nobs",
    "df_model",
    "df_resid",
    "scale",
    "ssr",
    "resid",
    "fittedvalues",
    "condition_number",
]


@st.composite
def regressions(draw, offsets=True):
    """X (n, d) of columns at drawn scales (1e-2 to 1e2) and offsets (up to 20 times the column's spread),
    y from a line plus noise, maybe weights. Columns far from 0 against their spread make designs so
    ill-conditioned that statsmodels' own answer moves in the 8th digit (its pseudo-inverse works on the
    uncentred design; here the p-values of such a draw differed by 8e-8, where tl.stats is the more
    accurate): those designs are issue 26's, checked against an exact oracle instead."""
    d = draw(st.integers(1, 4))
    # twice as many rows as parameters and two more: with fewer, a row's leverage h comes near 1 and HC2's and
    # HC3's 1/(1 - h) multiply every solver's rounding past the 8 digits compared (there, a draw of 6 rows
    # and 5 parameters put statsmodels' and tl.stats' t-values 1e-8 apart)
    n = draw(st.integers(2 * (d + 1) + 2, 40))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    scales = 10.0 ** rng.uniform(-2, 2, d)
    shift = scales * rng.uniform(-20, 20, d) * draw(st.sampled_from([0.0, 1.0] if offsets else [0.0]))
    X = rng.standard_normal((n, d)) * scales + shift
    y = X @ rng.uniform(-3, 3, d) + rng.uniform(-10, 10) + rng.standard_normal(n) * 10.0 ** rng.uniform(-1, 1)
    weights = rng.uniform(0.2, 5.0, n) if draw(st.booleans()) else None
    return X, y, weights


def _statsmodels(X, y, weights, cov_type, fit_intercept=True):
    exog = sm.add_constant(X, has_constant="add") if fit_intercept else X
    model = sm.OLS(y, exog) if weights is None else sm.WLS(y, exog, weights=weights)
    return model.fit(cov_type=cov_type)


def _assert_same_figures(ours, theirs, rtol=1e-8):
    for name in FIGURES:
        mine, want = np.asarray(getattr(ours, name), np.float64), np.asarray(getattr(theirs, name), np.float64)
        if name in ("pvalues", "f_pvalue"):
            # a p-value below 1e-8 is compared by its logarithm: its relative error is its t's times about t²
            # (a t of 25 turns the 1e-11 at which two sound solvers agree into 1e-8 on a p of 1e-93)
            tiny = (want < 1e-8) & (mine < 1e-8)
            with np.errstate(divide="ignore"):  # (a p-value that is 0 in both: -inf twice, equal)
                np.testing.assert_allclose(np.log(mine[tiny]), np.log(want[tiny]), rtol=rtol, err_msg=name)
            mine, want = mine[~tiny], want[~tiny]
        # relative to the figure's own size; a figure that is 0 in one is compared at the size of its neighbours,
        # and R² (a share of the variance, 1 - ssr/tss, a difference near 0) to 1e-8 of the whole variance
        size = np.maximum(np.abs(want), np.max(np.abs(want)) * 1e-6 if want.size else 0)
        size = np.maximum(size, 1.0) if name.startswith("rsquared") else size
        # F = (ESS/df_model)/(SSR/df_resid), ESS = TSS - SSR: where the model explains almost nothing, ESS is
        # a difference near 0 too; F is compared to the F that 1e-8 of the variance explained would give
        size = np.maximum(size, theirs.df_resid / max(theirs.df_model, 1.0)) if name == "fvalue" else size
        np.testing.assert_allclose(mine, want, rtol=rtol, atol=float(np.max(size, initial=0)) * rtol, err_msg=name)
    # a covariance to 1e-8 of the scale of its row and column, sqrt(var_i·var_j): its correlation to 1e-8
    want = theirs.cov_params()
    scale = np.sqrt(np.outer(np.diag(want), np.diag(want)))
    assert np.all(np.abs(ours.cov_params() - want) <= rtol * scale), "cov_params"
    for alpha in (0.05, 0.1):  # each end to 1e-8 of the larger end's size (an end near 0 is a difference)
        want = theirs.conf_int(alpha)
        size = np.max(np.abs(want), axis=1, keepdims=True)
        assert np.all(np.abs(ours.conf_int(alpha) - want) <= rtol * size), f"conf_int({alpha})"


@settings(max_examples=60, deadline=None)
@given(data=regressions(), cov_type=COV_TYPES)
def test_every_figure_equals_statsmodels(data, cov_type):
    X, y, weights = data
    ours = tl.stats.ols(X, y, sample_weight=weights, cov_type=cov_type)
    _assert_same_figures(ours, _statsmodels(X, y, weights, cov_type))
    assert ours.param_names == ["const"] + [f"x{j + 1}" for j in range(X.shape[1])]


@settings(max_examples=25, deadline=None)
@given(data=regressions(offsets=False), cov_type=COV_TYPES)
def test_without_an_intercept_every_figure_equals_statsmodels_without_a_constant(data, cov_type):
    X, y, weights = data
    ours = tl.stats.ols(X, y, fit_intercept=False, sample_weight=weights, cov_type=cov_type)
    _assert_same_figures(ours, _statsmodels(X, y, weights, cov_type, fit_intercept=False))
    assert ours.param_names[0] == "x1"


@settings(max_examples=25, deadline=None)
@given(data=regressions(), cov_type=COV_TYPES)
def test_a_model_trained_to_the_optimum_is_summarized_as_the_closed_form(data, cov_type):
    X, y, weights = data
    layer = tl.nn.Linear(X.shape[1], 1, dtype=np.float64)
    exact = tl.stats.ols(X, y, sample_weight=weights)
    layer.set_weights([exact.params[1:].reshape(-1, 1), exact.params[:1]])  # (as a converged fit leaves them)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # at the optimum: no warning
        ours = tl.stats.summarize(tl.nn.Sequential([layer]), X, y, sample_weight=weights, cov_type=cov_type)
    _assert_same_figures(ours, _statsmodels(X, y, weights, cov_type))


def test_a_model_trained_by_newton_steps_is_at_the_optimum():
    (x_train, y_train), _ = tl.datasets.load_boston_housing()
    model = tl.nn.Sequential([tl.nn.Linear(13, 1, dtype=np.float64)])
    model.compile(optimizer="newton")
    model.fit(x_train, y_train, epochs=2, batch_size=len(x_train), verbose=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ours = tl.stats.summarize(model, x_train, y_train, feature_names=tl.datasets.BOSTON_FEATURES)
    _assert_same_figures(ours, _statsmodels(x_train, y_train, None, "nonrobust"), rtol=1e-7)
    assert ours.param_names == ["const", *tl.datasets.BOSTON_FEATURES]


def test_weights_short_of_the_optimum_are_described_as_they_are_with_a_warning_and_a_note():
    X, y = np.arange(12.0).reshape(6, 2) ** 1.5, np.arange(6.0) * 2
    layer = tl.nn.Linear(2, 1, dtype=np.float64)
    layer.set_weights([np.array([[0.5], [-0.25]]), np.array([1.0])])
    with pytest.warns(RuntimeWarning, match=r"stats.summarize: the weights are not at the least-squares optimum"):
        ours = tl.stats.summarize(layer, X, y)
    np.testing.assert_array_equal(ours.params, [1.0, 0.5, -0.25])  # the weights as they are
    np.testing.assert_allclose(ours.resid, y - (X @ [0.5, -0.25] + 1.0))
    assert any(note.startswith("The weights are not at the least-squares optimum") for note in ours.notes)
    assert "The weights are not at the least-squares optimum" in ours.summary()


def test_the_summary_prints_statsmodels_table_with_its_notes():
    rng = np.random.default_rng(1)
    X = np.column_stack([rng.normal(size=30), np.full(30, 3.0), rng.normal(size=30) * 1e4])
    y = X[:, 0] * 2 + rng.normal(size=30)
    results = tl.stats.ols(X, y, feature_names=["rooms", "flat", "tax"])
    text = results.summary(yname="price")
    lines = text.splitlines()
    assert lines[0].strip() == "OLS Regression Results" and lines[1] == "=" * 78
    assert "Dep. Variable:" in lines[2] and lines[2].split("Dep. Variable:")[1].split()[0] == "price"
    header = next(line for line in lines if line.strip().startswith("coef"))
    assert header.split() == ["coef", "std", "err", "t", "P>|t|", "[0.025", "0.975]"]
    rows = {
        line.split()[0]: line.split()[1:] for line in lines if line.split() and line.split()[0] in results.param_names
    }
    assert list(rows) == ["const", "rooms", "flat", "tax"]
    assert float(rows["rooms"][0]) == pytest.approx(results.params[1], abs=1e-4)
    assert float(rows["rooms"][1]) == pytest.approx(results.bse[1], abs=1e-3)
    r_squared = next(line for line in lines if "  R-squared:" in line)
    assert r_squared.split("R-squared:")[1].split() == [f"{results.rsquared:.3f}"]
    assert "[1] Standard Errors assume that the covariance matrix of the errors is correctly specified." in text
    assert "The column flat is constant." in text
    assert f"The condition number is large, {results.condition_number:.3g}." in text


def test_robust_figures_use_the_normal_distribution_as_statsmodels():
    rng = np.random.default_rng(2)
    X, y = rng.normal(size=(25, 2)), rng.normal(size=25)
    text = tl.stats.ols(X, y, cov_type="HC3").summary()
    assert "P>|z|" in text and "Standard Errors are heteroscedasticity robust (HC3)" in text


def test_fewer_rows_than_parameters_is_noted_not_an_error():
    X, y = np.array([[1.0, 2.0, 3.0], [2.0, 1.0, 0.0]]), np.array([1.0, 2.0])
    with np.errstate(all="ignore"):
        results = tl.stats.ols(X, y)
    assert results.df_resid < 0 or np.isnan(results.scale)
    assert "There are 2 observations and 4 parameters" in results.summary()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: tl.stats.ols(np.ones((4, 2)), np.ones(3)), r"stats.ols: X must be \(n, d\) or \(n,\) and y \(n,\)"),
        (
            lambda: tl.stats.ols(np.ones((4, 2)), np.ones((4, 2))),
            r"and y \(n,\) for the same n samples; got X \(4, 2\)",
        ),
        (lambda: tl.stats.ols(np.ones((4, 2)), np.ones(4), cov_type="HC4"), r"cov_type must be one of nonrobust"),
        (
            lambda: tl.stats.ols(np.ones((4, 1)), np.ones(4), sample_weight=[1.0, 0.0, 1.0, 1.0]),
            r"stats.ols: sample_weight must be > 0; sample 1 has weight 0.0",
        ),
        (lambda: tl.stats.ols(np.ones((4, 1)), [1.0, np.nan, 1.0, 1.0]), r"stats.ols: y"),
        (
            lambda: tl.stats.summarize(tl.nn.Linear(2, 2), np.ones((4, 2)), np.ones(4)),
            r"model must be a Linear layer of one output",
        ),
        (lambda: tl.stats.ols(np.ones((4, 2)), np.ones(4), feature_names=["a"]), r"1 names for 2 features"),
    ],
)
def test_bad_input_is_a_clear_error(call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call()


def test_a_one_dimensional_x_is_one_feature_and_a_frame_gives_its_names():
    import pandas as pd

    x, y = np.arange(8.0), np.arange(8.0) ** 1.1
    assert tl.stats.ols(x, y).param_names == ["const", "x1"]
    frame = pd.DataFrame({"rooms": x, "age": x**0.5})
    assert tl.stats.ols(frame, y).param_names == ["const", "rooms", "age"]


def test_without_scipy_tl_stats_names_the_extra():
    code = "\n".join(
        [
            "import sys",
            "sys.modules['scipy'] = None",
            "import tinygrad_lr as tl",
            "try:",
            "    tl.stats",
            "except ImportError as error:",
            "    print(error)",
        ]
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "tinygrad_lr.stats needs SciPy" in out and "pip install 'tinygrad_lr[stats]'" in out


def test_a_layer_without_a_bias_at_its_optimum_is_summarized_as_the_fit_through_the_origin():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(30, 2))
    y = X @ [1.5, -2.0] + rng.normal(size=30)
    exact = tl.stats.ols(X, y, fit_intercept=False)
    layer = tl.nn.Linear(2, 1, bias=False, dtype=np.float64)
    layer.set_weights([exact.params.reshape(-1, 1)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # at its own optimum: no warning
        ours = tl.stats.summarize(layer, X, y)
    _assert_same_figures(ours, _statsmodels(X, y, None, "nonrobust", fit_intercept=False))
    assert ours.param_names == ["x1", "x2"]


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (0.0, "0.0000"),
        (1.0, "1.0000"),
        (1e-4, "0.0001"),
        (0.99e-4, "9.900e-05"),
        (-9_999.0, "-9999.0000"),
        (1e4, "1.000e+04"),
        (-2.5e7, "-2.500e+07"),
    ],
)
def test_a_coefficient_is_shown_with_four_decimals_between_1e_4_and_1e4_else_in_scientific_notation(value, shown):
    X = np.array([[1.0], [2.0], [4.0], [7.0]])
    layer = tl.nn.Linear(1, 1, dtype=np.float64)
    layer.set_weights([np.array([[value]]), np.array([0.0])])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # (weights chosen, not fitted)
        text = tl.stats.summarize(layer, X, X[:, 0] * 3 + 1).summary()
    row = next(line for line in text.splitlines() if line.startswith("x1 "))
    assert row.split()[1] == shown
    # every figure of the row stays in its column, however large (std errors of 1e7 here)
    header = next(line for line in text.splitlines() if line.strip().startswith("coef"))
    assert len(row.split()) == 7 and len(row) == len(header)


@pytest.mark.parametrize("cov_type", ["nonrobust", "HC3"])
def test_columns_of_scales_1e5_apart_keep_their_standard_errors(cov_type):
    # (the Hessian 2/n·AᵀA of this design has a condition number of 1e20, past what a pseudo-inverse resolves: taken
    # as it is, the standard errors came back entirely wrong; statsmodels' own are good to about 1e-7 here, its
    # design's condition number being 1e10)
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.normal(size=50) * 1e-5, rng.normal(size=50) * 1e5])
    y = X @ [2e5, 3e-5] + 1 + rng.normal(size=50)
    ours, theirs = tl.stats.ols(X, y, cov_type=cov_type), _statsmodels(X, y, None, cov_type)
    np.testing.assert_allclose(ours.bse, theirs.bse, rtol=1e-6)
    np.testing.assert_allclose(ours.params, theirs.params, rtol=1e-6)
    layer = tl.nn.Linear(2, 1, dtype=np.float64)
    layer.set_weights([ours.params[1:].reshape(-1, 1), ours.params[:1]])
    np.testing.assert_allclose(tl.stats.summarize(layer, X, y, cov_type=cov_type).bse, theirs.bse, rtol=1e-6)


@pytest.mark.parametrize("cov_type", ["nonrobust", "HC0", "HC1", "HC2", "HC3"])
def test_a_duplicated_column_gives_statsmodels_figures_and_its_f_test_of_the_rank(cov_type):
    # x2 = x1: the covariance is singular, and the robust F-test of the slopes, a Wald test, takes a pseudo-inverse
    # and as many restrictions as its rank (2 of 3), as statsmodels' does (it was a LinAlgError, or 2/3 of its value)
    rng = np.random.default_rng(3)
    x1, x2 = rng.normal(size=30), rng.normal(size=30)
    X = np.column_stack([x1, x1, x2])
    y = 2 * x1 - x2 + 1 + rng.normal(size=30)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (statsmodels warns of the covariance's rank)
        theirs = _statsmodels(X, y, None, cov_type)
        ours = tl.stats.ols(X, y, cov_type=cov_type)
        _assert_same_figures(ours, theirs)
        layer = tl.nn.Linear(3, 1, dtype=np.float64)
        layer.set_weights([ours.params[1:].reshape(-1, 1), ours.params[:1]])
        _assert_same_figures(tl.stats.summarize(layer, X, y, cov_type=cov_type), theirs)


@pytest.mark.parametrize("bias", [True, False])
def test_the_warning_of_weights_short_of_the_optimum_says_how_far_and_points_at_the_callers_line(bias):
    # (the features small and the target far from 0: the gradient's part along the bias, when there is one,
    # is most of its norm at zero weights, so a norm that left it out, or put one in, would read otherwise)
    X, y = (np.arange(12.0).reshape(6, 2) % 3) * 0.1, 10.0 + np.arange(6.0)
    layer = tl.nn.Linear(2, 1, bias=bias, dtype=np.float64)
    layer.set_weights([np.array([[0.5], [-0.25]]), *([np.array([1.0])] if bias else [])])
    A = np.column_stack([X, np.ones(6)]) if bias else X
    params = np.array([0.5, -0.25, 1.0][: A.shape[1]])
    gradient = np.linalg.norm(2 / 6 * A.T @ (A @ params - y))
    start = np.linalg.norm(2 / 6 * A.T @ -y)  # at zero weights, the bias's part included when there is a bias
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = tl.stats.summarize(layer, X, y)
    (warning,) = caught
    message = (
        f"the weights are not at the least-squares optimum: the gradient of the mean squared error there has norm "
        f"{gradient:.3g} ({gradient / start:.2g} of its norm at zero weights); the figures describe these weights, "
        "not the best fit"
    )
    assert str(warning.message) == f"stats.summarize: {message}"
    assert warning.filename == __file__  # (stacklevel: the caller's line, not stats.py's)
    assert results.notes[0] == message[0].upper() + message[1:] + "."  # the summary's note, a sentence


def test_zero_weights_on_a_zero_target_are_at_the_optimum_without_a_warning():
    layer = tl.nn.Linear(2, 1, dtype=np.float64)
    layer.set_weights([np.zeros((2, 1)), np.zeros(1)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(all="ignore"):  # (a perfect fit: its figures are nan and inf, as statsmodels')
            results = tl.stats.summarize(layer, np.arange(12.0).reshape(6, 2) ** 1.5, np.zeros(6))
    assert not any("optimum" in note for note in results.notes)


def test_summarize_names_itself_and_the_feature_counts_in_its_errors():
    layer = tl.nn.Linear(3, 1, dtype=np.float64)
    with pytest.raises(ValueError, match=r"^stats.summarize: X has 2 features; the layer takes 3$"):
        tl.stats.summarize(layer, np.ones((4, 2)), np.ones(4))
    with pytest.raises(ValueError, match=r"^stats.summarize: X must be \(n, d\) or \(n,\) and y \(n,\)"):
        tl.stats.summarize(layer, np.ones((4, 3)), np.ones(5))


def test_figures_without_residual_degrees_of_freedom_are_nan_or_inf_without_a_numpy_warning():
    X, y = np.array([[1.0, 2.0, 3.0], [2.0, 1.0, 0.0]]), np.array([1.0, 2.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # NumPy's divide-by-zero and invalid-value warnings included
        results = tl.stats.ols(X, y)
    assert results.df_resid == 0 and not np.isfinite(results.scale)


def test_summarize_keeps_a_frames_column_names():
    import pandas as pd

    frame = pd.DataFrame({"rooms": [5.0, 6.0, 7.5, 6.5, 8.0], "age": [30.0, 12.0, 50.0, 45.0, 5.0]})
    y = frame["rooms"] * 3 - frame["age"] * 0.1 + np.array([0.1, -0.2, 0.05, 0.0, 0.1])
    exact = tl.stats.ols(frame, y)
    layer = tl.nn.Linear(2, 1, dtype=np.float64)
    layer.set_weights([exact.params[1:].reshape(-1, 1), exact.params[:1]])
    assert tl.stats.summarize(layer, frame, y).param_names == ["const", "rooms", "age"]


# ----- p-values, the F-test and the likelihood against an exact oracle (issue 26) -----
#
# The oracle: tests/test_accuracy.py's exact coefficients θ, SSR and covariances (rational, or to 60 digits), and
# from them, exactly, t² = θⱼ²/covⱼⱼ, the F statistic (classical: ((TSS - SSR)/df_model)/(SSR/df_resid); robust:
# the Wald statistic b_sᵀC_s⁻¹b_s/q of the slopes b_s under their covariance C_s, as statsmodels' `f_test`) and the
# adjusted R², all rational; the distributions' tails at them, the log-likelihood, AIC and BIC in mpmath to 50
# digits: the two-sided t p-value 2·P(T_ν > |t|) = I_{ν/(ν+t²)}(ν/2, 1/2), the normal one erfc(|t|/√2), the F upper
# tail I_{d2/(d2+d1·F)}(d2/2, d1/2).
#
# A p-value is a steep function of its statistic s: a relative error δ of s moves it by κ·δ, κ = |d log p/d log s|
# (far out, about t² for a normal tail, ν for a t tail, d2/2 for an F tail), so that a p-value of 1e-200 from a
# statistic right to its last bit keeps 16 - log10(κ) digits, from statsmodels and SciPy as from anyone. Its digits
# are therefore counted as its statistic's: its error in log p, |log(estimate/exact)|, over max(1, κ) (to first
# order, the relative error of the statistic whose exact p-value it is; below κ = 1, its plain relative error).
# Underflow: under the smallest normal float64, 2.2e-308, a float64 has no relative digits left to give (SciPy
# returns 0, or a subnormal of a few digits); there the error is |estimate - exact| counted against 2.2e-308, so that
# a p-value of 1e-320 returned as 0 keeps 12 digits and one of 1e-300 returned as 0 keeps none.

SMALLEST_NORMAL = Fraction(np.finfo(np.float64).tiny)
DIGITS = 50  # mpmath's working precision in the oracle and the digits' count (decorating each function that uses it)


def _mp(value):
    """A Fraction (or float) as an mpmath number of the working precision, rounded once."""
    value = Fraction(value)
    return mpmath.mpf(value.numerator) / value.denominator


@mpmath.workdps(DIGITS)
def _beta_tail(a, b, x, complement):
    """(I_x(a, b), κ) for x = c/(c + d·s), s > 0 a statistic, complement = 1 - x (Fractions, exactly): the
    regularized incomplete beta function and κ = |d log I / d log s| = x·(1 - x)·x^(a-1)·(1 - x)^(b-1)/(B(a, b)·I)."""
    x, complement = _mp(x), _mp(complement)
    tail = mpmath.betainc(a, b, 0, x, regularized=True)
    return tail, x * complement * x ** (a - 1) * complement ** (b - 1) / (mpmath.beta(a, b) * tail)


@mpmath.workdps(DIGITS)
def exact_p_values(theta, variances, df_resid=None):
    """([p-values], [κ]) of the two-sided tests θⱼ = 0, exactly (to 50 digits): on the t distribution of df_resid
    degrees of freedom, or the normal one where df_resid is None (the robust covariances, as statsmodels)."""
    values, conditions = [], []
    for square in (t * t / v for t, v in zip(theta, variances)):  # t², rational
        if df_resid is None:
            z = mpmath.sqrt(_mp(square))
            p = mpmath.erfc(z / mpmath.sqrt(2))
            values.append(p)
            conditions.append(z * mpmath.sqrt(2 / mpmath.pi) * mpmath.exp(-z * z / 2) / p)
        else:  # (κ with respect to t is twice the one with respect to t²)
            x, complement = df_resid / (df_resid + square), square / (df_resid + square)
            p, condition = _beta_tail(mpmath.mpf(df_resid) / 2, mpmath.mpf(1) / 2, x, complement)
            values.append(p)
            conditions.append(2 * condition)
    return values, conditions


@mpmath.workdps(DIGITS)
def exact_f_test(fvalue, restrictions, df_resid):
    """([p-value], [κ]) of an exact F statistic (a Fraction) on (restrictions, df_resid) degrees of freedom."""
    share = restrictions * fvalue
    p, condition = _beta_tail(
        mpmath.mpf(df_resid) / 2,
        mpmath.mpf(restrictions) / 2,
        df_resid / (df_resid + share),
        share / (df_resid + share),
    )
    return [p], [condition]


def exact_wald(theta, covariance, fit_intercept):
    """The robust F statistic, exactly: b_sᵀC_s⁻¹b_s/q, b_s the slopes (all of θ without an intercept), C_s their
    block of the covariance (Fractions), q their number (the designs drawn are of full rank)."""
    k = int(fit_intercept)
    slopes = theta[k:]
    solved = accuracy._gauss_jordan([row[k:] for row in covariance[k:]], [[b] for b in slopes])
    return sum(b * row[0] for b, row in zip(slopes, solved)) / len(slopes)


@mpmath.workdps(DIGITS)
def exact_fit_figures(X, y, fit_intercept, w):
    """{figure: [exact value]} of the classical fit: the F-test, the log-likelihood, AIC, BIC and the adjusted R²
    (statsmodels' definitions), and ([p-values], [κ]) for "pvalues" and "f_pvalue"."""
    theta, ssr, variances, _ = accuracy.exact_statistics(X, y, fit_intercept, w)
    n, p, k = len(X), len(theta), int(fit_intercept)
    df_resid, df_model = n - p, p - k
    weights = [Fraction(1)] * n if w is None else [Fraction(float(v)) for v in w]
    targets = [Fraction(float(v)) for v in y]
    centre = sum(v * t for v, t in zip(weights, targets)) / sum(weights) if fit_intercept else Fraction(0)
    tss = sum(v * (t - centre) ** 2 for v, t in zip(weights, targets))
    fvalue = ((tss - ssr) / df_model) / (ssr / df_resid)
    half = mpmath.mpf(n) / 2
    llf = (
        -half * (mpmath.log(_mp(ssr)) + 1 + mpmath.log(mpmath.pi / half))
        + mpmath.fsum(mpmath.log(_mp(v)) for v in weights) / 2
    )
    figures = {
        "pvalues": exact_p_values(theta, variances, df_resid),
        "fvalue": [fvalue],
        "f_pvalue": exact_f_test(fvalue, df_model, df_resid),
        "llf": [llf],
        "aic": [-2 * llf + 2 * p],
        "bic": [-2 * llf + mpmath.log(n) * p],
        "rsquared_adj": [1 - Fraction(n - k, df_resid) * ssr / tss],
        "ssr": [ssr],
    }
    return figures


@mpmath.workdps(DIGITS)
def relative_digits(estimates, exact):
    """The worst over the entries of -log10(|estimate - exact| / |exact|), between 0 and FLOAT64_DIGITS (0 for a
    value that is not finite); exact: Fractions or mpmath numbers."""
    worst = FLOAT64_DIGITS
    for value, truth in zip(np.ravel(estimates), exact):
        if not np.isfinite(value):
            return 0.0
        truth = _mp(truth) if isinstance(truth, Fraction) else truth
        error = abs(_mp(float(value)) - truth) / max(abs(truth), _mp(SMALLEST_NORMAL))
        worst = min(worst, FLOAT64_DIGITS if error == 0 else float(-mpmath.log10(error)))
    return max(worst, 0.0)


@mpmath.workdps(DIGITS)
def p_value_digits(estimates, exact):
    """The worst over the entries of the digits of p-values against exact ([p-values], [κ]), counted as their
    statistic's (see above): -log10(|log(estimate/exact)| / max(1, κ)), and below the smallest normal float64
    -log10(|estimate - exact| / 2.2e-308); between 0 and FLOAT64_DIGITS."""
    worst = FLOAT64_DIGITS
    for value, truth, condition in zip(np.ravel(estimates), *exact):
        if not np.isfinite(value):
            return 0.0
        if truth < _mp(SMALLEST_NORMAL):
            error = abs(_mp(float(value)) - truth) / _mp(SMALLEST_NORMAL)
        elif value <= 0:
            return 0.0
        else:
            error = abs(mpmath.log(_mp(float(value))) - mpmath.log(truth)) / max(1, condition)
        worst = min(worst, FLOAT64_DIGITS if error == 0 else float(-mpmath.log10(error)))
    return max(worst, 0.0)


def _digits_of(results, exact, names):
    """{figure: correct digits} of a tl.stats or statsmodels results object against `exact` (0 where statsmodels
    refuses the F-test)."""
    digits = {}
    for name in names:
        try:
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # (statsmodels' square roots of negative variances: nan, 0 digits)
                value = np.atleast_1d(getattr(results, name))
        except (ValueError, np.linalg.LinAlgError):  # (statsmodels: "... asymptotically non-normal")
            digits[name] = 0.0
            continue
        measure = p_value_digits if name in ("pvalues", "f_pvalue") else relative_digits
        digits[name] = measure(value, exact[name])
    return digits


def _statsmodels_digits(X, y, w, fit_intercept, cov_type, exact, names):
    """{figure: the best of statsmodels' pinv and qr fits' correct digits} (0 for a "qr" fit of a singular design,
    which statsmodels refuses)."""
    best = dict.fromkeys(names, 0.0)
    for method in ("pinv", "qr"):
        fit = accuracy._statsmodels(X, y, w, fit_intercept, method, cov_type)
        if fit is not None:
            for name, digits in _digits_of(fit, exact, names).items():
                best[name] = max(best[name], digits)
    return best


CLASSICAL_FIGURES = ("pvalues", "fvalue", "f_pvalue", "llf", "aic", "bic", "rsquared_adj", "ssr")
ROBUST_FIGURES = ("pvalues", "fvalue", "f_pvalue")


@settings(max_examples=12, deadline=None)
@given(accuracy_problems())
def test_classical_p_values_f_test_likelihood_and_adjusted_r_squared_have_the_digits_of_statsmodels(problem):
    family, X, y, w, fit_intercept = problem
    exact = exact_fit_figures(X, y, fit_intercept, w)
    ours = _digits_of(tl.stats.ols(X, y, fit_intercept=fit_intercept, sample_weight=w), exact, CLASSICAL_FIGURES)
    theirs = _statsmodels_digits(X, y, w, fit_intercept, "nonrobust", exact, CLASSICAL_FIGURES)
    for name, digits in ours.items():
        assert digits >= min(theirs[name], ENOUGH) - SLACK, (family, name, digits, theirs[name])
    # the figures computed here from the SSR alone, not by SciPy's distributions, have all that double precision
    # allows; the F-statistic at least statsmodels' digits (above; 13.6 at worst in 900 draws, on a design far
    # from the origin)
    for name in ("llf", "aic", "bic", "rsquared_adj"):
        assert ours[name] >= min(ours["ssr"], ENOUGH) - SLACK, (family, name, ours[name], ours["ssr"])


@settings(max_examples=8, deadline=None)
@given(accuracy._small_problems())
def test_robust_p_values_and_f_tests_have_the_digits_of_statsmodels(problem):
    family, X, y, w, fit_intercept = problem
    theta, covariances = accuracy.exact_covariances(X, y, fit_intercept, w)
    df_resid = len(X) - len(theta)
    for cov_type in ROBUST:
        cov = covariances[cov_type]
        fvalue = exact_wald(theta, cov, fit_intercept)
        exact = {
            "pvalues": exact_p_values(theta, [cov[j][j] for j in range(len(theta))]),
            "fvalue": [fvalue],
            "f_pvalue": exact_f_test(fvalue, len(theta) - int(fit_intercept), df_resid),
        }
        results = tl.stats.ols(X, y, fit_intercept=fit_intercept, sample_weight=w, cov_type=cov_type)
        ours = _digits_of(results, exact, ROBUST_FIGURES)
        theirs = _statsmodels_digits(X, y, w, fit_intercept, cov_type, exact, ROBUST_FIGURES)
        for name, digits in ours.items():
            assert digits >= min(theirs[name], ENOUGH) - SLACK, (family, cov_type, name, digits, theirs[name])
        # the Wald statistic, taken where it is well conditioned (tl.stats._wald), keeps all but a digit of what double
        # precision allows (13.9 at worst in 600 draws; statsmodels' median is 0.1)
        assert ours["fvalue"] >= ENOUGH - 1, (family, cov_type, ours["fvalue"], theirs["fvalue"])


@settings(max_examples=5, deadline=None)
@given(accuracy._small_problems())
def test_summarize_gives_the_robust_f_test_of_the_weights_as_they_are_to_its_last_digits(problem):
    family, X, y, w, fit_intercept = problem
    params = tl.stats.ols(X, y, fit_intercept=fit_intercept, sample_weight=w).params
    layer = accuracy._trained_to(params, fit_intercept)
    # the exact figures of these weights (the exact answer rounded), which summarize describes
    _, covariances = accuracy.exact_covariances(X, y, fit_intercept, w, params=params)
    for cov_type in ROBUST:
        exact = exact_wald([Fraction(float(v)) for v in params], covariances[cov_type], fit_intercept)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # at the optimum: no warning
            results = tl.stats.summarize(layer, X, y, sample_weight=w, cov_type=cov_type)
        assert relative_digits([results.fvalue], [exact]) >= ENOUGH - 1, (family, cov_type)


@pytest.mark.parametrize("cov_type", ROBUST)
def test_the_robust_f_test_of_nist_filip_keeps_its_digits_where_statsmodels_has_none(cov_type):
    # Filip's degree-10 polynomial: the slopes' robust covariances have correlations of condition numbers 1e17 to 1e18.
    # From their eigenvalues (statsmodels', and tl.stats' before) the Wald statistic had no digit left (HC0's 6420 came
    # out as 128: directions cut off as rounding); in the orthonormal design's coordinates it keeps its digits
    X, y, _ = accuracy.filip()
    theta, covariances = accuracy.exact_covariances(X, y)
    fvalue = exact_wald(theta, covariances[cov_type], True)
    exact = {"fvalue": [fvalue], "f_pvalue": exact_f_test(fvalue, X.shape[1], len(X) - len(theta))}
    ours = _digits_of(tl.stats.ols(X, y, cov_type=cov_type), exact, ("fvalue", "f_pvalue"))
    theirs = _statsmodels_digits(X, y, None, True, cov_type, exact, ("fvalue", "f_pvalue"))
    assert ours["fvalue"] >= ENOUGH - 1 and theirs["fvalue"] < 1, (ours, theirs)
    assert ours["f_pvalue"] >= ENOUGH - 1, (ours, theirs)


@pytest.mark.parametrize("cov_type", ["nonrobust", "HC0"])
def test_no_rows_or_no_parameter_at_all_is_a_clear_error(cov_type):
    with pytest.raises(ValueError, match=r"stats.ols: no samples \(X has shape \(0, 2\)\)"):
        tl.stats.ols(np.zeros((0, 2)), np.zeros(0), cov_type=cov_type)
    with pytest.raises(ValueError, match=r"no features .* fit_intercept=False: there is no parameter to estimate"):
        tl.stats.ols(np.zeros((10, 0)), np.arange(10.0), fit_intercept=False, cov_type=cov_type)
    only_the_mean = tl.stats.ols(np.zeros((10, 0)), np.arange(10.0), cov_type=cov_type)  # (the intercept alone: fine)
    assert only_the_mean.params == pytest.approx([4.5])


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("cov_type", ["HC0", "HC1", "HC2", "HC3"])
def test_a_robust_f_test_without_a_residual_or_past_float64_is_nan_not_an_error(cov_type):
    X = np.random.default_rng(0).normal(size=(30, 2))
    exact = tl.stats.ols(X, np.zeros(30), cov_type=cov_type)  # every residual 0: the meat is 0, no restriction left
    assert np.isnan(exact.fvalue) and np.isnan(exact.f_pvalue)
    y = X @ np.array([1.0, 2.0]) + 1.0
    y[0] = 1e160  # its residual's square is past float64
    huge = tl.stats.ols(X, y, cov_type=cov_type)
    assert np.isnan(huge.fvalue) and np.isnan(huge.f_pvalue)
