"""Derivatives as values: gradients of gradients, Jacobians, Hessians, and their products.

`grad` is `torch.autograd.grad`: the gradients of an output with respect to chosen inputs,
returned (never accumulated into `.grad`); with `create_graph=True` they carry a graph of their own
and can be differentiated again, any number of times. `jacobian`, `hessian`, `vjp` and `hvp`
follow `torch.autograd.functional`: a function and the points to differentiate it at; a Jacobian
of an output of shape O with respect to an input of shape I has shape O + I.

Every built-in op can do this because each backward in `ops.py` is written once, with operations
that work on arrays and on Tensors alike.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from tinygrad_lr.ops import cast
from tinygrad_lr.tensor import Tensor, _recording, backpropagate, no_grad

__all__ = ["grad", "hessian", "hvp", "jacobian", "vjp"]


def _as_tensors(what: str, values: Tensor | Sequence[Tensor]) -> tuple[list[Tensor], bool]:
    """A list of Tensors, and whether a single one was given (the result is then not a tuple)."""
    single = isinstance(values, Tensor)
    tensors = [values] if isinstance(values, Tensor) else list(values)
    for i, value in enumerate(tensors):
        if not isinstance(value, Tensor):
            raise TypeError(f"{what}: item {i} is a {type(value).__name__}, not a Tensor")
    return tensors, single


def grad(
    outputs: Tensor,
    inputs: Tensor | Sequence[Tensor],
    grad_outputs: Any = None,
    create_graph: bool = False,
) -> tuple[Tensor, ...]:
    """d(outputs)/d(input) for each input, as a tuple of Tensors shaped like the inputs.

    `outputs` is a scalar Tensor, or any shape with `grad_outputs` (the vector of a
    vector-Jacobian product, shaped like `outputs`). No `.grad` is touched. An input that
    `outputs` does not depend on gets zeros. With `create_graph=True` the gradients are built from
    ops, so they can be differentiated again (their own `grad`, a Hessian, ...). Each gradient has
    its input's dtype (a float32 input mixed with float64 values gets a float32 gradient), with or
    without a graph.
    """
    if not isinstance(outputs, Tensor):
        raise TypeError(f"grad: outputs must be a Tensor, got {type(outputs).__name__}")
    inputs, _ = _as_tensors("grad: inputs", inputs)
    for i, x in enumerate(inputs):
        if not x.requires_grad:
            raise RuntimeError(
                f"grad: input {i} (shape {x.shape}) does not require grad; make it with requires_grad=True"
            )
    if grad_outputs is None:
        if outputs.size != 1:
            raise RuntimeError(
                f"grad: outputs has shape {outputs.shape}, not a single element; pass grad_outputs of that shape"
            )
        seed: Any = np.ones(outputs.shape, outputs.dtype)
    else:
        seed = grad_outputs if isinstance(grad_outputs, Tensor) else np.asarray(grad_outputs, outputs.dtype)
        if seed.shape != outputs.shape:
            raise RuntimeError(f"grad: grad_outputs has shape {seed.shape} but outputs has shape {outputs.shape}")
    wanted = {id(x): None for x in inputs}
    if outputs.requires_grad:
        if create_graph:
            seed = seed if isinstance(seed, Tensor) else Tensor(seed)
        elif isinstance(seed, Tensor):
            seed = seed.data
        with _recording() if create_graph else no_grad():
            for tensor, tensor_grad in backpropagate(outputs, seed, create_graph, wanted=set(wanted)):
                wanted[id(tensor)] = cast(tensor_grad, tensor.dtype)  # (under create_graph, a Cast op)
    return tuple(_gradient_tensor(wanted[id(x)], x) for x in inputs)


def _gradient_tensor(value: Any, x: Tensor) -> Tensor:
    """The gradient for input x as a Tensor of x's shape (zeros where nothing came back)."""
    if value is None:
        return Tensor(np.zeros(x.shape, x.dtype))
    if isinstance(value, Tensor):  # create_graph: the gradient is an op's output, with its graph
        return value
    return Tensor(value)


def _points(what: str, inputs: Sequence[Any], create_graph: bool) -> list[Tensor]:
    """The points to differentiate at, each a Tensor that requires grad, as torch.autograd.functional
    makes them: with create_graph, an input that requires grad enters as a view of itself, so that the
    results stay connected to it (a derivative with respect to fn's argument alone, even where fn reads
    the input besides); any other input enters as a copy, a leaf cut from every graph. The view is an
    op: call this with grad mode on."""
    points = []
    for i, x in enumerate(inputs):
        data = x.data if isinstance(x, Tensor) else x
        if not isinstance(data, np.ndarray):
            data = np.asarray(data, dtype=np.float64)  # numbers and lists: float64
        if data.dtype.kind != "f":  # (as PyTorch: only floating tensors can require grad)
            raise TypeError(f"{what}: input {i} must hold floating-point numbers, got {data.dtype}")
        if create_graph and isinstance(x, Tensor) and x.requires_grad:
            points.append(x.reshape(x.shape))
        else:
            points.append(Tensor(np.array(data), requires_grad=True))
    return points


def jacobian(fn: Callable[..., Any], *inputs: Any, create_graph: bool = False) -> Any:
    """The Jacobian of `fn` at `inputs`: J[o][i] has shape outputs[o].shape + inputs[i].shape.

    One input and one output give a Tensor; several inputs a tuple over them; several outputs
    (fn returns a tuple) a tuple of such, as `torch.autograd.functional.jacobian`. With `create_graph`
    the blocks can be differentiated again, with respect to the inputs given.
    """
    with _recording():  # as torch.autograd.functional, also inside no_grad()
        return _jacobian(fn, _points("jacobian", inputs, create_graph), create_graph)


