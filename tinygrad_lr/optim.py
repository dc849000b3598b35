"""Optimizers: one class per update rule, state per parameter, updates in place.

Each rule is its `update` method, written as the paper's algorithm; `Optimizer` runs it for every
parameter. The rules are PyTorch's (`torch.optim.SGD`, `Adam`, `RMSprop`; PyTorch's `alpha` is
`rho` here). An optimizer can be bound to parameters at once, `Adam(model.parameters(), lr=0.1)`,
or made unbound, `Adam(lr=0.1)`, and bound later (`model.compile` does it). `Newton` takes a step
with the engine's exact Hessian.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

import numpy as np

from tinygrad_lr import autograd
from tinygrad_lr.checks import check_number, check_pair
from tinygrad_lr.tensor import Tensor

__all__ = [
    "BY_NAME",
    "SGD",
    "Adam",
    "GradientDescent",
    "Newton",
    "Optimizer",
    "RMSprop",
    "TrainingDivergedError",
]

_ADVICE = (
    "Lower the learning rate (tl.solvers.stable_learning_rate(X) is the bound for plain gradient descent on a "
    "linear model) or standardise the features"
)


class TrainingDivergedError(RuntimeError):
    """The loss or a parameter became non-finite; the last finite weights were put back.

    Its facts: `reason` (what happened), `step` (the optimizer step, from 1) and, when `fit` raised
    it, `epoch` and `batch` (from 1); `advice` says what to try.
    """

    def __init__(
        self,
        reason: str,
        step: int | None = None,
        epoch: int | None = None,
        batch: int | None = None,
        advice: str | None = None,
    ):
        super().__init__(reason)
        self.reason, self.step, self.epoch, self.batch, self.advice = reason, step, epoch, batch, advice

    def __str__(self) -> str:
        message = self.reason + (f". {self.advice}" if self.advice else "")
        if self.epoch is None:
            return message
        return f"fit: training diverged at epoch {self.epoch}, batch {self.batch}: {message}"


def _all_finite(values: np.ndarray) -> bool:
    # Σ x² is finite only if every x is (inf and nan carry through); when it is not, it may instead have
    # overflowed, and the exact test decides. On small arrays the dot product costs a third of the test.
    return math.isfinite(np.vdot(values, values)) or bool(np.isfinite(values).all())


class Optimizer:
    """Base class: the parameters, a state for each, and the loop that applies the rule.

    A rule is one method, `update(p, grad, state)`: change `p.data` in place, given the gradient and
    the parameter's state (a dict: moments, buffers, and `state["step"]`, the number of this step,
    from 1). A rule stores new arrays in the state instead of changing the old ones in place
    (`state["m"] = β·state["m"] + ...`), which is also faster on small arrays: so a copy of
    `p.data` and of the state dict is all a step's backup needs. `step()` calls the rule for every
    parameter that has a gradient. `safe_step(loss)` does the same but never leaves a non-finite
    or half-updated parameter behind.

    Hyperparameters (`lr`, `betas`, `eps`, `rho`, `momentum`) are read at every step, as PyTorch
    reads its `param_groups` and Keras its attributes: `opt.lr = 0.01` or `opt.betas = (0.8, 0.99)`
    takes effect at the next step, and is checked when it is set (`CHECKS`).
    """

    # name -> (what) -> the check of a hyperparameter, run whenever it is set
    CHECKS: ClassVar[dict[str, Callable[[str, Any], Any]]] = {
        "lr": lambda what, value: check_number(what, value, low=0.0, low_inclusive=False)
    }

    def __init__(self, params: Iterable[Tensor] | None, lr: float):
        self._constants: dict[np.dtype, tuple[np.ndarray, ...]] = {}  # see `constants`
        self.lr = lr
        self.params: list[Tensor] = []
        self.bind([] if params is None else params)

    def __setattr__(self, name: str, value: Any) -> None:
        check = self.CHECKS.get(name)
        super().__setattr__(name, value if check is None else check(f"{type(self).__name__}: {name}", value))
        if not name.startswith("_") and "_constants" in vars(self):
            self._constants.clear()  # a hyperparameter set: the rule's constants are made again at the next step

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
        self.state: dict[Tensor, dict[str, Any]] = {p: self.init_state(p) for p in params}
        self.steps = 0  # completed step() calls
        return self

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

    def init_state(self, p: Tensor) -> dict[str, Any]:
        """A parameter's state before its first step: the step count, and the rule's buffers."""
        return {"step": 0}

    def numbers(self) -> tuple[float, ...]:
        """The rule's constants (β, 1-β, eps, ...), from its hyperparameters as they are now."""
        return ()

    def constants(self, p: Tensor) -> tuple[np.ndarray, ...]:
        """`numbers()` as 0-d arrays of p's dtype.

        The result of `c * array` is the same as with the Python float (NumPy rounds that to the
        array's dtype too), but on the small arrays of a linear model it takes half the time. The
        arrays are a cache, one set per dtype, emptied whenever an attribute of the optimizer is set
        (`__setattr__`): a changed hyperparameter gets new ones at the next step.
        """
        dtype = p.data.dtype
        cached = self._constants.get(dtype)
        if cached is None:
            cached = self._constants[dtype] = tuple([np.asarray(number, dtype) for number in self.numbers()])
        return cached

    def update(self, p: Tensor, grad: np.ndarray, state: dict[str, Any]) -> None:
        """The rule: change p.data in place (and the state)."""
        raise NotImplementedError(f"{type(self).__name__}.update is not written")

    def step(self) -> None:
        """Update every parameter that has a gradient, in place."""
        if not self.params:
            raise RuntimeError(
                f"{type(self).__name__}.step(): no parameters; pass model.parameters() when creating the "
                "optimizer, or give it to model.compile(optimizer=...)"
            )
        for p in self.params:
            if p.grad is not None:
                state = self.state[p]
                state["step"] += 1
                self.update(p, p.grad, state)
        vars(self)["steps"] += 1  # (past __setattr__, whose checks are for the hyperparameters)

    def safe_step(self, loss: Tensor | float | None = None) -> None:
        """`step()`, guarded: nothing non-finite and nothing half-done is ever left in the parameters.

        A non-finite `loss` stops before any update. If the update makes a parameter non-finite,
        or is interrupted (Ctrl-C), every parameter and its state are put back as they were before
        this step. Divergence raises `TrainingDivergedError` naming the step.
        """
        step = self.steps + 1
        if loss is not None:
            value = loss.item() if isinstance(loss, Tensor) else float(loss)
            if not math.isfinite(value):
                raise TrainingDivergedError(
                    f"the loss is {value} at step {step}; the parameters were not updated", step
                )
        saved = self._copy_of_what_a_step_changes()
        try:
            self.step()
        except BaseException:
            self._put_back(saved)
            raise
        for bad, p in enumerate(self.params):
            if _all_finite(p.data):
                continue
            self._put_back(saved)
            raise TrainingDivergedError(
                f"parameter {bad} (shape {p.shape}) became non-finite at step {step}; "
                "the parameters were put back to their values before that step",
                step,
                advice=_ADVICE,
            )

    def _copy_of_what_a_step_changes(self) -> list[tuple[np.ndarray, dict[str, Any]]]:
        """Each parameter's values, copied, and its state dict (whose arrays a rule replaces, never changes)."""
        return [(p.data.copy(), dict(self.state[p])) for p in self.params]

    def _put_back(self, saved: list[tuple[np.ndarray, dict[str, Any]]]) -> None:
        for p, (data, state) in zip(self.params, saved):
            np.copyto(p.data, data)
            self.state[p] = state

    def zero_grad(self) -> None:
        """Forget every parameter's gradient (`.grad` becomes None, as PyTorch's default)."""
        for p in self.params:
            p.grad = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v}' for k, v in self.hyperparameters().items())})"

    def hyperparameters(self) -> dict[str, Any]:
        """The rule's settings by name (lr, betas, ...), as the optimizer's repr shows them."""
        return {k: v for k, v in vars(self).items() if k not in ("params", "state", "steps") and k[0] != "_"}


