"""Issue 13's benchmark: data larger than memory (memory maps) and training on a Dask cluster.

    python benchmarks/scale.py                # the full run: scale-results.json, docs/scale.png, README section
    python benchmarks/scale.py --quick        # a smoke run under a minute: *-quick files, ignored by git
    python benchmarks/scale.py --only mmap    # one part (mmap or dask); written as a quick run is
    python benchmarks/scale.py --only moments # issue 25's rows: moments-results.json, the README's moments table
    python benchmarks/scale_report.py         # redraw the README section and the chart from scale-results.json

**Memory map.** One data set, X (N, 10) and y (N,) in float32, is written once as two .npy files
to a scratch folder (under /tmp unless --scratch says otherwise; removed at the end, also after
Ctrl-C or SIGTERM); each N reads the first N rows of it through `np.load(path, mmap_mode="r")[:N]`.
For each N a fresh process (so that its anonymous memory is this library's and NumPy's, nothing
else) alternates, `reps` times: the disk's sequential read of exactly the bytes an epoch reads
(16 MiB `readinto` calls, file by file), then one epoch of `model.fit` on the memory maps
(`batch_size=8192`, shuffled: the blocks of 65,536 rows in a random order and each block's rows
permuted — eight batches per block read). Before each of these timed passes the files are
dropped from the page cache (`os.posix_fadvise(POSIX_FADV_DONTNEED)`, after `fsync` when they
were written; the memory maps of the previous pass are closed first, since the kernel keeps pages
that a process still maps), and `mincore` on a fresh mapping checks how much of them was still
cached: the passes are judged on a cold cache, which the page cache of this machine could
otherwise hide (the largest data set fits in its RAM). One more pass of each, on a warm cache,
shows how fast training is when it does not wait for the disk. A thread samples `RssAnon` (the
process's anonymous memory: arrays, Python objects, not the file's pages) every 5 ms throughout.

**Dask.** X (N, 10) and y (N,) in float64, in chunks of 1M rows, generated on the workers as one
table (`dask.array.random.default_rng(seed)`, then persisted there, X's and y's chunks of the same
rows on the same worker): the client never holds the data.
On a `LocalCluster` of 1 and then 2 worker processes (one thread each, BLAS at one thread each,
127.0.0.1, no dashboard), timed with `measure.time_interleaved` (a warm-up, then interleaved
repetitions, medians): `tl.solvers.ols`, `dask.array.linalg.lstsq` on [1 X] (a tall-skinny QR)
and dask-ml's `LinearRegression` (its exact solver, newton, and lbfgs without a penalty); their
coefficients are compared with lstsq's, and each solution's training mse is computed on the
cluster. Then full-batch gradient descent (`fit(batch_size=None)`, SGD) on N rows, on N/4 rows in
as many chunks (bytes against rows) and on N/4 rows in chunks of 1M (bytes against chunks): time
per step, and the bytes that moved per step, from the workers' transfer logs (to the client, and
between workers) and from the loopback interface's counters (everything: task messages, results,
heartbeats).

**The moments (issue 25).** 1,000 full-batch epochs (`fit(batch_size=None)`, SGD) take their steps
from the data's moments, one pass for the whole fit; each row is timed beside the time of one pass
over the same data: on the Dask array above (20M x 10, float64, 1 and 2 workers) beside
`tl.solvers.ols` on it (medians of `reps` after a warm-up, interleaved); on a 10M-row memory map
(float32, written as the memory-map part's, a float32 model) from a cold cache, beside one cold
sequential read of its bytes (medians); and `tinygrad-lr fit --csv BIG.csv --standardize` (a fresh
process; the file over 1 GiB is read in chunks by dask.dataframe on the default threads scheduler)
on a CSV of at least 1.5 GB, written once (10 features and a target, six significant digits, the
same line as above) and removed at the end, beside one `pandas.read_csv` of the file (warm: it was
just written). Each also runs on a 1M-row slice beside the same fit in memory with
`run_eagerly=True` (float64): their weights must agree to 1e-9 relative.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import mmap
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(HERE), str(ROOT)]  # the checkout's tinygrad_lr, and the benchmark modules

import measure  # noqa: E402
import numpy as np  # noqa: E402
import scale_report  # noqa: E402

import tinygrad_lr as tl  # noqa: E402

FEATURES = 10
COEF = np.linspace(0.1, 1.0, FEATURES)  # y = X @ COEF + INTERCEPT + NOISE·N(0, 1), X ~ N(0, 1)
INTERCEPT, NOISE = 3.0, 0.1
BATCH_SIZE = 8192  # memory-map training: 8 batches per block of blockwise.BLOCK_ROWS = 65,536 rows
LEARNING_RATE = 0.05
READ_CHUNK = 16 * 2**20  # bytes per read() in the sequential-read measurement
WRITE_ROWS = 1_000_000  # rows generated and written at a time
SAMPLE_S = 0.005  # RssAnon sampling interval


@dataclass(frozen=True)
class Plan:
    """The sizes of a run."""

    mmap_rows: tuple[int, ...]  # memory map: rows of each measured N (the largest is written)
    mmap_reps: int  # cold passes (sequential read + epoch) per N
    dask_rows: int  # Dask: rows of the main data set
    dask_small_rows: int  # a smaller data set for gradient descent: bytes per step against N
    dask_chunk_rows: int
    dask_workers: tuple[int, ...]
    ols_reps: int  # timed repetitions per least-squares solver, after a warm-up
    gd_steps: int  # timed gradient-descent steps, after a warm-up step
    moments_mmap_rows: int = 10_000_000  # the moments: rows of the memory map
    moments_csv_bytes: int = 1_600_000_000  # the CLI's CSV: at least this many bytes
    moments_check_rows: int = 1_000_000  # the slice each moments row is checked against run_eagerly on
    moments_epochs: int = 1_000


FULL = Plan((10_000_000, 50_000_000, 200_000_000), 3, 20_000_000, 5_000_000, 1_000_000, (1, 2), 3, 10)
QUICK = Plan(
    (250_000, 500_000, 1_000_000), 1, 1_000_000, 250_000, 125_000, (1, 2), 1, 2, 1_000_000, 30_000_000, 100_000
)


# ----- the page cache and the disk -----


def _mincore() -> Callable:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    return libc.mincore


def cached_fraction(path: Path, offset: int = 0, length: int | None = None) -> float:
    """The share of the pages holding bytes offset to offset + length of the file (all of it when
    length is None) that are in the page cache now: `mincore` on a fresh mapping, which looks
    without reading."""
    size = path.stat().st_size
    with open(path, "rb") as file, mmap.mmap(file.fileno(), size, prot=mmap.PROT_READ) as mapped:
        pages = np.zeros(-(-size // mmap.PAGESIZE), dtype=np.uint8)
        view = np.frombuffer(mapped, dtype=np.uint8)
        failed = _mincore()(view.ctypes.data, size, pages.ctypes.data)
        del view  # the mapping closes only when nothing exports its buffer
    if failed:
        raise OSError(ctypes.get_errno(), f"mincore on {path}")
    stop = size if length is None else offset + length
    return float(np.mean(pages[offset // mmap.PAGESIZE : -(-stop // mmap.PAGESIZE)] & 1))


def drop_from_cache(paths: list[Path], sync: bool = False) -> None:
    """Ask the kernel to drop the files' clean pages from the page cache (written first with `sync`).
    Pages that a process still maps stay: close the memory maps before."""
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            if sync:
                os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def read_sequentially(ranges: list[tuple[Path, int, int]]) -> float:
    """Seconds to read the byte ranges (path, offset, length) one after another, READ_CHUNK bytes per read()."""
    view = memoryview(bytearray(READ_CHUNK))
    started = time.perf_counter()
    for path, offset, length in ranges:
        with open(path, "rb", buffering=0) as file:
            file.seek(offset)
            while length > 0:
                got = file.readinto(view[: min(READ_CHUNK, length)])
                if not got:
                    raise OSError(f"{path}: ended {length} bytes early")
                length -= got
    return time.perf_counter() - started


def filesystem(path: Path) -> dict:
    """The mount (device, type) that holds `path`, from /proc/mounts: a tmpfs would mean no disk at all."""
    best = {"device": "unknown", "type": "unknown", "mount": "/"}
    resolved = str(path.resolve())
    for line in Path("/proc/mounts").read_text().splitlines():
        device, mount, kind = line.split()[:3]
        inside = resolved == mount or resolved.startswith(mount.rstrip("/") + "/")
        if inside and len(mount) >= len(best["mount"]):
            best = {"device": device, "type": kind, "mount": mount}
    return best


# ----- anonymous memory -----


def rss_anon() -> int:
    """This process's anonymous resident memory in bytes (RssAnon: not the file pages a memory map reads)."""
    return measure._status_kib("RssAnon") * 1024


