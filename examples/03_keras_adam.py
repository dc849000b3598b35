"""Walkthrough 3: the Keras "hello world" of regression, y = 2x + 30, learned by one unit with Adam.

Redoes the classic Keras tutorial: six points x = [-10, 0, 2, 6, 12, 15] on the line y = 2x + 30,
a model of one Dense(1) unit (here `tl.nn.Sequential([tl.nn.Linear(1, 1)])`), compiled with the
mean squared error and Adam(lr=0.1), trained for 500 epochs in silence, then asked for
`predict([20.0])` (the tutorial printed 70.05) and for the layer's weights.

It adds the closed form (`tl.solvers.ols`: exactly 2 and 30 on noise-free data) and shows why
predict(20) is already right while the weights are not yet: the last error left is along the flat
direction of the loss, which tilts the line about a point near x = 20.

Pictures: `03_loss.png` (the loss curve), `03_fit.png` (the six points, the line and the closed form
out to x = 20, where the two meet).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import tinygrad_lr as tl


def main(out_dir: str | Path = ".", fast: bool = False) -> dict:
    """Train, print the prediction and the weights, save the pictures; return the key numbers."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    epochs = 500  # already a fraction of a second: --fast changes nothing here

    x = np.array([-10.0, 0.0, 2.0, 6.0, 12.0, 15.0])
    y = 2 * x + 30

    model = tl.nn.Sequential([tl.nn.Linear(1, 1, seed=0)])
    model.compile(loss="mse", optimizer=tl.optim.Adam(lr=0.1))
    history = model.fit(x, y, epochs=epochs, verbose=0)  # one batch of all six points per epoch

    prediction = model.predict([20.0])
    weights = model.layers[0].get_weights()  # [kernel (1, 1), bias (1,)], as Keras returns them
    print(f"model.predict([20.0]) = {prediction}")
    print(f"weights: {weights}")
    print(f"loss after {epochs} epochs: {history.history['loss'][-1]:.4f}")

    (coef,), intercept = tl.solvers.ols(x, y)
    print(f"closed form (ols): y = {coef:.4f}x + {intercept:.4f}, which predicts {coef * 20 + intercept:.4f} at x = 20")

    # Adam has found the steep direction of the loss but not yet the flat one. The loss is a bowl
    # in (slope, bias) with Hessian H below; moving by t·v along its flat eigenvector v = (v0, v1)
    # changes the line by t·(v0·x + v1), which is zero at x = -v1/v0: every line left unfinished
    # along v still passes through the true line there.
    H = 2 * np.array([[np.mean(x**2), np.mean(x)], [np.mean(x), 1.0]])
    _, eigenvectors = np.linalg.eigh(H)  # eigenvalues in ascending order: column 0 is the flat one
    flat = eigenvectors[:, 0]
    pivot = -flat[1] / flat[0]
    slope, bias = float(weights[0][0, 0]), float(weights[1][0])
    crossing = (intercept - bias) / (slope - coef)
    print(f"the learned line crosses the true one at x = {crossing:.1f}; the flat direction pivots at x = {pivot:.1f}")

    loss_path, fit_path = out_dir / "03_loss.png", out_dir / "03_fit.png"
    tl.plot.plot_loss(history, title="Adam(lr=0.1) on y = 2x + 30", path=loss_path)
    figure = tl.plot.plot_fit(
        x,
        y,
        model.predict,
        reference=(coef, intercept),
        xlim=(-12.0, 22.0),  # out to x = 20, where the question is asked
        title=f"After {epochs} epochs: y = {slope:.3f}x + {bias:.3f}; predict(20) = {prediction[0, 0]:.2f}",
    )
    ax = figure.axes[0]
    ax.axvline(pivot, color="0.5", linestyle=":", label=f"pivot of the flat direction, x = {pivot:.1f}")
    ax.scatter([20.0], prediction[0], color="C3", marker="*", s=150, zorder=3, label="predict([20.0])")
    ax.legend(frameon=False)
    figure.savefig(fit_path, dpi=120)
    print(f"wrote {loss_path} and {fit_path}")
    return {
        "prediction": float(prediction[0, 0]),
        "slope": slope,
        "bias": bias,
        "ols_coef": float(coef),
        "ols_intercept": float(intercept),
        "loss": history.history["loss"][-1],
    }


if __name__ == "__main__":
    import _command_line  # examples/_command_line.py, beside this script

    _command_line.run(main, __doc__)
