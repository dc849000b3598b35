"""The command line's experiment as a library function: data -> model -> the closed form beside it -> a result.

`tinygrad-lr fit` is `run(Settings(...))` and the lines `report` makes of its result:

    settings = Settings(features=["rm", "lstat"], standardize=True, epochs=500)
    prepared = prepare(settings)           # the data split three ways, the scaling, the learning rate
    result = train(settings, prepared)     # fit, then ols/ridge on the same rows, in original units

It trains `Sequential([Linear(d, 1)])` in float64 with `model.fit`, solves the same objective exactly
with `tl.solvers.ols` / `ridge` on the same training rows, and measures both: the objectives, the
validation loss, R² on held-out test rows. A setting or a file that cannot be used is a `UsageError`
whose message names the option (`--test-split 0.9: ...`), as the command prints it.

A CSV file over `CHUNKED_ABOVE` bytes (or any with `--scheduler`) is read in chunks of its lines (a task each, on Dask),
and a fixed number of times whatever `--epochs` is: its line ends are counted once (a read, no parse),
then it is parsed once, each chunk where it is read (pandas' C parser), into the moments of its training, validation and
test rows (`moments.Moments`), their column ranges and the first rows fit.png draws
(`dask_chunks.csv_parts`). Every figure of the report comes from those: the scaling, the full-batch
fit (its steps and its validation loss from the moments), the closed form, the losses and R².

The model file of `--save-weights` and `tinygrad-lr predict` is here too (`save_model`, `load_model`): `model.save`'s
format, the feature names, target and scaling in its metadata.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

import tinygrad_lr as tl
from tinygrad_lr import checks
from tinygrad_lr.callbacks import History
from tinygrad_lr.nn import Module

__all__ = [
    "Dataset",
    "Prepared",
    "Result",
    "SavedModel",
    "Settings",
    "UsageError",
    "check",
    "check_writable",
    "coefficient_table",
    "connected",
    "data_notes",
    "divergence_message",
    "load_data",
    "load_model",
    "number",
    "prepare",
    "reading",
    "require_dask",
    "run",
    "save_model",
    "train",
]

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
CHUNKED_ABOVE = 1 << 30  # a CSV file larger than this (bytes) is read in chunks by Dask
CSV_BLOCKSIZE = 64_000_000  # bytes of CSV text per chunk
DEFAULT_FEATURES = ["rm"]  # of the bundled Boston data: price against rooms
ALL = "all"  # --features all: every column but the target


def number(value: float) -> str:
    """A value to six significant digits, as every weight and loss the command prints."""
    return f"{value:.6g}"


class UsageError(Exception):
    """Bad input: reported as one line on stderr, exit code 2."""


def check_writable(option: str, path: str) -> None:
    """A file can be written at `path` (named by `option`): its folder exists and it is not itself a folder."""
    folder = os.path.dirname(path) or "."
    if os.path.isdir(path):
        raise UsageError(f"{option} {path}: that is a directory; name a file")
    if not os.path.isdir(folder):
        raise UsageError(f"{option} {path}: there is no directory {folder}")


@contextlib.contextmanager
def reading(where: str, about: str = "") -> Iterator[None]:
    """Reading a file named by an option (`where`: "--csv data.csv"): a missing or unreadable file, or
    one the reader refuses (a ValueError, followed by `about`), becomes a UsageError that says so."""
    try:
        yield
    except FileNotFoundError:
        raise UsageError(f"{where}: no such file") from None
    except OSError as error:
        raise UsageError(f"{where}: cannot read it ({error.strerror or error})") from None
    except ValueError as error:
        raise UsageError(f"{error}{about}") from None


@dataclass(frozen=True)
class Settings:
    """What `tinygrad-lr fit` is asked to do (its options, by the same names)."""

    csv: str | None = None  # None: the bundled Boston housing data
    target: str | None = None  # required with csv
    features: list[str] | None = None  # None: rm for the Boston data, every column but the target for a CSV
    scheduler: str | None = None  # a dask.distributed scheduler's address (the CSV is then read in chunks)
    test_split: float = 0.2
    validation_split: float = 0.2
    standardize: bool = False
    optimizer: str = "adam"
    lr: float | None = None  # None: DEFAULT_LR, or for gd half the largest stable rate on the rows
    epochs: int = DEFAULT_EPOCHS
    batch_size: int | None = None  # None: the full batch
    l2: float = 0.0
    seed: int = 0
    quiet: bool = False  # no progress lines


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
    summary: ChunkedSummary | None = None  # a CSV read in chunks: what its one pass found


@dataclass
class ChunkedSummary:
    """What the one pass over a CSV read in chunks found (`dask_chunks.Parts`), for its parts in the order
    train, validation, test; and what is remembered for their Dask arrays (`dask_chunks.remember`: their
    first rows, for fit.png), kept alive here, with the Dataset."""

    parts: Any  # tl.dask_chunks.Parts
    kept: list[Any] = dataclasses.field(default_factory=list)

    def column_statistics(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The training rows' columns: mean, standard deviation (ddof 0) and range (max - min), (d,) each."""
        train = self.parts.moments[0]
        std = np.sqrt(np.maximum(np.diag(train.sxx), 0.0) / train.weight)
        return train.x_mean.copy(), std, self.parts.high[0] - self.parts.low[0]


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


