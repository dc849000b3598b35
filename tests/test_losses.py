"""mse, mae and l2_penalty: values, gradients and the (n,) against (n, 1) rule."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_lr as tl
from tests.strategies import FLOAT_DTYPES, arrays, shapes


@given(data=st.data(), dtype=FLOAT_DTYPES)
def test_mse_is_the_mean_of_squared_errors(data, dtype):
    shape = data.draw(shapes)
    pred, target = data.draw(arrays(shape, "any", dtype)), data.draw(arrays(shape, "any", dtype))
    loss = tl.losses.mse(tl.Tensor(pred), target)
    assert loss.shape == () and loss.dtype == dtype
    np.testing.assert_allclose(loss.item(), np.mean((pred - target) ** 2), rtol=1e-5, atol=1e-7)


@given(data=st.data())
def test_mse_gradient_passes_gradcheck_for_both_inputs(data):
    shape = data.draw(shapes)
    pred = tl.Tensor(data.draw(arrays(shape)), requires_grad=True)
    target = tl.Tensor(data.draw(arrays(shape)), requires_grad=True)
    assert tl.gradcheck(tl.losses.mse, pred, target)


@given(data=st.data(), n=st.integers(1, 8))
def test_mae_value_and_gradient(data, n):
    pred = data.draw(arrays((n, 1), "grid"))
    target = data.draw(arrays((n,), "grid_offset"))  # never equal to pred: away from the kink
    loss = tl.losses.mae(tl.Tensor(pred, requires_grad=True), target)
    np.testing.assert_allclose(loss.item(), np.mean(np.abs(pred[:, 0] - target)))
    assert tl.gradcheck(lambda p: tl.losses.mae(p, target), tl.Tensor(pred, requires_grad=True))


@pytest.mark.parametrize("loss", [tl.losses.mse, tl.losses.mae])
def test_column_against_flat_target_is_never_an_n_by_n_broadcast(loss):
    pred = np.array([[1.0], [2.0], [4.0]])
    target = np.array([1.0, 3.0, 1.0])
    expected = loss(tl.Tensor(pred[:, 0]), target).item()  # same shapes: plain elementwise
    assert loss(tl.Tensor(pred), target).item() == pytest.approx(expected)
    assert loss(tl.Tensor(pred[:, 0]), target[:, None]).item() == pytest.approx(expected)
    # what an (n, n) broadcast would have given instead, to show the rule matters
    assert np.mean((pred - target) ** 2) != pytest.approx(tl.losses.mse(tl.Tensor(pred), target).item())


def test_column_against_flat_target_gradient_has_the_prediction_shape():
    pred = tl.Tensor(np.array([[1.0], [2.0]]), requires_grad=True)
    tl.losses.mse(pred, np.array([0.0, 0.0])).backward()
    assert pred.grad.shape == (2, 1)
    np.testing.assert_allclose(pred.grad, [[1.0], [2.0]])


@pytest.mark.parametrize(("p", "t"), [((100, 1), (99,)), ((3, 2), (3,)), ((4,), (4, 2)), ((2, 3), (3, 2))])
def test_other_shape_mismatches_name_both_shapes(p, t):
    with pytest.raises(ValueError, match=rf"prediction has shape \({p[0]}.*target has shape \({t[0]}"):
        tl.losses.mse(tl.Tensor(np.zeros(p)), np.zeros(t))


def test_target_takes_the_prediction_dtype():
    pred = tl.Tensor(np.ones(3, np.float32))
    assert tl.losses.mse(pred, np.zeros(3, np.float64)).dtype == np.float32


@given(data=st.data(), l2=st.one_of(st.just(0.0), st.floats(1e-6, 3.0)))
def test_l2_penalty_is_l2_times_sum_of_squares(data, l2):
    w1 = tl.Tensor(data.draw(arrays(data.draw(shapes))), requires_grad=True)
    w2 = tl.Tensor(data.draw(arrays(data.draw(shapes))), requires_grad=True)
    penalty = tl.losses.l2_penalty([w1, w2], l2)
    np.testing.assert_allclose(penalty.item(), l2 * (np.sum(w1.data**2) + np.sum(w2.data**2)), rtol=1e-12)
    penalty.backward()
    np.testing.assert_allclose(w1.grad, 2 * l2 * w1.data, atol=1e-300)  # d(l2·w²)/dw = 2·l2·w
    assert tl.gradcheck(lambda a, b: tl.losses.l2_penalty([a, b], l2), w1, w2)


def test_l2_penalty_of_no_parameters_is_zero():
    assert tl.losses.l2_penalty([], 0.5).item() == 0.0


def test_r2_score_is_one_minus_residual_over_total_variance():
    y = np.array([1.0, 2.0, 4.0, 7.0])
    pred = np.array([[1.5], [2.0], [3.5], [7.0]])  # a column against a flat target: same samples
    expected = 1 - np.sum((y - pred[:, 0]) ** 2) / np.sum((y - y.mean()) ** 2)
    assert tl.losses.r2_score(pred, y) == pytest.approx(expected)
    assert tl.losses.r2_score(y, y) == 1.0
    assert tl.losses.r2_score(np.full(4, y.mean()), y) == pytest.approx(0.0)
    assert np.isnan(tl.losses.r2_score(np.zeros(3), np.ones(3)))  # a constant target has no variance
    with pytest.raises(ValueError, match="r2_score"):
        tl.losses.r2_score(np.zeros(3), y)


def test_r2_score_takes_pred_then_target_like_every_loss():
    # R² is not symmetric: the total variance is the target's. Swapping the arguments changes it.
    target = np.array([1.0, 2.0, 4.0, 7.0])
    pred = np.array([2.0, 2.0, 3.0, 5.0])
    expected = 1 - np.sum((target - pred) ** 2) / np.sum((target - target.mean()) ** 2)
    assert tl.losses.r2_score(pred, target) == pytest.approx(expected)
    assert tl.losses.r2_score(target, pred) != pytest.approx(expected)
    # a constant prediction is a fine prediction; a constant target is what makes R² undefined
    assert tl.losses.r2_score(np.full(4, 3.0), target) == pytest.approx(1 - np.sum((target - 3) ** 2) / 21.0)


@given(data=st.data(), block=st.integers(1, 5))
def test_mse_sums_in_blocks_without_changing_the_value(data, block):
    shape = data.draw(shapes)
    pred, target = data.draw(arrays(shape)), data.draw(arrays(shape))
    original = tl.ops.MeanSquaredError.block
    tl.ops.MeanSquaredError.block = block  # tiny blocks: many of them, and a ragged last one
    try:
        loss = tl.losses.mse(tl.Tensor(pred), target).item()
    finally:
        tl.ops.MeanSquaredError.block = original
    np.testing.assert_allclose(loss, np.mean((pred - target) ** 2), rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("loss", [tl.losses.mse, tl.losses.mae, tl.losses.r2_score])
def test_a_shape_mismatch_names_the_loss_and_both_shapes(loss):
    name = loss.__name__
    message = (
        f"{name}: prediction has shape (3,) but target has shape (2,); they must describe the same samples: "
        "equal shapes, or (n,) against (n, 1)"
    )
    with pytest.raises(ValueError) as error:
        loss(np.zeros(3), np.zeros(2))
    assert str(error.value) == message


# ===== the fine print a user sees: exact messages, reprs, state (was test_model_details.py) =====


# ----- r2_score -----


def _r2(pred, target):
    pred, target = np.asarray(pred, np.float64), np.asarray(target, np.float64)
    return 1 - float(np.sum((pred - target) ** 2)) / float(np.sum((target - target.mean(axis=0)) ** 2))


def test_r2_score_is_computed_in_float64_whatever_the_prediction_dtype():
    pred = np.array([0.1, 0.25, 0.6, 0.3], dtype=np.float32)
    target = np.array([0.1, 0.2, 0.7, 0.35])
    assert tl.losses.r2_score(pred, target) == _r2(pred, target)
    assert tl.losses.r2_score(tl.Tensor(pred), target) == _r2(pred, target)


def test_r2_score_of_several_outputs_measures_each_against_its_own_mean():
    target = np.array([[0.0, 10.0], [1.0, 12.0], [2.0, 11.0]])
    pred = np.array([[0.5, 10.5], [1.0, 11.0], [1.5, 11.5]])
    assert tl.losses.r2_score(pred, target) == _r2(pred, target)
    assert tl.losses.r2_score(pred, target) == pytest.approx(1 - 2.0 / 4.0)


def test_r2_score_of_a_target_with_small_variance_is_still_a_number():
    target = np.array([0.0, 0.5, 0.25])
    pred = np.array([0.1, 0.4, 0.25])
    assert tl.losses.r2_score(pred, target) == _r2(pred, target)
    assert tl.losses.r2_score(pred, target) == pytest.approx(1 - 0.02 / 0.125)


# ----- losses of plain data -----


@pytest.mark.parametrize("loss", [tl.losses.mse, tl.losses.mae])
def test_a_loss_takes_plain_lists_and_integer_arrays_as_a_prediction(loss):
    # a plain prediction becomes a Tensor first (integers: float32), and the target takes its dtype
    from_list = loss([1, 2, 4], [1.5, 2.5, 3.0])
    from_ints = loss(np.array([1, 2, 4]), np.array([1.5, 2.5, 3.0]))
    expected = loss(tl.Tensor(np.array([1.0, 2.0, 4.0], dtype=np.float32)), np.array([1.5, 2.5, 3.0]))
    for value in (from_list, from_ints):
        assert isinstance(value, tl.Tensor) and value.dtype == np.float32
        assert value.item() == expected.item()
    assert expected.item() == pytest.approx({"mse": 1.5 / 3, "mae": 2.0 / 3}[loss.__name__])


@given(
    values=st.lists(
        st.floats(1e150, 1.3e154) | st.floats(-1.3e154, -1e150) | st.floats(-1.0, 1.0), min_size=1, max_size=40
    ),
    block=st.sampled_from([1 << 15, 3]),  # one block, or summed block by block
    fused=st.booleans(),
)
def test_mse_overflows_only_where_the_mean_does(values, block, fused):
    """Squares near float64's limit sum past it, while their mean may not: the loss is the mean, finite
    where it is, as the eager op and the fused one (a captured step's) both give it."""
    from fractions import Fraction

    pred = np.array(values)[:, None]
    exact = sum(Fraction(v) ** 2 for v in values) / len(values)
    default, tl.ops.MeanSquaredError.block = tl.ops.MeanSquaredError.block, block
    try:
        if fused:  # mse(x @ w + b, 0) with x = pred, w = 1, b = 0
            loss = tl.ops.AffineMSE.apply(pred, np.ones((1, 1)), np.zeros(1), np.zeros_like(pred)).item()
        else:
            loss = tl.losses.mse(tl.Tensor(pred), np.zeros_like(pred)).item()
    finally:
        tl.ops.MeanSquaredError.block = default
    if exact > Fraction(np.finfo(np.float64).max):
        assert loss == np.inf
    else:
        assert loss == pytest.approx(float(exact), rel=1e-13)
