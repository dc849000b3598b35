"""The fine print of the ops: conventions at kinks and ties, defaults, dtypes, warnings and messages.

tests/test_ops.py checks every op against NumPy and finite differences away from kinks and ties;
these tests pin down what happens exactly on them, and what a user sees besides the values.
"""

import warnings

import numpy as np
import pytest

import tinygrad_lr as tl
from tinygrad_lr import ops
from tinygrad_lr.ops import normalize_axes


class _warnings_are_errors:
    """Any warning (NumPy's RuntimeWarning included) raised as an error inside the block."""

    def __enter__(self):
        self._context = warnings.catch_warnings()
        self._context.__enter__()
        warnings.simplefilter("error")

    def __exit__(self, *exc_info):
        return self._context.__exit__(*exc_info)


# ----- Div -----


def test_div_does_not_compute_the_gradient_of_a_constant_divisor():
    """d(a/b)/db = -(a/b)/b is not formed when b needs no gradient: no overflow from a product nobody asked for."""
    a = tl.Tensor(np.array([1e200]), requires_grad=True)
    b = tl.Tensor(np.array([1e-100]))
    out = a / b  # 1e300: finite
    with np.errstate(all="raise"):
        out.backward(np.ones(1))
    np.testing.assert_array_equal(a.grad, [1e100])


# ----- Mean and Max: their defaults when applied directly, the mean of nothing, NaN slices -----


@pytest.mark.parametrize("op", [ops.Sum, ops.Mean, ops.Max, ops.Min])
def test_reduction_applied_directly_reduces_everything_and_keeps_no_axes(op):
    x = tl.Tensor(np.arange(6.0).reshape(2, 3))
    out = op.apply(x)
    assert out.shape == ()
    assert out.item() == {"Sum": 15.0, "Mean": 2.5, "Max": 5.0, "Min": 0.0}[op.__name__]


def test_mean_of_nothing_is_nan_without_a_warning():
    for a in (np.zeros((0,)), np.zeros((2, 0), np.float32)):
        x = tl.Tensor(a, requires_grad=True)
        with _warnings_are_errors(), np.errstate(all="raise"):
            out = x.mean()
            kept = x.mean(axis=-1, keepdims=True)
        assert np.isnan(out.item()) and out.dtype == a.dtype
        assert kept.shape == a.shape[:-1] + (1,) and np.isnan(kept.data).all()


@pytest.mark.parametrize("name", ["max", "min"])
def test_max_and_min_of_a_nan_slice_warn_nothing_and_give_nan_gradient(name):
    x = tl.Tensor(np.array([[np.nan, 1.0], [2.0, 3.0]]), requires_grad=True)
    with _warnings_are_errors():
        out = getattr(x, name)(axis=1)
        out.sum().backward()
    assert np.isnan(out.data[0]) and out.data[1] == (3.0 if name == "max" else 2.0)
    assert np.isnan(x.grad[0]).all()
    np.testing.assert_array_equal(x.grad[1], [0.0, 1.0] if name == "max" else [1.0, 0.0])


@pytest.mark.parametrize("name", ["max", "min"])
def test_gradient_of_max_and_min_keeps_float32_under_create_graph(name):
    x = tl.Tensor(np.array([1.0, 3.0, 3.0], np.float32) * (1 if name == "max" else -1), requires_grad=True)
    (gradient,) = tl.autograd.grad(getattr(x, name)(), x, create_graph=True)
    assert gradient.dtype == np.float32
    np.testing.assert_array_equal(gradient.data, [0.0, 0.5, 0.5])


# ----- Transpose -----


def test_transpose_with_too_few_axes_says_they_are_not_a_permutation():
    x = tl.Tensor(np.zeros((2, 3)))
    with pytest.raises(ValueError) as error:
        x.transpose(0)
    assert str(error.value) == "transpose: axes (0,) are not a permutation of the 2 axes of shape (2, 3)"


# ----- Where -----


def test_where_picks_a_where_the_condition_holds_and_sends_each_side_its_gradient():
    condition = np.array([True, False, True])
    a = tl.Tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    b = tl.Tensor(np.array([10.0, 20.0, 30.0]), requires_grad=True)
    out = ops.Where.apply(a, b, condition=condition)
    np.testing.assert_array_equal(out.data, [1.0, 20.0, 3.0])
    out.backward(np.array([4.0, 5.0, 6.0]))
    np.testing.assert_array_equal(a.grad, [4.0, 0.0, 6.0])
    np.testing.assert_array_equal(b.grad, [0.0, 5.0, 0.0])


def test_where_gradient_is_itself_differentiable():
    condition = np.array([True, False])
    a = tl.Tensor(np.array([2.0, 3.0]), requires_grad=True)
    b = tl.Tensor(np.array([5.0, 7.0]), requires_grad=True)
    out = ops.Where.apply(a * a, b * b, condition=condition).sum()
    grad_a, grad_b = tl.autograd.grad(out, [a, b], create_graph=True)
    np.testing.assert_array_equal(grad_a.data, [4.0, 0.0])
    np.testing.assert_array_equal(grad_b.data, [0.0, 14.0])
    second_a, second_b = tl.autograd.grad((grad_a * grad_a).sum() + grad_b.sum(), [a, b])
    np.testing.assert_array_equal(second_a.data, [16.0, 0.0])  # d(4a²)/da where kept, 0 elsewhere
    np.testing.assert_array_equal(second_b.data, [0.0, 2.0])


