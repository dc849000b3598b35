"""Callbacks for `fit`, as in Keras: History, the progress line, EarlyStopping, GradientNormStop.

`fit` calls, in order: `on_train_begin(logs)`, then for each epoch `on_epoch_begin(epoch, logs)`,
`on_batch_end(batch, logs)` after every optimizer step, `on_epoch_end(epoch, logs)` with the
epoch's losses and metrics, and finally `on_train_end(logs)`. Epochs and batches count from 0.
Setting `self.model.stop_training = True` ends training after the current batch. The user's
callbacks are called before History and the progress line (Keras' order), so what they add to the
logs (LearningRateScheduler's and ReduceLROnPlateau's "learning_rate") is kept and shown.
"""

from __future__ import annotations

import inspect
import os
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from tinygrad_lr.checks import check_count, check_number
from tinygrad_lr.steps import HIGHER_IS_BETTER, METRIC_NAMES

__all__ = [
    "Callback",
    "CallbackList",
    "EarlyStopping",
    "GradientNormStop",
    "History",
    "LearningRateScheduler",
    "ModelCheckpoint",
    "ProgressBar",
    "ReduceLROnPlateau",
    "format_logs",
    "progress_bar",
    "progress_line",
]


class Callback:
    """Base class: override the hooks you need. `self.model` and `self.params` are set by fit."""

    model: Any = None
    params: dict[str, Any]
    needs_gradient_norm = False  # fit puts logs["grad_norm"] at each epoch end when a callback asks

    def set_model(self, model: Any) -> None:
        """Called by fit before training: the model this callback watches and may change."""
        self.model = model

    def on_train_begin(self, logs: dict | None = None) -> None:
        """Called once, before the first epoch."""

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        """Called before each epoch (counted from 0)."""

    def on_batch_end(self, batch: int, logs: dict | None = None) -> None:
        """Called after each optimizer step; logs: batch, size, and the epoch's mean loss so far."""

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        """Called after each epoch with its logs: loss, metrics, val_ ones, and what callbacks add."""

    def on_train_end(self, logs: dict | None = None) -> None:
        """Called once, when training ends (also when stopped early)."""


class CallbackList:
    """The callbacks of one `fit`, called as one, in order (Keras' CallbackList).

    It gives each callback the model and `params` (epochs, steps per epoch, samples, verbose).
    """

    def __init__(self, callbacks: list[Callback], model: Any, params: dict[str, Any]):
        self.callbacks = callbacks
        for callback in callbacks:
            callback.set_model(model)
            callback.params = dict(params)
        # per hook, the callbacks that have one of their own (the base class's do nothing): a step of a
        # small model is a few microseconds, so calling no-ops, and making logs nobody reads, shows
        self._methods = {
            hook: [getattr(c, hook) for c in callbacks if getattr(getattr(c, hook), "__func__", None) is not base]
            for hook, base in vars(Callback).items()
            if hook.startswith("on_")
        }

    @property
    def wants_batch_logs(self) -> bool:
        """Whether any callback has an `on_batch_end` of its own (else fit need not make its logs)."""
        return bool(self._methods["on_batch_end"])

    @property
    def needs_gradient_norm(self) -> bool:
        """Whether any callback reads logs["grad_norm"] (fit computes it at each epoch's end only then)."""
        return any(callback.needs_gradient_norm for callback in self.callbacks)

    def _call(self, hook: str, *args: Any) -> None:
        for method in self._methods[hook]:
            method(*args)

    def on_train_begin(self, logs: dict | None = None) -> None:
        """Each callback's `on_train_begin`, in order."""
        self._call("on_train_begin", logs)

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        """Each callback's `on_epoch_begin`, in order."""
        self._call("on_epoch_begin", epoch, logs)

    def on_batch_end(self, batch: int, logs: dict | None = None) -> None:
        """Each callback's `on_batch_end`, in order."""
        self._call("on_batch_end", batch, logs)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        """Each callback's `on_epoch_end`, in order."""
        self._call("on_epoch_end", epoch, logs)

    def on_train_end(self, logs: dict | None = None) -> None:
        """Each callback's `on_train_end`, in order."""
        self._call("on_train_end", logs)


