"""The closed form: least squares against independent references, the optimality of the answer (its
gradient vanishes, by hand and by the engine), the minimum-norm rule, accuracy on ill-conditioned
data, the learning-rate bound of gradient descent, shapes, and every input error."""

import math
import re
import warnings
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import tinygrad_lr as tl
from tests.messages import raises_exactly
from tests.strategies import polynomial_problems, rank_deficient_problems, regression_problems
from tinygrad_lr import solvers

# ----- independent references, written out in float64 -----


def _two_d(X):
    X = np.asarray(X, dtype=np.float64)
    return X[:, None] if X.ndim == 1 else X


def _design(X, fit_intercept):
    """A = [X, 1] with an intercept, else X: the matrix whose columns are the parameters [w, b]."""
    X = _two_d(X)
    return np.hstack([X, np.ones((len(X), 1))]) if fit_intercept else X


def _centred(X, y, fit_intercept):
    X = _two_d(X)
    return (X - X.mean(axis=0), y - y.mean(axis=0)) if fit_intercept else (X, y)


def _objective(X, y, coef, intercept, l2):
    """mean((X @ coef + intercept - y)**2) + l2 * sum(coef**2), the mean over all entries of y."""
    return np.mean((_two_d(X) @ coef + intercept - y) ** 2) + l2 * np.sum(coef**2)


def _numpy_gradient(X, y, coef, intercept, l2):
    """d objective / d(coef, intercept), by hand: (2/N)·Xᵀr + 2·l2·coef and (2/N)·sum(r)."""
    X = _two_d(X)
    residual = X @ coef + intercept - y
    return 2 / y.size * X.T @ residual + 2 * l2 * coef, 2 / y.size * residual.sum(axis=0)


def _engine_gradient(X, y, coef, intercept, l2):
    """The same gradient from the engine: build the objective from its ops and call backward."""
    w = tl.Tensor(coef, requires_grad=True, dtype=np.float64)
    b = tl.Tensor(intercept, requires_grad=True, dtype=np.float64)
    X_t, y_t = tl.Tensor(_two_d(X), dtype=np.float64), tl.Tensor(y, dtype=np.float64)
    loss = ((X_t @ w + b - y_t) ** 2).mean() + l2 * (w**2).sum()
    loss.backward()
    return w.grad, b.grad


def _gradient_scale(X, y, coef, intercept, l2):
    """A bound on the size of the terms the gradient sums (|A|ᵀ(|A||θ| + |y|)): what its rounding
    error is measured against."""
    A = _design(X, True)
    theta = np.vstack([np.reshape(coef, (A.shape[1] - 1, -1)), np.reshape(intercept, (1, -1))])
    abs_y = np.abs(y).reshape(len(A), -1)
    return float((2 / y.size * np.abs(A).T @ (np.abs(A) @ np.abs(theta) + abs_y)).max() + 2 * l2 * np.abs(coef).max())


def _explicit_hessian(X, l2, fit_intercept):
    """H = (2/n)·AᵀA + 2·l2·D, D = I on the weights and 0 on the bias."""
    A = _design(X, fit_intercept)
    d = _two_d(X).shape[1]
    return 2 / len(A) * A.T @ A + 2 * l2 * np.diag([1.0] * d + [0.0] * (A.shape[1] - d))


def _gradient_descent(X, y, l2, fit_intercept, lr, steps, start):
    """Plain full-batch gradient descent on the objective from `start` = [w, b]; the parameters
    and the loss after every step."""
    X = _two_d(X)
    d = X.shape[1]
    theta = np.array(start, dtype=np.float64)
    losses = []
    for _ in range(steps):
        coef, intercept = theta[:d], theta[d] if fit_intercept else 0.0
        grad_coef, grad_intercept = _numpy_gradient(X, y, coef, intercept, l2)
        theta = theta - lr * (np.append(grad_coef, grad_intercept) if fit_intercept else grad_coef)
        losses.append(_objective(X, y, theta[:d], theta[d] if fit_intercept else 0.0, l2))
    return theta, np.array(losses)


def _parameters(coef, intercept, fit_intercept):
    return np.append(coef, intercept) if fit_intercept else np.asarray(coef)


# ----- ols and ridge against references -----


@given(regression_problems())
def test_ols_agrees_with_lstsq_on_the_augmented_design(problem):
    X, y, _, fit_intercept = problem
    reference = np.linalg.lstsq(_design(X, fit_intercept), y, rcond=None)[0]
    coef, intercept = solvers.ols(X, y, fit_intercept=fit_intercept)
    d = _two_d(X).shape[1]
    scale = max(1.0, np.abs(reference).max())
    np.testing.assert_allclose(coef, reference[:d], rtol=1e-7, atol=1e-8 * scale)
    np.testing.assert_allclose(intercept, reference[d] if fit_intercept else 0.0, rtol=1e-7, atol=1e-8 * scale)


@given(regression_problems())
def test_ridge_equals_the_normal_equations_on_well_conditioned_data(problem):
    X, y, l2, fit_intercept = problem
    Xc, yc = _centred(X, y, fit_intercept)
    # the mean runs over all y.size = n·k entries, so the penalty on each column is n·k·l2
    gram = Xc.T @ Xc + y.size * l2 * np.eye(Xc.shape[1])
    assume(np.linalg.cond(gram) < 1e8)
    reference = np.linalg.solve(gram, Xc.T @ yc)
    coef, intercept = solvers.ridge(X, y, l2, fit_intercept=fit_intercept)
    scale = max(1.0, np.abs(reference).max())
    np.testing.assert_allclose(coef, reference, rtol=1e-7, atol=1e-8 * scale)
    expected_intercept = y.mean(axis=0) - _two_d(X).mean(axis=0) @ reference if fit_intercept else 0 * y[0]
    np.testing.assert_allclose(intercept, expected_intercept, rtol=1e-7, atol=1e-8 * max(scale, np.abs(y).max()))


