"""Where a tinygrad_lr training step spends its time: phase timers, then cProfile.

    python benchmarks/profiling.py                         # tiny, small, large_f32; loop and fit
    python benchmarks/profiling.py --only boston --top 30

1. Phases of the hand-written loop (the benchmark's, with a timer between the lines): making the
   batch Tensor, zero_grad, forward, loss, backward, optimizer step, loss.item(). Timers cost
   ~0.1 µs each, so these are close to the real per-step costs. For the fit path, the same
   per-step total is compared with the loop's: the difference is fit's own per-batch work.
   For the bandwidth-bound workloads, also the traced memory (tracemalloc) held between steps
   and the peak within each line, in units of one (n, 1) array.
2. The captured step (`tl.capture_step`) in parts, on the small workloads: its recorded (and fused)
   ops' forward and backward, the gradient checks around each backward, the replay's bookkeeping,
   the optimizer, and the step's own work, each timed alone with `timeit` (garbage collector off).
3. cProfile of a whole training run (loop, then fit), functions sorted by their own time, in µs
   per optimizer step. cProfile adds roughly 1 µs per Python call, so small functions look more
   expensive than they are: read it for the ranking, the phases for the amounts.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
import timeit
import tracemalloc
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

import impl_numpy  # noqa: E402
import impl_tinygrad  # noqa: E402
import numpy as np  # noqa: E402
import workloads  # noqa: E402

import tinygrad_lr as tl  # noqa: E402

PHASES = ["Tensor(batch)", "zero_grad", "forward", "loss", "backward", "step", "item"]


def phase_loop(workload: workloads.Workload, mark) -> None:
    """The benchmark's hand-written loop with `mark(i)` called after line i (and `mark(-1)` before each step)."""
    X, y, l2 = workload.X, workload.y, workload.l2
    model = impl_tinygrad._model(workload)
    optimizer = tl.optim.BY_NAME[workload.optimizer][0](model.parameters(), lr=workload.lr)
    for epoch in workload.schedule:
        for batch in epoch:
            mark(-1)
            xb, yb = tl.Tensor(X[batch]), y[batch]
            mark(0)
            optimizer.zero_grad()
            mark(1)
            pred = model(xb)
            mark(2)
            loss = tl.losses.mse(pred, yb)
            if l2:
                loss = loss + tl.losses.l2_penalty([model.weight], l2)
            mark(3)
            loss.backward()
            mark(4)
            optimizer.step()
            mark(5)
            loss.item()
            mark(6)


def phase_times(workload: workloads.Workload, reps: int) -> dict[str, float]:
    """Seconds per step spent in each line of the hand-written loop (median over reps)."""
    per_rep = []
    for _ in range(reps):
        spent = [0.0] * len(PHASES)
        last = [0.0]
        clock = time.perf_counter

        def mark(i: int, spent=spent, last=last, clock=clock) -> None:
            now = clock()
            if i >= 0:
                spent[i] += now - last[0]
            last[0] = clock()

        phase_loop(workload, mark)
        per_rep.append([total / workload.steps for total in spent])
    return {phase: float(np.median([rep[i] for rep in per_rep])) for i, phase in enumerate(PHASES)}


def phase_memory(workload: workloads.Workload) -> tuple[dict[str, int], int]:
    """Traced bytes above the start of training: the peak within each line, and what is held between steps."""
    peaks = [0] * len(PHASES)
    held = [0]
    tracemalloc.start()
    base, _ = tracemalloc.get_traced_memory()

    def mark(i: int) -> None:
        current, peak = tracemalloc.get_traced_memory()
        if i >= 0:
            peaks[i] = max(peaks[i], peak - base)
        else:
            held[0] = max(held[0], current - base)
        tracemalloc.reset_peak()

    try:
        phase_loop(workload, mark)
    finally:
        tracemalloc.stop()
    return dict(zip(PHASES, peaks)), held[0]


