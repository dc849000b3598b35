"""Dask arrays: every chunk's work is done where the chunk lives, and only small results travel.

A gradient step on Dask arrays sends the model (its weights, a few kB) to the chunks: on each,
the engine computes the loss and its gradient (`streams.block_sums`: Tensor, forward, backward),
and returns them as sums times the chunk's rows, in float64. Those sums meet in a tree
(`SPLIT_EVERY` at a time, as Dask's own reductions) and reach the client as one `Sums`: a few
numbers per parameter, whatever the number of rows. Least squares is one pass of the same kind:
the triangular factor R of each chunk's [1 X y], stacked and factored again up the tree.
`predict` maps the model over the chunks and stays lazy.

This works on any Dask scheduler: the default (threads on this machine), or a `dask.distributed`
cluster when a `Client` is active. Dask is an optional extra, imported only here and only when a
Dask array is given.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np

from tinygrad_lr import streams
from tinygrad_lr.tensor import Tensor, no_grad

__all__ = ["SPLIT_EVERY", "batches", "predict", "require_dask", "sums", "triangular_factor"]

SPLIT_EVERY = 8  # partial results combined per task on the way up the tree
EXTRA = 'pip install "tinygrad_lr[dask]"'


def require_dask(what: str) -> Any:
    """The `dask` module, or an ImportError that names the extra to install."""
    try:
        import dask
        import dask.array  # the array part of the extra
    except ImportError as error:
        raise ImportError(f"{what} needs Dask, an optional extra: {EXTRA} ({error})") from None
    return dask


def _chunk_pairs(caller: str, x: Any, y: Any, names: tuple[str, str]) -> list[tuple[Any, Any, int, int]]:
    """(x chunk, y chunk, chunk number, first row) as Delayed objects, for x (n, d) and y (n, k)
    chunked alike along the rows (a chunking along the columns is undone first)."""
    dask_array = require_dask(caller).array
    if not (isinstance(x, dask_array.Array) and isinstance(y, dask_array.Array)):
        plain = names[0] if not isinstance(x, dask_array.Array) else names[1]
        raise TypeError(
            f"{caller}: {names[0]} and {names[1]} must both be Dask arrays (or both not), but {plain} is a "
            f"{type(x if plain == names[0] else y).__name__}; make it one with dask.array.from_array(..., "
            f"chunks=({names[0]}.chunks[0], -1))"
        )
    if x.chunks[0] != y.chunks[0]:
        raise ValueError(
            f"{caller}: {names[0]} and {names[1]} are chunked differently along the rows: {names[0]} in chunks of "
            f"{_shown(x.chunks[0])} rows, {names[1]} in chunks of {_shown(y.chunks[0])}; they must match, chunk for "
            f"chunk: {names[1]} = {names[1]}.rechunk({{0: {names[0]}.chunks[0]}})"
        )
    x, y = (a.rechunk({1: -1}) if a.ndim == 2 else a for a in (x, y))
    starts = np.cumsum((0, *x.chunks[0]))
    return list(zip(x.to_delayed().ravel(), y.to_delayed().ravel(), range(len(x.chunks[0])), starts.tolist()))


def _shown(chunks: tuple[int, ...]) -> str:
    return str(chunks) if len(chunks) <= 6 else f"({', '.join(map(str, chunks[:3]))}, ..., {chunks[-1]})"


def _tree(dask: Any, parts: list[Any], combine: Callable[[list[Any]], Any]) -> Any:
    """One Delayed result from many, `SPLIT_EVERY` at a time: a tree of depth log(len(parts))."""
    while len(parts) > 1:
        parts = [dask.delayed(combine)(parts[i : i + SPLIT_EVERY]) for i in range(0, len(parts), SPLIT_EVERY)]
    return parts[0]


def _add(parts: list[streams.Sums]) -> streams.Sums:
    return sum(parts[1:], start=parts[0])


def _portable(model: Any) -> Any:
    """A copy of the model to send to the chunks: its layers and weights, without what training
    hangs on it (the optimizer and its state, the history)."""
    bare = copy.copy(model)
    for name in ("compiled", "history", "stop_training"):
        bare.__dict__.pop(name, None)
    return copy.deepcopy(bare)


def _chunk_sums(program: tuple, x: np.ndarray, y: np.ndarray, number: int, start: int) -> streams.Sums:
    model, loss, metrics, dtype, gradient, caller = program
    xb, yb = _read_chunks(caller, ("x", "y"), x, y, dtype, number, start)
    return streams.block_sums(model, loss, metrics, xb, yb, gradient)


def sums(
    model: Any,
    loss: Callable[[Tensor, Any], Tensor],
    metrics: dict[str, Callable[[Tensor, Any], Tensor]],
    x: Any,
    y: Any,
    dtype: Any,
    gradient: bool,
    caller: str,
) -> streams.Sums:
    """The Sums of all of (x, y), each chunk's computed where it lives: x (n, features), y (n, outputs)."""
    dask = require_dask(caller)
    program = dask.delayed((_portable(model), loss, metrics, np.dtype(dtype), gradient, caller), pure=False)
    parts = [dask.delayed(_chunk_sums)(program, *pair) for pair in _chunk_pairs(caller, x, y, ("x", "y"))]
    (total,) = dask.compute(_tree(dask, parts, _add))
    return total


