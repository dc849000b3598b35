"""Full-batch fit from the data's moments (moments.py): the eager iterates up to rounding, used only where it
applies."""

import contextlib
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings

import tinygrad_lr as tl
from tests.strategies import MOMENTS_FITS
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
    return moments.GramStep(moments.Moments.of(X, Y), weight, b, 0.0, make_optimizer(params), **kwargs), weight, b


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


def test_the_rows_are_taken_in_pieces_of_a_few_thousand_rows_across_blocks_weights_alike():
    X, Y = _data(n=2 * moments._BLOCK_ROWS + 5, k=2, dtype=np.float32)
    w = np.arange(len(X), dtype=np.float64)
    cut = moments._BLOCK_ROWS + 3  # two blocks, neither a whole number of pieces
    pieces = list(moments._pieces([(X[:cut], Y[:cut], w[:cut]), (X[cut:], Y[cut:], w[cut:])]))
    assert [len(rows) for rows, _, _ in pieces] == [moments._BLOCK_ROWS, 3, moments._BLOCK_ROWS, 2]
    for column, whole in enumerate((X, Y, w)):
        np.testing.assert_array_equal(np.concatenate([piece[column] for piece in pieces]), whole)
    assert all(weights is None for _, _, weights in moments._pieces([(X, Y, None)]))


def test_the_threads_change_no_digit_the_parts_combine_in_the_rows_order():
    X, Y = _data(n=9 * moments._BLOCK_ROWS + 11, k=2)
    X = X * np.geomspace(1, 1e6, len(X))[:, None]  # pieces that differ: a part out of its place would show
    pieces = list(moments._pieces([(X, Y, None)]))
    reference = moments.Moments.of_block(*pieces[0][:2]).reference_fit()
    one_by_one = moments.Moments.combined([moments.Moments.of_block(x, y, None, reference) for x, y, _ in pieces])
    threaded = moments.of_blocks([(X, Y, None)])
    for name in ("n", "weight", "x_mean", "y_mean", "reference", "sxx", "sxr", "srr", "syy"):
        np.testing.assert_array_equal(getattr(threaded, name), getattr(one_by_one, name), err_msg=name)


def test_a_block_far_from_zero_keeps_every_digit_of_its_centred_sums_and_means():
    # At 1e12 a float64 is a multiple of 1.2e-4, and so is the block's first mean: it is off by its rounding, and
    # the corrections take that out of every sum and of the means. The reference: the same values less 1e12
    # (exact for these), whose centred sums float64 takes with nothing to lose.
    rng = np.random.default_rng(1)
    near = rng.normal(size=(moments._BLOCK_ROWS, 2))
    targets = near @ np.array([[2.0], [-1.0]]) + 0.5 * rng.normal(size=(len(near), 1))
    offset, reference = 1e12, np.array([[0.5], [0.25]])
    X, Y = near + offset, targets + 3 * offset
    got = moments.Moments.of_block(X, Y, None, reference)
    xs, ys = X - offset, Y - 3 * offset  # exact
    xc, yc = xs - xs.mean(axis=0), ys - ys.mean(axis=0)
    rc = yc - xc @ reference
    np.testing.assert_allclose(got.sxx, xc.T @ xc, rtol=1e-13)
    np.testing.assert_allclose(got.sxr, xc.T @ rc, rtol=1e-13, atol=1e-13 * len(X))
    np.testing.assert_allclose(got.srr, np.sum(rc**2, axis=0), rtol=1e-13)
    np.testing.assert_allclose(got.syy, np.sum(yc**2, axis=0), rtol=1e-13)
    # the means correctly rounded: within half a unit in their last place
    assert np.all(np.abs(got.x_mean - offset - xs.mean(axis=0)) <= np.spacing(offset) / 2)
    assert np.all(np.abs(got.y_mean - 3 * offset - ys.mean(axis=0)) <= np.spacing(3 * offset) / 2)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_weights_of_either_float_dtype_summing_below_one_weigh_the_rows_in_float64(dtype):
    X, Y = _data(n=1000, k=2)
    w = np.random.default_rng(2).uniform(1e-4, 3e-4, size=len(X)).astype(dtype)  # Σw ≈ 0.2: no count of rows
    got = moments.Moments.of_block(X, Y, w)
    w64 = w.astype(np.float64)
    x_mean, y_mean = np.average(X, axis=0, weights=w64), np.average(Y, axis=0, weights=w64)
    xc, yc = X - x_mean, Y - y_mean
    assert got.weight == pytest.approx(w64.sum(), rel=1e-15)
    np.testing.assert_allclose(got.x_mean, x_mean, rtol=1e-14)
    np.testing.assert_allclose(got.sxx, (w64[:, None] * xc).T @ xc, rtol=1e-13)
    np.testing.assert_allclose(got.sxy, (w64[:, None] * xc).T @ yc, rtol=1e-13)
    np.testing.assert_allclose(got.syy, w64 @ yc**2, rtol=1e-13)


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("scale", [1e200, 1.5e308])  # products past float64; sums past it
def test_sums_beyond_float64_make_the_moments_not_finite_without_a_warning(scale):
    X = scale * np.random.default_rng(3).choice([-1.0, 1.0], size=(100, 2))
    got = moments.Moments.of_block(X, X[:, :1])
    assert not got.is_finite()


