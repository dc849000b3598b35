"""The command line: `tinygrad-lr fit` trains a linear model and sets it beside the closed-form optimum.

    tinygrad-lr fit                                     # price against rooms, bundled Boston housing data
    tinygrad-lr fit --features rm lstat ptratio --standardize --save-weights boston.npz
    tinygrad-lr fit --csv data.csv --target y --standardize --out-dir results
    tinygrad-lr predict --weights boston.npz --csv new_rows.csv --out predictions.csv

It trains `Sequential([Linear(d, 1)])` in float64 with `model.fit`, solves the same objective
exactly with `tl.solvers.ols` / `ridge` on the same training rows, and prints both in the data's
original units with the gap between them, the final losses, and R² on held-out test rows (the
lines of `tinygrad_lr.report`); then it writes `fit.png` and `loss.png`, and with `--save-weights`
the weights with everything `predict` needs: the feature names, the target's name and the scaling.
Bad input ends with one line on stderr, `tinygrad-lr: error: ...`, and exit code 2; a run that
diverges prints its report, then such a line, and exits 1.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import functools
import io
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import tinygrad_lr as tl
from tinygrad_lr import checks
from tinygrad_lr.report import Dataset, Result, line, number, report

__all__ = ["SavedModel", "build_parser", "load_weights", "main", "save_weights"]

PROG = "tinygrad-lr"
OPTIMIZERS = ("gd", "adam", "rmsprop")  # names in tl.optim.BY_NAME
# Default learning rates. Adam and RMSprop move each parameter by about `lr` per step, whatever the
# gradient's scale, and on the Boston data the bias has to travel ~30 units: with lr 2, Adam's
# 1000 full-batch steps reach the closed form; RMSprop, having no momentum, ends hovering within
# about 0.5% of the optimal loss at 0.1. Gradient descent's step must instead fit the curvature, so
# its default comes from the data (see `_default_lr`).
DEFAULT_LR = {"adam": 2.0, "rmsprop": 0.1}
DEFAULT_EPOCHS = 1000
PROGRESS_LINES = 10  # with more epochs than twice this, only about this many progress reports
CHUNKED_ABOVE = 1 << 30  # a CSV file larger than this (bytes) is read in chunks by dask.dataframe
CSV_BLOCKSIZE = "64MB"  # bytes of CSV text per chunk
PICTURE_ROWS = 10_000  # rows of a chunked data set drawn in fit.png: the first ones of each part
DEFAULT_FEATURES = ["rm"]  # of the bundled Boston data: price against rooms
ALL = "all"  # --features all: every column but the target
WEIGHTS_FORMAT = "tinygrad-lr fit --save-weights, version 1"  # the "format" member of a weights file


class UsageError(Exception):
    """Bad input: reported as one line on stderr, exit code 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but every error is one line (no usage block), like the rest of the command's errors."""

    def error(self, message: str):
        raise UsageError(f"{message} (see '{self.prog} --help')")


