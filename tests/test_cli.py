"""The command line, `tinygrad-lr fit`: what it prints, what it writes, and how it refuses bad input."""

import csv
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tinygrad_lr as tl
from tests.processes import ROOT, child_env
from tests.test_robustness import CRAFTED, peak_memory, write_crafted
from tinygrad_lr import experiment
from tinygrad_lr.cli import main

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
OPTIONS = [
    "--csv",
    "--target",
    "--scheduler",
    "--features",
    "--test-split",
    "--validation-split",
    "--standardize",
    "--optimizer",
    "--lr",
    "--epochs",
    "--batch-size",
    "--l2",
    "--seed",
    "--out-dir",
    "--save-weights",
    "--summary",
    "--quiet",
]
NUMBER = r"(-?[0-9.]+(?:e[+-]?[0-9]+)?)"


def run(capsys, *argv):
    """main(argv) in-process: (exit code, stdout, stderr)."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_valid_png(path: Path) -> None:
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE), f"{path} is not a PNG"
    assert len(data) > 10_000, f"{path} is suspiciously small ({len(data)} bytes)"


def field(out: str, label: str) -> str:
    """The text after `label` on the report line that starts with it."""
    lines = [line for line in out.splitlines() if line.startswith(label)]
    assert len(lines) == 1, f"expected one line starting {label!r} in:\n{out}"
    return lines[0][len(label) :].strip()


def equation(text: str) -> tuple[float, float]:
    """'medv = 8.60187 * rm - 31.7951' -> (8.60187, -31.7951)."""
    match = re.match(rf"\w+ = {NUMBER} \* \w+ ([+-]) {NUMBER}", text)
    assert match, text
    return float(match[1]), float(match[3]) * (-1 if match[2] == "-" else 1)


def csv_split(path, features, seed=0):
    """The rows `fit --csv` uses: test rows drawn at random with --seed, then validation rows from the rest.
    Returns (X_train, y_train), (X_test, y_test)."""
    X, y, _ = tl.data.load_csv(path, "y", features)
    rng = np.random.default_rng(seed)
    (X_fit, y_fit), test = tl.data.random_split(X, y, 0.2, seed=rng)
    train, _ = tl.data.random_split(X_fit, y_fit, 0.2, seed=rng)
    return train, test


def boston_training_rows(validation_split=0.2):
    (x, y), _ = tl.datasets.load_boston_housing()
    column = tl.datasets.BOSTON_FEATURES.index("rm")
    (x_train, y_train), _ = tl.data.validation_split(x[:, column], y, validation_split)
    return x_train, y_train


@pytest.fixture
def csv_file(tmp_path):
    """100 rows of y = 0.02·a - 3·b + 5 + noise, a in 0..1000 and b in 0..1 (scales far apart), c unrelated."""
    rng = np.random.default_rng(1)
    n = 100
    a, b, c = rng.uniform(0, 1000, n), rng.uniform(0, 1, n), rng.normal(size=n)
    y = 0.02 * a - 3 * b + 5 + 0.1 * rng.normal(size=n)
    path = tmp_path / "data.csv"
    np.savetxt(path, np.column_stack([a, c, b, y]), delimiter=",", header="a,c,b,y", comments="")
    return path


# ----- the default run -----


def test_fit_without_options_trains_on_boston_rooms_and_reaches_the_closed_form(capsys, tmp_path):
    code, out, err = run(capsys, "fit", "--out-dir", str(tmp_path))
    assert code == 0, err
    assert err == ""
    assert "target medv, feature rm; 323 train / 81 validation / 102 test rows" in field(out, "Data:")
    assert "Epoch 1/1000" in out and "Epoch 1000/1000" in out

    coef, intercept = tl.solvers.ols(*boston_training_rows())
    closed = field(out, "Closed form:")
    assert "ols on the same 323 training rows" in closed
    assert equation(closed) == pytest.approx((coef[0], intercept), rel=1e-5)
    assert equation(field(out, "Learned:")) == pytest.approx((coef[0], intercept), rel=1e-4)
    assert "R² on test:" in out and "102 test rows" in out
    assert field(out, "Wrote:") == f"fit.png and loss.png in {tmp_path.resolve()}"
    assert_valid_png(tmp_path / "fit.png")
    assert_valid_png(tmp_path / "loss.png")


def test_module_runs_as_a_program_and_writes_valid_pngs(tmp_path):
    env = child_env(MPLBACKEND="Agg")
    done = subprocess.run(
        [sys.executable, "-m", "tinygrad_lr", "fit", "--out-dir", "pictures"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    for label in ["Data:", "Training:", "Learned:", "Closed form:", "Gap:", "Final loss:", "R² on test:", "Wrote:"]:
        field(done.stdout, label)
    assert_valid_png(tmp_path / "pictures" / "fit.png")
    assert_valid_png(tmp_path / "pictures" / "loss.png")


def test_pictures_go_to_the_current_directory_by_default(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "fit", "--epochs", "3", "--quiet")
    assert code == 0, err
    assert_valid_png(tmp_path / "fit.png")
    assert_valid_png(tmp_path / "loss.png")


def test_out_dir_is_created_when_missing(capsys, tmp_path):
    code, _, err = run(capsys, "fit", "--epochs", "2", "--quiet", "--out-dir", str(tmp_path / "a" / "b"))
    assert code == 0, err
    assert (tmp_path / "a" / "b" / "loss.png").is_file()


def test_quiet_prints_results_but_no_progress_lines(capsys, tmp_path):
    code, out, _ = run(capsys, "fit", "--epochs", "5", "--quiet", "--out-dir", str(tmp_path))
    assert code == 0
    assert "Epoch" not in out and "step" not in out and "Data:" not in out
    for label in ["Learned:", "Closed form:", "Gap:", "Final loss:", "R² on test:", "Wrote:"]:
        field(out, label)


def test_progress_shows_keras_lines_for_every_epoch_when_few(capsys, tmp_path):
    code, out, _ = run(capsys, "fit", "--epochs", "3", "--batch-size", "32", "--out-dir", str(tmp_path))
    assert code == 0
    assert [line for line in out.splitlines() if line.startswith("Epoch ")] == ["Epoch 1/3", "Epoch 2/3", "Epoch 3/3"]
    assert re.search(r"^11/11 \[=+\] - .* - loss: [0-9.]+ - val_loss: [0-9.]+$", out, re.MULTILINE)


def test_progress_is_thinned_to_about_ten_reports_for_many_epochs(capsys, tmp_path):
    code, out, _ = run(capsys, "fit", "--epochs", "100", "--out-dir", str(tmp_path))
    assert code == 0
    shown = [line for line in out.splitlines() if line.startswith("Epoch ")]
    assert shown == ["Epoch 1/100"] + [f"Epoch {k}/100" for k in range(10, 101, 10)]


def test_same_seed_repeats_the_run_exactly(capsys, tmp_path):
    argv = ["fit", "--epochs", "20", "--batch-size", "16", "--quiet", "--out-dir", str(tmp_path)]
    first = run(capsys, *argv)[1]
    second = run(capsys, *argv)[1]
    assert field(first, "Learned:") == field(second, "Learned:")


# ----- the closed form beside the learned weights -----


def test_l2_compares_with_ridge_of_the_same_l2(capsys, tmp_path):
    code, out, err = run(capsys, "fit", "--l2", "0.5", "--quiet", "--out-dir", str(tmp_path))
    assert code == 0, err
    coef, intercept = tl.solvers.ridge(*boston_training_rows(), 0.5)
    closed = field(out, "Closed form:")
    assert "ridge (l2 0.5) on the same 323 training rows" in closed
    assert equation(closed) == pytest.approx((coef[0], intercept), rel=1e-5)
    assert "l2 term included" in field(out, "Final loss:")


def test_standardized_csv_weights_are_reported_in_original_units(capsys, tmp_path, csv_file):
    code, out, err = run(
        capsys,
        *["fit", "--csv", str(csv_file), "--target", "y", "--features", "a", "b", "--standardize"],
        *["--epochs", "300", "--quiet", "--out-dir", str(tmp_path)],
    )
    assert code == 0, err
    # the closed form of the raw data: 80 rows left by the random test split, of which 64 train
    # and 16, drawn at random too, validate
    coef, intercept = tl.solvers.ols(*csv_split(csv_file, ["a", "b"])[0])
    rows = {}
    for line in out.splitlines():
        cells = line.split()
        if cells and cells[0] in ("a", "b", "(bias)"):
            rows[cells[0]] = [float(cell) for cell in cells[1:]]
    assert rows["a"][:2] == pytest.approx([coef[0], coef[0]], rel=1e-4)
    assert rows["b"][:2] == pytest.approx([coef[1], coef[1]], rel=1e-4)
    assert rows["(bias)"][:2] == pytest.approx([intercept, intercept], rel=1e-4)
    assert "64 standardised training rows, back in original units" in field(out, "Weights:")
    assert "20 test rows" in field(out, "R² on test:")
    assert_valid_png(tmp_path / "fit.png")  # actual against predicted, for several features


def test_csv_without_features_uses_every_column_but_the_target(capsys, tmp_path, csv_file):
    argv = ["fit", "--csv", str(csv_file), "--target", "y", "--standardize", "--epochs", "2"]
    code, out, err = run(capsys, *argv, "--out-dir", str(tmp_path))
    assert code == 0, err
    assert "target y, features a, c, b; 64 train / 16 validation / 20 test rows" in field(out, "Data:")


def test_csv_with_one_feature_reports_an_equation(capsys, tmp_path, csv_file):
    argv = ["fit", "--csv", str(csv_file), "--target", "y", "--features", "a", "--standardize", "--quiet"]
    code, out, err = run(capsys, *argv, "--out-dir", str(tmp_path))
    assert code == 0, err
    coef, intercept = tl.solvers.ols(*csv_split(csv_file, ["a"])[0])
    assert equation(field(out, "Closed form:")) == pytest.approx((coef[0], intercept), rel=1e-5)
    assert equation(field(out, "Learned:")) == pytest.approx((coef[0], intercept), rel=1e-4)


def test_test_split_zero_reports_r2_on_the_training_rows(capsys, tmp_path, csv_file):
    argv = ["fit", "--csv", str(csv_file), "--target", "y", "--test-split", "0", "--validation-split", "0"]
    code, out, err = run(capsys, *argv, "--standardize", "--epochs", "2", "--out-dir", str(tmp_path))
    assert code == 0, err
    assert "100 train / 0 validation / 0 test rows" in field(out, "Data:")
    assert "100 training rows; --test-split 0 leaves no test rows" in field(out, "R² on train:")
    assert "no validation rows" in field(out, "Final loss:")
    assert_valid_png(tmp_path / "fit.png")


@pytest.mark.parametrize("quiet", [[], ["--quiet"]], ids=["verbose", "quiet"])
def test_a_run_far_from_the_optimum_says_so_also_when_quiet(capsys, tmp_path, quiet):
    code, out, _ = run(capsys, "fit", "--epochs", "3", *quiet, "--out-dir", str(tmp_path))
    assert code == 0
    assert "training stopped short of the optimum" in field(out, "Note:")


def weight_rows(out: str, names) -> dict[str, list[float]]:
    """The report's table: name -> [learned, closed form, |Δ|]."""
    rows = {}
    for line in out.splitlines():
        cells = line.split()
        if cells and cells[0] in names:  # (a distance within rounding shows as "~0")
            rows[cells[0]] = [0.0 if cell == "~0" else float(cell) for cell in cells[1:]]
    return rows


