"""Every differentiable op: the forward, and right below it the local derivative.

`backward(grad)` returns the gradient for each input, given `grad` = dL/d(output). The
gradients may keep the broadcast shape: `Function.apply` sums them back to each input's shape.
"""

from __future__ import annotations

import numpy as np

from tinygrad_lr.tensor import Function

# ----- arithmetic -----


class Add(Function):
    def forward(self, a, b):
        return a + b

    def backward(self, grad):
        # d(a+b)/da = 1, d(a+b)/db = 1
        return grad, grad


class Sub(Function):
    def forward(self, a, b):
        return a - b

    def backward(self, grad):
        # d(a-b)/da = 1, d(a-b)/db = -1
        return grad, -grad


class Neg(Function):
    def forward(self, a):
        return -a

    def backward(self, grad):
        return -grad


class Mul(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, grad):
        # d(ab)/da = b, d(ab)/db = a
        return grad * self.b, grad * self.a


class Div(Function):
    def forward(self, a, b):
        self.b = b
        self.out = a / b
        return self.out

    def backward(self, grad):
        # d(a/b)/da = 1/b, d(a/b)/db = -a/b² = -(a/b)/b
        grad_a = grad / self.b
        return grad_a, (-grad_a * self.out if self.needs_input_grad[1] else None)


