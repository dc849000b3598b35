"""Every fast path keeps the eager promise: a captured step and fit's shortcuts give the numbers of
their eager twin (`run_eagerly=True`), also after whatever a user may change between steps: driven
side by side through random sequences of such changes, compared after every one."""

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

import tinygrad_lr as tl
from tests.strategies import FLOAT_DTYPES
from tests.threads import run_interleaved
from tinygrad_lr import moments

OPTIMIZERS = {
    "sgd": lambda ps: tl.optim.SGD(ps, lr=0.05),
    "nesterov": lambda ps: tl.optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True),
    "adam": lambda ps: tl.optim.Adam(ps, lr=0.05),
    "rmsprop": lambda ps: tl.optim.RMSprop(ps, lr=0.01),
}
# what a user may set on each kind of optimizer between steps, and values to draw
HYPERPARAMETERS = {
    "lr": st.floats(1e-3, 0.1),
    "momentum": st.one_of(st.just(0.0), st.floats(0.0, 0.95)),
    "betas": st.tuples(st.floats(0.0, 0.99), st.floats(0.5, 0.999)),
    "rho": st.floats(0.0, 0.99),
    "eps": st.floats(1e-8, 1e-2),
}


def _settable(optimizer):
    return sorted(name for name in HYPERPARAMETERS if hasattr(optimizer, name))


def _model(layers, dtype):
    sizes = [3, *([2] if layers == 2 else []), 1]
    pairs = enumerate(itertools.pairwise(sizes))
    return tl.nn.Sequential([tl.nn.Linear(a, b, seed=i, dtype=dtype) for i, (a, b) in pairs])


def _tensors(model):
    """Every tensor the model holds, frozen ones included, in a fixed order."""
    return [getattr(layer, name) for layer in model.layers for name in ("weight", "bias")]


def _value_or_error(outcome):
    """An outcome ("value", loss) or ("error", type) as a string to compare: which error does not matter
    (fn misused is a ValueError for the captured step, a RuntimeError for backward())."""
    return repr(outcome[1]) if outcome[0] == "value" else "error"


