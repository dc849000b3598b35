"""Walkthrough 5: house prices against the number of rooms (Boston housing), Keras style.

Redoes the classic Keras tutorial on the Boston housing data: the median price of a district's
houses (in $1000s) against the average number of rooms per dwelling (column 5, "rm"), one
Linear(1, 1) unit, RMSprop(lr=0.005), batches of 16, 101 epochs, with the last 30% of the
training rows held out for validation (`validation_split=0.3`). It prints Keras' progress line
for every epoch, as the tutorial did (`verbose=1`; the tutorial reported loss ≈ 54.6,
val_loss ≈ 75.0 after 101 epochs), the predicted price for 3 to 7 rooms, and draws the loss
curves and the line over the training, validation and test rows.

It adds the closed form (`tl.solvers.ols` on the same 282 training rows), which shows that
101 epochs of RMSprop at this learning rate are far from the optimum, and by how much, and R² on
the 102 test rows for both.

Pictures: `05_loss.png` (loss and val_loss per epoch beside their closed-form levels, and the
loss's excess over the optimum), `05_fit.png` (the 282 training, 122 validation and 102 test rows,
the learned line, the closed-form line).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import tinygrad_lr as tl

ROOMS = tl.datasets.BOSTON_FEATURES.index("rm")  # column 5
LR = 0.005


def main(out_dir: str | Path = ".", fast: bool = False) -> dict:
    """Train, print the losses, predictions and the comparison, save the pictures; return the key numbers."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    epochs = 21 if fast else 101

    (x_train, y_train), (x_test, y_test) = tl.datasets.load_boston_housing()  # 404 and 102 rows, as Keras
    x_train, x_test = x_train[:, ROOMS], x_test[:, ROOMS]

    model = tl.nn.Sequential([tl.nn.Linear(1, 1, seed=0)])
    model.compile(loss="mse", optimizer=tl.optim.RMSprop(lr=LR))
    # validation_split=0.3: the first 282 rows train, the last 122 validate (split before shuffling)
    history = model.fit(x_train, y_train, epochs=epochs, batch_size=16, validation_split=0.3, verbose=1, seed=0)
    loss, val_loss = history.history["loss"], history.history["val_loss"]

    # The exact optimum of the same loss on the same 282 training rows
    # (tl.data.validation_split is the rule fit used: the first floor(404 · 0.7) = 282 rows)
    (x_fit, y_fit), (x_val, y_val) = tl.data.validation_split(x_train, y_train, 0.3)
    (coef,), intercept = tl.solvers.ols(x_fit, y_fit)
    best_loss = float(np.mean((coef * x_fit + intercept - y_fit) ** 2))
    best_val_loss = float(np.mean((coef * x_val + intercept - y_val) ** 2))
    slope, bias = (float(w.reshape(-1)[0]) for w in model.get_weights())
    # An epoch's `loss` is the mean over its batches, taken while the weights moved (as in Keras);
    # evaluate the final weights on the same rows to compare with the optimum
    final_loss = model.evaluate(x_fit, y_fit)

    print()
    print(f"{'':28}{'slope':>8}{'intercept':>11}{'loss':>9}{'val_loss':>10}")
    print(f"{f'RMSprop, {epochs} epochs':28}{slope:8.3f}{bias:11.3f}{loss[-1]:9.3f}{val_loss[-1]:10.3f}")
    print(f"{'closed form (ols, 282 rows)':28}{coef:8.3f}{intercept:11.3f}{best_loss:9.3f}{best_val_loss:10.3f}")
    print(f"{'the tutorial':28}{'':19}{54.6:9.1f}{75.0:10.1f}")
    print(
        f"at its final weights the training loss is {final_loss:.3f}: "
        f"{final_loss / best_loss - 1:.0%} above the optimum, far from converged"
    )
    # RMSprop divides each gradient by its running RMS, so a weight moves by about lr per step
    # while its gradient keeps its sign, however large the gradient. The intercept has to go
    # from 0 to about -30: that alone takes thousands of steps at lr 0.005.
    steps_per_epoch = -(-len(x_fit) // 16)  # ceil(282 / 16) = 18
    steps = epochs * steps_per_epoch
    print(f"RMSprop moves a weight by about lr per step: {steps} steps × {LR} = {steps * LR:.1f} in all,")
    print(
        f"but the intercept must travel {abs(intercept):.1f} from 0: "
        f"{abs(intercept) / LR / steps_per_epoch:.0f} epochs even at full speed"
    )

    # 3 rooms is fewer than in any district of the data: there the closed-form line, steeper and
    # truer to the data, extrapolates to a negative price
    rooms = np.array([3.0, 4.0, 5.0, 6.0, 7.0])
    predicted = model.predict(rooms)[:, 0]
    print("\nrooms  predicted price ($1000s)  closed form")
    for r, p in zip(rooms, predicted):
        print(f"{r:5.0f}  {p:24.2f}  {coef * r + intercept:11.2f}")

    r2_model = tl.losses.r2_score(model.predict(x_test), y_test)
    r2_best = tl.losses.r2_score(coef * x_test + intercept, y_test)
    print(f"\nR² on the {len(x_test)} test rows: {r2_model:.3f} (RMSprop), {r2_best:.3f} (closed form)")

    # The loss curves beside the closed form's levels (where converged training would end), and the
    # training loss's excess over its optimum: still falling when the 101 epochs run out
    loss_path, fit_path = out_dir / "05_loss.png", out_dir / "05_fit.png"
    above = f"{final_loss / best_loss - 1:.0%}"
    tl.plot.plot_excess_loss(
        history,
        {"loss": best_loss, "val_loss": best_val_loss},
        title=f"RMSprop(lr={LR}), {epochs} epochs: not converged, the final weights' loss is {above} above the optimum",
        path=loss_path,
    )
    sign = "-" if bias < 0 else "+"
    tl.plot.plot_fit(
        x_fit,
        y_fit,
        model.predict,
        x_val=x_val,
        y_val=y_val,
        x_test=x_test,
        y_test=y_test,
        reference=(coef, intercept),
        title=f"Price against rooms after {epochs} epochs: y = {slope:.2f}x {sign} {abs(bias):.2f}",
        xlabel=tl.datasets.BOSTON_LABELS["rm"],
        ylabel=tl.datasets.BOSTON_LABELS["medv"],
        path=fit_path,
    )
    print(f"wrote {loss_path} and {fit_path}")
    return {
        "loss": loss[-1],
        "val_loss": val_loss[-1],
        "final_loss": final_loss,
        "ols_loss": best_loss,
        "ols_val_loss": best_val_loss,
        "slope": slope,
        "bias": bias,
        "predicted": predicted.tolist(),
        "r2_test": r2_model,
        "ols_r2_test": r2_best,
    }


if __name__ == "__main__":
    import _command_line  # examples/_command_line.py, beside this script

    _command_line.run(main, __doc__)
