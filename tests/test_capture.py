"""The captured step: every replay gives the eager step's numbers to the bit, and what cannot be
replayed is refused with an error, never run wrong."""

import traceback
import weakref

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_lr as tl
from tests.strategies import FLOAT_DTYPES
from tests.threads import run_interleaved

CONSTANT_CHANGED = (
    "a constant of shape {shape} that fn made has another value on these inputs than when it was recorded: it "
    "was computed from the data outside tinygrad_lr's ops (NumPy on an input's values, .item(), float() of a "
    "tensor); compute it with tinygrad_lr's ops inside fn"
)


def _replay_differs(what, cause="fn must reach its inputs only through tinygrad_lr's ops"):
    """The error of a first replay that differs from eager: what differed, and the cause found."""
    return (
        f"capture_step: replaying the recorded step gave other numbers than running fn ({what} differs); "
        f"{cause}. Run this step eagerly instead"
    )


OPTIMIZERS = [
    lambda ps: tl.optim.SGD(ps, lr=0.05),
    lambda ps: tl.optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True),
    lambda ps: tl.optim.Adam(ps, lr=0.1),
    lambda ps: tl.optim.RMSprop(ps, lr=0.01, momentum=0.5),
]


def _twin_models(d_in, d_out, bias, dtype, hidden):
    """Two models with the same weights: one for eager steps, one for captured steps."""

    def make():
        layers = [tl.nn.Linear(d_in, hidden, bias=bias, seed=1, dtype=dtype)] if hidden else []
        layers.append(tl.nn.Linear(hidden or d_in, d_out, bias=bias, seed=2, dtype=dtype))
        return tl.nn.Sequential(layers)

    return make(), make()


@settings(deadline=None)
@given(
    d_in=st.integers(1, 3),
    d_out=st.integers(1, 2),
    bias=st.booleans(),
    hidden=st.sampled_from([0, 2]),
    dtype=FLOAT_DTYPES,
    which=st.integers(0, len(OPTIMIZERS) - 1),
    l2=st.sampled_from([0.0, 0.1]),
    loss=st.sampled_from([tl.losses.mse, tl.losses.mae]),
    sizes=st.lists(st.integers(1, 7), min_size=2, max_size=6),
    seed=st.integers(0, 2**16),
    raw=st.booleans(),
)
def test_every_replay_gives_the_eager_steps_numbers(
    d_in, d_out, bias, hidden, dtype, which, l2, loss, sizes, seed, raw
):
    """Fused or not (`raw`: the last layer written as `x @ W + b`), every step's numbers are eager's."""
    rng = np.random.default_rng(seed)
    eager_model, captured_model = _twin_models(d_in, d_out, bias, dtype, hidden)
    eager_opt, captured_opt = (
        OPTIMIZERS[which](eager_model.parameters()),
        OPTIMIZERS[which](captured_model.parameters()),
    )

    def objective(model, xb, yb):
        *first, last = model.layers
        hidden = tl.nn.Sequential(first)(xb) if first else xb
        pred = hidden @ last.weight + last.bias if raw and bias else last(hidden)
        value = loss(pred, yb)
        weights = [layer.weight for layer in model.layers]
        return value + tl.losses.l2_penalty(weights, l2) if l2 else value

    step = tl.capture_step(lambda xb, yb: objective(captured_model, xb, yb), captured_opt)
    for size in sizes * 2:  # shapes come back: recorded ones are replayed
        xb = rng.normal(size=(size, d_in)).astype(dtype)
        yb = rng.normal(size=(size, d_out)).astype(dtype)
        eager_opt.zero_grad()
        eager_loss = objective(eager_model, tl.Tensor(xb), yb)
        eager_loss.backward()
        eager_opt.step()
        assert step(xb, yb) == eager_loss.item()
        for p, q in zip(eager_model.parameters(), captured_model.parameters()):
            np.testing.assert_array_equal(q.grad, p.grad)
            np.testing.assert_array_equal(q.data, p.data)
            assert q.data.dtype == p.data.dtype
    assert len(step.recordings) == len(set(sizes))


def test_a_layer_used_twice_sums_both_paths_as_eager():
    for capture in (False, True):
        layer = tl.nn.Linear(2, 2, seed=3, dtype=np.float64)
        opt = tl.optim.SGD(layer.parameters(), lr=0.1)

        def fn(xb, yb, layer=layer):
            return tl.losses.mse(layer(layer(xb)), yb)

        x, y = np.arange(8.0).reshape(4, 2) / 8, np.ones((4, 2))
        if capture:
            step = tl.capture_step(fn, opt)
            losses = [step(x * k, y) for k in range(1, 5)]
            captured = (losses, layer.weight.data.copy())
        else:
            losses = []
            for k in range(1, 5):
                opt.zero_grad()
                loss = fn(tl.Tensor(x * k), y)
                loss.backward()
                opt.step()
                losses.append(loss.item())
            eager = (losses, layer.weight.data.copy())
    assert captured[0] == eager[0]
    np.testing.assert_array_equal(captured[1], eager[1])


def test_extra_outputs_come_back_as_arrays_and_weights_changed_by_hand_are_seen():
    model = tl.nn.Linear(1, 1, dtype=np.float64)
    step = tl.capture_step(lambda xb, yb: (tl.losses.mse(model(xb), yb), model(xb)), tl.optim.SGD(model.parameters()))
    x, y = np.array([[1.0], [2.0]]), np.array([[3.0], [5.0]])
    step(x, y)
    model.set_weights([np.array([[2.0]]), np.array([1.0])])
    loss, pred = step(x, y)  # a replay: it reads the weights set by hand
    np.testing.assert_array_equal(pred, [[3.0], [5.0]])
    assert loss == 0.0


def test_a_user_function_with_a_numpy_backward_is_replayed():
    class Cube(tl.Function):
        def forward(self, x):
            return x**3

        def backward(self, grad):
            return grad * 3 * self.inputs[0] ** 2

    w = tl.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    step = tl.capture_step(lambda xb: (Cube.apply(w) * xb).sum(), tl.optim.SGD([w], lr=0.01))
    step(np.array([1.0, 1.0]))
    step(np.array([2.0, 0.5]))
    np.testing.assert_array_equal(w.grad, 3 * np.array([1 - 0.03, 2 - 0.12]) ** 2 * [2.0, 0.5])


def test_a_value_computed_with_numpy_from_the_input_is_caught_on_the_first_replay():
    w = tl.Tensor(np.array([1.0]), requires_grad=True)
    step = tl.capture_step(lambda xb: (w * tl.Tensor(xb.data * 2)).sum(), tl.optim.SGD([w]))
    step(np.array([1.0]))
    before = w.data.copy()
    with pytest.raises(RuntimeError) as error:
        step(np.array([5.0]))
    assert str(error.value) == _replay_differs("the loss", CONSTANT_CHANGED.format(shape=(1,)))
    np.testing.assert_array_equal(w.data, before)  # nothing was stepped


def test_a_branch_on_a_value_is_caught_on_the_first_replay():
    w = tl.Tensor(np.array([1.0]), requires_grad=True)

    def fn(xb):
        return (w * xb).sum() if xb.data[0] > 0 else (w * w * xb).sum()

    step = tl.capture_step(fn, tl.optim.SGD([w]))
    step(np.array([1.0]))
    with pytest.raises(RuntimeError) as error:
        step(np.array([-1.0]))
    assert str(error.value) == _replay_differs(
        "the loss",
        "fn applied other ops on these inputs than when it was recorded (op 1 is Mul, recorded as Sum): a Python "
        "branch on a value (an if on a tensor's value, a choice made with .item() or NumPy) cannot be replayed",
    )


def test_a_tensor_shared_with_the_input_or_computed_outside_is_refused_at_once():
    w = tl.Tensor(np.array([1.0]), requires_grad=True)
    with pytest.raises(RuntimeError, match=r"made a tensor from its input's data .* tl.Tensor\(xb.data\)"):
        tl.capture_step(lambda xb: (w * tl.Tensor(xb.data)).sum(), tl.optim.SGD([w]))(np.array([1.0]))
    doubled = w * 2  # a graph made before the step
    with pytest.raises(RuntimeError) as error:
        tl.capture_step(lambda xb: (doubled * xb).sum(), tl.optim.SGD([w]))(np.array([1.0]))
    assert str(error.value) == (
        "capture_step: fn uses a tensor that was computed outside it, with a graph of its own; compute it "
        "inside fn (the replay would not send a gradient through it)"
    )


