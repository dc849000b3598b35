"""Every differentiable op: the forward, and right below it the local derivative.

`backward(grad)` returns the gradient for each input, given `grad` = dL/d(output). The
gradients may keep the broadcast shape: `Function.apply` sums them back to each input's shape.

Each derivative is written once, for every order. A backward reads its op's values from
`self.inputs` and `self.output`, and uses only what NumPy arrays and Tensors both have (`+ - * /
**`, `.sum`, `.reshape`, `.T`) and the few functions below that pick NumPy's version for arrays
and an op for Tensors (`expand`, `where`, `log`, `matmul`, `scatter_add`, `cast`). `backward()` runs it on
arrays: first-order gradients at NumPy's speed, no graph. `tl.autograd.grad(...,
create_graph=True)` runs the very same lines on Tensors, so the gradient is itself a graph of ops,
differentiable again. Masks and shapes saved in `forward` are constants in both: a kink's side or
a tie does not move under an infinitesimal change. Where such a mask makes a local derivative 0
(relu below 0, clip outside its bounds, maximum's losing side, a^0), backward selects 0 with `where`
instead of multiplying by 0, as PyTorch does: a NaN from above then reaches no entry that does not
depend on it, in any order of derivative.

The fused ops at the end (`Affine`, `MeanSquaredError`, `L2Penalty`) are what `Linear`, `mse` and
`l2_penalty` run: one op each instead of a chain, with the same rules; `AffineMSE` is the first two
in one, which a captured step runs in their place.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import numpy as np

from tinygrad_lr.tensor import Function, Tensor

__all__ = [
    "Abs",
    "Add",
    "Affine",
    "AffineMSE",
    "Cast",
    "Clip",
    "Div",
    "Exp",
    "Expand",
    "GetItem",
    "L2Penalty",
    "Log",
    "MatMul",
    "Max",
    "Maximum",
    "Mean",
    "MeanSquaredError",
    "Min",
    "Mul",
    "Neg",
    "Pow",
    "Relu",
    "Reshape",
    "ScatterAdd",
    "Sigmoid",
    "Sqrt",
    "Sub",
    "Sum",
    "Tanh",
    "Transpose",
    "Where",
    "normalize_axes",
]


class Op(Function):
    """A built-in op: its backward works on arrays and on Tensors alike (see the module docstring)."""

    differentiable_backward = True


# ----- the same function for arrays and Tensors: NumPy's for arrays, an op for Tensors -----


def expand(x, shape: tuple[int, ...]):
    """x broadcast to `shape`."""
    return Expand.apply(x, shape=shape) if isinstance(x, Tensor) else np.broadcast_to(x, shape)


def where(condition: np.ndarray | bool, x, y):
    """x where the (constant) condition holds, else y."""
    if isinstance(x, Tensor) or isinstance(y, Tensor):
        return Where.apply(x, y, condition=condition)
    return np.where(condition, x, y)


def log(x):
    return x.log() if isinstance(x, Tensor) else np.log(x)


def matmul(a, b):
    """a @ b. For arrays of at most two axes, np.dot: the same product, but NumPy's matmul takes a
    slow path when an axis has length 1 ((5000, 1) @ (1, 1): 27 µs against 1.8 µs)."""
    if isinstance(a, Tensor) or isinstance(b, Tensor):
        return MatMul.apply(a, b)
    return np.dot(a, b) if a.ndim <= 2 and b.ndim <= 2 else np.matmul(a, b)


def sum_rows(x):
    """x summed over its first axis (a bias's gradient). np.add.reduce is what ndarray.sum calls, the same
    numbers, without the Python layer in between (on a batch of 16 rows that layer costs a third)."""
    return x.sum(axis=0) if isinstance(x, Tensor) else np.add.reduce(x, axis=0)


def scatter_add(x, index, shape: tuple[int, ...]):
    """zeros(shape) with x added at `index` (repeated positions add up)."""
    if isinstance(x, Tensor):
        return ScatterAdd.apply(x, index=index, shape=shape)
    full = np.zeros(shape, x.dtype)
    np.add.at(full, index, x)
    return full


def cast(x, dtype):
    """x in `dtype` (x itself when it has it already)."""
    if x.dtype == dtype:
        return x
    return Cast.apply(x, dtype=dtype) if isinstance(x, Tensor) else x.astype(dtype)


def _matrix_transpose(x):
    """x with its last two axes swapped."""
    return x.T if x.ndim == 2 else x.transpose((*range(x.ndim - 2), x.ndim - 1, x.ndim - 2))


def normalize_axes(axis, ndim: int) -> tuple[int, ...]:
    """`axis` (None, an int or a sequence of ints, negative ones counted from the end) as a tuple of
    distinct non-negative axes. On a 0-d array, axis 0 and -1 name no axis at all, as in PyTorch."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis) if isinstance(axis, (tuple, list)) else None
    if axes is None or any(isinstance(a, bool) or not isinstance(a, (int, np.integer)) for a in axes):
        raise TypeError(f"axis must be None, an int or a tuple of ints, got {axis!r}")
    size = max(ndim, 1)
    for a in axes:
        if not -size <= a < size:
            raise np.exceptions.AxisError(f"axis {a!r} is out of bounds for a tensor of {ndim} dimension(s)")
    normalized = tuple(int(a) % size for a in axes) if ndim else ()
    if len(set(normalized)) != len(normalized):
        raise ValueError(f"axis {axis!r} names the same axis more than once")
    return normalized


# ----- arithmetic -----


class Add(Op):
    def forward(self, a, b):
        return a + b

    def backward(self, grad):
        # d(a+b)/da = 1, d(a+b)/db = 1
        return grad, grad


class Sub(Op):
    def forward(self, a, b):
        return a - b

    def backward(self, grad):
        # d(a-b)/da = 1, d(a-b)/db = -1
        return grad, -grad


class Neg(Op):
    def forward(self, a):
        return -a

    def backward(self, grad):
        return -grad


class Mul(Op):
    def forward(self, a, b):
        return a * b

    def backward(self, grad):
        a, b = self.inputs
        # d(ab)/da = b, d(ab)/db = a
        return grad * b, grad * a


class Div(Op):
    def forward(self, a, b):
        return a / b

    def backward(self, grad):
        _, b = self.inputs
        # d(a/b)/da = 1/b, d(a/b)/db = -a/b² = -(a/b)/b
        grad_a = grad / b
        return grad_a, (-grad_a * self.output if self.needs_input_grad[1] else None)


class Pow(Op):
    def forward(self, a, b):
        # PyTorch's conventions at zero: a^0 has slope 0 in a everywhere, a = 0 included (not
        # 0·0^-1 = nan), and 0^b has slope 0 in b wherever b >= 0 (not 0·log 0 = nan or -inf). At
        # those points backward takes the base as 1: its formulas then give exactly 0 there, make
        # no inf or nan, and keep their own derivatives right everywhere else.
        self.zero_exponent = b == 0
        self.base_one_for_a = self.zero_exponent & ((a == 0) | np.isnan(a))
        self.base_one_for_b = (a == 0) & (b >= 0)
        return a**b

    def backward(self, grad):
        a, b = self.inputs
        # d(a^b)/da = b·a^(b-1); d(a^b)/db = a^b·log(a), only asked for when b requires grad
        # (a constant exponent on a negative base must not produce log of a negative number)
        grad_a = grad_b = None
        if self.needs_input_grad[0]:
            # where the exponent is a constant 0, a^0 = 1 is flat in a at every order: no gradient, not even a
            # NaN from above (a varying exponent keeps the product: d²(a^b)/da db = 1/a at b = 0)
            flat = self.zero_exponent & (not self.needs_input_grad[1])
            grad_a = where(flat, 0, grad * b * where(self.base_one_for_a | flat, 1, a) ** (b - 1))
        if self.needs_input_grad[1]:
            grad_b = grad * self.output * log(where(self.base_one_for_b, 1, a))
        return grad_a, grad_b


class MatMul(Op):
    def forward(self, a, b):
        if a.ndim == 0 or b.ndim == 0 or a.shape[-1] != b.shape[-2 if b.ndim > 1 else 0]:
            raise ValueError(
                f"matmul: cannot multiply shapes {a.shape} and {b.shape}; the last axis of the left "
                "operand must match the first (1-D) or second-to-last axis of the right operand"
            )
        return matmul(a, b)

    def backward(self, grad):
        a, b = self.inputs
        # As matrices, dL/da = grad @ bᵀ and dL/db = aᵀ @ grad. A 1-D left operand is a row (1, k),
        # a 1-D right operand a column (k, 1), and grad gets those axes back; batch axes that were
        # broadcast are summed away by `apply`.
        a2 = a.reshape(1, -1) if a.ndim == 1 else a
        b2 = b.reshape(-1, 1) if b.ndim == 1 else b
        shape = grad.shape + ((1,) if b.ndim == 1 else ())
        if a.ndim == 1:
            shape = (*shape[:-1], 1, shape[-1])
        grad2 = grad.reshape(shape)
        grad_a = matmul(grad2, _matrix_transpose(b2)) if self.needs_input_grad[0] else None
        grad_b = matmul(_matrix_transpose(a2), grad2) if self.needs_input_grad[1] else None
        if grad_b is not None and b.ndim == 1:
            grad_b = grad_b.reshape(grad_b.shape[:-1])
        return grad_a, grad_b


# ----- reductions and shape -----


class Sum(Op):
    def forward(self, a, axis=None, keepdims=False):
        self.shape = a.shape
        self.axes = normalize_axes(axis, a.ndim)
        self.kept = tuple(1 if i in self.axes else n for i, n in enumerate(a.shape))  # reduced axes as 1s
        return np.sum(a, axis=self.axes, keepdims=keepdims)

    def backward(self, grad):
        # every summed element gets the gradient of the sum: put back the reduced axes and spread
        return expand(grad.reshape(self.kept), self.shape)


class Mean(Sum):
    def forward(self, a, axis=None, keepdims=False):
        total = super().forward(a, axis, keepdims)
        self.count = int(np.prod([a.shape[i] for i in self.axes]))
        # the mean of nothing is nan (NumPy, PyTorch), not 0/0's warning nor a silent 0
        return total / self.count if self.count else total * np.nan

    def backward(self, grad):
        # mean = sum / count (with no element there is no gradient to spread)
        return super().backward(grad) / max(self.count, 1)


class Max(Op):
    """The largest value along axes; tied maxima share the gradient equally (as PyTorch's amax)."""

    reduce: Callable[..., np.ndarray] = staticmethod(np.max)

    def forward(self, a, axis=None, keepdims=False):
        axes = normalize_axes(axis, a.ndim)
        out = self.reduce(a, axis=axes, keepdims=True)
        self.kept = out.shape  # the reduced axes as 1s
        ties = a == out
        with np.errstate(invalid="ignore", divide="ignore"):  # a NaN slice has no tie: its share is nan
            self.share = (ties / ties.sum(axis=axes, keepdims=True)).astype(a.dtype)
        return out if keepdims else np.squeeze(out, axis=axes)

    def backward(self, grad):
        # d max/da = 1/(number of ties) at each maximum, 0 elsewhere
        return grad.reshape(self.kept) * self.share


class Min(Max):
    """The smallest value along axes; tied minima share the gradient equally (as PyTorch's amin)."""

    reduce: Callable[..., np.ndarray] = staticmethod(np.min)


class Reshape(Op):
    def forward(self, a, shape):
        self.shape = a.shape
        return a.reshape(shape)

    def backward(self, grad):
        return grad.reshape(self.shape)


class Transpose(Op):
    def forward(self, a, axes=None):
        if axes is None:
            axes = tuple(reversed(range(a.ndim)))
        normalized = normalize_axes(axes, a.ndim)  # negative axes counted from the end, as NumPy
        if len(normalized) != a.ndim:
            raise ValueError(f"transpose: axes {axes!r} are not a permutation of the {a.ndim} axes of shape {a.shape}")
        self.inverse = tuple(int(i) for i in np.argsort(normalized))
        return np.transpose(a, normalized)

    def backward(self, grad):
        # the inverse permutation sends each axis home
        return grad.transpose(self.inverse)


class Expand(Op):
    """a broadcast to `shape`: Sum's backward. Its own backward is a sum, the one `apply` does."""

    def forward(self, a, shape):
        return np.broadcast_to(a, shape)

    def backward(self, grad):
        return grad


class GetItem(Op):
    def forward(self, a, index):
        self.index, self.shape = index, a.shape
        return a[index]

    def backward(self, grad):
        # scatter-add: an element picked twice by an integer array gets both gradients
        return scatter_add(grad, self.index, self.shape)


class ScatterAdd(Op):
    """zeros(shape) with `a` added at `index`: indexing's backward, and indexing is its backward."""

    def forward(self, a, index, shape):
        self.index = index
        return scatter_add(a, index, shape)

    def backward(self, grad):
        return grad[self.index]


class Where(Op):
    """a where the constant `condition` holds, else b."""

    def forward(self, a, b, condition):
        self.condition = condition
        return np.where(condition, a, b)

    def backward(self, grad):
        return where(self.condition, grad, 0), where(self.condition, 0, grad)


class Cast(Op):
    """a in another dtype; its gradient goes back in a's own (as PyTorch's `.to(dtype)`)."""

    def forward(self, a, dtype):
        self.input_dtype = a.dtype
        return a.astype(dtype)

    def backward(self, grad):
        return cast(grad, self.input_dtype)


# ----- elementwise functions -----


class Exp(Op):
    def forward(self, a):
        return np.exp(a)

    def backward(self, grad):
        # d(e^a)/da = e^a
        return grad * self.output


class Log(Op):
    def forward(self, a):
        return np.log(a)

    def backward(self, grad):
        # d(log a)/da = 1/a
        return grad / self.inputs[0]


class Sqrt(Op):
    def forward(self, a):
        return np.sqrt(a)

    def backward(self, grad):
        # d(√a)/da = 1/(2√a); infinite at a = 0, as in PyTorch
        return grad / (2 * self.output)


class Abs(Op):
    def forward(self, a):
        self.sign = np.sign(a)
        return np.abs(a)

    def backward(self, grad):
        # d|a|/da = sign(a), taken as 0 at the kink a = 0
        return grad * self.sign


class Relu(Op):
    def forward(self, a):
        self.positive = a > 0
        return np.maximum(a, 0)  # NaN stays NaN, as in PyTorch

    def backward(self, grad):
        # d relu(a)/da = 1 where a > 0, else 0
        return where(self.positive, grad, 0)


class Tanh(Op):
    def forward(self, a):
        return np.tanh(a)

    def backward(self, grad):
        # d tanh(a)/da = 1 - tanh(a)²
        return grad * (1 - self.output * self.output)


class Sigmoid(Op):
    def forward(self, a):
        # 1/(1+e^-a) written as exp(-log(1+e^-a)): no overflow for large negative a
        return np.exp(-np.logaddexp(0, -a)).astype(a.dtype, copy=False)

    def backward(self, grad):
        # dσ/da = σ(1-σ)
        return grad * self.output * (1 - self.output)


class Maximum(Op):
    def forward(self, a, b):
        # as torch.maximum: the losing side gets no gradient, a tie gives each side half, and next to a
        # NaN neither side loses (both comparisons are false)
        self.a_loses, self.b_loses, self.tie = a < b, a > b, a == b
        return np.maximum(a, b)

    def backward(self, grad):
        shared = where(self.tie, grad * 0.5, grad)
        return where(self.a_loses, 0, shared), where(self.b_loses, 0, shared)


class Clip(Op):
    def forward(self, a, low=None, high=None):
        # bounds may be arrays that broadcast with a (as np.clip's), so the mask takes the output's shape
        self.inside = (a >= low if low is not None else True) & (a <= high if high is not None else True)
        return np.clip(a, low, high)

    def backward(self, grad):
        # d clip(a)/da = 1 between the bounds (the bounds included, as PyTorch's clamp), 0 where clipped
        return where(self.inside, grad, 0)


# ----- fused ops: Linear's affine map, mean squared error, the L2 penalty -----


class Affine(Op):
    """x @ w + b as one op (Linear's forward). x: (..., in), w: (in, out), b: (out,)."""

    def forward(self, x, w, b):
        out = matmul(x, w)
        out += b
        return out

    def backward(self, grad):
        x, w, _ = self.inputs
        # y = x w + b:  dL/dx = grad wᵀ,  dL/dw = xᵀ grad,  dL/db = Σ_rows grad
        # (the leading axes of x are rows: flatten them so that one product sums over every sample)
        rows = grad.reshape(-1, w.shape[1])
        grad_x = matmul(grad, w.T) if self.needs_input_grad[0] else None
        grad_w = matmul(x.reshape(-1, w.shape[0]).T, rows) if self.needs_input_grad[1] else None
        grad_b = sum_rows(rows) if self.needs_input_grad[2] else None
        return grad_x, grad_w, grad_b


class MeanSquaredError(Op):
    """mean((pred - target)²) as one op, pred and target of one shape (`losses.mse` sees to that).

    The forward sums the squared difference a cache-sized block at a time: no data-sized
    difference array is ever made, which keeps a training step's peak memory at the data + ~20%
    on a million rows (+27% with a whole difference array; the benchmarks' target is +25%).
    """

    block = 1 << 15

    def forward(self, pred, target):
        mean, _ = mean_squared_error(pred, target, self.block)
        return np.asarray(mean, dtype=np.result_type(pred, target))

    def backward(self, grad):
        pred, target = self.inputs
        # d/dpred mean((pred - target)²) = 2·(pred - target) / N, and the target gets the opposite
        grad_pred = (pred - target) * (grad * (2 / max(pred.size, 1)))
        return grad_pred, (-grad_pred if self.needs_input_grad[1] else None)


def mean_squared_error(pred: np.ndarray, target: np.ndarray, block: int) -> tuple[float, np.ndarray | None]:
    """mean((pred - target)²) as a float (nan for no elements, as NumPy's and PyTorch's mean), and the
    difference itself when it fits in one block of `block` elements (else None: past one block the sum goes
    block by block and no data-sized difference is made)."""
    if pred.size <= block:
        diff = pred - target
        total = float(np.vdot(diff, diff))
    else:
        diff, total = None, 0.0
        for part_pred, part_target in _blocks(pred, target, block):
            part = part_pred - part_target
            total += float(np.vdot(part, part))
    if total == math.inf:  # the sum of squares overflowed; their mean may not have
        return _scaled_mean_square(pred, target, block), diff
    return (total / pred.size if pred.size else math.nan), diff


def _blocks(pred: np.ndarray, target: np.ndarray, block: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(pred, target) flattened, `block` elements at a time."""
    flat_pred, flat_target = pred.reshape(-1), target.reshape(-1)
    for start in range(0, flat_pred.size, block):
        yield flat_pred[start : start + block], flat_target[start : start + block]


def _scaled_mean_square(pred: np.ndarray, target: np.ndarray, block: int) -> float:
    """mean((pred - target)²) as scale²·mean(((pred - target) / scale)²), scale = max |pred - target|: inf
    only where the mean itself is beyond float64."""
    scale = max(float(np.max(np.abs(p - t))) for p, t in _blocks(pred, target, block))
    if not scale < math.inf:
        return scale * scale  # an infinite difference (nan stays nan)
    total = 0.0
    for part_pred, part_target in _blocks(pred, target, block):
        part = (part_pred - part_target) / scale
        total += float(np.vdot(part, part))
    with np.errstate(over="ignore"):  # (a mean beyond float64, or beyond the arrays' dtype, is inf: no warning)
        mean = scale * (scale * np.float64(total / pred.size))
        return float(np.asarray(mean, dtype=np.result_type(pred, target)))


class AffineMSE(Op):
    """mean((x @ w + b - target)²) [+ l2·Σw²] as one op: `Affine` then `MeanSquaredError` [plus
    `L2Penalty` of w], which a captured step (capture.py) fuses when the one feeds only the other.
    x: (n, in), w: (in, out), b: (out,), target: (n, out).

    The NumPy calls of the two ops in their order, with the difference made once instead of twice
    (in forward for the loss, kept for backward; past one block of `MeanSquaredError`, the
    prediction is kept instead, as the two ops keep it): the same numbers, to the bit.
    """

    def forward(self, x, w, b, target, l2=0.0):
        if x.ndim != 2 or w.ndim != 2 or target.shape != (len(x), w.shape[1]):
            raise ValueError(
                f"AffineMSE: x must be (n, in), w (in, out) and target (n, out); got x {x.shape}, w {w.shape}, "
                f"target {target.shape}"
            )
        self.pred = np.dot(x, w)  # (forward always sees arrays, here of two axes: `matmul`'s fast case)
        self.pred += b
        mean, self.diff = mean_squared_error(self.pred, target, MeanSquaredError.block)
        self.l2 = l2
        loss = np.asarray(mean, dtype=np.result_type(self.pred, target))
        return loss + penalty([w], l2) if l2 else loss

    def backward(self, grad):
        x, w, b, target = self.inputs
        # as the two ops: d/dpred = 2·(pred - target)/N, then dL/dx = grad_pred wᵀ, dL/dw = xᵀ grad_pred,
        # dL/db = Σ_rows grad_pred, and the target gets -grad_pred. (The difference saved by forward
        # serves first order, or the prediction past one block; on Tensors, for higher orders, the
        # difference is formed again as ops.)
        scale = grad * (2 / max(target.size, 1))
        if isinstance(x, Tensor):
            grad_pred = (matmul(x, w) + b - target) * scale
        elif self.diff is not None:
            grad_pred = self.diff * scale
        else:  # (in one expression, so that NumPy reuses the difference's memory for the product)
            grad_pred = (self.pred - target) * scale
        grad_x = matmul(grad_pred, w.T) if self.needs_input_grad[0] else None
        grad_w = matmul(x.T, grad_pred) if self.needs_input_grad[1] else None
        if grad_w is not None and self.l2:
            grad_w = grad_w + (grad * (2 * self.l2)) * w  # the penalty's term, as `L2Penalty` gives it
        grad_b = sum_rows(grad_pred) if self.needs_input_grad[2] else None
        return grad_x, grad_w, grad_b, (-grad_pred if self.needs_input_grad[3] else None)


def penalty(weights, l2: float) -> np.ndarray:
    """l2 · Σ w² over the weights, a 0-d array of the first one's dtype (one dot product per weight)."""
    return np.asarray(l2 * sum(float(np.vdot(w, w)) for w in weights), dtype=weights[0].dtype)


class L2Penalty(Op):
    """l2 · Σ w² over several tensors as one op (one dot product per tensor, no temporaries)."""

    def forward(self, *weights, l2):
        self.l2 = l2
        return penalty(weights, l2)

    def backward(self, grad):
        # d/dw (l2·Σw²) = 2·l2·w
        scale = grad * (2 * self.l2)
        return tuple(scale * w for w in self.inputs)
