"""The learning-rate callbacks (Keras 3's LearningRateScheduler and ReduceLROnPlateau) and the metric "r2"."""

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_lr as tl
from tests.strategies import regression_problems

sklearn_metrics = pytest.importorskip("sklearn.metrics")


def _data(n=40, d=1, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(0.0, 2.0, size=(n, d))
    y = X @ np.arange(1.0, d + 1) + 0.5 + 0.3 * rng.normal(size=n)
    return X, y


def _model(d=1, lr=0.1, **compile_kwargs):
    model = tl.nn.Sequential([tl.nn.Linear(d, 1, seed=0, dtype=np.float64)])
    model.compile(optimizer=tl.optim.SGD(lr=lr), **compile_kwargs)
    return model


def _halve_every_two_epochs(epoch, lr):
    return lr / 2 if epoch > 0 and epoch % 2 == 0 else lr


# ----- LearningRateScheduler -----


def test_scheduled_fit_gives_the_weights_of_a_hand_loop_with_those_rates():
    X, y = _data()
    model = _model()
    hand = _model()
    history = model.fit(X, y, epochs=6, batch_size=8, shuffle=False, verbose=0,
                        callbacks=[tl.callbacks.LearningRateScheduler(_halve_every_two_epochs)])  # fmt: skip
    rates = [0.1, 0.1, 0.05, 0.05, 0.025, 0.025]
    optimizer = hand.compiled.optimizer
    for lr in rates:
        optimizer.lr = lr
        for start in range(0, len(X), 8):
            optimizer.zero_grad()
            tl.losses.mse(hand(tl.Tensor(X[start : start + 8])), y[start : start + 8]).backward()
            optimizer.step()
    assert history.step == "captured"
    assert history.history["learning_rate"] == rates  # the rate each epoch trained with, in the history
    assert model.compiled.optimizer.lr == 0.025
    for got, expected in zip(model.get_weights(), hand.get_weights()):
        np.testing.assert_array_equal(got, expected)


def test_a_schedule_of_the_epoch_alone_is_keras_older_form():
    X, y = _data()
    model = _model()
    history = model.fit(
        X, y, epochs=3, verbose=0, callbacks=[tl.callbacks.LearningRateScheduler(lambda e: 0.1 / (e + 1))]
    )
    assert history.history["learning_rate"] == [0.1, 0.05, 0.1 / 3]


def test_scheduler_verbose_prints_keras_line_before_the_epoch_line(capsys):
    X, y = _data()
    scheduler = tl.callbacks.LearningRateScheduler(lambda epoch, lr: 0.5**epoch, verbose=1)
    _model().fit(X, y, epochs=2, verbose=1, callbacks=[scheduler])
    out = capsys.readouterr().out
    assert out.startswith("\nEpoch 1: LearningRateScheduler setting learning rate to 1.0.\nEpoch 1/2\n")
    assert "\nEpoch 2: LearningRateScheduler setting learning rate to 0.5.\nEpoch 2/2\n" in out
    assert out.rstrip().endswith("learning_rate: 0.5000")  # the progress line shows the logged rate, as Keras 3's


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        (lambda epoch, lr: -1.0, "the learning rate from schedule(0, 0.1) must be a finite number > 0, got -1.0"),
        (lambda epoch, lr: 0, "the learning rate from schedule(0, 0.1) must be a finite number > 0, got 0"),
        (lambda epoch: float("nan"), "the learning rate from schedule(0) must be a finite number > 0, got nan"),
        (lambda epoch, lr: "0.1", "the learning rate from schedule(0, 0.1) must be a finite number > 0, got '0.1'"),
    ],
)
def test_a_schedule_that_gives_no_learning_rate_is_refused_naming_the_call(schedule, message):
    model = _model()
    with pytest.raises(ValueError) as caught:
        model.fit(*_data(), epochs=2, verbose=0, callbacks=[tl.callbacks.LearningRateScheduler(schedule)])
    assert str(caught.value) == f"LearningRateScheduler: {message}"
    assert model.compiled.optimizer.lr == 0.1