@given(regression_problems())
def test_gradient_of_the_training_objective_vanishes_at_ridge(problem):
    X, y, l2, fit_intercept = problem
    coef, intercept = solvers.ridge(X, y, l2, fit_intercept=fit_intercept)
    tolerance = 1e-9 * _gradient_scale(X, y, coef, intercept, l2)
    by_hand = _numpy_gradient(X, y, coef, intercept, l2)
    by_engine = _engine_gradient(X, y, coef, intercept, l2)
    for grad_coef, grad_intercept in (by_hand, by_engine):
        np.testing.assert_allclose(grad_coef, 0.0, atol=tolerance)
        if fit_intercept:  # without one, the bias is held at 0 and its gradient need not vanish
            np.testing.assert_allclose(grad_intercept, 0.0, atol=tolerance)
    np.testing.assert_allclose(by_engine[0], by_hand[0], rtol=1e-6, atol=tolerance)


@given(regression_problems())
def test_ridge_on_2d_y_averages_over_all_entries(problem):
    X, y, l2, fit_intercept = problem
    Y = y.reshape(len(y), -1)
    coef, intercept = solvers.ridge(X, Y, l2, fit_intercept=fit_intercept)
    for j in range(Y.shape[1]):
        # one column of k, alone, with its share of the mean made up by a k times larger penalty
        coef_j, intercept_j = solvers.ridge(X, Y[:, j], Y.shape[1] * l2, fit_intercept=fit_intercept)
        scale = max(1.0, np.abs(coef_j).max(), abs(intercept_j))
        np.testing.assert_allclose(coef[:, j], coef_j, rtol=1e-9, atol=1e-10 * scale)
        np.testing.assert_allclose(intercept[j], intercept_j, rtol=1e-9, atol=1e-10 * scale)


@given(regression_problems())
def test_ridge_with_zero_l2_is_ols(problem):
    X, y, _, fit_intercept = problem
    coef, intercept = solvers.ridge(X, y, 0.0, fit_intercept=fit_intercept)
    ols_coef, ols_intercept = solvers.ols(X, y, fit_intercept=fit_intercept)
    np.testing.assert_array_equal(coef, ols_coef)
    np.testing.assert_array_equal(intercept, ols_intercept)


# ----- rank-deficient problems -----


@given(rank_deficient_problems())
def test_ols_rank_deficient_gives_the_minimum_norm_solution(problem):
    X, y, _, fit_intercept = problem
    Xc, yc = _centred(X, y, fit_intercept)
    reference = np.linalg.pinv(Xc, rcond=1e-10) @ yc
    coef, intercept = solvers.ols(X, y, fit_intercept=fit_intercept)
    scale = max(1.0, np.abs(reference).max())
    np.testing.assert_allclose(coef, reference, rtol=1e-7, atol=1e-8 * scale)
    if fit_intercept:
        np.testing.assert_allclose(intercept, y.mean(axis=0) - X.mean(axis=0) @ reference, atol=1e-7 * scale)


@given(rank_deficient_problems())
def test_ols_rank_deficient_still_minimises_the_loss(problem):
    X, y, _, fit_intercept = problem
    coef, intercept = solvers.ols(X, y, fit_intercept=fit_intercept)
    A = _design(X, fit_intercept)
    best = np.linalg.lstsq(A, y, rcond=None)[0]
    best_loss = np.mean((A @ best - y) ** 2)
    assert _objective(X, y, coef, intercept, 0.0) <= best_loss + 1e-12 * np.mean(y**2)
    tolerance = 1e-9 * _gradient_scale(X, y, coef, intercept, 0.0)
    grad_coef, grad_intercept = _numpy_gradient(X, y, coef, intercept, 0.0)
    np.testing.assert_allclose(grad_coef, 0.0, atol=tolerance)
    np.testing.assert_allclose(grad_intercept if fit_intercept else 0.0, 0.0, atol=tolerance)


def test_ols_duplicated_column_splits_the_weight_equally():
    x = np.arange(10.0)
    coef, intercept = solvers.ols(np.column_stack([x, x]), 3 * x + 1)
    np.testing.assert_allclose(coef, [1.5, 1.5])
    assert intercept == pytest.approx(1.0)


# ----- shapes and types -----


@given(regression_problems(), st.booleans())
def test_shapes_follow_y_and_results_are_float64(problem, fit_intercept):
    X, y, l2, _ = problem
    d = _two_d(X).shape[1]
    for coef, intercept in (solvers.ols(X, y, fit_intercept), solvers.ridge(X, y, l2, fit_intercept)):
        assert coef.dtype == np.float64
        if y.ndim == 1:
            assert coef.shape == (d,)
            assert type(intercept) is float
        else:
            assert coef.shape == (d, y.shape[1])
            assert isinstance(intercept, np.ndarray) and intercept.dtype == np.float64
            assert intercept.shape == (y.shape[1],)
        if not fit_intercept:
            assert np.all(intercept == 0)


