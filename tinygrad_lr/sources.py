"""The kinds of data, decided once: an array in memory, a memory map, a Dask array.

Training, evaluation, prediction and the closed form take any of them. What differs is how the
rows are reached: an array in memory is sliced; a memory map is read a block at a time (`blockwise`:
contiguous blocks, converted and checked as they are read, a shuffle buffer); a Dask array is
worked on where its chunks live (`dask_chunks`: only sums travel). `as_source(x, y, dtype)` looks at
what it was given once, at the boundary, and returns the adapter for that kind (as Keras 3 picks
its data adapter); the code above it asks the adapter, never the array:

    source.batches(batch_size, shuffle, rng)      the (xb, yb) pairs of an epoch ((xb, yb, wb) triples
                                                 with per-sample weights)
    source.batches_in_memory(batch_size)         whether those come as arrays in memory (a step
                                                 can then run on them); else each batch's
    source.sums(model, loss, metrics, gradient)  loss, metrics and gradient are summed a block (a
                                                 chunk) at a time, over all rows or one batch
    source.predict(model, batch_size)            the model's outputs (a lazy array on Dask)
    source.triangular_factor(fit_intercept)      the factor of the centred [X y] (√w-weighted) and its
                                                 mean, one pass (`blockwise.Factor`: the closed form's)
    source.moments(caller)                       the centred moments of (x, y) (`moments.Moments`), one
                                                 pass, taken once: full-batch steps from them

x is (n, features) or (n,) for one; y is (n, outputs) or (n,), or None (predict); w, per-sample
weights (n,), or None. Where either of x and y is a Dask array, both are worked on as Dask arrays;
else where either is a memory map, both are read a block at a time. The weights, one number per
row, are held in memory (checked whole at the boundary); on Dask they are cut into x's chunks, each
sent with the tasks that read it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, ClassVar

import numpy as np

from tinygrad_lr import blockwise, checks, dask_chunks, data, losses
from tinygrad_lr.moments import Moments, of_blocks
from tinygrad_lr.tensor import Tensor, no_grad

__all__ = ["DaskArrays", "InMemory", "MemoryMapped", "Source", "as_source"]

Metric = Callable[[Tensor, Any], Tensor]


class Source:
    """(x, y) of one kind of array (see the module); `dtype` is the model's, the values' dtype once read."""

    kind: ClassVar[str] = ""
    reads_blocks: ClassVar[bool] = False  # whether its sums are taken a block (a chunk) at a time

    def __init__(self, x: Any, y: Any = None, dtype: Any = np.float64, w: np.ndarray | None = None):
        self.x, self.y, self.dtype = x, y, np.dtype(dtype)
        self.w = w  # per-sample weights (n,), or None: every sample counts once
        self._moments: Moments | None = None

    def __len__(self) -> int:
        return len(self.x)

    def batches(
        self, batch_size: int, shuffle: bool, rng: np.random.Generator, caller: str = "fit"
    ) -> Iterable[tuple[Any, ...]]:
        """An epoch's (xb, yb) pairs of `batch_size` rows (the last one possibly fewer), in order or shuffled;
        (xb, yb, wb) triples when the source has sample weights."""
        raise NotImplementedError

    def batches_in_memory(self, batch_size: int) -> bool:
        """Whether `batches` gives arrays in memory, on which a step may run as on any array; if not,
        a batch's gradient is `sums(..., batch=(xb, yb))`."""
        return not self.reads_blocks

    def sums(
        self,
        model: Any,
        loss: Metric,
        metrics: dict[str, Metric],
        gradient: bool,
        caller: str,
        batch: tuple[Any, ...] | None = None,
    ) -> blockwise.Sums:
        """The Sums (loss, metrics and, with `gradient`, the gradient, each times the rows, float64) of all
        the rows, or of `batch`, one of this source's batches (a pair, or a triple with its weights)."""
        x, y, w = self._rows(batch)
        return blockwise.sums(blockwise.Summing(model, loss, metrics, self.dtype, gradient, caller), x, y, w)

    def _rows(self, batch: tuple[Any, ...] | None) -> tuple[Any, Any, Any]:
        """(x, y, w) of all the rows, or of `batch`, one of `batches`' pairs or triples."""
        if batch is None:
            return self.x, self.y, self.w
        return (*batch, None) if len(batch) == 2 else batch

    def predict(self, model: Any, batch_size: int | None) -> Any:
        """The model's outputs, (n, outputs), `batch_size` rows at a time (all at once when None)."""
        with no_grad():
            outputs = [model(Tensor(self.x[i])).data for i in _contiguous("predict", len(self), batch_size)]
        return outputs[0] if len(outputs) == 1 else np.concatenate(outputs)

    def triangular_factor(self, fit_intercept: bool, caller: str) -> blockwise.Factor:
        """The triangular factor of the centred [X y] and its mean (of the raw [X y] without an intercept),
        float64, in one pass over the rows (`blockwise.Factor`)."""
        return blockwise.triangular_factor(self.x, self.y, fit_intercept, caller, self.w)

    def moments(self, caller: str) -> Moments:
        """The centred moments of (x, y) (weighted by w, when the source has weights), of the values in
        `dtype` as a step reads them, in float64: one pass over the rows the first time, kept after."""
        if self._moments is None:
            self._moments = self._moments_of_rows(caller)
        return self._moments

    def has_moments(self) -> bool:
        """Whether `moments` is known without a pass."""
        return self._moments is not None

    def _moments_of_rows(self, caller: str) -> Moments:
        x, y = np.asarray(self.x, self.dtype), np.asarray(self.y, self.dtype)
        return Moments.of(x, y, None if self.w is None else np.asarray(self.w, self.dtype))

    def column_statistics(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each column of x: its mean, standard deviation (ddof 0) and range (max - min), float64 (d,)."""
        columns = np.asarray(self.x).reshape(len(self.x), -1).astype(np.float64)
        return columns.mean(axis=0), columns.std(axis=0), np.ptp(columns, axis=0)

    def r2_score(self, pred: Any) -> float:
        """R² of the predictions `pred` of y (the same kind of array as x): 1 - Σ(y - ŷ)² / Σ(y - ȳ)²."""
        return losses.r2_score(pred, self.y)

    def as_columns(self) -> Any:
        """x as (n, columns): a 1-D x (n,) is one column (n, 1)."""
        return self.x.reshape(-1, 1) if self.x.ndim == 1 else self.x

    def rows_to_draw(self, limit: int) -> np.ndarray:
        """The rows of x a picture draws, in memory: all of them (a Dask source: the first `limit`)."""
        return self.x


class InMemory(Source):
    """NumPy arrays in memory: batches are slices (views, or copies in a drawn order)."""

    kind = "in memory"

    def batches(self, batch_size, shuffle, rng, caller="fit"):
        x, y, w = self.x, self.y, self.w
        cuts = data.cut_batches(len(x), batch_size, rng if shuffle else None)
        if w is None:
            return ((x[index], y[index]) for index in cuts)
        return ((x[index], y[index], w[index]) for index in cuts)


class MemoryMapped(Source):
    """A memory map (x or y, or both): never read whole, but in contiguous blocks (`blockwise`)."""

    kind = "memory-mapped"
    reads_blocks = True

    def batches(self, batch_size, shuffle, rng, caller="fit"):
        return blockwise.batches(self.x, self.y, batch_size, self.dtype, shuffle, rng, caller, self.w)

    def batches_in_memory(self, batch_size):
        return batch_size <= blockwise.BLOCK_ROWS  # (a larger batch is handed on as a slice of the map)

    def _moments_of_rows(self, caller):  # the blocks as a step reads them: in the model's dtype, checked
        return of_blocks(blockwise.blocks(self.x, self.y, self.dtype, caller, w=self.w))

    def predict(self, model, batch_size):
        rows = blockwise.BLOCK_ROWS if batch_size is None else batch_size
        with no_grad():
            outputs = [
                model(Tensor(blockwise.read_block("predict: x", self.x, i.start, i.stop, self.dtype, number))).data
                for number, i in enumerate(_contiguous("predict", len(self), rows))
            ]
        return outputs[0] if len(outputs) == 1 else np.concatenate(outputs)


class DaskArrays(Source):
    """Dask arrays: each chunk's work is done where it lives, only sums travel (`dask_chunks`)."""

    kind = "Dask"
    reads_blocks = True

    def __init__(self, x: Any, y: Any = None, dtype: Any = np.float64, w: Any = None):
        if w is not None and checks.is_dask_array(x):  # (else x is refused with y, where the chunks are met)
            w = dask_chunks.as_chunks_of(x, w)  # once: cutting an array into chunks hashes it whole
        super().__init__(x, y, dtype, w)

    def batches(self, batch_size, shuffle, rng, caller="fit"):
        return dask_chunks.batches(self.x, self.y, batch_size, shuffle, rng, self.w)

    def batches_in_memory(self, batch_size):
        return False

    def sums(self, model, loss, metrics, gradient, caller, batch=None):
        x, y, w = self._rows(batch)
        return dask_chunks.sums(blockwise.Summing(model, loss, metrics, self.dtype, gradient, caller), x, y, w)

    def predict(self, model, batch_size):
        # lazy, as every Dask computation: the caller computes or stores it
        with no_grad():
            width = model(Tensor(np.zeros((1, self.x.shape[1] if self.x.ndim == 2 else 1), self.dtype))).shape[-1]
        return dask_chunks.predict(model, self.x, self.dtype, width)

    def triangular_factor(self, fit_intercept, caller):
        return dask_chunks.triangular_factor(self.x, self.y, fit_intercept, caller, self.w)

    def has_moments(self):
        return self._moments is not None or dask_chunks.known_moments(self.x, self.y, self.w, self.dtype) is not None

    def _moments_of_rows(self, caller):  # each chunk's where it lives, up a tree (or known from a pass before)
        known = dask_chunks.known_moments(self.x, self.y, self.w, self.dtype)
        return known or dask_chunks.moments(self.x, self.y, self.dtype, caller, self.w)

    def column_statistics(self):  # one pass over the chunks, where they live
        dask = dask_chunks.require_dask("column statistics")
        x = self.x
        return tuple(
            np.asarray(s, dtype=np.float64)
            for s in dask.compute(x.mean(axis=0), x.std(axis=0), x.max(axis=0) - x.min(axis=0))
        )

    def as_columns(self):
        # 1-D stays 1-D: reshaping would add tasks to its graph on every call, which are not persisted with
        # its chunks and may run on another worker, so every step would move the chunk; its chunks become
        # columns as they are read (`blockwise.read_block`)
        return self.x

    def rows_to_draw(self, limit):  # millions of points would not draw
        known = dask_chunks.known_rows(self.x)
        return (
            known[:limit] if known is not None and len(known) >= min(limit, len(self.x)) else np.asarray(self.x[:limit])
        )

    def r2_score(self, pred):  # from two sums, without gathering the rows
        dask = dask_chunks.require_dask("r2_score")
        y = self.y
        residual, total = dask.compute(((y - pred) ** 2).sum(), ((y - y.mean()) ** 2).sum())
        return losses.r2_of_sums(float(residual), float(total))


def as_source(x: Any, y: Any = None, dtype: Any = np.float64, w: Any = None) -> Source:
    """The adapter for the kind of (x, y) (see the module): x, y as the boundary's checks left them;
    `w`, checked per-sample weights (n,), or None."""
    if checks.is_dask_array(x) or checks.is_dask_array(y):
        adapter: type[Source] = DaskArrays
    elif checks.is_memory_map(x) or checks.is_memory_map(y):
        adapter = MemoryMapped
    else:
        adapter = InMemory
    return adapter(x, y, dtype, w)


def _contiguous(caller: str, n: int, batch_size: int | None) -> list[Any]:
    """Contiguous batches of `batch_size` rows (one of all n when None), as slices."""
    size = n if batch_size is None else checks.check_count(f"{caller}: batch_size", batch_size)
    return data.batch_indices(n, size)