# ----- kinks and ties: the conventions of PyTorch -----


def test_relu_slope_at_zero_is_zero():
    x = tl.Tensor(np.array([-1.0, 0.0, 2.0]), requires_grad=True)
    x.relu().sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 0.0, 1.0])


def test_maximum_of_two_tied_tensors_gives_each_half_the_gradient():
    a = tl.Tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    b = tl.Tensor(np.array([1.0, 5.0, 0.0]), requires_grad=True)
    a.maximum(b).backward(np.array([2.0, 4.0, 8.0]))
    np.testing.assert_array_equal(a.grad, [1.0, 0.0, 8.0])
    np.testing.assert_array_equal(b.grad, [1.0, 4.0, 0.0])


def test_gradient_of_maximum_keeps_float32_under_create_graph():
    a = tl.Tensor(np.array([1.0, 2.0], np.float32), requires_grad=True)
    b = tl.Tensor(np.array([1.0, 0.0], np.float32), requires_grad=True)
    grad_a, grad_b = tl.autograd.grad(a.maximum(b).sum(), [a, b], create_graph=True)
    assert grad_a.dtype == grad_b.dtype == np.float32
    np.testing.assert_array_equal(grad_a.data, [0.5, 1.0])
    np.testing.assert_array_equal(grad_b.data, [0.5, 0.0])


def test_clip_passes_the_gradient_at_both_bounds():
    """The bounds are inside, as PyTorch's clamp: slope 1 at low and at high, 0 beyond them."""
    x = tl.Tensor(np.array([-2.0, -1.0, 0.0, 1.0, 2.0]), requires_grad=True)
    x.clip(-1.0, 1.0).sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 1.0, 1.0, 1.0, 0.0])
    y = tl.Tensor(np.array([-2.0, -1.0, 0.0]), requires_grad=True)
    y.clip(low=-1.0).sum().backward()
    np.testing.assert_array_equal(y.grad, [0.0, 1.0, 1.0])
    z = tl.Tensor(np.array([0.0, 1.0, 2.0]), requires_grad=True)
    z.clip(high=1.0).sum().backward()
    np.testing.assert_array_equal(z.grad, [1.0, 1.0, 0.0])


# ----- ScatterAdd: indexing's backward, whose own backward is indexing -----


def test_scatter_add_adds_repeated_positions_and_its_gradient_picks_them_back():
    index = np.array([3, 0, 3])
    a = tl.Tensor(np.array([1.0, 2.0, 4.0]), requires_grad=True)
    out = ops.ScatterAdd.apply(a, index=index, shape=(5,))
    np.testing.assert_array_equal(out.data, [2.0, 0.0, 0.0, 5.0, 0.0])
    out.backward(np.array([10.0, 20.0, 30.0, 40.0, 50.0]))
    np.testing.assert_array_equal(a.grad, [40.0, 10.0, 40.0])


# ----- axes: which ones a reduction accepts, and what it says about the others -----


@pytest.mark.parametrize(
    ("shape", "axis", "message"),
    [
        ((2, 3), 2, "axis 2 is out of bounds for a tensor of 2 dimension(s)"),
        ((2, 3), -3, "axis -3 is out of bounds for a tensor of 2 dimension(s)"),
        ((2, 3), True, "axis True is out of bounds for a tensor of 2 dimension(s)"),
        ((2, 3), (1.0,), "axis 1.0 is out of bounds for a tensor of 2 dimension(s)"),
        ((3,), 1, "axis 1 is out of bounds for a tensor of 1 dimension(s)"),
        ((3,), -2, "axis -2 is out of bounds for a tensor of 1 dimension(s)"),
        ((), 1, "axis 1 is out of bounds for a tensor of 0 dimension(s)"),
        ((), -2, "axis -2 is out of bounds for a tensor of 0 dimension(s)"),
    ],
)
def test_an_axis_out_of_bounds_is_an_axis_error_naming_it(shape, axis, message):
    x = tl.Tensor(np.zeros(shape))
    for reduce in (x.sum, x.mean, x.max):
        with pytest.raises(np.exceptions.AxisError) as error:
            reduce(axis=axis)
        assert str(error.value) == message


@pytest.mark.parametrize("axis", [(0, -2), (1, 1)])
def test_an_axis_named_twice_is_refused(axis):
    with pytest.raises(ValueError) as error:
        tl.Tensor(np.zeros((2, 3))).sum(axis=axis)
    assert str(error.value) == f"axis {axis!r} names the same axis more than once"