class CapturedBesideEager(RuleBasedStateMachine):
    """A model with its captured step, and its twin stepped eagerly: after every rule, the same numbers."""

    @initialize(layers=st.sampled_from([1, 2]), dtype=FLOAT_DTYPES, optimizer=st.sampled_from(sorted(OPTIMIZERS)))
    def start(self, layers, dtype, optimizer):
        self.dtype = dtype
        self.twins = []
        for _ in range(2):
            model = _model(layers, dtype)
            state = {"l2": 0.0}
            self.twins.append((model, OPTIMIZERS[optimizer](model.parameters()), state))
        model, opt, _ = self.twins[1]
        self.step = tl.capture_step(self._objective(model), opt)

    def _objective(self, model):
        l2 = 0.0  # a Python number in fn's closure, changed by `change_a_closure_number`

        def objective(xb, yb):
            loss = tl.losses.mse(model(xb), yb)
            return loss + tl.losses.l2_penalty([layer.weight for layer in model.layers], l2) if l2 else loss

        def set_l2(value):
            nonlocal l2
            l2 = value

        self.set_captured_l2 = set_l2
        return objective

    def _eager_objective(self, xb, yb):
        model, _, state = self.twins[0]
        loss = tl.losses.mse(model(xb), yb)
        weights = [layer.weight for layer in model.layers]
        return loss + tl.losses.l2_penalty(weights, state["l2"]) if state["l2"] else loss

    def _eager_step(self, xb, yb):
        _, opt, _ = self.twins[0]
        opt.zero_grad()
        loss = self._eager_objective(tl.Tensor(xb), yb)
        loss.backward()
        opt.step()
        return loss.item()

    def _both(self, eager, captured):
        """Run the two; each must give the same result, or each raise."""
        outcomes = [self._eager_or_error(eager), self._eager_or_error(captured)]
        (kind, value), (other_kind, other) = outcomes
        assert kind == other_kind, outcomes
        if kind == "value":
            assert value == other or (np.isnan(value) and np.isnan(other))

    @rule(rows=st.sampled_from([1, 4, 5]), seed=st.integers(0, 3))
    def take_a_step(self, rows, seed):
        rng = np.random.default_rng(seed)
        xb, yb = rng.normal(size=(rows, 3)).astype(self.dtype), rng.normal(size=(rows, 1)).astype(self.dtype)
        self._both(lambda: self._eager_step(xb, yb), lambda: self.step(xb, yb))

    @rule(which=st.integers(0, 3))
    def freeze_or_unfreeze(self, which):
        for model, _, _ in self.twins:
            tensors = _tensors(model)
            tensor = tensors[which % len(tensors)]
            tensor.requires_grad = not tensor.requires_grad

    @rule(which=st.integers(0, 1), value=st.floats(-1, 1))
    def replace_a_weight(self, which, value):
        for model, _, _ in self.twins:
            layer = model.layers[which % len(model.layers)]
            layer.weight = tl.Tensor(np.full(layer.weight.shape, value, self.dtype), requires_grad=True)

    @rule(data=st.data())
    def change_a_hyperparameter(self, data):
        name = data.draw(st.sampled_from(_settable(self.twins[0][1])))
        value = data.draw(HYPERPARAMETERS[name])
        if name == "momentum" and getattr(self.twins[0][1], "nesterov", False):
            value = max(value, 0.1)
        for _, opt, _ in self.twins:
            setattr(opt, name, value)

    @rule(value=st.sampled_from([0.0, 0.1, 0.5]))
    def change_a_closure_number(self, value):
        self.twins[0][2]["l2"] = value
        self.set_captured_l2(value)

    @rule(rows=st.sampled_from([1, 4]))
    def step_under_no_grad(self, rows):
        xb, yb = np.ones((rows, 3), self.dtype), np.zeros((rows, 1), self.dtype)
        with tl.no_grad():
            self._both(lambda: self._eager_step(xb, yb), lambda: self.step(xb, yb))

    @rule(calls=st.integers(2, 6))
    def steps_from_threads(self, calls):
        xb, yb = np.full((4, 3), 0.5, self.dtype), np.ones((4, 1), self.dtype)
        outcomes = []
        run_interleaved([lambda: outcomes.append(self._captured_or_error(xb, yb))] * calls)
        # the same batch each time: the order of the calls does not matter, and each was a whole step (its
        # outcome may be listed out of turn: a thread appends it after the step has let the next one in)
        eager = [self._eager_or_error(lambda: self._eager_step(xb, yb)) for _ in range(calls)]
        assert sorted(map(_value_or_error, outcomes)) == sorted(map(_value_or_error, eager))

    @staticmethod
    def _eager_or_error(run):
        try:
            return ("value", run())
        except (RuntimeError, ValueError) as error:
            return ("error", type(error))

    def _captured_or_error(self, xb, yb):
        return self._eager_or_error(lambda: self.step(xb, yb))

    @invariant()
    def the_twins_hold_the_same_numbers(self):
        if not hasattr(self, "twins"):
            return
        (eager, _, _), (captured, _, _) = self.twins
        for p, q in zip(_tensors(eager), _tensors(captured)):
            np.testing.assert_array_equal(q.data, p.data)
            assert q.requires_grad == p.requires_grad and q.dtype == p.dtype
            assert (q.grad is None) == (p.grad is None)
            if p.grad is not None:
                np.testing.assert_array_equal(q.grad, p.grad)


