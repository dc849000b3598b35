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
    assert dir(tl.nn) == ["Linear", "Module", "Sequential"]
    assert "np" not in dir(tl.optim) and "Adam" in dir(tl.optim)
