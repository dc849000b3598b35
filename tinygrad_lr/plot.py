"""Pictures of a regression: the data with the fitted line, the loss curves, and their distance from the optimum.

matplotlib is imported inside the functions only, so `import tinygrad_lr` never pays for it.
Figures are built as `matplotlib.figure.Figure` objects, not through pyplot: that draws with no
display and no backend switch, and leaves the user's pyplot state (backend, open figures) alone.
Every function returns its Figure (a notebook shows it); with `path` it is also written there as
a PNG.
"""

from __future__ import annotations

import math
import os
import textwrap
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from tinygrad_lr.checks import check_number, check_pair
from tinygrad_lr.tensor import Tensor

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["plot_excess_loss", "plot_fit", "plot_loss", "plot_points"]

# One small style for every picture.
_PANEL_SIZE = (6.0, 4.2)  # inches, per panel
_DPI = 120
_POINTS: dict[str, Any] = {"s": 20, "alpha": 0.7, "linewidths": 0}
_TRAIN, _VALIDATION, _TEST = (
    {"color": "C0", "marker": "o"},
    {"color": "C1", "marker": "^"},
    {"color": "C2", "marker": "s"},
)
_FIT: dict[str, Any] = {"color": "C3", "linewidth": 2.0}
_REFERENCE: dict[str, Any] = {"color": "0.15", "linewidth": 1.5, "linestyle": "--"}
_LINE_SAMPLES = 200  # `predict` need not be a straight line
_LOG_SPAN = 100.0  # loss values spanning more than two decades get a log axis
_MARKERS_UP_TO = 20  # epochs; with more, markers only clutter the curve
_DECADE_REACH = 2.0  # the bottom of a log axis this close above a power of ten reaches down to it
_CAPTION_CHARACTERS = 13  # per inch of figure width: where a caption's lines wrap


def plot_fit(
    x: Any,
    y: Any,
    predict: Callable[[np.ndarray], Any] | None = None,
    *,
    x_val: Any = None,
    y_val: Any = None,
    x_test: Any = None,
    y_test: Any = None,
    coef: Any = None,
    intercept: Any = None,
    label: str = "fit",
    reference: tuple[Any, Any] | None = None,
    xlim: tuple[float, float] | None = None,
    title: str | None = None,
    xlabel: str = "x",
    ylabel: str = "y",
    path: str | os.PathLike | None = None,
) -> Figure:
    """Scatter of the data and the fitted line over its x range; train, validation and test side by side.

    x: (n,) or (n, 1), one feature; y: (n,) or (n, 1). The line, labelled `label`, comes from
    `predict` (maps an (m, 1) array to (m,) or (m, 1) predictions, e.g. `model.predict`) or from
    the floats `coef` and `intercept` (default 0). With `x_val`, `y_val` and `x_test`, `y_test` the
    validation and test data get panels of their own with the same line. `reference=(coef,
    intercept)` adds a dashed line labelled "closed form" (e.g. the result of `tl.solvers.ols`).
    `xlim=(low, high)` sets the span of the x axis and of the lines (default: the data's). With
    `path`, the figure is also written there as a PNG.
    """
    if predict is not None and (coef is not None or intercept is not None):
        raise ValueError("plot_fit: give predict or coef/intercept for the line, not both")
    if predict is None and coef is None:
        raise ValueError(
            "plot_fit: nothing to draw the line from; give predict (e.g. model.predict) or coef and intercept "
            "(to draw the data alone, use plot_points)"
        )
    line = _predicted_line(predict) if predict is not None else _straight_line(coef, intercept, "coef", "intercept")
    panels = [("train", *_xy(x, y, "plot_fit", "x", "y"), _TRAIN)]
    for name, part_x, part_y, style in (("validation", x_val, y_val, _VALIDATION), ("test", x_test, y_test, _TEST)):
        suffix = "val" if name == "validation" else name
        if (part_x is None) != (part_y is None):
            raise ValueError(f"plot_fit: give both x_{suffix} and y_{suffix} for a {name} panel, or neither")
        if part_x is not None:
            panels.append((name, *_xy(part_x, part_y, "plot_fit", f"x_{suffix}", f"y_{suffix}"), style))
    curves = [(label, line, _FIT)]
    if reference is not None:
        if not isinstance(reference, (tuple, list)) or len(reference) != 2:
            raise ValueError(f"plot_fit: reference must be a pair (coef, intercept), got {reference!r}")
        curves.append(("closed form", _straight_line(*reference, "reference coef", "reference intercept"), _REFERENCE))

    if xlim is not None:
        lo, hi = (check_number("plot_fit: xlim", end) for end in check_pair("plot_fit: xlim", xlim))
        if not lo < hi:
            raise ValueError(f"plot_fit: xlim must be (low, high) with low < high, got {xlim!r}")
    else:
        lo = min(px.min() for _, px, _, _ in panels)
        hi = max(px.max() for _, px, _, _ in panels)
    grid = np.linspace(lo, hi, _LINE_SAMPLES) if hi > lo else np.array([lo - 0.5, hi + 0.5])
    lines = [(label, draw(grid), style) for label, draw, style in curves]  # evaluate each line once

    fig, axes = _new_figure(len(panels), title, sharey=True)
    for ax, (name, px, py, style) in zip(axes, panels):
        _draw_points(ax, px, py, f"{name} data" if len(panels) > 1 else "data", style, xlabel)
        for label, values, line_style in lines:
            ax.plot(grid, values, label=label, **line_style)
        if len(panels) > 1:
            ax.set_title(f"{name} ({len(px)} rows)")
        if xlim is not None:
            ax.set_xlim(lo, hi)
        ax.legend(frameon=False)
    axes[0].set_ylabel(ylabel)
    return _save(fig, path)