# ----- --features on the bundled data, and a CSV's random test rows -----


def test_features_on_the_bundled_data_train_on_those_columns_of_the_keras_split(capsys, tmp_path):
    argv = ["fit", "--features", "lstat", "rm", "--standardize", "--epochs", "300", "--out-dir", str(tmp_path)]
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    assert "target medv, features lstat, rm; 323 train / 81 validation / 102 test rows" in field(out, "Data:")
    (x, y), _ = tl.datasets.load_boston_housing()
    columns = [tl.datasets.BOSTON_FEATURES.index(name) for name in ("lstat", "rm")]
    (x_train, y_train), _ = tl.data.validation_split(x[:, columns], y, 0.2)
    coef, intercept = tl.solvers.ols(x_train, y_train)
    rows = weight_rows(out, ("lstat", "rm", "(bias)"))
    assert [rows["lstat"][1], rows["rm"][1], rows["(bias)"][1]] == pytest.approx([*coef, intercept], rel=1e-5)


def test_features_all_on_the_bundled_data_uses_its_13_columns(capsys, tmp_path):
    code, out, err = run(
        capsys, "fit", "--features", "all", "--standardize", "--epochs", "2", "--out-dir", str(tmp_path)
    )
    assert code == 0, err
    assert f"features {', '.join(tl.datasets.BOSTON_FEATURES)};" in field(out, "Data:")