def test_scheduler_arguments_are_checked():
    with pytest.raises(TypeError, match=r"schedule must be a function \(epoch, lr\) -> lr, got float"):
        tl.callbacks.LearningRateScheduler(0.1)
    with pytest.raises(ValueError, match="LearningRateScheduler: verbose must be an integer >= 0, got -1"):
        tl.callbacks.LearningRateScheduler(lambda epoch, lr: lr, verbose=-1)


# ----- ReduceLROnPlateau, its hooks driven with scripted logs -----


def _drive(callback, values, monitor="val_loss", lr=1.0):
    """(rate logged at each epoch's end, rate after it) for the monitored `values`, one per epoch."""
    model = _model(lr=lr)
    callback.set_model(model)
    callback.on_train_begin({})
    logged, after = [], []
    for epoch, value in enumerate(values):
        logs = {monitor: value}
        callback.on_epoch_end(epoch, logs)
        logged.append(logs["learning_rate"])
        after.append(model.compiled.optimizer.lr)
    return logged, after


def test_plateau_reduces_after_patience_epochs_without_improvement():
    reduce = tl.callbacks.ReduceLROnPlateau(factor=0.5, patience=2)
    logged, after = _drive(reduce, [1.0, 0.9, 0.95, 0.92, 0.91, 0.8, 0.85, 0.85, 0.85])
    # epochs 2, 3 do not beat 0.9: reduced at 3; 4 waits, 5 improves (0.8), 6 and 7 do not: reduced at 7
    assert after == [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25]
    assert logged == [1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.25]  # the rate each epoch trained with
    assert (reduce.best, reduce.wait, reduce.cooldown_counter) == (0.8, 1, 0)


def test_plateau_counts_an_improvement_only_beyond_min_delta():
    reduce = tl.callbacks.ReduceLROnPlateau(factor=0.5, patience=1, min_delta=0.1)
    # 0.95 is within 0.1 of 1.0: no improvement; 0.85 beats 1.0 by more; 0.8 is within 0.1 of 0.85
    assert _drive(reduce, [1.0, 0.95, 0.85, 0.8])[1] == [1.0, 0.5, 0.5, 0.25]
    assert reduce.best == 0.85
    negative = tl.callbacks.ReduceLROnPlateau(factor=0.5, patience=1, min_delta=-0.1)  # its size counts, as Keras'
    assert _drive(negative, [1.0, 0.95, 0.85, 0.8])[1] == [1.0, 0.5, 0.5, 0.25]


def test_plateau_cooldown_skips_waiting_until_the_epoch_it_runs_out():
    reduce = tl.callbacks.ReduceLROnPlateau(factor=0.5, patience=1, cooldown=2)
    # Keras' counters: reduced at 1 (cooldown 2); epoch 2 is in cooldown (1 left); at epoch 3 it runs out (0) and
    # the epoch counts again: reduced; and so on, every second epoch
    assert _drive(reduce, [1.0] * 8)[1] == [1.0, 0.5, 0.5, 0.25, 0.25, 0.125, 0.125, 0.0625]
    without = tl.callbacks.ReduceLROnPlateau(factor=0.5, patience=1)
    assert _drive(without, [1.0] * 5)[1] == [1.0, 0.5, 0.25, 0.125, 0.0625]


def test_plateau_improvement_during_cooldown_becomes_the_best():
    reduce = tl.callbacks.ReduceLROnPlateau(factor=0.5, patience=1, cooldown=3)
    # reduced at 1 (cooldown 3); 0.5 at epoch 2, in cooldown, is the new best; the cooldown runs out at 4: reduced
    assert _drive(reduce, [1.0, 1.0, 0.5, 0.6, 0.6, 0.6])[1] == [1.0, 0.5, 0.5, 0.5, 0.25, 0.25]
    assert reduce.best == 0.5


