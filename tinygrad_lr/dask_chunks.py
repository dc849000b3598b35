"""Dask arrays: every chunk's work is done where the chunk lives, and only small results travel.

A gradient step on Dask arrays sends the model (its weights, a few kB) to the chunks: on each,
the engine computes the loss and its gradient (`blockwise.block_sums`: Tensor, forward, backward),
and returns them as sums times the chunk's rows, in float64. Those sums meet in a tree
(`SPLIT_EVERY` at a time, as Dask's own reductions) and reach the client as one `Sums`: a few
numbers per parameter, whatever the number of rows. Least squares is one pass of the same kind:
each chunk's triangular factor of its centred [X y] with its mean (`blockwise.Factor`), merged up the
tree by Chan's update (`blockwise.stack_factors`): (d + k)² numbers a chunk.
`predict` maps the model over the chunks and stays lazy. The moments of a full-batch fit
(`moments.Moments`) are one more such pass: each chunk's centred sums where it lives, merged up the
tree by Chan's update — (d + k)² numbers a chunk, whatever its rows.

What one pass found can be remembered for the arrays it read (`remember`): their moments, their first
rows. Dask names an array after the computation that makes it, so the same name is the same numbers; a
later `fit` or picture on arrays of those names then reads nothing (the command line parses a large CSV
once, `experiment.py`). An entry lives as long as its owner keeps the remembered object.

This works on any Dask scheduler: the default (threads on this machine), or a `dask.distributed`
cluster when a `Client` is active. Dask is an optional extra, imported only here and only when a
Dask array is given.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import io
import os
import sys
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np

from tinygrad_lr import blockwise
from tinygrad_lr.data import choose_features
from tinygrad_lr.moments import Moments, of_blocks
from tinygrad_lr.tensor import Tensor, no_grad

__all__ = [
    "SPLIT_EVERY",
    "as_chunks_of",
    "batches",
    "csv_arrays",
    "csv_header",
    "csv_parts",
    "csv_rows",
    "known_moments",
    "known_rows",
    "moments",
    "not_numeric",
    "predict",
    "remember",
    "require_dask",
    "sums",
    "triangular_factor",
]

SPLIT_EVERY = 8  # partial results combined per task on the way up the tree
REFERENCE_ROWS = 1024  # at least this many first rows (or all) make the moments' reference fit
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


def csv_header(path: str, target: str, features: list[str] | None) -> tuple[list[str], list[str]]:
    """The columns of a CSV file's header (stripped of spaces) and the chosen features (by
    `tl.data.choose_features`' rules; a missing file is a FileNotFoundError)."""
    import pandas

    columns = [str(column).strip() for column in pandas.read_csv(path, nrows=0, skipinitialspace=True).columns]
    return columns, choose_features(path, columns, target, features)  # the in-memory reader's rules


def not_numeric(path: str, error: Exception) -> ValueError:
    """The error of a CSV file with a column that is not numeric, as the reader found it (`error`)."""
    return ValueError(f"{path}: not numeric ({' '.join(str(error).split())[:200]})")


def csv_rows(path: str, blocksize: int) -> list[int]:
    """The rows of each chunk of a CSV file, as `_chunk` cuts it (chunk i: the lines that start in bytes
    [i·blocksize, (i+1)·blocksize)), counted from the line ends alone in one read of the file, without
    parsing: at the disk's pace. The header is not a row. (Nor, for pandas, is an empty line, and a quoted
    field may hold a line end: there these counts are wrong, which `csv_parts` finds, counting the rows it
    parses.)"""
    counts = []
    window = bytearray(blocksize)
    line_starts_here = True  # at the file's first byte, and after a line end at a window's last byte
    with open(path, "rb", buffering=0) as file:
        while size := _read_into(file, window):
            ends = window.count(b"\n", 0, size)
            ends_at_the_edge = window[size - 1] == ord("\n")  # (its line starts in the next window, if any)
            counts.append(ends - ends_at_the_edge + line_starts_here)
            line_starts_here = ends_at_the_edge
    if counts:
        counts[0] -= 1  # the header
    return counts


def _read_into(file: Any, window: bytearray) -> int:
    """Fill `window` from `file` (fewer bytes only at its end): how many bytes were read."""
    view, size = memoryview(window), 0
    while size < len(window) and (read := file.readinto(view[size:])):
        size += read
    return size


