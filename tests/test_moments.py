"""Full-batch fit from the data's moments (moments.py): the eager iterates up to rounding, used only where it
applies."""

import contextlib
import warnings

import numpy as np
import pytest

import tinygrad_lr as tl
from tinygrad_lr import moments

N = moments.MIN_ROWS * 5 // 4  # still at least MIN_ROWS after a validation split of 0.1


def _data(n=N, d=3, k=1, noise=0.1, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) + 1.0
    Y = X @ rng.normal(size=(d, k)) * 5 + 20 + noise * rng.normal(size=(n, k))
    return X.astype(dtype), Y.astype(dtype)


def _root_mean_squares(a):
    return np.sqrt(np.mean(a.astype(np.float64) ** 2, axis=0))


def _gram_step(X, Y, bias=True, make_optimizer=lambda params: tl.optim.SGD(params, lr=1e-3), **kwargs):
    """(step, weight, bias): a GramStep on (X, Y) for a zero weight (and bias) of the data's dtype."""
    weight = tl.Tensor(np.zeros((X.shape[1], Y.shape[1]), X.dtype), requires_grad=True)
    b = tl.Tensor(np.zeros(Y.shape[1], X.dtype), requires_grad=True) if bias else None
    params = [weight] + ([b] if bias else [])
    return moments.GramStep(X, Y, weight, b, 0.0, make_optimizer(params), **kwargs), weight, b


def _fit_both(X, Y, bias=True, optimizer=lambda: tl.optim.SGD(lr=0.1), l2=0.0, **fit_kwargs):
    """(history, weights) of fit from the moments, then of the same fit done eagerly."""
    results = []
    for run_eagerly in (False, True):
        model = tl.nn.Sequential([tl.nn.Linear(X.shape[1], Y.shape[1], bias=bias, seed=0, dtype=X.dtype)])
        model.compile(optimizer=optimizer(), l2=l2, run_eagerly=run_eagerly)
        with _counting_moment_steps() as steps:
            history = model.fit(X, Y, batch_size=len(X), verbose=0, **fit_kwargs).history
        assert bool(steps) == (not run_eagerly)  # the moments served the first fit, and only it
        results.append((history, model.get_weights()))
    return results


@contextlib.contextmanager
def _counting_moment_steps():
    """A list that gets an item for every step fit takes from the moments, while inside."""
    steps, original = [], moments.GramStep.__call__

    def counted(self, *args):
        steps.append(1)
        return original(self, *args)

    moments.GramStep.__call__ = counted
    try:
        yield steps
    finally:
        moments.GramStep.__call__ = original


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
    assert not _uses_the_moments(linear(), X[: moments.MIN_ROWS - 1], Y[: moments.MIN_ROWS - 1], epochs=3)
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
    assert moments.pays_off(n, d, epochs) is pays
    assert not moments.pays_off(moments.MIN_ROWS - 1, d, 10**6)
    assert moments.pays_off(moments.MIN_ROWS, 1, 2)  # the edges: MIN_ROWS rows, epochs just above (d + 1)/2
    assert moments.pays_off(moments.MIN_ROWS, 2, 2)
    assert not moments.pays_off(moments.MIN_ROWS, 3, 2)


def test_the_rows_are_read_a_block_at_a_time_in_float64():
    X, Y = _data(n=2 * moments._BLOCK_ROWS + 5, k=2, dtype=np.float32)
    blocks = list(moments._blocks(X, Y))
    assert [(len(rows), len(targets)) for rows, targets in blocks] == [(moments._BLOCK_ROWS,) * 2] * 2 + [(5, 5)]
    assert all(rows.dtype == targets.dtype == np.float64 for rows, targets in blocks)
    np.testing.assert_array_equal(np.vstack([rows for rows, _ in blocks]), X.astype(np.float64))
    np.testing.assert_array_equal(np.vstack([targets for _, targets in blocks]), Y.astype(np.float64))


