"""The Tensor, the Function that records how it was made, and the backward sweep.

A Tensor holds a NumPy array. Every differentiable op is a `Function` subclass (see `ops.py`):
`forward` computes the result from arrays, `backward` turns the gradient of the result into one
gradient per input. `Function.apply` runs the forward, and when a gradient will be needed it
links the result to the Function, which keeps its inputs. `Tensor.backward` walks those links
once, from the output back to the leaves.

A derivative is written once and serves every order. Inside `backward`, `self.inputs`,
`self.output` and `grad` are NumPy arrays when only gradients are wanted (`backward()`): plain
NumPy speed, no graph. Under `tl.autograd.grad(..., create_graph=True)` they are Tensors instead,
and the same formula, run as Tensor ops, records a graph of its own that can be differentiated
again. A Function whose backward is written in NumPy only says so by keeping
`differentiable_backward = False` (the default): it serves first-order gradients, and asking it
for a graph of its gradient is an error naming it.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Sequence
from typing import Any

import numpy as np

__all__ = ["Function", "Tensor", "is_grad_enabled", "no_grad", "unbroadcast"]


class _Mode(threading.local):
    """The engine's mode, one per thread (as PyTorch's grad mode): a `no_grad` block in one thread,
    say a Dask worker thread computing a chunk's loss, must not stop another thread's graph."""

    grad_enabled = True
    tape: list[tuple] | None = None  # while `capture.py` records a step: every op applied, in order


_mode = _Mode()


class no_grad:
    """Context manager (and decorator) inside which ops record no graph: `with tl.no_grad(): ...`.
    It holds for the thread that enters it."""

    recording = False

    def __enter__(self) -> None:
        self._previous, _mode.grad_enabled = _mode.grad_enabled, self.recording

    def __exit__(self, *exc_info: object) -> None:
        _mode.grad_enabled = self._previous

    def __call__(self, func):
        def wrapper(*args, **kwargs):
            with type(self)():
                return func(*args, **kwargs)

        wrapper.__name__, wrapper.__doc__ = func.__name__, func.__doc__
        return wrapper


class _recording(no_grad):
    """The opposite of no_grad: ops record a graph (a gradient's own graph, under create_graph=True)."""

    recording = True


def is_grad_enabled() -> bool:
    """True unless inside `no_grad()` (in this thread)."""
    return _mode.grad_enabled


def unbroadcast(grad, shape: tuple[int, ...]):
    """Sum `grad` (an array or a Tensor) back to `shape`, undoing NumPy broadcasting.

    Broadcasting may have added leading axes and stretched axes of size 1; the gradient of a
    value that was used many times is the sum over its copies.
    """
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra < 0:
        raise ValueError(f"gradient of shape {grad.shape} has fewer axes than its input {shape}")
    stretched = tuple(extra + i for i, size in enumerate(shape) if size == 1)
    grad = grad.sum(axis=tuple(range(extra)) + stretched, keepdims=True)
    if grad.shape[extra:] != tuple(shape):
        raise ValueError(f"gradient of shape {grad.shape} does not sum to shape {shape}")
    return grad.reshape(shape)


def _tensor_data(data: Any, dtype: Any = None) -> np.ndarray:
    """The array a Tensor stores: floating NumPy data keep their dtype, the rest become float32."""
    if isinstance(data, Tensor):
        data = data.data
    if dtype is not None:
        return np.asarray(data, dtype=dtype)
    if isinstance(data, (np.ndarray, np.floating)) and data.dtype.kind == "f":
        return np.asarray(data)
    array = np.asarray(data)
    if array.dtype.kind not in "biuf":
        raise TypeError(
            f"Tensor: expected numbers, got data of NumPy dtype {array.dtype} "
            f"(from {type(data).__name__}); convert it to a numeric array first"
        )
    return array.astype(np.float32)


class Tensor:
    """An n-dimensional array that remembers how it was computed, for reverse-mode autodiff.

    `Tensor(data, requires_grad=False, dtype=None)`: a floating NumPy array or scalar keeps its
    dtype; lists, ints and Python floats become float32 unless `dtype` is given. A NumPy array is
    shared, not copied, unless `requires_grad=True` (a parameter gets its own copy, since
    optimizers update it in place).
    """

    __slots__ = ("_ctx", "data", "grad", "requires_grad")
    __array_ufunc__ = None  # `ndarray + Tensor` defers to Tensor.__radd__ instead of looping

    def __init__(self, data: Any, requires_grad: bool = False, dtype: Any = None):
        if type(data) is np.ndarray and dtype is None and data.dtype.kind == "f":
            array = data  # the common case, taken first: floating data, shared as they are
        else:
            array = _tensor_data(data, dtype)
        if requires_grad and np.may_share_memory(array, data.data if isinstance(data, Tensor) else data):
            # a parameter is updated in place: it must not be the caller's array (data are shared, not copied)
            array = array.copy()
        self.data: np.ndarray = array
        self.grad: np.ndarray | None = None
        self.requires_grad: bool = bool(requires_grad)
        self._ctx: Function | None = None  # the op that made this tensor; None for a leaf

    # ----- plain properties -----
    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of `.data`."""
        return self.data.shape

    @property
    def dtype(self) -> np.dtype:
        """The dtype of `.data` (float32 or float64 for anything that trains)."""
        return self.data.dtype

    @property
    def ndim(self) -> int:
        """The number of axes of `.data`."""
        return self.data.ndim

    @property
    def size(self) -> int:
        """The number of elements of `.data`."""
        return self.data.size

    @property
    def is_leaf(self) -> bool:
        """True when no op made this tensor (data, parameters, detached tensors): backward stops here."""
        return self._ctx is None

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        grad = ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor({np.array2string(self.data, separator=', ')}, dtype={self.dtype}{grad})"

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        """Lets NumPy functions (np.asarray, np.mean, ...) read the data directly."""
        return self.data if dtype is None else self.data.astype(dtype)

    def numpy(self) -> np.ndarray:
        """The underlying array (shared, not copied)."""
        return self.data

    def item(self) -> float:
        """The value of a one-element tensor as a Python float."""
        if self.data.size != 1:
            raise ValueError(f"item(): tensor of shape {self.shape} has {self.data.size} elements, not 1")
        return self.data.item()

    def tolist(self) -> Any:
        """The values as nested Python lists (a number for a 0-d tensor), as `ndarray.tolist`."""
        return self.data.tolist()

    def detach(self) -> Tensor:
        """A tensor sharing this one's data, cut from the graph (no gradient flows through it)."""
        return Tensor(self.data)

    def zero_grad(self) -> None:
        """Forget the accumulated gradient (`.grad` becomes None, as PyTorch's `set_to_none`)."""
        self.grad = None

    # ----- reverse mode -----
    def backward(self, grad: np.ndarray | Tensor | None = None) -> None:
        """Accumulate d(self)/d(leaf) into `.grad` of every leaf that requires grad.

        `grad` is the upstream gradient, shaped like `self`; it may be left out only when
        `self` holds a single element. Gradients add up over calls until cleared.
        """
        if not self.requires_grad:
            raise RuntimeError(
                "backward(): this tensor does not require grad and has no graph; create the inputs "
                "with requires_grad=True (and outside no_grad()) to differentiate through them"
            )
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(
                    f"backward(): the output has shape {self.shape}, not a single element; "
                    "a gradient must be given: backward(grad) with grad of the same shape"
                )
            grad = np.ones(self.data.shape, self.data.dtype)
        else:
            grad = np.asarray(grad.data if isinstance(grad, Tensor) else grad, dtype=self.dtype)
            if grad.shape != self.shape:
                raise RuntimeError(f"backward(): grad has shape {grad.shape} but the output has shape {self.shape}")
        with no_grad():
            accumulate_grads(backpropagate(self, grad, create_graph=False))

    # ----- ops (each one is a Function in ops.py) -----
    def _lift(self, other: Any) -> Tensor:
        """Wrap an operand; a Python scalar takes this tensor's dtype."""
        if isinstance(other, Tensor):
            return other
        if isinstance(other, (int, float, bool)):
            return Tensor(np.asarray(other, dtype=self.dtype))
        return Tensor(other)

    def __add__(self, other):
        return ops.Add.apply(self, self._lift(other))

    def __radd__(self, other):
        return ops.Add.apply(self._lift(other), self)

    def __sub__(self, other):
        return ops.Sub.apply(self, self._lift(other))

    def __rsub__(self, other):
        return ops.Sub.apply(self._lift(other), self)

    def __mul__(self, other):
        return ops.Mul.apply(self, self._lift(other))

    def __rmul__(self, other):
        return ops.Mul.apply(self._lift(other), self)

    def __truediv__(self, other):
        return ops.Div.apply(self, self._lift(other))

    def __rtruediv__(self, other):
        return ops.Div.apply(self._lift(other), self)

    def __pow__(self, other):
        return ops.Pow.apply(self, self._lift(other))

    def __rpow__(self, other):
        return ops.Pow.apply(self._lift(other), self)

    def __neg__(self):
        return ops.Neg.apply(self)

    def __matmul__(self, other):
        return ops.MatMul.apply(self, self._lift(other))

    def __rmatmul__(self, other):
        return ops.MatMul.apply(self._lift(other), self)

    def matmul(self, other) -> Tensor:
        """`self @ other`, NumPy's matmul: (n, k) @ (k, m) -> (n, m), batched over leading axes."""
        return self @ other

    def __abs__(self):
        return ops.Abs.apply(self)

    def __getitem__(self, index) -> Tensor:
        """ints, slices, None, Ellipsis, integer arrays and boolean masks, as NumPy; a Tensor in the
        index acts as its array (a boolean Tensor is a mask)."""
        if isinstance(index, tuple):
            index = tuple(_index_array(part) if isinstance(part, Tensor) else part for part in index)
        elif isinstance(index, Tensor):
            index = _index_array(index)
        return ops.GetItem.apply(self, index=index)

    def sum(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
        """The sum over `axis` (an int, negative ints and tuples as NumPy; all axes when None)."""
        return ops.Sum.apply(self, axis=axis, keepdims=keepdims)

    def mean(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
        """The mean over `axis` (as `sum`); the mean of nothing is nan."""
        return ops.Mean.apply(self, axis=axis, keepdims=keepdims)

    def max(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
        """The largest value along `axis`; tied maxima share the gradient equally (PyTorch's amax)."""
        return ops.Max.apply(self, axis=axis, keepdims=keepdims)

    def min(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
        """The smallest value along `axis`; tied minima share the gradient equally (PyTorch's amin)."""
        return ops.Min.apply(self, axis=axis, keepdims=keepdims)

    def reshape(self, *shape) -> Tensor:
        """`x.reshape(2, 3)` or `x.reshape((2, 3))`, as NumPy."""
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return ops.Reshape.apply(self, shape=shape)

    def flatten(self) -> Tensor:
        """The values as one axis, in row-major order."""
        return self.reshape(-1)

    def squeeze(self, axis: int | Sequence[int] | None = None) -> Tensor:
        """Remove axes of length 1 (all of them, or those named; naming a longer one is an error, as NumPy)."""
        axes = ops.normalize_axes(axis, self.ndim)
        if axis is not None:
            longer = [a for a in axes if self.shape[a] != 1]
            if longer:
                raise ValueError(f"squeeze: axis {longer[0]} of shape {self.shape} has length {self.shape[longer[0]]}")
        return self.reshape(tuple(n for i, n in enumerate(self.shape) if not (i in axes and n == 1)))

    def transpose(self, *axes) -> Tensor:
        """Permute axes as `numpy.transpose`; no axes reverses them."""
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return ops.Transpose.apply(self, axes=axes or None)

    @property
    def T(self) -> Tensor:
        """The tensor with its axes reversed (`transpose()`)."""
        return self.transpose()

    def exp(self) -> Tensor:
        """eˣ, elementwise."""
        return ops.Exp.apply(self)

    def log(self) -> Tensor:
        """The natural logarithm, elementwise."""
        return ops.Log.apply(self)

    def sqrt(self) -> Tensor:
        """√x, elementwise."""
        return ops.Sqrt.apply(self)

    def abs(self) -> Tensor:
        """|x|, elementwise (its gradient at 0 is 0, as PyTorch's)."""
        return ops.Abs.apply(self)

    def relu(self) -> Tensor:
        """max(x, 0), elementwise (no gradient where x < 0)."""
        return ops.Relu.apply(self)

    def tanh(self) -> Tensor:
        """The hyperbolic tangent, elementwise."""
        return ops.Tanh.apply(self)

    def sigmoid(self) -> Tensor:
        """1 / (1 + e⁻ˣ), elementwise."""
        return ops.Sigmoid.apply(self)

    def maximum(self, other) -> Tensor:
        """The larger of self and `other` (broadcast), elementwise; the losing side gets no gradient."""
        return ops.Maximum.apply(self, self._lift(other))

    def clip(self, low: Any = None, high: Any = None) -> Tensor:
        """Values limited to [low, high], as `numpy.clip`; the gradient is 0 where a value was clipped.

        A bound is a number, an array or a Tensor that broadcasts with this one; it is a constant
        (no gradient flows to it) taken in this tensor's dtype, as PyTorch's `clamp` keeps its input's.
        """
        low, high = (
            None if b is None else np.asarray(b.data if isinstance(b, Tensor) else b, self.dtype) for b in (low, high)
        )
        return ops.Clip.apply(self, low=low, high=high)


def _index_array(index: Tensor) -> np.ndarray:
    """A Tensor used as an index: its array, which must hold integers or booleans, as NumPy asks."""
    if index.dtype.kind not in "biu":
        raise IndexError(
            f"a Tensor of dtype {index.dtype} cannot be used as an index; indices must be integers or booleans "
            "(make it with dtype=np.int64 or dtype=bool)"
        )
    return index.data


class Function:
    """A differentiable op: subclass it, write `forward` and `backward`, call `MyOp.apply(...)`.

    `forward(self, *arrays, **options)` gets the inputs' NumPy arrays and returns the result
    array; keep on `self` what backward needs (or read `self.inputs` and `self.output` there).
    `backward(self, grad)` gets the gradient of the result and returns one gradient per input (an
    array, or None where the input needs none; a single array when there is one input).
    Gradients may have the broadcast shape: `apply` sums them back to each input's shape.
    `self.needs_input_grad` tells which inputs need one.

    Set `differentiable_backward = True` when backward uses only `grad`, `self.inputs`,
    `self.output` and operations that Tensors have too (+, *, @, .sum, .reshape, other ops'
    `apply`): under `create_graph=True` those three are Tensors, and the gradient it returns can
    be differentiated again. Left False, backward serves first-order gradients only.
    """

    differentiable_backward = False
    parents: tuple[Tensor, ...]
    needs_input_grad: tuple[bool, ...]
    inputs: Sequence[Any]  # the inputs' arrays (Tensors while backward runs under create_graph)
    output: Any  # the output's array (its Tensor while backward runs under create_graph)

    def forward(self, *arrays: Any, **options: Any) -> Any:
        """The op's value, from its inputs' arrays (and keyword options); keep on `self` what backward needs."""
        raise NotImplementedError(f"{type(self).__name__}.forward is not written")

    def backward(self, grad: Any) -> Any:
        """The gradient of each input (one per input, None where there is none) from `grad`, the output's."""
        raise NotImplementedError(f"{type(self).__name__}.backward is not written")

    @classmethod
    def apply(cls, *inputs: Any, **options: Any) -> Tensor:
        """Run the op on tensors (other inputs are wrapped) and record it when a gradient is needed."""
        tensors = tuple([x if isinstance(x, Tensor) else Tensor(x) for x in inputs])
        ctx = cls()
        ctx.needs_input_grad = tuple([t.requires_grad for t in tensors])
        arrays = [t.data for t in tensors]
        out = Tensor(ctx.forward(*arrays, **options))
        if _mode.grad_enabled and True in ctx.needs_input_grad:
            ctx.parents, ctx.inputs, ctx.output = tensors, arrays, out.data
            out.requires_grad, out._ctx = True, ctx
        if _mode.tape is not None:
            _mode.tape.append((ctx, tensors, options, out))
        return out

    def _input_grads(self, out: Tensor | None, grad: Any, create_graph: bool) -> list[Any]:
        """Run backward on arrays (or, with create_graph, on Tensors), then sum each gradient to
        its input's shape (the one broadcasting rule)."""
        if create_graph:
            if not self.differentiable_backward:
                raise RuntimeError(
                    f"{type(self).__name__}.backward is written for arrays only, so the gradient through it "
                    "cannot be differentiated again (create_graph=True); write it with Tensor operations on "
                    "grad, self.inputs and self.output and set differentiable_backward = True"
                )
            arrays, output = self.inputs, self.output
            self.inputs, self.output = self.parents, out  # the same formula, now on Tensors
            try:
                grads = self.backward(grad)
            finally:
                self.inputs, self.output = arrays, output  # (keeping `out` here would be a reference cycle)
        else:
            grads = self.backward(grad)
        return self.input_gradients(grads, create_graph)

    def input_gradients(self, grads: Any, create_graph: bool = False) -> list[Any]:
        """What `backward` returned (`grads`), one gradient per input: None where an input needs none, each
        other an array summed to its input's shape (the one broadcasting rule; Tensors with `create_graph`)."""
        if type(grads) is not tuple:
            grads = (grads,)
        inputs = len(self.needs_input_grad)
        if len(grads) != inputs:
            raise RuntimeError(f"{type(self).__name__}.backward returned {len(grads)} gradients for {inputs} inputs")
        result: list[Any] = [None] * inputs
        for i, needed in enumerate(self.needs_input_grad):
            parent_grad = grads[i]
            if parent_grad is None or not needed:
                continue
            if create_graph:
                parent_grad = parent_grad if isinstance(parent_grad, Tensor) else Tensor(np.asarray(parent_grad))
            elif type(parent_grad) is not np.ndarray:
                parent_grad = np.asarray(parent_grad.data if isinstance(parent_grad, Tensor) else parent_grad)
            if parent_grad.shape != self.inputs[i].shape:
                parent_grad = self._summed_to_input(i, parent_grad, self.inputs[i].shape)
            result[i] = parent_grad
        return result

    def _summed_to_input(self, i: int, grad: Any, shape: tuple[int, ...]) -> Any:
        try:
            return unbroadcast(grad, shape)
        except ValueError:
            raise RuntimeError(
                f"{type(self).__name__}.backward: gradient {i} has shape {grad.shape}, "
                f"which does not sum to the input's shape {shape}"
            ) from None


def _consumers(root: Tensor) -> dict[int, int]:
    """How many times each tensor in `root`'s graph is an input of an op of that graph."""
    counts: dict[int, int] = {}
    stack = [root]
    while stack:
        ctx = stack.pop()._ctx
        if ctx is None:
            continue
        for parent in ctx.parents:
            if not parent.requires_grad:
                continue
            if id(parent) in counts:
                counts[id(parent)] += 1
            else:
                counts[id(parent)] = 1
                stack.append(parent)
    return counts


def backpropagate(
    root: Tensor, grad: Any, create_graph: bool, wanted: set[int] | None = None, visits: list | None = None
) -> list[tuple]:
    """Send `grad` (d something / d root) back through root's graph. Returns (tensor, gradient) for
    every leaf reached, or, with `wanted` (ids), for those tensors, leaves or not; the gradients are
    arrays, or Tensors with a graph of their own when `create_graph`. `visits`, if given, receives
    the tensors in the order their gradients were complete (`capture.py` replays that order).

    The order is HIPS autograd's: count how many ops of the graph use each tensor, then start from
    the root and release a tensor once all its users have sent their gradient back. No recursion,
    no global clock; each op's backward runs once, on the sum of what came in.
    """
    if _mode.tape is not None:
        raise RuntimeError(
            "capture_step: fn takes derivatives itself (backward(), tl.autograd.grad); the masks and values of "
            "that gradient would be frozen in the recording. Return the loss from fn and let the step take its "
            "gradient, or run this step eagerly"
        )
    pending = _consumers(root)
    grads = {id(root): grad}
    ready = [root]
    found = []
    while ready:
        node = ready.pop()
        node_grad = grads.pop(id(node), None)
        if visits is not None:
            visits.append(node)
        ctx = node._ctx
        if node_grad is not None and (id(node) in wanted if wanted is not None else ctx is None):
            found.append((node, node_grad))
        if ctx is None:
            continue
        if node_grad is None:  # nothing came in: the inputs still learn that this user is done
            parent_grads: list[Any] = [None] * len(ctx.parents)
        else:
            parent_grads = ctx._input_grads(node, node_grad, create_graph)
        for parent, parent_grad in zip(ctx.parents, parent_grads):
            if parent.requires_grad:
                key = id(parent)
                if parent_grad is not None:
                    grads[key] = grads[key] + parent_grad if key in grads else parent_grad
                pending[key] -= 1
                if not pending[key]:
                    ready.append(parent)
    return found


def accumulate_grads(found: list[tuple], fresh: Collection[int] = ()) -> None:
    """Add each (leaf, gradient) pair into `leaf.grad`, as PyTorch does; the first gradient is
    copied (in the leaf's dtype), so that `.grad` is an array the leaf owns, unless the leaf's id is
    among `fresh`: its gradient is then an array no one else holds, kept as it is when in that dtype."""
    for leaf, leaf_grad in found:
        if leaf.grad is None:
            keep = id(leaf) in fresh and leaf_grad.dtype == leaf.data.dtype
            leaf.grad = leaf_grad if keep else leaf_grad.astype(leaf.data.dtype)
        else:
            leaf.grad = leaf.grad + leaf_grad.astype(leaf.data.dtype, copy=False)


from tinygrad_lr import ops  # noqa: E402  (ops.py builds on Function above)