@dataclass
class Prepared:
    """The data, the scaling into the model's units (None without `standardize`) and the learning rate."""

    data: Dataset
    scaler: tl.data.Standardizer | None
    lr: float

    @property
    def Z_train(self) -> np.ndarray:
        """The training rows in the model's units."""
        return _scaled(self.scaler, self.data.X_train)


def prepare(settings: Settings, data: Dataset | None = None) -> Prepared:
    """Check the settings, load and split the data (unless given, as `load_data` made them), fit the
    scaling, choose the learning rate."""
    if data is None:
        check(settings)
        data = load_data(settings)
    try:
        scaler = _fit_scaler(data.X_train, data.summary) if settings.standardize else None
    except ValueError as error:
        raise UsageError(f"--standardize: {error}") from None
    lr = settings.lr
    if lr is None:
        lr = _default_lr(settings.optimizer, _scaled(scaler, data.X_train), settings.l2)
    return Prepared(data, scaler, lr)


def run(settings: Settings) -> tuple[Prepared, Result]:
    """The whole experiment: `prepare`, then `train`."""
    prepared = prepare(settings)
    return prepared, train(settings, prepared)


def data_notes(data: Dataset) -> list[str]:
    """What the training rows say about the weights, a sentence each: constant columns, columns that are
    collinear (the weights are then not unique: which ones), fewer rows than parameters. One pass over
    the rows (the factor of the centred [X y], as `ols` makes it for data read a block at a time)."""
    X, y, names = data.X_train, data.y_train, data.features
    n, d = len(X), len(names)
    notes = []
    if n < d + 1:
        notes.append(
            f"{n} training row{'s' if n != 1 else ''} for {d + 1} parameters ({d} weights and a bias): the weights "
            "are not determined by the data; the closed form is the one of smallest norm"
        )
    source = tl.sources.as_source(X, y)
    _, std, spread = source.column_statistics() if data.summary is None else data.summary.column_statistics()
    if data.summary is not None:
        std = np.where(spread == 0, 0.0, std)  # (a constant column's centred sums may hold rounding, not 0)
    constant = [names[j] for j in np.flatnonzero(std == 0)]
    if constant:
        which = ", ".join(constant)
        notes.append(
            f"the column{'s' if len(constant) > 1 else ''} {which} {'are' if len(constant) > 1 else 'is'} "
            "constant on the training rows: its weight cannot be told from the bias"
        )
    if n >= d + 1 and data.summary is not None:
        involved = _collinear(data.summary.parts.moments[0].sxx, std > 0, names)
        if involved:
            notes.append(
                f"the columns {', '.join(involved)} are collinear on the training rows (one is a combination of "
                "the others): the weights are not unique; the closed form is the one of smallest norm"
            )
    elif n >= d + 1:  # (with fewer rows the columns are always dependent: the note above says so)
        R = source.triangular_factor(True, "fit").centred[:d, :d]  # the centred columns' factor
        varying = np.flatnonzero(std > 0)
        if len(varying) > 1:
            block = R[:, varying]
            _, singular, rows = np.linalg.svd(block)
            tolerance = singular[0] * max(block.shape) * np.finfo(np.float64).eps
            if singular[-1] <= tolerance:
                null = rows[-1]
                involved = [names[varying[j]] for j in np.flatnonzero(np.abs(null) > 1e-6 * np.abs(null).max())]
                notes.append(
                    f"the columns {', '.join(involved)} are collinear on the training rows (one is a combination of "
                    "the others): the weights are not unique; the closed form is the one of smallest norm"
                )
    return notes


def _collinear(sxx: np.ndarray, varying: np.ndarray, names: list[str]) -> list[str]:
    """The names of the varying columns that are collinear, from their centred sums of products Sxx (d, d):
    none when they are not. Sxx holds the squares of R's singular values, whose rounding is eps·λmax: the
    tolerance on the smallest eigenvalue of the columns' correlations (Sxx scaled to a unit diagonal) is
    that, where R's own is eps on the singular values (`data_notes` on rows in memory)."""
    which = np.flatnonzero(varying)
    if len(which) < 2:
        return []
    block = sxx[np.ix_(which, which)]
    scale = 1 / np.sqrt(np.diag(block))
    values, vectors = np.linalg.eigh(block * np.outer(scale, scale))
    if values[0] > len(which) * 64 * np.finfo(np.float64).eps * values[-1]:
        return []
    null = vectors[:, 0]
    return [names[which[j]] for j in np.flatnonzero(np.abs(null) > 1e-6 * np.abs(null).max())]


