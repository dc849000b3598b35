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


@given(data=st.data(), dtype=FLOAT_DTYPES)
def test_matmul_forward_matches_numpy(data, dtype):
    shape_a, shape_b = data.draw(matmul_shapes())
    a, b = data.draw(arrays(shape_a, "any", dtype)), data.draw(arrays(shape_b, "any", dtype))
    _check_forward(tl.Tensor(a) @ tl.Tensor(b), a @ b)
    _check_forward(tl.Tensor(a).matmul(b), a @ b)


@given(data=st.data())
def test_matmul_gradient_passes_gradcheck(data):
    shape_a, shape_b = data.draw(matmul_shapes())
    a = tl.Tensor(data.draw(arrays(shape_a)), requires_grad=True)
    b = tl.Tensor(data.draw(arrays(shape_b)), requires_grad=True)
    assert tl.gradcheck(operator.matmul, a, b)


@pytest.mark.parametrize("name", ["sum", "mean"])
@given(data=st.data(), dtype=FLOAT_DTYPES, keepdims=st.booleans())
def test_reduction_forward_and_gradient(name, data, dtype, keepdims):
    a = data.draw(arrays(data.draw(shapes), "any", dtype))
    axis = data.draw(axis_args(a.ndim))
    op = lambda x: getattr(x, name)(axis=axis, keepdims=keepdims)  # noqa: E731
    _check_forward(op(tl.Tensor(a)), getattr(np, name)(a, axis=_numpy_axis(axis, a.ndim), keepdims=keepdims))
    assert tl.gradcheck(op, tl.Tensor(a.astype(np.float64), requires_grad=True))


@given(data=st.data(), dtype=FLOAT_DTYPES)
def test_reshape_forward_and_gradient(data, dtype):
    a = data.draw(arrays(data.draw(shapes), "any", dtype))
    new_shape = data.draw(st.sampled_from([(a.size,), (1, a.size), (a.size, 1, 1), (-1,)]))
    _check_forward(tl.Tensor(a).reshape(new_shape), a.reshape(new_shape))
    _check_forward(tl.Tensor(a).reshape(*new_shape), a.reshape(new_shape))
    assert tl.gradcheck(lambda x: x.reshape(new_shape) * 2, tl.Tensor(a.astype(np.float64), requires_grad=True))


@given(data=st.data(), dtype=FLOAT_DTYPES)
def test_transpose_with_any_permutation(data, dtype):
    """Negative axes included: a permutation written (-1, 0) is (1, 0)."""
    a = data.draw(arrays(data.draw(shapes), "any", dtype))
    axes = data.draw(permutations(a.ndim))
    _check_forward(tl.Tensor(a).transpose(*axes), np.transpose(a, axes))
    _check_forward(tl.Tensor(a).transpose(), np.transpose(a))
    assert tl.gradcheck(lambda x: x.transpose(axes) * 3, tl.Tensor(a.astype(np.float64), requires_grad=True))


@given(data=st.data(), dtype=FLOAT_DTYPES)
def test_basic_indexing_forward_and_gradient(data, dtype):
    """ints, slices with any step, None and Ellipsis."""
    a = data.draw(arrays(data.draw(hnp.array_shapes(min_dims=1, max_dims=3, max_side=5)), "any", dtype))
    index = data.draw(hnp.basic_indices(a.shape, allow_newaxis=True, allow_ellipsis=True))
    _check_forward(tl.Tensor(a)[index], a[index])
    assert tl.gradcheck(lambda x: x[index] * 2, tl.Tensor(a.astype(np.float64), requires_grad=True))


@given(data=st.data())
def test_integer_array_indexing_sums_repeated_picks(data):
    a = data.draw(arrays(data.draw(hnp.array_shapes(min_dims=1, max_dims=3, max_side=5))))
    index = data.draw(hnp.integer_array_indices(a.shape))
    _check_forward(tl.Tensor(a)[index], a[index])
    assert tl.gradcheck(lambda x: x[index] * x[index], tl.Tensor(a, requires_grad=True))


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
@given(data=st.data(), dtype=FLOAT_DTYPES, keepdims=st.booleans())
def test_max_and_min_forward_and_gradient(name, data, dtype, keepdims):
    a = data.draw(arrays(data.draw(shapes), "grid", dtype, unique=True))  # distinct values: no tie, no kink
    axis = data.draw(axis_args(a.ndim))
    op = lambda x: getattr(x, name)(axis=axis, keepdims=keepdims)  # noqa: E731
    _check_forward(op(tl.Tensor(a)), getattr(np, name)(a, axis=_numpy_axis(axis, a.ndim), keepdims=keepdims))
    assert tl.gradcheck(op, tl.Tensor(a.astype(np.float64), requires_grad=True))


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
def test_squeeze_of_named_axes_forward_and_gradient(data, dtype):
    """The table's `squeeze` removes every length-1 axis; here only the named ones go (none, for `()`)."""
    a = data.draw(arrays(data.draw(shapes), "any", dtype))
    axis = data.draw(squeeze_axes(a.shape))
    _check_forward(tl.Tensor(a).squeeze(axis), np.squeeze(a, axis))
    assert tl.gradcheck(lambda x: x.squeeze(axis), tl.Tensor(a.astype(np.float64), requires_grad=True))


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
def test_matmul_second_derivative(data):
    shape_a, shape_b = data.draw(matmul_shapes())
    a = tl.Tensor(data.draw(arrays(shape_a)), requires_grad=True)
    b = tl.Tensor(data.draw(arrays(shape_b)), requires_grad=True)
    assert tl.gradgradcheck(lambda a, b: (a @ b) * (a @ b), a, b)


@pytest.mark.parametrize("name", ["sum", "mean", "max", "min"])
@second_order
@given(data=st.data(), keepdims=st.booleans())
def test_reduction_second_derivative(name, data, keepdims):
    a = data.draw(arrays(data.draw(small_shapes), "grid_offset", unique=True))  # no two squares tie
    axis = data.draw(axis_args(a.ndim))
    x = tl.Tensor(a + 3.0, requires_grad=True)  # all positive: distinct values have distinct squares
    assert tl.gradgradcheck(lambda x: getattr(x * x, name)(axis=axis, keepdims=keepdims), x)


@second_order
@given(data=st.data())
def test_shape_ops_and_indexing_second_derivative(data):
    a = data.draw(arrays(data.draw(hnp.array_shapes(min_dims=1, max_dims=2, max_side=3))))
    axes = data.draw(permutations(a.ndim))
    basic = data.draw(hnp.basic_indices(a.shape, allow_newaxis=True, allow_ellipsis=True))
    picks = data.draw(hnp.integer_array_indices(a.shape))
    x = tl.Tensor(a, requires_grad=True)
    assert tl.gradgradcheck(lambda x: (x * x).transpose(axes).reshape(-1), x)
    assert tl.gradgradcheck(lambda x: (x * x)[basic], x)
    assert tl.gradgradcheck(lambda x: (x * x)[picks] * x[picks], x)


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
