"""The rules of the engine: accumulation, several paths, long chains, no_grad, detach, dtypes, errors."""

import numpy as np
import pytest

import tinygrad_lr as tl


def test_backward_twice_accumulates():
    x = tl.Tensor([1.0, 2.0, 3.0], requires_grad=True)
    loss = (x * x).sum()
    loss.backward()
    np.testing.assert_allclose(x.grad, [2.0, 4.0, 6.0])
    loss.backward()  # the graph is kept: a second call adds the same gradient again
    np.testing.assert_allclose(x.grad, [4.0, 8.0, 12.0])
    x.grad = None
    (x * 3).sum().backward()
    np.testing.assert_allclose(x.grad, [3.0, 3.0, 3.0])


def test_tensor_used_on_several_paths_gets_the_sum():
    x = tl.Tensor(2.0, requires_grad=True)
    y = x * x + x.exp() * x + 3 * x  # d/dx = 2x + e^x(1 + x) + 3
    y.backward()
    np.testing.assert_allclose(x.grad, 2 * 2 + np.exp(2) * 3 + 3, rtol=1e-6)


def test_diamond_graph_counts_each_path_once():
    x = tl.Tensor(3.0, requires_grad=True)
    a = x * 2
    b = a + a  # one node reached twice
    (b * a).backward()  # 8x² → 16x
    np.testing.assert_allclose(x.grad, 48.0)


def test_chain_of_10000_ops_has_no_recursion_limit():
    x = tl.Tensor(1.0, requires_grad=True, dtype=np.float64)
    y = x
    for _ in range(10_000):
        y = y * 1.0001
    y.backward()
    np.testing.assert_allclose(x.grad, 1.0001**10_000, rtol=1e-9)


def test_only_leaves_keep_grad():
    x = tl.Tensor([1.0, 2.0], requires_grad=True)
    hidden = x * 2
    hidden.sum().backward()
    assert hidden.grad is None and not hidden.is_leaf
    np.testing.assert_allclose(x.grad, [2.0, 2.0])


def test_no_grad_records_nothing():
    x = tl.Tensor([1.0, 2.0], requires_grad=True)
    with tl.no_grad():
        y = (x * 2).sum()
        assert not tl.is_grad_enabled()
    assert tl.is_grad_enabled()
    assert not y.requires_grad
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.backward()


def test_no_grad_as_decorator_restores_state_after_an_error():
    @tl.no_grad()
    def fails(x):
        assert not tl.is_grad_enabled()
        raise KeyError("inside")

    with pytest.raises(KeyError):
        fails(1)
    assert tl.is_grad_enabled()


def test_detach_cuts_the_graph():
    x = tl.Tensor([1.0, 2.0], requires_grad=True)
    y = (x * x.detach()).sum()  # the detached factor is a constant
    y.backward()
    np.testing.assert_allclose(x.grad, [1.0, 2.0])
    assert not x.detach().requires_grad
    assert np.shares_memory(x.detach().data, x.data)


def test_constants_get_no_gradient():
    x = tl.Tensor([1.0, 2.0], requires_grad=True)
    c = tl.Tensor([5.0, 7.0])
    (x * c).sum().backward()
    assert c.grad is None


@pytest.mark.parametrize(
    ("data", "dtype", "expected"),
    [
        ([1, 2, 3], None, np.float32),  # lists become float32
        (3, None, np.float32),
        (2.5, None, np.float32),  # so do Python floats
        (np.arange(3), None, np.float32),  # and integer arrays
        (np.array([True, False]), None, np.float32),
        (np.zeros(3, np.float64), None, np.float64),  # floating arrays keep their dtype
        (np.zeros(3, np.float32), None, np.float32),
        (np.float64(1.5), None, np.float64),  # as do NumPy floating scalars
        ([1, 2], np.float64, np.float64),  # unless a dtype is given
        (np.zeros(2, np.float32), np.float64, np.float64),
    ],
)
def test_tensor_dtype_rules(data, dtype, expected):
    assert tl.Tensor(data, dtype=dtype).dtype == expected


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_python_scalar_takes_the_tensor_dtype(dtype):
    x = tl.Tensor(np.ones(3, dtype), requires_grad=True)
    for y in (x + 1, 2.0 * x, x / 3, 1 - x, x**2, 2.0**x, x.maximum(0.5)):
        assert y.dtype == dtype
    (x * 0.1).sum().backward()
    assert x.grad.dtype == dtype


def test_numpy_array_operand_follows_numpy_promotion_and_grad_keeps_leaf_dtype():
    x = tl.Tensor(np.ones(2, np.float32), requires_grad=True)
    y = x * np.array([2.0, 3.0])  # float64 array: NumPy promotes to float64
    assert y.dtype == np.float64
    y.sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_allclose(x.grad, [2.0, 3.0])


def test_non_numeric_data_is_a_type_error():
    with pytest.raises(TypeError, match="expected numbers"):
        tl.Tensor(["a", "b"])


def test_backward_on_non_scalar_needs_a_gradient():
    x = tl.Tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="a gradient must be given"):
        (x * 2).backward()
    (x * 2).backward(np.array([1.0, 10.0]))
    np.testing.assert_allclose(x.grad, [2.0, 20.0])
    (x * 2).backward(tl.Tensor([1.0, 1.0]))  # a Tensor works as the upstream gradient too
    np.testing.assert_allclose(x.grad, [4.0, 22.0])


def test_backward_with_a_gradient_of_the_wrong_shape_is_an_error():
    x = tl.Tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match=r"grad has shape \(3,\) but the output has shape \(2,\)"):
        (x * 2).backward(np.ones(3))


def test_backward_without_requires_grad_says_so():
    x = tl.Tensor([1.0, 2.0])
    with pytest.raises(RuntimeError, match="does not require grad"):
        (x * 2).sum().backward()


def test_matmul_of_incompatible_shapes_names_both_shapes():
    a, b = tl.Tensor(np.ones((3, 2))), tl.Tensor(np.ones((4, 1)))
    with pytest.raises(ValueError, match=r"\(3, 2\) and \(4, 1\)"):
        a @ b
    with pytest.raises(ValueError, match=r"\(\) and \(3,\)"):
        tl.Tensor(2.0) @ tl.Tensor(np.ones(3))


def test_transpose_T_reverses_axes():
    a = np.arange(24.0).reshape(2, 3, 4)
    assert tl.Tensor(a).T.shape == (4, 3, 2)
    assert tl.Tensor(a).transpose(1, 0, 2).shape == (3, 2, 4)


def test_ndarray_on_the_left_gives_a_tensor():
    y = np.array([1.0, 2.0]) + tl.Tensor([1.0, 1.0])
    assert isinstance(y, tl.Tensor)
    assert isinstance(np.ones((2, 2)) @ tl.Tensor(np.ones(2)), tl.Tensor)


def test_item_numpy_and_repr():
    x = tl.Tensor([[2.5]], requires_grad=True)
    assert x.item() == 2.5 and isinstance(x.item(), float)
    assert x.numpy() is x.data
    assert "requires_grad=True" in repr(x)
    with pytest.raises(ValueError, match="2 elements"):
        tl.Tensor([1.0, 2.0]).item()


class Cube(tl.Function):
    """A user-defined op: x³ with its derivative 3x²."""

    def forward(self, x):
        self.x = x
        return x**3

    def backward(self, grad):
        return grad * 3 * self.x**2


def test_user_defined_function_joins_the_graph():
    x = tl.Tensor([1.0, 2.0], requires_grad=True, dtype=np.float64)
    y = (Cube.apply(x) * 2).sum()
    y.backward()
    np.testing.assert_allclose(x.grad, [6.0, 24.0])
    assert tl.gradcheck(lambda x: Cube.apply(x), x)