@pytest.fixture
def sorted_csv(tmp_path):
    """The bundled Boston data as a CSV sorted by price: its last rows are the dearest districts."""
    (x, y), (x_test, y_test) = tl.datasets.load_boston_housing()
    X, y = np.concatenate([x, x_test]), np.concatenate([y, y_test])
    order = np.argsort(y, kind="stable")
    path = tmp_path / "sorted.csv"
    header = ",".join([*tl.datasets.BOSTON_FEATURES, "y"])
    np.savetxt(path, np.column_stack([X[order], y[order]]), delimiter=",", header=header, comments="", fmt="%.17g")
    return path


def r2_line(capsys, tmp_path, csv, seed):
    argv = ["fit", "--csv", str(csv), "--target", "y", "--features", "rm", "lstat", "ptratio", "--standardize"]
    code, out, err = run(capsys, *argv, "--seed", str(seed), "--epochs", "2", "--quiet", "--out-dir", str(tmp_path))
    assert code == 0, err
    return field(out, "R² on test:")


def test_a_csvs_test_rows_are_drawn_at_random_seeded_by_seed(capsys, tmp_path, sorted_csv):
    features = ["rm", "lstat", "ptratio"]
    (X_train, y_train), (X_test, y_test) = csv_split(sorted_csv, features, seed=5)
    coef, intercept = tl.solvers.ols(X_train, y_train)
    expected = tl.losses.r2_score(X_test @ coef + intercept, y_test)
    text = r2_line(capsys, tmp_path, sorted_csv, seed=5)
    assert float(re.search(rf"closed form {NUMBER};", text)[1]) == pytest.approx(expected, abs=1e-4)
    assert "102 test rows" in text
    # the last 102 rows, all of them dearer than any training row, would give a far worse R²
    X, y, _ = tl.data.load_csv(sorted_csv, "y", features)
    (X_first, y_first), (X_last, y_last) = tl.data.validation_split(X, y, 0.2)
    coef, intercept = tl.solvers.ols(*tl.data.validation_split(X_first, y_first, 0.2)[0])
    assert tl.losses.r2_score(X_last @ coef + intercept, y_last) < 0 < 0.5 < expected
    assert r2_line(capsys, tmp_path, sorted_csv, seed=5) == text
    assert r2_line(capsys, tmp_path, sorted_csv, seed=6) != text


# ----- --save-weights and predict -----


@pytest.fixture
def saved(capsys, tmp_path):
    """A run on three bundled columns, standardised, saved: (the weights file, the learned table)."""
    path = tmp_path / "boston weights"  # no .npz suffix: written at exactly this path all the same
    argv = ["fit", "--features", "rm", "lstat", "ptratio", "--standardize", "--quiet"]
    code, out, err = run(capsys, *argv, "--save-weights", str(path), "--out-dir", str(tmp_path))
    assert code == 0, err
    assert field(out, "Saved:").startswith(f"weights, feature names and scaling in {path}")
    return path, weight_rows(out, ("rm", "lstat", "ptratio", "(bias)"))


def test_save_weights_writes_a_model_file_with_names_and_scaling_in_its_metadata(saved):
    path, rows = saved
    with np.load(path, allow_pickle=False) as archive:  # plain arrays: the architecture, metadata, weights
        assert archive.files == ["architecture", "metadata", "0.weight", "0.bias"]
    model = tl.nn.load_model(path)
    assert repr(model) == "Sequential([Linear(3, 1, bias=True)])"
    assert [w.dtype for w in model.get_weights()] == [np.float64, np.float64]
    (x, y), _ = tl.datasets.load_boston_housing()
    columns = [tl.datasets.BOSTON_FEATURES.index(name) for name in ("rm", "lstat", "ptratio")]
    (x_train, _), _ = tl.data.validation_split(x[:, columns], y, 0.2)
    metadata = model.metadata
    assert sorted(metadata) == ["features", "mean", "scale", "target"]
    assert metadata["features"] == ["rm", "lstat", "ptratio"] and metadata["target"] == "medv"
    np.testing.assert_allclose(metadata["mean"], x_train.mean(axis=0), rtol=1e-12)  # the training rows' scaling
    np.testing.assert_allclose(metadata["scale"], x_train.std(axis=0), rtol=1e-12)
    # the model takes standardised features: back in original units, its weights are the report's
    weight, bias = model.get_weights()
    coef = weight[:, 0] / metadata["scale"]
    intercept = bias[0] - np.dot(metadata["mean"], coef)
    learned = [rows[name][0] for name in ("rm", "lstat", "ptratio", "(bias)")]
    assert [*coef, intercept] == pytest.approx(learned, rel=1e-5)


def test_save_weights_without_standardize_keeps_a_scaling_of_zero_and_one(capsys, tmp_path, csv_file):
    path = tmp_path / "model.npz"
    argv = ["fit", "--csv", str(csv_file), "--target", "y", "--features", "a", "b", "--optimizer", "gd", "--quiet"]
    code, _, err = run(capsys, *argv, "--save-weights", str(path), "--out-dir", str(tmp_path))
    assert code == 0, err
    assert tl.nn.load_model(path).metadata == {
        "features": ["a", "b"],
        "target": "y",
        "mean": [0.0, 0.0],
        "scale": [1.0, 1.0],
    }


