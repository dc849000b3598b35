"""tl.estimators.LinearRegressor: scikit-learn's own estimator checks, its tools, and the closed form."""

import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.linear_model import LinearRegression, Ridge
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import tinygrad_lr as tl
from tinygrad_lr.estimators import PATIENCE, LinearRegressor

# ----- scikit-learn's check_estimator, one test per check -----


# The defaults pass every check with no expected failure and no ConvergenceWarning (Newton's step is
# exact on least squares). First-order settings pass them too, their warnings on some checks' data let be,
# but for one check with a validation split. Checks that fit twice fix the randomness through `random_state`.
def _expected_failed_checks(estimator):
    if not estimator.validation_split:
        return {}
    return {
        "check_sample_weight_equivalence_on_dense_data": (
            "integer weights against repeated rows: the same objective, but the validation split (the last rows) "
            "holds other rows in the two data sets, so training stops elsewhere"
        )
    }


@parametrize_with_checks(
    [
        LinearRegressor(),  # the defaults: Newton steps, full batch, tol 1e-9 of the starting gradient
        LinearRegressor(
            optimizer="sgd",
            lr=0.1,
            epochs=500,
            tol=1e-4,
            validation_split=0.2,
            early_stopping=True,
            random_state=0,
        ),
        LinearRegressor(optimizer="adam", batch_size=32, epochs=200),  # random_state=None: new batches each fit
    ],
    expected_failed_checks=_expected_failed_checks,
    xfail_strict=True,  # an expected failure that passes is an error: the list above stays true
)
def test_passes_scikit_learns_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        defaults = estimator.get_params() == LinearRegressor().get_params()
        warnings.simplefilter("error" if defaults else "ignore", ConvergenceWarning)
        check(estimator)


# ----- data -----


