"""Keras-style training: each rule has a test that fails under the other plausible reading."""

import io
import os
import re
import warnings

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import tinygrad_lr as tl


class SpyLinear(tl.nn.Linear):
    """A Linear layer that records the inputs of its training (gradient-recording) calls."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.training_batches: list[np.ndarray] = []
        self.evaluation_inputs: list[np.ndarray] = []

    def forward(self, x):
        record = self.training_batches if tl.is_grad_enabled() else self.evaluation_inputs
        record.append(np.array(x.data if isinstance(x, tl.Tensor) else x))
        return super().forward(x)


def _model(n_in=1, n_out=1, optimizer="sgd", seed=0, dtype=np.float32, **compile_kwargs):
    model = tl.nn.Sequential([tl.nn.Linear(n_in, n_out, seed=seed, dtype=dtype)])
    model.compile(loss="mse", optimizer=optimizer, **compile_kwargs)
    return model


def _spy_model(optimizer=None):
    spy = SpyLinear(1, 1, seed=0)
    model = tl.nn.Sequential([spy])
    model.compile(optimizer=optimizer or tl.optim.SGD(lr=1e-3))
    return model, spy


def test_validation_split_takes_last_samples_before_shuffling():
    x = np.arange(10.0)
    model, spy = _spy_model()
    model.fit(x, 2 * x, epochs=3, batch_size=3, validation_split=0.3, shuffle=True, seed=1, verbose=0)
    first_epoch = np.concatenate(spy.training_batches[:3])[:, 0]
    assert sorted(first_epoch) == list(range(7))  # the first floor(10·0.7) = 7 samples train...
    assert all(np.array_equal(v[:, 0], [7.0, 8.0, 9.0]) for v in spy.evaluation_inputs)  # ...the last 3 validate


def test_validation_split_floor_rule():
    x = np.arange(51.0)
    model, spy = _spy_model()
    model.fit(x, x, epochs=1, batch_size=100, validation_split=0.3, verbose=0)
    assert len(spy.training_batches[0]) == 35 and len(spy.evaluation_inputs[0]) == 16


def test_only_the_training_part_is_shuffled_each_epoch_reproducibly():
    x = np.arange(20.0)

    def epochs_seen(seed):
        model, spy = _spy_model()
        model.fit(x, x, epochs=3, batch_size=5, validation_split=0.25, seed=seed, verbose=0)
        batches = [b[:, 0].tolist() for b in spy.training_batches]
        return [[x for batch in batches[epoch * 3 : epoch * 3 + 3] for x in batch] for epoch in range(3)]

    orders = epochs_seen(seed=5)
    assert all(sorted(order) == list(range(15)) for order in orders)
    assert orders[0] != orders[1] != orders[2]  # a new permutation each epoch
    assert orders == epochs_seen(seed=5)
    assert orders != epochs_seen(seed=6)


def test_a_single_batch_is_not_shuffled_since_its_order_changes_nothing():
    model, spy = _spy_model()
    model.fit(np.arange(6.0), np.arange(6.0), epochs=2, batch_size=32, shuffle=True, verbose=0)
    assert [b[:, 0].tolist() for b in spy.training_batches] == [list(range(6))] * 2


def test_shuffle_false_keeps_sample_order():
    model, spy = _spy_model()
    model.fit(np.arange(10.0), np.arange(10.0), epochs=1, batch_size=4, shuffle=False, verbose=0)
    assert [b[:, 0].tolist() for b in spy.training_batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


@pytest.mark.parametrize(("n", "batch_size", "steps"), [(10, 4, 3), (8, 4, 2), (5, 32, 1), (33, None, 2), (7, 1, 7)])
def test_batch_count_is_ceil_of_n_over_batch_size(n, batch_size, steps):
    model, spy = _spy_model()
    model.fit(np.arange(float(n)), np.zeros(n), epochs=1, batch_size=batch_size, verbose=0)
    assert len(spy.training_batches) == steps
    assert sum(len(b) for b in spy.training_batches) == n


def test_epoch_loss_is_batch_size_weighted_mean_of_batch_losses():
    x = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 30.0])
    y = np.zeros(10)
    model = tl.nn.Sequential([tl.nn.Linear(1, 1, dtype=np.float64)])
    model.set_weights([np.ones((1, 1)), np.zeros(1)])
    model.compile(optimizer=tl.optim.SGD(lr=1e-300))  # the weights stay put: losses are exact
    losses_seen = []

    class BatchLosses(tl.callbacks.Callback):
        def on_batch_end(self, batch, logs=None):
            pred = x[batch * 4 : batch * 4 + 4]
            losses_seen.append((np.mean(pred**2), len(pred)))

    history = model.fit(x, y, epochs=1, batch_size=4, shuffle=False, verbose=0, callbacks=[BatchLosses()])
    weighted = sum(loss * size for loss, size in losses_seen) / 10
    assert history.history["loss"][0] == pytest.approx(weighted)
    assert history.history["loss"][0] != pytest.approx(np.mean([loss for loss, _ in losses_seen]))
    assert history.history["loss"][0] != pytest.approx(losses_seen[-1][0])


def test_history_holds_per_epoch_lists_of_loss_metrics_and_validation():
    x = np.linspace(0, 1, 20)
    model = _model(metrics=["mae", "mse"])
    history = model.fit(x, 3 * x, epochs=4, validation_split=0.2, verbose=0)
    assert set(history.history) == {"loss", "mae", "mse", "val_loss", "val_mae", "val_mse"}
    assert all(len(values) == 4 for values in history.history.values())
    assert history.epoch == [0, 1, 2, 3] and model.history is history
    assert history.history["mse"] == pytest.approx(history.history["loss"])  # no L2: loss is the mse


def test_validation_data_is_used_instead_of_a_split():
    x = np.arange(10.0)
    model, spy = _spy_model()
    model.fit(x, x, epochs=2, validation_data=(np.array([100.0]), np.array([1.0])), validation_split=0.5, verbose=0)
    assert len(spy.training_batches[0]) == 10
    assert spy.evaluation_inputs[0][:, 0].tolist() == [100.0]


@pytest.mark.parametrize(
    ("x", "y"),
    [
        ([1.0, 2.0, 3.0], [2.0, 4.0, 6.0]),  # lists
        (np.array([1, 2, 3]), np.array([2, 4, 6])),  # integers
        (np.array([[1.0], [2.0], [3.0]], np.float64), np.array([[2.0], [4.0], [6.0]], np.float32)),
        (np.array([1.0, 2.0, 3.0], np.float32), np.array([2.0, 4.0, 6.0], np.float64)),
    ],
)
def test_inputs_as_lists_1d_2d_float32_float64(x, y):
    model = _model()
    history = model.fit(x, y, epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2
    assert model.predict(x).shape == (3, 1) and model.predict(x).dtype == np.float32


def test_predict_always_returns_n_by_outputs():
    model = _model(n_in=1, n_out=1)
    assert model.predict([20.0]).shape == (1, 1)
    assert model.predict(np.arange(5.0)).shape == (5, 1)
    assert _model(n_in=3, n_out=2).predict(np.ones((4, 3))).shape == (4, 2)


def test_y_equals_2x_plus_30_walkthrough():
    x = np.array([-10.0, 0.0, 2.0, 6.0, 12.0, 15.0])
    y = 2 * x + 30
    model = tl.nn.Sequential([tl.nn.Linear(1, 1, seed=0)])
    model.compile(loss="mse", optimizer=tl.optim.Adam(lr=0.1))
    model.fit(x, y, epochs=500, verbose=0)
    assert model.predict([20.0])[0, 0] == pytest.approx(70.0, abs=1.5)  # the tutorial printed 70.05
    kernel, bias = model.layers[0].get_weights()
    assert kernel.shape == (1, 1) and bias.shape == (1,)
    model.fit(x, y, epochs=4000, verbose=0)
    coef, intercept = tl.solvers.ols(x, y)
    assert (coef[0], intercept) == pytest.approx((2.0, 30.0))
    np.testing.assert_allclose(model.layers[0].get_weights()[0][0, 0], coef[0], atol=0.01)
    np.testing.assert_allclose(model.layers[0].get_weights()[1][0], intercept, atol=0.05)


def test_compile_by_name_uses_keras_default_learning_rates():
    expected = {"sgd": (tl.optim.SGD, 0.01), "gd": (tl.optim.SGD, 0.01), "adam": (tl.optim.Adam, 0.001)}
    expected["rmsprop"] = (tl.optim.RMSprop, 0.001)
    for name, (cls, lr) in expected.items():
        model = _model(optimizer=name)
        assert isinstance(model.compiled.optimizer, cls) and model.compiled.optimizer.lr == lr


def test_compile_binds_an_unbound_optimizer_to_the_model():
    model = tl.nn.Sequential([tl.nn.Linear(2, 1)])
    opt = tl.optim.RMSprop(lr=0.01)
    model.compile(optimizer=opt)
    assert opt.params == model.parameters()


def test_one_optimizer_compiled_into_two_models_is_refused():
    first, second = tl.nn.Sequential([tl.nn.Linear(1, 1)]), tl.nn.Sequential([tl.nn.Linear(1, 1)])
    opt = tl.optim.Adam(lr=0.1)
    first.compile(optimizer=opt)
    with pytest.raises(ValueError, match=r"Adam: this optimizer is already bound.*fresh instance"):
        second.compile(optimizer=opt)
    assert getattr(second, "compiled", None) is None
    history = first.fit([1.0, 2.0], [3.0, 5.0], epochs=3, verbose=0)  # the first model still trains
    assert len(set(history.history["loss"])) == 3


def test_compiling_again_with_the_same_parameters_is_allowed():
    model = tl.nn.Sequential([tl.nn.Linear(1, 1)])
    opt = tl.optim.SGD(model.parameters(), lr=0.1)
    model.compile(optimizer=opt)
    model.compile(optimizer=opt)
    assert model.compiled.optimizer is opt and opt.params == model.parameters()


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"optimizer": "adamw"}, ValueError, "unknown optimizer"),
        ({"loss": "huber"}, ValueError, "unknown loss"),
        ({"metrics": ["accuracy"]}, ValueError, "unknown metric"),
        ({"l2": -1.0}, ValueError, "l2 must be"),
        ({"l2": None}, ValueError, "compile: l2 must be a finite number >= 0, got None"),
        ({"l2": "0.1"}, ValueError, "compile: l2 must be a finite number >= 0, got '0.1'"),
        ({"l2": True}, ValueError, "compile: l2 must be a finite number >= 0, got True"),
        ({"l2": float("inf")}, ValueError, "compile: l2 must be a finite number >= 0, got inf"),
        ({"optimizer": object()}, TypeError, "optimizer must be"),
    ],
)
def test_compile_refuses_what_it_does_not_know(kwargs, error, words):
    with pytest.raises(error, match=words):
        tl.nn.Sequential([tl.nn.Linear(1, 1)]).compile(**kwargs)


def test_fit_before_compile_says_what_to_do():
    with pytest.raises(RuntimeError, match=r"compiled first"):
        tl.nn.Sequential([tl.nn.Linear(1, 1)]).fit([1.0], [1.0], verbose=0)


def test_l2_adds_the_weight_penalty_but_not_the_bias_everywhere():
    x, y = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 7.0]]), np.array([1.0, 2.0, 4.0])
    model = _model(n_in=2, dtype=np.float64, l2=0.5)
    model.set_weights([np.array([[1.0], [-2.0]]), np.array([3.0])])
    pred = x @ np.array([1.0, -2.0]) + 3.0
    expected = np.mean((pred - y) ** 2) + 0.5 * (1.0 + 4.0)  # the bias 3.0 is not penalised
    assert model.evaluate(x, y) == pytest.approx(expected)
    history = model.fit(x, y, epochs=1, batch_size=3, validation_data=(x, y), verbose=0)
    assert history.history["loss"][0] == pytest.approx(expected)


def test_fit_with_l2_converges_to_ridge():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 2))
    y = x @ np.array([1.5, -0.5]) + 2.0 + 0.1 * rng.normal(size=40)
    model = _model(n_in=2, dtype=np.float64, optimizer=tl.optim.SGD(lr=0.1), l2=0.2)
    model.fit(x, y, epochs=2000, batch_size=40, verbose=0)
    coef, intercept = tl.solvers.ridge(x, y, l2=0.2)
    np.testing.assert_allclose(model.layers[0].weight.data[:, 0], coef, atol=1e-8)
    np.testing.assert_allclose(model.layers[0].bias.data[0], intercept, atol=1e-8)


def test_evaluate_returns_a_float_or_a_dict_with_metrics():
    x, y = np.arange(4.0), np.arange(4.0) + 1
    plain = _model()
    assert isinstance(plain.evaluate(x, y), float)
    with_metrics = _model(metrics=["mae"])
    result = with_metrics.evaluate(x, y)
    assert set(result) == {"loss", "mae"}
    pred = with_metrics.predict(x)[:, 0]
    assert result["mae"] == pytest.approx(np.mean(np.abs(pred - y)), rel=1e-6)


PROGRESS_LINE = re.compile(
    r"^(\d+)/(\d+) \[(=+)\] - \d+s \d+(s|ms|us)/step - loss: \d+\.\d{4}( - val_loss: \d+\.\d{4})?$"
)


def test_progress_output_is_keras_format(capsys):
    x = np.arange(50.0)
    model = _model()
    model.fit(x, x + 1, epochs=3, batch_size=32, validation_split=0.2, verbose=1)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0::2] == ["Epoch 1/3", "Epoch 2/3", "Epoch 3/3"]
    for line in lines[1::2]:
        match = PROGRESS_LINE.match(line)
        assert match, line
        assert match.group(1) == match.group(2) == "2"  # 40 training samples / 32 = 2 steps
        assert len(match.group(3)) == 30 and match.group(5)


def test_progress_redraws_in_place_on_a_terminal():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    stream = Terminal()
    model = _model()
    model.fit(np.arange(10.0), np.arange(10.0), epochs=1, batch_size=2, verbose=0,
              callbacks=[tl.callbacks.ProgressBar(stream)])  # fmt: skip
    text = stream.getvalue()
    assert text.startswith("Epoch 1/1\n") and text.count("\r") == 5
    assert "1/5 [=====>" in text and "ETA" in text
    assert text.rstrip("\n").split("\r")[-1].startswith("5/5 [==============================]")


def test_verbose_zero_prints_nothing(capsys):
    _model().fit(np.arange(5.0), np.arange(5.0), epochs=3, verbose=0)
    assert capsys.readouterr().out == ""


def test_summary_prints_and_returns_a_keras_like_table(capsys):
    model = tl.nn.Sequential([tl.nn.Linear(13, 4), tl.nn.Linear(4, 1)])
    text = model.summary()
    assert capsys.readouterr().out.strip() == text.strip()
    lines = text.splitlines()
    assert lines[0] == 'Model: "sequential"'
    assert re.match(r"^ linear \(Linear\) +\(None, 4\) +56$", lines[4])
    assert re.match(r"^ linear_1 \(Linear\) +\(None, 1\) +5$", lines[5])
    assert "Total params: 61" in text and "Trainable params: 61" in text and "Non-trainable params: 0" in text


def test_summary_lists_a_layer_used_twice_once():
    shared = tl.nn.Linear(2, 2)
    text = tl.nn.Sequential([shared, shared]).summary(print_fn=None)
    lines = text.splitlines()
    assert re.match(r"^ linear \(Linear\) +\(None, 2\) +6$", lines[4])
    assert lines[5].startswith("=")  # one layer, one set of weights
    assert "Total params: 6" in text


def test_a_model_ending_in_a_reused_layer_has_that_layers_outputs():
    first, second = tl.nn.Linear(2, 3, seed=0), tl.nn.Linear(3, 2, seed=1)
    model = tl.nn.Sequential([first, second, first])
    model.compile(optimizer="sgd")
    x, y = np.ones((4, 2)), np.zeros((4, 3))
    assert model.predict(x).shape == (4, 3)
    assert len(model.fit(x, y, epochs=1, verbose=0).history["loss"]) == 1
    with pytest.raises(ValueError, match="the model has 3 output"):
        model.evaluate(x, np.zeros((4, 2)))


def test_l2_counts_a_layer_used_twice_once():
    shared = tl.nn.Linear(1, 1, dtype=np.float64)
    model = tl.nn.Sequential([shared, shared])
    model.compile(optimizer="sgd", l2=0.5)
    model.set_weights([np.array([[2.0]]), np.array([1.0])])
    x, y = np.array([1.0]), np.array([0.0])
    # (2·(2·1 + 1) + 1)² = 49, plus 0.5·2² once
    assert model.evaluate(x, y) == pytest.approx(49.0 + 2.0)
    other = tl.nn.Linear(1, 1, dtype=np.float64)
    other.weight = shared.weight  # one weight tensor in two layers: penalised once too
    model = tl.nn.Sequential([shared, other])
    model.compile(optimizer="sgd", l2=0.5)
    model.set_weights([np.array([[2.0]]), np.array([1.0]), np.array([0.0])])
    assert model.evaluate(x, y) == pytest.approx(36.0 + 2.0)  # (2·(2·1 + 1) + 0)² = 36


def test_a_callback_can_stop_training_after_the_current_batch():
    class StopAtSecondBatch(tl.callbacks.Callback):
        def on_batch_end(self, batch, logs=None):
            if batch == 1:
                self.model.stop_training = True

    model, spy = _spy_model()
    history = model.fit(np.arange(10.0), np.arange(10.0), epochs=5, batch_size=2, verbose=0,
                        callbacks=[StopAtSecondBatch()])  # fmt: skip
    assert len(spy.training_batches) == 2 and len(history.history["loss"]) == 1


def test_each_hook_calls_the_callbacks_that_define_it_and_batch_logs_are_made_for_a_reader():
    calls = []

    class BatchReader(tl.callbacks.Callback):
        def on_batch_end(self, batch, logs=None):
            calls.append(("class", batch, sorted(logs)))

    plain = tl.callbacks.Callback()
    plain.on_batch_end = lambda batch, logs=None: calls.append(("instance", batch, sorted(logs)))
    history = tl.callbacks.History()
    hooks = tl.callbacks.CallbackList([history], None, {})
    assert not hooks.wants_batch_logs and hooks._methods["on_epoch_end"] == [history.on_epoch_end]
    assert hooks._methods["on_batch_end"] == hooks._methods["on_epoch_begin"] == []
    for callbacks in ([BatchReader()], [plain]):
        assert tl.callbacks.CallbackList(callbacks, None, {}).wants_batch_logs
        _model().fit(np.arange(4.0), np.arange(4.0), epochs=1, batch_size=2, verbose=0, callbacks=callbacks)
    assert calls == [(kind, batch, ["batch", "loss", "size"]) for kind in ("class", "instance") for batch in (0, 1)]


def test_callback_hooks_run_in_order():
    calls = []

    class Recorder(tl.callbacks.Callback):
        def on_train_begin(self, logs=None):
            calls.append("train_begin")

        def on_epoch_begin(self, epoch, logs=None):
            calls.append(f"epoch_begin {epoch}")

        def on_batch_end(self, batch, logs=None):
            calls.append(f"batch_end {batch}")

        def on_epoch_end(self, epoch, logs=None):
            calls.append(f"epoch_end {epoch} {sorted(logs)}")

        def on_train_end(self, logs=None):
            calls.append("train_end")

    _model().fit(np.arange(4.0), np.arange(4.0), epochs=2, batch_size=2, validation_split=0.5, verbose=0,
                 callbacks=[Recorder()])  # fmt: skip
    assert calls == [
        "train_begin",
        "epoch_begin 0", "batch_end 0", "epoch_end 0 ['loss', 'val_loss']",
        "epoch_begin 1", "batch_end 0", "epoch_end 1 ['loss', 'val_loss']",
        "train_end",
    ]  # fmt: skip


class FakeModel:
    """Just enough of a model to drive EarlyStopping with a scripted sequence of values."""

    def __init__(self):
        self.weights, self.stop_training = 0, False

    def get_weights(self):
        return self.weights

    def set_weights(self, weights):
        self.weights = weights


def _drive_early_stopping(values, **kwargs):
    callback = tl.callbacks.EarlyStopping(**kwargs)
    model = FakeModel()
    callback.set_model(model)
    callback.on_train_begin()
    epochs_run = 0
    for epoch, value in enumerate(values):
        model.weights = epoch  # "weights" are the epoch number, to see which are restored
        callback.on_epoch_end(epoch, {"val_loss": value})
        epochs_run += 1
        if model.stop_training:
            break
    callback.on_train_end()
    return epochs_run, model.weights, callback


def test_early_stopping_waits_patience_epochs_without_improvement():
    epochs_run, _, callback = _drive_early_stopping([5.0, 4.0, 4.5, 4.2, 4.1, 3.0], patience=3)
    assert epochs_run == 5 and callback.stopped_epoch == 4  # epochs 2, 3, 4 did not beat 4.0


def test_early_stopping_patience_zero_stops_at_the_first_miss():
    assert _drive_early_stopping([5.0, 4.0, 4.0, 3.0], patience=0)[0] == 3


def test_early_stopping_improvement_must_beat_min_delta():
    # 4.95 beats 5.0 by less than min_delta = 0.1: not an improvement
    epochs_run, _, _ = _drive_early_stopping([5.0, 4.95, 4.91, 4.0], patience=2, min_delta=0.1)
    assert epochs_run == 3
    assert _drive_early_stopping([5.0, 4.95, 4.91, 4.0], patience=2)[0] == 4


def test_early_stopping_restores_the_best_weights_when_it_stops():
    _, weights, _ = _drive_early_stopping([5.0, 3.0, 4.0, 4.5, 4.8], patience=2, restore_best_weights=True)
    assert weights == 1


def test_early_stopping_restores_best_weights_even_when_patience_never_ran_out():
    epochs_run, weights, callback = _drive_early_stopping([5.0, 2.0, 3.0, 2.5], patience=5, restore_best_weights=True)
    assert epochs_run == 4 and callback.stopped_epoch is None and weights == 1


def test_early_stopping_in_fit_stops_on_a_plateau_and_restores_best_weights():
    # training pulls the weight towards y = x; the validation data want y = -x, so val_loss rises
    x = np.linspace(-1, 1, 20)
    model = _model(optimizer=tl.optim.SGD(lr=0.05))
    model.set_weights([np.array([[-1.0]]), np.zeros(1)])
    initial = model.get_weights()
    stopper = tl.callbacks.EarlyStopping(patience=3, restore_best_weights=True)
    history = model.fit(x, x, epochs=100, validation_data=(x, -x), verbose=0, callbacks=[stopper])
    assert len(history.history["val_loss"]) == 4  # epoch 0 is the best; 3 more without improvement
    best = int(np.argmin(history.history["val_loss"]))
    assert best == 0 and stopper.stopped_epoch == 3
    np.testing.assert_allclose(model.predict(x)[:, 0], -x * 1.0, atol=0.3)  # back at epoch 0's weights
    assert not np.allclose(model.get_weights()[0], initial[0])  # epoch 0 did take steps


def test_early_stopping_on_a_missing_key_says_what_is_logged():
    with pytest.raises(KeyError, match="val_loss needs validation_split"):
        _model().fit([1.0, 2.0], [1.0, 2.0], epochs=2, verbose=0, callbacks=[tl.callbacks.EarlyStopping()])


def test_gradient_norm_stop_ends_training_at_a_flat_point():
    rng = np.random.default_rng(1)
    x = rng.normal(size=50)
    y = 3 * x - 1 + 0.1 * rng.normal(size=50)
    model = _model(dtype=np.float64, optimizer=tl.optim.SGD(lr=0.2))
    stopper = tl.callbacks.GradientNormStop(tol=1e-6)
    history = model.fit(x, y, epochs=10_000, batch_size=50, verbose=0, callbacks=[stopper])
    norms = history.history["grad_norm"]
    assert norms[-1] < 1e-6 <= norms[-2] and len(norms) < 1000 and stopper.stopped_epoch == len(norms) - 1
    coef, intercept = tl.solvers.ols(x, y)
    np.testing.assert_allclose(model.layers[0].weight.data[0, 0], coef[0], atol=1e-5)
    np.testing.assert_allclose(model.layers[0].bias.data[0], intercept, atol=1e-5)


def test_predict_and_evaluate_honour_batch_size_and_verbose(capsys):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(10, 2)), rng.normal(size=10)
    model = tl.nn.Sequential([tl.nn.Linear(2, 1, seed=0, dtype=np.float64)])
    model.compile(optimizer="sgd", metrics=["mae"], l2=0.1)
    whole = model.predict(x)
    np.testing.assert_allclose(model.predict(x, batch_size=3), whole, rtol=1e-15)
    at_once = model.evaluate(x, y)
    in_batches = model.evaluate(x, y, batch_size=4)  # sizes 4, 4, 2: Keras' size-weighted average
    for name in ("loss", "mae"):
        assert in_batches[name] == pytest.approx(at_once[name], rel=1e-12)
    capsys.readouterr()
    model.predict(x, batch_size=3, verbose=1)
    assert re.fullmatch(r"4/4 \[=+\] - \d+s \d+(us|ms)/step\n", capsys.readouterr().out)
    model.evaluate(x, y, batch_size=5, verbose=1)
    assert re.fullmatch(
        r"2/2 \[=+\] - \d+s \d+(us|ms)/step - loss: \d+\.\d{4} - mae: \d+\.\d{4}\n", capsys.readouterr().out
    )
    model.predict(x)
    model.evaluate(x, y)
    assert capsys.readouterr().out == ""  # verbose=0 by default: nothing printed


def test_a_divergence_warning_points_at_the_users_line_through_model_fit():
    model = tl.nn.Sequential([tl.nn.Linear(1, 1, seed=0)])
    model.compile(optimizer=tl.optim.SGD(lr=1e200))
    with pytest.warns(RuntimeWarning, match="training diverged") as warned:
        model.fit(np.arange(4.0), np.arange(4.0), epochs=2, verbose=0, raise_on_divergence=False)
    if "MUTANT_UNDER_TEST" not in os.environ:  # (mutmut's trampolines add frames of their own)
        assert warned[0].filename == __file__


# ===== the fine print: exact messages, defaults, boundaries, printed text (was test_training_details.py) =====


def _float64_model(n_in=1, n_out=1, optimizer="sgd", seed=0, dtype=np.float64, bias=True, **compile_kwargs):
    model = tl.nn.Sequential([tl.nn.Linear(n_in, n_out, seed=seed, dtype=dtype, bias=bias)])
    model.compile(optimizer=optimizer, **compile_kwargs)
    return model


class LabelledFakeModel:
    """Just enough of a model to drive a callback with scripted logs; its "weights" are a label."""

    def __init__(self):
        self.weights, self.stop_training = None, False

    def get_weights(self):
        return self.weights

    def set_weights(self, weights):
        self.weights = weights


def _drive(callback, values, key="val_loss"):
    """Run `callback` over epochs whose logged `key` takes `values`; the weights of epoch i are i.

    Returns (epochs run, weights at the end)."""
    model = LabelledFakeModel()
    callback.set_model(model)
    callback.on_train_begin({})
    epochs_run = 0
    for epoch, value in enumerate(values):
        model.weights = epoch
        callback.on_epoch_end(epoch, {key: value})
        epochs_run += 1
        if model.stop_training:
            break
    callback.on_train_end({})
    return epochs_run, model.weights


# ----- summary -----


class Scale(tl.nn.Module):
    """A layer without `output_shape`: summary cannot know its shape."""

    def __init__(self):
        self.factor = tl.Tensor(np.ones(3), requires_grad=True)

    def forward(self, x):
        return x * self.factor


SUMMARY = """\
Model: "sequential"
_________________________________________________________________
 Layer (type)                Output Shape              Param #
