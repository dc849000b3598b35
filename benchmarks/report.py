"""Turn results.json into the targets' verdicts, the README's generated section and docs/benchmark.png.

Redraw the table and the chart from saved results: `python benchmarks/report.py [results.json]`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
README = HERE / "README.md"
CHART = ROOT / "docs" / "benchmark.png"
BEGIN, END = "<!-- BEGIN GENERATED RESULTS -->", "<!-- END GENERATED RESULTS -->"

SMALL_DATA = ["tiny", "small", "boston", "l2"]
LARGE_DATA = ["large_f32", "large_f64", "wide"]
ORDER = ["numpy", "tl-loop", "tl-captured", "tl-raw", "tl-fit", "torch", "jax"]
# the targets: issue 15's, with issue 21's for the captured loop on small data (at most 0.9× the floor, with its
# guards). Two of issue 15's were retired as ill-posed and are shown in the table only, not judged: "10× faster
# than PyTorch eager" (PyTorch itself is only 5-9× slower than the NumPy floor here) and "the loops under the
# floor on tall data" (the same BLAS calls on the same row-major data as the floor's).
LIMITS = {
    "loop_small": 0.9,
    "fit_small": 1.3,
    "fit_bandwidth": 0.5,
    "same_work_noise": 0.03,
    "memory": 0.25,
    "import_s": 0.050,
}


def _peak_over_data(row: dict) -> tuple[float | None, str]:
    """The peak memory an implementation needed beyond the data, and which measure it came from."""
    rss = row.get("rss", {})
    if "steady_bytes" in rss:
        return rss["steady_bytes"], "resident, steady state"
    if "traced_peak_bytes" in row:
        return row["traced_peak_bytes"], "traced"
    return None, ""


def targets(results: dict) -> list[dict]:
    """Every target (issues 15 and 21) that this run measured, with its value, its limit and the verdict.

    "The hand-written loop" is judged as a user writes it for speed: with its step captured
    (`tl.capture_step`, the implementation "tl-captured"); the eager loop's ratios are in the table.
    So is the raw-tensor loop ("tl-raw", captured too), against the captured `Linear` loop.
    """
    found = []

    def add(text: str, value: float, limit: float, ok: bool) -> None:
        found.append({"text": text, "value": value, "limit": limit, "pass": bool(ok)})

    runs = results["workloads"]
    for name in SMALL_DATA:
        rows = runs.get(name, {}).get("implementations", {})
        for impl, label, limit in (
            ("tl-captured", "captured loop", LIMITS["loop_small"]),
            ("tl-fit", "fit", LIMITS["fit_small"]),
        ):
            if impl not in rows:
                continue
            ratio = rows[impl]["ratio_to_floor"]
            add(f"{name}: {label} {ratio:.3f}× the NumPy floor per step (≤ {limit}×)", ratio, limit, ratio <= limit)
            if "jax" in rows:
                versus = rows[impl]["per_step_us"] / rows["jax"]["per_step_us"]
                add(f"{name}: {label} {versus:.2f}× JAX jit's step time (≤ 1×)", versus, 1.0, versus <= 1.0)
        if "tl-raw" in rows and "tl-captured" in rows:
            versus = rows["tl-raw"]["per_step_us"] / rows["tl-captured"]["per_step_us"]
            # after fusion both steps replay the same one op (tests/test_capture.py checks the recordings),
            # so what is left between them is the run's timing noise
            limit = 1.0 + LIMITS["same_work_noise"]
            text = f"{name}: the raw-tensor loop costs {versus:.2f}× Linear's loop, both captured (≤ 1×, ± 3% noise)"
            add(text, versus, limit, versus <= limit)
    for name in LARGE_DATA:
        rows = runs.get(name, {}).get("implementations", {})
        if "tl-fit" in rows:
            share = rows["tl-fit"]["bandwidth_fraction"]
            limit = LIMITS["fit_bandwidth"]
            text = f"{name}: fit at {share:.0%} of the one-read bandwidth floor (≥ {limit:.0%})"
            add(text, share, limit, share >= limit)
        for impl in ("tl-loop", "tl-captured", "tl-fit"):
            if impl not in rows:
                continue
            extra, how = _peak_over_data(rows[impl])
            if extra is None:
                continue
            share = extra / runs[name]["data_bytes"]
            add(
                f"{name}: {results['implementations'][impl]} peak memory = data + {share:.0%} ({how}; ≤ data + 25%)",
                share,
                LIMITS["memory"],
                share <= LIMITS["memory"],
            )
    if "import" in results:
        overhead = results["import"]["overhead_s"]
        add(
            f"import tinygrad_lr adds {overhead * 1e3:.0f} ms over import numpy (≤ 50 ms)",
            overhead,
            LIMITS["import_s"],
            overhead <= LIMITS["import_s"],
        )
    disagree = [
        f"{name}/{impl}"
        for name, run in runs.items()
        for impl, row in run["implementations"].items()
        if not row["agrees"]
    ]
    text = "every implementation's final weights agree with the floor"
    add(text + (f" (not: {', '.join(disagree)})" if disagree else ""), len(disagree), 0, not disagree)
    return found


# ----- markdown -----


def _fmt_us(us: float) -> str:
    return f"{us:,.0f}" if us >= 100 else f"{us:.1f}" if us >= 10 else f"{us:.2f}"


def _mb(nbytes: float) -> str:
    return f"{nbytes / 2**20:.1f} MiB"


def _threads(machine: dict) -> str:
    settings = {k: v for k, v in (machine.get("threads") or {}).items() if v}
    return ", ".join(f"{k}={v}" for k, v in settings.items()) if settings else "each library's default"


def markdown(results: dict) -> str:
    m = results["machine"]
    runs = results["workloads"]
    impls = [i for i in ORDER if any(i in run["implementations"] for run in runs.values())]
    labels = results["implementations"]
    bw = results["bandwidth"]["bytes_per_s"]
    lines = [
        f"Measured {m['date']} on {m['cpu']}, {m['cores']} cores; Python {m['python']}, NumPy {m['numpy']}, "
        f"PyTorch {m.get('torch') or 'not installed'}, JAX {m.get('jax') or 'not installed'}. "
        f"Memory bandwidth (np.copyto, read + write): {bw / 1e9:.1f} GB/s. "
        f"Threads: {_threads(m)}. "
        f"Whole suite: {results.get('total_s', 0) / 60:.1f} min{' (--quick)' if results.get('quick') else ''}.",
        "",
    ]
    for name, reason in results.get("skipped", {}).items():
        lines += [f"Skipped {labels[name]}: {reason}.", ""]

    lines += ["### Time per optimizer step (µs, median run ÷ steps; in brackets: × the NumPy floor)", ""]
    lines += ["| workload | steps | " + " | ".join(labels[i] for i in impls) + " |"]
    lines += ["|---|---:|" + "---:|" * len(impls)]
    for name, run in runs.items():
        cells = []
        for impl in impls:
            row = run["implementations"].get(impl)
            if row is None:
                cells.append("—")
            elif impl == "numpy":
                cells.append(_fmt_us(row["per_step_us"]))
            else:
                cells.append(f"{_fmt_us(row['per_step_us'])} ({row['ratio_to_floor']:.2f}×)")
        lines.append(f"| {name} | {run['steps']:,} | " + " | ".join(cells) + " |")

    large = [name for name in LARGE_DATA if name in runs]
    if large:
        lines += ["", "### Bandwidth-bound workloads: share of the one-read floor, and memory", ""]
        lines += [
            "One-read floor = bytes of X ÷ bandwidth: the time to read X once, which any step must. "
            "Peak memory beyond the data: resident (fresh process, second run; first run in brackets) "
            "and, for the NumPy-based ones, traced by tracemalloc.",
            "",
            "| workload | X | one-read floor | implementation | µs/step | share of floor | peak RSS over data "
            "| traced |",
            "|---|---:|---:|---|---:|---:|---:|---:|",
        ]
        for name in large:
            run = runs[name]
            for impl in impls:
                row = run["implementations"].get(impl)
                if row is None:
                    continue
                rss = row.get("rss", {})
                data = run["data_bytes"]
                rss_cell = (
                    f"{rss['steady_bytes'] / data:+.0%} ({rss['first_run_bytes'] / data:+.0%})"
                    if "steady_bytes" in rss
                    else rss.get("error", "—")
                )
                traced = row.get("traced_peak_bytes")
                traced_cell = f"{traced / run['data_bytes']:+.0%}" if traced is not None else "—"
                lines.append(
                    f"| {name} | {_mb(run['x_bytes'])} | {_fmt_us(run['one_read_floor_us'])} µs | {labels[impl]} | "
                    f"{_fmt_us(row['per_step_us'])} | {row['bandwidth_fraction']:.0%} | {rss_cell} | {traced_cell} |"
                )

    lines += ["", "### Agreement with the floor (largest |Δ| over the final weights and bias)", ""]
    lines += ["| workload | " + " | ".join(labels[i] for i in impls if i != "numpy") + " |"]
    lines += ["|---|" + "---:|" * (len(impls) - 1)]
    for name, run in runs.items():
        cells = []
        for impl in impls:
            if impl == "numpy":
                continue
            row = run["implementations"].get(impl)
            cells.append("—" if row is None else f"{row['weights_max_abs_diff']:.1e}" + ("" if row["agrees"] else " ✗"))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")

    if "import" in results:
        imp = results["import"]
        top = ", ".join(f"{t['module']} {t['self_s'] * 1e3:.1f}" for t in imp["importtime_top_modules"][:5])
        lines += [
            "",
            f"**Import**: `import numpy, tinygrad_lr` {imp['numpy_and_tinygrad_lr_s'] * 1e3:.0f} ms against "
            f"`import numpy` {imp['numpy_s'] * 1e3:.0f} ms (medians of {imp['reps']} fresh processes, compiled "
            f"bytecode cached as after `pip install`): +{imp['overhead_s'] * 1e3:.0f} ms. `-X importtime` puts "
            f"tinygrad_lr at {imp['importtime_tinygrad_lr_s'] * 1e3:.0f} ms; the largest self times (ms): {top}. "
            f"In the benchmark's own environment as it was "
            f"(PYTHONDONTWRITEBYTECODE={imp.get('environment_dont_write_bytecode') or 'unset'}): "
            f"+{imp['overhead_environment_as_is_s'] * 1e3:.0f} ms.",
        ]

    if "targets" in results:
        lines += ["", "### Targets (issues 15 and 21)", ""]
        lines += [f"- {'✅ pass' if t['pass'] else '❌ fail'}: {t['text']}" for t in results["targets"]]
    lines += ["", "![per-step time per workload](../docs/benchmark.png)"]
    return "\n".join(lines)


def write_readme(results: dict) -> None:
    text = README.read_text() if README.exists() else f"# Benchmarks\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text or END not in text:
        text = text.rstrip("\n") + f"\n\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    README.write_text(f"{head}{BEGIN}\n{markdown(results)}\n{END}{tail}")


# ----- chart -----


def chart(results: dict, path: Path = CHART) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = results["workloads"]
    names = list(runs)
    impls = [i for i in ORDER if any(i in run["implementations"] for run in runs.values())]
    labels = results["implementations"]
    colors = {
        "numpy": "#555555",
        "tl-loop": "#1f77b4",
        "tl-captured": "#08306b",
        "tl-raw": "#9ecae1",
        "tl-fit": "#6baed6",
        "torch": "#ee4c2c",
        "jax": "#2ca02c",
    }
    width = 0.8 / len(impls)
    fig, ax = plt.subplots(figsize=(12, 5.5), dpi=110)
    for k, impl in enumerate(impls):
        xs, heights = [], []
        for i, name in enumerate(names):
            row = runs[name]["implementations"].get(impl)
            if row is not None:
                xs.append(i + (k - (len(impls) - 1) / 2) * width)
                heights.append(row["per_step_us"])
        ax.bar(xs, heights, width * 0.95, label=labels[impl], color=colors.get(impl))
        if impl != "numpy":
            for x, name in zip(xs, [n for n in names if impl in runs[n]["implementations"]]):
                row = runs[name]["implementations"][impl]
                ax.annotate(
                    f"{row['ratio_to_floor']:.2f}×",
                    (x, row["per_step_us"]),
                    xytext=(0, 2),
                    textcoords="offset points",
                    ha="center",
                    va="bottom",
                    fontsize=7,
                    rotation=90,
                )
    for i, name in enumerate(names):
        floor = runs[name].get("one_read_floor_us")
        if floor:
            ax.hlines(floor, i - 0.45, i + 0.45, colors="black", linestyles=":", linewidth=1)
    ax.set_yscale("log")
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels([f"{name}\n{runs[name]['steps']:,} steps" for name in names])
    ax.set_ylabel("µs per optimizer step (log scale)")
    m = results["machine"]
    ax.set_title(
        f"Per-step time; labels: × the NumPy floor; dotted: one-read bandwidth floor\n"
        f"{m['cpu']}, {m['cores']} cores, {m['date']}",
        fontsize=10,
    )
    ax.legend(loc="upper left", fontsize=8, ncol=4)
    ax.margins(y=0.4)
    ax.grid(axis="y", which="major", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def write_all(results: dict) -> None:
    write_readme(results)
    chart(results)
    print(f"wrote {README.relative_to(ROOT)} and {CHART.relative_to(ROOT)}")


if __name__ == "__main__":
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "results.json"
    saved = json.loads(source.read_text())
    saved["targets"] = targets(saved)  # judged again, by this file's rules
    write_all(saved)
