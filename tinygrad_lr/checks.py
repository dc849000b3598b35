"""Input checks, in one place: every public boundary of the package calls these.

Each takes `what`, the words that name the value in the error ("fit: x", "Adam: lr",
"load_boston_housing: test_split"), and either returns the value in the form the caller works
with or raises an error that says what was expected and what was given. NumPy only: a pandas
DataFrame or Series is recognised without importing pandas (it exists only if the caller imported it).
"""

from __future__ import annotations

import math
import numbers
import operator
import sys
from typing import Any

import numpy as np

__all__ = [
    "as_real_array",
    "as_real_data",
    "check_count",
    "check_fraction",
    "check_number",
    "check_pair",
    "check_sample_weight",
    "first_non_finite",
    "is_dask_array",
    "is_memory_map",
    "is_pandas",
]


def check_number(
    what: str, value: Any, low: float = -math.inf, high: float = math.inf, low_inclusive: bool = True
) -> float:
    """`value` as a float when it is a finite real number with low <= value < high (low < value when
    not `low_inclusive`), else a ValueError. A bool or a string such as "0.1" is not a number here."""
    is_number = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not (is_number and math.isfinite(value) and (value >= low if low_inclusive else value > low) and value < high):
        bounds = [f"{'>=' if low_inclusive else '>'} {low:g}"] if low > -math.inf else []
        bounds += [f"< {high:g}"] if high < math.inf else []
        raise ValueError(f"{what} must be a finite number {' and '.join(bounds)}".rstrip() + f", got {value!r}")
    return float(value)


def check_fraction(what: str, value: Any) -> float:
    """`value` as a float with 0 <= value < 1 (a share of the samples), else a ValueError."""
    return check_number(what, value, low=0.0, high=1.0)


def check_count(what: str, value: Any, minimum: int = 1) -> int:
    """`value` as an int >= minimum (bools and floats such as 32.0 are refused), else a ValueError."""
    if isinstance(value, bool):
        raise ValueError(f"{what} must be an integer >= {minimum}, got {value!r}")
    try:
        count = operator.index(value)
    except TypeError:
        raise ValueError(f"{what} must be an integer >= {minimum}, got {value!r}") from None
    if count < minimum:
        raise ValueError(f"{what} must be an integer >= {minimum}, got {count}")
    return count


def check_pair(what: str, value: Any) -> tuple[Any, Any]:
    """`value` as a 2-tuple (any sequence of two items), else a ValueError."""
    try:
        pair = None if isinstance(value, str) else tuple(value)
    except TypeError:
        pair = None
    if pair is None or len(pair) != 2:
        raise ValueError(f"{what} must be a pair, got {value!r}")
    return pair


def check_sample_weight(what: str, sample_weight: Any, n: int, positive: bool = False) -> np.ndarray:
    """Per-sample weights as float64 (n,): finite and >= 0 (> 0 with `positive`), not all 0, one per
    sample; else a ValueError that says which rule was broken, and where."""
    weights = as_real_array(what, sample_weight)
    if weights.shape != (n,):
        raise ValueError(f"{what} must hold one weight per sample, shape ({n},); got shape {weights.shape}")
    bad = np.flatnonzero(weights <= 0 if positive else weights < 0)
    if len(bad):
        rule = "> 0" if positive else ">= 0"
        raise ValueError(f"{what} must be {rule}; sample {bad[0]} has weight {float(weights[bad[0]])!r}")
    if n and not np.any(weights > 0):
        raise ValueError(f"{what} is zero for every sample: no sample would count")
    return weights


