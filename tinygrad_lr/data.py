"""Data plumbing: reading a numeric CSV, the Keras validation split, a random hold-out, mini-batches, scaling.

NumPy and the standard library only. Everything here works on plain arrays: `X: (n, d)` (or
`(n,)`, one feature), `y: (n,)` or `(n, k)`.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
from collections.abc import Sequence

import numpy as np

from tinygrad_lr.checks import as_real_array, check_count, check_fraction, is_dask_array, is_memory_map

__all__ = [
    "Standardizer",
    "batch_indices",
    "choose_features",
    "load_csv",
    "random_split",
    "read_columns",
    "unscale_linear",
    "validation_split",
]

# A plain decimal number: optional sign, ASCII digits with an optional point, optional exponent.
# Stricter than float(), which would also take "nan", "inf", "1_000" and non-ASCII digits.
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_NON_FINITE = {"nan", "+nan", "-nan", "inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"}


# ----- CSV -----


def load_csv(
    path: str | os.PathLike, target: str, features: Sequence[str] | None = None
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Read a numeric CSV file with a header row: `X: (n, d)`, `y: (n,)`, float64, and the feature names.

    `features=None` takes every column except `target`, in file order; otherwise the named
    columns in the given order (a single string is one column). Columns that are neither the
    target nor a feature are not read. Cells may have whitespace around them; blank lines are
    skipped. Any problem with the file's content raises `ValueError` naming the file, the line
    (1-based, the header is line 1) and the column.
    """
    name, columns, rows = _read_rows(path)
    try:
        feature_names = choose_features(name, columns, target, features)
    except ValueError as error:
        raise _header_hint(error, columns, rows[0][0]) from None
    values = _numbers(name, columns, rows, [*feature_names, target])
    return values[:, :-1].copy(), values[:, -1].copy(), feature_names


def read_columns(path: str | os.PathLike, names: Sequence[str]) -> np.ndarray:
    """The named columns of a numeric CSV file with a header row, in the given order: `(n, len(names))` float64.

    The file follows `load_csv`'s rules and gets its errors; a name that is not a column is a
    `ValueError` listing the file's columns. Other columns are not read.
    """
    name, columns, rows = _read_rows(path)
    missing = [column for column in names if column not in columns]
    if missing:
        error = ValueError(f"{name}: no column named {', '.join(map(repr, missing))}; available columns: {columns}")
        raise _header_hint(error, columns, rows[0][0])
    return _numbers(name, columns, rows, list(names))


def _read_rows(path: str | os.PathLike) -> tuple[str, list[str], list[tuple[int, list[str]]]]:
    """The file's name, its header's column names (checked), and its non-blank rows, the header first,
    each as (the line where it starts, its cells)."""
    name = os.fspath(path)
    with open(path, "rb") as file:  # a missing file raises FileNotFoundError naming the path
        raw = file.read()
    # "utf-8-sig" also drops the byte-order mark that spreadsheet programs write
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise ValueError(f"{name}: line {line}: the file is not UTF-8 text ({error.reason})") from None

    # newline="" lets csv see \r\n, \n and \r line ends as they are, as the csv docs ask
    reader = csv.reader(io.StringIO(text, newline=""), skipinitialspace=True)
    rows = []  # (line where the row starts, its cells); a quoted cell may span several lines
    try:
        start = 1
        for row in reader:
            if not _is_blank(row):
                rows.append((start, row))
            start = reader.line_num + 1
    except csv.Error as error:
        raise ValueError(f"{name}: line {reader.line_num}: not readable as CSV ({error})") from None
    if not rows:
        raise ValueError(f"{name}: the file is empty; expected a header row of column names, then rows of numbers")

    header_line, header = rows[0]
    columns = [cell.strip() for cell in header]
    for position, column in enumerate(columns, start=1):
        if not column:
            raise ValueError(f"{name}: line {header_line}: column {position} of the header has no name")
    duplicates = sorted({column for column in columns if columns.count(column) > 1})
    if duplicates:
        raise ValueError(f"{name}: line {header_line}: duplicate column names {duplicates}; names must be unique")
    return name, columns, rows


def _header_hint(error: ValueError, columns: list[str], header_line: int) -> ValueError:
    """`error` about a missing column, told that the header row holds numbers when it does."""
    if all(_NUMBER.fullmatch(column) for column in columns):
        return ValueError(f"{error} (line {header_line} holds numbers: the file needs a header row of names)")
    return error


