"""Every op against its NumPy reference (forward) and against finite differences (gradient).

One row per op: adding an op means adding a row, and both its forward and its gradient are checked.
"""

import operator
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinygrad_lr as tl
from tests.strategies import (
    FLOAT_DTYPES,
    arrays,
    axis_args,
    broadcastable_pairs,
    index_tensors,
    layouts,
    matmul_shapes,
    noncontiguous,
    permutations,
    shapes,
    shapes_with_empty,
    small_broadcastable_pairs,
    small_shapes,
    squeeze_axes,
    upstream_with_nans,
)
from tinygrad_lr import ops
from tinygrad_lr.ops import normalize_axes

# derivatives of derivatives cost a backward sweep per element: fewer examples
second_order = settings(max_examples=15)


def _sigmoid(a):
    return 1 / (1 + np.exp(-a))


# name: (engine, NumPy reference, value domain)
UNARY = {
    "neg": (operator.neg, operator.neg, "any"),
    "exp": (tl.Tensor.exp, np.exp, "any"),
    "log": (tl.Tensor.log, np.log, "positive"),
    "sqrt": (tl.Tensor.sqrt, np.sqrt, "positive"),
    "abs": (tl.Tensor.abs, np.abs, "nonzero"),
    "relu": (tl.Tensor.relu, lambda a: np.maximum(a, 0), "nonzero"),
    "tanh": (tl.Tensor.tanh, np.tanh, "any"),
    "sigmoid": (tl.Tensor.sigmoid, _sigmoid, "any"),
    "T": (lambda x: x.T, lambda a: a.T, "any"),
    "square": (lambda x: x**2, lambda a: a**2, "any"),
    "cube_root": (lambda x: x ** (1 / 3), lambda a: a ** (1 / 3), "positive"),
    "squeeze": (tl.Tensor.squeeze, np.squeeze, "any"),
    "flatten": (tl.Tensor.flatten, lambda a: a.flatten(), "any"),
    # the bounds sit between the values hypothesis favours, away from the kinks
    "clip": (lambda x: x.clip(-0.7071, 0.6180), lambda a: np.clip(a, -0.7071, 0.6180), "any"),
    "clip_low": (lambda x: x.clip(low=-0.7071), lambda a: np.clip(a, -0.7071, None), "any"),
    "clip_high": (lambda x: x.clip(high=0.6180), lambda a: np.clip(a, None, 0.6180), "any"),
    # float32 in, float64 out (float64 is left as it is); the gradient goes back in the input's dtype
    "cast_float64": (lambda x: tl.ops.Cast.apply(x, dtype=np.float64), lambda a: a.astype(np.float64), "any"),
}

# name: (engine, NumPy reference, left domain, right domain)
BINARY = {
    "add": (operator.add, np.add, "any", "any"),
    "sub": (operator.sub, np.subtract, "any", "any"),
    "mul": (operator.mul, np.multiply, "any", "any"),
    "div": (operator.truediv, np.divide, "any", "nonzero"),
    "pow": (operator.pow, np.power, "positive", "any"),
    "maximum": (tl.Tensor.maximum, np.maximum, "grid", "grid_offset"),
}

# a Python scalar on either side: name: (engine, NumPy reference, domain of the tensor)
SCALAR = {
    "x + 2.5": (lambda x: x + 2.5, lambda a: a + 2.5, "any"),
    "2.5 + x": (lambda x: 2.5 + x, lambda a: 2.5 + a, "any"),
    "x - 2.5": (lambda x: x - 2.5, lambda a: a - 2.5, "any"),
    "2.5 - x": (lambda x: 2.5 - x, lambda a: 2.5 - a, "any"),
    "x * 3": (lambda x: x * 3, lambda a: a * 3, "any"),
    "3 * x": (lambda x: 3 * x, lambda a: 3 * a, "any"),
    "x / 4": (lambda x: x / 4, lambda a: a / 4, "any"),
    "4 / x": (lambda x: 4 / x, lambda a: 4 / a, "nonzero"),
    "x ** 3": (lambda x: x**3, lambda a: a**3, "any"),
    "x ** -1.5": (lambda x: x**-1.5, lambda a: a**-1.5, "positive"),
    "2 ** x": (lambda x: 2**x, lambda a: 2**a, "any"),
    "maximum(x, 0.25)": (lambda x: x.maximum(0.25), lambda a: np.maximum(a, 0.25), "grid"),
}


def _numpy_axis(axis, ndim):
    """The reference's axis: on a 0-d array NumPy refuses the axis 0 or -1 that PyTorch (and the engine) take."""
    return None if ndim == 0 else axis


