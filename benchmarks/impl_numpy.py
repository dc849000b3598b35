"""The floor: the gradient of mse (+ l2) derived by hand, the update rules written by hand, in place.

No autodiff and no objects per step: what a NumPy user who knows the calculus writes. Any NumPy
engine pays at least this much per step, so it is what tinygrad_lr's ratios are measured against.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from workloads import Result, Workload

NAME = "numpy"
LABEL = "NumPy by hand (floor)"


def available() -> str | None:
    return None


def _optimizer(workload: Workload, params: list[np.ndarray]) -> Callable[[list[np.ndarray]], None]:
    """The update rule of PyTorch's SGD / Adam / RMSprop(alpha=rho), in place on `params`."""
    lr = workload.lr
    if workload.optimizer == "gd":

        def step(grads):
            for p, g in zip(params, grads):
                g *= lr
                p -= g

        return step

    if workload.optimizer == "adam":
        beta1, beta2, eps = 0.9, 0.999, 1e-8
        m = [np.zeros_like(p) for p in params]
        v = [np.zeros_like(p) for p in params]
        t = 0

        def step(grads):
            nonlocal t
            t += 1
            step_size = lr / (1 - beta1**t)
            root_correction = np.sqrt(1 - beta2**t)
            for p, g, m_i, v_i in zip(params, grads, m, v):
                # m ← β1 m + (1-β1) g;  v ← β2 v + (1-β2) g²;  p ← p - lr/(1-β1ᵗ) · m / (√v/√(1-β2ᵗ) + eps)
                m_i *= beta1
                m_i += (1 - beta1) * g
                v_i *= beta2
                g *= g
                g *= 1 - beta2
                v_i += g
                denom = np.sqrt(v_i)
                denom /= root_correction
                denom += eps
                p -= step_size * m_i / denom

        return step

    if workload.optimizer == "rmsprop":
        rho, eps = 0.9, 1e-8
        square_avg = [np.zeros_like(p) for p in params]

        def step(grads):
            for p, g, s in zip(params, grads, square_avg):
                # s ← ρ s + (1-ρ) g²;  p ← p - lr · g / (√s + eps)
                s *= rho
                s += (1 - rho) * g * g
                denom = np.sqrt(s)
                denom += eps
                g /= denom
                g *= lr
                p -= g

        return step

    raise ValueError(f"unknown optimizer {workload.optimizer!r}")


def prepare(workload: Workload) -> Callable[[], Result]:
    X, y, l2 = workload.X, workload.y, workload.l2
    X_val, y_val = workload.X_val, workload.y_val
    d, dtype = X.shape[1], X.dtype

    def train() -> Result:
        W = np.zeros((d, 1), dtype=dtype)
        b = np.zeros(1, dtype=dtype)
        update = _optimizer(workload, [W, b])
        losses, val_losses = [], []
        for epoch in workload.schedule:
            total = seen = 0
            for batch in epoch:
                xb, yb = X[batch], y[batch]
                m = len(yb)
                # diff = xW + b - y;  loss = mean(diff²) + l2 ΣW²
                diff = xb @ W
                diff += b
                diff -= yb
                loss = float(np.vdot(diff, diff)) / m
                # dloss/dW = 2/m · xᵀ diff + 2 l2 W,  dloss/db = 2/m · Σ diff
                grad_W = xb.T @ diff
                grad_W *= 2 / m
                grad_b = diff.sum(axis=0)
                grad_b *= 2 / m
                if l2:
                    loss += l2 * float(np.vdot(W, W))
                    grad_W += (2 * l2) * W
                update([grad_W, grad_b])
                total += loss * m
                seen += m
            losses.append(total / seen)
            if X_val is not None:
                diff = X_val @ W
                diff += b
                diff -= y_val
                val_losses.append(float(np.vdot(diff, diff)) / len(y_val) + l2 * float(np.vdot(W, W)))
        return Result.of(W, b, losses, val_losses)

    return train