CapturedBesideEager.TestCase.settings = settings(
    stateful_step_count=25, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
test_a_captured_step_equals_its_eager_twin_through_random_changes = CapturedBesideEager.TestCase


# ----- fit: every path it may choose equals run_eagerly=True -----


class _Change(tl.callbacks.Callback):
    """Applies drawn changes at the end of chosen batches: (batch number, what, value)."""

    def __init__(self, changes):
        self.changes, self.batches = changes, 0

    def on_batch_end(self, batch, logs=None):
        for at, what, value in self.changes:
            if at == self.batches:
                _apply(self.model, what, value)
        self.batches += 1


def _apply(model, what, value):
    layer = model.layers[int(value * 10) % len(model.layers)]
    if what == "freeze_bias":
        layer.bias.requires_grad = not layer.bias.requires_grad
    elif what == "freeze_weight":
        layer.weight.requires_grad = not layer.weight.requires_grad
    elif what == "replace_weight":
        layer.weight = tl.Tensor(np.full(layer.weight.shape, value, layer.weight.dtype), requires_grad=True)
    elif what == "stop":
        model.stop_training = True
    else:  # a hyperparameter
        setattr(model.compiled.optimizer, what, value)


changes = st.lists(
    st.tuples(
        st.integers(0, 12),
        st.sampled_from(["freeze_bias", "freeze_weight", "replace_weight", "lr", "eps", "momentum", "stop"]),
        st.floats(0.001, 0.5),
    ),
    max_size=4,
)


def _fit_twice(make_model, optimizer, x, y, changes_drawn, compile_kwargs, **fit_kwargs):
    """(history, tensors) of fit with its fast paths, then of the same fit with run_eagerly=True."""
    results = []
    for run_eagerly in (False, True):
        model = make_model()
        model.compile(optimizer=OPTIMIZERS[optimizer]([]), run_eagerly=run_eagerly, **compile_kwargs)
        settable = _settable(model.compiled.optimizer)
        kept = [change for change in changes_drawn if change[1] not in HYPERPARAMETERS or change[1] in settable]
        try:
            history = model.fit(x, y, verbose=0, callbacks=[_Change(kept)], **fit_kwargs)
        except RuntimeError as error:  # diverged, or every parameter frozen (no gradient to take): in both
            history = type(error)
        results.append((history, [t.data.copy() for t in _tensors(model)]))
    return results


@settings(deadline=None)
@given(
    layers=st.sampled_from([1, 2]),
    dtype=FLOAT_DTYPES,
    optimizer=st.sampled_from(sorted(OPTIMIZERS)),
    l2=st.sampled_from([0.0, 0.05]),
    batch_size=st.sampled_from([4, 7, 32]),
    validation_split=st.sampled_from([0.0, 0.25]),
    changes_drawn=changes,
    seed=st.integers(0, 100),
)
def test_fit_equals_fit_run_eagerly_through_callbacks_that_change_the_model_or_optimizer(
    layers, dtype, optimizer, l2, batch_size, validation_split, changes_drawn, seed
):
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=(20, 3)), rng.normal(size=20)
    (fast, fast_tensors), (eager, eager_tensors) = _fit_twice(
        lambda: _model(layers, dtype),
        optimizer,
        x,
        y,
        changes_drawn,
        {"l2": l2, "metrics": ["mae"]},
        epochs=3,
        batch_size=batch_size,
        validation_split=validation_split,
        seed=seed,
    )
    if isinstance(fast, type) or isinstance(eager, type):  # an error's type
        assert fast is eager
    else:
        assert fast.step == "captured" and eager.step == "eager"
        assert fast.history == eager.history
    for a, b in zip(fast_tensors, eager_tensors):
        np.testing.assert_array_equal(a, b)


def test_a_callback_that_freezes_the_bias_is_obeyed_by_the_captured_fit():
    # (the captured fit kept training the bias: 2.1087 against 1.6259 for the same fit run eagerly)
    class FreezeBias(tl.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0:
                self.model.layers[0].bias.requires_grad = False

    x = np.linspace(0, 1, 40)
    y = 3 * x + 2
    runs = []
    for run_eagerly in (False, True):
        model = tl.nn.Sequential([tl.nn.Linear(1, 1, seed=0)])
        model.compile(optimizer=tl.optim.SGD(lr=0.1), run_eagerly=run_eagerly)
        history = model.fit(x, y, epochs=5, batch_size=8, shuffle=False, verbose=0, callbacks=[FreezeBias()])
        runs.append((history.history, [t.data.copy() for t in _tensors(model)]))
    (fast, fast_tensors), (eager, eager_tensors) = runs
    assert fast == eager
    for a, b in zip(fast_tensors, eager_tensors):
        np.testing.assert_array_equal(a, b)


# ----- the moments: 1e-9 relative to eager, or not used, with the reason readable -----


def _offset_data(n, offset, scale, correlation, noise, seed):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 3))
    z[:, 1] = correlation * z[:, 0] + np.sqrt(1 - correlation**2) * z[:, 1]  # a conditioning of our choosing
    x = z * scale + offset * np.array([1.0, -3.0, 7.0])
    y = (z @ np.array([1.5, -2.0, 0.5])) * 4 + 20 + noise * rng.normal(size=n)
    return x, y


