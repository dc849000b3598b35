"""tinygrad_lr, used the two ways its README shows: a hand-written training loop, and `model.fit`.

Both start from W = 0, b = 0 and train on the workload's batch schedule.

`model.fit` shuffles by itself: with `shuffle=True, seed=s` it draws one permutation per epoch from
`np.random.default_rng(s)` — the rule `workloads.make_schedule` follows. `prepare` checks that fit's
own batching (`tl.data.batch_indices`) reproduces the workload's index lists exactly; then one plain
`model.fit(...)` call trains on the same batches as everybody else. Should that ever stop being
true, it falls back to one `fit(epochs=1, shuffle=False)` call per epoch on rows put in that
epoch's order beforehand (the reordering copy is then timed as part of fit).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import numpy as np
from workloads import Result, Workload

import tinygrad_lr as tl


def available() -> str | None:
    return None


def _model(workload: Workload) -> tl.nn.Linear:
    model = tl.nn.Linear(workload.X.shape[1], 1, dtype=workload.dtype)
    model.set_weights([np.zeros_like(p.data) for p in model.parameters()])
    return model


def _weights(model: tl.nn.Linear) -> tuple[np.ndarray, np.ndarray]:
    weight, bias = model.get_weights()
    return weight, bias


def _train_with(workload: Workload, make_step: Callable[..., Callable]) -> Callable[[], Result]:
    """A training run on the workload's schedule; `make_step(model, optimizer, objective)` gives the
    function that takes one optimizer step on a batch and returns its loss (a float)."""
    X, y, l2 = workload.X, workload.y, workload.l2
    X_val, y_val = workload.X_val, workload.y_val
    make_optimizer = tl.optim.BY_NAME[workload.optimizer][0]

    def train() -> Result:
        model = _model(workload)
        optimizer = make_optimizer(model.parameters(), lr=workload.lr)

        def objective(pred, target):
            loss = tl.losses.mse(pred, target)
            return loss + tl.losses.l2_penalty([model.weight], l2) if l2 else loss

        step = make_step(model, optimizer, objective)
        losses, val_losses = [], []
        for epoch in workload.schedule:
            total = seen = 0
            for batch in epoch:
                yb = y[batch]
                total += step(X[batch], yb) * len(yb)
                seen += len(yb)
            losses.append(total / seen)
            if X_val is not None:
                with tl.no_grad():
                    val_losses.append(objective(model(X_val), y_val).item())
        return Result.of(*_weights(model), losses, val_losses)

    return train


def _eager_step(optimizer: tl.optim.Optimizer, loss_of: Callable) -> Callable:
    """The step a user writes: zero_grad, the loss of the batch, backward, step; returns the loss."""

    def step(xb, yb):
        optimizer.zero_grad()
        loss = loss_of(xb, yb)
        loss.backward()
        optimizer.step()
        return loss.item()

    return step


class _Loop:
    """A hand-written loop on the workload's schedule; each subclass says how it takes a step (`make_step`)."""

    available = staticmethod(available)

    @classmethod
    def prepare(cls, workload: Workload) -> Callable[[], Result]:
        return _train_with(workload, cls.make_step)

    @staticmethod
    def make_step(model: tl.nn.Linear, optimizer: tl.optim.Optimizer, objective: Callable) -> Callable:
        raise NotImplementedError


class Loop(_Loop):
    """The PyTorch-style loop a user writes: zero_grad, forward, loss, backward, step (eager)."""

    NAME = "tl-loop"
    LABEL = "tinygrad_lr loop"

    @staticmethod
    def make_step(model, optimizer, objective):
        return _eager_step(optimizer, lambda xb, yb: objective(model(tl.Tensor(xb)), yb))


class Captured(_Loop):
    """The same loop with its step captured: `tl.capture_step(fn, optimizer)`, recorded once, replayed after."""

    NAME = "tl-captured"
    LABEL = "tinygrad_lr captured loop"

    @staticmethod
    def make_step(model, optimizer, objective):
        return tl.capture_step(lambda xb, yb: objective(model(xb), yb), optimizer)


class Raw(_Loop):
    """The captured loop on raw tensors, no Linear: `mse(xb @ W + b, yb)`, its step given to `tl.capture_step`."""

    NAME = "tl-raw"
    LABEL = "tinygrad_lr raw-tensor loop"

    @staticmethod
    def make_step(model, optimizer, objective):
        W, b = model.weight, model.bias
        return tl.capture_step(lambda xb, yb: objective(xb @ W + b, yb), optimizer)


def fit_reproduces_schedule(workload: Workload) -> bool:
    """True when `fit(shuffle=..., seed=workload.seed)` will draw exactly the workload's batches."""
    n = len(workload.X)
    rng = np.random.default_rng(workload.seed)
    for epoch in workload.schedule:
        drawn = tl.data.batch_indices(n, workload.batch_size, shuffle=workload.shuffle, rng=rng)
        if len(drawn) != len(epoch):
            return False
        for mine, theirs in zip(drawn, epoch):
            if isinstance(theirs, slice):
                if not isinstance(mine, slice) or mine != theirs:
                    return False
            elif isinstance(mine, slice) or not np.array_equal(mine, theirs):
                return False
    return True


class Fit:
    """Keras style: compile, then one `fit` call with verbose=0."""

    NAME = "tl-fit"
    LABEL = "tinygrad_lr fit"
    available = staticmethod(available)
    # set by prepare: how fit was given the schedule (shown in the results)
    schedule_mode: ClassVar[dict[str, str]] = {}

    @staticmethod
    def prepare(workload: Workload) -> Callable[[], Result]:
        make_optimizer = tl.optim.BY_NAME[workload.optimizer][0]
        if workload.X_val is not None:
            # fit cuts the validation rows off the end itself, as Keras' validation_split does
            x_all = np.concatenate([workload.X, workload.X_val])
            y_all = np.concatenate([workload.y, workload.y_val])
            validation = {"validation_split": workload.validation_split}
        else:
            x_all, y_all, validation = workload.X, workload.y, {}

        def compiled_model() -> tl.nn.Linear:
            model = _model(workload)
            model.compile(loss="mse", optimizer=make_optimizer(lr=workload.lr), l2=workload.l2)
            return model

        if fit_reproduces_schedule(workload):
            Fit.schedule_mode[workload.name] = (
                "one fit call, shuffle=True with the schedule's seed"
                if workload.shuffle
                else "one fit call, shuffle=False"
            )

            def train() -> Result:
                model = compiled_model()
                history = model.fit(
                    x_all,
                    y_all,
                    epochs=workload.epochs,
                    batch_size=workload.batch_size,
                    shuffle=workload.shuffle,
                    seed=workload.seed,
                    verbose=0,
                    **validation,
                )
                return Result.of(*_weights(model), history.history["loss"], history.history.get("val_loss", []))

            return train

        Fit.schedule_mode[workload.name] = "one fit call per epoch on pre-permuted rows, shuffle=False"
        orders = [np.concatenate([np.arange(len(workload.X))[b] for b in epoch]) for epoch in workload.schedule]
        n_val = 0 if workload.X_val is None else len(workload.X_val)

        def train() -> Result:
            model = compiled_model()
            losses, val_losses = [], []
            for order in orders:
                order = np.concatenate([order, np.arange(len(workload.X), len(workload.X) + n_val)])
                history = model.fit(
                    x_all[order], y_all[order], epochs=1, batch_size=workload.batch_size, shuffle=False,
                    verbose=0, **validation,
                )  # fmt: skip
                losses += history.history["loss"]
                val_losses += history.history.get("val_loss", [])
            return Result.of(*_weights(model), losses, val_losses)

        return train