def coefficient_table(data: Dataset, result: Result) -> str:
    """`tl.stats`' summary of the learned weights in the data's original units, on the training rows (as
    statsmodels prints it; a note in it when they are not at the optimum). A UsageError when SciPy is
    missing or the rows are not in memory."""
    if tl.sources.as_source(data.X_train).reads_blocks:
        raise UsageError("--summary needs the training rows in memory; this CSV is read in chunks")
    try:
        stats = tl.stats
    except ImportError as error:
        raise UsageError(f"--summary: {error}") from None
    layer = tl.nn.Linear(len(data.features), 1, dtype=np.float64)
    layer.set_weights([np.asarray(result.coef, np.float64).reshape(-1, 1), np.array([result.intercept])])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # (not at the optimum: the table's notes say so)
        summary = stats.summarize(layer, data.X_train, data.y_train, feature_names=data.features)
    return summary.summary(yname=data.target)


def check(settings: Settings) -> None:
    """Settings that cannot run: ranges, and options that only make sense together (a UsageError naming the option)."""
    if settings.csv is None:
        if settings.target is not None:
            raise UsageError(
                f"--target needs --csv PATH (the bundled Boston data's target is {tl.datasets.BOSTON_TARGET})"
            )
    elif settings.target is None:
        raise UsageError("--csv needs --target COL, the column to predict")
    if settings.scheduler is not None and settings.csv is None:
        raise UsageError("--scheduler needs --csv PATH (the bundled Boston data are read in memory)")
    if settings.features is not None and ALL in settings.features and len(settings.features) > 1:
        raise UsageError(f"--features {ALL} stands alone: it means every column but the target")

    try:  # the package's own checks, so that the options say what its functions would say
        checks.check_fraction("--test-split", settings.test_split)
        checks.check_fraction("--validation-split", settings.validation_split)
        if settings.lr is not None:
            checks.check_number("--lr", settings.lr, low=0.0, low_inclusive=False)
        checks.check_count("--epochs", settings.epochs)
        if settings.batch_size is not None:
            checks.check_count("--batch-size", settings.batch_size)
        checks.check_number("--l2", settings.l2, low=0.0)
        checks.check_count("--seed", settings.seed, minimum=0)
    except ValueError as error:
        raise UsageError(str(error)) from None


# ----- the data -----


def _split(X: np.ndarray, y: np.ndarray, fraction: float, option: str, seed: np.random.Generator | None = None):
    """tl.data.validation_split (the last rows), or with a seed tl.data.random_split; errors blame `option`."""
    split = tl.data.validation_split if seed is None else functools.partial(tl.data.random_split, seed=seed)
    try:
        return split(X, y, fraction)
    except ValueError as error:
        raise _blaming(option, fraction, error) from None


def _blaming(option: str, fraction: float, error: ValueError) -> UsageError:
    """A split's error, as the option that asked for `fraction` says it."""
    reason = str(error).removeprefix("validation_split: ").removeprefix("random_split: ")
    return UsageError(f"{option} {fraction:g}: {reason}")


def _csv_features(settings: Settings) -> list[str] | None:
    """--features for a CSV: None (every column but the target) for the default and for 'all'."""
    return None if settings.features in (None, [ALL]) else settings.features


def _boston_features(settings: Settings) -> list[str]:
    """--features for the bundled data, checked against its columns."""
    if settings.features is None:
        return DEFAULT_FEATURES
    if settings.features == [ALL]:
        return list(tl.datasets.BOSTON_FEATURES)
    columns = [*tl.datasets.BOSTON_FEATURES, tl.datasets.BOSTON_TARGET]
    try:  # the CSV reader's rules and messages
        return tl.data.choose_features("--features", columns, tl.datasets.BOSTON_TARGET, settings.features)
    except ValueError as error:
        raise UsageError(f"{error} (the bundled Boston data)") from None


def _leaves_training_rows(n: int, validation_split: float) -> bool:
    """Whether `tl.data.validation_split` of n rows keeps at least one to train on (Keras' arithmetic)."""
    return math.floor(n * (1.0 - validation_split)) >= 1


def _check_training_rows(settings: Settings, n_fit: int, n_rows: int) -> None:
    """Blame --test-split when it, and not --validation-split alone, leaves no row to train on."""
    v = settings.validation_split
    if settings.test_split > 0 and not _leaves_training_rows(n_fit, v) and _leaves_training_rows(n_rows, v):
        raise UsageError(
            f"--test-split {settings.test_split:g} leaves {n_fit} of the {n_rows} rows for training and validation, "
            f"too few to train on after --validation-split {v:g}; use a smaller --test-split"
        )