def predict_rows(tmp_path):
    """Five new rows of the three features, their columns in another order, one column not read: (X (5, 3), the CSV)."""
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.uniform(4, 8, 5), rng.uniform(2, 30, 5), rng.uniform(13, 22, 5), np.arange(5.0)])
    path = tmp_path / "new.csv"
    np.savetxt(path, X[:, [2, 3, 0, 1]], delimiter=",", header="ptratio,id,rm,lstat", comments="", fmt="%.17g")
    return X[:, :3], path


def predicted(out: str) -> np.ndarray:
    """The values of predict's output (one column under a header), as the floats they were written from."""
    return np.array([float(value) for value in out.splitlines()[1:]])


def test_predict_gives_exactly_what_the_model_fit_trained_gives_in_process(capsys, tmp_path, saved):
    path, _ = saved
    settings = experiment.Settings(features=["rm", "lstat", "ptratio"], standardize=True, quiet=True)
    prepared, result = experiment.run(settings)
    assert all(
        a.dtype == b.dtype and a.tobytes() == b.tobytes()
        for a, b in zip(tl.nn.load_model(path).get_weights(), result.model.get_weights())
    )
    _, new_rows = predict_rows(tmp_path)
    code, out, err = run(capsys, "predict", "--weights", str(path), "--csv", str(new_rows))
    assert code == 0, err
    X = tl.data.read_columns(new_rows, ["rm", "lstat", "ptratio"])  # the rows as predict reads them
    expected = result.model.predict((X - prepared.scaler.mean) / prepared.scaler.scale)[:, 0]
    np.testing.assert_array_equal(predicted(out), expected)


def test_an_interrupted_save_weights_leaves_the_previous_file_to_predict_with(
    capsys, tmp_path, saved, monkeypatch, disk_full_after
):
    path, _ = saved
    _, new_rows = predict_rows(tmp_path)
    before = run(capsys, "predict", "--weights", str(path), "--csv", str(new_rows))
    written = disk_full_after(2)  # the architecture and metadata go in, then the disk is full
    argv = ["fit", "--features", "rm", "--epochs", "5", "--quiet", "--out-dir", str(tmp_path)]
    code, _, err = run(capsys, *argv, "--save-weights", str(path))
    monkeypatch.undo()
    assert len(written) == 2  # it did stop midway
    assert code == 2 and err == f"tinygrad-lr: error: --save-weights {path}: cannot write it (disk full)\n"
    assert not [name for name in os.listdir(tmp_path) if name.startswith(".tmp")]
    assert run(capsys, "predict", "--weights", str(path), "--csv", str(new_rows)) == before
    assert tl.nn.load_model(path).metadata["features"] == ["rm", "lstat", "ptratio"]


def test_predict_applies_the_saved_weights_and_scaling_to_a_csvs_rows(capsys, tmp_path, saved):
    path, rows = saved
    X, new_rows = predict_rows(tmp_path)  # the columns in another order, and one the model does not read
    coef = [rows[name][0] for name in ("rm", "lstat", "ptratio")]
    expected = X @ coef + rows["(bias)"][0]  # the report's weights in original units, to 6 digits

    code, out, err = run(capsys, "predict", "--weights", str(path), "--csv", str(new_rows))
    assert code == 0 and err == "", err
    assert out.splitlines()[0] == "medv"
    np.testing.assert_allclose(predicted(out), expected, rtol=1e-5)

    out_file = tmp_path / "predictions.csv"
    code, out, err = run(capsys, "predict", "--weights", str(path), "--csv", str(new_rows), "--out", str(out_file))
    assert code == 0, err
    assert field(out, "Wrote:") == f"5 predictions of medv to {out_file}"
    np.testing.assert_allclose(np.loadtxt(out_file, skiprows=1), expected, rtol=1e-5)


def test_predict_without_a_feature_column_is_one_error_line_naming_it(capsys, tmp_path, saved):
    path, _ = saved
    new_rows = tmp_path / "new.csv"
    new_rows.write_text("rm,ptratio\n6.5,15\n")
    code, out, err = run(capsys, "predict", "--weights", str(path), "--csv", str(new_rows))
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1 and err.startswith("tinygrad-lr: error: ")
    assert "no column named 'lstat'" in err


def _model_file(path, model, **changes):
    """`model` saved at `path` with the metadata `fit --save-weights` gives three Boston features, changed."""
    metadata = {
        "features": ["rm", "lstat", "ptratio"],
        "target": "medv",
        "mean": [6.0, 12.0, 18.0],
        "scale": [0.7, 7.0, 2.0],
    }
    model.save(path, metadata={**metadata, **changes})


def _linear(n_in, n_out):
    return tl.nn.Sequential([tl.nn.Linear(n_in, n_out, dtype=np.float64)])


NOT_MODEL_FILES = {
    # case: (how to write the file at `weights`, given the saved file; words of the error)
    "missing": (lambda weights, saved: None, "no such file"),
    "directory": (lambda weights, saved: weights.mkdir(), "cannot read"),
    "csv": (lambda weights, saved: weights.write_text("rm,y\n1,2\n"), "truncated or corrupted"),
    "pickle": (lambda weights, saved: np.savez(weights, features=np.array(["rm"], dtype=object)), "allow_pickle=False"),
    "model weights": (
        lambda weights, saved: _linear(3, 1).save_weights(weights),
        "has no 'architecture' member: it is not a model file written by model.save",
    ),
    "a member short": (
        lambda weights, saved: np.savez(weights, **{k: v for k, v in np.load(saved).items() if k != "0.bias"}),
        r"lacks \['0.bias'\]",
    ),
    "a model without metadata": (
        lambda weights, saved: _linear(3, 1).save(weights),
        "not a model file written by 'tinygrad-lr fit --save-weights' \\(its metadata has no 'features'",
    ),
    "a model of two outputs": (
        lambda weights, saved: _model_file(weights, _linear(3, 2)),
        r"\(its model predicts 2 values per row, not 1\)",
    ),
    "a model of two features": (
        lambda weights, saved: _model_file(weights, _linear(2, 1)),
        r"\(its model does not take the 3 features it names: predict: x has shape \(1, 3\)",
    ),
    "a model of no layers": (
        lambda weights, saved: _model_file(weights, tl.nn.Sequential([])),
        "its model does not take the 3 features it names: predict: the model has no parameters",
    ),
    "a target that is not a name": (
        lambda weights, saved: _model_file(weights, _linear(3, 1), target=["medv"]),
        "its metadata has no 'target', a column name",
    ),
    "a scale of zero": (
        lambda weights, saved: _model_file(weights, _linear(3, 1), scale=[0.7, 0.0, 2.0]),
        r"\(its scale has values <= 0\)",
    ),
    "a mean of text": (
        lambda weights, saved: _model_file(weights, _linear(3, 1), mean=["6", 12.0, 18.0]),
        "its metadata's 'mean' and 'scale' are not 3 finite numbers each",
    ),
    "a scale too short": (
        lambda weights, saved: _model_file(weights, _linear(3, 1), scale=[0.7, 7.0]),
        "its metadata's 'mean' and 'scale' are not 3 finite numbers each",
    ),
}


