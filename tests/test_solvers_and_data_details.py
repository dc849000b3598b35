"""The details of the closed form and the data plumbing that a user sees: every error message word for
word, the dtypes that come back, and the exact values of small worked examples."""

import math
import re
import warnings
from fractions import Fraction

import numpy as np
import pytest

from tinygrad_lr import data, solvers


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


# ----- solvers: worked examples, exact to rounding -----
# x = 0, 1, 2, 3 and y = 1, 3, 5, 7: centred, sum(x²) = 5 and sum(x·y) = 10; uncentred, 14 and 34.
X4, Y4 = np.arange(4.0), np.array([1.0, 3.0, 5.0, 7.0])


@pytest.mark.parametrize(
    "l2, fit_intercept, coef, intercept",
    [
        (0.0, True, 2.0, 1.0),
        (0.5, True, 10 / 7, 4 - 1.5 * 10 / 7),  # penalty n·l2 = 2 added to sum(x²) = 5
        (2, True, 10 / 13, 4 - 1.5 * 10 / 13),
        (0.5, False, 34 / 16, 0.0),  # no centring: 34 / (14 + 2)
        (0.0, False, 34 / 14, 0.0),
    ],
)
def test_ridge_worked_example_one_target(l2, fit_intercept, coef, intercept):
    got_coef, got_intercept = solvers.ridge(X4, Y4, l2, fit_intercept=fit_intercept)
    np.testing.assert_allclose(got_coef, [coef], rtol=1e-13)
    assert got_intercept == pytest.approx(intercept, rel=1e-13, abs=1e-13)


def test_ols_and_ridge_fit_an_intercept_by_default():
    coef, intercept = solvers.ols(X4, Y4)
    np.testing.assert_allclose(coef, [2.0], rtol=1e-13)
    assert intercept == pytest.approx(1.0, rel=1e-13)
    coef, intercept = solvers.ridge(X4, Y4, 0.5)
    np.testing.assert_allclose(coef, [10 / 7], rtol=1e-13)
    assert intercept == pytest.approx(13 / 7, rel=1e-13)


