"""Keras-style training: compile, fit, evaluate, predict, summary.

`fit` is the training loop a user would write by hand (zero_grad, forward, loss, backward,
step), with Keras' conventions for batches, validation and the per-epoch history.
"""

from __future__ import annotations

import sys
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tinygrad_lr import autograd, capture, checks, data, gram, losses, optim, solvers, streams
from tinygrad_lr.callbacks import Callback, CallbackList, History, ProgressBar, progress_line
from tinygrad_lr.nn import Linear, Module, Sequential
from tinygrad_lr.optim import TrainingDivergedError
from tinygrad_lr.sources import Source, as_source
from tinygrad_lr.tensor import Tensor, no_grad

__all__ = ["Compiled", "as_features", "as_samples", "compile", "evaluate", "fit", "gradient_norm", "predict", "summary"]

LOSSES: dict[str, Callable[[Tensor, Any], Tensor]] = {
    "mse": losses.mse,
    "mean_squared_error": losses.mse,
    "mae": losses.mae,
    "mean_absolute_error": losses.mae,
}
METRIC_NAMES = {"mse": "mse", "mean_squared_error": "mse", "mae": "mae", "mean_absolute_error": "mae"}


@dataclass(frozen=True, eq=False)
class Compiled:
    """What `compile` chose: the objective is `loss(pred, y) + l2 · Σ W²` over every Linear weight.
    Frozen: a captured step reads it (by identity), and what cannot change needs no guard (compile
    again instead)."""

    loss: Callable[[Tensor, Any], Tensor]
    optimizer: optim.Optimizer
    metrics: dict[str, Callable[[Tensor, Any], Tensor]] = field(default_factory=dict)
    l2: float = 0.0
    penalized: list[Tensor] = field(default_factory=list)
    run_eagerly: bool = False

    def objective(self, pred: Tensor, y: Any) -> Tensor:
        loss = self.loss(pred, y)
        return loss + losses.l2_penalty(self.penalized, self.l2) if self.l2 else loss


def _linear_layers(model: Module) -> list[Linear]:
    return [module for module in model.modules() if isinstance(module, Linear)]


def compile(
    model: Module,
    loss: Any = "mse",
    optimizer: Any = "adam",
    metrics: Iterable[Any] = (),
    l2: float = 0.0,
    run_eagerly: bool = False,
) -> None:
    """Configure `model` for `fit`/`evaluate`.

    optimizer: "sgd"/"gd", "adam", "rmsprop" (Keras' default learning rates 0.01, 0.001, 0.001) or
    an optimizer instance, bound here to the model's parameters. metrics: "mse", "mae".
    l2: adds `l2 · Σ W²` over every Linear weight (never the biases) to the loss.
    run_eagerly: (Keras' name) every step of `fit` a plain eager one, no captured step and no shortcut
    through the data's moments: the reference that those faster paths must equal.
    """
    if not isinstance(run_eagerly, (bool, np.bool_)):
        raise TypeError(f"compile: run_eagerly must be True or False, got {run_eagerly!r}")
    if isinstance(loss, str):
        if loss not in LOSSES:
            raise ValueError(f"compile: unknown loss {loss!r}; choose one of {sorted(LOSSES)} or pass a function")
        loss = LOSSES[loss]
    if isinstance(optimizer, str):
        if optimizer.lower() not in optim.BY_NAME:
            raise ValueError(f"compile: unknown optimizer {optimizer!r}; choose one of {sorted(optim.BY_NAME)}")
        optimizer_class, lr = optim.BY_NAME[optimizer.lower()]
        optimizer = optimizer_class(lr=lr)
    if not isinstance(optimizer, optim.Optimizer):
        raise TypeError(f"compile: optimizer must be a name or a tl.optim optimizer, got {type(optimizer).__name__}")
    if isinstance(metrics, str):
        metrics = [metrics]
    chosen = {}
    for metric in metrics:
        if metric not in METRIC_NAMES:
            raise ValueError(f"compile: unknown metric {metric!r}; choose from {sorted(METRIC_NAMES)}")
        chosen[METRIC_NAMES[metric]] = LOSSES[metric]
    l2 = checks.check_number("compile: l2", l2, low=0.0)
    if not model.parameters():
        raise ValueError("compile: the model has no trainable parameters")
    optimizer.bind(model.parameters())
    weights = {id(layer.weight): layer.weight for layer in _linear_layers(model)}  # a shared weight once
    penalized = list(weights.values())
    model.compiled = Compiled(
        loss=loss, optimizer=optimizer, metrics=chosen, l2=l2, penalized=penalized, run_eagerly=bool(run_eagerly)
    )


