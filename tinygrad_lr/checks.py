"""Input checks, in one place: every public boundary of the package calls these.

Each takes `what`, the words that name the value in the error ("fit: x", "Adam: lr",
"load_boston_housing: test_split"), and either returns the value in the form the caller works
with or raises an error that says what was expected and what was given. NumPy only.
"""

from __future__ import annotations

import math
import numbers
import operator
from typing import Any

import numpy as np

__all__ = ["as_real_array", "check_count", "check_fraction", "check_number", "check_pair", "first_non_finite"]


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
    such value and its index.
    """
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