class AnonPeak:
    """The largest RssAnon seen while the block runs, sampled by a thread every SAMPLE_S seconds."""

    def __init__(self) -> None:
        self.peak = rss_anon()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(SAMPLE_S):
            self.peak = max(self.peak, rss_anon())

    def __enter__(self) -> AnonPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_anon())


# ----- memory map -----


def write_data(folder: Path, rows: int, seed: int = 0) -> tuple[Path, Path]:
    """X (rows, FEATURES) and y (rows,), float32, as .npy files, WRITE_ROWS rows at a time; synced
    to disk and dropped from the page cache. Returns their paths."""
    rng = np.random.default_rng(seed)
    paths = folder / "X.npy", folder / "y.npy"
    x = np.lib.format.open_memmap(paths[0], mode="w+", dtype=np.float32, shape=(rows, FEATURES))
    y = np.lib.format.open_memmap(paths[1], mode="w+", dtype=np.float32, shape=(rows,))
    coef = COEF.astype(np.float32)
    for start in range(0, rows, WRITE_ROWS):
        block = rng.standard_normal((min(rows, start + WRITE_ROWS) - start, FEATURES), dtype=np.float32)
        x[start : start + len(block)] = block
        y[start : start + len(block)] = block @ coef + INTERCEPT + NOISE * rng.standard_normal(len(block), np.float32)
    x.flush()
    y.flush()
    del x, y  # unmapped, so that their pages can leave the cache
    drop_from_cache(list(paths), sync=True)
    return paths