def _jacobian(fn: Callable[..., Any], xs: list[Tensor], create_graph: bool) -> Any:
    """`jacobian` at the points xs, one backward sweep per output element."""
    outputs, single_output = _as_tensors("jacobian: the outputs of fn", fn(*xs))
    rows = []
    for out in outputs:
        per_input: list[list[Tensor]] = [[] for _ in xs]
        for k in range(out.size):
            seed = np.zeros(out.size, out.dtype)
            seed[k] = 1
            grads = grad(out, xs, seed.reshape(out.shape), create_graph=create_graph)
            for parts, g in zip(per_input, grads):
                parts.append(g)
        rows.append(tuple(_stack(parts, out.shape, x) for parts, x in zip(per_input, xs)))
    blocks = [row[0] if len(xs) == 1 else row for row in rows]
    return blocks[0] if single_output else tuple(blocks)


def _stack(parts: list[Tensor], out_shape: tuple[int, ...], x: Tensor) -> Tensor:
    """One gradient per output element, stacked into the Jacobian block of shape out_shape + x.shape."""
    shape = out_shape + x.shape
    if not parts:
        return Tensor(np.zeros(shape, x.dtype))
    if not any(p.requires_grad for p in parts):
        return Tensor(np.stack([p.data for p in parts]).reshape(shape))
    # with a graph: each row placed by its own op, so that every row stays differentiable
    placed = []
    for k, part in enumerate(parts):
        basis = np.zeros(len(parts), x.dtype)
        basis[k] = 1
        placed.append(Tensor(basis.reshape((-1,) + (1,) * x.ndim)) * part.reshape((1, *x.shape)))
    total = placed[0]
    for row in placed[1:]:
        total = total + row
    return total.reshape(shape)


def hessian(fn: Callable[..., Any], *inputs: Any, create_graph: bool = False) -> Any:
    """The Hessian of the scalar `fn` at `inputs`: H[i][j] has shape inputs[i].shape + inputs[j].shape.

    One input gives a Tensor; several a tuple of tuples, as `torch.autograd.functional.hessian`.
    With `create_graph` the blocks can be differentiated again, with respect to the inputs given.
    """

    def gradient(*xs: Tensor) -> tuple[Tensor, ...]:
        out = fn(*xs)
        if not isinstance(out, Tensor) or out.size != 1:
            raise RuntimeError("hessian: fn must return a single-element Tensor")
        return grad(out, list(xs), create_graph=True)

    with _recording():  # as torch.autograd.functional, also inside no_grad()
        blocks = _jacobian(gradient, _points("hessian", inputs, create_graph), create_graph)
    return blocks[0] if len(inputs) == 1 else blocks


def vjp(fn: Callable[..., Any], inputs: Any, v: Any = None, create_graph: bool = False) -> tuple[Any, Any]:
    """(fn(inputs), vᵀ·J): the vector-Jacobian product at `inputs`, shaped like the inputs.

    `inputs` is a Tensor (or array) or a tuple of them; `v` is shaped like the output, and may be
    left out for a single-element output.
    """
    single = not isinstance(inputs, (tuple, list))
    with _recording():  # as torch.autograd.functional, also inside no_grad()
        xs = _points("vjp", [inputs] if single else inputs, create_graph)
        out = fn(*xs)
        if not isinstance(out, Tensor):
            raise TypeError(f"vjp: fn must return a Tensor, got {type(out).__name__}")
        products = grad(out, xs, grad_outputs=v, create_graph=create_graph)
    value = out if create_graph else out.detach()
    return value, (products[0] if single else products)


def hvp(fn: Callable[..., Any], inputs: Any, v: Any, create_graph: bool = False) -> tuple[Any, Any]:
    """(fn(inputs), H·v): the Hessian of the scalar `fn` times v, without forming the Hessian.

    `inputs` and `v` are a Tensor (or array) each, or tuples of them, alike in shape. Two
    backward sweeps: the gradient with its graph, then the gradient of ⟨gradient, v⟩. With
    `create_graph`, the product stays connected to the inputs and to a v that requires grad.
    """
    single = not isinstance(inputs, (tuple, list))
    vs = [v] if single else list(v)
    with _recording():  # as torch.autograd.functional, also inside no_grad()
        xs = _points("hvp", [inputs] if single else inputs, create_graph)
        if len(vs) != len(xs):
            raise ValueError(f"hvp: {len(xs)} inputs but {len(vs)} vectors v")
        out = fn(*xs)
        if not isinstance(out, Tensor) or out.size != 1:
            raise RuntimeError("hvp: fn must return a single-element Tensor")
        gradients = grad(out, xs, create_graph=True)
        terms = []
        for g, vector, x in zip(gradients, vs, xs):
            if not (create_graph and isinstance(vector, Tensor)):
                vector = np.asarray(vector.data if isinstance(vector, Tensor) else vector)
            if vector.shape != x.shape:
                raise ValueError(f"hvp: v has shape {vector.shape} but its input has shape {x.shape}")
            terms.append((g * cast(vector, x.dtype)).sum())
        inner = terms[0]
        for term in terms[1:]:
            inner = inner + term
        products = grad(inner, xs, create_graph=create_graph)
    value = out if create_graph else out.detach()
    return value, (products[0] if single else products)
