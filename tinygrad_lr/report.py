"""The report of `tinygrad-lr fit`: a finished run turned into the lines the command prints.

`report` sets the learned weights beside the closed-form optimum in the data's original units
(an equation for one feature, a table for several), then the gap between them, the final losses
and R²; `line` and `number` are the label column and the number format that the command's other
lines and messages share. Nothing here trains or reads files: `Dataset` and `Result` are what
`tinygrad_lr.cli` hands over once the run is done. The module sits at the command line's level, at
the top of the package, and imports only lower layers (never `tinygrad_lr.cli`).
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass

import numpy as np

from tinygrad_lr.callbacks import History
from tinygrad_lr.nn import Module

__all__ = ["HUGE", "LABEL", "Dataset", "Result", "line", "number", "report"]

LABEL = 14  # width of the labels in the report ("Closed form:  ")
HUGE = 1e6  # a percentage or R² this large is shown in scientific notation, not as dozens of digits


# ----- what a run hands over -----


@dataclass
class Dataset:
    """The rows split three ways, in the data's original units. X: (n, d), y: (n,)."""

    source: str  # "Boston housing (bundled)" or the CSV path
    target: str
    features: list[str]
    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray


@dataclass
class Result:
    """Learned and closed-form (coef (d,), intercept) in original units, objectives, R² and the history."""

    initial_loss: float  # the training objective at the initial weights
    coef: np.ndarray
    intercept: float
    optimum_coef: np.ndarray
    optimum_intercept: float
    train_loss: float
    optimum_loss: float
    val_loss: float | None
    optimum_val_loss: float | None
    r2: float
    optimum_r2: float
    history: History
    model: Module | None = None  # the trained model, taking the (possibly standardised) features

    @property
    def diverged(self) -> bool:
        """Training made the objective worse than at the initial weights, or beyond float64."""
        return not math.isfinite(self.train_loss) or self.train_loss > self.initial_loss


# ----- the lines -----


def line(label: str, text: str) -> str:
    """The label padded to the report's label column, then the text: 'Gap:          ...'."""
    return f"{label:<{LABEL}}{text}"


def number(value: float) -> str:
    """A value to six significant digits, as every weight and loss the command prints."""
    return f"{value:.6g}"


def _percent(value: float) -> str:
    """'+4.5e-14%', '+0.076%', '+29%', '+14,892%', '+2.3e+74%'."""
    if not abs(value) < HUGE:
        return f"{value:+.2g}%"
    if abs(value) >= 100:
        return f"{value:+,.0f}%"
    return f"{value:+.2g}%" if abs(value) >= 0.01 else f"{value:+.1e}%"


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
        rows.append((name, number(w), number(w_star), f"{abs(w - w_star):.2g}"))
    gap = abs(result.intercept - result.optimum_intercept)
    rows.append(("(bias)", number(result.intercept), number(result.optimum_intercept), f"{gap:.2g}"))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = []
    for name, *numbers in rows:
        cells = [name.ljust(widths[0])] + [cell.rjust(width) for cell, width in zip(numbers, widths[1:])]
        lines.append(" " * LABEL + "  ".join(cells))
    return lines


def report(args: argparse.Namespace, data: Dataset, result: Result) -> list[str]:
    """The lines printed after training."""
    n_train = len(data.X_train)
    solver = "ols" if args.l2 == 0 else f"ridge (l2 {args.l2:g})"
    rows = f"{n_train} {'standardised ' if args.standardize else ''}training rows"
    how = f"({solver} on the same {rows}{', back in original units' if args.standardize else ''})"
    lines = []
    if len(data.features) == 1:
        lines.append(line("Learned:", _equation(data.target, data.features, result.coef, result.intercept)))
        closed = _equation(data.target, data.features, result.optimum_coef, result.optimum_intercept)
        lines.append(line("Closed form:", f"{closed}   {how}"))
    else:
        lines.append(line("Weights:", f"learned, beside the closed form {how}"))
        lines.extend(_table(data.features, result))
    weight_gap = float(np.max(np.abs(result.coef - result.optimum_coef)))
    bias_gap = abs(result.intercept - result.optimum_intercept)
    excess = result.train_loss - result.optimum_loss
    relative = _percent(100 * excess / result.optimum_loss) if result.optimum_loss > 0 else f"{excess:+.2g}"
    max_ = "max " if len(data.features) > 1 else ""
    lines.append(
        line(
            "Gap:",
            f"{max_}|Δweight| = {weight_gap:.2g}, |Δbias| = {bias_gap:.2g}; "
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
    lines.append(line("Final loss:", losses + (", l2 term included" if args.l2 > 0 else "")))

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
    return lines
