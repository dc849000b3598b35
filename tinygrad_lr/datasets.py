"""Data sets for the walkthroughs: synthetic noisy lines, and the Boston housing data bundled with the package.

NumPy and the standard library only. The Boston CSV is package data (`boston_housing.csv`, with its
provenance in `boston_housing.md`), read through `importlib.resources` so an installed wheel works.
"""

from __future__ import annotations

import functools
import importlib.resources

import numpy as np

from tinygrad_lr.checks import check_count, check_fraction, check_number
from tinygrad_lr.data import load_csv

__all__ = ["BOSTON_FEATURES", "BOSTON_LABELS", "BOSTON_TARGET", "load_boston_housing", "make_line"]

BOSTON_FEATURES = (
    "crim",
    "zn",
    "indus",
    "chas",
    "nox",
    "rm",
    "age",
    "dis",
    "rad",
    "tax",
    "ptratio",
    "black",
    "lstat",
)
BOSTON_TARGET = "medv"
# what each column measures, with its unit, as a picture's axis names it
BOSTON_LABELS = {
    "crim": "per capita crime rate",
    "zn": "residential land zoned for large lots (%)",
    "indus": "non-retail business acres (%)",
    "chas": "on the Charles River (1) or not (0)",
    "nox": "nitric oxides (parts per 10 million)",
    "rm": "average rooms per dwelling",
    "age": "homes built before 1940 (%)",
    "dis": "weighted distance to employment centres",
    "rad": "access to radial highways (index)",
    "tax": "property tax per $10,000",
    "ptratio": "pupils per teacher",
    "black": "1000·(Bk - 0.63)², Bk the proportion of Black residents",
    "lstat": "lower-status population (%)",
    "medv": "median price ($1000s)",
}
_BOSTON_CSV = "boston_housing.csv"


def make_line(
    n: int = 100,
    slope: float = 3.5,
    intercept: float = 2.0,
    noise: float = 1.0,
    x_range: tuple[float, float] = (0.0, 10.0),
    seed: int | np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Points on a noisy line: `x: (n,)` evenly spaced over `x_range`, `y = slope * x + intercept + noise * N(0, 1)`.

    Both float64. The noise comes from `np.random.default_rng(seed)`, so a seed makes it repeatable;
    `noise=0` gives the exact line.
    """
    n = check_count("make_line: n", n)
    for what, value in (("slope", slope), ("intercept", intercept), ("noise", noise)):
        check_number(f"make_line: {what}", value)
    if noise < 0:
        raise ValueError(f"make_line: noise is a standard deviation and must be >= 0, got {noise}")
    try:
        low, high = x_range
    except (TypeError, ValueError):
        raise ValueError(f"make_line: x_range must be a pair (low, high), got {x_range!r}") from None
    check_number("make_line: x_range low", low)
    check_number("make_line: x_range high", high)

    x = np.linspace(float(low), float(high), n, dtype=np.float64)
    rng = np.random.default_rng(seed)
    y = float(slope) * x + float(intercept) + float(noise) * rng.standard_normal(n)
    return x, y


def load_boston_housing(
    test_split: float = 0.2, seed: int = 113
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """The Boston housing data, `(x_train, y_train), (x_test, y_test)`, split as Keras' `boston_housing.load_data()`.

    `x: (n, 13)` (columns `BOSTON_FEATURES`), `y: (n,)` (`BOSTON_TARGET`, median value in $1000s),
    float64. The defaults give 404 training and 102 test rows, the same rows in the same order as Keras.
    """
    test_split = check_fraction("load_boston_housing: test_split", test_split)
    x, y = _boston_arrays()
    # Keras' recipe, step by step: shuffle the row indices with a legacy RandomState(seed), then
    # the first int(n * (1 - test_split)) shuffled rows train and the rest test.
    indices = np.arange(len(x))
    np.random.RandomState(seed).shuffle(indices)
    x, y = x[indices], y[indices]  # fancy indexing copies: the cache stays untouched
    n_train = int(len(x) * (1 - test_split))
    return (x[:n_train], y[:n_train]), (x[n_train:], y[n_train:])


@functools.cache
def _boston_arrays() -> tuple[np.ndarray, np.ndarray]:
    """All 506 rows in file order, read once; read-only so a slip cannot change the cache."""
    resource = importlib.resources.files("tinygrad_lr").joinpath(_BOSTON_CSV)
    with importlib.resources.as_file(resource) as path:
        x, y, names = load_csv(path, BOSTON_TARGET)
    if tuple(names) != BOSTON_FEATURES or x.shape != (506, 13):
        raise RuntimeError(
            f"the bundled {_BOSTON_CSV} is damaged: columns {names}, shape {x.shape}; reinstall the package"
        )
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y
