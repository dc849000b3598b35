"""Data plumbing: reading a numeric CSV, the Keras validation split, a random hold-out, mini-batches, scaling.

NumPy and the standard library (and pandas, where installed, to parse big CSV files). Everything here works
on plain arrays: `X: (n, d)` (or `(n,)`, one feature), `y: (n,)` or `(n, k)`.

A CSV file is read in one of two ways, with one result, to the bit. The csv module reads the header row;
the data rows are read by
- the fast path, a C parser: pandas' `read_csv` where pandas is installed and worth its import (a big file,
  or pandas already imported), else NumPy's `loadtxt`. It is given only rows that it provably splits into
  the careful path's cells, and its numbers are kept only where they cannot differ from the careful path's
  (`_c_parser_rows`, `_c_parse` and `_pandas_for` say why), so anything unusual goes the careful way;
- the careful path, the csv module and `_NUMBER` cell by cell in Python (10 to 25 times slower): it reads
  what the fast path declines (quoted cells, a no-break space around a number, ...), and it finds and
  names the first bad cell (file, line, column, cell) when a C parser has refused one.
"""

from __future__ import annotations

import codecs
import csv
import io
import math
import os
import re
import sys
from collections.abc import Iterator, Sequence
from types import ModuleType
from typing import NamedTuple

import numpy as np

from tinygrad_lr.checks import as_real_array, check_count, check_fraction, is_dask_array, is_memory_map