def descend(p: Tensor, delta: np.ndarray) -> None:
    """p.data -= delta, in place: the same numbers, written as an assignment into the array because
    NumPy's in-place arithmetic costs three times as much on a one-element array (0.75 against 0.25
    µs here), and a linear model's bias, and its weight on one feature, are such arrays."""
    data = p.data
    if isinstance(data, np.ndarray):
        data[...] = data - delta
    else:  # (a NumPy number assigned to .data by hand: replaced, as `-=` replaces it)
        p.data = data - delta


def _non_negative(what: str, value: Any) -> float:
    return check_number(what, value, low=0.0)


def _betas(what: str, value: Any) -> tuple[float, float]:
    beta1, beta2 = check_pair(f"{what} (beta1, beta2)", value)
    return check_number(f"{what}[0]", beta1, low=0.0, high=1.0), check_number(f"{what}[1]", beta2, low=0.0, high=1.0)


def _rho(what: str, value: Any) -> float:
    return check_number(what, value, low=0.0, high=1.0)


def _momentum_buffer(state: dict[str, Any], momentum: np.ndarray, value: np.ndarray) -> np.ndarray:
    """buf ← momentum·buf + value, kept in the state; the first buf is `value` itself (as PyTorch's
    copy), also when momentum is switched on after some steps without it."""
    buffer = state.get("momentum_buffer")
    buffer = state["momentum_buffer"] = value.copy() if buffer is None else momentum * buffer + value
    return buffer