def _read_chunks(
    caller: str, names: tuple[str, str], x: np.ndarray, y: np.ndarray, dtype: Any, number: int, start: int
) -> tuple[np.ndarray, np.ndarray]:
    """A chunk of x and of y, read and checked as a memory map's blocks are (rows counted in the whole array)."""
    return tuple(
        streams.read_block(f"{caller}: {name}", a, 0, len(a), dtype, number, unit="chunk", offset=start)
        for name, a in zip(names, (x, y))
    )


def batches(x: Any, y: Any, batch_size: int, shuffle: bool, rng: np.random.Generator) -> list[tuple[Any, Any]]:
    """Mini-batches of Dask arrays: contiguous slices of `batch_size` rows (lazy; each step's sums are
    computed on the chunks the slice touches), in order, or in an order drawn from `rng` with `shuffle`."""
    if batch_size >= len(x):
        return [(x, y)]
    return [(x[start:stop], y[start:stop]) for start, stop in streams.slices(len(x), batch_size, shuffle, rng)]


def _chunk_factor(x: np.ndarray, y: np.ndarray, number: int, start: int, fit_intercept: bool, caller: str) -> Any:
    xb, yb = _read_chunks(caller, ("X", "y"), x, y, np.float64, number, start)
    return streams.block_factor(xb, yb, fit_intercept)


def triangular_factor(x: Any, y: Any, fit_intercept: bool, caller: str) -> np.ndarray:
    """R of all of [1 X y] ([X y] without an intercept) for Dask arrays x (n, d) and y (n, k), in one
    pass: each chunk's factor where the chunk lives, then the factors combined up a tree."""
    dask = require_dask(caller)
    parts = [
        dask.delayed(_chunk_factor)(*pair, fit_intercept, caller) for pair in _chunk_pairs(caller, x, y, ("X", "y"))
    ]
    (factor,) = dask.compute(_tree(dask, parts, streams.stack_factors))
    return factor


def _chunk_predict(x: np.ndarray, model: Any, dtype: Any, block_info: dict | None = None) -> np.ndarray:
    where = block_info[0] if block_info else {"chunk-location": (0,), "array-location": ((0, len(x)),)}
    number, start = where["chunk-location"][0], where["array-location"][0][0]
    xb = streams.read_block("predict: x", x, 0, len(x), dtype, number, unit="chunk", offset=start)
    with no_grad():
        return model(Tensor(xb)).data


def predict(model: Any, x: Any, dtype: Any, outputs: int) -> Any:
    """The model's outputs on a Dask array x (n, features): a lazy (n, outputs) Dask array, chunked as
    x's rows, computed with the weights the model has now."""
    require_dask("predict")
    x = x.rechunk({1: -1})
    return x.map_blocks(
        _chunk_predict, _portable(model), np.dtype(dtype), chunks=(x.chunks[0], (outputs,)), dtype=dtype
    )
