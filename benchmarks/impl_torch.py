"""PyTorch eager: nn.Linear, functional.mse_loss, torch.optim — the loop as PyTorch's tutorials write it.

Optional: when `import torch` fails, the suite skips this implementation with a note.
The data are shared with NumPy (`torch.from_numpy`, no copy); the shuffled batches' index arrays
are made torch tensors once, before timing (a PyTorch user's sampler hands out tensors).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from workloads import Result, Workload

NAME = "torch"
LABEL = "PyTorch eager"

try:
    import torch
    from torch.nn import functional

    _IMPORT_ERROR = None
except ImportError as error:  # the benchmark extra is optional
    torch = None
    _IMPORT_ERROR = f"PyTorch not importable ({error}); pip install torch==2.13.0"


def available() -> str | None:
    return _IMPORT_ERROR


def version() -> str | None:
    return None if torch is None else torch.__version__


def _optimizer(workload: Workload, params):
    if workload.optimizer == "adam":
        return torch.optim.Adam(params, lr=workload.lr, betas=(0.9, 0.999), eps=1e-8)
    if workload.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=workload.lr, alpha=0.9, eps=1e-8)  # alpha is Keras' rho
    return torch.optim.SGD(params, lr=workload.lr)


def prepare(workload: Workload) -> Callable[[], Result]:
    X, y = torch.from_numpy(workload.X), torch.from_numpy(workload.y)
    X_val = None if workload.X_val is None else torch.from_numpy(workload.X_val)
    y_val = None if workload.y_val is None else torch.from_numpy(workload.y_val)
    schedule = [[b if isinstance(b, slice) else torch.from_numpy(b) for b in epoch] for epoch in workload.schedule]
    torch_dtype = X.dtype
    l2 = workload.l2

    def train() -> Result:
        model = torch.nn.Linear(X.shape[1], 1, dtype=torch_dtype)
        with torch.no_grad():
            model.weight.zero_()
            model.bias.zero_()
        optimizer = _optimizer(workload, model.parameters())
        losses, val_losses = [], []
        for epoch in schedule:
            total = seen = 0
            for batch in epoch:
                xb, yb = X[batch], y[batch]
                optimizer.zero_grad()
                loss = functional.mse_loss(model(xb), yb)
                if l2:
                    loss = loss + l2 * (model.weight**2).sum()
                loss.backward()
                optimizer.step()
                total += loss.item() * len(yb)
                seen += len(yb)
            losses.append(total / seen)
            if X_val is not None:
                with torch.no_grad():
                    val = functional.mse_loss(model(X_val), y_val)
                    if l2:
                        val = val + l2 * (model.weight**2).sum()
                    val_losses.append(val.item())
        # torch keeps the weight as (out, in); the others as (in, out)
        weight = model.weight.detach().numpy().T
        return Result.of(np.array(weight), model.bias.detach().numpy().copy(), losses, val_losses)

    return train