def _check_forward(engine_out, reference):
    reference = np.asarray(reference)
    assert engine_out.shape == reference.shape
    assert engine_out.dtype == reference.dtype
    np.testing.assert_allclose(engine_out.data, reference, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", sorted(UNARY))
@given(data=st.data(), dtype=FLOAT_DTYPES)
def test_unary_op_forward_matches_numpy(name, data, dtype):
    op, reference, domain = UNARY[name]
    a = data.draw(arrays(data.draw(shapes), domain, dtype))
    _check_forward(op(tl.Tensor(a)), reference(a))


@pytest.mark.parametrize("name", sorted(UNARY))
@given(data=st.data())
def test_unary_op_gradient_passes_gradcheck(name, data):
    op, _, domain = UNARY[name]
    x = tl.Tensor(data.draw(arrays(data.draw(shapes), domain)), requires_grad=True)
    assert tl.gradcheck(op, x)


@pytest.mark.parametrize("name", sorted(BINARY))
@given(data=st.data(), dtype=FLOAT_DTYPES)
def test_binary_op_forward_matches_numpy_with_broadcasting(name, data, dtype):
    op, reference, left, right = BINARY[name]
    (shape_a, shape_b), _ = data.draw(broadcastable_pairs)
    a, b = data.draw(arrays(shape_a, left, dtype)), data.draw(arrays(shape_b, right, dtype))
    _check_forward(op(tl.Tensor(a), tl.Tensor(b)), reference(a, b))


@pytest.mark.parametrize("name", sorted(BINARY))
@given(data=st.data())
def test_binary_op_gradient_passes_gradcheck_with_broadcasting(name, data):
    op, _, left, right = BINARY[name]
    (shape_a, shape_b), _ = data.draw(broadcastable_pairs)
    a = tl.Tensor(data.draw(arrays(shape_a, left)), requires_grad=True)
    b = tl.Tensor(data.draw(arrays(shape_b, right)), requires_grad=True)
    assert tl.gradcheck(op, a, b)


@pytest.mark.parametrize("name", sorted(BINARY))
@given(data=st.data())
def test_binary_op_with_a_numpy_array_on_either_side(name, data):
    op, reference, left, right = BINARY[name]
    (shape_a, shape_b), _ = data.draw(broadcastable_pairs)
    a, b = data.draw(arrays(shape_a, left)), data.draw(arrays(shape_b, right))
    _check_forward(op(tl.Tensor(a), b), reference(a, b))
    if name != "maximum":  # a NumPy array on the left of an operator defers to the Tensor
        _check_forward(op(a, tl.Tensor(b)), reference(a, b))
    x = tl.Tensor(a, requires_grad=True)
    assert tl.gradcheck(lambda x: op(x, b), x)


@pytest.mark.parametrize("name", sorted(SCALAR))
@given(data=st.data(), dtype=FLOAT_DTYPES)
def test_python_scalar_on_either_side(name, data, dtype):
    op, reference, domain = SCALAR[name]
    a = data.draw(arrays(data.draw(shapes), domain, dtype))
    out = op(tl.Tensor(a))
    assert out.dtype == dtype  # a Python scalar takes the tensor's dtype
    np.testing.assert_allclose(out.data, reference(a), rtol=1e-6, atol=1e-7)
    assert tl.gradcheck(op, tl.Tensor(a.astype(np.float64), requires_grad=True))


# ----- ops whose arguments are drawn with the data: reductions, matmul, shapes, indexing -----

# name: draw(data, dtype, shapes) -> (input arrays, engine, NumPy reference). Reductions take any axis (negative,
# a tuple, None, on 0-d arrays too) with keepdims either way; max and min get distinct values (no tie, no kink;
# ties have a test of their own), all positive so that their squares are distinct too (the second derivative).


def _reduction(name, domain="any", unique=False):
    def draw(data, dtype, shapes):
        a = data.draw(arrays(data.draw(shapes), domain, dtype, unique=unique))
        if unique:
            a = a + dtype(3.0)
        axis, keepdims = data.draw(axis_args(a.ndim)), data.draw(st.booleans())
        return (
            [a],
            lambda x: getattr(x, name)(axis=axis, keepdims=keepdims),
            lambda a: getattr(np, name)(a, axis=_numpy_axis(axis, a.ndim), keepdims=keepdims),
        )

    return draw


def _matmul(data, dtype, shapes):
    shape_a, shape_b = data.draw(matmul_shapes())
    return (
        [data.draw(arrays(shape_a, "any", dtype)), data.draw(arrays(shape_b, "any", dtype))],
        operator.matmul,
        np.matmul,
    )


def _reshape(data, dtype, shapes):
    a = data.draw(arrays(data.draw(shapes), "any", dtype))
    new_shape = data.draw(st.sampled_from([(a.size,), (1, a.size), (a.size, 1, 1), (-1,)]))
    return [a], lambda x: x.reshape(new_shape), lambda a: a.reshape(new_shape)


def _transpose(data, dtype, shapes):
    """Any permutation, negative axes included: (-1, 0) is (1, 0)."""
    a = data.draw(arrays(data.draw(shapes), "any", dtype))
    axes = data.draw(permutations(a.ndim))
    return [a], lambda x: x.transpose(*axes), lambda a: np.transpose(a, axes)


def _squeeze_named(data, dtype, shapes):
    """The unary table's `squeeze` removes every length-1 axis; here only the named ones go (none, for `()`)."""
    a = data.draw(arrays(data.draw(shapes), "any", dtype))
    axis = data.draw(squeeze_axes(a.shape))
    return [a], lambda x: x.squeeze(axis), lambda a: np.squeeze(a, axis)


def _basic_index(data, dtype, shapes):
    """ints, slices with any step, None and Ellipsis."""
    a = data.draw(arrays(data.draw(shapes.filter(lambda shape: len(shape) >= 1)), "any", dtype))
    index = data.draw(hnp.basic_indices(a.shape, allow_newaxis=True, allow_ellipsis=True))
    return [a], lambda x: x[index], lambda a: a[index]


def _integer_array_index(data, dtype, shapes):
    """Integer arrays, repeated picks included (their gradients add up)."""
    a = data.draw(arrays(data.draw(shapes.filter(lambda shape: len(shape) >= 1)), "any", dtype))
    index = data.draw(hnp.integer_array_indices(a.shape))
    return [a], lambda x: x[index], lambda a: a[index]


def _expand(data, dtype, shapes):
    """Broadcast to new leading axes, and along the length-1 axes of its own."""
    a = data.draw(arrays(data.draw(shapes), "any", dtype))
    shape = (
        *data.draw(st.lists(st.integers(1, 3), max_size=2)),
        *(data.draw(st.integers(1, 3)) if k == 1 else k for k in a.shape),
    )
    return [a], lambda x: tl.ops.Expand.apply(x, shape=shape), lambda a: np.broadcast_to(a, shape)


def _scatter_add(data, dtype, shapes):
    """Values added into zeros at integer positions, repeated ones included (they add up)."""
    a = data.draw(arrays((data.draw(st.integers(0, 5)),), "any", dtype))
    size = data.draw(st.integers(1, 4))
    index = data.draw(hnp.arrays(np.intp, a.shape, elements=st.integers(0, size - 1)))

    def reference(a):
        full = np.zeros(size, a.dtype)
        np.add.at(full, index, a)
        return full

    return [a], lambda x: tl.ops.ScatterAdd.apply(x, index=index, shape=(size,)), reference


def _where(data, dtype, shapes):
    """One side where a constant mask holds, the other elsewhere."""
    shape = data.draw(shapes)
    a, b = data.draw(arrays(shape, "any", dtype)), data.draw(arrays(shape, "any", dtype))
    condition = data.draw(hnp.arrays(np.bool_, shape))
    return [a, b], lambda x, y: tl.ops.Where.apply(x, y, condition=condition), lambda a, b: np.where(condition, a, b)


SHAPED = {
    "expand": _expand,
    "scatter_add": _scatter_add,
    "where": _where,
    "sum": _reduction("sum"),
    "mean": _reduction("mean"),
    "max": _reduction("max", "grid", unique=True),
    "min": _reduction("min", "grid", unique=True),
    "matmul": _matmul,
    "reshape": _reshape,
    "transpose": _transpose,
    "squeeze_named_axes": _squeeze_named,
    "getitem_basic": _basic_index,
    "getitem_integer_arrays": _integer_array_index,
}


@pytest.mark.parametrize("name", sorted(SHAPED))
@given(data=st.data(), dtype=FLOAT_DTYPES)
def test_shaped_op_forward_matches_numpy(name, data, dtype):
    inputs, op, reference = SHAPED[name](data, dtype, shapes)
    _check_forward(op(*(tl.Tensor(a) for a in inputs)), reference(*inputs))


@pytest.mark.parametrize("name", sorted(SHAPED))
@given(data=st.data())
def test_shaped_op_gradient_passes_gradcheck(name, data):
    inputs, op, _ = SHAPED[name](data, np.float64, shapes)
    assert tl.gradcheck(op, *(tl.Tensor(a, requires_grad=True) for a in inputs))


@pytest.mark.parametrize("name", sorted(SHAPED))
@second_order
@given(data=st.data())
def test_shaped_op_second_derivative_passes_gradgradcheck(name, data):
    """Of the op's output squared (each of these ops is linear in each input, or piecewise so)."""
    inputs, op, _ = SHAPED[name](data, np.float64, small_shapes)
    assert tl.gradgradcheck(lambda *xs: op(*xs) * op(*xs), *(tl.Tensor(a, requires_grad=True) for a in inputs))


def test_the_other_spellings_of_matmul_reshape_and_transpose_give_the_same():
    a, b = np.arange(6.0).reshape(2, 3), np.arange(12.0).reshape(3, 4)
    np.testing.assert_array_equal(tl.Tensor(a).matmul(b).data, a @ b)
    np.testing.assert_array_equal(tl.Tensor(a).reshape(3, 2).data, a.reshape(3, 2))
    np.testing.assert_array_equal(tl.Tensor(a).transpose().data, a.T)


# ----- the edges of the input space: NaN and inf, zeros, empty arrays, memory layouts, index tensors -----


@pytest.mark.parametrize("name", sorted(UNARY))
@given(data=st.data(), dtype=FLOAT_DTYPES)
def test_unary_op_propagates_nan_and_inf_as_numpy(name, data, dtype):
    op, reference, _ = UNARY[name]
    a = data.draw(arrays(data.draw(shapes), "special", dtype))
    with np.errstate(all="ignore"):
        _check_forward(op(tl.Tensor(a)), reference(a))


@pytest.mark.parametrize("name", sorted(BINARY))
@given(data=st.data(), dtype=FLOAT_DTYPES)
def test_binary_op_propagates_nan_and_inf_as_numpy(name, data, dtype):
    op, reference, _, _ = BINARY[name]
    (shape_a, shape_b), _ = data.draw(broadcastable_pairs)
    a, b = data.draw(arrays(shape_a, "special", dtype)), data.draw(arrays(shape_b, "special", dtype))
    with np.errstate(all="ignore"):
        _check_forward(op(tl.Tensor(a), tl.Tensor(b)), reference(a, b))


@given(data=st.data())
def test_pow_at_zero_follows_pytorch(data):
    """d(a^b)/da is 0 wherever b = 0 (a = 0 included); d(a^b)/db is 0 where a = 0 and b >= 0;
    everywhere else the textbook formulas, infinities included (0^-1 has slope -inf in a)."""
    shape = data.draw(shapes)
    a, b = data.draw(arrays(shape, "with_zeros")), data.draw(arrays(shape, "exponent_with_zeros"))
    x, y = tl.Tensor(a, requires_grad=True), tl.Tensor(b, requires_grad=True)
    with np.errstate(all="ignore"):
        (x**y).sum().backward()
        expected_x = np.where(b == 0, 0.0, b * a ** (b - 1))
        expected_y = np.where((a == 0) & (b >= 0), 0.0, a**b * np.log(a))
    np.testing.assert_allclose(x.grad, expected_x, rtol=1e-12)
    np.testing.assert_allclose(y.grad, expected_y, rtol=1e-12)


@pytest.mark.parametrize("name", sorted(UNARY))
@given(data=st.data(), dtype=FLOAT_DTYPES)
def test_unary_op_on_empty_arrays(name, data, dtype):
    op, reference, _ = UNARY[name]
    a = np.zeros(data.draw(shapes_with_empty.filter(lambda shape: 0 in shape)), dtype)
    x = tl.Tensor(a, requires_grad=True)
    out = op(x)
    _check_forward(out, reference(a))
    out.sum().backward()
    assert x.grad.shape == a.shape and x.grad.dtype == dtype


@pytest.mark.parametrize("name", sorted(BINARY))
@given(data=st.data())
def test_binary_op_on_empty_arrays_with_broadcasting(name, data):
    op, reference, _, _ = BINARY[name]
    (shape_a, shape_b), _ = data.draw(
        hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=1, max_dims=3, min_side=0, max_side=3).filter(
            lambda shapes: 0 in shapes.result_shape
        )
    )
    x, y = tl.Tensor(np.ones(shape_a), requires_grad=True), tl.Tensor(np.ones(shape_b), requires_grad=True)
    out = op(x, y)
    _check_forward(out, reference(np.ones(shape_a), np.ones(shape_b)))
    out.sum().backward()
    assert x.grad.shape == shape_a and y.grad.shape == shape_b