# ----- the options -----


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Train a linear model by gradient descent and compare it with the closed-form optimum.",
        epilog=f"Run '{PROG} fit --help' for its options. With no command, this help is shown and the exit code is 2.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {tl.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    fit = commands.add_parser(
        "fit",
        help="train a linear model, compare it with the closed form, write fit.png and loss.png",
        description=(
            "Train a linear model (one Linear layer, float64) on the bundled Boston housing data (price medv "
            "against rooms rm, Keras' train/test split) or on a CSV file; print the learned weights and bias in "
            "the data's original units beside the closed-form optimum of the same objective on the same "
            "training rows, the final losses and R² on the test rows; write fit.png and loss.png."
        ),
    )
    data = fit.add_argument_group("data")
    data.add_argument(
        "--csv",
        metavar="PATH",
        help="Train on this CSV file (a header row of column names, then rows of numbers) "
        "instead of the bundled Boston housing data.",
    )
    data.add_argument("--target", metavar="COL", help="The column to predict; required with --csv.")
    data.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="Read the CSV in chunks with dask.dataframe and train on a running dask.distributed scheduler at "
        "this address (e.g. tcp://10.0.0.5:8786): each step's gradient is summed on its workers. A CSV file over "
        f"{CHUNKED_ABOVE >> 30} GiB is read in chunks without this option too, on this machine's threads. "
        'Needs the optional extra: pip install "tinygrad_lr[dask]".',
    )
    data.add_argument(
        "--features",
        metavar="COL",
        nargs="+",
        help="The columns to predict from, or 'all' for every column but the target. For a CSV the default is "
        f"all; for the bundled Boston data it is {DEFAULT_FEATURES[0]}, and any of its 13 columns may be named: "
        f"{', '.join(tl.datasets.BOSTON_FEATURES)}.",
    )
    data.add_argument(
        "--test-split",
        metavar="FRACTION",
        type=float,
        default=0.2,
        help="Fraction of the rows held out to report R² on: rows of a CSV drawn at random (seeded by --seed, "
        "each part kept in file order), Keras' test split of the Boston data (default 0.2; 0 reports R² on the "
        "training rows instead).",
    )
    data.add_argument(
        "--validation-split",
        metavar="FRACTION",
        type=float,
        default=0.2,
        help="Fraction of the remaining rows kept out of training to report the validation loss each epoch: "
        "rows of a CSV drawn at random (seeded by --seed), the last ones of the Boston data as in Keras "
        "(default 0.2; 0 for none).",
    )
    data.add_argument(
        "--standardize",
        action="store_true",
        help="Scale each feature to mean 0 and variance 1 (as measured on the training rows) before training; "
        "the weights are still reported in the data's original units.",
    )
    training = fit.add_argument_group("training")
    training.add_argument(
        "--optimizer",
        choices=list(OPTIMIZERS),
        default="adam",
        help="The update rule: plain gradient descent, Adam or RMSprop (default adam).",
    )
    training.add_argument(
        "--lr",
        type=float,
        help=f"Learning rate (default {DEFAULT_LR['adam']:g} for adam, {DEFAULT_LR['rmsprop']:g} for rmsprop, "
        "and for gd 1/L: half the largest stable rate on the training rows).",
    )
    training.add_argument(
        "--epochs",
        metavar="N",
        type=int,
        default=DEFAULT_EPOCHS,
        help=f"Passes over the training rows (default {DEFAULT_EPOCHS}); with more than {2 * PROGRESS_LINES}, "
        f"progress is shown for about {PROGRESS_LINES} of them.",
    )
    training.add_argument(
        "--batch-size",
        metavar="N",
        type=int,
        help="Rows per gradient step, shuffled each epoch (default: all training rows, one full-batch step per epoch).",
    )
    training.add_argument(
        "--l2",
        type=float,
        default=0.0,
        help="Ridge penalty: adds l2·Σw² over the weights (not the bias) to the loss, and the closed form "
        "becomes ridge with the same l2 (default 0).",
    )
    training.add_argument(
        "--seed",
        metavar="N",
        type=int,
        default=0,
        help="Seed of the initial weights, of the batch shuffling and of a CSV's test rows, so that a run repeats "
        "exactly (default 0).",
    )
    output = fit.add_argument_group("output")
    output.add_argument(
        "--out-dir",
        metavar="DIR",
        default=".",
        help="Directory to write fit.png and loss.png to, created if missing (default: the current directory).",
    )
    output.add_argument(
        "--save-weights",
        metavar="PATH",
        help="Write the learned weights to this .npz file, with the feature names, the target's name and the "
        "scaling: all that 'tinygrad-lr predict' needs (not written when training diverges).",
    )
    output.add_argument(
        "--quiet",
        action="store_true",
        help="Print the results only (notes included): no data summary and no progress lines.",
    )

    predict = commands.add_parser(
        "predict",
        help="apply weights saved by 'fit --save-weights' to the rows of a CSV file",
        description=(
            "Predict the target for each row of a CSV file with weights saved by 'tinygrad-lr fit --save-weights': "
            "the file's columns are found by the saved feature names (other columns are ignored) and scaled as in "
            "training. The predictions are written as a CSV of one column, named after the target."
        ),
    )
    predict.add_argument(
        "--weights", metavar="PATH", required=True, help="The .npz file written by 'tinygrad-lr fit --save-weights'."
    )
    predict.add_argument(
        "--csv",
        metavar="FILE",
        required=True,
        help="The rows to predict: a header row of column names, then rows of numbers; it must hold every "
        "feature the weights were trained on.",
    )
    predict.add_argument(
        "--out", metavar="FILE", help="Write the predictions to this CSV file (default: standard output)."
    )
    return parser


def _check_options(args: argparse.Namespace) -> None:
    """The checks argparse cannot make: ranges, and options that only make sense together."""
    if args.csv is None:
        if args.target is not None:
            raise UsageError(
                f"--target needs --csv PATH (the bundled Boston data's target is {tl.datasets.BOSTON_TARGET})"
            )
    elif args.target is None:
        raise UsageError("--csv needs --target COL, the column to predict")
    if args.scheduler is not None and args.csv is None:
        raise UsageError("--scheduler needs --csv PATH (the bundled Boston data are read in memory)")
    if args.features is not None and ALL in args.features and len(args.features) > 1:
        raise UsageError(f"--features {ALL} stands alone: it means every column but the target")

    try:  # the package's own checks, so that the options say what its functions would say
        checks.check_fraction("--test-split", args.test_split)
        checks.check_fraction("--validation-split", args.validation_split)
        if args.lr is not None:
            checks.check_number("--lr", args.lr, low=0.0, low_inclusive=False)
        checks.check_count("--epochs", args.epochs)
        if args.batch_size is not None:
            checks.check_count("--batch-size", args.batch_size)
        checks.check_number("--l2", args.l2, low=0.0)
        checks.check_count("--seed", args.seed, minimum=0)
    except ValueError as error:
        raise UsageError(str(error)) from None