_NOT_A_LOSS = "capture_step: fn's first output must be the loss, a one-element Tensor that depends on the parameters; "


@pytest.mark.parametrize(
    ("fn", "inputs", "error", "message"),
    [
        (lambda xb: xb.sum(), [np.ones(2)], RuntimeError, f"{_NOT_A_LOSS}got shape (), computed by no op"),
        (lambda xb: xb * W_, [np.ones(2)], ValueError, f"{_NOT_A_LOSS}got shape (2,)"),
        (lambda xb: 1.0, [np.ones(2)], TypeError, "capture_step: fn must return Tensors; output 0 is a float"),
        (
            lambda xb: (xb * W_).sum(),
            [tl.Tensor([1.0, 2.0], requires_grad=True)],
            ValueError,
            "capture_step: the step's inputs are data; they must not require grad",
        ),
    ],
)
def test_misuse_gets_a_clear_error(fn, inputs, error, message):
    with pytest.raises(error) as raised:
        tl.capture_step(fn, tl.optim.SGD([W_]))(*inputs)
    assert str(raised.value) == message


W_ = tl.Tensor(np.array([1.0, 2.0]), requires_grad=True)


def test_the_arguments_are_checked():
    with pytest.raises(TypeError) as error:
        tl.capture_step(3, tl.optim.SGD([W_]))
    assert str(error.value) == "capture_step: fn must be callable, got int"
    with pytest.raises(TypeError) as error:
        tl.capture_step(lambda: None, "adam")
    assert str(error.value) == "capture_step: optimizer must be a tl.optim optimizer, got str"


def test_fn_runs_eagerly_twice_per_input_shape_then_never():
    """Once to record, once to check the first replay; after that only the replay runs."""
    calls = []
    w = tl.Tensor(np.array([1.0, 2.0]), requires_grad=True)

    def fn(xb):
        calls.append(xb.shape)
        return (w * xb).sum()

    step = tl.capture_step(fn, tl.optim.SGD([w], lr=0.01))
    for _ in range(4):
        step(np.ones(2))
        step(np.ones((3, 2)))
    assert calls == [(2,), (3, 2), (2,), (3, 2)]
    # a call that no guard lets through (a Module made since; a Tensor, not an array) finds its checked
    # recording and does not check it again
    tl.nn.Linear(1, 1)
    step(np.ones(2))
    step(tl.Tensor(np.ones((3, 2))))
    assert calls == [(2,), (3, 2), (2,), (3, 2)]


def test_inputs_are_taken_as_tensors_take_them():
    """Lists and integer arrays become float32 as `tl.Tensor` makes them; floating arrays keep their dtype."""
    w = tl.Tensor(np.array([1.0, 2.0], np.float32), requires_grad=True)
    step = tl.capture_step(lambda xb: ((w * xb) ** 2).sum(), tl.optim.SGD([w], lr=0.01))
    for data in ([1, 2], np.array([1, 2]), [1.5, 2.5], np.array([1.5, 2.5], np.float32)):
        for _ in range(3):  # recorded, checked, replayed
            w.data[:] = [1.0, 2.0]
            expected = float(np.sum((np.array([1.0, 2.0], np.float32) * np.asarray(data, np.float32)) ** 2))
            assert step(data) == expected
    assert {key[0] for key in step.recordings} == {(((2,), np.dtype(np.float32)),)}


def test_safe_steps_refuse_a_non_finite_loss_and_leave_the_weights():
    w = tl.Tensor(np.array([1.0]), requires_grad=True)
    step = tl.capture_step(lambda xb: (w * xb).sum(), tl.optim.SGD([w]), safe=True)
    step(np.array([1.0]))
    with pytest.raises(tl.TrainingDivergedError, match="the loss is inf at step 2"):
        step(np.array([np.inf]))
    np.testing.assert_array_equal(w.data, [1.0 - 0.01])


@pytest.mark.parametrize("metrics", [(), ("mae",)])
@pytest.mark.parametrize("optimizer", ["adam", "sgd", "rmsprop"])
def test_fit_captured_gives_fit_eager_to_the_bit(optimizer, metrics):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(37, 3)), rng.normal(size=37)
    histories, weights = [], []
    for run_eagerly in (False, True):
        model = tl.nn.Sequential([tl.nn.Linear(3, 1, seed=0)])
        model.compile(optimizer=optimizer, metrics=list(metrics), l2=0.01, run_eagerly=run_eagerly)
        histories.append(model.fit(x, y, epochs=3, batch_size=8, validation_split=0.2, seed=1, verbose=0).history)
        weights.append(model.get_weights())
    assert histories[0] == histories[1]
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)


def test_a_step_is_unguarded_unless_asked_as_the_eager_loop_is():
    w = tl.Tensor(np.array([1.0]), requires_grad=True)
    step = tl.capture_step(lambda xb: (w * xb).sum(), tl.optim.SGD([w], lr=1.0))
    step(np.array([1.0]))
    with np.errstate(invalid="ignore", over="ignore"):
        assert not np.isfinite(step(np.array([np.inf])))  # no TrainingDivergedError: step(), not safe_step
    assert not np.isfinite(w.data).all()
    assert not tl.capture.CapturedStep(lambda xb: (w * xb).sum(), tl.optim.SGD([w], lr=1.0)).safe


def _recorded_ops(fn, optimizer, x, y, steps=3):
    step = tl.capture_step(fn, optimizer)
    for _ in range(steps):
        step(x, y)
    (recording,) = step.recordings.values()
    graph = recording.graph
    return [node.op.__name__ for node in graph.forward], [node.op.__name__ for node in graph.backward]


def test_a_recording_fuses_linear_mse_and_its_l2_into_one_op():
    x, y = np.linspace(0, 1, 12).reshape(6, 2), np.ones((6, 1))
    layer = tl.nn.Linear(2, 1, seed=0, dtype=np.float64)
    opt = tl.optim.SGD(layer.parameters(), lr=0.1)
    W, b = layer.weight, layer.bias
    objectives = {
        "linear": lambda xb, yb: tl.losses.mse(layer(xb), yb),
        "raw": lambda xb, yb: tl.losses.mse(xb @ W + b, yb),
        "l2": lambda xb, yb: tl.losses.mse(layer(xb), yb) + tl.losses.l2_penalty([W], 0.1),
        "raw l2": lambda xb, yb: tl.losses.mse(xb @ W + b, yb) + tl.losses.l2_penalty([W], 0.1),
    }
    for fn in objectives.values():
        # fused as recorded: the first replay, checked against eager, already runs the fused op
        assert _recorded_ops(fn, opt, x, y, steps=1) == (["AffineMSE"], ["AffineMSE"])
        assert _recorded_ops(fn, opt, x, y) == (["AffineMSE"], ["AffineMSE"])


def test_a_recording_is_a_graph_replayed_in_the_eager_order_by_code_compiled_once():
    x, y = np.linspace(0, 1, 12).reshape(6, 2), np.ones((6, 1))
    W = tl.Tensor(np.zeros((2, 1)), requires_grad=True)
    steps = [tl.capture_step(lambda xb, yb: tl.losses.mse((xb @ W) * 2.0, yb), tl.optim.SGD([W], lr=0.1)) for _ in "ab"]
    for step in steps:
        step(x, y)
    (recording,), (other,) = (step.recordings.values() for step in steps)
    graph = recording.graph
    # three ops forward; backward in the eager order, the output's op first; the inputs numbered first, then the
    # leaves as first read (W, the constant 2.0), then each op's output
    assert [node.op.__name__ for node in graph.forward] == ["MatMul", "Mul", "MeanSquaredError"]
    assert [node.op.__name__ for node in graph.backward] == ["MeanSquaredError", "Mul", "MatMul"]
    assert graph.input_count == 2 and [place for place, _ in graph.leaves] == [2, 3] and graph.leaves[0][1] is W
    assert [node.output for node in graph.forward] == [4, 5, 6] and graph.forward[1].inputs == (4, 3)
    assert [leaf for _, leaf in graph.grad_leaves] == [W] and graph.outputs == (graph.forward[-1].output,)
    # the same structure: the same code, compiled once
    assert other.replay.__code__ is recording.replay.__code__


