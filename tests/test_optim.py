"""Optimizers against an independent, step-by-step computation of each published update rule."""

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_lr as tl
from tests.messages import message_of

A = np.array([[1.0, 2.0], [0.5, -1.0], [3.0, 0.2]])
B = np.array([1.0, -2.0, 0.5])
START = np.array([0.3, -0.7])


def _grad(p):
    """Gradient of the fixed problem ‖A p - B‖², by hand."""
    return 2 * A.T @ (A @ p - B)


def _run_engine(make_optimizer, steps=6, schedule=None):
    """The parameter after each step; `schedule[t]` (a dict) is set on the optimizer before step t."""
    p = tl.Tensor(START.copy(), requires_grad=True)
    opt = make_optimizer([p])
    trajectory = []
    for t in range(steps):
        for name, value in (schedule[t] if schedule else {}).items():
            setattr(opt, name, value)
        opt.zero_grad()
        residual = tl.Tensor(A) @ p - B
        (residual * residual).sum().backward()
        opt.step()
        trajectory.append(p.data.copy())
    return np.array(trajectory)


def _at(value, t):
    """A hyperparameter of step t (from 0): a list holds one value per step, anything else is constant."""
    return value[t] if isinstance(value, list) else value


def _reference_sgd(lr, momentum=0.0, nesterov=False, steps=6):
    p, buf, out = START.copy(), None, []
    for t in range(steps):
        g = _grad(p)
        if _at(momentum, t):
            buf = g.copy() if buf is None else _at(momentum, t) * buf + g
            g = g + _at(momentum, t) * buf if nesterov else buf
        p = p - _at(lr, t) * g
        out.append(p)
    return np.array(out)


def _reference_adam(lr, beta1, beta2, eps, steps=6):
    # written in PyTorch's arrangement (step size lr/bc1, denominator √v/√bc2 + eps), which is
    # algebraically the paper's m̂/(√v̂ + eps); the bias corrections use the betas of the step
    p, m, v, out = START.copy(), np.zeros(2), np.zeros(2), []
    for t in range(1, steps + 1):
        g = _grad(p)
        b1, b2 = _at(beta1, t - 1), _at(beta2, t - 1)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        bias_correction1, bias_correction2 = 1 - b1**t, 1 - b2**t
        p = p - (_at(lr, t - 1) / bias_correction1) * m / (np.sqrt(v) / np.sqrt(bias_correction2) + _at(eps, t - 1))
        out.append(p)
    return np.array(out)


def _reference_rmsprop(lr, rho, eps, momentum, steps=6):
    p, v, buf, out = START.copy(), np.zeros(2), np.zeros(2), []
    for t in range(steps):
        g = _grad(p)
        v = _at(rho, t) * v + (1 - _at(rho, t)) * g**2
        if _at(momentum, t):
            buf = _at(momentum, t) * buf + g / (np.sqrt(v) + _at(eps, t))
            p = p - _at(lr, t) * buf
        else:
            p = p - _at(lr, t) * g / (np.sqrt(v) + _at(eps, t))
        out.append(p)
    return np.array(out)