=================================================================
 linear (Linear)             (None, 3)                 9
 scale (Scale)               (None, None)              3
 linear_1 (Linear)           (None, 1000)              4000
=================================================================
Total params: 4,012
Trainable params: 4,012
Non-trainable params: 0
_________________________________________________________________"""


def test_summary_is_the_exact_keras_table_and_unknown_shapes_read_none(capsys):
    model = tl.nn.Sequential([tl.nn.Linear(2, 3), Scale(), tl.nn.Linear(3, 1000)])
    assert model.summary() == SUMMARY
    assert capsys.readouterr().out == SUMMARY + "\n"


# ----- the advice when training diverges -----


ONE_LAYER_ADVICE = (
    "Lower the learning rate (now 1e+200): for plain gradient descent on this data the largest stable "
    "learning rate is {bound} (tl.solvers.stable_learning_rate); or standardise the features"
)
DIVERGED_AT_STEP_2 = (
    "fit: training diverged at epoch 2, batch 1: the loss is inf at step 2; the parameters were not updated. "
)


def _diverge(model):
    x = np.arange(4.0)
    with pytest.raises(tl.optim.TrainingDivergedError) as caught:
        model.fit(x, 2 * x, epochs=3, verbose=0)
    return str(caught.value)


def test_divergence_advice_for_one_linear_layer_gives_the_stable_learning_rate():
    message = _diverge(_float64_model(optimizer=tl.optim.SGD(lr=1e200)))
    assert message == DIVERGED_AT_STEP_2 + ONE_LAYER_ADVICE.format(bound="0.238")


def test_divergence_advice_counts_the_l2_term_in_the_stable_learning_rate():
    message = _diverge(_float64_model(optimizer=tl.optim.SGD(lr=1e200), l2=0.5))
    assert message == DIVERGED_AT_STEP_2 + ONE_LAYER_ADVICE.format(bound="0.216")


def test_divergence_advice_for_a_layer_without_bias_leaves_the_intercept_out():
    message = _diverge(_float64_model(optimizer=tl.optim.SGD(lr=1e200), bias=False))
    assert message == DIVERGED_AT_STEP_2 + ONE_LAYER_ADVICE.format(bound="0.286")


def test_divergence_advice_for_several_layers_is_to_lower_the_rate_or_standardise():
    model = tl.nn.Sequential([tl.nn.Linear(1, 1, seed=0, dtype=np.float64) for _ in range(2)])
    model.compile(optimizer=tl.optim.SGD(lr=1e200))
    message = _diverge(model)
    assert message == DIVERGED_AT_STEP_2 + "Lower the learning rate (now 1e+200) or standardise the features"


def test_divergence_advice_for_a_loss_other_than_mse_has_no_stable_rate():
    model = tl.nn.Sequential([tl.nn.Linear(1, 1, seed=0)])  # float32: a step of 1e39 overflows
    model.compile(loss="mae", optimizer=tl.optim.SGD(lr=1e39))
    assert _diverge(model) == (
        "fit: training diverged at epoch 1, batch 1: parameter 0 (shape (1, 1)) became non-finite at step 1; "
        "the parameters were put back to their values before that step. "
        "Lower the learning rate (now 1e+39) or standardise the features"
    )


# ----- History -----


def test_history_repr_shows_the_epoch_count_and_each_last_value_to_six_decimals():
    history = tl.callbacks.History()
    assert repr(history) == "History(epochs=0, last={})"
    history.on_epoch_end(0, {"loss": 3.0, "val_loss": 9.0})
    history.on_epoch_end(1, {"loss": 2.0, "val_loss": 8.0})
    history.on_epoch_end(2, {"loss": 1.23456789, "val_loss": 7.5})
    assert repr(history) == "History(epochs=3, last={'loss': 1.234568, 'val_loss': 7.5})"


# ----- EarlyStopping -----


def test_early_stopping_defaults_stop_at_the_first_miss_and_keep_the_last_weights():
    callback = tl.callbacks.EarlyStopping()
    assert (callback.monitor, callback.patience, callback.min_delta, callback.mode) == ("val_loss", 0, 0.0, "min")
    assert _drive(callback, [5.0, 6.0, 4.0]) == (2, 1)
    assert callback.stopped_epoch == 1 and callback.best_epoch == 0


def test_early_stopping_patience_zero_can_stop_at_epoch_one():
    assert _drive(tl.callbacks.EarlyStopping(patience=0), [5.0, 6.0, 4.0])[0] == 2


def test_early_stopping_never_stops_at_epoch_zero():
    callback = tl.callbacks.EarlyStopping(patience=0)
    assert _drive(callback, [np.nan, 6.0, 7.0]) == (3, 2)  # epoch 0 misses yet goes on; 1 improves; 2 misses
    assert callback.stopped_epoch == 2


def test_early_stopping_counts_a_first_epoch_that_is_not_a_number_as_a_miss():
    callback = tl.callbacks.EarlyStopping(patience=3)
    assert _drive(callback, [np.nan, np.nan, np.nan, np.nan]) == (3, 2)  # misses 1, 2, 3 at epoch 2
    assert callback.stopped_epoch == 2 and callback.best_epoch is None


def test_early_stopping_restores_the_first_epochs_weights_when_no_epoch_improved():
    callback = tl.callbacks.EarlyStopping(patience=5, restore_best_weights=True)
    assert _drive(callback, [np.nan, np.nan, np.nan]) == (3, 0)
    assert callback.best_epoch is None and callback.stopped_epoch is None


def test_early_stopping_reads_restore_best_weights_when_training_ends():
    callback = tl.callbacks.EarlyStopping(patience=5, restore_best_weights=True)
    model = LabelledFakeModel()
    callback.set_model(model)
    callback.on_train_begin({})
    for epoch, value in enumerate([1.0, 2.0]):
        model.weights = epoch
        callback.on_epoch_end(epoch, {"val_loss": value})
    callback.restore_best_weights = False
    callback.on_train_end({})
    assert model.weights == 1


def test_early_stopping_mode_max_stops_when_the_value_no_longer_rises():
    callback = tl.callbacks.EarlyStopping(monitor="r2", mode="max", patience=0, restore_best_weights=True)
    assert _drive(callback, [0.1, 0.5, 0.5, 0.9], key="r2") == (3, 1)  # equal to the best is not better
    assert callback.best == 0.5 and callback.best_epoch == 1 and callback.stopped_epoch == 2


def test_early_stopping_mode_max_improvement_must_beat_min_delta():
    callback = tl.callbacks.EarlyStopping(monitor="r2", mode="max", patience=0, min_delta=0.1)
    assert _drive(callback, [0.5, 0.55, 0.9], key="r2") == (2, 1)
    callback = tl.callbacks.EarlyStopping(monitor="r2", mode="max", patience=0, min_delta=-0.1)  # |min_delta|
    assert _drive(callback, [0.5, 0.55, 0.9], key="r2") == (2, 1)


def test_early_stopping_refuses_an_unknown_mode_with_the_choices():
    with pytest.raises(ValueError) as caught:
        tl.callbacks.EarlyStopping(mode="auto")
    assert str(caught.value) == "EarlyStopping: mode must be 'min' or 'max', got 'auto'"


def test_early_stopping_refuses_a_negative_patience_by_name():
    with pytest.raises(ValueError) as caught:
        tl.callbacks.EarlyStopping(patience=-1)
    assert str(caught.value) == "EarlyStopping: patience must be an integer >= 0, got -1"


def test_early_stopping_on_a_missing_key_names_it_and_what_is_logged():
    with pytest.raises(KeyError) as caught:
        _float64_model().fit([1.0, 2.0], [1.0, 2.0], epochs=2, verbose=0, callbacks=[tl.callbacks.EarlyStopping()])
    assert caught.value.args[0] == (
        "EarlyStopping: monitor 'val_loss' is not among the logged values ['loss']; "
        "val_loss needs validation_split or validation_data"
    )


def test_early_stopping_best_epoch_and_stopped_epoch_start_as_none():
    callback = tl.callbacks.EarlyStopping()
    callback.on_train_begin({})
    assert callback.best_epoch is None and callback.stopped_epoch is None and callback.best_weights is None


# ----- GradientNormStop -----


def test_gradient_norm_stop_default_tolerance_is_1e_minus_4():
    callback = tl.callbacks.GradientNormStop()
    assert callback.tol == 1e-4 and callback.stopped_epoch is None
    assert _drive(callback, [1e-3, 2e-4, 0.99e-4, 1e-9], key="grad_norm") == (3, 2)
    assert callback.stopped_epoch == 2


def test_gradient_norm_stop_needs_the_norm_strictly_below_tol():
    callback = tl.callbacks.GradientNormStop(tol=0.5)
    assert _drive(callback, [1.0, 0.5, 0.25], key="grad_norm") == (3, 2)


@pytest.mark.parametrize(
    ("tol", "message"),
    [
        (0.0, "GradientNormStop: tol must be a finite number > 0, got 0.0"),
        (-1.0, "GradientNormStop: tol must be a finite number > 0, got -1.0"),
        (np.inf, "GradientNormStop: tol must be a finite number > 0, got inf"),
        ("0.1", "GradientNormStop: tol must be a finite number > 0, got '0.1'"),
    ],
)
def test_gradient_norm_stop_refuses_a_tolerance_that_is_not_positive(tol, message):
    with pytest.raises(ValueError) as caught:
        tl.callbacks.GradientNormStop(tol=tol)
    assert str(caught.value) == message


# ----- the progress line -----


def test_progress_bar_draws_done_over_steps_with_an_arrow_while_unfinished():
    assert tl.callbacks.progress_bar(0, 3) == "0/3 [..............................]"
    assert tl.callbacks.progress_bar(1, 3) == "1/3 [=========>....................]"
    assert tl.callbacks.progress_bar(3, 3, width=10) == "3/3 [==========]"
    assert tl.callbacks.progress_bar(2, 12, width=10) == " 2/12 [>.........]"


def test_logs_show_four_decimals_above_1e_minus_3_and_scientific_notation_at_or_below():
    logs = {"loss": 0.001, "mae": -0.0005, "val_loss": 12.34567, "r2": -0.5}
    assert tl.callbacks.format_logs(logs) == " - loss: 1.0000e-03 - mae: -5.0000e-04 - val_loss: 12.3457 - r2: -0.5000"


@pytest.mark.parametrize(
    ("seconds", "per_step"),
    [
        (2.0, "2s/step"),
        (1.0, "1s/step"),
        (0.9, "900ms/step"),
        (1e-3, "1ms/step"),
        (0.0005004999, "500us/step"),
        (0.0, "0us/step"),
    ],
)
def test_time_per_step_is_in_seconds_milliseconds_or_microseconds(seconds, per_step):
    line = tl.callbacks.progress_line(1, 1, seconds, {})
    assert line == f"1/1 [==============================] - {seconds:.0f}s {per_step}"


def test_progress_line_divides_the_time_by_the_steps_done_and_takes_the_bar_width():
    assert tl.callbacks.progress_line(2, 4, 1.0, {"loss": 2.5}) == (
        "2/4 [==============>...............] - 1s 500ms/step - loss: 2.5000"
    )
    assert tl.callbacks.progress_line(0, 5, 3.0, {}, width=10) == "0/5 [..........] - 3s 3s/step"


class Terminal(io.StringIO):
    def isatty(self):
        return True


class Clock:
    """A stand-in for `time` whose perf_counter reads the given instants, one per call."""

    def __init__(self, *instants):
        self.instants = iter(instants)

    def perf_counter(self):
        return next(self.instants)


def test_progress_bar_on_a_terminal_redraws_with_eta_then_ends_with_the_epochs_line(monkeypatch):
    monkeypatch.setattr(tl.callbacks, "time", Clock(100.0, 102.0, 104.0, 106.0, 112.0))
    bar = tl.callbacks.ProgressBar(Terminal())
    bar.params = {"epochs": 3, "steps": 4, "samples": 8, "verbose": 1}
    bar.on_epoch_begin(1, {})
    bar.on_batch_end(0, {"batch": 0, "size": 2, "loss": 2.5})  # 2 s for 1 step: 3 more take 6 s
    bar.on_batch_end(1, {})  # 4 s for 2 steps: 2 more take 4 s
    bar.on_batch_end(2, None)  # 6 s for 3 steps
    bar.on_batch_end(3, {"loss": 1.0})  # the last batch: the epoch's line follows
    bar.on_epoch_end(1, {"loss": 1.5, "grad_norm": 0.25, "val_loss": 2.0})  # 12 s for 4 steps
    assert bar.stream.getvalue() == (
        "Epoch 2/3\n"
        "\r1/4 [======>.......................] - ETA: 6s - loss: 2.5000"
        "\r2/4 [==============>...............] - ETA: 4s"
        "\r3/4 [=====================>........] - ETA: 2s"
        "\r4/4 [==============================] - 12s 3s/step - loss: 1.5000 - val_loss: 2.0000\n"
    )


def test_progress_bar_draws_at_its_width(monkeypatch):
    monkeypatch.setattr(tl.callbacks, "time", Clock(0.0, 1.0, 2.0))
    bar = tl.callbacks.ProgressBar(Terminal())
    bar.width = 10
    bar.params = {"epochs": 1, "steps": 2, "samples": 2, "verbose": 1}
    bar.on_epoch_begin(0, {})
    bar.on_batch_end(0, {"loss": 1.0})
    bar.on_batch_end(1, {"loss": 1.0})
    bar.on_epoch_end(0, {"loss": 1.0})
    assert bar.stream.getvalue() == (
        "Epoch 1/1\n\r1/2 [====>.....] - ETA: 1s - loss: 1.0000\r2/2 [==========] - 2s 1s/step - loss: 1.0000\n"
    )


def test_progress_bar_for_an_epoch_without_batches_shows_none_done(monkeypatch):
    monkeypatch.setattr(tl.callbacks, "time", Clock(5.0, 5.0))
    stream = io.StringIO()
    bar = tl.callbacks.ProgressBar(stream)
    bar.params = {"epochs": 1, "steps": 3, "samples": 3, "verbose": 1}
    bar.on_epoch_begin(0, {})
    bar.on_epoch_end(0, {})
    assert stream.getvalue() == "Epoch 1/1\n0/3 [..............................] - 0s 0us/step\n"


# ----- what the boundaries refuse, word for word -----


def _linear(n_in=1, n_out=1):
    return tl.nn.Sequential([tl.nn.Linear(n_in, n_out, seed=0)])


def _compiled(n_in=1, n_out=1):
    model = _linear(n_in, n_out)
    model.compile()
    return model


def _fit(**kwargs):
    return lambda: _compiled().fit([1.0, 2.0], [1.0, 2.0], verbose=0, **kwargs)


NOT_COMPILED = "the model must be compiled first: model.compile(loss='mse', optimizer='adam')"


NAMES = "['mae', 'mean_absolute_error', 'mean_squared_error', 'mse']"
METRIC_NAMES = "['mae', 'mean_absolute_error', 'mean_squared_error', 'mse', 'r2', 'r2_score']"


REFUSED = [
    (lambda: _linear().compile(loss="huber"), ValueError,
     f"compile: unknown loss 'huber'; choose one of {NAMES} or pass a function"),
    (lambda: _linear().compile(optimizer="adamw"), ValueError,
     "compile: unknown optimizer 'adamw'; choose one of ['adam', 'gd', 'newton', 'rmsprop', 'sgd']"),
    (lambda: _linear().compile(optimizer=object()), TypeError,
     "compile: optimizer must be a name or a tl.optim optimizer, got object"),
    (lambda: _linear().compile(metrics=["accuracy"]), ValueError,
     f"compile: unknown metric 'accuracy'; choose from {METRIC_NAMES}"),
    (lambda: _linear().compile(metrics="accuracy"), ValueError,
     f"compile: unknown metric 'accuracy'; choose from {METRIC_NAMES}"),
    (lambda: _linear().compile(l2=-1.0), ValueError, "compile: l2 must be a finite number >= 0, got -1.0"),
    (lambda: tl.nn.Sequential([]).compile(), ValueError, "compile: the model has no trainable parameters"),
    (lambda: _linear().evaluate([1.0], [1.0]), RuntimeError, f"evaluate: {NOT_COMPILED}"),
    (lambda: _linear().fit([1.0], [1.0]), RuntimeError, f"fit: {NOT_COMPILED}"),
    (lambda: tl.nn.Sequential([]).predict([1.0]), ValueError,
     "predict: the model has no parameters (no layers with weights), so nothing to compute; "
     "give it layers, e.g. tl.nn.Sequential([tl.nn.Linear(1, 1)])"),
    (lambda: _linear().predict(1.0), ValueError, "predict: x has shape (); it must hold at least one sample"),
    (lambda: _linear().predict([]), ValueError, "predict: x has shape (0,); it must hold at least one sample"),
    (lambda: _linear().predict(np.ones((2, 1, 1))), ValueError,
     "predict: x has shape (2, 1, 1); expected (n,) or (n, features)"),
    (lambda: _linear().predict(["a"]), TypeError, "predict: x must hold real numbers, got an array of dtype <U1"),
    (lambda: _linear(3).predict(np.ones((3, 2))), ValueError,
     "predict: x has shape (3, 2), 2 feature(s) per sample, but the model takes 3"),
    (lambda: _linear(3).predict(np.ones(3)), ValueError,
     "predict: x has shape (3, 1), 1 feature(s) per sample, but the model takes 3; "
     "a 1-D x is read as n samples of one feature"),
    (lambda: _compiled().predict([1.0, 2.0], batch_size=0), ValueError,
     "predict: batch_size must be an integer >= 1, got 0"),
    (lambda: _compiled().evaluate([1.0, 2.0], [1.0, 2.0], batch_size=0), ValueError,
     "evaluate: batch_size must be an integer >= 1, got 0"),
    (lambda: _compiled().evaluate([1.0, 2.0], [1.0]), ValueError,
     "evaluate: x has 2 samples (shape (2, 1)) but y has 1 (shape (1, 1))"),
    (lambda: _compiled().fit([1.0, 2.0], [1.0]), ValueError,
     "fit: x has 2 samples (shape (2, 1)) but y has 1 (shape (1, 1))"),
    (lambda: _compiled().fit([1.0, 2.0], [[1.0, 2.0], [1.0, 2.0]]), ValueError,
     "fit: y has shape (2, 2) but the model has 1 output(s)"),
    (lambda: _compiled().fit(["a"], [1.0]), TypeError, "fit: x must hold real numbers, got an array of dtype <U1"),
    (lambda: _compiled().fit([1.0], ["a"]), TypeError, "fit: y must hold real numbers, got an array of dtype <U1"),
    (lambda: _compiled().fit([1.0], [np.nan]), ValueError,
     "fit: y (shape (1,)) has non-finite values: the first is nan at index (0,); remove or impute such samples first"),
    (lambda: _compiled().fit([1.0], []), ValueError, "fit: y has shape (0,); it must hold at least one sample"),
    (lambda: _compiled().fit([1.0], [[[1.0]]]), ValueError,
     "fit: y has shape (1, 1, 1); expected (n,) or (n, features)"),
    (_fit(epochs=0), ValueError, "fit: epochs must be an integer >= 1, got 0"),
    (_fit(batch_size=0), ValueError, "fit: batch_size must be an integer >= 1, got 0"),
    (
        _fit(validation_data=[1.0]),
        ValueError,
        "fit: validation_data must be a pair (x_val, y_val) or a triple (x_val, y_val, w_val)",
    ),
    (
        _fit(validation_data=([1.0], [1.0], [1.0], [1.0])),
        ValueError,
        "fit: validation_data must be a pair (x_val, y_val) or a triple (x_val, y_val, w_val)",
    ),
    (_fit(validation_data=([1.0], [1.0, 2.0])), ValueError,
     "fit (validation_data): x has 1 samples (shape (1, 1)) but y has 2 (shape (2, 1))"),
    (_fit(callbacks=tl.callbacks.EarlyStopping()), TypeError,
     "fit: callbacks must be a list of tl.callbacks.Callback, got one EarlyStopping; "
     "wrap it in a list: callbacks=[...]"),
    (_fit(callbacks={}), TypeError, "fit: callbacks must be a list of tl.callbacks.Callback, got a dict"),
    (_fit(callbacks=[tl.callbacks.History(), 3]), TypeError,
     "fit: callbacks[1] is a int, not a tl.callbacks.Callback (subclass it and override the hooks you need)"),
]  # fmt: skip


@pytest.mark.parametrize(("call", "error", "message"), REFUSED)
def test_each_refusal_says_what_was_expected_and_what_was_given(call, error, message):
    with pytest.raises(error) as caught:
        call()
    assert type(caught.value) is error and str(caught.value) == message


# ----- data at the boundary -----


def test_samples_take_the_models_dtype_and_become_columns():
    model = _linear()  # float32
    x, y = tl.training.as_samples(model, np.array([1.0, 2.0]), np.array([1, 2]))
    assert (x.dtype, y.dtype, x.shape, y.shape) == (np.float32, np.float32, (2, 1), (2, 1))
    assert model.predict(np.array([1.0, 2.0])).dtype == np.float32
    with pytest.raises(ValueError) as caught:
        tl.training.as_samples(model, [1.0, 2.0], [1.0])
    assert str(caught.value) == "fit: x has 2 samples (shape (2, 1)) but y has 1 (shape (1, 1))"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda model: model.predict([1e300]),
         "predict: x (shape (1,)) has values beyond float32: the first is 1e+300 at index (0,); "
         "rescale the data first"),
        (lambda model: tl.training.as_samples(model, [1.0], [1e300]),
         "fit: y (shape (1,)) has values beyond float32: the first is 1e+300 at index (0,); rescale the data first"),
    ],
)  # fmt: skip
def test_values_beyond_a_float32_models_range_are_refused(call, message):
    with pytest.raises(ValueError) as caught:
        call(_linear())
    assert str(caught.value) == message


def test_the_output_count_follows_the_layers_as_they_run():
    first, second = tl.nn.Linear(2, 3, seed=0), tl.nn.Linear(3, 2, seed=1)
    model = tl.nn.Sequential([first, second, first])
    model.compile(optimizer="sgd")
    assert model.evaluate(np.ones((4, 2)), np.zeros((4, 3))) > 0
    with pytest.raises(ValueError) as caught:
        model.evaluate(np.ones((4, 2)), np.zeros((4, 2)))
    assert str(caught.value) == "evaluate: y has shape (4, 2) but the model has 3 output(s)"


class Unflatten(tl.nn.Module):
    """(n, 6) → (n, 2, 3): the model's outputs are the last axis of its output shape."""

    def forward(self, x):
        raise AssertionError("not reached: the targets are refused first")

    def output_shape(self, input_shape):
        return (*input_shape[:-1], 2, 3)


