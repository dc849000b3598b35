"""Derivatives as values (tl.autograd): gradients of gradients, Jacobians, Hessians, their
products, gradgradcheck, and Newton's method landing on the closed form."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_lr as tl
from tests.strategies import arrays, regression_problems, small_shapes

second_order = settings(max_examples=20)


# ----- grad -----


def test_grad_returns_gradients_and_touches_no_grad():
    x = tl.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    unused = tl.Tensor(np.array([5.0]), requires_grad=True)
    (gx, gu) = tl.autograd.grad((x**3).sum(), [x, unused])
    np.testing.assert_array_equal(gx.data, 3 * x.data**2)
    np.testing.assert_array_equal(gu.data, [0.0])  # not used by the output: zeros
    assert x.grad is None and unused.grad is None
    assert isinstance(gx, tl.Tensor) and not gx.requires_grad


def test_a_gradient_with_a_graph_can_be_differentiated_again_and_again():
    x = tl.Tensor(np.array([0.5, -1.0]), requires_grad=True)
    (g,) = tl.autograd.grad((x**4).sum(), x, create_graph=True)  # 4x³
    (h,) = tl.autograd.grad(g.sum(), x, create_graph=True)  # 12x²
    (t,) = tl.autograd.grad(h.sum(), x, create_graph=True)  # 24x
    (f,) = tl.autograd.grad(t.sum(), x)  # 24
    np.testing.assert_allclose(g.data, 4 * x.data**3)
    np.testing.assert_allclose(h.data, 12 * x.data**2)
    np.testing.assert_allclose(t.data, 24 * x.data)
    np.testing.assert_allclose(f.data, [24.0, 24.0])


def test_grad_of_a_non_scalar_needs_grad_outputs():
    x = tl.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    with pytest.raises(RuntimeError, match="pass grad_outputs"):
        tl.autograd.grad(x * 2, x)
    (g,) = tl.autograd.grad(x * x, x, grad_outputs=np.array([1.0, 10.0]))
    np.testing.assert_array_equal(g.data, [2.0, 40.0])
    with pytest.raises(RuntimeError, match="grad_outputs has shape"):
        tl.autograd.grad(x * x, x, grad_outputs=np.ones(3))


def test_grad_refuses_inputs_that_do_not_require_grad():
    x = tl.Tensor(np.array([1.0]))
    with pytest.raises(RuntimeError, match=r"input 0 .* does not require grad"):
        tl.autograd.grad(x * 2, x)


def test_grad_inside_no_grad_still_builds_the_graph_it_was_asked_for():
    x = tl.Tensor(np.array([2.0]), requires_grad=True)
    y = (x**3).sum()
    with tl.no_grad():
        (g,) = tl.autograd.grad(y, x, create_graph=True)
    assert g.requires_grad
    np.testing.assert_allclose(tl.autograd.grad(g.sum(), x)[0].data, [12.0])


def test_grad_with_respect_to_an_intermediate_tensor():
    x = tl.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    hidden = x * 3
    (g,) = tl.autograd.grad((hidden * hidden).sum(), hidden)
    np.testing.assert_allclose(g.data, 2 * hidden.data)


def test_grad_outputs_may_be_a_tensor_and_with_create_graph_the_gradient_depends_on_it():
    """vᵀJ for a Tensor v, as for an array; with create_graph it is connected to v as well (as torch's):
    d/dv ⟨u, vᵀJ⟩ = J u, with J = diag(2x) for x²."""
    x = tl.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    v = tl.Tensor(np.array([3.0, -1.0]), requires_grad=True)
    u = np.array([0.5, 4.0])
    (plain,) = tl.autograd.grad(x * x, x, grad_outputs=v)
    (vJ,) = tl.autograd.grad(x * x, x, grad_outputs=v, create_graph=True)
    np.testing.assert_array_equal(plain.data, 2 * x.data * v.data)
    np.testing.assert_array_equal(vJ.data, 2 * x.data * v.data)
    np.testing.assert_array_equal(tl.autograd.grad((vJ * u).sum(), v)[0].data, 2 * x.data * u)


@pytest.mark.parametrize("create_graph", [False, True])
def test_an_input_the_output_does_not_depend_on_gets_zeros_of_its_own_dtype(create_graph):
    x = tl.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    unused = tl.Tensor(np.array([5.0, 6.0], np.float32), requires_grad=True)
    _, g = tl.autograd.grad((x * x).sum(), [x, unused], create_graph=create_graph)
    assert g.dtype == np.float32
    np.testing.assert_array_equal(g.data, [0.0, 0.0])


class _NotesGradMode(tl.Function):
    """The identity, noting in `modes` whether grad mode is on while its backward runs."""

    differentiable_backward = True

    def forward(self, x, modes):
        self.modes = modes
        return x.copy()

    def backward(self, grad):
        self.modes.append(tl.is_grad_enabled())
        return grad


def test_backward_runs_with_grad_mode_on_only_under_create_graph():
    """As in PyTorch: without create_graph a backward runs in no_grad(), as backward() runs it (Tensor work
    inside records no graph); with create_graph it records one, also when the call is inside no_grad()."""
    x = tl.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    modes = []
    tl.autograd.grad(_NotesGradMode.apply(x, modes=modes).sum(), x)
    _NotesGradMode.apply(x, modes=modes).sum().backward()
    out = _NotesGradMode.apply(x, modes=modes).sum()
    with tl.no_grad():
        tl.autograd.grad(out, x, create_graph=True)
    assert modes == [False, False, True]


def _error_message(error_type, call):
    """The message of the error of error_type that call() raises."""
    with pytest.raises(error_type) as error:
        call()
    return str(error.value)


def _leaf():
    return tl.Tensor(np.array([1.0, 2.0]), requires_grad=True)


def test_grad_names_the_argument_that_is_not_a_tensor():
    assert _error_message(TypeError, lambda: tl.autograd.grad(2.0, _leaf())) == (
        "grad: outputs must be a Tensor, got float"
    )
    assert _error_message(TypeError, lambda: tl.autograd.grad(_leaf().sum(), [_leaf(), np.ones(2)])) == (
        "grad: inputs: item 1 is a ndarray, not a Tensor"
    )


# ----- jacobian, hessian, vjp, hvp: torch.autograd.functional's shapes -----


def test_jacobian_shapes_follow_torch():
    x, y = np.arange(1.0, 4.0), np.arange(1.0, 3.0)  # shapes (3,) and (2,)
    J = tl.autograd.jacobian(lambda x: x.exp(), x)
    assert J.shape == (3, 3)
    np.testing.assert_allclose(J.data, np.diag(np.exp(x)))
    Jx, Jy = tl.autograd.jacobian(lambda x, y: x.sum() * y, x, y)  # output (2,)
    assert Jx.shape == (2, 3) and Jy.shape == (2, 2)
    (Ja, Jb), (Jc, Jd) = tl.autograd.jacobian(lambda x, y: (x * 2, y.sum()), x, y)
    assert Ja.shape == (3, 3) and Jb.shape == (3, 2) and Jc.shape == (3,) and Jd.shape == (2,)
    np.testing.assert_allclose(Jb.data, 0.0)


@second_order
@given(data=st.data())
def test_jacobian_of_a_composite_matches_finite_differences(data):
    a = data.draw(arrays(data.draw(small_shapes)))
    w = np.linspace(-1.0, 1.0, a.size).reshape(a.shape)

    def fn(x):
        return (x * w).tanh() * x.exp() + (x * x).sum()

    J = tl.autograd.jacobian(fn, a).data.reshape(a.size, a.size)
    eps, numerical = 1e-6, np.zeros((a.size, a.size))
    for k in range(a.size):
        step = np.zeros(a.size)
        step[k] = eps
        plus = fn(tl.Tensor(a + step.reshape(a.shape))).data.ravel()
        minus = fn(tl.Tensor(a - step.reshape(a.shape))).data.ravel()
        numerical[:, k] = (plus - minus) / (2 * eps)
    np.testing.assert_allclose(J, numerical, rtol=1e-5, atol=1e-7)


def _hessian_by_formula(X, l2, fit_intercept):
    """2·AᵀA/n + 2·l2·D, A = [X 1] (or X), D = I on the weights and 0 on the bias."""
    n, d = X.shape
    A = np.hstack([X, np.ones((n, 1))]) if fit_intercept else X
    penalty = np.diag([1.0] * d + [0.0] * (A.shape[1] - d))
    return 2 * A.T @ A / n + 2 * l2 * penalty


def _objective(X, y, l2):
    def loss(w, b=None):
        pred = tl.ops.Affine.apply(X, w, b) if b is not None else tl.Tensor(X) @ w
        return tl.losses.mse(pred, y) + tl.losses.l2_penalty([w], l2)

    return loss


@settings(max_examples=30)
@given(problem=regression_problems(one_target=True))
def test_hessian_of_mse_plus_l2_of_a_linear_model_is_the_closed_form_matrix(problem):
    X, y, l2, fit_intercept = problem
    X = X.reshape(len(X), -1)
    d = X.shape[1]
    w, b = np.zeros((d, 1)), np.zeros(1)
    expected = _hessian_by_formula(X, l2, fit_intercept)
    if fit_intercept:
        (Hww, Hwb), (Hbw, Hbb) = tl.autograd.hessian(_objective(X, y, l2), w, b)
        H = np.block(
            [[Hww.data.reshape(d, d), Hwb.data.reshape(d, 1)], [Hbw.data.reshape(1, d), Hbb.data.reshape(1, 1)]]
        )
    else:
        H = tl.autograd.hessian(_objective(X, y, l2), w).data.reshape(d, d)
    np.testing.assert_allclose(H, expected, rtol=1e-10, atol=1e-12)


@settings(max_examples=30)
@given(problem=regression_problems(one_target=True), data=st.data())
def test_hvp_is_the_hessian_times_v_and_vjp_is_v_times_the_jacobian(problem, data):
    X, y, l2, _ = problem
    X = X.reshape(len(X), -1)
    d = X.shape[1]
    w = data.draw(arrays((d, 1)))
    v = data.draw(arrays((d, 1)))
    loss = _objective(X, y, l2)
    H = tl.autograd.hessian(loss, w).data.reshape(d, d)
    value, Hv = tl.autograd.hvp(loss, w, v)
    np.testing.assert_allclose(Hv.data.reshape(d), H @ v.reshape(d), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(value.item(), loss(tl.Tensor(w)).item())
    upstream = data.draw(arrays((len(X), 1)))
    out, vJ = tl.autograd.vjp(lambda w: tl.Tensor(X) @ w, w, upstream)
    np.testing.assert_allclose(vJ.data, X.T @ upstream, rtol=1e-12, atol=1e-12)
    assert out.shape == (len(X), 1) and not out.requires_grad


# ----- create_graph=True: results connected to the very inputs given, as torch.autograd.functional -----


def _scalar_fn(x, y):
    return (x**3).sum() * y.sum() + x.exp().sum() * (y * y).sum()


def _vector_fn(x, y):
    return x.tanh() * (y * y).sum() + x * x * y.sum()


def _weights(shape):
    """Fixed weights of `shape`, so that a weighted sum of a result reads every entry of it."""
    return np.random.default_rng(sum(shape) + len(shape)).normal(size=shape)


def _jacobian(x, y, **options):
    return tl.autograd.jacobian(_vector_fn, x, y, **options)


def _hessian(x, y, **options):
    return tl.autograd.hessian(_scalar_fn, x, y, **options)


def _vjp(x, y, **options):
    return tl.autograd.vjp(_vector_fn, (x, y), _weights(np.shape(x)), **options)


def _hvp(x, y, **options):
    v = (_weights(np.shape(x)) + 1, _weights(np.shape(y)) - 1)
    return tl.autograd.hvp(_scalar_fn, (x, y), v, **options)


FUNCTIONAL = {"jacobian": _jacobian, "hessian": _hessian, "vjp": _vjp, "hvp": _hvp}


def _tensors_in(result):
    """Every Tensor of a result (a Tensor, or tuples of them, nested), in order."""
    if isinstance(result, tl.Tensor):
        return [result]
    return [t for part in result for t in _tensors_in(part)]


def _moved(points, i, k, delta):
    """The points with element k of point i moved by delta."""
    moved = [p.copy() for p in points]
    moved[i].reshape(-1)[k] += delta
    return moved


def _weighted_sum(result):
    return sum((t * _weights(t.shape)).sum() for t in _tensors_in(result))


@pytest.mark.parametrize("name", sorted(FUNCTIONAL))
@settings(max_examples=10)
@given(data=st.data())
def test_functional_results_with_create_graph_differentiate_again_with_respect_to_the_inputs_given(name, data):
    """d/dx of a weighted sum of jacobian/hessian/vjp/hvp(..., create_graph=True) against central differences
    of the same sum without a graph: a third derivative for hessian and hvp, a second for jacobian and vjp."""
    a, b = data.draw(arrays(data.draw(small_shapes))), data.draw(arrays(data.draw(small_shapes)))
    x, y = tl.Tensor(a, requires_grad=True), tl.Tensor(b, requires_grad=True)
    analytic = tl.autograd.grad(_weighted_sum(FUNCTIONAL[name](x, y, create_graph=True)), [x, y])
    without_graph = FUNCTIONAL[name](a, b, create_graph=False)
    assert not any(t.requires_grad for t in _tensors_in(without_graph))  # cut from the graph, as before
    eps, points = 1e-6, [a, b]
    for i, gradient in enumerate(analytic):
        numerical = np.zeros(points[i].size)
        for k in range(points[i].size):
            plus, minus = (
                _weighted_sum(FUNCTIONAL[name](*_moved(points, i, k, delta), create_graph=False))
                for delta in (eps, -eps)
            )
            numerical[k] = (plus.item() - minus.item()) / (2 * eps)
        np.testing.assert_allclose(gradient.data.ravel(), numerical, rtol=1e-5, atol=1e-6)


def test_third_derivative_of_a_cube_through_its_hessian_is_six_as_in_pytorch():
    x = tl.Tensor(np.array([1.0, 1.0]), requires_grad=True)
    H = tl.autograd.hessian(lambda x: (x**3).sum(), x, create_graph=True)  # diag(6x)
    np.testing.assert_array_equal(tl.autograd.grad(H.sum(), x)[0].data, [6.0, 6.0])
    value, Hv = tl.autograd.hvp(lambda x: (x**3).sum(), x, np.array([1.0, 2.0]), create_graph=True)
    np.testing.assert_array_equal(tl.autograd.grad(value, x)[0].data, [3.0, 3.0])  # the value too: 3x²
    np.testing.assert_array_equal(tl.autograd.grad(Hv.sum(), x)[0].data, [6.0, 12.0])


def test_functional_differentiates_with_respect_to_the_argument_only_when_fn_also_reads_the_input():
    """As torch's view of the input: fn's argument is a view of x, and an x that fn reads besides is a
    constant of the Hessian, though the result stays connected to x through both."""
    x = tl.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    H = tl.autograd.hessian(lambda z: (z * z * x).sum(), x, create_graph=True)  # d²/dz² = diag(2x)
    np.testing.assert_array_equal(H.data, np.diag(2 * x.data))
    np.testing.assert_array_equal(tl.autograd.grad(H.sum(), x)[0].data, [2.0, 2.0])


def test_hvp_with_create_graph_is_connected_to_v_too():
    """d/dv of uᵀ(H v) is Hᵀu, as torch.autograd.functional.hvp with a v that requires grad."""
    x = tl.Tensor(np.array([1.0, -2.0]), requires_grad=True)
    v = tl.Tensor(np.array([0.5, 3.0]), requires_grad=True)
    _, Hv = tl.autograd.hvp(lambda x: (x**3).sum() * x.sum(), x, v, create_graph=True)
    H = tl.autograd.hessian(lambda x: (x**3).sum() * x.sum(), x).data
    u = np.array([2.0, -1.0])
    np.testing.assert_allclose(Hv.data, H @ v.data, rtol=1e-12)
    np.testing.assert_allclose(tl.autograd.grad((Hv * u).sum(), v)[0].data, H.T @ u, rtol=1e-12)


@pytest.mark.parametrize("create_graph", [False, True])
def test_functional_derivatives_are_taken_inside_no_grad_too(create_graph):
    """As torch.autograd.functional, which turns grad mode on inside: a no_grad() around the call changes nothing."""
    a = np.array([1.0, 2.0])
    with tl.no_grad():
        J = tl.autograd.jacobian(lambda x: x * x, a, create_graph=create_graph)
        H = tl.autograd.hessian(lambda x: (x**3).sum(), a, create_graph=create_graph)
        _, vJ = tl.autograd.vjp(lambda x: x * x, a, np.ones(2), create_graph=create_graph)
        _, Hv = tl.autograd.hvp(lambda x: (x**3).sum(), a, np.ones(2), create_graph=create_graph)
    np.testing.assert_array_equal(J.data, np.diag(2 * a))
    np.testing.assert_array_equal(H.data, np.diag(6 * a))
    np.testing.assert_array_equal(vJ.data, 2 * a)
    np.testing.assert_array_equal(Hv.data, 6 * a)


@pytest.mark.parametrize("name", sorted(FUNCTIONAL))
def test_functional_results_are_cut_from_the_graph_unless_create_graph_is_asked_for(name):
    """create_graph defaults to False, as in torch.autograd.functional: even at inputs that require grad."""
    x = tl.Tensor(np.array([0.5, -1.0]), requires_grad=True)
    y = tl.Tensor(np.array([2.0, 0.3, 1.0]), requires_grad=True)
    assert not any(t.requires_grad for t in _tensors_in(FUNCTIONAL[name](x, y)))
    assert all(t.requires_grad for t in _tensors_in(FUNCTIONAL[name](x, y, create_graph=True)))


@pytest.mark.parametrize(
    "point, dtype",
    [
        ([1, 2], np.float64),
        (np.array([1.0, 2.0], np.float32), np.float32),
        (tl.Tensor(np.array([1.0, 2.0], np.float32)), np.float32),
    ],
    ids=["list of ints", "float32 array", "float32 Tensor without requires_grad"],
)
def test_a_point_given_as_a_list_is_float64_and_a_floating_array_or_tensor_keeps_its_dtype(point, dtype):
    J = tl.autograd.jacobian(lambda x: x * x, point)
    assert J.dtype == dtype
    np.testing.assert_array_equal(J.data, np.diag([2.0, 4.0]))


def _cube_sum(x):
    return (x * x * x).sum()


@pytest.mark.parametrize("create_graph", [False, True])
def test_hvp_takes_v_as_a_list_too(create_graph):
    _, Hv = tl.autograd.hvp(_cube_sum, np.array([1.0, 2.0]), [1.0, -1.0], create_graph=create_graph)
    np.testing.assert_array_equal(Hv.data, [6.0, -12.0])  # diag(6x) v


def test_vjp_at_several_inputs_gives_one_product_per_input():
    a, b, v = np.array([1.0, 2.0]), np.array([3.0, -1.0]), np.array([0.5, 2.0])
    _, products = tl.autograd.vjp(lambda x, y: x * y, (a, b), v)
    assert len(products) == 2
    np.testing.assert_array_equal(products[0].data, v * b)
    np.testing.assert_array_equal(products[1].data, v * a)


def test_hvp_at_several_inputs_is_the_hessian_blocks_times_v():
    """H·v over inputs (x, y): (Hxx u + Hxy w, Hyx u + Hyy w), the cross blocks included."""
    a, b = np.array([0.5, -1.0]), np.array([2.0, 0.3, 1.0])
    u, w = _weights(a.shape), _weights(b.shape)
    (Hxx, Hxy), (Hyx, Hyy) = tl.autograd.hessian(_scalar_fn, a, b)
    _, (Hu, Hw) = tl.autograd.hvp(_scalar_fn, (a, b), (u, w))
    np.testing.assert_allclose(Hu.data, Hxx.data @ u + Hxy.data @ w, rtol=1e-12)
    np.testing.assert_allclose(Hw.data, Hyx.data @ u + Hyy.data @ w, rtol=1e-12)


def test_jacobian_of_an_empty_output_is_an_empty_block_in_the_inputs_dtype():
    empty_columns = tl.Tensor(np.ones((1, 0), np.float32))
    J = tl.autograd.jacobian(lambda x: x.reshape(2, 1) * empty_columns, np.array([1.0, 2.0], np.float32))
    assert J.shape == (2, 0, 2) and J.dtype == np.float32


FUNCTIONAL_ERRORS = {
    "jacobian: fn returns a float among its outputs": (
        TypeError,
        lambda: tl.autograd.jacobian(lambda x: (x, 3.0), np.ones(2)),
        "jacobian: the outputs of fn: item 1 is a float, not a Tensor",
    ),
    "hessian: fn returns a vector": (
        RuntimeError,
        lambda: tl.autograd.hessian(lambda x: x * 2, np.ones(2)),
        "hessian: fn must return a single-element Tensor",
    ),
    "hessian: fn returns a float": (
        RuntimeError,
        lambda: tl.autograd.hessian(lambda x: 3.0, np.ones(2)),
        "hessian: fn must return a single-element Tensor",
    ),
    "vjp: fn returns a float": (
        TypeError,
        lambda: tl.autograd.vjp(lambda x: 3.0, np.ones(2)),
        "vjp: fn must return a Tensor, got float",
    ),
    "hvp: fn returns a vector": (
        RuntimeError,
        lambda: tl.autograd.hvp(lambda x: x * 2, np.ones(2), np.ones(2)),
        "hvp: fn must return a single-element Tensor",
    ),
    "hvp: fn returns a float": (
        RuntimeError,
        lambda: tl.autograd.hvp(lambda x: 3.0, np.ones(2), np.ones(2)),
        "hvp: fn must return a single-element Tensor",
    ),
    "hvp: fewer vectors than inputs": (
        ValueError,
        lambda: tl.autograd.hvp(lambda x, y: (x * y).sum(), (np.ones(2), np.ones(2)), (np.ones(2),)),
        "hvp: 2 inputs but 1 vectors v",
    ),
    "hvp: v of another shape": (
        ValueError,
        lambda: tl.autograd.hvp(_cube_sum, np.ones(2), np.ones(3)),
        "hvp: v has shape (3,) but its input has shape (2,)",
    ),
}


@pytest.mark.parametrize("case", sorted(FUNCTIONAL_ERRORS))
def test_functional_errors_say_what_fn_or_v_should_have_been(case):
    error_type, call, message = FUNCTIONAL_ERRORS[case]
    assert _error_message(error_type, call) == message


# ----- a gradient has its input's dtype, with or without a graph -----


@pytest.mark.parametrize("create_graph", [False, True])
@given(data=st.data())
def test_a_gradient_has_its_inputs_dtype_with_or_without_create_graph(create_graph, data):
    """A float32 input combined with float64 values gets a float32 gradient (PyTorch's), which stays
    differentiable: its own gradient is float32 too, and both are the float64 values rounded."""
    a = data.draw(arrays(data.draw(small_shapes), "any", np.float32))
    w = data.draw(arrays(a.shape, "any", np.float64))
    x = tl.Tensor(a, requires_grad=True)
    (g,) = tl.autograd.grad(((x * tl.Tensor(w)) ** 2).sum(), x, create_graph=create_graph)  # 2w²x
    assert g.dtype == np.float32
    np.testing.assert_allclose(g.data, 2 * w * w * a, rtol=1e-6, atol=1e-6)
    if create_graph:
        (h,) = tl.autograd.grad((g * g).sum(), x)  # d/dx (2w²x)² = 8w⁴x
        assert h.dtype == np.float32
        np.testing.assert_allclose(h.data, 8 * w**4 * a, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("create_graph", [False, True])
def test_jacobian_and_hessian_blocks_have_the_dtype_of_the_input_they_differentiate_by(create_graph):
    """Block [i][j] is a derivative with respect to input j, so it has input j's dtype (as PyTorch's)."""
    x32 = tl.Tensor(np.array([1.0, 2.0], np.float32), requires_grad=True)
    y64 = tl.Tensor(np.array([3.0, -1.0, 0.5]), requires_grad=True)

    def scalar(x, y):
        return (x * x).sum() * (y * y * y).sum()

    H = tl.autograd.hessian(scalar, x32, y64, create_graph=create_graph)
    assert [[block.dtype for block in row] for row in H] == [[np.float32, np.float64], [np.float32, np.float64]]
    np.testing.assert_allclose(H[0][1].data, np.outer(2 * x32.data, 3 * y64.data**2), rtol=1e-6)
    Jx, Jy = tl.autograd.jacobian(lambda x, y: x * y.sum(), x32, y64, create_graph=create_graph)
    assert Jx.dtype == np.float32 and Jy.dtype == np.float64
    H32 = tl.autograd.hessian(
        lambda x: (x * tl.Tensor(np.array([2.0, 3.0]))).sum() ** 2, x32, create_graph=create_graph
    )
    assert H32.dtype == np.float32
    np.testing.assert_allclose(H32.data, 2 * np.outer([2.0, 3.0], [2.0, 3.0]), rtol=1e-6)


# float32 points and float64 weights: their products round differently in float32 and in float64
POINTS32 = np.linspace(-1.3, 1.7, 5).astype(np.float32)
WEIGHTS64 = 1 / np.arange(3.0, 8.0)


def _tanh_times_x(x):
    return x.tanh() * x


def _sum_of_tanh_times_x(x):
    return _tanh_times_x(x).sum()


@pytest.mark.parametrize("grad_outputs", [None, WEIGHTS64], ids=["ones", "float64 grad_outputs"])
def test_grad_takes_its_seed_in_the_outputs_dtype_as_backward_does(grad_outputs):
    """The ones, or a float64 grad_outputs, enter in the float32 output's dtype: backward()'s gradient, bit for bit."""
    x = tl.Tensor(POINTS32, requires_grad=True)
    out = _tanh_times_x(x) if grad_outputs is not None else _sum_of_tanh_times_x(x)
    (g,) = tl.autograd.grad(out, x, grad_outputs)
    out.backward(grad_outputs)
    assert g.dtype == np.float32
    np.testing.assert_array_equal(g.data, x.grad)


def test_create_graph_changes_no_gradient_value():
    """With a graph or without, the same numbers, bit for bit: here of a float64 penalty on float32 and
    float64 weights, whose float32 gradient a float64 seed must reach in float64."""
    x = tl.Tensor(POINTS32, requires_grad=True)
    y = tl.Tensor(WEIGHTS64, requires_grad=True)
    penalty = tl.losses.l2_penalty([y, x], 0.1)
    plain = tl.autograd.grad(penalty, [y, x])
    with_graph = tl.autograd.grad(penalty, [y, x], create_graph=True)
    assert [g.dtype for g in with_graph] == [np.float64, np.float32]
    for expected, g in zip(plain, with_graph):
        np.testing.assert_array_equal(g.data, expected.data)


def test_hvp_takes_v_in_its_inputs_dtype():
    """A float64 v at a float32 point gives the product with v rounded to float32, bit for bit."""
    _, Hv = tl.autograd.hvp(_sum_of_tanh_times_x, POINTS32, WEIGHTS64)
    _, Hv32 = tl.autograd.hvp(_sum_of_tanh_times_x, POINTS32, WEIGHTS64.astype(np.float32))
    assert Hv.dtype == np.float32
    np.testing.assert_array_equal(Hv.data, Hv32.data)


# ----- your own op, once or twice differentiable -----


class SinOnce(tl.Function):
    """Written in NumPy: first-order gradients only."""

    def forward(self, x):
        self.x = x
        return np.sin(x)

    def backward(self, grad):
        return grad * np.cos(self.x)


class Sin(tl.Function):
    differentiable_backward = True

    def forward(self, x):
        return np.sin(x)

    def backward(self, grad):
        (x,) = self.inputs
        return grad * Cos.apply(x)


class Cos(tl.Function):
    differentiable_backward = True

    def forward(self, x):
        return np.cos(x)

    def backward(self, grad):
        (x,) = self.inputs
        return -grad * Sin.apply(x)


def test_a_numpy_backward_serves_first_order_and_names_itself_for_more():
    x = tl.Tensor(np.array([0.3, 1.2]), requires_grad=True)
    assert tl.gradcheck(SinOnce.apply, x)
    with pytest.raises(RuntimeError, match=r"SinOnce\.backward is written for arrays only.*differentiable_backward"):
        tl.autograd.grad(SinOnce.apply(x).sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="SinOnce"):
        tl.autograd.hessian(lambda x: SinOnce.apply(x).sum(), x.data)


def test_a_backward_written_with_tensor_ops_is_differentiable_any_number_of_times():
    x = tl.Tensor(np.array([0.3, 1.2]), requires_grad=True)
    assert tl.gradcheck(Sin.apply, x)
    assert tl.gradgradcheck(Sin.apply, x)
    H = tl.autograd.hessian(lambda x: Sin.apply(x).sum(), x.data)
    np.testing.assert_allclose(H.data, np.diag(-np.sin(x.data)), rtol=1e-12)


def test_gradgradcheck_catches_a_wrong_second_derivative():
    class Square(tl.Function):
        """x², with a right first derivative whose own derivative is wrong: 2x is built as 2·(a constant copy of x)."""

        differentiable_backward = True

        def forward(self, x):
            return x * x

        def backward(self, grad):
            (x,) = self.inputs
            return grad * 2 * tl.Tensor(np.asarray(x)) if isinstance(x, tl.Tensor) else grad * 2 * x

    x = tl.Tensor(np.array([0.5, 1.5]), requires_grad=True)
    assert tl.gradcheck(Square.apply, x)
    with pytest.raises(tl.GradcheckError, match="gradgradcheck: the derivative of the gradient for input 0"):
        tl.gradgradcheck(Square.apply, x)


# ----- Newton's method -----


@settings(max_examples=30)
@given(problem=regression_problems(one_target=True))
def test_one_newton_step_lands_on_ridge(problem):
    X, y, l2, fit_intercept = problem
    X = X.reshape(len(X), -1)
    model = tl.nn.Linear(X.shape[1], 1, bias=fit_intercept, seed=0, dtype=np.float64)
    opt = tl.optim.Newton(model.parameters())
    loss = opt.step(lambda: tl.losses.mse(model(X), y) + tl.losses.l2_penalty([model.weight], l2))
    assert loss.requires_grad  # the loss before the step, as the closure returned it
    coef, intercept = tl.solvers.ridge(X, y, l2, fit_intercept=fit_intercept)
    np.testing.assert_allclose(model.weight.data[:, 0], coef, rtol=1e-8, atol=1e-8)
    if fit_intercept:
        assert model.bias.data[0] == pytest.approx(intercept, rel=1e-8, abs=1e-8)


def test_newton_needs_a_closure_and_checks_damping():
    p = tl.Tensor(np.array([1.0]), requires_grad=True)
    with pytest.raises(TypeError, match="closure"):
        tl.optim.Newton([p]).step()
    with pytest.raises(ValueError, match="Newton: damping must be a finite number >= 0"):
        tl.optim.Newton([p], damping=-1.0)
    opt = tl.optim.Newton([p], lr=0.5, damping=1.0)
    opt.step(lambda: (p * p).sum())  # H = 2, g = 2: p ← 1 - 0.5·2/(2 + 1)
    np.testing.assert_allclose(p.data, [1 - 0.5 * 2 / 3])


@pytest.mark.parametrize(
    ("name", "call"),
    [
        ("jacobian", lambda x: tl.autograd.jacobian(lambda a: a * 2, x)),
        ("hessian", lambda x: tl.autograd.hessian(lambda a: (a * a).sum(), x)),
        ("vjp", lambda x: tl.autograd.vjp(lambda a: (a * a).sum(), x)),
        ("hvp", lambda x: tl.autograd.hvp(lambda a: (a * a).sum(), x, np.ones(2))),
    ],
)
def test_an_integer_point_is_refused_as_pytorch_refuses_it(name, call):
    # (it was silently made float32: a large int64 lost its digits)
    for x in (np.array([1, 2]), tl.Tensor(np.array([1, 2]), dtype=np.int64)):
        with pytest.raises(TypeError) as error:
            call(x)
        assert str(error.value) == f"{name}: input 0 must hold floating-point numbers, got int64"
