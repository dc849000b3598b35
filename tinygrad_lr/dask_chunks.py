"""Dask arrays: every chunk's work is done where the chunk lives, and only small results travel.

A gradient step on Dask arrays sends the model (its weights, a few kB) to the chunks: on each,
the engine computes the loss and its gradient (`blockwise.block_sums`: Tensor, forward, backward),
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

import contextlib
import copy
import dataclasses
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from tinygrad_lr import blockwise
from tinygrad_lr.data import choose_features
from tinygrad_lr.tensor import Tensor, no_grad

__all__ = ["SPLIT_EVERY", "as_chunks_of", "batches", "predict", "read_csv", "require_dask", "sums", "triangular_factor"]

SPLIT_EVERY = 8  # partial results combined per task on the way up the tree
PIN_CHECK_S = 1.0  # how often a computation pinned to workers checks that they are all still there
EXTRA = 'pip install "tinygrad_lr[dask]"'


def require_dask(what: str) -> Any:
    """The `dask` module, or an ImportError that names the extra to install."""
    try:
        import dask
        import dask.array  # the array part of the extra
    except ImportError as error:
        raise ImportError(f"{what} needs Dask, an optional extra: {EXTRA} ({error})") from None
    return dask


def _chunk_pairs(
    caller: str, x: Any, y: Any, names: tuple[str, str], w: Any = None
) -> list[tuple[Any, Any, Any, int, int]]:
    """(x chunk, y chunk, w chunk, chunk number, first row) as Delayed objects, for x (n, d) and y (n, k)
    or (n,) chunked alike along the rows (a chunking along the columns is undone first), and per-sample
    weights w (n,) in the same chunks (`as_chunks_of`; None without weights). The chunks are the arrays' own
    keys, so a step's tasks need only what is persisted, where it is."""
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
    count = len(x.chunks[0])
    weights = [None] * count if w is None else w.to_delayed().ravel()
    return list(zip(x.to_delayed().ravel(), y.to_delayed().ravel(), weights, range(count), starts.tolist()))


def as_chunks_of(x: Any, w: np.ndarray) -> Any:
    """Per-sample weights w (n,), checked, in memory, as a Dask array chunked as x's rows: each chunk
    goes to the workers with the tasks that read it."""
    return require_dask("sample_weight").array.from_array(w, chunks=(x.chunks[0],))


def _shown(chunks: tuple[int, ...]) -> str:
    return str(chunks) if len(chunks) <= 6 else f"({', '.join(map(str, chunks[:3]))}, ..., {chunks[-1]})"


def _tree(dask: Any, parts: list[Any], combine: Callable[[list[Any]], Any]) -> Any:
    """One Delayed result from many, `SPLIT_EVERY` at a time: a tree of depth log(len(parts))."""
    while len(parts) > 1:
        parts = [dask.delayed(combine)(parts[i : i + SPLIT_EVERY]) for i in range(0, len(parts), SPLIT_EVERY)]
    return parts[0]


def _on_the_chunks(
    caller: str,
    x: Any,
    y: Any,
    names: tuple[str, str],
    task: Callable[..., Any],
    combine: Callable[[list[Any]], Any],
    w: Any = None,
) -> Any:
    """`task` (a Delayed call) on each pair of chunks of x and y (`_chunk_pairs`, which checks them as
    `names`, with the chunk of the weights w), the results combined up a tree, computed.

    On a dask.distributed cluster, the task of a pair whose chunks the workers hold (persisted) is
    pinned to a worker that holds both (or x's): the scheduler would otherwise move tasks, and their
    chunks with them, to balance the load, above all at the first step, before it knows how long a
    chunk's task takes. Should a worker the tasks are pinned to leave (die), the computation is made
    again unpinned, rather than waiting for that worker forever."""
    dask = require_dask(caller)
    pairs = _chunk_pairs(caller, x, y, names, w)
    client = _distributed_client(dask)
    held = {} if client is None else {key: set(workers) for key, workers in client.who_has([x, y]).items()}
    dependencies = {}
    if held:  # a chunk not held itself (a slice of a held chunk) lives where what it is made of is
        dependencies = {**x.__dask_graph__().get_all_dependencies(), **y.__dask_graph__().get_all_dependencies()}
    parts, pinned = [], set()
    for pair in pairs:
        x_holders, y_holders = (_holders(chunk.key, held, dependencies) for chunk in pair[:2])
        workers = sorted(x_holders & y_holders or x_holders)
        pin = dask.annotate(workers=workers, allow_other_workers=False) if workers else contextlib.nullcontext()
        with pin:
            parts.append(task(*pair))
        pinned.update(workers)
    if not pinned:
        return dask.compute(_tree(dask, parts, combine))[0]
    future = client.compute(_tree(dask, parts, combine))
    while True:
        try:
            return future.result(timeout=PIN_CHECK_S)
        except TimeoutError:
            if not pinned <= set(client.nthreads()):
                future.cancel()
                return dask.compute(_tree(dask, [task(*pair) for pair in pairs], combine))[0]


