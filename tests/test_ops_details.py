"""The fine print of the ops: conventions at kinks and ties, defaults, dtypes, warnings and messages.

tests/test_ops.py checks every op against NumPy and finite differences away from kinks and ties;
these tests pin down what happens exactly on them, and what a user sees besides the values.
"""

import warnings

import numpy as np
import pytest

import tinygrad_lr as tl
from tinygrad_lr import ops


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