def test_a_traceback_through_a_replay_shows_the_generated_line():
    class Fragile(tl.Function):
        broken = False

        def forward(self, x):
            return x * 1.0

        def backward(self, grad):
            if Fragile.broken:
                raise ArithmeticError("backward broke")
            return grad

    W = tl.Tensor(np.ones(3), requires_grad=True)
    step = tl.capture_step(lambda xb: (Fragile.apply(W) * xb).sum(), tl.optim.SGD([W], lr=0.1))
    step(np.ones(3))
    step(np.ones(3))  # (the checked replay)
    Fragile.broken = True
    with pytest.raises(ArithmeticError, match="backward broke") as error:
        step(np.ones(3))
    frames = [frame for frame in traceback.extract_tb(error.value.__traceback__) if "captured step" in frame.filename]
    assert len(frames) == 1 and frames[0].name == "replay"
    assert ".backward(" in frames[0].line and "input_gradients" in frames[0].line  # the line, not a blank


def test_a_replay_keeps_none_of_its_arrays_once_it_returns():
    layer = tl.nn.Linear(2, 1, seed=0, dtype=np.float64)
    step = tl.capture_step(lambda xb, yb: tl.losses.mse(layer(xb) * 2.0, yb), tl.optim.SGD(layer.parameters(), lr=0.1))
    for _ in range(3):
        x, y = np.linspace(0, 1, 12).reshape(6, 2), np.ones((6, 1))
        step(x, y)
    batch = weakref.ref(x)
    del x
    assert batch() is None  # no op object of the recording holds the batch (or anything the replay made)


def test_what_is_needed_elsewhere_is_not_fused_away():
    x, y = np.linspace(0, 1, 12).reshape(6, 2), np.ones((6, 1))
    layer = tl.nn.Linear(2, 1, seed=0, dtype=np.float64)
    other = tl.nn.Linear(2, 1, seed=1, dtype=np.float64)
    opt = tl.optim.SGD([*layer.parameters(), *other.parameters()], lr=0.1)
    W = layer.weight
    # the prediction is an output too: Affine and MeanSquaredError stay apart
    assert _recorded_ops(lambda xb, yb: (tl.losses.mse(pred := layer(xb), yb), pred), opt, x, y)[0] == [
        "Affine",
        "MeanSquaredError",
    ]
    # a penalty over two layers' weights, and a weight with a third use, stay their own ops
    two = lambda xb, yb: tl.losses.mse(layer(xb), yb) + tl.losses.l2_penalty([W, other.weight], 0.1)  # noqa: E731
    assert _recorded_ops(two, opt, x, y)[0] == ["AffineMSE", "L2Penalty", "Add"]
    again = lambda xb, yb: tl.losses.mse(layer(xb), yb) + tl.losses.l2_penalty([W], 0.1) + W.sum()  # noqa: E731
    assert _recorded_ops(again, opt, x, y)[0][0] == "AffineMSE" and "L2Penalty" in _recorded_ops(again, opt, x, y)[0]
    # a bias of another shape than (out,), or a target that needs its gradient through an op, is not fused
    B = tl.Tensor(np.zeros((6, 1)), requires_grad=True)
    opt_b = tl.optim.SGD([W, B], lr=0.1)
    assert _recorded_ops(lambda xb, yb: tl.losses.mse(xb @ W + B, yb), opt_b, x, y)[0][:2] == ["MatMul", "Add"]
    T = tl.Tensor(np.ones((6, 1)), requires_grad=True)
    opt_t = tl.optim.SGD([*layer.parameters(), T], lr=0.1)
    assert _recorded_ops(lambda xb, yb: tl.losses.mse(layer(xb), T * 1.0), opt_t, x, y)[0] == [
        "Affine",
        "Mul",
        "MeanSquaredError",
    ]


def test_a_frozen_weights_penalty_is_fused_and_steps_as_eager():
    """The weight needs no gradient (its penalty op none either), the bias does."""
    x, y = np.linspace(0, 1, 12).reshape(6, 2), np.ones((6, 1))
    models = [tl.nn.Linear(2, 1, seed=0, dtype=np.float64) for _ in range(2)]
    for model in models:
        model.weight.requires_grad = False
    eager_opt, captured_opt = (tl.optim.Adam([m.bias], lr=0.1) for m in models)

    def objective(model, xb, yb):
        return tl.losses.mse(model(xb), yb) + tl.losses.l2_penalty([model.weight], 0.1)

    step = tl.capture_step(lambda xb, yb: objective(models[1], xb, yb), captured_opt)
    for k in range(4):
        eager_opt.zero_grad()
        loss = objective(models[0], tl.Tensor(x * k), y)
        loss.backward()
        eager_opt.step()
        assert step(x * k, y) == loss.item()
        np.testing.assert_array_equal(models[1].bias.data, models[0].bias.data)
    (recording,) = step.recordings.values()
    assert [node.op.__name__ for node in recording.graph.forward] == ["AffineMSE"]


def _assert_replays_as_eager(objective, params_of, shapes=((6, 2), (6, 1)), steps=4):
    """Twin copies of the parameters, one stepped eagerly and one by a captured step: equal every step."""
    rng = np.random.default_rng(7)
    eager, captured = params_of(), params_of()
    eager_opt, captured_opt = (tl.optim.SGD([p for p in ps if p.requires_grad], lr=0.1) for ps in (eager, captured))
    step = tl.capture_step(lambda xb, yb: objective(captured, xb, yb), captured_opt)
    for _ in range(steps):
        xb, yb = (rng.normal(size=shape) for shape in shapes)
        eager_opt.zero_grad()
        loss = objective(eager, tl.Tensor(xb), yb)
        loss.backward()
        eager_opt.step()
        assert step(xb, yb) == loss.item()
        for p, q in zip(eager, captured):
            np.testing.assert_array_equal(q.data, p.data)
    (recording,) = step.recordings.values()
    return [node.op.__name__ for node in recording.graph.forward]


def _linear_params(requires_grad=(True, True), target=False):
    layer = tl.nn.Linear(2, 1, seed=0, dtype=np.float64)
    layer.weight.requires_grad, layer.bias.requires_grad = requires_grad
    extra = [tl.Tensor(np.ones((6, 1)), requires_grad=True)] if target else []
    return [layer.weight, layer.bias, *extra]


def test_an_unfusable_neighbour_is_left_as_recorded():
    # a constant added to the loss: an Add after AffineMSE whose other operand no op made
    constant = tl.Tensor(np.array(0.5))

    def plus_constant(ps, xb, yb):
        return tl.losses.mse(tl.ops.Affine.apply(xb, ps[0], ps[1]), yb) + constant

    assert _assert_replays_as_eager(plus_constant, _linear_params) == ["AffineMSE", "Add"]

    # the layer frozen, the target a parameter: Affine needs no gradient, MeanSquaredError does
    def learned_target(ps, xb, yb):
        return tl.losses.mse(tl.ops.Affine.apply(xb, ps[0], ps[1]), ps[2])

    params = lambda: _linear_params((False, False), target=True)  # noqa: E731
    assert _assert_replays_as_eager(learned_target, params) == ["Affine", "MeanSquaredError"]

    # rows with a leading batch axis: x (2, 6, 2) is not a matrix, so Affine stays on its own
    def batched(ps, xb, yb):
        return tl.losses.mse(tl.ops.Affine.apply(xb, ps[0], ps[1]), yb)

    assert _assert_replays_as_eager(batched, _linear_params, shapes=((2, 6, 2), (2, 6, 1))) == [
        "Affine",
        "MeanSquaredError",
    ]


def test_the_first_replay_check_compares_every_output_and_every_gradient():
    """Any one difference is an error: an output, a gradient by one unit in the last place, a gradient
    missing, or a gradient given to another parameter."""
    layer = tl.nn.Linear(2, 1, seed=0, dtype=np.float64)
    step = tl.capture_step(lambda xb, yb: tl.losses.mse(layer(xb), yb), tl.optim.SGD(layer.parameters(), lr=0.1))
    tensors = [tl.Tensor(np.linspace(0, 1, 6).reshape(3, 2)), tl.Tensor(np.ones((3, 1)))]
    outputs, found = step._eager(tensors)
    arrays = [out.data for out in outputs]
    tl.capture._check_same((arrays, found), (arrays, found))  # the same: no error
    (b, grad_b), (w, grad_w) = found  # (the bias's gradient is complete first)
    nudged = np.nextafter(grad_w, np.inf)
    nudged_loss = [np.nextafter(arrays[0], np.inf)]
    for bad_outputs, bad_found, what in [
        (nudged_loss, found, "the loss"),
        (arrays, [(b, grad_b), (w, nudged)], "the gradient of a tensor of shape (2, 1)"),
        (arrays, found[:1], "the gradient of a tensor of shape (2, 1)"),
        (arrays, [(b, grad_w), (w, grad_b)], "the gradient of a tensor of shape (1,)"),
        (
            arrays,
            [*found, (tl.Tensor(np.ones(3), requires_grad=True), grad_b)],
            "the gradient of a tensor of shape (3,)",
        ),
    ]:
        with pytest.raises(RuntimeError) as error:
            tl.capture._check_same((arrays, found), (bad_outputs, bad_found))
        assert str(error.value) == _replay_differs(what)