__all__ = [
    "Standardizer",
    "batch_indices",
    "choose_features",
    "held_out",
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
    (1-based, the header is line 1) and the column. Parsed by a C parser where it can be (see the
    module's docstring): a million rows of five columns in well under a second.
    """
    table = _open_csv(path)
    try:
        feature_names = choose_features(table.name, table.columns, target, features)
    except ValueError as error:
        raise _header_hint(error, table.columns, table.header_line) from None
    values = _numbers(table, [*feature_names, target])
    return values[:, :-1].copy(), values[:, -1].copy(), feature_names


def read_columns(path: str | os.PathLike, names: Sequence[str]) -> np.ndarray:
    """The named columns of a numeric CSV file with a header row, in the given order: `(n, len(names))` float64.

    The file follows `load_csv`'s rules and gets its errors; a name that is not a column is a
    `ValueError` listing the file's columns. Other columns are not read.
    """
    table = _open_csv(path)
    missing = [column for column in names if column not in table.columns]
    if missing:
        error = ValueError(
            f"{table.name}: no column named {', '.join(map(repr, missing))}; available columns: {table.columns}"
        )
        raise _header_hint(error, table.columns, table.header_line)
    return np.ascontiguousarray(_numbers(table, list(names)))


class _CsvFile(NamedTuple):
    """A CSV file read as far as its header row, the data rows ready for both paths (read them once)."""

    name: str  # the path as given, for messages
    columns: list[str]  # the header's names, checked
    header_line: int
    rows: Iterator[tuple[int, list[str]]]  # the careful path's data rows: (the line where each starts, its cells)
    fast: tuple[bytes, int] | None  # the fast path's: the rows as bytes and their count; None: careful only


def _open_csv(path: str | os.PathLike) -> _CsvFile:
    """Read the file, its header row (checked) and, where the fast path cannot be sure of them, its data rows."""
    name = os.fspath(path)
    with open(path, "rb") as file:  # a missing file raises FileNotFoundError naming the path
        raw = file.read()
    if not raw.isascii():  # (ASCII is UTF-8 as it is)
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as error:
            line = raw[: error.start].count(b"\n") + 1
            raise ValueError(f"{name}: line {line}: the file is not UTF-8 text ({error.reason})") from None

    first = _first_row(name, raw)
    if first is None:
        raise ValueError(f"{name}: the file is empty; expected a header row of column names, then rows of numbers")
    header_line, header, end = first
    rows = _data_rows(name, raw)
    fast = _c_parser_rows(raw[end:], len(header))
    if fast is None:
        rows = iter(list(rows))  # read now: the csv module's errors come before those about the header, as always

    columns = [cell.strip() for cell in header]
    for position, column in enumerate(columns, start=1):
        if not column:
            raise ValueError(f"{name}: line {header_line}: column {position} of the header has no name")
    duplicates = sorted({column for column in columns if columns.count(column) > 1})
    if duplicates:
        raise ValueError(f"{name}: line {header_line}: duplicate column names {duplicates}; names must be unique")
    return _CsvFile(name, columns, header_line, rows, fast)


def _text(raw: bytes) -> str:
    """UTF-8 bytes as text, without the byte-order mark that spreadsheet programs write; a character cut off at
    the end (of a prefix of the file) is left out."""
    return raw.decode("utf-8-sig", errors="ignore")


def _first_row(name: str, raw: bytes) -> tuple[int, list[str], int] | None:
    """The first non-blank row of the CSV file's bytes `raw`: (the line where it starts, its cells, the byte
    where the rows after it start); None if there is none."""
    # The csv module reads a prefix of the text as it reads the whole text: where the row ends before the
    # prefix does, it is the whole text's first row. So only as much of a big file is decoded as the row needs.
    size = 2**16
    while True:
        head = _text(raw[:size])
        stream = io.StringIO(head, newline="")
        row = next(_csv_rows(name, stream), None)
        if stream.tell() < len(head) or size >= len(raw):
            if row is None:
                return None
            end = len(head[: stream.tell()].encode()) + len(codecs.BOM_UTF8) * raw.startswith(codecs.BOM_UTF8)
            return (*row, end)
        size *= 16


def _data_rows(name: str, raw: bytes) -> Iterator[tuple[int, list[str]]]:
    """The non-blank rows of the CSV file's bytes `raw` after the first (the header), as `_csv_rows`; read (and
    decoded) when first asked for."""
    rows = _csv_rows(name, io.StringIO(_text(raw), newline=""))
    next(rows)
    yield from rows


def _csv_rows(name: str, stream: io.StringIO) -> Iterator[tuple[int, list[str]]]:
    """The non-blank rows of the CSV text in `stream`, each as (the line where it starts, its cells)."""
    # newline="" for `stream` lets csv see \r\n, \n and \r line ends as they are, as the csv docs ask
    reader = csv.reader(stream, skipinitialspace=True)
    start = 1  # a quoted cell may span several lines
    try:
        for row in reader:
            if not _is_blank(row):
                yield start, row
            start = reader.line_num + 1
    except csv.Error as error:
        raise ValueError(f"{name}: line {reader.line_num}: not readable as CSV ({error})") from None


def _header_hint(error: ValueError, columns: list[str], header_line: int) -> ValueError:
    """`error` about a missing column, told that the header row holds numbers when it does."""
    if all(_NUMBER.fullmatch(column) for column in columns):
        return ValueError(f"{error} (line {header_line} holds numbers: the file needs a header row of names)")
    return error


def _numbers(table: _CsvFile, wanted: list[str]) -> np.ndarray:
    """The `wanted` columns of the data rows as floats: (n, len(wanted)), in any memory order; by a C parser
    where it can be trusted."""
    positions = [table.columns.index(column) for column in wanted]
    if table.fast is not None:
        values = _c_parse(*table.fast, len(table.columns), positions)
        if values is not None:
            return values
    return _careful_numbers(table, positions)


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


# ----- CSV, the fast path: a C parser where it reads what the careful path reads -----

# everything but the comma and the line end: `bytes.translate(None, delete=...)` keeps only those
_NOT_SEPARATORS = bytes(byte for byte in range(256) if byte not in b",\n")
# pandas parses numbers about four times faster than np.loadtxt, but importing it takes some 0.3 s: from this
# size on that pays for itself (and once pandas has been imported, always)
_PANDAS_FROM_BYTES = 32 * 2**20


def _c_parser_rows(data: bytes, n_columns: int) -> tuple[bytes, int] | None:
    """The data rows, as bytes with "\\n" line ends, and how many lines hold a full row, where a C parser that
    splits lines at "\\n" and cells at "," sees the csv module's cells; None where it might not.

    The guards: no quote (the quoting rules of the parsers differ at the edges); no NUL (the csv module refuses
    it before Python 3.11); no byte-order mark (pandas drops one at the start of its input, the csv module keeps
    it in the cell); no line longer than the csv module's field limit (which it refuses); and every line holds
    `n_columns` cells or one cell: a blank line, which both skip (the parsers' whitespace is ASCII, a subset of
    str.strip()'s), or a short row, which a C parser refuses or returns as an extra row (see `_c_parse`). A file
    of one column has no commas to count rows by.
    """
    if n_columns < 2 or b'"' in data or b"\x00" in data or (not data.isascii() and codecs.BOM_UTF8 in data):
        return None
    if b"\r" in data:  # \r\n and \r end a line as \n does (outside quotes)
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    if _has_line_longer_than(data, csv.field_size_limit()):
        return None
    separators = data.translate(None, _NOT_SEPARATORS) + b"\n"
    # a line of n_columns cells leaves one `full_row` of separators; once all are gone, a comma left over is
    # a line of too many or too few cells
    full_row = b"," * (n_columns - 1) + b"\n"
    if b"," in separators.replace(full_row, b""):
        return None
    n_rows = separators.count(b",") // (n_columns - 1)
    return (data, n_rows) if n_rows else None  # no rows: the careful path says so


def _has_line_longer_than(data: bytes, limit: int) -> bool:
    """Whether a line of `data` ("\\n" line ends) is longer than `limit` bytes: a window of `limit` + 1 bytes
    from the start of a line holds no line end."""
    start = 0
    while len(data) - start > limit:
        end = data.rfind(b"\n", start, start + limit + 1)
        if end < 0:
            return True
        start = end + 1  # the lines up to here fit in the window
    return False


def _c_parse(data: bytes, n_rows: int, n_columns: int, positions: list[int]) -> np.ndarray | None:
    """The columns at `positions` of the rows in `data` (see `_c_parser_rows`) as a C parser reads them:
    `(n_rows, len(positions))` float64 in any memory order, or None where it refused a cell or might differ
    from the careful path.

    The parsers' finite numbers are `_NUMBER`'s, rounded as float() rounds them (NumPy calls CPython's own
    parser; pandas where `_pandas_for` trusts it), and they strip only ASCII whitespace, which str.strip()
    strips too. So their result is the careful path's unless it holds a non-finite number ("nan", "inf", an
    overflow), or more rows than there are full lines (a short row whose missing cells were not asked for).
    """
    read = sorted(set(positions))
    pandas = _pandas_for(data)
    try:
        if pandas is not None:
            # no NA values: "", "NA" and "nan" stay text, which is not a float
            frame = pandas.read_csv(
                io.BytesIO(data), header=None, names=list(range(n_columns)), usecols=read, dtype=np.float64,
                engine="c", na_filter=False,
            )  # fmt: skip
            values = frame.to_numpy(dtype=np.float64)
        else:
            values = np.loadtxt(
                io.BytesIO(data), delimiter=",", comments=None, quotechar=None, usecols=read, dtype=np.float64,
                ndmin=2, encoding="utf-8",
            )  # fmt: skip
    except ValueError:  # a cell that is not a number: the careful path finds and names it
        return None
    if len(values) != n_rows or not np.isfinite(values).all():
        return None
    return values if read == positions else values[:, [read.index(position) for position in positions]]


def _pandas_for(data: bytes) -> ModuleType | None:
    """pandas, to parse `data`, where it is installed, worth importing and sure to read the numbers as float()
    does; None for np.loadtxt."""
    if len(data) < _PANDAS_FROM_BYTES and "pandas" not in sys.modules:
        return None
    # pandas 3.1 reads a number with a leading "+" and whitespace around it with an older parser that can
    # miss float()'s rounding in the last bit; a "+" anywhere but after an exponent's "e" could be one
    if b"+" in data and data.count(b"+") != data.count(b"e+") + data.count(b"E+"):
        return None
    # pandas reads a float column of true/false words (any case) as 1.0/0.0, deciding for each chunk of rows
    # on its own; every such word has an "a" or a "u"
    if any(letter in data for letter in (b"a", b"A", b"u", b"U")):
        lowered = data.lower()
        if b"true" in lowered or b"false" in lowered:
            return None
    try:
        import pandas
    except ImportError:
        return None
    # before 3.1, pandas' default float parser can miss float()'s rounding in the last bit, and its exact one
    # (float_precision="round_trip", CPython's) is slower than np.loadtxt
    version = tuple(int(part) for part in re.findall(r"\d+", pandas.__version__)[:2])
    return pandas if version >= (3, 1) else None


# ----- CSV, the careful path: every cell in Python, each error where it is -----


def _careful_numbers(table: _CsvFile, positions: list[int]) -> np.ndarray:
    """The columns at `positions` of the data rows, each cell checked by `_parse_number`: (n, len(positions))."""
    name, columns = table.name, table.columns
    rows = list(table.rows)
    if not rows:
        raise ValueError(f"{name}: no data rows after the header on line {table.header_line}")
    values = np.empty((len(rows), len(positions)), dtype=np.float64)
    for i, (line, row) in enumerate(rows):
        if len(row) != len(columns):
            raise ValueError(
                f"{name}: line {line}: expected {len(columns)} cells (one per header column), found {len(row)}"
            )
        for j, position in enumerate(positions):
            values[i, j] = _parse_number(row[position], name, line, columns[position])
    return values


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
    held = held_out(len(x), fraction, seed)
    kept_rows, held_rows = np.flatnonzero(~held), np.flatnonzero(held)
    return (x[kept_rows], y[kept_rows]), (x[held_rows], y[held_rows])


def held_out(n: int, fraction: float, seed: int | np.random.Generator | None = None) -> np.ndarray:
    """Which of n rows `random_split` holds out, with the same draw: a boolean mask (n,), True for a held-out
    row (without making the parts: for row numbers alone, of data not yet read)."""
    held = np.zeros(n, dtype=bool)
    held[np.random.default_rng(seed).choice(n, n - _rows_kept("random_split", n, fraction), replace=False)] = True
    return held


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