def captured_parts(workload: workloads.Workload, number: int = 2000) -> tuple[list[str], dict[str, float]]:
    """Seconds per call of the parts of the captured step (`tl.capture_step`, as the suite's captured
    loop) on the workload's first batch, each timed on its own with `timeit` (best of 5, the garbage
    collector off): the recorded ops' forward and backward (the backward alone, and the gradient
    checks `_input_grads` adds), the rest of the replay, the optimizer, and the step's own work."""
    model = impl_tinygrad._model(workload)
    optimizer = tl.optim.BY_NAME[workload.optimizer][0](model.parameters(), lr=workload.lr)
    l2 = workload.l2

    def objective(pred, target):
        loss = tl.losses.mse(pred, target)
        return loss + tl.losses.l2_penalty([model.weight], l2) if l2 else loss

    step = tl.capture_step(lambda xb, yb: objective(model(xb), yb), optimizer)
    batch = workload.schedule[0][0]
    xb, yb = workload.X[batch], workload.y[batch]
    for _ in range(3):  # recorded, checked (then fused), replayed
        step(xb, yb)
    (recording,) = step.recordings.values()

    def best(fn) -> float:
        return min(timeit.repeat(fn, number=number, repeat=5)) / number

    parts = {"whole step": best(lambda: step(xb, yb)), "replay": best(lambda: recording.replay(xb, yb))}
    values = {0: xb, 1: yb, **{place: leaf.data for place, leaf in recording.leaves}}  # by place
    forward = backward = checks = 0.0
    for ctx, places, options, place in recording.forward:  # each op on the arrays of one run
        inputs = [values[i] for i in places]
        forward += best(lambda ctx=ctx, inputs=inputs, options=options: ctx.forward(*inputs, **options))
        values[place] = np.asarray(ctx.forward(*inputs, **options))
        ctx.inputs, ctx.output = inputs, values[place]
        grad = np.ones_like(values[place])
        backward += best(lambda ctx=ctx, grad=grad: ctx.backward(grad))
        checks += best(lambda ctx=ctx, grad=grad: ctx._input_grads(None, grad, False))
    recording.release()
    parts.update({"ops forward": forward, "ops backward": backward, "gradient checks": checks - backward})
    parts["replay bookkeeping"] = parts["replay"] - forward - checks
    parts["optimizer"] = best(optimizer.step)
    parts["the step's own"] = parts["whole step"] - parts["replay"] - parts["optimizer"]
    return [type(ctx).__name__ for ctx, _, _, _ in recording.forward], parts


def median_step(train, steps: int, reps: int) -> float:
    train()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        train()
        times.append(time.perf_counter() - start)
    return float(np.median(times)) / steps


def profile_run(train, steps: int, top: int, title: str) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    train()
    profiler.disable()
    stats = pstats.Stats(profiler)
    rows = []
    for (filename, line, function), (_, calls, own, cumulative, _) in stats.stats.items():
        where = f"{Path(filename).parent.name}/{Path(filename).name}:{line}" if line else filename
        rows.append((own, cumulative, calls, f"{function} ({where})"))
    rows.sort(reverse=True)
    total = sum(row[0] for row in rows)
    print(f"\n  cProfile, {title}: {total / steps * 1e6:.1f} µs/step under the profiler; top {top} by own time")
    print(f"  {'own µs/step':>11} {'cum µs/step':>11} {'calls/step':>10}  function")
    for own, cumulative, calls, name in rows[:top]:
        print(f"  {own / steps * 1e6:11.2f} {cumulative / steps * 1e6:11.2f} {calls / steps:10.2f}  {name}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", default=["tiny", "small", "large_f32"], metavar="WORKLOAD")
    parser.add_argument("--top", type=int, default=22)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    for name in workloads.resolve(args.only):
        workload = workloads.build(name)
        steps = workload.steps
        reps = min(args.reps, 2) if workload.large else args.reps
        print(f"\n== {name}: {workload.summary()}")
        floor = median_step(impl_numpy.prepare(workload), steps, reps)
        loop = median_step(impl_tinygrad.Loop.prepare(workload), steps, reps)
        fit = median_step(impl_tinygrad.Fit.prepare(workload), steps, reps)
        print(
            f"  per step: NumPy floor {floor * 1e6:.1f} µs, loop {loop * 1e6:.1f} µs ({loop / floor:.2f}×), "
            f"fit {fit * 1e6:.1f} µs ({fit / floor:.2f}×); fit - loop = {(fit - loop) * 1e6:+.1f} µs"
        )
        phases = phase_times(workload, reps)
        total = sum(phases.values())
        print(f"  loop phases (µs/step, timed line by line; sum {total * 1e6:.1f}):")
        for phase, seconds in phases.items():
            print(f"    {phase:14s} {seconds * 1e6:9.2f}  {seconds / total:5.0%}")
        if workload.large:
            peaks, held = phase_memory(workload)
            vector = len(workload.X) * workload.dtype.itemsize  # one (n, 1) array
            print(
                f"  loop memory (tracemalloc, above the data; one (n, 1) array = {vector / 2**20:.1f} MiB;"
                f" data = {workload.data_bytes / 2**20:.1f} MiB):"
            )
            print(f"    {'held from the previous step':28s} {held / 2**20:7.1f} MiB  {held / vector:4.1f} arrays")
            for phase, peak in peaks.items():
                print(
                    f"    peak during {phase:16s} {peak / 2**20:7.1f} MiB  {peak / vector:4.1f} arrays  "
                    f"{peak / workload.data_bytes:4.0%} of data"
                )
        if not workload.large:
            names, parts = captured_parts(workload)
            print(f"  captured step, recorded and fused into {' + '.join(names)} (µs a call, each part alone):")
            for part, seconds in parts.items():
                print(f"    {part:20s} {seconds * 1e6:9.2f}")
        profile_run(impl_tinygrad.Loop.prepare(workload), steps, args.top, "loop")
        profile_run(impl_tinygrad.Fit.prepare(workload), steps, args.top, "fit")
    return 0


if __name__ == "__main__":
    sys.exit(main())