class _NoGradientToFirst(tl.Function):
    """x · y, whose backward sends nothing to x (a user op may answer None for an input)."""

    def forward(self, x, y):
        return x * y

    def backward(self, grad):
        return None, grad * self.inputs[0]


class _IntegerRound(tl.Function):
    """round(x) as integers: an op whose forward is not a floating array (apply makes it float32)."""

    def forward(self, x):
        return np.round(x).astype(np.int64)

    def backward(self, grad):
        return grad * 0


def test_ops_that_answer_none_or_give_integers_replay_as_eager():
    def objective(ps, xb, yb):
        u, v = ps
        h = u * 3.0
        # h * 2 gets no gradient (None) from the op it feeds; h, visited after it, gets one through h * h
        dead_end = _NoGradientToFirst.apply(h * 2.0, v)
        rounded = _IntegerRound.apply(u * xb) * v  # float32 from an integer array, as apply makes it
        return (dead_end * xb).sum() + (rounded * yb).sum() + (h * h).sum()

    def params():
        return [
            tl.Tensor(np.array([[1.5, -0.5]]), requires_grad=True),
            tl.Tensor(np.array([[2.0, 3.0]]), requires_grad=True),
        ]

    _assert_replays_as_eager(objective, params, shapes=((3, 2), (3, 2)))


def test_gradients_first_set_where_none_may_come_in_are_none_until_then():
    """a · b feeds only an op that answers None for it: its backward is skipped, and neither a nor b
    (first given a gradient there) gets one; c does. Every step as eager's."""

    def objective(ps, xb, yb):
        a, b, c = ps
        return (_NoGradientToFirst.apply(a * b, c * xb) * yb).sum()

    def params():
        return [tl.Tensor(np.array([[0.5, 2.0]]), requires_grad=True) for _ in range(3)]

    _assert_replays_as_eager(objective, params, shapes=((3, 2), (3, 2)))
    ps = params()
    step = tl.capture_step(lambda xb, yb: objective(ps, xb, yb), tl.optim.SGD(ps, lr=0.1))
    step(np.ones((3, 2)), np.ones((3, 2)))
    assert [p.grad is None for p in ps] == [True, True, False]


def test_outputs_come_back_as_eager_makes_them_floating_arrays():
    """A sum gives NumPy a scalar and an integer op an integer array; `apply` makes both floating
    arrays (float32 for the integers), and so does the replay."""
    w = tl.Tensor(np.array([[1.5, -0.5]]), requires_grad=True)
    step = tl.capture_step(
        lambda xb: ((w * xb).sum(), (w * xb).sum(), _IntegerRound.apply(w * xb)), tl.optim.SGD([w], lr=1e-3)
    )
    for k in range(3):
        _, total, rounded = step(np.array([[1.0, 2.0]]) * (k + 1))
        assert type(total) is np.ndarray and total.dtype == np.float64 and total.shape == ()
        assert type(rounded) is np.ndarray and rounded.dtype == np.float32


def test_the_checked_first_replay_needs_no_more_memory_than_the_recording_run():
    """The eager check runs, and drops its graph, before the replay makes its arrays: on a tall batch
    the first replay's peak is that of one eager step (two n-long vectors), not three."""
    import tracemalloc

    n = 200_000
    x, y = np.linspace(0, 1, n).reshape(n, 1), np.ones((n, 1))
    layer = tl.nn.Linear(1, 1, seed=0, dtype=np.float64)
    step = tl.capture_step(lambda xb, yb: tl.losses.mse(layer(xb), yb), tl.optim.SGD(layer.parameters(), lr=0.1))
    peaks = []
    tracemalloc.start()
    try:
        for _ in range(3):  # recorded (eager), checked replay, replay
            tracemalloc.reset_peak()
            start = tracemalloc.get_traced_memory()[0]
            step(x, y)
            peaks.append(tracemalloc.get_traced_memory()[1] - start)
    finally:
        tracemalloc.stop()
    vector = n * 8
    assert 1.9 * vector < peaks[0] < 2.2 * vector, peaks
    assert peaks[1] < 2.2 * vector and peaks[2] < 2.2 * vector, peaks


# ----- guards: what a recording assumed is checked at every call (issue "Never stale") -----


def _eager_step(fn, optimizer, *arrays):
    """The step a captured one must equal: zero_grad, forward, backward, step; the loss as a float."""
    optimizer.zero_grad()
    loss = fn(*[tl.Tensor(a) for a in arrays])
    loss.backward()
    optimizer.step()
    return loss.item()


def _twins(make_fn, make_optimizer=lambda ps: tl.optim.SGD(ps, lr=0.1), layers=1):
    """An eager (fn, optimizer, model) and a captured (step, optimizer, model) with the same weights."""
    twins = []
    for _ in range(2):
        model = tl.nn.Sequential([tl.nn.Linear(2, 1, seed=k, dtype=np.float64) for k in range(layers)])
        twins.append((make_fn(model), make_optimizer(model.parameters()), model))
    (eager_fn, eager_opt, eager_model), (fn, opt, model) = twins
    return (eager_fn, eager_opt, eager_model), (tl.capture_step(fn, opt), opt, model)


def _assert_same(eager_model, model):
    for p, q in zip(eager_model.modules()[1].__dict__.values(), model.modules()[1].__dict__.values()):
        if isinstance(p, tl.Tensor):
            np.testing.assert_array_equal(q.data, p.data)
            assert q.requires_grad == p.requires_grad
            assert (q.grad is None) == (p.grad is None)
            if p.grad is not None:
                np.testing.assert_array_equal(q.grad, p.grad)


BATCHES = [(np.linspace(-1, 1, 8).reshape(4, 2) * k, np.arange(4.0).reshape(4, 1) + k) for k in range(1, 4)]


@pytest.mark.parametrize("start_frozen", [False, True])
def test_freezing_or_unfreezing_a_parameter_after_recording_is_obeyed(start_frozen):
    # (the recording kept each op's needs_input_grad: a frozen bias kept moving, an unfrozen one never trained)
    (eager_fn, eager_opt, eager_model), (step, _, model) = _twins(lambda m: lambda xb, yb: tl.losses.mse(m(xb), yb))
    for m in (eager_model, model):
        m.layers[0].bias.requires_grad = not start_frozen
    for k in range(9):
        if k in (3, 6):
            for m in (eager_model, model):
                m.layers[0].bias.requires_grad = not m.layers[0].bias.requires_grad
        xb, yb = BATCHES[k % 3]
        assert step(xb, yb) == _eager_step(eager_fn, eager_opt, xb, yb)
        _assert_same(eager_model, model)
    assert eager_model.layers[0].bias.data[0] != 0  # it trained while not frozen


def test_a_weight_replaced_by_another_tensor_is_the_one_read():
    # (the recording read the old weight: the new one got no gradient and the loss was the old model's)
    (eager_fn, eager_opt, eager_model), (step, _, model) = _twins(lambda m: lambda xb, yb: tl.losses.mse(m(xb), yb))
    for k in range(6):
        if k == 3:
            for m in (eager_model, model):
                m.layers[0].weight = tl.Tensor(np.full((2, 1), 0.25), requires_grad=True)
        xb, yb = BATCHES[k % 3]
        assert step(xb, yb) == _eager_step(eager_fn, eager_opt, xb, yb)
        _assert_same(eager_model, model)


def test_a_python_number_the_step_reads_is_read_at_every_call():
    # (an l2 schedule 0 -> 0.5 in fn's closure was frozen after the checked replay: eager 1.365, captured 0.940)
    l2 = 0.0

    def make_fn(model):
        return lambda xb, yb: tl.losses.mse(model(xb), yb) + tl.losses.l2_penalty([model.layers[0].weight], l2)

    (eager_fn, eager_opt, eager_model), (step, _, model) = _twins(make_fn)
    for k, value in enumerate([0.0, 0.0, 0.0, 0.5, 0.5, 0.0, 0.5, 2.0]):
        l2 = value
        xb, yb = BATCHES[k % 3]
        assert step(xb, yb) == _eager_step(eager_fn, eager_opt, xb, yb)
        _assert_same(eager_model, model)


