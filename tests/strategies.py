"""Hypothesis strategies shared by every property test: shapes, dtypes and values away from kinks."""

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

FLOAT_DTYPES = st.sampled_from([np.float32, np.float64])

# shapes from 0-d to 3-d, with size-1 axes common
shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4)
# the same, with empty axes (a side of 0) among them
shapes_with_empty = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3)
# two shapes that broadcast together: rank mismatch and stretched size-1 axes included
broadcastable_pairs = hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=4)

# value domains: each op is drawn where it is smooth and its finite differences are accurate;
# `width` makes every value exact in the array's dtype (32 for float32)
_DOMAINS = {
    "any": lambda width: st.floats(-2.0, 2.0, width=width),
    "positive": lambda width: st.floats(0.5, 2.0, width=width),  # log, sqrt, a base of a real power
    "nonzero": lambda width: st.floats(0.5, 2.0, width=width).flatmap(lambda v: st.sampled_from([v, -v])),
    # maximum: the two sides come from interleaved grids, so they never tie
    "grid": lambda width: st.integers(-4, 4).map(lambda k: k / 2),
    "grid_offset": lambda width: st.integers(-4, 4).map(lambda k: k / 2 + 0.25),
    # where the conventions at zero apply: bases and exponents of exactly 0, and ordinary values
    "with_zeros": lambda width: st.one_of(st.just(0.0), st.floats(0.5, 2.0, width=width)),
    "exponent_with_zeros": lambda width: st.one_of(st.just(0.0), st.floats(-2.0, 2.0, width=width)),
    # anything NumPy can hold: NaN, ±inf, zeros of both signs, huge and tiny values
    "special": lambda width: st.one_of(
        st.sampled_from([np.nan, np.inf, -np.inf, 0.0, -0.0]), st.floats(width=width, allow_subnormal=True)
    ),
}


def arrays(shape, domain: str = "any", dtype=np.float64, unique: bool = False):
    """An array of `shape` with values drawn from one of the named domains (all different with `unique`)."""
    width = 8 * np.dtype(dtype).itemsize
    return hnp.arrays(dtype, shape, elements=_DOMAINS[domain](width), fill=st.nothing(), unique=unique)


@st.composite
def upstream_with_nans(draw, shape, dtype=np.float64):
    """An upstream gradient of `shape` and `dtype`: ordinary values, with NaN at drawn entries (none to all)."""
    values = draw(arrays(shape, "any", dtype))
    nans = draw(hnp.arrays(np.bool_, shape))
    return np.where(nans, np.nan, values).astype(dtype)


# small shapes for derivatives of derivatives, whose checks cost a backward sweep per element
small_shapes = hnp.array_shapes(min_dims=0, max_dims=2, min_side=1, max_side=3)
small_broadcastable_pairs = hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=2, max_side=3)


@st.composite
def axis_args(draw, ndim: int):
    """`axis` for a reduction over `ndim` axes: None, an int (maybe negative) or a tuple (maybe with
    negative entries). A 0-d tensor takes axis 0 or -1, alone or in a tuple, as PyTorch."""
    choice = draw(st.sampled_from(["none", "int", "tuple"]))
    if choice == "none":
        return None
    if ndim == 0:
        axis = draw(st.sampled_from([0, -1]))
        return axis if choice == "int" else (axis,)
    if choice == "int":
        return draw(st.integers(-ndim, ndim - 1))
    axes = draw(hnp.valid_tuple_axes(ndim, min_size=1))
    return tuple(a % ndim - ndim if draw(st.booleans()) else a % ndim for a in axes)


@st.composite
def squeeze_axes(draw, shape: tuple[int, ...]):
    """`axis` for `squeeze`: None (every length-1 axis), or some of the length-1 axes of `shape` (none at
    all included) as an int or a tuple, each written as a positive or a negative axis."""
    ones = [i for i, n in enumerate(shape) if n == 1]
    if not ones or draw(st.booleans()):
        return draw(st.sampled_from([None, ()]))
    axes = [
        a - len(shape) if draw(st.booleans()) else a
        for a in draw(st.lists(st.sampled_from(ones), min_size=1, unique=True))
    ]
    return axes[0] if len(axes) == 1 and draw(st.booleans()) else tuple(axes)


@st.composite
def permutations(draw, ndim: int):
    """A permutation of `ndim` axes for `transpose`, each entry written as a positive or a negative axis."""
    axes = draw(st.permutations(range(ndim)))
    return tuple(a - ndim if draw(st.booleans()) else a for a in axes)