@pytest.mark.parametrize(("momentum", "nesterov"), [(0.0, False), (0.9, False), (0.5, True)])
def test_gradient_descent_follows_pytorch_rule(momentum, nesterov):
    engine = _run_engine(lambda ps: tl.optim.GradientDescent(ps, lr=0.01, momentum=momentum, nesterov=nesterov))
    np.testing.assert_allclose(engine, _reference_sgd(0.01, momentum, nesterov), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize(("lr", "betas", "eps"), [(0.1, (0.9, 0.999), 1e-8), (0.01, (0.5, 0.9), 1e-3)])
def test_adam_follows_bias_corrected_rule(lr, betas, eps):
    engine = _run_engine(lambda ps: tl.optim.Adam(ps, lr=lr, betas=betas, eps=eps))
    np.testing.assert_allclose(engine, _reference_adam(lr, *betas, eps), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize(("rho", "eps", "momentum"), [(0.9, 1e-8, 0.0), (0.5, 1e-4, 0.0), (0.9, 1e-8, 0.7)])
def test_rmsprop_follows_pytorch_rule(rho, eps, momentum):
    engine = _run_engine(lambda ps: tl.optim.RMSprop(ps, lr=0.01, rho=rho, eps=eps, momentum=momentum))
    np.testing.assert_allclose(engine, _reference_rmsprop(0.01, rho, eps, momentum), rtol=1e-12, atol=1e-14)


def test_adam_first_step_is_lr_times_sign_of_grad():
    p = tl.Tensor(np.array([1.0, -2.0, 3.0, 0.5]), requires_grad=True)
    before = p.data.copy()
    opt = tl.optim.Adam([p], lr=0.1)
    (p * tl.Tensor([5.0, -0.001, 200.0, -7.0])).sum().backward()
    opt.step()
    # m̂ = g and v̂ = g² at t = 1, so the step is lr·g/(|g| + eps): the gradient's size drops out
    np.testing.assert_allclose(p.data - before, -0.1 * np.array([1.0, -1.0, 1.0, -1.0]), rtol=1e-4)


@pytest.mark.parametrize(
    "make",
    [
        lambda ps: tl.optim.SGD(ps, lr=0.1, momentum=0.9),
        lambda ps: tl.optim.Adam(ps, lr=0.1),
        lambda ps: tl.optim.RMSprop(ps, lr=0.1, momentum=0.5),
    ],
)
def test_parameters_change_in_place_and_state_arrays_are_replaced(make):
    model = tl.nn.Linear(3, 2, seed=0)
    arrays = [p.data for p in model.parameters()]
    opt = make(model.parameters())

    def state_arrays():
        return [v for s in opt.state.values() for v in s.values() if isinstance(v, np.ndarray)]

    first_states = state_arrays()
    first_values = [a.copy() for a in first_states]
    before = [a.copy() for a in arrays]
    for _ in range(3):
        opt.zero_grad()
        tl.losses.mse(model(np.ones((4, 3))), np.zeros((4, 2))).backward()
        opt.step()
    assert all(p.data is a for p, a in zip(model.parameters(), arrays))
    assert all(not np.array_equal(a, b) for a, b in zip(arrays, before))
    # a rule never writes into a state array (a step's backup holds them as they are), it stores new ones
    assert all(np.array_equal(a, b) for a, b in zip(first_states, first_values))
    assert all(a is not b for a, b in zip(state_arrays(), first_states))
    assert all(a.dtype == np.float32 for a in arrays + state_arrays())


@pytest.mark.parametrize("size", [1, 2])
def test_a_step_writes_into_the_parameters_array_the_numbers_of_minus_equals(size):
    # (a one-element parameter is written by assignment, which NumPy does faster than `-=`; the numbers are -='s)
    w = tl.Tensor(np.full(size, 1.0, np.float32), requires_grad=True)
    array = w.data
    opt = tl.optim.SGD([w], lr=0.3)
    w.grad = np.full(size, 0.7, np.float32)
    opt.step()
    expected = np.full(size, 1.0, np.float32)
    expected -= np.float32(0.3) * np.full(size, 0.7, np.float32)
    assert w.data is array
    np.testing.assert_array_equal(w.data, expected)


def test_a_numpy_number_put_in_data_by_hand_is_stepped_as_minus_equals_steps_it():
    w = tl.Tensor(np.array([1.0]), requires_grad=True)
    w.data = np.float64(1.0)  # (not an array: replaced by the step, as `-=` replaces a number)
    opt = tl.optim.SGD([w], lr=0.25)
    w.grad = np.float64(2.0)
    opt.step()
    assert w.data == 0.5


def test_unbound_optimizer_is_bound_later():
    opt = tl.optim.Adam(lr=0.5)
    with pytest.raises(RuntimeError, match="no parameters"):
        opt.step()
    p = tl.Tensor([1.0], requires_grad=True)
    assert opt.bind([p]) is opt
    (p * 2).sum().backward()
    opt.step()
    np.testing.assert_allclose(p.data, [0.5], rtol=1e-6)


def test_parameters_without_gradient_are_left_alone():
    a, b = tl.Tensor([1.0], requires_grad=True), tl.Tensor([1.0], requires_grad=True)
    opt = tl.optim.SGD([a, b], lr=0.1)
    (a * 3).sum().backward()
    opt.step()
    np.testing.assert_allclose(a.data, [0.7], rtol=1e-6)
    np.testing.assert_array_equal(b.data, [1.0])
    opt.zero_grad()
    assert a.grad is None


def test_sgd_is_gradient_descent():
    assert tl.optim.SGD is tl.optim.GradientDescent


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda: tl.optim.SGD(lr=0.0), "lr must be"),
        (lambda: tl.optim.SGD(lr=-1.0), "lr must be"),
        (lambda: tl.optim.SGD(lr=float("nan")), "lr must be"),
        (lambda: tl.optim.SGD(lr=0.1, nesterov=True), "nesterov"),
        (lambda: tl.optim.Adam(lr=0.1, betas=(1.0, 0.999)), "betas"),
        (lambda: tl.optim.RMSprop(lr=0.1, rho=1.5), "rho"),
        (lambda: tl.optim.RMSprop(lr=0.1, momentum=-0.1), "momentum"),
    ],
)
def test_bad_hyperparameters_are_refused(make, words):
    with pytest.raises(ValueError, match=words):
        make()


def test_binding_something_that_is_not_a_parameter_is_refused():
    with pytest.raises(TypeError, match="parameter 0"):
        tl.optim.Adam([tl.Tensor([1.0])], lr=0.1)


def _adam_reference_steps(grads, lr=0.1, beta1=0.9, beta2=0.999, eps=1e-8):
    """Adam on one scalar parameter starting at 0, given its gradient at each of its own steps."""
    p, m, v = 0.0, 0.0, 0.0
    for t, g in enumerate(grads, start=1):
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        p -= lr * (m / (1 - beta1**t)) / (np.sqrt(v / (1 - beta2**t)) + eps)
    return p