def test_user_function_with_a_badly_shaped_gradient_is_named():
    class BadShape(tl.Function):
        def forward(self, x):
            return x * 2

        def backward(self, grad):
            return np.ones(7)

    x = tl.Tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match=r"BadShape.backward: gradient 0 has shape \(7,\)"):
        BadShape.apply(x).sum().backward()


def test_user_function_returning_too_few_gradients_is_named():
    class TwoInputs(tl.Function):
        def forward(self, a, b):
            return a + b

        def backward(self, grad):
            return grad

    a, b = tl.Tensor(1.0, requires_grad=True), tl.Tensor(2.0, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"TwoInputs.backward returned 1 gradients for 2 inputs"):
        TwoInputs.apply(a, b).backward()


def test_unbroadcast_sums_added_and_stretched_axes():
    from tinygrad_lr.tensor import unbroadcast

    grad = np.ones((5, 2, 3))
    np.testing.assert_array_equal(unbroadcast(grad, (2, 1)), np.full((2, 1), 15.0))
    np.testing.assert_array_equal(unbroadcast(grad, ()), 30.0)
    np.testing.assert_array_equal(unbroadcast(grad, (1, 3)), np.full((1, 3), 10.0))
    with pytest.raises(ValueError):
        unbroadcast(grad, (3, 2))


def test_numpy_functions_read_a_tensor():
    x = tl.Tensor([1.0, 3.0])
    assert np.asarray(x) is x.data
    assert np.mean(np.asarray(x, dtype=np.float64)) == 2.0


def test_a_parameter_never_aliases_the_callers_array_but_data_are_shared():
    start = np.array([1.0, 2.0])
    w = tl.Tensor(start, requires_grad=True)
    (w * 2).sum().backward()
    opt = tl.optim.SGD([w], lr=0.5)
    opt.step()
    np.testing.assert_array_equal(start, [1.0, 2.0])  # the caller's starting point is intact
    data = np.ones(3)
    assert tl.Tensor(data).data is data  # plain data are not copied


# ----- defects found by outside testing (issue 10): each the issue's own reproduction -----


def test_transpose_with_a_negative_axis_sends_the_gradient_home():
    w = np.arange(9.0).reshape(3, 3)
    x = tl.Tensor(np.ones((3, 3)), requires_grad=True)
    (x.transpose(-1, 0) * w).sum().backward()
    np.testing.assert_array_equal(x.grad, w.T)
    x = tl.Tensor(np.ones((2, 3)), requires_grad=True)
    (x.transpose(-1, 0) * np.arange(6.0).reshape(3, 2)).sum().backward()
    np.testing.assert_array_equal(x.grad, np.arange(6.0).reshape(3, 2).T)
    with pytest.raises(ValueError, match=r"not a permutation|more than once"):
        x.transpose(0, -2)


def test_pow_at_zero_has_pytorchs_gradients():
    x = tl.Tensor(np.array([0.0, 2.0]), requires_grad=True)
    (x**0).sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 0.0])  # not nan at x = 0
    y = tl.Tensor(np.array([2.0, 0.0]), requires_grad=True)
    (tl.Tensor(np.zeros(2)) ** y).sum().backward()
    np.testing.assert_array_equal(y.grad, [0.0, 0.0])  # not nan and -inf


@pytest.mark.parametrize("axis", [0, -1, (0,), (-1,), None])
@pytest.mark.parametrize("name", ["sum", "mean"])
def test_reductions_of_a_0d_tensor_take_axis_0_and_minus_1(name, axis):
    x = tl.Tensor(2.0, requires_grad=True)
    out = getattr(x, name)(axis=axis)
    assert out.shape == () and out.item() == 2.0
    out.backward()
    assert x.grad == 1.0
    with pytest.raises(np.exceptions.AxisError, match="out of bounds"):
        getattr(x, name)(axis=1)


def test_relu_keeps_nan():
    np.testing.assert_array_equal(tl.Tensor([np.nan, 1.0, -1.0]).relu().data, [np.nan, 1.0, 0.0])


def test_a_boolean_tensor_is_a_mask_and_an_integer_tensor_picks():
    data = np.arange(6.0).reshape(3, 2)
    x = tl.Tensor(data, requires_grad=True)
    mask = tl.Tensor([True, False, True], dtype=bool)
    np.testing.assert_array_equal(x[mask].data, data[[0, 2]])  # rows 0 and 2, not rows 1, 0, 1
    np.testing.assert_array_equal(x[tl.Tensor([2, 0], dtype=np.int64), 0].data, [4.0, 0.0])
    x[tl.Tensor([2, 2], dtype=np.int64)].sum().backward()
    np.testing.assert_array_equal(x.grad, [[0, 0], [0, 0], [2, 2]])


def test_the_mean_of_nothing_is_nan():
    assert np.isnan(tl.Tensor(np.zeros(0)).mean().item())
    assert np.isnan(tl.losses.mse(np.zeros((0, 1)), np.zeros(0)).item())
    assert np.isnan(tl.losses.mae(np.zeros(0), np.zeros(0)).item())
    np.testing.assert_array_equal(tl.Tensor(np.zeros((0, 2))).mean(axis=0).data, [np.nan, np.nan])
    assert tl.Tensor(np.zeros(0)).sum().item() == 0.0


def test_repr_shows_values_dtype_and_requires_grad():
    assert repr(tl.Tensor([1.0, 2.5])) == "Tensor([1. , 2.5], dtype=float32)"
    assert repr(tl.Tensor(np.array([[1.0, 2.0]]), requires_grad=True)) == (
        "Tensor([[1., 2.]], dtype=float64, requires_grad=True)"
    )


def test_no_grad_decorator_passes_arguments_on():
    @tl.no_grad()
    def scaled(x, factor=1.0):
        return x * factor

    y = scaled(tl.Tensor([1.0, 2.0], requires_grad=True), factor=3.0)
    np.testing.assert_array_equal(y.data, [3.0, 6.0])
    assert not y.requires_grad and scaled.__name__ == "scaled"


def test_numpy_reads_a_tensor_in_the_dtype_it_asks_for():
    x = tl.Tensor([1.5, 2.5])
    assert np.asarray(x).dtype == np.float32 and np.asarray(x) is x.data
    as_float64 = np.asarray(x, dtype=np.float64)
    assert as_float64.dtype == np.float64
    np.testing.assert_array_equal(as_float64, [1.5, 2.5])


def test_zero_grad_and_abs():
    x = tl.Tensor([-2.0, 0.0, 3.0], requires_grad=True)
    y = abs(x)
    np.testing.assert_array_equal(y.data, [2.0, 0.0, 3.0])
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [-1.0, 0.0, 1.0])  # the kink at 0 gets slope 0, not a division by 0
    x.zero_grad()
    assert x.grad is None


def test_a_function_without_forward_or_backward_says_which():
    class Half(tl.Function):
        pass

    with pytest.raises(NotImplementedError, match=r"^Half\.forward is not written$"):
        Half.apply(tl.Tensor([1.0]))

    class OnlyForward(tl.Function):
        def forward(self, x):
            return x

    y = OnlyForward.apply(tl.Tensor([1.0], requires_grad=True))
    with pytest.raises(NotImplementedError, match=r"^OnlyForward\.backward is not written$"):
        y.sum().backward()


def test_the_message_for_a_floating_index():
    message = (
        "a Tensor of dtype float64 cannot be used as an index; indices must be integers or booleans "
        "(make it with dtype=np.int64 or dtype=bool)"
    )
    with pytest.raises(IndexError) as error:
        tl.Tensor([1.0, 2.0])[tl.Tensor(np.array([0.0]))]
    assert str(error.value) == message


