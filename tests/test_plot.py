"""The pictures: what each figure holds, the PNG it writes, the errors it raises, lazy matplotlib."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tinygrad_lr as tl
from tests.processes import ROOT, child_env
from tinygrad_lr.plot import plot_excess_loss, plot_fit, plot_loss, plot_points

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def line_data():
    rng = np.random.default_rng(0)
    x = np.linspace(0.0, 10.0, 30)
    return x, 3.5 * x + 2.0 + rng.normal(size=30)


def legend_texts(ax):
    return [text.get_text() for text in ax.get_legend().get_texts()]


def assert_png(path, min_bytes=5_000):
    data = Path(path).read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > min_bytes


def run_python(code):
    """Run `code` in a fresh interpreter with no display and no MPLBACKEND; return its stdout."""
    env = child_env(drop=("MPLBACKEND", "DISPLAY", "WAYLAND_DISPLAY"))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return done.stdout


# ----- lazy matplotlib -----
def test_importing_the_package_does_not_import_matplotlib():
    out = run_python("import sys, tinygrad_lr, tinygrad_lr.plot; print('matplotlib' in sys.modules)")
    assert out.strip() == "False"


def test_saving_needs_no_pyplot_and_no_backend_setting(tmp_path):
    path = tmp_path / "fit.png"
    out = run_python(
        "import sys; from tinygrad_lr.plot import plot_fit; "
        f"plot_fit([0, 1, 2], [1, 3, 5], coef=2.0, intercept=1.0, path={str(path)!r}); "
        "print('matplotlib.pyplot' in sys.modules)"
    )
    assert out.strip() == "False"
    assert_png(path)


# ----- plot_fit -----
def test_plot_fit_draws_data_and_line_from_coef(line_data):
    x, y = line_data
    fig = plot_fit(x, y, coef=3.5, intercept=2.0, title="a line", xlabel="rooms", ylabel="price")
    assert type(fig).__name__ == "Figure"
    (ax,) = fig.axes
    (points,) = ax.collections
    np.testing.assert_allclose(points.get_offsets(), np.column_stack([x, y]))
    (line,) = ax.lines
    xs, ys = line.get_data()
    assert xs.min() == x.min() and xs.max() == x.max()
    np.testing.assert_allclose(ys, 3.5 * xs + 2.0)
    assert legend_texts(ax) == ["data", "fit"]
    assert (ax.get_title(), ax.get_xlabel(), ax.get_ylabel()) == ("a line", "rooms", "price")


def test_plot_fit_line_from_predict_gets_one_column(line_data):
    x, y = line_data
    seen = []

    def predict(X):
        seen.append(X.shape)
        return 3.0 * X - 1.0  # (m, 1), as model.predict returns

    (ax,) = plot_fit(x.reshape(-1, 1), y.reshape(-1, 1), predict).axes
    assert len(seen) == 1 and seen[0][1] == 1
    xs, ys = ax.lines[0].get_data()
    np.testing.assert_allclose(ys, 3.0 * xs - 1.0)


def test_plot_fit_accepts_tensors_and_size_one_coef(line_data):
    x, y = line_data
    fig = plot_fit(tl.Tensor(x), tl.Tensor(y), coef=np.array([3.5]), intercept=tl.Tensor([2.0]))
    np.testing.assert_allclose(fig.axes[0].lines[0].get_ydata()[0], 3.5 * x.min() + 2.0, rtol=1e-6)


def test_plot_fit_reference_is_a_dashed_closed_form_line(line_data):
    x, y = line_data
    (ax,) = plot_fit(x, y, coef=3.0, intercept=1.0, reference=(3.5, 2.0)).axes
    fit, closed = ax.lines
    assert closed.get_linestyle() == "--" and fit.get_linestyle() == "-"
    np.testing.assert_allclose(closed.get_ydata(), 3.5 * closed.get_xdata() + 2.0)
    assert legend_texts(ax) == ["data", "fit", "closed form"]


def test_plot_fit_with_test_data_draws_train_and_test_panels_with_the_same_line(line_data):
    x, y = line_data
    x_test, y_test = x[:7] + 20.0, y[:7]
    fig = plot_fit(x, y, coef=3.5, intercept=2.0, x_test=x_test, y_test=y_test, reference=(3.4, 2.1), title="t")
    train, test = fig.axes
    assert [len(ax.collections) for ax in fig.axes] == [1, 1]
    assert len(train.collections[0].get_offsets()) == 30 and len(test.collections[0].get_offsets()) == 7
    assert train.get_title() == "train (30 rows)" and test.get_title() == "test (7 rows)"
    assert legend_texts(train) == ["train data", "fit", "closed form"]
    assert legend_texts(test) == ["test data", "fit", "closed form"]
    for a, b in zip(train.lines, test.lines):
        np.testing.assert_array_equal(a.get_xydata(), b.get_xydata())
    assert train.lines[0].get_xdata().max() == x_test.max()  # the line spans both data sets
    assert fig.get_suptitle() == "t"


def test_plot_fit_draws_a_validation_panel_between_train_and_test(line_data):
    x, y = line_data
    fig = plot_fit(x[:20], y[:20], coef=3.5, x_val=x[20:25], y_val=y[20:25], x_test=x[25:], y_test=y[25:])
    assert [ax.get_title() for ax in fig.axes] == ["train (20 rows)", "validation (5 rows)", "test (5 rows)"]
    assert legend_texts(fig.axes[1]) == ["validation data", "fit"]
    with pytest.raises(ValueError, match="give both x_val and y_val"):
        plot_fit(x, y, coef=3.5, x_val=x)


def test_plot_fit_xlim_extends_the_axis_and_the_lines_beyond_the_data(line_data):
    x, y = line_data  # x in [0, 10]
    (ax,) = plot_fit(x, y, coef=3.5, intercept=2.0, reference=(3.4, 2.1), xlim=(-5.0, 20.0)).axes
    assert ax.get_xlim() == (-5.0, 20.0)
    for line in ax.lines:
        assert (line.get_xdata().min(), line.get_xdata().max()) == (-5.0, 20.0)
    for bad in [(20.0, -5.0), (0.0, np.inf), 3.0]:
        with pytest.raises(ValueError, match="xlim"):
            plot_fit(x, y, coef=3.5, xlim=bad)


def test_plot_fit_label_names_the_line(line_data):
    (ax,) = plot_fit(*line_data, coef=1.0, label="perfect prediction").axes
    assert legend_texts(ax) == ["data", "perfect prediction"]


def test_plot_fit_writes_a_png_at_exactly_the_path(tmp_path, line_data):
    x, y = line_data
    path = tmp_path / "fit"  # no suffix: still this exact file, nothing else
    fig = plot_fit(x, y, coef=3.5, intercept=2.0, path=path)
    assert type(fig).__name__ == "Figure"
    assert os.listdir(tmp_path) == ["fit"]
    assert_png(path)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"x": np.zeros(5), "y": np.zeros(4)}, r"x has shape \(5,\) but y has shape \(4,\)"),
        ({"x": np.zeros((5, 3)), "y": np.zeros(5)}, r"x has shape \(5, 3\), i\.e\. 3 features"),
        ({"x": np.zeros(5), "y": np.zeros((5, 2))}, r"y has shape \(5, 2\), i\.e\. 2 targets"),
        ({"x": np.zeros(0), "y": np.zeros(0)}, "no samples"),
        ({"x": [0.0, np.nan], "y": [1.0, 2.0]}, "NaN or inf"),
        ({"x_test": np.zeros(3)}, "both x_test and y_test"),
        ({"x_test": np.zeros(3), "y_test": np.zeros(2)}, r"x_test has shape \(3,\) but y_test has shape \(2,\)"),
        ({"coef": None}, "nothing to draw the line from"),
        ({"predict": lambda X: X, "coef": 1.0}, "not both"),
        ({"coef": np.ones(3)}, r"coef must be one number .* shape \(3,\)"),
        ({"reference": (1.0,)}, "reference must be a pair"),
        ({"coef": None, "predict": lambda X: np.ones((len(X), 2))}, r"predict returned shape \(200, 2\)"),
    ],
)
def test_plot_fit_rejects_bad_input(kwargs, message):
    args = {"x": np.arange(5.0), "y": np.arange(5.0), "coef": 1.0, **kwargs}
    with pytest.raises(ValueError, match=message):
        plot_fit(**args)


# ----- plot_points -----
def test_plot_points_draws_the_data_alone(tmp_path, line_data):
    x, y = line_data
    fig = plot_points(x, y, title="data", xlabel="a", ylabel="b", path=tmp_path / "points.png")
    (ax,) = fig.axes
    assert len(ax.collections) == 1 and not ax.lines
    assert (ax.get_title(), ax.get_xlabel(), ax.get_ylabel()) == ("data", "a", "b")
    assert_png(tmp_path / "points.png")
    with pytest.raises(ValueError, match=r"x has shape \(3,\) but y has shape \(2,\)"):
        plot_points([1, 2, 3], [1, 2])


# ----- plot_loss -----
class History:
    """Stands in for a Keras-style History: the per-epoch lists on `.history`."""

    def __init__(self, history):
        self.history = history


KERAS_HISTORY = {
    "loss": [9.0, 5.0, 4.0, 3.5],
    "mae": [2.5, 2.0, 1.8, 1.7],
    "val_loss": [10.0, 6.0, 5.0, 4.5],
    "val_mae": [2.8, 2.2, 2.0, 1.9],
}


def test_plot_loss_pairs_each_curve_with_its_validation_partner():
    fig = plot_loss(History(KERAS_HISTORY), title="training")
    loss_ax, mae_ax = fig.axes
    for ax, name in [(loss_ax, "loss"), (mae_ax, "mae")]:
        train, val = ax.lines
        assert legend_texts(ax) == [name, f"val_{name}"]
        assert (train.get_linestyle(), val.get_linestyle()) == ("-", "--")
        assert train.get_color() == val.get_color()
        np.testing.assert_array_equal(train.get_xdata(), [1, 2, 3, 4])  # epochs count from 1
        np.testing.assert_array_equal(val.get_ydata(), KERAS_HISTORY[f"val_{name}"])
        assert (ax.get_xlabel(), ax.get_ylabel()) == ("epoch", name)
    assert loss_ax.lines[0].get_color() != mae_ax.lines[0].get_color()
    assert fig.get_suptitle() == "training"


@pytest.mark.parametrize(
    "history",
    [
        [4.0, 2.0, 1.0],
        np.array([4.0, 2.0, 1.0]),
        {"loss": [4.0, 2.0, 1.0]},
        History({"loss": [4.0, 2.0, 1.0]}),
        History(History({"loss": [4.0, 2.0, 1.0]})),  # a model holding its History
    ],
    ids=["list", "array", "dict", "History", "model"],
)
def test_plot_loss_accepts_lists_arrays_dicts_and_histories(history):
    (ax,) = plot_loss(history).axes
    (line,) = ax.lines
    np.testing.assert_array_equal(line.get_xydata(), [[1, 4.0], [2, 2.0], [3, 1.0]])
    assert legend_texts(ax) == ["loss"]


def test_plot_loss_draws_an_unpaired_validation_curve_dashed_in_its_own_panel():
    loss_ax, val_ax = plot_loss({"loss": [2.0, 1.0], "val_mae": [3.0, 2.0]}).axes
    assert legend_texts(loss_ax) == ["loss"]
    assert legend_texts(val_ax) == ["val_mae"] and val_ax.lines[0].get_linestyle() == "--"
    assert val_ax.get_ylabel() == "mae"


def test_plot_loss_chooses_log_scale_for_losses_spanning_many_decades():
    (ax,) = plot_loss(np.geomspace(1e4, 1e-2, 50)).axes
    assert ax.get_yscale() == "log"
    (ax,) = plot_loss(np.linspace(90.0, 1.0, 50)).axes  # under two decades
    assert ax.get_yscale() == "linear"
    (ax,) = plot_loss([5.0, -1.0, 1e-5]).axes  # not all positive
    assert ax.get_yscale() == "linear"


def test_plot_loss_log_scale_argument_overrides_the_choice():
    assert plot_loss(np.geomspace(1e4, 1e-2, 50), log_scale=False).axes[0].get_yscale() == "linear"
    assert plot_loss([3.0, 2.0, 1.0], log_scale=True).axes[0].get_yscale() == "log"


def test_plot_loss_writes_a_png(tmp_path):
    path = tmp_path / "loss.png"
    plot_loss(KERAS_HISTORY, path=path)
    assert os.listdir(tmp_path) == ["loss.png"]
    assert_png(path)


@pytest.mark.parametrize(
    ("history", "message"),
    [
        ([], "history is empty"),
        ({}, "history is empty"),
        ({"loss": [], "val_loss": []}, "history is empty"),
        (History({}), "history is empty"),
        (History(None), "no history"),
        (np.ones((3, 2)), r"history\['loss'\] has shape \(3, 2\)"),
        (2.0, r"has shape \(\)"),
    ],
)
def test_plot_loss_rejects_empty_or_malformed_history(history, message):
    with pytest.raises(ValueError, match=message):
        plot_loss(history)


# ----- plot_excess_loss -----
def test_plot_excess_loss_draws_each_optimum_in_its_curves_colour_and_the_excess_on_log_axes():
    history = {"loss": [9.0, 5.0, 4.5, 4.01], "val_loss": [10.0, 7.0, 6.5, 6.4]}
    fig = plot_excess_loss(history, {"loss": 4.0, "val_loss": 6.0}, title="t")
    ax, excess_ax = fig.axes
    assert ax.get_yscale() == excess_ax.get_yscale() == "log"
    loss, loss_level, val, val_level = ax.lines
    assert loss.get_color() == loss_level.get_color() != val.get_color() == val_level.get_color()
    assert loss_level.get_linestyle() == val_level.get_linestyle() == ":"
    np.testing.assert_array_equal(loss_level.get_ydata(), [4.0, 4.0])
    np.testing.assert_array_equal(val_level.get_ydata(), [6.0, 6.0])
    (excess,) = excess_ax.lines
    np.testing.assert_allclose(excess.get_ydata(), [5.0, 1.0, 0.5, 0.01])
    assert legend_texts(excess_ax) == ["loss - optimum"]
    assert fig.get_suptitle() == "t"


def test_plot_excess_loss_is_log_scaled_even_for_a_short_flat_run_and_leaves_gaps_at_or_below_the_optimum():
    fig = plot_excess_loss([2.0, 1.5, 1.0, 0.99], 1.0)  # a plain sequence of losses and one optimum
    ax, excess_ax = fig.axes
    assert ax.get_yscale() == excess_ax.get_yscale() == "log"
    ydata = excess_ax.lines[0].get_ydata()
    np.testing.assert_allclose(ydata[:2], [1.0, 0.5])
    assert np.isnan(ydata[2:]).all()  # 0 and -0.01 have no place on a log axis


def test_plot_excess_loss_sets_several_training_runs_side_by_side_in_both_panels():
    runs = {"scaled": [9.0, 2.0, 1.0], "raw": [9.0, 6.0, 5.0]}
    ax, excess_ax = plot_excess_loss(runs, {"scaled": 1.0, "raw": 1.0}).axes
    assert [line.get_label() for line in ax.lines] == ["scaled", "scaled at the optimum", "raw", "raw at the optimum"]
    scaled, raw = excess_ax.lines
    np.testing.assert_allclose(raw.get_ydata(), [8.0, 5.0, 4.0])
    assert (scaled.get_color(), raw.get_color()) == (ax.lines[0].get_color(), ax.lines[2].get_color())
    # the excess at the last epoch, in the legend for several runs (in the title for one)
    assert legend_texts(excess_ax) == ["scaled - optimum: none left (rounding)", "raw - optimum: 4"]
    assert excess_ax.get_title() == "above the optimum at the last epoch"
    assert plot_excess_loss([3.0, 2.0], 1.0).axes[1].get_title() == "above the optimum at the last epoch: 1"


def visible_ticks(axis):
    low, high = axis.get_view_interval()
    return [tick for tick in axis.get_ticklocs() if low <= tick <= high]


def test_log_axis_reaches_down_to_a_power_of_ten_just_below_the_curves():
    stalls = np.geomspace(400.0, 12.0, 50)  # flattens at 12: read against a tick at 10
    (ax,) = plot_loss(stalls, log_scale=True).axes
    assert 10 in visible_ticks(ax.yaxis)
    _, excess_ax = plot_excess_loss(stalls + 5.0, 5.0).axes
    assert 10 in visible_ticks(excess_ax.yaxis)
    (ax,) = plot_loss(np.geomspace(400.0, 30.0, 50), log_scale=True).axes  # 10 is too far below to reach for
    assert ax.get_ylim()[0] > 20
    ax.plot([1, 2], [0.5, 0.4])  # a curve added later still fits
    assert ax.get_ylim()[0] < 0.4


@pytest.mark.parametrize("draw", [plot_loss, lambda history, **kwargs: plot_excess_loss(history, 1.0, **kwargs)])
def test_a_loss_picture_takes_a_caption_under_its_panels(draw):
    sentence = "An epoch's loss is the mean over its batches, taken while the weights moved. " * 3
    fig = draw([4.0, 2.0, 1.5], caption=sentence)
    assert " ".join(fig.get_supxlabel().split()) == sentence.strip()
    assert "\n" in fig.get_supxlabel()  # wrapped to the figure's width
    assert draw([4.0, 2.0, 1.5]).get_supxlabel() == ""


@pytest.mark.parametrize(
    ("optimum", "message"),
    [
        ({"val_loss": 1.0}, "needs the level of 'loss'"),
        ({"loss": 1.0, "mae": 1.0}, "an optimum for 'mae'"),
        (float("nan"), "finite number"),
    ],
)
def test_plot_excess_loss_rejects_optima_it_cannot_place(optimum, message):
    with pytest.raises(ValueError, match=message):
        plot_excess_loss({"loss": [2.0, 1.0], "val_loss": [3.0, 2.0]}, optimum)


# ----- the command's pictures (tinygrad_lr.report; the `figures` fixture is conftest's) -----


def fit(capsys, tmp_path, *options):
    """`tinygrad-lr fit --quiet ...` in-process, pictures in tmp_path; its report."""
    from tinygrad_lr.cli import main

    assert main(["fit", *options, "--quiet", "--out-dir", str(tmp_path)]) == 0
    return capsys.readouterr().out


def test_cli_fit_png_names_the_bundled_columns_in_words_and_units(capsys, tmp_path, figures):
    fit(capsys, tmp_path, "--epochs", "2")
    ax = figures["plot_fit"].axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("average rooms per dwelling", "median price ($1000s)")
    fit(capsys, tmp_path, "--features", "rm", "lstat", "--epochs", "2")
    ax = figures["plot_fit"].axes[0]
    assert ax.get_xlabel() == "predicted median price ($1000s)" and ax.get_ylabel() == "actual median price ($1000s)"


def test_cli_fit_png_of_a_csv_keeps_its_column_names(capsys, tmp_path, figures):
    path = tmp_path / "rooms.csv"
    rooms = np.linspace(3.0, 9.0, 40)
    np.savetxt(path, np.column_stack([rooms, 9.0 * rooms - 30.0]), delimiter=",", header="rm,medv", comments="")
    fit(capsys, tmp_path, "--csv", str(path), "--target", "medv", "--epochs", "2")
    ax = figures["plot_fit"].axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("rm", "medv")  # a user's "rm" may mean anything


def test_cli_loss_png_of_mini_batches_says_an_epochs_loss_is_not_the_final_loss(capsys, tmp_path, figures):
    out = fit(capsys, tmp_path, "--epochs", "5", "--batch-size", "32")
    final = out.split("Final loss:")[1].split()[1].rstrip(",")  # "train 51.5726, validation ..."
    caption = " ".join(figures["plot_excess_loss"].get_supxlabel().split())
    assert caption == (
        "An epoch's loss is the mean over its 11 batches, taken while the weights moved; "
        f"the report's final loss, {final}, is the loss at the final weights."
    )
    fit(capsys, tmp_path, "--epochs", "5")  # full batch: no batches to explain
    assert figures["plot_excess_loss"].get_supxlabel() == ""
