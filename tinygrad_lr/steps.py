"""Which step `fit` takes, decided in one place, and why: eager, captured, or from the data's moments.

Every kind gives the numbers of the eager step (`compile(run_eagerly=True)` takes it always): a
captured step (`capture.py`) to the bit, the moments (`moments.py`) to ~1e-9 relative. `choose` picks
one for a fit from what it is given (the model, the loss, the data's source, the batch size) and
says why; fit keeps both in `history.step` and `history.step_reason`. A step takes a batch (xb, yb),
sets each parameter's gradient, steps the optimizer with `safe_step` (which checks the loss and the
new weights and undoes a bad step) and returns the batch's objective and metrics: a mean metric's value
(mse, mae), or R²'s sums (`losses.R2Sums`), which `Totals` adds up over an epoch's batches.

- *moments*: full batches of one Linear layer (or a subclass that keeps its forward) on mse (+ l2),
  with metrics among mse and r2 (mae is no function of the moments; with sample weights, no metrics:
  those stay unweighted), on any source — in memory (many rows), a memory map, a Dask array — with
  enough epochs to pay for the pass (`moments.pays_off`): one pass over the data for the whole fit,
  unless the data's rounding would make its numbers differ (the reason is then in `step_reason`). It
  serves while the layer keeps its weight and bias and trains both (a callback may change that: the
  next step is then captured, or eager on data read a block at a time). The validation objective and
  `GradientNormStop`'s gradient come from moments too (`objective_on`, `gradient`), each where its own
  rounding check lets it;
- *captured*: a model of built-in layers (subclasses that keep their forward included) on a built-in
  loss, on batches in memory (a memory map's batches are, once read): recorded on the first batch of
  each shape, then replayed, under guards that record it again when the model or a number it read
  changes;
- *eager*: anything else: a Module or loss of the user's own, whose Python may branch on values;
  batches that are not in memory, summed a block at a time (Dask arrays, a memory map's batches
  larger than a block).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tinygrad_lr import autograd, blockwise, capture, losses, moments, optim
from tinygrad_lr.nn import Linear, Module, Sequential
from tinygrad_lr.sources import Source
from tinygrad_lr.tensor import Tensor, no_grad

__all__ = [
    "HIGHER_IS_BETTER",
    "LOSSES",
    "METRICS",
    "METRIC_NAMES",
    "Compiled",
    "Step",
    "Totals",
    "choose",
    "evaluated",
    "means",
    "objective_on",
]

# compile's names for the losses and metrics
LOSSES: dict[str, Callable[[Tensor, Any], Tensor]] = {
    "mse": losses.mse,
    "mean_squared_error": losses.mse,
    "mae": losses.mae,
    "mean_absolute_error": losses.mae,
}
METRIC_NAMES = {
    "mse": "mse",
    "mean_squared_error": "mse",
    "mae": "mae",
    "mean_absolute_error": "mae",
    "r2": "r2",
    "r2_score": "r2",  # Keras' name for R2Score
}
# each metric's function: a mean over the rows as a scalar Tensor, or R²'s sums (not a mean: see `Totals`)
METRICS: dict[str, Callable[[Tensor, Any], Any]] = {"mse": losses.mse, "mae": losses.mae, "r2": losses.r2_sums}
HIGHER_IS_BETTER = frozenset({"r2"})  # the metrics that improve upward (Keras' direction "up"); losses go down


@dataclass(frozen=True, eq=False)
class Compiled:
    """What `compile` chose: the objective is `loss(pred, y) + l2 · Σ W²` over every Linear weight.
    Frozen: a captured step reads it (by identity), and what cannot change needs no guard (compile
    again instead)."""

    loss: Callable[[Tensor, Any], Tensor]
    optimizer: optim.Optimizer
    metrics: dict[str, Callable[[Tensor, Any], Any]] = field(default_factory=dict)  # name -> METRICS' function
    l2: float = 0.0
    penalized: list[Tensor] = field(default_factory=list)
    run_eagerly: bool = False

    def objective(self, pred: Tensor, y: Any, w: Any = None) -> Tensor:
        """loss(pred, y) (with per-sample weights w, the built-in losses' sample_weight) + the L2 term."""
        loss = self.loss(pred, y) if w is None else self.loss(pred, y, sample_weight=w)  # type: ignore[call-arg]
        return loss + losses.l2_penalty(self.penalized, self.l2) if self.l2 else loss


@dataclass(frozen=True)
class Step:
    """A step for a fit: `run(xb, yb[, wb]) -> (objective, metrics)`, its kind ("eager", "captured",
    "moments", "newton") and why it was chosen. wb: the batch's sample weights, when the data have them.
    A step from the moments also answers the fit's validation objective and its gradient (`objective_on`,
    `gradient`) from moments; any other answers None, and they are computed from the rows."""

    run: Callable[..., tuple[float, dict[str, float]]]
    kind: str
    reason: str
    moments_fit: _MomentsFit | None = None

    def objective_on(self, source: Source, caller: str) -> tuple[float, dict[str, Any]] | None:
        """The objective and metrics on `source` from its moments, as `evaluated` gives them, or None."""
        return None if self.moments_fit is None else self.moments_fit.objective_on(source, caller)

    def gradient(self, source: Source) -> list | None:
        """The gradient on the training data from their moments, or None."""
        return None if self.moments_fit is None else self.moments_fit.gradient(source)


def _keeps_built_in_code(model: Module) -> bool:
    """Whether every module of the model runs tinygrad_lr's own forward: Linear's and Sequential's,
    also in a subclass that does not override it (nor `__call__`)."""
    return all(
        type(module).forward in (Linear.forward, Sequential.forward) and type(module).__call__ is Module.__call__
        for module in model.modules()
    )


def choose(model: Module, compiled: Compiled, source: Source, batch_size: int, epochs: int) -> Step:
    """The step fit takes on the batches of `source` (see the module)."""
    optimizer = compiled.optimizer
    in_memory = source.batches_in_memory(batch_size)

    def eager(xb: Any, yb: Any, wb: Any = None) -> tuple[float, dict[str, float]]:
        if in_memory:
            loss, metrics = _batch_gradient(model, compiled, xb, yb, wb)
        else:
            loss, metrics = _summed_gradient(model, compiled, source, (xb, yb) if wb is None else (xb, yb, wb))
        optimizer.safe_step(loss)
        return loss, metrics

    if isinstance(optimizer, optim.Newton):
        if not in_memory:
            raise ValueError(
                f"fit: Newton's step needs its batches in memory (its Hessian is taken through the graph of the whole "
                f"batch); this {source.kind} data's batches are summed a block at a time: use another optimizer"
            )

        def newton(xb: Any, yb: Any, wb: Any = None) -> tuple[float, dict[str, float]]:
            outputs: list[Tensor] = []

            def closure() -> Tensor:  # (called once per step, before the update: its prediction is the batch's)
                outputs.append(model(Tensor(xb)))
                return compiled.objective(outputs[-1], yb, wb)

            loss = optimizer.step(closure)
            return loss.item(), _metric_values(compiled, outputs[0], yb)

        return Step(newton, "newton", "Newton's method steps from a closure: the batch's loss and its exact Hessian")
    if compiled.run_eagerly:
        return Step(eager, "eager", "compiled with run_eagerly=True")
    built_in = _keeps_built_in_code(model)
    full_batch_of_blocks = source.reads_blocks and batch_size >= len(source)
    if not (in_memory or full_batch_of_blocks) or not built_in or compiled.loss not in LOSSES.values():
        if not in_memory:
            return Step(eager, "eager", f"batches of {source.kind} data, each summed a block at a time")
        why = "a model of the user's own" if not built_in else "a loss of the user's own"
        return Step(eager, "eager", f"{why}: its Python is run as it is")

    def objective_and_prediction(xb: Tensor, yb: Tensor, *wb: Tensor) -> tuple[Tensor, Tensor]:
        pred = model(xb)
        return compiled.objective(pred, yb, *wb), pred

    def objective(xb: Tensor, yb: Tensor, *wb: Tensor) -> Tensor:
        return compiled.objective(model(xb), yb, *wb)

    # the prediction comes back only when metrics need it; the weights are a third input when there are any
    captured = capture.CapturedStep(objective_and_prediction if compiled.metrics else objective, optimizer, True)

    def captured_step(xb: Any, yb: Any, *wb: Any) -> tuple[float, dict[str, float]]:
        if not compiled.metrics:
            return captured(xb, yb, *wb), {}
        loss, pred = captured(xb, yb, *wb)
        return loss, _metric_values(compiled, Tensor(pred), yb)

    fallback = captured_step if in_memory else eager
    layer = model.layers[0] if isinstance(model, Sequential) and len(model.layers) == 1 else model
    if not (batch_size >= len(source) and isinstance(layer, Linear) and compiled.loss is losses.mse):
        return _usual(fallback, source, in_memory)
    if not (source.has_moments() or moments.pays_off(len(source), layer.in_features, epochs, source.reads_blocks)):
        return _usual(fallback, source, in_memory)
    refusal = _why_not_the_moments(compiled, source)
    moment_step = None
    if refusal is None:
        moment_step = moments.GramStep(
            source.moments("fit"), layer.weight, layer.bias, compiled.l2, optimizer, list(compiled.metrics)
        )
        refusal = moment_step.refusal
    if moment_step is None or refusal is not None:
        usual = _usual(fallback, source, in_memory)
        return Step(usual.run, usual.kind, f"not from the moments: {refusal}; {usual.reason}")

    def from_the_moments(xb: Any, yb: Any, *wb: Any) -> tuple[float, dict[str, float]]:
        if moment_step.serves(layer.weight, layer.bias):
            result = moment_step(xb, yb, *wb)
            if result is not None:
                return result
        return fallback(xb, yb, *wb)

    return Step(
        from_the_moments,
        "moments",
        f"full batches from the data's moments ({source.kind}): one pass over the data for the whole fit",
        _MomentsFit(layer, moment_step, source, compiled),
    )


def _usual(step: Callable[..., tuple[float, dict[str, float]]], source: Source, in_memory: bool) -> Step:
    """The step fit takes when not from the moments: captured on batches in memory, else eager."""
    if not in_memory:
        return Step(step, "eager", f"batches of {source.kind} data, each summed a block at a time")
    return Step(step, "captured", "recorded once per batch shape, replayed after")


def _why_not_the_moments(compiled: Compiled, source: Source) -> str | None:
    """Why a full-batch fit of one Linear layer on mse cannot take its steps from the moments, or None."""
    others = sorted(set(compiled.metrics) - {"mse", "r2"})
    if others:
        return f"the metric {', '.join(others)} is no function of the data's moments (mse and r2 are)"
    if source.w is not None and compiled.metrics:
        return "with sample weights the loss is weighted but the metrics are not: the moments would be needed twice"
    return None


class _MomentsFit:
    """A fit taking its steps from the moments (`choose`): its validation objective and its gradient
    (`GradientNormStop`) come from moments too, while the layer keeps the weight and bias it had."""

    def __init__(self, layer: Linear, step: moments.GramStep, source: Source, compiled: Compiled):
        self.layer, self.step, self.source, self.compiled = layer, step, source, compiled
        self.weight, self.bias = step.weight, step.bias
        self.evaluators: dict[int, tuple[Source, moments.GramStep]] = {}

    def _same_layer(self) -> bool:
        return self.layer.weight is self.weight and self.layer.bias is self.bias

    def objective_on(self, source: Source, caller: str) -> tuple[float, dict[str, Any]] | None:
        """The objective and metrics on `source` (validation data) from its moments (one pass, the first
        time), as `evaluated` gives them; None where they cannot give the eager numbers."""
        if not self._same_layer():
            return None
        known = self.evaluators.get(id(source))
        if known is None or known[0] is not source:
            if _why_not_the_moments(self.compiled, source) is not None:
                return None
            metrics = list(self.compiled.metrics)
            evaluator = moments.GramStep(
                source.moments(caller), self.weight, self.bias, self.compiled.l2, None, metrics
            )
            known = self.evaluators[id(source)] = (source, evaluator)
        return known[1].objective()

    def gradient(self, source: Source) -> list | None:
        """The gradient on the training data, from their moments; None where they cannot give the eager one."""
        if source is not self.source or not self._same_layer():
            return None
        return self.step.gradient()  # (the weight's, then the bias's: the layer's parameters in order)


def _summed_gradient(
    model: Module, compiled: Compiled, source: Source, batch: tuple[Any, ...]
) -> tuple[float, dict[str, float]]:
    """`_batch_gradient` for a batch of a source that sums it a block (a Dask chunk) at a time."""
    logs, gradient = means(model, compiled, _sums(model, compiled, source, True, "fit", batch))
    for p, g in zip(model.parameters(), gradient or []):  # (summed with the gradient: never None)
        p.grad = g
    return logs.pop("loss"), logs


def _batch_gradient(
    model: Module, compiled: Compiled, xb: Any, yb: Any, wb: Any = None
) -> tuple[float, dict[str, float]]:
    """Set each parameter's .grad to the gradient of the objective on the batch (xb, yb) in memory (its
    samples weighted by wb, if given); return the batch's objective and metrics."""
    compiled.optimizer.zero_grad()
    pred = model(Tensor(xb))
    loss = compiled.objective(pred, yb, wb)
    loss.backward()
    return loss.item(), _metric_values(compiled, pred, yb)


def _metric_values(compiled: Compiled, pred: Tensor, y: Any) -> dict[str, Any]:
    """Each metric on a batch: the value of a mean (mse, mae), or R²'s sums (`losses.R2Sums`), as they add up."""
    values = {}
    with no_grad():
        for name, metric in compiled.metrics.items():
            value = metric(pred, y)
            values[name] = value.item() if isinstance(value, Tensor) else value
    return values


class Totals:
    """Logs over several batches, as Keras totals them: the objective and each mean metric weighted by
    the batch's rows, R² from its sums over all the rows (the R² of the whole is no mean of the
    batches' R²s)."""

    def __init__(self) -> None:
        self.rows = 0
        self.loss = 0.0
        self.metrics: dict[str, Any] = {}

    def add(self, loss: float, metrics: dict[str, Any], rows: int) -> None:
        """A batch of `rows` rows: its objective and its metrics, as a step returns them."""
        self.rows += rows
        self.loss += loss * rows
        for name, value in metrics.items():
            part = value if isinstance(value, losses.R2Sums) else value * rows
            self.metrics[name] = self.metrics[name] + part if name in self.metrics else part

    def logs(self) -> dict[str, float]:
        """{"loss": ..., metric: ...} over all the rows added."""
        return {"loss": self.loss / self.rows, **_finished(self.metrics, self.rows)}


def _finished(metrics: dict[str, Any], rows: int = 1) -> dict[str, float]:
    """Metrics totalled over `rows` rows (a mean metric's value times the rows, or R²'s sums) as floats;
    with `rows` 1, metrics as a step returns them (a mean's value, or R²'s sums)."""
    return {
        name: value.result() if isinstance(value, losses.R2Sums) else value / rows for name, value in metrics.items()
    }


def objective_on(
    model: Module, compiled: Compiled, source: Source, caller: str, step: Step | None = None
) -> dict[str, float]:
    """The objective and the metrics on all of the source's rows (no gradient), as fit's logs. In a fit that
    steps from the moments (`step`), from the source's own moments, where they give the eager numbers:
    validation costs one pass over its rows for the whole fit."""
    found = None if step is None else step.objective_on(source, caller)
    loss, metrics = evaluated(model, compiled, source, caller) if found is None else found
    return {"loss": loss, **_finished(metrics)}


def evaluated(model: Module, compiled: Compiled, source: Source, caller: str) -> tuple[float, dict[str, Any]]:
    """The objective and the metrics on all of the source's rows (no gradient), as a step returns them
    (R²'s as sums: `Totals` adds those of several sources up)."""
    if source.reads_blocks:
        logs = means(model, compiled, _sums(model, compiled, source, False, caller))[0]
        return logs.pop("loss"), logs
    x, y = source.x, source.y
    with no_grad():
        pred = model(Tensor(x))
        loss = compiled.objective(pred, y, source.w).item()
    return loss, _metric_values(compiled, pred, y)


def gradient(model: Module, compiled: Compiled, source: Source, step: Step | None = None) -> list:
    """The gradient of the objective over all of the source's rows, one array per parameter; no
    parameter's .grad is touched. In a fit that steps from the moments of `source` (`step`), from them
    (where they give the eager gradient): `GradientNormStop` costs no pass."""
    found = None if step is None else step.gradient(source)
    if found is not None:
        return found
    if source.reads_blocks:
        return means(model, compiled, _sums(model, compiled, source, True, "fit"))[1] or []
    objective = compiled.objective(model(Tensor(source.x)), source.y, source.w)
    return [g.data for g in autograd.grad(objective, model.parameters())]


# ----- data summed a block at a time: memory maps and Dask arrays -----


def _sums(
    model: Module, compiled: Compiled, source: Source, gradient: bool, caller: str, batch: tuple | None = None
) -> blockwise.Sums:
    """The Sums (loss, metrics, gradient, each times the rows) of all the source's rows, or of a batch of it."""
    return source.sums(model, compiled.loss, compiled.metrics, gradient, caller, batch)


def means(model: Module, compiled: Compiled, total: blockwise.Sums) -> tuple[dict[str, Any], list | None]:
    """The logs (objective, metrics) and the gradient of the objective (None when not summed) from the
    Sums of all the rows: each sum divided by the rows (R²'s sums kept as they are, as a step returns
    them), and the L2 term added here, once."""
    params = model.parameters()
    metrics = {
        name: value if isinstance(value, losses.R2Sums) else value / total.rows for name, value in total.metrics.items()
    }
    logs: dict[str, Any] = {"loss": total.loss / total.rows, **metrics}
    gradient = None if total.gradient is None else [g / total.rows for g in total.gradient]
    if compiled.l2:
        penalty = losses.l2_penalty(compiled.penalized, compiled.l2)
        logs["loss"] += penalty.item()
        if gradient is not None:  # autograd.grad gives zeros for the biases, which are not penalised
            gradient = [g + extra.data for g, extra in zip(gradient, autograd.grad(penalty, params))]
    if gradient is not None:
        gradient = [g.astype(p.dtype) for g, p in zip(gradient, params)]
    return logs, gradient