def test_indexing_accumulates_repeated_picks_in_the_gradients_dtype():
    """Picking one float32 element three times adds the three gradients in float64 when they are
    float64, and in float32 when they are float32 (as PyTorch's index backward does)."""
    tiny = 2.0**-24  # half a float32 ulp of 1: 1 + tiny rounds back to 1 in float32, not in float64
    upstream = np.array([1.0, tiny, tiny])
    x = tl.Tensor(np.zeros(2, np.float32), requires_grad=True)
    (x[np.array([0, 0, 0])] * upstream).sum().backward()  # the float64 upstream makes the gradient float64
    assert x.grad[0] == np.float32(1.0 + 2 * tiny)
    x = tl.Tensor(np.zeros(2, np.float32), requires_grad=True)
    x[np.array([0, 0, 0])].backward(upstream.astype(np.float32))
    assert x.grad[0] == np.float32(1.0)


def test_every_public_module_shows_its_api_and_only_its_api():
    import importlib

    for name in ["autograd", "callbacks", "checks", "data", "datasets", "gradcheck", "losses", "nn", "ops",
                 "optim", "plot", "solvers", "tensor", "training", "report", "cli"]:  # fmt: skip
        module = importlib.import_module(f"tinygrad_lr.{name}")
        assert all(hasattr(module, public) for public in module.__all__), name
        assert "np" not in module.__all__ and "os" not in module.__all__
    assert dir(tl.nn) == ["Linear", "Module", "Sequential", "load_model"]
    assert "np" not in dir(tl.optim) and "Adam" in dir(tl.optim)


# ===== the fine print: defaults, dtypes, messages, the corners of the backward sweep (was test_engine_details) =====


# ----- the NumPy protocol -----


@pytest.mark.parametrize(("stored", "asked"), [(np.float32, np.float64), (np.float64, np.float32)])
def test_array_protocol_returns_the_dtype_numpy_asks_for(stored, asked):
    x = tl.Tensor(np.array([1.5, 2.5], stored))
    array = x.__array__(asked)
    assert array.dtype == asked
    np.testing.assert_array_equal(array, [1.5, 2.5])
    assert x.__array__() is x.data


# ----- reductions keep no axes unless asked -----


@pytest.mark.parametrize("name", ["max", "min", "sum", "mean"])
def test_reductions_drop_the_reduced_axes_by_default(name):
    x = tl.Tensor(np.arange(6.0).reshape(2, 3))
    assert getattr(x, name)().shape == ()
    assert getattr(x, name)(axis=0).shape == (3,)
    assert getattr(x, name)(axis=1, keepdims=True).shape == (2, 1)


# ----- making a Tensor -----


def test_non_numeric_data_message_names_the_dtype_and_the_container():
    with pytest.raises(TypeError) as error:
        tl.Tensor(["a", "b"])
    assert str(error.value) == (
        "Tensor: expected numbers, got data of NumPy dtype <U1 (from list); convert it to a numeric array first"
    )
    with pytest.raises(TypeError) as error:
        tl.Tensor(np.array([b"x"]))
    assert str(error.value) == (
        "Tensor: expected numbers, got data of NumPy dtype |S1 (from ndarray); convert it to a numeric array first"
    )


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (np.array([True, False]), [1.0, 0.0]),  # booleans, signed and unsigned integers are numbers
        (np.array([-3, 4], np.int8), [-3.0, 4.0]),
        (np.array([3, 4], np.uint16), [3.0, 4.0]),
        (np.array([1.5, 2.5], np.float16), [1.5, 2.5]),  # a floating array keeps its dtype
    ],
)
def test_numeric_arrays_of_every_kind_are_accepted(data, expected):
    x = tl.Tensor(data)
    np.testing.assert_array_equal(x.data, expected)
    assert x.dtype == (data.dtype if data.dtype.kind == "f" else np.float32)


def test_a_given_dtype_wins_over_the_datas_own():
    data = np.array([1.0, 2.0], np.float32)
    x = tl.Tensor(data, dtype=np.float64)
    assert x.dtype == np.float64 and x.data is not data
    assert tl.Tensor(np.float64(2.0), dtype=np.float32).dtype == np.float32
    assert tl.Tensor(tl.Tensor([1, 2]), dtype=np.float64).dtype == np.float64
    np.testing.assert_array_equal(tl.Tensor([1, 2], dtype=np.float64).data, [1.0, 2.0])


def test_a_tensor_made_from_a_tensor_shares_its_data_unless_it_is_a_parameter():
    source = tl.Tensor(np.array([1.0, 2.0]))
    assert tl.Tensor(source).data is source.data
    parameter = tl.Tensor(source, requires_grad=True)
    assert not np.shares_memory(parameter.data, source.data)
    np.testing.assert_array_equal(parameter.data, [1.0, 2.0])
    data = np.array([1.0, 2.0], np.float32)
    same_dtype = tl.Tensor(data, requires_grad=True, dtype=np.float32)  # asarray would have shared it
    assert not np.shares_memory(same_dtype.data, data)
    scalar = np.float64(3.0)
    assert tl.Tensor(scalar, requires_grad=True).item() == 3.0


def test_a_new_tensor_is_a_leaf_with_no_gradient():
    x = tl.Tensor([1.0, 2.0], requires_grad=1)
    assert x.requires_grad is True and x.grad is None and x.is_leaf
    assert tl.Tensor([1.0]).requires_grad is False
    y = x * 2
    assert not y.is_leaf and y.grad is None


def test_plain_properties_read_the_array():
    x = tl.Tensor(np.zeros((3, 4, 5)))
    assert (x.shape, x.dtype, x.ndim, x.size, len(x)) == ((3, 4, 5), np.float64, 3, 60, 3)
    assert tl.Tensor([[1.0, 2.0]]).tolist() == [[1.0, 2.0]]
    assert tl.Tensor(2.5).tolist() == 2.5


def test_item_message_names_the_shape_and_the_count():
    with pytest.raises(ValueError) as error:
        tl.Tensor(np.zeros((2, 3))).item()
    assert str(error.value) == "item(): tensor of shape (2, 3) has 6 elements, not 1"
    assert tl.Tensor(np.zeros((1, 1, 1))).item() == 0.0


def test_detach_shares_data_and_drops_requires_grad():
    x = tl.Tensor([1.0, 2.0], requires_grad=True)
    d = x.detach()
    assert d.data is x.data and not d.requires_grad and d.is_leaf


# ----- operands -----


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_python_numbers_of_every_kind_take_the_tensors_dtype(dtype):
    x = tl.Tensor(np.array([1.0, 2.0], dtype))
    for operand in (2, 2.0, True):
        for y in (x + operand, operand + x, x - operand, operand - x, x * operand, operand * x):
            assert y.dtype == dtype
        assert (x / operand).dtype == dtype and (operand / x).dtype == dtype
        assert (x**operand).dtype == dtype and (operand**x).dtype == dtype
    np.testing.assert_array_equal((x + True).data, [2.0, 3.0])


def test_arithmetic_puts_each_operand_on_its_side():
    a = tl.Tensor(np.array([6.0, 8.0]))
    b = np.array([2.0, 4.0])
    np.testing.assert_array_equal((a - 1).data, [5.0, 7.0])
    np.testing.assert_array_equal((1 - a).data, [-5.0, -7.0])
    np.testing.assert_array_equal((a / 2).data, [3.0, 4.0])
    np.testing.assert_array_equal((24 / a).data, [4.0, 3.0])
    np.testing.assert_array_equal((a**2).data, [36.0, 64.0])
    np.testing.assert_array_equal((2**a).data, [64.0, 256.0])
    np.testing.assert_array_equal((a + 1).data, [7.0, 9.0])
    np.testing.assert_array_equal((1 + a).data, [7.0, 9.0])
    np.testing.assert_array_equal((a * 3).data, [18.0, 24.0])
    np.testing.assert_array_equal((3 * a).data, [18.0, 24.0])
    np.testing.assert_array_equal((b - a).data, [-4.0, -4.0])
    np.testing.assert_array_equal((b / a).data, [1 / 3, 0.5])
    np.testing.assert_array_equal((b**a).data, [64.0, 65536.0])
    np.testing.assert_array_equal((-a).data, [-6.0, -8.0])
    np.testing.assert_array_equal(a.maximum(7).data, [7.0, 8.0])
    np.testing.assert_array_equal(a.maximum(np.array([7.0, 7.0])).data, [7.0, 8.0])