@pytest.mark.parametrize("name", ["sum", "mean"])
@given(data=st.data(), dtype=FLOAT_DTYPES, keepdims=st.booleans())
def test_reduction_of_empty_arrays_matches_numpy(name, data, dtype, keepdims):
    """The sum of nothing is 0 and the mean of nothing is nan, as NumPy and PyTorch say."""
    a = np.zeros(data.draw(shapes_with_empty.filter(lambda shape: 0 in shape)), dtype)
    axis = data.draw(axis_args(a.ndim))
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # NumPy warns about the empty mean; the engine does not
        expected = getattr(np, name)(a, axis=_numpy_axis(axis, a.ndim), keepdims=keepdims)
    x = tl.Tensor(a, requires_grad=True)
    out = getattr(x, name)(axis=axis, keepdims=keepdims)
    _check_forward(out, expected)
    out.backward(np.ones(out.shape, dtype))
    assert x.grad.shape == a.shape


@pytest.mark.parametrize("name", sorted(UNARY))
@given(data=st.data(), layout=layouts)
def test_unary_op_is_the_same_on_any_memory_layout(name, data, layout):
    """A view (column-major or strided) as input, and as the upstream gradient, changes nothing."""
    op, _, domain = UNARY[name]
    a = data.draw(arrays(data.draw(shapes), domain))
    np.testing.assert_array_equal(op(tl.Tensor(noncontiguous(a, layout))).data, op(tl.Tensor(a)).data)
    grads = []
    for upstream_layout in ("C", layout):
        x = tl.Tensor(a, requires_grad=True)
        out = op(x)
        upstream = np.arange(1.0, out.size + 1).reshape(out.shape)
        out.backward(noncontiguous(upstream, upstream_layout))
        grads.append(x.grad)
    np.testing.assert_array_equal(grads[0], grads[1])


