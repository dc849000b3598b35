"""Optimizers: one class per update rule, state per parameter, updates in place.

The rules are PyTorch's (`torch.optim.SGD`, `Adam`, `RMSprop`; PyTorch's `alpha` is `rho` here).
An optimizer can be bound to parameters at once, `Adam(model.parameters(), lr=0.1)`, or made
unbound, `Adam(lr=0.1)`, and bound later (`model.compile` does it).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from tinygrad_lr.tensor import Tensor


class TrainingDivergedError(RuntimeError):
    """The loss or a parameter became non-finite; the last finite weights were put back.

    `reason` says what happened and where, without the advice that follows it in the message.
    """

    reason: str = ""


def _diverged(reason: str) -> TrainingDivergedError:
    error = TrainingDivergedError(
        f"{reason}. Lower the learning rate (tl.solvers.stable_learning_rate(X) is the bound for plain "
        "gradient descent on a linear model) or standardise the features"
    )
    error.reason = reason
    return error


class Optimizer:
    """Base class: keeps the parameters and one state dict per parameter; `update` is the rule.

    `step()` updates; `safe_step(loss)` does the same but never leaves a non-finite or
    half-updated parameter behind (see there). `steps` counts the updates made.
    """

    def __init__(self, params: Iterable[Tensor] | None, lr: float):
        _check_range("lr", lr, low=0.0, low_inclusive=False)
        self.lr = lr
        self.bind([] if params is None else params)

    def bind(self, params: Iterable[Tensor]) -> Optimizer:
        """Attach the parameters to update (and fresh state for each). Returns self."""
        params = list(params)
        for i, p in enumerate(params):
            if not isinstance(p, Tensor) or not p.requires_grad:
                raise TypeError(f"{type(self).__name__}: parameter {i} must be a Tensor with requires_grad=True")
        self.params: list[Tensor] = params
        self.state: list[dict[str, Any]] = [self.init_state(p.data) for p in params]
        self.steps = 0
        self._backup: list[np.ndarray] = []
        return self

    def init_state(self, param: np.ndarray) -> dict[str, Any]:
        return {}

    def update(self, param: np.ndarray, grad: np.ndarray, state: dict[str, Any]) -> None:
        raise NotImplementedError

    def step(self) -> None:
        """Update every parameter that has a gradient, in place."""
        if not self.params:
            raise RuntimeError(
                f"{type(self).__name__}.step(): no parameters; pass model.parameters() when creating the "
                "optimizer, or give it to model.compile(optimizer=...)"
            )
        for p, state in zip(self.params, self.state):
            if p.grad is not None:
                self.update(p.data, p.grad, state)
        self.steps += 1

    def safe_step(self, loss: Tensor | float | None = None) -> None:
        """`step()`, guarded: nothing non-finite and nothing half-done is ever left in the parameters.

        A non-finite `loss` stops before any update. If the update makes a parameter non-finite,
        or is interrupted (Ctrl-C), every parameter is put back as it was before this step.
        Divergence raises `TrainingDivergedError` naming the step.
        """
        if loss is not None:
            value = loss.item() if isinstance(loss, Tensor) else float(loss)
            if not np.isfinite(value):
                raise _diverged(f"the loss is {value} at step {self.steps + 1}; the parameters were not updated")
        if len(self._backup) != len(self.params):
            self._backup = [np.empty_like(p.data) for p in self.params]
        for saved, p in zip(self._backup, self.params):
            np.copyto(saved, p.data)
        try:
            self.step()
        except BaseException:
            self._restore()
            raise
        for i, p in enumerate(self.params):
            if not np.all(np.isfinite(p.data)):
                self._restore()
                self.steps -= 1
                raise _diverged(
                    f"parameter {i} (shape {p.shape}) became non-finite at step {self.steps + 1}; "
                    "the parameters were put back to their values before that step"
                )

    def _restore(self) -> None:
        for saved, p in zip(self._backup, self.params):
            np.copyto(p.data, saved)

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v}' for k, v in self.hyperparameters().items())})"

    def hyperparameters(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if k not in ("params", "state", "steps", "_backup")}


def _check_range(name: str, value: float, low: float, high: float = np.inf, low_inclusive: bool = True) -> None:
    ok = np.isfinite(value) and (value >= low if low_inclusive else value > low) and value < high
    if not ok:
        bound = f"{'>=' if low_inclusive else '>'} {low}" + (f" and < {high}" if high != np.inf else "")
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")


class GradientDescent(Optimizer):
    """Gradient descent, optionally with (Nesterov) momentum.

    buf ← momentum·buf + g   (buf = g at the first step)
    p   ← p - lr·(g + momentum·buf)  with Nesterov, else  p ← p - lr·buf  (p - lr·g without momentum)
    """

    def __init__(
        self, params: Iterable[Tensor] | None = None, lr: float = 0.01, momentum: float = 0.0, nesterov: bool = False
    ):
        _check_range("momentum", momentum, low=0.0)
        if nesterov and momentum == 0:
            raise ValueError("nesterov=True needs a momentum > 0")
        self.momentum, self.nesterov = momentum, nesterov
        super().__init__(params, lr)

    def init_state(self, param):
        return {"momentum_buffer": None}

    def update(self, param, grad, state):
        if self.momentum:
            buf = state["momentum_buffer"]
            if buf is None:
                buf = state["momentum_buffer"] = np.array(grad, dtype=param.dtype)
            else:
                buf *= self.momentum
                buf += grad
            grad = grad + self.momentum * buf if self.nesterov else buf
        param -= self.lr * grad


SGD = GradientDescent


class Adam(Optimizer):
    """Adam (Kingma & Ba), bias-corrected.

    m ← β1·m + (1-β1)·g,   v ← β2·v + (1-β2)·g²,   t ← t + 1
    p ← p - lr · m̂ / (√v̂ + eps)   with m̂ = m/(1-β1ᵗ), v̂ = v/(1-β2ᵗ)
    """

    def __init__(
        self,
        params: Iterable[Tensor] | None = None,
        lr: float = 0.001,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ):
        _check_range("betas[0]", betas[0], low=0.0, high=1.0)
        _check_range("betas[1]", betas[1], low=0.0, high=1.0)
        _check_range("eps", eps, low=0.0)
        self.betas, self.eps = tuple(betas), eps
        super().__init__(params, lr)

    def init_state(self, param):
        return {"step": 0, "m": np.zeros_like(param), "v": np.zeros_like(param)}

    def update(self, param, grad, state):
        beta1, beta2 = self.betas
        m, v = state["m"], state["v"]
        state["step"] = t = state["step"] + 1
        m *= beta1
        m += (1 - beta1) * grad
        v *= beta2
        v += (1 - beta2) * grad * grad
        # p ← p - lr·m̂/(√v̂ + eps), the bias corrections folded into two scalars
        denom = np.sqrt(v / (1 - beta2**t))
        denom += self.eps
        param -= (self.lr / (1 - beta1**t)) * m / denom


class RMSprop(Optimizer):
    """RMSprop (Hinton), PyTorch's form: eps added outside the square root.

    v ← ρ·v + (1-ρ)·g²
    p ← p - lr · g / (√v + eps)      or, with momentum:  buf ← momentum·buf + g/(√v + eps),  p ← p - lr·buf
    """

    def __init__(
        self,
        params: Iterable[Tensor] | None = None,
        lr: float = 0.001,
        rho: float = 0.9,
        eps: float = 1e-8,
        momentum: float = 0.0,
    ):
        _check_range("rho", rho, low=0.0, high=1.0)
        _check_range("eps", eps, low=0.0)
        _check_range("momentum", momentum, low=0.0)
        self.rho, self.eps, self.momentum = rho, eps, momentum
        super().__init__(params, lr)

    def init_state(self, param):
        return {"square_avg": np.zeros_like(param), "momentum_buffer": np.zeros_like(param) if self.momentum else None}

    def update(self, param, grad, state):
        square_avg = state["square_avg"]
        square_avg *= self.rho
        square_avg += (1 - self.rho) * grad * grad
        scaled = grad / (np.sqrt(square_avg) + self.eps)
        if self.momentum:
            buf = state["momentum_buffer"]
            buf *= self.momentum
            buf += scaled
            scaled = buf
        param -= self.lr * scaled
