"""Walkthrough 4: a Keras-style fit of a noisy line, with the progress output and model.summary().

Redoes the classic Keras tutorial that fits y = x + 10·U(0, 1) (a line with uniform noise, so the
best line is about y = x + 5) on x = 0, 1, ..., 50: a one-unit model, `model.summary()`, Adam
with lr 0.1, 200 epochs with Keras' per-epoch progress lines (`verbose=1`), and a plot of the
data with the learned line. The closed-form least-squares line (`tl.solvers.ols`) is drawn
beside it as the reference.

Pictures: `04_fit.png` (data, learned line, closed-form line), `04_loss.png` (the loss per epoch
beside the closed-form optimum, and its excess over it; its caption says why epochs leave gaps).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import tinygrad_lr as tl


def main(out_dir: str | Path = ".", fast: bool = False) -> dict:
    """Show the summary, train with the progress output, save the pictures; return the key numbers."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    epochs = 20 if fast else 200

    rng = np.random.default_rng(0)
    x = np.arange(51.0)
    y = x + 10 * rng.uniform(0.0, 1.0, len(x))

    model = tl.nn.Sequential([tl.nn.Linear(1, 1, seed=0)])
    model.summary()
    model.compile(loss="mse", optimizer=tl.optim.Adam(lr=0.1))
    # batch_size 32 (Keras' default): two steps per epoch, the 51 points shuffled each epoch
    history = model.fit(x, y, epochs=epochs, verbose=1, seed=0)

    slope, bias = (float(w.reshape(-1)[0]) for w in model.get_weights())
    (coef,), intercept = tl.solvers.ols(x, y)
    optimum = float(np.mean((coef * x + intercept - y) ** 2))
    print()
    final_loss = model.evaluate(x, y)  # at the final weights, unlike the last epoch's mean over its batches
    print(f"learned:     y = {slope:.4f}x + {bias:.4f}, loss {final_loss:.4f}")
    print(f"closed form: y = {coef:.4f}x + {intercept:.4f}, loss {optimum:.4f}")
    print("expected:    y = x + 5 (the mean of 10·U(0, 1)), loss about 100/12 = 8.33 (its variance)")

    fit_path, loss_path = out_dir / "04_fit.png", out_dir / "04_loss.png"
    tl.plot.plot_fit(
        x,
        y,
        model.predict,
        reference=(coef, intercept),
        title=f"After {epochs} epochs of Adam: y = {slope:.3f}x + {bias:.3f}",
        path=fit_path,
    )
    tl.plot.plot_excess_loss(
        history,
        optimum,
        title="Adam(lr=0.1), batches of 32",
        caption=(
            "An epoch's loss is the mean over its two batches, taken while the weights moved, so near the optimum "
            f"it can dip below it (the gaps on the right); the loss at the final weights is {final_loss:.4f}."
        ),
        path=loss_path,
    )
    print(f"wrote {fit_path} and {loss_path}")
    return {
        "slope": slope,
        "bias": bias,
        "loss": history.history["loss"][-1],
        "final_loss": final_loss,
        "ols_coef": float(coef),
        "ols_intercept": float(intercept),
        "ols_loss": optimum,
    }


if __name__ == "__main__":
    import _command_line  # examples/_command_line.py, beside this script

    _command_line.run(main, __doc__)