def test_a_parameter_skipped_in_one_step_keeps_its_own_step_count():
    a = tl.Tensor(np.zeros(1), requires_grad=True)
    b = tl.Tensor(np.zeros(1), requires_grad=True)
    opt = tl.optim.Adam([a, b], lr=0.1)
    (a * 3.0).sum().backward()  # step 1: only a has a gradient
    opt.step()
    for g_a, g_b in [(1.0, -2.0), (0.5, 4.0)]:  # steps 2 and 3: both
        opt.zero_grad()
        (a * g_a + b * g_b).sum().backward()
        opt.step()
    assert a.data[0] == pytest.approx(_adam_reference_steps([3.0, 1.0, 0.5]), rel=1e-12)
    assert b.data[0] == pytest.approx(_adam_reference_steps([-2.0, 4.0]), rel=1e-12)


def test_parameters_of_different_dtypes_are_updated_each_by_the_rule():
    a = tl.Tensor(np.zeros(2, np.float32), requires_grad=True)
    b = tl.Tensor(np.zeros(3, np.float64), requires_grad=True)
    opt = tl.optim.Adam([a, b], lr=0.1)
    for _ in range(2):
        opt.zero_grad()
        ((a * 2.0).sum() + (b * -1.0).sum()).backward()
        opt.step()
    assert a.dtype == np.float32 and b.dtype == np.float64
    np.testing.assert_allclose(a.data, _adam_reference_steps([2.0, 2.0]), rtol=1e-6)
    np.testing.assert_allclose(b.data, _adam_reference_steps([-1.0, -1.0]), rtol=1e-12)


class _KeepsTheStart(tl.optim.Optimizer):
    """State a class between a rule and Optimizer adds: the parameter's value before its first step."""

    def init_state(self, p):
        return {**super().init_state(p), "start": p.data.copy()}


@pytest.mark.parametrize(
    ("rule", "buffers"), [(tl.optim.Adam, ["m", "v"]), (tl.optim.RMSprop, ["square_avg"])], ids=["Adam", "RMSprop"]
)
def test_a_rules_state_starts_as_zero_buffers_like_the_parameter_over_the_state_of_the_classes_it_extends(
    rule, buffers
):
    """Each init_state passes the parameter on (super().init_state(p)), so the state of a class after the rule
    in the MRO is kept; the rule's buffers are zeros of the parameter's shape and dtype before any step."""

    class Composed(rule, _KeepsTheStart):
        pass

    p = tl.Tensor(np.arange(6.0, dtype=np.float32).reshape(2, 3), requires_grad=True)
    state = Composed([p]).state[p]
    assert sorted(state) == sorted(["step", "start", *buffers])
    assert state["step"] == 0
    np.testing.assert_array_equal(state["start"], p.data)
    for name in buffers:
        assert state[name].shape == p.shape and state[name].dtype == p.dtype
        np.testing.assert_array_equal(state[name], np.zeros((2, 3)))


def test_steps_counts_every_step_and_safe_step_names_the_next_one():
    p = tl.Tensor(np.array([1.0]), requires_grad=True)
    opt = tl.optim.SGD([p], lr=0.1)
    for done in (1, 2, 3):
        opt.zero_grad()
        (p * p).sum().backward()
        opt.step()
        assert opt.steps == done
    with pytest.raises(tl.TrainingDivergedError) as error:
        opt.safe_step(float("nan"))
    assert error.value.step == 4


def test_state_is_kept_per_parameter_in_its_shape():
    model = tl.nn.Linear(3, 2, seed=0)
    opt = tl.optim.Adam(model.parameters(), lr=0.1)
    tl.losses.mse(model(np.ones((4, 3))), np.zeros((4, 2))).backward()
    opt.step()
    weight_state, bias_state = opt.state[model.weight], opt.state[model.bias]
    assert weight_state["m"].shape == (3, 2) and bias_state["v"].shape == (2,)
    assert weight_state["step"] == bias_state["step"] == 1
    np.testing.assert_allclose(weight_state["m"], 0.1 * model.weight.grad)  # m = (1-β1)·g after one step


def test_an_optimizer_bound_to_one_model_refuses_another():
    first, second = tl.nn.Linear(2, 1, seed=0), tl.nn.Linear(2, 1, seed=1)
    opt = tl.optim.Adam(first.parameters(), lr=0.1)
    with pytest.raises(ValueError, match=r"already bound to other parameters.*fresh"):
        opt.bind(second.parameters())
    assert opt.params == first.parameters()
    assert opt.bind(first.parameters()) is opt  # the same parameters again: allowed


def test_the_same_parameter_given_twice_is_refused():
    p, q = tl.Tensor([1.0], requires_grad=True), tl.Tensor([2.0], requires_grad=True)
    with pytest.raises(ValueError, match=r"GradientDescent: parameter 2 is parameter 0 again"):
        tl.optim.SGD([p, q, p], lr=0.1)
    with pytest.raises(ValueError, match=r"parameter 1 is parameter 0 again"):
        tl.optim.Adam(lr=0.1).bind([q, q])