def test_every_axis_from_minus_ndim_to_ndim_minus_one_is_accepted():
    a = np.arange(24.0).reshape(2, 3, 4)
    x = tl.Tensor(a)
    for axis in range(-3, 3):
        np.testing.assert_array_equal(x.sum(axis=axis).data, a.sum(axis=axis))
    np.testing.assert_array_equal(x.sum(axis=np.int64(-1)).data, a.sum(axis=-1))
    assert normalize_axes((-1, 0), 3) == (2, 0) and normalize_axes(None, 2) == (0, 1)
    assert normalize_axes(0, 0) == () and normalize_axes(-1, 0) == ()


# ----- matmul: shapes it refuses, batches on either side, gradients only where needed -----


@pytest.mark.parametrize(
    ("left", "right"), [((2, 3), (4,)), ((2, 3), (2, 3)), ((), (3,)), ((3,), ()), ((2, 3, 4), (3, 4))]
)
def test_matmul_of_mismatched_shapes_says_which_axes_must_match(left, right):
    with pytest.raises(ValueError) as error:
        tl.Tensor(np.zeros(left)) @ tl.Tensor(np.zeros(right))
    assert str(error.value) == (
        f"matmul: cannot multiply shapes {left} and {right}; the last axis of the left operand must match "
        "the first (1-D) or second-to-last axis of the right operand"
    )


@pytest.mark.parametrize(("left", "right"), [((2, 3), (4, 3, 5)), ((3,), (4, 3, 5)), ((4, 2, 3), (3, 5))])
def test_matmul_broadcasts_a_batch_on_either_side(left, right):
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=left), rng.normal(size=right)
    x, y = tl.Tensor(a, requires_grad=True), tl.Tensor(b, requires_grad=True)
    out = x @ y
    np.testing.assert_allclose(out.data, np.matmul(a, b), rtol=1e-12)
    assert out.shape == np.matmul(a, b).shape
    upstream = rng.normal(size=out.shape)
    out.backward(upstream)
    a2, up = (a[None, :] if a.ndim == 1 else a), (upstream[..., None, :] if a.ndim == 1 else upstream)
    expected_b = np.matmul(np.swapaxes(a2, -1, -2), up)
    expected_a = np.matmul(up, np.swapaxes(b, -1, -2))
    np.testing.assert_allclose(y.grad, expected_b.reshape((-1, *b.shape)).sum(axis=0), rtol=1e-12)
    np.testing.assert_allclose(x.grad, expected_a.reshape((-1, *a.shape)).sum(axis=0), rtol=1e-12)


@pytest.mark.parametrize("right", [(3,), (3, 2)])
def test_matmul_by_a_constant_gives_only_the_left_gradient(right):
    a = tl.Tensor(np.array([[1.0, 2.0, 3.0]]), requires_grad=True)
    b = np.arange(1.0, 1.0 + np.prod(right)).reshape(right)
    (a @ tl.Tensor(b)).sum().backward()
    np.testing.assert_array_equal(a.grad, b.reshape(3, -1).sum(axis=1)[None, :])


def test_matmul_computes_no_gradient_for_a_constant_operand():
    """Only the gradients asked for are formed: the one nobody asked for would overflow here."""
    with np.errstate(all="raise"):
        w = tl.Tensor(np.array([[1e300]]), requires_grad=True)
        (tl.Tensor(np.array([[1e-300]])) @ w).backward(np.array([[1e300]]))
        np.testing.assert_allclose(w.grad, [[1.0]], rtol=1e-12)
        x = tl.Tensor(np.array([[1e300]]), requires_grad=True)
        (x @ tl.Tensor(np.array([[1e-300]]))).backward(np.array([[1e300]]))
        np.testing.assert_allclose(x.grad, [[1.0]], rtol=1e-12)


# ----- pow at zero, NaN and negative bases -----


def test_pow_gradients_at_zero_and_nan_bases_follow_pytorch():
    """a^0 has slope 0 in a (a = 0 or NaN included); 0^b has slope 0 in b where b >= 0; elsewhere the
    textbook b·a^(b-1) and a^b·log(a), infinities and NaN included."""
    a = tl.Tensor(np.array([0.0, 0.0, 0.0, np.nan, 2.0, 0.0, -2.0]), requires_grad=True)
    b = tl.Tensor(np.array([0.0, 0.5, 2.0, 0.0, 3.0, -1.0, 2.0]), requires_grad=True)
    with np.errstate(all="ignore"):
        out = a**b
        out.backward(np.ones(7))
    np.testing.assert_array_equal(out.data, [1.0, 0.0, 0.0, 1.0, 8.0, np.inf, 4.0])
    np.testing.assert_array_equal(a.grad, [0.0, np.inf, 0.0, 0.0, 12.0, -np.inf, -4.0])
    np.testing.assert_array_equal(b.grad, [0.0, 0.0, 0.0, np.nan, 8 * np.log(2.0), -np.inf, np.nan])


def test_pow_with_a_constant_exponent_takes_no_log_of_a_negative_base():
    x = tl.Tensor(np.array([-2.0, 0.0, 3.0]), requires_grad=True)
    with np.errstate(all="raise"):
        (x**2.0).sum().backward()
    np.testing.assert_array_equal(x.grad, [-4.0, 0.0, 6.0])
