"""The walkthroughs in examples/: each runs to completion (fast mode), writes its pictures, and
reaches the numbers its prose claims."""

import contextlib
import importlib.util
import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure

from tests.processes import ROOT, child_env

EXAMPLES = ROOT / "examples"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def run_example(name, out_dir, figures=None, fast=True):
    """Import examples/<name>.py by path, run main(out_dir, fast=fast); return (results, stdout).

    With a dict `figures`, every figure the example saves is put there under its file's name, to
    open its artists."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout), pytest.MonkeyPatch.context() as patch:
        if figures is not None:
            patch.setattr(Figure, "savefig", recording_savefig(figures))
        results = module.main(out_dir=out_dir, fast=fast)
    return results, stdout.getvalue()


def recording_savefig(figures):
    """Figure.savefig, which also keeps the figure in `figures` under the name of the file it writes."""
    savefig = Figure.savefig

    def record(figure, path, *args, **kwargs):
        figures[Path(path).name] = figure
        return savefig(figure, path, *args, **kwargs)

    return record


def assert_pngs(out_dir, names, stdout=None):
    """Each picture is a PNG in out_dir; with `stdout`, the example printed its path."""
    for name in names:
        data = (Path(out_dir) / name).read_bytes()
        assert data[:8] == PNG_SIGNATURE, name
        if stdout is not None:
            assert str(Path(out_dir) / name) in stdout, name


def test_every_example_is_tested():
    scripts = sorted(path.stem for path in EXAMPLES.glob("[0-9]*.py"))
    assert scripts == [
        "01_gradient_descent",
        "02_l2_minibatch",
        "03_keras_adam",
        "04_keras_progress",
        "05_boston_rooms",
        "06_polynomial",
        "07_newton_and_curvature",
    ]


def test_gradient_descent_heads_for_the_closed_form(tmp_path):
    results, stdout = run_example("01_gradient_descent", tmp_path)
    assert_pngs(tmp_path, ["01_line_fit.png", "01_loss.png"], stdout)
    assert "Epoch 40: A = " in stdout
    assert results["A"] == pytest.approx(results["ols_coef"], abs=0.1)
    assert results["B"] == pytest.approx(results["ols_intercept"], abs=0.6)
    assert results["ols_coef"] == pytest.approx(3.5, abs=0.1)
    assert results["ols_intercept"] == pytest.approx(2.0, abs=0.5)
    assert results["ols_loss"] <= results["loss"] < 1.2 * results["ols_loss"]


def test_gradient_descent_on_many_noise_draws_is_each_draw_run_alone(tmp_path):
    results, stdout = run_example("01_gradient_descent", tmp_path)
    spread = {name: np.array(values) for name, values in results["spread"].items()}
    assert len(spread["A"]) == 50 and "on 50 noise draws" in stdout  # fast mode
    assert spread["A"][0] == pytest.approx(results["A"], abs=1e-4)  # seed 0 is the single run's draw
    assert spread["B"][0] == pytest.approx(results["B"], abs=1e-4)
    assert spread["A"].std() > 0.01  # the draws differ
    # the tutorial's loss of 0.31 is beyond reach of noise with standard deviation 1
    assert spread["loss"].min() > 0.31 and "with a loss <= 0.31: 0" in stdout


def test_l2_minibatch_bias_is_stuck_and_both_cures_reach_ridge(tmp_path):
    results, stdout = run_example("02_l2_minibatch", tmp_path)
    assert_pngs(tmp_path, ["02_fit.png", "02_loss.png"], stdout)
    b0, ridge_b = results["b_initial"], results["ridge_b"]
    # without the cure: most of b's way to the optimum is still ahead, and b is not moving
    assert abs(results["tutorial_b"] - ridge_b) > 0.5 * abs(b0 - ridge_b)
    assert "changed by" in stdout
    # why: a huge condition number, and at the largest stable lr b needs ~1e8 steps
    assert results["condition_number"] > 1e7
    assert results["stable_lr"] == pytest.approx(3e-8, rel=0.01)
    assert results["steps_to_move_b"] > 1e7
    # as the tutorial ran it, in float32: b stops dead once its update is below half float32's spacing
    assert results["float32_last_change"] < 900  # of 1000 epochs (fast mode)
    assert results["float32_update"] < results["float32_spacing"] / 2
    assert "rounds back to b" in stdout
    # the cures: W on the ridge optimum, b within the small cycle that two fixed batches leave
    for cure in ("standardised", "folded"):
        assert results[f"{cure}_W"] == pytest.approx(results["ridge_W"], abs=1e-5)
        assert abs(results[f"{cure}_b"] - ridge_b) < 1e-3
        assert abs(results[f"{cure}_b"] - ridge_b) < 0.25 * abs(results["tutorial_b"] - ridge_b)


def test_keras_adam_predicts_70(tmp_path):
    results, stdout = run_example("03_keras_adam", tmp_path)
    assert_pngs(tmp_path, ["03_loss.png", "03_fit.png"], stdout)
    assert results["prediction"] == pytest.approx(70.0, abs=1.5)
    assert results["ols_coef"] == pytest.approx(2.0)
    assert results["ols_intercept"] == pytest.approx(30.0)
    assert "weights: [array(" in stdout


def test_keras_progress_prints_epochs_and_summary(tmp_path):
    results, stdout = run_example("04_keras_progress", tmp_path)
    assert_pngs(tmp_path, ["04_fit.png", "04_loss.png"], stdout)
    assert "Total params: 2" in stdout
    assert "Epoch 1/20" in stdout and "2/2 [==============================]" in stdout
    assert results["ols_coef"] == pytest.approx(1.0, abs=0.1)
    assert results["ols_intercept"] == pytest.approx(5.0, abs=1.5)
    assert np.isfinite(results["loss"]) and results["loss"] >= results["ols_loss"]


def test_keras_progress_loss_picture_says_why_an_epochs_loss_can_dip_below_the_optimum(tmp_path):
    figures = {}
    results, _ = run_example("04_keras_progress", tmp_path, figures)
    caption = " ".join(figures["04_loss.png"].get_supxlabel().split())  # the caption, unwrapped
    assert "An epoch's loss is the mean over its two batches, taken while the weights moved" in caption
    assert f"the loss at the final weights is {results['final_loss']:.4f}" in caption


def test_boston_rooms_loss_picture_reads_the_stalled_excess_against_a_tick_at_10(tmp_path):
    figures = {}
    run_example("05_boston_rooms", tmp_path, figures, fast=False)  # all 101 epochs: the excess stalls at 12
    _, excess_ax = figures["05_loss.png"].axes
    low, high = excess_ax.get_ylim()
    assert np.nanmin(excess_ax.lines[0].get_ydata()) > 10  # the curve stays above 10 ...
    assert 10 in [tick for tick in excess_ax.get_yticks() if low <= tick <= high]  # ... and 10 is shown


def test_boston_rooms_losses_are_finite_and_above_the_optimum(tmp_path):
    results, stdout = run_example("05_boston_rooms", tmp_path)
    assert_pngs(tmp_path, ["05_loss.png", "05_fit.png"], stdout)
    # Keras' progress lines for every epoch, as the tutorial printed them
    assert [line for line in stdout.splitlines() if line.startswith("Epoch ")] == [
        f"Epoch {k}/21" for k in range(1, 22)
    ]
    assert stdout.count("18/18 [==============================]") == 21
    assert np.isfinite(results["loss"]) and np.isfinite(results["val_loss"])
    assert results["final_loss"] > results["ols_loss"]
    assert results["val_loss"] > results["ols_val_loss"]
    assert len(results["predicted"]) == 5
    assert np.all(np.diff(results["predicted"]) > 0)  # more rooms, higher price
    assert results["r2_test"] <= results["ols_r2_test"] + 1e-9


def test_polynomial_matches_ols_only_when_standardised(tmp_path):
    results, stdout = run_example("06_polynomial", tmp_path)
    assert_pngs(tmp_path, ["06_fit.png", "06_loss.png"], stdout)
    assert results["condition_raw"] > 100 * results["condition_standardised"]
    np.testing.assert_allclose(results["coef"], results["ols_coef"], atol=0.02)
    assert results["intercept"] == pytest.approx(results["ols_intercept"], abs=0.05)
    assert abs(results["raw_intercept"] - results["ols_intercept"]) > 1.0  # raw powers: far from done


def test_polynomial_loss_picture_sets_both_runs_beside_the_closed_form_and_their_excess(tmp_path):
    figures = {}
    results, _ = run_example("06_polynomial", tmp_path, figures)
    loss_ax, excess_ax = figures["06_loss.png"].axes
    levels = [line for line in loss_ax.lines if line.get_linestyle() == ":"]
    assert [level.get_ydata()[0] for level in levels] == pytest.approx([results["ols_loss"]] * 2)
    standardised, raw = excess_ax.lines
    labels = [text.get_text() for text in excess_ax.get_legend().get_texts()]
    assert labels[0].startswith("standardised powers - optimum") and labels[1].startswith("raw powers - optimum")
    assert np.nanmin(standardised.get_ydata()) < 1e-3 < 1.0 < raw.get_ydata()[-1]  # raw powers: far from done


def test_example_runs_as_a_script(tmp_path):
    env = child_env(MPLBACKEND="Agg")
    done = subprocess.run(
        [sys.executable, "examples/03_keras_adam.py", "--out-dir", str(tmp_path / "out"), "--fast"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert "model.predict([20.0])" in done.stdout
    assert (tmp_path / "out" / "03_fit.png").exists()


# ----- walkthrough 7: the curvature from the engine's second derivatives, and Newton's method -----

DATA_SETS = ("boston", "stuck_bias")


@pytest.fixture(scope="module")
def newton_and_curvature(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("example_7")
    figures = {}
    results, stdout = run_example("07_newton_and_curvature", out_dir, figures)
    results["figures"] = figures
    return results, stdout, out_dir


def test_newton_and_curvature_runs_and_writes_its_pictures(newton_and_curvature):
    results, stdout, out_dir = newton_and_curvature
    assert_pngs(out_dir, ["07_loss.png", "07_paths.png"], stdout)
    assert "not within 100 epochs" in stdout  # fast mode: gradient descent on the stuck bias is capped
    for key in DATA_SETS:
        assert results[f"{key}_newton_epochs"] == 1


def test_engine_hessian_of_mse_plus_l2_is_the_closed_form_matrix(newton_and_curvature):
    results, _, _ = newton_and_curvature
    for key in DATA_SETS:
        np.testing.assert_allclose(results[f"{key}_hessian"], results[f"{key}_hessian_closed_form"], rtol=1e-8)
        assert results[f"{key}_hessian_max_difference"] < 1e-8 * np.abs(results[f"{key}_hessian_closed_form"]).max()


def test_power_iteration_on_hvp_gives_the_stable_learning_rate(newton_and_curvature):
    results, _, _ = newton_and_curvature
    for key in DATA_SETS:
        assert results[f"{key}_power_lr"] == pytest.approx(results[f"{key}_stable_lr"], rel=1e-5)
        assert results[f"{key}_lambda_max"] == pytest.approx(max(results[f"{key}_eigenvalues"]), rel=1e-8)
    assert results["stuck_bias_stable_lr"] == pytest.approx(3e-8, rel=0.01)  # walkthrough 2's bound
    assert results["stuck_bias_condition_number"] > 1e7
    assert 1e3 < results["boston_condition_number"] < 1e4


def test_one_newton_step_lands_on_ridge(newton_and_curvature):
    results, _, _ = newton_and_curvature
    for key in DATA_SETS:
        assert results[f"{key}_newton_coef"] == pytest.approx(results[f"{key}_ridge_coef"], rel=1e-8)
        assert results[f"{key}_newton_intercept"] == pytest.approx(results[f"{key}_ridge_intercept"], rel=1e-8)
        # gradient descent and Adam, a few hundred epochs in (fast mode), are nowhere near yet
        assert results[f"{key}_gd_epochs"] is None and results[f"{key}_adam_epochs"] is None
    # what the condition number implies: ~2e4 epochs of gradient descent on Boston, ~3e8 on the stuck bias
    assert 1e4 < results["boston_gd_epochs_implied"] < 1e5
    assert results["stuck_bias_gd_epochs_implied"] > 1e8


def test_newton_and_curvature_paths_keep_gradient_descent_visible_over_labelled_contours(newton_and_curvature):
    results, _, _ = newton_and_curvature
    (ax,) = results["figures"]["07_paths.png"].axes
    paths = {line.get_label().split(",")[0]: line for line in ax.lines}
    gd, adam = paths["gradient descent"], paths["Adam"]
    assert gd.get_linestyle() == "--" and adam.get_linestyle() == "-"  # dashed: Adam shows through
    assert gd.get_zorder() > adam.get_zorder()  # and drawn on top of it
    labels = [text.get_text() for text in ax.texts]  # the contours' values, by clabel
    assert len(labels) >= 5 and all(float(label) > 0 for label in labels)