class History(Callback):
    """Per-epoch lists of every logged value: `history.history["loss"]`, `["val_loss"]`, metrics.

    `epoch` lists the epochs run; `interrupted` is True when Ctrl-C ended training early. `step` is
    the kind of step fit took ("eager", "captured" or "moments") and `step_reason` why.
    """

    def __init__(self) -> None:
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []
        self.interrupted = False
        self.step, self.step_reason = "", ""

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)

    def __repr__(self) -> str:
        last = {key: round(values[-1], 6) for key, values in self.history.items() if values}
        return f"History(epochs={len(self.epoch)}, last={last})"


def format_logs(logs: dict[str, float]) -> str:
    """The logs as the progress line ends: ' - loss: 83.4503 - mae: 7.2031'."""
    # Keras prints 4 decimals, and switches to scientific notation for tiny values
    return "".join(
        f" - {key}: {value:.4f}" if abs(value) > 1e-3 else f" - {key}: {value:.4e}" for key, value in logs.items()
    )


def _format_step_time(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.0f}s/step"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.0f}ms/step"
    return f"{seconds * 1e6:.0f}us/step"


class ProgressBar(Callback):
    """The Keras progress line: `Epoch 3/200`, then
    `2/2 [==============================] - 0s 2ms/step - loss: 83.4503 - val_loss: 90.1234`.

    On a terminal the bar is redrawn in place after each batch; otherwise one plain line per epoch.
    """

    width = 30

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream

    def on_epoch_begin(self, epoch, logs=None):
        self.out = self.stream or sys.stdout
        self.interactive = hasattr(self.out, "isatty") and self.out.isatty()
        self.out.write(f"Epoch {epoch + 1}/{self.params['epochs']}\n")
        self.start = time.perf_counter()
        self.done = 0  # batches finished this epoch

    def on_batch_end(self, batch, logs=None):
        self.done = batch + 1
        if self.interactive and self.done < self.params["steps"]:
            elapsed = time.perf_counter() - self.start
            eta = elapsed / self.done * (self.params["steps"] - self.done)
            shown = {"loss": logs["loss"]} if logs else {}
            bar = progress_bar(self.done, self.params["steps"], self.width)
            self.out.write(f"\r{bar} - ETA: {eta:.0f}s{format_logs(shown)}")
            self.out.flush()

    def on_epoch_end(self, epoch, logs=None):
        elapsed = time.perf_counter() - self.start
        shown = {key: value for key, value in (logs or {}).items() if key != "grad_norm"}
        line = progress_line(self.done, self.params["steps"], elapsed, shown, self.width)
        self.out.write(("\r" if self.interactive else "") + line + "\n")
        self.out.flush()


def progress_bar(done: int, steps: int, width: int = 30) -> str:
    """`2/3 [===================>..........]`"""
    filled = int(width * done / steps)
    arrow = ("=" * (filled - 1) + (">" if done < steps else "=")) if filled else ""
    return f"{done:{len(str(steps))}d}/{steps} [{arrow}{'.' * (width - filled)}]"


def progress_line(done: int, steps: int, seconds: float, logs: dict[str, float], width: int = 30) -> str:
    """Keras' line for finished work: `2/2 [==============================] - 0s 2ms/step - loss: 83.4503`."""
    per_step = _format_step_time(seconds / max(done, 1))
    return f"{progress_bar(done, steps, width)} - {seconds:.0f}s {per_step}{format_logs(logs)}"