def _chunk(path: str, number: int, blocksize: int) -> bytes:
    """Chunk `number` of a CSV file: its lines that start in bytes [number·blocksize, (number + 1)·blocksize)
    (chunk 0 holds the header; a chunk within one long line holds none)."""
    with open(path, "rb") as file:
        start, stop = (_line_start(file, k * blocksize) for k in (number, number + 1))
        file.seek(start)
        return file.read(stop - start)


def _line_start(file: Any, position: int) -> int:
    """The first byte at or after `position` that starts a line (the file's size if none does)."""
    size = os.fstat(file.fileno()).st_size
    if position <= 0 or position >= size:
        return min(max(position, 0), size)
    file.seek(position - 1)  # a line starts at `position` when the byte before it ends one
    while piece := file.read(1 << 16):
        end = piece.find(b"\n")
        if end >= 0:
            return file.tell() - len(piece) + end + 1
    return size


def _chunks(path: str, blocksize: int) -> list[Any]:
    """Each chunk of the file (`_chunk`), lazy: read where a task parses it."""
    dask = require_dask(f"reading {path} in chunks")
    read = dask.delayed(_chunk, pure=True)
    return [read(path, number, blocksize) for number in range(-(-os.path.getsize(path) // blocksize))]


def _parse_block(block: bytes, number: int, path: str, positions: list[int], width: int) -> np.ndarray:
    """The columns at `positions` of a chunk of a CSV file of `width` columns (its bytes; chunk 0 starts with
    the header), parsed by pandas' C parser as `tl.data.load_csv`'s fast path parses a file: a row per column,
    (len(positions), rows), float64. A cell that is not a number is the file's error (ValueError); "nan",
    "inf" and an empty cell are non-finite numbers here, which the moments' check names (`_chunk_parts`)."""
    import pandas

    try:
        frame = pandas.read_csv(
            io.BytesIO(block), header=None, names=list(range(width)), usecols=sorted(set(positions)),
            skiprows=1 if number == 0 else 0, dtype=np.float64, engine="c",
        )  # fmt: skip
    except ValueError as error:
        raise not_numeric(path, error) from None
    # a row per column: each column copied whole, and every part's work on contiguous rows
    return np.stack([frame[position].to_numpy() for position in positions])


def _positions(path: str, columns: list[str]) -> tuple[list[int], int]:
    """Where each of `columns` is in the file's header, and how many columns it has."""
    header = csv_header(path, columns[-1], None)[0]
    return [header.index(column) for column in columns], len(header)


@dataclasses.dataclass
class Parts:
    """What one pass over a table's rows found for each of its parts (rows labelled 0, 1, ...): its row
    count, the `Moments` of (x, y) (None without rows), each column of x's least and largest value (d,),
    and its first rows, x (≤ limit, d) and y (≤ limit,); and the rows of each chunk read, in order."""

    counts: list[int]
    moments: list[Moments | None]
    low: list[np.ndarray]
    high: list[np.ndarray]
    first: list[tuple[np.ndarray, np.ndarray]]
    chunk_rows: list[int]
    limit: int

    def merged(self, other: Parts) -> Parts:
        """The parts of this table's rows followed by `other`'s."""
        moments = [a if b is None else b if a is None else a.merged(b) for a, b in zip(self.moments, other.moments)]
        first = [
            (np.concatenate([xa, xb])[: self.limit], np.concatenate([ya, yb])[: self.limit])
            for (xa, ya), (xb, yb) in zip(self.first, other.first)
        ]
        return Parts(
            [a + b for a, b in zip(self.counts, other.counts)],
            moments,
            [np.minimum(a, b) for a, b in zip(self.low, other.low)],
            [np.maximum(a, b) for a, b in zip(self.high, other.high)],
            first,
            self.chunk_rows + other.chunk_rows,
            self.limit,
        )


def _chunk_parts(
    table: np.ndarray,
    labels: np.ndarray,
    number: int,
    start: int,
    path: str,
    reference: np.ndarray,
    parts: int,
    limit: int,
) -> Parts:
    """The Parts (`parts` of them) of one chunk of a table, a row per column ((d + 1, rows): the features, then
    the target, as `_parse_block` gives them), its rows labelled by `labels` (the chunk's slice of them; when
    the chunk has another number of rows, it is only counted: the caller counts again)."""
    d, rows = len(table) - 1, table.shape[1]
    empty = Parts(
        [0] * parts,
        [None] * parts,
        [np.full(d, np.inf)] * parts,
        [np.full(d, -np.inf)] * parts,
        [(np.zeros((0, d)), np.zeros(0))] * parts,
        [rows],
        limit,
    )
    if rows != len(labels):
        return empty
    found = empty
    for part in range(parts):
        chosen = labels == part
        if not chosen.any():
            continue
        columns_of_part = table[:, chosen]
        xp, yp = columns_of_part[:d].T, columns_of_part[d]  # (views: x (m, d) a column at a time)
        found.counts[part] = len(yp)
        found.moments[part] = of_blocks([(xp, yp, None)], reference)
        found.low[part], found.high[part] = columns_of_part[:d].min(axis=1), columns_of_part[:d].max(axis=1)
        found.first[part] = (np.ascontiguousarray(xp[:limit]), yp[:limit].copy())
    if not all(m is None or m.is_finite() for m in found.moments):
        # a value that is not finite makes the sums so (checked once, on them, not on every value): found
        # and named as a step's read would name it
        names = (f"{path}: features", f"{path}: target")
        for what, block in zip(names, (table[:d].T, table[d])):
            blockwise.read_block(what, block, 0, rows, np.float64, number, "chunk", start)
        raise ValueError(
            f"{path}: chunk {number} (rows {start} to {start + rows - 1}): the sums of its values overflow "
            "float64; rescale the columns"
        )
    return found


def _merge_parts(parts: list[Parts]) -> Parts:
    merged = parts[0]
    for part in parts[1:]:
        merged = merged.merged(part)
    return merged


def csv_parts(
    path: str,
    target: str,
    features: list[str],
    blocksize: int,
    labels: np.ndarray,
    rows: list[int],
    reference: np.ndarray,
    parts: int,
    limit: int,
) -> Parts:
    """One pass over a CSV file (read in chunks of about `blocksize` bytes, `_chunk`, each parsed where it is
    read): the `Parts` of its rows, labelled by `labels` (n,) (`parts` of them: 0 train, 1 validation, ...),
    the chunks holding `rows` rows each (`csv_rows`); the moments taken against the reference fit
    `reference` (d, 1). Only the Parts travel: moments, column ranges and the first `limit` rows of each part."""
    dask = require_dask(f"reading {path} in chunks")
    positions, width = _positions(path, [*features, target])
    starts = np.cumsum([0, *rows]).tolist()
    parse, task = dask.delayed(_parse_block), dask.delayed(_chunk_parts)
    tasks = [
        task(
            parse(block, i, path, positions, width),
            labels[starts[i] : starts[i + 1]] if i < len(rows) else labels[:0],
            i,
            starts[min(i, len(rows))],
            path,
            reference,
            parts,
            limit,
        )
        for i, block in enumerate(_chunks(path, blocksize))
    ]
    return dask.compute(_tree(dask, tasks, _merge_parts))[0]


def csv_arrays(
    path: str, target: str, features: list[str], blocksize: int, rows: list[int], labels: np.ndarray, parts: int
) -> list[tuple[Any, Any]]:
    """(X, y) of each part of a CSV file's rows, labelled by `labels` (n,) (0 to parts - 1), in the file's
    order: X (rows, d) and y (rows,), float64 Dask arrays in its chunks (of `rows` rows each), lazy: each
    chunk's rows of a part are picked by the chunk's labels where it is read (and the chunk parsed once for
    the parts a computation asks for together)."""
    dask = require_dask(f"reading {path} in chunks")
    positions, width = _positions(path, [*features, target])
    starts = np.cumsum([0, *rows])
    parse = dask.delayed(_parse_block)
    tables = [parse(block, i, path, positions, width) for i, block in enumerate(_chunks(path, blocksize))]
    found = []
    for part in range(parts):
        pieces = [
            dask.array.from_delayed(
                dask.delayed(_rows_of_part)(table, labels[a:b], part),
                shape=(int(np.count_nonzero(labels[a:b] == part)), len(positions)),
                dtype=np.float64,
            )
            for table, a, b in zip(tables, starts[:-1], starts[1:])
        ]
        values = dask.array.concatenate(pieces) if pieces else dask.array.zeros((0, len(positions)))
        found.append((values[:, :-1], values[:, -1]))
    return found


def _rows_of_part(table: np.ndarray, labels: np.ndarray, part: int) -> np.ndarray:
    """The rows of a chunk's table (a row per column) labelled `part`, a row per row (rows, columns)."""
    return table[:, labels == part].T


def _chunk_factor(
    x: np.ndarray, y: np.ndarray, w: np.ndarray | None, number: int, start: int, fit_intercept: bool, caller: str
) -> blockwise.Factor:
    if len(x):
        xb, yb = _read_chunks(caller, ("X", "y"), x, y, np.float64, number, start)
    else:  # (a chunk of no rows: its factor is zeros, of no weight)
        xb, yb = (np.zeros((0, a.shape[1] if a.ndim == 2 else 1)) for a in (x, y))
    return blockwise.block_factor(xb, yb, fit_intercept, None if w is None else np.asarray(w, np.float64))


def triangular_factor(x: Any, y: Any, fit_intercept: bool, caller: str, w: Any = None) -> blockwise.Factor:
    """The `blockwise.Factor` of all the rows of Dask arrays x (n, d) and y (n, k) or (n,) (weighted by w (n,)),
    in one pass: each chunk's factor where the chunk lives (centred on the chunk's mean, with an intercept),
    then the factors merged up a tree (`blockwise.stack_factors`); only the factors travel."""
    dask = require_dask(caller)
    task = dask.delayed(_chunk_factor)
    return _on_the_chunks(
        caller, x, y, ("X", "y"), lambda *pair: task(*pair, fit_intercept, caller), blockwise.stack_factors, w
    )


# ----- the moments: one pass, each chunk's where it lives -----


def _chunk_moments(
    x: np.ndarray,
    y: np.ndarray,
    w: np.ndarray | None,
    number: int,
    start: int,
    dtype: Any,
    caller: str,
    reference: np.ndarray,
) -> Moments | None:
    """The moments of a chunk (None for a chunk of no rows), read and checked as a step reads it (in the
    model's `dtype`)."""
    if not len(x):
        return None
    xb, yb = _read_chunks(caller, ("x", "y"), x, y, dtype, number, start)
    wb = None if w is None else blockwise.weights_of_rows(w, 0, len(w), dtype)
    return of_blocks([(xb, yb, wb)], reference)  # (a block of a few thousand rows at a time)


def _merge_moments(parts: list[Moments | None]) -> Moments | None:
    found = [part for part in parts if part is not None]
    return Moments.combined(found) if found else None


def moments(x: Any, y: Any, dtype: Any, caller: str, w: Any = None) -> Moments:
    """The moments of Dask arrays x (n, d) or (n,), y (n, k) or (n,) (weighted by w (n,), chunked as x), of
    their values in `dtype`: each chunk's where it lives, merged up a tree; only the moments travel.

    Two rounds: the first rows (the first chunk, or `REFERENCE_ROWS`) give the reference fit W₀, which
    the second sends to every chunk (the moments of parts merge only with the same W₀)."""
    dask = require_dask(caller)
    dtype = np.dtype(dtype)
    task = dask.delayed(_chunk_moments)
    d, k = (a.shape[1] if a.ndim == 2 else 1 for a in (x, y))
    head = min(len(x), max(x.chunks[0][0], REFERENCE_ROWS))
    zeros = np.zeros((d, k))
    first = _on_the_chunks(
        caller,
        x[:head],
        y[:head],
        ("x", "y"),
        lambda *pair: task(*pair, dtype, caller, zeros),
        _merge_moments,
        None if w is None else w[:head],
    )
    reference = first.reference_fit()
    found = _on_the_chunks(
        caller, x, y, ("x", "y"), lambda *pair: task(*pair, dtype, caller, reference), _merge_moments, w
    )
    if found is None:
        raise ValueError(f"{caller}: x has no rows")
    return found


# What passes found, by the Dask names of the arrays they read; weak values: an entry goes with its owner.
_KNOWN: weakref.WeakValueDictionary[tuple, Any] = weakref.WeakValueDictionary()


def _key(kind: str, *arrays: Any, dtype: Any = None) -> tuple:
    return (
        kind,
        *(None if a is None else getattr(a, "name", None) for a in arrays),
        None if dtype is None else np.dtype(dtype).str,
    )


def remember(found: Moments | np.ndarray, x: Any, y: Any = None, w: Any = None, dtype: Any = np.float64) -> Any:
    """Remember what a pass found for Dask arrays: the `Moments` of (x, y) (weighted by w) in `dtype`, or
    x's first rows (an array, rows of x). Returns `found`: the entry lasts as long as the caller keeps it."""
    if isinstance(found, Moments):
        _KNOWN[_key("moments", x, y, w, dtype=dtype)] = found
    else:
        _KNOWN[_key("rows", x)] = found
    return found


def known_moments(x: Any, y: Any, w: Any, dtype: Any) -> Moments | None:
    """The remembered moments of (x, y, w) in `dtype`, or None."""
    return _KNOWN.get(_key("moments", x, y, w, dtype=dtype))


def known_rows(x: Any) -> np.ndarray | None:
    """The remembered first rows of x, or None."""
    return _KNOWN.get(_key("rows", x))


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
