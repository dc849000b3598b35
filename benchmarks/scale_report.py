"""Turn scale.py's results into issue 13's verdicts, benchmarks/README.md's scale section and docs/scale.png;
and its moments rows (issue 25, `--only moments`) into their verdicts and the README's moments table.

Redraw them from saved results: `python benchmarks/scale_report.py [scale-results.json | moments-results.json]`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
README = HERE / "README.md"
CHART = ROOT / "docs" / "scale.png"
QUICK_MARKDOWN, QUICK_CHART = HERE / "scale-quick.md", HERE / "scale-quick.png"
BEGIN, END = "<!-- BEGIN GENERATED SCALE RESULTS -->", "<!-- END GENERATED SCALE RESULTS -->"
MOMENTS_BEGIN, MOMENTS_END = "<!-- BEGIN GENERATED MOMENTS RESULTS -->", "<!-- END GENERATED MOMENTS RESULTS -->"
MOMENTS_QUICK = HERE / "moments-quick.md"
VS_ONE_PASS = 2.0  # 1,000 full-batch epochs within 2x the time of one pass over the same data
AGREEMENT = 1e-9  # the weights of the moments' fit against run_eagerly's, relative

SHARE_OF_READ = 0.70  # training reads at >= 70% of the disk's sequential read speed
ANON_LIMIT = 256e6  # bytes of anonymous memory at every N
FLAT = 16e6  # "flat in N": the peaks at every N within this many bytes of each other
VS_LSTSQ = 1.2  # ols within 1.2x of dask.array.linalg.lstsq
BYTES_GROWTH = 1.25  # bytes per step at N within this factor of those at N/4 in as many chunks
LABELS = {
    "tinygrad_lr": "tinygrad_lr ols",
    "dask-lstsq": "dask.array.linalg.lstsq",
    "dask-ml-newton": "dask-ml LinearRegression (newton)",
    "dask-ml-lbfgs": "dask-ml LinearRegression (lbfgs)",
}
LINK_SPEEDS = {"1 Gbit/s": 125e6, "10 Gbit/s": 1.25e9}


def _rows(n: int) -> str:
    """10000000 -> '10M', 250000 -> '250k'."""
    for unit, size in (("M", 1_000_000), ("k", 1_000)):
        if n >= size:
            value = n / size
            return f"{value:.0f}{unit}" if value == int(value) else f"{value:.1f}{unit}"
    return str(n)


def _gb(nbytes: float) -> str:
    return f"{nbytes / 1e9:.2f} GB"


def _mb(nbytes: float) -> str:
    return f"{nbytes / 1e6:.0f} MB"


def _bytes(nbytes: float) -> str:
    return f"{nbytes / 1e3:,.1f} kB" if nbytes >= 1e3 else f"{nbytes:,.0f} B"


def _transferred(run: dict) -> float:
    """Bytes per step that the workers sent: results to the client and to each other, and data chunks."""
    return (
        run["to_client_bytes_per_step"]
        + run["between_workers_bytes_per_step"]
        + run["chunks_between_workers_bytes_per_step"]
    )


def _fastest_dask_ml(ols: dict) -> str | None:
    names = [name for name in ols if name.startswith("dask-ml")]
    return min(names, key=lambda name: ols[name]["median_s"]) if names else None


def targets(results: dict) -> list[dict]:
    """Every target of issue 13 that this run measured, with its value, its limit and the verdict."""
    found = []

    def add(text: str, value: float, limit: float, ok: bool) -> None:
        found.append({"text": text, "value": value, "limit": limit, "pass": bool(ok)})

    runs = results.get("memory_map", {}).get("runs", [])
    for run in runs:
        share = run["share_of_sequential_read"]
        add(
            f"memory map, N = {_rows(run['rows'])}: training reads {run['train_bytes_per_s'] / 1e9:.2f} GB/s, "
            f"{share:.0%} of the disk's sequential read ({run['sequential_read_bytes_per_s'] / 1e9:.2f} GB/s; "
            f"≥ {SHARE_OF_READ:.0%})",
            share,
            SHARE_OF_READ,
            share >= SHARE_OF_READ,
        )
    for run in runs:
        peak = run["anon_peak_bytes"]
        add(
            f"memory map, N = {_rows(run['rows'])}: peak anonymous memory {_mb(peak)} (< {_mb(ANON_LIMIT)})",
            peak,
            ANON_LIMIT,
            peak < ANON_LIMIT,
        )
    if len(runs) > 1:
        peaks = [run["anon_peak_bytes"] for run in runs]
        spread = max(peaks) - min(peaks)
        add(
            f"memory map: peak anonymous memory flat in N ({_mb(min(peaks))} to {_mb(max(peaks))} for "
            f"{_rows(runs[0]['rows'])} to {_rows(runs[-1]['rows'])} rows; spread ≤ {_mb(FLAT)})",
            spread,
            FLAT,
            spread <= FLAT,
        )
    for workers, cluster in results.get("dask", {}).get("clusters", {}).items():
        ols = cluster["ols"]
        mine = ols["tinygrad_lr"]
        rival = _fastest_dask_ml(ols)
        if rival:
            speedup = ols[rival]["median_s"] / mine["median_s"]
            add(
                f"Dask, {workers} worker(s): ols {mine['median_s']:.2f} s against {LABELS[rival]} "
                f"{ols[rival]['median_s']:.2f} s, {speedup:.1f}× faster; max relative |Δ| to lstsq "
                f"{mine['max_rel_diff_to_lstsq']:.0e} against {ols[rival]['max_rel_diff_to_lstsq']:.0e} (faster)",
                speedup,
                1.0,
                speedup > 1.0 and mine["max_rel_diff_to_lstsq"] <= max(ols[rival]["max_rel_diff_to_lstsq"], 1e-10),
            )
        ratio = mine["median_s"] / ols["dask-lstsq"]["median_s"]
        add(
            f"Dask, {workers} worker(s): ols {ratio:.2f}× the time of dask.array.linalg.lstsq (≤ {VS_LSTSQ}×)",
            ratio,
            VS_LSTSQ,
            ratio <= VS_LSTSQ,
        )
        big, same_chunks = cluster["gradient_descent"][:2]
        growth = _transferred(big) / max(_transferred(same_chunks), 1.0)
        chunks_moved = sum(run["chunks_between_workers_bytes_per_step"] for run in (big, same_chunks))
        add(
            f"Dask, {workers} worker(s): bytes sent per gradient-descent step {_bytes(_transferred(big))} at "
            f"N = {_rows(big['rows'])} against {_bytes(_transferred(same_chunks))} at N = "
            f"{_rows(same_chunks['rows'])} in as many chunks ({growth:.2f}×; ≤ {BYTES_GROWTH}× while the rows "
            f"grow {big['rows'] / same_chunks['rows']:.0f}×, and no data chunk moved: "
            f"{_bytes(chunks_moved)} did)",
            growth,
            BYTES_GROWTH,
            growth <= BYTES_GROWTH and chunks_moved == 0,
        )
    return found


# ----- markdown -----


def _memory_map_markdown(part: dict) -> list[str]:
    fs = part["filesystem"]
    lines = [
        "### Memory map: streaming mini-batch training",
        "",
        f"X (N, {part['features']}) and y (N,) in {part['dtype']}, written once ({_gb(part['written_bytes'])} in "
        f"{part['write_s']:.0f} s, to {fs['type']} on {fs['device']}); `model.fit` on "
        f'`np.load(path, mmap_mode="r")`, one shuffled epoch with `batch_size={part["batch_size"]}` '
        f"({part['block_rows'] // part['batch_size']} batches per block of {part['block_rows']:,} rows), SGD. "
        "Cold: the files dropped from the page cache before each pass (`posix_fadvise(DONTNEED)`), median of "
        f"{len(part['runs'][0]['epoch_cold_s'])}; the share of their pages still cached at the start of a cold "
        "pass is in the table (`mincore`). Warm: the rows already in the page cache. Peak anonymous memory: "
        "`RssAnon` of the measuring process (interpreter, NumPy and tinygrad_lr included), sampled every 5 ms; in "
        "brackets, its growth during the passes.",
        "",
        "| N | data read per epoch | steps | epoch, cold | training read rate | sequential read | share | cached at "
        "start | epoch, warm | warm rate | peak RssAnon |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in part["runs"]:
        growth = run["anon_peak_bytes"] - run["anon_baseline_bytes"]
        lines.append(
            f"| {_rows(run['rows'])} | {_gb(run['data_bytes'])} | {run['steps_per_epoch']:,} | "
            f"{run['epoch_s']:.2f} s | {run['train_bytes_per_s'] / 1e9:.2f} GB/s | "
            f"{run['sequential_read_bytes_per_s'] / 1e9:.2f} GB/s | {run['share_of_sequential_read']:.0%} | "
            f"{max(run['cached_before_cold']):.0%} | {run['epoch_warm_s']:.2f} s | "
            f"{run['train_warm_bytes_per_s'] / 1e9:.2f} GB/s | {_mb(run['anon_peak_bytes'])} (+{_mb(growth)}) |"
        )
    warm_cached = min(run["cached_before_warm"] for run in part["runs"])
    fits = (
        "so on this machine's RAM every N fits in the page cache once read, and the cold passes are what a data "
        "set larger than memory meets on every epoch"
        if warm_cached >= 0.99
        else "so the warm passes read part of the data from the disk as well"
    )
    lines += ["", f"Page cache: at least {warm_cached:.0%} of each data set was cached before its warm pass, {fits}."]
    return lines


def _dask_markdown(part: dict) -> list[str]:
    clusters = part["clusters"]
    sizes = list(clusters)
    first = clusters[sizes[0]]
    lines = [
        "### Dask: least squares and full-batch gradient descent on a LocalCluster",
        "",
        f"X (N, {part['features']}) and y (N,) in float64, N = {_rows(part['rows'])} "
        f"({_gb(part['data_bytes'])}) in chunks of {_rows(part['chunk_rows'])} rows, generated on the workers; "
        f"worker processes with one thread each (BLAS threads: {', '.join(map(str, first['worker_blas_threads']))}), "
        f"on 127.0.0.1. Dask {part['versions']['dask']}, distributed {part['versions']['distributed']}, dask-ml "
        f"{part['versions']['dask-ml'] or 'not installed'}. Chunks per worker: "
        + "; ".join(f"{w} worker(s): {clusters[w]['chunks_per_worker']}" for w in sizes)
        + ".",
        "",
    ]
    for name, reason in first["skipped"].items():
        lines += [f"Skipped {name}: {reason}.", ""]
    header = " | ".join(f"{w} worker(s)" for w in sizes)
    lines += [
        f"**Least squares** (median of {len(first['ols']['tinygrad_lr']['times_s'])} after a warm-up; agreement with "
        "lstsq: largest |Δ| over intercept and coefficients relative to the largest; training mse above lstsq's, "
        "relative)",
        "",
        f"| solver | {header} | × lstsq ({sizes[-1]} worker(s)) | relative |Δ| to lstsq | mse excess |",
        "|---|" + "---:|" * (len(sizes) + 3),
    ]
    last = clusters[sizes[-1]]["ols"]
    for name in first["ols"]:
        times = " | ".join(f"{clusters[w]['ols'][name]['median_s']:.2f} s" for w in sizes)
        row = last[name]
        lines.append(
            f"| {LABELS.get(name, name)} | {times} | {row['median_s'] / last['dask-lstsq']['median_s']:.2f}× | "
            f"{row['max_rel_diff_to_lstsq']:.1e} | {row['mse_excess_over_lstsq']:.1e} |"
        )
    lines += [
        "",
        "**Full-batch gradient descent** (`fit(batch_size=None)`, SGD; time per step after a warm-up step; bytes "
        "per step: sent by the workers to the client and to each other, from their transfer logs — results (the "
        "model, Sums) apart from data chunks that the scheduler moved — and all loopback traffic, task messages "
        "and heartbeats included)",
        "",
        "| N | chunks | workers | time per step | scaling efficiency | to client | results between workers | "
        "chunks between workers | loopback |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for index, run in enumerate(first["gradient_descent"]):
        one = run["per_step_s"]
        for w in sizes:
            row = clusters[w]["gradient_descent"][index]
            efficiency = one / (int(w) / int(sizes[0]) * row["per_step_s"])
            lines.append(
                f"| {_rows(row['rows'])} | {row['chunks']} | {w} | {row['per_step_s'] * 1e3:.0f} ms | "
                f"{efficiency:.0%} | {_bytes(row['to_client_bytes_per_step'])} | "
                f"{_bytes(row['between_workers_bytes_per_step'])} | "
                f"{_bytes(row['chunks_between_workers_bytes_per_step'])} | {_bytes(row['loopback_bytes_per_step'])} |"
            )
    return [*lines, "", *_beyond_one_machine(part)]


def _beyond_one_machine(part: dict) -> list[str]:
    """What the measured Dask numbers say about a real network (the reasoning is in the hand-written note)."""
    clusters = part["clusters"]
    one, many = clusters[min(clusters, key=int)], clusters[max(clusters, key=int)]
    big, same_chunks, same_size = many["gradient_descent"][:3]
    per_chunk_s = one["gradient_descent"][0]["per_step_s"] / one["gradient_descent"][0]["chunks"]

    def messages(run: dict) -> float:  # loopback bytes per step less the data chunks the scheduler moved
        return run["loopback_bytes_per_step"] - run["chunks_between_workers_bytes_per_step"]

    per_chunk_loopback = (messages(same_chunks) - messages(same_size)) / max(
        same_chunks["chunks"] - same_size["chunks"], 1
    )
    step_on_links = ", ".join(
        f"{big['loopback_bytes_per_step'] / speed * 1e3:.2f} ms at {name}" for name, speed in LINK_SPEEDS.items()
    )
    lines = [
        "**From these numbers, for a real cluster:**",
        "",
        f"- A gradient-descent step at N = {_rows(big['rows'])} on {max(clusters, key=int)} workers moved "
        f"{_bytes(big['loopback_bytes_per_step'])} over loopback ({step_on_links}), against "
        f"{big['per_step_s'] * 1e3:.0f} ms of computing: its bytes do not limit a step; its round trips (client → "
        "scheduler → workers → the tree of sums → client) add a network latency each.",
        f"- Apart from data chunks that the scheduler moved, those bytes follow the chunks, not the rows: "
        f"{_bytes(messages(big))} at N = {_rows(big['rows'])} and {_bytes(messages(same_chunks))} at "
        f"N = {_rows(same_chunks['rows'])}, both in {big['chunks']} chunks; {_bytes(messages(same_size))} at "
        f"N = {_rows(same_size['rows'])} in {same_size['chunks']} chunks: about {_bytes(per_chunk_loopback)} per "
        "chunk and step.",
        f"- One chunk of {_rows(part['chunk_rows'])} rows costs {per_chunk_s * 1e3:.0f} ms of one core per step "
        "(1 worker); Dask's array best practices put the scheduler's overhead near 1 ms per task, so chunks of this "
        "size keep it to a few percent, and chunks much smaller than ~10% of this would let it dominate.",
        f"- Moving the data set itself ({_gb(part['data_bytes'])}) would take "
        + ", ".join(f"{part['data_bytes'] / speed:.0f} s at {name}" for name, speed in LINK_SPEEDS.items())
        + f", {part['data_bytes'] / LINK_SPEEDS['1 Gbit/s'] / big['per_step_s']:.0f} gradient-descent steps' worth "
        "at 1 Gbit/s: load it on the workers (as here) and keep it there.",
    ]
    return lines


def markdown(results: dict) -> str:
    """The generated section of benchmarks/README.md."""
    m = results["machine"]
    lines = [
        f"Measured {m['date']} on {m['cpu']}, {m['cores']} cores, {m['memory_bytes'] / 2**30:.0f} GiB RAM; "
        f"Python {m['python']}, NumPy {m['numpy']}. Whole run: {results.get('total_s', 0) / 60:.1f} min"
        f"{' (--quick)' if results.get('quick') else ''}.",
        "",
    ]
    if "memory_map" in results:
        lines += [*_memory_map_markdown(results["memory_map"]), ""]
    if "dask" in results:
        lines += [*_dask_markdown(results["dask"]), ""]
    lines += ["### Targets (issue 13)", ""]
    lines += [f"- {'✅ pass' if t['pass'] else '❌ fail'}: {t['text']}" for t in results["targets"]]
    lines += ["", "![memory maps and Dask](../docs/scale.png)"]
    return "\n".join(lines)


def replace_section(path: Path, body: str, begin: str = BEGIN, end: str = END) -> None:
    """Put `body` between the `begin` and `end` markers of `path` (appended at the end when they are missing)."""
    text = path.read_text()
    if begin not in text or end not in text:
        text = text.rstrip("\n") + f"\n\n{begin}\n{end}\n"
    head, rest = text.split(begin, 1)
    tail = rest.split(end, 1)[1]
    path.write_text(f"{head}{begin}\n{body}\n{end}{tail}")


# ----- the moments (issue 25) -----


def _moments_rows(results: dict) -> list[tuple[str, dict]]:
    """(what, entry) for each measured row of the moments part."""
    part = results.get("moments", {})
    rows = [
        (f"Dask, {_rows(entry['rows'])} × 10 float64, {entry['workers']} worker(s)", entry)
        for entry in part.get("dask", [])
    ]
    if "memory_map" in part:
        entry = part["memory_map"]
        rows.append(
            (f"memory map, {_rows(entry['rows'])} × 10 float32 ({_gb(entry['data_bytes'])}), cold cache", entry)
        )
    if "cli" in part:
        entry = part["cli"]
        rows.append((f"`tinygrad-lr fit --csv` ({_gb(entry['csv_bytes'])}, {_rows(entry['rows'])} rows)", entry))
    return rows


def moments_targets(results: dict) -> list[dict]:
    """Issue 25's targets that this run measured: each row within VS_ONE_PASS of its one-pass reference, and
    its 1M-row slice's weights within AGREEMENT of run_eagerly's."""
    found = []
    for what, entry in _moments_rows(results):
        ratio = entry["ratio"]
        found.append(
            {
                "text": f"{what}: {entry['epochs']:,} epochs in {entry['fit_s']:.2f} s, {ratio:.2f}× "
                f"{entry['reference']} ({entry['reference_s']:.2f} s; ≤ {VS_ONE_PASS:g}×)",
                "value": ratio,
                "limit": VS_ONE_PASS,
                "pass": bool(ratio <= VS_ONE_PASS and entry["step"] == "moments"),
            }
        )
        check = entry.get("check")
        if check:
            diff = check["weights_max_rel_diff"]
            found.append(
                {
                    "text": f"{what}: on {_rows(check['rows'])} rows, the weights from the moments against "
                    f"run_eagerly's: max relative |Δ| {diff:.1e} (≤ {AGREEMENT:g})",
                    "value": diff,
                    "limit": AGREEMENT,
                    "pass": bool(diff <= AGREEMENT and check["step"] == "moments"),
                }
            )
    return found


def moments_markdown(results: dict) -> str:
    """The generated moments table of benchmarks/README.md."""
    m = results["machine"]
    part = results["moments"]
    reps = len(part["dask"][0]["fit_times_s"]) if part.get("dask") else 1
    lines = [
        "### Any number of full-batch epochs for one pass: the moments (issue 25)",
        "",
        f"Measured {m['date']} on {m['cpu']}, {m['cores']} cores, {m['memory_bytes'] / 2**30:.0f} GiB RAM (a shared, "
        f"noisy machine); Python {m['python']}, NumPy {m['numpy']}. {part['epochs']:,} full-batch SGD epochs "
        f"(lr {part['learning_rate']:g}) from W = 0, `python benchmarks/scale.py --only moments`; medians of "
        f"{reps}.{' (--quick)' if results.get('quick') else ''}",
        "",
        f"| data | {part['epochs']:,} full-batch epochs | one pass | × one pass | weights vs run_eagerly (slice) |",
        "|---|---:|---|---:|---:|",
    ]
    for what, entry in _moments_rows(results):
        check = entry.get("check")
        agreement = (
            f"{check['weights_max_rel_diff']:.1e} on {_rows(check['rows'])} rows" if check else "(the row above)"
        )
        lines.append(
            f"| {what} | {entry['fit_s']:.2f} s | {entry['reference']}: {entry['reference_s']:.2f} s | "
            f"**{entry['ratio']:.2f}×** | {agreement} |"
        )
    if "memory_map" in part:
        entry = part["memory_map"]
        lines += [
            "",
            f"The memory map's cold read ran at {entry['data_bytes'] / entry['reference_s'] / 1e9:.1f} GB/s (dropped "
            "from the page cache first): this machine's disk is served from its host's memory, so the reference is "
            "the pass's arithmetic against a copy, not against a disk (at the 0.7–0.8 GB/s of issue 25's machine "
            f"it would take {entry['data_bytes'] / 0.75e9:.2f} s).",
        ]
    lines += ["", "Targets (issue 25):", ""]
    lines += [f"- {'✅ pass' if t['pass'] else '❌ fail'}: {t['text']}" for t in results["targets"]]
    return "\n".join(lines)


def write_moments(results: dict, full: bool) -> None:
    """A full run rewrites the README's moments table; a quick one writes the ignored moments-quick.md."""
    if full:
        replace_section(README, moments_markdown(results), MOMENTS_BEGIN, MOMENTS_END)
        print(f"wrote {README.relative_to(ROOT)}")
    else:
        MOMENTS_QUICK.write_text(moments_markdown(results) + "\n")
        print(f"wrote {MOMENTS_QUICK.relative_to(ROOT)}")