SCALE = 1.0
PENALTY = 0.1


def _scaled_loss(model, xb, yb):
    return tl.losses.mse(model(xb), yb) * SCALE


def test_a_global_number_of_a_function_fn_calls_is_read_at_every_call():
    global SCALE
    (eager_fn, eager_opt, eager_model), (step, _, model) = _twins(lambda m: lambda xb, yb: _scaled_loss(m, xb, yb))
    try:
        for k, value in enumerate([1.0, 1.0, 1.0, 3.0, 3.0, 0.5]):
            SCALE = value
            xb, yb = BATCHES[k % 3]
            assert step(xb, yb) == _eager_step(eager_fn, eager_opt, xb, yb)
            _assert_same(eager_model, model)
    finally:
        SCALE = 1.0


def test_a_captured_step_under_no_grad_raises_as_the_eager_step_does_and_changes_nothing():
    # (it trained as if no_grad were not there)
    (eager_fn, eager_opt, _), (step, _, model) = _twins(lambda m: lambda xb, yb: tl.losses.mse(m(xb), yb))
    for k in range(4):  # recorded, checked, replayed
        step(*BATCHES[k % 3])
    before = model.get_weights()
    with tl.no_grad():
        with pytest.raises(RuntimeError, match="does not require grad"):
            _eager_step(eager_fn, eager_opt, *BATCHES[0])
        with pytest.raises(RuntimeError) as error:
            step(*BATCHES[0])
    assert str(error.value) == (
        "capture_step: called inside no_grad(), where no graph is made and no gradient can be taken; call it "
        "outside no_grad(), as loss.backward() must be"
    )
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    step(*BATCHES[0])  # and outside it, the step goes on


def test_one_captured_step_called_from_several_threads_takes_whole_steps_in_turn():
    # (4 threads: IndexError from inside the generated replay, 2-47 calls of 240)

    (eager_fn, eager_opt, eager_model), (step, _, model) = _twins(lambda m: lambda xb, yb: tl.losses.mse(m(xb), yb))
    xb, yb = BATCHES[1]
    errors = []

    def worker():
        try:
            for _ in range(60):
                step(xb, yb)
        except Exception as error:  # any error is the defect: collected, asserted below
            errors.append(error)

    run_interleaved([worker] * 4)
    assert errors == []
    for _ in range(240):  # the same batch every time: the order of the calls does not matter
        _eager_step(eager_fn, eager_opt, xb, yb)
    _assert_same(eager_model, model)


def test_a_fn_that_takes_derivatives_itself_is_refused_at_recording():
    # (a gradient penalty through relu replayed relu's recorded mask: eager 64.01, captured 100.07)
    w = tl.Tensor(np.array([1.0, -2.0]), requires_grad=True)

    def penalized(xb):
        loss = ((w * xb).relu() ** 2).sum()
        (g,) = tl.autograd.grad(loss, [w], create_graph=True)
        return loss + (g * g).sum()

    step = tl.capture_step(penalized, tl.optim.SGD([w], lr=0.01))
    with pytest.raises(RuntimeError) as error:
        step(np.array([1.0, 1.0]))
    assert str(error.value) == (
        "capture_step: fn takes derivatives itself (backward(), tl.autograd.grad); the masks and values of that "
        "gradient would be frozen in the recording. Return the loss from fn and let the step take its gradient, "
        "or run this step eagerly"
    )
    np.testing.assert_array_equal(w.data, [1.0, -2.0])
    assert step.recordings == {}
    # the same fn, eagerly, as the error advises: the penalty follows relu's mask on every batch
    for xb in (np.array([1.0, 1.0]), np.array([-1.0, -1.0])):
        w.grad = None
        penalized(tl.Tensor(xb)).backward()
        assert np.isfinite(w.grad).all()


def _recorded_count(step, calls):
    """How many times `step` recorded its fn during `calls()` (each recording runs fn eagerly once)."""
    before = list(step.recordings.values())  # (held: a new recording cannot take a dropped one's id)
    calls()
    return len([r for r in step.recordings.values() if not any(r is old for old in before)])


def test_what_fn_reads_is_found_through_its_defaults_methods_and_the_functions_it_calls():
    class Objective(tl.nn.Module):
        def __init__(self):
            self.layer = tl.nn.Linear(2, 1, seed=0, dtype=np.float64)

        def loss(self, xb, yb):
            return tl.losses.mse(self.layer(xb), yb) * SCALE

    objective = Objective()
    by_method = tl.capture_step(objective.loss, tl.optim.SGD(objective.parameters(), lr=0.1))
    layer = tl.nn.Linear(2, 1, seed=0, dtype=np.float64)

    def by_default(xb, yb, layer=layer):
        return tl.losses.mse(layer(xb), yb)

    by_default_step = tl.capture_step(by_default, tl.optim.SGD(layer.parameters(), lr=0.1))
    reads = by_method._reads
    assert objective in reads.fixed and ("SCALE" in [name for _, name in reads.names])
    assert layer in by_default_step._reads.fixed
    for step, owner in ((by_method, objective.layer), (by_default_step, layer)):
        for _ in range(3):
            step(*BATCHES[0])
        # a weight replaced in the module the method belongs to, or in a default argument: recorded again
        owner.weight = tl.Tensor(np.full((2, 1), 0.5), requires_grad=True)
        assert _recorded_count(step, lambda step=step: step(*BATCHES[0])) == 1
        assert _recorded_count(step, lambda step=step: step(*BATCHES[0])) == 0


def test_each_global_is_read_once_and_tinygrad_lrs_own_functions_are_not_looked_into():
    model = tl.nn.Linear(2, 1, seed=0, dtype=np.float64)

    def inner(xb, yb):
        return _scaled_loss(model, xb, yb)

    step = tl.capture_step(lambda xb, yb: inner(xb, yb) + _scaled_loss(model, xb, yb), tl.optim.SGD(model.parameters()))
    names = [name for _, name in step._reads.names]
    assert sorted(names) == ["SCALE", "_scaled_loss", "tl"]  # (tl.losses.mse's own globals are not among them)
    cells = step._reads.cells
    assert [cell.cell_contents for cell in cells].count(model) == 1  # the cell fn and inner share, read once
    assert len({id(cell) for cell in cells}) == len(cells) == 2  # model's and inner's


def test_an_unhashable_value_fn_reads_is_watched_by_identity():
    model = tl.nn.Linear(2, 1, seed=0, dtype=np.float64)
    weights = [model.weight]

    def fn(xb, yb):
        return tl.losses.mse(model(xb), yb) + tl.losses.l2_penalty(weights, 0.1)

    step = tl.capture_step(fn, tl.optim.SGD(model.parameters(), lr=0.1))
    assert _recorded_count(step, lambda: [step(*BATCHES[0]) for _ in range(3)]) == 1
    assert not step._by_value  # the list cannot be a key: ids from here on
    assert _recorded_count(step, lambda: step(*BATCHES[0])) == 0
    weights = [model.weight]  # another list, the same contents: recorded again, as any other object
    assert _recorded_count(step, lambda: step(*BATCHES[0])) == 1


def test_a_parameters_data_replaced_is_read_and_recorded_again_only_when_its_shape_or_dtype_changed():
    (eager_fn, eager_opt, eager_model), (step, _, model) = _twins(lambda m: lambda xb, yb: tl.losses.mse(m(xb), yb))
    for k in range(3):
        assert step(*BATCHES[k]) == _eager_step(eager_fn, eager_opt, *BATCHES[k])
    for m in (eager_model, model):  # the same shape and dtype: the recording still holds, and reads the new array
        m.layers[0].weight.data = np.full((2, 1), 0.75)
    assert _recorded_count(step, lambda: step(*BATCHES[0])) == 0
    _eager_step(eager_fn, eager_opt, *BATCHES[0])
    _assert_same(eager_model, model)
    for m in (eager_model, model):  # another dtype: recorded again
        m.layers[0].bias.data = m.layers[0].bias.data.astype(np.float32)
    assert _recorded_count(step, lambda: step(*BATCHES[1])) == 1
    _eager_step(eager_fn, eager_opt, *BATCHES[1])
    _assert_same(eager_model, model)


