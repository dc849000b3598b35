"""Callbacks for `fit`, as in Keras: History, the progress line, EarlyStopping, GradientNormStop.

`fit` calls, in order: `on_train_begin(logs)`, then for each epoch `on_epoch_begin(epoch, logs)`,
`on_batch_end(batch, logs)` after every optimizer step, `on_epoch_end(epoch, logs)` with the
epoch's losses and metrics, and finally `on_train_end(logs)`. Epochs and batches count from 0.
Setting `self.model.stop_training = True` ends training after the current batch.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import numpy as np

from tinygrad_lr.checks import check_count, check_number

__all__ = [
    "Callback",
    "CallbackList",
    "EarlyStopping",
    "GradientNormStop",
    "History",
    "ProgressBar",
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
        self.model = model

    def on_train_begin(self, logs: dict | None = None) -> None: ...

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None: ...

    def on_batch_end(self, batch: int, logs: dict | None = None) -> None: ...

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None: ...

    def on_train_end(self, logs: dict | None = None) -> None: ...


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
        return any(callback.needs_gradient_norm for callback in self.callbacks)

    def _call(self, hook: str, *args: Any) -> None:
        for method in self._methods[hook]:
            method(*args)

    def on_train_begin(self, logs: dict | None = None) -> None:
        self._call("on_train_begin", logs)

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._call("on_epoch_begin", epoch, logs)

    def on_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self._call("on_batch_end", batch, logs)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self._call("on_epoch_end", epoch, logs)

    def on_train_end(self, logs: dict | None = None) -> None:
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
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.monitor not in logs:
            raise KeyError(
                f"EarlyStopping: monitor {self.monitor!r} is not among the logged values {sorted(logs)}; "
                "val_loss needs validation_split or validation_data"
            )
        value = logs[self.monitor]
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