def noncontiguous(array: np.ndarray, layout: str) -> np.ndarray:
    """The same values in another memory layout: "C" (as given), "F" (column-major) or "strided"
    (every other element of a twice-as-large array), so that ops meet views, not just fresh arrays."""
    if layout == "F" and array.ndim:  # (np.asfortranarray would make a 0-d array 1-d)
        return np.asfortranarray(array)
    if layout == "strided" and array.ndim:
        wide = np.repeat(array, 2, axis=-1)
        return wide[..., ::2]
    return array


layouts = st.sampled_from(["C", "F", "strided"])


@st.composite
def index_tensors(draw, shape: tuple[int, ...]):
    """An index into an array of `shape` holding a Tensor, as a user writes one: a boolean mask over
    the whole array or its first axis, or an integer array (repeats and negatives included) alone or
    beside an int in a tuple. Returns (the index with Tensors, the same index with NumPy arrays)."""
    from tinygrad_lr import Tensor

    kind = draw(st.sampled_from(["mask", "row_mask", "integers", "integers_in_tuple"]))
    if kind == "mask":
        mask = draw(hnp.arrays(np.bool_, shape))
        return Tensor(mask, dtype=bool), mask
    if kind == "row_mask":
        mask = draw(hnp.arrays(np.bool_, shape[:1]))
        return Tensor(mask, dtype=bool), mask
    rows = draw(hnp.arrays(np.int64, draw(st.integers(1, 4)), elements=st.integers(-shape[0], shape[0] - 1)))
    if kind == "integers" or len(shape) < 2:
        return Tensor(rows, dtype=np.int64), rows
    column = draw(st.integers(-shape[1], shape[1] - 1))
    return (Tensor(rows, dtype=np.int64), column), (rows, column)


@st.composite
def matmul_shapes(draw):
    """Shapes of a @ b with each operand 1-D or 2-D (and now and then a batch of matrices)."""
    n, k, m = (draw(st.integers(1, 4)) for _ in range(3))
    left = draw(st.sampled_from([(k,), (n, k), (2, n, k)]))
    right = draw(st.sampled_from([(k,), (k, m)]))
    return left, right


# ----- linear-regression problems (closed form, learning-rate bound) -----
# Each strategy draws a tuple (X, y, l2, fit_intercept): X (n, d) or (n,) for one feature,
# y (n,) or (n, k), the penalty, and whether to fit a bias.


def _targets(draw, rng, X: np.ndarray, k: int | None) -> np.ndarray:
    """y = X @ coef + intercept + noise with drawn noise; (n,) when k is None, else (n, k)."""
    noise = draw(st.sampled_from([0.0, 0.01, 1.0]))
    columns = 1 if k is None else k
    y = X @ rng.normal(size=(X.shape[1], columns)) + rng.normal(size=columns)
    y = y + noise * rng.normal(size=y.shape)
    return y[:, 0] if k is None else y


@st.composite
def regression_problems(draw, max_offset: float = 3.0, min_scale: float = 0.3, one_target: bool = False):
    """A full-rank problem: n > d Gaussian samples, each feature with a drawn offset (at most
    `max_offset`) and scale (at least `min_scale`); a 1-D X now and then when d == 1; y 1-D or with
    1 or 3 columns (always 1-D with `one_target`); l2 zero or in [1e-4, 10]; with or without a bias."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    d = draw(st.integers(1, 4))
    n = draw(st.integers(d + 3, 40))
    k = None if one_target else draw(st.sampled_from([None, 1, 3]))
    offsets = np.array(draw(st.lists(st.floats(-max_offset, max_offset), min_size=d, max_size=d)))
    scales = np.array(draw(st.lists(st.floats(min_scale, 3.0), min_size=d, max_size=d)))
    X = offsets + scales * rng.normal(size=(n, d))
    y = _targets(draw, rng, X, k)
    if d == 1 and draw(st.booleans()):
        X = X[:, 0]
    l2 = draw(st.one_of(st.just(0.0), st.floats(1e-4, 10.0)))
    return X, y, l2, draw(st.booleans())


@st.composite
def rank_deficient_problems(draw):
    """A problem with no unique least-squares answer: an exactly duplicated column, or more
    features than samples. l2 = 0; y 1-D or 2-D; with or without a bias."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if draw(st.sampled_from(["duplicate", "wide"])) == "duplicate":
        d = draw(st.integers(2, 5))
        n = draw(st.integers(d + 2, 30))
        X = rng.normal(size=(n, d - 1))
        source, target = draw(st.integers(0, d - 2)), draw(st.integers(0, d - 1))
        X = np.insert(X, target, X[:, source], axis=1)
    else:
        n = draw(st.integers(2, 8))
        X = rng.normal(size=(n, draw(st.integers(n + 1, 12))))
    y = _targets(draw, rng, X, draw(st.sampled_from([None, 2])))
    return X, y, 0.0, draw(st.booleans())


