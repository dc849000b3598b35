"""Walkthrough 7: the curvature of the loss, read off the engine's own second derivatives, and Newton's method.

The loss of a linear model, mse(X @ w + b, y) + l2·sum(w²), is a quadratic bowl in (w, b); its
Hessian is the same matrix everywhere, 2·[X 1]ᵀ[X 1]/n + 2·l2·diag(1, ..., 1, 0). This script
takes that matrix from the engine (`tl.autograd.hessian`, which differentiates the fused
Affine, MSE and L2 ops twice) and from the formula, on two data sets: the Boston rooms data of
walkthrough 5 (all 404 training rows, l2 = 0.01) and the stuck-bias data of walkthrough 2
(x = 0..9999, y = 3.657x + 0.33·noise, l2 = 1e-10). For each it shows:
  1. the engine's Hessian beside the closed form, and how closely they agree;
  2. the largest eigenvalue λ_max by power iteration, using only Hessian-vector products
     (`tl.autograd.hvp`, two backward sweeps, no matrix), and the largest stable learning rate
     of gradient descent 2/λ_max from it, beside `tl.solvers.stable_learning_rate`;
  3. one Newton step (`tl.optim.Newton`) from the Glorot/zero start of a float64 Linear(1, 1),
     which lands on `tl.solvers.ridge`, against the epochs that full-batch gradient descent (at
     1/λ_max, half the stable bound) and Adam need to come within 1e-6 (relative) of the optimal
     loss; where gradient descent cannot, the condition number says how long it would take.

Pictures: `07_loss.png` (the loss above the optimum per epoch, Newton, gradient descent and Adam,
one panel per data set), `07_paths.png` (the three paths over the Boston loss's contours, labelled with
the loss above the optimum).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

import tinygrad_lr as tl

ROOMS = tl.datasets.BOSTON_FEATURES.index("rm")  # column 5
TOLERANCE = 1e-6  # "converged": the loss within this fraction of the optimal loss
# a relative gap this small is the machine's rounding, whose digits change with the order of the sums (another
# BLAS, another machine): printed as "~0" or "equal to 12 digits", not as digits
ROUNDING = 1e-12


def boston_rooms() -> tuple[np.ndarray, np.ndarray]:
    """Walkthrough 5's data: price against average rooms, the 404 training rows. x, y: (404,)."""
    (x_train, y_train), _ = tl.datasets.load_boston_housing()
    return x_train[:, ROOMS], y_train


def stuck_bias() -> tuple[np.ndarray, np.ndarray]:
    """Walkthrough 2's data: y = 3.657x + 0.33·noise on x = 0, 1, ..., 9999. x, y: (10000,)."""
    rng = np.random.default_rng(0)
    x = np.arange(10000.0)
    return x, 3.657 * x + 0.33 * rng.standard_normal(len(x))


def objective(X: np.ndarray, y: np.ndarray, l2: float):
    """(w, b) -> mse(X @ w + b, y) + l2·sum(w²), a scalar Tensor. X: (n, d), y: (n, 1), w: (d, 1), b: (1,)."""
    X, y = tl.Tensor(X), tl.Tensor(y)

    def loss(w: tl.Tensor, b: tl.Tensor) -> tl.Tensor:
        return tl.losses.mse(tl.ops.Affine.apply(X, w, b), y) + tl.losses.l2_penalty([w], l2)

    return loss


def closed_form_hessian(X: np.ndarray, l2: float) -> np.ndarray:
    """2·AᵀA/n + 2·l2·diag(1, ..., 1, 0) with A = [X 1]: the Hessian in (w, b). X: (n, d) -> (d + 1, d + 1)."""
    n, d = X.shape
    A = np.hstack([X, np.ones((n, 1))])
    return 2 * A.T @ A / n + 2 * l2 * np.diag([1.0] * d + [0.0])


def agreement(gap: float) -> str:
    """A relative gap between two answers, or "equal to 12 digits" when it is only rounding."""
    return "equal to 12 digits" if gap <= ROUNDING else f"relative gap {gap:.2g}"