def _open_maps(paths: tuple[Path, Path], rows: int) -> tuple[np.memmap, np.memmap]:
    return tuple(np.load(path, mmap_mode="r")[:rows] for path in paths)


def _byte_ranges(paths: tuple[Path, Path], rows: int) -> list[tuple[Path, int, int]]:
    """(path, offset, length) of the bytes that the first `rows` rows of X and y occupy."""
    ranges = []
    for path in paths:
        full = np.load(path, mmap_mode="r")
        ranges.append((path, full.offset, rows * full.strides[0]))
        del full
    return ranges


def _epoch(model: Any, paths: tuple[Path, Path], rows: int, seed: int) -> tuple[float, float]:
    """Seconds for one shuffled epoch of `fit` on freshly opened memory maps, and its loss. The maps
    are closed afterwards (a page still mapped cannot be dropped from the cache)."""
    x, y = _open_maps(paths, rows)
    started = time.perf_counter()
    history = model.fit(x, y, epochs=1, batch_size=BATCH_SIZE, shuffle=True, seed=seed, verbose=0)
    seconds = time.perf_counter() - started
    del x, y
    gc.collect()
    return seconds, history.history["loss"][-1]


def mmap_probe(paths: tuple[Path, Path], rows: int, reps: int) -> dict:
    """In a fresh process: `reps` cold rounds (sequential read, then an epoch, each from an empty
    cache), then one warm round; the largest RssAnon throughout."""
    ranges = _byte_ranges(paths, rows)
    model = tl.nn.Sequential([tl.nn.Linear(FEATURES, 1, seed=0, dtype=np.float32)])
    model.compile(optimizer=tl.optim.SGD(lr=LEARNING_RATE))
    gc.collect()
    baseline = rss_anon()
    out: dict[str, Any] = {"read_cold_s": [], "epoch_cold_s": [], "cached_before_cold": [], "losses": []}
    with AnonPeak() as anon:
        for rep in range(reps):
            drop_from_cache(list(paths))
            out["read_cold_s"].append(read_sequentially(ranges))
            drop_from_cache(list(paths))
            out["cached_before_cold"].append(max(cached_fraction(*where) for where in ranges))
            seconds, loss = _epoch(model, paths, rows, seed=rep)
            out["epoch_cold_s"].append(seconds)
            out["losses"].append(loss)
        out["cached_after_cold"] = min(cached_fraction(*where) for where in ranges)
        read_sequentially(ranges)  # brings the rows into the cache (if they fit)
        out["read_warm_s"] = read_sequentially(ranges)
        out["cached_before_warm"] = min(cached_fraction(*where) for where in ranges)
        out["epoch_warm_s"], loss = _epoch(model, paths, rows, seed=reps)
        out["losses"].append(loss)
    out.update(anon_baseline_bytes=baseline, anon_peak_bytes=anon.peak, data_bytes=sum(r[2] for r in ranges))
    return out


def _child_json(arguments: list[str], timeout: float) -> dict:
    """Run this script with `arguments` in a fresh interpreter and read back its last JSON line."""
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), *arguments],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=timeout,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{' '.join(arguments)} failed: {done.stderr.strip()[-2000:] or 'no output'}")
    return json.loads(lines[-1])