def _numbers(name: str, columns: list[str], rows: list[tuple[int, list[str]]], wanted: list[str]) -> np.ndarray:
    """The `wanted` columns of the data rows (every row after the header) as floats: (n, len(wanted))."""
    header_line = rows[0][0]
    if len(rows) == 1:
        raise ValueError(f"{name}: no data rows after the header on line {header_line}")
    positions = [columns.index(column) for column in wanted]
    values = np.empty((len(rows) - 1, len(positions)), dtype=np.float64)
    for i, (line, row) in enumerate(rows[1:]):
        if len(row) != len(columns):
            raise ValueError(
                f"{name}: line {line}: expected {len(columns)} cells (one per header column), found {len(row)}"
            )
        for j, position in enumerate(positions):
            values[i, j] = _parse_number(row[position], name, line, columns[position])
    return values


def _is_blank(row: list[str]) -> bool:
    """A blank line: no cells, or one cell of whitespace (a line of commas is not blank: it has empty cells)."""
    return not row or (len(row) == 1 and not row[0].strip())


def choose_features(name: str, columns: list[str], target: str, features: Sequence[str] | str | None) -> list[str]:
    """The feature columns to read, checked against the header `columns`: `features` (names, or None for every
    column but `target`); a ValueError names `name` (the file, or the option) and what is wrong."""
    if not isinstance(target, str):
        raise TypeError(f"load_csv: target must be a column name (str), got {type(target).__name__}")
    if target not in columns:
        raise ValueError(f"{name}: no column named {target!r} for the target; available columns: {columns}")
    if features is None:
        chosen = [column for column in columns if column != target]
        if not chosen:
            raise ValueError(f"{name}: the only column is the target {target!r}; there are no feature columns")
        return chosen
    chosen = [features] if isinstance(features, str) else list(features)
    if not chosen:
        raise ValueError(f"{name}: features is empty; name at least one column, or pass None for all but the target")
    for column in chosen:
        if not isinstance(column, str):
            raise TypeError(f"load_csv: feature names must be str, got {type(column).__name__}")
    unknown = [column for column in chosen if column not in columns]
    if unknown:
        asked = ", ".join(repr(column) for column in unknown)
        raise ValueError(f"{name}: no column named {asked} (asked for as a feature); available columns: {columns}")
    if target in chosen:
        raise ValueError(f"{name}: column {target!r} is the target and cannot also be a feature")
    repeated = sorted({column for column in chosen if chosen.count(column) > 1})
    if repeated:
        raise ValueError(f"{name}: features {repeated} are listed more than once")
    return chosen


def _parse_number(cell: str, name: str, line: int, column: str) -> float:
    """One cell as a finite float, or a ValueError that says where and why."""
    text = cell.strip()
    where = f"{name}: line {line}, column {column!r}"
    if not text:
        raise ValueError(f"{where}: empty cell; every cell must hold a number")
    if text.lower() in _NON_FINITE:
        raise ValueError(f"{where}: {text!r} is not a finite number; remove or fill in missing values")
    if not _NUMBER.fullmatch(text):
        shown = text if len(text) <= 40 else text[:37] + "..."
        raise ValueError(f"{where}: {shown!r} is not a number")
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{where}: {text!r} is too large for a float64 (not finite)")
    return value


# ----- splitting and batching -----


def validation_split(x, y, fraction: float) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Split `(x, y)` into `(x_train, y_train), (x_val, y_val)` as Keras' `fit(validation_split=...)` does.

    `x: (n, ...)`, `y: (n, ...)`; the parts are views (slices) of the inputs. `fraction=0` gives an
    empty validation part. Memory maps and Dask arrays stay what they are (slices of them, unread).
    """
    x, y = _paired_rows("validation_split", x, y)
    n_train = _rows_kept("validation_split", len(x), fraction)
    return (x[:n_train], y[:n_train]), (x[n_train:], y[n_train:])


def random_split(
    x, y, fraction: float, seed: int | np.random.Generator | None = None
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Hold out a random `fraction` of the rows of `(x, y)`: `(x_kept, y_kept), (x_held, y_held)`.

    `x: (n, ...)`, `y: (n, ...)`. As many rows are held out as `validation_split` would hold out, but
    drawn at random from `np.random.default_rng(seed)`; each part keeps the rows in their original
    order. Dask arrays stay lazy (only the row numbers are drawn, in memory).
    """
    x, y = _paired_rows("random_split", x, y)
    n = len(x)
    n_kept = _rows_kept("random_split", n, fraction)
    held = np.zeros(n, dtype=bool)
    held[np.random.default_rng(seed).choice(n, n - n_kept, replace=False)] = True
    kept_rows, held_rows = np.flatnonzero(~held), np.flatnonzero(held)
    return (x[kept_rows], y[kept_rows]), (x[held_rows], y[held_rows])