def test_the_output_count_is_the_last_axis_of_the_output_shape():
    model = tl.nn.Sequential([tl.nn.Linear(2, 6), Unflatten()])
    model.compile()
    with pytest.raises(ValueError) as caught:
        model.evaluate(np.ones((4, 2)), np.zeros((4, 2)))
    assert str(caught.value) == "evaluate: y has shape (4, 2) but the model has 3 output(s)"


class Doubler(tl.nn.Module):
    """A layer without output_shape: the output count falls back to the last Linear's."""

    def __init__(self):
        self.factor = tl.Tensor(np.array(2.0), requires_grad=True)

    def forward(self, x):
        return x * self.factor


def test_the_output_count_without_output_shapes_is_the_last_linear_layers():
    model = tl.nn.Sequential([tl.nn.Linear(2, 3, seed=0), Doubler(), tl.nn.Linear(3, 2, seed=1), Doubler()])
    model.compile()
    assert model.evaluate(np.ones((4, 2)), np.zeros((4, 2))) > 0
    with pytest.raises(ValueError) as caught:
        model.evaluate(np.ones((4, 2)), np.zeros((4, 3)))
    assert str(caught.value) == "evaluate: y has shape (4, 3) but the model has 2 output(s)"


def test_the_output_count_without_output_shapes_is_that_of_the_last_of_several_linear_layers():
    layers = [tl.nn.Linear(2, 3, seed=0), Doubler(), tl.nn.Linear(3, 4, seed=1), tl.nn.Linear(4, 5, seed=2)]
    model = tl.nn.Sequential(layers)
    model.compile()
    assert model.evaluate(np.ones((4, 2)), np.zeros((4, 5))) > 0