def load_data(settings: Settings) -> Dataset:
    """The rows the settings name (bundled Boston data or a CSV, in memory or in chunks), split three ways."""
    if settings.csv is not None and _chunked(settings):
        return _load_chunked(settings)
    if settings.csv is None:
        # Keras' boston_housing split, then price against the average number of rooms
        (X_fit, y_fit), (X_test, y_test) = tl.datasets.load_boston_housing(test_split=settings.test_split)
        source, target, features = "Boston housing (bundled)", tl.datasets.BOSTON_TARGET, _boston_features(settings)
        columns = [tl.datasets.BOSTON_FEATURES.index(name) for name in features]
        X_fit, X_test = X_fit[:, columns], X_test[:, columns]
    else:
        csv, target = _csv_and_target(settings)
        with reading(f"--csv {csv}"):
            X, y, features = tl.data.load_csv(csv, target, _csv_features(settings))
        # Test and validation rows drawn at random: the last rows of a file sorted by any column would
        # be no test at all (the bundled data come shuffled, by Keras' recipe)
        rng = np.random.default_rng(settings.seed)
        (X_fit, y_fit), (X_test, y_test) = _split(X, y, settings.test_split, "--test-split", seed=rng)
        return _three_ways(settings, settings.csv, settings.target, features, X_fit, y_fit, X_test, y_test, rng)

    return _three_ways(settings, source, target, features, X_fit, y_fit, X_test, y_test)


def _three_ways(settings, source, target, features, X_fit, y_fit, X_test, y_test, rng=None) -> Dataset:
    """The Dataset, once the test rows are off: the rest split into training and validation rows,
    the last ones validating (Keras' rule), or with `rng` (a np.random.Generator) rows drawn at random."""
    _check_training_rows(settings, len(X_fit), len(X_fit) + len(X_test))
    split = _split(X_fit, y_fit, settings.validation_split, "--validation-split", seed=rng)
    (X_train, y_train), (X_val, y_val) = split
    return Dataset(source, target, features, X_train, y_train, X_val, y_val, X_test, y_test)


# ----- a CSV file read in chunks by Dask, and Dask arrays from there on -----


def _chunked(settings: Settings) -> bool:
    """Whether to read the CSV in chunks: with --scheduler, or when the file is over CHUNKED_ABOVE bytes."""
    if settings.scheduler is not None:
        return True
    try:
        return settings.csv is not None and os.path.getsize(settings.csv) > CHUNKED_ABOVE
    except OSError:
        return False  # the in-memory reader says what is wrong with the path


@contextlib.contextmanager
def connected(settings: Settings) -> Iterator[None]:
    """With `scheduler` (and a CSV), a dask.distributed Client connected to it, the one every Dask
    computation then uses; else nothing."""
    if settings.scheduler is None or settings.csv is None:  # (without a CSV, `check` says what is missing)
        yield
        return
    require_dask(settings)
    try:
        import distributed
    except ImportError as error:
        extra = tl.dask_chunks.EXTRA
        raise UsageError(f"--scheduler {settings.scheduler} needs distributed: {extra} ({error})") from None
    try:
        client = distributed.Client(settings.scheduler, timeout="10s")
    except (OSError, TimeoutError, ValueError) as error:
        raise UsageError(f"--scheduler {settings.scheduler}: cannot connect ({error})") from None
    with client:
        yield


def require_dask(settings: Settings):
    """The dask module, or a UsageError naming the extra."""
    big = f"--csv {settings.csv} is over {CHUNKED_ABOVE >> 30} GiB:"
    why = f"--scheduler {settings.scheduler}:" if settings.scheduler else big
    try:
        return tl.dask_chunks.require_dask(f"{why} reading the CSV in chunks")
    except ImportError as error:
        raise UsageError(str(error)) from None


def _csv_and_target(settings: Settings) -> tuple[str, str]:
    """--csv and --target, which `check` requires together."""
    if settings.csv is None or settings.target is None:
        raise UsageError("--csv needs --target COL, the column to predict")
    return settings.csv, settings.target


DRAWN_ROWS = 10_000  # the first rows of each part that the pass keeps: what fit.png draws (report.PICTURE_ROWS)
REFERENCE_ROWS = 65_536  # the first rows of a CSV read in chunks whose least squares is the moments' reference
NORMAL_EQUATIONS_UP_TO = 1e4  # the condition number up to which a CSV read in chunks has its closed form from moments


