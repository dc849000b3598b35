"""The fine print of training and its callbacks: exact messages, defaults, boundaries, printed text."""

import io

import numpy as np
import pytest

import tinygrad_lr as tl


def _model(n_in=1, n_out=1, optimizer="sgd", seed=0, dtype=np.float64, bias=True, **compile_kwargs):
    model = tl.nn.Sequential([tl.nn.Linear(n_in, n_out, seed=seed, dtype=dtype, bias=bias)])
    model.compile(optimizer=optimizer, **compile_kwargs)
    return model


class FakeModel:
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
    model = FakeModel()
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
    message = _diverge(_model(optimizer=tl.optim.SGD(lr=1e200)))
    assert message == DIVERGED_AT_STEP_2 + ONE_LAYER_ADVICE.format(bound="0.238")


def test_divergence_advice_counts_the_l2_term_in_the_stable_learning_rate():
    message = _diverge(_model(optimizer=tl.optim.SGD(lr=1e200), l2=0.5))
    assert message == DIVERGED_AT_STEP_2 + ONE_LAYER_ADVICE.format(bound="0.216")


def test_divergence_advice_for_a_layer_without_bias_leaves_the_intercept_out():
    message = _diverge(_model(optimizer=tl.optim.SGD(lr=1e200), bias=False))
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
    assert _drive(callback, [np.nan, 6.0, 7.0]) == (3, 2)  # epoch 1 improves on nothing-yet; epoch 2 misses
    assert callback.stopped_epoch == 2


def test_early_stopping_counts_a_first_epoch_that_is_not_a_number_as_a_miss():
    callback = tl.callbacks.EarlyStopping(patience=3)
    assert _drive(callback, [np.nan, np.nan, np.nan, np.nan]) == (3, 2)  # misses 1, 2, 3 at epoch 2
    assert callback.stopped_epoch == 2 and callback.best_epoch is None


def test_early_stopping_restores_the_first_epochs_weights_when_no_epoch_improved():
    callback = tl.callbacks.EarlyStopping(patience=5, restore_best_weights=True)
    assert _drive(callback, [np.nan, np.nan, np.nan]) == (3, 0)
    assert callback.best_epoch is None and callback.stopped_epoch is None


def test_early_stopping_restores_only_when_asked_at_training_end():
    callback = tl.callbacks.EarlyStopping(patience=5, restore_best_weights=True)
    model = FakeModel()
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
        _model().fit([1.0, 2.0], [1.0, 2.0], epochs=2, verbose=0, callbacks=[tl.callbacks.EarlyStopping()])
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


# ----- predict -----


def test_predict_prints_nothing_unless_asked(capsys):
    model = _model()
    tl.training.predict(model, np.arange(3.0))
    assert capsys.readouterr().out == ""


def test_predict_in_two_batches_returns_every_sample():
    model = _model()
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
