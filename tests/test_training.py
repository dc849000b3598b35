"""Keras-style training: each rule has a test that fails under the other plausible reading."""

import io
import os
import re

import numpy as np
import pytest

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