@pytest.mark.parametrize("make", [tl.optim.SGD, tl.optim.Adam, tl.optim.RMSprop])
def test_a_layer_used_twice_is_stepped_once(make):
    shared = tl.nn.Linear(2, 2, seed=0, dtype=np.float64)
    model = tl.nn.Sequential([shared, shared])
    opt = make(model.parameters(), lr=0.1)
    tl.losses.mse(model(np.ones((3, 2))), np.zeros((3, 2))).backward()
    before, grads = [p.data.copy() for p in opt.params], [p.grad.copy() for p in opt.params]
    opt.step()
    reference = make([tl.Tensor(b, requires_grad=True) for b in before], lr=0.1)
    for p, g in zip(reference.params, grads):
        p.grad = g
    reference.step()
    for p, r in zip(opt.params, reference.params):
        np.testing.assert_array_equal(p.data, r.data)


NOT_NUMBERS = ["0.1", None, True, [0.1], 1 + 0j]


@pytest.mark.parametrize("value", NOT_NUMBERS)
@pytest.mark.parametrize(
    ("make", "name"),
    [
        (lambda v: tl.optim.SGD(lr=v), "GradientDescent: lr"),
        (lambda v: tl.optim.SGD(lr=0.1, momentum=v), "GradientDescent: momentum"),
        (lambda v: tl.optim.Adam(lr=v), "Adam: lr"),
        (lambda v: tl.optim.Adam(lr=0.1, betas=(v, 0.999)), r"Adam: betas\[0\]"),
        (lambda v: tl.optim.Adam(lr=0.1, betas=(0.9, v)), r"Adam: betas\[1\]"),
        (lambda v: tl.optim.Adam(lr=0.1, eps=v), "Adam: eps"),
        (lambda v: tl.optim.RMSprop(lr=v), "RMSprop: lr"),
        (lambda v: tl.optim.RMSprop(lr=0.1, rho=v), "RMSprop: rho"),
        (lambda v: tl.optim.RMSprop(lr=0.1, eps=v), "RMSprop: eps"),
        (lambda v: tl.optim.RMSprop(lr=0.1, momentum=v), "RMSprop: momentum"),
    ],
)
def test_a_hyperparameter_that_is_not_a_number_is_a_value_error_naming_it(make, name, value):
    with pytest.raises(ValueError, match=rf"^{name} must be a finite number .*, got {re.escape(repr(value))}$"):
        make(value)


def test_the_message_for_a_string_learning_rate():
    with pytest.raises(ValueError, match=re.escape("Adam: lr must be a finite number > 0, got '0.1'")):
        tl.optim.Adam(lr="0.1")


@pytest.mark.parametrize("betas", [(0.9,), (0.9, 0.99, 0.999), 0.9, "ab", None])
def test_betas_must_be_a_pair(betas):
    with pytest.raises(ValueError, match=r"Adam: betas \(beta1, beta2\) must be a pair, got"):
        tl.optim.Adam(lr=0.1, betas=betas)


def test_numpy_numbers_are_numbers():
    opt = tl.optim.Adam(lr=np.float32(0.1), betas=np.array([0.9, 0.99]), eps=np.float64(1e-7))
    assert opt.betas == (0.9, 0.99)
    tl.optim.SGD(lr=np.int64(1), momentum=np.float16(0.5))


# ----- hyperparameters are read at every step -----

STEPS = 6
rates = st.floats(1e-3, 0.05)
decays = st.floats(0.0, 0.99)
epsilons = st.floats(1e-8, 1e-2)
momenta = st.one_of(st.just(0.0), st.floats(0.0, 0.95))


def _per_step(draw, strategy):
    return draw(st.lists(strategy, min_size=STEPS, max_size=STEPS))


@settings(deadline=None)
@given(data=st.data())
def test_gradient_descent_reads_lr_and_momentum_at_every_step(data):
    lr, momentum = _per_step(data.draw, rates), _per_step(data.draw, momenta)
    nesterov = data.draw(st.booleans()) and momentum[0] > 0
    engine = _run_engine(
        lambda ps: tl.optim.SGD(ps, lr=lr[0], momentum=momentum[0], nesterov=nesterov),
        schedule=[{"lr": a, "momentum": b} for a, b in zip(lr, momentum)],
    )
    np.testing.assert_allclose(engine, _reference_sgd(lr, momentum, nesterov), rtol=1e-12, atol=1e-14)


@settings(deadline=None)
@given(data=st.data())
def test_adam_reads_lr_betas_and_eps_at_every_step(data):
    lr, eps = _per_step(data.draw, rates), _per_step(data.draw, epsilons)
    beta1, beta2 = _per_step(data.draw, decays), _per_step(data.draw, st.floats(0.5, 0.9999))
    engine = _run_engine(
        lambda ps: tl.optim.Adam(ps, lr=lr[0], betas=(beta1[0], beta2[0]), eps=eps[0]),
        schedule=[{"lr": a, "betas": (b, c), "eps": d} for a, b, c, d in zip(lr, beta1, beta2, eps)],
    )
    np.testing.assert_allclose(engine, _reference_adam(lr, beta1, beta2, eps), rtol=1e-12, atol=1e-14)


