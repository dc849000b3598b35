"""Run the benchmark suite of issue 7: every workload, every implementation, side by side.

    python benchmarks/run.py                      # everything; writes results.json, README table, chart
    python benchmarks/run.py --quick              # a few-second smoke run (small data, one repetition)
    python benchmarks/run.py --only tiny large    # some workloads ("large" = large_f32 and large_f64)
    python benchmarks/run.py --out somewhere.json

Only a full run (no --quick, no --only) rewrites benchmarks/README.md's table and docs/benchmark.png;
partial runs write benchmarks/results-partial.json unless --out says otherwise. See README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(HERE), str(ROOT)]  # the checkout's tinygrad_lr, and the benchmark modules
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _set_threads_before_imports(argv: list[str]) -> None:
    """`--threads N` must reach OpenBLAS, PyTorch and XLA before they load: set their variables now."""
    if "--threads" not in argv:
        return
    count = argv[argv.index("--threads") + 1]
    for variable in THREAD_VARIABLES:
        os.environ[variable] = count
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + f" --xla_cpu_multi_thread_eigen={'false' if count == '1' else 'true'}"
        f" intra_op_parallelism_threads={count}"
    ).strip()


_set_threads_before_imports(sys.argv)

import impl_jax  # noqa: E402
import impl_numpy  # noqa: E402
import impl_tinygrad  # noqa: E402
import impl_torch  # noqa: E402
import measure  # noqa: E402
import numpy as np  # noqa: E402
import report  # noqa: E402
import workloads  # noqa: E402

# The order of each interleaved round. The NumPy floor is the reference for ratios and agreement.
IMPLEMENTATIONS = [
    impl_numpy,
    impl_tinygrad.Loop,
    impl_tinygrad.Captured,
    impl_tinygrad.Raw,
    impl_tinygrad.Fit,
    impl_torch,
    impl_jax,
]
BY_NAME = {impl.NAME: impl for impl in IMPLEMENTATIONS}
REFERENCE = impl_numpy.NAME
TRACED = {
    impl_numpy.NAME,
    impl_tinygrad.Loop.NAME,
    impl_tinygrad.Captured.NAME,
    impl_tinygrad.Raw.NAME,
    impl_tinygrad.Fit.NAME,
}  # tracemalloc sees their memory

# Final weights must agree with the floor to this, relative to the largest floor weight (or 1).
TOLERANCE = {np.dtype(np.float32): 1e-3, np.dtype(np.float64): 1e-9}


def agreement(result: workloads.Result, reference: workloads.Result, dtype: np.dtype) -> dict:
    """How far an implementation's final weights and losses are from the floor's."""
    mine = np.concatenate([result.weight.ravel(), result.bias])
    floor = np.concatenate([reference.weight.ravel(), reference.bias])
    max_abs = float(np.max(np.abs(mine - floor)))
    scale = max(1.0, float(np.max(np.abs(floor))))
    out = {
        "weights_max_abs_diff": max_abs,
        "tolerance": TOLERANCE[dtype] * scale,
        "agrees": bool(max_abs <= TOLERANCE[dtype] * scale and len(result.losses) == len(reference.losses)),
        "final_loss": result.losses[-1],
        "final_loss_rel_diff": abs(result.losses[-1] - reference.losses[-1]) / max(abs(reference.losses[-1]), 1e-30),
    }
    if reference.val_losses:
        out["final_val_loss"] = result.val_losses[-1] if result.val_losses else None
        out["agrees"] = out["agrees"] and len(result.val_losses) == len(reference.val_losses)
    return out


def run_workload(workload: workloads.Workload, impls: list, bandwidth: float, args) -> dict:
    print(f"\n== {workload.name}: {workload.summary()}", flush=True)
    started = time.perf_counter()
    runners = {impl.NAME: impl.prepare(workload) for impl in impls}
    reps = args.reps or workload.reps
    timed = measure.time_interleaved(runners, reps)
    reference = timed[REFERENCE]["result"]
    floor_step = timed[REFERENCE]["median_s"] / workload.steps
    x_read_s = workload.X.nbytes / bandwidth

    entry = {
        "description": workload.description,
        "summary": workload.summary(),
        "n": len(workload.X),
        "d": workload.X.shape[1],
        "dtype": workload.dtype.name,
        "steps": workload.steps,
        "reps": reps,
        "data_bytes": workload.data_bytes,
        "x_bytes": workload.X.nbytes,
        "large": workload.large,
        "one_read_floor_us": x_read_s * 1e6 if workload.large else None,
        "implementations": {},
    }
    if impl_tinygrad.Fit.NAME in runners:
        entry["fit_schedule"] = impl_tinygrad.Fit.schedule_mode.get(workload.name)
    for name, t in timed.items():
        per_step = t["median_s"] / workload.steps
        row = {
            "median_s": t["median_s"],
            "times_s": t["times_s"],
            "first_run_s": t["first_run_s"],
            "per_step_us": per_step * 1e6,
            "ratio_to_floor": per_step / floor_step,
            **agreement(t["result"], reference, workload.dtype),
        }
        if workload.large:
            row["bandwidth_fraction"] = x_read_s / per_step
        entry["implementations"][name] = row

    for name, run in runners.items():
        if name in TRACED:
            peak = measure.traced_peak(run)
            entry["implementations"][name]["traced_peak_bytes"] = peak
    if workload.large and not (args.no_rss or args.quick):
        for name in runners:
            entry["implementations"][name]["rss"] = measure.rss_probe(workload.name, name, args.quick)

    for name, row in entry["implementations"].items():
        line = f"   {name:8s} {row['per_step_us']:10.1f} us/step  x{row['ratio_to_floor']:6.2f} floor"
        line += f"  max|dW|={row['weights_max_abs_diff']:.2e}{'' if row['agrees'] else ' DISAGREES'}"
        if "bandwidth_fraction" in row:
            line += f"  {row['bandwidth_fraction']:.0%} of one-read floor"
        if "traced_peak_bytes" in row:
            peak = row["traced_peak_bytes"]
            line += f"  traced peak {peak / 2**10:.0f} KiB" + (
                f" (+{peak / workload.data_bytes:.0%} of data)" if workload.large else ""
            )
        if "rss" in row and "steady_bytes" in row["rss"]:
            line += f"  RSS +{row['rss']['steady_bytes'] / workload.data_bytes:.0%} (first run +"
            line += f"{row['rss']['first_run_bytes'] / workload.data_bytes:.0%})"
        print(line, flush=True)
    entry["wall_s"] = time.perf_counter() - started
    print(f"   ({entry['wall_s']:.1f} s)", flush=True)
    return entry


def rss_probe_main(workload_name: str, impl_name: str, quick: bool) -> None:
    """The child side of measure.rss_probe: build, train twice, print one JSON line."""
    workload = workloads.build(workload_name, quick=quick)
    print(json.dumps(measure.rss_child(workload, BY_NAME[impl_name].prepare)))


def main(argv: list[str] | None = None) -> int:
    started = time.perf_counter()
    parser = argparse.ArgumentParser(description="tinygrad_lr's benchmark suite (issue 7)")
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds: small data, 1 repetition")
    parser.add_argument("--only", nargs="+", metavar="WORKLOAD", help=f"among {', '.join(workloads.NAMES)}, large")
    parser.add_argument("--out", type=Path, help="results JSON (default benchmarks/results.json for a full run)")
    parser.add_argument("--reps", type=int, help="timed repetitions per workload (default: the workload's own)")
    parser.add_argument("--no-rss", action="store_true", help="skip the fresh-process resident-memory probes")
    parser.add_argument(
        "--threads", type=int, help="threads for OpenBLAS, PyTorch and XLA (default: each library's own choice)"
    )
    parser.add_argument("--rss-probe", nargs=2, metavar=("WORKLOAD", "IMPL"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rss_probe:
        rss_probe_main(*args.rss_probe, args.quick)
        return 0

    full = not args.quick and not args.only
    out = args.out or HERE / ("results.json" if full else "results-partial.json")
    names = workloads.resolve(args.only)

    impls, skipped = [], {}
    for impl in IMPLEMENTATIONS:
        reason = impl.available()
        if reason:
            skipped[impl.NAME] = reason
            print(f"note: skipping {impl.LABEL}: {reason}")
        else:
            impls.append(impl)

    info = measure.machine()
    info.update(torch=impl_torch.version(), jax=impl_jax.version())
    info["threads"] = {variable: os.environ.get(variable) for variable in THREAD_VARIABLES}
    print(
        f"machine: {info['cpu']}, {info['cores']} cores; numpy {info['numpy']}, torch {info['torch']}, "
        f"jax {info['jax']}"
    )
    bandwidth = measure.memory_bandwidth(40 * 2**20 if args.quick else 400 * 2**20)
    print(f"memory bandwidth (np.copyto, read + write): {bandwidth['bytes_per_s'] / 1e9:.1f} GB/s")

    results = {
        "machine": info,
        "quick": args.quick,
        "workloads_run": names,
        "implementations": {impl.NAME: impl.LABEL for impl in IMPLEMENTATIONS},
        "skipped": skipped,
        "bandwidth": bandwidth,
        "workloads": {},
    }
    for name in names:
        workload = workloads.build(name, quick=args.quick)
        results["workloads"][name] = run_workload(workload, impls, bandwidth["bytes_per_s"], args)

    results["import"] = measure.import_time(reps=1 if args.quick else 15)
    imp = results["import"]
    print(
        f"\nimport tinygrad_lr over numpy: {imp['overhead_s'] * 1e3:.1f} ms "
        f"(-X importtime: {imp['importtime_tinygrad_lr_s'] * 1e3:.1f} ms)"
    )

    results["targets"] = report.targets(results)
    results["total_s"] = time.perf_counter() - started
    print("\ntargets:")
    for target in results["targets"]:
        print(f"   {'PASS' if target['pass'] else 'FAIL'}  {target['text']}")
    print(f"\ntotal: {results['total_s']:.0f} s")

    out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {out}")
    if full:
        report.write_all(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
