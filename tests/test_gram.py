"""Full-batch fit from the data's moments (gram.py): the eager iterates up to rounding, used only where it applies."""

import contextlib

import numpy as np
import pytest

import tinygrad_lr as tl
from tinygrad_lr import gram

N = gram.MIN_ROWS * 5 // 4  # still at least MIN_ROWS after a validation split of 0.1


class _OwnLinear(tl.nn.Linear):
    """A Module of the user's own (the same maths): fit takes its gradient eagerly, from the rows."""


def _data(n=N, d=3, k=1, noise=0.1, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) + 1.0
    Y = X @ rng.normal(size=(d, k)) * 5 + 20 + noise * rng.normal(size=(n, k))
    return X.astype(dtype), Y.astype(dtype)


def _fit_both(X, Y, bias=True, optimizer=lambda: tl.optim.SGD(lr=0.1), l2=0.0, **fit_kwargs):
    """(history, weights) of fit from the moments, then of the same fit done eagerly."""
    results = []
    for layer in (tl.nn.Linear, _OwnLinear):
        model = tl.nn.Sequential([layer(X.shape[1], Y.shape[1], bias=bias, seed=0, dtype=X.dtype)])
        model.compile(optimizer=optimizer(), l2=l2)
        with _counting_moment_steps() as steps:
            history = model.fit(X, Y, batch_size=len(X), verbose=0, **fit_kwargs).history
        assert bool(steps) == (layer is tl.nn.Linear)  # the moments served the first fit, and only it
        results.append((history, model.get_weights()))
    return results


@contextlib.contextmanager
def _counting_moment_steps():
    """A list that gets an item for every step fit takes from the moments, while inside."""
    steps, original = [], gram.GramStep.__call__

    def counted(self, *args):
        steps.append(1)
        return original(self, *args)

    gram.GramStep.__call__ = counted
    try:
        yield steps
    finally:
        gram.GramStep.__call__ = original


@pytest.mark.parametrize(
    ("k", "bias", "l2", "make_optimizer"),
    [
        (1, True, 0.0, lambda: tl.optim.SGD(lr=0.1)),
        (2, True, 0.05, lambda: tl.optim.Adam(lr=0.1)),
        (1, False, 0.0, lambda: tl.optim.RMSprop(lr=0.01, momentum=0.5)),
        (2, False, 0.05, lambda: tl.optim.SGD(lr=0.05, momentum=0.9)),
    ],
)
def test_fit_from_the_moments_follows_the_eager_iterates(k, bias, l2, make_optimizer):
    X, Y = _data(k=k)
    (got, got_weights), (want, want_weights) = _fit_both(
        X, Y, bias=bias, optimizer=make_optimizer, l2=l2, epochs=6, validation_split=0.1
    )
    assert got.keys() == want.keys()
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-10)
    for a, b in zip(got_weights, want_weights):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_float32_data_give_the_eager_float32_iterates_to_float32_rounding():
    X, Y = _data(dtype=np.float32)
    (got, got_weights), (want, want_weights) = _fit_both(X, Y, epochs=6)
    np.testing.assert_allclose(got["loss"], want["loss"], rtol=1e-5)
    for a, b in zip(got_weights, want_weights):
        assert a.dtype == b.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_a_near_perfect_fit_keeps_the_digits_of_its_small_loss():
    X, Y = _data(noise=1e-3)
    lr = 0.9 * tl.solvers.stable_learning_rate(X)
    (got, _), (want, _) = _fit_both(X, Y, optimizer=lambda: tl.optim.SGD(lr=lr), epochs=300)
    assert want["loss"][-1] < 2e-6  # the loss fell eight orders below Σy²/n ≈ 500
    assert min(got["loss"]) >= 0
    np.testing.assert_allclose(got["loss"], want["loss"], rtol=1e-9)