def test_once_keys_are_made_from_ids_numbers_are_still_compared_by_value():
    model = tl.nn.Linear(2, 1, seed=0, dtype=np.float64)
    weights = [model.weight]  # unhashable: the keys are made value by value from here on
    l2 = 0.1

    def fn(xb, yb):
        return tl.losses.mse(model(xb), yb) + tl.losses.l2_penalty(weights, l2)

    step = tl.capture_step(fn, tl.optim.SGD(model.parameters(), lr=0.1))
    for text in ("0.1", "0.2") * 2:
        l2 = float(text)  # a new float object each time
        for _ in range(2):
            step(*BATCHES[0])
    assert not step._by_value and len(step.recordings) == 2  # one per value, reused when it comes back


def test_a_closure_variable_not_bound_yet_is_read_as_none_and_its_binding_is_a_change():
    model = tl.nn.Linear(2, 1, seed=0, dtype=np.float64)

    def fn(xb, yb):
        loss = tl.losses.mse(model(xb), yb)
        return loss * scale if bound else loss

    bound = False
    step = tl.capture_step(fn, tl.optim.SGD(model.parameters(), lr=0.1))
    assert _recorded_count(step, lambda: [step(*BATCHES[0]) for _ in range(3)]) == 1  # `scale`'s cell is empty
    scale, bound = 2.0, True
    assert _recorded_count(step, lambda: [step(*BATCHES[0]) for _ in range(3)]) == 1


def _recursive_sum(terms):
    """A helper that calls itself: what fn reads is walked once per function, however it is reached."""
    return terms[0] if len(terms) == 1 else terms[0] + _recursive_sum(terms[1:])


class _Scaled(tl.nn.Module):
    def __init__(self, layer):
        self.layer = layer

    def loss(self, xb, yb):
        return tl.losses.mse(self.layer(xb), yb) * SCALE


def test_everything_fn_reads_is_found_once_through_shared_and_recursive_functions_and_methods():
    layer = tl.nn.Linear(2, 1, seed=0, dtype=np.float64)
    scaled_loss = _Scaled(layer).loss  # a bound method, reached through fn's closure

    def penalty():  # reached twice: from fn and from twice
        return tl.losses.l2_penalty([layer.weight], PENALTY)

    def twice():
        return penalty() + penalty()

    def fn(xb, yb):
        return _recursive_sum([scaled_loss(xb, yb), twice(), penalty(), _scaled_loss(layer, xb, yb)]) * tl.Tensor(1.0)

    reads = tl.capture_step(fn, tl.optim.SGD(layer.parameters()))._reads
    assert sorted(name for _, name in reads.names) == ["PENALTY", "SCALE", "_recursive_sum", "_scaled_loss", "tl"]
    # each cell once: fn's (layer, penalty, scaled_loss, twice); twice's (penalty) and penalty's (layer) are
    # the same cells, of the scope the three functions share
    kinds = sorted(type(cell.cell_contents).__name__ for cell in reads.cells)
    assert kinds == ["Linear", "function", "function", "method"]
    assert [type(value).__name__ for value in reads.fixed] == ["_Scaled"]  # the method's object


BOTTOM_NUMBER, HELPER_NUMBER = 2.0, 3.0


def _helper():
    return HELPER_NUMBER


def _calling(function):
    def caller():
        return function()

    return caller


_calls_helper = _calling(_helper)  # reaches _helper again, through its closure
_zz_bound = _Scaled(None).loss  # a bound method, read as a global


def test_the_walk_goes_on_past_a_function_met_again_and_past_a_method():
    def bottom():  # pushed first: walked last
        return BOTTOM_NUMBER

    def fn():
        return bottom() + _helper() + _calls_helper()

    def with_method():
        return _helper() + _zz_bound

    for walked, expected in (
        (fn, ["BOTTOM_NUMBER", "HELPER_NUMBER", "_calls_helper", "_helper"]),
        (with_method, ["HELPER_NUMBER", "SCALE", "_helper", "_zz_bound", "tl"]),
    ):
        assert sorted(name for _, name in tl.capture._what_fn_reads(walked).names) == expected


def test_tinygrad_lrs_own_functions_are_read_but_not_walked_into():
    model, mse = tl.nn.Linear(2, 1, seed=0, dtype=np.float64), tl.losses.mse

    def fn(xb, yb):
        return mse(model(xb), yb)

    reads = tl.capture_step(fn, tl.optim.SGD(model.parameters()))._reads
    assert reads.names == [] and sorted(map(id, (cell.cell_contents for cell in reads.cells))) == sorted(
        [id(mse), id(model)]
    )
    exec_made = {}
    exec("def made(xb, yb):\n    return mse(model(xb), yb)\n", {"mse": mse, "model": model}, exec_made)
    made = exec_made["made"]
    assert made.__module__ is None  # a function made by exec: no module, walked as any other
    assert sorted(name for _, name in tl.capture._what_fn_reads(lambda xb, yb: made(xb, yb)).names) == ["model", "mse"]


# ----- written for survivors of issue 21's mutation run (each names the rule it pins) -----


def test_a_branch_that_adds_ops_at_the_end_is_named_by_the_count_of_ops():
    w = tl.Tensor(np.array([1.0]), requires_grad=True)

    def fn(xb):
        loss = (w * xb).sum()
        return loss * 2.0 if xb.data[0] > 0 else loss  # the same ops, and one more at the end

    step = tl.capture_step(fn, tl.optim.SGD([w]))
    step(np.array([-1.0]))
    with pytest.raises(RuntimeError) as error:
        step(np.array([1.0]))
    assert str(error.value) == _replay_differs(
        "the loss",
        "fn applied other ops on these inputs than when it was recorded (3 ops, 2 recorded): a Python branch on a "
        "value (an if on a tensor's value, a choice made with .item() or NumPy) cannot be replayed",
    )


def test_an_option_computed_from_the_data_is_caught_without_a_cause_to_name():
    # the same ops and the same constants, but clip's bound came from the values of the input: no cause shows
    w = tl.Tensor(np.array([1.0, 1.0]), requires_grad=True)
    one = tl.Tensor(np.array([1.0, 1.0]))  # a constant that stays the same

    def fn(xb):
        return ((w * xb).clip(high=float(xb.data.max()) / 2) * one).sum()

    step = tl.capture_step(fn, tl.optim.SGD([w], lr=1e-300))
    step(np.array([1.0, 2.0]))
    with pytest.raises(RuntimeError) as error:
        step(np.array([1.0, 4.0]))
    assert str(error.value) == _replay_differs("the loss")


def test_a_trainable_tensor_made_inside_fn_with_other_values_is_no_constant_to_blame():
    w = tl.Tensor(np.array([1.0, 1.0]), requires_grad=True)

    def fn(xb):
        shift = tl.Tensor(xb.data.copy(), requires_grad=True)  # trainable, made from the data: the replay freezes it
        return ((w + shift) * xb).sum()

    step = tl.capture_step(fn, tl.optim.SGD([w], lr=1e-300))
    step(np.array([1.0, 2.0]))
    with pytest.raises(RuntimeError) as error:
        step(np.array([1.0, 4.0]))
    assert str(error.value) == _replay_differs("the loss")


def test_a_second_output_that_differs_is_named_by_its_number():
    w = tl.Tensor(np.array([1.0, 1.0]), requires_grad=True)

    def fn(xb):
        return (w * xb).sum(), (w * xb).clip(high=float(xb.data.max()) / 2)

    step = tl.capture_step(fn, tl.optim.SGD([w], lr=1e-300))
    step(np.array([1.0, 2.0]))
    with pytest.raises(RuntimeError) as error:
        step(np.array([1.0, 4.0]))
    assert str(error.value) == _replay_differs("output 1")


OUTER_NUMBER, INNER_NUMBER = 2.0, 3.0


def test_the_globals_of_a_function_written_inside_fn_are_read_beside_fns_own():
    w = tl.Tensor(np.array([1.0]), requires_grad=True)

    def fn(xb):
        inner = lambda: INNER_NUMBER  # noqa: E731  (a code object inside fn's)
        return (w * xb).sum() * OUTER_NUMBER * inner()

    names = sorted(name for _, name in tl.capture_step(fn, tl.optim.SGD([w]))._reads.names)
    assert names == ["INNER_NUMBER", "OUTER_NUMBER"]


def _with_a_default(xb, scale=SCALE):
    return xb * scale