def test_an_error_in_a_later_block_reaches_the_caller_and_leaves_no_thread():
    import threading

    X, Y = _data(n=moments._BLOCK_ROWS)
    before = threading.active_count()

    def blocks():
        for _ in range(5):
            yield X, Y, None
        raise ValueError("block 5: a non-finite value")

    with pytest.raises(ValueError, match="block 5"):
        moments.of_blocks(blocks())
    with pytest.raises(ValueError, match=r"^moments: there are no rows$"):
        moments.of_blocks([(X[:0], Y[:0], None)])
    assert threading.active_count() == before


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
    step.change = step.change + np.random.default_rng(1).normal(size=step.optimum.shape)
    step.optimum = step.moments.reference + step.change
    step.optimum_gradient = G @ step.optimum - C
    step.optimum_residuals = np.sum((Xc @ step.optimum - Yc) ** 2, axis=0)
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
        # the sizes of the terms summed: RSS*'s, |δ|·|G|·|δ|, 2|⟨δ, GW* - C⟩| per output, and
        # 2n|e|·(|b| + |x̄|·|W| + |ȳ|) with a bias
        delta = np.abs(weight.data - step.optimum)
        linear = 2 * np.abs(np.sum((weight.data - step.optimum) * step.optimum_gradient, axis=0))
        expected_sizes = step.optimum_sizes + float(np.vdot(delta, np.abs(G) @ delta)) + float(linear.sum())
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
    moments.GramStep(moments.Moments.of(X, Y), weight, b, 0.1, tl.optim.SGD([weight, b], lr=1e-6))()
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


# ----- the moments of parts: combined in any grouping, by Chan's update, around a reference fit -----


def _direct_moments(X, Y, w=None, reference=None):
    """(x̄, ȳ, Sxx, Sxr, Σr², Σ(y - ȳ)²) of the rows, computed directly (two passes over all of them)."""
    w = np.ones(len(X)) if w is None else w
    x_mean, y_mean = w @ X / w.sum(), w @ Y / w.sum()
    Xc, Yc = X - x_mean, Y - y_mean
    Rc = Yc - Xc @ (np.zeros((X.shape[1], Y.shape[1])) if reference is None else reference)
    return x_mean, y_mean, (w * Xc.T) @ Xc, (w * Xc.T) @ Rc, w @ Rc**2, w @ Yc**2


@pytest.mark.parametrize("weighted", [False, True])
def test_the_moments_of_any_grouping_of_blocks_are_those_of_all_the_rows(weighted):
    rng = np.random.default_rng(7)
    n = 3000
    X = rng.normal(size=(n, 3)) * [1e-3, 1.0, 1e3] + [1e6, -5.0, 3e3] + np.linspace(0, 50, n)[:, None]  # drifting
    Y = X @ rng.normal(size=(3, 2)) + rng.normal(size=(n, 2))
    w = rng.uniform(0, 2, size=n) if weighted else None
    w_zero = None if w is None else np.where(np.arange(n) < 300, 0.0, w)  # a block of weight 0 too
    for weights in (w, w_zero):
        reference = moments.Moments.of_block(X[:500], Y[:500]).least_squares()[0]
        cuts = np.sort(rng.choice(np.arange(1, n), size=9, replace=False))
        blocks = [
            (a, b, None if weights is None else c)
            for a, b, c in zip(
                np.split(X, cuts), np.split(Y, cuts), np.split(np.ones(n) if weights is None else weights, cuts)
            )
        ]
        whole = moments.of_blocks([(X, Y, weights)], reference)
        in_turn = [moments.Moments.of_block(*block, reference) for block in blocks]
        one_after_another = in_turn[0]
        for part in in_turn[1:]:
            one_after_another = one_after_another.merged(part)
        direct = _direct_moments(X, Y, weights, reference)
        for m in (whole, moments.Moments.combined(in_turn), one_after_another):
            assert m.n == n and m.weight == pytest.approx(n if weights is None else weights.sum(), rel=1e-13)
            for got, want in zip((m.x_mean, m.y_mean, m.sxx, m.sxr, m.srr, m.syy), direct):
                np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10 * np.abs(want).max())