def _labels(settings: Settings, n: int) -> np.ndarray:
    """The split of n rows three ways, as `load_data` draws it for a CSV in memory (the same random splits,
    from the same seed): each row's part (n,), 0 train, 1 validation, 2 test."""
    rng = np.random.default_rng(settings.seed)
    test = _held_out(n, settings.test_split, "--test-split", rng)
    fit = np.flatnonzero(~test)
    _check_training_rows(settings, len(fit), n)
    labels = np.full(n, 2, dtype=np.int8)
    labels[fit] = _held_out(len(fit), settings.validation_split, "--validation-split", rng)  # (True: 1, validation)
    return labels


def _held_out(n: int, fraction: float, option: str, rng: np.random.Generator) -> np.ndarray:
    """`tl.data.held_out` (the rows `_split` holds out with this generator); errors blame `option`."""
    try:
        return tl.data.held_out(n, fraction, rng)
    except ValueError as error:
        raise _blaming(option, fraction, error) from None


def _reference_fit(csv: str, target: str, features: list[str]) -> np.ndarray:
    """The least squares of the file's first `REFERENCE_ROWS` rows, coef (d, 1): the moments' reference (any
    will do; a good one keeps the most digits). A column of those rows that is not numeric is the file's
    error (a ValueError) at once; zeros where the rows hold non-finite values (the pass names the first)."""
    import pandas

    head = pandas.read_csv(csv, nrows=REFERENCE_ROWS, skipinitialspace=True)
    head.columns = [str(column).strip() for column in head.columns]
    try:
        values = head[[*features, target]].to_numpy(dtype=np.float64)
    except (ValueError, TypeError) as error:
        raise tl.dask_chunks.not_numeric(csv, error) from None
    if not len(values) or not np.all(np.isfinite(values)):
        return np.zeros((len(features), 1))
    return tl.moments.Moments.of_block(values[:, :-1], values[:, -1:]).reference_fit()


def _load_chunked(settings: Settings) -> Dataset:
    """A CSV file read in chunks: its line ends counted (a read), then one parse of it into the moments,
    column ranges and first rows of each part (`ChunkedSummary`); X and y of each part are lazy Dask arrays
    of the file, which nothing reads again (what is asked of them is remembered for them)."""
    require_dask(settings)
    csv, target = _csv_and_target(settings)
    chunks = tl.dask_chunks
    with reading(f"--csv {csv}"):
        _, features = chunks.csv_header(csv, target, _csv_features(settings))
        rows = chunks.csv_rows(csv, CSV_BLOCKSIZE)
        reference = _reference_fit(csv, target, features)
    for _ in range(2):
        labels = _labels(settings, sum(rows))
        with reading(f"--csv {csv}"):
            parts = chunks.csv_parts(csv, target, features, CSV_BLOCKSIZE, labels, rows, reference, 3, DRAWN_ROWS)
        if parts.chunk_rows == rows:
            break
        rows = parts.chunk_rows  # a line end inside a quoted field: the rows as parsed, and once more
    else:
        raise UsageError(f"--csv {csv}: its chunks hold different rows each time they are read")
    arrays = chunks.csv_arrays(csv, target, features, CSV_BLOCKSIZE, rows, labels, 3)  # lazy
    summary = ChunkedSummary(parts)
    for (X_part, y_part), (x_first, y_first) in zip(arrays, parts.first):
        summary.kept += [chunks.remember(x_first, X_part), chunks.remember(y_first, y_part)]
    (X_train, y_train), (X_val, y_val), (X_test, y_test) = arrays
    source = f"{settings.csv} (in chunks)"
    return Dataset(source, target, features, X_train, y_train, X_val, y_val, X_test, y_test, summary)


def _fit_scaler(X: np.ndarray, summary: ChunkedSummary | None = None) -> tl.data.Standardizer:
    """A Standardizer fitted on X (on a Dask array, from statistics computed where its chunks live; from a
    CSV's one pass, its `summary`)."""
    statistics = tl.sources.as_source(X).column_statistics() if summary is None else summary.column_statistics()
    return tl.data.Standardizer().fit_statistics(*statistics)


def _scaled(scaler: tl.data.Standardizer | None, X: np.ndarray) -> np.ndarray:
    """X in the model's units: standardised when there is a scaler (lazily on a Dask array). X is
    float64 here, so this is `scaler.transform(X)` without its checks, which would read a Dask array."""
    if scaler is None or not len(X):
        return X
    return (X - scaler.mean) / scaler.scale


def _r2(pred: np.ndarray, y: np.ndarray) -> float:
    """R² of the predictions (on Dask arrays from two sums, without gathering the rows)."""
    return tl.sources.as_source(pred, y).r2_score(pred)


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
    if tl.sources.as_source(X_train).reads_blocks:
        raise UsageError("--optimizer gd on a CSV read in chunks needs --lr (its default needs the rows in memory)")
    # Plain gradient descent on this quadratic converges for lr < 2/λ_max; 1/λ_max (the classic
    # 1/L step) keeps a factor of two from that edge, which mini-batches need.
    bound = tl.solvers.stable_learning_rate(X_train, l2=l2)
    if not math.isfinite(bound):
        return 0.01
    if bound / 2 == 0:
        raise UsageError(TOO_LARGE_FOR_GD)
    return bound / 2