def test_a_function_reached_twice_is_looked_into_once():
    w = tl.Tensor(np.array([1.0]), requires_grad=True)
    helper = _with_a_default  # reached through fn's closure and through the global name in `calling`

    def calling(xb):
        return _with_a_default(xb)

    def fn(xb):
        return (w * helper(xb) * calling(xb)).sum()

    reads = tl.capture_step(fn, tl.optim.SGD([w]))._reads
    assert reads.fixed == [SCALE]  # the helper's default, once


TUPLE_OF_NUMBERS = (1.0, 2.0)


def test_a_tuple_of_numbers_is_a_guard_by_value():
    global TUPLE_OF_NUMBERS
    w = tl.Tensor(np.array([1.0, 1.0]), requires_grad=True)
    step = tl.capture_step(lambda xb: (w * xb * tl.Tensor(np.array(TUPLE_OF_NUMBERS))).sum(), tl.optim.SGD([w]))
    try:
        assert _recorded_count(step, lambda: [step(np.ones(2)) for _ in range(2)]) == 1
        TUPLE_OF_NUMBERS = tuple([1.0, 2.0])  # another tuple, equal: nothing to record again
        assert _recorded_count(step, lambda: step(np.ones(2))) == 0
        TUPLE_OF_NUMBERS = (1.0, 5.0)
        assert _recorded_count(step, lambda: step(np.ones(2))) == 1
        assert step._by_value
    finally:
        TUPLE_OF_NUMBERS = (1.0, 2.0)


def test_past_its_most_recordings_the_oldest_goes_and_is_recorded_again_when_needed():
    w = tl.Tensor(np.array([1.0]), requires_grad=True)
    eager_w = tl.Tensor(np.array([1.0]), requires_grad=True)
    step, eager_opt = (
        tl.capture_step(lambda xb: (w * xb).sum(), tl.optim.SGD([w], lr=0.01)),
        tl.optim.SGD([eager_w], lr=0.01),
    )
    limit = tl.capture.CapturedStep.MAX_RECORDINGS
    for i, n in enumerate([*range(1, limit + 2), 1]):
        xb = np.linspace(0.5, 1.5, n)
        assert step(xb) == _eager_step(lambda x: (eager_w * x).sum(), eager_opt, tl.Tensor(xb))
        np.testing.assert_array_equal(w.data, eager_w.data)
        assert len(step.recordings) == min(i + 1, limit)
    assert [key[0][0][0] for key in step.recordings] == [(n,) for n in [*range(3, limit + 2), 1]]


def test_objects_keyed_by_identity_are_kept_alive_so_that_their_ids_stay_theirs():
    # a list is keyed by its id: were the recordings not to hold it, a new list could take a dropped one's id
    # and be served the old recording (a penalty of the old list's tensor)
    eager_model, model = (tl.nn.Linear(2, 1, seed=0, dtype=np.float64) for _ in range(2))
    eager_opt, opt = tl.optim.SGD(eager_model.parameters(), lr=0.1), tl.optim.SGD(model.parameters(), lr=0.1)
    eager_penalized, penalized = [eager_model.weight], [model.weight]

    def eager_fn(xb, yb):
        return tl.losses.mse(eager_model(xb), yb) + tl.losses.l2_penalty(eager_penalized, 0.5)

    step = tl.capture_step(lambda xb, yb: tl.losses.mse(model(xb), yb) + tl.losses.l2_penalty(penalized, 0.5), opt)
    for k in range(12):
        eager_penalized = [eager_model.weight] if k % 2 else [eager_model.bias]
        # the old list dropped first: CPython would give the new one its memory, and so its id (lists are reused
        # from a free list), unless a recording keeps the old one alive
        penalized = None
        penalized = [model.weight] if k % 2 else [model.bias]
        xb, yb = BATCHES[k % 3]
        assert step(xb, yb) == _eager_step(eager_fn, eager_opt, xb, yb)
        np.testing.assert_array_equal(model.weight.data, eager_model.weight.data)
        np.testing.assert_array_equal(model.bias.data, eager_model.bias.data)


@pytest.mark.parametrize("fused", [False, True])
def test_no_two_tensors_share_a_gradient_array_after_a_replay(fused):
    # a gradient that an op hands to two inputs (Add gives its upstream gradient to both) is copied for each,
    # as the eager walk does; only a fused op's fresh arrays are kept as they are
    a, b = (tl.Tensor(np.ones((1, 1)), requires_grad=True) for _ in range(2))
    model = tl.nn.Linear(2, 1, seed=0, dtype=np.float64)

    def fn(xb, yb):
        shared = ((a + b) * xb[:, :1]).sum()
        return shared + (tl.losses.mse(model(xb), yb) if fused else (model.weight * 1.0).sum())

    step = tl.capture_step(fn, tl.optim.SGD([a, b, *model.parameters()], lr=0.1))
    xb, yb = BATCHES[0]
    for _ in range(3):
        step(xb, yb)
        grads = [t.grad for t in (a, b, model.weight, model.bias) if t.grad is not None]
        for i, g in enumerate(grads):
            assert not any(np.shares_memory(g, h) for h in grads[i + 1 :])
    a.grad *= 0  # in place, as gradient clipping may: the other tensor's gradient stays
    assert np.all(b.grad != 0)


def test_the_last_trainable_tensor_frozen_or_every_tensor_flipped_is_seen():
    # (the guard looks at every tensor the step reads: also when each of them changed at once)
    w, c = tl.Tensor(np.array([1.0, 2.0]), requires_grad=True), tl.Tensor(np.array([0.5, 0.5]), requires_grad=True)
    eager_w, eager_c = tl.Tensor(w.data.copy(), requires_grad=True), tl.Tensor(c.data.copy(), requires_grad=True)
    step = tl.capture_step(lambda xb: (w * c * xb).sum(), tl.optim.SGD([w, c], lr=0.1))
    eager_opt = tl.optim.SGD([eager_w, eager_c], lr=0.1)
    c.requires_grad = eager_c.requires_grad = False  # a constant, until step 3
    for k in range(6):
        if k == 3:  # each tensor the step reads changes at once: the weight frozen, the constant trained
            w.requires_grad, c.requires_grad = False, True
            eager_w.requires_grad, eager_c.requires_grad = False, True
        xb = np.array([1.0, -1.0]) * (k + 1)
        assert step(xb) == _eager_step(lambda x: (eager_w * eager_c * x).sum(), eager_opt, tl.Tensor(xb))
        np.testing.assert_array_equal(w.data, eager_w.data)
        np.testing.assert_array_equal(c.data, eager_c.data)
    c.requires_grad = False  # nothing trainable is left: the eager step's error
    with pytest.raises(RuntimeError, match="computed by no op"):
        step(np.array([1.0, 1.0]))


def test_the_data_of_every_tensor_replaced_by_an_array_of_another_shape_is_seen():
    w = tl.Tensor(np.array([1.0]), requires_grad=True)
    eager_w = tl.Tensor(np.array([1.0]), requires_grad=True)
    step, eager_opt = (
        tl.capture_step(lambda xb: (w * xb).sum(), tl.optim.SGD([w], lr=0.1)),
        tl.optim.SGD([eager_w], lr=0.1),
    )
    for k in range(6):
        if k == 3:  # the only tensor it reads gets data of another shape (the same tensor, so no Module sees it)
            w.data, eager_w.data = np.array([1.0, 2.0]), np.array([1.0, 2.0])
        xb = np.array([1.0, 3.0])
        assert step(xb) == _eager_step(lambda x: (eager_w * x).sum(), eager_opt, tl.Tensor(xb))
        np.testing.assert_array_equal(w.data, eager_w.data)
        np.testing.assert_array_equal(w.grad, eager_w.grad)


def test_a_module_attribute_assigned_its_own_tensor_again_needs_no_new_recording():
    model = tl.nn.Linear(2, 1, seed=0, dtype=np.float64)
    step = tl.capture_step(lambda xb, yb: tl.losses.mse(model(xb), yb), tl.optim.SGD(model.parameters(), lr=0.1))
    assert _recorded_count(step, lambda: [step(*BATCHES[0]) for _ in range(2)]) == 1
    version = tl.nn.Module.structure_version
    model.weight = model.weight  # counted as an assignment, the same tensors
    assert tl.nn.Module.structure_version != version
    assert _recorded_count(step, lambda: step(*BATCHES[0])) == 0
    model.weight = tl.Tensor(model.weight.data.copy(), requires_grad=True)
    assert _recorded_count(step, lambda: step(*BATCHES[0])) == 1