@pytest.mark.parametrize("case", list(NOT_MODEL_FILES))
def test_predict_refuses_what_is_not_a_model_file_of_fit_in_one_line(capsys, tmp_path, saved, case):
    path, _ = saved
    weights = tmp_path / "weights.npz"
    write, words = NOT_MODEL_FILES[case]
    write(weights, path)
    new_rows = tmp_path / "new.csv"
    new_rows.write_text("rm,lstat,ptratio\n6.5,10,15\n")
    code, out, err = run(capsys, "predict", "--weights", str(weights), "--csv", str(new_rows))
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1 and err.startswith(f"tinygrad-lr: error: --weights {weights}: "), err
    assert re.search(words, err), err


def test_predict_with_a_model_file_written_in_python_and_the_metadata_of_fit(capsys, tmp_path):
    weights = tmp_path / "weights.npz"
    model = _linear(3, 1)
    model.set_weights([np.array([[1.0], [-2.0], [0.5]]), np.array([3.0])])
    _model_file(weights, model)
    new_rows = tmp_path / "new.csv"
    new_rows.write_text("rm,lstat,ptratio\n6.7,19,16\n")
    code, out, err = run(capsys, "predict", "--weights", str(weights), "--csv", str(new_rows))
    assert code == 0, err
    # ((6.7 - 6) / 0.7) * 1 + ((19 - 12) / 7) * -2 + ((16 - 18) / 2) * 0.5 + 3 = 1 - 2 - 0.5 + 3
    assert predicted(out) == pytest.approx([1.5], rel=1e-12) and out.splitlines()[0] == "medv"


@pytest.mark.parametrize("case", CRAFTED)
def test_predict_refuses_a_crafted_weights_file_from_its_headers_in_one_line(capsys, tmp_path, saved, case):
    path, _ = saved
    crafted = tmp_path / "crafted.npz"
    member = write_crafted(case, path, crafted, "0.weight", (3, 1))
    new_rows = tmp_path / "new.csv"
    new_rows.write_text("rm,lstat,ptratio\n6.5,10,15\n")
    code, peak = peak_memory(lambda: main(["predict", "--weights", str(crafted), "--csv", str(new_rows)]))
    out, err = capsys.readouterr()
    assert code == 2 and out == "", repr(code)
    assert len(err.splitlines()) == 1 and err.startswith(f"tinygrad-lr: error: --weights {crafted}: "), err
    assert repr(member) in err, err
    assert peak < 10_000_000, f"refusing it took {peak} bytes"


def test_a_crafted_weights_file_ends_the_program_with_one_line_and_exit_code_2(tmp_path, saved):
    path, _ = saved
    crafted = tmp_path / "crafted.npz"
    write_crafted("a huge member with an unknown name", path, crafted, "0.weight", (3, 1))
    (tmp_path / "new.csv").write_text("rm,lstat,ptratio\n6.5,10,15\n")
    done = subprocess.run(
        [sys.executable, "-m", "tinygrad_lr", "predict", "--weights", str(crafted), "--csv", "new.csv"],
        cwd=tmp_path,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and done.stdout == ""
    assert len(done.stderr.splitlines()) == 1 and done.stderr.startswith(f"tinygrad-lr: error: --weights {crafted}: ")
    assert "'extra'" in done.stderr


@pytest.mark.parametrize("target", ["price, USD", 'price "USD"', "price\nUSD"])
def test_predict_writes_a_csv_whose_one_column_is_named_exactly_the_target(capsys, tmp_path, target):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 10, 20)
    data = tmp_path / "data.csv"
    with open(data, "w", newline="") as file:  # the target's name quoted as CSV quotes it
        csv.writer(file).writerows([["x", target], *zip(x, 2 * x + 1)])
    weights = tmp_path / "weights.npz"
    argv = ["--csv", str(data), "--target", target, "--epochs", "5", "--quiet", "--out-dir", str(tmp_path)]
    code, _, err = run(capsys, "fit", *argv, "--save-weights", str(weights))
    assert code == 0, err

    code, out, err = run(capsys, "predict", "--weights", str(weights), "--csv", str(data))
    assert code == 0 and err == "", err
    rows = list(csv.reader(io.StringIO(out, newline="")))
    assert rows[0] == [target] and [len(row) for row in rows[1:]] == [1] * 20
    out_file = tmp_path / "predictions.csv"
    code, _, err = run(capsys, "predict", "--weights", str(weights), "--csv", str(data), "--out", str(out_file))
    assert code == 0, err
    pandas = pytest.importorskip("pandas")
    frame = pandas.read_csv(out_file)
    assert list(frame.columns) == [target]
    np.testing.assert_array_equal(frame[target], [float(row[0]) for row in rows[1:]])


# ----- the pictures -----


