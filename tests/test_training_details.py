"""The fine print of training and its callbacks: exact messages, defaults, boundaries, printed text."""

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
