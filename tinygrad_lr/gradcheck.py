"""Check the engine's derivatives against central finite differences, in float64: the gradients
(`gradcheck`) and the second derivatives (`gradgradcheck`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from tinygrad_lr import autograd
from tinygrad_lr.tensor import Tensor, _recording, no_grad

__all__ = ["GradcheckError", "gradcheck", "gradgradcheck"]


class GradcheckError(RuntimeError):
    """The analytic and numerical derivatives disagree, or a value was not finite."""


def _describe_nonfinite(array: np.ndarray) -> str:
    bad = np.argwhere(~np.isfinite(array))
    index = tuple(int(i) for i in bad[0])
    return f"{len(bad)} non-finite value(s), the first {array[index]} at element {index}"


def _float64_copy(x: Tensor) -> Tensor:
    return Tensor(x.data.astype(np.float64), requires_grad=x.requires_grad)


def _output_array(fn: Callable[..., Tensor], inputs: list[Any], where: str) -> np.ndarray:
    out = fn(*inputs)
    if not isinstance(out, Tensor):
        raise TypeError(f"gradcheck: fn must return a Tensor, got {type(out).__name__}")
    if not np.all(np.isfinite(out.data)):
        raise GradcheckError(f"gradcheck: the output of fn {where} has {_describe_nonfinite(out.data)}")
    return np.array(out.data)  # a copy: the output may be a view of the input we perturb next


def _analytic_jacobians(out: Tensor, wrt: list[Tensor]) -> list[np.ndarray]:
    """J[i] of shape (out.size, wrt[i].size): one backward per output element."""
    jacobians = [np.zeros((out.size, t.size)) for t in wrt]
    if not out.requires_grad:  # fn does not depend on any input that requires grad
        return jacobians
    for j in range(out.size):
        for t in wrt:
            t.grad = None
        seed = np.zeros(out.size)
        seed[j] = 1.0
        out.backward(seed.reshape(out.shape))
        for jacobian, t in zip(jacobians, wrt):
            if t.grad is not None:
                jacobian[j] = t.grad.ravel()
    for t in wrt:
        t.grad = None
    return jacobians


def _numerical_jacobian(fn, inputs: list[Any], t: Tensor, eps: float, name: str) -> np.ndarray:
    """Central differences (f(x+eps) - f(x-eps)) / 2eps, one input element at a time."""
    flat = t.data.reshape(-1)  # a view: perturbing it perturbs t
    columns = []
    for k in range(flat.size):
        original = flat[k]
        where = f"at {name} element {tuple(int(i) for i in np.unravel_index(k, t.shape))} {{}} eps"
        flat[k] = original + eps
        plus = _output_array(fn, inputs, where.format("+"))
        flat[k] = original - eps
        minus = _output_array(fn, inputs, where.format("-"))
        flat[k] = original
        columns.append(((plus - minus) / (2 * eps)).ravel())
    return np.stack(columns, axis=1) if columns else np.zeros((0, 0))


def gradcheck(
    fn: Callable[..., Tensor],
    *inputs: Any,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
) -> bool:
    """Compare the engine's Jacobian of `fn(*inputs)` with central finite differences.

    Every Tensor input that requires grad is checked, on a float64 copy. `fn` may return any
    shape. Returns True; raises `GradcheckError` naming the input, the element and both values
    when |analytic - numerical| > atol + rtol·|numerical| anywhere, or when an input or the
    output holds a non-finite value (reported, not compared).
    """
    copies: list[Any] = []
    for i, x in enumerate(inputs):
        if isinstance(x, Tensor):
            if not np.all(np.isfinite(x.data)):
                raise GradcheckError(f"gradcheck: input {i} has {_describe_nonfinite(x.data)}")
            x = _float64_copy(x)
        copies.append(x)
    wrt = [(i, x) for i, x in enumerate(copies) if isinstance(x, Tensor) and x.requires_grad]
    if not wrt:
        raise ValueError("gradcheck: no input is a Tensor with requires_grad=True; nothing to check")

    out = fn(*copies)
    _output_array(lambda *_: out, copies, "at the given inputs")
    analytic = _analytic_jacobians(out, [t for _, t in wrt])
    with no_grad():
        for (i, t), jacobian in zip(wrt, analytic):
            name = f"input {i}"
            numerical = _numerical_jacobian(fn, copies, t, eps, name)
            if numerical.size == 0:
                continue
            bad = np.abs(jacobian - numerical) > atol + rtol * np.abs(numerical)
            if bad.any():
                j, k = (int(v) for v in np.argwhere(bad)[0])
                out_index = np.unravel_index(j, out.shape)
                in_index = np.unravel_index(k, t.shape)
                raise GradcheckError(
                    f"gradcheck: {name} (shape {t.shape}), element {tuple(map(int, in_index))}, "
                    f"output element {tuple(map(int, out_index))}: analytic d(out)/d(in) = "
                    f"{jacobian[j, k]:.8g} but numerical = {numerical[j, k]:.8g} "
                    f"({int(bad.sum())} of {bad.size} Jacobian entries differ)"
                )
    return True


def gradgradcheck(
    fn: Callable[..., Tensor],
    *inputs: Any,
    grad_outputs: Any = None,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
) -> bool:
    """Compare the engine's second derivatives of `fn(*inputs)` with central finite differences of
    its first derivatives, in float64 (as `torch.autograd.gradgradcheck`).

    The first derivatives are the vector-Jacobian products vᵀ·∂fn/∂input (v = `grad_outputs`, a
    fixed random vector when not given), built with `create_graph=True`; each is then checked by
    `gradcheck`: its Jacobian from the engine's second backward sweep against central differences.
    Returns True; raises `GradcheckError` naming the gradient, the input, the element and both values.
    """
    copies = [
        Tensor(x.data.astype(np.float64), requires_grad=x.requires_grad) if isinstance(x, Tensor) else x for x in inputs
    ]
    wrt = [i for i, x in enumerate(copies) if isinstance(x, Tensor) and x.requires_grad]
    if not wrt:
        raise ValueError("gradgradcheck: no input is a Tensor with requires_grad=True; nothing to check")
    out = fn(*copies)
    if not isinstance(out, Tensor):
        raise TypeError(f"gradgradcheck: fn must return a Tensor, got {type(out).__name__}")
    if grad_outputs is None:
        v = np.random.default_rng(0).normal(size=out.shape)
    else:
        v = np.asarray(grad_outputs.data if isinstance(grad_outputs, Tensor) else grad_outputs, dtype=np.float64)

    for k, i in enumerate(wrt):

        def first_derivative(*xs: Any, k: int = k) -> Tensor:
            with _recording():  # gradcheck differentiates numerically under no_grad; this needs a graph
                targets = [xs[j] for j in wrt]
                return autograd.grad(fn(*xs), targets, grad_outputs=v, create_graph=True)[k]

        try:
            gradcheck(first_derivative, *copies, eps=eps, atol=atol, rtol=rtol)
        except GradcheckError as error:
            detail = str(error).removeprefix("gradcheck: ")
            raise GradcheckError(f"gradgradcheck: the derivative of the gradient for input {i}: {detail}") from None
    return True
