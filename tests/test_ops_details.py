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
        assert kept.shape == (*a.shape[:-1], 1) and np.isnan(kept.data).all()


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


def test_max_abs_and_powers_multiply_a_nan_from_above_as_pytorch():
    """Where PyTorch multiplies the upstream gradient by a local derivative that happens to be 0, a NaN
    from above stays NaN, as there: amax's entries below the maximum, abs at 0, x² at 0, 0^b in b (b >= 0)."""
    up = np.array([np.nan, np.nan, np.nan])
    x = tl.Tensor(np.array([1.0, 3.0, 3.0]), requires_grad=True)
    np.testing.assert_array_equal(tl.autograd.grad(x.max(), x, grad_outputs=np.nan)[0].data, up)
    rows = tl.Tensor(np.array([[1.0, 3.0], [2.0, 0.0]]), requires_grad=True)
    (g,) = tl.autograd.grad(rows.max(axis=1), rows, grad_outputs=np.array([np.nan, 1.0]))
    np.testing.assert_array_equal(g.data, [[np.nan, np.nan], [1.0, 0.0]])
    z = tl.Tensor(np.array([0.0, -1.0]), requires_grad=True)
    np.testing.assert_array_equal(tl.autograd.grad(z.abs(), z, grad_outputs=up[:2])[0].data, up[:2])
    np.testing.assert_array_equal(tl.autograd.grad(z**2, z, grad_outputs=up[:2])[0].data, up[:2])
    b = tl.Tensor(np.array([0.0, 2.0]), requires_grad=True)
    np.testing.assert_array_equal(tl.autograd.grad(tl.Tensor(np.zeros(2)) ** b, b, grad_outputs=up[:2])[0].data, up[:2])


def test_a_zero_exponent_that_varies_keeps_the_mixed_second_derivative_of_pow():
    """Only a constant exponent 0 makes a^b flat in a at every order (no gradient, not even a NaN from above).
    A varying one keeps the product b·a^(b-1): d²(a^b)/da db = 1/a at b = 0, from either side. (PyTorch
    selects 0 there and gets 0 from one side, 1/a from the other; its gradgradcheck fails at b = 0.)"""
    a = tl.Tensor(np.array([0.5, 2.0]), requires_grad=True)
    b = tl.Tensor(np.zeros(2), requires_grad=True)
    grad_a, grad_b = tl.autograd.grad((a**b).sum(), [a, b], create_graph=True)
    np.testing.assert_array_equal(grad_a.data, [0.0, 0.0])
    np.testing.assert_array_equal(tl.autograd.grad(grad_a.sum(), b)[0].data, [2.0, 0.5])
    np.testing.assert_array_equal(tl.autograd.grad(grad_b.sum(), a)[0].data, [2.0, 0.5])
    assert tl.gradgradcheck(lambda a, b: a**b, a, b)


def test_maximum_of_a_nan_sends_the_gradient_to_both_sides_as_pytorch():
    """Neither side loses to a NaN (a < b and a > b are both false): each gets the whole gradient."""
    a = tl.Tensor(np.array([np.nan, 1.0]), requires_grad=True)
    b = tl.Tensor(np.array([1.0, np.nan]), requires_grad=True)
    grad_a, grad_b = tl.autograd.grad(a.maximum(b).sum(), [a, b])
    np.testing.assert_array_equal(grad_a.data, [1.0, 1.0])
    np.testing.assert_array_equal(grad_b.data, [1.0, 1.0])


# ----- Cast: a dtype change, differentiable -----