def test_a_model_without_linear_layers_takes_any_number_of_features_and_outputs():
    model = Doubler()
    model.compile(optimizer="sgd")
    np.testing.assert_array_equal(model.predict(np.ones((2, 3))), np.full((2, 3), 2.0))
    assert model.evaluate(np.ones((2, 3)), np.full((2, 3), 2.0)) == 0.0
    assert model.evaluate([1.0, 2.0], [2.0, 4.0]) == 0.0


# ----- compile -----


def test_compile_defaults_are_mse_and_adam_without_metrics_or_l2():
    model = _linear()
    tl.training.compile(model)
    compiled = model.compiled
    assert compiled.loss is tl.losses.mse and compiled.metrics == {} and compiled.l2 == 0.0
    assert type(compiled.optimizer) is tl.optim.Adam and compiled.optimizer.lr == 0.001


def test_compile_reads_optimizer_names_in_any_case():
    model = _linear()
    model.compile(optimizer="RMSprop")
    assert type(model.compiled.optimizer) is tl.optim.RMSprop and model.compiled.optimizer.lr == 0.001


def test_compile_takes_loss_and_metric_aliases_and_a_single_metric_name():
    model = _linear()
    model.compile(loss="mean_absolute_error", metrics="mean_squared_error")
    assert model.compiled.loss is tl.losses.mae and model.compiled.metrics == {"mse": tl.losses.mse}
    model.compile(loss="mae", metrics=("mean_absolute_error", "mse"))
    assert model.compiled.metrics == {"mae": tl.losses.mae, "mse": tl.losses.mse}