def test_the_moments_travel_as_one_small_array():
    import pickle

    X, Y = _data(n=5000, d=5, k=2)
    m = moments.Moments.of(X, Y)
    copy = pickle.loads(pickle.dumps(m))
    for name in ("n", "weight", "x_mean", "y_mean", "reference", "sxx", "sxr", "srr", "syy"):
        np.testing.assert_array_equal(getattr(copy, name), getattr(m, name))
    assert len(pickle.dumps(m)) < 8 * (2 + 5 + 2 + 10 + 25 + 10 + 2 + 2) + 400  # the numbers, and little more


def test_the_reference_fit_keeps_the_digits_of_a_good_fits_loss():
    """R² = 1 - 1e-12: Σ(y - ȳ)² less Σ of its fitted part would leave rounding; Σr² about W₀ does not."""
    rng = np.random.default_rng(8)
    X = rng.normal(size=(N, 3)) + 1000.0
    y = X @ [1.0, -2.0, 3.0] + 1e-6 * rng.normal(size=N)
    m = moments.Moments.of(X, y[:, None])
    A = np.hstack([X, np.ones((N, 1))])
    solution = np.linalg.lstsq(A, y, rcond=None)[0]
    residual = float(np.sum((A @ solution - y) ** 2))
    coef, intercept = m.least_squares()
    assert float(m.squared_errors(coef, intercept)[0]) == pytest.approx(residual, rel=1e-6)
    step, _, _ = _gram_step(X, y[:, None])
    assert step.optimum_residual == pytest.approx(residual, rel=1e-6)
    assert step.optimum_sizes < 1.01 * residual  # nothing large is subtracted to get it


def test_standardised_moments_are_the_moments_of_the_standardised_rows():
    X, Y = _data(n=4000, k=1)
    mean, scale = X.mean(axis=0) + 0.1, X.std(axis=0) * 1.5
    scaled = moments.Moments.of(X, Y).scaled(mean, scale)
    Z = (X - mean) / scale
    for got, want in zip(
        (scaled.x_mean, scaled.sxx, scaled.sxr, scaled.srr),
        _direct_moments(Z, Y, reference=scaled.reference)[0:1] + _direct_moments(Z, Y, reference=scaled.reference)[2:5],
    ):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("l2", [0.0, 0.3])
def test_the_closed_form_from_the_moments_is_ridges(l2):
    X, Y = _data(n=3000, k=1)
    coef, intercept = moments.Moments.of(X, Y).least_squares(l2)
    want_coef, want_intercept = tl.solvers.ridge(X, Y[:, 0], l2)
    np.testing.assert_allclose(coef[:, 0], want_coef, rtol=1e-9)
    assert intercept[0] == pytest.approx(want_intercept, rel=1e-9)


# ----- validation, metrics, sample weights and GradientNormStop from the moments -----


def _fit_twice(X, Y, compile_kwargs=None, **fit_kwargs):
    """(history, weights) of a full-batch fit, then of the same fit run eagerly."""
    runs = []
    for run_eagerly in (False, True):
        model = tl.nn.Sequential([tl.nn.Linear(X.shape[1], Y.shape[1], seed=0, dtype=X.dtype)])
        kwargs = {"optimizer": lambda: tl.optim.SGD(lr=0.1), **(compile_kwargs or {})}
        kwargs["optimizer"] = kwargs["optimizer"]()  # (a fresh one for each model)
        model.compile(run_eagerly=run_eagerly, **kwargs)
        runs.append((model.fit(X, Y, batch_size=len(X), verbose=0, **fit_kwargs), model.get_weights()))
    return runs