# ----- the data -----


def _split(X: np.ndarray, y: np.ndarray, fraction: float, option: str, seed: np.random.Generator | None = None):
    """tl.data.validation_split (the last rows), or with a seed tl.data.random_split; errors blame `option`."""
    split = tl.data.validation_split if seed is None else functools.partial(tl.data.random_split, seed=seed)
    try:
        return split(X, y, fraction)
    except ValueError as error:
        reason = str(error).removeprefix("validation_split: ").removeprefix("random_split: ")
        raise UsageError(f"{option} {fraction:g}: {reason}") from None


def _csv_features(args: argparse.Namespace) -> list[str] | None:
    """--features for a CSV: None (every column but the target) for the default and for 'all'."""
    return None if args.features in (None, [ALL]) else args.features


def _boston_features(args: argparse.Namespace) -> list[str]:
    """--features for the bundled data, checked against its columns."""
    if args.features is None:
        return DEFAULT_FEATURES
    if args.features == [ALL]:
        return list(tl.datasets.BOSTON_FEATURES)
    columns = [*tl.datasets.BOSTON_FEATURES, tl.datasets.BOSTON_TARGET]
    try:  # the CSV reader's rules and messages
        return tl.data._choose_features("--features", columns, tl.datasets.BOSTON_TARGET, args.features)
    except ValueError as error:
        raise UsageError(f"{error} (the bundled Boston data)") from None


def _leaves_training_rows(n: int, validation_split: float) -> bool:
    """Whether `tl.data.validation_split` of n rows keeps at least one to train on (Keras' arithmetic)."""
    return math.floor(n * (1.0 - validation_split)) >= 1


def _check_training_rows(args: argparse.Namespace, n_fit: int, n_rows: int) -> None:
    """Blame --test-split when it, and not --validation-split alone, leaves no row to train on."""
    v = args.validation_split
    if args.test_split > 0 and not _leaves_training_rows(n_fit, v) and _leaves_training_rows(n_rows, v):
        raise UsageError(
            f"--test-split {args.test_split:g} leaves {n_fit} of the {n_rows} rows for training and validation, "
            f"too few to train on after --validation-split {v:g}; use a smaller --test-split"
        )


def load_data(args: argparse.Namespace) -> Dataset:
    if args.csv is not None and _chunked(args):
        return _load_chunked(args)
    if args.csv is None:
        # Keras' boston_housing split, then price against the average number of rooms
        (X_fit, y_fit), (X_test, y_test) = tl.datasets.load_boston_housing(test_split=args.test_split)
        source, target, features = "Boston housing (bundled)", tl.datasets.BOSTON_TARGET, _boston_features(args)
        columns = [tl.datasets.BOSTON_FEATURES.index(name) for name in features]
        X_fit, X_test = X_fit[:, columns], X_test[:, columns]
    else:
        try:
            X, y, features = tl.data.load_csv(args.csv, args.target, _csv_features(args))
        except FileNotFoundError:
            raise UsageError(f"--csv {args.csv}: no such file") from None
        except OSError as error:
            raise UsageError(f"--csv {args.csv}: cannot read it ({error.strerror or error})") from None
        except ValueError as error:
            raise UsageError(str(error)) from None
        # Test and validation rows drawn at random: the last rows of a file sorted by any column would
        # be no test at all (the bundled data come shuffled, by Keras' recipe)
        rng = np.random.default_rng(args.seed)
        (X_fit, y_fit), (X_test, y_test) = _split(X, y, args.test_split, "--test-split", seed=rng)
        return _three_ways(args, args.csv, args.target, features, X_fit, y_fit, X_test, y_test, rng)

    return _three_ways(args, source, target, features, X_fit, y_fit, X_test, y_test)


def _three_ways(args, source, target, features, X_fit, y_fit, X_test, y_test, rng=None) -> Dataset:
    """The Dataset, once the test rows are off: the rest split into training and validation rows,
    the last ones validating (Keras' rule), or with `rng` (a np.random.Generator) rows drawn at random."""
    _check_training_rows(args, len(X_fit), len(X_fit) + len(X_test))
    split = _split(X_fit, y_fit, args.validation_split, "--validation-split", seed=rng)
    (X_train, y_train), (X_val, y_val) = split
    return Dataset(source, target, features, X_train, y_train, X_val, y_val, X_test, y_test)


# ----- a CSV file read in chunks: dask.dataframe, and Dask arrays from there on -----


def _chunked(args: argparse.Namespace) -> bool:
    """Whether to read the CSV in chunks: with --scheduler, or when the file is over CHUNKED_ABOVE bytes."""
    if args.scheduler is not None:
        return True
    try:
        return os.path.getsize(args.csv) > CHUNKED_ABOVE
    except OSError:
        return False  # the in-memory reader says what is wrong with the path