def test_matmul_from_either_side():
    m = tl.Tensor(np.array([[1.0, 2.0], [3.0, 4.0]]))
    v = np.array([1.0, 10.0])
    np.testing.assert_array_equal((m @ v).data, [21.0, 43.0])
    np.testing.assert_array_equal((v @ m).data, [31.0, 42.0])
    np.testing.assert_array_equal(m.matmul(v).data, [21.0, 43.0])
    np.testing.assert_array_equal((m @ [1.0, 10.0]).data, [21.0, 43.0])
    np.testing.assert_array_equal(([1.0, 10.0] @ m).data, [31.0, 42.0])


def test_unary_methods_compute_their_function():
    x = tl.Tensor(np.array([-1.0, 0.25, 4.0]))
    np.testing.assert_array_equal(x.abs().data, [1.0, 0.25, 4.0])
    np.testing.assert_array_equal(abs(x).data, [1.0, 0.25, 4.0])
    np.testing.assert_array_equal(x.relu().data, [0.0, 0.25, 4.0])
    np.testing.assert_array_equal(x.exp().data, np.exp([-1.0, 0.25, 4.0]))
    np.testing.assert_array_equal(x.tanh().data, np.tanh([-1.0, 0.25, 4.0]))
    np.testing.assert_allclose(x.sigmoid().data, 1 / (1 + np.exp([1.0, -0.25, -4.0])), rtol=1e-15)
    y = tl.Tensor(np.array([0.25, 4.0]))
    np.testing.assert_array_equal(y.log().data, np.log([0.25, 4.0]))
    np.testing.assert_array_equal(y.sqrt().data, [0.5, 2.0])
    np.testing.assert_array_equal(x.clip(0.0, 1.0).data, [0.0, 0.25, 1.0])
    np.testing.assert_array_equal(x.clip(low=0.0).data, [0.0, 0.25, 4.0])
    np.testing.assert_array_equal(x.clip(high=1.0).data, [-1.0, 0.25, 1.0])
    np.testing.assert_array_equal(x.clip().data, [-1.0, 0.25, 4.0])


# ----- shapes -----


def test_reshape_takes_a_shape_or_its_parts():
    x = tl.Tensor(np.arange(6.0))
    assert x.reshape(2, 3).shape == (2, 3)
    assert x.reshape((3, 2)).shape == (3, 2)
    assert x.reshape([1, 6]).shape == (1, 6)
    assert x.reshape(6).shape == (6,)
    assert x.reshape(-1, 2).shape == (3, 2)
    assert tl.Tensor(7.0).reshape(()).shape == ()
    np.testing.assert_array_equal(x.reshape([3, 2]).data, np.arange(6.0).reshape(3, 2))


def test_flatten_lays_the_values_out_in_row_major_order():
    x = tl.Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    flat = x.flatten()
    np.testing.assert_array_equal(flat.data, np.arange(6.0))
    (flat * np.arange(6.0)).sum().backward()
    np.testing.assert_array_equal(x.grad, np.arange(6.0).reshape(2, 3))


def test_squeeze_removes_all_unit_axes_or_only_the_named_ones():
    x = tl.Tensor(np.zeros((1, 3, 1, 2, 1)))
    assert x.squeeze().shape == (3, 2)
    assert x.squeeze(0).shape == (3, 1, 2, 1)
    assert x.squeeze(2).shape == (1, 3, 2, 1)
    assert x.squeeze(-1).shape == (1, 3, 1, 2)
    assert x.squeeze((0, -1)).shape == (3, 1, 2)
    assert x.squeeze([2, 4]).shape == (1, 3, 2)
    assert tl.Tensor(np.zeros((2, 3))).squeeze().shape == (2, 3)
    assert tl.Tensor(np.zeros((1, 1))).squeeze().shape == ()


def test_squeeze_of_a_longer_axis_names_it_with_its_length():
    x = tl.Tensor(np.zeros((1, 3, 1, 4)))
    with pytest.raises(ValueError) as error:
        x.squeeze(1)
    assert str(error.value) == "squeeze: axis 1 of shape (1, 3, 1, 4) has length 3"
    with pytest.raises(ValueError) as error:
        x.squeeze((0, 3, 1))
    assert str(error.value) == "squeeze: axis 3 of shape (1, 3, 1, 4) has length 4"
    with pytest.raises(ValueError) as error:
        x.squeeze(-3)
    assert str(error.value) == "squeeze: axis 1 of shape (1, 3, 1, 4) has length 3"


def test_transpose_takes_axes_as_parts_a_tuple_or_a_list():
    data = np.arange(24.0).reshape(2, 3, 4)
    x = tl.Tensor(data)
    assert x.transpose().shape == (4, 3, 2)
    assert x.transpose(()).shape == (4, 3, 2)
    assert x.transpose(2, 0, 1).shape == (4, 2, 3)
    assert x.transpose((2, 0, 1)).shape == (4, 2, 3)
    assert x.transpose([1, 2, 0]).shape == (3, 4, 2)
    np.testing.assert_array_equal(x.transpose([1, 2, 0]).data, data.transpose(1, 2, 0))
    np.testing.assert_array_equal(x.T.data, data.T)
    assert tl.Tensor(np.zeros((2, 3))).T.shape == (3, 2)


# ----- indexing -----


def test_tensors_inside_an_index_tuple_act_as_their_arrays():
    data = np.arange(12.0).reshape(3, 4)
    x = tl.Tensor(data, requires_grad=True)
    rows = tl.Tensor([2, 0], dtype=np.int64)
    columns = tl.Tensor([True, False, False, True], dtype=bool)
    np.testing.assert_array_equal(x[rows, 1].data, [9.0, 1.0])
    np.testing.assert_array_equal(x[1, columns].data, [4.0, 7.0])
    np.testing.assert_array_equal(x[:, columns].data, data[:, [0, 3]])
    np.testing.assert_array_equal(x[tl.Tensor([1], dtype=np.uint8)].data, data[[1]])
    np.testing.assert_array_equal(x[1:, None, 2].data, data[1:, None, 2])
    x[rows, columns].sum().backward()  # the mask picks columns 0 and 3: elements (2, 0) and (0, 3)
    np.testing.assert_array_equal(x.grad, [[0, 0, 0, 1], [0, 0, 0, 0], [1, 0, 0, 0]])


@pytest.mark.parametrize("index_dtype", [np.float32, np.complex64])
def test_a_tensor_of_non_integers_inside_an_index_tuple_is_refused(index_dtype):
    x = tl.Tensor(np.zeros((3, 3)))
    index = tl.Tensor(np.array([0, 1]), dtype=index_dtype)
    with pytest.raises(IndexError) as error:
        x[index, 0]
    assert str(error.value) == (
        f"a Tensor of dtype {np.dtype(index_dtype)} cannot be used as an index; indices must be integers or "
        "booleans (make it with dtype=np.int64 or dtype=bool)"
    )


# ----- backward -----


def test_backward_messages_say_what_was_expected():
    with pytest.raises(RuntimeError) as error:
        tl.Tensor([1.0, 2.0]).sum().backward()
    assert str(error.value) == (
        "backward(): this tensor does not require grad and has no graph; create the inputs with "
        "requires_grad=True (and outside no_grad()) to differentiate through them"
    )
    x = tl.Tensor(np.ones((2, 3)), requires_grad=True)
    with pytest.raises(RuntimeError) as error:
        (x * 2).backward()
    assert str(error.value) == (
        "backward(): the output has shape (2, 3), not a single element; "
        "a gradient must be given: backward(grad) with grad of the same shape"
    )
    with pytest.raises(RuntimeError) as error:
        (x * 2).backward(np.ones((3, 2)))
    assert str(error.value) == "backward(): grad has shape (3, 2) but the output has shape (2, 3)"
    with pytest.raises(RuntimeError) as error:
        (x * 2).backward(tl.Tensor(np.ones(6)))
    assert str(error.value) == "backward(): grad has shape (6,) but the output has shape (2, 3)"