class EarlyStopping(Callback):
    """Stop when `monitor` has not improved for `patience` epochs in a row (Keras 3's rules).

    An epoch improves when it beats the best value so far by more than `min_delta` (lower is
    better for losses). With `restore_best_weights`, the best epoch's weights are put back when
    training ends, whether or not it stopped early. `stopped_epoch` is the epoch it stopped at
    (0-based), or None.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        patience: int = 0,
        min_delta: float = 0.0,
        restore_best_weights: bool = False,
        mode: str = "min",
    ):
        if mode not in ("min", "max"):
            raise ValueError(f"EarlyStopping: mode must be 'min' or 'max', got {mode!r}")
        patience = check_count("EarlyStopping: patience", patience, minimum=0)
        self.monitor, self.patience, self.min_delta = monitor, patience, abs(min_delta)
        self.restore_best_weights, self.mode = restore_best_weights, mode

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.best = np.inf if self.mode == "min" else -np.inf
        self.best_epoch: int | None = None
        self.best_weights = None
        self.stopped_epoch: int | None = None

    def _improved(self, value: float) -> bool:
        return _improves(value, self.best, self.mode, self.min_delta)

    def on_epoch_end(self, epoch, logs=None):
        value = _monitored("EarlyStopping", self.monitor, logs)
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()  # Keras keeps the first epoch's as a fallback
        if self._improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            return
        self.wait += 1
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.restore_best_weights and self.best_weights is not None:
            self.model.set_weights(self.best_weights)


def _monitored(who: str, monitor: str, logs: dict | None) -> float:
    """logs[monitor], or a KeyError that names what was logged."""
    if logs is None or monitor not in logs:
        raise KeyError(
            f"{who}: monitor {monitor!r} is not among the logged values {sorted(logs or {})}; "
            "val_loss needs validation_split or validation_data"
        )
    return logs[monitor]


def _improves(value: float, best: float, mode: str, min_delta: float) -> bool:
    """Keras' rule: `value` improves on `best` when it beats it by more than `min_delta` (>= 0), downward
    in mode "min", upward in "max". A NaN never improves."""
    return value < best - min_delta if mode == "min" else value > best + min_delta


def _direction(who: str, monitor: Any, mode: Any) -> str:
    """The direction `mode` asks for, "min" or "max"; "auto" is Keras' rule: losses and errors go down, R² up."""
    if not isinstance(monitor, str):
        raise TypeError(f"{who}: monitor must be the name of a logged value, such as 'val_loss', got {monitor!r}")
    if mode not in ("min", "max", "auto"):
        raise ValueError(f"{who}: mode must be 'min', 'max' or 'auto', got {mode!r}")
    if mode != "auto":
        return mode
    name = monitor.removeprefix("val_")
    if name != "loss" and name not in METRIC_NAMES.values():
        raise ValueError(
            f"{who}: mode 'auto' cannot tell whether {monitor!r} should go down or up; pass mode='min' or mode='max'"
        )
    return "max" if name in HIGHER_IS_BETTER else "min"


def _checked_verbose(who: str, verbose: Any) -> int:
    """0 (quiet) or more (print what is changed); a bool counts as 0 or 1."""
    return check_count(f"{who}: verbose", int(verbose) if isinstance(verbose, bool) else verbose, minimum=0)


def _takes_learning_rate(schedule: Callable[..., Any]) -> bool:
    """Whether `schedule` takes (epoch, lr), Keras 3's form, or only (epoch), Keras' older one."""
    try:
        signature = inspect.signature(schedule)
    except (TypeError, ValueError):  # no signature to read (some builtins): Keras 3's form
        return True
    try:
        signature.bind(0, 1.0)
    except TypeError:
        return False
    return True


def _log_learning_rate(model: Any, logs: dict | None) -> None:
    """logs["learning_rate"]: the rate the epoch trained with, as Keras 3's schedule callbacks log it."""
    if logs is not None:
        logs["learning_rate"] = model.compiled.optimizer.lr


