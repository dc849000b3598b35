"""Keras-style training: compile, fit, evaluate, predict, summary.

`fit` is the training loop a user would write by hand (zero_grad, forward, loss, backward,
step), with Keras' conventions for batches, validation and the per-epoch history.
"""

from __future__ import annotations

import sys
import time
import warnings
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from tinygrad_lr import checks, data, losses, optim, solvers, steps
from tinygrad_lr.callbacks import Callback, CallbackList, History, ProgressBar, progress_line
from tinygrad_lr.nn import Linear, Module
from tinygrad_lr.optim import TrainingDivergedError
from tinygrad_lr.sources import Source, as_source

__all__ = ["as_features", "as_samples", "compile", "evaluate", "fit", "gradient_norm", "predict", "summary"]


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
    an optimizer instance, bound here to the model's parameters. metrics: "mse", "mae", "r2" (Keras'
    `R2Score`: the R² of all the epoch's rows, from sums over its batches, not a mean of their R²s).
    l2: adds `l2 · Σ W²` over every Linear weight (never the biases) to the loss.
    run_eagerly: (Keras' name) every step of `fit` a plain eager one, no captured step and no shortcut
    through the data's moments: the reference that those faster paths must equal.
    """
    if not isinstance(run_eagerly, (bool, np.bool_)):
        raise TypeError(f"compile: run_eagerly must be True or False, got {run_eagerly!r}")
    if isinstance(loss, str):
        if loss not in steps.LOSSES:
            raise ValueError(f"compile: unknown loss {loss!r}; choose one of {sorted(steps.LOSSES)} or pass a function")
        loss = steps.LOSSES[loss]
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
        if metric not in steps.METRIC_NAMES:
            raise ValueError(f"compile: unknown metric {metric!r}; choose from {sorted(steps.METRIC_NAMES)}")
        chosen[steps.METRIC_NAMES[metric]] = steps.METRICS[steps.METRIC_NAMES[metric]]
    l2 = checks.check_number("compile: l2", l2, low=0.0)
    if not model.parameters():
        raise ValueError("compile: the model has no trainable parameters")
    optimizer.bind(model.parameters())
    weights = {id(layer.weight): layer.weight for layer in _linear_layers(model)}  # a shared weight once
    penalized = list(weights.values())
    model.compiled = steps.Compiled(
        loss=loss, optimizer=optimizer, metrics=chosen, l2=l2, penalized=penalized, run_eagerly=bool(run_eagerly)
    )


def _compiled(model: Module, caller: str) -> steps.Compiled:
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


def _checked_samples(values: Any, name: str, caller: str, dtype: np.dtype) -> np.ndarray:
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
    Dask array stays 1-D: see `Source.as_columns`)."""
    params = model.parameters()
    if not params:
        raise ValueError(
            f"{caller}: the model has no parameters (no layers with weights), so nothing to compute; "
            "give it layers, e.g. tl.nn.Sequential([tl.nn.Linear(1, 1)])"
        )
    dtype = params[0].dtype
    x = _checked_samples(x, "x", caller, dtype)
    x = as_source(x).as_columns()
    columns = _columns(x)
    expected = _feature_count(model)
    if expected is not None and columns != expected:
        raise ValueError(
            f"{caller}: x has shape {x.shape}, {columns} feature(s) per sample, but the model takes "
            f"{expected}" + ("; a 1-D x is read as n samples of one feature" if columns == 1 else "")
        )
    return x


def _columns(array: Any) -> int:
    """Columns of an (n, columns) array; a 1-D one is one column."""
    return array.shape[1] if array.ndim == 2 else 1


def as_samples(model: Module, x: Any, y: Any, caller: str = "fit") -> tuple[np.ndarray, np.ndarray]:
    """(x, y) checked against the model: x (n, features), y (n, outputs), the model's dtype (a 1-D
    Dask array stays 1-D, one column: see `Source.as_columns`)."""
    x = as_features(model, x, caller)
    y = as_source(_checked_samples(y, "y", caller, model.parameters()[0].dtype)).as_columns()
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


def evaluate(
    model: Module, x: Any, y: Any, batch_size: int | None = None, verbose: int = 0, sample_weight: Any = None
) -> float | dict:
    """The compiled objective (loss plus any L2 term) on (x, y): a float, or a dict with the metrics.

    With `batch_size`, computed a batch at a time and averaged weighted by batch size (as Keras);
    memory maps and Dask arrays are always summed a block (a chunk) at a time. `sample_weight` (n,)
    weighs each sample's loss as in `fit` (the metrics stay unweighted, as Keras' `metrics`).
    `verbose=1` prints Keras' progress line with the results."""
    compiled = _compiled(model, "evaluate")
    x, y = as_samples(model, x, y, "evaluate")
    weights = _sample_weight(compiled, sample_weight, len(x), "evaluate")
    source = as_source(x, y, model.parameters()[0].dtype, weights)
    batches = _batches("evaluate", len(source), batch_size)
    start = time.perf_counter()
    if len(batches) == 1 or source.reads_blocks:
        logs = steps.objective_on(model, compiled, source, "evaluate")
    else:  # Keras' average over batches, weighted by their sizes (R² from the sums of all of them)
        x, y, w = source.x, source.y, source.w
        totals = steps.Totals()
        for index in batches:
            part = type(source)(x[index], y[index], source.dtype, None if w is None else w[index])  # (in memory)
            totals.add(*steps.evaluated(model, compiled, part, "evaluate"), len(part))
        logs = totals.logs()
    if verbose:
        print(progress_line(len(batches), len(batches), time.perf_counter() - start, logs))
    return logs["loss"] if len(logs) == 1 else logs


def gradient_norm(model: Module, compiled: steps.Compiled, x: Any, y: Any, step: steps.Step | None = None) -> float:
    """‖∇θ objective‖ over the whole of (x, y) (arrays as `as_samples` gives them, or a Source); no
    parameter's .grad is touched. `step`: the step of the fit running, which may know it (`steps.gradient`)."""
    source = x if isinstance(x, Source) else as_source(x, y, model.parameters()[0].dtype)
    gradients = steps.gradient(model, compiled, source, step)
    return float(np.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2)) for g in gradients)))