@pytest.mark.parametrize("name", sorted(BINARY))
@given(data=st.data(), layout=layouts)
def test_binary_op_is_the_same_with_a_view_as_operand(name, data, layout):
    op, _, left, right = BINARY[name]
    (shape_a, shape_b), _ = data.draw(broadcastable_pairs)
    a, b = data.draw(arrays(shape_a, left)), data.draw(arrays(shape_b, right))
    grads = []
    for a_layout in ("C", layout):
        y = tl.Tensor(b, requires_grad=True)
        out = op(tl.Tensor(noncontiguous(a, a_layout)), y)
        out.sum().backward()
        grads.append((out.data, y.grad))
    np.testing.assert_array_equal(grads[0][0], grads[1][0])
    # summing a broadcast gradient may add in another order on another layout: equal up to rounding
    np.testing.assert_allclose(grads[0][1], grads[1][1], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", sorted(BINARY))
@given(data=st.data())
def test_binary_op_with_the_same_tensor_on_both_sides(name, data):
    """One tensor used twice gets the sum of both paths' gradients."""
    op, _, left, right = BINARY[name]
    domain = "positive" if "positive" in (left, right) else "nonzero" if "nonzero" in (left, right) else left
    if name == "maximum":
        domain = "any"  # maximum(x, x) ties everywhere: each side gets half, and the halves add to 1
    x = tl.Tensor(data.draw(arrays(data.draw(shapes), domain)), requires_grad=True)
    assert tl.gradcheck(lambda x: op(x, x), x)


@given(data=st.data())
def test_tensor_index_acts_as_its_array(data):
    """A boolean Tensor is a mask, an integer Tensor picks (repeats add up), alone or in a tuple."""
    a = data.draw(arrays(data.draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4))))
    index, numpy_index = data.draw(index_tensors(a.shape))
    _check_forward(tl.Tensor(a)[index], a[numpy_index])
    x = tl.Tensor(a, requires_grad=True)
    x[index].sum().backward()
    expected = np.zeros_like(a)
    np.add.at(expected, numpy_index, 1.0)
    np.testing.assert_array_equal(x.grad, expected)