def _penalised(loss: float, coef: np.ndarray, l2: float) -> float:
    """loss + l2·Σcoef², with the engine's penalty (`tl.ops.penalty`), as fit adds it."""
    return loss + float(tl.ops.penalty([coef], l2)) if l2 > 0 else loss


def _objective(X: np.ndarray, y: np.ndarray, coef: np.ndarray, intercept: float, l2: float) -> float:
    """mean((X @ coef + intercept - y)²) + l2·Σcoef², the training objective, in float64, by the engine's own
    mean squared error (`tl.ops.mean_squared_error`: inf only where the mean itself is beyond float64)."""
    loss, _ = tl.ops.mean_squared_error(X @ coef + intercept, y, tl.ops.MeanSquaredError.block)
    return _penalised(loss, coef, l2)


def train(settings: Settings, prepared: Prepared) -> Result:
    """Fit the model, solve the same objective in closed form, and measure both."""
    data, lr, scaler = prepared.data, prepared.lr, prepared.scaler
    if data.summary is not None:
        return _train_from_the_moments(settings, prepared, data.summary)

    Z_train, Z_val = _scaled(scaler, data.X_train), _scaled(scaler, data.X_val)
    d = Z_train.shape[1]
    layer = tl.nn.Linear(d, 1, seed=settings.seed, dtype=np.float64)
    model = tl.nn.Sequential([layer])
    model.compile(loss="mse", optimizer=tl.optim.BY_NAME[settings.optimizer][0](lr=lr), l2=settings.l2)
    weight, bias = layer.get_weights()
    initial_loss = _objective(Z_train, data.y_train, weight[:, 0], float(bias[0]), settings.l2)
    engine_loss = model.evaluate(Z_train, data.y_train)  # as fit's first step will compute it
    if not math.isfinite(engine_loss):
        raise UsageError(
            f"the training loss is {engine_loss} in float64 already at the initial weights: features up to "
            f"{float(np.max(np.abs(Z_train))):.3g} and targets up to {float(np.max(np.abs(data.y_train))):.3g} are "
            "too large to train on; standardise the features with --standardize, or rescale the columns"
        )
    history = _train(model, settings, Z_train, data.y_train, Z_val, data.y_val)

    weight, bias = layer.get_weights()  # copies
    coef_m, intercept_m = weight[:, 0], float(bias[0])
    # The closed form of exactly the objective fit minimised: the same rows, in the same
    # (possibly standardised) units, with the same l2 on the weights.
    if settings.l2 > 0:
        optimum_m = tl.solvers.ridge(Z_train, data.y_train, settings.l2)
    else:
        optimum_m = tl.solvers.ols(Z_train, data.y_train)

    def measured(X: np.ndarray, y: np.ndarray, coef: np.ndarray, intercept: float) -> float | None:
        return _objective(X, y, coef, intercept, settings.l2) if len(X) else None

    train_loss = _objective(Z_train, data.y_train, coef_m, intercept_m, settings.l2)  # never empty: fit had rows
    optimum_loss = _objective(Z_train, data.y_train, *optimum_m, settings.l2)
    val_loss = measured(Z_val, data.y_val, coef_m, intercept_m)
    optimum_val_loss = measured(Z_val, data.y_val, *optimum_m)

    (coef, intercept), (optimum_coef, optimum_intercept) = _in_original_units(scaler, (coef_m, intercept_m), optimum_m)
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


