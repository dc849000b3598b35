"""The report of `tinygrad-lr fit`: a finished experiment turned into the lines and the pictures.

`report` sets the learned weights beside the closed-form optimum in the data's original units
(an equation for one feature, a table for several), then the gap between them, the final losses
and R²; `line` is the label column the command's other lines share (numbers are
`experiment.number`'s). `write_pictures` draws `fit.png` (the bundled data's axes in words and
units) and `loss.png`. Nothing here trains or reads files: it formats the `Dataset` and `Result`
of `tinygrad_lr.experiment`, and imports only lower layers (never `tinygrad_lr.cli`).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import tinygrad_lr as tl
from tinygrad_lr.experiment import Dataset, Result, Settings, UsageError, data_notes, number

__all__ = ["HUGE", "LABEL", "line", "made_directory", "preamble", "predictions_csv", "report", "write_pictures"]

LABEL = 14  # width of the labels in the report ("Closed form:  ")
PICTURE_ROWS = 10_000  # rows of a chunked data set drawn in fit.png: the first ones of each part
HUGE = 1e6  # a percentage or R² this large is shown in scientific notation, not as dozens of digits
# A relative difference this small is the machine's rounding, not training's: its digits change with the
# order of the sums (another BLAS, another machine), so the report shows "~0" instead of them.
ROUNDING = 1e-12


# ----- the lines -----


def preamble(settings: Settings, data: Dataset, lr: float) -> list[str]:
    """What the run is about to do: the data (source, target, features, rows per part) and the training."""
    counts = f"{len(data.X_train)} train / {len(data.X_val)} validation / {len(data.X_test)} test rows"
    plural = "s" if len(data.features) > 1 else ""
    batch = f"batches of {settings.batch_size}" if settings.batch_size else f"full batch ({len(data.X_train)} rows)"
    how = f"{settings.optimizer} (lr {lr:g}), {settings.epochs} epochs, {batch}, l2 {settings.l2:g}"
    how += f", seed {settings.seed}"
    return [
        line("Data:", f"{data.source}, target {data.target}, feature{plural} {', '.join(data.features)}; {counts}"),
        line("Training:", how + (", features standardised" if settings.standardize else "")),
    ]


def predictions_csv(target: str, predictions: np.ndarray) -> str:
    """`tinygrad-lr predict`'s output: one column named after the target, as the csv module writes it (the
    name quoted where it needs it: "price, USD"), each value as repr writes it (the shortest text that
    reads back as the same float64), a line each."""
    table = io.StringIO()
    csv.writer(table, lineterminator="\n").writerows([[target], *([repr(float(value))] for value in predictions)])
    return table.getvalue()


def line(label: str, text: str) -> str:
    """The label padded to the report's label column, then the text: 'Gap:          ...'."""
    return f"{label:<{LABEL}}{text}"


def _percent(value: float) -> str:
    """'+4.5e-14%', '+0.076%', '+29%', '+14,892%', '+2.3e+74%'."""
    if not abs(value) < HUGE:
        return f"{value:+.2g}%"
    if abs(value) >= 100:
        return f"{value:+,.0f}%"
    return f"{value:+.2g}%" if abs(value) >= 0.01 else f"{value:+.1e}%"


def _gap(difference: float, scale: float) -> str:
    """An absolute difference between numbers of size `scale`, as '9.8e-08', or '~0' within rounding."""
    return "~0" if difference <= ROUNDING * scale else f"{difference:.2g}"


def _equation(target: str, features: list[str], coef: np.ndarray, intercept: float) -> str:
    """'medv = 8.60187 * rm - 31.7951'."""
    text = ""
    for name, w in zip(features, coef):
        if not text:
            text = f"{number(w)} * {name}"
        else:
            text += f" {'-' if w < 0 else '+'} {number(abs(w))} * {name}"
    return f"{target} = {text} {'-' if intercept < 0 else '+'} {number(abs(intercept))}"