# ----- chart -----


def _memory_map_axes(axes: list, part: dict) -> None:
    runs = part["runs"]
    names = [_rows(run["rows"]) for run in runs]
    series = [
        ("sequential read, cold", "sequential_read_bytes_per_s", "#555555"),
        ("training, cold", "train_bytes_per_s", "#1f77b4"),
        ("training, warm cache", "train_warm_bytes_per_s", "#9ecae1"),
    ]
    width = 0.8 / len(series)
    for k, (label, key, color) in enumerate(series):
        xs = [i + (k - 1) * width for i in range(len(runs))]
        axes[0].bar(xs, [run[key] / 1e9 for run in runs], width * 0.95, label=label, color=color)
    for i, run in enumerate(runs):
        target = SHARE_OF_READ * run["sequential_read_bytes_per_s"] / 1e9
        axes[0].hlines(target, i - 0.45, i + 0.45, colors="black", linestyles=":", linewidth=1)
        axes[0].annotate(f"{run['share_of_sequential_read']:.0%}", (i, run["train_bytes_per_s"] / 1e9), ha="center")
    axes[0].set_title("memory map: GB/s read (labels: share of sequential; dotted: 70%)", fontsize=9)
    axes[0].set_ylabel("GB/s")
    axes[1].bar(names, [run["anon_baseline_bytes"] / 1e6 for run in runs], color="#bbbbbb", label="before the passes")
    axes[1].bar(
        names,
        [(run["anon_peak_bytes"] - run["anon_baseline_bytes"]) / 1e6 for run in runs],
        bottom=[run["anon_baseline_bytes"] / 1e6 for run in runs],
        color="#1f77b4",
        label="growth during the passes",
    )
    axes[1].axhline(ANON_LIMIT / 1e6, color="black", linestyle=":", linewidth=1)
    axes[1].set_title("memory map: peak anonymous memory (dotted: 256 MB)", fontsize=9)
    axes[1].set_ylabel("MB (RssAnon)")
    for ax in axes[:2]:
        ax.set_xticks(range(len(runs)))
        ax.set_xticklabels([f"N = {name}" for name in names])
        ax.legend(fontsize=7)