def test_cast_sends_the_gradient_back_in_its_inputs_dtype_at_every_order():
    x = tl.Tensor(np.array([1.5, -2.0]), requires_grad=True)
    y = ops.Cast.apply(x, dtype=np.float32)
    assert y.dtype == np.float32
    (g,) = tl.autograd.grad((y * y * y).sum(), x, create_graph=True)  # 3x², rounded through float32
    assert g.dtype == np.float64
    np.testing.assert_array_equal(g.data, 3 * x.data**2)
    (h,) = tl.autograd.grad(g.sum(), x)
    assert h.dtype == np.float64
    np.testing.assert_array_equal(h.data, 6 * x.data)
    x.grad = None
    (y * 2).sum().backward()
    assert x.grad.dtype == np.float64


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


def test_pow_sends_no_gradient_to_a_tensor_that_started_requiring_one_after_the_op():
    """The graph is recorded when the op runs: switching requires_grad on afterwards changes nothing."""
    base, exponent = tl.Tensor(np.array([2.0])), tl.Tensor(np.array([3.0]), requires_grad=True)
    out = base**exponent
    base.requires_grad = True
    out.backward(np.ones(1))
    assert base.grad is None
    np.testing.assert_allclose(exponent.grad, [8 * np.log(2.0)], rtol=1e-15)
    base, exponent = tl.Tensor(np.array([2.0]), requires_grad=True), tl.Tensor(np.array([3.0]))
    out = base**exponent
    exponent.requires_grad = True
    out.backward(np.ones(1))
    assert exponent.grad is None
    np.testing.assert_array_equal(base.grad, [12.0])


def test_pow_second_derivatives_in_base_and_exponent():
    """d²(x³)/dx² = 6x and d²(2^y)/dy² = 2^y·log(2)²: the masks at zero are constants, the rest a graph."""
    x = tl.Tensor(np.array([2.0, -1.0]), requires_grad=True)
    (slope,) = tl.autograd.grad((x**3.0).sum(), x, create_graph=True)
    np.testing.assert_array_equal(slope.data, [12.0, 3.0])
    np.testing.assert_array_equal(tl.autograd.grad(slope.sum(), x)[0].data, [12.0, -6.0])
    y = tl.Tensor(np.array([3.0]), requires_grad=True)
    (slope,) = tl.autograd.grad((tl.Tensor(np.array([2.0])) ** y).sum(), y, create_graph=True)
    np.testing.assert_allclose(tl.autograd.grad(slope.sum(), y)[0].data, [8 * np.log(2.0) ** 2], rtol=1e-15)


# ----- the helpers that serve arrays and Tensors alike -----


def test_helpers_give_arrays_for_arrays_and_ops_for_a_tensor_on_either_side():
    """expand, where, log, matmul, scatter_add: NumPy's result for arrays; with a Tensor anywhere, a
    Tensor whose graph reaches it (so that a gradient written with them is differentiable again)."""
    a, m = np.array([1.0, 2.0]), np.array([[1.0], [2.0]])
    condition = np.array([True, False])
    assert type(ops.expand(a, (3, 2))) is np.ndarray
    assert type(ops.where(condition, a, 0)) is np.ndarray
    assert type(ops.log(a)) is np.ndarray
    assert type(ops.matmul(a, m)) is np.ndarray
    assert type(ops.scatter_add(a, np.array([0, 0]), (3,))) is np.ndarray
    assert type(ops.cast(a, np.float32)) is np.ndarray and ops.cast(a, np.float64) is a
    np.testing.assert_array_equal(ops.scatter_add(a, np.array([0, 0]), (3,)), [3.0, 0.0, 0.0])
    x = tl.Tensor(a, requires_grad=True)
    results = {
        "expand": ops.expand(x, (3, 2)),
        "where x, 0": ops.where(condition, x, 0),
        "where 0, x": ops.where(condition, 0, x),
        "log": ops.log(x),
        "matmul x, m": ops.matmul(x, m),
        "matmul m.T, x": ops.matmul(m.T, x),
        "scatter_add": ops.scatter_add(x, np.array([0, 0]), (3,)),
        "cast": ops.cast(x, np.float32),
    }
    expected = {
        "expand": np.broadcast_to(a, (3, 2)),
        "where x, 0": [1.0, 0.0],
        "where 0, x": [0.0, 2.0],
        "log": np.log(a),
        "matmul x, m": [5.0],
        "matmul m.T, x": 5.0,
        "scatter_add": [3.0, 0.0, 0.0],
        "cast": np.float32(a),
    }
    for name, out in results.items():
        assert isinstance(out, tl.Tensor) and out.requires_grad, name
        np.testing.assert_array_equal(out.data, expected[name], err_msg=name)