def test_backward_without_a_gradient_works_for_any_single_element_shape():
    x = tl.Tensor(np.array([[3.0]]), requires_grad=True)
    (x * x).backward()
    np.testing.assert_array_equal(x.grad, [[6.0]])


def test_backward_on_a_leaf_gives_it_the_upstream_gradient_as_its_own_copy():
    x = tl.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    upstream = np.array([3.0, 4.0])
    x.backward(upstream)
    np.testing.assert_array_equal(x.grad, [3.0, 4.0])
    assert not np.shares_memory(x.grad, upstream)
    upstream[:] = 0.0  # the caller reusing its array does not change the gradient
    np.testing.assert_array_equal(x.grad, [3.0, 4.0])
    x.backward(upstream)
    np.testing.assert_array_equal(x.grad, [3.0, 4.0])


def test_the_first_gradient_is_not_shared_with_the_graph():
    x = tl.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = x + 0.0  # Add's backward hands the upstream gradient through unchanged
    upstream = np.array([1.0, 1.0])
    y.backward(upstream)
    x.grad[0] = 100.0
    np.testing.assert_array_equal(upstream, [1.0, 1.0])
    y.backward(upstream)
    np.testing.assert_array_equal(x.grad, [101.0, 2.0])


def test_the_upstream_gradient_is_read_in_the_outputs_dtype():
    x = tl.Tensor(np.zeros(2, np.float32), requires_grad=True)
    seen = []

    class Spy(tl.Function):
        def forward(self, a):
            return a.copy()

        def backward(self, grad):
            seen.append(grad.dtype)
            return grad

    Spy.apply(x).backward(np.array([1.0, 2.0]))  # float64 upstream, float32 output
    Spy.apply(x).sum().backward()  # the seed of a single-element output
    Spy.apply(x).backward([1, 2])  # a list
    assert seen == [np.float32, np.float32, np.float32]
    np.testing.assert_array_equal(x.grad, [3.0, 5.0])


def test_gradients_accumulate_in_the_leafs_dtype():
    x = tl.Tensor(np.ones(2, np.float32), requires_grad=True)
    (x * np.array([0.1, 0.2])).sum().backward()  # the path through a float64 constant is float64
    assert x.grad.dtype == np.float32
    (x * np.array([0.1, 0.2])).sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_array_equal(x.grad, np.float32([0.1, 0.2]) + np.float32([0.1, 0.2]))


# ----- Function: apply and the gradients it hands back -----


def test_apply_wraps_plain_inputs_and_records_which_inputs_need_a_gradient():
    seen = {}

    class Record(tl.Function):
        def forward(self, a, b, scale=1.0):
            seen["arrays"] = (a, b)
            return (a + b) * scale

        def backward(self, grad):
            seen["needs"] = self.needs_input_grad
            seen["inputs"], seen["output"] = self.inputs, self.output
            return grad, grad

    x = tl.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    out = Record.apply(x, [10.0, 20.0], scale=2.0)
    assert all(type(a) is np.ndarray for a in seen["arrays"]) and seen["arrays"][0] is x.data
    np.testing.assert_array_equal(out.data, [22.0, 44.0])
    assert out.requires_grad and out._ctx is not None
    out.sum().backward()
    assert seen["needs"] == (True, False)
    assert seen["inputs"][0] is x.data and seen["output"] is out.data
    np.testing.assert_array_equal(x.grad, [1.0, 1.0])


def test_apply_records_nothing_without_an_input_that_needs_a_gradient():
    out = tl.ops.Add.apply(tl.Tensor([1.0]), tl.Tensor([2.0]))
    assert not out.requires_grad and out.is_leaf
    x = tl.Tensor([1.0], requires_grad=True)
    with tl.no_grad():
        out = tl.ops.Add.apply(x, tl.Tensor([2.0]))
    assert not out.requires_grad and out.is_leaf
    assert tl.ops.Add.apply(tl.Tensor([2.0]), x).requires_grad


def test_a_backward_may_return_none_or_a_non_array_for_an_input():
    class Scaled(tl.Function):
        def forward(self, a, b):
            return a * 3.0

        def backward(self, grad):
            return 3.0 * float(grad.sum()), None  # a Python float, and nothing for b

    a = tl.Tensor(np.array(1.0), requires_grad=True)
    b = tl.Tensor(np.array(5.0), requires_grad=True)
    Scaled.apply(a, b).backward()
    assert type(a.grad) is np.ndarray and a.grad == 3.0
    assert b.grad is None


def test_a_backward_may_return_a_tensor_for_an_input():
    class Doubled(tl.Function):
        def forward(self, a):
            return a * 2.0

        def backward(self, grad):
            return tl.Tensor(grad * 2.0)

    a = tl.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    Doubled.apply(a).sum().backward()
    assert type(a.grad) is np.ndarray
    np.testing.assert_array_equal(a.grad, [2.0, 2.0])


def test_a_broadcast_gradient_from_a_user_backward_is_summed_home():
    class Spread(tl.Function):
        def forward(self, a):
            return np.broadcast_to(a, (4, 3)).copy()

        def backward(self, grad):
            return grad  # shape (4, 3), for an input of shape (1, 3)

    a = tl.Tensor(np.ones((1, 3)), requires_grad=True)
    Spread.apply(a).backward(np.arange(12.0).reshape(4, 3))
    np.testing.assert_array_equal(a.grad, [[18.0, 22.0, 26.0]])


def test_the_messages_for_a_wrong_number_or_shape_of_gradients():
    class TwoForThree(tl.Function):
        def forward(self, a, b, c):
            return a + b + c

        def backward(self, grad):
            return grad, grad

    x = tl.Tensor(1.0, requires_grad=True)
    with pytest.raises(RuntimeError) as error:
        TwoForThree.apply(x, x, x).backward()
    assert str(error.value) == "TwoForThree.backward returned 2 gradients for 3 inputs"

    class BadSecond(tl.Function):
        def forward(self, a, b):
            return a + b

        def backward(self, grad):
            return grad, np.ones((2, 5))

    a, b = tl.Tensor(np.ones(3), requires_grad=True), tl.Tensor(np.ones(3), requires_grad=True)
    with pytest.raises(RuntimeError) as error:
        BadSecond.apply(a, b).sum().backward()
    assert str(error.value) == (
        "BadSecond.backward: gradient 1 has shape (2, 5), which does not sum to the input's shape (3,)"
    )

    class FewerAxes(tl.Function):
        def forward(self, a):
            return a * 1

        def backward(self, grad):
            return grad[0]

    with pytest.raises(RuntimeError) as error:
        FewerAxes.apply(tl.Tensor(np.ones((2, 3)), requires_grad=True)).sum().backward()
    assert str(error.value) == (
        "FewerAxes.backward: gradient 0 has shape (3,), which does not sum to the input's shape (2, 3)"
    )


def test_a_numpy_only_backward_under_create_graph_names_itself_and_says_what_to_do():
    class Twice(tl.Function):
        def forward(self, a):
            return a * 2

        def backward(self, grad):
            return grad * 2

    x = tl.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    with pytest.raises(RuntimeError) as error:
        tl.autograd.grad(Twice.apply(x).sum(), x, create_graph=True)
    assert str(error.value) == (
        "Twice.backward is written for arrays only, so the gradient through it cannot be differentiated again "
        "(create_graph=True); write it with Tensor operations on grad, self.inputs and self.output and set "
        "differentiable_backward = True"
    )


# ----- unbroadcast -----