def _dask(args: argparse.Namespace):
    """The dask module, or a UsageError naming the extra."""
    why = f"--scheduler {args.scheduler}:" if args.scheduler else f"--csv {args.csv} is over {CHUNKED_ABOVE >> 30} GiB:"
    try:
        return tl.dask_chunks.require_dask(f"{why} reading the CSV in chunks")
    except ImportError as error:
        raise UsageError(str(error)) from None


def _load_chunked(args: argparse.Namespace) -> Dataset:
    _dask(args)
    import dask.dataframe as dd

    try:
        frame = dd.read_csv(args.csv, blocksize=CSV_BLOCKSIZE, skipinitialspace=True)
    except FileNotFoundError:
        raise UsageError(f"--csv {args.csv}: no such file") from None
    columns = [str(column).strip() for column in frame.columns]
    frame.columns = columns
    try:  # the in-memory reader's rules for the target and the features, on the header
        features = tl.data._choose_features(args.csv, columns, args.target, _csv_features(args))
    except ValueError as error:
        raise UsageError(str(error)) from None
    try:  # one pass to count each chunk's rows, so that the splits and the chunks of X and y agree
        values = frame[[*features, args.target]].astype("float64").to_dask_array(lengths=True)
    except (ValueError, TypeError) as error:
        raise UsageError(f"--csv {args.csv}: not numeric ({' '.join(str(error).split())[:200]})") from None
    X, y = values[:, :-1], values[:, -1]
    # the in-memory path's random rows: only their row numbers are drawn, in memory
    rng = np.random.default_rng(args.seed)
    (X_fit, y_fit), (X_test, y_test) = _split(X, y, args.test_split, "--test-split", seed=rng)
    return _three_ways(args, f"{args.csv} (in chunks)", args.target, features, X_fit, y_fit, X_test, y_test, rng)


def _fit_scaler(X: np.ndarray) -> tl.data.Standardizer:
    """A Standardizer fitted on X (on a Dask array, from statistics computed where its chunks live)."""
    return tl.data.Standardizer().fit_statistics(*tl.sources.as_source(X).column_statistics())


def _scaled(scaler: tl.data.Standardizer | None, X: np.ndarray) -> np.ndarray:
    """X in the model's units: standardised when there is a scaler (lazily on a Dask array)."""
    if scaler is None or not len(X):
        return X
    return (X - scaler.mean) / scaler.scale if tl.checks.is_dask_array(X) else scaler.transform(X)


def _r2(pred: np.ndarray, y: np.ndarray) -> float:
    """R² of the predictions (on Dask arrays from two sums, without gathering the rows)."""
    return tl.sources.as_source(pred, y).r2_score(pred)


def _for_pictures(X: np.ndarray) -> np.ndarray:
    """The rows to draw: all of them in memory, the first PICTURE_ROWS of a Dask array."""
    return np.asarray(X[:PICTURE_ROWS]) if tl.checks.is_dask_array(X) else X


# ----- training and the closed form -----


