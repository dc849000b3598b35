"""Walkthrough 1: fit a line by plain gradient descent, with two scalar variables A and B.

Redoes the classic TensorFlow 1 tutorial "linear regression with gradient descent": data from
y = 3.5x + 2 plus Gaussian noise, a model y = A·x + B with A and B starting at 1.0, the mean
squared error as the loss, and 400 epochs of plain (full-batch) gradient descent, printing A, B
and the loss every 40 epochs. Here the variables are `tl.Tensor`s and the gradients come from
`loss.backward()` instead of TensorFlow's graph.

It also prints the closed-form least-squares line of the same data (`tl.solvers.ols`): that is
the point gradient descent is walking towards, so the reader can see how close 400 epochs get.

The original reported A ≈ 3.63, B ≈ 1.93 and a loss of 0.31. Could another noise draw give that?
The same 400 epochs on 500 noise seeds at once (A and B of shape (500, 1), one loss per draw,
their sum differentiated) answer no: A spreads over 3.51 ± 0.03 and never reaches 3.63, and
the loss never comes near 0.31, which noise of standard deviation 1 cannot give. The tutorial's
data were not made as its text says.

Pictures: `01_line_fit.png` (data, fitted line, closed-form line), `01_loss.png` (the loss and its
excess over the closed-form optimum per epoch).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import tinygrad_lr as tl

EPOCHS = 400
PRINT_EVERY = 40
SEEDS = 500  # noise draws for the spread of A
TUTORIAL = {"A": 3.63, "B": 1.93, "loss": 0.31}  # what the original printed at the end
LR = 0.01  # below the stability bound 2/λ_max ≈ 0.029 of this data (tl.solvers.stable_learning_rate)


def spread_over_noise(epochs: int, seeds: int) -> dict[str, np.ndarray]:
    """The same gradient descent on `seeds` noise draws at once: final A, B and loss per draw, each (seeds,)."""
    x, _ = tl.datasets.make_line(n=100, slope=3.5, intercept=2.0, noise=1.0, seed=0)
    draws = np.stack([tl.datasets.make_line(n=100, noise=1.0, seed=seed)[1] for seed in range(seeds)])
    X, Y = tl.Tensor(x.astype(np.float32)), tl.Tensor(draws.astype(np.float32))  # (100,), (seeds, 100)
    A = tl.Tensor(np.ones((seeds, 1), dtype=np.float32), requires_grad=True)
    B = tl.Tensor(np.ones((seeds, 1), dtype=np.float32), requires_grad=True)
    optimizer = tl.optim.GradientDescent([A, B], lr=LR)
    for _ in range(epochs):
        optimizer.zero_grad()
        # one MSE per draw; their sum's gradient in A[i], B[i] is draw i's own, as if run alone
        ((A * X + B - Y) ** 2).mean(axis=1).sum().backward()
        optimizer.step()
    a, b = A.data[:, 0].astype(np.float64), B.data[:, 0].astype(np.float64)
    return {"A": a, "B": b, "loss": np.mean((a[:, None] * x + b[:, None] - draws) ** 2, axis=1)}


def main(out_dir: str | Path = ".", fast: bool = False) -> dict:
    """Train, print the progress and the comparison, save the pictures; return the key numbers."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    epochs = 100 if fast else EPOCHS

    # 100 points on y = 3.5x + 2 for x in [0, 10], noise with standard deviation 1
    x, y = tl.datasets.make_line(n=100, slope=3.5, intercept=2.0, noise=1.0, seed=0)
    X = tl.Tensor(x.astype(np.float32))  # the data need no gradient
    Y = tl.Tensor(y.astype(np.float32))

    # The two variables of the model y = A·x + B, both starting at 1.0
    A = tl.Tensor(1.0, requires_grad=True)
    B = tl.Tensor(1.0, requires_grad=True)
    optimizer = tl.optim.GradientDescent([A, B], lr=LR)

    losses = []
    for epoch in range(1, epochs + 1):
        optimizer.zero_grad()
        loss = tl.losses.mse(A * X + B, Y)
        loss.backward()  # fills A.grad and B.grad
        optimizer.step()  # A -= lr·A.grad, B -= lr·B.grad
        losses.append(loss.item())  # the loss before this epoch's step, as TF printed it
        if epoch % PRINT_EVERY == 0:
            print(f"Epoch {epoch}: A = {A.item():.4f}, B = {B.item():.4f}, loss = {loss.item():.4f}")

    # The exact minimiser of the same loss on the same data
    (coef,), intercept = tl.solvers.ols(x, y)
    optimum_loss = float(np.mean((coef * x + intercept - y) ** 2))
    final_loss = float(np.mean((A.item() * x + B.item() - y) ** 2))
    print()
    print(f"{'':25}{'A':>8}{'B':>8}{'loss':>9}")
    print(f"{'gradient descent':25}{A.item():8.4f}{B.item():8.4f}{final_loss:9.4f}")
    print(f"{'closed form (ols)':25}{coef:8.4f}{intercept:8.4f}{optimum_loss:9.4f}")
    print(f"{'true line':25}{3.5:8.4f}{2.0:8.4f}")
    print(f"{'the tutorial':25}{TUTORIAL['A']:8.2f}{TUTORIAL['B']:8.2f}{TUTORIAL['loss']:9.2f}")
    # Same pattern as the tutorial: A overshoots early and B is still short of its optimum, because
    # moving B while A compensates changes the loss very little (the flat direction of this loss).
    print(f"after {epochs} epochs B has closed {(B.item() - 1.0) / (intercept - 1.0):.0%} of its way from 1.0")

    seeds = 50 if fast else SEEDS
    spread = spread_over_noise(epochs, seeds)
    print(f"\nthe same {epochs} epochs on {seeds} noise draws (seeds 0..{seeds - 1}):")
    for name in ("A", "B", "loss"):
        values = spread[name]
        print(
            f"  {name:5}{values.mean():7.2f} ± {values.std():.2f}   (min {values.min():.2f}, max {values.max():.2f})"
            f"   the tutorial: {TUTORIAL[name]}"
        )
    as_high = int(np.sum(spread["A"] >= TUTORIAL["A"]))
    as_low = int(np.sum(spread["loss"] <= TUTORIAL["loss"]))
    print(f"  draws with A >= {TUTORIAL['A']}: {as_high} of {seeds}; with a loss <= {TUTORIAL['loss']}: {as_low}")

    fit_path, loss_path = out_dir / "01_line_fit.png", out_dir / "01_loss.png"
    tl.plot.plot_fit(
        x,
        y,
        coef=A.item(),
        intercept=B.item(),
        reference=(coef, intercept),
        title=f"After {epochs} epochs: A = {A.item():.3f}, B = {B.item():.3f}",
        path=fit_path,
    )
    # The excess on a log axis: a steep drop while A finds the slope, then the slow straight-line
    # crawl of B (the flat direction of this loss) that 400 epochs do not finish
    tl.plot.plot_excess_loss(losses, optimum_loss, title="Gradient descent on A and B", path=loss_path)
    print(f"\nwrote {fit_path} and {loss_path}")
    return {
        "A": A.item(),
        "B": B.item(),
        "loss": final_loss,
        "ols_coef": float(coef),
        "ols_intercept": float(intercept),
        "ols_loss": optimum_loss,
        "spread": {name: values.tolist() for name, values in spread.items()},
    }


if __name__ == "__main__":
    import _command_line  # examples/_command_line.py, beside this script

    _command_line.run(main, __doc__)