def test_a_floating_tensor_is_not_an_index():
    x = tl.Tensor(np.arange(6.0).reshape(3, 2))
    for index in (tl.Tensor([2.0, 0.0]), (tl.Tensor([2.0, 0.0]), 0)):
        with pytest.raises(IndexError, match="float32 cannot be used as an index"):
            x[index]


# ----- a zero local derivative passes no gradient, not even a NaN from above -----

# name: (engine, where its local derivative is 0); drawn on the grid k/2, which holds the kinks, the clip
# bounds (inside, as PyTorch's clamp) and ties with 0.5 (half the gradient to each side)
FLAT = {
    "relu": (tl.Tensor.relu, lambda a: a <= 0),
    "clip": (lambda x: x.clip(-0.5, 0.5), lambda a: (a < -0.5) | (a > 0.5)),
    "clip_low": (lambda x: x.clip(low=-0.5), lambda a: a < -0.5),
    "clip_high": (lambda x: x.clip(high=0.5), lambda a: a > 0.5),
    "maximum(x, 0.5)": (lambda x: x.maximum(0.5), lambda a: a < 0.5),
    "maximum(0.5, x)": (lambda x: tl.Tensor(np.full(x.shape, 0.5, x.dtype)).maximum(x), lambda a: a < 0.5),
    "x ** 0": (lambda x: x**0, lambda a: np.ones(a.shape, bool)),
}