@pytest.mark.parametrize("options", [[], ["--csv", "CSV", "--target", "y", "--standardize"]], ids=["default", "csv"])
def test_loss_png_shows_the_excess_over_the_optimum_on_log_axes_in_every_run(
    capsys, tmp_path, csv_file, figures, options
):
    options = [str(csv_file) if option == "CSV" else option for option in options]
    code, out, err = run(capsys, "fit", *options, "--epochs", "50", "--quiet", "--out-dir", str(tmp_path))
    assert code == 0, err
    loss_ax, excess_ax = figures["plot_excess_loss"].axes
    assert loss_ax.get_yscale() == excess_ax.get_yscale() == "log"
    optimum = float(re.search(rf"vs optimum {NUMBER}", field(out, "Gap:"))[1])
    loss, level = loss_ax.lines[:2]
    assert level.get_ydata()[0] == pytest.approx(optimum, rel=1e-5) and level.get_color() == loss.get_color()


def test_fit_png_of_several_features_labels_the_diagonal_perfect_prediction(capsys, tmp_path, csv_file, figures):
    argv = ["fit", "--csv", str(csv_file), "--target", "y", "--standardize", "--epochs", "2", "--quiet"]
    code, _, err = run(capsys, *argv, "--out-dir", str(tmp_path))
    assert code == 0, err
    train, validation, test = figures["plot_fit"].axes
    assert [ax.get_title() for ax in (train, validation, test)] == [
        "train (64 rows)",
        "validation (16 rows)",
        "test (20 rows)",
    ]
    assert [text.get_text() for text in train.get_legend().get_texts()][1].startswith("perfect prediction")
    np.testing.assert_allclose(train.lines[0].get_ydata(), train.lines[0].get_xdata())  # the line y = x


@pytest.mark.parametrize(
    "error, said",
    [
        (
            PermissionError(13, "Permission denied", "/out/fit.png"),
            "cannot write the pictures to /out/fit.png (Permission denied)",
        ),
        (OverflowError("cannot convert float infinity to integer"), "cannot draw the pictures of values this extreme"),
    ],
)
def test_pictures_that_cannot_be_written_or_drawn_are_one_line_and_exit_code_2(
    capsys, tmp_path, monkeypatch, error, said
):
    def failing(*args, **kwargs):
        raise error

    monkeypatch.setattr(tl.plot, "plot_fit", failing)
    code, out, err = run(capsys, "fit", "--epochs", "2", "--quiet", "--out-dir", str(tmp_path))
    assert code == 2 and len(err.splitlines()) == 1, err
    assert err.startswith(f"tinygrad-lr: error: {said}"), err
    assert "Gap:" in out  # the report came first


def test_a_run_that_diverges_says_so_even_when_its_pictures_fail(capsys, tmp_path, monkeypatch):
    def failing(*args, **kwargs):
        raise ValueError("no picture of this")

    monkeypatch.setattr(tl.plot, "plot_fit", failing)
    argv = ["fit", "--optimizer", "gd", "--lr", "10", "--epochs", "500", "--quiet", "--out-dir", str(tmp_path)]
    code, _, err = run(capsys, *argv)
    assert code == 1 and err.startswith("tinygrad-lr: error: training diverged"), err


# ----- runs that diverge -----


def test_training_that_overflows_is_one_line_and_exit_code_1(capsys, tmp_path):
    argv = ["fit", "--optimizer", "gd", "--lr", "10", "--epochs", "500", "--quiet", "--out-dir", str(tmp_path)]
    code, _, err = run(capsys, *argv)
    assert code == 1
    assert len(err.splitlines()) == 1, err
    assert err.startswith("tinygrad-lr: error: training diverged") and "learning rate" in err


def test_training_that_makes_the_loss_worse_is_reported_as_diverged_with_exit_code_1(capsys, tmp_path):
    argv = ["fit", "--optimizer", "gd", "--lr", "1e10", "--epochs", "3", "--quiet", "--out-dir", str(tmp_path)]
    code, out, err = run(capsys, *argv)
    assert code == 1
    assert len(err.splitlines()) == 1, err
    loss_rose = re.search(rf"training diverged: the training loss rose from {NUMBER} .* to {NUMBER}", err)
    assert loss_rose and float(loss_rose[2]) > 1e60 * float(loss_rose[1]), err
    bound = tl.solvers.stable_learning_rate(boston_training_rows()[0])
    assert f"largest stable --lr for gd on these rows is {bound:.3g}" in err
    assert "--epochs" not in out  # more epochs are not the cure
    assert not re.search(r"[0-9,]{20}", out), out  # huge numbers in scientific notation, not 60 digits
    for label in ["Gap:", "R² on test:"]:
        assert len(field(out, label)) < 120


# ----- extreme values -----


def numbers_csv(tmp_path, x):
    """A CSV of y = 2k + 1 + noise against the given x, one row per k = 1, 2, ..."""
    k = np.arange(1.0, len(x) + 1)
    y = 2 * k + 1 + 0.1 * np.random.default_rng(0).normal(size=len(x))
    path = tmp_path / "numbers.csv"
    np.savetxt(path, np.column_stack([x, y]), delimiter=",", header="x,y", comments="", fmt="%.17g")
    return str(path)


@pytest.mark.parametrize("optimizer", ["gd", "adam"])
def test_features_whose_loss_overflows_are_refused_in_one_line(capsys, tmp_path, optimizer):
    # x ~ 1e155: gd's stable rate ~1e-313 is representable, but the loss (x·w)² ~ 1e310 is not
    x = 1e155 * np.arange(1.0, 51.0)
    argv = ["fit", "--csv", numbers_csv(tmp_path, x), "--target", "y", "--optimizer", optimizer, "--quiet"]
    code, _, err = run(capsys, *argv, "--out-dir", str(tmp_path))
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert err.startswith("tinygrad-lr: error: the training loss is inf") and "--standardize" in err


def test_gd_on_features_too_large_for_any_learning_rate_suggests_standardize(capsys, tmp_path):
    x = 1e200 * np.arange(1.0, 51.0)
    argv = ["fit", "--csv", numbers_csv(tmp_path, x), "--target", "y", "--optimizer", "gd", "--quiet"]
    code, _, err = run(capsys, *argv, "--out-dir", str(tmp_path))
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert err.startswith("tinygrad-lr: error: ")
    assert "too large for plain gradient descent" in err and "--standardize" in err