def first_non_finite(array: np.ndarray) -> tuple[int, ...] | None:
    """The index of the first NaN or ±inf in `array`, or None when every value is finite.

    Scans a block of rows at a time, so no mask as large as the data is ever made.
    """
    if array.dtype.kind not in "fc" or array.size == 0:
        return None
    rows = array.reshape(len(array), -1) if array.ndim else array.reshape(1, 1)
    step = max(1, (1 << 16) // max(rows.shape[1], 1))
    for start in range(0, len(rows), step):
        finite = np.isfinite(rows[start : start + step])
        if not finite.all():
            flat = start * rows.shape[1] + int(np.argmin(finite))
            return tuple(int(i) for i in np.unravel_index(flat, array.shape))
    return None


def as_real_array(
    what: str, values: Any, dtype: Any = np.float64, not_numbers: type[Exception] = ValueError
) -> np.ndarray:
    """`values` as an array of `dtype` holding finite real numbers.

    Integers and booleans are converted. Anything else (strings, complex numbers, objects) raises
    `not_numbers` (a ValueError, or the TypeError that `fit` gives); ragged nested lists, NaN or
    ±inf, and values that do not fit `dtype` (1e300 in float32) are ValueErrors naming the first
    such value and its index. A pandas DataFrame (n, d) or Series (n,) is read column by column, and
    its errors name the column and the first offending row, as a CSV cell's do.
    """
    if is_pandas(values):
        values = _pandas_as_array(what, values, not_numbers)
    try:
        array = np.asarray(values)
    except ValueError as error:  # ragged nested lists
        raise ValueError(f"{what} is not a rectangular array of numbers ({error})") from None
    if array.dtype.kind not in "biuf":
        raise not_numbers(f"{what} must hold real numbers, got an array of dtype {array.dtype}")
    with np.errstate(over="ignore"):  # an overflowing cast is reported just below
        cast = array.astype(dtype, copy=False)
    # the original first (a NaN is a NaN), then the cast if there was one (1e300 overflows float32)
    _check_finite(what, array, array, "non-finite values", "remove or impute such samples first")
    if cast is not array:
        _check_finite(what, cast, array, f"values beyond {cast.dtype}", "rescale the data first")
    return cast


def _check_finite(what: str, values: np.ndarray, shown: np.ndarray, problem: str, advice: str) -> None:
    first = first_non_finite(values)
    if first is not None:
        raise ValueError(
            f"{what} (shape {shown.shape}) has {problem}: the first is {shown[first]} at index {first}; {advice}"
        )


# ----- pandas, without importing it -----


def is_pandas(values: Any) -> bool:
    """Whether `values` is a pandas DataFrame or Series; never imports pandas."""
    pandas = sys.modules.get("pandas")  # a DataFrame can only exist if its caller imported pandas
    return pandas is not None and isinstance(values, (pandas.DataFrame, pandas.Series))


def _pandas_as_array(what: str, values: Any, not_numbers: type[Exception]) -> np.ndarray:
    """A DataFrame as a float64 (n, d) array, a Series as (n,), checked one column at a time.

    Numbers and booleans (nullable ones included) are converted; a missing value (NaN, None, NA)
    or ±inf is a ValueError; strings, dates and other objects raise `not_numbers`; a categorical
    column is refused whole, since its codes are labels, not quantities. Each error names the
    column and the first offending row (its position, and its index label where that differs).
    """
    pandas = sys.modules["pandas"]
    types = pandas.api.types
    series = isinstance(values, pandas.Series)
    frame = values.to_frame() if series else values
    array = np.empty(frame.shape, dtype=np.float64)
    for j in range(frame.shape[1]):
        column = frame.iloc[:, j]  # by position: column names may repeat
        where = f"{what} (Series {values.name!r})" if series and values.name is not None else what
        where += "" if series else f": column {frame.columns[j]!r}"
        if isinstance(column.dtype, pandas.CategoricalDtype):
            raise not_numbers(f"{where} is categorical; encode it as numbers first (e.g. with pandas.get_dummies)")
        if types.is_numeric_dtype(column.dtype) and not types.is_complex_dtype(column.dtype):
            array[:, j] = column.to_numpy(dtype=np.float64, na_value=np.nan)
            first = first_non_finite(array[:, j])
            bad = None if first is None else first[0]
        else:  # strings, objects, dates: cell by cell, stopping at the first that is not a finite number
            cells = column.to_numpy(dtype=object)
            bad = next((i for i, cell in enumerate(cells) if not _finite_real(cell)), None)
            if bad is None:
                array[:, j] = cells.astype(np.float64)
        if bad is not None:
            raise _bad_cell(f"{where}, {_row(frame.index[bad], bad)}", column.iloc[bad], column.dtype, not_numbers)
    return array[:, 0] if series else array


def _finite_real(cell: Any) -> bool:
    return isinstance(cell, (numbers.Real, np.bool_)) and math.isfinite(cell)


def _row(label: Any, position: int) -> str:
    same = isinstance(label, numbers.Integral) and not isinstance(label, bool) and label == position
    return f"row {position}" if same else f"row {position} (index {repr(label) if isinstance(label, str) else label})"


def _bad_cell(where: str, cell: Any, dtype: Any, not_numbers: type[Exception]) -> Exception:
    """The error for one cell that is not a finite real number: missing, infinite, or not a number at all."""
    pandas = sys.modules["pandas"]
    shown = repr(cell) if isinstance(cell, str) else str(cell)  # nan, not np.float64(nan)
    shown = shown if len(shown) <= 40 else shown[:37] + "..."
    if cell is None or cell is pandas.NA or cell is pandas.NaT or (isinstance(cell, numbers.Real) and math.isnan(cell)):
        return ValueError(f"{where}: missing value ({shown}); remove or impute such samples first")
    if isinstance(cell, numbers.Real):
        return ValueError(f"{where}: {shown} is not a finite number; remove or impute such samples first")
    return not_numbers(f"{where}: {shown} is not a number (the column has dtype {dtype})")


# ----- data read a block at a time: memory maps and Dask arrays -----


def is_memory_map(values: Any) -> bool:
    """Whether `values` is a NumPy memory map (`np.memmap`, `np.load(path, mmap_mode="r")`) or a slice of one."""
    return isinstance(values, np.memmap)


def is_dask_array(values: Any) -> bool:
    """Whether `values` is a Dask array, known without importing Dask (one exists only if its caller imported it)."""
    dask_array = sys.modules.get("dask.array")
    return dask_array is not None and isinstance(values, dask_array.Array)


def as_real_data(
    what: str, values: Any, dtype: Any = np.float64, not_numbers: type[Exception] = ValueError
) -> np.ndarray | Any:
    """`as_real_array(what, values, dtype, not_numbers)`, except for a memory map or a Dask array,
    which is returned as it is once its dtype is known to hold real numbers: its values are
    converted and checked a block at a time as they are read (`tinygrad_lr.blockwise`)."""
    if not (is_memory_map(values) or is_dask_array(values)):
        return as_real_array(what, values, dtype, not_numbers)
    if values.dtype.kind not in "biuf":
        raise not_numbers(f"{what} must hold real numbers, got an array of dtype {values.dtype}")
    if any(math.isnan(size) for size in values.shape):
        raise ValueError(
            f"{what} is a Dask array of unknown chunk sizes (shape {values.shape}); compute them first with "
            "x.compute_chunk_sizes(), or dataframe.to_dask_array(lengths=True)"
        )
    return values