@pytest.mark.parametrize("name", sorted(FLAT))
@given(data=st.data(), dtype=FLOAT_DTYPES)
def test_a_zero_local_derivative_passes_no_nan_from_above(name, data, dtype):
    """Where the derivative is 0 the gradient is 0, even under a NaN; a NaN reaches only the entries that
    depend on it."""
    op, flat = FLAT[name]
    a = data.draw(arrays(data.draw(shapes), "grid", dtype))
    upstream = data.draw(upstream_with_nans(a.shape, dtype))
    x = tl.Tensor(a, requires_grad=True)
    (g,) = tl.autograd.grad(op(x), x, grad_outputs=upstream)
    assert g.dtype == dtype
    np.testing.assert_array_equal(g.data[flat(a)], 0)
    np.testing.assert_array_equal(np.isnan(g.data), np.isnan(upstream) & ~flat(a))


@pytest.mark.parametrize("name", sorted(FLAT))
@second_order
@given(data=st.data(), dtype=FLOAT_DTYPES)
def test_a_zero_local_derivative_passes_no_nan_from_above_in_the_second_derivative(name, data, dtype):
    """d/dx of the gradient of Σf(x)², which is 2f(x)·f'(x), sent a NaN-holding upstream: 2f'(x)²·upstream
    (f is piecewise linear), so 0 where f' is, NaN only where the upstream is and f' is not 0."""
    op, flat = FLAT[name]
    a = data.draw(arrays(data.draw(shapes), "grid", dtype))
    upstream = data.draw(upstream_with_nans(a.shape, dtype))
    x = tl.Tensor(a, requires_grad=True)
    (g,) = tl.autograd.grad((op(x) * op(x)).sum(), x, create_graph=True)
    (h,) = tl.autograd.grad(g, x, grad_outputs=upstream)
    assert h.dtype == dtype
    np.testing.assert_array_equal(h.data[flat(a)], 0)
    np.testing.assert_array_equal(np.isnan(h.data), np.isnan(upstream) & ~flat(a))


# ----- max and min: reductions whose ties share the gradient -----


@pytest.mark.parametrize("name", ["max", "min"])
def test_tied_extremes_share_the_gradient_equally(name):
    x = tl.Tensor(np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]]) * (1 if name == "max" else -1), requires_grad=True)
    getattr(x, name)(axis=1).sum().backward()
    np.testing.assert_allclose(x.grad, [[0.0, 0.5, 0.5], [1 / 3, 1 / 3, 1 / 3]])
    y = tl.Tensor(np.array([np.nan, 1.0]), requires_grad=True)
    assert np.isnan(getattr(y, name)().item())  # NaN propagates, as NumPy's max


def test_squeeze_names_axes_as_numpy_and_refuses_a_long_one():
    x = tl.Tensor(np.zeros((1, 3, 1)))
    assert x.squeeze().shape == (3,) and x.squeeze(0).shape == (3, 1) and x.squeeze((-1, 0)).shape == (3,)
    with pytest.raises(ValueError, match="axis 1 of shape"):
        x.squeeze(1)
    assert tl.Tensor([[1.0, 2.0]]).tolist() == [[1.0, 2.0]] and tl.Tensor(2.0).tolist() == 2.0


@given(data=st.data(), dtype=FLOAT_DTYPES)
def test_tolist_is_ndarray_tolist(data, dtype):
    """Nested lists of Python floats (a float for a 0-d tensor), also from a tensor in a graph."""
    a = data.draw(arrays(data.draw(shapes_with_empty), "special", dtype))
    x = tl.Tensor(a, requires_grad=True)
    values = (x * 1).tolist()
    np.testing.assert_array_equal(np.asarray(values, dtype=dtype).reshape(a.shape), a)
    assert values == a.tolist() or np.isnan(a).any()  # NaN != NaN: the array comparison above covers them
    assert all(type(v) is float for v in np.ravel(np.asarray(values, dtype=object)))


# ----- derivatives of derivatives: every op again, through gradgradcheck -----

SMOOTH = ["exp", "log", "tanh", "sigmoid", "square", "cube_root"]


@pytest.mark.parametrize("name", sorted(UNARY))
@second_order
@given(data=st.data())
def test_unary_op_second_derivative_passes_gradgradcheck(name, data):
    op, _, domain = UNARY[name]
    x = tl.Tensor(data.draw(arrays(data.draw(small_shapes), domain)), requires_grad=True)
    assert tl.gradgradcheck(op, x)