def _train_from_the_moments(settings: Settings, prepared: Prepared, summary: ChunkedSummary) -> Result:
    """`train` on a CSV read in chunks: the same fit, closed form and measures, every one from the moments
    its one pass found (in the model's units: the standardised moments follow from the raw ones without a
    pass), so that no figure reads the file again, whatever the number of epochs."""
    data, lr, scaler = prepared.data, prepared.lr, prepared.scaler
    raw = dict(zip(("train", "val", "test"), summary.parts.moments))

    def in_model_units(moments: Any) -> Any:
        return moments if scaler is None or moments is None else moments.scaled(scaler.mean, scaler.scale)

    train_m, val_m = in_model_units(raw["train"]), in_model_units(raw["val"])
    Z_train, Z_val = _scaled(scaler, data.X_train), _scaled(scaler, data.X_val)
    # what fit asks of these arrays (their moments) is known: its steps and validation loss read no rows
    known = [tl.dask_chunks.remember(train_m, Z_train, data.y_train)]
    if val_m is not None:
        known.append(tl.dask_chunks.remember(val_m, Z_val, data.y_val))

    def objective(moments: Any, coef: np.ndarray, intercept: float, l2: float = settings.l2) -> float:
        loss = float(moments.squared_errors(np.reshape(coef, (-1, 1)), np.array([intercept]))[0]) / moments.n
        return _penalised(loss, coef, l2)

    d = len(data.features)
    layer = tl.nn.Linear(d, 1, seed=settings.seed, dtype=np.float64)
    model = tl.nn.Sequential([layer])
    model.compile(loss="mse", optimizer=tl.optim.BY_NAME[settings.optimizer][0](lr=lr), l2=settings.l2)
    weight, bias = layer.get_weights()
    initial_loss = objective(train_m, weight[:, 0], float(bias[0]))
    if not math.isfinite(initial_loss):
        low, high = summary.parts.low[0], summary.parts.high[0]
        largest = np.maximum(np.abs(low), np.abs(high))
        if scaler is not None:
            largest = np.maximum(
                np.abs((low - scaler.mean) / scaler.scale), np.abs((high - scaler.mean) / scaler.scale)
            )
        raise UsageError(
            f"the training loss is {initial_loss} in float64 already at the initial weights: features up to "
            f"{float(np.max(largest)):.3g} are too large to train on; standardise the features with --standardize, "
            "or rescale the columns"
        )
    history = _train(model, settings, Z_train, data.y_train, Z_val, data.y_val)
    del known  # (fit is done with them)
    weight, bias = layer.get_weights()
    coef_m, intercept_m = weight[:, 0], float(bias[0])
    optimum_m = _closed_form(settings, train_m, Z_train, data.y_train)  # of the same objective
    train_loss, optimum_loss = objective(train_m, coef_m, intercept_m), objective(train_m, *optimum_m)
    val_loss = None if val_m is None else objective(val_m, coef_m, intercept_m)
    optimum_val_loss = None if val_m is None else objective(val_m, *optimum_m)

    (coef, intercept), (optimum_coef, optimum_intercept) = _in_original_units(scaler, (coef_m, intercept_m), optimum_m)
    held_out = raw["test"] if raw["test"] is not None else raw["train"]

    def r2(coef: np.ndarray, intercept: float) -> float:
        residual = float(held_out.squared_errors(np.reshape(coef, (-1, 1)), np.array([intercept]))[0])
        return tl.losses.r2_of_sums(residual, float(held_out.syy[0]))

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
        r2=r2(coef, intercept),
        optimum_r2=r2(optimum_coef, optimum_intercept),
        history=history,
        model=model,
    )


def _closed_form(settings: Settings, train_m: Any, Z_train: Any, y_train: Any) -> tuple[np.ndarray, float]:
    """The closed form (coef (d,), intercept) of the training objective on a CSV read in chunks, in the model's
    units: from the moments `train_m`, without a pass, where their normal equations keep 12 digits (their
    rounding is about `NORMAL_EQUATIONS_UP_TO`·eps at most); else as `tl.solvers` takes it on the Dask
    arrays, one more pass for the factor of the centred rows (rounding about the square root of that)."""
    if train_m.normal_condition(settings.l2) <= NORMAL_EQUATIONS_UP_TO:
        coef, intercept = train_m.least_squares(settings.l2)
        return coef[:, 0], float(intercept[0])
    with reading(f"--csv {settings.csv}"):
        if settings.l2 > 0:
            return tl.solvers.ridge(Z_train, y_train, settings.l2)
        return tl.solvers.ols(Z_train, y_train)


def divergence_message(settings: Settings, result: Result, Z_train: np.ndarray, lr: float) -> str:
    """What rose, from where to where, and which --lr would not have diverged."""
    rose = (
        f"training diverged: the training loss rose from {number(result.initial_loss)} at the initial weights "
        f"to {number(result.train_loss)} after {settings.epochs} epoch{'s' if settings.epochs > 1 else ''} "
        f"of {settings.optimizer} (lr {lr:g})"
    )
    if settings.optimizer != "gd" or tl.sources.as_source(Z_train).reads_blocks:
        return f"{rose}; lower --lr or use --standardize"
    bound = tl.solvers.stable_learning_rate(Z_train, l2=settings.l2)
    if bound == 0:
        return f"{rose}; {TOO_LARGE_FOR_GD}"
    return f"{rose}; the largest stable --lr for gd on these rows is {bound:.3g}: use a smaller one, or --standardize"


# ----- the model file of --save-weights and predict -----