def test_the_second_derivative_of_a_sum_spreads_through_its_expand():
    """d²/dx² (Σx)² = 2 everywhere: Sum's backward, run on Tensors, is an Expand op in the graph."""
    x = tl.Tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    hessian = tl.autograd.hessian(lambda x: x.sum() ** 2.0, x)
    np.testing.assert_array_equal(hessian.data, np.full((3, 3), 2.0))


def test_matmul_second_derivative_in_both_operands():
    """f = (x·w)²: d/dw of Σ df/dx = 2·x·Σw + 2·(x·w)·1, with x (1, 2) and w (2, 1)."""
    x = tl.Tensor(np.array([[1.0, 2.0]]), requires_grad=True)
    w = tl.Tensor(np.array([[3.0], [4.0]]), requires_grad=True)
    (slope,) = tl.autograd.grad(((x @ w) ** 2.0).sum(), x, create_graph=True)
    np.testing.assert_array_equal(slope.data, [[66.0, 88.0]])
    np.testing.assert_array_equal(tl.autograd.grad(slope.sum(), w)[0].data, [[36.0], [50.0]])


# ----- matmul: which NumPy routine, exactly -----


def test_matmul_is_numpy_dot_up_to_two_axes_and_numpy_matmul_for_batches_bit_for_bit():
    """The module's rule: np.dot for operands of at most two axes (its fast path), np.matmul beyond.
    On strided operands the two round differently, so the results are checked bit for bit."""
    rng = np.random.default_rng(0)

    def strided(shape):  # every other element of a wider array
        return np.repeat(rng.normal(size=shape), 2, axis=-1)[..., ::2]

    for a, b in [
        (strided((5, 7)), rng.normal(size=7)),
        (rng.normal(size=33), strided((33, 20))),
        (strided((40, 33)), strided((33, 20))),
    ]:
        np.testing.assert_array_equal((tl.Tensor(a) @ tl.Tensor(b)).data, np.dot(a, b))
    for a, b in [(rng.normal(size=(3, 4, 5)), rng.normal(size=(5, 6))), (rng.normal(size=(3, 4, 5)), strided(5))]:
        np.testing.assert_array_equal((tl.Tensor(a) @ tl.Tensor(b)).data, np.matmul(a, b))


@pytest.mark.parametrize(("left", "right"), [((3,), (3, 2)), ((2, 3), (3,)), ((4, 2, 3), (3,)), ((3,), (3,))])
def test_matmul_gradients_with_a_vector_operand(left, right):
    """A 1-D operand is a row on the left and a column on the right; its gradient comes back 1-D."""
    a = np.arange(1.0, 1.0 + np.prod(left)).reshape(left)
    b = np.arange(2.0, 2.0 + np.prod(right)).reshape(right)
    x, y = tl.Tensor(a, requires_grad=True), tl.Tensor(b, requires_grad=True)
    out = x @ y
    upstream = np.arange(1.0, 1.0 + out.size).reshape(out.shape) if out.ndim else np.array(1.5)
    out.backward(upstream)
    a2 = a[None, :] if a.ndim == 1 else a
    b2 = b[:, None] if b.ndim == 1 else b
    up = upstream.reshape(np.matmul(a2, b2).shape)
    grad_a = np.matmul(up, b2.T)
    grad_b = np.matmul(np.swapaxes(a2, -1, -2), up)
    np.testing.assert_array_equal(x.grad, grad_a.reshape(a.shape))
    np.testing.assert_array_equal(y.grad, grad_b.reshape((-1, *b2.shape)).sum(axis=0).reshape(b.shape))