def _table(features: list[str], result: Result) -> list[str]:
    """One row per weight and one for the bias: learned, closed form, and their distance."""
    rows = [("", "learned", "closed form", "|Δ|")]
    for name, w, w_star in zip(features, result.coef, result.optimum_coef):
        rows.append((name, number(w), number(w_star), _gap(abs(w - w_star), max(abs(w), abs(w_star)))))
    b, b_star = result.intercept, result.optimum_intercept
    rows.append(("(bias)", number(b), number(b_star), _gap(abs(b - b_star), max(abs(b), abs(b_star)))))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = []
    for name, *numbers in rows:
        cells = [name.ljust(widths[0])] + [cell.rjust(width) for cell, width in zip(numbers, widths[1:])]
        lines.append(" " * LABEL + "  ".join(cells))
    return lines


def report(settings: Settings, data: Dataset, result: Result) -> list[str]:
    """The lines printed after training."""
    n_train = len(data.X_train)
    solver = "ols" if settings.l2 == 0 else f"ridge (l2 {settings.l2:g})"
    rows = f"{n_train} {'standardised ' if settings.standardize else ''}training rows"
    how = f"({solver} on the same {rows}{', back in original units' if settings.standardize else ''})"
    lines = []
    if len(data.features) == 1:
        lines.append(line("Learned:", _equation(data.target, data.features, result.coef, result.intercept)))
        closed = _equation(data.target, data.features, result.optimum_coef, result.optimum_intercept)
        lines.append(line("Closed form:", f"{closed}   {how}"))
    else:
        lines.append(line("Weights:", f"learned, beside the closed form {how}"))
        lines.extend(_table(data.features, result))
    weight_gap = _gap(
        float(np.max(np.abs(result.coef - result.optimum_coef))),
        float(max(np.max(np.abs(result.coef)), np.max(np.abs(result.optimum_coef)))),
    )
    bias_gap = _gap(
        abs(result.intercept - result.optimum_intercept), max(abs(result.intercept), abs(result.optimum_intercept))
    )
    excess = result.train_loss - result.optimum_loss
    if abs(excess) <= ROUNDING * result.optimum_loss:
        relative = "equal to 12 digits"
    else:
        relative = _percent(100 * excess / result.optimum_loss) if result.optimum_loss > 0 else f"{excess:+.2g}"
    max_ = "max " if len(data.features) > 1 else ""
    lines.append(
        line(
            "Gap:",
            f"{max_}|Δweight| = {weight_gap}, |Δbias| = {bias_gap}; "
            f"train loss {number(result.train_loss)} vs optimum {number(result.optimum_loss)} ({relative})",
        )
    )
    if result.val_loss is None or result.optimum_val_loss is None:  # (both None, or neither)
        losses = f"train {number(result.train_loss)}; no validation rows (--validation-split 0)"
    else:
        losses = (
            f"train {number(result.train_loss)}, validation {number(result.val_loss)}   "
            f"(closed form: validation {number(result.optimum_val_loss)})"
        )
    lines.append(line("Final loss:", losses + (", l2 term included" if settings.l2 > 0 else "")))

    if len(data.X_test):
        where, label, y_r2 = f"{len(data.X_test)} test rows", "R² on test:", data.y_test
    else:
        where, label = f"{n_train} training rows; --test-split 0 leaves no test rows", "R² on train:"
        y_r2 = data.y_train

    def r2(value: float) -> str:
        if math.isnan(value):
            return "undefined (the target is constant)" if np.ptp(y_r2) == 0 else "undefined (beyond float64)"
        return f"{value:.4f}" if abs(value) < HUGE else f"{value:.4g}"

    lines.append(line(label, f"{r2(result.r2)}   (closed form {r2(result.optimum_r2)}; {where})"))
    if not result.diverged and excess > 1e-3 * max(result.optimum_loss, 1e-12):
        lines.append(
            line(
                "Note:",
                "training stopped short of the optimum; try more --epochs, another --lr, or --standardize",
            )
        )
    lines += [line("Note:", note) for note in data_notes(data)]
    return lines


# ----- the pictures -----


def made_directory(path: str) -> Path:
    """The folder the pictures go to (--out-dir), made if missing; a UsageError if it cannot be."""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--out-dir {path}: that is a file, not a directory")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"--out-dir {path}: cannot create the directory ({error.strerror or error})") from None
    return folder