class SparseProgress(tl.callbacks.ProgressBar):
    """fit's Keras progress lines, for the first epoch, every `every`-th one and the last."""

    def __init__(self, every: int):
        super().__init__()
        self.every = every

    def _shown(self, epoch: int) -> bool:
        return epoch == 0 or (epoch + 1) % self.every == 0 or epoch + 1 == self.params["epochs"]

    def on_epoch_begin(self, epoch, logs=None):
        self.showing = self._shown(epoch)
        if self.showing:
            super().on_epoch_begin(epoch, logs)

    def on_batch_end(self, batch, logs=None):
        if self.showing:
            super().on_batch_end(batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        if self.showing:
            super().on_epoch_end(epoch, logs)


def _progress_every(epochs: int) -> int:
    """Show every epoch when there are few, else about PROGRESS_LINES of them (integers: any --epochs)."""
    return 1 if epochs <= 2 * PROGRESS_LINES else -(-epochs // PROGRESS_LINES)


TOO_LARGE_FOR_GD = (
    "the features are too large for plain gradient descent at any representable learning rate "
    "(its stability bound 2/λ_max is below the smallest float64); standardise them with --standardize "
    "or rescale the columns"
)


def _default_lr(optimizer: str, X_train: np.ndarray, l2: float) -> float:
    if optimizer in DEFAULT_LR:
        return DEFAULT_LR[optimizer]
    if tl.checks.is_dask_array(X_train):
        raise UsageError("--optimizer gd on a CSV read in chunks needs --lr (its default needs the rows in memory)")
    # Plain gradient descent on this quadratic converges for lr < 2/λ_max; 1/λ_max (the classic
    # 1/L step) keeps a factor of two from that edge, which mini-batches need.
    bound = tl.solvers.stable_learning_rate(X_train, l2=l2)
    if not math.isfinite(bound):
        return 0.01
    if bound / 2 == 0:
        raise UsageError(TOO_LARGE_FOR_GD)
    return bound / 2


def _mean_square(r: np.ndarray) -> float:
    """mean(r²), overflowing only where the answer does: r is scaled by its largest entry first."""
    scale = float(np.max(np.abs(r)))
    if not 0 < scale < math.inf:
        return scale * scale  # 0, inf or nan
    return scale * (scale * float(np.mean((r / scale) ** 2)))


def _objective(X: np.ndarray, y: np.ndarray, coef: np.ndarray, intercept: float, l2: float) -> float:
    """mean((X @ coef + intercept - y)²) + l2·Σcoef², the training objective, in float64."""
    loss = _mean_square(X @ coef + intercept - y)
    # the penalty only where there is one: 0 · (a coef² beyond float64) would be nan
    return loss + float(np.sum((math.sqrt(l2) * coef) ** 2)) if l2 > 0 else loss


def train(args: argparse.Namespace, data: Dataset, lr: float, scaler: tl.data.Standardizer | None) -> Result:
    """Fit the model, solve the same objective in closed form, and measure both."""

    Z_train, Z_val = _scaled(scaler, data.X_train), _scaled(scaler, data.X_val)
    d = Z_train.shape[1]
    layer = tl.nn.Linear(d, 1, seed=args.seed, dtype=np.float64)
    model = tl.nn.Sequential([layer])
    model.compile(loss="mse", optimizer=tl.optim.BY_NAME[args.optimizer][0](lr=lr), l2=args.l2)
    weight, bias = layer.get_weights()
    initial_loss = _objective(Z_train, data.y_train, weight[:, 0], float(bias[0]), args.l2)
    engine_loss = model.evaluate(Z_train, data.y_train)  # as fit's first step will compute it
    if not math.isfinite(engine_loss):
        raise UsageError(
            f"the training loss is {engine_loss} in float64 already at the initial weights: features up to "
            f"{float(np.max(np.abs(Z_train))):.3g} and targets up to {float(np.max(np.abs(data.y_train))):.3g} are "
            "too large to train on; standardise the features with --standardize, or rescale the columns"
        )
    # a tl.TrainingDivergedError goes on up: main reports it and exits 1
    history = model.fit(
        Z_train,
        data.y_train,
        epochs=args.epochs,
        batch_size=args.batch_size or len(Z_train),
        validation_data=(Z_val, data.y_val) if len(Z_val) else None,
        verbose=0,
        callbacks=[] if args.quiet else [SparseProgress(_progress_every(args.epochs))],
        seed=args.seed,
    )

    weight, bias = layer.get_weights()  # copies
    coef_m, intercept_m = weight[:, 0], float(bias[0])
    # The closed form of exactly the objective fit minimised: the same rows, in the same
    # (possibly standardised) units, with the same l2 on the weights.
    if args.l2 > 0:
        optimum_m = tl.solvers.ridge(Z_train, data.y_train, args.l2)
    else:
        optimum_m = tl.solvers.ols(Z_train, data.y_train)

    def measured(X: np.ndarray, y: np.ndarray, coef: np.ndarray, intercept: float) -> float | None:
        return _objective(X, y, coef, intercept, args.l2) if len(X) else None

    train_loss = _objective(Z_train, data.y_train, coef_m, intercept_m, args.l2)  # never empty: fit had rows
    optimum_loss = _objective(Z_train, data.y_train, *optimum_m, args.l2)
    val_loss = measured(Z_val, data.y_val, coef_m, intercept_m)
    optimum_val_loss = measured(Z_val, data.y_val, *optimum_m)

    def original_units(coef: np.ndarray, intercept: float) -> tuple[np.ndarray, float]:
        if scaler is None:
            return coef, intercept
        coef, intercept_array = tl.data.unscale_linear(coef, intercept, scaler)
        return coef, float(intercept_array)

    coef, intercept = original_units(coef_m, intercept_m)
    optimum_coef, optimum_intercept = original_units(*optimum_m)
    for which, weights in (("closed-form", optimum_coef), ("learned", coef)):
        if not np.all(np.isfinite(weights)):
            raise UsageError(
                f"the {which} weights in the data's original units are beyond float64 ({number(weights.flat[0])}, "
                "...): the features are too small for the target's scale; rescale the feature columns"
            )
    X_r2, y_r2 = (data.X_test, data.y_test) if len(data.X_test) else (data.X_train, data.y_train)
    return Result(
        initial_loss=initial_loss,
        coef=coef,
        intercept=intercept,
        optimum_coef=optimum_coef,
        optimum_intercept=optimum_intercept,
        train_loss=train_loss,
        optimum_loss=optimum_loss,
        val_loss=val_loss,
        optimum_val_loss=optimum_val_loss,
        r2=_r2(X_r2 @ coef + intercept, y_r2),
        optimum_r2=_r2(X_r2 @ optimum_coef + optimum_intercept, y_r2),
        history=history,
        model=model,
    )


# ----- the pictures -----


def write_pictures(args: argparse.Namespace, data: Dataset, result: Result, out_dir: Path) -> list[Path]:
    """fit.png (the line over train and test data, or actual against predicted) and loss.png."""
    fit_path, loss_path = out_dir / "fit.png", out_dir / "loss.png"
    if tl.checks.is_dask_array(data.X_train):  # the first rows of each part, not millions of points
        parts = ("X_train", "y_train", "X_val", "y_val", "X_test", "y_test")
        pictured: dict[str, Any] = {part: _for_pictures(getattr(data, part)) for part in parts}
        data = dataclasses.replace(data, **pictured)
    if len(data.features) == 1:
        tl.plot.plot_fit(
            data.X_train[:, 0],
            data.y_train,
            coef=result.coef[0],
            intercept=result.intercept,
            reference=(result.optimum_coef[0], result.optimum_intercept),
            title=f"{data.target} against {data.features[0]}: {data.source}",
            xlabel=data.features[0],
            ylabel=data.target,
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
            xlabel=f"predicted {data.target}",
            ylabel=f"actual {data.target}",
            path=fit_path,
            **_held_out_panels(data, predict),
        )
    optimum = {"loss": result.optimum_loss}
    if result.optimum_val_loss is not None:
        optimum["val_loss"] = result.optimum_val_loss
    tl.plot.plot_excess_loss(
        result.history, optimum, title=f"{args.optimizer} on {data.source}: loss per epoch", path=loss_path
    )
    return [fit_path, loss_path]


def _held_out_panels(data: Dataset, x_of: Callable[[np.ndarray], np.ndarray]) -> dict[str, Any]:
    """plot_fit's validation and test arguments for the parts that have rows; `x_of(X)` is what is drawn as x."""
    panels = {}
    for part, X, y in (("val", data.X_val, data.y_val), ("test", data.X_test, data.y_test)):
        if len(X):
            panels[f"x_{part}"], panels[f"y_{part}"] = x_of(X), y
    return panels


# ----- the command -----


def run_fit(args: argparse.Namespace) -> None:
    _check_options(args)
    if args.save_weights is not None:  # before training, so that a bad path fails fast
        _check_file_path("--save-weights", args.save_weights)
    data = load_data(args)
    out_dir = Path(args.out_dir)  # made before training, so that a bad directory fails fast
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"--out-dir {args.out_dir}: that is a file, not a directory")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"--out-dir {args.out_dir}: cannot create the directory ({error.strerror or error})") from None
    try:
        scaler = _fit_scaler(data.X_train) if args.standardize else None
    except ValueError as error:
        raise UsageError(f"--standardize: {error}") from None
    Z_train = _scaled(scaler, data.X_train)
    lr = args.lr if args.lr is not None else _default_lr(args.optimizer, Z_train, args.l2)
    if not args.quiet:
        features = ", ".join(data.features)
        counts = f"{len(data.X_train)} train / {len(data.X_val)} validation / {len(data.X_test)} test rows"
        plural = "s" if len(data.features) > 1 else ""
        print(line("Data:", f"{data.source}, target {data.target}, feature{plural} {features}; {counts}"))
        batch = f"batches of {args.batch_size}" if args.batch_size else f"full batch ({len(data.X_train)} rows)"
        scaled = ", features standardised" if args.standardize else ""
        settings = f"{args.optimizer} (lr {lr:g}), {args.epochs} epochs, {batch}, l2 {args.l2:g}, seed {args.seed}"
        print(line("Training:", settings + scaled))
    result = train(args, data, lr, scaler)
    for text in report(args, data, result):
        print(text)
    diverged = _divergence_message(args, result, Z_train, lr) if result.diverged else None
    try:
        paths = write_pictures(args, data, result, out_dir)
    except (OSError, ValueError, OverflowError) as error:
        if diverged:  # the pictures of a diverged run are a bonus; the divergence is the news
            raise tl.TrainingDivergedError(diverged) from None
        if isinstance(error, OSError):
            where = error.filename or args.out_dir
            raise UsageError(f"cannot write the pictures to {where} ({error.strerror or error})") from None
        # matplotlib gives up on some values near the ends of float64 (its tick labels, its log scale)
        raise UsageError(f"cannot draw the pictures of values this extreme ({error}); try --standardize") from None
    names = " and ".join(path.name for path in paths)
    print(line("Wrote:", f"{names} in {out_dir.resolve()}"))
    if diverged:
        raise tl.TrainingDivergedError(diverged)
    if args.save_weights is not None and result.model is not None:
        save_weights(args.save_weights, data, result.model, scaler)
        how = f"tinygrad-lr predict --weights {args.save_weights} --csv FILE"
        print(line("Saved:", f"weights, feature names and scaling in {args.save_weights} ({how})"))