@pytest.mark.parametrize("bias", [True, False])
def test_the_moments_of_blocks_with_different_means_are_those_of_all_the_rows_in_float64(bias):
    X, Y = _data(n=3 * moments._BLOCK_ROWS + 7, k=2, dtype=np.float32)  # several blocks, the last one short
    drift = np.linspace(0.0, 8.0, len(X), dtype=np.float32)[:, None]  # each block's means its own
    X, Y = X + drift * np.float32([1, -2, 3]), Y - drift * np.float32([3, 1])
    step, _, _ = _gram_step(X, Y, bias=bias)
    X64, Y64 = X.astype(np.float64), Y.astype(np.float64)
    m = step.moments
    assert m.n == len(X) and m.sxx.dtype == np.float64
    np.testing.assert_allclose(m.x_mean, X64.mean(axis=0), rtol=1e-13)
    np.testing.assert_allclose(m.y_mean, Y64.mean(axis=0), rtol=1e-13)
    Xc, Yc = X64 - X64.mean(axis=0), Y64 - Y64.mean(axis=0)
    np.testing.assert_allclose(m.sxx, Xc.T @ Xc, rtol=1e-12)
    np.testing.assert_allclose(m.sxy, Xc.T @ Yc, rtol=1e-12)
    np.testing.assert_allclose(m.syy, np.sum(Yc**2, axis=0), rtol=1e-12)
    for got, rows in zip(m.root_mean_squares(), (X64, Y64)):
        np.testing.assert_allclose(got, _root_mean_squares(rows), rtol=1e-12)
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
    step, weight, b = _gram_step(X, Y, bias=bias, metrics=["mse"])
    A = np.hstack([X, np.ones((len(X), 1))]) if bias else X
    # move the expansion point off the optimum, and its two terms with it
    Xc, Yc = (X - X.mean(axis=0), Y - Y.mean(axis=0)) if bias else (X, Y)
    G, C = Xc.T @ Xc, Xc.T @ Yc
    step.optimum = step.optimum + np.random.default_rng(1).normal(size=step.optimum.shape)
    step.optimum_gradient = G @ step.optimum - C
    step.optimum_residual = float(np.sum((Xc @ step.optimum - Yc) ** 2))
    rng = np.random.default_rng(2)
    for _ in range(3):
        weight.data[...] = rng.normal(size=(3, 2))
        if bias:
            b.data[...] = rng.normal(size=2)
        theta = np.vstack([weight.data, b.data[None, :]]) if bias else weight.data.copy()
        residual = A @ theta - Y
        squared_error, half_gradient, e, sizes = step._at(weight.data.copy(), b.data.copy() if bias else None)
        assert squared_error == pytest.approx(float(np.sum(residual**2)), rel=1e-12)
        np.testing.assert_allclose(half_gradient, X.T @ residual, rtol=1e-10)
        # the sizes of the terms summed: |δ|·|G|·|δ|, 2|⟨δ, GW* - C⟩|, and 2n|e|·(|b| + |x̄|·|W| + |ȳ|) with a bias
        delta = np.abs(weight.data - step.optimum)
        expected_sizes = float(np.vdot(delta, np.abs(G) @ delta)) + 2 * abs(
            float(np.vdot(weight.data - step.optimum, step.optimum_gradient))
        )
        if bias:
            np.testing.assert_allclose(e, residual.mean(axis=0), rtol=1e-10)  # e is the mean residual
            parts = np.abs(b.data) + np.abs(X.mean(axis=0)) @ np.abs(weight.data) + np.abs(Y.mean(axis=0))
            expected_sizes += 2 * len(X) * float(np.vdot(np.abs(e), parts))
        else:
            assert e is None
        assert sizes == pytest.approx(expected_sizes, rel=1e-12)
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
    moments.GramStep(X, Y, weight, b, 0.1, tl.optim.SGD([weight, b], lr=1e-6))()
    assert weight.grad.dtype == b.grad.dtype == np.float32


def test_the_moments_serve_only_the_same_weight_and_bias_each_still_trained():
    X, Y = _data(n=100)
    step, weight, b = _gram_step(X, Y)
    assert step.serves(weight, b)
    assert not step.serves(tl.Tensor(weight.data, requires_grad=True), b)  # a replaced weight
    assert not step.serves(weight, tl.Tensor(b.data, requires_grad=True))  # a replaced bias
    assert not step.serves(weight, None)
    for frozen in (weight, b):
        frozen.requires_grad = False
        assert not step.serves(weight, b)
        frozen.requires_grad = True
    no_bias, weight, _ = _gram_step(X, Y, bias=False)
    assert no_bias.serves(weight, None)
    assert not no_bias.serves(weight, b)


_EPS = np.finfo(np.float64).eps


def _eager_refusal(row, residual):
    """What the rounding check says when rounding rows of size `row` moves residuals of RMS `residual` too far."""
    return (
        f"the rows' values reach {row:.3g} where the fit leaves residuals of {residual:.3g}: rounding each row, as "
        f"an eager step does, moves the loss by ~{2 * _EPS * row / residual:.1e} (relative), more than the moments "
        "may differ (1e-10)"
    )


def _step_at_a_point(bias):
    """(step, weight, bias, row) on small data: weight and bias a point to check, row the largest size
    |x|·|W| + |y| + |b| of a row's terms (root mean squares of the columns)."""
    rng = np.random.default_rng(3)
    X, Y = rng.normal(size=(500, 3)), rng.normal(size=(500, 2)) + 0.5
    step, _, _ = _gram_step(X, Y, bias=bias)
    weight, b = rng.normal(size=(3, 2)) / 2, np.array([1.5, -2.0]) if bias else None
    row = _root_mean_squares(X) @ np.abs(weight) + _root_mean_squares(Y) + (np.abs(b) if bias else 0)
    return step, weight, b, float(row.max())


@pytest.mark.parametrize("bias", [True, False])
def test_the_rounding_check_refuses_the_eager_rounding_only_above_the_bound(bias):
    step, weight, b, row = _step_at_a_point(bias)
    for ratio in (0.9, 1.1):  # the eager rounding, 2·eps·row / the RMS residual, at this ratio to the bound
        residual = 2 * _EPS * row / (ratio * moments.ROUNDING_BOUND)
        refusal = step._rounding(weight, b, residual**2 * step.count, 0.0)
        assert refusal == (_eager_refusal(row, residual) if ratio > 1 else None)