@pytest.mark.parametrize("name", SMOOTH)
@second_order
@given(data=st.data())
def test_smooth_op_third_derivative_passes_gradgradcheck(name, data):
    """The second derivatives of the gradient: third derivatives of the op."""
    op, _, domain = UNARY[name]
    x = tl.Tensor(data.draw(arrays(data.draw(small_shapes), domain)), requires_grad=True)

    def gradient(x):
        return tl.autograd.grad(op(x).sum(), x, create_graph=True)[0]

    assert tl.gradgradcheck(gradient, x)


@pytest.mark.parametrize("name", sorted(BINARY))
@second_order
@given(data=st.data())
def test_binary_op_second_derivative_passes_gradgradcheck(name, data):
    op, _, left, right = BINARY[name]
    (shape_a, shape_b), _ = data.draw(small_broadcastable_pairs)
    a = tl.Tensor(data.draw(arrays(shape_a, left)), requires_grad=True)
    b = tl.Tensor(data.draw(arrays(shape_b, right)), requires_grad=True)
    assert tl.gradgradcheck(op, a, b)


@second_order
@given(data=st.data())
def test_pow_third_derivative_in_both_operands(data):
    (shape_a, shape_b), _ = data.draw(small_broadcastable_pairs)
    a = tl.Tensor(data.draw(arrays(shape_a, "positive")), requires_grad=True)
    b = tl.Tensor(data.draw(arrays(shape_b, "any")), requires_grad=True)

    def gradient(a, b):
        grad_a, grad_b = tl.autograd.grad((a**b).sum(), [a, b], create_graph=True)
        return grad_a.sum() * 0.5 + grad_b.sum()

    assert tl.gradgradcheck(gradient, a, b)


@pytest.mark.parametrize("name", sorted(SCALAR))
@second_order
@given(data=st.data())
def test_python_scalar_op_second_derivative(name, data):
    op, _, domain = SCALAR[name]
    x = tl.Tensor(data.draw(arrays(data.draw(small_shapes), domain)), requires_grad=True)
    assert tl.gradgradcheck(op, x)


@second_order
@given(data=st.data())
def test_squeeze_flatten_and_clip_second_derivative_through_a_square(data):
    """The table's rows are linear (or piecewise so): through x² their second derivatives are not all 0."""
    a = data.draw(arrays(data.draw(small_shapes), "grid"))  # squares 0, 0.25, 1, 2.25, 4: never on a bound
    axis = data.draw(squeeze_axes(a.shape))
    x = tl.Tensor(a, requires_grad=True)
    assert tl.gradgradcheck(lambda x: (x * x).squeeze(axis), x)
    assert tl.gradgradcheck(lambda x: (x * x).flatten() * x.flatten(), x)
    assert tl.gradgradcheck(lambda x: (x * x).clip(0.5, 3.0) * x, x)
    assert tl.gradgradcheck(lambda x: (x * x).clip(high=1.5) + (x * x * x).clip(low=-0.5), x)


@pytest.mark.parametrize("name", sorted(UNARY))
@second_order
@given(data=st.data(), dtype=FLOAT_DTYPES)
def test_first_derivative_is_the_same_with_and_without_a_graph(name, data, dtype):
    """backward() runs each backward on arrays; create_graph=True runs the same lines on Tensors."""
    op, _, domain = UNARY[name]
    a = data.draw(arrays(data.draw(shapes), domain, dtype))
    x = tl.Tensor(a, requires_grad=True)
    op(x).sum().backward()
    (with_graph,) = tl.autograd.grad(op(x).sum(), x, create_graph=True)
    np.testing.assert_allclose(with_graph.data, x.grad, rtol=1e-6 if dtype == np.float32 else 1e-12)


def test_clip_takes_bounds_that_broadcast_as_numpys_does():
    x = tl.Tensor(np.array([0.0, 1.0, 2.0]), requires_grad=True)
    low = np.array([[0.5], [1.5]])
    y = x.clip(low, 1.8)
    np.testing.assert_array_equal(y.data, np.clip(x.data, low, 1.8))
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 1.0, 0.0])  # 1.0 lies inside [0.5, 1.8] only


def test_an_axis_that_is_not_an_integer_is_a_type_error():
    x = tl.Tensor(np.ones((2, 3)))
    for axis in (1.0, "0", (0, 1.5), True, (1.0,)):
        with pytest.raises(TypeError) as error:
            x.sum(axis=axis)
        assert str(error.value) == f"axis must be None, an int or a tuple of ints, got {axis!r}"


def test_clip_takes_tensor_and_array_bounds_as_constants_in_its_own_dtype():
    x = tl.Tensor(np.array([0.0, 1.0, 2.0, 3.0], dtype=np.float32), requires_grad=True)
    low, high = tl.Tensor(np.array([0.5, 0.5, 0.5, 0.5])), np.array([2.5, 2.5, 1.5, 2.5])  # float64 bounds
    y = x.clip(low, high)
    np.testing.assert_array_equal(y.data, np.clip(x.data, low.data, high).astype(np.float32))
    assert y.dtype == np.float32
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 1.0, 0.0, 0.0])  # clipped below, inside, above, above
    assert low.grad is None


