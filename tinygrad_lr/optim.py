"""Optimizers: one class per update rule, state per parameter, updates in place.

Each rule is its `direction` method, written as the paper's algorithm; `Optimizer` applies it.

The rules are PyTorch's (`torch.optim.SGD`, `Adam`, `RMSprop`; PyTorch's `alpha` is `rho` here).
An optimizer can be bound to parameters at once, `Adam(model.parameters(), lr=0.1)`, or made
unbound, `Adam(lr=0.1)`, and bound later (`model.compile` does it).
"""

from __future__ import annotations

import itertools
import math
import numbers
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
    """Base class: keeps the parameters and their state, and applies the rule's step.

    A rule is one method, `direction(grad, state, t)`: the amount to subtract from a parameter,
    given its gradient, its state (moments, buffers; updated in place) and the step number t
    (from 1). `step()` subtracts it from every parameter, in place. `safe_step(loss)` does the same
    but never leaves a non-finite or half-updated parameter behind.

    The state lives in flat vectors, one entry per scalar parameter; `self.state[i]` holds views of
    parameter i's part, shaped like it. When every parameter has a gradient (the usual case) the
    rule runs once over the whole flat vector instead of once per parameter: a linear model has a
    few tiny arrays, and NumPy's cost is per call, not per element. Otherwise (or when parameters
    differ in dtype) it runs per parameter on the views; both ways compute the same numbers.
    """

    def __init__(self, params: Iterable[Tensor] | None, lr: float):
        self.lr = self._number("lr", lr, low=0.0, low_inclusive=False)
        self.params: list[Tensor] = []
        self.bind([] if params is None else params)

    def bind(self, params: Iterable[Tensor]) -> Optimizer:
        """Attach the parameters to update (and fresh state for each). Returns self.

        An optimizer serves one set of parameters: binding it again to the same ones is allowed,
        to others is refused (it would step only the last model bound, and the first not at all).
        """
        params = list(params)
        for i, p in enumerate(params):
            if not isinstance(p, Tensor) or not p.requires_grad:
                raise TypeError(f"{type(self).__name__}: parameter {i} must be a Tensor with requires_grad=True")
        self._check_each_once(params)
        self._check_not_bound_elsewhere(params)
        self.params = params
        self.steps = 0  # completed step() calls
        self._backup: list[np.ndarray] = []
        dtypes = {p.dtype for p in params}
        ends = np.cumsum([0] + [p.size for p in params])
        self._slices = [slice(int(a), int(b)) for a, b in itertools.pairwise(ends)]
        flat_dtype = dtypes.pop() if len(dtypes) == 1 else None
        if flat_dtype is None:  # mixed dtypes: state per parameter, no flat fast path
            self._flat_grad = self._flat_state = None
            self.state = [self.init_state(p.size, p.dtype) for p in params]
            self.state = [_shaped(state, slice(None), p.shape) for state, p in zip(self.state, params)]
        else:
            self._flat_grad = np.empty(int(ends[-1]), flat_dtype)
            self._flat_state = self.init_state(int(ends[-1]), flat_dtype)
            self.state = [_shaped(self._flat_state, part, p.shape) for part, p in zip(self._slices, params)]
        self._t = [0] * len(params)  # each parameter's step number
        return self

    def _number(self, name: str, value: Any, **bounds: Any) -> float:
        """A hyperparameter checked by `check_number`, its errors naming this optimizer."""
        return check_number(f"{type(self).__name__}: {name}", value, **bounds)

    def _check_each_once(self, params: list[Tensor]) -> None:
        first_place: dict[int, int] = {}
        for i, p in enumerate(params):
            if id(p) in first_place:
                raise ValueError(
                    f"{type(self).__name__}: parameter {i} is parameter {first_place[id(p)]} again; give each "
                    "parameter once (model.parameters() lists a layer used twice once), or it is stepped twice"
                )
            first_place[id(p)] = i

    def _check_not_bound_elsewhere(self, params: list[Tensor]) -> None:
        same = len(params) == len(self.params) and all(p is q for p, q in zip(params, self.params))
        if self.params and not same:
            name = type(self).__name__
            raise ValueError(
                f"{name}: this optimizer is already bound to other parameters (another model's); give each model "
                f"a fresh instance, e.g. model.compile(optimizer=tl.optim.{name}(lr=...))"
            )

    def init_state(self, size: int, dtype: np.dtype) -> dict[str, np.ndarray]:
        """The rule's state for `size` scalar parameters: flat arrays, usually zeros."""
        return {}

    def direction(self, grad: np.ndarray, state: dict[str, np.ndarray], t: int) -> np.ndarray:
        """The rule: how much to subtract from the parameter at step t (updating `state` in place)."""
        raise NotImplementedError

    def step(self) -> None:
        """Update every parameter that has a gradient, in place."""
        if not self.params:
            raise RuntimeError(
                f"{type(self).__name__}.step(): no parameters; pass model.parameters() when creating the "
                "optimizer, or give it to model.compile(optimizer=...)"
            )
        params, t = self.params, self._t
        if self._flat_grad is not None and all(p.grad is not None for p in params) and min(t) == max(t):
            np.concatenate([p.grad.ravel() for p in params], out=self._flat_grad)
            change = self.direction(self._flat_grad, self._flat_state, t[0] + 1)
            for p, part in zip(params, self._slices):
                p.data -= change[part].reshape(p.data.shape)
            self._t = [t[0] + 1] * len(params)
        else:
            for i, (p, state) in enumerate(zip(params, self.state)):
                if p.grad is not None:
                    t[i] += 1
                    p.data -= self.direction(p.grad, state, t[i])
        self.steps += 1

    def safe_step(self, loss: Tensor | float | None = None) -> None:
        """`step()`, guarded: nothing non-finite and nothing half-done is ever left in the parameters.

        A non-finite `loss` stops before any update. If the update makes a parameter non-finite,
        or is interrupted (Ctrl-C), every parameter and the rule's state are put back as they were
        before this step.
        Divergence raises `TrainingDivergedError` naming the step.
        """
        if loss is not None:
            value = loss.item() if isinstance(loss, Tensor) else float(loss)
            if not np.isfinite(value):
                raise _diverged(f"the loss is {value} at step {self.steps + 1}; the parameters were not updated")
        arrays = self._changed_by_step()
        if len(self._backup) != len(arrays):
            self._backup = [np.empty_like(a) for a in arrays]
        for saved, a in zip(self._backup, arrays):
            np.copyto(saved, a)
        t, steps = list(self._t), self.steps
        try:
            self.step()
            bad = next((i for i, p in enumerate(self.params) if not np.isfinite(p.data).all()), None)
        except BaseException:
            self._restore(arrays, t, steps)
            raise
        if bad is not None:
            self._restore(arrays, t, steps)
            raise _diverged(
                f"parameter {bad} (shape {self.params[bad].shape}) became non-finite at step {steps + 1}; "
                "the parameters were put back to their values before that step"
            )

    def _changed_by_step(self) -> list[np.ndarray]:
        """Every array a step writes to: the parameters, then the rule's state."""
        states = self.state if self._flat_state is None else [self._flat_state]
        return [p.data for p in self.params] + [a for state in states for a in state.values()]

    def _restore(self, arrays: list[np.ndarray], t: list[int], steps: int) -> None:
        for saved, a in zip(self._backup, arrays):
            np.copyto(a, saved)
        self._t, self.steps = t, steps

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v}' for k, v in self.hyperparameters().items())})"

    def hyperparameters(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if k not in ("params", "state", "steps") and k[0] != "_"}