@given(regression_problems())
def test_fit_intercept_false_gives_zero_intercept(problem):
    X, y, l2, _ = problem
    _, intercept = solvers.ridge(X, y, l2, fit_intercept=False)
    if y.ndim == 1:
        assert type(intercept) is float and intercept == 0.0
    else:
        np.testing.assert_array_equal(intercept, np.zeros(y.shape[1]))


@given(regression_problems(), st.booleans())
def test_one_dimensional_X_is_n_samples_of_one_feature(problem, fit_intercept):
    X, y, l2, _ = problem
    x = _two_d(X)[:, 0]
    coef, intercept = solvers.ridge(x, y, l2, fit_intercept)
    coef_2d, intercept_2d = solvers.ridge(x[:, None], y, l2, fit_intercept)
    np.testing.assert_array_equal(coef, coef_2d)
    np.testing.assert_array_equal(intercept, intercept_2d)
    assert coef.shape[0] == 1


def test_integer_inputs_are_converted_to_float64():
    X = [[1, 0], [2, 1], [3, 5], [4, 2]]
    y = [3, 5, 8, 9]
    coef, intercept = solvers.ols(X, y)
    expected_coef, expected_intercept = solvers.ols(np.array(X, dtype=float), np.array(y, dtype=float))
    assert coef.dtype == np.float64 and type(intercept) is float
    np.testing.assert_array_equal(coef, expected_coef)
    assert intercept == expected_intercept
    ridge_coef, _ = solvers.ridge(np.array(X, dtype=np.int32), np.array(y, dtype=np.int64), 1)
    assert ridge_coef.dtype == np.float64
    assert solvers.stable_learning_rate([0, 1, 2, 3], l2=1) > 0


def test_float32_inputs_give_float64_results():
    x = np.linspace(0, 1, 20, dtype=np.float32)
    coef, intercept = solvers.ols(x, 2 * x + 1)
    assert coef.dtype == np.float64 and type(intercept) is float
    np.testing.assert_allclose([coef[0], intercept], [2.0, 1.0], rtol=1e-6)


# ----- ill-conditioned data -----


def _rms(residual):
    return float(np.sqrt(np.mean(residual**2)))


@given(polynomial_problems())
def test_ols_residual_on_ill_conditioned_data_is_as_good_as_lstsq(problem):
    X, y, _, fit_intercept = problem
    A = _design(X, fit_intercept)
    assume(np.linalg.cond(A) < 1e13)  # beyond that "the least-squares solution" is a matter of rounding
    reference = _rms(A @ np.linalg.lstsq(A, y, rcond=None)[0] - y)
    coef, intercept = solvers.ols(X, y)
    assert _rms(X @ coef + intercept - y) <= reference * (1 + 1e-9) + 1e-8 * _rms(y)


def test_ols_on_the_tutorial_quadratic_is_as_accurate_as_lstsq():
    x = np.arange(10000.0)
    X = np.column_stack([x, x**2])
    y = 2.0 + 3.657 * x + 1e-4 * x**2
    A = _design(X, True)
    assert np.linalg.cond(A) > 1e8
    reference = _rms(A @ np.linalg.lstsq(A, y, rcond=None)[0] - y)
    coef, intercept = solvers.ols(X, y)
    assert _rms(X @ coef + intercept - y) <= max(reference, 1e-12 * _rms(y))
    np.testing.assert_allclose([*coef, intercept], [3.657, 1e-4, 2.0], rtol=1e-9)


def test_ols_keeps_digits_that_the_normal_equations_lose():
    # A degree-10 Vandermonde on 50 points of [0, 1]: cond(A) ~ 1e7, so cond(AᵀA) ~ 1e14 and the
    # normal equations keep about 2 of 16 digits while an SVD of A keeps about 9. The data are an
    # exact polynomial, so the true coefficients are known (all ones) and the best residual is 0.
    t = np.linspace(0.0, 1.0, 50)
    A = np.vander(t, 11, increasing=True)
    y = A @ np.ones(11)
    coef, intercept = solvers.ols(A[:, 1:], y)
    ols_error = np.abs(np.append(intercept, coef) - 1).max()
    normal_equations = np.linalg.solve(A.T @ A, A.T @ y)
    normal_error = np.abs(normal_equations - 1).max()
    assert ols_error < 1e-7 < 1e-5 < normal_error
    assert _rms(A @ normal_equations - y) > 100 * _rms(A[:, 1:] @ coef + intercept - y)


# ----- the learning-rate bound of gradient descent -----


@given(regression_problems())
def test_stable_learning_rate_is_2_over_the_largest_hessian_eigenvalue(problem):
    X, _, l2, fit_intercept = problem
    eigenvalues = np.linalg.eigvalsh(_explicit_hessian(X, l2, fit_intercept))
    assert solvers.stable_learning_rate(X, l2, fit_intercept) == pytest.approx(2 / eigenvalues[-1], rel=1e-10)
    assume(eigenvalues[-1] / eigenvalues[0] < 1e8)  # where eigvalsh still resolves the smallest one
    condition_number = solvers.hessian_condition_number(X, l2, fit_intercept)
    assert condition_number == pytest.approx(eigenvalues[-1] / eigenvalues[0], rel=1e-6)


def _convergence_setup(problem):
    """The explicit Hessian's eigen-decomposition and the optimum of a problem that gradient
    descent can solve in a few thousand steps (condition number below 300)."""
    X, y, l2, fit_intercept = problem
    eigenvalues, eigenvectors = np.linalg.eigh(_explicit_hessian(X, l2, fit_intercept))
    assume(eigenvalues[-1] / eigenvalues[0] < 300)
    coef, intercept = solvers.ridge(X, y, l2, fit_intercept)
    return eigenvalues, eigenvectors, _parameters(coef, intercept, fit_intercept)