def test_the_data_of_every_tensor_replaced_by_arrays_of_other_shapes_is_seen_by_the_fused_step():
    # (the fused op was chosen for the recorded shapes: x @ W + b with a 2-D W; a replay that missed the new
    # shapes would hand a 1-D W to it)
    W, b = tl.Tensor(np.full((2, 1), 0.5), requires_grad=True), tl.Tensor(np.zeros(1), requires_grad=True)
    eager_W, eager_b = tl.Tensor(W.data.copy(), requires_grad=True), tl.Tensor(b.data.copy(), requires_grad=True)
    step = tl.capture_step(lambda xb, yb: tl.losses.mse(xb @ W + b, yb), tl.optim.SGD([W, b], lr=0.1))
    eager_opt = tl.optim.SGD([eager_W, eager_b], lr=0.1)
    for k in range(6):
        if k == 3:  # every tensor the step reads gets new data, of another shape: W (2,), b ()
            W.data, b.data = W.data[:, 0].copy(), b.data[0].copy()
            eager_W.data, eager_b.data = eager_W.data[:, 0].copy(), eager_b.data[0].copy()
        xb, yb = BATCHES[k % 3]
        assert step(xb, yb) == _eager_step(lambda x, y: tl.losses.mse(x @ eager_W + eager_b, y), eager_opt, xb, yb)
        np.testing.assert_array_equal(W.data, eager_W.data)
        np.testing.assert_array_equal(b.data, eager_b.data)


GUARD_OFFSET = 0.0  # a global the step below reads


class _Guarded:
    """A captured step on a Linear that reads a closure number, a closure object and a global, with its
    recording replayed once (checked), so that its guard is written."""

    def __init__(self):
        self.model = model = tl.nn.Linear(2, 1, seed=0, dtype=np.float64)
        self.other_model = tl.nn.Linear(2, 1, seed=0, dtype=np.float64)  # (made before: a new Module is a change too)
        scale = 2.0

        def fn(xb, yb):
            return tl.losses.mse(model(xb), yb) * scale + GUARD_OFFSET

        self.cells = dict(zip(fn.__code__.co_freevars, fn.__closure__))
        self.step = tl.capture_step(fn, tl.optim.SGD(model.parameters(), lr=0.1))
        self.step(*BATCHES[0])
        self.step(*BATCHES[0])
        (self.recording,) = self.step.recordings.values()

    def change(self, what):
        """Change one thing the recording assumed; returns the function that puts it back."""
        if what in ("a closure number changed", "a closure number of another type", "a closure object replaced"):
            cell = self.cells["model" if what == "a closure object replaced" else "scale"]
            old = cell.cell_contents
            cell.cell_contents = {
                "a closure number changed": 0.25,
                "a closure number of another type": 2,  # (equal to 2.0: the same recording)
                "a closure object replaced": self.other_model,
            }[what]
            return lambda: setattr(cell, "cell_contents", old)
        if what == "a global rebound":
            globals()["GUARD_OFFSET"] = 1e-300
            return lambda: globals().__setitem__("GUARD_OFFSET", 0.0)
        if what == "a parameter frozen":
            self.model.bias.requires_grad = False
            return lambda: setattr(self.model.bias, "requires_grad", True)
        assert what == "a parameter's data replaced by a copy"
        old = self.model.weight.data
        self.model.weight.data = old.copy()
        return lambda: setattr(self.model.weight, "data", old)


GUARD_CHANGES = [
    "a closure number changed",
    "a closure number of another type",
    "a closure object replaced",
    "a global rebound",
    "a parameter frozen",
    "a parameter's data replaced by a copy",
]


@pytest.mark.parametrize("change", GUARD_CHANGES)
def test_the_guard_refuses_each_thing_its_recording_assumed_and_lets_through_once_it_is_back(change):
    guarded = _Guarded()
    assert guarded.recording is not None and guarded.recording.lets_through(BATCHES[0])
    undo = guarded.change(change)
    try:
        assert not guarded.recording.lets_through(BATCHES[0])
    finally:
        undo()
    assert guarded.recording.lets_through(BATCHES[0])


@pytest.mark.parametrize(
    "inputs",
    [
        pytest.param((BATCHES[0][0][:3], BATCHES[0][1][:3]), id="another shape"),
        pytest.param((BATCHES[0][0].astype(np.float32), BATCHES[0][1]), id="another dtype"),
        pytest.param((tl.Tensor(BATCHES[0][0]), BATCHES[0][1]), id="a Tensor"),
        pytest.param((BATCHES[0][0].tolist(), BATCHES[0][1]), id="a list"),
        pytest.param((*BATCHES[0], BATCHES[0][1]), id="one input more"),
        pytest.param(BATCHES[0][:1], id="one input less"),
    ],
)
def test_the_guard_lets_through_only_floating_arrays_of_the_recorded_shapes_and_dtypes(inputs):
    guarded = _Guarded()
    assert guarded.recording.lets_through(BATCHES[0])
    assert not guarded.recording.lets_through(inputs)


def test_the_guard_refuses_a_call_under_no_grad_and_after_a_module_attribute_is_assigned():
    guarded = _Guarded()
    with tl.no_grad():
        assert not guarded.recording.lets_through(BATCHES[0])
    assert guarded.recording.lets_through(BATCHES[0])
    guarded.model.bias = guarded.model.bias
    assert not guarded.recording.lets_through(BATCHES[0])


@pytest.mark.parametrize("change", ["a closure number of another type", "a parameter's data replaced by a copy"])
def test_a_guard_refused_for_what_its_recording_allows_is_written_again_without_a_new_recording(change):
    # (2 == 2.0 is the same key, and a weight's data replaced by data of the same shape holds: the call goes the
    # long way once, finds the recording, and its guard, written again, lets the next call through)
    guarded = _Guarded()
    guarded.change(change)
    assert not guarded.recording.lets_through(BATCHES[0])
    assert _recorded_count(guarded.step, lambda: guarded.step(*BATCHES[0])) == 0
    assert list(guarded.step.recordings.values()) == [guarded.recording]
    assert guarded.recording.lets_through(BATCHES[0])


def test_the_guard_lets_through_a_nan_the_step_reads_while_it_is_the_same_object():
    # (a dict finds a key by identity before equality, and nan != nan: the guard does as the dict does)
    model = tl.nn.Linear(2, 1, seed=0, dtype=np.float64)
    marker = float("nan")
    step = tl.capture_step(lambda xb, yb: (marker, tl.losses.mse(model(xb), yb))[1], tl.optim.SGD(model.parameters()))
    step(*BATCHES[0])
    step(*BATCHES[0])
    assert next(iter(step.recordings.values())).lets_through(BATCHES[0])
    marker = float("nan")  # (another nan: another key, so another recording)
    assert not next(iter(step.recordings.values())).lets_through(BATCHES[0])


def test_batches_of_two_shapes_in_turn_each_pass_their_own_recordings_guard(monkeypatch):
    # (an epoch's full batches and its shorter last one: neither should send the other the long way)
    model = tl.nn.Linear(2, 1, seed=0, dtype=np.float64)
    step = tl.capture_step(lambda xb, yb: tl.losses.mse(model(xb), yb), tl.optim.SGD(model.parameters()))
    full, short = BATCHES[0], (BATCHES[1][0][:3], BATCHES[1][1][:3])
    for _ in range(2):
        step(*full)
        step(*short)
    long_way = []
    monkeypatch.setattr(step, "_step", lambda inputs: long_way.append(inputs))
    for _ in range(3):
        step(*full)
        step(*short)
    assert long_way == []
    step(BATCHES[2][0][:2], BATCHES[2][1][:2])
    assert len(long_way) == 1


def test_a_guard_refusing_only_the_kind_of_the_inputs_is_not_written_again():
    # (Tensors or lists never pass a guard, which asks for arrays; their call goes the long way, where the
    # arrays made of them do pass: writing the guard again at every such call would be a cost for nothing)
    model = tl.nn.Linear(2, 1, seed=0, dtype=np.float64)
    step = tl.capture_step(lambda xb, yb: tl.losses.mse(model(xb), yb), tl.optim.SGD(model.parameters()))
    tensors = [tl.Tensor(a) for a in BATCHES[0]]
    step(*tensors)
    step(*tensors)
    (recording,) = step.recordings.values()
    guard = recording.guard
    step(*tensors)
    assert recording.guard is guard