class LearningRateScheduler(Callback):
    """Set the learning rate at each epoch's beginning to `schedule(epoch, lr)` (Keras 3's callback).

    epoch counts from 0 and lr is the optimizer's learning rate now; the new rate (a finite number
    > 0) is used from the next step on. A schedule of one argument is called as `schedule(epoch)`
    (Keras' older form). `verbose=1` prints each rate set. At each epoch's end the rate the epoch
    trained with is logged as "learning_rate", as Keras 3 logs it: it is in `history.history`.
    """

    def __init__(self, schedule: Callable[..., float], verbose: int = 0):
        if not callable(schedule):
            raise TypeError(
                f"LearningRateScheduler: schedule must be a function (epoch, lr) -> lr, got {type(schedule).__name__}"
            )
        self.schedule, self.verbose = schedule, _checked_verbose("LearningRateScheduler", verbose)
        self._takes_lr = _takes_learning_rate(schedule)

    def on_epoch_begin(self, epoch, logs=None):
        optimizer = self.model.compiled.optimizer
        called = f"schedule({epoch}, {optimizer.lr!r})" if self._takes_lr else f"schedule({epoch})"
        lr = self.schedule(epoch, optimizer.lr) if self._takes_lr else self.schedule(epoch)
        optimizer.lr = check_number(
            f"LearningRateScheduler: the learning rate from {called}", lr, low=0.0, low_inclusive=False
        )
        if self.verbose:
            print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {optimizer.lr}.")

    def on_epoch_end(self, epoch, logs=None):
        _log_learning_rate(self.model, logs)


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by `factor` when `monitor` has stopped improving (Keras 3's rules).

    An epoch improves when it beats the best value so far by more than `min_delta` (`mode` "min":
    downward; "max": upward; "auto": upward for R², else downward). After `patience` epochs in a row
    without improvement the rate becomes max(lr·factor, min_lr), if it is still above `min_lr`; the
    `cooldown` epochs after a reduction count no waiting (the epoch where the cooldown runs out counts
    again). `wait`, `cooldown_counter` and `best` are Keras' counters, reset at each fit's beginning.
    The new rate is used from the next step on. Each epoch's end logs "learning_rate", the rate that
    epoch trained with (before any reduction), as Keras 3 does: it is in `history.history`.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        factor: float = 0.1,
        patience: int = 10,
        verbose: int = 0,
        mode: str = "min",
        min_delta: float = 1e-4,
        cooldown: int = 0,
        min_lr: float = 0.0,
    ):
        who = "ReduceLROnPlateau"
        self.monitor, self.mode = monitor, _direction(who, monitor, mode)
        # a factor of 1 or more would never reduce (Keras refuses it); 0 or less is no learning rate
        self.factor = check_number(f"{who}: factor", factor, low=0.0, high=1.0, low_inclusive=False)
        self.patience = check_count(f"{who}: patience", patience, minimum=0)
        self.verbose = _checked_verbose(who, verbose)
        self.min_delta = abs(check_number(f"{who}: min_delta", min_delta))
        self.cooldown = check_count(f"{who}: cooldown", cooldown, minimum=0)
        self.min_lr = check_number(f"{who}: min_lr", min_lr, low=0.0)
        self.on_train_begin()

    def on_train_begin(self, logs=None):
        self.wait = self.cooldown_counter = 0
        self.best = np.inf if self.mode == "min" else -np.inf

    def on_epoch_end(self, epoch, logs=None):
        _log_learning_rate(self.model, logs)
        value = _monitored("ReduceLROnPlateau", self.monitor, logs)
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if _improves(value, self.best, self.mode, self.min_delta):
            self.best, self.wait = value, 0
            return
        if self.cooldown_counter > 0:
            return
        self.wait += 1
        optimizer = self.model.compiled.optimizer
        if self.wait >= self.patience and optimizer.lr > self.min_lr:
            optimizer.lr = max(optimizer.lr * self.factor, self.min_lr)
            if self.verbose:
                print(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {optimizer.lr}.")
            self.cooldown_counter, self.wait = self.cooldown, 0


class GradientNormStop(Callback):
    """Stop once ‖∇‖, the norm of the full-batch gradient of the training objective, falls below `tol`.

    At a minimum of a smooth objective the gradient vanishes, so this answers "when do I stop?"
    without guessing an epoch count. `fit` computes the norm at each epoch's end (one extra
    forward and backward over the training data) and logs it as "grad_norm".
    """

    needs_gradient_norm = True

    def __init__(self, tol: float = 1e-4):
        self.tol = check_number("GradientNormStop: tol", tol, low=0.0, low_inclusive=False)
        self.stopped_epoch: int | None = None

    def on_epoch_end(self, epoch, logs=None):
        if logs["grad_norm"] < self.tol:
            self.stopped_epoch = epoch
            self.model.stop_training = True


class ModelCheckpoint(Callback):
    """Save the model with `model.save` at each epoch's end (Keras 3's callback); `tl.nn.load_model` reads it.

    `filepath` may hold format fields, filled with `epoch` (counted from 1, as Keras names the files)
    and the epoch's logs: "ckpt-{epoch:02d}-{val_loss:.3f}.npz" (a field that is not logged is a
    KeyError). The path is used as it is, no suffix added; a missing folder is created. With
    `save_best_only` a file is written only when `monitor` improves on the best value so far: strictly
    lower in mode "min", higher in "max" ("auto": higher for R², else lower), NaN never. `best` starts
    at ±inf when the callback is made and is kept from one fit to the next, as in Keras. A `monitor`
    that is not logged (val_loss without validation data) is a warning, as in Keras 3, and the model is
    saved all the same: a checkpoint too many rather than none. Only `save_freq="epoch"` is supported.
    `verbose=1` prints Keras' line for each epoch.
    """

    def __init__(
        self,
        filepath: str | os.PathLike,
        monitor: str = "val_loss",
        save_best_only: bool = False,
        mode: str = "min",
        verbose: int = 0,
        save_freq: str = "epoch",
    ):
        who = "ModelCheckpoint"
        self.filepath = os.fspath(filepath)
        self.monitor, self.mode = monitor, _direction(who, monitor, mode)
        self.save_best_only, self.verbose = bool(save_best_only), _checked_verbose(who, verbose)
        if save_freq != "epoch":
            raise ValueError(f"{who}: save_freq must be 'epoch' (a save at each epoch's end), got {save_freq!r}")
        self.save_freq = save_freq
        self.best = np.inf if self.mode == "min" else -np.inf

    def on_epoch_end(self, epoch, logs=None):
        """Save the model to `filepath` filled for this epoch, unless save_best_only and no improvement."""
        logs = logs or {}
        path = self._path(epoch, logs)
        if self.save_best_only and self.monitor not in logs:
            warnings.warn(
                f"ModelCheckpoint: can save the best model only with {self.monitor!r} logged (logged: "
                f"{sorted(logs)}); saving epoch {epoch + 1}'s model to {path} instead",
                stacklevel=2,
            )
        elif self.save_best_only:
            value = logs[self.monitor]
            if not _improves(value, self.best, self.mode, 0.0):
                if self.verbose:
                    print(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from {self.best:.5f}")
                return
            if self.verbose:
                print(
                    f"\nEpoch {epoch + 1}: {self.monitor} improved from {self.best:.5f} to {value:.5f}, "
                    f"saving model to {path}"
                )
            self.best = value
        elif self.verbose:
            print(f"\nEpoch {epoch + 1}: saving model to {path}")
        folder = os.path.dirname(path)
        if folder:
            os.makedirs(folder, exist_ok=True)
        self.model.save(path)

    def _path(self, epoch: int, logs: dict) -> str:
        """`filepath` with its fields filled: epoch from 1, then the logs."""
        try:
            return self.filepath.format(epoch=epoch + 1, **logs)
        except KeyError as error:
            raise KeyError(
                f"ModelCheckpoint: cannot fill in the filepath {self.filepath!r}: {error} is neither 'epoch' nor "
                f"among the logged values {sorted(logs)}"
            ) from None