def _compiled(model: Module, caller: str) -> Compiled:
    compiled = getattr(model, "compiled", None)
    if compiled is None:
        raise RuntimeError(f"{caller}: the model must be compiled first: model.compile(loss='mse', optimizer='adam')")
    return compiled


# ----- data at the boundary -----


def _feature_count(model: Module) -> int | None:
    layers = _linear_layers(model)
    return layers[0].in_features if layers else None


def _output_count(model: Module) -> int | None:
    features = _feature_count(model)
    if features is not None and all(hasattr(module, "output_shape") for module in model.modules()):
        # follows the layers in the order they run: a layer used twice may be the last one
        return model.output_shape((None, features))[-1]  # type: ignore[attr-defined]  # hasattr, above
    layers = _linear_layers(model)
    return layers[-1].out_features if layers else None


def _as_array(values: Any, name: str, caller: str, dtype: np.dtype) -> np.ndarray:
    """A finite array of the model's dtype, (n,) or (n, columns) with n >= 1; a memory map or a Dask
    array as it is (its values are converted and checked a block at a time, as they are read)."""
    array = checks.as_real_data(f"{caller}: {name}", values, dtype, not_numbers=TypeError)
    if array.ndim == 0 or array.shape[0] == 0:
        raise ValueError(f"{caller}: {name} has shape {array.shape}; it must hold at least one sample")
    if array.ndim > 2:
        raise ValueError(f"{caller}: {name} has shape {array.shape}; expected (n,) or (n, features)")
    return array


def as_features(model: Module, x: Any, caller: str = "predict") -> np.ndarray:
    """x as an (n, features) array of the model's dtype; a 1-D x is n samples of one feature (a 1-D
    Dask array stays 1-D: see `_as_columns`)."""
    params = model.parameters()
    if not params:
        raise ValueError(
            f"{caller}: the model has no parameters (no layers with weights), so nothing to compute; "
            "give it layers, e.g. tl.nn.Sequential([tl.nn.Linear(1, 1)])"
        )
    dtype = params[0].dtype
    x = _as_array(x, "x", caller, dtype)
    x = _as_columns(x)
    columns = _columns(x)
    expected = _feature_count(model)
    if expected is not None and columns != expected:
        raise ValueError(
            f"{caller}: x has shape {x.shape}, {columns} feature(s) per sample, but the model takes "
            f"{expected}" + ("; a 1-D x is read as n samples of one feature" if columns == 1 else "")
        )
    return x


def _as_columns(array: Any) -> Any:
    """A 1-D array (n,) as one column (n, 1). A Dask array stays 1-D: reshaping it would add tasks to
    its graph on every call, which are not persisted with its chunks and may run on another worker,
    so every step would move the chunk; its chunks become columns as they are read
    (`streams.read_block`)."""
    return array.reshape(-1, 1) if array.ndim == 1 and not checks.is_dask_array(array) else array


def _columns(array: Any) -> int:
    """Columns of an (n, columns) array; a 1-D one is one column."""
    return array.shape[1] if array.ndim == 2 else 1