def _dask_axes(axes: list, part: dict) -> None:
    clusters = part["clusters"]
    sizes = list(clusters)
    solvers = list(clusters[sizes[0]]["ols"])
    width = 0.8 / len(sizes)
    for k, w in enumerate(sizes):
        xs = [i + (k - (len(sizes) - 1) / 2) * width for i in range(len(solvers))]
        axes[0].bar(xs, [clusters[w]["ols"][s]["median_s"] for s in solvers], width * 0.95, label=f"{w} worker(s)")
    axes[0].set_xticks(range(len(solvers)))
    axes[0].set_xticklabels([LABELS.get(s, s).replace(" LinearRegression (", "\n(") for s in solvers], fontsize=7)
    axes[0].set_ylabel("seconds")
    axes[0].set_title(f"Dask, N = {_rows(part['rows'])}: least squares wall time", fontsize=9)
    runs = clusters[sizes[0]]["gradient_descent"]
    for k, w in enumerate(sizes):
        xs = [i + (k - (len(sizes) - 1) / 2) * width for i in range(len(runs))]
        rows = clusters[w]["gradient_descent"]
        axes[1].bar(xs, [row["per_step_s"] * 1e3 for row in rows], width * 0.95, label=f"{w} worker(s)")
        for x, row in zip(xs, rows):
            moved = _bytes(row["loopback_bytes_per_step"])
            axes[1].annotate(moved, (x, row["per_step_s"] * 1e3), ha="center", va="bottom", fontsize=6, rotation=90)
    axes[1].set_xticks(range(len(runs)))
    axes[1].set_xticklabels([f"N = {_rows(r['rows'])}\n{r['chunks']} chunks" for r in runs], fontsize=8)
    axes[1].set_ylabel("ms per step")
    axes[1].set_title("Dask: gradient descent per step (labels: loopback bytes per step)", fontsize=9)
    axes[1].margins(y=0.25)
    for ax in axes:
        ax.legend(fontsize=7)