def test_compile_keeps_a_loss_function_and_penalises_only_the_weights():
    def loss(pred, y):
        return tl.losses.mae(pred, y)

    first, second = tl.nn.Linear(2, 3), tl.nn.Linear(3, 1)
    model = tl.nn.Sequential([first, second])
    model.compile(loss=loss, l2=1)
    compiled = model.compiled
    assert compiled.loss is loss and compiled.l2 == 1.0 and type(compiled.l2) is float
    assert compiled.penalized == [first.weight, second.weight] and compiled.optimizer.params == model.parameters()


def test_without_l2_the_objective_is_the_loss_alone():
    model = _float64_model()
    model.set_weights([np.array([[2.0]]), np.array([1.0])])
    compiled = model.compiled
    assert compiled.objective(tl.Tensor(np.array([[3.0]])), np.array([[1.0]])).item() == 4.0
    model.compile(optimizer="sgd", l2=0.5)
    assert model.compiled.objective(tl.Tensor(np.array([[3.0]])), np.array([[1.0]])).item() == 4.0 + 0.5 * 4.0


# ----- fit -----


class Recorder(tl.callbacks.Callback):
    """Records every hook's arguments, copied."""

    def __init__(self):
        self.calls = []

    def on_train_begin(self, logs=None):
        self.calls.append(("train_begin", logs, self.model.stop_training))

    def on_epoch_begin(self, epoch, logs=None):
        self.calls.append(("epoch_begin", epoch, logs))

    def on_batch_end(self, batch, logs=None):
        self.calls.append(("batch_end", batch, dict(logs)))

    def on_epoch_end(self, epoch, logs=None):
        self.calls.append(("epoch_end", epoch, dict(logs)))

    def on_train_end(self, logs=None):
        self.calls.append(("train_end", logs))