def _summarise_mmap(rows: int, raw: dict) -> dict:
    """Medians and rates from one probe's raw timings."""
    data = raw["data_bytes"]
    epoch, read = statistics.median(raw["epoch_cold_s"]), statistics.median(raw["read_cold_s"])
    return {
        "rows": rows,
        "steps_per_epoch": -(-rows // BATCH_SIZE),
        "epoch_s": epoch,
        "train_bytes_per_s": data / epoch,
        "sequential_read_bytes_per_s": data / read,
        "share_of_sequential_read": read / epoch,
        "epoch_warm_s": raw["epoch_warm_s"],
        "train_warm_bytes_per_s": data / raw["epoch_warm_s"],
        "sequential_read_warm_bytes_per_s": data / raw["read_warm_s"],
        **raw,
    }


def run_memory_map(plan: Plan, scratch_parent: Path) -> dict:
    """Write the largest data set once, then measure every N in its own process; the scratch folder
    is removed whatever happens."""
    largest = max(plan.mmap_rows)
    needed = largest * (FEATURES + 1) * 4
    free = shutil.disk_usage(scratch_parent).free
    if free < needed + 2**30:
        raise SystemExit(
            f"scale: the memory-map data need {needed / 1e9:.1f} GB in {scratch_parent} (+1 GiB spare), "
            f"but {free / 1e9:.1f} GB are free; point --scratch at a larger disk"
        )
    folder = Path(tempfile.mkdtemp(prefix="tinygrad-lr-scale-", dir=scratch_parent))
    try:
        print(f"memory map: writing {largest:,} rows x {FEATURES} float32 ({needed / 1e9:.2f} GB) to {folder}")
        started = time.perf_counter()
        paths = write_data(folder, largest)
        result: dict[str, Any] = {
            "features": FEATURES,
            "dtype": "float32",
            "batch_size": BATCH_SIZE,
            "block_rows": tl.blockwise.BLOCK_ROWS,
            "learning_rate": LEARNING_RATE,
            "write_s": time.perf_counter() - started,
            "written_bytes": needed,
            "filesystem": filesystem(folder),
            "runs": [],
        }
        print(f"   written and synced in {result['write_s']:.1f} s ({result['filesystem']['type']})", flush=True)
        for rows in plan.mmap_rows:
            arguments = ["--mmap-probe", str(paths[0]), str(paths[1]), str(rows), str(plan.mmap_reps)]
            run = _summarise_mmap(rows, _child_json(arguments, timeout=3600))
            result["runs"].append(run)
            print(
                f"   N={rows:>11,}: epoch {run['epoch_s']:7.2f} s = {run['train_bytes_per_s'] / 1e9:5.2f} GB/s "
                f"({run['share_of_sequential_read']:.0%} of sequential read "
                f"{run['sequential_read_bytes_per_s'] / 1e9:.2f} GB/s); warm cache {run['epoch_warm_s']:.2f} s "
                f"= {run['train_warm_bytes_per_s'] / 1e9:.2f} GB/s; cached before cold passes "
                f"{max(run['cached_before_cold']):.0%}; RssAnon peak {run['anon_peak_bytes'] / 2**20:.0f} MiB "
                f"(+{(run['anon_peak_bytes'] - run['anon_baseline_bytes']) / 2**20:.0f})",
                flush=True,
            )
        return result
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# ----- Dask -----


@contextmanager
def local_cluster(workers: int) -> Iterator[Any]:
    """A Client on a LocalCluster of `workers` processes, one thread each, on loopback, no dashboard."""
    import distributed

    warnings.filterwarnings("ignore", message="Port .* is already in use")  # the HTTP health routes' port
    with (
        distributed.LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


def cluster_data(client: Any, rows: int, chunk_rows: int, seed: int) -> tuple[Any, Any]:
    """X (rows, FEATURES) and y (rows,), float64, chunked by rows, generated and kept on the workers.

    Both come from one (rows, FEATURES + 1) array, as from a table whose last column is the target,
    so that the chunks of X and y with the same rows are made, and kept, on the same worker."""
    import dask.array as da
    import distributed

    table = da.random.default_rng(seed).normal(size=(rows, FEATURES + 1), chunks=(chunk_rows, -1))
    X = table[:, :FEATURES]
    y = X @ COEF + INTERCEPT + NOISE * table[:, FEATURES]
    X, y = client.persist([X, y])
    distributed.wait([X, y])
    return X, y


def chunks_per_worker(client: Any, X: Any) -> list[int]:
    """How many of X's chunks each worker holds."""
    holders = client.who_has(X)
    counts = dict.fromkeys(client.scheduler_info()["workers"], 0)
    for workers in holders.values():
        for worker in workers:
            counts[worker] += 1
    return sorted(counts.values())


def _as_vector(coef: Any, intercept: Any) -> np.ndarray:
    """(intercept, coef...) as one float64 vector."""
    return np.concatenate([[float(np.ravel(intercept)[0])], np.ravel(coef)]).astype(np.float64)


def least_squares_solvers(X: Any, y: Any) -> tuple[dict[str, Callable[[], np.ndarray]], dict[str, str]]:
    """The solvers compared, each a callable returning (intercept, coef...), and those skipped with why."""
    import dask.array as da

    def lstsq() -> np.ndarray:
        design = da.concatenate([da.ones((len(X), 1), chunks=(X.chunks[0], 1)), X], axis=1).rechunk({1: -1})
        return da.linalg.lstsq(design, y)[0].compute()

    solvers = {"tinygrad_lr": lambda: _as_vector(*tl.solvers.ols(X, y)), "dask-lstsq": lstsq}
    skipped = {}
    try:
        from dask_ml.linear_model import LinearRegression
    except ImportError as error:
        skipped["dask-ml"] = f"dask-ml is not installed ({error}); pip install dask-ml"
    else:
        for solver, options in (("newton", {}), ("lbfgs", {"penalty": None})):

            def fit(solver: str = solver, options: dict = options) -> np.ndarray:
                model = LinearRegression(solver=solver, **options).fit(X, y)
                return _as_vector(model.coef_, model.intercept_)

            solvers[f"dask-ml-{solver}"] = fit
    return solvers, skipped


def training_mse(X: Any, y: Any, params: np.ndarray) -> float:
    """mean((X @ coef + intercept - y)²), computed on the cluster."""
    return float((((X @ params[1:] + params[0]) - y) ** 2).mean().compute())


def _transfers_since(since: float, dask_worker: Any = None) -> list[tuple[str | None, int, bool]]:
    """On a worker: (recipient, bytes, whether any key was an array chunk) of each transfer it served
    since `since` (time.time()). Array chunks have tuple keys, ("name", i, j); the Delayed results
    that tinygrad_lr's steps send (the model, each chunk's Sums, their sums up the tree) have string keys."""
    return [
        (e["who"], e["total"], any(isinstance(key, tuple) for key in e["keys"]))
        for e in dask_worker.transfer_outgoing_log
        if e["start"] >= since
    ]


def _loopback_bytes() -> int:
    import psutil

    return psutil.net_io_counters(pernic=True)["lo"].bytes_sent


@contextmanager
def traffic(client: Any) -> Iterator[dict[str, int]]:
    """Bytes moved while the block runs: by the workers to the client side and to each other (their
    transfer logs; between workers, data chunks apart from results), and over the loopback
    interface in all (task messages and heartbeats too)."""
    counts: dict[str, int] = {}
    since, loopback = time.time(), _loopback_bytes()
    yield counts
    counts["loopback"] = _loopback_bytes() - loopback
    logs = client.run(_transfers_since, since)
    sent = [entry for log in logs.values() for entry in log]
    counts["to_client"] = sum(size for who, size, _ in sent if who not in logs)
    counts["between_workers"] = sum(size for who, size, chunks in sent if who in logs and not chunks)
    counts["chunks_between_workers"] = sum(size for who, size, chunks in sent if who in logs and chunks)


def gradient_descent(client: Any, X: Any, y: Any, steps: int) -> dict:
    """Seconds and bytes per step of full-batch gradient descent (`fit(batch_size=None)`) on the cluster."""
    model = tl.nn.Sequential([tl.nn.Linear(FEATURES, 1, seed=0, dtype=np.float64)])
    model.compile(optimizer=tl.optim.SGD(lr=0.1))
    model.fit(X, y, epochs=1, batch_size=None, verbose=0)  # warm-up: the workers import and unpickle once
    with traffic(client) as moved:
        started = time.perf_counter()
        history = model.fit(X, y, epochs=steps, batch_size=None, verbose=0)
        seconds = time.perf_counter() - started
    return {
        "rows": len(X),
        "chunks": len(X.chunks[0]),
        "steps": steps,
        "per_step_s": seconds / steps,
        "final_loss": history.history["loss"][-1],
        **{f"{kind}_bytes_per_step": count / steps for kind, count in moved.items()},
    }


def gradient_descent_data(plan: Plan) -> list[tuple[int, int]]:
    """(rows, chunk rows) of the data sets that gradient descent runs on: N; a smaller N in as many
    chunks (bytes per step against rows); the smaller N in chunks of the same size (against chunks)."""
    rows, small, chunk = plan.dask_rows, plan.dask_small_rows, plan.dask_chunk_rows
    return [(rows, chunk), (small, chunk * small // rows), (small, chunk)]


def run_cluster(plan: Plan, workers: int) -> dict:
    """Everything measured on one LocalCluster of `workers` processes."""
    with local_cluster(workers) as client:
        blas = client.run(lambda: os.environ.get("OPENBLAS_NUM_THREADS"))
        started = time.perf_counter()
        X, y = cluster_data(client, plan.dask_rows, plan.dask_chunk_rows, seed=0)
        entry: dict[str, Any] = {
            "workers": workers,
            "threads_per_worker": 1,
            "worker_blas_threads": sorted(set(blas.values())),
            "generate_s": time.perf_counter() - started,
            "chunks_per_worker": chunks_per_worker(client, X),
        }
        solvers, entry["skipped"] = least_squares_solvers(X, y)
        timed = measure.time_interleaved(solvers, plan.ols_reps)
        reference = timed["dask-lstsq"]["result"]
        reference_mse = training_mse(X, y, reference)
        entry["ols"] = {}
        for name, t in timed.items():
            mse = training_mse(X, y, t["result"])
            entry["ols"][name] = {
                "median_s": t["median_s"],
                "times_s": t["times_s"],
                "first_run_s": t["first_run_s"],
                "params": t["result"].tolist(),
                "max_rel_diff_to_lstsq": float(np.max(np.abs(t["result"] - reference)) / np.max(np.abs(reference))),
                "mse": mse,
                "mse_excess_over_lstsq": (mse - reference_mse) / reference_mse,
            }
            print(
                f"   {workers} worker(s): {name:16s} {t['median_s']:7.3f} s  max rel |Δ| to lstsq "
                f"{entry['ols'][name]['max_rel_diff_to_lstsq']:.1e}",
                flush=True,
            )
        entry["gradient_descent"] = [gradient_descent(client, X, y, plan.gd_steps)]
        del X, y  # released on the workers
        for rows, chunk_rows in gradient_descent_data(plan)[1:]:
            X, y = cluster_data(client, rows, chunk_rows, seed=1)
            entry["gradient_descent"].append(gradient_descent(client, X, y, plan.gd_steps))
            del X, y
        for run in entry["gradient_descent"]:
            print(
                f"   {workers} worker(s): gradient descent N={run['rows']:,} ({run['chunks']} chunks): "
                f"{run['per_step_s'] * 1e3:.1f} ms/step; per step to client {run['to_client_bytes_per_step']:,.0f} B, "
                f"between workers {run['between_workers_bytes_per_step']:,.0f} B of results and "
                f"{run['chunks_between_workers_bytes_per_step']:,.0f} B of data chunks, "
                f"loopback {run['loopback_bytes_per_step']:,.0f} B",
                flush=True,
            )
    return entry


def run_dask(plan: Plan) -> dict:
    """The Dask part: the same measurements on each cluster size."""
    import dask
    import distributed

    try:
        from importlib.metadata import version

        dask_ml = version("dask-ml")
    except Exception:
        dask_ml = None
    rows, chunk, data_bytes = plan.dask_rows, plan.dask_chunk_rows, plan.dask_rows * (FEATURES + 1) * 8
    print(f"\ndask: N = {rows:,} x {FEATURES} float64 in chunks of {chunk:,} rows ({data_bytes / 1e9:.2f} GB)")
    result = {
        "rows": rows,
        "small_rows": plan.dask_small_rows,
        "chunk_rows": chunk,
        "features": FEATURES,
        "data_bytes": data_bytes,
        "versions": {"dask": dask.__version__, "distributed": distributed.__version__, "dask-ml": dask_ml},
        "clusters": {},
    }
    for workers in plan.dask_workers:
        result["clusters"][str(workers)] = run_cluster(plan, workers)
    return result


# ----- the moments: 1,000 full-batch epochs for the price of one pass (issue 25) -----

CSV_ROWS_AT_A_TIME = 500_000


def _fit_full_batch(x: Any, y: Any, epochs: int, dtype: Any = np.float64, run_eagerly: bool = False) -> tuple:
    """(seconds, the fit's History, weights) of `epochs` full-batch SGD epochs from W = 0's Linear."""
    model = tl.nn.Sequential([tl.nn.Linear(FEATURES, 1, seed=0, dtype=dtype)])
    model.compile(optimizer=tl.optim.SGD(lr=LEARNING_RATE), run_eagerly=run_eagerly)
    gc.collect()
    started = time.perf_counter()
    history = model.fit(
        x, y, epochs=epochs, batch_size=None if tl.sources.as_source(x).reads_blocks else len(x), verbose=0
    )
    return time.perf_counter() - started, history, model.get_weights()


def _largest_relative_difference(got: list, want: list) -> float:
    return max(float(np.max(np.abs(a - b)) / np.max(np.abs(b))) for a, b in zip(got, want))


def _beside_run_eagerly(x: Any, y: Any, epochs: int) -> dict:
    """The moments' fit of a slice against the same fit in memory with run_eagerly=True, both float64."""
    _, fast, fast_weights = _fit_full_batch(x, y, epochs)
    seconds, eager, eager_weights = _fit_full_batch(
        np.asarray(x, np.float64), np.asarray(y, np.float64), epochs, run_eagerly=True
    )
    history = max(
        float(np.max(np.abs(np.array(fast.history[k]) / np.array(eager.history[k]) - 1))) for k in eager.history
    )
    return {
        "rows": len(x),
        "step": fast.step,
        "weights_max_rel_diff": _largest_relative_difference(fast_weights, eager_weights),
        "history_max_rel_diff": history,
        "eager_s": seconds,
    }


def moments_on_dask(plan: Plan, workers: int, check: bool) -> dict:
    """1,000 epochs on the cluster's X (N, 10) beside tl.solvers.ols on it; with `check`, a 1M-row slice
    beside run_eagerly in memory."""
    with local_cluster(workers) as client:
        X, y = cluster_data(client, plan.dask_rows, plan.dask_chunk_rows, seed=0)
        timed = measure.time_interleaved(
            {"ols": lambda: tl.solvers.ols(X, y), "fit": lambda: _fit_full_batch(X, y, plan.moments_epochs)},
            plan.ols_reps,
        )
        _, history, _ = timed["fit"]["result"]
        entry = {
            "workers": workers,
            "rows": plan.dask_rows,
            "epochs": plan.moments_epochs,
            "step": history.step,
            "fit_s": timed["fit"]["median_s"],
            "fit_times_s": timed["fit"]["times_s"],
            "reference": "tl.solvers.ols on the same data",
            "reference_s": timed["ols"]["median_s"],
            "reference_times_s": timed["ols"]["times_s"],
        }
        if check:
            rows = plan.moments_check_rows
            entry["check"] = _beside_run_eagerly(X[:rows], y[:rows], plan.moments_epochs)
    entry["ratio"] = entry["fit_s"] / entry["reference_s"]
    return entry


def moments_on_a_memory_map(plan: Plan, scratch_parent: Path, reps: int) -> dict:
    """1,000 epochs on a 10M-row memory map from a cold cache beside one cold sequential read (medians of
    `reps`), then a 1M-row slice beside run_eagerly in memory; the files are removed at the end."""
    rows = plan.moments_mmap_rows
    folder = Path(tempfile.mkdtemp(prefix="tinygrad-lr-moments-", dir=scratch_parent))
    try:
        paths = write_data(folder, rows)
        ranges = _byte_ranges(paths, rows)
        reads, fits = [], []
        for _ in range(reps):
            drop_from_cache(list(paths))
            reads.append(read_sequentially(ranges))
            drop_from_cache(list(paths))
            x, y = _open_maps(paths, rows)
            seconds, history, _ = _fit_full_batch(x, y, plan.moments_epochs, np.float32)
            fits.append(seconds)
            del x, y
            gc.collect()
        x, y = _open_maps(paths, plan.moments_check_rows)
        check = _beside_run_eagerly(x, y, plan.moments_epochs)
        del x, y
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    fit_s, read_s = statistics.median(fits), statistics.median(reads)
    return {
        "rows": rows,
        "epochs": plan.moments_epochs,
        "dtype": "float32",
        "step": history.step,
        "fit_s": fit_s,
        "fit_times_s": fits,
        "reference": "one cold sequential read of its bytes",
        "reference_s": read_s,
        "reference_times_s": reads,
        "data_bytes": sum(r[2] for r in ranges),
        "ratio": fit_s / read_s,
        "check": check,
    }


def write_csv(path: Path, rows: int, seed: int = 0) -> int:
    """A CSV of `rows` rows: the header x0..x9,y, then X (rows, FEATURES) ~ N(0, 1) and y = X @ COEF +
    INTERCEPT + NOISE·N(0, 1), six significant digits; written CSV_ROWS_AT_A_TIME rows at a time. Its bytes."""
    import pandas

    rng = np.random.default_rng(seed)
    columns = [f"x{j}" for j in range(FEATURES)] + ["y"]
    with open(path, "w", newline="") as file:
        file.write(",".join(columns) + "\n")
        for start in range(0, rows, CSV_ROWS_AT_A_TIME):
            X = rng.standard_normal((min(rows, start + CSV_ROWS_AT_A_TIME) - start, FEATURES))
            y = X @ COEF + INTERCEPT + NOISE * rng.standard_normal(len(X))
            pandas.DataFrame(np.column_stack([X, y])).to_csv(file, header=False, index=False, float_format="%.6g")
    return path.stat().st_size


def _cli(csv: Path, out_dir: Path, epochs: int) -> tuple[float, str]:
    """Seconds of `tinygrad-lr fit --csv ... --standardize --quiet` in a fresh process, and what it printed."""
    started = time.perf_counter()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tinygrad_lr",
            "fit",
            "--csv",
            str(csv),
            "--target",
            "y",
            "--epochs",
            str(epochs),
            "--standardize",
            "--quiet",
            "--out-dir",
            str(out_dir),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=3600,
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"tinygrad-lr fit failed: {done.stderr.strip()[-2000:]}")
    return seconds, done.stdout


def _cli_beside_run_eagerly(csv: Path, epochs: int) -> dict:
    """The command line's experiment on a CSV read in chunks (the moments) against the same fit of the same
    rows read in memory with run_eagerly=True (as `experiment.train` sets it up)."""
    from tinygrad_lr import experiment

    settings = experiment.Settings(csv=str(csv), target="y", epochs=epochs, standardize=True, quiet=True)
    saved = experiment.CHUNKED_ABOVE
    try:
        experiment.CHUNKED_ABOVE = 0
        prepared = experiment.prepare(settings)
        result = experiment.train(settings, prepared)
        experiment.CHUNKED_ABOVE = 1 << 62
        memory = experiment.prepare(settings)
    finally:
        experiment.CHUNKED_ABOVE = saved
    Z_train, Z_val = memory.Z_train, experiment._scaled(memory.scaler, memory.data.X_val)
    model = tl.nn.Sequential([tl.nn.Linear(FEATURES, 1, seed=settings.seed, dtype=np.float64)])
    model.compile(optimizer=tl.optim.BY_NAME[settings.optimizer][0](lr=memory.lr), run_eagerly=True)
    started = time.perf_counter()
    model.fit(
        Z_train,
        memory.data.y_train,
        epochs=epochs,
        batch_size=len(Z_train),
        validation_data=(Z_val, memory.data.y_val),
        verbose=0,
        seed=settings.seed,
    )
    return {
        "rows": len(prepared.data.X_train) + len(prepared.data.X_val) + len(prepared.data.X_test),
        "step": result.history.step,
        "weights_max_rel_diff": _largest_relative_difference(result.model.get_weights(), model.get_weights()),
        "eager_s": time.perf_counter() - started,
    }


def moments_on_the_command_line(plan: Plan, scratch_parent: Path, reps: int) -> dict:
    """`tinygrad-lr fit` on a CSV of at least `moments_csv_bytes` (written once, removed at the end) beside
    one pandas.read_csv of it (medians of `reps`, interleaved); then a 1M-row CSV beside run_eagerly."""
    import pandas

    folder = Path(tempfile.mkdtemp(prefix="tinygrad-lr-csv-", dir=scratch_parent))
    try:
        path = folder / "BIG.csv"
        started = time.perf_counter()
        written = write_csv(path, plan.moments_check_rows)
        rows = -(-plan.moments_csv_bytes * plan.moments_check_rows // written)  # rows for at least that size
        written = write_csv(path, rows) if rows > plan.moments_check_rows else written
        write_s = time.perf_counter() - started
        print(f"   wrote {rows:,} rows, {written / 1e9:.2f} GB of CSV in {write_s:.0f} s", flush=True)
        reads, fits, printed = [], [], ""
        for _ in range(reps):
            gc.collect()
            begun = time.perf_counter()
            pandas.read_csv(path)
            reads.append(time.perf_counter() - begun)
            seconds, printed = _cli(path, folder / "out", plan.moments_epochs)
            fits.append(seconds)
        small = folder / "SLICE.csv"
        write_csv(small, plan.moments_check_rows)
        check = _cli_beside_run_eagerly(small, plan.moments_epochs)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    fit_s, read_s = statistics.median(fits), statistics.median(reads)
    return {
        "rows": rows,
        "csv_bytes": written,
        "epochs": plan.moments_epochs,
        "step": check["step"],
        "fit_s": fit_s,
        "fit_times_s": fits,
        "reference": "one pandas.read_csv of the file",
        "reference_s": read_s,
        "reference_times_s": reads,
        "ratio": fit_s / read_s,
        "report": printed,
        "check": check,
    }


def run_moments(plan: Plan, scratch_parent: Path) -> dict:
    """Issue 25's rows: the Dask array on 1 and 2 workers, the memory map, the command line on a big CSV."""
    free = shutil.disk_usage(scratch_parent).free
    needed = plan.moments_csv_bytes + plan.moments_mmap_rows * (FEATURES + 1) * 4
    if free < needed + 2**30:
        raise SystemExit(
            f"scale: the moments' data need {needed / 1e9:.1f} GB in {scratch_parent}, {free / 1e9:.1f} GB are free"
        )
    reps = max(plan.ols_reps, 1)
    result: dict[str, Any] = {"epochs": plan.moments_epochs, "learning_rate": LEARNING_RATE, "dask": []}
    print(f"\nmoments: {plan.moments_epochs} full-batch epochs, each beside one pass over the same data")
    for workers in plan.dask_workers:
        entry = moments_on_dask(plan, workers, check=workers == plan.dask_workers[0])
        result["dask"].append(entry)
        print(
            f"   Dask {workers} worker(s): fit {entry['fit_s']:.2f} s, ols {entry['reference_s']:.2f} s "
            f"({entry['ratio']:.2f}x)",
            flush=True,
        )
    entry = result["memory_map"] = moments_on_a_memory_map(plan, scratch_parent, reps)
    print(
        f"   memory map: fit {entry['fit_s']:.2f} s, cold read {entry['reference_s']:.2f} s ({entry['ratio']:.2f}x)",
        flush=True,
    )
    entry = result["cli"] = moments_on_the_command_line(plan, scratch_parent, reps)
    print(
        f"   command line: {entry['fit_s']:.1f} s, pandas.read_csv {entry['reference_s']:.1f} s "
        f"({entry['ratio']:.2f}x)",
        flush=True,
    )
    return result


# ----- the run -----


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")  # so that the scratch folder and the clusters are cleaned up


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="issue 13's benchmark: memory maps and Dask")
    parser.add_argument("--quick", action="store_true", help="a smoke run under a minute (small N)")
    parser.add_argument(
        "--only", choices=["mmap", "dask", "moments"], help="one part only (written as a partial run; moments: its own)"
    )
    parser.add_argument("--scratch", type=Path, default=Path(tempfile.gettempdir()), help="where to write the data")
    parser.add_argument("--out", type=Path, help="results JSON (default: scale-results.json for a full run)")
    parser.add_argument("--mmap-probe", nargs=4, metavar=("X", "Y", "ROWS", "REPS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.mmap_probe:
        x_path, y_path, rows, reps = args.mmap_probe
        print(json.dumps(mmap_probe((Path(x_path), Path(y_path)), int(rows), int(reps))))
        return 0
    signal.signal(signal.SIGTERM, _interrupt)
    started = time.perf_counter()
    plan = QUICK if args.quick else FULL
    full = not args.quick and not args.only
    info = measure.machine()
    info["memory_bytes"] = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    results: dict[str, Any] = {"machine": info, "quick": args.quick, "only": args.only, "plan": asdict(plan)}
    print(f"machine: {info['cpu']}, {info['cores']} cores, {info['memory_bytes'] / 2**30:.0f} GiB RAM")
    if args.only in (None, "mmap"):
        results["memory_map"] = run_memory_map(plan, args.scratch)
    if args.only in (None, "dask"):
        results["dask"] = run_dask(plan)
    if args.only == "moments":  # issue 25's rows: their own results and README table
        results["moments"] = run_moments(plan, args.scratch)
        results["targets"] = scale_report.moments_targets(results)
        results["total_s"] = time.perf_counter() - started
        for target in results["targets"]:
            print(f"   {'PASS' if target['pass'] else 'FAIL'}  {target['text']}")
        out = args.out or HERE / ("moments-results-quick.json" if args.quick else "moments-results.json")
        out.write_text(json.dumps(results, indent=1) + "\n")
        print(f"wrote {out}")
        scale_report.write_moments(results, not args.quick)
        return 0
    results["targets"] = scale_report.targets(results)
    results["total_s"] = time.perf_counter() - started
    print("\ntargets:")
    for target in results["targets"]:
        print(f"   {'PASS' if target['pass'] else 'FAIL'}  {target['text']}")
    print(f"\ntotal: {results['total_s']:.0f} s")
    out = args.out or HERE / ("scale-results.json" if full else "scale-results-quick.json")
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {out}")
    scale_report.write_all(results, full)
    return 0


if __name__ == "__main__":
    sys.exit(main())