def test_plateau_stops_at_min_lr_and_keeps_waiting():
    reduce = tl.callbacks.ReduceLROnPlateau(factor=0.1, patience=1, min_lr=0.05)
    # 1 -> max(0.1, 0.05) = 0.1 -> max(0.01, 0.05) = 0.05; then the rate is not above min_lr: no reduction
    assert _drive(reduce, [1.0] * 5)[1] == [1.0, 0.1, 0.05, 0.05, 0.05]
    assert reduce.wait == 2  # (reset only by a reduction or an improvement)


def test_plateau_with_patience_zero_reduces_at_every_epoch_that_does_not_improve():
    reduce = tl.callbacks.ReduceLROnPlateau(factor=0.5, patience=0)
    assert _drive(reduce, [3.0, 2.0, 2.5, 1.0, 1.5])[1] == [1.0, 1.0, 0.5, 0.5, 0.25]


def test_plateau_never_counts_nan_as_an_improvement():
    reduce = tl.callbacks.ReduceLROnPlateau(factor=0.5, patience=1)
    assert _drive(reduce, [1.0, float("nan"), 0.5])[1] == [1.0, 0.5, 0.5]


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("max", [1.0, 1.0, 0.5, 0.25]), ("auto", [1.0, 1.0, 0.5, 0.25]), ("min", [1.0, 0.5, 0.25, 0.125])],
)
def test_plateau_mode_max_and_auto_for_r2_watch_it_go_up(mode, expected):
    reduce = tl.callbacks.ReduceLROnPlateau(monitor="val_r2", factor=0.5, patience=1, mode=mode)
    assert _drive(reduce, [0.5, 0.6, 0.6, 0.55], monitor="val_r2")[1] == expected


@pytest.mark.parametrize("monitor", ["loss", "val_loss", "mse", "val_mae"])
def test_plateau_mode_auto_watches_losses_and_errors_go_down(monitor):
    assert tl.callbacks.ReduceLROnPlateau(monitor=monitor, mode="auto").mode == "min"


def test_each_fit_starts_the_plateau_counters_afresh():
    X, y = _data()
    model = _model(lr=0.01)
    reduce = tl.callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=3)
    model.fit(X, y, epochs=2, verbose=0, callbacks=[reduce])
    reduce.wait, reduce.cooldown_counter = 2, 5
    model.fit(X, y, epochs=1, verbose=0, callbacks=[reduce])
    assert (reduce.wait, reduce.cooldown_counter) == (0, 0) and reduce.best == model.history.history["loss"][0]


def test_plateau_verbose_prints_keras_line(capsys):
    reduce = tl.callbacks.ReduceLROnPlateau(factor=0.5, patience=0, verbose=1)
    _drive(reduce, [1.0, 1.0])
    assert capsys.readouterr().out == "\nEpoch 2: ReduceLROnPlateau reducing learning rate to 0.5.\n"