@given(regression_problems(max_offset=1.0, min_scale=0.5, one_target=True))
def test_gradient_descent_just_below_the_bound_converges_to_ridge(problem):
    X, y, l2, fit_intercept = problem
    eigenvalues, _, optimum = _convergence_setup(problem)
    lr = 0.9 * solvers.stable_learning_rate(X, l2, fit_intercept)
    # on a quadratic, each step multiplies the error along eigenvector i by (1 - lr·λ_i)
    contraction = np.abs(1 - lr * eigenvalues).max()
    assert contraction < 1
    steps = math.ceil(np.log(1e-13) / np.log(contraction))
    theta, _ = _gradient_descent(X, y, l2, fit_intercept, lr, steps, np.zeros_like(optimum))
    np.testing.assert_allclose(theta, optimum, rtol=1e-8, atol=1e-9 * max(1.0, np.abs(optimum).max()))


@given(regression_problems(max_offset=1.0, min_scale=0.5, one_target=True))
def test_gradient_descent_just_above_the_bound_diverges(problem):
    X, y, l2, fit_intercept = problem
    _, eigenvectors, optimum = _convergence_setup(problem)
    lr = 1.1 * solvers.stable_learning_rate(X, l2, fit_intercept)
    # start one unit along the steepest direction, where each step multiplies the error by -1.2
    start = optimum + eigenvectors[:, -1]
    d = _two_d(X).shape[1]
    start_loss = _objective(X, y, start[:d], start[d] if fit_intercept else 0.0, l2)
    best_loss = _objective(X, y, optimum[:d], optimum[d] if fit_intercept else 0.0, l2)
    _, losses = _gradient_descent(X, y, l2, fit_intercept, lr, 100, start)
    assert np.all(np.diff(losses) > 0)
    assert losses[-1] - best_loss > 1e10 * (start_loss - best_loss)


def test_tutorial_data_has_a_tiny_learning_rate_bound_and_a_huge_condition_number():
    x = np.arange(10000.0)  # the second walkthrough: one feature of size up to 1e4, and a bias
    bound = solvers.stable_learning_rate(x)
    assert 1e-8 < bound < 1e-7  # ≈ 3.0e-8: 2 / λ_max with λ_max ≈ 2·mean(x²) ≈ 6.7e7
    assert bound == pytest.approx(1 / np.mean(x**2), rel=0.01)
    assert solvers.hessian_condition_number(x) > 1e7  # ≈ 1.3e8: the bias moves ~1e8 times slower
    # standardising the feature is the cure
    standardised = (x - x.mean()) / x.std()
    assert solvers.hessian_condition_number(standardised) == pytest.approx(1.0)
    assert solvers.stable_learning_rate(standardised) == pytest.approx(1.0)


def test_condition_number_is_accurate_beyond_what_an_eigensolver_on_the_hessian_resolves():
    # X = U·diag(1, 1e-9)·Vᵀ: the Hessian (2/n)·XᵀX has eigenvalues 1 and 1e-18 (times 2/n), and
    # its smallest one drowns in the rounding of the largest (1e-16); X's singular values do not
    rng = np.random.default_rng(0)
    U, _ = np.linalg.qr(rng.normal(size=(6, 2)))
    V, _ = np.linalg.qr(rng.normal(size=(2, 2)))
    X = U @ np.diag([1.0, 1e-9]) @ V.T
    assert solvers.hessian_condition_number(X, fit_intercept=False) == pytest.approx(1e18, rel=1e-4)


def test_stable_learning_rate_of_huge_features_is_the_tiny_bound_not_zero():
    # x ~ 1e155: the Hessian's eigenvalue 2·mean(x²) ~ 1e313 overflows float64, its bound ~1e-313 does not
    x = 1e155 * np.arange(1.0, 51.0)
    exact = len(x) / sum(Fraction(value) ** 2 for value in x)  # 1/mean(x²), without rounding
    assert solvers.stable_learning_rate(x, fit_intercept=False) == pytest.approx(float(exact), rel=1e-9, abs=0)
    assert solvers.stable_learning_rate(x) == pytest.approx(float(exact), rel=1e-9, abs=0)  # the bias adds ~1e-310
    # an l2 of 1e308 gives an eigenvalue of at least 2e308, beyond float64; its bound is ~1e-308
    assert solvers.stable_learning_rate(np.arange(5.0), l2=1e308) == pytest.approx(1e-308, rel=1e-9, abs=0)


def test_stable_learning_rate_below_the_smallest_float_is_zero_and_above_the_largest_is_inf():
    x = np.arange(1.0, 51.0)
    assert solvers.stable_learning_rate(1e200 * x, fit_intercept=False) == 0.0  # ~1e-403
    assert solvers.stable_learning_rate(1e-200 * x, fit_intercept=False) == math.inf  # ~1e397


@pytest.mark.parametrize("scale", [1e-200, 1e200])
def test_condition_number_does_not_depend_on_the_scale_of_the_features(scale):
    X = np.random.default_rng(0).normal(size=(20, 3))
    expected = solvers.hessian_condition_number(X, fit_intercept=False)
    assert solvers.hessian_condition_number(scale * X, fit_intercept=False) == pytest.approx(expected, rel=1e-9)