def _shaped(state: dict[str, np.ndarray], part: slice, shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    """Views of one parameter's part of each flat state vector, in the parameter's shape."""
    return {name: values[part].reshape(shape) for name, values in state.items()}


def check_number(what: str, value: Any, low: float, high: float = np.inf, low_inclusive: bool = True) -> float:
    """`value` as a float when it is a finite real number in the range, else a ValueError naming `what`
    (e.g. "Adam: lr"). A bool or a string such as "0.1" is not a number here."""
    is_number = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not (is_number and math.isfinite(value) and (value >= low if low_inclusive else value > low) and value < high):
        bound = f"{'>=' if low_inclusive else '>'} {low:g}" + (f" and < {high:g}" if high != np.inf else "")
        raise ValueError(f"{what} must be a finite number {bound}, got {value!r}")
    return float(value)


def _pair(what: str, value: Any) -> tuple[Any, Any]:
    """`value` as a 2-tuple (any sequence of two items), else a ValueError naming `what`."""
    try:
        pair = None if isinstance(value, str) else tuple(value)
    except TypeError:
        pair = None
    if pair is None or len(pair) != 2:
        raise ValueError(f"{what} must be a pair (beta1, beta2), got {value!r}")
    return pair


class GradientDescent(Optimizer):
    """Gradient descent, optionally with (Nesterov) momentum.

    buf ← momentum·buf + g   (buf = g at the first step)
    p   ← p - lr·(g + momentum·buf)  with Nesterov, else  p ← p - lr·buf  (p - lr·g without momentum)
    """

    def __init__(
        self, params: Iterable[Tensor] | None = None, lr: float = 0.01, momentum: float = 0.0, nesterov: bool = False
    ):
        self.momentum, self.nesterov = self._number("momentum", momentum, low=0.0), nesterov
        if nesterov and self.momentum == 0:
            raise ValueError(f"{type(self).__name__}: nesterov=True needs a momentum > 0")
        super().__init__(params, lr)

    def init_state(self, size, dtype):
        # a zero buffer makes the first step's buf exactly g, as PyTorch's copy of g does
        return {"momentum_buffer": np.zeros(size, dtype)} if self.momentum else {}

    def direction(self, grad, state, t):
        if not self.momentum:
            return self.lr * grad
        buf = state["momentum_buffer"]
        buf *= self.momentum
        buf += grad
        return self.lr * (grad + self.momentum * buf if self.nesterov else buf)


SGD = GradientDescent


class Adam(Optimizer):
    """Adam (Kingma & Ba), bias-corrected.

    m ← β1·m + (1-β1)·g,   v ← β2·v + (1-β2)·g²
    p ← p - lr · m̂ / (√v̂ + eps)   with m̂ = m/(1-β1ᵗ), v̂ = v/(1-β2ᵗ), t the step number
    """

    def __init__(
        self,
        params: Iterable[Tensor] | None = None,
        lr: float = 0.001,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ):
        beta1, beta2 = _pair(f"{type(self).__name__}: betas", betas)
        self.betas = (
            self._number("betas[0]", beta1, low=0.0, high=1.0),
            self._number("betas[1]", beta2, low=0.0, high=1.0),
        )
        self.eps = self._number("eps", eps, low=0.0)
        super().__init__(params, lr)

    def init_state(self, size, dtype):
        return {"m": np.zeros(size, dtype), "v": np.zeros(size, dtype)}

    def direction(self, grad, state, t):
        beta1, beta2 = self.betas
        m, v = state["m"], state["v"]
        m *= beta1
        m += (1 - beta1) * grad
        v *= beta2
        v += (1 - beta2) * grad * grad
        # lr·m̂/(√v̂ + eps), the bias corrections folded into two scalars
        denom = np.sqrt(v / (1 - beta2**t))
        denom += self.eps
        return (self.lr / (1 - beta1**t)) * m / denom


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
        self.rho = self._number("rho", rho, low=0.0, high=1.0)
        self.eps = self._number("eps", eps, low=0.0)
        self.momentum = self._number("momentum", momentum, low=0.0)
        super().__init__(params, lr)

    def init_state(self, size, dtype):
        state = {"square_avg": np.zeros(size, dtype)}
        if self.momentum:
            state["momentum_buffer"] = np.zeros(size, dtype)
        return state

    def direction(self, grad, state, t):
        square_avg = state["square_avg"]
        square_avg *= self.rho
        square_avg += (1 - self.rho) * grad * grad
        scaled = grad / (np.sqrt(square_avg) + self.eps)
        if self.momentum:
            buf = state["momentum_buffer"]
            buf *= self.momentum
            buf += scaled
            scaled = buf
        return self.lr * scaled
