"""Data read a block at a time: memory maps in contiguous blocks, the shuffle buffer, and sums over blocks.

A memory map (`np.load(path, mmap_mode="r")`, `np.memmap`) is never read whole. Its rows are read
in contiguous blocks of `BLOCK_ROWS`, each converted to the model's dtype and checked for
non-finite values as it is read, so the memory a pass needs is one block's, whatever the size
of the file (the pages read from the file are page cache, which the kernel takes back).

What is computed on a block is a `Sums`: the loss, the metrics and the gradient of the loss,
each multiplied by the block's row count, in float64. Sums of blocks add up to the sums of their
rows, so the mean over all rows, and the full-batch gradient, come out of any grouping of blocks:
one after another here, or on the workers of a Dask cluster (`dask_chunks`), which uses the same
per-block functions. So does the one-pass least squares: each block's [X y], centred on its own
mean, is reduced to its triangular factor R (`Factor`), and the factors of two groups of rows merge
into the factor of all of them (Chan's update, by a QR of the factors stacked).
"""

from __future__ import annotations

import contextlib
import mmap
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from numpy.lib.array_utils import byte_bounds

from tinygrad_lr import autograd, checks
from tinygrad_lr.tensor import Tensor, no_grad

__all__ = [
    "BLOCK_ROWS",
    "Factor",
    "Summing",
    "Sums",
    "ahead",
    "batches",
    "block_factor",
    "block_sums",
    "blocks",
    "read_block",
    "slices",
    "stack_factors",
    "sums",
    "triangular_factor",
    "weights_of_rows",
    "will_need",
]

BLOCK_ROWS = 65536  # rows per block read from a memory map: 2.6 MB of float32 at 10 features
READ_AHEAD = 4  # blocks the kernel is asked to read ahead of the one being read

T = TypeVar("T")


def read_block(
    what: str,
    array: Any,
    start: int,
    stop: int,
    dtype: Any,
    number: int,
    unit: str = "block",
    offset: int = 0,
    rows: np.ndarray | None = None,
) -> np.ndarray:
    """Rows `start:stop` of `array` (n,) or (n, columns) as a (stop - start, columns) array of
    `dtype`: a 1-D array is one column; with `rows`, a permutation of range(stop - start), in that
    order (a shuffle buffer's block). A non-finite value, or one beyond `dtype` (1e300 in
    float32), is a ValueError naming the block (`unit` `number`), the row and the column; rows
    are counted from `offset` (where `array`, a chunk of the data, starts in them).

    One pass over the block converts (or permutes) it, and one more checks it: the sum of the block is
    finite when every value is, and only when it is not is the block searched for the first culprit.
    Unconverted and unpermuted, the block is a view of `array`, not a copy.
    """
    values = np.asarray(array[start:stop])
    with np.errstate(over="ignore", invalid="ignore"):  # a value that overflows or is non-finite is reported below
        block = values.astype(dtype, copy=False)
        if rows is not None:
            block = np.take(block, rows, axis=0)
        if block.dtype.kind == "f" and not np.isfinite(np.add.reduce(block, axis=None)):
            _raise_non_finite(what, values, dtype, start, stop, number, unit, offset)
    return block if block.ndim == 2 else block.reshape(len(block), 1)  # (-1 would not do for 0 rows)


def _raise_non_finite(
    what: str, values: np.ndarray, dtype: Any, start: int, stop: int, number: int, unit: str, offset: int
) -> None:
    """The ValueError naming the first non-finite value of `values` (rows start:stop, as read), or the
    first beyond `dtype`; nothing when there is neither (finite values whose sum overflows)."""
    with np.errstate(over="ignore"):
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