def test_condition_number_of_a_singular_hessian_is_inf():
    x = np.arange(10.0)
    assert solvers.hessian_condition_number(np.column_stack([x, x])) == math.inf
    assert solvers.hessian_condition_number(np.ones(5)) == math.inf  # a constant feature is the bias
    assert solvers.hessian_condition_number(np.ones((3, 5)), fit_intercept=False) == math.inf  # d > n
    assert math.isfinite(solvers.hessian_condition_number(np.column_stack([x, x]), l2=0.1, fit_intercept=False))
    assert solvers.stable_learning_rate(np.zeros(4), fit_intercept=False) == math.inf  # a zero Hessian


# ----- input errors -----

GOOD_X, GOOD_Y = np.arange(20.0).reshape(10, 2), np.arange(10.0)
ALL = {
    "ols": lambda X, y=GOOD_Y, l2=0.0: solvers.ols(X, y),
    "ridge": lambda X, y=GOOD_Y, l2=0.1: solvers.ridge(X, y, l2),
    "stable_learning_rate": lambda X, y=None, l2=0.0: solvers.stable_learning_rate(X, l2),
    "hessian_condition_number": lambda X, y=None, l2=0.0: solvers.hessian_condition_number(X, l2),
}
WITH_Y = ["ols", "ridge"]
WITH_L2 = ["ridge", "stable_learning_rate", "hessian_condition_number"]


def _with_value(array, index, value):
    array = np.array(array, dtype=np.float64)
    array[index] = value
    return array


BAD_X = {
    "3-d": (np.ones((10, 2, 1)), r"X must be 1-D .* or 2-D .*; got shape \(10, 2, 1\)"),
    "0-d": (np.float64(3.0), r"X must be 1-D .* or 2-D .*; got shape \(\)"),
    "no samples": (np.ones((0, 2)), r"no samples \(X has shape \(0, 2\)\)"),
    "no features": (np.ones((10, 0)), r"X has no features \(shape \(10, 0\)\)"),
    "nan": (
        _with_value(GOOD_X, (3, 1), np.nan),
        r"X \(shape \(10, 2\)\) has non-finite values: the first is nan at index \(3, 1\)",
    ),
    "inf": (
        _with_value(GOOD_X[:, 0], 7, -np.inf),
        r"X \(shape \(10,\)\) has non-finite values: the first is -inf at index \(7,\)",
    ),
    "strings": (np.array([["a", "b"]] * 10), r"X must hold real numbers, got an array of dtype <U1"),
    "complex": (GOOD_X + 1j, r"X must hold real numbers, got an array of dtype complex128"),
}


@pytest.mark.parametrize("function", ALL)
@pytest.mark.parametrize("case", BAD_X)
def test_every_function_rejects_bad_X_naming_itself(function, case):
    X, message = BAD_X[case]
    y = GOOD_Y[: len(X)] if np.ndim(X) > 0 else GOOD_Y
    with pytest.raises(ValueError, match=f"^{function}: {message}"):
        ALL[function](X, y) if function in WITH_Y else ALL[function](X)


BAD_Y = {
    "fewer samples": (np.arange(9.0), r"X has 10 samples but y has 9; .*X has shape \(10, 2\), y has shape \(9,\)"),
    "more samples": (np.ones((11, 2)), r"X has 10 samples but y has 11"),
    "0-d": (np.float64(1.0), r"y must be 1-D .* or 2-D .*; got shape \(\)"),
    "3-d": (np.ones((10, 1, 1)), r"y must be 1-D .* or 2-D .*; got shape \(10, 1, 1\)"),
    "no targets": (np.ones((10, 0)), r"y has no target columns \(shape \(10, 0\)\)"),
    "nan": (
        _with_value(GOOD_Y, 4, np.nan),
        r"y \(shape \(10,\)\) has non-finite values: the first is nan at index \(4,\)",
    ),
    "infs": (_with_value(np.ones((10, 2)), (slice(2, 5), 1), np.inf), r"y .* the first is inf at index \(2, 1\)"),
}


@pytest.mark.parametrize("function", WITH_Y)
@pytest.mark.parametrize("case", BAD_Y)
def test_ols_and_ridge_reject_bad_y(function, case):
    y, message = BAD_Y[case]
    with pytest.raises(ValueError, match=f"^{function}: {message}"):
        ALL[function](GOOD_X, y)


def test_empty_data_is_rejected_even_when_lengths_match():
    with pytest.raises(ValueError, match=r"^ols: no samples"):
        solvers.ols(np.ones((0, 3)), np.ones(0))
    with pytest.raises(ValueError, match=r"^ridge: no samples"):
        solvers.ridge([], [], 1.0)


@pytest.mark.parametrize("function", WITH_L2)
@pytest.mark.parametrize("l2", [-0.1, -1e-300, np.nan, np.inf, -np.inf, "big", None, [0.1, 0.2]])
def test_l2_must_be_a_finite_number_at_least_zero(function, l2):
    message = re.escape(f"{function}: l2 must be a finite number >= 0, got {l2!r}")
    with pytest.raises(ValueError, match=f"^{message}$"):
        ALL[function](GOOD_X, GOOD_Y, l2=l2)


def test_l2_accepts_numpy_and_integer_scalars():
    expected = solvers.ridge(GOOD_X, GOOD_Y, 2.0)
    for l2 in (2, np.float32(2.0), np.int64(2), np.array(2.0)):
        np.testing.assert_array_equal(solvers.ridge(GOOD_X, GOOD_Y, l2)[0], expected[0])


# ===== the fine print: worked examples and every message whole (was test_solvers_and_data_details.py) =====