@settings(deadline=None)
@given(data=st.data())
def test_rmsprop_reads_lr_rho_eps_and_momentum_at_every_step(data):
    lr, rho, eps, momentum = (_per_step(data.draw, s) for s in (rates, decays, epsilons, momenta))
    engine = _run_engine(
        lambda ps: tl.optim.RMSprop(ps, lr=lr[0], rho=rho[0], eps=eps[0], momentum=momentum[0]),
        schedule=[{"lr": a, "rho": b, "eps": c, "momentum": d} for a, b, c, d in zip(lr, rho, eps, momentum)],
    )
    np.testing.assert_allclose(engine, _reference_rmsprop(lr, rho, eps, momentum), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("make", [tl.optim.SGD, tl.optim.RMSprop])
def test_momentum_switched_on_after_steps_without_it_starts_from_the_gradient(make):
    # (it was a KeyError: the buffer was made only for an optimizer built with momentum)
    switched = _run_engine(lambda ps: make(ps, lr=0.01), schedule=[{}, {}, {"momentum": 0.9}, {}, {}, {}])
    momentum = [0.0, 0.0, 0.9, 0.9, 0.9, 0.9]
    reference = (
        _reference_sgd(0.01, momentum) if make is tl.optim.SGD else _reference_rmsprop(0.01, 0.9, 1e-8, momentum)
    )
    np.testing.assert_allclose(switched, reference, rtol=1e-12)


def test_betas_changed_after_the_first_step_change_the_next_step():
    # (they were frozen into the state when the parameter was first seen: the change was silently ignored)
    schedule = [{}, {"betas": (0.5, 0.9)}, {}, {"eps": 1e-3}, {}, {}]
    changed = _run_engine(lambda ps: tl.optim.Adam(ps, lr=0.1), schedule=schedule)
    beta1, beta2, eps = [0.9] + [0.5] * 5, [0.999] + [0.9] * 5, [1e-8] * 3 + [1e-3] * 3
    np.testing.assert_allclose(changed, _reference_adam(0.1, beta1, beta2, eps), rtol=1e-12)
    assert not np.allclose(changed, _reference_adam(0.1, 0.9, 0.999, 1e-8))


@pytest.mark.parametrize(
    ("make", "name", "value", "words"),
    [
        (tl.optim.SGD, "lr", -1.0, "GradientDescent: lr must be a finite number > 0, got -1.0"),
        (tl.optim.SGD, "momentum", float("nan"), "GradientDescent: momentum must be a finite number >= 0, got nan"),
        (tl.optim.Adam, "betas", (0.9, 1.0), "Adam: betas[1] must be a finite number >= 0 and < 1, got 1.0"),
        (tl.optim.Adam, "betas", 0.9, "Adam: betas (beta1, beta2) must be a pair, got 0.9"),
        (tl.optim.RMSprop, "rho", "0.9", "RMSprop: rho must be a finite number >= 0 and < 1, got '0.9'"),
        (tl.optim.RMSprop, "eps", -1e-8, "RMSprop: eps must be a finite number >= 0, got -1e-08"),
    ],
)
def test_a_hyperparameter_set_later_is_checked_as_in_the_constructor(make, name, value, words):
    opt = make(lr=0.1)
    before = getattr(opt, name)
    with pytest.raises(ValueError, match=f"^{re.escape(words)}$"):
        setattr(opt, name, value)
    assert getattr(opt, name) == before


def test_a_rules_constants_are_in_each_parameters_dtype_and_follow_their_hyperparameters():
    half, double = tl.Tensor([1.0], requires_grad=True), tl.Tensor(np.array([1.0]), requires_grad=True)
    opt = tl.optim.Adam([half, double], betas=(0.8, 0.9), eps=1e-3)
    for p in (half, double):
        constants = opt.constants(p)
        assert [c.dtype for c in constants] == [p.dtype] * 5
        # 1 - beta is taken in double precision, then rounded once (as a Python float in an op would be)
        np.testing.assert_array_equal(constants, np.array([0.8, 1 - 0.8, 0.9, 1 - 0.9, 1e-3], dtype=p.dtype))
        assert opt.constants(p) is constants  # kept, while no hyperparameter is set
        nearby = 0.8 + 1e-12  # another number, though the same float32: the numbers decide, not their rounding
        opt.betas = (nearby, 0.9)
        assert opt.constants(p) is not constants and opt.constants(p)[1] == np.asarray(1 - nearby, p.dtype)
        constants = opt.constants(p)
        opt.eps = 1e-3  # set to the same value: made again all the same (any attribute set empties the cache)
        assert opt.constants(p) is not constants
        opt.betas = (0.7, 0.9)
        assert opt.constants(p)[0] == np.asarray(0.7, p.dtype)
        opt.betas = (0.8, 0.9)
    for value in range(1, 100):  # a schedule of many values keeps one set per dtype
        opt.eps = value / 100
        opt.step()
    assert len(opt._constants) <= 2 and opt.constants(half)[4] == np.asarray(0.99, np.float32)


@given(
    lr=st.floats(1e-12, 10.0),
    grad=st.lists(st.floats(-100.0, 100.0), min_size=1, max_size=4),
    dtype=st.sampled_from([np.float16, np.float32, np.float64]),
)
def test_the_learning_rate_as_a_constant_of_the_parameters_dtype_gives_the_python_floats_numbers(lr, grad, dtype):
    # lr * g with lr a 0-d array of g's dtype is NumPy's weak Python-float rule: lr rounded to the dtype once
    start = np.linspace(-1, 1, len(grad)).astype(dtype)
    g = np.array(grad, dtype=dtype)
    for make in (tl.optim.SGD, lambda ps, lr: tl.optim.RMSprop(ps, lr=lr, rho=0.5)):
        p = tl.Tensor(start.copy(), requires_grad=True)
        opt = make([p], lr=lr)
        p.grad = g.copy()
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # (float16: eps rounds to 0)
            opt.step()
            if isinstance(opt, tl.optim.RMSprop):
                square_avg = 0.5 * np.zeros_like(g) + 0.5 * g * g
                want = start - lr * (g / (np.sqrt(square_avg) + 1e-8))
            else:
                want = start - lr * g
        np.testing.assert_array_equal(p.data, want)


# ----- Newton: a non-finite loss, gradient or Hessian stops before LAPACK -----


def _loss_with_a_nonfinite(what, p, q):
    """A loss at p = [0, 1] whose `what` is the first thing not finite."""
    smooth = (p * p).sum() + (q * q * q).sum()
    if what == "loss":
        return smooth * np.nan
    if what == "gradient":
        return smooth + (p * 0).sum().sqrt()  # √0 is 0, its slope 1/(2√0) = inf, times 0: nan
    return smooth + (p**1.5).sum()  # at p = 0: value 0, slope 1.5√p = 0, curvature 0.75/√p = inf


@pytest.mark.parametrize("what", ["loss", "gradient", "Hessian"])
def test_newton_refuses_a_nonfinite_loss_gradient_or_hessian_and_changes_nothing(what, capfd):
    p = tl.Tensor(np.array([0.0, 1.0]), requires_grad=True)
    q = tl.Tensor(np.array([2.0], np.float32), requires_grad=True)
    before = [p.data.copy(), q.data.copy()]
    opt = tl.optim.Newton([p, q])
    with (
        np.errstate(all="ignore"),
        pytest.raises(tl.TrainingDivergedError, match=rf"Newton: the {what} is not finite") as error,
    ):
        opt.step(lambda: _loss_with_a_nonfinite(what, p, q))
    assert error.value.step == 1
    for param, data in zip((p, q), before):
        assert param.data.tobytes() == data.tobytes()
    assert opt.steps == 0 and opt.state[p]["step"] == opt.state[q]["step"] == 0
    assert capfd.readouterr() == ("", "")  # nothing from LAPACK (DLASCL) on the terminal


# ===== the fine print a user sees: exact messages, reprs, state (was test_model_details.py) =====


# ----- TrainingDivergedError -----


def test_diverged_error_keeps_its_reason_as_its_argument():
    error = tl.optim.TrainingDivergedError("the loss is nan at step 3", step=3)
    assert error.args == ("the loss is nan at step 3",)
    assert (error.reason, error.step, error.epoch, error.batch, error.advice) == (
        "the loss is nan at step 3",
        3,
        None,
        None,
        None,
    )


def test_diverged_error_without_advice_is_just_its_reason():
    assert str(tl.optim.TrainingDivergedError("the loss is inf at step 2", step=2)) == "the loss is inf at step 2"
    assert str(tl.optim.TrainingDivergedError("boom", step=1, epoch=2, batch=3)) == (
        "fit: training diverged at epoch 2, batch 3: boom"
    )


def test_diverged_error_appends_its_advice_after_a_full_stop():
    error = tl.optim.TrainingDivergedError("boom", step=1, advice="Lower the learning rate")
    assert str(error) == "boom. Lower the learning rate"


# ----- Optimizer: the base class, repr and hyperparameters -----


def test_the_base_optimizer_says_its_rule_is_not_written():
    p = tl.Tensor([1.0], requires_grad=True)
    (p * 2.0).sum().backward()
    with pytest.raises(NotImplementedError) as error:
        tl.optim.Optimizer([p], lr=0.1).step()
    assert str(error.value) == "Optimizer.update is not written"


@pytest.mark.parametrize(
    ("optimizer", "text"),
    [
        (tl.optim.Adam(lr=0.1), "Adam(betas=(0.9, 0.999), eps=1e-08, lr=0.1)"),
        (tl.optim.SGD(), "GradientDescent(momentum=0.0, nesterov=False, lr=0.01)"),
        (tl.optim.RMSprop(momentum=0.5), "RMSprop(rho=0.9, eps=1e-08, momentum=0.5, lr=0.001)"),
        (tl.optim.Newton(damping=0.5), "Newton(damping=0.5, lr=1.0)"),
    ],
)
def test_an_optimizer_reprs_as_its_name_and_hyperparameters(optimizer, text):
    assert repr(optimizer) == text


def test_hyperparameters_leave_out_parameters_state_steps_and_private_attributes():
    class Scaled(tl.optim.GradientDescent):
        def __init__(self, params=None, lr=0.01):
            self._cache = {}
            self.scale = 2.0
            super().__init__(params, lr=lr)

    p = tl.Tensor([1.0], requires_grad=True)
    opt = Scaled([p], lr=0.5)
    (p * 1.0).sum().backward()
    opt.step()
    assert opt.hyperparameters() == {"momentum": 0.0, "nesterov": False, "scale": 2.0, "lr": 0.5}
    assert repr(opt) == "Scaled(scale=2.0, momentum=0.0, nesterov=False, lr=0.5)"


# ----- Newton -----


def test_newton_without_a_closure_says_how_to_call_it():
    p = tl.Tensor(np.array([1.0]), requires_grad=True)
    with pytest.raises(TypeError) as error:
        tl.optim.Newton([p]).step()
    assert str(error.value) == (
        "Newton.step needs a closure that recomputes and returns the loss: opt.step(lambda: loss_fn())"
    )


def test_newton_without_parameters_says_where_to_give_them():
    with pytest.raises(RuntimeError) as error:
        tl.optim.Newton().step(lambda: tl.Tensor(0.0))
    assert str(error.value) == "Newton.step(): no parameters; pass model.parameters() when creating the optimizer"


def test_newton_on_a_linear_loss_steps_by_the_gradient_over_the_damping():
    # the gradient of a linear loss is constant: the Hessian is zero, and (0 + damping·I)⁻¹·g = g / damping
    p = tl.Tensor(np.array([1.0, -2.0]), requires_grad=True)
    opt = tl.optim.Newton([p], lr=1.0, damping=2.0)
    opt.step(lambda: (p * tl.Tensor([3.0, -5.0])).sum())
    np.testing.assert_allclose(p.data, [1.0 - 1.5, -2.0 + 2.5], rtol=1e-12)


def test_newton_steps_each_of_several_parameters_by_its_own_slice_of_the_direction():
    # separable quadratics: each parameter lands on its own target in one step of lr 1
    a = tl.Tensor(np.array([1.0]), requires_grad=True)
    b = tl.Tensor(np.array([2.0, 3.0]), requires_grad=True)
    c = tl.Tensor(np.array([4.0, 5.0, 6.0]), requires_grad=True)
    targets = [np.array([-1.0]), np.array([0.5, -0.5]), np.array([7.0, 8.0, 9.0])]

    def loss():
        return sum(((q - t) * (q - t)).sum() for q, t in zip((a, b, c), targets))

    opt = tl.optim.Newton([a, b, c])
    opt.step(loss)
    for q, t in zip((a, b, c), targets):
        np.testing.assert_allclose(q.data, t, rtol=1e-12, atol=1e-12)


def test_newton_counts_its_steps_overall_and_per_parameter():
    a = tl.Tensor(np.array([1.0]), requires_grad=True)
    b = tl.Tensor(np.array([2.0, 3.0]), requires_grad=True)
    opt = tl.optim.Newton([a, b], lr=0.5)
    for _ in range(3):
        opt.step(lambda: (a * a).sum() + (b * b).sum())
    assert opt.steps == 3
    assert opt.state[a]["step"] == opt.state[b]["step"] == 3


def test_newton_steps_a_long_double_parameter():
    p = tl.Tensor(np.array([1.0, 2.0], dtype=np.longdouble), requires_grad=True)
    tl.optim.Newton([p]).step(lambda: ((p - 0.5) * (p - 0.5)).sum())
    assert p.dtype == np.longdouble
    np.testing.assert_array_equal(p.data, np.array([0.5, 0.5], dtype=np.longdouble))


def test_newton_subtracts_a_step_cast_to_the_parameters_dtype():
    # the step lr·H⁻¹g is rounded to float32 first, then subtracted in float32 (as every optimizer
    # here updates: in the parameter's own dtype), not subtracted in float64 and rounded after
    x = np.array([1.4099537134170532, 1.624464511871338], dtype=np.float32)
    p = tl.Tensor(x.copy(), requires_grad=True)
    tl.optim.Newton([p], lr=0.3).step(lambda: (p * p).sum())  # g = 2p, H = 2I: the direction is p
    expected = x - (0.3 * x.astype(np.float64)).astype(np.float32)
    assert p.dtype == np.float32
    np.testing.assert_array_equal(p.data, expected)


# ----- optimizers: defaults, checks and their messages -----


def test_default_hyperparameters_are_keras_and_pytorch_defaults():
    assert repr(tl.optim.Adam()) == "Adam(betas=(0.9, 0.999), eps=1e-08, lr=0.001)"
    assert repr(tl.optim.RMSprop()) == "RMSprop(rho=0.9, eps=1e-08, momentum=0.0, lr=0.001)"
    assert repr(tl.optim.GradientDescent()) == "GradientDescent(momentum=0.0, nesterov=False, lr=0.01)"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: tl.optim.Adam(betas=(-0.1, 0.9)), "Adam: betas[0] must be a finite number >= 0 and < 1, got -0.1"),
        (lambda: tl.optim.Adam(betas=(0.9, -0.5)), "Adam: betas[1] must be a finite number >= 0 and < 1, got -0.5"),
        (lambda: tl.optim.Adam(betas=(0.9, 1.0)), "Adam: betas[1] must be a finite number >= 0 and < 1, got 1.0"),
        (lambda: tl.optim.RMSprop(rho=-0.1), "RMSprop: rho must be a finite number >= 0 and < 1, got -0.1"),
        (lambda: tl.optim.SGD(nesterov=True), "GradientDescent: nesterov=True needs a momentum > 0"),
    ],
)
def test_a_hyperparameter_out_of_range_is_refused_with_its_bounds(make, message):
    assert message_of(ValueError, make) == message