def batches(
    x: Any,
    y: Any,
    batch_size: int,
    dtype: Any,
    shuffle: bool = False,
    rng: np.random.Generator | None = None,
    caller: str = "fit",
    w: np.ndarray | None = None,
) -> Iterator[tuple[np.ndarray, ...]]:
    """The mini-batches of (x, y), read a block at a time: x (n, features), y (n, outputs) → pairs
    of (batch_size, features) and (batch_size, outputs) arrays of `dtype`, the last one possibly smaller;
    with per-sample weights `w` (n,), triples whose third member is the batch's weights (batch_size,).

    A block holds a whole number of batches. Without `shuffle` the blocks come in order and so do
    their rows: the batches are exactly `data.batch_indices`' slices. With `shuffle` (a shuffle
    buffer, as tf.data's) the blocks come in an order drawn from `rng`, and each block's rows are
    permuted before it is cut into batches; the shorter last block may come anywhere. A batch
    larger than a block is not read here but handed on as a slice of the memory map (in order, or
    in a drawn order), whose gradient is then summed a block at a time (`sums`).
    """
    arrays = (x, y) if w is None else (x, y, w)
    if batch_size > BLOCK_ROWS:
        for start, stop in slices(len(x), batch_size, shuffle, rng):
            yield tuple(a[start:stop] for a in arrays)
        return
    block_rows = batch_size * max(1, BLOCK_ROWS // batch_size)
    count = -(-len(x) // block_rows)
    order = _permutation(rng, count) if shuffle else range(count)
    for xb, yb, wb in blocks(x, y, dtype, caller, block_rows, order, rng=rng if shuffle else None, w=w):
        read = (xb, yb) if wb is None else (xb, yb, wb)
        for first in range(0, len(xb), batch_size):
            yield tuple(b[first : first + batch_size] for b in read)


def slices(n: int, size: int, shuffle: bool = False, rng: np.random.Generator | None = None) -> list[tuple[int, int]]:
    """(start, stop) of the contiguous runs of `size` rows that cover n rows, in order, or in an
    order drawn from `rng` with `shuffle` (the runs themselves stay contiguous)."""
    runs = [(start, min(n, start + size)) for start in range(0, n, size)]
    return [runs[i] for i in _permutation(rng, len(runs))] if shuffle else runs


def _permutation(rng: np.random.Generator | None, n: int) -> np.ndarray:
    """`rng.permutation(n)`: shuffling draws from the caller's generator, so there must be one."""
    if rng is None:
        raise ValueError("shuffle=True needs rng, a numpy.random.Generator to draw the order from")
    return rng.permutation(n)


def blocks(
    x: Any,
    y: Any,
    dtype: Any,
    caller: str,
    block_rows: int | None = None,
    order: Iterable[int] | None = None,
    names: tuple[str, str] = ("x", "y"),
    rng: np.random.Generator | None = None,
    w: np.ndarray | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
    """(x, y, w) a block of `block_rows` rows (`BLOCK_ROWS` when None) at a time, in `order` (block
    numbers; all in turn when None), each read by `read_block`: triples of (rows, features) and
    (rows, outputs) arrays of `dtype`, and the rows' weights (rows,) of `dtype` (None without `w`,
    per-sample weights (n,) already checked). With `rng`, each block's rows come in an order drawn
    from it (`rng.permutation(rows)`, one draw per block, in turn).

    Reading overlaps computing, twice: the kernel is asked to start reading the `READ_AHEAD` blocks
    that follow the one being read (so the disk works while a block is trained on), and the blocks
    are read, converted, checked and permuted in a thread (`ahead`) while the caller computes on the
    block before. An error in a block (a non-finite value) reaches the caller when it asks for that block.
    """
    block_rows = block_rows or BLOCK_ROWS
    count = -(-len(x) // block_rows)
    numbers = list(range(count) if order is None else order)
    return ahead(_read_blocks(x, y, dtype, caller, block_rows, numbers, names, rng, w))


def _read_blocks(
    x: Any,
    y: Any,
    dtype: Any,
    caller: str,
    block_rows: int,
    numbers: list[int],
    names: tuple[str, str],
    rng: np.random.Generator | None,
    w: np.ndarray | None,
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
    """`blocks`' blocks, read one after another as `_plans` lays them out."""
    for number, start, stop, rows in ahead(_plans(x, y, block_rows, numbers, rng)):
        yield (
            read_block(f"{caller}: {names[0]}", x, start, stop, dtype, number, rows=rows),
            read_block(f"{caller}: {names[1]}", y, start, stop, dtype, number, rows=rows),
            None if w is None else weights_of_rows(w, start, stop, dtype, rows),
        )


def weights_of_rows(w: Any, start: int, stop: int, dtype: Any, rows: np.ndarray | None = None) -> np.ndarray:
    """Rows `start:stop` of the per-sample weights `w` (n,), checked before (`checks.check_sample_weight`),
    as (stop - start,) of `dtype`; with `rows`, in that order (as `read_block`'s)."""
    block = np.asarray(w[start:stop]).astype(dtype, copy=False)
    return block if rows is None else np.take(block, rows)


def _plans(
    x: Any, y: Any, block_rows: int, numbers: list[int], rng: np.random.Generator | None
) -> Iterator[tuple[int, int, int, np.ndarray | None]]:
    """(number, first row, stop row, order of its rows or None) of each block in `numbers`' order,
    each once the kernel was asked to read the `READ_AHEAD` blocks that follow it. Drawing a
    permutation costs about as much as applying it, so this runs in a thread of its own."""
    bounds = [(number * block_rows, min(len(x), (number + 1) * block_rows)) for number in numbers]
    for start, stop in bounds[:READ_AHEAD]:
        will_need(x, start, stop)
        will_need(y, start, stop)
    for i, (number, (start, stop)) in enumerate(zip(numbers, bounds)):
        if i + READ_AHEAD < len(bounds):
            will_need(x, *bounds[i + READ_AHEAD])
            will_need(y, *bounds[i + READ_AHEAD])
        yield number, start, stop, None if rng is None else _permutation(rng, stop - start)


def ahead(items: Iterator[T]) -> Iterator[T]:
    """The items of `items`, each made in a background thread while the caller works on the one
    before (at most two made ahead). What making an item raises is raised where the caller asks for
    that item; closing this iterator (or dropping it) stops the thread.

    NumPy lets go of the GIL while it copies, permutes and reduces arrays, and the kernel while it
    reads pages, so the thread's work runs beside the caller's Python."""
    ready: queue.Queue[tuple[bool, Any]] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def work() -> None:
        try:
            for item in items:
                ready.put((True, item))
                if stop.is_set():
                    return
            ready.put((False, None))
        except BaseException as error:  # handed to the caller, in its turn
            ready.put((False, error))
        finally:
            close = getattr(items, "close", None)  # a generator's own cleanup, in this thread
            if close is not None:
                close()

    thread = threading.Thread(target=work, name="tinygrad_lr read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            more, item = ready.get()
            if not more:
                if item is not None:
                    raise item
                return
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # a put blocked on the full queue goes through, then the thread sees `stop`
            with contextlib.suppress(queue.Empty):
                ready.get_nowait()
            thread.join(0.01)


def will_need(array: Any, start: int, stop: int) -> None:
    """Ask the kernel to start reading rows `start:stop` of a memory map into the page cache
    (`madvise(MADV_WILLNEED)`) and return at once; anything but a memory map is left alone. Advice
    only: where the platform has no such call, nothing happens."""
    mapped = getattr(array, "_mmap", None)
    if mapped is None or stop <= start or not hasattr(mmap, "MADV_WILLNEED"):
        return
    try:
        base = np.frombuffer(mapped, dtype=np.uint8).ctypes.data  # where the mapping starts in memory
        low, high = byte_bounds(array[start:stop])
        first = (low - base) // mmap.PAGESIZE * mmap.PAGESIZE  # madvise wants a page boundary
        mapped.madvise(mmap.MADV_WILLNEED, first, high - base - first)
    except (OSError, ValueError):  # a closed or empty mapping: nothing to read ahead
        pass


# ----- sums over blocks -----


@dataclass
class Sums:
    """What a set of rows adds to a mean over all rows: row count, and, each times the rows, in
    float64: the loss, every metric, and the gradient of the loss (one array per parameter, or
    None when not asked for). A metric that is no mean (R²) brings sums of its own that add up
    (`losses.R2Sums`) instead of its value times the rows."""

    rows: int
    loss: float
    metrics: dict[str, Any]
    gradient: list[np.ndarray] | None

    def __add__(self, other: Sums) -> Sums:
        gradient = (
            None
            if self.gradient is None or other.gradient is None  # both or neither: the same call asked for them
            else [a + b for a, b in zip(self.gradient, other.gradient)]
        )
        metrics = {name: value + other.metrics[name] for name, value in self.metrics.items()}
        return Sums(self.rows + other.rows, self.loss + other.loss, metrics, gradient)


@dataclass(frozen=True)
class Summing:
    """What to sum over the rows, wherever they are read: the model's `loss` and `metrics` (means over
    the rows, as mse and mae are, as scalar Tensors; or sums that add up, as R²'s), its `gradient` too
    or not, the rows read in `dtype` (the model's), and the `caller` that errors name."""

    model: Any
    loss: Callable[[Tensor, Any], Tensor]
    metrics: dict[str, Callable[[Tensor, Any], Any]]
    dtype: Any
    gradient: bool
    caller: str


def block_sums(work: Summing, x: np.ndarray, y: np.ndarray, w: np.ndarray | None = None) -> Sums:
    """The Sums of one block, computed by the engine: x (rows, features), y (rows, outputs), both of
    the model's dtype; with per-sample weights w (rows,), the loss is the loss's own weighted form
    (sum(w·loss)/rows, Keras 3's), so sums of blocks make sum(w·loss) over all rows."""
    model, metrics, gradient = work.model, work.metrics, work.gradient
    rows = len(x)

    def loss(pred: Tensor) -> Tensor:
        return work.loss(pred, y) if w is None else work.loss(pred, y, sample_weight=w)  # type: ignore[call-arg]

    def times_rows(mean: np.ndarray) -> Any:  # (a block of no rows adds 0, not its mean of nothing, nan, times 0)
        return mean.astype(np.float64) * rows if rows else np.zeros(mean.shape)

    grads = None
    if gradient:
        pred = model(Tensor(x))
        value = loss(pred)
        grads = [times_rows(g.data) for g in autograd.grad(value, model.parameters())]
    with no_grad():
        if not gradient:
            pred = model(Tensor(x))
            value = loss(pred)
        values = {name: metric(pred, y) for name, metric in metrics.items()}
    metric_sums = {name: float(times_rows(v.data)) if isinstance(v, Tensor) else v for name, v in values.items()}
    return Sums(rows, float(times_rows(value.data)), metric_sums, grads)


def sums(work: Summing, x: Any, y: Any, w: np.ndarray | None = None) -> Sums:
    """The Sums of all of (x, y), one block after another: x (n, features), y (n, outputs); w, per-sample
    weights (n,) or None."""
    parts = (block_sums(work, xb, yb, wb) for xb, yb, wb in blocks(x, y, work.dtype, work.caller, w=w))
    return sum(parts, start=next(parts))


# ----- the triangular factor of the least-squares problem -----


@dataclass
class Factor:
    """The triangular factor of some rows of a least-squares problem, Z = [X y] (p = d + k columns), as one
    pass builds it: RᵀR is the Gram matrix of their design, so R stands for the rows.

    With an intercept, R (1 + p, 1 + p) is the R of the QR of √w·[1, Z - origin], the rows weighted by √w
    (by 1 without weights) and moved to `origin` (p,), a point near their (weighted) mean: its first row is
    ±(√W, √W·(mean - origin)), W = Σw, and R[1:, 1:] is the factor of Z centred on its exact mean. The column
    of ones keeps what rounding the centre does to the columns, so the origin need not be the mean to the last
    bit: its first row carries the rest, to its own digits. Without an intercept, R (p, p) of √w·Z and an empty
    origin (0,). Fewer rows than columns leave rows of zeros."""

    R: np.ndarray
    origin: np.ndarray

    @property
    def weight(self) -> float:
        """W = Σw over the rows (their count without weights); with an intercept only."""
        return float(self.R[0, 0] ** 2)

    @property
    def mean(self) -> np.ndarray:
        """The rows' (weighted) mean (p,), with an intercept (of a factor of some weight)."""
        return self.origin + self.R[0, 1:] / self.R[0, 0]

    @property
    def centred(self) -> np.ndarray:
        """The factor (p, p) of [X y] centred on its mean with an intercept (Σ w·(z - z̄)(z - z̄)ᵀ = RᵀR), of
        [X y] without one."""
        ones = int(len(self.origin) > 0)  # (the column of ones, with an intercept)
        return self.R[ones:, ones:]

    def moved(self, origin: np.ndarray) -> Factor:
        """The same rows' factor about another origin (p,): [1, Z - origin'] = [1, Z - origin]·T, T adding
        (origin - origin') times the column of ones to the others; R·T is still triangular (R's first column
        is ±√W over zeros), so only the first row changes."""
        R = self.R.copy()
        R[0, 1:] += R[0, 0] * (self.origin - origin)
        return Factor(R, origin)

    def __reduce__(self) -> tuple[Any, ...]:
        # what a Dask chunk sends: R's upper triangle and the origin, in one array
        return _unpacked_factor, (len(self.R), np.append(self.R[np.triu_indices(len(self.R))], self.origin))


def _unpacked_factor(size: int, packed: np.ndarray) -> Factor:
    """The Factor that `Factor.__reduce__` packed into one array."""
    upper = np.triu_indices(size)
    R = np.zeros((size, size))
    R[upper] = packed[: len(upper[0])]
    return Factor(R, packed[len(upper[0]) :])


def _triangle(A: np.ndarray) -> np.ndarray:
    """R (c, c) of the QR of A (m, c): rows of zeros below where A has fewer rows than columns."""
    R = np.zeros((A.shape[1], A.shape[1]))
    found = np.linalg.qr(A, mode="r")  # (numpy's stub types every mode's result as a QRResult: R alone here)
    R[: len(found)] = found
    return R


def block_factor(x: np.ndarray, y: np.ndarray, fit_intercept: bool, w: np.ndarray | None = None) -> Factor:
    """The Factor of one block of rows, in memory: x (rows, d), y (rows, k), float64; weights w (rows,) or None.
    With an intercept the block is centred on its own (weighted) mean first, so the QR's rounding is relative
    to the columns' spread, not to their distance from 0."""
    Z = np.hstack([x, y])
    root = None if w is None else np.sqrt(w)[:, None]
    if not fit_intercept:
        return Factor(_triangle(Z if root is None else root * Z), np.zeros(0))
    rows, p = Z.shape
    origin = np.zeros(p)
    if rows:
        weights = np.ones(rows) if w is None or not w.any() else w  # (no weight at all: any centre will do)
        origin = weights / weights.sum() @ Z
    design = np.ones((rows, 1 + p))
    np.subtract(Z, origin, out=design[:, 1:])
    return Factor(_triangle(design if root is None else root * design), origin)


def stack_factors(factors: list[Factor]) -> Factor:
    """The Factor of the rows of several blocks, from theirs: the R of their R's stacked (RᵀR is each block's
    Gram matrix, so the stack has the Gram matrix of all the rows), with an intercept each first moved to one
    origin, the blocks' mean.

    That is Chan, Golub and LeVeque's update done by reflections: with two blocks, the reflection that
    clears the second ±√W in the column of ones leaves, below the new first row, the row
    √(W_a·W_b/(W_a + W_b))·(mean_b - mean_a) over the centred columns, beside R_a's and R_b's rows. Only centred
    factors and the small differences of means ever meet, and each block's mean is carried to the digits of
    its spread (in its first row), not rounded to those of its distance from 0."""
    if len(factors) == 1:
        return factors[0]
    if len(factors[0].origin):
        weights = np.array([factor.weight for factor in factors])
        if weights.sum() > 0:  # (a block of no weight has no mean, and counts for nothing in the blocks' mean)
            means = np.array([factor.mean if weight > 0 else factor.origin for factor, weight in zip(factors, weights)])
            origin = weights / weights.sum() @ means
            factors = [factor.moved(origin) for factor in factors]
    return Factor(_triangle(np.vstack([factor.R for factor in factors])), factors[0].origin)


def triangular_factor(x: Any, y: Any, fit_intercept: bool, caller: str, w: np.ndarray | None = None) -> Factor:
    """The Factor of all the rows of x (n, d) and y (n, k) or (n,) (weighted by w (n,)), in one pass over the
    blocks, float64: each block's factor, merged into the factor so far (`stack_factors`)."""
    factor = None
    for xb, yb, wb in blocks(x, y, np.float64, caller, names=("X", "y"), w=w):
        part = block_factor(xb, yb, fit_intercept, wb)
        factor = part if factor is None else stack_factors([factor, part])
    if factor is None:
        raise ValueError(f"{caller}: X has no rows")
    return factor
