"""Data read a block at a time: memory maps in contiguous blocks, the shuffle buffer, and sums over blocks.

A memory map (`np.load(path, mmap_mode="r")`, `np.memmap`) is never read whole. Its rows are read
in contiguous blocks of `BLOCK_ROWS`, each converted to the model's dtype and checked for
non-finite values as it is read, so the memory a pass needs is one block's, whatever the size
of the file (the pages read from the file are page cache, which the kernel takes back).

What is computed on a block is a `Sums`: the loss, the metrics and the gradient of the loss,
each multiplied by the block's row count, in float64. Sums of blocks add up to the sums of their
rows, so the mean over all rows, and the full-batch gradient, come out of any grouping of blocks:
one after another here, or on the workers of a Dask cluster (`chunked`), which uses the same
per-block functions. So does the one-pass least squares: the triangular factor R of [1 X y] is
built block by block (the QR of R stacked over the next block), and R of a stack of factors is
the factor of the stack of their rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from tinygrad_lr import autograd, checks
from tinygrad_lr.tensor import Tensor, no_grad

__all__ = [
    "BLOCK_ROWS",
    "Sums",
    "batches",
    "block_factor",
    "block_sums",
    "blocks",
    "read_block",
    "slices",
    "stack_factors",
    "sums",
    "triangular_factor",
]

BLOCK_ROWS = 65536  # rows per block read from a memory map: 2.6 MB of float32 at 10 features


def read_block(
    what: str, array: Any, start: int, stop: int, dtype: Any, number: int, unit: str = "block", offset: int = 0
) -> np.ndarray:
    """Rows `start:stop` of `array` (n,) or (n, columns) as a (stop - start, columns) array of
    `dtype`: a 1-D array is one column. A non-finite value, or one beyond `dtype` (1e300 in
    float32), is a ValueError naming the block (`unit` `number`), the row and the column; rows
    are counted from `offset` (where `array`, a chunk of the data, starts in them)."""
    values = np.asarray(array[start:stop])
    with np.errstate(over="ignore"):  # an overflowing cast is reported below
        cast = values.astype(dtype, copy=False)
    for checked, problem, advice in (
        (values, "a non-finite value", "remove or impute such samples first"),
        (cast, f"a value beyond {np.dtype(dtype)}", "rescale the data first"),
    ):
        first = checks.first_non_finite(checked)
        if first is not None:
            column = f", column {first[1]}" if values.ndim == 2 else ""
            raise ValueError(
                f"{what}: {unit} {number} (rows {offset + start} to {offset + stop - 1}) has {problem}, "
                f"{values[first]}, at row {offset + start + first[0]}{column}; {advice}"
            )
    return cast.reshape(len(cast), -1)


def batches(
    x: Any,
    y: Any,
    batch_size: int,
    dtype: Any,
    shuffle: bool = False,
    rng: np.random.Generator | None = None,
    caller: str = "fit",
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The mini-batches of (x, y), read a block at a time: x (n, features), y (n, outputs) → pairs
    of (batch_size, features) and (batch_size, outputs) arrays of `dtype`, the last one possibly smaller.

    A block holds a whole number of batches. Without `shuffle` the blocks come in order and so do
    their rows: the batches are exactly `data.batch_indices`' slices. With `shuffle` (a shuffle
    buffer, as tf.data's) the blocks come in an order drawn from `rng`, and each block's rows are
    permuted before it is cut into batches; the shorter last block may come anywhere. A batch
    larger than a block is not read here but handed on as a slice of the memory map (in order, or
    in a drawn order), whose gradient is then summed a block at a time (`sums`).
    """
    if batch_size > BLOCK_ROWS:
        for start, stop in slices(len(x), batch_size, shuffle, rng):
            yield x[start:stop], y[start:stop]
        return
    block_rows = batch_size * max(1, BLOCK_ROWS // batch_size)
    count = -(-len(x) // block_rows)
    order = rng.permutation(count) if shuffle else range(count)
    for xb, yb in blocks(x, y, dtype, caller, block_rows, order):
        if shuffle:
            rows = rng.permutation(len(xb))
            xb, yb = xb[rows], yb[rows]
        for first in range(0, len(xb), batch_size):
            yield xb[first : first + batch_size], yb[first : first + batch_size]


def slices(n: int, size: int, shuffle: bool = False, rng: np.random.Generator | None = None) -> list[tuple[int, int]]:
    """(start, stop) of the contiguous runs of `size` rows that cover n rows, in order, or in an
    order drawn from `rng` with `shuffle` (the runs themselves stay contiguous)."""
    runs = [(start, min(n, start + size)) for start in range(0, n, size)]
    return [runs[i] for i in rng.permutation(len(runs))] if shuffle else runs


def blocks(
    x: Any,
    y: Any,
    dtype: Any,
    caller: str,
    block_rows: int | None = None,
    order: Iterable[int] | None = None,
    names: tuple[str, str] = ("x", "y"),
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(x, y) a block of `block_rows` rows (`BLOCK_ROWS` when None) at a time, in `order` (block
    numbers; all in turn when None), each read by `read_block`: pairs of (rows, features) and
    (rows, outputs) arrays of `dtype`."""
    block_rows = block_rows or BLOCK_ROWS
    count = -(-len(x) // block_rows)
    for number in range(count) if order is None else order:
        start, stop = number * block_rows, min(len(x), (number + 1) * block_rows)
        yield (
            read_block(f"{caller}: {names[0]}", x, start, stop, dtype, number),
            read_block(f"{caller}: {names[1]}", y, start, stop, dtype, number),
        )


# ----- sums over blocks -----


@dataclass
class Sums:
    """What a set of rows adds to a mean over all rows: row count, and, each times the rows, in
    float64: the loss, every metric, and the gradient of the loss (one array per parameter, or
    None when not asked for)."""

    rows: int
    loss: float
    metrics: dict[str, float]
    gradient: list[np.ndarray] | None

    def __add__(self, other: Sums) -> Sums:
        gradient = None if self.gradient is None else [a + b for a, b in zip(self.gradient, other.gradient)]
        metrics = {name: value + other.metrics[name] for name, value in self.metrics.items()}
        return Sums(self.rows + other.rows, self.loss + other.loss, metrics, gradient)


def block_sums(
    model: Any,
    loss: Callable[[Tensor, Any], Tensor],
    metrics: dict[str, Callable[[Tensor, Any], Tensor]],
    x: np.ndarray,
    y: np.ndarray,
    gradient: bool,
) -> Sums:
    """The Sums of one block, computed by the engine: x (rows, features), y (rows, outputs), both of
    the model's dtype. `loss` and the metrics must be means over the rows, as mse and mae are."""
    rows = len(x)
    grads = None
    if gradient:
        pred = model(Tensor(x))
        value = loss(pred, y)
        grads = [g.data.astype(np.float64) * rows for g in autograd.grad(value, model.parameters())]
    with no_grad():
        if not gradient:
            pred = model(Tensor(x))
            value = loss(pred, y)
        metric_sums = {name: metric(pred, y).item() * rows for name, metric in metrics.items()}
    return Sums(rows, value.item() * rows, metric_sums, grads)


def sums(
    model: Any,
    loss: Callable[[Tensor, Any], Tensor],
    metrics: dict[str, Callable[[Tensor, Any], Tensor]],
    x: Any,
    y: Any,
    dtype: Any,
    gradient: bool,
    caller: str,
) -> Sums:
    """The Sums of all of (x, y), one block after another: x (n, features), y (n, outputs)."""
    parts = (block_sums(model, loss, metrics, xb, yb, gradient) for xb, yb in blocks(x, y, dtype, caller))
    return sum(parts, start=next(parts))


# ----- the triangular factor of the least-squares problem -----


def block_factor(x: np.ndarray, y: np.ndarray, fit_intercept: bool) -> np.ndarray:
    """R of the QR of one block of [1 X y] ([X y] without an intercept): x (rows, d), y (rows, k), float64."""
    columns = [np.ones((len(x), 1)), x, y] if fit_intercept else [x, y]
    return np.linalg.qr(np.hstack(columns), mode="r")


def stack_factors(factors: list[np.ndarray]) -> np.ndarray:
    """R of the rows of several blocks, from their factors: the R of the factors stacked (RᵀR = AᵀA
    for each block, so the stacked factors have the Gram matrix of all the rows)."""
    return factors[0] if len(factors) == 1 else np.linalg.qr(np.vstack(factors), mode="r")


def triangular_factor(x: Any, y: Any, fit_intercept: bool, caller: str) -> np.ndarray:
    """R of all of [1 X y] in one pass over the blocks of x (n, d) and y (n, k), float64."""
    factor = None
    for xb, yb in blocks(x, y, np.float64, caller, names=("X", "y")):
        part = block_factor(xb, yb, fit_intercept)
        factor = part if factor is None else stack_factors([factor, part])
    return factor
