"""pandas DataFrames and Series wherever arrays are: checks.as_real_array, the solvers, fit/predict/evaluate."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import tinygrad_lr as tl
from tests.strategies import numeric_frames, numeric_series
from tinygrad_lr.checks import as_real_array
from tinygrad_lr.estimators import LinearRegressor


def _as_array(frame):
    """What a frame of numbers means: its values as float64, row-major like any array the caller would pass."""
    return np.ascontiguousarray(frame.to_numpy(dtype=np.float64))


# ----- conversion -----


@given(numeric_frames())
def test_a_numeric_frame_is_its_float64_values(frame):
    array = as_real_array("x", frame)
    assert array.dtype == np.float64 and array.shape == frame.shape
    np.testing.assert_array_equal(array, _as_array(frame))
    column = frame.iloc[:, 0]
    np.testing.assert_array_equal(as_real_array("y", column), _as_array(column))


def test_booleans_are_0_and_1_and_nullable_columns_without_missing_values_are_numbers():
    frame = pd.DataFrame(
        {
            "flag": [True, False, True],
            "count": pd.array([1, 2, 3], dtype="Int64"),
            "share": pd.array([0.5, 0.25, 1.0], dtype="Float64"),
            "maybe": pd.array([False, True, True], dtype="boolean"),
            "mixed": pd.Series([1, 2.5, True], dtype=object),
        }
    )
    expected = [[1, 1, 0.5, 0, 1], [0, 2, 0.25, 1, 2.5], [1, 3, 1.0, 1, 1]]
    np.testing.assert_array_equal(as_real_array("x", frame), expected)


def test_a_float32_frame_keeps_the_callers_dtype():
    frame = pd.DataFrame({"a": np.array([1.5, 2.5], dtype=np.float32)})
    assert as_real_array("x", frame, np.float32).dtype == np.float32
    with pytest.raises(ValueError, match=r"values beyond float32"):
        as_real_array("x", pd.DataFrame({"a": [1e300]}), np.float32)


# ----- errors: the column and the first offending row, as a CSV cell's -----


@pytest.mark.parametrize(
    ("column", "message"),
    [
        (["1.5", "x", "y"], r"column 'b', row 0: '1.5' is not a number \(the column has dtype (str|object)\)"),
        ([1.5, "x", 2.0], r"column 'b', row 1: 'x' is not a number \(the column has dtype object\)"),
        (pd.to_datetime(["2020-01-01"] * 3), r"column 'b', row 0: 2020-01-01 00:00:00 is not a number"),
        (pd.Categorical([1, 2, 1]), r"column 'b' is categorical; encode it as numbers first"),
        ([1 + 2j, 1, 1], r"column 'b', row 0: \(1\+2j\) is not a number \(the column has dtype complex128\)"),
    ],
)
def test_a_column_that_is_not_numbers_names_the_column_and_row(column, message):
    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": column})
    with pytest.raises(ValueError, match="ols: X: " + message):
        tl.solvers.ols(frame, [1.0, 2.0, 3.0])
    model = _model(2)
    with pytest.raises(TypeError, match="fit: x: " + message):  # fit's kind of error for non-numbers, as for arrays
        model.fit(frame, [1.0, 2.0, 3.0], verbose=0)
    with pytest.raises(TypeError, match="predict: x: " + message):
        model.predict(frame)
    with pytest.raises(TypeError, match="evaluate: x: " + message):
        model.evaluate(frame, [1.0, 2.0, 3.0])


def test_the_frame_error_reads_as_the_csv_error(tmp_path):
    path = tmp_path / "houses.csv"
    path.write_text("rooms,town,price\n6.5,1,20\n7.1,north,25\n")
    with pytest.raises(ValueError, match=r"houses.csv: line 3, column 'town': 'north' is not a number"):
        tl.data.load_csv(path, target="price")
    frame = pd.DataFrame({"rooms": [6.5, 7.1], "town": ["1", "north"]})
    with pytest.raises(ValueError, match=r"ols: X: column 'town', row 0: '1' is not a number"):
        tl.solvers.ols(frame, [20.0, 25.0])  # a string column is text, even where a cell reads as a number


@pytest.mark.parametrize(
    ("column", "shown"),
    [
        ([1.0, np.nan, 3.0], "nan"),
        (pd.array([1, None, 3], dtype="Int64"), "<NA>"),
        (pd.array([True, None, False], dtype="boolean"), "<NA>"),
        (np.array([1.0, None, 3.0], dtype=object), "None"),
    ],
)
def test_a_missing_value_names_its_column_and_row_and_index_label(column, shown):
    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": column}, index=["p", "q", "r"])
    with pytest.raises(ValueError, match=rf"fit: x: column 'b', row 1 \(index 'q'\): missing value \({shown}\)"):
        _model(2).fit(frame, [1.0, 2.0, 3.0], verbose=0)


def test_infinity_in_a_series_target_names_the_series_and_row():
    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0]})
    with pytest.raises(ValueError, match=r"fit: y \(Series 'price'\), row 2: inf is not a finite number"):
        _model(1).fit(frame, pd.Series([1.0, 2.0, np.inf], name="price"), verbose=0)
    with pytest.raises(ValueError, match=r"ridge: y, row 2: -inf is not a finite number"):
        tl.solvers.ridge(frame, pd.Series([1.0, 2.0, -np.inf]), 0.1)


def test_repeated_column_names_are_read_by_position():
    frame = pd.DataFrame([[1.0, 2.0], [3.0, "x"]], columns=["a", "a"])
    with pytest.raises(ValueError, match=r"column 'a', row 1: 'x' is not a number"):
        as_real_array("x", frame)


# ----- every boundary takes frames -----


def _model(features, seed=0):
    model = tl.nn.Sequential([tl.nn.Linear(features, 1, seed=seed, dtype=np.float64)])
    model.compile(loss="mse", optimizer=tl.optim.Adam(lr=0.01), metrics=["mae"], l2=0.01)
    return model


@st.composite
def frames_and_targets(draw):
    frame = draw(numeric_frames(min_rows=2))
    return frame, draw(numeric_series(len(frame), name="target"))


@given(frames_and_targets())
def test_the_solvers_give_for_a_frame_what_they_give_for_its_array(data):
    frame, target = data
    X, y = _as_array(frame), target.to_numpy()
    for got, expected in [
        (tl.solvers.ols(frame, target), tl.solvers.ols(X, y)),
        (tl.solvers.ridge(frame, target, 0.5), tl.solvers.ridge(X, y, 0.5)),
        (tl.solvers.ols(frame, frame.iloc[:, [0]]), tl.solvers.ols(X, X[:, [0]])),  # a 2-D target
    ]:
        np.testing.assert_array_equal(got[0], expected[0])
        np.testing.assert_array_equal(got[1], expected[1])
    assert tl.solvers.stable_learning_rate(frame, 0.1) == tl.solvers.stable_learning_rate(X, 0.1)
    assert tl.solvers.hessian_condition_number(frame) == tl.solvers.hessian_condition_number(X)


@given(frames_and_targets())
def test_fit_predict_and_evaluate_give_for_a_frame_what_they_give_for_its_array(data):
    frame, target = data
    X, y = _as_array(frame), target.to_numpy()
    on_frame, on_array = _model(frame.shape[1]), _model(frame.shape[1])
    history = on_frame.fit(frame, target, epochs=2, batch_size=4, seed=1, verbose=0, validation_split=0.0)
    expected = on_array.fit(X, y, epochs=2, batch_size=4, seed=1, verbose=0)
    assert history.history == expected.history
    for got, want in zip(on_frame.get_weights(), on_array.get_weights()):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(on_frame.predict(frame), on_array.predict(X))
    assert on_frame.evaluate(frame, target) == on_array.evaluate(X, y)
    assert on_frame.evaluate(frame, target.to_frame()) == on_array.evaluate(X, y[:, None])  # a one-column frame


# a frame's values come column-major: the estimator made other products of them than of the same
# values row-major (a coefficient -2.3e-11 instead of 0.0, found by CI's draw)
_COLUMN_MAJOR = (
    pd.DataFrame({"0": [0] * 7, "1": [0] * 7, "00": [0] * 7, "000": [0, 2, -6, 0, 0, 0, 4]}),
    pd.Series([2.0] * 7, name="target"),
)


@given(frames_and_targets())
@example(_COLUMN_MAJOR)
def test_the_estimator_keeps_the_column_names_of_any_numeric_frame(data):
    frame, target = data
    model = LinearRegressor(epochs=2, random_state=0).fit(frame, target)
    assert list(model.feature_names_in_) == list(frame.columns)
    assert model.n_features_in_ == frame.shape[1]
    same = LinearRegressor(epochs=2, random_state=0).fit(_as_array(frame), target)
    np.testing.assert_allclose(model.coef_, same.coef_, rtol=1e-12, atol=1e-300)
    assert model.predict(frame).shape == (len(frame),)