def _assert_equal_to_1e9(fast, fast_weights, eager, eager_weights):
    assert fast.history.keys() == eager.history.keys()
    for key in eager.history:
        np.testing.assert_allclose(fast.history[key], eager.history[key], rtol=1e-9)
    for a, b in zip(fast_weights, eager_weights):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9 * float(np.abs(b).max()))


def test_r2_and_the_validation_loss_come_from_the_moments_with_the_eager_numbers(monkeypatch):
    X, Y = _data(k=2)
    evaluated = []
    original = tl.steps.evaluated
    monkeypatch.setattr(tl.steps, "evaluated", lambda *args: evaluated.append(1) or original(*args))
    (fast, fast_weights), (eager, eager_weights) = _fit_twice(
        X, Y, {"metrics": ["mse", "r2"], "l2": 0.01}, epochs=8, validation_split=0.1
    )
    assert fast.step == "moments" and set(fast.history) == {"loss", "mse", "r2", "val_loss", "val_mse", "val_r2"}
    assert len(evaluated) == 8  # the eager fit's validation, each epoch; none for the fit from the moments
    _assert_equal_to_1e9(fast, fast_weights, eager, eager_weights)


@pytest.mark.parametrize("replaced", [("weight",), ("weight", "bias")])
def test_a_layer_given_new_parameters_mid_fit_is_validated_and_stopped_on_them(replaced):
    # From epoch 2 the layer holds new Tensors at the least-squares optimum (the optimizer still holds the old
    # ones): validation and GradientNormStop must look at the new ones, as the eager fit does.
    X, Y = _data(k=1)
    n_fit = int(len(X) * 0.9)
    coef, intercept = tl.solvers.ols(X[:n_fit], Y[:n_fit])

    class NewParameters(tl.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                layer = self.model.layers[0]
                for name, value in (("weight", coef), ("bias", intercept)):
                    if name in replaced:
                        setattr(layer, name, tl.Tensor(np.array(value, np.float64), requires_grad=True))

    (fast, fast_weights), (eager, eager_weights) = _fit_twice(
        X, Y, epochs=6, validation_split=0.1, callbacks=[NewParameters(), tl.callbacks.GradientNormStop(1e-6)]
    )
    assert fast.step == "moments"
    assert len(eager.history["loss"]) == (3 if len(replaced) == 2 else 6)  # at the optimum, the fit stops there
    _assert_equal_to_1e9(fast, fast_weights, eager, eager_weights)


def test_the_validation_moments_serve_every_epoch_once_made():
    X, Y = _data(k=1)
    made = []
    original = moments.GramStep.__init__

    def counted(self, *args, **kwargs):
        made.append(1)
        original(self, *args, **kwargs)

    moments.GramStep.__init__ = counted
    try:
        model = tl.nn.Sequential([tl.nn.Linear(X.shape[1], 1, seed=0, dtype=X.dtype)])
        model.compile(optimizer=tl.optim.SGD(lr=0.1))
        history = model.fit(X, Y, batch_size=len(X), epochs=7, validation_split=0.1, verbose=0)
    finally:
        moments.GramStep.__init__ = original
    assert history.step == "moments" and len(history.history["val_loss"]) == 7
    assert len(made) == 2  # the training rows' step and the validation rows' evaluator, each once


def test_r2_near_zero_is_not_told_from_the_moments(monkeypatch):
    X, Y = _data(n=2000)
    step, weight, b = _gram_step(X, Y, metrics=["r2"])
    b.data[...] = Y.mean()  # the mean's prediction: R² ≈ 0
    weight.data[...] = 1e-9
    assert step() is None
    assert "R² (" in step.refusal and "too near 0" in step.refusal


def test_gradient_norm_stop_takes_its_gradient_from_the_moments(monkeypatch):
    X, Y = _data()
    grads = []
    original = tl.steps.autograd.grad
    monkeypatch.setattr(tl.steps.autograd, "grad", lambda *args, **kwargs: grads.append(1) or original(*args, **kwargs))
    runs = []
    for run_eagerly in (False, True):
        model = tl.nn.Linear(3, 1, seed=0, dtype=np.float64)
        model.compile(optimizer=tl.optim.SGD(lr=0.2), l2=0.001, run_eagerly=run_eagerly)
        stop = tl.callbacks.GradientNormStop(tol=1.0)
        history = model.fit(X, Y, epochs=100, batch_size=len(X), verbose=0, callbacks=[stop])
        runs.append((history, model.get_weights()))
        if not run_eagerly:
            assert history.step == "moments" and not grads  # no pass for the gradient's norm
    (fast, fast_weights), (eager, eager_weights) = runs
    assert 1 < len(eager.history["loss"]) < 100  # it stopped early
    _assert_equal_to_1e9(fast, fast_weights, eager, eager_weights)


def test_a_weighted_full_batch_fit_from_the_moments_equals_run_eagerly():
    X, Y = _data()
    w = np.random.default_rng(9).uniform(0, 3, size=len(X))
    w[:1000] = 0.0
    (fast, fast_weights), (eager, eager_weights) = _fit_twice(
        X, Y, {"l2": 0.01, "optimizer": lambda: tl.optim.Adam(lr=0.1)}, epochs=6, validation_split=0.1, sample_weight=w
    )
    assert fast.step == "moments"
    _assert_equal_to_1e9(fast, fast_weights, eager, eager_weights)


def test_with_sample_weights_and_metrics_or_mae_the_moments_step_aside_and_say_why():
    X, Y = _data()
    w = np.ones(len(X))
    (fast, _), (eager, _) = _fit_twice(X, Y, {"metrics": ["mse"]}, epochs=4, sample_weight=w)
    assert fast.step == "captured" and fast.history == eager.history
    assert fast.step_reason.startswith("not from the moments: with sample weights the loss is weighted but the metrics")
    (fast, _), _ = _fit_twice(X, Y, {"metrics": ["mae", "r2"]}, epochs=4)
    assert fast.step == "captured"
    assert fast.step_reason.startswith("not from the moments: the metric mae is no function of the data's moments")


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    **MOMENTS_FITS,
)
@example(offset=0.0, scale=1.0, noise=1.0, l2=0.01, use_adam=False)
def test_in_memory_full_batch_fit_from_the_moments_equals_run_eagerly_or_is_not_taken(
    offset, scale, noise, l2, use_adam
):
    X, Y = _offset_scaled_data(N, offset, scale, noise)
    _fit_beside_run_eagerly(X, Y, l2, use_adam)


