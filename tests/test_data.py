"""The data plumbing: CSV errors that say where, Keras' validation split, batches, scaling and unscaling."""

import contextlib
import math
import re
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from tests.messages import raises_exactly
from tests.processes import child_env
from tests.strategies import feature_matrices, near_csv_text
from tinygrad_lr import data, sources


def write(tmp_path, text, name="data.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8", newline="")
    return path


GOOD = "a,b,price,c\n1,2,10,3\n4, 5 ,20,6.5\n\n-1e2,.5,30,+7\n\n"


def _pandas_parses() -> bool:
    """Whether pandas is installed in a version that load_csv lets parse (3.1 on: correctly rounded)."""
    try:
        import pandas
    except ImportError:
        return False
    return tuple(int(part) for part in re.findall(r"\d+", pandas.__version__)[:2]) >= (3, 1)


PARSERS = [
    "numpy",
    pytest.param("pandas", marks=pytest.mark.skipif(not _pandas_parses(), reason="needs pandas >= 3.1")),
]


@contextlib.contextmanager
def reading_with(parser):
    """load_csv's data rows read by `parser`: "careful" (the csv module and _NUMBER, cell by cell, as the reader
    always did), "numpy" (np.loadtxt where it can be sure: pandas fails to import) or "pandas" (its read_csv where
    it can be sure, even for small files)."""
    with pytest.MonkeyPatch.context() as patch:
        if parser == "careful":
            patch.setattr(data, "_c_parser_rows", lambda rows, n_columns: None)
        elif parser == "numpy":
            patch.setitem(sys.modules, "pandas", None)
        else:
            patch.setattr(data, "_PANDAS_FROM_BYTES", 0)
        yield


@pytest.fixture(params=PARSERS)
def parser(request):
    """Each C parser in turn: the test runs once with NumPy's, once with pandas'."""
    with reading_with(request.param):
        yield request.param


# ----- load_csv: good files -----


def test_load_csv_default_features_are_all_but_target_in_file_order(tmp_path, parser):
    X, y, names = data.load_csv(write(tmp_path, GOOD), "price")
    assert names == ["a", "b", "c"]
    assert X.dtype == np.float64 and y.dtype == np.float64
    np.testing.assert_array_equal(X, [[1, 2, 3], [4, 5, 6.5], [-100, 0.5, 7]])
    np.testing.assert_array_equal(y, [10, 20, 30])


def test_load_csv_explicit_features_come_in_the_given_order(tmp_path, parser):
    X, y, names = data.load_csv(write(tmp_path, GOOD), "price", features=["c", "a"])
    assert names == ["c", "a"]
    np.testing.assert_array_equal(X, [[3, 1], [6.5, 4], [7, -100]])
    np.testing.assert_array_equal(y, [10, 20, 30])


def test_load_csv_single_string_feature_is_one_column(tmp_path):
    X, _, names = data.load_csv(write(tmp_path, GOOD), "price", features="b")
    assert names == ["b"] and X.shape == (3, 1)


def test_load_csv_accepts_crlf_bom_quotes_and_spaces(tmp_path, parser):
    path = tmp_path / "win.csv"
    path.write_bytes(b'\xef\xbb\xbf x , "y"\r\n 1 , "2"\r\n3,4\r\n\r\n')
    X, y, names = data.load_csv(path, "y")
    assert names == ["x"]
    np.testing.assert_array_equal(X, [[1], [3]])
    np.testing.assert_array_equal(y, [2, 4])


def test_load_csv_does_not_read_columns_it_was_not_asked_for(tmp_path, parser):
    path = write(tmp_path, "id,x,y\nalpha,1,2\nbeta,3,4\n")
    X, _, _ = data.load_csv(path, "y", features=["x"])
    np.testing.assert_array_equal(X, [[1], [3]])
    with pytest.raises(ValueError, match=r"line 2, column 'id'"):
        data.load_csv(path, "y")


# ----- load_csv: each bad file names the file, the line and the column -----