def test_plateau_without_its_monitored_value_names_what_was_logged():
    model = _model()
    with pytest.raises(KeyError, match=r"ReduceLROnPlateau: monitor 'val_loss' is not among the logged values "
                                       r"\['learning_rate', 'loss'\]; val_loss needs validation_split"):  # fmt: skip
        model.fit(*_data(), epochs=2, verbose=0, callbacks=[tl.callbacks.ReduceLROnPlateau()])


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"factor": 1.0}, ValueError, "ReduceLROnPlateau: factor must be a finite number > 0 and < 1, got 1.0"),
        ({"factor": 2}, ValueError, "ReduceLROnPlateau: factor must be a finite number > 0 and < 1, got 2"),
        ({"factor": 0.0}, ValueError, "ReduceLROnPlateau: factor must be a finite number > 0 and < 1, got 0.0"),
        ({"patience": -1}, ValueError, "ReduceLROnPlateau: patience must be an integer >= 0, got -1"),
        ({"patience": 2.5}, ValueError, "ReduceLROnPlateau: patience must be an integer >= 0, got 2.5"),
        ({"cooldown": -2}, ValueError, "ReduceLROnPlateau: cooldown must be an integer >= 0, got -2"),
        ({"min_lr": -0.1}, ValueError, "ReduceLROnPlateau: min_lr must be a finite number >= 0, got -0.1"),
        ({"min_delta": np.inf}, ValueError, "ReduceLROnPlateau: min_delta must be a finite number, got inf"),
        ({"verbose": "yes"}, ValueError, "ReduceLROnPlateau: verbose must be an integer >= 0, got 'yes'"),
        ({"mode": "lowest"}, ValueError, "ReduceLROnPlateau: mode must be 'min', 'max' or 'auto', got 'lowest'"),
        ({"monitor": "grad_norm", "mode": "auto"}, ValueError,
         "ReduceLROnPlateau: mode 'auto' cannot tell whether 'grad_norm' should go down or up; pass mode='min' or "
         "mode='max'"),
        ({"monitor": 3}, TypeError,
         "ReduceLROnPlateau: monitor must be the name of a logged value, such as 'val_loss', got 3"),
    ],
)  # fmt: skip
def test_plateau_arguments_are_checked(kwargs, error, message):
    with pytest.raises(error) as caught:
        tl.callbacks.ReduceLROnPlateau(**kwargs)
    assert type(caught.value) is error and str(caught.value) == message


# ----- a changed learning rate is used from the next step, on every kind of step -----


def _fit_with_rates(run_eagerly, X, y, callbacks, **fit_kwargs):
    model = _model(d=X.shape[1], lr=0.2, run_eagerly=run_eagerly)
    history = model.fit(X, y, verbose=0, callbacks=callbacks(), **fit_kwargs)
    return model, history


def _schedule():
    return [tl.callbacks.LearningRateScheduler(lambda epoch, lr: 0.2 * 0.7**epoch)]


def test_captured_and_eager_fits_take_the_scheduled_rates_to_the_bit():
    X, y = _data(n=50, d=2)
    kwargs = {"epochs": 5, "batch_size": 8, "seed": 3, "validation_split": 0.2}
    captured, captured_history = _fit_with_rates(False, X, y, _schedule, **kwargs)
    eager, eager_history = _fit_with_rates(True, X, y, _schedule, **kwargs)
    constant, _ = _fit_with_rates(False, X, y, list, **kwargs)
    assert (captured_history.step, eager_history.step) == ("captured", "eager")
    assert captured_history.history == eager_history.history
    for a, b, c in zip(captured.get_weights(), eager.get_weights(), constant.get_weights()):
        np.testing.assert_array_equal(a, b)
        assert not np.allclose(a, c)  # the schedule changed the course