def _offset_scaled_data(n, offset, scale, noise, seed=0):
    """x (n, 3) with columns offset by offset·(1, -3, 7) and spread by scale; y (n, 1) linear in them + noise."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 3))
    x = z * scale + offset * np.array([1.0, -3.0, 7.0])
    return x, ((z @ np.array([1.5, -2.0, 0.5])) * 4 + 20 + noise * rng.normal(size=n))[:, None]


def _fit_beside_run_eagerly(x, y, l2, use_adam, weighted=False, epochs=4):
    """A full-batch fit (validation split 0.2, l2; metrics mse and r2, or sample weights without metrics,
    which stay unweighted) beside its run_eagerly twin: the moments' numbers are the eager ones to 1e-9, or
    the moments are not used and say why."""
    lr = 0.01 if use_adam else 0.5 * tl.solvers.stable_learning_rate(np.asarray(x), l2=l2)
    w = np.random.default_rng(11).uniform(0, 2, size=len(x)) * (np.arange(len(x)) % 7 > 0) if weighted else None
    runs = []
    for run_eagerly in (False, True):
        model = tl.nn.Linear(3, 1, seed=0, dtype=np.float64)
        optimizer = tl.optim.Adam(lr=lr) if use_adam else tl.optim.SGD(lr=lr)
        metrics = [] if weighted else ["mse", "r2"]
        model.compile(optimizer=optimizer, l2=l2, metrics=metrics, run_eagerly=run_eagerly)
        batch_size = None if tl.sources.as_source(x).reads_blocks else len(x)  # the full batch
        history = model.fit(
            x, y, epochs=epochs, batch_size=batch_size, validation_split=0.2, verbose=0, sample_weight=w
        )
        runs.append((history, model.get_weights()))
    (fast, fast_weights), (eager, eager_weights) = runs
    assert eager.step == "eager"
    if fast.step == "moments":
        _assert_equal_to_1e9(fast, fast_weights, eager, eager_weights)
    else:
        assert fast.step_reason.startswith("not from the moments: ")
        assert fast.history == eager.history
    return fast