# ----- Sum, Mean and Reshape gradients along chosen axes -----


@pytest.mark.parametrize("keepdims", [False, True])
def test_sum_and_mean_gradients_spread_along_the_reduced_axes_only(keepdims):
    a = np.arange(24.0).reshape(2, 3, 4)
    for name, scale in (("sum", 1.0), ("mean", 1 / 8)):  # 2·4 elements in each mean
        x = tl.Tensor(a, requires_grad=True)
        out = getattr(x, name)(axis=(0, -1), keepdims=keepdims)
        np.testing.assert_allclose(out.data, getattr(a, name)(axis=(0, 2), keepdims=keepdims), rtol=1e-15)
        out.backward(np.array([1.0, 2.0, 3.0]).reshape(out.shape))
        np.testing.assert_allclose(x.grad, np.broadcast_to(np.array([1.0, 2.0, 3.0])[:, None], a.shape) * scale)


def test_reshape_gradient_comes_back_in_the_input_shape():
    x = tl.Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    out = x.reshape(3, 2)
    np.testing.assert_array_equal(out.data, np.arange(6.0).reshape(3, 2))
    out.backward(np.arange(10.0, 16.0).reshape(3, 2))
    np.testing.assert_array_equal(x.grad, np.arange(10.0, 16.0).reshape(2, 3))
    (slope,) = tl.autograd.grad((x.reshape(-1) ** 2.0).sum(), x, create_graph=True)
    assert slope.shape == (2, 3)
    np.testing.assert_array_equal(tl.autograd.grad(slope.sum(), x)[0].data, np.full((2, 3), 2.0))


# ----- the fused ops: Affine, MeanSquaredError, L2Penalty -----


def test_affine_is_x_at_w_plus_b_with_leading_axes_as_rows():
    x_data = np.arange(12.0).reshape(2, 3, 2)
    w_data, b_data = np.array([[1.0, -1.0, 2.0], [0.5, 3.0, -2.0]]), np.array([10.0, 20.0, 30.0])
    x, w, b = (tl.Tensor(v, requires_grad=True) for v in (x_data, w_data, b_data))
    out = ops.Affine.apply(x, w, b)
    np.testing.assert_array_equal(out.data, x_data @ w_data + b_data)
    upstream = np.arange(18.0).reshape(2, 3, 3) - 5
    out.backward(upstream)
    np.testing.assert_array_equal(x.grad, upstream @ w_data.T)
    np.testing.assert_array_equal(w.grad, x_data.reshape(-1, 2).T @ upstream.reshape(-1, 3))
    np.testing.assert_array_equal(b.grad, upstream.reshape(-1, 3).sum(axis=0))


def test_affine_computes_only_the_gradients_asked_for():
    """Each gradient nobody asked for would overflow here; none is formed."""
    with np.errstate(all="raise"):
        w = tl.Tensor(np.array([[1e300]]), requires_grad=True)
        ops.Affine.apply(np.full((2, 1), 1e-300), w, np.zeros(1)).backward(np.full((2, 1), 1e308))
        np.testing.assert_allclose(w.grad, [[2e8]], rtol=1e-12)
        x = tl.Tensor(np.full((1, 1), 1e300), requires_grad=True)
        ops.Affine.apply(x, np.array([[1e-300]]), np.zeros(1)).backward(np.array([[1e300]]))
        np.testing.assert_allclose(x.grad, [[1.0]], rtol=1e-12)