def save_model(path: str | os.PathLike, data: Dataset, model: tl.nn.Module, scaler: tl.data.Standardizer | None):
    """`model.save(path, metadata)` with what `predict` needs in the metadata: `features` (d names), `target`,
    and `mean`, `scale` (d floats each), the scaling that takes the data to the model's units (0 and 1
    without --standardize). A file that cannot be written is a UsageError."""
    d = len(data.features)
    metadata = {
        "features": list(data.features),
        "target": data.target,
        "mean": [0.0] * d if scaler is None else np.asarray(scaler.mean, np.float64).tolist(),
        "scale": [1.0] * d if scaler is None else np.asarray(scaler.scale, np.float64).tolist(),
    }
    try:
        model.save(path, metadata=metadata)
    except OSError as error:
        raise UsageError(f"--save-weights {path}: cannot write it ({error.strerror or error})") from None


@dataclasses.dataclass
class SavedModel:
    """A model file, read: the model, the columns it reads, and the scaling into its units. mean, scale: (d,)."""

    model: tl.nn.Module
    features: list[str]
    target: str
    mean: np.ndarray
    scale: np.ndarray

    def predict(self, X: np.ndarray) -> np.ndarray:
        """X: (n, d) in the data's units -> predictions (n,)."""
        return self.model.predict((X - self.mean) / self.scale)[:, 0]


def load_model(path: str) -> SavedModel:
    """Read a file written by `save_model` (`tl.nn.load_model`: never unpickling, every member checked before
    its data are read) and check its metadata; anything else is a UsageError saying why."""
    where = f"--weights {path}"
    not_ours = f"{where}: not a model file written by '{PROG} fit --save-weights'"
    try:
        model = tl.nn.load_model(path)
    except FileNotFoundError:
        raise UsageError(f"{where}: no such file") from None
    except ValueError as error:  # (load_model's OSErrors, a folder or no permission, are ValueErrors too)
        raise UsageError(f"{where}: {error}") from None
    metadata = model.metadata
    features, target = metadata.get("features"), metadata.get("target")
    if not (isinstance(features, list) and features and all(isinstance(name, str) for name in features)):
        raise UsageError(f"{not_ours} (its metadata has no 'features', a list of column names)")
    if not isinstance(target, str):
        raise UsageError(f"{not_ours} (its metadata has no 'target', a column name)")
    d = len(features)
    mean, scale = (_floats(metadata.get(key), d) for key in ("mean", "scale"))
    if mean is None or scale is None:
        raise UsageError(f"{not_ours} (its metadata's 'mean' and 'scale' are not {d} finite numbers each)")
    if not np.all(scale > 0):
        raise UsageError(f"{not_ours} (its scale has values <= 0)")
    try:
        outputs = model.predict(np.zeros((1, d))).shape[1]
    except ValueError as error:
        raise UsageError(f"{not_ours} (its model does not take the {d} features it names: {error})") from None
    if outputs != 1:
        raise UsageError(f"{not_ours} (its model predicts {outputs} values per row, not 1)")
    return SavedModel(model, features, target, mean, scale)


def _floats(value: Any, d: int) -> np.ndarray | None:
    """`value` as d finite float64s, or None when it is not a list of d finite real numbers."""
    if not (isinstance(value, list) and len(value) == d):
        return None
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        return None
    array = np.array(value, dtype=np.float64)
    return array if np.all(np.isfinite(array)) else None


def _in_original_units(
    scaler: tl.data.Standardizer | None, learned: tuple[np.ndarray, float], optimum: tuple[np.ndarray, float]
) -> tuple[tuple[np.ndarray, float], tuple[np.ndarray, float]]:
    """The learned and the closed form's (coef, intercept) in the data's original units; a UsageError where a
    weight is beyond float64 there (the closed form's named first)."""

    def unscaled(coef: np.ndarray, intercept: float) -> tuple[np.ndarray, float]:
        if scaler is None:
            return coef, intercept
        coef, intercept_array = tl.data.unscale_linear(coef, intercept, scaler)
        return coef, float(intercept_array)

    learned, optimum = unscaled(*learned), unscaled(*optimum)
    for which, (weights, _) in (("closed-form", optimum), ("learned", learned)):
        if not np.all(np.isfinite(weights)):
            raise UsageError(
                f"the {which} weights in the data's original units are beyond float64 ({number(weights.flat[0])}, "
                "...): the features are too small for the target's scale; rescale the feature columns"
            )
    return learned, optimum


def _train(model: tl.nn.Module, settings: Settings, Z_train: Any, y_train: Any, Z_val: Any, y_val: Any) -> Any:
    """The command's fit of the compiled model: full batch unless --batch-size, its sparse progress lines unless
    --quiet, the validation rows if any; a tl.TrainingDivergedError goes on up (main reports it, exit 1)."""
    return model.fit(
        Z_train,
        y_train,
        epochs=settings.epochs,
        batch_size=settings.batch_size or len(Z_train),
        validation_data=(Z_val, y_val) if len(Z_val) else None,
        verbose=0,
        callbacks=[] if settings.quiet else [SparseProgress(_progress_every(settings.epochs))],
        seed=settings.seed,
    )