def _holders(key: Any, held: dict[Any, set[str]], dependencies: dict[Any, set[Any]]) -> set[str]:
    """The workers holding the data of `key`, or of the held keys it is computed from (`held`: key →
    workers; `dependencies`: key → the keys its task reads)."""
    found: set[str] = set()
    todo, seen = [key], set()
    while todo:
        key = todo.pop()
        if key in seen:
            continue
        seen.add(key)
        if key in held:
            found |= held[key]
        else:
            todo.extend(dependencies.get(key, ()))
    return found


def _distributed_client(dask: Any) -> Any:
    """The dask.distributed Client that `dask.compute` would use now, or None (another scheduler)."""
    distributed = sys.modules.get("distributed")
    client = getattr(dask.base.get_scheduler(), "__self__", None)
    return client if distributed is not None and isinstance(client, distributed.Client) else None


def _add(parts: list[blockwise.Sums]) -> blockwise.Sums:
    return sum(parts[1:], start=parts[0])


def _portable(model: Any) -> Any:
    """A copy of the model to send to the chunks: its layers and weights, without what training
    hangs on it (the optimizer and its state, the history)."""
    bare = copy.copy(model)
    for name in ("compiled", "history", "stop_training"):
        bare.__dict__.pop(name, None)
    return copy.deepcopy(bare)


def _chunk_sums(
    work: blockwise.Summing, x: np.ndarray, y: np.ndarray, w: np.ndarray | None, number: int, start: int
) -> blockwise.Sums:
    xb, yb = _read_chunks(work.caller, ("x", "y"), x, y, work.dtype, number, start)
    wb = None if w is None else blockwise.weights_of_rows(w, 0, len(w), work.dtype)
    return blockwise.block_sums(work, xb, yb, wb)


def sums(work: blockwise.Summing, x: Any, y: Any, w: Any = None) -> blockwise.Sums:
    """The Sums of all of (x, y), each chunk's computed where it lives: x (n, features), y (n, outputs)
    or (n,) for one; w, per-sample weights (n,) or None. The model travels to the chunks once per call, as
    a copy without its training state."""
    dask = require_dask(work.caller)
    portable = dataclasses.replace(work, model=_portable(work.model), dtype=np.dtype(work.dtype))
    program = dask.delayed(portable, pure=False)
    task = dask.delayed(_chunk_sums)
    return _on_the_chunks(work.caller, x, y, ("x", "y"), lambda *pair: task(program, *pair), _add, w)


def _read_chunks(
    caller: str, names: tuple[str, str], x: np.ndarray, y: np.ndarray, dtype: Any, number: int, start: int
) -> tuple[np.ndarray, np.ndarray]:
    """A chunk of x and of y, read and checked as a memory map's blocks are (rows counted in the whole array)."""
    x_name, y_name = names
    return (
        blockwise.read_block(f"{caller}: {x_name}", x, 0, len(x), dtype, number, unit="chunk", offset=start),
        blockwise.read_block(f"{caller}: {y_name}", y, 0, len(y), dtype, number, unit="chunk", offset=start),
    )