def test_unbroadcast_messages_name_both_shapes():
    from tinygrad_lr.tensor import unbroadcast

    with pytest.raises(ValueError) as error:
        unbroadcast(np.ones(3), (2, 3))
    assert str(error.value) == "gradient of shape (3,) has fewer axes than its input (2, 3)"
    with pytest.raises(ValueError) as error:
        unbroadcast(np.ones((4, 2, 3)), (3, 2))
    assert str(error.value) == "gradient of shape (1, 2, 3) does not sum to shape (3, 2)"


def test_unbroadcast_returns_a_gradient_of_the_right_shape_unchanged():
    from tinygrad_lr.tensor import unbroadcast

    grad = np.arange(6.0).reshape(2, 3)
    assert unbroadcast(grad, (2, 3)) is grad
    np.testing.assert_array_equal(unbroadcast(grad, [2, 3]), grad)
    np.testing.assert_array_equal(unbroadcast(grad, (3,)), [3.0, 5.0, 7.0])
    np.testing.assert_array_equal(unbroadcast(grad, (2, 1)), [[3.0], [12.0]])
    np.testing.assert_array_equal(unbroadcast(np.ones((2, 1, 3)), (1, 1)), [[6.0]])
    summed = unbroadcast(tl.Tensor(grad), (1, 3))  # a Tensor is summed with Tensor ops
    assert isinstance(summed, tl.Tensor)
    np.testing.assert_array_equal(summed.data, [[3.0, 5.0, 7.0]])


# ----- the backward sweep -----


def test_an_input_whose_op_sent_nothing_back_still_gets_its_other_paths():
    class FirstOnly(tl.Function):
        def forward(self, a, b):
            return a + b

        def backward(self, grad):
            return grad, None

    x = tl.Tensor(2.0, requires_grad=True)
    b = x * 3  # reached only through FirstOnly's second input, which sends nothing back
    y = FirstOnly.apply(x, b) + x * x + b * 0
    y.backward()
    assert x.grad == 1.0 + 4.0 + 0.0
    c = x * 5
    FirstOnly.apply(x, c).backward()  # c's only user sent nothing: c's own op is not run, x still gets 1
    assert x.grad == 6.0


def test_a_tensor_that_needs_no_gradient_is_not_walked():
    class Forbidden(tl.Function):
        def forward(self, a):
            return a * 1

        def backward(self, grad):
            raise AssertionError("a constant's graph was walked")

    x = tl.Tensor(1.0, requires_grad=True)
    with tl.no_grad():
        constant = Forbidden.apply(x)
    (x * constant).backward()
    assert x.grad == 1.0


def test_every_op_runs_once_on_the_sum_of_what_came_in():
    calls = []

    class Counted(tl.Function):
        def forward(self, a):
            return a * 2

        def backward(self, grad):
            calls.append(grad.copy())
            return grad * 2

    x = tl.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    h = Counted.apply(x)
    (h * h + h * 3 + h).sum().backward()
    assert len(calls) == 1
    np.testing.assert_array_equal(calls[0], 2 * np.array([2.0, 4.0]) + 3 + 1)
    np.testing.assert_array_equal(x.grad, 2 * calls[0])


def test_a_tensor_used_twice_by_one_op_gets_both_gradients():
    x = tl.Tensor(np.array([3.0]), requires_grad=True)
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad, [6.0])
    y = tl.Tensor(np.array([3.0]), requires_grad=True)
    z = y * 2
    (z * z * z).sum().backward()  # 8y³ → 24y²
    np.testing.assert_array_equal(y.grad, [216.0])


def test_grad_of_an_inner_tensor_stops_there():
    x = tl.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    h = x * 3
    out = (h * h).sum()
    (dh,) = tl.autograd.grad(out, [h])
    np.testing.assert_array_equal(dh.data, [6.0, 12.0])
    dx, dh = tl.autograd.grad(out, [x, h])
    np.testing.assert_array_equal(dx.data, [18.0, 36.0])
    np.testing.assert_array_equal(dh.data, [6.0, 12.0])
    assert x.grad is None and h.grad is None


# ----- no_grad -----


def test_no_grad_decorator_keeps_the_docstring_and_the_result():
    @tl.no_grad()
    def doubled(x):
        """Twice x."""
        assert not tl.is_grad_enabled()
        return x * 2

    assert doubled.__doc__ == "Twice x." and doubled.__name__ == "doubled"
    y = doubled(tl.Tensor([1.0], requires_grad=True))
    np.testing.assert_array_equal(y.data, [2.0])
    assert not y.requires_grad and tl.is_grad_enabled()


def test_no_grad_nests_and_restores_the_outer_state():
    from tinygrad_lr.tensor import _recording

    with tl.no_grad():
        with _recording():
            assert tl.is_grad_enabled()
            with tl.no_grad():
                assert not tl.is_grad_enabled()
            assert tl.is_grad_enabled()
        assert not tl.is_grad_enabled()
    assert tl.is_grad_enabled()


def test_no_grad_in_one_thread_leaves_another_threads_graph_alone():
    """As PyTorch's grad mode: a Dask worker thread's no_grad block must not cut this thread's graph
    (a shared flag gave silently zero gradients, and could stay off after both threads left)."""
    import threading

    inside, done = threading.Event(), threading.Event()

    def other_thread():
        with tl.no_grad():
            inside.set()
            done.wait(timeout=10)

    thread = threading.Thread(target=other_thread)
    thread.start()
    assert inside.wait(timeout=10)
    try:
        assert tl.is_grad_enabled()
        w = tl.Tensor(np.array([1.0, 2.0]), requires_grad=True)
        (w * w).sum().backward()
        np.testing.assert_array_equal(w.grad, [2.0, 4.0])
    finally:
        done.set()
        thread.join()
    assert tl.is_grad_enabled()


def test_a_recording_in_one_thread_does_not_take_another_threads_ops():
    import threading

    from tinygrad_lr import tensor

    previous, tensor._mode.tape = tensor._mode.tape, []
    try:
        thread = threading.Thread(target=lambda: tl.Tensor([1.0], requires_grad=True) * 2.0)
        thread.start()
        thread.join()
        assert tensor._mode.tape == []
        tl.Tensor([1.0], requires_grad=True) * 2.0
        assert len(tensor._mode.tape) == 1
    finally:
        tensor._mode.tape = previous


# ----- gradcheck -----


class _WrongAtOneElement(tl.Function):
    """2x, whose backward scales the gradient of element (1, 0) by a wrong factor."""

    factor = 1.25

    def forward(self, x):
        return x * 2

    def backward(self, grad):
        g = grad * 2
        g[1, 0] *= self.factor
        return g


def test_gradcheck_report_names_the_input_both_elements_and_both_values():
    ok = tl.Tensor(np.array([0.5, 1.5]), requires_grad=True)
    x = tl.Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    with pytest.raises(tl.GradcheckError) as error:
        tl.gradcheck(lambda a, b, x: _WrongAtOneElement.apply(x).T * b + a.sum(), ok, 3.0, x)
    # out[0, 1] = 2·x[1, 0]·3: flat output element 1, flat input element 3
    assert str(error.value) == (
        "gradcheck: input 2 (shape (2, 3)), element (1, 0), output element (0, 1): "
        "analytic d(out)/d(in) = 7.5 but numerical = 6 (1 of 36 Jacobian entries differ)"
    )


def test_gradcheck_report_shows_eight_significant_digits():
    class Scaled(_WrongAtOneElement):
        factor = 1.23456789123

    x = tl.Tensor(np.ones((2, 1)), requires_grad=True)
    with pytest.raises(tl.GradcheckError) as error:
        tl.gradcheck(Scaled.apply, x)
    assert str(error.value) == (
        "gradcheck: input 0 (shape (2, 1)), element (1, 0), output element (1, 0): "
        "analytic d(out)/d(in) = 2.4691358 but numerical = 2 (1 of 4 Jacobian entries differ)"
    )