def test_beta_and_rho_may_be_zero():
    assert tl.optim.Adam(betas=(0.0, 0.0)).betas == (0.0, 0.0)
    assert tl.optim.RMSprop(rho=0.0).rho == 0.0


def test_binding_a_tensor_without_gradient_names_the_optimizer_and_the_parameter():
    good, frozen = tl.Tensor([1.0], requires_grad=True), tl.Tensor([1.0])
    assert message_of(TypeError, lambda: tl.optim.RMSprop([good, frozen])) == (
        "RMSprop: parameter 1 must be a Tensor with requires_grad=True"
    )


def test_a_parameter_given_twice_is_refused_with_the_reason():
    p = tl.Tensor([1.0], requires_grad=True)
    assert message_of(ValueError, lambda: tl.optim.Adam([p, p])) == (
        "Adam: parameter 1 is parameter 0 again; give each parameter once (model.parameters() lists a layer "
        "used twice once), or it is stepped twice"
    )


def test_stepping_an_unbound_optimizer_says_how_to_bind_it():
    assert message_of(RuntimeError, lambda: tl.optim.RMSprop().step()) == (
        "RMSprop.step(): no parameters; pass model.parameters() when creating the optimizer, or give it to "
        "model.compile(optimizer=...)"
    )


def test_plain_gradient_descent_keeps_no_momentum_buffer():
    p = tl.Tensor([1.0], requires_grad=True)
    opt = tl.optim.SGD([p])
    p.grad = np.array([1.0], np.float32)
    opt.step()
    assert opt.state[p] == {"step": 1}
    opt.momentum = 0.5
    opt.step()
    assert sorted(opt.state[p]) == ["momentum_buffer", "step"]