def test_where_rounding_the_rows_would_move_the_loss_the_moments_step_aside_and_say_why():
    X, Y = _data(noise=1e-7)  # residuals of 1e-7 against rows of ~50: eager rounding moves the loss ~1e-7
    model = tl.nn.Linear(3, 1, seed=0, dtype=np.float64)
    eager = tl.nn.Linear(3, 1, seed=0, dtype=np.float64)
    model.compile(optimizer="sgd")
    eager.compile(optimizer="sgd", run_eagerly=True)
    with _counting_moment_steps() as steps:
        history = model.fit(X, Y, epochs=5, batch_size=len(X), verbose=0)
    assert not steps and history.step == "captured"
    assert history.step_reason.startswith("not from the moments: the rows' values reach ")
    assert "more than the moments may differ (1e-10)" in history.step_reason
    assert eager.fit(X, Y, epochs=5, batch_size=len(X), verbose=0).history == history.history
    for a, b in zip(model.get_weights(), eager.get_weights()):
        np.testing.assert_array_equal(a, b)


def _uses_the_moments(model, X, Y, epochs, batch_size=None, **compile_kwargs):
    model.compile(optimizer="sgd", **compile_kwargs)
    with _counting_moment_steps() as steps:
        model.fit(X, Y, epochs=epochs, batch_size=batch_size or len(X), verbose=0)
    return bool(steps)


def test_the_moments_serve_only_where_they_apply():
    X, Y = _data(d=3)
    linear = lambda: tl.nn.Linear(3, 1, seed=0, dtype=np.float64)  # noqa: E731
    assert _uses_the_moments(tl.nn.Sequential([linear()]), X, Y, epochs=3)
    assert _uses_the_moments(linear(), X, Y, epochs=3, metrics=["mse"])
    assert not _uses_the_moments(linear(), X, Y, epochs=2)  # the pass would cost more than 2 steps save
    assert not _uses_the_moments(linear(), X[: gram.MIN_ROWS - 1], Y[: gram.MIN_ROWS - 1], epochs=3)
    assert not _uses_the_moments(linear(), X, Y, epochs=3, batch_size=len(X) - 1)  # mini-batches
    assert not _uses_the_moments(linear(), X, Y, epochs=3, metrics=["mae"])
    assert not _uses_the_moments(linear(), X, Y, epochs=3, loss="mae")
    shared = tl.nn.Linear(3, 3, seed=0, dtype=np.float64)  # a layer used twice is not one linear map
    assert not _uses_the_moments(tl.nn.Sequential([shared, shared]), X, np.repeat(Y, 3, axis=1), epochs=3)


def test_divergence_from_the_moments_puts_back_the_last_finite_weights():
    X, Y = _data()
    model = tl.nn.Linear(3, 1, seed=0, dtype=np.float64)
    model.compile(optimizer=tl.optim.SGD(lr=1e3))
    with pytest.raises(tl.TrainingDivergedError):
        model.fit(X, Y, epochs=400, batch_size=len(X), verbose=0)
    assert all(np.isfinite(w).all() for w in model.get_weights())
    assert np.isfinite(model.history.history["loss"]).all()


@pytest.mark.parametrize(("n", "d", "epochs", "pays"), [(N, 3, 3, True), (N, 3, 2, False), (N, 40, 20, False)])
def test_pays_off_weighs_the_pass_against_the_steps(n, d, epochs, pays):
    assert gram.pays_off(n, d, epochs) is pays
    assert not gram.pays_off(gram.MIN_ROWS - 1, d, 10**6)
    assert gram.pays_off(gram.MIN_ROWS, 1, 2)  # the edges: MIN_ROWS rows, epochs just above (d + 1)/2
    assert not gram.pays_off(gram.MIN_ROWS, 3, 2)