@pytest.mark.filterwarnings("error")
def test_features_near_1e_minus_300_give_a_finite_optimum_and_no_warnings(capsys, tmp_path):
    x = 1e-300 * np.arange(1.0, 51.0)
    argv = ["fit", "--csv", numbers_csv(tmp_path, x), "--target", "y", "--epochs", "5", "--quiet"]
    code, out, err = run(capsys, *argv, "--out-dir", str(tmp_path))
    assert code == 0, err
    assert err == ""
    assert "nan" not in out
    assert re.fullmatch(rf"train loss {NUMBER} vs optimum {NUMBER} .*", field(out, "Gap:").split("; ")[1])


@pytest.mark.parametrize(
    "scale, options",
    [
        (1e200, ["--optimizer", "gd", "--standardize"]),  # the variance overflows
        (1e200, ["--optimizer", "adam"]),
        (1e200, ["--optimizer", "rmsprop", "--l2", "1e300"]),
        (1e200, ["--optimizer", "gd", "--lr", "1e-320"]),
        (1e200, ["--optimizer", "gd", "--lr", "1e308"]),
        (1e150, ["--optimizer", "gd"]),  # a loss near 1e302 on matplotlib's log axis
        (1e-320, ["--optimizer", "adam"]),  # the closed-form weight ~1e320 is beyond float64
        (1e-300, ["--optimizer", "gd", "--lr", "1e300"]),
    ],
)
def test_extreme_values_end_in_a_report_or_one_line_never_a_traceback(capsys, tmp_path, scale, options):
    x = scale * np.arange(1.0, 51.0)
    argv = ["fit", "--csv", numbers_csv(tmp_path, x), "--target", "y", "--epochs", "3", "--quiet", *options]
    code, out, err = run(capsys, *argv, "--out-dir", str(tmp_path))
    assert code in (0, 1, 2)
    assert all(line.startswith("tinygrad-lr: error: ") for line in err.splitlines()), err
    assert len(err.splitlines()) == (code != 0), err
    assert not re.search(r"\b(nan|inf)\b", out), out


def test_progress_is_thinned_for_any_number_of_epochs():
    assert [experiment._progress_every(epochs) for epochs in (1, 20, 21, 100, 1001)] == [1, 1, 3, 10, 101]
    assert experiment._progress_every(10**400) == 10**399  # no float in the way


# ----- help -----


def test_help_exits_zero_and_explains_every_option(capsys):
    code, out, _ = run(capsys, "fit", "--help")
    assert code == 0
    for option in OPTIONS:
        assert option in out
    assert "gd" in out and "adam" in out and "rmsprop" in out