def test_fit_gives_callbacks_the_run_parameters_and_the_logs_of_each_hook():
    x = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0])
    model = _float64_model(metrics=["mae"])
    model.set_weights([np.ones((1, 1)), np.zeros(1)])
    model.compile(optimizer=tl.optim.SGD(lr=1e-300), metrics=["mae"])  # the weights stay put
    model.stop_training = True  # left over from an earlier run: fit starts afresh
    recorder = Recorder()
    history = model.fit(x, x + 1, epochs=2, batch_size=3, validation_split=0.25, shuffle=False, verbose=0,
                        callbacks=(recorder,))  # fmt: skip
    assert recorder.params == {"epochs": 2, "steps": 2, "samples": 6, "verbose": 0}
    assert recorder.model is model
    epoch_logs = {"loss": 1.0, "mae": 1.0, "val_loss": 1.0, "val_mae": 1.0}
    per_epoch = [
        ("batch_end", 0, {"batch": 0, "size": 3, "loss": 1.0}),
        ("batch_end", 1, {"batch": 1, "size": 3, "loss": 1.0}),
    ]
    assert recorder.calls == [
        ("train_begin", {}, False),
        ("epoch_begin", 0, {}), *per_epoch, ("epoch_end", 0, epoch_logs),
        ("epoch_begin", 1, {}), *per_epoch, ("epoch_end", 1, epoch_logs),
        ("train_end", {}),
    ]  # fmt: skip
    assert history.history == {key: [value, value] for key, value in epoch_logs.items()}


def test_fit_batch_logs_carry_the_running_size_weighted_mean_loss():
    x = np.array([1.0, 1.0, 1.0, 3.0, 3.0])
    model = _float64_model()
    model.set_weights([np.ones((1, 1)), np.zeros(1)])
    model.compile(optimizer=tl.optim.SGD(lr=1e-300), metrics="mae")
    recorder = Recorder()
    history = model.fit(x, np.zeros(5), batch_size=3, shuffle=False, verbose=0, callbacks=[recorder])
    assert [call[2] for call in recorder.calls if call[0] == "batch_end"] == [
        {"batch": 0, "size": 3, "loss": 1.0},
        {"batch": 1, "size": 2, "loss": (3 * 1.0 + 2 * 9.0) / 5},
    ]
    assert history.history == {"loss": [(3 * 1.0 + 2 * 9.0) / 5], "mae": [(3 * 1.0 + 2 * 3.0) / 5]}


def test_fit_defaults_to_one_epoch_of_batches_of_32_with_the_progress_line(capsys):
    x = np.arange(33.0)
    recorder = Recorder()
    history = tl.training.fit(_float64_model(), x, x, callbacks=[recorder])
    assert recorder.params == {"epochs": 1, "steps": 2, "samples": 33, "verbose": 1}
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[0] == "Epoch 1/1"
    assert lines[1].startswith("2/2 [==============================] - ")
    assert history.epoch == [0]
    tl.training.fit(_float64_model(), x, x, batch_size=None, verbose=0, callbacks=[recorder])
    assert recorder.params["steps"] == 2


def test_fit_with_verbose_zero_prints_nothing(capsys):
    tl.training.fit(_float64_model(), [1.0, 2.0], [1.0, 2.0], epochs=2, verbose=0)
    assert capsys.readouterr().out == ""


class Inputs(tl.nn.Module):
    """y = x · weight, recording the inputs of every call."""

    def __init__(self):
        self.weight = tl.Tensor(np.ones(1), requires_grad=True)
        self.seen = []

    def forward(self, x):
        self.seen.append(x.data[:, 0].tolist())
        return x * self.weight


def test_fit_shuffles_by_default_and_the_seed_makes_it_reproducible():
    def batches(seed):
        model = Inputs()
        model.compile(optimizer=tl.optim.SGD(lr=1e-300))
        tl.training.fit(model, np.arange(6.0), np.zeros(6), epochs=2, batch_size=2, seed=seed, verbose=0)
        return model.seen

    first_epoch = batches(3)[:3]
    assert batches(3) == batches(3) != batches(4)
    assert sorted(i for batch in first_epoch for i in batch) == list(range(6))
    assert first_epoch != [[0, 1], [2, 3], [4, 5]]


def test_one_batch_of_exactly_all_samples_is_not_shuffled():
    model = Inputs()
    model.compile(optimizer=tl.optim.SGD(lr=1e-300))
    model.fit(np.arange(5.0), np.zeros(5), epochs=2, batch_size=5, seed=0, verbose=0)
    assert model.seen == [[0.0, 1.0, 2.0, 3.0, 4.0]] * 2


def test_fit_with_validation_split_trains_on_the_first_samples():
    recorder = Recorder()
    x = np.arange(10.0)
    _float64_model().fit(x, x, validation_split=0.3, verbose=0, callbacks=[recorder])
    assert recorder.params["samples"] == 7