# ----- solvers: worked examples, exact to rounding -----
# x = 0, 1, 2, 3 and y = 1, 3, 5, 7: centred, sum(x²) = 5 and sum(x·y) = 10; uncentred, 14 and 34.
X4, Y4 = np.arange(4.0), np.array([1.0, 3.0, 5.0, 7.0])


@pytest.mark.parametrize(
    "l2, fit_intercept, coef, intercept",
    [
        (0.0, True, 2.0, 1.0),
        (0.5, True, 10 / 7, 4 - 1.5 * 10 / 7),  # penalty n·l2 = 2 added to sum(x²) = 5
        (2, True, 10 / 13, 4 - 1.5 * 10 / 13),
        (0.5, False, 34 / 16, 0.0),  # no centring: 34 / (14 + 2)
        (0.0, False, 34 / 14, 0.0),
    ],
)
def test_ridge_worked_example_one_target(l2, fit_intercept, coef, intercept):
    got_coef, got_intercept = solvers.ridge(X4, Y4, l2, fit_intercept=fit_intercept)
    np.testing.assert_allclose(got_coef, [coef], rtol=1e-13)
    assert got_intercept == pytest.approx(intercept, rel=1e-13, abs=1e-13)


def test_ols_and_ridge_fit_an_intercept_by_default():
    coef, intercept = solvers.ols(X4, Y4)
    np.testing.assert_allclose(coef, [2.0], rtol=1e-13)
    assert intercept == pytest.approx(1.0, rel=1e-13)
    coef, intercept = solvers.ridge(X4, Y4, 0.5)
    np.testing.assert_allclose(coef, [10 / 7], rtol=1e-13)
    assert intercept == pytest.approx(13 / 7, rel=1e-13)


