"""The details of the closed form and the data plumbing that a user sees: every error message word for
word, the dtypes that come back, and the exact values of small worked examples."""

import re
from fractions import Fraction

import numpy as np
import pytest

from tinygrad_lr import data


def write(tmp_path, text, name="data.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8", newline="")
    return path


def raises_exactly(error, message):
    """pytest.raises for an error whose whole message is `message`."""
    return pytest.raises(error, match=f"^{re.escape(message)}$")


# ----- load_csv: every message, whole -----

BAD_FILES = {
    "not a number": ("x,y\n1,2\n3,abc\n", "line 3, column 'y': 'abc' is not a number"),
    "empty cell": ("x,y\n1,2\n,4\n", "line 3, column 'x': empty cell; every cell must hold a number"),
    "nan": (
        "x,y\n1,nan\n",
        "line 2, column 'y': 'nan' is not a finite number; remove or fill in missing values",
    ),
    "-inf": (
        "x,y\n1,2\n-inf,4\n",
        "line 3, column 'x': '-inf' is not a finite number; remove or fill in missing values",
    ),
    "overflow": ("x,y\n1e999,2\n", "line 2, column 'x': '1e999' is too large for a float64 (not finite)"),
    "short row": ("x,y\n1,2\n3\n", "line 3: expected 2 cells (one per header column), found 1"),
    "no data": ("x,y\n", "no data rows after the header on line 1"),
    "no data after blank lines": ("\nx,y\n\n", "no data rows after the header on line 2"),
    "empty file": ("", "the file is empty; expected a header row of column names, then rows of numbers"),
    "duplicates": ("x,x,y,z,z\n1,2,3,4,5\n", "line 1: duplicate column names ['x', 'z']; names must be unique"),
    "unnamed column": ("x, ,y\n1,2,3\n", "line 1: column 2 of the header has no name"),
    "only the target": ("y\n1\n", "the only column is the target 'y'; there are no feature columns"),
    "numbers for a header": (
        "1,2\n3,4\n",
        "no column named 'y' for the target; available columns: ['1', '2'] "
        "(line 1 holds numbers: the file needs a header row of names)",
    ),
    "header of names and numbers": (
        "x,2\n3,4\n",
        "no column named 'y' for the target; available columns: ['x', '2']",
    ),
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_load_csv_error_is_the_file_then_where_then_what(tmp_path, case):
    text, message = BAD_FILES[case]
    path = write(tmp_path, text, name="bad.csv")
    with raises_exactly(ValueError, f"{path}: {message}"):
        data.load_csv(path, "y")


def test_load_csv_undecodable_file_names_the_line_and_the_reason(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"x,y\n1,2\n3,\xff\n")
    with raises_exactly(ValueError, f"{path}: line 3: the file is not UTF-8 text (invalid start byte)"):
        data.load_csv(path, "y")


def test_load_csv_unreadable_csv_names_the_line(tmp_path):
    path = write(tmp_path, "x,y\n1,2\n3," + "9" * 131073 + "\n", name="huge.csv")
    with raises_exactly(ValueError, f"{path}: line 3: not readable as CSV (field larger than field limit (131072))"):
        data.load_csv(path, "y")


FEATURE_ERRORS = {
    "unknown": (
        ["q", "x", "r"],
        ValueError,
        "{path}: no column named 'q', 'r' (asked for as a feature); available columns: ['x', 'y', 'z']",
    ),
    "one unknown name": (
        "xz",
        ValueError,
        "{path}: no column named 'xz' (asked for as a feature); available columns: ['x', 'y', 'z']",
    ),
    "the target": (["x", "y"], ValueError, "{path}: column 'y' is the target and cannot also be a feature"),
    "repeated": (["x", "z", "x", "z", "x"], ValueError, "{path}: features ['x', 'z'] are listed more than once"),
    "empty": (
        [],
        ValueError,
        "{path}: features is empty; name at least one column, or pass None for all but the target",
    ),
    "not a string": (["x", 1], TypeError, "load_csv: feature names must be str, got int"),
}


@pytest.mark.parametrize("case", FEATURE_ERRORS)
def test_load_csv_features_are_checked_against_the_header(tmp_path, case):
    features, error, message = FEATURE_ERRORS[case]
    path = write(tmp_path, "x,y,z\n1,2,3\n")
    with raises_exactly(error, message.format(path=path)):
        data.load_csv(path, "y", features)


def test_load_csv_one_string_is_one_feature_name_not_its_letters(tmp_path):
    X, _, names = data.load_csv(write(tmp_path, "area,price,rooms\n50,100,2\n"), "price", features="area")
    assert names == ["area"]
    np.testing.assert_array_equal(X, [[50.0]])


@pytest.mark.parametrize("target, kind", [(3, "int"), (None, "NoneType"), (["y"], "list")])
def test_load_csv_target_must_be_a_name(tmp_path, target, kind):
    with raises_exactly(TypeError, f"load_csv: target must be a column name (str), got {kind}"):
        data.load_csv(write(tmp_path, "x,y\n1,2\n"), target)


def test_load_csv_unknown_target_lists_the_columns(tmp_path):
    path = write(tmp_path, "x,y,z\n1,2,3\n")
    with raises_exactly(ValueError, f"{path}: no column named 'w' for the target; available columns: ['x', 'y', 'z']"):
        data.load_csv(path, "w")


def test_load_csv_reads_files_with_old_mac_line_ends(tmp_path):
    path = tmp_path / "mac.csv"
    path.write_bytes(b"x,y\r1,2\r3,4\r")
    X, y, names = data.load_csv(path, "y")
    assert names == ["x"]
    np.testing.assert_array_equal(X, [[1.0], [3.0]])
    np.testing.assert_array_equal(y, [2.0, 4.0])
    path.write_bytes(b"x,y\r1,2\r3,z\r")
    with raises_exactly(ValueError, f"{path}: line 3, column 'y': 'z' is not a number"):
        data.load_csv(path, "y")


def test_load_csv_keeps_a_line_end_inside_a_quoted_column_name_as_written(tmp_path):
    path = tmp_path / "quoted.csv"
    path.write_bytes(b'"price\r\nin USD",y\r\n1,2\r\n')
    _, _, names = data.load_csv(path, "y")
    assert names == ["price\r\nin USD"]


# ----- load_csv: a cell that is not a number is quoted, cut after 37 characters when longer than 40 -----


@pytest.mark.parametrize(
    "cell, shown",
    [
        ("x" * 39, "x" * 39),
        ("x" * 40, "x" * 40),
        ("x" * 41, "x" * 37 + "..."),
        ("abcdefghij" * 5, "abcdefghij" * 3 + "abcdefg..."),
    ],
)
def test_load_csv_long_bad_cell_is_shortened_to_40_characters(tmp_path, cell, shown):
    path = write(tmp_path, f"x,y\n1,{cell}\n")
    with raises_exactly(ValueError, f"{path}: line 2, column 'y': {shown!r} is not a number"):
        data.load_csv(path, "y")


# ----- validation_split and batch_indices -----


@pytest.mark.parametrize(
    "x, y, message",
    [
        (np.arange(10), np.arange(9), "x has shape (10,) and y has shape (9,)"),
        (np.float64(3.0), np.arange(1), "x has shape () and y has shape (1,)"),
        (np.arange(1), np.float64(3.0), "x has shape (1,) and y has shape ()"),
    ],
)
def test_validation_split_x_and_y_must_hold_the_same_samples(x, y, message):
    expected = f"validation_split: {message}; they must hold the same number of samples along the first axis"
    with raises_exactly(ValueError, expected):
        data.validation_split(x, y, 0.2)


@pytest.mark.parametrize(
    "n, fraction, message",
    [
        (3, 0.7, "3 samples with fraction=0.7 leave no training sample; use a smaller fraction or more data"),
        (
            5,
            1e-17,
            "5 samples with fraction=1e-17 leave no validation sample; "
            "use a larger fraction, more data, or fraction=0 for no validation",
        ),
    ],
)
def test_validation_split_empty_part_message(n, fraction, message):
    with raises_exactly(ValueError, f"validation_split: {message}"):
        data.validation_split(np.arange(n), np.arange(n), fraction)


@pytest.mark.parametrize("fraction", [1.0, -0.5, "0.2"])
def test_validation_split_fraction_message(fraction):
    message = f"validation_split: fraction must be a finite number >= 0 and < 1, got {fraction!r}"
    with raises_exactly(ValueError, message):
        data.validation_split(np.arange(10), np.arange(10), fraction)


def test_validation_split_parts_are_views_of_the_inputs():
    x, y = np.arange(10.0), np.arange(10.0) * 2
    (x_train, y_train), (x_val, y_val) = data.validation_split(x, y, 0.2)
    assert all(np.shares_memory(part, whole) for part, whole in [(x_train, x), (y_train, y), (x_val, x), (y_val, y)])
    np.testing.assert_array_equal(x_val, [8.0, 9.0])


def test_validation_split_accepts_lists():
    (x_train, y_train), (x_val, y_val) = data.validation_split([[1, 2], [3, 4]], [5, 6], 0.5)
    assert [part.tolist() for part in (x_train, y_train, x_val, y_val)] == [[[1, 2]], [5], [[3, 4]], [6]]


@pytest.mark.parametrize(
    "n, batch_size, message",
    [
        (-1, 2, "n must be an integer >= 0, got -1"),
        (True, 2, "n must be an integer >= 0, got True"),
        (3.0, 2, "n must be an integer >= 0, got 3.0"),
        (3, 0, "batch_size must be an integer >= 1, got 0"),
        (3, 2.0, "batch_size must be an integer >= 1, got 2.0"),
    ],
)
def test_batch_indices_messages(n, batch_size, message):
    with raises_exactly(ValueError, f"batch_indices: {message}"):
        data.batch_indices(n, batch_size)


def test_batch_indices_accepts_numpy_integers_and_zero_samples():
    assert data.batch_indices(np.int64(5), np.int32(2)) == [slice(0, 2), slice(2, 4), slice(4, 5)]
    assert data.batch_indices(0, 3) == []
    assert data.batch_indices(0, 3, shuffle=True) == []


def test_batch_indices_shuffle_draws_one_permutation_from_the_seed():
    order = np.random.default_rng(7).permutation(10)
    batches = data.batch_indices(10, 4, shuffle=True, rng=7)
    assert [batch.tolist() for batch in batches] == [order[:4].tolist(), order[4:8].tolist(), order[8:].tolist()]
    generator_batches = data.batch_indices(10, 4, shuffle=True, rng=np.random.default_rng(7))
    assert [batch.tolist() for batch in generator_batches] == [batch.tolist() for batch in batches]


def test_batch_indices_shuffle_without_a_seed_is_fresh_each_time():
    draws = {tuple(np.concatenate(data.batch_indices(30, 7, shuffle=True)).tolist()) for _ in range(5)}
    assert len(draws) > 1


# ----- Standardizer -----


def test_standardizer_is_unfitted_until_fit():
    scaler = data.Standardizer()
    assert scaler.mean is None and scaler.scale is None


@pytest.mark.parametrize("method", ["transform", "inverse_transform"])
def test_standardizer_used_before_fit_says_to_fit_first(method):
    with raises_exactly(ValueError, f"Standardizer.{method}: call fit(X) first"):
        getattr(data.Standardizer(), method)([[1.0]])


@pytest.mark.parametrize("method", ["transform", "inverse_transform"])
def test_standardizer_wrong_width_names_both_widths(method):
    scaler = data.Standardizer().fit(np.ones((3, 2)))
    message = f"Standardizer.{method}: X has 3 feature(s) (shape (4, 3)) but the standardizer was fitted on 2"
    with raises_exactly(ValueError, message):
        getattr(scaler, method)(np.ones((4, 3)))
    message = f"Standardizer.{method}: X has 1 feature(s) (shape (4,)) but the standardizer was fitted on 2"
    with raises_exactly(ValueError, message):
        getattr(scaler, method)(np.ones(4))


@pytest.mark.parametrize("method", ["fit", "transform", "inverse_transform"])
def test_standardizer_input_errors_name_the_method(method):
    scaler = data.Standardizer().fit(np.ones((3, 1)))
    with raises_exactly(ValueError, f"Standardizer.{method}: X must hold real numbers, got an array of dtype <U1"):
        getattr(scaler, method)(["a", "b"])
    message = (
        f"Standardizer.{method}: X (shape (2,)) has non-finite values: the first is nan at index (1,); "
        "remove or impute such samples first"
    )
    with raises_exactly(ValueError, message):
        getattr(scaler, method)([1.0, np.nan])
    with raises_exactly(ValueError, f"Standardizer.{method}: X must have shape (n,) or (n, d), got (2, 1, 1)"):
        getattr(scaler, method)(np.ones((2, 1, 1)))


def test_standardizer_fit_needs_a_sample():
    with raises_exactly(ValueError, "Standardizer.fit: X has no samples; it needs at least one row"):
        data.Standardizer().fit(np.ones((0, 2)))


@pytest.mark.parametrize("X", [[[1e308], [-1e308]], [1e308, 1e308], [[1.0, -1e308], [2.0, 1e308]]])
def test_standardizer_fit_refuses_a_variance_or_mean_beyond_float64(X):
    message = "Standardizer.fit: values too large to standardise in float64 (the variance overflows)"
    with np.errstate(all="ignore"), raises_exactly(ValueError, message):
        data.Standardizer().fit(X)


def test_standardizer_float32_stays_float32_and_integers_become_float64():
    X32 = np.array([[1.0, 2.0], [3.0, 6.0]], dtype=np.float32)
    scaler = data.Standardizer().fit(X32)
    assert scaler.mean.dtype == scaler.scale.dtype == np.float64  # statistics in float64 whatever the data
    Z = scaler.transform(X32)
    assert Z.dtype == np.float32
    np.testing.assert_array_equal(Z, [[-1.0, -1.0], [1.0, 1.0]])
    assert scaler.inverse_transform(Z).dtype == np.float32
    assert scaler.transform(np.array([[2.0, 4.0]], dtype=np.float16)).dtype == np.float16
    # integers (and booleans) are values, not truncated: 1 and 2 standardise to -1 and 1, 1.5 to 0
    integer_scaler = data.Standardizer().fit(np.array([1, 2, 1, 2]))
    Z = integer_scaler.transform(np.array([1, 2, 3]))
    assert Z.dtype == np.float64
    np.testing.assert_array_equal(Z, [-1.0, 1.0, 3.0])
    back = integer_scaler.inverse_transform(np.array([0, 1]))
    assert back.dtype == np.float64
    np.testing.assert_array_equal(back, [1.5, 2.0])
    np.testing.assert_array_equal(data.Standardizer().fit([True, False]).transform([True, False]), [1.0, -1.0])


def test_standardizer_statistics_of_float32_data_are_computed_in_float64():
    # float32 sums of 1e8 + small values lose the small ones; the float64 mean keeps them
    X = np.array([1e8, 1.0, 1.0, 1.0], dtype=np.float32)
    scaler = data.Standardizer().fit(X)
    np.testing.assert_array_equal(scaler.mean, [np.mean(X.astype(np.float64))])
    np.testing.assert_array_equal(scaler.scale, [np.std(X.astype(np.float64))])


# ----- unscale_linear -----


def test_unscale_linear_messages():
    x_scaler = data.Standardizer().fit(np.ones((3, 2)))
    cases = [
        ((np.ones((2, 2, 2)), 0.0, x_scaler), "coef must have shape (d,) or (d, k), got (2, 2, 2)"),
        ((np.ones(3), 0.0, x_scaler), "coef has 3 row(s) (shape (3,)) but x_scaler knows 2 feature(s)"),
        ((np.ones((2, 3)), 0.0, x_scaler), "intercept has 1 value(s) but coef has 3 output(s) (shape (2, 3))"),
        (
            (np.ones((2, 3)), np.zeros(3), x_scaler, data.Standardizer().fit(np.ones((3, 2)))),
            "y_scaler knows 2 target(s) but coef has 3 output(s)",
        ),
        ((np.ones(2), 0.0, data.Standardizer()), "the scalers must be fitted first"),
        ((np.ones(2), 0.0, x_scaler, data.Standardizer()), "the scalers must be fitted first"),
    ]
    for arguments, message in cases:
        with raises_exactly(ValueError, f"unscale_linear: {message}"):
            data.unscale_linear(*arguments)


def test_unscale_linear_returns_float64_and_the_intercept_as_k_values():
    x_scaler = data.Standardizer().fit([8.0, 12.0])  # mean 10, std 2
    # exact rationals and integers are read as numbers and come back as float64
    coef, intercept = data.unscale_linear([Fraction(3)], Fraction(1), x_scaler)
    assert coef.dtype == np.float64 and type(intercept) is float
    np.testing.assert_array_equal(coef, [1.5])
    assert intercept == -14.0
    coef, intercept = data.unscale_linear(np.array([[Fraction(3), 4]], dtype=object), [[Fraction(1), 2]], x_scaler)
    assert coef.dtype == np.float64 and intercept.dtype == np.float64
    np.testing.assert_array_equal(coef, [[1.5, 2.0]])
    np.testing.assert_array_equal(intercept, [-14.0, -18.0])  # a (1, k) intercept comes back as (k,)