class GradientDescent(Optimizer):
    """Gradient descent, optionally with (Nesterov) momentum.

    buf ← momentum·buf + g   (buf = g at the first step)
    p   ← p - lr·(g + momentum·buf)  with Nesterov, else  p ← p - lr·buf  (p - lr·g without momentum)
    """

    CHECKS: ClassVar = {**Optimizer.CHECKS, "momentum": _non_negative}

    def __init__(
        self, params: Iterable[Tensor] | None = None, lr: float = 0.01, momentum: float = 0.0, nesterov: bool = False
    ):
        self.momentum, self.nesterov = momentum, nesterov
        if nesterov and self.momentum == 0:
            raise ValueError(f"{type(self).__name__}: nesterov=True needs a momentum > 0")
        super().__init__(params, lr)

    def numbers(self):
        return self.lr, self.momentum

    def update(self, p, grad, state):
        lr, momentum = self.constants(p)
        if not self.momentum:
            descend(p, lr * grad)
            return
        buf = _momentum_buffer(state, momentum, grad)
        descend(p, lr * (grad + momentum * buf if self.nesterov else buf))


SGD = GradientDescent


class Adam(Optimizer):
    """Adam (Kingma & Ba), bias-corrected.

    m ← β1·m + (1-β1)·g,   v ← β2·v + (1-β2)·g²
    p ← p - lr · m̂ / (√v̂ + eps)   with m̂ = m/(1-β1ᵗ), v̂ = v/(1-β2ᵗ), t the step number
    """

    CHECKS: ClassVar = {**Optimizer.CHECKS, "betas": _betas, "eps": _non_negative}

    def __init__(
        self,
        params: Iterable[Tensor] | None = None,
        lr: float = 0.001,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ):
        self.betas, self.eps = betas, eps
        super().__init__(params, lr)

    def init_state(self, p):
        return {**super().init_state(p), "m": np.zeros_like(p.data), "v": np.zeros_like(p.data)}

    def numbers(self):
        beta1, beta2 = self.betas
        return beta1, 1 - beta1, beta2, 1 - beta2, self.eps

    def update(self, p, grad, state):
        beta1, beta2 = self.betas
        b1, one_minus_b1, b2, one_minus_b2, eps = self.constants(p)
        m = state["m"] = b1 * state["m"] + one_minus_b1 * grad
        v = state["v"] = b2 * state["v"] + one_minus_b2 * grad * grad
        # lr·m̂/(√v̂ + eps), the bias corrections folded into two scalars
        t = state["step"]
        descend(p, (self.lr / (1 - beta1**t)) * m / (np.sqrt(v / (1 - beta2**t)) + eps))