def as_samples(model: Module, x: Any, y: Any, caller: str = "fit") -> tuple[np.ndarray, np.ndarray]:
    """(x, y) checked against the model: x (n, features), y (n, outputs), the model's dtype (a 1-D
    Dask array stays 1-D, one column: see `_as_columns`)."""
    x = as_features(model, x, caller)
    y = _as_columns(_as_array(y, "y", caller, model.parameters()[0].dtype))
    if len(y) != len(x):
        raise ValueError(f"{caller}: x has {len(x)} samples (shape {x.shape}) but y has {len(y)} (shape {y.shape})")
    outputs = _output_count(model)
    if outputs is not None and _columns(y) != outputs:
        raise ValueError(f"{caller}: y has shape {y.shape} but the model has {outputs} output(s)")
    return x, y


# ----- the loop -----


def predict(model: Module, x: Any, batch_size: int | None = None, verbose: int = 0) -> np.ndarray:
    """Model outputs for x: (n, features) or (n,) → (n, outputs), `batch_size` samples at a time
    (all at once when None); `verbose=1` prints Keras' progress line."""
    source = as_source(as_features(model, x), dtype=model.parameters()[0].dtype)
    start = time.perf_counter()
    outputs = source.predict(model, batch_size)
    if verbose:
        steps = len(_batches("predict", len(source), batch_size))
        print(progress_line(steps, steps, time.perf_counter() - start, {}))
    return outputs


def _batches(caller: str, n: int, batch_size: int | None) -> list[Any]:
    """Contiguous batches of `batch_size` samples (one of all n when None), for predict and evaluate."""
    size = n if batch_size is None else checks.check_count(f"{caller}: batch_size", batch_size)
    return data.batch_indices(n, size)


def _evaluate_source(model: Module, compiled: Compiled, source: Source, caller: str = "evaluate") -> dict[str, float]:
    if source.reads_blocks:
        return _means(model, compiled, _sums(model, compiled, source, False, caller))[0]
    x, y = source.x, source.y
    with no_grad():
        pred = model(Tensor(x))
        logs = {"loss": compiled.objective(pred, y).item()}
        logs.update({name: metric(pred, y).item() for name, metric in compiled.metrics.items()})
    return logs


def evaluate(model: Module, x: Any, y: Any, batch_size: int | None = None, verbose: int = 0) -> float | dict:
    """The compiled objective (loss plus any L2 term) on (x, y): a float, or a dict with the metrics.

    With `batch_size`, computed a batch at a time and averaged weighted by batch size (as Keras);
    memory maps and Dask arrays are always summed a block (a chunk) at a time. `verbose=1` prints
    Keras' progress line with the results."""
    compiled = _compiled(model, "evaluate")
    source = as_source(*as_samples(model, x, y, "evaluate"), model.parameters()[0].dtype)
    batches = _batches("evaluate", len(source), batch_size)
    start = time.perf_counter()
    if len(batches) == 1 or source.reads_blocks:
        logs = _evaluate_source(model, compiled, source)
    else:  # Keras' average over batches, weighted by their sizes
        x, y = source.x, source.y
        totals: dict[str, float] = {}
        for index in batches:
            part = as_source(x[index], y[index], source.dtype)
            for name, value in _evaluate_source(model, compiled, part).items():
                totals[name] = totals.get(name, 0.0) + value * len(part)
        logs = {name: total / len(y) for name, total in totals.items()}
    if verbose:
        print(progress_line(len(batches), len(batches), time.perf_counter() - start, logs))
    return logs["loss"] if len(logs) == 1 else logs


def gradient_norm(model: Module, compiled: Compiled, x: Any, y: Any) -> float:
    """‖∇θ objective‖ over the whole of (x, y) (arrays as `as_samples` gives them, or a Source); no
    parameter's .grad is touched."""
    source = x if isinstance(x, Source) else as_source(x, y, model.parameters()[0].dtype)
    if source.reads_blocks:
        gradients: list[np.ndarray] = _means(model, compiled, _sums(model, compiled, source, True, "fit"))[1] or []
    else:
        objective = compiled.objective(model(Tensor(source.x)), source.y)
        gradients = [g.data for g in autograd.grad(objective, model.parameters())]
    return float(np.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2)) for g in gradients)))