def _paired_rows(fn: str, x, y) -> tuple[np.ndarray, np.ndarray]:
    """x and y as arrays (memory maps and Dask arrays as they are), checked to hold the same number of rows."""
    x, y = (a if is_memory_map(a) or is_dask_array(a) else np.asarray(a) for a in (x, y))
    if x.ndim == 0 or y.ndim == 0 or len(x) != len(y):
        raise ValueError(
            f"{fn}: x has shape {x.shape} and y has shape {y.shape}; "
            "they must hold the same number of samples along the first axis"
        )
    return x, y


def _rows_kept(fn: str, n: int, fraction: float) -> int:
    """How many of n rows a split of `fraction` keeps (trains on), checked to leave rows on both sides."""
    fraction = check_fraction(f"{fn}: fraction", fraction)
    # Keras' rule: the FIRST floor(n * (1 - fraction)) samples train and the LAST ones validate, split
    # before any shuffling, with exactly Keras 3's arithmetic (train_validation_split), float rounding
    # included: n=51, fraction=0.3 -> 35 train, since 51 * (1 - 0.3) = 35.699999...
    n_train = math.floor(n * (1.0 - fraction))
    if n_train == 0:
        raise ValueError(
            f"{fn}: {n} samples with fraction={fraction} leave no training sample; use a smaller fraction or more data"
        )
    if fraction > 0 and n_train == n:
        raise ValueError(
            f"{fn}: {n} samples with fraction={fraction} leave no validation sample; "
            "use a larger fraction, more data, or fraction=0 for no validation"
        )
    return n_train


def batch_indices(
    n: int, batch_size: int, shuffle: bool = False, rng: np.random.Generator | int | None = None
) -> list[slice] | list[np.ndarray]:
    """The mini-batches of `n` samples: `ceil(n / batch_size)` of them, the last one possibly smaller.

    Without `shuffle`, slices in order (indexing with a slice copies nothing). With `shuffle`, one
    permutation of `range(n)` drawn from `rng` (a `np.random.Generator`, a seed, or None for a
    fresh one), cut into index arrays.
    """
    n = check_count("batch_indices: n", n, minimum=0)
    batch_size = check_count("batch_indices: batch_size", batch_size, minimum=1)
    return cut_batches(n, batch_size, np.random.default_rng(rng) if shuffle else None)


def cut_batches(n: int, batch_size: int, rng: np.random.Generator | None) -> list[slice] | list[np.ndarray]:
    """`batch_indices` on checked arguments (fit's per-epoch call): shuffled when `rng` is given."""
    starts = range(0, n, batch_size)
    if rng is None:
        return [slice(start, min(start + batch_size, n)) for start in starts]
    order = rng.permutation(n)
    return [order[start : start + batch_size] for start in starts]


# ----- scaling -----


class Standardizer:
    """Scale each feature to zero mean and unit variance, like scikit-learn's `StandardScaler`.

    `X: (n, d)`, or `(n,)` for one feature. After `fit`, `mean` and `scale` have shape `(d,)`;
    `scale` is the population standard deviation (ddof=0).
    """

    def __init__(self) -> None:
        self.mean: np.ndarray | None = None
        self.scale: np.ndarray | None = None

    def fit(self, X) -> Standardizer:
        """Learn each column's mean and standard deviation from `X: (n, d)` or `(n,)`."""
        X = self._check(X, "fit")
        if len(X) == 0:
            raise ValueError("Standardizer.fit: X has no samples; it needs at least one row")
        columns = X.reshape(len(X), -1).astype(np.float64)
        return self.fit_statistics(columns.mean(axis=0), columns.std(axis=0), np.ptp(columns, axis=0))

    def fit_statistics(self, mean: np.ndarray, std: np.ndarray, spread: np.ndarray) -> Standardizer:
        """Learn from each column's mean, standard deviation and range (max - min), all (d,) float64,
        as `fit` does from the rows (a Dask source computes them where its chunks live)."""
        scale = np.array(std, dtype=np.float64)
        # A constant column has no spread to divide by: its standard deviation is 0, or rounding
        # noise from computing the mean. Scale 1 leaves it centred (all ~0) instead of dividing by
        # ~0, and inverse_transform still restores it.
        scale[(spread == 0) | (scale == 0)] = 1.0
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(scale))):
            raise ValueError("Standardizer.fit: values too large to standardise in float64 (the variance overflows)")
        self.mean, self.scale = np.asarray(mean, dtype=np.float64), scale
        return self

    def transform(self, X) -> np.ndarray:
        """`(X - mean) / scale`, same shape as `X`."""
        X = self._check(X, "transform", fitted=True)
        return ((X - self.mean) / self.scale).astype(_float_dtype(X), copy=False)

    def fit_transform(self, X) -> np.ndarray:
        """`fit(X)` then `transform(X)`."""
        return self.fit(X).transform(X)

    def inverse_transform(self, Z) -> np.ndarray:
        """`Z * scale + mean`: standardised values back in the data's units."""
        Z = self._check(Z, "inverse_transform", fitted=True)
        return (Z * self.scale + self.mean).astype(_float_dtype(Z), copy=False)

    def _check(self, X, method: str, fitted: bool = False) -> np.ndarray:
        X = np.asarray(X)
        X = as_real_array(f"Standardizer.{method}: X", X, _float_dtype(X) if X.dtype.kind in "biuf" else None)
        if X.ndim not in (1, 2):
            raise ValueError(f"Standardizer.{method}: X must have shape (n,) or (n, d), got {X.shape}")
        if fitted:
            if self.mean is None:
                raise ValueError(f"Standardizer.{method}: call fit(X) first")
            d = 1 if X.ndim == 1 else X.shape[1]
            if d != len(self.mean):
                raise ValueError(
                    f"Standardizer.{method}: X has {d} feature(s) (shape {X.shape}) "
                    f"but the standardizer was fitted on {len(self.mean)}"
                )
        return X