@st.composite
def polynomial_problems(draw):
    """Ill-conditioned data: X = [x, x², ..., x^degree] with x evenly spaced over a drawn interval,
    from [0, 1] up to the tutorial's 0..9999; y a polynomial of x plus drawn noise; with a bias."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    width = draw(st.sampled_from([1.0, 10.0, 9999.0]))
    degree = draw(st.integers(1, 8 if width == 1.0 else 4 if width == 10.0 else 2))
    start = draw(st.floats(-1.0, 1.0)) * width
    n = draw(st.integers(degree + 3, 60))
    x = np.linspace(start, start + width, n)
    X = x[:, None] ** np.arange(1, degree + 1)
    # coefficients that keep every power's contribution of the same order over the interval
    coef = rng.normal(size=degree) / np.maximum(np.abs(X).max(axis=0), 1.0)
    noise = draw(st.sampled_from([0.0, 1e-6, 1.0]))
    y = X @ coef + rng.normal() + noise * rng.normal(size=n)
    return X, y, 0.0, True


# near-CSV text for fuzzing the CSV loader: digits, separators, line ends, quotes and junk
near_csv_text = st.lists(
    st.sampled_from(
        ["0", "1", "7", "-", ".", "e", "3.5", ",", ",", "\n", "\r\n", "\r", '"', " ", "nan", "inf", "x", "y", "\x00"]
    ),
    max_size=60,
).map("".join)


_finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)


@st.composite
def feature_matrices(draw):
    """X of shape (n,) or (n, d), some columns constant."""
    n = draw(st.integers(1, 20))
    if draw(st.booleans()):
        return draw(hnp.arrays(np.float64, (n,), elements=_finite))
    d = draw(st.integers(1, 4))
    X = draw(hnp.arrays(np.float64, (n, d), elements=_finite))
    for j in range(d):
        if draw(st.booleans()):
            X[:, j] = draw(_finite)
    return X


# ----- pandas -----

# every NumPy dtype a numeric DataFrame column may have; values small enough that a model trained on them stays finite
FRAME_DTYPES = ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float32", "float64", "bool"]


def _column_values(dtype: str):
    if dtype == "bool":
        return st.booleans()
    if dtype.startswith("float"):
        return st.floats(-10.0, 10.0, width=32 if dtype == "float32" else 64)
    return st.integers(0 if dtype.startswith("uint") else -10, 10)


@st.composite
def numeric_frames(draw, min_rows: int = 1, max_rows: int = 12, max_columns: int = 4):
    """A pandas DataFrame of drawn numeric and boolean columns, with drawn (unique, string) column names."""
    from hypothesis.extra import pandas as hpd  # imports pandas: only the tests that draw frames pay for it

    names = draw(st.lists(st.text(min_size=1, max_size=6), min_size=1, max_size=max_columns, unique=True))
    dtypes = [draw(st.sampled_from(FRAME_DTYPES)) for _ in names]
    columns = [hpd.column(name, dtype=dtype, elements=_column_values(dtype)) for name, dtype in zip(names, dtypes)]
    return draw(hpd.data_frames(columns, index=hpd.range_indexes(min_rows, max_rows)))


@st.composite
def numeric_series(draw, n: int, name=None):
    """A float64 pandas Series of n values in [-10, 10]."""
    import pandas as pd

    values = draw(hnp.arrays(np.float64, (n,), elements=st.floats(-10.0, 10.0)))
    return pd.Series(values, name=name)


# ----- designs for the accuracy oracle: ill-conditioned on purpose (issue 26) -----
# Each family draws X (n, d) from a NumPy generator, so that benchmarks/accuracy.py draws the very same designs;
# `accuracy_problems` adds a target, maybe weights, with or without an intercept. At most 100 rows and 10
# columns: the exact answer in rational arithmetic (tests/test_accuracy.py) stays a matter of milliseconds.


def _condition(X: np.ndarray, fit_intercept: bool) -> float:
    """The condition number of the raw design [1 X] (X without an intercept), as numpy.linalg.cond gives it."""
    return float(np.linalg.cond(np.column_stack([np.ones(len(X)), X]) if fit_intercept else X))


def polynomial_design(rng: np.random.Generator, fit_intercept: bool = True) -> np.ndarray:
    """[x, x², ..., x^degree], degree 2 to 10, x on an interval away from 0 (as NIST's Wampler and Filip
    problems): raw condition numbers from 1e2 up to 1e15, no further (drawn again beyond it)."""
    while True:
        degree = int(rng.integers(2, 11))
        n = int(rng.integers(degree + 5, 101))
        start, width = rng.uniform(-10, 10), rng.choice([1.0, 2.0, 6.0, 10.0])
        x = np.sort(rng.uniform(start, start + width, n))
        X = x[:, None] ** np.arange(1, degree + 1)
        if _condition(X, fit_intercept) <= 1e15:
            return X


def filip_design(rng: np.random.Generator, fit_intercept: bool = True) -> np.ndarray:
    """NIST's Filip problem drawn again: 82 values of x between -9 and -3, degree 10 (condition about 1e15)."""
    return np.sort(rng.uniform(-9, -3, 82))[:, None] ** np.arange(1, 11)