def test_ridge_worked_example_two_targets_shares_the_mean_over_all_entries():
    Y = np.column_stack([Y4, np.full(4, 10.0)])  # the second target is constant
    coef, intercept = solvers.ols(X4, Y)
    np.testing.assert_allclose(coef, [[2.0, 0.0]], rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(intercept, [1.0, 10.0], rtol=1e-13)
    coef, intercept = solvers.ridge(X4, Y, 0.5)  # penalty n·k·l2 = 4
    np.testing.assert_allclose(coef, [[10 / 9, 0.0]], rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(intercept, [4 - 1.5 * 10 / 9, 10.0], rtol=1e-13)
    coef, intercept = solvers.ols(X4, Y, fit_intercept=False)
    np.testing.assert_allclose(coef, [[34 / 14, 60 / 14]], rtol=1e-13)
    assert intercept.shape == (2,) and intercept.dtype == np.float64
    np.testing.assert_array_equal(intercept, [0.0, 0.0])


@pytest.mark.parametrize("tiny", [3 * 2.0**-52, 2.0**-50, 1e-12])
def test_ols_keeps_a_tiny_singular_value_that_lstsq_keeps(tiny):
    # numpy.linalg.lstsq drops singular values below eps·max(n, d)·σ_max (here 2·eps); ols solves
    # the problem as given, so one just above that cutoff still gets its exact coefficient 1/tiny
    X = np.diag([1.0, tiny])
    coef, intercept = solvers.ols(X, [1.0, 1.0], fit_intercept=False)
    np.testing.assert_allclose(coef, [1.0, 1 / tiny], rtol=1e-12)
    np.testing.assert_allclose(coef, np.linalg.lstsq(X, [1.0, 1.0], rcond=None)[0], rtol=1e-12)
    assert intercept == 0.0


def test_ridge_with_an_l2_near_float64s_largest_shrinks_coef_to_near_0_without_a_warning():
    # n·l2 is past float64's largest: the penalty is held apart from its exponent, and the answer is X·y / (n·l2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        coef, intercept = solvers.ridge(X4, Y4, 1e308)
    assert coef[0] == pytest.approx(10 / 4 / 1e308, rel=1e-12, abs=0)  # sum(xc·y) / (sum(xc²) + n·l2), xc² gone
    assert intercept == pytest.approx(4.0)


# ----- solvers: the learning-rate bound and the condition number, worked out -----
# for x = 0, 1, 2, 3 with a bias, H = (2/4)·[[14, 6], [6, 4]] = [[7, 3], [3, 2]]: λ = (9 ± sqrt(61)) / 2


def test_stable_learning_rate_worked_example():
    assert solvers.stable_learning_rate(X4) == pytest.approx(4 / (9 + math.sqrt(61)), rel=1e-13)
    # l2 = 0.5 adds 2·l2 = 1 to the weight's diagonal only: [[8, 3], [3, 2]], λ_max = 5 + sqrt(18)
    assert solvers.stable_learning_rate(X4, l2=0.5) == pytest.approx(2 / (5 + math.sqrt(18)), rel=1e-13)
    # without a bias H = 2·mean(x²) = 7
    assert solvers.stable_learning_rate(X4, fit_intercept=False) == pytest.approx(2 / 7, rel=1e-13)


def test_stable_learning_rate_of_a_constant_feature_counts_the_bias_by_default():
    # x = 1: with the bias, A = [1, 1] and H = 2·[[1, 1], [1, 1]] has λ_max = 4; without, H = 2
    assert solvers.stable_learning_rate(np.ones(4)) == pytest.approx(0.5, rel=1e-13)
    assert solvers.stable_learning_rate(np.ones(4), fit_intercept=False) == pytest.approx(1.0, rel=1e-13)
    # one sample of 1 among zeros, no bias: H = 2·mean(x²) = 0.5, so the bound is exactly 4
    assert solvers.stable_learning_rate([1.0, 0.0, 0.0, 0.0], fit_intercept=False) == 4.0


def test_hessian_condition_number_worked_example():
    expected = (9 + math.sqrt(61)) / (9 - math.sqrt(61))
    assert solvers.hessian_condition_number(X4) == pytest.approx(expected, rel=1e-12)
    expected_with_l2 = (10 + math.sqrt(72)) / (10 - math.sqrt(72))  # [[8, 3], [3, 2]]
    assert solvers.hessian_condition_number(X4, l2=0.5) == pytest.approx(expected_with_l2, rel=1e-12)
    assert solvers.hessian_condition_number(X4, fit_intercept=False) == 1.0  # one parameter
    assert solvers.hessian_condition_number(np.eye(3), fit_intercept=False) == 1.0
    # the default is l2 = 0 and a bias: a constant feature is the bias again, singular
    assert solvers.hessian_condition_number(np.ones(4)) == math.inf


@pytest.mark.parametrize("tiny", [2.0**-53, 2.0**-52, 2.0**-51, 3 * 2.0**-52, 2.0**-50, 1e-12])
def test_hessian_is_singular_exactly_when_matrix_rank_says_so(tiny):
    # X = diag(1, tiny): the Hessian's eigenvalues are in the ratio 1 : tiny²; tiny is rounding noise
    # (the Hessian singular) when numpy.linalg.matrix_rank, with its tolerance eps·max(n, d)·σ_max
    # (here 2·eps = 2**-51, that value included), calls X rank-deficient
    X = np.diag([1.0, tiny])
    condition_number = solvers.hessian_condition_number(X, fit_intercept=False)
    if np.linalg.matrix_rank(X) < 2:
        assert condition_number == math.inf
    else:
        assert condition_number == pytest.approx(tiny**-2, rel=1e-12)
    assert solvers.stable_learning_rate(X, fit_intercept=False) == pytest.approx(2.0, rel=1e-13)  # 2 / (2·1/2)


def test_bounds_beyond_float64_are_returned_without_warnings_or_floating_point_errors():
    x = np.arange(1.0, 51.0)
    X = np.column_stack([x, 2 * x])
    with warnings.catch_warnings(), np.errstate(all="raise"):
        warnings.simplefilter("error")
        assert solvers.stable_learning_rate(1e200 * x, fit_intercept=False) == 0.0  # ~1e-403 underflows
        assert solvers.stable_learning_rate(1e-200 * x, fit_intercept=False) == math.inf  # ~1e397 overflows
        assert solvers.stable_learning_rate(np.zeros((4, 2))) == 1.0  # only the bias moves: H = 2, bound 2/2
        assert solvers.stable_learning_rate(np.zeros(4), fit_intercept=False) == math.inf  # a zero Hessian
        assert solvers.hessian_condition_number(X) == math.inf  # rank 2 of 3 parameters
        assert solvers.hessian_condition_number(X, fit_intercept=False) == math.inf  # rank 1 of 2
        assert solvers.hessian_condition_number(np.zeros(4), fit_intercept=False) == math.inf
        assert math.isfinite(solvers.hessian_condition_number(X4))
        solvers.ols(X4, Y4)
        solvers.ridge(X, x, 0.1)


# ----- solvers: every message, whole -----

SOLVER_ERRORS = [
    (
        (np.ones((3, 2, 1)), np.ones(3)),
        "X must be 1-D (n samples of one feature) or 2-D (n samples, d features); got shape (3, 2, 1)",
    ),
    (
        (np.ones((3, 1)), np.ones((3, 1, 1))),
        "y must be 1-D (n targets) or 2-D (n samples, k targets); got shape (3, 1, 1)",
    ),
    (
        (np.ones((3, 1)), np.ones(2)),
        "X has 3 samples but y has 2; they must describe the same samples (X has shape (3, 1), y has shape (2,))",
    ),
    ((np.ones((0, 1)), np.ones(0)), "no samples (X has shape (0, 1)); at least one is needed"),
    ((np.ones((3, 0)), np.ones(3)), "X has no features (shape (3, 0)); at least one column is needed"),
    ((np.ones((3, 1)), np.ones((3, 0))), "y has no target columns (shape (3, 0)); at least one is needed"),
    (([["a"]], [1.0]), "X must hold real numbers, got an array of dtype <U1"),
    (([[1.0]], ["a"]), "y must hold real numbers, got an array of dtype <U1"),
]


@pytest.mark.parametrize("function", ["ols", "ridge"])
@pytest.mark.parametrize("arguments, message", SOLVER_ERRORS)
def test_ols_and_ridge_messages(function, arguments, message):
    call = solvers.ols if function == "ols" else lambda X, y: solvers.ridge(X, y, 0.5)
    with raises_exactly(ValueError, f"{function}: {message}"):
        call(*arguments)


@pytest.mark.parametrize("function", ["stable_learning_rate", "hessian_condition_number"])
def test_bound_messages_name_the_function(function):
    call = getattr(solvers, function)
    with raises_exactly(ValueError, f"{function}: no samples (X has shape (0,)); at least one is needed"):
        call([])
    with raises_exactly(ValueError, f"{function}: l2 must be a finite number >= 0, got -0.5"):
        call(X4, -0.5)


@pytest.mark.parametrize("function", ["ridge", "stable_learning_rate", "hessian_condition_number"])
def test_l2_is_one_number_not_an_array_of_one(function):
    call = (
        (lambda l2: solvers.ridge(X4, Y4, l2)) if function == "ridge" else lambda l2: getattr(solvers, function)(X4, l2)
    )
    with raises_exactly(ValueError, f"{function}: l2 must be a finite number >= 0, got array([0.5])"):
        call(np.array([0.5]))
    with raises_exactly(ValueError, f"{function}: l2 must be a finite number >= 0, got array([[0.5]])"):
        call(np.array([[0.5]]))
    call(np.array(0.5))  # a 0-d array is one number
    call(0.5)


# ----- sample weights: weighted least squares -----


@st.composite
def _weighted_problems(draw):
    d = draw(st.integers(1, 4))
    n = draw(st.integers(d + 2, 30))  # more rows than parameters: one answer (the rank-deficient ones are tested above)
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    X = rng.standard_normal((n, d)) * 10.0 ** rng.uniform(-1, 1, d) + rng.uniform(-5, 5, d)
    y = X @ rng.uniform(-2, 2, d) + 3.0 + rng.standard_normal(n)
    return X, y, rng.uniform(0.1, 10.0, n)


@given(problem=_weighted_problems(), fit_intercept=st.booleans())
def test_weighted_ols_is_statsmodels_wls_and_scikit_learns_weighted_fit(problem, fit_intercept):
    import statsmodels.api as sm
    from sklearn.linear_model import LinearRegression

    X, y, w = problem
    coef, intercept = tl.solvers.ols(X, y, fit_intercept=fit_intercept, sample_weight=w)
    exog = sm.add_constant(X, has_constant="add") if fit_intercept else X
    wls = sm.WLS(y, exog, weights=w).fit().params
    sklearn = LinearRegression(fit_intercept=fit_intercept).fit(X, y, sample_weight=w)
    ours = np.concatenate([[intercept], coef]) if fit_intercept else coef
    np.testing.assert_allclose(ours, wls, rtol=1e-8, atol=1e-8 * np.max(np.abs(wls)))
    np.testing.assert_allclose(coef, sklearn.coef_, rtol=1e-8, atol=1e-8 * np.max(np.abs(coef)))


@given(problem=_weighted_problems(), l2=st.sampled_from([0.01, 0.3, 2.0]))
def test_weighted_ridge_is_scikit_learns_ridge_with_alpha_n_l2_and_the_same_weights(problem, l2):
    from sklearn.linear_model import Ridge

    X, y, w = problem
    coef, intercept = tl.solvers.ridge(X, y, l2, sample_weight=w)
    sklearn = Ridge(alpha=len(X) * l2, solver="svd").fit(X, y, sample_weight=w)
    np.testing.assert_allclose(coef, sklearn.coef_, rtol=1e-8, atol=1e-10)
    assert intercept == pytest.approx(sklearn.intercept_, rel=1e-8, abs=1e-10)


@given(problem=_weighted_problems())
def test_integer_weights_count_rows_and_a_zero_weight_drops_one(problem):
    X, y, _ = problem
    counts = np.arange(len(X)) % 3  # 0, 1 or 2 copies of each row
    weighted = tl.solvers.ridge(X, y, 0.1, sample_weight=counts)
    # mean(w·r²) over n rows is Σ over the repeated rows divided by n, not by their count: l2 scales alike
    repeated = tl.solvers.ridge(np.repeat(X, counts, axis=0), np.repeat(y, counts), 0.1 * len(X) / counts.sum())
    np.testing.assert_allclose(weighted[0], repeated[0], rtol=1e-9, atol=1e-10)
    assert weighted[1] == pytest.approx(repeated[1], rel=1e-9, abs=1e-10)


def test_weights_of_one_are_the_unweighted_fit():
    X, y = np.arange(12.0).reshape(6, 2) ** 1.3, np.arange(6.0) ** 0.5
    weighted, plain = tl.solvers.ols(X, y, sample_weight=np.ones(6)), tl.solvers.ols(X, y)
    np.testing.assert_allclose(weighted[0], plain[0], rtol=1e-13)
    assert weighted[1] == pytest.approx(plain[1], rel=1e-13)


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        (np.ones(3), r"ols: sample_weight must hold one weight per sample, shape \(4,\); got shape \(3,\)"),
        (np.array([1.0, -1.0, 1.0, 1.0]), r"ols: sample_weight must be >= 0; sample 1 has weight -1.0"),
        (np.array([1.0, np.nan, 1.0, 1.0]), r"ols: sample_weight"),
        (np.zeros(4), r"ols: sample_weight is zero for every sample: no sample would count"),
    ],
)
def test_bad_weights_are_refused_naming_the_rule(weights, message):
    with pytest.raises(ValueError, match=message):
        tl.solvers.ols(np.arange(8.0).reshape(4, 2), np.arange(4.0), sample_weight=weights)


def test_a_column_of_subnormal_numbers_beside_a_dependent_one_gets_the_minimum_norm_answer():
    """The minimum norm is taken in the data's units, 2**-e_j up to a common factor: for a column of subnormal
    numbers (e_j < -1023) 2**-e_j itself is inf, which once made LAPACK's SVD fail (found by hypothesis)."""
    X = np.array([[0.0, 0.0], [2.225074e-311, 0.0], [0.0, 0.0]])
    for y, want in ((np.zeros(3), 0.0), (np.array([1.0, 1.0, 1.0]), 1.0)):
        coef, intercept = tl.solvers.ols(X, y)
        np.testing.assert_array_equal(coef, [0.0, 0.0])
        assert intercept == want
