"""The bundled data sets: the Boston split is Keras', the CSV is the one its note describes, make_line's lines."""

import hashlib
import importlib.resources
import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinygrad_lr import datasets

# ----- Boston housing -----


def test_boston_split_has_keras_shapes_and_dtype():
    (x_train, y_train), (x_test, y_test) = datasets.load_boston_housing()
    assert x_train.shape == (404, 13) and y_train.shape == (404,)
    assert x_test.shape == (102, 13) and y_test.shape == (102,)
    for array in (x_train, y_train, x_test, y_test):
        assert array.dtype == np.float64


def test_boston_first_training_row_matches_keras():
    (x_train, y_train), _ = datasets.load_boston_housing()
    expected = [1.23247, 0, 8.14, 0, 0.538, 6.142, 91.7, 3.9769, 4, 307, 21, 396.9, 18.72]
    np.testing.assert_array_equal(x_train[0], expected)
    assert y_train[0] == 15.2


def test_boston_rooms_least_squares_is_the_classic_line():
    (x_train, y_train), _ = datasets.load_boston_housing()
    rm = x_train[:, datasets.BOSTON_FEATURES.index("rm")]
    assert datasets.BOSTON_FEATURES.index("rm") == 5
    slope, intercept = np.polyfit(rm, y_train, 1)
    assert slope == pytest.approx(8.8431, abs=1e-3)
    assert intercept == pytest.approx(-33.0257, abs=1e-3)


def test_boston_split_is_a_permutation_of_all_506_rows():
    (x_train, y_train), (x_test, y_test) = datasets.load_boston_housing()
    (x_all, y_all), (x_none, _) = datasets.load_boston_housing(test_split=0.0)
    assert x_all.shape == (506, 13) and x_none.shape == (0, 13)
    # the default split is the first 404 rows of the same shuffle, then the rest
    np.testing.assert_array_equal(np.concatenate([x_train, x_test]), x_all)
    np.testing.assert_array_equal(np.concatenate([y_train, y_test]), y_all)


def test_boston_split_follows_test_split_and_seed():
    (x_train, _), (x_test, _) = datasets.load_boston_housing(test_split=0.5, seed=0)
    assert len(x_train) == 253 and len(x_test) == 253
    (x_default, _), _ = datasets.load_boston_housing()
    (x_other, _), _ = datasets.load_boston_housing(seed=1)
    assert not np.array_equal(x_default, x_other)


def test_boston_callers_cannot_corrupt_the_cache():
    (x_train, y_train), (x_test, _) = datasets.load_boston_housing()
    x_train[:] = -1.0
    y_train[:] = -1.0
    x_test[:] = -1.0
    (x_again, y_again), _ = datasets.load_boston_housing()
    assert x_again[0, 0] == 1.23247 and y_again[0] == 15.2


@pytest.mark.parametrize("test_split", [-0.1, 1.0, 1.5, float("nan"), "0.2", None])
def test_boston_rejects_test_split_outside_zero_to_one(test_split):
    with pytest.raises(ValueError, match="test_split"):
        datasets.load_boston_housing(test_split=test_split)


def test_boston_names_columns_in_file_order():
    assert datasets.BOSTON_FEATURES == (
        "crim", "zn", "indus", "chas", "nox", "rm", "age", "dis", "rad", "tax", "ptratio", "black", "lstat",
    )  # fmt: skip
    assert datasets.BOSTON_TARGET == "medv"


def test_bundled_csv_matches_the_sha256_in_its_provenance_note():
    package = importlib.resources.files("tinygrad_lr")
    note = package.joinpath("boston_housing.md").read_text(encoding="utf-8")
    recorded = re.search(r"sha256:\s*([0-9a-f]{64})", note).group(1)
    actual = hashlib.sha256(package.joinpath("boston_housing.csv").read_bytes()).hexdigest()
    assert actual == recorded


def test_boston_loader_never_reads_the_shared_folder():
    source = importlib.resources.files("tinygrad_lr").joinpath("datasets.py").read_text(encoding="utf-8")
    assert "shared" not in source


# ----- make_line -----


def test_make_line_shapes_and_dtype():
    x, y = datasets.make_line()
    assert x.shape == (100,) and y.shape == (100,)
    assert x.dtype == np.float64 and y.dtype == np.float64
    x, y = datasets.make_line(n=1)
    assert x.shape == (1,) and y.shape == (1,)


def test_make_line_x_is_evenly_spaced_over_x_range():
    x, _ = datasets.make_line(n=11, x_range=(-5.0, 5.0), seed=0)
    np.testing.assert_allclose(x, np.arange(-5.0, 6.0))
    np.testing.assert_allclose(np.diff(x), 1.0)


def test_make_line_with_zero_noise_is_the_exact_line():
    x, y = datasets.make_line(n=50, slope=-2.0, intercept=7.0, noise=0.0, seed=3)
    np.testing.assert_array_equal(y, -2.0 * x + 7.0)


def test_make_line_same_seed_same_data_other_seed_other_noise():
    _, y1 = datasets.make_line(seed=42)
    _, y2 = datasets.make_line(seed=42)
    _, y3 = datasets.make_line(seed=43)
    np.testing.assert_array_equal(y1, y2)
    assert not np.array_equal(y1, y3)


def test_make_line_noise_is_standard_normal_times_noise():
    x, y = datasets.make_line(n=5, slope=1.0, intercept=0.0, noise=2.0, seed=7)
    np.testing.assert_allclose(y - x, 2.0 * np.random.default_rng(7).standard_normal(5))


@given(st.integers(1, 200), st.floats(-10, 10), st.floats(-10, 10), st.integers(0, 2**32 - 1))
def test_make_line_residuals_are_the_noise_for_any_line(n, slope, intercept, seed):
    x, y = datasets.make_line(n=n, slope=slope, intercept=intercept, noise=0.5, seed=seed)
    assert x.shape == y.shape == (n,)
    np.testing.assert_allclose(
        y - (slope * x + intercept), 0.5 * np.random.default_rng(seed).standard_normal(n), atol=1e-12
    )


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"n": 0}, "n must be an integer >= 1"),
        ({"n": 2.5}, "n must be an integer"),
        ({"n": True}, "n must be an integer"),
        ({"noise": -1.0}, "noise"),
        ({"noise": float("nan")}, "noise must be a finite number"),
        ({"slope": float("inf")}, "slope must be a finite number"),
        ({"intercept": "2"}, "intercept must be a finite number"),
        ({"x_range": (0.0, float("inf"))}, "x_range high"),
        ({"x_range": (0.0,)}, "x_range must be a pair"),
    ],
)
def test_make_line_rejects_bad_arguments_with_a_clear_message(kwargs, words):
    with pytest.raises(ValueError, match=re.escape(words)):
        datasets.make_line(**kwargs)