def test_fit_logs_the_gradient_norm_only_when_a_callback_asks():
    x = np.array([1.0, 2.0])
    model = _float64_model()
    model.set_weights([np.ones((1, 1)), np.zeros(1)])
    model.compile(optimizer=tl.optim.SGD(lr=1e-300))
    assert set(model.fit(x, 3 * x, verbose=0).history) == {"loss"}
    history = model.fit(x, 3 * x, verbose=0, callbacks=[tl.callbacks.GradientNormStop(tol=1e-9)])
    # residuals pred - y = (-2, -4): d/dw mean(r²) = mean(2 r x) = -10, d/db = mean(2 r) = -6
    assert history.history["grad_norm"] == [pytest.approx(np.sqrt(10.0**2 + 6.0**2), rel=1e-12)]


def test_gradient_norm_sums_in_float64_and_leaves_grad_alone():
    model = tl.nn.Sequential([tl.nn.Linear(1, 1, dtype=np.float32)])
    model.compile(optimizer="sgd")
    model.set_weights([np.ones((1, 1)), np.zeros(1)])
    x, y = np.array([[1.0]], np.float32), np.array([[1.0 + 1e20]], np.float32)
    # the gradient is about (-2e20, -2e20): its squares overflow float32 but not float64
    assert tl.training.gradient_norm(model, model.compiled, x, y) == pytest.approx(2e20 * np.sqrt(2), rel=1e-6)
    assert all(p.grad is None for p in model.parameters())


def test_stopping_mid_epoch_logs_the_batches_done_and_still_ends_training():
    class StopAfterFirstBatch(tl.callbacks.Callback):
        def on_batch_end(self, batch, logs=None):
            self.model.stop_training = True

    model = _float64_model(optimizer=tl.optim.SGD(lr=1e-300))
    model.set_weights([np.ones((1, 1)), np.zeros(1)])
    recorder = Recorder()
    history = model.fit(np.array([1.0, 1.0, 5.0]), np.zeros(3), epochs=3, batch_size=2, shuffle=False, verbose=0,
                        validation_data=([1.0], [0.0]), callbacks=[StopAfterFirstBatch(), recorder])  # fmt: skip
    assert history is model.history and history.history == {"loss": [1.0], "val_loss": [1.0]}
    assert recorder.calls[-2:] == [("epoch_end", 0, {"loss": 1.0, "val_loss": 1.0}), ("train_end", {})]


def test_stopping_at_an_epoch_end_still_ends_training_and_returns_the_history():
    model = _float64_model()
    recorder = Recorder()
    stopper = tl.callbacks.GradientNormStop(tol=1e9)  # any gradient is small enough: stop after epoch 0
    history = model.fit([1.0, 2.0], [1.0, 2.0], epochs=50, verbose=0, callbacks=[stopper, recorder])
    assert history is model.history and history.epoch == [0] and recorder.calls[-1] == ("train_end", {})


def test_divergence_without_raising_warns_from_the_callers_line_and_returns_the_history():
    model = _float64_model(optimizer=tl.optim.SGD(lr=1e200))
    recorder = Recorder()
    x = np.arange(4.0)
    with pytest.warns(RuntimeWarning) as warned:
        history = tl.training.fit(model, x, 2 * x, epochs=3, verbose=0, callbacks=[recorder], raise_on_divergence=False)
    assert [str(w.message) for w in warned] == [DIVERGED_AT_STEP_2 + ONE_LAYER_ADVICE.format(bound="0.238")]
    assert warned[0].filename != tl.training.__file__
    if "MUTANT_UNDER_TEST" not in os.environ:  # (under mutmut, its trampolines add a frame between the caller and fit)
        assert warned[0].filename == __file__
    assert history is model.history and len(history.history["loss"]) == 1 and history.interrupted is False
    assert recorder.calls[-1] == ("train_end", {})


def test_divergence_error_carries_its_epoch_batch_step_and_advice():
    model = _float64_model(optimizer=tl.optim.SGD(lr=1e200))
    recorder = Recorder()
    with pytest.raises(tl.optim.TrainingDivergedError) as caught:
        model.fit(np.arange(4.0), np.arange(4.0), epochs=3, batch_size=2, verbose=0, callbacks=[recorder])
    error = caught.value
    assert (error.epoch, error.batch, error.step) == (1, 2, 2)
    assert error.advice.startswith("Lower the learning rate (now 1e+200): for plain gradient descent")
    assert recorder.calls[-1][0] == "batch_end"  # no epoch end, no train end


def test_divergence_is_reported_once_without_numpy_warnings_on_the_way():
    model = tl.nn.Sequential([tl.nn.Linear(1, 1, dtype=np.float32)])
    model.compile(optimizer=tl.optim.SGD(lr=0.1))
    model.set_weights([np.array([[2.0]]), np.zeros(1)])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = model.fit(np.array([3e38, -3e38]), np.zeros(2), epochs=2, verbose=0, raise_on_divergence=False)
    assert [str(warning.message) for warning in caught] == [
        "fit: training diverged at epoch 1, batch 1: the loss is inf at step 1; the parameters were not updated. "
        "Lower the learning rate (now 0.1): for plain gradient descent on this data the largest stable learning "
        "rate is 1.11e-77 (tl.solvers.stable_learning_rate); or standardise the features"
    ]
    assert history.history == {} and model.get_weights()[0][0, 0] == 2.0


@pytest.mark.filterwarnings("error")
def test_a_step_that_overflows_is_undone_without_numpy_warnings():
    model = tl.nn.Sequential([tl.nn.Linear(1, 1, seed=0)])
    model.compile(loss="mae", optimizer=tl.optim.SGD(lr=1e39))
    with pytest.raises(tl.optim.TrainingDivergedError):
        model.fit(np.arange(4.0), np.arange(4.0), verbose=0)


def test_ctrl_c_marks_the_history_interrupted_and_goes_on():
    class CtrlC(tl.callbacks.Callback):
        def on_batch_end(self, batch, logs=None):
            if batch == 1:
                raise KeyboardInterrupt

    model = _float64_model()
    with pytest.raises(KeyboardInterrupt):
        model.fit(np.arange(6.0), np.arange(6.0), batch_size=2, verbose=0, callbacks=[CtrlC()])
    assert model.history.interrupted is True and model.history.epoch == []


# ----- evaluate and predict -----


def test_predict_prints_nothing_unless_asked(capsys):
    model = _float64_model()
    tl.training.predict(model, np.arange(3.0))
    assert capsys.readouterr().out == ""


def test_evaluate_prints_nothing_unless_asked(capsys):
    tl.training.evaluate(_float64_model(), [1.0, 2.0], [1.0, 2.0])
    assert capsys.readouterr().out == ""


def test_evaluate_and_predict_call_the_model_once_per_batch():
    model = Inputs()
    model.compile(optimizer="sgd")
    x = np.array([1.0, 2.0, 3.0])
    model.evaluate(x, x, batch_size=2)
    model.evaluate(x, x)
    model.evaluate(x, x, batch_size=1)
    tl.training.predict(model, x, batch_size=2)
    assert model.seen == [[1.0, 2.0], [3.0], [1.0, 2.0, 3.0], [1.0], [2.0], [3.0], [1.0, 2.0], [3.0]]


def test_predict_in_two_batches_returns_every_sample():
    model = _float64_model()
    x = np.arange(5.0)
    np.testing.assert_array_equal(tl.training.predict(model, x, batch_size=3), model.predict(x))
    assert tl.training.predict(model, x, batch_size=3).shape == (5, 1)


class Total(tl.nn.Module):
    """A model whose output is one number for the whole batch."""

    def __init__(self):
        self.weight = tl.Tensor(np.ones(1), requires_grad=True)

    def forward(self, x):
        return (x * self.weight).sum()


def test_predict_in_one_batch_returns_the_models_output_as_it_is():
    assert tl.training.predict(Total(), np.arange(4.0)) == np.float64(6.0)
    assert tl.training.predict(Total(), np.arange(4.0)).shape == ()


def test_evaluate_in_batches_is_the_size_weighted_mean(monkeypatch):
    model = _float64_model(metrics=["mae"])
    model.set_weights([np.ones((1, 1)), np.zeros(1)])
    x = np.array([1.0, 1.0, 3.0])
    assert model.evaluate(x, np.zeros(3), batch_size=2) == {"loss": 11 / 3, "mae": 5 / 3}
    plain = _float64_model()
    plain.set_weights([np.ones((1, 1)), np.zeros(1)])
    assert plain.evaluate(x, np.zeros(3), batch_size=2) == 11 / 3
    assert plain.evaluate(x, np.zeros(3)) == pytest.approx(11 / 3)


def test_evaluate_and_predict_print_the_progress_line_when_verbose(monkeypatch, capsys):
    model = _float64_model(metrics=["mae"])
    model.set_weights([np.ones((1, 1)), np.zeros(1)])
    x = np.array([1.0, 1.0, 3.0])
    monkeypatch.setattr(tl.training, "time", Clock(10.0, 14.0, 20.0, 21.0))
    assert model.evaluate(x, np.zeros(3), batch_size=2, verbose=1) == {"loss": 11 / 3, "mae": 5 / 3}
    assert capsys.readouterr().out == (
        "2/2 [==============================] - 4s 2s/step - loss: 3.6667 - mae: 1.6667\n"
    )
    model.predict(x, verbose=1)
    assert capsys.readouterr().out == "1/1 [==============================] - 1s 1s/step\n"


# ----- Newton's method through fit: a step from a closure -----