@pytest.mark.parametrize(
    "text, words",
    [
        ("x,y\n1,2\n3,abc\n", ["line 3", "column 'y'", "'abc' is not a number"]),
        ("x,y\n1,2\n,4\n", ["line 3", "column 'x'", "empty cell"]),
        ("x,y\n1,2\n3, \n", ["line 3", "column 'y'", "empty cell"]),
        ("x,y\n1,nan\n", ["line 2", "column 'y'", "'nan' is not a finite number"]),
        ("x,y\n1,2\n-inf,4\n", ["line 3", "column 'x'", "'-inf' is not a finite number"]),
        ("x,y\n1,NaN\n", ["line 2", "column 'y'", "not a finite number"]),
        ("x,y\n1e999,2\n", ["line 2", "column 'x'", "not finite"]),
        ("x,y\n1_000,2\n", ["line 2", "column 'x'", "not a number"]),
        ("x,y\n1,2\n3\n", ["line 3", "expected 2 cells", "found 1"]),
        ("x,y\n1,2\n3,4,5\n", ["line 3", "expected 2 cells", "found 3"]),
        ("x,y\n1,2\n,,\n", ["line 3", "expected 2 cells", "found 3"]),
        ('x,y\n1,2\n3,"4\n5",6\n', ["line 3", "expected 2 cells", "found 3"]),
        ('x,y\n\n1,"4\n\n"\n7,x\n', ["line 6", "column 'y'", "'x' is not a number"]),
        ("x,y\n", ["no data rows", "line 1"]),
        ("x,y\n\n\n", ["no data rows"]),
        ("", ["empty", "header"]),
        ("\n \n", ["empty", "header"]),
        ("x,x,y\n1,2,3\n", ["line 1", "duplicate column names", "'x'"]),
        ("x,,y\n1,2,3\n", ["line 1", "column 2", "no name"]),
    ],
)
def test_load_csv_bad_content_names_file_line_and_column(tmp_path, text, words, parser):
    path = write(tmp_path, text, name="bad.csv")
    with pytest.raises(ValueError) as info:
        data.load_csv(path, "y")
    message = str(info.value)
    assert str(path) in message
    for word in words:
        assert word in message, f"{word!r} missing from {message!r}"


def test_load_csv_unknown_target_lists_the_available_columns(tmp_path):
    path = write(tmp_path, "x,y\n1,2\n")
    with pytest.raises(ValueError, match=re.escape("'price'")) as info:
        data.load_csv(path, "price")
    assert str(path) in str(info.value) and "available columns: ['x', 'y']" in str(info.value)


def test_load_csv_unknown_feature_lists_the_available_columns(tmp_path):
    path = write(tmp_path, "x,y\n1,2\n")
    with pytest.raises(ValueError, match=re.escape("available columns: ['x', 'y']")) as info:
        data.load_csv(path, "y", features=["x", "z"])
    assert "'z'" in str(info.value)


def test_load_csv_target_cannot_also_be_a_feature(tmp_path):
    with pytest.raises(ValueError, match="target and cannot also be a feature"):
        data.load_csv(write(tmp_path, "x,y\n1,2\n"), "y", features=["x", "y"])


def test_load_csv_rejects_repeated_or_no_features(tmp_path):
    path = write(tmp_path, "x,y\n1,2\n")
    with pytest.raises(ValueError, match="more than once"):
        data.load_csv(path, "y", features=["x", "x"])
    with pytest.raises(ValueError, match="features is empty"):
        data.load_csv(path, "y", features=[])
    with pytest.raises(ValueError, match="no feature columns"):
        data.load_csv(write(tmp_path, "y\n1\n", name="one.csv"), "y")


def test_load_csv_header_of_numbers_hints_at_the_missing_header(tmp_path):
    with pytest.raises(ValueError, match="needs a header row"):
        data.load_csv(write(tmp_path, "1,2\n3,4\n"), "y")