def test_a_plateau_reduction_equals_the_schedule_of_the_same_rates():
    X, y = _data(n=50, d=2)
    kwargs = {"epochs": 5, "batch_size": 8, "seed": 3}
    # min_delta larger than any change: every epoch after the first is a plateau, so the rate halves each epoch
    plateau, plateau_history = _fit_with_rates(
        False, X, y, lambda: [tl.callbacks.ReduceLROnPlateau("loss", factor=0.5, patience=0, min_delta=1e9)], **kwargs
    )
    rates = [0.2, 0.2, 0.1, 0.05, 0.025]  # (the rate of epoch 1 is reduced at its end, for epoch 2)
    scheduled, _ = _fit_with_rates(
        True, X, y, lambda: [tl.callbacks.LearningRateScheduler(lambda epoch, lr: rates[epoch])], **kwargs
    )
    assert plateau_history.history["learning_rate"] == rates
    for a, b in zip(plateau.get_weights(), scheduled.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_the_moments_path_takes_the_scheduled_rates_as_the_eager_step_does():
    X, y = _data(n=tl.moments.MIN_ROWS, d=1)
    kwargs = {"epochs": 6, "batch_size": len(X)}
    moments, moments_history = _fit_with_rates(False, X, y, _schedule, **kwargs)
    eager, eager_history = _fit_with_rates(True, X, y, _schedule, **kwargs)
    constant, _ = _fit_with_rates(False, X, y, list, **kwargs)
    assert (moments_history.step, eager_history.step) == ("moments", "eager")
    np.testing.assert_allclose(moments_history.history["loss"], eager_history.history["loss"], rtol=1e-9)
    assert moments_history.history["learning_rate"] == eager_history.history["learning_rate"]
    for a, b, c in zip(moments.get_weights(), eager.get_weights(), constant.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-9)
        assert not np.allclose(a, c)


def test_a_rate_changed_after_a_batch_is_used_from_the_next_batch():
    class HalveAfterEachBatch(tl.callbacks.Callback):
        def on_batch_end(self, batch, logs=None):
            self.model.compiled.optimizer.lr /= 2

    X, y = _data(n=24)
    model, history = _fit_with_rates(
        False, X, y, lambda: [HalveAfterEachBatch()], epochs=2, batch_size=8, shuffle=False
    )
    hand = _model(lr=0.2)
    optimizer = hand.compiled.optimizer
    for _ in range(2):
        for start in range(0, 24, 8):
            optimizer.zero_grad()
            tl.losses.mse(hand(tl.Tensor(X[start : start + 8])), y[start : start + 8]).backward()
            optimizer.step()
            optimizer.lr /= 2
    assert history.step == "captured"
    for a, b in zip(model.get_weights(), hand.get_weights()):
        np.testing.assert_array_equal(a, b)


# ----- the metric "r2": the R² of all the epoch's rows, not a mean of the batches' -----


def _r2(y, pred):
    return sklearn_metrics.r2_score(y, pred)


def test_r2_of_an_epoch_is_that_of_all_its_predictions_not_a_mean_over_batches():
    X, y = _data(n=40)
    model = _model(lr=1e-300, metrics=["r2"])  # the weights stay put: every batch is predicted by the same model
    history = model.fit(X, y, epochs=1, batch_size=8, shuffle=False, verbose=0)
    pred = model.predict(X)
    assert history.history["r2"] == [pytest.approx(_r2(y, pred), rel=1e-12)]
    assert history.history["r2"][0] == pytest.approx(tl.losses.r2_score(pred, y), rel=1e-12)
    batch_mean = np.mean([_r2(y[i : i + 8], pred[i : i + 8]) for i in range(0, 40, 8)])
    assert history.history["r2"][0] != pytest.approx(batch_mean, rel=1e-3)


@pytest.mark.parametrize("run_eagerly", [False, True])
def test_r2_of_a_training_epoch_is_that_of_the_predictions_made_at_each_step(run_eagerly):
    X, y = _data(n=30)
    model = _model(metrics=["r2", "mse"], run_eagerly=run_eagerly)
    history = model.fit(X, y, epochs=3, batch_size=7, shuffle=False, verbose=0)
    hand = _model()
    optimizer = hand.compiled.optimizer
    for epoch in range(3):
        predictions = []
        for start in range(0, 30, 7):
            optimizer.zero_grad()
            pred = hand(tl.Tensor(X[start : start + 7]))
            predictions.append(pred.data.copy())
            tl.losses.mse(pred, y[start : start + 7]).backward()
            optimizer.step()
        assert history.history["r2"][epoch] == pytest.approx(_r2(y, np.concatenate(predictions)), rel=1e-12)
    assert history.step == ("eager" if run_eagerly else "captured")


def test_r2_is_the_same_captured_and_eager_and_on_validation_data_is_that_of_the_whole():
    X, y = _data(n=60, d=2)
    runs = [_model(d=2, metrics=["r2"], run_eagerly=eager) for eager in (False, True)]
    histories = [m.fit(X, y, epochs=3, batch_size=16, seed=1, validation_split=0.25, verbose=0) for m in runs]
    assert histories[0].history == histories[1].history
    X_val, y_val = X[45:], y[45:]
    assert histories[0].history["val_r2"][-1] == pytest.approx(_r2(y_val, runs[0].predict(X_val)), rel=1e-12)


def test_evaluate_r2_is_that_of_all_the_rows_whatever_the_batch_size():
    X, y = _data(n=50)
    model = _model(metrics=["r2", "mae"])
    model.fit(X, y, epochs=2, verbose=0)
    expected = _r2(y, model.predict(X))
    for batch_size in (None, 7, 50):
        logs = model.evaluate(X, y, batch_size=batch_size)
        assert logs["r2"] == pytest.approx(expected, rel=1e-12)
        assert logs["mae"] == pytest.approx(np.mean(np.abs(model.predict(X)[:, 0] - y)), rel=1e-12)


def test_r2_under_newton_steps_is_that_of_the_prediction_before_the_step():
    X, y = _data(n=20)
    model = tl.nn.Sequential([tl.nn.Linear(1, 1, seed=0, dtype=np.float64)])
    model.compile(optimizer="newton", metrics=["r2"])
    before = model.predict(X)
    history = model.fit(X, y, epochs=2, batch_size=20, verbose=0)
    assert history.step == "newton"
    assert history.history["r2"][0] == pytest.approx(_r2(y, before), rel=1e-12)
    assert history.history["r2"][1] == pytest.approx(_r2(y, model.predict(X)), rel=1e-9)  # (at the optimum)


def test_r2_from_the_moments_path_is_the_eager_r2():
    """R² is a function of the same sums as the loss (Σ(y-ŷ)², Σ(y-ȳ)²): the moments give it too."""
    X, y = _data(n=tl.moments.MIN_ROWS)
    model = _model(metrics=["r2"])
    history = model.fit(X, y, epochs=3, batch_size=len(X), verbose=0)
    assert history.step == "moments"
    eager = _model(metrics=["r2"], run_eagerly=True).fit(X, y, epochs=3, batch_size=len(X), verbose=0)
    for key in ("loss", "r2"):
        np.testing.assert_allclose(history.history[key], eager.history[key], rtol=1e-9)


def test_r2_of_several_outputs_is_their_average_as_keras_and_scikit_learn_default():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(30, 2))
    Y = np.column_stack([X @ [1.0, 2.0], 100.0 * X[:, 0]]) + rng.normal(size=(30, 2))
    model = tl.nn.Sequential([tl.nn.Linear(2, 2, seed=0, dtype=np.float64)])
    model.compile(optimizer=tl.optim.SGD(lr=1e-300), metrics=["r2"])
    history = model.fit(X, Y, epochs=1, batch_size=8, verbose=0)
    pred = model.predict(X)
    assert history.history["r2"][0] == pytest.approx(_r2(Y, pred), rel=1e-12)  # multioutput="uniform_average"