@pytest.mark.parametrize("l2", [0.0, 0.3])
def test_fit_with_newton_lands_on_the_closed_form_in_one_full_batch_epoch(l2):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 3)) * [1.0, 100.0, 0.01] + [0.0, 500.0, 3.0]  # columns of wildly different scales
    y = X @ [2.0, -0.03, 40.0] + 7.0 + rng.normal(size=50)
    model = tl.nn.Sequential([tl.nn.Linear(3, 1, seed=0, dtype=np.float64)])
    model.compile(loss="mse", optimizer="newton", metrics=["mse"], l2=l2)
    history = model.fit(X, y, epochs=2, batch_size=len(X), verbose=0)
    coef, intercept = tl.solvers.ridge(X, y, l2) if l2 else tl.solvers.ols(X, y)
    weight, bias = model.get_weights()
    np.testing.assert_allclose(weight[:, 0], coef, rtol=1e-7)
    assert bias[0] == pytest.approx(intercept, rel=1e-7)
    assert (history.step, history.step_reason) == (
        "newton",
        "Newton's method steps from a closure: the batch's loss and its exact Hessian",
    )
    # each epoch's loss and metric are those of the weights before its step: the first at the initial weights
    initial = tl.nn.Sequential([tl.nn.Linear(3, 1, seed=0, dtype=np.float64)])
    initial.compile(loss="mse", metrics=["mse"], l2=l2)
    start = initial.evaluate(X, y)
    assert history.history["loss"][0] == pytest.approx(start["loss"], rel=1e-12)
    assert history.history["mse"][0] == pytest.approx(start["mse"], rel=1e-12)
    assert history.history["loss"][1] < history.history["loss"][0]


def test_newton_refuses_batches_summed_a_block_at_a_time(tmp_path, monkeypatch):
    from tinygrad_lr import blockwise

    monkeypatch.setattr(blockwise, "BLOCK_ROWS", 8)
    X, y = np.arange(40.0).reshape(20, 2), np.arange(20.0)
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", y)
    mapped_X, mapped_y = np.load(tmp_path / "X.npy", mmap_mode="r"), np.load(tmp_path / "y.npy", mmap_mode="r")
    model = tl.nn.Sequential([tl.nn.Linear(2, 1, dtype=np.float64)])
    model.compile(optimizer="newton")
    with pytest.raises(ValueError, match=r"fit: Newton's step needs its batches in memory .* memory-mapped data's"):
        model.fit(mapped_X, mapped_y, batch_size=None, epochs=1, verbose=0)


# ----- sample weights: Keras 3's rule, sum(w·loss)/batch size -----


def _weighted_problem(n=24, d=2, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = X @ np.arange(1.0, d + 1) + 0.5 + rng.normal(size=n) * 0.3
    return X, y, rng.uniform(0.0, 3.0, n)


def _weighted_model(d=2, **compile_kwargs):
    model = tl.nn.Sequential([tl.nn.Linear(d, 1, seed=0, dtype=np.float64)])
    model.compile(**{"loss": "mse", "optimizer": tl.optim.SGD(lr=0.1), **compile_kwargs})
    return model


@pytest.mark.parametrize("l2", [0.0, 0.2])
def test_a_weighted_batch_loss_is_the_weighted_sum_over_the_batch_size(l2):
    X, y, w = _weighted_problem()
    model = _weighted_model(l2=l2)
    weight, bias = (p.data.copy() for p in model.parameters())
    history = model.fit(X, y, epochs=1, batch_size=len(X), shuffle=False, verbose=0, sample_weight=w)
    residual = X @ weight[:, 0] + bias[0] - y
    expected = np.sum(w * residual**2) / len(y) + l2 * np.sum(weight**2)
    assert history.history["loss"][0] == pytest.approx(expected, rel=1e-12)
    # and the step went down the weighted gradient: 2/n·Σ w r x (+ 2·l2·W), 2/n·Σ w r
    grad_weight = 2 / len(y) * X.T @ (w * residual) + 2 * l2 * weight[:, 0]
    np.testing.assert_allclose(model.layers[0].weight.data[:, 0], weight[:, 0] - 0.1 * grad_weight, rtol=1e-12)


@pytest.mark.parametrize("metrics", [[], ["mae"]])
def test_weighted_fit_captured_gives_the_eager_weights_and_history_to_the_bit(metrics):
    X, y, w = _weighted_problem(n=30)
    histories, weights = [], []
    for run_eagerly in (True, False):
        model = _weighted_model(metrics=metrics, run_eagerly=run_eagerly)
        history = model.fit(X, y, epochs=3, batch_size=8, seed=1, verbose=0, sample_weight=w, validation_split=0.2)
        histories.append(history.history)
        weights.append(model.get_weights())
        assert history.step == ("eager" if run_eagerly else "captured")
    assert histories[0] == histories[1]
    for eager, captured in zip(*weights):
        np.testing.assert_array_equal(eager, captured)


def test_the_validation_split_cuts_the_weights_as_it_cuts_the_rows():
    X, y, w = _weighted_problem(n=20)
    model = _weighted_model()
    history = model.fit(X, y, epochs=1, batch_size=4, verbose=0, sample_weight=w, validation_split=0.25, seed=0)
    pred = model.predict(X[15:])[:, 0]
    assert history.history["val_loss"][0] == pytest.approx(np.sum(w[15:] * (pred - y[15:]) ** 2) / 5, rel=1e-12)
    again = model.fit(
        X[:15], y[:15], epochs=1, verbose=0, sample_weight=w[:15], validation_data=(X[15:], y[15:], w[15:])
    )
    assert again.history["val_loss"][0] == pytest.approx(
        model.evaluate(X[15:], y[15:], sample_weight=w[15:]), rel=1e-12
    )


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(2, 30),
    d=st.integers(1, 3),
    k=st.integers(1, 2),
    l2=st.sampled_from([0.0, 0.01, 0.5]),
    zeros=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_weighted_training_meets_the_weighted_closed_form(n, d, k, l2, zeros, seed):
    # fit's weighted objective and the one solvers.ols/ridge minimise are the same function: at the closed
    # form the engine's gradient of fit's objective vanishes, and Newton's steps through fit land there
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * rng.uniform(0.5, 3, d)
    y = X @ rng.normal(size=(d, k)) + rng.normal(size=(n, k))
    w = rng.uniform(0.1, 3.0, n) * (rng.random(n) > 0.3 if zeros else 1.0)
    assume(np.count_nonzero(w) > d + 1)  # a unique weighted optimum
    coef, intercept = tl.solvers.ridge(X, y, l2, sample_weight=w)
    model = tl.nn.Sequential([tl.nn.Linear(d, k, dtype=np.float64)])
    model.compile(loss="mse", optimizer="newton", l2=l2)
    model.set_weights([coef, intercept])
    source = tl.sources.as_source(X, y, np.float64, w)
    gradient = tl.training.gradient_norm(model, model.compiled, source, None)
    assert gradient < 1e-10 * max(1.0, float(np.abs(y).max()) * float(np.abs(X).max()))
    model.set_weights([np.zeros((d, k)), np.zeros(k)])
    model.fit(X, y, epochs=2, batch_size=n, verbose=0, sample_weight=w)
    np.testing.assert_allclose(model.get_weights()[0], coef, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(model.get_weights()[1], intercept, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("l2", [0.0, 0.1])
def test_weighted_newton_steps_land_on_the_weighted_closed_form(l2):
    X, y, w = _weighted_problem(n=40, d=3)
    model = _weighted_model(d=3, optimizer="newton", l2=l2)
    model.fit(X, y, epochs=2, batch_size=len(X), verbose=0, sample_weight=w)
    coef, intercept = tl.solvers.ridge(X, y, l2, sample_weight=w) if l2 else tl.solvers.ols(X, y, sample_weight=w)
    weight, bias = model.get_weights()
    np.testing.assert_allclose(weight[:, 0], coef, rtol=1e-9)
    assert bias[0] == pytest.approx(intercept, rel=1e-9)


def test_evaluate_weighs_the_loss_and_not_the_metrics_in_one_batch_or_several():
    X, y, w = _weighted_problem(n=21)
    model = _weighted_model(metrics=["mae"])
    pred = model.predict(X)[:, 0]
    whole = model.evaluate(X, y, sample_weight=w)
    assert whole["loss"] == pytest.approx(np.mean(w * (pred - y) ** 2), rel=1e-12)
    assert whole["mae"] == pytest.approx(np.mean(np.abs(pred - y)), rel=1e-12)
    in_batches = model.evaluate(X, y, sample_weight=w, batch_size=5)
    assert in_batches["loss"] == pytest.approx(whole["loss"], rel=1e-12)


def test_weights_of_one_are_the_unweighted_fit():
    X, y, _ = _weighted_problem()
    plain, weighted = _weighted_model(), _weighted_model()
    a = plain.fit(X, y, epochs=2, batch_size=6, seed=3, verbose=0)
    b = weighted.fit(X, y, epochs=2, batch_size=6, seed=3, verbose=0, sample_weight=np.ones(len(X)))
    np.testing.assert_allclose(a.history["loss"], b.history["loss"], rtol=1e-12)
    np.testing.assert_allclose(plain.get_weights()[0], weighted.get_weights()[0], rtol=1e-12)


def test_bad_sample_weights_are_refused_naming_the_rule(tmp_path):
    X, y, w = _weighted_problem(n=10)
    model = _weighted_model()
    with pytest.raises(ValueError, match=r"fit: sample_weight must hold one weight per sample, shape \(10,\)"):
        model.fit(X, y, sample_weight=w[:9], verbose=0)
    with pytest.raises(ValueError, match=r"fit: sample_weight must be >= 0; sample 2 has weight -1.0"):
        model.fit(X, y, sample_weight=np.where(np.arange(10) == 2, -1.0, 1.0), verbose=0)
    with pytest.raises(ValueError, match=r"evaluate: sample_weight"):
        model.evaluate(X, y, sample_weight=[np.nan] * 10)
    own = tl.nn.Sequential([tl.nn.Linear(2, 1, dtype=np.float64)])
    own.compile(loss=lambda pred, target: ((pred - target) ** 2).mean())
    with pytest.raises(ValueError, match=r"fit: sample_weight needs one of the built-in losses"):
        own.fit(X, y, sample_weight=w, verbose=0)
    np.save(tmp_path / "X.npy", X)
    mapped = np.load(tmp_path / "X.npy", mmap_mode="r")
    with pytest.raises(ValueError, match=r"fit: sample_weight must hold one weight per sample, shape \(10,\)"):
        model.fit(mapped, y, sample_weight=w[:9], verbose=0)  # (memory-mapped data take weights, checked alike)