def plot_points(
    x: Any,
    y: Any,
    *,
    title: str | None = None,
    xlabel: str = "x",
    ylabel: str = "y",
    path: str | os.PathLike | None = None,
) -> Figure:
    """Scatter of the data alone. x: (n,) or (n, 1), one feature; y: (n,) or (n, 1)."""
    x, y = _xy(x, y, "plot_points", "x", "y")
    fig, (ax,) = _new_figure(1, title)
    _draw_points(ax, x, y, "data", _TRAIN, xlabel)
    ax.set_ylabel(ylabel)
    return _save(fig, path)


def plot_loss(
    history: Any,
    *,
    title: str | None = None,
    log_scale: bool | None = None,
    caption: str | None = None,
    path: str | os.PathLike | None = None,
) -> Figure:
    """Per-epoch curves of training: one panel per quantity, its `val_` partner dashed beside it.

    `history`: a Keras-style History (anything with a `.history` dict, or a model holding one),
    a dict of per-epoch lists such as {"loss": [...], "val_loss": [...], "mae": [...]}, or a
    plain sequence of losses. Epochs are numbered from 1. The y axis is logarithmic when a
    panel's positive values span more than two decades, unless `log_scale` says otherwise.
    `caption`: a sentence under the panels (what the numbers mean).
    """
    curves = _curves(history, "plot_loss")
    groups = _groups(curves)
    fig, axes = _new_figure(len(groups), title, caption=caption)
    for i, (ax, keys) in enumerate(zip(axes, groups)):
        for key in keys:
            _draw_curve(ax, curves[key], key, f"C{i}")
        ax.set_ylabel(keys[0].removeprefix("val_"))
        log = _spans_decades([curves[key] for key in keys]) if log_scale is None else log_scale
        _finish_epochs_panel(ax, log)
    return _save(fig, path)


def plot_excess_loss(
    history: Any,
    optimum: float | Mapping[str, float],
    *,
    title: str | None = None,
    caption: str | None = None,
    path: str | os.PathLike | None = None,
) -> Figure:
    """Per-epoch loss beside the closed-form optimum, both panels on a log scale, the same in every run.

    Left, each curve with its optimum level drawn dotted in the curve's colour; right, each
    training curve's excess over its optimum, `loss - optimum`, which keeps falling in a straight
    line while training converges and flattens where it stalls. Epochs at or below the optimum
    (rounding once converged, or mini-batch noise) leave gaps there.

    `history`: as for `plot_loss`. `optimum`: the optimal training loss (e.g. the objective at
    `tl.solvers.ols`'s answer), or a dict of levels by curve, `{"loss": ..., "val_loss": ...}`. A
    `val_` curve's level (the validation loss at the training optimum, which is no minimum of it) is
    drawn on the left only; every other curve is a training loss, drawn in both panels (several runs
    to compare: `{"raw": [...], "scaled": [...]}` with a level each). `caption`: a sentence under the
    panels (what the numbers mean).
    """
    curves = _curves(history, "plot_excess_loss")
    levels = dict(optimum) if isinstance(optimum, Mapping) else {"loss": optimum}
    for key, level in levels.items():
        if key not in curves:
            raise ValueError(f"plot_excess_loss: an optimum for {key!r}, but the history has only {sorted(curves)}")
        levels[key] = check_number(f"plot_excess_loss: the optimum of {key!r}", level)
    training = [key for key in levels if not key.startswith("val_")]
    if not training:
        raise ValueError(
            "plot_excess_loss: optimum needs the level of 'loss' (or of another training curve), "
            "the training loss the optimum minimises"
        )

    fig, (ax, excess_ax) = _new_figure(2, title, caption=caption)
    colors = {key: f"C{i}" for i, key in enumerate(levels)}
    for key, level in levels.items():
        _draw_curve(ax, _positive(curves[key]), key, colors[key])
        ax.axhline(level, color=colors[key], linestyle=":", linewidth=1.5, label=f"{key} at the optimum")
    last = []  # the excess at the last epoch: in the title for one curve, in the legend for several
    for key in training:
        excess = curves[key] - levels[key]
        last.append(f"{excess[-1]:.2g}" if excess[-1] > 0 else "none left (rounding)")
        label = f"{key} - optimum" + (f": {last[-1]}" if len(training) > 1 else "")
        _draw_curve(excess_ax, _positive(excess), label, colors[key])
    ax.set_ylabel("loss")
    excess_ax.set_ylabel("loss - optimum (closed form)")
    shown = dict.fromkeys(f"{levels[key]:.4g}" for key in training)  # once each, in order
    ax.set_title(f"loss, and its level at the optimum ({', '.join(shown)})")
    excess_ax.set_title("above the optimum at the last epoch" + (f": {last[0]}" if len(training) == 1 else ""))
    for panel in (ax, excess_ax):
        _finish_epochs_panel(panel, log=True)
    return _save(fig, path)