def test_r2_of_a_constant_target_is_nan_as_r2_score():
    model = _model(metrics=["r2"])
    assert np.isnan(model.evaluate(np.arange(4.0), np.ones(4))["r2"])
    assert np.isnan(tl.losses.r2_sums(np.arange(3.0), np.ones(3)).result())


def test_r2_is_compile_metric_by_keras_names():
    model = _model(metrics=["r2_score", "mse"])
    assert model.compiled.metrics == {"r2": tl.losses.r2_sums, "mse": tl.losses.mse}


@given(problem=regression_problems(), cuts=st.lists(st.integers(1, 40), max_size=5))
def test_r2_sums_of_any_split_add_up_to_those_of_the_whole(problem, cuts):
    X, y, _, _ = problem
    pred = np.asarray(X).reshape(len(X), -1)[:, :1] * 0.5 + (0.0 if y.ndim == 1 else np.zeros(y.shape[1]))
    edges = [0, *sorted({c for c in cuts if c < len(y)}), len(y)]
    parts = [tl.losses.r2_sums(pred[a:b], y[a:b]) for a, b in itertools.pairwise(edges)]
    merged, whole = sum(parts[1:], start=parts[0]), tl.losses.r2_sums(pred, y)
    assert merged.count == whole.count
    for field in ("mean", "total", "residual"):
        np.testing.assert_allclose(getattr(merged, field), getattr(whole, field), rtol=1e-10, atol=1e-10)
    assert merged.result() == pytest.approx(_r2(y, np.broadcast_to(pred, y.shape) if y.ndim > 1 else pred[:, 0]))