# ----- weights on disk, and the predict command -----

_WEIGHTS_MEMBERS = ("format", "features", "target", "mean", "scale", "weight", "bias")


def save_weights(path: str | os.PathLike, data: Dataset, model: tl.nn.Module, scaler: tl.data.Standardizer | None):
    """Write what `predict` needs as an .npz of plain arrays (no pickles), at exactly `path`.

    Members: `features` (d,) and `target` () as strings; `mean`, `scale` (d,), the scaling that
    takes the data to the model's units (0 and 1 without --standardize); `weight` (d, 1) and `bias`
    (1,), the Linear layer's; `format`, WEIGHTS_FORMAT.
    """
    d = len(data.features)
    weight, bias = model.get_weights()
    arrays: dict[str, Any] = {
        "format": np.array(WEIGHTS_FORMAT),
        "features": np.array(data.features, dtype=str),
        "target": np.array(data.target, dtype=str),
        "mean": np.zeros(d) if scaler is None else scaler.mean,
        "scale": np.ones(d) if scaler is None else scaler.scale,
        "weight": weight,
        "bias": bias,
    }
    try:
        with open(path, "wb") as file:  # a file object: np.savez would add ".npz" to a path without it
            np.savez(file, **arrays)
    except OSError as error:
        raise UsageError(f"--save-weights {path}: cannot write it ({error.strerror or error})") from None