def _divergence_hint(model: Module, source: Source, compiled: Compiled) -> str:
    """Suggest the stable learning rate of plain gradient descent when the model is one Linear layer."""
    layers = _linear_layers(model)
    advice = f"Lower the learning rate (now {compiled.optimizer.lr:g})"
    if len(layers) != 1 or compiled.loss is not losses.mse or source.reads_blocks:
        return advice + " or standardise the features"
    bound = solvers.stable_learning_rate(source.x, l2=compiled.l2, fit_intercept=layers[0].bias is not None)
    return (
        f"{advice}: for plain gradient descent on this data the largest stable learning rate is {bound:.3g} "
        "(tl.solvers.stable_learning_rate); or standardise the features"
    )


def fit(
    model: Module,
    x: Any,
    y: Any,
    epochs: int = 1,
    batch_size: int | None = 32,
    validation_split: float = 0.0,
    validation_data: tuple[Any, Any] | None = None,
    shuffle: bool = True,
    verbose: int = 1,
    callbacks: Iterable[Callback] | None = None,
    seed: int | None = None,
    raise_on_divergence: bool = True,
) -> History:
    """Train the compiled model on (x, y) with Keras' semantics; returns a History.

    x: (n, features), or (n,) for one feature; y: (n,) or (n, outputs); in memory, memory-mapped
    (read a block at a time) or Dask arrays (each step's gradient computed on the chunks, where
    they live), on which `batch_size=None` is the full batch. `validation_split=s` keeps
    the first floor(n·(1−s)) samples for training and the rest for validation, split before
    any shuffling; only the training part is shuffled, each epoch, from `seed`. An epoch's loss
    is the batch-size-weighted mean of its batch losses (L2 term included).

    If the loss or a parameter becomes non-finite, the last finite weights are put back and
    `TrainingDivergedError` is raised (or, with `raise_on_divergence=False`, a warning is given
    and the History so far returned). Ctrl-C ends training between steps: the weights of the last
    completed step stay, `model.history.interrupted` is True, and the KeyboardInterrupt goes on.
    """
    compiled = _compiled(model, "fit")
    epochs = checks.check_count("fit: epochs", epochs)
    user_callbacks = _callback_list(callbacks)
    x, y = as_samples(model, x, y, "fit")
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise ValueError("fit: validation_data must be a pair (x_val, y_val)")
        x_val, y_val = as_samples(model, *validation_data, "fit (validation_data)")
    elif validation_split:
        (x, y), (x_val, y_val) = data.validation_split(x, y, validation_split)
    else:
        x_val, y_val = None, None
    dtype = model.parameters()[0].dtype
    source = as_source(x, y, dtype)
    validation = None if x_val is None else as_source(x_val, y_val, dtype)
    n = len(source)
    if batch_size is None:  # Keras' 32 in memory; the full batch on data read a block at a time
        batch_size = n if source.reads_blocks else 32
    batch_size = checks.check_count("fit: batch_size", batch_size)
    steps = -(-n // batch_size)
    rng = np.random.default_rng(seed)

    history = History()
    model.history = history
    params = {"epochs": epochs, "steps": steps, "samples": n, "verbose": verbose}
    hooks = CallbackList([history, *([ProgressBar()] if verbose else []), *user_callbacks], model, params)
    model.stop_training = False
    hooks.on_train_begin({})
    step, history.step, history.step_reason = _training_step(model, compiled, source, batch_size, epochs)
    # one batch of everything: its order changes nothing, so it is not shuffled (nor copied)
    shuffle = shuffle and batch_size < n
    # batches in memory that are not shuffled are the same views every epoch: cut once
    same_batches = None if shuffle or source.reads_blocks else list(source.batches(batch_size, False, rng))
    needs_gradient_norm = hooks.needs_gradient_norm
    try:
        with np.errstate(over="ignore", invalid="ignore"):  # divergence is reported below, once
            for epoch in range(epochs):
                hooks.on_epoch_begin(epoch, {})
                batches = same_batches or source.batches(batch_size, shuffle, rng)
                logs = _train_epoch(model, compiled, step, batches, hooks, epoch)
                if validation is not None:
                    val_logs = _evaluate_source(model, compiled, validation, "fit (validation)")
                    logs.update({f"val_{name}": value for name, value in val_logs.items()})
                if needs_gradient_norm:
                    logs["grad_norm"] = gradient_norm(model, compiled, source, None)
                hooks.on_epoch_end(epoch, logs)
                if model.stop_training:
                    break
    except TrainingDivergedError as error:  # safe_step put the last finite weights back
        error.advice = _divergence_hint(model, source, compiled)
        if raise_on_divergence:
            raise
        warnings.warn(str(error), RuntimeWarning, stacklevel=_stacklevel_outside_the_package(sys._getframe()))
    except KeyboardInterrupt:
        # safe_step never leaves a half-done update: the weights are those of the last completed step
        history.interrupted = True
        raise
    hooks.on_train_end({})
    return history


def _callback_list(callbacks: Any) -> list[Callback]:
    """fit's `callbacks`: None, or a list (or tuple) of Callback instances."""
    if callbacks is None:
        return []
    if not isinstance(callbacks, (list, tuple)):
        got = type(callbacks).__name__
        got = f"one {got}; wrap it in a list: callbacks=[...]" if isinstance(callbacks, Callback) else f"a {got}"
        raise TypeError(f"fit: callbacks must be a list of tl.callbacks.Callback, got {got}")
    for i, callback in enumerate(callbacks):
        if not isinstance(callback, Callback):
            raise TypeError(
                f"fit: callbacks[{i}] is a {type(callback).__name__}, not a tl.callbacks.Callback "
                "(subclass it and override the hooks you need)"
            )
    return list(callbacks)


def _stacklevel_outside_the_package(frame: Any) -> int:
    """The `stacklevel` of a warning raised in `frame` that makes it point at the user's line: the
    first frame outside this package (fit is reached through `model.fit` or as `tl.training.fit`)."""
    level = 1
    while frame is not None and frame.f_globals.get("__name__", "").startswith("tinygrad_lr."):
        frame, level = frame.f_back, level + 1
    return level


def _train_epoch(
    model: Module,
    compiled: Compiled,
    step: Callable[[Any, Any], tuple[float, dict[str, float]]],
    batches: Iterable[tuple[Any, Any]],
    callbacks: CallbackList,
    epoch: int,
) -> dict[str, float]:
    """One pass over the batches, (x, y) pairs, taking a `step` on each. Returns the epoch's logs."""
    totals = dict.fromkeys(["loss", *compiled.metrics], 0.0)
    seen = 0
    batch_logs = callbacks.wants_batch_logs
    for batch, (xb, yb) in enumerate(batches):
        try:
            loss, metrics = step(xb, yb)
        except TrainingDivergedError as error:
            error.epoch, error.batch = epoch + 1, batch + 1
            raise
        size = len(yb)
        seen += size
        totals["loss"] += loss * size
        for name, value in metrics.items():
            totals[name] += value * size
        if batch_logs:
            callbacks.on_batch_end(batch, {"batch": batch, "size": size, "loss": totals["loss"] / seen})
        if model.stop_training:
            break
    return {name: total / seen for name, total in totals.items()}


def _training_step(
    model: Module, compiled: Compiled, source: Source, batch_size: int, epochs: int
) -> tuple[Callable[[Any, Any], tuple[float, dict[str, float]]], str, str]:
    """fit's step on a batch (xb, yb) of the source's batches: the gradient of the objective, then `safe_step` (which
    checks the loss and the new weights, and undoes a bad step); returns the batch's objective and
    metrics. Also returns which kind of step it is ("eager", "captured" or "moments") and why.

    Every kind gives the numbers of the eager step (`run_eagerly=True`, always taken then): the
    captured one to the bit, the moments to ~1e-9 relative in float64. Full batches of a single
    Linear layer on mse, in memory, with many rows and epochs, take their gradient from the data's
    moments (`gram.py`: one pass over the data for the whole fit), unless the data's rounding would
    make them differ; they serve while the layer keeps its weight and bias and trains both (a
    callback may change that: the next step is then captured). Otherwise a model of built-in layers
    trained on a built-in loss, on batches in memory (a memory map's batches are, once read), gets
    its step captured (`capture.py`): recorded on the first batch of each shape, then replayed, with
    the same numbers and a fraction of the Python work, under guards that record it again when the
    model or a number it read changes. Anything else (a Module or loss of the user's own, whose
    Python may branch on values; batches that are not in memory, summed a block at a time: Dask
    arrays, a memory map's batches larger than a block) runs eagerly.
    """
    optimizer = compiled.optimizer
    in_memory = source.batches_in_memory(batch_size)

    def eager(xb: Any, yb: Any) -> tuple[float, dict[str, float]]:
        if in_memory:
            loss, metrics = _batch_gradient(model, compiled, xb, yb)
        else:
            loss, metrics = _summed_gradient(model, compiled, source, (xb, yb))
        optimizer.safe_step(loss)
        return loss, metrics

    if compiled.run_eagerly:
        return eager, "eager", "compiled with run_eagerly=True"
    built_in = all(type(module) in (Linear, Sequential) for module in model.modules())
    if not in_memory or not built_in or compiled.loss not in LOSSES.values():
        why = (
            f"{source.kind} batches, summed a block at a time"
            if not in_memory
            else "a model of the user's own"
            if not built_in
            else "a loss of the user's own"
        )
        return eager, "eager", f"{why}: its Python is run as it is"

    def objective_and_prediction(xb: Tensor, yb: Tensor) -> tuple[Tensor, Tensor]:
        pred = model(xb)
        return compiled.objective(pred, yb), pred

    def objective(xb: Tensor, yb: Tensor) -> Tensor:
        return compiled.objective(model(xb), yb)

    # the prediction comes back only when metrics need it
    captured = capture.CapturedStep(objective_and_prediction if compiled.metrics else objective, optimizer, True)

    def captured_step(xb: Any, yb: Any) -> tuple[float, dict[str, float]]:
        if not compiled.metrics:
            return captured(xb, yb), {}
        loss, pred = captured(xb, yb)
        with no_grad():
            return loss, {name: metric(Tensor(pred), yb).item() for name, metric in compiled.metrics.items()}

    layer = model.layers[0] if type(model) is Sequential and len(model.layers) == 1 else model
    if not (
        batch_size >= len(source)
        and type(layer) is Linear
        and not source.reads_blocks
        and compiled.loss is losses.mse
        and set(compiled.metrics) <= {"mse"}
        and gram.pays_off(len(source), layer.in_features, epochs)
    ):
        return captured_step, "captured", "recorded once per batch shape, replayed after"
    assert isinstance(layer, Linear)
    moments = gram.GramStep(
        source.x, source.y, layer.weight, layer.bias, compiled.l2, optimizer, list(compiled.metrics)
    )
    if moments.refusal is not None:
        return captured_step, "captured", f"not from the moments: {moments.refusal}"

    def from_the_moments(xb: Any, yb: Any) -> tuple[float, dict[str, float]]:
        if moments.serves(layer.weight, layer.bias):
            result = moments(xb, yb)
            if result is not None:
                return result
        return captured_step(xb, yb)

    return from_the_moments, "moments", "full batches from the data's moments, one pass for the whole fit"


def _summed_gradient(
    model: Module, compiled: Compiled, source: Source, batch: tuple[Any, Any]
) -> tuple[float, dict[str, float]]:
    """`_batch_gradient` for a batch of a source that sums it a block (a Dask chunk) at a time."""
    logs, gradient = _means(model, compiled, _sums(model, compiled, source, True, "fit", batch))
    for p, g in zip(model.parameters(), gradient or []):  # (summed with the gradient: never None)
        p.grad = g
    return logs.pop("loss"), logs


def _batch_gradient(model: Module, compiled: Compiled, xb: Any, yb: Any) -> tuple[float, dict[str, float]]:
    """Set each parameter's .grad to the gradient of the objective on the batch (xb, yb) in memory;
    return the batch's objective and metrics."""
    compiled.optimizer.zero_grad()
    pred = model(Tensor(xb))
    loss = compiled.objective(pred, yb)
    loss.backward()
    with no_grad():
        metrics = {name: metric(pred, yb).item() for name, metric in compiled.metrics.items()}
    return loss.item(), metrics


# ----- data summed a block at a time: memory maps and Dask arrays -----


def _sums(
    model: Module, compiled: Compiled, source: Source, gradient: bool, caller: str, batch: tuple | None = None
) -> streams.Sums:
    """The Sums (loss, metrics, gradient, each times the rows) of all the source's rows, or of a batch of it."""
    return source.sums(model, compiled.loss, compiled.metrics, gradient, caller, batch)


def _means(model: Module, compiled: Compiled, total: streams.Sums) -> tuple[dict[str, float], list | None]:
    """The logs (objective, metrics) and the gradient of the objective (None when not summed) from the
    Sums of all the rows: each sum divided by the rows, and the L2 term added here, once."""
    params = model.parameters()
    logs = {"loss": total.loss / total.rows, **{name: value / total.rows for name, value in total.metrics.items()}}
    gradient = None if total.gradient is None else [g / total.rows for g in total.gradient]
    if compiled.l2:
        penalty = losses.l2_penalty(compiled.penalized, compiled.l2)
        logs["loss"] += penalty.item()
        if gradient is not None:  # autograd.grad gives zeros for the biases, which are not penalised
            gradient = [g + extra.data for g, extra in zip(gradient, autograd.grad(penalty, params))]
    if gradient is not None:
        gradient = [g.astype(p.dtype) for g, p in zip(gradient, params)]
    return logs, gradient


# ----- summary -----


def summary(model: Module, print_fn: Callable[[str], Any] | None = print) -> str:
    """A Keras-like table: layer name (type), output shape, parameter count; then the totals."""
    width = 65
    rows = []
    counts: dict[str, int] = {}
    # every layer once (a layer used twice is one layer with one set of weights), in registration order
    layers = [module for module in model.modules() if len(module.modules()) == 1]
    for layer in layers:
        kind = type(layer).__name__
        index = counts.get(kind, 0)
        counts[kind] = index + 1
        name = kind.lower() + (f"_{index}" if index else "")
        shape = layer.output_shape((None, None)) if hasattr(layer, "output_shape") else (None, None)
        count = sum(p.size for p in layer.parameters())
        rows.append(f" {f'{name} ({kind})':<28}{shape!s:<26}{count:<11}")
    total = sum(p.size for p in model.parameters())
    lines = [
        f'Model: "{type(model).__name__.lower()}"',
        "_" * width,
        f" {'Layer (type)':<28}{'Output Shape':<26}{'Param #':<11}",
        "=" * width,
        *rows,
        "=" * width,
        f"Total params: {total:,}",
        f"Trainable params: {total:,}",
        "Non-trainable params: 0",
        "_" * width,
    ]
    text = "\n".join(line.rstrip() for line in lines)
    if print_fn is not None:
        print_fn(text)
    return text