def _divergence_hint(model: Module, source: Source, compiled: steps.Compiled) -> str:
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
    sample_weight: Any = None,
) -> History:
    """Train the compiled model on (x, y) with Keras' semantics; returns a History.

    x: (n, features), or (n,) for one feature; y: (n,) or (n, outputs); in memory, memory-mapped
    (read a block at a time) or Dask arrays (each step's gradient computed on the chunks, where
    they live), on which `batch_size=None` is the full batch. `validation_split=s` keeps
    the first floor(n·(1−s)) samples for training and the rest for validation, split before
    any shuffling; only the training part is shuffled, each epoch, from `seed`. An epoch's loss
    is the batch-size-weighted mean of its batch losses (L2 term included). `sample_weight` (n,)
    weighs each sample's loss, Keras 3's rule: a batch's loss is sum(w·loss)/batch size; the
    validation split cuts the weights as it cuts x and y (and `validation_data` may be a triple
    (x_val, y_val, w_val)); the weights are held in memory, whatever the kind of x and y. The metrics
    stay unweighted, as Keras' `metrics`.

    If the loss or a parameter becomes non-finite, the last finite weights are put back and
    `TrainingDivergedError` is raised (or, with `raise_on_divergence=False`, a warning is given
    and the History so far returned). Ctrl-C ends training between steps: the weights of the last
    completed step stay, `model.history.interrupted` is True, and the KeyboardInterrupt goes on.
    """
    compiled = _compiled(model, "fit")
    epochs = checks.check_count("fit: epochs", epochs)
    user_callbacks = _callback_list(callbacks)
    x, y = as_samples(model, x, y, "fit")
    w = _sample_weight(compiled, sample_weight, len(x), "fit")
    w_val = None
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise ValueError("fit: validation_data must be a pair (x_val, y_val) or a triple (x_val, y_val, w_val)")
        x_val, y_val = as_samples(model, *validation_data[:2], "fit (validation_data)")
        if len(validation_data) == 3:
            w_val = _sample_weight(compiled, validation_data[2], len(x_val), "fit (validation_data)")
    elif validation_split:
        (x, y), (x_val, y_val) = data.validation_split(x, y, validation_split)
        if w is not None:
            w, w_val = w[: len(x)], w[len(x) :]
    else:
        x_val, y_val = None, None
    dtype = model.parameters()[0].dtype
    # the weights in the model's dtype, as x and y are: every step then sees the same arrays, captured or not
    w, w_val = (None if v is None else v.astype(dtype) for v in (w, w_val))
    source = as_source(x, y, dtype, w)
    validation = None if x_val is None else as_source(x_val, y_val, dtype, w_val)
    n = len(source)
    if batch_size is None:  # Keras' 32 in memory; the full batch on data read a block at a time
        batch_size = n if source.reads_blocks else 32
    batch_size = checks.check_count("fit: batch_size", batch_size)
    batches_per_epoch = -(-n // batch_size)
    rng = np.random.default_rng(seed)

    history = History()
    model.history = history
    params = {"epochs": epochs, "steps": batches_per_epoch, "samples": n, "verbose": verbose}
    # Keras' order: the user's callbacks first, so that what they log (a learning rate) reaches the history
    hooks = CallbackList([*user_callbacks, history, *([ProgressBar()] if verbose else [])], model, params)
    model.stop_training = False
    hooks.on_train_begin({})
    chosen = steps.choose(model, compiled, source, batch_size, epochs)
    step, history.step, history.step_reason = chosen.run, chosen.kind, chosen.reason
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
                logs = _train_epoch(model, step, batches, hooks, epoch)
                if validation is not None:
                    val_logs = steps.objective_on(model, compiled, validation, "fit (validation)", chosen)
                    logs.update({f"val_{name}": value for name, value in val_logs.items()})
                if needs_gradient_norm:
                    logs["grad_norm"] = gradient_norm(model, compiled, source, None, chosen)
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


def _sample_weight(compiled: steps.Compiled, sample_weight: Any, n: int, caller: str) -> np.ndarray | None:
    """Checked per-sample weights (n,), or None; a loss of the user's own cannot take them."""
    if sample_weight is None:
        return None
    if compiled.loss not in steps.LOSSES.values():
        raise ValueError(f"{caller}: sample_weight needs one of the built-in losses ({', '.join(steps.LOSSES)})")
    return checks.check_sample_weight(f"{caller}: sample_weight", sample_weight, n)


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
    step: Callable[[Any, Any], tuple[float, dict[str, float]]],
    batches: Iterable[tuple[Any, ...]],
    callbacks: CallbackList,
    epoch: int,
) -> dict[str, float]:
    """One pass over the batches, (x, y) pairs, taking a `step` on each. Returns the epoch's logs."""
    totals = steps.Totals()
    batch_logs = callbacks.wants_batch_logs
    for batch, (xb, yb, *wb) in enumerate(batches):
        try:
            loss, metrics = step(xb, yb, *wb)
        except TrainingDivergedError as error:
            error.epoch, error.batch = epoch + 1, batch + 1
            raise
        size = len(yb)
        totals.add(loss, metrics, size)
        if batch_logs:
            callbacks.on_batch_end(batch, {"batch": batch, "size": size, "loss": totals.loss / totals.rows})
        if model.stop_training:
            break
    return totals.logs()


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


# Every model's compile, fit, evaluate, predict and summary (nn.Module's) hand over to this module.
Module.trainer = sys.modules[__name__]