def _linear_with_slope_error(slope, error):
    """slope·x, whose backward claims the slope is slope + error."""

    class Linear(tl.Function):
        def forward(self, x):
            return x * slope

        def backward(self, grad):
            return grad * (slope + error)

    return Linear.apply


@pytest.mark.parametrize(
    ("slope", "error", "caught"),
    [
        (1.0, 1.2e-3, True),  # the default tolerance is atol + rtol·|numerical| = 1e-5 + 1e-3
        (1.0, 0.9e-3, False),
        (-1.0, -1.2e-3, True),  # rtol scales with the magnitude, whatever its sign
        (-1.0, 0.9e-3, False),
        (100.0, 0.12, True),
        (100.0, 0.09, False),
        (0.0, 1.5e-5, True),  # at a zero derivative only atol is left
        (0.0, 0.5e-5, False),
        (0.0, -1.5e-5, True),
    ],
)
def test_gradcheck_default_tolerance_is_atol_plus_rtol_times_the_numerical_value(slope, error, caught):
    fn = _linear_with_slope_error(slope, error)
    x = tl.Tensor(np.array([0.25, 0.5]), requires_grad=True)
    if caught:
        with pytest.raises(tl.GradcheckError):
            tl.gradcheck(fn, x)
    else:
        assert tl.gradcheck(fn, x) is True


def test_gradcheck_uses_the_tolerances_and_step_it_is_given():
    x = tl.Tensor(np.array([0.25, 0.5]), requires_grad=True)
    assert tl.gradcheck(_linear_with_slope_error(1.0, 0.5), x, atol=0.6) is True
    assert tl.gradcheck(_linear_with_slope_error(1.0, 0.5), x, rtol=0.6) is True
    with pytest.raises(tl.GradcheckError):
        tl.gradcheck(_linear_with_slope_error(1.0, 1e-6), x, atol=0.0, rtol=1e-9)
    # a huge step makes the central difference of x³ wrong by eps²: 3x² + 1 instead of 3x²
    with pytest.raises(tl.GradcheckError, match=r"analytic d\(out\)/d\(in\) = 0.1875 but numerical = 1.1875"):
        tl.gradcheck(lambda x: x**3, x, eps=1.0)
    assert tl.gradcheck(lambda x: x**3, x) is True


def test_gradcheck_runs_fn_on_float64_copies_and_passes_other_arguments_through():
    seen = []

    def fn(x, constant, k):
        seen.append((x.dtype, x.requires_grad, constant.dtype, constant.requires_grad, k))
        return x * constant * k

    x = tl.Tensor(np.array([1.0, 2.0], np.float32), requires_grad=True)
    constant = tl.Tensor(np.array([3.0, 4.0], np.float32))
    assert tl.gradcheck(fn, x, constant, 2) is True
    assert set(seen) == {(np.dtype(np.float64), True, np.dtype(np.float64), False, 2)}
    assert len(seen) == 1 + 2 * 2  # once at the inputs, then twice per element
    assert x.grad is None and constant.grad is None


def test_gradcheck_perturbs_one_element_at_a_time_and_puts_it_back():
    points = []

    def fn(x):
        points.append(x.data.copy())
        return (x * x).sum()

    x = tl.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    assert tl.gradcheck(fn, x, eps=0.5)
    np.testing.assert_array_equal(points, [[1.0, 2.0], [1.5, 2.0], [0.5, 2.0], [1.0, 2.5], [1.0, 1.5]])


def test_gradcheck_of_an_empty_input_has_nothing_to_compare():
    assert tl.gradcheck(lambda x: x * 2, tl.Tensor(np.zeros((0, 3)), requires_grad=True)) is True
    assert tl.gradcheck(lambda x: x.sum(), tl.Tensor(np.zeros(0), requires_grad=True)) is True


def test_gradcheck_checks_every_output_element_against_every_input_element():
    x = tl.Tensor(np.array([[0.5, 1.0], [1.5, 2.0]]), requires_grad=True)
    y = tl.Tensor(np.array([0.75, 1.25]), requires_grad=True)
    assert tl.gradcheck(lambda x, y: (x @ y) * y.sum() + x.sum(axis=0) ** 2, x, y) is True
    with pytest.raises(tl.GradcheckError) as error:
        tl.gradcheck(lambda x, y: (x @ y.detach()) * y.sum(), x, y)
    assert str(error.value).startswith("gradcheck: input 1 (shape (2,)), element (0,), output element (0,): ")


def test_gradcheck_messages_for_bad_arguments_and_non_finite_values():
    with pytest.raises(ValueError) as error:
        tl.gradcheck(lambda x: x * 2, tl.Tensor([1.0]), np.ones(2))
    assert str(error.value) == "gradcheck: no input is a Tensor with requires_grad=True; nothing to check"
    with pytest.raises(TypeError) as error:
        tl.gradcheck(lambda x: x.data * 2, tl.Tensor([1.0], requires_grad=True))
    assert str(error.value) == "gradcheck: fn must return a Tensor, got ndarray"
    x = tl.Tensor(np.array([[1.0, 2.0], [np.inf, -np.inf]]), requires_grad=True)
    with pytest.raises(tl.GradcheckError) as error:
        tl.gradcheck(lambda a, x: x * 2, tl.Tensor([1.0], requires_grad=True), x)
    assert str(error.value) == "gradcheck: input 1 has 2 non-finite value(s), the first inf at element (1, 0)"
    constant = tl.Tensor(np.array([np.nan]))
    with pytest.raises(tl.GradcheckError) as error:
        tl.gradcheck(lambda a, c: a * c, tl.Tensor([1.0], requires_grad=True), constant)
    assert str(error.value) == "gradcheck: input 1 has 1 non-finite value(s), the first nan at element (0,)"


def test_gradcheck_messages_for_a_non_finite_output_say_where_it_was_evaluated():
    x = tl.Tensor(np.array([1.0, -1.0, -2.0]), requires_grad=True)
    with np.errstate(invalid="ignore"), pytest.raises(tl.GradcheckError) as error:
        tl.gradcheck(lambda x: x.log(), x)
    assert str(error.value) == (
        "gradcheck: the output of fn at the given inputs has 2 non-finite value(s), the first nan at element (1,)"
    )
    x = tl.Tensor(np.array([0.5, 1 - 1e-7]), requires_grad=True)
    with np.errstate(invalid="ignore"), pytest.raises(tl.GradcheckError) as error:
        tl.gradcheck(lambda x: (1 - x).sqrt(), x)
    assert str(error.value) == (
        "gradcheck: the output of fn at input 0 element (1,) + eps has 1 non-finite value(s), "
        "the first nan at element (1,)"
    )
    x = tl.Tensor(np.array([[0.5, 1.0], [2.0, 1e-7]]), requires_grad=True)
    with np.errstate(invalid="ignore"), pytest.raises(tl.GradcheckError) as error:
        tl.gradcheck(lambda x: x.sqrt(), x)
    assert str(error.value) == (
        "gradcheck: the output of fn at input 0 element (1, 1) - eps has 1 non-finite value(s), "
        "the first nan at element (1, 1)"
    )


def test_gradcheck_leaves_no_gradient_on_the_tensors_fn_sees():
    grads_seen = []

    def fn(x):
        grads_seen.append(x.grad)
        return x * x

    assert tl.gradcheck(fn, tl.Tensor(np.array([1.0, 2.0]), requires_grad=True)) is True
    assert grads_seen == [None] * 5


def test_gradcheck_checks_a_single_element_input():
    x = tl.Tensor(np.array(0.5), requires_grad=True)
    with pytest.raises(tl.GradcheckError) as error:
        tl.gradcheck(_linear_with_slope_error(2.0, 1.0), x)
    assert str(error.value) == (
        "gradcheck: input 0 (shape ()), element (), output element (): "
        "analytic d(out)/d(in) = 3 but numerical = 2 (1 of 1 Jacobian entries differ)"
    )