def _float_dtype(X: np.ndarray) -> np.dtype:
    """Floating input keeps its dtype (float32 stays float32); integers become float64."""
    return X.dtype if X.dtype.kind == "f" else np.dtype(np.float64)


def unscale_linear(
    coef, intercept, x_scaler: Standardizer, y_scaler: Standardizer | None = None
) -> tuple[np.ndarray, float | np.ndarray]:
    """Coefficients of a linear model fitted on standardised data, in the data's original units.

    `coef: (d,)` with a float `intercept`, or `(d, k)` with `intercept: (k,)` (`(d, 1)` included).
    `x_scaler` standardised the features; `y_scaler`, if given, the target. Returns
    `(coef, intercept)` with the same shapes.
    """
    # With z = (x - μ) / σ, the model y = z·w + b = Σ_i (x_i - μ_i) w_i / σ_i + b
    #   = x·(w / σ) + (b - Σ_i μ_i w_i / σ_i)   ⇒   coef = w / σ,  intercept = b - Σ μ w / σ.
    # If the target was standardised as well (the model predicts (y - μ_y) / σ_y), then
    #   y = σ_y · (that) + μ_y   ⇒   coef ← σ_y · coef,  intercept ← σ_y · intercept + μ_y.
    coef = np.asarray(coef, dtype=np.float64)
    if coef.ndim not in (1, 2):
        raise ValueError(f"unscale_linear: coef must have shape (d,) or (d, k), got {coef.shape}")
    if x_scaler.mean is None or x_scaler.scale is None or (y_scaler is not None and y_scaler.mean is None):
        raise ValueError("unscale_linear: the scalers must be fitted first")
    d, k = coef.shape[0], 1 if coef.ndim == 1 else coef.shape[1]
    if len(x_scaler.mean) != d:
        raise ValueError(
            f"unscale_linear: coef has {d} row(s) (shape {coef.shape}) "
            f"but x_scaler knows {len(x_scaler.mean)} feature(s)"
        )
    b = np.asarray(intercept, dtype=np.float64).reshape(-1)
    if b.size != k:
        raise ValueError(
            f"unscale_linear: intercept has {b.size} value(s) but coef has {k} output(s) (shape {coef.shape})"
        )

    w = coef.reshape(d, k)
    mu, sigma = x_scaler.mean.reshape(d, 1), x_scaler.scale.reshape(d, 1)
    new_coef = w / sigma
    new_intercept = b - (mu * new_coef).sum(axis=0)
    if y_scaler is not None and y_scaler.mean is not None and y_scaler.scale is not None:  # (fitted: checked above)
        if len(y_scaler.mean) != k:
            raise ValueError(
                f"unscale_linear: y_scaler knows {len(y_scaler.mean)} target(s) but coef has {k} output(s)"
            )
        new_coef = new_coef * y_scaler.scale
        new_intercept = new_intercept * y_scaler.scale + y_scaler.mean
    if coef.ndim == 1:
        return new_coef.reshape(d), float(new_intercept[0])
    return new_coef, new_intercept