def _linear_data(n=120, d=4, k=None, noise=0.5, seed=0):
    """X: (n, d) standard normal; y = X @ w + b + noise: (n,) or (n, k)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    coef = rng.uniform(-3, 3, (d,) if k is None else (d, k))
    y = X @ coef + 4.0 + noise * rng.standard_normal((n,) if k is None else (n, k))
    return X, y


def _converging(l2, X, **params):
    """Full-batch gradient descent at half the largest stable step, run until the gradient vanishes."""
    lr = 0.5 * tl.solvers.stable_learning_rate(X, l2)
    return LinearRegressor(
        optimizer="sgd", lr=lr, batch_size=None, epochs=20_000, l2=l2, tol=1e-10, random_state=0, **params
    )


# ----- the closed form -----


@pytest.mark.parametrize("l2", [0.0, 0.05, 1.0])
def test_coef_is_ridges_with_alpha_n_l2_after_convergence(l2):
    X, y = _linear_data()
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        model = _converging(l2, X).fit(X, y)
    ridge = Ridge(alpha=len(X) * l2).fit(X, y)
    assert model.n_iter_ < model.epochs  # stopped by tol, not by running out of epochs
    assert model.coef_.shape == ridge.coef_.shape == (4,)
    np.testing.assert_allclose(model.coef_, ridge.coef_, rtol=0, atol=1e-9)
    assert isinstance(model.intercept_, float)
    assert model.intercept_ == pytest.approx(ridge.intercept_, abs=1e-9)


def test_multi_output_coef_is_ridges_with_alpha_n_k_l2():
    X, y = _linear_data(k=3)
    l2 = 0.05
    model = _converging(l2, X).fit(X, y)
    ridge = Ridge(alpha=len(X) * 3 * l2).fit(X, y)  # the mse averages over all n·k values
    assert model.coef_.shape == ridge.coef_.shape == (3, 4)
    assert model.intercept_.shape == (3,)
    np.testing.assert_allclose(model.coef_, ridge.coef_, rtol=0, atol=1e-8)
    np.testing.assert_allclose(model.intercept_, ridge.intercept_, rtol=0, atol=1e-8)
    assert model.predict(X).shape == (120, 3)


@settings(max_examples=25)
@given(
    n=st.integers(8, 30),
    d=st.integers(1, 4),
    k=st.sampled_from([None, 1, 2]),
    # l2 > 0 bounds the Hessian's condition number (below 100 on these draws; without a penalty a
    # few 8×4 draws reach 5000, too slow for gradient descent in a test): l2 = 0 is tested above
    l2=st.sampled_from([0.1, 1.0]),
    seed=st.integers(0, 2**16),
)
def test_drawn_shapes_fit_predict_and_reach_the_closed_form(n, d, k, l2, seed):
    X, y = _linear_data(n, d, k, seed=seed)
    model = _converging(l2, X).fit(X, y)
    coef, intercept = tl.solvers.ridge(X, y, l2)
    assert model.n_features_in_ == d
    assert not hasattr(model, "feature_names_in_")  # an array has no column names
    assert model.coef_.shape == ((d,) if k is None else (k, d))  # sklearn's layout: the transpose of ridge's
    assert model.predict(X).shape == y.shape
    np.testing.assert_allclose(model.coef_, coef if k is None else coef.T, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(model.intercept_, intercept, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(model.predict(X), X @ model.coef_.T + model.intercept_)


# ----- the defaults: Newton steps, which converge on ordinary data of any scale -----


def _ordinary_data():
    from sklearn.datasets import load_diabetes, make_regression

    (x_train, y_train), _ = tl.datasets.load_boston_housing()
    return {
        "boston, all 13 columns, raw": (x_train, y_train),
        "boston, standardised": (StandardScaler().fit_transform(x_train), y_train),
        "diabetes": load_diabetes(return_X_y=True),
        "make_regression(2000, 20)": make_regression(2000, 20, noise=5, random_state=0),
        "make_regression(500, 300)": make_regression(500, 300, noise=5, random_state=0),  # hundreds of features
    }


@pytest.mark.parametrize("name", list(_ordinary_data()))
def test_the_defaults_reach_least_squares_on_ordinary_data_without_a_warning(name):
    X, y = _ordinary_data()[name]
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        model = LinearRegressor().fit(X, y)
    exact = LinearRegression().fit(X, y)
    assert model.score(X, y) == pytest.approx(exact.score(X, y), abs=1e-4)
    assert model.score(X, y) == pytest.approx(exact.score(X, y), abs=1e-9)  # (in fact to rounding)
    assert model.n_iter_ <= 2  # Newton's first step lands on the optimum of a quadratic


def test_the_boston_pipeline_of_the_issue_scores_as_linear_regression():
    # (the defaults before were Adam at 0.001 for 200 epochs: R² -4.21 on the test rows against 0.72)
    (x_train, y_train), (x_test, y_test) = tl.datasets.load_boston_housing()
    ours = make_pipeline(StandardScaler(), LinearRegressor()).fit(x_train, y_train).score(x_test, y_test)
    exact = make_pipeline(StandardScaler(), LinearRegression()).fit(x_train, y_train).score(x_test, y_test)
    assert exact > 0.7 and ours == pytest.approx(exact, abs=1e-9)


@pytest.mark.parametrize("k", [None, 2])
def test_without_an_intercept_the_fit_goes_through_the_origin(k):
    X, y = _linear_data(k=k)
    model = LinearRegressor(fit_intercept=False).fit(X, y)
    exact = LinearRegression(fit_intercept=False).fit(X, y)
    np.testing.assert_allclose(model.coef_, exact.coef_, rtol=1e-9, atol=1e-12)
    if k is None:
        assert model.intercept_ == 0.0 and isinstance(model.intercept_, float)
    else:
        np.testing.assert_array_equal(model.intercept_, np.zeros(k))
    np.testing.assert_allclose(model.predict(X), X @ exact.coef_.T, rtol=1e-9, atol=1e-9)


def test_a_first_order_optimizer_that_stops_short_warns_with_the_default_tol():
    X, y = _linear_data()
    with pytest.warns(ConvergenceWarning, match=r"still above tol=1e-09 times its norm at the start"):
        LinearRegressor(optimizer="adam", epochs=5).fit(X, y)


@pytest.mark.parametrize(
    "make_random_state",
    [lambda: 0, lambda: np.random.RandomState(0)],  # (made afresh per run: a RandomState is used up by drawing)
    ids=["an int", "a RandomState"],
)
def test_random_state_as_an_int_or_a_randomstate_fixes_the_batches(make_random_state):
    random_state = make_random_state()
    X, y = _linear_data()
    reference = LinearRegressor(optimizer="adam", batch_size=16, epochs=3, tol=None, random_state=0).fit(X, y)
    seed = random_state if isinstance(random_state, int) else np.random.RandomState(0).randint(np.iinfo(np.int32).max)
    model = LinearRegressor(optimizer="adam", batch_size=16, epochs=3, tol=None, random_state=random_state).fit(X, y)
    again = LinearRegressor(optimizer="adam", batch_size=16, epochs=3, tol=None, random_state=seed).fit(X, y)
    np.testing.assert_array_equal(model.coef_, again.coef_)
    if isinstance(random_state, int):
        np.testing.assert_array_equal(model.coef_, reference.coef_)


# ----- scikit-learn's tools -----


def test_in_a_pipeline_with_a_scaler_it_scores_as_least_squares():
    (x_train, y_train), (x_test, y_test) = tl.datasets.load_boston_housing()
    pipe = Pipeline([("scale", StandardScaler()), ("model", LinearRegressor())])
    exact = Pipeline([("scale", StandardScaler()), ("model", LinearRegression())])
    score = pipe.fit(x_train, y_train).score(x_test, y_test)
    best = exact.fit(x_train, y_train).score(x_test, y_test)
    assert best > 0.7
    assert score == pytest.approx(best, abs=1e-9)


def test_grid_search_over_lr_and_l2_picks_the_step_that_converges_and_no_penalty():
    X, y = _linear_data(noise=0.1)
    search = GridSearchCV(
        LinearRegressor(optimizer="adam", epochs=300, tol=None, random_state=0),
        {"lr": [1e-3, 0.1], "l2": [0.0, 1.0]},
        cv=3,
    )
    search.fit(X, y)
    # lr=1e-3 leaves 300 Adam steps far short of the intercept 4; a penalty only biases noiseless-ish data
    assert search.best_params_ == {"l2": 0.0, "lr": 0.1}
    assert search.best_score_ > 0.99
    assert search.best_estimator_.coef_.shape == (4,)


def test_cross_val_score_matches_least_squares_fold_by_fold():
    X, y = _linear_data(noise=3.0)
    folds = KFold(5, shuffle=True, random_state=0)
    ours = cross_val_score(LinearRegressor(), X, y, cv=folds)
    exact = cross_val_score(LinearRegression(), X, y, cv=folds)
    assert ours.shape == (5,)
    np.testing.assert_allclose(ours, exact, rtol=0, atol=1e-12)


def test_clone_and_get_params_round_trip():
    model = LinearRegressor(optimizer="rmsprop", lr=0.01, l2=0.5, random_state=3)
    params = model.get_params()
    assert params["optimizer"] == "rmsprop" and params["lr"] == 0.01 and params["l2"] == 0.5
    assert LinearRegressor().set_params(**params).get_params() == params


# ----- pandas -----


def test_a_dataframe_gives_feature_names_and_a_series_a_1d_target():
    X, y = _linear_data(n=40, d=3)
    frame = pd.DataFrame(X, columns=["rooms", "age", "tax"])
    model = LinearRegressor().fit(frame, pd.Series(y, name="price"))
    assert list(model.feature_names_in_) == ["rooms", "age", "tax"]
    assert model.coef_.shape == (3,)
    with pytest.warns(UserWarning, match="X does not have valid feature names"):  # scikit-learn's rule
        np.testing.assert_allclose(model.predict(frame), model.predict(X), rtol=1e-12)
    with pytest.raises(ValueError, match="feature names"):
        model.predict(frame[["age", "rooms", "tax"]])
    same = LinearRegressor().fit(X, y)
    np.testing.assert_allclose(model.coef_, same.coef_, rtol=1e-12)


def test_a_dataframe_with_text_names_the_column_and_row():
    frame = pd.DataFrame({"rooms": [6.5, 7.1, 5.9], "town": ["a", "b", "c"]})
    with pytest.raises(ValueError, match=r"LinearRegressor.fit: X: column 'town', row 0: 'a' is not a number"):
        LinearRegressor().fit(frame, [1.0, 2.0, 3.0])
    target = pd.Series([1.0, None, 3.0], name="price")
    with pytest.raises(ValueError, match=r"y \(Series 'price'\), row 1: missing value"):
        LinearRegressor().fit(frame[["rooms"]], target)


# ----- training controls -----


def test_tol_stops_early_and_logs_the_gradient_norm():
    X, y = _linear_data()
    model = LinearRegressor(optimizer="adam", lr=0.1, epochs=5000, tol=1e-4, random_state=0).fit(X, y)
    start = np.linalg.norm(np.concatenate([-2 * X.T @ y / len(y), [-2 * y.mean()]]))  # the gradient at zero weights
    assert model.n_iter_ < 5000
    assert len(model.history_["loss"]) == len(model.history_["grad_norm"]) == model.n_iter_
    assert model.history_["grad_norm"][-1] < 1e-4 * start <= min(model.history_["grad_norm"][:-1])


def test_tol_not_reached_is_a_convergence_warning():
    X, y = _linear_data()
    message = r"after 3 epochs the gradient norm is .* still above tol=1e-06 times its norm at the start"
    with pytest.warns(ConvergenceWarning, match=message):
        model = LinearRegressor(optimizer="adam", epochs=3, tol=1e-6, random_state=0).fit(X, y)
    assert model.n_iter_ == 3


def test_no_tol_runs_every_epoch_without_warning():
    X, y = _linear_data(n=30)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = LinearRegressor(optimizer="adam", epochs=7, tol=None, random_state=0).fit(X, y)
    assert model.n_iter_ == 7 and sorted(model.history_) == ["loss"]


def test_early_stopping_keeps_the_weights_of_the_best_validation_epoch():
    X, y = _linear_data(n=100, noise=3.0)
    model = LinearRegressor(
        optimizer="sgd", lr=0.05, batch_size=8, epochs=400, validation_split=0.3, early_stopping=True, random_state=0
    ).fit(X, y)
    val_losses = model.history_["val_loss"]
    assert model.n_iter_ == len(val_losses) < 400  # stopped early
    assert np.argmin(val_losses) == model.n_iter_ - 1 - PATIENCE  # no better epoch among the last PATIENCE
    x_val, y_val = X[70:], y[70:]  # Keras' rule: the last 30% validate
    val_loss = np.mean((model.predict(x_val) - y_val) ** 2)
    assert val_loss == pytest.approx(min(val_losses), rel=1e-12)


def test_early_stopping_without_a_validation_split_is_an_error():
    with pytest.raises(ValueError, match=r"early_stopping=True watches val_loss, which needs validation_split > 0"):
        LinearRegressor(early_stopping=True).fit(*_linear_data(n=20))


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"optimizer": "lbfgs"}, r"optimizer must be one of \['adam', 'gd', 'newton', 'rmsprop', 'sgd'\], got 'lbfgs'"),
        ({"lr": 0.0}, r"lr must be a finite number > 0, got 0.0"),
        ({"epochs": 0}, r"epochs must be an integer >= 1, got 0"),
        ({"batch_size": 2.5}, r"batch_size must be an integer >= 1, got 2.5"),
        ({"l2": -1}, r"l2 must be a finite number >= 0, got -1"),
        ({"validation_split": 1.0}, r"validation_split must be a finite number >= 0 and < 1, got 1.0"),
        ({"tol": -1e-3}, r"tol must be a finite number > 0, got -0.001"),
    ],
)
def test_bad_parameters_are_reported_by_fit_not_init(params, message):
    model = LinearRegressor(**params)  # scikit-learn's rule: __init__ stores, fit checks
    with pytest.raises(ValueError, match="LinearRegressor: " + message):
        model.fit(*_linear_data(n=20))


def test_optimizer_names_are_case_insensitive_and_lr_none_is_keras_default():
    X, y = _linear_data(n=20)
    sgd = LinearRegressor(optimizer="SGD", epochs=1, tol=None, random_state=0).fit(X, y)
    explicit = LinearRegressor(optimizer="sgd", lr=0.01, epochs=1, tol=None, random_state=0).fit(X, y)
    np.testing.assert_array_equal(sgd.coef_, explicit.coef_)


def test_predict_before_fit_is_not_fitted_error():
    with pytest.raises(NotFittedError):
        LinearRegressor().predict(np.ones((2, 3)))


def test_a_diverging_fit_raises_training_diverged_error():
    X, y = _linear_data(n=40)
    with pytest.raises(tl.TrainingDivergedError):
        LinearRegressor(optimizer="sgd", lr=50.0, batch_size=None, epochs=100, random_state=0).fit(X * 100, y)


# ----- packaging -----


def test_importing_the_package_imports_neither_scikit_learn_nor_pandas():
    code = (
        "import sys, tinygrad_lr as tl; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'sklearn', 'pandas', 'scipy'})); "
        "tl.estimators; print('sklearn' in sys.modules, 'estimators' in dir(tl))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split("\n")[:2] == ["[]", "True True"]


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_sample_weights_give_weighted_least_squares_and_a_weighted_score(fit_intercept):
    X, y = _linear_data(noise=2.0)
    w = np.random.default_rng(5).uniform(0.0, 4.0, len(y))
    ours = LinearRegressor(fit_intercept=fit_intercept).fit(X, y, sample_weight=w)
    exact = LinearRegression(fit_intercept=fit_intercept).fit(X, y, sample_weight=w)
    np.testing.assert_allclose(ours.coef_, exact.coef_, rtol=1e-9)
    assert ours.intercept_ == pytest.approx(exact.intercept_, abs=1e-9)
    assert ours.score(X, y, sample_weight=w) == pytest.approx(exact.score(X, y, sample_weight=w), abs=1e-12)
    assert ours.score(X, y, sample_weight=w) != pytest.approx(ours.score(X, y), abs=1e-6)  # (the weights count)


def test_bad_sample_weights_are_reported_by_fit():
    X, y = _linear_data(n=10)
    with pytest.raises(ValueError, match=r"LinearRegressor.fit: sample_weight must be >= 0; sample 0 has weight -1.0"):
        LinearRegressor().fit(X, y, sample_weight=-np.ones(10))