def collinear_design(rng: np.random.Generator, fit_intercept: bool = True) -> np.ndarray:
    """d columns mixed from about d/2 sources, each plus its own noise of 1e-10 to 1e-3: nearly dependent."""
    d = int(rng.integers(2, 9))
    n = int(rng.integers(d + 5, 101))
    sources = rng.normal(size=(n, 1 + d // 2))
    return sources @ rng.normal(size=(sources.shape[1], d)) + 10.0 ** rng.uniform(-10, -3) * rng.normal(size=(n, d))


def scaled_design(rng: np.random.Generator, fit_intercept: bool = True) -> np.ndarray:
    """Columns of wildly different scales, 1e-8 to 1e8."""
    d = int(rng.integers(2, 9))
    n = int(rng.integers(d + 5, 101))
    return rng.normal(size=(n, d)) * 10.0 ** rng.uniform(-8, 8, d)


def offset_design(rng: np.random.Generator, fit_intercept: bool = True) -> np.ndarray:
    """Columns far from the origin against their spread: offsets of 1e3 to 1e8, spreads of 0.1 to 10."""
    d = int(rng.integers(1, 7))
    n = int(rng.integers(d + 5, 101))
    offsets = 10.0 ** rng.uniform(3, 8, d) * rng.choice([-1.0, 1.0], d)
    return rng.normal(size=(n, d)) * 10.0 ** rng.uniform(-1, 1, d) + offsets


ACCURACY_FAMILIES = {
    "polynomial": polynomial_design,
    "filip": filip_design,
    "collinear": collinear_design,
    "scales": scaled_design,
    "offsets": offset_design,
}


def accuracy_problem(rng: np.random.Generator, family: str, fit_intercept: bool, weighted: bool) -> tuple:
    """(X, y, w) of a family: y = X @ coef + intercept + noise, each column's part of the same order, an
    intercept from 1e-3 to 10 times the largest of them (the small ones are lost to x̄·coef by a careless
    intercept), noise of 0, 1e-8, 1e-3 or 1 of the signal's spread; w spread over 1e-2 to 1e2, or None."""
    X = ACCURACY_FAMILIES[family](rng, fit_intercept)
    n, d = X.shape
    spread = np.std(X, axis=0)
    coef = rng.normal(size=d) / np.where(spread > 0, spread, 1.0)
    signal = X @ coef
    intercept = rng.normal() * 10.0 ** rng.uniform(-3, 1) * np.max(np.abs(signal)) if fit_intercept else 0.0
    noise = rng.choice([0.0, 1e-8, 1e-3, 1.0]) * np.std(signal)
    y = signal + intercept + noise * rng.normal(size=n)
    w = 10.0 ** rng.uniform(-2, 2, n) if weighted else None
    return X, y, w


@st.composite
def accuracy_problems(draw, families: tuple = tuple(ACCURACY_FAMILIES)):
    """(family, X, y, w, fit_intercept): a drawn design of one of `families`, see `accuracy_problem`."""
    family = draw(st.sampled_from(families))
    fit_intercept, weighted = draw(st.booleans()), draw(st.booleans())
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return (family, *accuracy_problem(rng, family, fit_intercept, weighted), fit_intercept)


# The moments' honesty tests (issue 25): a full-batch fit of data at any offset, scale and noise, with or without
# l2, by SGD or Adam, against run_eagerly=True. `@given(**MOMENTS_FITS, ...)`.
MOMENTS_FITS = {
    "offset": st.sampled_from([0.0, 1.0, 1e3, 1e6, 1e9]),
    "scale": st.sampled_from([1e-3, 1.0, 1e3]),
    "noise": st.sampled_from([1e-6, 1e-2, 1.0]),
    "l2": st.sampled_from([0.0, 0.01]),
    "use_adam": st.booleans(),
}