def test_r2_sums_keep_the_digits_of_data_far_from_zero():
    rng = np.random.default_rng(0)
    y = 1e8 + rng.normal(size=1000)
    pred = y + 0.1 * rng.normal(size=1000)
    parts = [tl.losses.r2_sums(pred[i : i + 10], y[i : i + 10]) for i in range(0, 1000, 10)]
    merged = sum(parts[1:], start=parts[0])
    assert merged.result() == pytest.approx(_r2(y, pred), rel=1e-10)


# ----- r2 on data read a block at a time: memory maps and Dask arrays -----


def _mapped(tmp_path, X, y):
    np.save(tmp_path / "x.npy", X)
    np.save(tmp_path / "y.npy", y)
    return np.load(tmp_path / "x.npy", mmap_mode="r"), np.load(tmp_path / "y.npy", mmap_mode="r")


@pytest.mark.parametrize("batch_size", [None, 16, 6])  # summed block by block; 6: batches in memory
def test_r2_on_a_memory_map_read_in_blocks_is_the_in_memory_r2(tmp_path, monkeypatch, batch_size):
    monkeypatch.setattr(tl.blockwise, "BLOCK_ROWS", 12)  # several blocks; a full batch summed block by block
    X, y = _data(n=60, d=2)
    X_map, y_map = _mapped(tmp_path, X, y)
    in_memory, mapped = _model(d=2, metrics=["r2"]), _model(d=2, metrics=["r2"])
    kwargs = {"epochs": 2, "batch_size": batch_size or len(X), "shuffle": False, "verbose": 0}
    expected = in_memory.fit(X, y, validation_data=(X, y), **kwargs).history
    got = mapped.fit(X_map, y_map, validation_data=(X_map, y_map), **kwargs).history
    for key in ("r2", "val_r2", "loss"):
        np.testing.assert_allclose(got[key], expected[key], rtol=1e-10)
    assert mapped.evaluate(X_map, y_map)["r2"] == pytest.approx(_r2(y, mapped.predict(X)), rel=1e-10)


@pytest.mark.parametrize("batch_size", [None, 20])
def test_r2_on_dask_chunks_is_the_in_memory_r2(batch_size):
    da = pytest.importorskip("dask.array")
    dask = pytest.importorskip("dask")
    X, y = _data(n=60, d=2)
    X_dask, y_dask = da.from_array(X, chunks=(15, -1)), da.from_array(y, chunks=15)
    in_memory, on_dask = _model(d=2, metrics=["r2"]), _model(d=2, metrics=["r2"])
    kwargs = {"epochs": 2, "batch_size": batch_size or len(X), "shuffle": False, "verbose": 0}
    expected = in_memory.fit(X, y, **kwargs).history
    with dask.config.set(scheduler="synchronous"):
        got = on_dask.fit(X_dask, y_dask, **kwargs).history
        evaluated = on_dask.evaluate(X_dask, y_dask)["r2"]
    np.testing.assert_allclose(got["r2"], expected["r2"], rtol=1e-10)
    assert evaluated == pytest.approx(_r2(y, on_dask.predict(X)), rel=1e-10)