def engine_hessian(loss, d: int) -> np.ndarray:
    """The Hessian of loss(w, b) from `tl.autograd.hessian`, its four blocks laid out as one (d + 1)² matrix."""
    # The loss is quadratic: its Hessian is the same at every point, so any point will do
    (Hww, Hwb), (Hbw, Hbb) = tl.autograd.hessian(loss, np.zeros((d, 1)), np.zeros(1))
    return np.block(
        [
            [Hww.data.reshape(d, d), Hwb.data.reshape(d, 1)],
            [Hbw.data.reshape(1, d), Hbb.data.reshape(1, 1)],
        ]
    )


def largest_eigenvalue(loss, d: int, max_iterations: int = 200, rtol: float = 1e-12) -> tuple[float, np.ndarray, int]:
    """λ_max of the Hessian of loss(w, b) by power iteration on `tl.autograd.hvp`: (λ_max, unit eigenvector, products).

    v ← Hv / |Hv| turns v towards the steepest direction, by the factor λ_2/λ_max per product
    in the other directions; the Rayleigh quotient vᵀHv converges to λ_max twice as fast. Stops
    when it changes by less than `rtol` (relative), or after `max_iterations` products.
    """
    v = np.random.default_rng(0).standard_normal(d + 1)
    v /= np.linalg.norm(v)
    point = (np.zeros((d, 1)), np.zeros(1))
    rayleigh, previous, products = math.nan, math.nan, 0
    while products < max_iterations and not abs(rayleigh - previous) < rtol * abs(rayleigh):
        _, (Hv_w, Hv_b) = tl.autograd.hvp(loss, point, (v[:d].reshape(d, 1), v[d:]))
        Hv = np.concatenate([Hv_w.data.ravel(), Hv_b.data.ravel()])
        previous, rayleigh = rayleigh, float(v @ Hv)
        v = Hv / np.linalg.norm(Hv)
        products += 1
    return rayleigh, v, products


def train(X, y, l2, make_optimizer, epochs: int, excess, target: float) -> tuple[list, list, int | None]:
    """Full-batch training of a float64 Linear(1, 1) from the Glorot/zero start (seed 0).

    `make_optimizer(parameters)` builds the optimizer; Newton's step is given the closure. Stops
    once the loss is within `target` of the optimum, or after `epochs`. Returns the excess loss
    `excess(w, b)` and the point (w, b) at epoch 0, 1, ..., and the epoch it got within target
    (None if it did not).
    """
    model = tl.nn.Linear(1, 1, seed=0, dtype=np.float64)
    optimizer = make_optimizer(model.parameters())
    X, y = tl.Tensor(X), tl.Tensor(y)

    def closure() -> tl.Tensor:
        return tl.losses.mse(model(X), y) + tl.losses.l2_penalty([model.weight], l2)

    points = [(model.weight.item(), model.bias.item())]
    excesses = [excess(*points[0])]
    for epoch in range(1, epochs + 1):
        if isinstance(optimizer, tl.optim.Newton):
            optimizer.step(closure)
        else:
            loss = closure()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        points.append((model.weight.item(), model.bias.item()))
        excesses.append(excess(*points[-1]))
        if excesses[-1] <= target:
            return excesses, points, epoch
    return excesses, points, None


