"""Time reading a big numeric CSV (issue 24): `tl.data.load_csv` beside `np.loadtxt` and `pandas.read_csv`.

    python benchmarks/csv_read.py                # 1,000,000 rows x 5 columns (about 47 MB), 5 rounds
    python benchmarks/csv_read.py --rows 20000   # a quick run

- The file: a header of five names, then `--rows` rows of five standard normal numbers written with six
  significant digits (np.savetxt's "%.6g"), in a temporary folder that is removed afterwards.
- The readers: `tl.data.load_csv(path, "y")` as a user with pandas installed and imported gets it (pandas'
  C parser reads the rows), the same without pandas (NumPy's `loadtxt` reads them), `np.loadtxt(path,
  delimiter=",", skiprows=1)` and `pandas.read_csv(path)`, each reading the whole file into float64.
- Time: `measure.time_interleaved`, one untimed warm-up per reader, then `--reps` rounds of every reader in
  the same order; the median of the rounds. The table gives each reader's median and its ratio to
  `pandas.read_csv`; the target is load_csv at most 5 times pandas.read_csv (PASS or FAIL).
- Before timing, load_csv's numbers are checked against np.loadtxt's, to the bit: both read each number as
  Python's float() does.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(HERE), str(ROOT)]  # the checkout's tinygrad_lr, and the benchmark modules

import measure  # noqa: E402

import tinygrad_lr as tl  # noqa: E402

TARGET = 5.0  # load_csv / pandas.read_csv, at most


def write_csv(path: Path, rows: int, seed: int) -> None:
    """A header "a,b,c,d,y" and `rows` rows of five standard normal numbers, six significant digits each."""
    values = np.random.default_rng(seed).normal(size=(rows, 5))
    np.savetxt(path, values, delimiter=",", fmt="%.6g", header="a,b,c,d,y", comments="")


@contextlib.contextmanager
def without_pandas() -> Iterator[None]:
    """Within it, `import pandas` fails, as where pandas is not installed."""
    saved = sys.modules.get("pandas")
    sys.modules["pandas"] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        sys.modules["pandas"] = saved  # type: ignore[assignment]


def load_csv_without_pandas(path: Path):
    with without_pandas():
        return tl.data.load_csv(path, "y")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="data rows in the file (default 1,000,000)")
    parser.add_argument("--reps", type=int, default=5, help="timed rounds of every reader (default 5)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        import pandas
    except ImportError:
        pandas = None

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "numbers.csv"
        write_csv(path, args.rows, args.seed)
        size_mb = path.stat().st_size / 1e6
        print(f"reading {args.rows:,} rows x 5 columns ({size_mb:.1f} MB), median of {args.reps} rounds", flush=True)

        X, y, _ = tl.data.load_csv(path, "y")
        floor = np.loadtxt(path, delimiter=",", skiprows=1)
        same = X.tobytes() == floor[:, :4].copy().tobytes() and y.tobytes() == floor[:, 4].copy().tobytes()
        print(f"load_csv's numbers are np.loadtxt's to the bit: {'yes' if same else 'NO'}")

        runners = {
            "tl.data.load_csv": lambda: tl.data.load_csv(path, "y"),
            "tl.data.load_csv (no pandas)": lambda: load_csv_without_pandas(path),
            "np.loadtxt": lambda: np.loadtxt(path, delimiter=",", skiprows=1),
        }
        if pandas is not None:
            runners["pandas.read_csv"] = lambda: pandas.read_csv(path)
        timed = measure.time_interleaved(runners, args.reps)

    reference = timed["pandas.read_csv"]["median_s"] if pandas is not None else None
    print(f"\n{'reader':32s} {'median s':>9s} {'vs pandas.read_csv':>19s}")
    for name, entry in timed.items():
        ratio = f"{entry['median_s'] / reference:.2f}x" if reference else "n/a"
        print(f"{name:32s} {entry['median_s']:9.3f} {ratio:>19s}")
    if reference is None:
        print(f"\ntarget: load_csv <= {TARGET:g}x pandas.read_csv: not measured (pandas is not installed)")
        return 0 if same else 1
    ratio = timed["tl.data.load_csv"]["median_s"] / reference
    verdict = "PASS" if ratio <= TARGET else "FAIL"
    print(f"\ntarget: load_csv <= {TARGET:g}x pandas.read_csv: {ratio:.2f}x, {verdict}")
    return 0 if same and verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