def test_the_rounding_check_refuses_the_moments_rounding_only_above_the_bound():
    step, weight, b, _ = _step_at_a_point(bias=True)
    # 4·eps·sizes / the squared error, exactly the bound (powers of two apart), then twice it
    sizes = moments.ROUNDING_BOUND / (4 * _EPS) * 4.0
    assert 4 * _EPS * sizes / 4.0 == moments.ROUNDING_BOUND
    assert step._rounding(weight, b, 4.0, sizes) is None
    assert step._rounding(weight, b, 4.0, 2 * sizes) == (
        "the loss from the moments would be summed from terms 2.25e+05 times its size (rounding ~2.0e-10, relative, "
        "more than 1e-10)"
    )


def test_the_rounding_check_reports_the_larger_rounding():
    step, weight, b, row = _step_at_a_point(bias=True)
    for eager in (1.1, 3.0):  # against the moments' rounding at twice the bound
        residual = 2 * _EPS * row / (eager * moments.ROUNDING_BOUND)
        squared_error = residual**2 * step.count
        sizes = 2 * moments.ROUNDING_BOUND * squared_error / (4 * _EPS)
        refusal = step._rounding(weight, b, squared_error, sizes)
        assert refusal.startswith("the rows' values reach " if eager > 2 else "the loss from the moments would be ")


def test_a_fit_that_leaves_no_residual_is_refused_and_warns_of_nothing():
    """All-zero targets: W* = 0, b* = 0, and no residual to measure either rounding against (not even one
    rounded below zero)."""
    X, Y = np.random.default_rng(4).normal(size=(500, 3)), np.zeros((500, 2))
    nothing = (
        "the rows' values reach 0 where the fit leaves residuals of 0: rounding each row, as an eager step does, "
        "moves the loss by ~inf (relative), more than the moments may differ (1e-10)"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        step, weight, b = _gram_step(X, Y)
        assert step.refusal == nothing
        assert step._rounding(weight.data, b.data, -1e-30, 0.0) == nothing
        assert step() is None
    assert step.refusal == "at step 1: " + nothing


def _far_offset_data(noise):
    """Rows x ≈ 1000 (one feature) and y ≈ x - 1000: the bias the fit needs is as large as the rows' values."""
    rng = np.random.default_rng(5)
    X = 1000 + rng.normal(size=(4000, 1))
    return X, X - 1000 + noise * rng.normal(size=(4000, 1))


def test_a_row_is_sized_with_the_bias_and_a_refusal_at_a_step_changes_nothing():
    X, Y = _far_offset_data(noise=6e-3)
    A = np.hstack([X, np.ones((len(X), 1))])
    optimum = np.linalg.lstsq(A, Y, rcond=None)[0]
    residual = float(np.sqrt(np.mean((A @ optimum - Y) ** 2)))
    (w, bias), (x_size,), (y_size,) = optimum[:, 0], _root_mean_squares(X), _root_mean_squares(Y)
    row_without_bias = x_size * abs(w) + y_size
    row = row_without_bias + abs(bias)
    assert (
        2 * _EPS * row_without_bias / residual <= moments.ROUNDING_BOUND < 2 * _EPS * row / residual
    )  # the bias decides
    step, weight, b = _gram_step(X, Y, make_optimizer=lambda params: tl.optim.Adam(params, lr=0.1))
    assert step.refusal == _eager_refusal(row, residual)
    weight.data[...], b.data[...] = optimum[:1], optimum[1]
    assert step() is None
    assert step.refusal.startswith("at step 1: the rows' values reach ")
    assert step.optimizer.steps == 0
    np.testing.assert_array_equal(weight.data, optimum[:1])
    np.testing.assert_array_equal(b.data, optimum[1])


def test_a_step_that_ends_where_the_moments_refuse_is_taken_back():
    """From W = 0 Adam's first step moves W by about lr: to W*, where residuals of 1e-9 against rows of ~5
    make the eager rounding ~1e-6 of the loss."""
    rng = np.random.default_rng(6)
    X = rng.normal(size=(4000, 1)) + 1
    Y = 2 * X + 1e-9 * rng.normal(size=(4000, 1))
    optimum = float(np.linalg.lstsq(X, Y, rcond=None)[0][0, 0])
    step, weight, _ = _gram_step(X, Y, bias=False, make_optimizer=lambda params: tl.optim.Adam(params, lr=optimum))
    state = dict(step.optimizer.state[weight])
    assert step() is None
    assert step.refusal.startswith("after step 1: the rows' values reach ")
    assert step.optimizer.steps == 0
    np.testing.assert_array_equal(weight.data, 0.0)
    assert step.optimizer.state[weight].keys() == state.keys()
    for key, value in state.items():
        np.testing.assert_array_equal(step.optimizer.state[weight][key], value)
