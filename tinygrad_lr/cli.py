"""The command line: the parser, the two verbs and their exit codes.

    tinygrad-lr fit                                     # price against rooms, bundled Boston housing data
    tinygrad-lr fit --features rm lstat ptratio --standardize --save-weights boston.npz
    tinygrad-lr fit --csv data.csv --target y --standardize --out-dir results
    tinygrad-lr predict --weights boston.npz --csv new_rows.csv --out predictions.csv

`fit` runs the experiment of `tinygrad_lr.experiment` (the data, the model trained by `model.fit`,
the closed form on the same rows) on the settings its options make, prints the lines of
`tinygrad_lr.report`, writes `fit.png` and `loss.png`, and with `--save-weights` the trained model as
`model.save` writes it (`tl.nn.load_model` reads it back), with everything `predict` needs in its
metadata: the feature names, the target's name and the scaling. Bad input ends
with one line on stderr, `tinygrad-lr: error: ...`, and exit code 2; a run that diverges prints its
report, then such a line, and exits 1.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import sys
from pathlib import Path

import numpy as np

import tinygrad_lr as tl
from tinygrad_lr import experiment
from tinygrad_lr.experiment import (
    CHUNKED_ABOVE,
    DEFAULT_EPOCHS,
    DEFAULT_FEATURES,
    DEFAULT_LR,
    OPTIMIZERS,
    PROG,
    PROGRESS_LINES,
    Settings,
    UsageError,
)
from tinygrad_lr.report import line, made_directory, preamble, predictions_csv, report, write_pictures

__all__ = ["build_parser", "main", "settings_of"]


class _Parser(argparse.ArgumentParser):
    """argparse, but every error is one line (no usage block), like the rest of the command's errors."""

    def error(self, message: str):
        raise UsageError(f"{message} (see '{self.prog} --help')")


# ----- the options -----


def build_parser() -> argparse.ArgumentParser:
    """The parser of `tinygrad-lr` and its two commands, `fit` and `predict`, with their options."""
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
        help="Read the CSV in chunks with Dask and train on a running dask.distributed scheduler at "
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
        help="Write the trained model to this .npz file (model.save's format: tl.nn.load_model reads it), with the "
        "feature names, the target's name and the scaling: all that 'tinygrad-lr predict' needs (not written when "
        "training diverges).",
    )
    output.add_argument(
        "--summary",
        action="store_true",
        help="Also print the learned weights' coefficient table, as statsmodels prints it (standard errors, t, "
        "p-values, confidence intervals; tl.stats, from the engine's Hessian). Needs SciPy: the [stats] extra.",
    )
    output.add_argument(
        "--quiet",
        action="store_true",
        help="Print the results only (notes included): no data summary and no progress lines.",
    )

    predict = commands.add_parser(
        "predict",
        help="apply a model saved by 'fit --save-weights' to the rows of a CSV file",
        description=(
            "Predict the target for each row of a CSV file with the model saved by 'tinygrad-lr fit --save-weights': "
            "the file's columns are found by the saved feature names (other columns are ignored) and scaled as in "
            "training. The predictions are written as a CSV of one column, named after the target."
        ),
    )
    predict.add_argument(
        "--weights",
        metavar="PATH",
        required=True,
        help="The model file (.npz) written by 'tinygrad-lr fit --save-weights'.",
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


# ----- the command -----


def settings_of(args: argparse.Namespace) -> Settings:
    """The experiment's settings from `fit`'s parsed options."""
    return Settings(**{field.name: getattr(args, field.name) for field in dataclasses.fields(Settings)})


def run_fit(args: argparse.Namespace) -> None:
    settings = settings_of(args)
    experiment.check(settings)
    if args.save_weights is not None:  # before training, so that a bad path fails fast
        experiment.check_writable("--save-weights", args.save_weights)
    data = experiment.load_data(settings)
    out_dir = made_directory(args.out_dir)  # before training, so that a bad directory fails fast
    prepared = experiment.prepare(settings, data)
    for text in [] if args.quiet else preamble(settings, data, prepared.lr):
        print(text)
    result = experiment.train(settings, prepared)
    for text in report(settings, data, result):
        print(text)
    if args.summary and not result.diverged:
        print(experiment.coefficient_table(data, result))
    diverged = (
        experiment.divergence_message(settings, result, prepared.Z_train, prepared.lr) if result.diverged else None
    )
    try:
        paths = write_pictures(settings, data, result, out_dir)
    except UsageError:
        if diverged:  # the pictures of a diverged run are a bonus; the divergence is the news
            raise tl.TrainingDivergedError(diverged) from None
        raise
    names = " and ".join(path.name for path in paths)
    print(line("Wrote:", f"{names} in {out_dir.resolve()}"))
    if diverged:
        raise tl.TrainingDivergedError(diverged)
    if args.save_weights is not None and result.model is not None:
        experiment.save_model(args.save_weights, data, result.model, prepared.scaler)
        how = f"tinygrad-lr predict --weights {args.save_weights} --csv FILE"
        print(line("Saved:", f"weights, feature names and scaling in {args.save_weights} ({how})"))


# ----- the predict command -----


def run_predict(args: argparse.Namespace) -> None:
    """Predict the target of every row of --csv with the weights in --weights; a CSV to --out or stdout."""
    saved = experiment.load_model(args.weights)
    if args.out is not None:
        experiment.check_writable("--out", args.out)
    with experiment.reading(f"--csv {args.csv}", f" (the weights in {args.weights} read {', '.join(saved.features)})"):
        X = tl.data.read_columns(args.csv, saved.features)
    predictions = saved.predict(X)
    text = predictions_csv(saved.target, predictions)
    if args.out is None:
        sys.stdout.write(text)
        return
    try:
        Path(args.out).write_text(text, newline="")  # the line ends as the csv module wrote them
    except OSError as error:
        raise UsageError(f"--out {args.out}: cannot write it ({error.strerror or error})") from None
    print(line("Wrote:", f"{len(predictions)} predictions of {saved.target} to {args.out}"))


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
        scheduler = experiment.connected(settings_of(args)) if args.command == "fit" else contextlib.nullcontext()
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"), scheduler:
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
