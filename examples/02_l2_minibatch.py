"""Walkthrough 2: mini-batch gradient descent with an L2 penalty, and why its bias barely moves.

Redoes the classic TensorFlow 1 tutorial "linear regression with L2 regularisation and
mini-batches": y = 3.657x + 0.33·noise on x = 0, 1, ..., 9999; W and b of shape [1, 1] drawn
from a truncated normal with std 0.01; the loss mean((XW + b - y)²) + 1e-10·sum(W·W); plain
gradient descent with lr 1e-10 on two batches of 5000 (not shuffled); 2000 epochs, printing
every 100. The original noticed that W finds 3.657 while the bias hardly moves from where it
started.

It runs the tutorial twice: in float64 on one fixed noise draw (1a), which the diagnosis below
explains, and as the tutorial ran it (1b), in float32 with the noise drawn afresh every epoch.
In float32 the bias stops dead: it moves while W is far off, then, once W has settled, an update
lr·∂loss/∂b of a few 1e-11 is far below half the spacing of float32 numbers near b (9.3e-10 at
b ≈ -0.0128), so b - update rounds back to b, step after step.

This script shows why, with numbers: on unscaled x the loss is a valley 10⁸ times steeper
along W than along b (`tl.solvers.hessian_condition_number`), so any learning rate small enough
to be stable along W (`tl.solvers.stable_learning_rate`) moves b by almost nothing per step.
Then it shows the cure twice:
  (a) standardise the feature (`tl.data.Standardizer`): the valley becomes round and gradient
      descent converges in a few dozen epochs; `tl.data.unscale_linear` gives W, b in x's units;
  (b) fold the bias into the weights (a constant column in X): on its own this changes nothing,
      but the constant column can then be scaled up to x's size, which mostly fixes it.
Every result is compared with the exact optimum, `tl.solvers.ridge(X, y, l2=1e-10)`.

Pictures: `02_fit.png` (each run's line minus the optimum's over x = 0..9999, where the bias gap
shows at x = 0: beside y's range it is invisible), `02_loss.png` (loss above the optimum per
epoch: the tutorial and both cures).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

import tinygrad_lr as tl

L2 = 1e-10
LR = 1e-10  # the tutorial's learning rate
BATCH_SIZE = 5000
EPOCHS = 2000
PRINT_EVERY = 100


def truncated_normal(shape: tuple[int, ...], std: float, rng: np.random.Generator) -> np.ndarray:
    """N(0, std²) samples, each one beyond 2·std drawn again (TensorFlow's truncated_normal)."""
    values = rng.normal(0.0, std, shape)
    outside = np.abs(values) > 2 * std
    while outside.any():
        values[outside] = rng.normal(0.0, std, outside.sum())
        outside = np.abs(values) > 2 * std
    return values


def objective(X: np.ndarray, y: np.ndarray, W: float, b: float) -> float:
    """The tutorial's loss on all the data, in x's units: mean((xW + b - y)²) + l2·W². X, y: (n, 1)."""
    return float(np.mean((X * W + b - y) ** 2) + L2 * W * W)


def train(X, y, W, b, lr: float, epochs: int, after_epoch) -> None:
    """Mini-batch gradient descent on mse(XW + b, y) + l2·sum(W·W), updating W and b in place.

    X: (n, d), y: (n, 1), W: (d, 1), b: (1, 1) Tensors, or b=None for no separate bias.
    `after_epoch(epoch)` is called after every epoch (epochs count from 1).
    """
    optimizer = tl.optim.GradientDescent([W] if b is None else [W, b], lr=lr)
    batches = tl.data.batch_indices(len(X), BATCH_SIZE)  # in order: the first 5000 x, then the rest
    for epoch in range(1, epochs + 1):
        for batch in batches:
            pred = X[batch] @ W if b is None else X[batch] @ W + b
            loss = tl.losses.mse(pred, y[batch]) + tl.losses.l2_penalty([W], L2)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        after_epoch(epoch)


class Problem:
    """The tutorial's data and starting point, the exact optimum, and every run so far."""

    def __init__(self):
        rng = np.random.default_rng(0)
        self.x = np.arange(10000.0)  # (n,)
        self.y = 3.657 * self.x + 0.33 * rng.standard_normal(len(self.x))  # (n,)
        self.X, self.Y = self.x.reshape(-1, 1), self.y.reshape(-1, 1)  # (n, 1)
        self.W0 = truncated_normal((1, 1), 0.01, rng)  # where every run starts
        self.b0 = truncated_normal((1, 1), 0.01, rng)
        # The exact minimiser of the tutorial's loss: every run is measured against it
        (self.ridge_W,), self.ridge_b = tl.solvers.ridge(self.x, self.y, l2=L2)
        self.ridge_loss = objective(self.X, self.Y, self.ridge_W, self.ridge_b)
        self.runs = {}  # name -> (W, b) after each epoch, in x's units
        self.labels = {}  # name -> its row in the side-by-side table

    def recorder(self, name: str, label: str, every: int, read):
        """An after_epoch hook: store `read()` = (W, b) in x's units, print it every `every` epochs."""
        self.runs[name] = []
        self.labels[name] = label

        def after_epoch(epoch: int) -> None:
            w_value, b_value = read()
            self.runs[name].append((w_value, b_value))
            if epoch % every == 0:
                loss = objective(self.X, self.Y, w_value, b_value)
                print(f"Epoch {epoch}: W = {w_value:.6f}, b = {b_value:.6f}, loss = {loss:.6f}")

        return after_epoch


def run_tutorial(problem: Problem, epochs: int) -> float:
    """1a. The tutorial as written, on unscaled x with lr 1e-10; returns the seconds per step."""
    print(f"1a. The tutorial: unscaled x, lr {LR:g}, batches of {BATCH_SIZE}, {epochs} epochs, float64")
    # Copies: a Tensor shares the memory of a float64 array, and the optimizer updates in place
    W = tl.Tensor(problem.W0.copy(), requires_grad=True)
    b = tl.Tensor(problem.b0.copy(), requires_grad=True)
    label = f"1a. tutorial, {epochs} epochs"
    after_epoch = problem.recorder("tutorial", label, PRINT_EVERY, lambda: (W.item(), b.item()))
    start = time.perf_counter()
    train(tl.Tensor(problem.X), tl.Tensor(problem.Y), W, b, LR, epochs, after_epoch)
    seconds_per_step = (time.perf_counter() - start) / (2 * epochs)
    run = problem.runs["tutorial"]
    b_initial, tutorial_b = problem.b0.item(), run[-1][1]
    # b did move early on, while W was far off and every residual pulled it the same way; once W
    # had settled, b stopped. Its remaining distance to the optimum is what the loss cannot shake.
    late_change = tutorial_b - run[epochs // 2 - 1][1]
    remaining = (problem.ridge_b - tutorial_b) / (problem.ridge_b - b_initial)
    print(
        f"b: started at {b_initial:.6f}, changed by {late_change:.1e} over the last {epochs // 2} epochs, "
        f"optimum {problem.ridge_b:.6f}: {remaining:.0%} of its way is left"
    )
    return seconds_per_step


def run_in_float32(problem: Problem, epochs: int) -> dict[str, float]:
    """1b. The tutorial as it ran: float32 throughout, the noise drawn afresh every epoch."""
    print(f"\n1b. As the tutorial ran: float32, the noise redrawn every epoch, {epochs} epochs")
    rng = np.random.default_rng(1)
    X = tl.Tensor(problem.X, dtype=np.float32)
    W = tl.Tensor(problem.W0, requires_grad=True, dtype=np.float32)
    b = tl.Tensor(problem.b0, requires_grad=True, dtype=np.float32)
    problem.runs["float32"], problem.labels["float32"] = [], f"1b. float32, {epochs} epochs"
    b_values = [b.item()]
    for epoch in range(1, epochs + 1):
        y = 3.657 * problem.X + 0.33 * rng.standard_normal(problem.X.shape)
        train(X, tl.Tensor(y, dtype=np.float32), W, b, LR, 1, lambda _: None)  # plain GD keeps no state
        b_values.append(b.item())
        problem.runs["float32"].append((W.item(), b.item()))
        if epoch % PRINT_EVERY == 0:
            print(f"Epoch {epoch}: W = {W.item():.6f}, b = {b.item():.9f}")
    changed = np.flatnonzero(np.diff(b_values)) + 1  # the epochs in which b changed at all
    last = int(changed[-1]) if len(changed) else 0
    # while W is far off, the residuals are large and so is b's update; once W has settled, b stops dead
    print(f"b changed in {len(changed)} of {epochs} epochs, the last time in epoch {last}; from then on not at all")

    # Why: the size of the last step's update to b, against the spacing of float32 numbers at b
    batch = tl.data.batch_indices(len(problem.X), BATCH_SIZE)[-1]
    y = tl.Tensor(3.657 * problem.X[batch] + 0.33 * rng.standard_normal((BATCH_SIZE, 1)), dtype=np.float32)
    loss = tl.losses.mse(X[batch] @ W + b, y) + tl.losses.l2_penalty([W], L2)
    loss.backward()
    update = abs(LR * b.grad.item())
    spacing = abs(float(np.spacing(np.float32(b.item()))))
    print(
        f"at b = {b.item():.9f} a step changes b by lr·∂loss/∂b = {update:.2g}, but float32 numbers there are "
        f"{spacing:.2g} apart:"
    )
    rounds = "below half of it, so b - update rounds back to b" if update < spacing / 2 else "enough to move b"
    print(f"  the update is {update / spacing:.2g} of the spacing, {rounds}")
    return {
        "float32_b_changes": len(changed),
        "float32_last_change": last,
        "float32_update": update,
        "float32_spacing": spacing,
    }


def explain_stuck_bias(problem: Problem, seconds_per_step: float) -> dict[str, float]:
    """2. The curvature of the loss along W and along b; returns the numbers that show why b is stuck."""
    # The loss is a quadratic bowl in (W, b). Its Hessian has a steep eigenvalue λ_max (mostly W,
    # whose input x is in the thousands) and a flat one λ_min (mostly b, whose input is 1).
    # Gradient descent is stable only for lr < 2/λ_max, and each step shrinks the error along the
    # flat direction by the factor (1 - lr·λ_min): with λ_min/λ_max ≈ 1e-8, b is left behind at
    # every stable lr. W meanwhile settles where it best makes up for the wrong b.
    lr_max = tl.solvers.stable_learning_rate(problem.X, l2=L2)
    condition = tl.solvers.hessian_condition_number(problem.X, l2=L2)
    curvature_max = 2 / lr_max
    curvature_min = curvature_max / condition
    print("\n2. Why the bias barely moves")
    print(f"largest stable learning rate 2/λ_max = {lr_max:.3g}")
    print(f"condition number λ_max/λ_min = {condition:.3g} (λ_max = {curvature_max:.3g}, λ_min = {curvature_min:.3g})")
    steps_at = {}
    for name, lr in (("the tutorial's lr", LR), ("the largest stable lr", lr_max)):
        # the number of steps for (1 - lr·λ_min)^steps to reach 0.1: 90% of b's way to the optimum
        steps = math.log(10) / -math.log1p(-lr * curvature_min)
        steps_at[name] = steps
        hours = steps * seconds_per_step / 3600
        print(f"at {name} {lr:.3g}, a step moves b {lr * curvature_min:.2g} of its remaining way;")
        print(f"  90% of the way takes {steps:.2g} steps = {steps / 2:.2g} epochs = {hours:,.0f} hours at this speed")
    return {
        "stable_lr": lr_max,
        "condition_number": condition,
        "steps_to_move_b": steps_at["the largest stable lr"],
    }


def standardise_x(problem: Problem) -> None:
    """3a. The first cure: standardise x, and gradient descent converges in a few dozen epochs."""
    scaler = tl.data.Standardizer()
    Z = scaler.fit_transform(problem.X)  # (x - mean) / std: mean 0, variance 1
    print("\n3a. Standardise x: z = (x - mean) / std")
    print(
        f"condition number {tl.solvers.hessian_condition_number(Z, l2=L2):.3g}, "
        f"largest stable learning rate {tl.solvers.stable_learning_rate(Z, l2=L2):.3g}"
    )
    # The penalty now falls on the weight of z, which is std(x) = 2887 times the weight of x: a
    # slightly different objective, whose optimum b differs from ridge's by about 2e-6.
    W = tl.Tensor(problem.W0.copy(), requires_grad=True)
    b = tl.Tensor(problem.b0.copy(), requires_grad=True)

    def standardised_in_x_units() -> tuple[float, float]:
        (coef,), intercept = tl.data.unscale_linear(W.data[:, 0], b.item(), scaler)
        return float(coef), intercept

    lr, epochs = 0.1, 50
    print(f"gradient descent, lr {lr}, same batches and starting point; W, b in x's units:")
    label = f"3a. standardised, {epochs} epochs"
    after_epoch = problem.recorder("standardised", label, 10, standardised_in_x_units)
    train(tl.Tensor(Z), tl.Tensor(problem.Y), W, b, lr, epochs, after_epoch)


def fold_bias_into_weights(problem: Problem) -> None:
    """3b. The second cure: a constant column for the bias, scaled up to x's size."""
    # X1 = [x, 1] and W1 = [W; b] give the same predictions X1 @ W1 = xW + b, hence the same bowl
    # and the same condition number: folding alone fixes nothing. What it buys is freedom: the
    # constant column may hold any constant c, with b = c·W1[1]. With c = the root mean square of
    # x, both columns have the same size and the bowl is far rounder, though not round: x is all
    # positive, so its column and the constant one still point in similar directions (centring x,
    # as 3a does, removes that too).
    print("\n3b. Fold the bias into the weights: X1 = [x, c], W1 = [W; b/c]")
    rms = float(np.sqrt(np.mean(problem.x**2)))
    for c in (1.0, rms):
        X1 = np.hstack([problem.X, np.full_like(problem.X, c)])
        condition_1 = tl.solvers.hessian_condition_number(X1, l2=L2, fit_intercept=False)
        print(f"c = {c:<8.6g} condition number {condition_1:.3g}")
    c = rms  # X1 now holds this column
    # The second batch (x = 5000..9999) is the steeper one; half its bound keeps both stable
    lr = 0.5 * min(
        tl.solvers.stable_learning_rate(X1[batch], l2=L2, fit_intercept=False)
        for batch in tl.data.batch_indices(len(X1), BATCH_SIZE)
    )
    W1 = tl.Tensor(np.vstack([problem.W0, problem.b0 / c]), requires_grad=True)

    def folded_in_x_units() -> tuple[float, float]:
        return float(W1.data[0, 0]), float(c * W1.data[1, 0])

    epochs = 200
    print(f"gradient descent with c = {c:.6g}, lr {lr:.3g}, same batches and starting point:")
    after_epoch = problem.recorder("folded", f"3b. folded, c = {c:.0f}, {epochs} epochs", 40, folded_in_x_units)
    train(tl.Tensor(X1), tl.Tensor(problem.Y), W1, None, lr, epochs, after_epoch)


def compare_runs(problem: Problem) -> None:
    """4. Side by side: each run's final W, b and loss, and the optimum."""
    print(f"\n{'':36}{'W':>9}{'b':>11}{'loss':>11}")
    for key, label in problem.labels.items():
        w_value, b_value = problem.runs[key][-1]
        print(f"{label:36}{w_value:9.6f}{b_value:11.6f}{objective(problem.X, problem.Y, w_value, b_value):11.6f}")
    print(f"{'optimum (tl.solvers.ridge)':36}{problem.ridge_W:9.6f}{problem.ridge_b:11.6f}{problem.ridge_loss:11.6f}")
    # With two fixed batches each step pulls towards its own batch's optimum, so gradient descent at
    # a fixed lr ends on a small cycle around the optimum rather than on it
    print("(the cures end within 0.001 of the optimal b: with two fixed batches, gradient descent at a fixed")
    print(" lr circles the optimum, each batch pulling towards its own; one batch of 10000 lands on it)")


def draw_lines_minus_optimum(problem: Problem, path: Path) -> None:
    """02_fit.png: each run's final line minus the optimum's, over the data's x; at x = 0 the bias gap."""
    from matplotlib.figure import Figure

    # Drawn over the data, the lines are one: b's error is a few thousandths where y reaches 36570.
    # Their difference from the optimum, (W - W*)·x + (b - b*), shows it: b - b* at x = 0, and the
    # slope W - W* with which W makes up for the wrong b over the rest.
    figure = Figure(figsize=(7.5, 4.5), layout="constrained")
    ax = figure.subplots()
    ends = np.array([problem.x[0], problem.x[-1]])
    ax.axhline(0.0, color="0.15", linestyle="--", linewidth=1.5, label="optimum (tl.solvers.ridge)")
    # (not 1b: its last noise draw is not the data these lines are measured against)
    for color, key in (("C3", "tutorial"), ("C1", "standardised"), ("C2", "folded")):
        w_value, b_value = problem.runs[key][-1]
        difference = (w_value - problem.ridge_W) * ends + (b_value - problem.ridge_b)
        ax.plot(ends, difference, color=color, linewidth=2.0, label=problem.labels[key])
    tutorial_gap = problem.runs["tutorial"][-1][1] - problem.ridge_b
    ax.annotate(
        f"bias gap b - b* = {tutorial_gap:+.4f}",
        (0.0, tutorial_gap),
        xytext=(2500, tutorial_gap),
        arrowprops={"arrowstyle": "->"},
        va="center",
    )
    ax.set_xlabel("x")
    ax.set_ylabel("line minus the optimum's line (units of y)")
    ax.set_title("Each run's line minus the optimum: the bias gap is the value at x = 0")
    ax.grid(True, alpha=0.3)
    ax.legend(frameon=False, fontsize="small")
    figure.savefig(path, dpi=120)


def draw_pictures(problem: Problem, out_dir: Path) -> list[Path]:
    """02_fit.png, every run's line minus the optimum's, and 02_loss.png, every run's loss above the optimum."""
    fit_path, loss_path = out_dir / "02_fit.png", out_dir / "02_loss.png"
    draw_lines_minus_optimum(problem, fit_path)
    tutorial = problem.runs["tutorial"]  # one (W, b) per epoch

    def excess(run: list[tuple[float, float]]) -> list[float]:
        return [objective(problem.X, problem.Y, *wb) - problem.ridge_loss for wb in run]

    # The loss above the optimum per epoch, the tutorial's curve drawn by tl.plot and the cures added
    figure = tl.plot.plot_loss(
        {"loss - optimum": excess(tutorial)},
        title="Loss above the optimum: the tutorial's stalls because b is stuck",
    )
    ax = figure.axes[0]
    ax.lines[0].set_label("1a. tutorial (unscaled x)")
    for color, key in (("C1", "standardised"), ("C2", "folded")):
        losses = excess(problem.runs[key])
        ax.plot(range(1, len(losses) + 1), losses, color=color, label=problem.labels[key].split(",")[0])
    ax.set_xscale("log")
    ax.legend(frameon=False)
    figure.savefig(loss_path, dpi=120)
    return [fit_path, loss_path]


def key_numbers(problem: Problem, diagnosis: dict[str, float]) -> dict:
    """Every run's final W and b, the starting b, the optimum, and the diagnosis's numbers."""
    results = {f"{key}_{name}": value for key, run in problem.runs.items() for name, value in zip(("W", "b"), run[-1])}
    results.update(
        b_initial=float(problem.b0.item()),
        ridge_W=float(problem.ridge_W),
        ridge_b=float(problem.ridge_b),
        **diagnosis,
    )
    return results


def main(out_dir: str | Path = ".", fast: bool = False) -> dict:
    """Run the tutorial, the diagnosis and both cures; save the pictures; return the key numbers."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    problem = Problem()
    epochs = 200 if fast else EPOCHS
    seconds_per_step = run_tutorial(problem, epochs)
    in_float32 = run_in_float32(problem, EPOCHS // 2 if fast else EPOCHS)  # b stops within the first 1000
    diagnosis = explain_stuck_bias(problem, seconds_per_step)
    standardise_x(problem)
    fold_bias_into_weights(problem)
    compare_runs(problem)
    paths = draw_pictures(problem, out_dir)
    print(f"\nwrote {' and '.join(map(str, paths))}")
    return key_numbers(problem, {**diagnosis, **in_float32})


if __name__ == "__main__":
    import _command_line  # examples/_command_line.py, beside this script

    _command_line.run(main, __doc__)
