"""Walkthrough 6: polynomial regression is linear regression on powers of x.

Redoes the "other forms of regression" step of the first tutorial: a curve is still a linear
model once its features are x, x², x³. Noisy points from the cubic y = 0.5x³ - 3x² + x + 5 on
[-4, 6] are fitted by one `tl.nn.Linear(3, 1)` layer trained with plain gradient descent.

The catch is scale: x, x² and x³ span very different ranges, so the raw powers make a badly
conditioned loss (`tl.solvers.hessian_condition_number`) on which gradient descent crawls.
Standardising the three columns (`tl.data.Standardizer`) fixes most of it. Both runs get the same
number of epochs, each at half its largest stable learning rate (`tl.solvers.stable_learning_rate`);
the coefficients are brought back to the units of x (`tl.data.unscale_linear`) and compared with
the closed form on the same features (`tl.solvers.ols`).

Pictures: `06_fit.png` (the data, both fitted curves, the closed form and the true cubic),
`06_loss.png` (both loss curves beside the closed form's loss, and their excess over it).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import tinygrad_lr as tl

TRUE_COEF = np.array([1.0, -3.0, 0.5])  # of x, x², x³
TRUE_INTERCEPT = 5.0


def powers(x: np.ndarray) -> np.ndarray:
    """The features of a cubic: x (n,) → [x, x², x³] (n, 3)."""
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    return np.stack([x, x**2, x**3], axis=1)


def train(features: np.ndarray, y: np.ndarray, epochs: int):
    """A Linear(3, 1) model after full-batch gradient descent at half the stable learning rate."""
    lr = 0.5 * tl.solvers.stable_learning_rate(features)
    model = tl.nn.Sequential([tl.nn.Linear(3, 1, seed=0)])
    model.compile(loss="mse", optimizer=tl.optim.GradientDescent(lr=lr))
    history = model.fit(features, y, epochs=epochs, batch_size=len(y), verbose=0)
    return model, history, lr


def main(out_dir: str | Path = ".", fast: bool = False) -> dict:
    """Fit the cubic on raw and on standardised powers, print the comparison, save the pictures."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    epochs = 400 if fast else 1000

    rng = np.random.default_rng(0)
    x = np.linspace(-4.0, 6.0, 100)
    y = powers(x) @ TRUE_COEF + TRUE_INTERCEPT + 3.0 * rng.standard_normal(len(x))

    P = powers(x)  # raw powers: x in [-4, 6], x³ in [-64, 216]
    scaler = tl.data.Standardizer()
    Z = scaler.fit_transform(P)  # each column with mean 0 and standard deviation 1
    print(f"{'features':14}{'condition number':>18}{'stable lr':>12}")
    for name, features in (("raw powers", P), ("standardised", Z)):
        condition = tl.solvers.hessian_condition_number(features)
        print(f"{name:14}{condition:18.3g}{tl.solvers.stable_learning_rate(features):12.3g}")
    # Gradient descent shrinks the error along the flattest direction by about (1 - 2/κ) per step at
    # the best learning rate, so it needs on the order of κ steps for each factor e: tens of
    # thousands on the raw powers, tens once standardised. (x and its powers stay correlated after
    # standardising, so κ does not reach 1.) Adam, which rescales each weight on its own, would
    # hide much of the raw powers' problem; plain gradient descent shows the geometry as it is.

    raw_model, raw_history, raw_lr = train(P, y, epochs)
    model, history, lr = train(Z, y, epochs)
    raw_coef, raw_intercept = (w.reshape(-1) for w in raw_model.get_weights())
    weight, bias = model.get_weights()
    coef, intercept = tl.data.unscale_linear(weight[:, 0], bias[0], scaler)  # in the units of x
    ols_coef, ols_intercept = tl.solvers.ols(P, y)
    ols_loss = float(np.mean((P @ ols_coef + ols_intercept - y) ** 2))

    print(f"\ngradient descent, {epochs} epochs at half the stable lr; y = c1·x + c2·x² + c3·x³ + b")
    print(f"{'':28}{'c1':>9}{'c2':>9}{'c3':>9}{'b':>9}{'loss':>9}")
    rows = (
        (f"raw powers (lr {raw_lr:.2g})", raw_coef, raw_intercept[0], raw_history.history["loss"][-1]),
        (f"standardised (lr {lr:.2g})", coef, intercept, history.history["loss"][-1]),
        ("closed form (ols)", ols_coef, ols_intercept, ols_loss),
        ("true cubic", TRUE_COEF, TRUE_INTERCEPT, None),
    )
    for name, c, b, loss in rows:
        loss_text = f"{loss:9.4f}" if loss is not None else ""
        print(f"{name:28}{c[0]:9.4f}{c[1]:9.4f}{c[2]:9.4f}{b:9.4f}{loss_text}")

    # The fitted curve: the model sees standardised powers of the grid that plot_fit hands it
    figure = tl.plot.plot_fit(
        x,
        y,
        lambda grid: model.predict(scaler.transform(powers(grid))),
        title=f"A cubic as a linear model on x, x², x³ ({epochs} epochs)",
    )
    ax = figure.axes[0]
    grid = np.linspace(x.min(), x.max(), 200)
    ax.lines[0].set_label("fit on standardised powers")
    curves = (
        ("fit on raw powers", raw_model.predict(powers(grid))[:, 0], {"color": "C1", "linestyle": "--"}),
        ("closed form (ols)", powers(grid) @ ols_coef + ols_intercept, {"color": "0.15", "linestyle": ":"}),
        ("true cubic", powers(grid) @ TRUE_COEF + TRUE_INTERCEPT, {"color": "C2", "linestyle": "-."}),
    )
    for label, values, style in curves:
        ax.plot(grid, values, label=label, linewidth=1.8, **style)
    ax.legend(frameon=False)
    fit_path, loss_path = out_dir / "06_fit.png", out_dir / "06_loss.png"
    figure.savefig(fit_path, dpi=120)

    # Both runs beside the closed form's loss on the same features (its level is the same for raw and
    # standardised powers: the same least-squares problem), and each one's excess over it
    losses = {"standardised powers": history.history["loss"], "raw powers": raw_history.history["loss"]}
    tl.plot.plot_excess_loss(
        losses,
        dict.fromkeys(losses, ols_loss),
        title=f"Gradient descent, {epochs} epochs: on raw powers it crawls",
        path=loss_path,
    )
    print(f"wrote {fit_path} and {loss_path}")
    return {
        "coef": np.asarray(coef).tolist(),
        "intercept": float(intercept),
        "raw_coef": raw_coef.tolist(),
        "raw_intercept": float(raw_intercept[0]),
        "ols_coef": ols_coef.tolist(),
        "ols_intercept": float(ols_intercept),
        "ols_loss": ols_loss,
        "condition_raw": tl.solvers.hessian_condition_number(P),
        "condition_standardised": tl.solvers.hessian_condition_number(Z),
    }


if __name__ == "__main__":
    import _command_line  # examples/_command_line.py, beside this script

    _command_line.run(main, __doc__)