def study(name: str, x: np.ndarray, y: np.ndarray, l2: float, adam_lr: float, epochs: int) -> dict:
    """Sections 1-3 on one data set: print them, return the numbers and the curves."""
    X, Y = x.reshape(-1, 1), y.reshape(-1, 1)
    n, d = X.shape
    loss = objective(X, Y, l2)
    print(f"===== {name}: {n} rows, l2 = {l2:g} =====")

    # ----- 1. the Hessian, from the engine and from the formula -----
    H = engine_hessian(loss, d)
    H_formula = closed_form_hessian(X, l2)
    difference = float(np.abs(H - H_formula).max())
    print("1. The Hessian of mse(X @ w + b, y) + l2·sum(w²) in (w, b)")
    print(f"   {'tl.autograd.hessian':34}closed form 2·[X 1]ᵀ[X 1]/n + 2·l2·diag(1, 0)")
    for row, formula_row in zip(H, H_formula):
        print(f"   [{row[0]:15.10g} {row[1]:15.10g}]   [{formula_row[0]:15.10g} {formula_row[1]:15.10g}]")
    print(f"   {agreement(difference / np.abs(H_formula).max())} (relative to the largest entry)")

    # ----- 2. the steepest curvature, from Hessian-vector products alone -----
    lambda_max, steepest, products = largest_eigenvalue(loss, d)
    power_lr = 2 / lambda_max
    stable_lr = tl.solvers.stable_learning_rate(X, l2=l2)
    condition = tl.solvers.hessian_condition_number(X, l2=l2)
    lambda_min = lambda_max / condition
    print(f"2. λ_max by power iteration on tl.autograd.hvp: {lambda_max:.12g} after {products} products")
    print(
        f"   largest stable learning rate 2/λ_max = {power_lr:.12g}, "
        f"tl.solvers.stable_learning_rate = {stable_lr:.12g}: {agreement(abs(power_lr / stable_lr - 1))}"
    )
    print(f"   condition number κ = λ_max/λ_min = {condition:.4g} (tl.solvers.hessian_condition_number)")
    # A large κ is a wide gap between λ_max and the rest: it makes power iteration fast, not slow

    # ----- 3. one Newton step against gradient descent and Adam -----
    (ridge_coef,), ridge_intercept = tl.solvers.ridge(x, y, l2)
    optimum = np.array([ridge_coef, ridge_intercept])
    best_loss = float(np.mean((ridge_coef * x + ridge_intercept - y) ** 2) + l2 * ridge_coef**2)

    def excess(w: float, b: float) -> float:
        # On a quadratic the loss above the optimum is exactly ½·δᵀHδ, δ = (w, b) - optimum. Taking it
        # this way, rather than as loss - best_loss, keeps its digits where it is 1e-16 of the loss.
        delta = np.array([w, b]) - optimum
        return float(0.5 * delta @ H_formula @ delta)

    target = TOLERANCE * best_loss
    runs = {
        "Newton": lambda params: tl.optim.Newton(params),
        f"gradient descent, lr 1/λ_max = {1 / lambda_max:.3g}": lambda params: tl.optim.GradientDescent(
            params, lr=1 / lambda_max
        ),
        f"Adam, lr {adam_lr:g}": lambda params: tl.optim.Adam(params, lr=adam_lr),
    }
    curves, paths, reached, seconds_per_epoch = {}, {}, {}, {}
    for label, make_optimizer in runs.items():
        start = time.perf_counter()
        curves[label], paths[label], reached[label] = train(X, Y, l2, make_optimizer, epochs, excess, target)
        seconds_per_epoch[label] = (time.perf_counter() - start) / (len(curves[label]) - 1)
    newton_label, gd_label, adam_label = runs
    newton_coef, newton_intercept = paths[newton_label][1]
    print("3. One Newton step from the Glorot/zero start, and the optimum")
    print(f"   {'':26}{'coef':>20}{'intercept':>20}")
    print(f"   {'Newton, 1 step':26}{newton_coef:20.12g}{newton_intercept:20.12g}")
    print(f"   {'tl.solvers.ridge':26}{ridge_coef:20.12g}{ridge_intercept:20.12g}")
    gaps = [abs(newton_coef / ridge_coef - 1), abs(newton_intercept / ridge_intercept - 1)]
    print(f"   {'relative gap':26}" + "".join(f"{'~0' if gap <= ROUNDING else f'{gap:.2g}':>20}" for gap in gaps))
    if abs(newton_intercept / ridge_intercept - 1) > 1e-12:
        # b = mean(y) - w·mean(x) is a small difference of large numbers, fixed by float64 only to about
        # ε·mean(y)/|b| relative in either solver (exact fractions put Newton's nearer the optimum here)
        digits = np.finfo(np.float64).eps * abs(y.mean() / ridge_intercept)
        print(
            f"   (b = mean(y) - w·mean(x) = {y.mean():.6g} - {ridge_coef * x.mean():.6g}: float64 holds it "
            f"to about {digits:.0e} relative, in either solver)"
        )
    print(f"   epochs to a loss within {TOLERANCE:g} (relative) of the optimal loss {best_loss:.6g}, at most {epochs}:")
    for label in runs:
        done = f"{reached[label]}" if reached[label] is not None else f"not within {epochs} epochs"
        print(f"     {label:40} {done:>26}   (loss - optimum = {curves[label][-1]:.2g} at the end)")

    # At lr = 1/λ_max gradient descent multiplies the error along each eigenvector of H by
    # (1 - λ/λ_max): the steepest direction is done in one step, the flattest shrinks by (1 - 1/κ)
    # per step, so the loss above the optimum there by (1 - 1/κ)² per epoch.
    eigenvalues, eigenvectors = np.linalg.eigh(H)
    flattest = eigenvectors[:, 0]
    start_point = np.array(paths[gd_label][0])
    flat_excess = 0.5 * lambda_min * float(flattest @ (start_point - optimum)) ** 2
    implied = max(0.0, math.log(flat_excess / target) / (-2 * math.log1p(-1 / condition)))
    print(
        f"   the condition number implies {math.ceil(implied):,} epochs for gradient descent at 1/λ_max "
        "(the flattest direction shrinks by 1 - 1/κ per epoch)"
    )
    if reached[gd_label] is None:
        hours = implied * seconds_per_epoch[gd_label] / 3600
        print(f"   at {seconds_per_epoch[gd_label] * 1e6:.0f} µs per epoch that is {hours:.3g} hours")
    print()
    return {
        "hessian": H.tolist(),
        "hessian_closed_form": H_formula.tolist(),
        "hessian_max_difference": difference,
        "lambda_max": lambda_max,
        "eigenvalues": eigenvalues.tolist(),
        "steepest_direction": steepest.tolist(),
        "power_iterations": products,
        "power_lr": power_lr,
        "stable_lr": stable_lr,
        "condition_number": condition,
        "newton_coef": newton_coef,
        "newton_intercept": newton_intercept,
        "ridge_coef": float(ridge_coef),
        "ridge_intercept": float(ridge_intercept),
        "optimal_loss": best_loss,
        "gd_epochs": reached[gd_label],
        "adam_epochs": reached[adam_label],
        "newton_epochs": reached[newton_label],
        "gd_epochs_implied": implied,
        "curves": curves,
        "paths": paths,
        "target": target,
        "max_epochs": epochs,
    }