# ----- safe_step -----


def test_safe_step_takes_a_plain_float_loss():
    p = tl.Tensor(np.array([1.0]), requires_grad=True)
    opt = tl.optim.SGD([p], lr=0.5)
    p.grad = np.array([2.0])
    opt.safe_step(0.25)
    np.testing.assert_array_equal(p.data, [0.0])
    with pytest.raises(tl.optim.TrainingDivergedError) as error:
        opt.safe_step(float("nan"))
    assert str(error.value) == "the loss is nan at step 2; the parameters were not updated"
    assert error.value.step == 2 and error.value.advice is None
    np.testing.assert_array_equal(p.data, [0.0])


def test_safe_step_names_the_parameter_that_became_non_finite_and_advises():
    a = tl.Tensor(np.array([1.0]), requires_grad=True)
    b = tl.Tensor(np.array([[1.0, 2.0]]), requires_grad=True)
    opt = tl.optim.SGD([a, b], lr=0.5)
    a.grad, b.grad = np.array([1.0]), np.array([[np.inf, 0.0]])
    with pytest.raises(tl.optim.TrainingDivergedError) as error:
        opt.safe_step()
    assert error.value.step == 1
    assert error.value.advice == (
        "Lower the learning rate (tl.solvers.stable_learning_rate(X) is the bound for plain gradient descent on a "
        "linear model) or standardise the features"
    )
    assert str(error.value) == (
        "parameter 1 (shape (1, 2)) became non-finite at step 1; the parameters were put back to their values "
        "before that step. " + error.value.advice
    )
    np.testing.assert_array_equal(a.data, [1.0])
    np.testing.assert_array_equal(b.data, [[1.0, 2.0]])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, None])
def test_safe_step_tells_huge_finite_weights_from_non_finite_ones(dtype, bad):
    """Σw² overflows for these finite weights; only a real nan or inf is divergence."""
    huge = np.finfo(dtype).max / 4
    p = tl.Tensor(np.array([huge, -huge, 1.0], dtype), requires_grad=True)
    opt = tl.optim.SGD([p], lr=1.0)
    p.grad = np.array([0.0, 0.0, 0.0 if bad is None else -bad], dtype)
    if bad is None:
        opt.safe_step()
        np.testing.assert_array_equal(p.data, [huge, -huge, 1.0])
    else:
        with pytest.raises(tl.optim.TrainingDivergedError):
            opt.safe_step()