def write_pictures(settings: Settings, data: Dataset, result: Result, out_dir: Path) -> list[Path]:
    """fit.png (the line over train and test data, or actual against predicted) and loss.png; a UsageError
    when they cannot be written or drawn."""
    try:
        return _draw(settings, data, result, out_dir)
    except OSError as error:
        where = error.filename or out_dir
        raise UsageError(f"cannot write the pictures to {where} ({error.strerror or error})") from None
    except (ValueError, OverflowError) as error:
        # matplotlib gives up on some values near the ends of float64 (its tick labels, its log scale)
        raise UsageError(f"cannot draw the pictures of values this extreme ({error}); try --standardize") from None


def _draw(settings: Settings, data: Dataset, result: Result, out_dir: Path) -> list[Path]:
    fit_path, loss_path = out_dir / "fit.png", out_dir / "loss.png"
    n_train = len(data.X_train)  # all of them, before only the first are kept for drawing
    parts = ("X_train", "y_train", "X_val", "y_val", "X_test", "y_test")  # (of a Dask array: its first rows)
    pictured: dict[str, Any] = {
        part: tl.sources.as_source(getattr(data, part)).rows_to_draw(PICTURE_ROWS) for part in parts
    }
    data = dataclasses.replace(data, **pictured)

    def axis(column: str) -> str:
        # the bundled data's columns in words and units; a user's CSV keeps its header's names
        return tl.datasets.BOSTON_LABELS[column] if settings.csv is None else column

    if len(data.features) == 1:
        tl.plot.plot_fit(
            data.X_train[:, 0],
            data.y_train,
            coef=result.coef[0],
            intercept=result.intercept,
            reference=(result.optimum_coef[0], result.optimum_intercept),
            title=f"{data.target} against {data.features[0]}: {data.source}",
            xlabel=axis(data.features[0]),
            ylabel=axis(data.target),
            path=fit_path,
            **_held_out_panels(data, lambda X: X[:, 0]),
        )
    else:
        # Several features: no line to draw over one of them. Plotted against its own prediction,
        # the model is the line actual = predicted; the spread around it is what it misses.
        def predict(X: np.ndarray) -> np.ndarray:
            return X @ result.coef + result.intercept

        tl.plot.plot_fit(
            predict(data.X_train),
            data.y_train,
            coef=1.0,
            intercept=0.0,
            label="perfect prediction (actual = predicted)",
            title=f"actual {data.target} against predicted, {len(data.features)} features: {data.source}",
            xlabel=f"predicted {axis(data.target)}",
            ylabel=f"actual {axis(data.target)}",
            path=fit_path,
            **_held_out_panels(data, predict),
        )
    optimum = {"loss": result.optimum_loss}
    if result.optimum_val_loss is not None:
        optimum["val_loss"] = result.optimum_val_loss
    tl.plot.plot_excess_loss(
        result.history,
        optimum,
        title=f"{settings.optimizer} on {data.source}: loss per epoch",
        caption=_epoch_loss_caption(settings, n_train, result),
        path=loss_path,
    )
    return [fit_path, loss_path]


def _epoch_loss_caption(settings: Settings, n_train: int, result: Result) -> str | None:
    """Why the last epoch's loss in loss.png is not the report's final loss, for mini-batch runs."""
    if not settings.batch_size or settings.batch_size >= n_train:
        return None
    batches = -(-n_train // settings.batch_size)
    return (
        f"An epoch's loss is the mean over its {batches} batches, taken while the weights moved; "
        f"the report's final loss, {number(result.train_loss)}, is the loss at the final weights."
    )


def _held_out_panels(data: Dataset, x_of: Callable[[np.ndarray], np.ndarray]) -> dict[str, Any]:
    """plot_fit's validation and test arguments for the parts that have rows; `x_of(X)` is what is drawn as x."""
    panels = {}
    for part, X, y in (("val", data.X_val, data.y_val), ("test", data.X_test, data.y_test)):
        if len(X):
            panels[f"x_{part}"], panels[f"y_{part}"] = x_of(X), y
    return panels