def test_on_data_far_from_zero_the_loss_history_is_eagers_or_the_moments_step_aside():
    # (70k rows, feature means 1e8-1e9, variance 1, near the optimum: the moments reported 0.00848, 0.0
    # (clamped) and 0.0285 against the true 0.01005, while the weights matched)
    x, y = _offset_data(70_000, offset=1.5e8, scale=1.0, correlation=0.0, noise=0.1, seed=0)
    coef, intercept = tl.solvers.ols(x, y)
    histories = []
    for run_eagerly in (False, True):
        model = tl.nn.Sequential([tl.nn.Linear(3, 1, seed=0, dtype=np.float64)])
        model.set_weights([coef[:, None] * (1 + 1e-9), np.array([intercept])])
        model.compile(optimizer=tl.optim.SGD(lr=1e-20), run_eagerly=run_eagerly)
        histories.append(model.fit(x, y, epochs=4, batch_size=len(x), verbose=0))
    fast, eager = histories
    assert min(eager.history["loss"]) > 0.009
    if fast.step == "moments":
        np.testing.assert_allclose(fast.history["loss"], eager.history["loss"], rtol=1e-9)
    else:
        assert fast.history == eager.history
        assert "rounding each row" in fast.step_reason


N = moments.MIN_ROWS * 5 // 4  # still at least MIN_ROWS after a validation split of 0.1


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    offset=st.sampled_from([0.0, 1.0, 1e3, 1e5, 1e9]),
    scale=st.sampled_from([1e-3, 1.0, 1e3]),
    correlation=st.sampled_from([0.0, 0.9, 0.999]),
    noise=st.sampled_from([1e-6, 1e-2, 1.0]),
    bias=st.booleans(),
    l2=st.sampled_from([0.0, 0.01]),
    use_adam=st.booleans(),
    seed=st.integers(0, 50),
)
@example(offset=0.0, scale=1.0, correlation=0.0, noise=1.0, bias=True, l2=0.0, use_adam=False, seed=0)
@example(offset=1e9, scale=1.0, correlation=0.0, noise=0.1, bias=True, l2=0.0, use_adam=False, seed=0)
def test_fit_from_the_moments_equals_run_eagerly_to_1e9_or_is_not_taken(
    offset, scale, correlation, noise, bias, l2, use_adam, seed
):
    x, y = _offset_data(N, offset, scale, correlation, noise, seed)
    lr = 0.01 if use_adam else 0.5 * tl.solvers.stable_learning_rate(x, l2=l2, fit_intercept=bias)
    assume(lr > 0)
    runs = []
    for run_eagerly in (False, True):
        model = tl.nn.Linear(3, 1, bias=bias, seed=0, dtype=np.float64)
        model.compile(
            optimizer=tl.optim.Adam(lr=lr) if use_adam else tl.optim.SGD(lr=lr), l2=l2, run_eagerly=run_eagerly
        )
        history = model.fit(x, y, epochs=4, batch_size=len(x), validation_split=0.1, verbose=0)
        runs.append((history, model.get_weights()))
    (fast, fast_weights), (eager, eager_weights) = runs
    assert eager.step == "eager"
    if fast.step == "moments":
        for key in eager.history:
            np.testing.assert_allclose(fast.history[key], eager.history[key], rtol=1e-9)
        for a, b in zip(fast_weights, eager_weights):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9 * float(np.abs(b).max()))
    else:
        assert fast.step == "captured" and fast.step_reason.startswith("not from the moments: ")
        assert fast.history == eager.history
        for a, b in zip(fast_weights, eager_weights):
            np.testing.assert_array_equal(a, b)


def test_the_moments_serve_ordinary_data_and_step_aside_for_offsets_that_rounding_would_spoil():
    """Both branches of the test above are taken: the moments are not simply switched off."""
    for offset, expected in [(0.0, "moments"), (1e9, "captured")]:
        x, y = _offset_data(N, offset, 1.0, 0.0, 1.0, 0)
        model = tl.nn.Linear(3, 1, seed=0, dtype=np.float64)
        model.compile(optimizer=tl.optim.SGD(lr=1e-30))
        assert model.fit(x, y, epochs=4, batch_size=len(x), verbose=0).step == expected