@pytest.mark.parametrize("bias", [True, False])
def test_the_moments_are_summed_in_float64_from_float32_rows(bias):
    X, Y = _data(n=3 * 2**15 + 7, k=2, dtype=np.float32)  # several blocks, the last one short
    weight = tl.Tensor(np.zeros((3, 2), np.float32), requires_grad=True)
    b = tl.Tensor(np.zeros(2, np.float32), requires_grad=True) if bias else None
    step = gram.GramStep(X, Y, weight, b, 0.0, tl.optim.SGD([weight] + ([b] if bias else [])))
    X64, Y64 = X.astype(np.float64), Y.astype(np.float64)
    m = step.moments
    assert m.n == len(X) and m.sxx.dtype == np.float64
    np.testing.assert_allclose(m.x_mean, X64.mean(axis=0), rtol=1e-13)
    np.testing.assert_allclose(m.y_mean, Y64.mean(axis=0), rtol=1e-13)
    Xc, Yc = X64 - X64.mean(axis=0), Y64 - Y64.mean(axis=0)
    np.testing.assert_allclose(m.sxx, Xc.T @ Xc, rtol=1e-12)
    np.testing.assert_allclose(m.sxy, Xc.T @ Yc, rtol=1e-12)
    np.testing.assert_allclose(step.gram, Xc.T @ Xc if bias else X64.T @ X64, rtol=1e-12)
    A = np.hstack([X64, np.ones((len(X), 1))]) if bias else X64
    optimum = np.linalg.lstsq(A, Y64, rcond=None)[0]
    np.testing.assert_allclose(step.optimum, optimum[:3], rtol=1e-9)
    residual = A @ optimum - Y64
    assert step.optimum_residual == pytest.approx(float(np.vdot(residual, residual)), rel=1e-9)


@pytest.mark.parametrize("bias", [True, False])
def test_the_loss_and_gradient_are_exact_around_any_point_not_only_the_optimum(bias):
    """The step writes the squared error around W*, with a term for W* being off: it stays exact when it is."""
    X, Y = _data(n=2000, k=2)
    weight = tl.Tensor(np.zeros((3, 2)), requires_grad=True)
    b = tl.Tensor(np.zeros(2), requires_grad=True) if bias else None
    params = [weight] + ([b] if bias else [])
    step = gram.GramStep(X, Y, weight, b, 0.0, tl.optim.SGD(params, lr=1e-3), metrics=["mse"])
    A = np.hstack([X, np.ones((len(X), 1))]) if bias else X
    # move the expansion point off the optimum, and its two terms with it
    Xc, Yc = (X - X.mean(axis=0), Y - Y.mean(axis=0)) if bias else (X, Y)
    step.optimum = step.optimum + np.random.default_rng(1).normal(size=step.optimum.shape)
    step.optimum_gradient = step.gram @ step.optimum - Xc.T @ Yc
    step.optimum_residual = float(np.sum((Xc @ step.optimum - Yc) ** 2))
    rng = np.random.default_rng(2)
    for _ in range(3):
        weight.data[...] = rng.normal(size=(3, 2))
        if bias:
            b.data[...] = rng.normal(size=2)
        theta = np.vstack([weight.data, b.data[None, :]]) if bias else weight.data.copy()
        residual = A @ theta - Y
        loss, metrics = step()
        assert loss == pytest.approx(float(np.mean(residual**2)), rel=1e-12)
        assert metrics == {"mse": loss}
        gradient = 2 * A.T @ residual / Y.size
        np.testing.assert_allclose(weight.grad, gradient[:3], rtol=1e-10)
        if bias:
            np.testing.assert_allclose(b.grad, gradient[3], rtol=1e-10)


def test_gradients_take_the_parameters_dtype():
    X, Y = _data(n=100, dtype=np.float32)
    weight = tl.Tensor(np.zeros((3, 1), np.float32), requires_grad=True)
    b = tl.Tensor(np.zeros(1, np.float32), requires_grad=True)
    gram.GramStep(X, Y, weight, b, 0.1, tl.optim.SGD([weight, b], lr=1e-6))()
    assert weight.grad.dtype == b.grad.dtype == np.float32