@dataclasses.dataclass
class SavedModel:
    """A weights file, read: the model, the columns it reads, and the scaling into its units. mean, scale: (d,)."""

    model: tl.nn.Sequential
    features: list[str]
    target: str
    mean: np.ndarray
    scale: np.ndarray

    def predict(self, X: np.ndarray) -> np.ndarray:
        """X: (n, d) in the data's units -> predictions (n,)."""
        return self.model.predict((X - self.mean) / self.scale)[:, 0]


def load_weights(path: str) -> SavedModel:
    """Read a file written by `save_weights`, never unpickling, every member checked before its data are
    read (tl.nn.read_weights_file); anything else is a UsageError saying why."""
    where = f"--weights {path}"
    not_ours = f"{where}: not a weights file written by '{PROG} fit --save-weights'"
    try:
        members = tl.nn.read_weights_file(path, functools.partial(_check_members, not_ours), what=where)
    except FileNotFoundError:
        raise UsageError(f"{where}: no such file") from None
    except OSError as error:
        raise UsageError(f"{where}: cannot read it ({error.strerror or error})") from None
    except ValueError as error:
        raise UsageError(str(error)) from None
    if members["format"].tolist() != WEIGHTS_FORMAT:
        raise UsageError(f"{not_ours} (its format is {members['format'].tolist()!r}, not {WEIGHTS_FORMAT!r})")
    features, mean, scale = members["features"], members["mean"], members["scale"]
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(scale))):
        raise UsageError(f"{not_ours} (its scaling is not {len(features)} finite numbers per feature)")
    if not np.all(scale > 0):
        raise UsageError(f"{not_ours} (its scale has values <= 0)")
    model = tl.nn.Sequential([tl.nn.Linear(len(features), 1, dtype=np.float64)])
    try:
        model.set_weights([members["weight"], members["bias"]])
    except ValueError as error:
        raise UsageError(f"{not_ours} ({error})") from None
    return SavedModel(model, features.tolist(), str(members["target"]), mean, scale)


def _check_members(not_ours: str, headers: dict[str, tl.nn.NpyHeader]) -> None:
    """Refuse, from the headers alone, a weights file whose members are not those `save_weights` writes."""
    if sorted(headers) != sorted(_WEIGHTS_MEMBERS):
        held = ", ".join(map(repr, sorted(headers))) or "nothing"
        raise UsageError(f"{not_ours} (it holds {held}; expected {', '.join(map(repr, _WEIGHTS_MEMBERS))})")
    features = headers["features"]
    if features.dtype.kind != "U" or len(features.shape) != 1 or not features.shape[0]:
        raise UsageError(f"{not_ours} (its member 'features' is not a list of names)")
    d = features.shape[0]
    expected = {  # member: (shape, dtype kind, in words)
        "format": ((), "U", "a string"),
        "target": ((), "U", "a string"),
        "mean": ((d,), "f", f"{d} floats"),
        "scale": ((d,), "f", f"{d} floats"),
        "weight": ((d, 1), "f", f"{d} by 1 floats"),
        "bias": ((1,), "f", "1 float"),
    }
    for name, (shape, kind, words) in expected.items():
        header = headers[name]
        if header.shape != shape or header.dtype.kind != kind:
            raise UsageError(
                f"{not_ours} (its member {name!r} should be {words} for {d} features, shape {shape}; "
                f"it is {header.dtype}, shape {header.shape})"
            )