class Pow(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        self.out = a**b
        return self.out

    def backward(self, grad):
        # d(a^b)/da = b·a^(b-1); d(a^b)/db = a^b·log(a), only asked for when b requires grad
        # (a constant exponent on a negative base must not produce log of a negative number).
        # At zero, PyTorch's conventions: a^0 has slope 0 in a everywhere, a = 0 included (not
        # 0·0^-1 = nan), and 0^b has slope 0 in b wherever b >= 0 (not 0·log 0 = nan or -inf).
        # The base is replaced by 1 at those points before the power and the log are taken, so no
        # inf or nan is made there at all.
        a, b = self.a, self.b
        grad_a = grad_b = None
        if self.needs_input_grad[0]:
            flat = b == 0
            grad_a = np.where(flat, 0, grad * b * np.where(flat, 1, a) ** (b - 1))
        if self.needs_input_grad[1]:
            flat = (a == 0) & (b >= 0)
            grad_b = np.where(flat, 0, grad * self.out * np.log(np.where(flat, 1, a)))
        return grad_a, grad_b


class MatMul(Function):
    def forward(self, a, b):
        if a.ndim == 0 or b.ndim == 0 or a.shape[-1] != b.shape[-2 if b.ndim > 1 else 0]:
            raise ValueError(
                f"matmul: cannot multiply shapes {a.shape} and {b.shape}; the last axis of the left "
                "operand must match the first (1-D) or second-to-last axis of the right operand"
            )
        self.a, self.b = a, b
        return a @ b

    def backward(self, grad):
        # For 2-D operands: dL/da = grad @ bᵀ, dL/db = aᵀ @ grad. A 1-D operand is treated as
        # a row (left) or a column (right) and the axis it lost is put back into grad.
        a, b = self.a, self.b
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        grad2 = grad
        if a.ndim == 1:
            grad2 = np.expand_dims(grad2, -2 if b.ndim > 1 else 0)
        if b.ndim == 1:
            grad2 = np.expand_dims(grad2, -1)
        grad_a = grad_b = None
        if self.needs_input_grad[0]:
            grad_a = grad2 @ np.swapaxes(b2, -1, -2)
            grad_a = grad_a[..., 0, :] if a.ndim == 1 else grad_a
        if self.needs_input_grad[1]:
            grad_b = np.swapaxes(a2, -1, -2) @ grad2
            grad_b = grad_b[..., 0] if b.ndim == 1 else grad_b
        return grad_a, grad_b


# ----- reductions and shape -----


def normalize_axes(axis, ndim: int) -> tuple[int, ...]:
    """`axis` (None, an int or a sequence of ints, negative ones counted from the end) as a tuple of
    distinct non-negative axes. On a 0-d array, axis 0 and -1 name no axis at all, as in PyTorch."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    size = max(ndim, 1)
    for a in axes:
        if isinstance(a, bool) or not isinstance(a, (int, np.integer)) or not -size <= a < size:
            raise np.exceptions.AxisError(f"axis {a!r} is out of bounds for a tensor of {ndim} dimension(s)")
    normalized = tuple(int(a) % size for a in axes) if ndim else ()
    if len(set(normalized)) != len(normalized):
        raise ValueError(f"axis {axis!r} names the same axis more than once")
    return normalized


class Sum(Function):
    def forward(self, a, axis=None, keepdims=False):
        self.shape = a.shape
        self.axes = normalize_axes(axis, a.ndim)
        self.keepdims = keepdims
        return np.sum(a, axis=self.axes, keepdims=keepdims)

    def backward(self, grad):
        # every summed element gets the gradient of the sum: put back the reduced axes and spread
        if not self.keepdims:
            grad = np.expand_dims(grad, self.axes)
        return np.broadcast_to(grad, self.shape)


class Mean(Sum):
    def forward(self, a, axis=None, keepdims=False):
        total = super().forward(a, axis, keepdims)
        self.count = int(np.prod([a.shape[i] for i in self.axes]))
        # the mean of nothing is nan (NumPy, PyTorch), not 0/0's warning nor a silent 0
        return total / self.count if self.count else total * np.nan

    def backward(self, grad):
        # mean = sum / count (with no element there is no gradient to spread)
        return super().backward(grad) / max(self.count, 1)


class Reshape(Function):
    def forward(self, a, shape):
        self.shape = a.shape
        return a.reshape(shape)

    def backward(self, grad):
        return grad.reshape(self.shape)


class Transpose(Function):
    def forward(self, a, axes=None):
        if axes is None:
            axes = tuple(reversed(range(a.ndim)))
        self.axes = normalize_axes(axes, a.ndim)  # negative axes counted from the end, as NumPy
        if len(self.axes) != a.ndim:
            raise ValueError(f"transpose: axes {axes!r} are not a permutation of the {a.ndim} axes of shape {a.shape}")
        return np.transpose(a, self.axes)

    def backward(self, grad):
        # the inverse permutation sends each axis home
        return np.transpose(grad, np.argsort(self.axes))


class GetItem(Function):
    def forward(self, a, index):
        self.shape, self.dtype, self.index = a.shape, a.dtype, index
        return a[index]

    def backward(self, grad):
        # scatter-add: an element picked twice by an integer array gets both gradients
        full = np.zeros(self.shape, dtype=np.result_type(self.dtype, grad.dtype))
        np.add.at(full, self.index, grad)
        return full


# ----- elementwise functions -----


class Exp(Function):
    def forward(self, a):
        self.out = np.exp(a)
        return self.out

    def backward(self, grad):
        # d(e^a)/da = e^a
        return grad * self.out


class Log(Function):
    def forward(self, a):
        self.a = a
        return np.log(a)

    def backward(self, grad):
        # d(log a)/da = 1/a
        return grad / self.a


class Sqrt(Function):
    def forward(self, a):
        self.out = np.sqrt(a)
        return self.out

    def backward(self, grad):
        # d(√a)/da = 1/(2√a); infinite at a = 0, as in PyTorch
        return grad / (2 * self.out)


class Abs(Function):
    def forward(self, a):
        self.a = a
        return np.abs(a)

    def backward(self, grad):
        # d|a|/da = sign(a), taken as 0 at the kink a = 0
        return grad * np.sign(self.a)


class Relu(Function):
    def forward(self, a):
        self.positive = a > 0
        return np.maximum(a, 0)  # NaN stays NaN, as in PyTorch

    def backward(self, grad):
        # d relu(a)/da = 1 where a > 0, else 0
        return grad * self.positive


class Tanh(Function):
    def forward(self, a):
        self.out = np.tanh(a)
        return self.out

    def backward(self, grad):
        # d tanh(a)/da = 1 - tanh(a)²
        return grad * (1 - self.out * self.out)


class Sigmoid(Function):
    def forward(self, a):
        # 1/(1+e^-a) written as exp(-log(1+e^-a)): no overflow for large negative a
        self.out = np.exp(-np.logaddexp(0, -a)).astype(a.dtype, copy=False)
        return self.out

    def backward(self, grad):
        # dσ/da = σ(1-σ)
        return grad * self.out * (1 - self.out)


class Maximum(Function):
    def forward(self, a, b):
        out = np.maximum(a, b)
        # where a and b tie, each gets half the gradient (as torch.maximum)
        self.share_a = ((a > b) + 0.5 * (a == b)).astype(out.dtype)
        return out

    def backward(self, grad):
        return grad * self.share_a, grad * (1 - self.share_a)