# ----- shared drawing -----
def _draw_curve(ax: Axes, values: np.ndarray, key: str, color: str) -> None:
    """One per-epoch curve, epochs from 1; a `val_` curve dashed, markers only on short runs."""
    ax.plot(
        np.arange(1, len(values) + 1),
        values,
        label=key,
        color=color,
        linestyle="--" if key.startswith("val_") else "-",
        marker="o" if len(values) <= _MARKERS_UP_TO else None,
        markersize=3,
    )


def _finish_epochs_panel(ax: Axes, log: bool) -> None:
    """Whole epochs on the x axis, the legend; a log y axis whose bottom is near a power of ten reaches down to it."""
    from matplotlib.ticker import MaxNLocator

    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 5, 10]))
    if log:
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(_decade_reaching_locator())
        ax.autoscale_view(scalex=False)  # set_yscale autoscaled at once, with the locator it brought
    ax.legend(frameon=False)


def _decade_reaching_locator() -> Any:
    """A log axis's major locator: matplotlib's, but a bottom less than `_DECADE_REACH` above a power of ten
    reaches down to it, so a curve that flattens at 12 is read against a labelled 10, not 2×10¹ above it."""
    from matplotlib.ticker import LogLocator

    class DecadeReachingLocator(LogLocator):
        def view_limits(self, vmin: float, vmax: float) -> tuple[float, float]:
            # asked at every autoscale, so curves a caller adds later still fit
            vmin, vmax = super().view_limits(vmin, vmax)
            decade = 10.0 ** math.floor(math.log10(vmin))
            return (decade if vmin < _DECADE_REACH * decade else vmin), vmax

    return DecadeReachingLocator()


def _positive(values: np.ndarray) -> np.ndarray:
    """`values` with every entry that a log axis cannot show (<= 0, or not finite) set to NaN: a gap."""
    return np.where(np.isfinite(values) & (values > 0), values, np.nan)


def _new_figure(
    ncols: int, title: str | None, sharey: bool = False, caption: str | None = None
) -> tuple[Figure, list[Axes]]:
    """An empty figure of `ncols` panels side by side, in the house style, made without pyplot; `caption` below."""
    from matplotlib.figure import Figure

    width = _PANEL_SIZE[0] * ncols
    fig = Figure(figsize=(width, _PANEL_SIZE[1]), layout="constrained")
    if caption is not None:
        # The figure's x label is the one text that constrained layout keeps below the panels
        fig.supxlabel(textwrap.fill(caption, int(width * _CAPTION_CHARACTERS)), fontsize="medium")
    axes = list(fig.subplots(1, ncols, sharey=sharey, squeeze=False)[0])
    for ax in axes:
        ax.grid(True, alpha=0.3)
        ax.spines[["top", "right"]].set_visible(False)
    if title is not None and ncols == 1:
        axes[0].set_title(title)
    elif title is not None:
        fig.suptitle(title)
    return fig, axes


def _draw_points(ax: Axes, x: np.ndarray, y: np.ndarray, label: str, style: dict, xlabel: str) -> None:
    ax.scatter(x, y, label=label, **style, **_POINTS)
    ax.set_xlabel(xlabel)


def _save(fig: Figure, path: str | os.PathLike | None) -> Figure:
    """`fig`, first written as a PNG at exactly `path` when one is given."""
    if path is not None:
        # An explicit format: matplotlib would otherwise append ".png" to a path without a suffix.
        fig.savefig(path, dpi=_DPI, format="png")
    return fig