def _check_file_path(option: str, path: str) -> None:
    """A file can be written at `path`: its folder exists and it is not itself a folder."""
    folder = os.path.dirname(path) or "."
    if os.path.isdir(path):
        raise UsageError(f"{option} {path}: that is a directory; name a file")
    if not os.path.isdir(folder):
        raise UsageError(f"{option} {path}: there is no directory {folder}")


def run_predict(args: argparse.Namespace) -> None:
    """Predict the target of every row of --csv with the weights in --weights; a CSV to --out or stdout."""
    saved = load_weights(args.weights)
    if args.out is not None:
        _check_file_path("--out", args.out)
    try:
        X = tl.data.read_columns(args.csv, saved.features)
    except FileNotFoundError:
        raise UsageError(f"--csv {args.csv}: no such file") from None
    except OSError as error:
        raise UsageError(f"--csv {args.csv}: cannot read it ({error.strerror or error})") from None
    except ValueError as error:
        raise UsageError(f"{error} (the weights in {args.weights} read {', '.join(saved.features)})") from None
    predictions = saved.predict(X)
    # a CSV as the csv module writes it: the target's name quoted where it needs it ("price, USD");
    # repr: the shortest text that reads back as the same float64
    table = io.StringIO()
    csv.writer(table).writerows([[saved.target], *([repr(float(value))] for value in predictions)])
    text = table.getvalue()
    if args.out is None:
        sys.stdout.write(text)
        return
    try:
        Path(args.out).write_text(text, newline="")  # the line ends as the csv module wrote them
    except OSError as error:
        raise UsageError(f"--out {args.out}: cannot write it ({error.strerror or error})") from None
    print(line("Wrote:", f"{len(predictions)} predictions of {saved.target} to {args.out}"))


def _divergence_message(args: argparse.Namespace, result: Result, Z_train: np.ndarray, lr: float) -> str:
    """What rose, from where to where, and which --lr would not have diverged."""
    rose = (
        f"training diverged: the training loss rose from {number(result.initial_loss)} at the initial weights "
        f"to {number(result.train_loss)} after {args.epochs} epoch{'s' if args.epochs > 1 else ''} "
        f"of {args.optimizer} (lr {lr:g})"
    )
    if args.optimizer != "gd" or tl.checks.is_dask_array(Z_train):
        return f"{rose}; lower --lr or use --standardize"
    bound = tl.solvers.stable_learning_rate(Z_train, l2=args.l2)
    if bound == 0:
        return f"{rose}; {TOO_LARGE_FOR_GD}"
    return f"{rose}; the largest stable --lr for gd on these rows is {bound:.3g}: use a smaller one, or --standardize"


@contextlib.contextmanager
def _scheduler(args: argparse.Namespace):
    """With --scheduler, a dask.distributed Client connected to it, the one every Dask computation uses."""
    if getattr(args, "scheduler", None) is None or args.csv is None:  # without --csv, run_fit says what is missing
        yield
        return
    _dask(args)
    try:
        import distributed
    except ImportError as error:
        raise UsageError(f"--scheduler {args.scheduler} needs distributed: {tl.dask_chunks.EXTRA} ({error})") from None
    try:
        client = distributed.Client(args.scheduler, timeout="10s")
    except (OSError, TimeoutError, ValueError) as error:
        raise UsageError(f"--scheduler {args.scheduler}: cannot connect ({error})") from None
    with client:
        yield


def _error(message: str) -> None:
    one_line = " ".join(message.split())  # one line, whatever the message held
    print(f"{PROG}: error: {one_line}", file=sys.stderr)


def _run(argv: list[str] | None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help(sys.stderr)
            return 2
        # Values beyond float64 show as inf or nan in the report, and as a divergence or an error;
        # NumPy's warnings about them would only add lines of noise on stderr.
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"), _scheduler(args):
            (run_predict if args.command == "predict" else run_fit)(args)
    except UsageError as error:
        _error(str(error))
        return 2
    except tl.TrainingDivergedError as error:
        _error(str(error).removeprefix("fit: "))
        return 1
    except SystemExit as exit_:  # --help and --version
        return exit_.code if isinstance(exit_.code, int) else 0
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    return 0


def _silence_stdout() -> None:
    """Point stdout at os.devnull, so that Python's last flush at exit has nowhere to fail."""
    # (a stdout without a file descriptor, as when captured, has no exit flush to fail)
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def main(argv: list[str] | None = None) -> int:
    """Run the command line with `argv` (default: sys.argv[1:]); returns the exit code."""
    # A reader that goes away (`tinygrad-lr fit | head -2`) ends the run quietly, as the Python docs
    # recommend for SIGPIPE: no traceback, and exit code 1, since the run did not finish.
    try:
        code = _run(argv)
        sys.stdout.flush()  # a closed pipe shows here at the latest, while it can still be caught
    except BrokenPipeError:
        _silence_stdout()
        return 1
    return code
