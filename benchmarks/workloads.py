"""The benchmark workloads of issue 7: deterministic data, W = 0 and b = 0, one batch schedule each.

A `Workload` holds everything an implementation needs to train: the training data `X: (n, d)`,
`y: (n, 1)`, the optional validation data, the optimizer and its hyper-parameters, and the batch
`schedule` — a list of epochs, each a list of batches, each a `slice` (contiguous rows, no copy)
or an integer array (shuffled rows). The schedule is drawn once per workload from a fixed seed,
and every implementation trains on exactly these batches in exactly this order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

Batch = slice | np.ndarray

# The 282 / 122 Boston split: the first floor(404 * (1 - 0.3)) rows train, the rest validate.
BOSTON_VALIDATION_SPLIT = 0.3
BOSTON_ROOMS = 5  # column "rm", average rooms per dwelling


@dataclass
class Workload:
    """One training problem, identical for every implementation."""

    name: str
    description: str
    X: np.ndarray  # (n, d) training features
    y: np.ndarray  # (n, 1) training targets
    optimizer: str  # "adam", "rmsprop" or "gd"
    lr: float
    epochs: int
    batch_size: int
    shuffle: bool
    seed: int  # the schedule's permutations come from np.random.default_rng(seed)
    l2: float = 0.0  # objective: mse + l2 * sum(W**2) (never the bias)
    X_val: np.ndarray | None = None  # validation data, evaluated after every epoch
    y_val: np.ndarray | None = None
    validation_split: float = 0.0  # how X_val was cut from the end of the data (for model.fit)
    reps: int = 5  # timed repetitions (interleaved across implementations)
    large: bool = False  # a bandwidth-bound workload: report the one-read floor, probe RSS
    schedule: list[list[Batch]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.schedule = make_schedule(len(self.X), self.batch_size, self.epochs, self.shuffle, self.seed)

    @property
    def dtype(self) -> np.dtype:
        return self.X.dtype

    @property
    def steps(self) -> int:
        return sum(len(batches) for batches in self.schedule)

    @property
    def data_bytes(self) -> int:
        """Bytes of every array the workload holds (training and validation)."""
        arrays = [self.X, self.y, self.X_val, self.y_val]
        return sum(a.nbytes for a in arrays if a is not None)

    @property
    def optimizer_label(self) -> str:
        names = {"adam": "Adam", "rmsprop": "RMSprop", "gd": "GD"}
        return f"{names[self.optimizer]}({self.lr:g})"

    def summary(self) -> str:
        n, d = self.X.shape
        batch = (
            "full batch"
            if self.batch_size >= n
            else f"batch {self.batch_size}" + (", shuffled" if self.shuffle else "")
        )
        extra = f", l2 {self.l2:g}" if self.l2 else ""
        extra += f", validation {len(self.X_val)}" if self.X_val is not None else ""
        return f"n={n}, d={d}, {self.dtype.name}, {self.optimizer_label}, {batch}, {self.steps} steps{extra}"


def make_schedule(n: int, batch_size: int, epochs: int, shuffle: bool, seed: int) -> list[list[Batch]]:
    """Every epoch's batches: slices in order, or one fresh permutation per epoch cut into index arrays.

    The permutations are `np.random.default_rng(seed).permutation(n)`, one call per epoch, the
    last batch of an epoch possibly smaller — the same rule as Keras (and `tl.data.batch_indices`).
    """
    starts = range(0, n, batch_size)
    if not shuffle:
        epoch = [slice(start, min(start + batch_size, n)) for start in starts]
        return [epoch] * epochs
    rng = np.random.default_rng(seed)
    schedule = []
    for _ in range(epochs):
        order = rng.permutation(n)
        schedule.append([order[start : start + batch_size] for start in starts])
    return schedule


def _column(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(values, dtype=np.float64).reshape(len(values), -1), dtype=dtype)


def tiny(quick: bool = False) -> Workload:
    x = np.array([-10.0, 0.0, 2.0, 6.0, 12.0, 15.0])
    return Workload(
        name="tiny",
        description="x = [-10, 0, 2, 6, 12, 15], y = 2x + 30; Adam(0.1), full batch",
        X=_column(x, np.float32),
        y=_column(2 * x + 30, np.float32),
        optimizer="adam",
        lr=0.1,
        epochs=50 if quick else 500,
        batch_size=6,
        shuffle=False,
        seed=0,
        reps=1 if quick else 7,
    )


def small(quick: bool = False) -> Workload:
    x = np.arange(51.0)
    y = x + 10 * np.random.default_rng(51).uniform(0.0, 1.0, size=51)
    return Workload(
        name="small",
        description="x = 0..50, y = x + 10·U(0,1); Adam(0.1), batch 32, shuffled",
        X=_column(x, np.float32),
        y=_column(y, np.float32),
        optimizer="adam",
        lr=0.1,
        epochs=20 if quick else 200,
        batch_size=32,
        shuffle=True,
        seed=1,
        reps=1 if quick else 7,
    )


def boston(quick: bool = False) -> Workload:
    from tinygrad_lr.datasets import load_boston_housing  # the bundled CSV, Keras' train/test split

    (x_train, y_train), _ = load_boston_housing()
    rooms = x_train[:, BOSTON_ROOMS]
    n_train = math.floor(len(rooms) * (1.0 - BOSTON_VALIDATION_SPLIT))
    assert (n_train, len(rooms) - n_train) == (282, 122), "the issue's Boston split is 282 / 122"
    return Workload(
        name="boston",
        description="Boston housing, price against rooms, validation_split 0.3 (282 / 122); RMSprop(0.005), "
        "batch 16, shuffled; validation loss every epoch",
        X=_column(rooms[:n_train], np.float32),
        y=_column(y_train[:n_train], np.float32),
        X_val=_column(rooms[n_train:], np.float32),
        y_val=_column(y_train[n_train:], np.float32),
        validation_split=BOSTON_VALIDATION_SPLIT,
        optimizer="rmsprop",
        lr=0.005,
        epochs=10 if quick else 101,
        batch_size=16,
        shuffle=True,
        seed=2,
        reps=1 if quick else 7,
    )


def l2(quick: bool = False) -> Workload:
    x = np.arange(10_000.0)
    y = 3.657 * x + 0.33 * np.random.default_rng(3).standard_normal(10_000)
    return Workload(
        name="l2",
        description="x = 0..9999, y = 3.657x + 0.33·N(0,1); mse + 1e-10·ΣW²; GD(1e-10), batches of 5000",
        X=_column(x, np.float32),
        y=_column(y, np.float32),
        optimizer="gd",
        lr=1e-10,
        l2=1e-10,
        epochs=50 if quick else 2000,
        batch_size=5000,
        shuffle=False,
        seed=3,
        reps=1 if quick else 5,
    )


def _linear_data(n: int, d: int, dtype: np.dtype, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """X ~ N(0, 1), y = X·w + 3 + 0.1·N(0, 1) with w evenly spaced in [-2, 2]; both cast to `dtype`."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    w = np.linspace(-2.0, 2.0, d)
    y = X @ w + 3.0 + 0.1 * rng.standard_normal(n)
    return X.astype(dtype), y.reshape(n, 1).astype(dtype)