def test_top_level_help_names_the_fit_command(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0
    assert "fit" in out


def test_no_command_prints_help_and_exits_2(capsys):
    code, out, err = run(capsys)
    assert code == 2
    assert out == ""
    assert "usage: tinygrad-lr" in err and "fit" in err


# ----- bad input -----


@pytest.fixture
def bad_inputs(tmp_path):
    """name: argv, each of which must be refused."""
    text_cell = tmp_path / "text.csv"
    text_cell.write_text("a,y\n1,2\n3,four\n")
    a_file = tmp_path / "a_file"
    a_file.write_text("not a directory")
    blocked = tmp_path / "blocked"
    (blocked / "fit.png").mkdir(parents=True)  # the picture's path is taken by a directory
    csv = ["--csv", str(text_cell)]
    return {
        "missing csv": ["--csv", str(tmp_path / "missing.csv"), "--target", "y"],
        "csv is a directory": ["--csv", str(tmp_path), "--target", "y"],
        "unreadable csv": [*csv, "--target", "y"],
        "unknown target": [*csv, "--target", "price"],
        "unknown feature": [*csv, "--target", "y", "--features", "a", "rooms"],
        "csv without target": csv,
        "unknown Boston feature": ["--features", "rm", "rooms"],
        "Boston target as a feature": ["--features", "medv"],
        "all among other features": ["--features", "all", "rm"],
        "save weights in a missing directory": ["--save-weights", str(tmp_path / "missing" / "w.npz")],
        "save weights to a directory": ["--save-weights", str(tmp_path)],
        "target without csv": ["--target", "medv"],
        "negative lr": ["--lr", "-0.1"],
        "zero lr": ["--lr", "0"],
        "nan lr": ["--lr", "nan"],
        "zero epochs": ["--epochs", "0"],
        "negative epochs": ["--epochs", "-5"],
        "negative batch size": ["--batch-size", "-1"],
        "validation split of one": ["--validation-split", "1"],
        "negative validation split": ["--validation-split", "-0.2"],
        "test split of one": ["--test-split", "1"],
        "negative l2": ["--l2", "-1"],
        "negative seed": ["--seed", "-1"],
        "lr not a number": ["--lr", "fast"],
        "epochs not an integer": ["--epochs", "2.5"],
        "unknown optimizer": ["--optimizer", "sgd2"],
        "unknown option": ["--colour"],
        "out dir is a file": ["--out-dir", str(a_file)],
        "out dir under a file": ["--out-dir", str(a_file / "sub")],
        "picture not writable": ["--epochs", "1", "--out-dir", str(blocked)],
    }


@pytest.mark.parametrize(
    "case",
    [
        "missing csv",
        "csv is a directory",
        "unreadable csv",
        "unknown target",
        "unknown feature",
        "csv without target",
        "unknown Boston feature",
        "Boston target as a feature",
        "all among other features",
        "save weights in a missing directory",
        "save weights to a directory",
        "target without csv",
        "negative lr",
        "zero lr",
        "nan lr",
        "zero epochs",
        "negative epochs",
        "negative batch size",
        "validation split of one",
        "negative validation split",
        "test split of one",
        "negative l2",
        "negative seed",
        "lr not a number",
        "epochs not an integer",
        "unknown optimizer",
        "unknown option",
        "out dir is a file",
        "out dir under a file",
        "picture not writable",
    ],
)
def test_bad_input_is_one_error_line_and_exit_code_2(capsys, tmp_path, bad_inputs, case):
    argv = bad_inputs[case]
    if "--out-dir" not in argv:
        argv = [*argv, "--out-dir", str(tmp_path / "out")]
    code, _, err = run(capsys, "fit", "--quiet", *argv)
    assert code == 2
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("tinygrad-lr: error: ")
    assert "Traceback" not in err


@pytest.mark.parametrize("where", ["bundled", "csv"])
def test_a_test_split_that_leaves_no_training_rows_is_blamed_on_test_split(capsys, tmp_path, csv_file, where):
    data = (
        ["--csv", str(csv_file), "--target", "y", "--test-split", "0.99"]
        if where == "csv"
        else ["--test-split", "0.999"]
    )
    code, _, err = run(capsys, "fit", *data, "--quiet", "--out-dir", str(tmp_path))
    assert code == 2
    assert err.startswith("tinygrad-lr: error: --test-split "), err


def test_csv_errors_keep_the_loaders_message(capsys, tmp_path, bad_inputs):
    _, _, err = run(capsys, "fit", *bad_inputs["unreadable csv"])
    assert "line 3, column 'y': 'four' is not a number" in err


def test_bad_input_from_the_program_has_no_traceback(tmp_path):
    env = child_env()
    done = subprocess.run(
        [sys.executable, "-m", "tinygrad_lr", "fit", "--csv", "missing.csv", "--target", "y"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr == "tinygrad-lr: error: --csv missing.csv: no such file\n"


def test_a_closed_stdout_ends_quietly(tmp_path):
    # 2000 features: the report's table outgrows the pipe's buffer, so the program is still writing
    # when the reader goes away, as `tinygrad-lr fit | head -2` goes away
    rng = np.random.default_rng(0)
    columns = [f"x{i}" for i in range(2000)] + ["y"]
    path = tmp_path / "wide.csv"
    np.savetxt(path, rng.normal(size=(40, len(columns))), delimiter=",", header=",".join(columns), comments="")
    argv = ["fit", "--csv", str(path), "--target", "y", "--epochs", "5", "--out-dir", str(tmp_path)]
    env = child_env(MPLBACKEND="Agg")
    child = subprocess.Popen(
        [sys.executable, "-m", "tinygrad_lr", *argv], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        first_lines = [child.stdout.readline(), child.stdout.readline()]
        child.stdout.close()
        err = child.stderr.read().decode()
        code = child.wait(timeout=120)
    finally:
        child.kill()
    assert first_lines[0].startswith(b"Data:")
    assert "Traceback" not in err and "Exception ignored" not in err and "Error" not in err, err
    assert code in (0, 1)


# ----- what the numbers are worth: --summary, and the notes on the training rows -----


def test_summary_prints_the_coefficient_table_of_the_learned_weights(capsys, tmp_path):
    code, out, _ = run(capsys, "fit", "--features", "rm", "lstat", "--summary", "--quiet", "--out-dir", str(tmp_path))
    assert code == 0
    lines = out.splitlines()
    assert any(line.strip() == "OLS Regression Results" for line in lines)
    rows = {
        line.split()[0]: [float(v) for v in line.split()[1:]]
        for line in lines
        if line[:5] in ("const", "rm   ", "lstat")
    }
    assert list(rows) == ["const", "rm", "lstat"]
    learned = field(out, "rm").split()  # the weights table: learned, closed form, |Δ|
    assert rows["rm"][0] == pytest.approx(float(learned[0]), abs=1e-4)
    (x_train, y_train), _ = tl.datasets.load_boston_housing()
    columns = [tl.datasets.BOSTON_FEATURES.index(name) for name in ("rm", "lstat")]
    exact = tl.stats.ols(x_train[:, columns][: len(x_train) * 4 // 5], y_train[: len(x_train) * 4 // 5])
    assert rows["rm"][1] == pytest.approx(exact.bse[1], rel=0.01)  # the training rows' std err (near the optimum)


def _csv(path, header, rows):
    path.write_text(",".join(header) + "\n" + "".join(",".join(f"{v:g}" for v in row) + "\n" for row in rows))
    return str(path)


@pytest.mark.parametrize(
    ("columns", "rows", "note"),
    [
        (["a", "k"], [[i, 3.0] for i in range(20)], "the column k is constant on the training rows"),
        (
            ["a", "b", "ab"],
            [[i, (i * 7) % 5, i + 2 * ((i * 7) % 5)] for i in range(20)],
            "the columns a, b, ab are collinear on the training rows (one is a combination of the others): the "
            "weights are not unique",
        ),
        (
            ["a", "b", "c"],
            [[1, 2, 3], [2, 1, 5], [3, 3, 1]],
            "3 training rows for 4 parameters (3 weights and a bias): the weights are not determined by the data",
        ),
    ],
    ids=["a constant column", "collinear columns", "fewer rows than parameters"],
)
def test_the_report_notes_what_the_training_rows_say_about_the_weights(capsys, tmp_path, columns, rows, note):
    data = [[*row, sum(row) + 0.5 * ((i * 3) % 4)] for i, row in enumerate(rows)]
    path = _csv(tmp_path / "data.csv", [*columns, "y"], data)
    options = ["--test-split", "0", "--validation-split", "0", "--optimizer", "gd", "--epochs", "5"]
    code, out, _ = run(capsys, "fit", "--csv", path, "--target", "y", *options, "--quiet", "--out-dir", str(tmp_path))
    assert code == 0
    notes = [line[len("Note:") :].strip() for line in out.splitlines() if line.startswith("Note:")]
    assert any(found.startswith(note) for found in notes), notes


def test_summary_without_scipy_names_the_extra(capsys, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "scipy", None)
    monkeypatch.delitem(sys.modules, "tinygrad_lr.stats", raising=False)
    monkeypatch.delattr(tl, "stats", raising=False)  # (an imported submodule is an attribute of its package)
    code, _, err = run(capsys, "fit", "--summary", "--quiet", "--out-dir", str(tmp_path))
    assert code == 2
    assert "tinygrad-lr: error: --summary: tinygrad_lr.stats needs SciPy" in err