def test_mean_squared_error_value_gradient_and_dtype():
    pred = tl.Tensor(np.array([1.0, 2.0, 3.0, 4.0], np.float32), requires_grad=True)
    target = tl.Tensor(np.array([0.0, 0.0, 1.0, 1.0], np.float32), requires_grad=True)
    loss = ops.MeanSquaredError.apply(pred, target)
    assert loss.shape == () and loss.dtype == np.float32 and loss.item() == 4.5
    loss.backward(np.array(2.0, np.float32))
    np.testing.assert_array_equal(pred.grad, [1.0, 2.0, 2.0, 3.0])  # 2·2·(pred - target)/4
    np.testing.assert_array_equal(target.grad, [-1.0, -2.0, -2.0, -3.0])
    one = tl.Tensor(np.array([5.0]), requires_grad=True)
    ops.MeanSquaredError.apply(one, np.array([2.0])).backward()
    np.testing.assert_array_equal(one.grad, [6.0])  # 2·(5 - 2)/1


@pytest.mark.parametrize(
    ("pred_dtype", "target_dtype", "dtype"),
    [(np.float32, np.float64, np.float64), (np.float64, np.float32, np.float64), (np.float32, np.float32, np.float32)],
)
def test_mean_squared_error_takes_the_common_dtype_of_its_operands(pred_dtype, target_dtype, dtype):
    loss = ops.MeanSquaredError.apply(np.ones(3, pred_dtype), np.zeros(3, target_dtype))
    assert loss.dtype == dtype and loss.item() == 1.0


def test_mean_squared_error_of_nothing_is_nan():
    loss = ops.MeanSquaredError.apply(np.zeros((0, 2)), np.zeros((0, 2)))
    assert loss.shape == () and np.isnan(loss.item())


@pytest.mark.parametrize("extra", [0, 5])
def test_mean_squared_error_over_many_blocks_is_exact(extra):
    """Past one block the sum runs block by block: every element counted once, from the first."""
    n = 3 * ops.MeanSquaredError.block + extra
    diff = (np.arange(n) % 7 - 3).astype(np.float64)  # small integers: every partial sum is exact
    target = np.arange(n, dtype=np.float64)
    loss = ops.MeanSquaredError.apply((target + diff).reshape(-1, 1), target.reshape(-1, 1))
    assert loss.item() == np.sum(diff * diff) / n


def test_l2_penalty_value_dtype_and_gradient():
    w1 = tl.Tensor(np.array([1.0, 2.0], np.float32), requires_grad=True)
    w2 = tl.Tensor(np.array([[3.0]]), requires_grad=True)
    penalty = ops.L2Penalty.apply(w1, w2, l2=0.25)
    assert penalty.shape == () and penalty.dtype == np.float32 and penalty.item() == 3.5  # 0.25·(1+4+9)
    penalty.backward(np.array(4.0, np.float32))
    np.testing.assert_array_equal(w1.grad, [2.0, 4.0])  # 4·2·0.25·w
    np.testing.assert_array_equal(w2.grad, [[6.0]])