def batches(
    x: Any, y: Any, batch_size: int, shuffle: bool, rng: np.random.Generator, w: Any = None
) -> list[tuple[Any, ...]]:
    """Mini-batches of Dask arrays: contiguous slices of `batch_size` rows (lazy; each step's sums are
    computed on the chunks the slice touches), in order, or in an order drawn from `rng` with `shuffle`;
    (x, y) pairs, or (x, y, w) triples with per-sample weights w (n,) chunked as x (`as_chunks_of`)."""
    arrays = (x, y) if w is None else (x, y, w)
    if batch_size >= len(x):
        return [arrays]
    return [tuple(a[start:stop] for a in arrays) for start, stop in blockwise.slices(len(x), batch_size, shuffle, rng)]


def read_csv(path: str, target: str, features: list[str] | None, blocksize: str) -> tuple[Any, Any, list[str]]:
    """(X, y, feature names) of a CSV file read in chunks of `blocksize` bytes by dask.dataframe: X (n, d)
    and y (n,), float64 Dask arrays chunked alike (the rows of each chunk counted, one pass). The target
    and the features are chosen by `tl.data.choose_features`' rules; a column that is not numeric, like a
    missing file, is an error of the file (ValueError, FileNotFoundError)."""
    require_dask(f"reading {path} in chunks")
    import dask.dataframe as dd

    frame = dd.read_csv(path, blocksize=blocksize, skipinitialspace=True)
    columns = [str(column).strip() for column in frame.columns]
    frame.columns = columns
    chosen = choose_features(path, columns, target, features)  # the in-memory reader's rules, on the header
    try:  # one pass to count each chunk's rows, so that the splits and the chunks of X and y agree
        values = frame[[*chosen, target]].astype("float64").to_dask_array(lengths=True)
    except (ValueError, TypeError) as error:
        raise ValueError(f"{path}: not numeric ({' '.join(str(error).split())[:200]})") from None
    return values[:, :-1], values[:, -1], chosen


def _chunk_factor(
    x: np.ndarray, y: np.ndarray, w: np.ndarray | None, number: int, start: int, fit_intercept: bool, caller: str
) -> Any:
    xb, yb = _read_chunks(caller, ("X", "y"), x, y, np.float64, number, start)
    return blockwise.block_factor(xb, yb, fit_intercept, None if w is None else np.asarray(w, np.float64))


def triangular_factor(x: Any, y: Any, fit_intercept: bool, caller: str, w: Any = None) -> np.ndarray:
    """R of all of [1 X y] ([X y] without an intercept; √w·[...] with per-sample weights w (n,)) for Dask
    arrays x (n, d) and y (n, k) or (n,), in one pass: each chunk's factor where the chunk lives, then the
    factors combined up a tree."""
    dask = require_dask(caller)
    task = dask.delayed(_chunk_factor)
    return _on_the_chunks(
        caller, x, y, ("X", "y"), lambda *pair: task(*pair, fit_intercept, caller), blockwise.stack_factors, w
    )


def _chunk_predict(x: np.ndarray, model: Any, dtype: Any, block_info: dict | None = None) -> np.ndarray:
    where: dict[str, Any] = block_info[0] if block_info else {"chunk-location": (0,), "array-location": ((0, len(x)),)}
    number, start = where["chunk-location"][0], where["array-location"][0][0]
    xb = blockwise.read_block("predict: x", x, 0, len(x), dtype, number, unit="chunk", offset=start)
    with no_grad():
        return model(Tensor(xb)).data


def predict(model: Any, x: Any, dtype: Any, outputs: int) -> Any:
    """The model's outputs on a Dask array x (n, features), or (n,) for one feature: a lazy (n, outputs)
    Dask array, chunked as x's rows, computed with the weights the model has now."""
    require_dask("predict")
    if x.ndim == 1:  # one feature: each chunk becomes a column as it is read
        return x.map_blocks(
            _chunk_predict, _portable(model), np.dtype(dtype), chunks=(x.chunks[0], (outputs,)), new_axis=1, dtype=dtype
        )
    x = x.rechunk({1: -1})
    return x.map_blocks(
        _chunk_predict, _portable(model), np.dtype(dtype), chunks=(x.chunks[0], (outputs,)), dtype=dtype
    )