def plot_losses(studies: dict, path: Path) -> None:
    """One panel per data set: loss above the optimum per epoch, log scale, the tolerance dotted."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(12, 4.5), layout="constrained")
    axes = figure.subplots(1, len(studies))
    for ax, (name, result) in zip(axes, studies.items()):
        # Newton's one step lands on the optimum up to rounding (1e-26 or even 0): draw it on a floor
        # below the tolerance, so that the log scale stays on the other curves, and say its value
        floor = result["target"] * 1e-9
        for color, (label, curve) in zip(("C3", "C0", "C1"), result["curves"].items()):
            values = np.maximum(curve, floor)
            if curve[-1] < floor:
                label = f"{label}: {curve[-1]:.2g} after {len(curve) - 1} step (drawn at the floor)"
            ax.plot(range(len(values)), values, color=color, marker="o" if len(values) < 5 else None, label=label)
        ax.axhline(result["target"], color="0.3", linestyle=":", label=f"{TOLERANCE:g} of the optimal loss")
        ax.set_yscale("log")
        ax.set_xlabel("epoch (full batch)")
        ax.set_ylabel("loss - optimal loss")
        ax.set_title(f"{name}: κ = {result['condition_number']:.3g}")
        ax.grid(True, alpha=0.3)
        ax.spines[["top", "right"]].set_visible(False)
        ax.legend(frameon=False, fontsize="small")
    figure.suptitle("One Newton step lands on the optimum; gradient descent crawls where κ is large")
    figure.savefig(path, dpi=120)


def plot_paths(result: dict, name: str, path: Path) -> None:
    """The three paths in (w, b) over the contours of the loss above the optimum."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 5.5), layout="constrained")
    ax = figure.subplots()
    H = np.array(result["hessian_closed_form"])
    optimum = np.array([result["ridge_coef"], result["ridge_intercept"]])
    every_point = np.array([point for points in result["paths"].values() for point in points])
    low, high = every_point.min(axis=0), every_point.max(axis=0)
    margin = 0.15 * (high - low)
    w_grid = np.linspace(low[0] - margin[0], high[0] + margin[0], 300)
    b_grid = np.linspace(low[1] - margin[1], high[1] + margin[1], 300)
    W, B = np.meshgrid(w_grid, b_grid)
    dW, dB = W - optimum[0], B - optimum[1]
    excess = 0.5 * (H[0, 0] * dW**2 + 2 * H[0, 1] * dW * dB + H[1, 1] * dB**2)
    # Round levels, 1 and 3 times the powers of ten, each labelled with its loss above the optimum
    decades = np.arange(math.floor(math.log10(max(excess.min(), 1e-3))), math.ceil(math.log10(excess.max())))
    levels = (10.0 ** decades[:, None] * np.array([1.0, 3.0])).ravel()
    contours = ax.contour(W, B, excess, levels=levels, colors="0.75")
    ax.clabel(contours, fmt="{:g}".format, fontsize="x-small", colors="0.4")
    # Newton, gradient descent and Adam; gradient descent's path starts along Adam's, so it is dashed
    # and drawn on top of it
    styles = ({"color": "C3"}, {"color": "C0", "linestyle": "--", "zorder": 3}, {"color": "C1"})
    for style, (label, points) in zip(styles, result["paths"].items()):
        points = np.array(points)
        ax.plot(points[:, 0], points[:, 1], marker="o" if len(points) < 5 else None, label=label, **style)
    ax.plot(*optimum, marker="*", markersize=14, color="k", linestyle="none", zorder=4, label="tl.solvers.ridge")
    ax.set_xlabel("w (price per room)")
    ax.set_ylabel("b")
    ax.set_title(f"{name}: paths over the loss's contours")
    ax.legend(frameon=False, fontsize="small")
    figure.savefig(path, dpi=120)