def test_load_csv_undecodable_bytes_name_file_and_line(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("x,y\n1,2\n3,4 café\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin1\.csv: line 3: the file is not UTF-8"):
        data.load_csv(path, "y")


def test_load_csv_missing_file_names_the_path(tmp_path):
    path = tmp_path / "nowhere.csv"
    with pytest.raises(FileNotFoundError, match=r"nowhere\.csv"):
        data.load_csv(path, "y")


@given(st.one_of(st.binary(max_size=200), near_csv_text.map(lambda s: s.encode("utf-8"))))
def test_load_csv_on_any_bytes_returns_or_raises_value_error(tmp_path_factory, content):
    path = tmp_path_factory.mktemp("fuzz") / "fuzz.csv"
    path.write_bytes(content)
    try:
        X, y, names = data.load_csv(path, "y")
    except ValueError:
        return
    assert X.dtype == np.float64 and X.shape == (len(y), len(names))
    assert np.all(np.isfinite(X)) and np.all(np.isfinite(y))


@given(near_csv_text)
def test_load_csv_on_near_csv_with_header_returns_or_raises_value_error(tmp_path_factory, body):
    path = tmp_path_factory.mktemp("fuzz") / "fuzz.csv"
    path.write_text("x,y\n" + body, encoding="utf-8", newline="")
    with contextlib.suppress(ValueError):
        data.load_csv(path, "y")


# ----- load_csv: a C parser reads the rows, where it reads what the careful path reads -----


def outcome(path, features=None):
    """What load_csv makes of the file: the bits of X and y and the names, or the error's type and message."""
    try:
        X, y, names = data.load_csv(path, "y", features)
    except ValueError as error:
        return type(error).__name__, str(error)
    return X.shape, X.tobytes(), y.tobytes(), names


@contextlib.contextmanager
def careful_path_forbidden():
    """Fail the test if load_csv reads a cell with the careful path (the C parser must read them all)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(data, "_careful_numbers", lambda *args: pytest.fail("the careful path read the rows"))
        yield


def spy_on_parsers(monkeypatch):
    """A list that records each C parser ("numpy", "pandas") as load_csv calls it."""
    parsed_by = []
    loadtxt = np.loadtxt
    monkeypatch.setattr(np, "loadtxt", lambda *args, **kwargs: parsed_by.append("numpy") or loadtxt(*args, **kwargs))
    pandas = sys.modules.get("pandas")
    if pandas is not None:
        read_csv = pandas.read_csv
        monkeypatch.setattr(
            pandas, "read_csv", lambda *args, **kwargs: parsed_by.append("pandas") or read_csv(*args, **kwargs)
        )
    return parsed_by


# every number the careful path reads: floats as Python writes them, long integers, anything _NUMBER matches
numbers = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.integers(-(10**25), 10**25).map(str),
    st.from_regex(data._NUMBER, fullmatch=True),
)
paddings = st.sampled_from(["", "", " ", "  ", "\t"])
# cells that a C parser might read otherwise than the careful path: not numbers to it, or written unusually
NEAR_MISSES = [
    *["", " ", "1e", "e5", ".", "-", "+", "+-1", "1.5.", "1 2", "1d5", "0x1p3", "1_000", "١٢", "１", "#1"],
    *["nan", "NaN", "-inf", "Infinity", "1e999", "-1e999", "1e-999", "True", "false", "TRUE"],
    *["\xa01", "1\xa0", "1\x0c", "\x0b1", "\x1c1", "-0", "+0", " +.03E60 ", "99999999999999999999"],
    *['"1.5"', ' "2"', '"1,5"', "\x00", "\ufeff1"],
]


@st.composite
def csv_files(draw):
    """A CSV file (bytes) with a target column "y", and the features to ask for (None: all but y): numbers of
    every form, and in every other file near misses, true/false columns, short and long rows; blank and
    whitespace lines, any line ends, a byte-order mark."""
    others = draw(st.permutations(["a", "b", "c"]))[: draw(st.integers(1, 3))]
    names = draw(st.permutations([*others, "y"]))
    odd = draw(st.booleans())
    cells = st.one_of(numbers, st.sampled_from(NEAR_MISSES)) if odd else numbers
    kinds = [draw(st.sampled_from(["any", "any", "zeros and ones", "true/false" if odd else "any"])) for _ in names]
    lines = [",".join(names)]
    for _ in range(draw(st.integers(0, 5))):
        width = draw(st.sampled_from([len(names)] * 8 + [1, len(names) - 1, len(names) + 1])) if odd else len(names)
        row = []
        for kind in [*kinds, "any"][:width]:
            cell = draw(
                cells if kind == "any" else st.sampled_from(["0", "1"] if kind != "true/false" else ["True", "false"])
            )
            row.append(draw(paddings) + cell + draw(paddings))
        lines.append(",".join(row))
        if draw(st.integers(0, 4)) == 0:
            lines.append(draw(st.sampled_from(["", " ", "\t", "\x0c", "\xa0"])))
    end = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    text = end.join(lines) + draw(st.sampled_from(["", end, end + end]))
    bom = draw(st.sampled_from([b"", b"\xef\xbb\xbf"]))
    features = draw(st.sampled_from([None, others, others[::-1], others[:1]]))
    return bom + text.encode("utf-8"), features


@given(csv_files())
def test_c_parsers_read_what_the_careful_path_reads_to_the_bit(tmp_path_factory, drawn):
    content, features = drawn
    path = tmp_path_factory.mktemp("csv") / "drawn.csv"
    path.write_bytes(content)
    with reading_with("careful"):
        expected = outcome(path, features)
    for parser in ["numpy", "pandas"] if _pandas_parses() else ["numpy"]:
        with reading_with(parser):
            assert outcome(path, features) == expected, parser


@pytest.mark.parametrize("which", PARSERS)
@given(cells=st.lists(st.tuples(paddings, numbers, paddings).map("".join), min_size=1, max_size=30))
def test_c_parsers_read_every_number_as_float_does(tmp_path_factory, which, cells):
    finite = all(math.isfinite(float(cell)) for cell in cells)
    path = tmp_path_factory.mktemp("csv") / "numbers.csv"
    path.write_text("x,y\n" + "".join(f"{cell},0\n" for cell in cells), encoding="utf-8", newline="")
    with reading_with(which):
        if not finite:  # an exponent past float64's range
            with pytest.raises(ValueError, match="too large for a float64"):
                data.load_csv(path, "y")
            return
        with careful_path_forbidden():
            X, _, _ = data.load_csv(path, "y")
    assert X[:, 0].tobytes() == np.array([float(cell) for cell in cells]).tobytes()


def test_a_plain_numeric_file_never_needs_the_careful_path(tmp_path, parser, monkeypatch):
    parsed_by = spy_on_parsers(monkeypatch)
    # a byte-order mark, CRLF, empty lines in the middle and at the end, spaces and tabs around cells, an
    # unread column of text, the last line without its line end (a line of spaces NumPy's parser refuses: the
    # careful path skips it)
    path = tmp_path / "plain.csv"
    path.write_bytes(b"\xef\xbb\xbfid,x1,y,x2\r\n\r\nn1, 1.5 ,-2e3,\t7\r\n\r\nn2,0,.25,-0\r\n\r\nn3,1e-5,3,4")
    with careful_path_forbidden():
        X, y, names = data.load_csv(path, "y", ["x2", "x1"])
        columns = data.read_columns(path, ["x1", "y", "x1"])
    assert names == ["x2", "x1"]
    np.testing.assert_array_equal(X, [[7, 1.5], [-0.0, 0], [4, 1e-5]])
    np.testing.assert_array_equal(y, [-2000, 0.25, 3])
    assert np.signbit(X[1, 0]) and not np.signbit(X[1, 1])
    np.testing.assert_array_equal(columns, [[1.5, -2000, 1.5], [0, 0.25, 0], [1e-5, 3, 1e-5]])
    assert set(parsed_by) == {parser}


EDGE_NUMBERS = {
    "minus zero": ("-0", -0.0),
    "past int64": ("99999999999999999999", 1e20),
    "past uint64, odd": ("18446744073709551617", 18446744073709551617.0),
    "underflow to zero": ("1e-400", 0.0),
    "the smallest subnormal": ("4.9e-324", 5e-324),
    "seventeen digits and more": ("1.7000000000000001776", 1.7000000000000002),
    "plus, bare point, exponent": ("+1.E+05", 1e5),
    "only a fraction": (".5", 0.5),
    # pandas 3.1 reads this one with a parser that misses the last bit: NumPy's reads it
    "plus with spaces around": (" +.03E60 ", 3e58),
}


@pytest.mark.parametrize("case", EDGE_NUMBERS)
def test_load_csv_reads_edge_numbers_as_float_does(tmp_path, parser, case):
    cell, expected = EDGE_NUMBERS[case]
    path = write(tmp_path, f"x,y\n{cell},1\n2,3\n")
    with careful_path_forbidden():
        X, _, _ = data.load_csv(path, "y")
    assert X[0, 0].tobytes() == np.float64(expected).tobytes()


CELL_ERRORS = {
    "1e400": "'1e400' is too large for a float64 (not finite)",
    "-1e400": "'-1e400' is too large for a float64 (not finite)",
    "nan": "'nan' is not a finite number; remove or fill in missing values",
    "Infinity": "'Infinity' is not a finite number; remove or fill in missing values",
    "NA": "'NA' is not a number",
    "1_000": "'1_000' is not a number",
    "0x1p3": "'0x1p3' is not a number",
    "١٢": "'١٢' is not a number",
    "１": "'１' is not a number",
    "1e": "'1e' is not a number",
    ".": "'.' is not a number",
    "True": "'True' is not a number",
    " ": "empty cell; every cell must hold a number",
    '" 1,5"': "'1,5' is not a number",
}


@pytest.mark.parametrize("cell", CELL_ERRORS)
def test_load_csv_refuses_what_the_careful_path_refuses_with_its_message(tmp_path, parser, cell):
    path = write(tmp_path, f"x,y\n1,2\n\n{cell},3\n4,5\n")
    with raises_exactly(ValueError, f"{path}: line 4, column 'x': {CELL_ERRORS[cell]}"):
        data.load_csv(path, "y")


def test_load_csv_a_column_of_true_false_words_is_not_numbers(tmp_path, parser):
    path = write(tmp_path, "x,y\nTrue,1\nfalse,2\n")  # pandas alone would read 1.0 and 0.0
    with raises_exactly(ValueError, f"{path}: line 2, column 'x': 'True' is not a number"):
        data.load_csv(path, "y")
    path = write(tmp_path, "flag,x,y\ntrue,0,1\nfalse,1,2\n", name="flags.csv")  # the words in an unread column
    X, y, _ = data.load_csv(path, "y", ["x"])
    np.testing.assert_array_equal(X, [[0], [1]])
    np.testing.assert_array_equal(y, [1, 2])


def test_load_csv_true_false_words_after_many_rows_of_numbers_are_not_numbers_either(tmp_path, parser):
    # pandas reads a wide file in chunks of rows (8192 of 64 columns) and decides each chunk's column type on its
    # own: a chunk of only true/false words would become 1.0 and 0.0 after a chunk of numbers
    names = ["x", "y", *(f"z{i}" for i in range(62))]
    rest = ",0" * 63
    text = (
        ",".join(names) + "\n" + f"1.5{rest}\n" * 8192 + "".join(f"{word}{rest}\n" for word in ["True", "false"] * 4096)
    )
    path = write(tmp_path, text)
    with raises_exactly(ValueError, f"{path}: line 8194, column 'x': 'True' is not a number"):
        data.load_csv(path, "y", ["x"])


ROW_ERRORS = {
    "short, the missing cell not read": ("x,y,z\n1,2,3\n4,5\n", ["x"], "line 3: expected 3 cells", 2),
    "long": ("x,y,z\n1,2,3\n4,5,6,7\n", ["x"], "line 3: expected 3 cells", 4),
    "one cell": ("x,y,z\n1,2,3\n\n4\n", ["x"], "line 4: expected 3 cells", 1),
    "one too few and one too many": ("x,y,z\n1,2\n3,4,5,6\n", ["x"], "line 2: expected 3 cells", 2),
}


@pytest.mark.parametrize("case", ROW_ERRORS)
def test_load_csv_a_row_of_the_wrong_width_is_refused_even_where_no_missing_cell_is_read(tmp_path, parser, case):
    text, features, where, found = ROW_ERRORS[case]
    path = write(tmp_path, text)
    message = f"{path}: {where} (one per header column), found {found}"
    with raises_exactly(ValueError, message):
        data.load_csv(path, "y", features)
    with raises_exactly(ValueError, message):
        data.read_columns(path, ["x"])


def test_load_csv_blank_lines_are_skipped_and_still_counted(tmp_path, parser):
    body = "x,y\n\n1,2\n \n\t\n3,4\n\n"
    X, y, _ = data.load_csv(write(tmp_path, body + "\n"), "y")
    np.testing.assert_array_equal(X, [[1], [3]])
    np.testing.assert_array_equal(y, [2, 4])
    path = write(tmp_path, body + "5,z\n", name="bad.csv")
    with raises_exactly(ValueError, f"{path}: line 8, column 'y': 'z' is not a number"):
        data.load_csv(path, "y")


def test_load_csv_one_row_and_a_header_alone(tmp_path, parser):
    X, y, _ = data.load_csv(write(tmp_path, "x,y\n1,2"), "y")
    assert X.shape == (1, 1) and y.shape == (1,) and (X[0, 0], y[0]) == (1.0, 2.0)
    path = write(tmp_path, "\nx,y\n\n \n", name="header.csv")
    with raises_exactly(ValueError, f"{path}: no data rows after the header on line 2"):
        data.load_csv(path, "y")


def test_load_csv_what_the_c_parsers_decline_the_careful_path_reads(tmp_path, parser):
    # quoted cells, a quoted header name over two lines, no-break spaces, a form feed alone on a line, NUL in an
    # unread column: the same numbers as ever, read cell by cell
    path = tmp_path / "odd.csv"
    path.write_bytes('"x\n1",note,y\n"1.5",a\x00b, "2"\n\xa03\xa0,c,4\n\x0c\n'.encode())
    X, y, names = data.load_csv(path, "y", ["x\n1"])
    assert names == ["x\n1"]
    np.testing.assert_array_equal(X, [[1.5], [3]])
    np.testing.assert_array_equal(y, [2, 4])


def test_load_csv_refuses_an_overlong_cell_even_in_a_column_it_does_not_read(tmp_path, parser):
    path = write(tmp_path, "id,x,y\n" + "a" * 131073 + ",1,2\n")
    message = f"{path}: line 2: not readable as CSV (field larger than field limit (131072))"
    with raises_exactly(ValueError, message):
        data.load_csv(path, "y", ["x"])
    with raises_exactly(ValueError, message):  # before any complaint about the header, as always
        data.load_csv(path, "y", ["nowhere"])


def test_load_csv_reads_a_small_file_without_importing_pandas(tmp_path):
    path = write(tmp_path, "x,y\n1,2\n3,4\n")
    code = f"import sys, tinygrad_lr as tl; tl.data.load_csv({str(path)!r}, 'y'); print('pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], env=child_env(), capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_load_csv_leaves_the_numbers_to_numpy_under_pandas_before_3_1(tmp_path, monkeypatch):
    pandas = pytest.importorskip("pandas")
    monkeypatch.setattr(pandas, "__version__", "3.0.2")  # its default float parser can miss the last bit
    monkeypatch.setattr(data, "_PANDAS_FROM_BYTES", 0)
    parsed_by = spy_on_parsers(monkeypatch)
    X, _, _ = data.load_csv(write(tmp_path, "x,y\n0.1,2\n"), "y")
    assert X[0, 0] == 0.1 and parsed_by == ["numpy"]


# ----- validation_split -----


def test_validation_split_takes_last_samples():
    x = np.arange(10.0).reshape(10, 1)
    y = np.arange(10.0) * 2
    (x_train, y_train), (x_val, y_val) = data.validation_split(x, y, 0.3)
    # Keras: not the first samples, not a random subset, but the last 3, in order
    np.testing.assert_array_equal(x_train[:, 0], [0, 1, 2, 3, 4, 5, 6])
    np.testing.assert_array_equal(x_val[:, 0], [7, 8, 9])
    np.testing.assert_array_equal(y_val, [14, 16, 18])
    np.testing.assert_array_equal(y_train, y[:7])


# ----- random_split -----


def test_random_split_holds_out_seeded_random_rows_each_part_in_order():
    x = np.arange(100.0).reshape(100, 1)
    (x_kept, y_kept), (x_held, y_held) = data.random_split(x, 2 * x[:, 0], 0.2, seed=3)
    assert (len(x_kept), len(x_held)) == (80, 20)  # validation_split's counts
    np.testing.assert_array_equal(np.sort(np.concatenate([x_kept, x_held])[:, 0]), x[:, 0])  # every row once
    assert np.all(np.diff(x_kept[:, 0]) > 0) and np.all(np.diff(x_held[:, 0]) > 0)  # file order kept
    np.testing.assert_array_equal(y_held, 2 * x_held[:, 0])  # x and y stay paired
    np.testing.assert_array_equal(y_kept, 2 * x_kept[:, 0])
    assert x_held[:, 0].tolist() != list(range(80, 100))  # not the last rows
    (_, _), (again, _) = data.random_split(x, x, 0.2, seed=3)
    (_, _), (other, _) = data.random_split(x, x, 0.2, seed=4)
    np.testing.assert_array_equal(again, x_held)
    assert not np.array_equal(other, x_held)


@pytest.mark.parametrize(("fraction", "message"), [(0.7, "leave no training sample"), (1.0, "fraction must be")])
def test_random_split_refuses_what_validation_split_refuses(fraction, message):
    with pytest.raises(ValueError, match=f"random_split: .*{message}"):
        data.random_split(np.arange(3.0), np.arange(3.0), fraction, seed=0)


@pytest.mark.parametrize(
    "n, fraction, n_train",
    [(51, 0.3, 35), (404, 0.3, 282), (10, 0.3, 7), (10, 0.7, 3), (3, 0.5, 1), (100, 0.29, 71), (7, 0.0, 7)],
)
def test_validation_split_trains_on_floor_of_n_times_one_minus_fraction(n, fraction, n_train):
    (x_train, y_train), (x_val, y_val) = data.validation_split(np.arange(n), np.arange(n), fraction)
    assert len(x_train) == len(y_train) == n_train
    assert len(x_val) == len(y_val) == n - n_train


@given(st.integers(1, 2000), st.floats(0.0, 0.99))
def test_validation_split_uses_keras_arithmetic_and_covers_every_sample(n, fraction):
    n_train = math.floor(n * (1.0 - fraction))  # Keras 3 train_validation_split
    assume(n_train >= 1 and (fraction == 0 or n_train < n))
    x = np.arange(n)
    (x_train, _), (x_val, _) = data.validation_split(x, x, fraction)
    assert len(x_train) == n_train
    np.testing.assert_array_equal(np.concatenate([x_train, x_val]), x)


def test_validation_split_zero_fraction_keeps_everything_for_training():
    (x_train, _), (x_val, y_val) = data.validation_split(np.ones((5, 2)), np.ones(5), 0.0)
    assert x_train.shape == (5, 2) and x_val.shape == (0, 2) and y_val.shape == (0,)


@pytest.mark.parametrize(
    "n, fraction, words",
    [
        (3, 0.7, "no training sample"),
        (1, 0.5, "no training sample"),
        (5, 1e-17, "no validation sample"),
        (0, 0.0, "no training"),
    ],
)
def test_validation_split_refuses_an_empty_part_and_says_what_to_do(n, fraction, words):
    with pytest.raises(ValueError, match=words) as info:
        data.validation_split(np.arange(n), np.arange(n), fraction)
    message = str(info.value)
    assert f"{n} samples" in message and f"fraction={fraction}" in message and "use a" in message


@pytest.mark.parametrize("fraction", [-0.1, 1.0, 2.0, float("nan"), "0.2", True])
def test_validation_split_fraction_must_be_in_zero_to_one(fraction):
    with pytest.raises(ValueError, match="must be a finite number >= 0 and < 1"):
        data.validation_split(np.arange(10), np.arange(10), fraction)


def test_validation_split_x_and_y_must_have_the_same_length():
    with pytest.raises(ValueError, match=r"\(10,\).*\(9,\)"):
        data.validation_split(np.arange(10), np.arange(9), 0.2)


# ----- batch_indices -----


@pytest.mark.parametrize("n, batch_size", [(10, 3), (10, 5), (10, 32), (1, 1), (404, 16), (0, 4)])
def test_batch_indices_count_is_ceil_n_over_batch_and_last_is_smaller(n, batch_size):
    for shuffle in (False, True):
        batches = data.batch_indices(n, batch_size, shuffle=shuffle, rng=np.random.default_rng(0))
        assert len(batches) == math.ceil(n / batch_size)
        sizes = [len(np.arange(n)[batch]) for batch in batches]
        assert all(size == batch_size for size in sizes[:-1])
        if sizes:
            assert sizes[-1] == n - batch_size * (len(batches) - 1)


def test_batch_indices_without_shuffle_are_slices_in_order():
    batches = data.batch_indices(7, 3)
    assert batches == [slice(0, 3), slice(3, 6), slice(6, 7)]


@given(st.integers(0, 300), st.integers(1, 50), st.integers(0, 2**32 - 1))
def test_batch_indices_shuffled_cover_every_index_exactly_once(n, batch_size, seed):
    batches = data.batch_indices(n, batch_size, shuffle=True, rng=np.random.default_rng(seed))
    covered = np.concatenate(batches) if batches else np.array([], dtype=int)
    np.testing.assert_array_equal(np.sort(covered), np.arange(n))


def test_batch_indices_shuffle_is_deterministic_for_a_seed():
    first = data.batch_indices(100, 16, shuffle=True, rng=np.random.default_rng(5))
    again = data.batch_indices(100, 16, shuffle=True, rng=np.random.default_rng(5))
    other = data.batch_indices(100, 16, shuffle=True, rng=np.random.default_rng(6))
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))
    assert not np.array_equal(np.concatenate(first), np.arange(100))


@pytest.mark.parametrize("batch_size", [0, -1, 2.0, 2.5, True, None, "8"])
def test_batch_indices_batch_size_must_be_a_positive_integer(batch_size):
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        data.batch_indices(10, batch_size)


# ----- Standardizer -----


@given(feature_matrices())
def test_standardizer_inverse_transform_undoes_transform(X):
    scaler = data.Standardizer()
    Z = scaler.fit_transform(X)
    assert Z.shape == X.shape
    np.testing.assert_allclose(scaler.inverse_transform(Z), X, rtol=1e-9, atol=1e-6)


@given(feature_matrices())
def test_standardizer_gives_zero_mean_unit_std_and_constant_columns_scale_one(X):
    scaler = data.Standardizer().fit(X)
    columns = X.reshape(len(X), -1)
    constant = np.ptp(columns, axis=0) == 0
    assert scaler.mean.shape == scaler.scale.shape == (columns.shape[1],)
    np.testing.assert_array_equal(scaler.scale[constant], 1.0)
    assert np.all(scaler.scale > 0)
    Z = scaler.transform(X).reshape(len(X), -1)
    assert np.all(np.isfinite(Z))
    np.testing.assert_allclose(Z.mean(axis=0), 0.0, atol=1e-6)
    varied = ~constant & (np.std(columns, axis=0) > 1e-3 * (1 + np.abs(columns).max(axis=0)))
    np.testing.assert_allclose(Z[:, varied].std(axis=0), 1.0, rtol=1e-6)


@given(feature_matrices())
def test_standardizer_from_a_sources_column_statistics_is_the_one_fitted_on_the_rows(X):
    fitted = data.Standardizer().fit(X)
    from_statistics = data.Standardizer().fit_statistics(*sources.as_source(X).column_statistics())
    np.testing.assert_array_equal(from_statistics.mean, fitted.mean)
    np.testing.assert_array_equal(from_statistics.scale, fitted.scale)


def test_standardizer_statistics_that_overflowed_are_refused():
    with pytest.raises(ValueError, match=r"^Standardizer.fit: values too large to standardise in float64"):
        data.Standardizer().fit_statistics(np.array([1.0]), np.array([np.inf]), np.array([np.inf]))


def test_standardizer_uses_population_std():
    scaler = data.Standardizer().fit([[1.0, 5.0], [3.0, 5.0]])
    np.testing.assert_array_equal(scaler.mean, [2.0, 5.0])
    np.testing.assert_array_equal(scaler.scale, [1.0, 1.0])  # std ddof=0 of [1, 3] is 1; constant column → 1
    np.testing.assert_array_equal(scaler.transform([[1.0, 5.0], [3.0, 5.0]]), [[-1.0, 0.0], [1.0, 0.0]])


def test_standardizer_rejects_unfitted_use_wrong_width_and_non_finite():
    with pytest.raises(ValueError, match="fit"):
        data.Standardizer().transform([[1.0]])
    scaler = data.Standardizer().fit(np.ones((3, 2)))
    with pytest.raises(ValueError, match="3 feature"):
        scaler.transform(np.ones((3, 3)))
    with pytest.raises(ValueError, match="non-finite values"):
        data.Standardizer().fit([1.0, np.nan])
    with pytest.raises(ValueError, match="no samples"):
        data.Standardizer().fit(np.ones((0, 2)))


# ----- unscale_linear -----


def ols(X, y):
    """Least squares with an intercept column, by lstsq: coef (d,) or (d, k), intercept float or (k,)."""
    A = np.column_stack([X, np.ones(len(X))])
    solution = np.linalg.lstsq(A, y, rcond=None)[0]
    return solution[:-1], solution[-1]


@st.composite
def regression_problems(draw):
    n = draw(st.integers(8, 30))
    d = draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**32 - 1))
    k = draw(st.sampled_from([None, 1, 2]))
    rng = np.random.default_rng(seed)
    # features of very different scales and offsets, as real data have
    X = rng.normal(size=(n, d)) * 10.0 ** rng.uniform(-2, 3, size=d) + rng.uniform(-100, 100, size=d)
    coef = rng.normal(size=(d,) if k is None else (d, k))
    y = X @ coef + 5.0 + rng.normal(size=(n,) if k is None else (n, k))
    return X, y


@given(regression_problems(), st.booleans())
def test_unscale_linear_of_standardised_ols_equals_ols_on_raw_data(problem, scale_y):
    X, y = problem
    x_scaler = data.Standardizer().fit(X)
    y_scaler = data.Standardizer().fit(y) if scale_y else None
    target = y_scaler.transform(y) if scale_y else y
    w, b = ols(x_scaler.transform(X), target)
    coef, intercept = data.unscale_linear(w, b, x_scaler, y_scaler)
    expected_coef, expected_intercept = ols(X, y)
    assert coef.shape == expected_coef.shape
    assert np.shape(intercept) == np.shape(expected_intercept)
    if y.ndim == 1:
        assert isinstance(intercept, float)
    np.testing.assert_allclose(coef, expected_coef, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(intercept, expected_intercept, rtol=1e-6, atol=1e-6)


def test_unscale_linear_worked_example():
    # x has mean 10 and std 2; the standardised model y = 3 z + 1 is y = 1.5 x - 14
    x_scaler = data.Standardizer().fit([8.0, 12.0])
    coef, intercept = data.unscale_linear([3.0], 1.0, x_scaler)
    np.testing.assert_allclose(coef, [1.5])
    assert intercept == pytest.approx(-14.0)
    # and with y standardised by mean 100, std 10: y = 10 (1.5 x - 14) + 100
    y_scaler = data.Standardizer().fit([90.0, 110.0])
    coef, intercept = data.unscale_linear(np.array([[3.0]]), np.array([1.0]), x_scaler, y_scaler)
    assert coef.shape == (1, 1) and intercept.shape == (1,)
    np.testing.assert_allclose(coef, [[15.0]])
    np.testing.assert_allclose(intercept, [-40.0])


def test_unscale_linear_rejects_mismatched_shapes():
    x_scaler = data.Standardizer().fit(np.ones((4, 2)))
    with pytest.raises(ValueError, match="x_scaler knows 2"):
        data.unscale_linear(np.ones(3), 0.0, x_scaler)
    with pytest.raises(ValueError, match="intercept has 1"):
        data.unscale_linear(np.ones((2, 3)), 0.0, x_scaler)


# ===== the fine print: every message whole, dtypes, worked examples (was test_solvers_and_data_details.py) =====


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
def test_load_csv_error_is_the_file_then_where_then_what(tmp_path, case, parser):
    text, message = BAD_FILES[case]
    path = write(tmp_path, text, name="bad.csv")
    with raises_exactly(ValueError, f"{path}: {message}"):
        data.load_csv(path, "y")


def test_load_csv_undecodable_file_names_the_line_and_the_reason(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"x,y\n1,2\n3,\xff\n")
    with raises_exactly(ValueError, f"{path}: line 3: the file is not UTF-8 text (invalid start byte)"):
        data.load_csv(path, "y")


def test_load_csv_undecodable_byte_after_a_byte_order_mark_names_its_own_line(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbfx,y\n1,2\n\xff,1\n")  # the mark's three bytes count for no line
    with raises_exactly(ValueError, f"{path}: line 3: the file is not UTF-8 text (invalid start byte)"):
        data.load_csv(path, "y")


def test_load_csv_unreadable_csv_names_the_line(tmp_path, parser):
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


def test_load_csv_reads_files_with_old_mac_line_ends(tmp_path, parser):
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
def test_load_csv_long_bad_cell_is_shortened_to_40_characters(tmp_path, cell, shown, parser):
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