# ----- checking the inputs -----
def _array(data: Any) -> np.ndarray:
    return np.asarray(data.data if isinstance(data, Tensor) else data, dtype=float)


def _check_column(array: np.ndarray, fn: str, name: str, what: str) -> None:
    """`array` must be finite, of shape (n,) or (n, 1): one column; `what` names it."""
    if array.ndim not in (1, 2) or (array.ndim == 2 and array.shape[1] != 1):
        many = f", i.e. {array.shape[1]} {what}s" if array.ndim == 2 else ""
        raise ValueError(
            f"{fn}: {name} has shape {array.shape}{many}; expected (n,) or (n, 1), one {what}"
            + (f"; to draw one of them pass a column, e.g. {name}[:, j]" if many else "")
        )
    if not np.isfinite(array).all():
        raise ValueError(f"{fn}: {name} contains NaN or inf; drop those samples first")


def _xy(x: Any, y: Any, fn: str, x_name: str, y_name: str) -> tuple[np.ndarray, np.ndarray]:
    """x and y as 1-D float arrays of one feature and one target, checked to match."""
    xs, ys = _array(x), _array(y)
    _check_column(xs, fn, x_name, "feature")
    _check_column(ys, fn, y_name, "target")
    if len(xs) != len(ys):
        raise ValueError(
            f"{fn}: {x_name} has shape {xs.shape} but {y_name} has shape {ys.shape}; "
            "they must describe the same samples"
        )
    if len(xs) == 0:
        raise ValueError(f"{fn}: {x_name} and {y_name} hold no samples; there is nothing to draw")
    return xs.reshape(-1), ys.reshape(-1)


def _number(value: Any, name: str) -> float:
    array = _array(value)
    if array.size != 1:
        raise ValueError(f"plot_fit: {name} must be one number (one feature), got shape {array.shape}")
    return float(array.reshape(-1)[0])


def _straight_line(
    coef: Any, intercept: Any, coef_name: str, intercept_name: str
) -> Callable[[np.ndarray], np.ndarray]:
    """grid (m,) -> coef * grid + intercept (m,); a missing intercept is 0."""
    slope = _number(coef, coef_name)
    offset = 0.0 if intercept is None else _number(intercept, intercept_name)
    return lambda grid: slope * grid + offset


def _predicted_line(predict: Callable[[np.ndarray], Any]) -> Callable[[np.ndarray], np.ndarray]:
    """grid (m,) -> predict(grid as (m, 1)) as (m,), its shape checked."""
    if not callable(predict):
        raise TypeError(f"plot_fit: predict must be callable (e.g. model.predict), got {type(predict).__name__}")

    def line(grid: np.ndarray) -> np.ndarray:
        m = len(grid)
        values = _array(predict(grid.reshape(m, 1)))
        if values.shape not in ((m,), (m, 1)):
            raise ValueError(
                f"plot_fit: predict returned shape {values.shape} for input of shape ({m}, 1); "
                f"expected ({m},) or ({m}, 1), one prediction per sample"
            )
        return values.reshape(m)

    return line


def _curves(history: Any, fn: str) -> dict[str, np.ndarray]:
    """The per-epoch curves of a model, a History, a dict of lists, or a plain sequence of losses."""
    for _ in range(2):  # a model holds a History, which holds the dict
        if not isinstance(history, Mapping) and hasattr(history, "history"):
            history = history.history
    if history is None:
        raise ValueError(f"{fn}: no history to draw (was the model trained with fit?)")
    if not isinstance(history, Mapping):
        history = {"loss": history}
    curves = {}
    for key, values in history.items():
        array = _array(values)
        if array.ndim != 1:
            raise ValueError(f"{fn}: history[{key!r}] has shape {array.shape}; expected one value per epoch")
        if len(array):
            curves[str(key)] = array
    if not curves:
        raise ValueError(f"{fn}: the history is empty, no epoch to draw; train for at least one epoch first")
    return curves


def _groups(curves: Mapping[str, np.ndarray]) -> list[list[str]]:
    """Keys grouped one panel each: "loss" with "val_loss", "mae" with "val_mae", in dict order."""
    groups = []
    for key in curves:
        if key.startswith("val_") and key.removeprefix("val_") in curves:
            continue  # drawn beside its training partner
        partner = "val_" + key
        groups.append([key, partner] if partner in curves else [key])
    return groups


def _spans_decades(curves: list[np.ndarray]) -> bool:
    """True when the finite values are all positive and span more than two decades."""
    values = np.concatenate(curves)
    values = values[np.isfinite(values)]
    return values.size > 0 and values.min() > 0 and values.max() / values.min() > _LOG_SPAN