def test_gradcheck_checks_the_inputs_after_an_empty_one():
    empty = tl.Tensor(np.zeros(0), requires_grad=True)
    x = tl.Tensor(np.array([0.5]), requires_grad=True)
    wrong = _linear_with_slope_error(2.0, 1.0)
    with pytest.raises(tl.GradcheckError, match=r"^gradcheck: input 1 \(shape \(1,\)\)"):
        tl.gradcheck(lambda e, x: wrong(x) + e.sum(), empty, x)


def test_gradcheck_with_zero_tolerances_accepts_an_exact_match():
    # 2x at 0.5 with a step of 0.25: every value is exact in binary, so both derivatives are exactly 2
    x = tl.Tensor(np.array([0.5]), requires_grad=True)
    assert tl.gradcheck(lambda x: x * 2, x, eps=0.25, atol=0.0, rtol=0.0) is True


# ----- gradgradcheck -----


class _SquareWithConstantSlope(tl.Function):
    """x², whose first derivative is right but is built as 2·(a constant copy of x): its own
    derivative comes out 0 instead of 2·v."""

    differentiable_backward = True

    def forward(self, x):
        return x * x

    def backward(self, grad):
        (x,) = self.inputs
        return grad * 2 * (tl.Tensor(np.array(x.data)) if isinstance(x, tl.Tensor) else x)


def test_gradgradcheck_report_names_the_gradient_and_the_input():
    a = tl.Tensor(np.array([0.5]), requires_grad=True)
    x = tl.Tensor(np.array([0.5, 1.5]), requires_grad=True)
    fn = lambda a, k, x: a * k + _SquareWithConstantSlope.apply(x)  # noqa: E731
    with pytest.raises(tl.GradcheckError) as error:
        tl.gradgradcheck(fn, a, 2.0, x, grad_outputs=np.array([1.0, 3.0]))
    assert str(error.value) == (
        "gradgradcheck: the derivative of the gradient for input 2: input 2 (shape (2,)), element (0,), "
        "output element (0,): analytic d(out)/d(in) = 0 but numerical = 2 (2 of 4 Jacobian entries differ)"
    )
    with pytest.raises(tl.GradcheckError) as error:
        tl.gradgradcheck(fn, a, 2.0, x, grad_outputs=tl.Tensor(np.array([0.0, 3.0])))
    assert str(error.value) == (
        "gradgradcheck: the derivative of the gradient for input 2: input 2 (shape (2,)), element (1,), "
        "output element (1,): analytic d(out)/d(in) = 0 but numerical = 6 (1 of 4 Jacobian entries differ)"
    )


def test_gradgradcheck_default_vector_is_a_fixed_standard_normal_draw():
    x = tl.Tensor(np.array([0.5, 1.5]), requires_grad=True)
    v = np.random.default_rng(0).normal(size=2)
    with pytest.raises(tl.GradcheckError) as error:
        tl.gradgradcheck(_SquareWithConstantSlope.apply, x)
    assert str(error.value) == (
        "gradgradcheck: the derivative of the gradient for input 0: input 0 (shape (2,)), element (0,), "
        f"output element (0,): analytic d(out)/d(in) = 0 but numerical = {2 * v[0]:.8g} "
        "(2 of 4 Jacobian entries differ)"
    )


def test_gradgradcheck_passes_its_tolerances_and_step_on():
    x = tl.Tensor(np.array([0.5, 1.5]), requires_grad=True)
    v = np.array([1.0, 1.0])
    assert tl.gradgradcheck(_SquareWithConstantSlope.apply, x, grad_outputs=v, atol=2.5) is True
    assert tl.gradgradcheck(_SquareWithConstantSlope.apply, x, grad_outputs=v, rtol=1.5) is True
    assert tl.gradgradcheck(lambda x: x**4, x, grad_outputs=v) is True
    # with a step of 1 the central difference of 4x³ is 12x² + 4, not 12x²
    with pytest.raises(tl.GradcheckError, match=r"analytic d\(out\)/d\(in\) = 3 but numerical = 7 "):
        tl.gradgradcheck(lambda x: x**4, x, grad_outputs=v, eps=1.0)


def test_gradgradcheck_works_on_float64_copies_and_leaves_the_inputs_alone():
    seen = []

    def fn(x, k):
        seen.append((x.dtype, k))
        return x**3 * k

    x = tl.Tensor(np.array([0.5, 1.5], np.float32), requires_grad=True)
    before = x.data.copy()
    assert tl.gradgradcheck(fn, x, 2.0, grad_outputs=[1.0, -1.0]) is True
    assert set(seen) == {(np.dtype(np.float64), 2.0)}
    np.testing.assert_array_equal(x.data, before)
    assert x.grad is None


def test_gradgradcheck_reads_grad_outputs_as_float64_before_differentiating():
    calls = []

    def fn(x):
        calls.append(x)
        return x * x

    x = tl.Tensor(np.array([0.5, 1.5]), requires_grad=True)
    with pytest.raises(ValueError) as error:
        tl.gradgradcheck(fn, x, grad_outputs=["a", "b"])
    assert str(error.value) == "could not convert string to float: 'a'"
    assert len(calls) == 1  # refused right after the first evaluation, before any derivative is built
    calls.clear()
    assert tl.gradgradcheck(fn, x, grad_outputs=["1.5", "-2"]) is True


def test_gradgradcheck_messages_for_bad_arguments():
    with pytest.raises(ValueError) as error:
        tl.gradgradcheck(lambda x: x * 2, tl.Tensor([1.0]), 3.0)
    assert str(error.value) == "gradgradcheck: no input is a Tensor with requires_grad=True; nothing to check"
    with pytest.raises(TypeError) as error:
        tl.gradgradcheck(lambda x: [x], tl.Tensor([1.0], requires_grad=True))
    assert str(error.value) == "gradgradcheck: fn must return a Tensor, got list"


# ----- gradients of gradients through a user op -----


class _Exp(tl.Function):
    """eᵃ, whose derivative reads the output: the same formula on arrays and on Tensors."""

    differentiable_backward = True

    def forward(self, a):
        return np.exp(a)

    def backward(self, grad):
        return grad * self.output


def test_a_differentiable_backward_sees_the_output_as_a_tensor_under_create_graph():
    x = tl.Tensor(np.array([0.0, 1.0]), requires_grad=True)
    (g,) = tl.autograd.grad(_Exp.apply(x).sum(), [x], create_graph=True)
    np.testing.assert_allclose(g.data, np.exp([0.0, 1.0]), rtol=1e-15)
    (gg,) = tl.autograd.grad(g.sum(), [x])
    np.testing.assert_allclose(gg.data, np.exp([0.0, 1.0]), rtol=1e-15)


@pytest.mark.parametrize("create_graph", [False, True])
def test_a_backward_may_return_plain_numbers_in_either_mode(create_graph):
    class Linear(tl.Function):
        """3a + b, whose backward ignores the upstream gradient and returns plain Python values."""

        differentiable_backward = True

        def forward(self, a, b):
            return a * 3 + b

        def backward(self, grad):
            return [3.0, 3.0], 1.0

    a = tl.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    b = tl.Tensor(np.array(5.0), requires_grad=True)
    da, db = tl.autograd.grad(Linear.apply(a, b), [a, b], grad_outputs=np.ones(2), create_graph=create_graph)
    np.testing.assert_array_equal(da.data, [3.0, 3.0])
    assert db.shape == () and db.item() == 1.0


def test_an_array_gradient_under_create_graph_is_a_constant_tensor():
    class Doubled(tl.Function):
        differentiable_backward = True

        def forward(self, a):
            return a * 2

        def backward(self, grad):
            return np.full(grad.shape, 2.0)  # a constant array, whatever the mode

    x = tl.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    (g,) = tl.autograd.grad(Doubled.apply(x).sum(), [x], create_graph=True)
    assert isinstance(g, tl.Tensor) and not g.requires_grad
    np.testing.assert_array_equal(g.data, [2.0, 2.0])