def test_ridge_worked_example_two_targets_shares_the_mean_over_all_entries():
    Y = np.column_stack([Y4, np.full(4, 10.0)])  # the second target is constant
    coef, intercept = solvers.ols(X4, Y)
    np.testing.assert_allclose(coef, [[2.0, 0.0]], rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(intercept, [1.0, 10.0], rtol=1e-13)
    coef, intercept = solvers.ridge(X4, Y, 0.5)  # penalty n·k·l2 = 4
    np.testing.assert_allclose(coef, [[10 / 9, 0.0]], rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(intercept, [4 - 1.5 * 10 / 9, 10.0], rtol=1e-13)
    coef, intercept = solvers.ols(X4, Y, fit_intercept=False)
    np.testing.assert_allclose(coef, [[34 / 14, 60 / 14]], rtol=1e-13)
    assert intercept.shape == (2,) and intercept.dtype == np.float64
    np.testing.assert_array_equal(intercept, [0.0, 0.0])


@pytest.mark.parametrize("tiny", [3 * 2.0**-52, 2.0**-50, 1e-12])
def test_ols_keeps_a_tiny_singular_value_that_lstsq_keeps(tiny):
    # numpy.linalg.lstsq drops singular values below eps·max(n, d)·σ_max (here 2·eps); ols solves
    # the problem as given, so one just above that cutoff still gets its exact coefficient 1/tiny
    X = np.diag([1.0, tiny])
    coef, intercept = solvers.ols(X, [1.0, 1.0], fit_intercept=False)
    np.testing.assert_allclose(coef, [1.0, 1 / tiny], rtol=1e-12)
    np.testing.assert_allclose(coef, np.linalg.lstsq(X, [1.0, 1.0], rcond=None)[0], rtol=1e-12)
    assert intercept == 0.0


# ----- solvers: the learning-rate bound and the condition number, worked out -----
# for x = 0, 1, 2, 3 with a bias, H = (2/4)·[[14, 6], [6, 4]] = [[7, 3], [3, 2]]: λ = (9 ± sqrt(61)) / 2


def test_stable_learning_rate_worked_example():
    assert solvers.stable_learning_rate(X4) == pytest.approx(4 / (9 + math.sqrt(61)), rel=1e-13)
    # l2 = 0.5 adds 2·l2 = 1 to the weight's diagonal only: [[8, 3], [3, 2]], λ_max = 5 + sqrt(18)
    assert solvers.stable_learning_rate(X4, l2=0.5) == pytest.approx(2 / (5 + math.sqrt(18)), rel=1e-13)
    # without a bias H = 2·mean(x²) = 7
    assert solvers.stable_learning_rate(X4, fit_intercept=False) == pytest.approx(2 / 7, rel=1e-13)


def test_stable_learning_rate_of_a_constant_feature_counts_the_bias_by_default():
    # x = 1: with the bias, A = [1, 1] and H = 2·[[1, 1], [1, 1]] has λ_max = 4; without, H = 2
    assert solvers.stable_learning_rate(np.ones(4)) == pytest.approx(0.5, rel=1e-13)
    assert solvers.stable_learning_rate(np.ones(4), fit_intercept=False) == pytest.approx(1.0, rel=1e-13)
    # one sample of 1 among zeros, no bias: H = 2·mean(x²) = 0.5, so the bound is exactly 4
    assert solvers.stable_learning_rate([1.0, 0.0, 0.0, 0.0], fit_intercept=False) == 4.0


def test_hessian_condition_number_worked_example():
    expected = (9 + math.sqrt(61)) / (9 - math.sqrt(61))
    assert solvers.hessian_condition_number(X4) == pytest.approx(expected, rel=1e-12)
    expected_with_l2 = (10 + math.sqrt(72)) / (10 - math.sqrt(72))  # [[8, 3], [3, 2]]
    assert solvers.hessian_condition_number(X4, l2=0.5) == pytest.approx(expected_with_l2, rel=1e-12)
    assert solvers.hessian_condition_number(X4, fit_intercept=False) == 1.0  # one parameter
    assert solvers.hessian_condition_number(np.eye(3), fit_intercept=False) == 1.0
    # the default is l2 = 0 and a bias: a constant feature is the bias again, singular
    assert solvers.hessian_condition_number(np.ones(4)) == math.inf


@pytest.mark.parametrize("tiny", [2.0**-53, 2.0**-52, 2.0**-51, 3 * 2.0**-52, 2.0**-50, 1e-12])
def test_hessian_is_singular_exactly_when_matrix_rank_says_so(tiny):
    # X = diag(1, tiny): the Hessian's eigenvalues are in the ratio 1 : tiny²; tiny is rounding noise
    # (the Hessian singular) when numpy.linalg.matrix_rank, with its tolerance eps·max(n, d)·σ_max
    # (here 2·eps = 2**-51, that value included), calls X rank-deficient
    X = np.diag([1.0, tiny])
    condition_number = solvers.hessian_condition_number(X, fit_intercept=False)
    if np.linalg.matrix_rank(X) < 2:
        assert condition_number == math.inf
    else:
        assert condition_number == pytest.approx(tiny**-2, rel=1e-12)
    assert solvers.stable_learning_rate(X, fit_intercept=False) == pytest.approx(2.0, rel=1e-13)  # 2 / (2·1/2)


def test_bounds_beyond_float64_are_returned_without_warnings_or_floating_point_errors():
    x = np.arange(1.0, 51.0)
    X = np.column_stack([x, 2 * x])
    with warnings.catch_warnings(), np.errstate(all="raise"):
        warnings.simplefilter("error")
        assert solvers.stable_learning_rate(1e200 * x, fit_intercept=False) == 0.0  # ~1e-403 underflows
        assert solvers.stable_learning_rate(1e-200 * x, fit_intercept=False) == math.inf  # ~1e397 overflows
        assert solvers.stable_learning_rate(np.zeros((4, 2))) == 1.0  # only the bias moves: H = 2, bound 2/2
        assert solvers.stable_learning_rate(np.zeros(4), fit_intercept=False) == math.inf  # a zero Hessian
        assert solvers.hessian_condition_number(X) == math.inf  # rank 2 of 3 parameters
        assert solvers.hessian_condition_number(X, fit_intercept=False) == math.inf  # rank 1 of 2
        assert solvers.hessian_condition_number(np.zeros(4), fit_intercept=False) == math.inf
        assert math.isfinite(solvers.hessian_condition_number(X4))
        solvers.ols(X4, Y4)
        solvers.ridge(X, x, 0.1)


# ----- solvers: every message, whole -----

SOLVER_ERRORS = [
    (
        (np.ones((3, 2, 1)), np.ones(3)),
        "X must be 1-D (n samples of one feature) or 2-D (n samples, d features); got shape (3, 2, 1)",
    ),
    (
        (np.ones((3, 1)), np.ones((3, 1, 1))),
        "y must be 1-D (n targets) or 2-D (n samples, k targets); got shape (3, 1, 1)",
    ),
    (
        (np.ones((3, 1)), np.ones(2)),
        "X has 3 samples but y has 2; they must describe the same samples (X has shape (3, 1), y has shape (2,))",
    ),
    ((np.ones((0, 1)), np.ones(0)), "no samples (X has shape (0, 1)); at least one is needed"),
    ((np.ones((3, 0)), np.ones(3)), "X has no features (shape (3, 0)); at least one column is needed"),
    ((np.ones((3, 1)), np.ones((3, 0))), "y has no target columns (shape (3, 0)); at least one is needed"),
    (([["a"]], [1.0]), "X must hold real numbers, got an array of dtype <U1"),
    (([[1.0]], ["a"]), "y must hold real numbers, got an array of dtype <U1"),
]


@pytest.mark.parametrize("function", ["ols", "ridge"])
@pytest.mark.parametrize("arguments, message", SOLVER_ERRORS)
def test_ols_and_ridge_messages(function, arguments, message):
    call = solvers.ols if function == "ols" else lambda X, y: solvers.ridge(X, y, 0.5)
    with raises_exactly(ValueError, f"{function}: {message}"):
        call(*arguments)


@pytest.mark.parametrize("function", ["stable_learning_rate", "hessian_condition_number"])
def test_bound_messages_name_the_function(function):
    call = getattr(solvers, function)
    with raises_exactly(ValueError, f"{function}: no samples (X has shape (0,)); at least one is needed"):
        call([])
    with raises_exactly(ValueError, f"{function}: l2 must be a finite number >= 0, got -0.5"):
        call(X4, -0.5)


@pytest.mark.parametrize("function", ["ridge", "stable_learning_rate", "hessian_condition_number"])
def test_l2_is_one_number_not_an_array_of_one(function):
    call = (
        (lambda l2: solvers.ridge(X4, Y4, l2)) if function == "ridge" else lambda l2: getattr(solvers, function)(X4, l2)
    )
    with raises_exactly(ValueError, f"{function}: l2 must be a finite number >= 0, got array([0.5])"):
        call(np.array([0.5]))
    with raises_exactly(ValueError, f"{function}: l2 must be a finite number >= 0, got array([[0.5]])"):
        call(np.array([[0.5]]))
    call(np.array(0.5))  # a 0-d array is one number
    call(0.5)