def chart(results: dict, path: Path = CHART) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    parts = [part for part in ("memory_map", "dask") if part in results]
    fig, grid = plt.subplots(len(parts), 2, figsize=(12, 4.5 * len(parts)), dpi=110, squeeze=False)
    for row, part in zip(grid, parts):
        (_memory_map_axes if part == "memory_map" else _dask_axes)(list(row), results[part])
    m = results["machine"]
    fig.suptitle(f"tinygrad_lr at scale: {m['cpu']}, {m['cores']} cores, {m['date']}", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def write_all(results: dict, full: bool) -> None:
    """A full run rewrites the README's section and docs/scale.png; another one writes the ignored
    scale-quick.md and scale-quick.png beside the results."""
    if full:
        replace_section(README, markdown(results))
        chart(results, CHART)
        written = [README, CHART]
    else:
        QUICK_MARKDOWN.write_text(markdown(results) + "\n")
        chart(results, QUICK_CHART)
        written = [QUICK_MARKDOWN, QUICK_CHART]
    print("wrote " + " and ".join(str(path.relative_to(ROOT)) for path in written))


if __name__ == "__main__":
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "scale-results.json"
    saved = json.loads(source.read_text())
    if "moments" in saved:
        saved["targets"] = moments_targets(saved)
        write_moments(saved, full=not saved.get("quick"))
    else:
        saved["targets"] = targets(saved)  # judged again, by this file's rules
        write_all(saved, full=not saved.get("quick") and not saved.get("only"))