def test_a_callback_that_freezes_the_bias_moves_fit_off_the_moments_at_the_next_step():
    x, y = _offset_data(N, 0.0, 1.0, 0.0, 1.0, 0)

    class FreezeBias(tl.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                self.model.bias.requires_grad = False

    runs = []
    for run_eagerly in (False, True):
        model = tl.nn.Linear(3, 1, seed=0, dtype=np.float64)
        model.compile(optimizer=tl.optim.SGD(lr=0.05), run_eagerly=run_eagerly)
        runs.append((model.fit(x, y, epochs=5, batch_size=len(x), verbose=0, callbacks=[FreezeBias()]), model))
    (fast, fast_model), (eager, eager_model) = runs
    assert fast.step == "moments"
    np.testing.assert_allclose(fast.history["loss"], eager.history["loss"], rtol=1e-9)
    np.testing.assert_allclose(fast_model.weight.data, eager_model.weight.data, rtol=1e-9)
    np.testing.assert_allclose(fast_model.bias.data, eager_model.bias.data, rtol=1e-9)  # frozen after epoch 2


# ----- run_eagerly -----


def test_run_eagerly_takes_plain_eager_steps_and_says_so():
    x, y = np.linspace(0, 1, 20), np.linspace(1, 3, 20)
    model = tl.nn.Linear(1, 1, seed=0)
    model.compile(optimizer="sgd", run_eagerly=True)
    history = model.fit(x, y, epochs=2, verbose=0)
    assert (history.step, history.step_reason) == ("eager", "compiled with run_eagerly=True")
    model.compile(optimizer="sgd")
    assert model.fit(x, y, epochs=2, verbose=0).step == "captured"


@pytest.mark.parametrize("value", [1, "yes", None])
def test_run_eagerly_must_be_a_bool(value):
    with pytest.raises(TypeError, match=r"^compile: run_eagerly must be True or False, got "):
        tl.nn.Linear(1, 1).compile(run_eagerly=value)


# ----- the choice of step (steps.py): subclasses of Linear -----


class _PlainSubclass(tl.nn.Linear):
    """A subclass of Linear that keeps Linear's maths (a name of the user's own, say)."""


class _OwnForward(tl.nn.Linear):
    """A subclass of Linear with a forward of its own: its Python may do anything."""

    def forward(self, x):
        return super().forward(x) * 1.0


def _fit_step(layer, x, y, batch_size, epochs=3, run_eagerly=False):
    model = tl.nn.Sequential([layer(x.shape[1], 1, seed=0, dtype=np.float64)])
    model.compile(optimizer=tl.optim.SGD(lr=0.05), run_eagerly=run_eagerly)
    history = model.fit(x, y, epochs=epochs, batch_size=batch_size, shuffle=False, verbose=0)
    return history, model.get_weights()


def test_a_subclass_of_linear_that_keeps_its_forward_gets_the_captured_step_with_the_eager_numbers():
    x, y = _offset_data(60, offset=0.0, scale=1.0, correlation=0.3, noise=0.1, seed=1)
    fast, fast_weights = _fit_step(_PlainSubclass, x, y, batch_size=16)
    eager, eager_weights = _fit_step(_PlainSubclass, x, y, batch_size=16, run_eagerly=True)
    assert (fast.step, eager.step) == ("captured", "eager")
    assert fast.history == eager.history
    for a, b in zip(fast_weights, eager_weights):
        np.testing.assert_array_equal(a, b)


def test_a_subclass_of_linear_that_keeps_its_forward_gets_the_moments():
    x, y = _offset_data(70_000, offset=0.0, scale=1.0, correlation=0.3, noise=0.1, seed=2)
    fast, fast_weights = _fit_step(_PlainSubclass, x, y, batch_size=len(x), epochs=4)
    eager, eager_weights = _fit_step(_PlainSubclass, x, y, batch_size=len(x), epochs=4, run_eagerly=True)
    assert fast.step == "moments"
    np.testing.assert_allclose(fast.history["loss"], eager.history["loss"], rtol=1e-9)
    for a, b in zip(fast_weights, eager_weights):
        np.testing.assert_allclose(a, b, rtol=1e-9)


def test_a_layer_with_a_forward_of_its_own_runs_eagerly_and_says_why():
    x, y = _offset_data(70_000, offset=0.0, scale=1.0, correlation=0.3, noise=0.1, seed=3)
    for batch_size in (16, len(x)):
        history, _ = _fit_step(
            _OwnForward,
            x[:200] if batch_size == 16 else x,
            y[:200] if batch_size == 16 else y,
            batch_size=batch_size,
            epochs=1,
        )
        assert (history.step, history.step_reason) == ("eager", "a model of the user's own: its Python is run as it is")