# ----- the fused ops (Linear's affine map, mean squared error, the L2 penalty): rows of their own -----
# each a function of x (n, in), w (in, out), b (out,) and a target t (n, out): name: (engine, NumPy reference)


def _mean_square(d):
    return np.mean(d * d)


FUSED = {
    "affine": (lambda x, w, b, t: tl.ops.Affine.apply(x, w, b), lambda x, w, b, t: x @ w + b),
    "mean_squared_error": (
        lambda x, w, b, t: tl.ops.MeanSquaredError.apply(x @ w + b, t),
        lambda x, w, b, t: _mean_square(x @ w + b - t),
    ),
    "l2_penalty": (
        lambda x, w, b, t: tl.ops.L2Penalty.apply(w, b, l2=0.3),
        lambda x, w, b, t: 0.3 * (np.sum(w * w) + np.sum(b * b)),
    ),
    "affine_mse": (
        lambda x, w, b, t: tl.ops.AffineMSE.apply(x, w, b, t),
        lambda x, w, b, t: _mean_square(x @ w + b - t),
    ),
    "affine_mse_l2": (
        lambda x, w, b, t: tl.ops.AffineMSE.apply(x, w, b, t, l2=0.3),
        lambda x, w, b, t: _mean_square(x @ w + b - t) + 0.3 * np.sum(w * w),
    ),
}


@st.composite
def _affine_problems(draw, dtype=np.float64):
    n, d_in, d_out = draw(st.integers(1, 5)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    shapes = [(n, d_in), (d_in, d_out), (d_out,), (n, d_out)]
    return [draw(arrays(shape, "any", dtype)) for shape in shapes]


@pytest.mark.parametrize("name", sorted(FUSED))
@given(data=st.data(), dtype=FLOAT_DTYPES)
def test_fused_op_forward_matches_numpy(name, data, dtype):
    op, reference = FUSED[name]
    arrays_ = data.draw(_affine_problems(dtype))
    out = op(*(tl.Tensor(a) for a in arrays_))
    want = np.asarray(reference(*arrays_), dtype=dtype)
    assert out.shape == want.shape and out.dtype == want.dtype
    np.testing.assert_allclose(out.data, want, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-6)


@pytest.mark.parametrize("name", sorted(FUSED))
@given(data=st.data())
def test_fused_op_gradient_passes_gradcheck(name, data):
    op, _ = FUSED[name]
    tensors = [tl.Tensor(a, requires_grad=True) for a in data.draw(_affine_problems())]
    assert tl.gradcheck(op, *tensors)


@pytest.mark.parametrize("name", sorted(FUSED))
@second_order
@given(data=st.data())
def test_fused_op_second_derivative_passes_gradgradcheck(name, data):
    op, _ = FUSED[name]
    tensors = [tl.Tensor(a, requires_grad=True) for a in data.draw(_affine_problems())]
    assert tl.gradgradcheck(lambda *ts: op(*ts) * op(*ts), *tensors)


@settings(max_examples=3, deadline=None)
@given(data=st.data())
def test_the_tables_apply_every_op_of_ops_py(data):
    """Every op class of ops.py, fused ones included, is the op of some entry of the tables above (so each is
    checked forward against NumPy, and its first and second derivatives against finite differences)."""
    tape: list = []
    previous, tl.tensor._mode.tape = tl.tensor._mode.tape, tape
    try:
        half = tl.Tensor(np.full((2, 3), 0.5))
        for engine, *_ in [*UNARY.values(), *SCALAR.values()]:
            engine(half)
        for engine, *_ in BINARY.values():
            engine(half, tl.Tensor(np.full((2, 3), 0.25)))
        for make in SHAPED.values():
            inputs, op, _ = make(data, np.float64, shapes)
            op(*(tl.Tensor(a) for a in inputs))
        for op, _ in FUSED.values():
            op(*(tl.Tensor(a) for a in data.draw(_affine_problems())))
    finally:
        tl.tensor._mode.tape = previous
    every = {
        kind
        for kind in vars(tl.ops).values()
        if isinstance(kind, type) and issubclass(kind, tl.Function) and kind.__module__ == "tinygrad_lr.ops"
    }
    assert every - {tl.ops.Op} - {type(ctx) for ctx, _, _, _ in tape} == set()


# ===== the fine print: kinks and ties, defaults, dtypes, warnings and messages (was test_ops_details) =====


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