class RMSprop(Optimizer):
    """RMSprop (Hinton), PyTorch's form: eps added outside the square root.

    v ← ρ·v + (1-ρ)·g²
    p ← p - lr · g / (√v + eps)      or, with momentum:  buf ← momentum·buf + g/(√v + eps),  p ← p - lr·buf
    """

    CHECKS: ClassVar = {**Optimizer.CHECKS, "rho": _rho, "eps": _non_negative, "momentum": _non_negative}

    def __init__(
        self,
        params: Iterable[Tensor] | None = None,
        lr: float = 0.001,
        rho: float = 0.9,
        eps: float = 1e-8,
        momentum: float = 0.0,
    ):
        self.rho, self.eps, self.momentum = rho, eps, momentum
        super().__init__(params, lr)

    def init_state(self, p):
        return {**super().init_state(p), "square_avg": np.zeros_like(p.data)}

    def numbers(self):
        return self.lr, self.rho, 1 - self.rho, self.eps, self.momentum

    def update(self, p, grad, state):
        lr, rho, one_minus_rho, eps, momentum = self.constants(p)
        square_avg = state["square_avg"] = rho * state["square_avg"] + one_minus_rho * grad * grad
        scaled = grad / (np.sqrt(square_avg) + eps)
        if self.momentum:
            scaled = _momentum_buffer(state, momentum, scaled)
        descend(p, lr * scaled)


class Newton(Optimizer):
    """Newton's method with the engine's exact Hessian of all parameters laid end to end.

    p ← p - lr·(H + damping·I)⁻¹·g, g and H the gradient and Hessian of the loss that
    `step(closure)` gets from the closure (which recomputes and returns it, as for
    `torch.optim.LBFGS`). On a quadratic, such as `mse + l2_penalty` of a linear model, one step of
    lr 1 lands on the minimum (`tl.solvers.ridge`). A singular H gets the least-squares
    (minimum-norm) step. H has as many rows as there are scalar parameters: meant for small models.
    """

    CHECKS: ClassVar = {**Optimizer.CHECKS, "damping": _non_negative}

    def __init__(self, params: Iterable[Tensor] | None = None, lr: float = 1.0, damping: float = 0.0):
        self.damping = damping
        super().__init__(params, lr)

    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor:  # type: ignore[override]
        """One Newton step on the loss `closure()` returns; returns that loss (before the step)."""
        if closure is None:
            raise TypeError(
                "Newton.step needs a closure that recomputes and returns the loss: opt.step(lambda: loss_fn())"
            )
        if not self.params:
            raise RuntimeError("Newton.step(): no parameters; pass model.parameters() when creating the optimizer")
        step = self.steps + 1

        def refuse_nonfinite(name: str, values: np.ndarray) -> None:
            # before LAPACK sees it: lstsq on a NaN prints DLASCL errors on the terminal, then fails to converge
            if not _all_finite(values):
                raise TrainingDivergedError(
                    f"Newton: the {name} is not finite at step {step}; the parameters were not updated", step
                )

        loss = closure()
        gradients = autograd.grad(loss, self.params, create_graph=True)
        refuse_nonfinite("loss", loss.data)
        g = np.concatenate([gradient.data.ravel() for gradient in gradients])
        refuse_nonfinite("gradient", g)
        rows = []
        for gradient in gradients:  # row k of H: the gradient of the k-th entry of the gradient
            flat = gradient.reshape(-1)
            for k in range(flat.size):
                row = (
                    autograd.grad(flat[k], self.params)
                    if flat.requires_grad
                    else [np.zeros(p.shape) for p in self.params]
                )
                rows.append(np.concatenate([np.ravel(r.data if isinstance(r, Tensor) else r) for r in row]))
        hessian = np.array(rows, dtype=np.float64).reshape(g.size, g.size)
        refuse_nonfinite("Hessian", hessian)
        system = hessian + self.damping * np.eye(g.size)
        direction = np.linalg.lstsq(system, g.astype(np.float64), rcond=None)[0]
        start = 0
        for p in self.params:
            p.data -= (self.lr * direction[start : start + p.size]).reshape(p.shape).astype(p.dtype)
            self.state[p]["step"] += 1
            start += p.size
        self.steps += 1
        return loss


# The one table of optimizer names (compile, the command line and the benchmarks read it):
# name -> (the rule, Keras' default learning rate for it)
BY_NAME: dict[str, tuple[Callable[..., Optimizer], float]] = {
    "sgd": (GradientDescent, 0.01),
    "gd": (GradientDescent, 0.01),
    "adam": (Adam, 0.001),
    "rmsprop": (RMSprop, 0.001),
    "newton": (Newton, 1.0),  # (not Keras': the full step, which lands on the minimum of a quadratic)
}
