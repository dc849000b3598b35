"""JAX: `jax.value_and_grad` of the objective and the update rule in one `jax.jit`-compiled step.

Optional: when `import jax` fails, the suite skips this implementation with a note. Optax is not
assumed: GD, Adam and RMSprop are written in jax.numpy with PyTorch's rules. Contiguous batches
are sliced once, before timing (as a JAX user pre-batches a data set); shuffled batches are
gathered inside the compiled step from the device copy of the data. Compilation happens in the
warm-up run, which is not timed. Per-step losses stay on the device (async dispatch) until the
run ends, and the run ends by waiting for them.
"""

from __future__ import annotations

from collections.abc import Callable

from workloads import Result, Workload, epoch_means

NAME = "jax"
LABEL = "JAX jit"

try:
    import jax

    jax.config.update("jax_enable_x64", True)  # the float64 workload must stay float64
    import jax.numpy as jnp

    _IMPORT_ERROR = None
except ImportError as error:  # the benchmark extra is optional
    jax = jnp = None
    _IMPORT_ERROR = f"JAX not importable ({error}); pip install jax"


def available() -> str | None:
    return _IMPORT_ERROR


def version() -> str | None:
    return None if jax is None else jax.__version__


def _update_rule(workload: Workload):
    """(init(params) -> state, update(params, state, grads) -> (params, state)), PyTorch's rules."""
    lr = workload.lr
    tree_map = jax.tree_util.tree_map
    if workload.optimizer == "gd":
        return (lambda params: ()), (
            lambda params, state, grads: (tree_map(lambda p, g: p - lr * g, params, grads), ())
        )

    if workload.optimizer == "adam":
        beta1, beta2, eps = 0.9, 0.999, 1e-8

        def init(params):
            zeros = tree_map(jnp.zeros_like, params)
            return {"t": jnp.zeros((), jnp.int32), "m": zeros, "v": zeros}

        def update(params, state, grads):
            t = state["t"] + 1
            dtype = params["W"].dtype
            m = tree_map(lambda m, g: beta1 * m + (1 - beta1) * g, state["m"], grads)
            v = tree_map(lambda v, g: beta2 * v + (1 - beta2) * g * g, state["v"], grads)
            step_size = lr / (1 - beta1 ** t.astype(dtype))
            root_correction = jnp.sqrt(1 - beta2 ** t.astype(dtype))
            params = tree_map(lambda p, m, v: p - step_size * m / (jnp.sqrt(v) / root_correction + eps), params, m, v)
            return params, {"t": t, "m": m, "v": v}

        return init, update

    if workload.optimizer == "rmsprop":
        rho, eps = 0.9, 1e-8

        def init(params):
            return tree_map(jnp.zeros_like, params)

        def update(params, square_avg, grads):
            square_avg = tree_map(lambda s, g: rho * s + (1 - rho) * g * g, square_avg, grads)
            params = tree_map(lambda p, g, s: p - lr * g / (jnp.sqrt(s) + eps), params, grads, square_avg)
            return params, square_avg

        return init, update

    raise ValueError(f"unknown optimizer {workload.optimizer!r}")


def prepare(workload: Workload) -> Callable[[], Result]:
    l2 = workload.l2
    init, update = _update_rule(workload)
    X, y = jnp.asarray(workload.X), jnp.asarray(workload.y)
    has_val = workload.X_val is not None
    X_val = jnp.asarray(workload.X_val) if has_val else None
    y_val = jnp.asarray(workload.y_val) if has_val else None
    d, dtype = workload.X.shape[1], workload.dtype

    def objective(params, xb, yb):
        diff = xb @ params["W"] + params["b"] - yb
        loss = jnp.mean(diff * diff)
        return loss + l2 * jnp.sum(params["W"] * params["W"]) if l2 else loss

    def step(params, state, xb, yb):
        loss, grads = jax.value_and_grad(objective)(params, xb, yb)
        params, state = update(params, state, grads)
        return params, state, loss

    step_on_batch = jax.jit(step)
    step_on_rows = jax.jit(lambda params, state, X, y, index: step(params, state, X[index], y[index]))
    validation_loss = jax.jit(objective)

    # one entry per batch: ("batch", xb, yb) for contiguous rows, ("rows", X, y, index) for shuffled ones
    everything = slice(0, len(workload.X))

    def entry(batch):
        if isinstance(batch, slice):
            return ("batch", X, y) if batch == everything else ("batch", X[batch], y[batch])
        return ("rows", X, y, jnp.asarray(batch))

    schedule = [[entry(batch) for batch in epoch] for epoch in workload.schedule]

    def train() -> Result:
        params = {"W": jnp.zeros((d, 1), dtype), "b": jnp.zeros((1,), dtype)}
        state = init(params)
        losses, val_losses = [], []
        for epoch in schedule:
            for kind, *arrays in epoch:
                if kind == "batch":
                    params, state, loss = step_on_batch(params, state, *arrays)
                else:
                    params, state, loss = step_on_rows(params, state, *arrays)
                losses.append(loss)
            if has_val:
                val_losses.append(validation_loss(params, X_val, y_val))
        losses, val_losses, params = jax.device_get((losses, val_losses, params))
        return Result.of(params["W"], params["b"], epoch_means(losses, workload), val_losses)

    return train
