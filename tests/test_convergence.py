"""Trained models against the closed form: gradient descent on mse + l2_penalty reaches solvers.ridge."""

import numpy as np
from hypothesis import assume, given

import tinygrad_lr as tl
from tests.strategies import regression_problems


def _train(X, y, l2, fit_intercept, steps):
    """The hand-written loop of the README, full batch, at half the stable learning-rate bound."""
    model = tl.nn.Linear(X.shape[1], 1, bias=fit_intercept, seed=0, dtype=np.float64)
    lr = tl.solvers.stable_learning_rate(X, l2=l2, fit_intercept=fit_intercept) / 2
    opt = tl.optim.GradientDescent(model.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        loss = tl.losses.mse(model(X), y) + tl.losses.l2_penalty([model.weight], l2)
        loss.backward()
        opt.step()
    return model


@given(regression_problems(one_target=True))
def test_gradient_descent_at_the_stable_rate_converges_to_ridge(problem):
    X, y, l2, fit_intercept = problem
    X = X.reshape(len(X), -1)
    condition = tl.solvers.hessian_condition_number(X, l2=l2, fit_intercept=fit_intercept)
    assume(condition < 100)
    # the slowest direction shrinks by (1 - 1/condition) per step at lr = 1/λ_max
    shrink = 1 - 1 / condition
    steps = 10 + (int(np.ceil(np.log(1e-12) / np.log(shrink))) if shrink > 0 else 0)
    model = _train(X, y, l2, fit_intercept, steps)
    coef, intercept = tl.solvers.ridge(X, y, l2, fit_intercept=fit_intercept)
    scale = 1 + np.abs(coef).max() + abs(intercept)
    np.testing.assert_allclose(model.weight.data[:, 0], coef, atol=1e-7 * scale)
    if fit_intercept:
        np.testing.assert_allclose(model.bias.data[0], intercept, atol=1e-7 * scale)


@given(regression_problems(one_target=True))
def test_engine_gradient_of_the_objective_vanishes_at_the_closed_form(problem):
    X, y, l2, fit_intercept = problem
    X = X.reshape(len(X), -1)
    coef, intercept = tl.solvers.ridge(X, y, l2, fit_intercept=fit_intercept)
    model = tl.nn.Linear(X.shape[1], 1, bias=fit_intercept, dtype=np.float64)
    model.set_weights([coef[:, None], np.array([intercept])] if fit_intercept else [coef[:, None]])
    loss = tl.losses.mse(model(X), y) + tl.losses.l2_penalty([model.weight], l2)
    loss.backward()
    scale = 1 + np.abs(X).max() * (np.abs(y).max() + 1)
    for p in model.parameters():
        np.testing.assert_allclose(p.grad, 0.0, atol=1e-9 * scale)
    # and a step away in any direction costs something: it is a minimum, not a saddle
    for p in model.parameters():
        p.data += 1e-3
    assert tl.losses.mse(model(X), y).item() + tl.losses.l2_penalty([model.weight], l2).item() > loss.item()