def large(dtype: type = np.float32, quick: bool = False) -> Workload:
    n = 50_000 if quick else 1_000_000
    X, y = _linear_data(n, 10, np.dtype(dtype), seed=4)
    suffix = "f32" if np.dtype(dtype) == np.float32 else "f64"
    return Workload(
        name=f"large_{suffix}",
        description=f"N = {n:,}, D = 10, y = X·w + 3 + noise; full-batch GD(0.1); {np.dtype(dtype).name}",
        X=X,
        y=y,
        optimizer="gd",
        lr=0.1,
        epochs=20,
        batch_size=n,
        shuffle=False,
        seed=4,
        reps=1 if quick else 7,
        large=True,
    )


def wide(quick: bool = False) -> Workload:
    n = 10_000 if quick else 100_000
    X, y = _linear_data(n, 100, np.dtype(np.float32), seed=5)
    return Workload(
        name="wide",
        description=f"N = {n:,}, D = 100, y = X·w + 3 + noise; full-batch GD(0.05); float32",
        X=X,
        y=y,
        optimizer="gd",
        lr=0.05,
        epochs=50,
        batch_size=n,
        shuffle=False,
        seed=5,
        reps=1 if quick else 7,
        large=True,
    )


BUILDERS = {
    "tiny": tiny,
    "small": small,
    "boston": boston,
    "l2": l2,
    "large_f32": lambda quick=False: large(np.float32, quick),
    "large_f64": lambda quick=False: large(np.float64, quick),
    "wide": wide,
}
NAMES = list(BUILDERS)
ALIASES = {"large": ["large_f32", "large_f64"]}
SMALL_DATA = ["tiny", "small", "boston", "l2"]  # where per-op overhead decides the speed


def resolve(names: list[str] | None) -> list[str]:
    """Workload names from the command line (`large` means both precisions), in the suite's order."""
    if not names:
        return list(NAMES)
    wanted = set()
    for name in names:
        if name in ALIASES:
            wanted.update(ALIASES[name])
        elif name in BUILDERS:
            wanted.add(name)
        else:
            raise SystemExit(f"unknown workload {name!r}; choose from {', '.join(NAMES + list(ALIASES))}")
    return [name for name in NAMES if name in wanted]


def build(name: str, quick: bool = False) -> Workload:
    return BUILDERS[name](quick=quick)


@dataclass
class Result:
    """What one training run produced, in float64: final weights, per-epoch losses, validation losses."""

    weight: np.ndarray  # (d, 1)
    bias: np.ndarray  # (1,)
    losses: list[float]  # per epoch: batch-size-weighted mean of the batch objectives (Keras' "loss")
    val_losses: list[float] = field(default_factory=list)

    @classmethod
    def of(cls, weight, bias, losses, val_losses=()) -> Result:
        return cls(
            weight=np.asarray(weight, dtype=np.float64).reshape(-1, 1),
            bias=np.asarray(bias, dtype=np.float64).reshape(1),
            losses=[float(v) for v in losses],
            val_losses=[float(v) for v in val_losses],
        )


def epoch_means(batch_losses: list[float], workload: Workload) -> list[float]:
    """Per-epoch, batch-size-weighted means of per-step losses listed in schedule order."""
    n = len(workload.X)
    sizes = [len(range(n)[b]) if isinstance(b, slice) else len(b) for b in workload.schedule[0]]
    per_epoch = len(sizes)
    weights = np.asarray(sizes, dtype=np.float64)
    values = np.asarray(batch_losses, dtype=np.float64).reshape(-1, per_epoch)
    return list(values @ weights / weights.sum())