def _affine_mse_problem(n, d, k, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x, target = rng.normal(size=(n, d)).astype(dtype), rng.normal(size=(n, k)).astype(dtype)
    w, b = rng.normal(size=(d, k)).astype(dtype), rng.normal(size=k).astype(dtype)
    return x, w, b, target


@pytest.mark.parametrize(
    ("dtype", "target_dtype"),
    [(np.float32, np.float32), (np.float64, np.float64), (np.float32, np.float64), (np.float64, np.float32)],
)
@pytest.mark.parametrize(("n", "d", "k"), [(1, 1, 1), (6, 1, 1), (50, 3, 2), (40_000, 2, 1)])  # the last: many blocks
@pytest.mark.parametrize("l2", [0.0, 0.25])
def test_affine_mse_is_affine_then_mse_plus_l2_to_the_bit(dtype, target_dtype, n, d, k, l2):
    x, w, b, target = _affine_mse_problem(n, d, k, dtype)
    arrays = (x, w, b, target.astype(target_dtype))

    def gradients(fused):
        x, w, b, target = (tl.Tensor(a, requires_grad=True) for a in arrays)
        if fused:
            loss = ops.AffineMSE.apply(x, w, b, target, l2=l2)
        else:
            loss = ops.MeanSquaredError.apply(ops.Affine.apply(x, w, b), target)
            loss = loss + ops.L2Penalty.apply(w, l2=l2) if l2 else loss
        loss.backward()
        return [loss.data] + [t.grad for t in (x, w, b, target)]

    for fused, separate in zip(gradients(True), gradients(False)):
        assert fused.dtype == separate.dtype
        np.testing.assert_array_equal(fused, separate)


@pytest.mark.parametrize("l2", [0.0, 0.3])
def test_affine_mse_first_and_second_derivatives_pass_their_checks(l2):
    inputs = [tl.Tensor(a, requires_grad=True) for a in _affine_mse_problem(5, 3, 2, np.float64, seed=4)]

    def fn(*tensors):
        return ops.AffineMSE.apply(*tensors, l2=l2)

    assert tl.gradcheck(fn, *inputs)
    assert tl.gradgradcheck(fn, *inputs)


@pytest.mark.parametrize("which", range(4))
@pytest.mark.parametrize("l2", [0.0, 0.5])
def test_affine_mse_computes_only_the_gradients_asked_for(which, l2):
    arrays = list(_affine_mse_problem(4, 2, 1, np.float64))
    arrays[which] = tl.Tensor(arrays[which], requires_grad=True)
    ctx = ops.AffineMSE.apply(*arrays, l2=l2)._ctx
    assert ctx.needs_input_grad == tuple(i == which for i in range(4))
    assert [g is None for g in ctx.backward(np.array(1.0))] == [i != which for i in range(4)]


@pytest.mark.parametrize("l2", [0.0, 0.5])
def test_affine_mse_first_derivative_is_the_same_with_and_without_a_graph(l2):
    """With create_graph the backward runs on Tensors, the difference formed again as ops."""
    inputs = [tl.Tensor(a, requires_grad=True) for a in _affine_mse_problem(5, 3, 2, np.float64, seed=2)]
    plain = tl.autograd.grad(ops.AffineMSE.apply(*inputs, l2=l2), inputs)
    graphed = tl.autograd.grad(ops.AffineMSE.apply(*inputs, l2=l2), inputs, create_graph=True)
    for p, g in zip(plain, graphed):
        np.testing.assert_allclose(g.data, p.data, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize(
    ("x_shape", "w_shape", "target_shape"),
    [
        ((4,), (4, 1), (4, 1)),
        ((4, 2), (2, 1), (4,)),
        ((4, 2), (2, 1), (3, 1)),
        ((2, 4, 2), (2, 1), (2, 4, 1)),
        ((4, 2), (2, 2, 1), (4, 1)),
        ((4, 2), (2,), (4, 1)),
    ],
)
def test_affine_mse_refuses_shapes_other_than_rows_and_columns(x_shape, w_shape, target_shape):
    message = r"AffineMSE: x must be \(n, in\), w \(in, out\) and target \(n, out\); got x \("
    with pytest.raises(ValueError, match=message):
        ops.AffineMSE.apply(np.ones(x_shape), np.ones(w_shape), np.ones(1), np.ones(target_shape))


def test_affine_mse_without_l2_has_no_penalty_term_at_all():
    """0·Σw² is not nothing: with an infinite weight it is nan. Without l2 the loss is Affine + MSE's: inf."""
    w = np.array([[np.inf]])
    with np.errstate(invalid="ignore"):
        fused = ops.AffineMSE.apply(np.ones((2, 1)), w, np.zeros(1), np.zeros((2, 1))).item()
        separate = ops.MeanSquaredError.apply(ops.Affine.apply(np.ones((2, 1)), w, np.zeros(1)), np.zeros((2, 1)))
    assert fused == separate.item() == np.inf