def main(out_dir: str | Path = ".", fast: bool = False) -> dict:
    """Both studies, printed; save the pictures; return the key numbers, per data set."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    studies = {
        "Boston rooms": study("Boston rooms", *boston_rooms(), l2=0.01, adam_lr=0.1, epochs=300 if fast else 30000),
        # Adam rescales each parameter by its own gradient's size, which undoes much of the bad
        # scaling; late on, as the gradient falls faster than Adam's slow average of its square,
        # its steps grow and overshoot the narrow valley: the spikes in the picture
        "stuck bias": study("stuck bias", *stuck_bias(), l2=1e-10, adam_lr=0.03, epochs=100 if fast else 20000),
    }
    loss_path, paths_path = out_dir / "07_loss.png", out_dir / "07_paths.png"
    plot_losses(studies, loss_path)
    plot_paths(studies["Boston rooms"], "Boston rooms", paths_path)
    print(f"wrote {loss_path} and {paths_path}")
    keys = ("boston", "stuck_bias")
    return {
        f"{key}_{name}": value
        for key, result in zip(keys, studies.values())
        for name, value in result.items()
        if name not in ("curves", "paths")
    }


if __name__ == "__main__":
    import _command_line  # examples/_command_line.py, beside this script

    _command_line.run(main, __doc__)
