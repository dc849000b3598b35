"""A scikit-learn estimator trained by this library's engine: `LinearRegressor`.

It is `Sequential([Linear(d, k)])` compiled with `mse + l2 · Σ W²` and trained by `model.fit` (by
default with Newton steps, `tl.optim.Newton`, exact on least squares),
wrapped in scikit-learn's conventions: parameters stored as given by `__init__` and checked in
`fit`, learned attributes ending in `_`, input checked by scikit-learn's `validate_data` (which
keeps a DataFrame's column names). This module imports scikit-learn (the `[sklearn]` extra);
`import tinygrad_lr` does not import this module.
"""

from __future__ import annotations

import numbers
import warnings
from typing import Any

import numpy as np

try:
    from sklearn.base import BaseEstimator, RegressorMixin
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.utils import check_random_state
    from sklearn.utils.validation import check_is_fitted, validate_data
except ImportError as error:  # validate_data is public from scikit-learn 1.6
    raise ImportError(
        f"tinygrad_lr.estimators needs scikit-learn >= 1.6 ({error}); pip install 'tinygrad_lr[sklearn]'"
    ) from error

from tinygrad_lr import checks, optim, training
from tinygrad_lr.callbacks import EarlyStopping, GradientNormStop
from tinygrad_lr.nn import Linear, Sequential
from tinygrad_lr.sources import as_source

__all__ = ["PATIENCE", "LinearRegressor"]

PATIENCE = 5
"""With `early_stopping=True`: epochs in a row without a better val_loss before training stops
(scikit-learn's `n_iter_no_change` default for SGDRegressor)."""


class LinearRegressor(RegressorMixin, BaseEstimator):
    """Linear regression trained by this library's autodiff engine and optimizers, as a scikit-learn estimator.

    Minimises `mean((X @ coef_.T + intercept_ - y)**2) + l2 * sum(coef_**2)` (the intercept is not
    penalised) with `model.fit` steps of the chosen optimizer, from zero weights (a linear model has
    no symmetry to break), so that every fit starts from the same place. At the optimum `coef_` is
    `LinearRegression`'s (`Ridge(alpha=n * l2)`'s; `n * k * l2` for k targets, since the mean runs
    over all n·k values).

    The default, `optimizer="newton"`, takes Newton steps with the engine's exact Hessian of the
    objective (`tl.optim.Newton`): on least squares the first step lands on the optimum whatever the
    scale of the columns (raw or standardised), and a second one polishes its last digits, so the
    defaults need no learning rate, no scaling and no epoch count. Its cost grows with the square of
    the parameters (one backward pass per parameter for the Hessian): meant for up to a few thousand
    features. The first-order rules ("adam", "sgd", "rmsprop") take mini-batches and a learning rate.

    Parameters
    ----------
    optimizer : "newton" (default), "adam", "sgd" (alias "gd") or "rmsprop".
    lr : learning rate; None takes the optimizer's default (1 for newton, Keras' for the others:
        0.001 for adam and rmsprop, 0.01 for sgd).
    epochs : at most this many passes over the training data (Newton steps for "newton"); fewer when
        `tol` or `early_stopping` stops training.
    batch_size : samples per step; None: all of them in one step.
    l2 : the penalty, >= 0.
    fit_intercept : learn an intercept (a bias); False: the line goes through the origin, `intercept_` is 0.
    validation_split : the share of samples held out to compute `val_loss` each epoch; as in
        Keras, the LAST ones, before any shuffling (shuffle the data first if they are ordered).
    early_stopping : stop once `val_loss` has not improved for `PATIENCE` epochs in a row, and keep
        the weights of the best epoch. Needs `validation_split > 0`; without it `fit` raises ValueError.
    tol : stop once the norm of the gradient of the training objective over all training samples
        (computed at each epoch's end) falls below `tol` times its norm at the start (zero weights);
        a ConvergenceWarning when the epochs run out first. None: run every epoch, warn of nothing.
    random_state : int seeding the order of the mini-batches (or a NumPy RandomState to draw the
        seed from); None: a different order on every fit.
    verbose : 1 prints Keras' progress line each epoch; 0 prints nothing.

    Attributes
    ----------
    coef_ : (d,) for a 1-D y; (k, d) for a 2-D y of k columns (as scikit-learn's LinearRegression).
    intercept_ : a float for a 1-D y; (k,) for a 2-D y.
    n_features_in_ : d. feature_names_in_ : (d,) column names, when X was a DataFrame with string names.
    history_ : per-epoch lists: "loss" (L2 term included), "val_loss" with a validation split,
        "grad_norm" with `tol`.
    n_iter_ : epochs run.
    """

    def __init__(
        self,
        optimizer: str = "newton",
        lr: float | None = None,
        epochs: int = 100,
        batch_size: int | None = None,
        l2: float = 0.0,
        fit_intercept: bool = True,
        validation_split: float = 0.0,
        early_stopping: bool = False,
        tol: float | None = 1e-9,
        random_state: Any = None,
        verbose: int = 0,
    ):
        self.optimizer = optimizer
        self.lr = lr
        self.epochs = epochs
        self.batch_size = batch_size
        self.l2 = l2
        self.fit_intercept = fit_intercept
        self.validation_split = validation_split
        self.early_stopping = early_stopping
        self.tol = tol
        self.random_state = random_state
        self.verbose = verbose

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> LinearRegressor:
        """Train on X: (n, d) and y: (n,) or (n, k), starting from zero weights; returns self.

        sample_weight (n,): each sample's squared error weighted (fit's Keras 3 rule); at the optimum
        `coef_` is weighted least squares', as `LinearRegression().fit(X, y, sample_weight)`."""
        _check_pandas("LinearRegressor.fit", X=X, y=y)
        # row-major, as any array a caller passes (a frame's values come column-major): the same data give the
        # same products, to the bit, whatever their memory order
        X, y = validate_data(self, X, y, dtype=np.float64, order="C", multi_output=True, y_numeric=True)
        if sample_weight is not None:
            sample_weight = checks.check_sample_weight("LinearRegressor.fit: sample_weight", sample_weight, len(X))
        optimizer, callbacks = self._training_setup()
        targets = y.reshape(len(y), -1)
        layer = Linear(X.shape[1], targets.shape[1], bias=bool(self.fit_intercept), dtype=np.float64)
        layer.set_weights([np.zeros_like(p.data) for p in layer.parameters()])
        model = Sequential([layer])
        model.compile(loss="mse", optimizer=optimizer, l2=self.l2)
        if self.tol is not None:  # relative to the gradient at the start: the same tol serves data of any scale
            rows = as_source(X, targets, np.float64, sample_weight)
            start = training.gradient_norm(model, model.compiled, rows, None)
            callbacks.append(GradientNormStop(max(self.tol * start, np.finfo(np.float64).tiny)))
        history = model.fit(
            X,
            targets,
            epochs=self.epochs,
            batch_size=len(X) if self.batch_size is None else self.batch_size,
            validation_split=self.validation_split,
            verbose=self.verbose,
            callbacks=callbacks,
            seed=self._seed(),
            sample_weight=sample_weight,
        )
        weight = layer.weight.data.copy()  # (d, k), Keras' layout; coef_ is its transpose
        bias = layer.bias.data.copy() if layer.bias is not None else np.zeros(targets.shape[1])
        self.coef_ = weight[:, 0] if y.ndim == 1 else weight.T
        self.intercept_ = float(bias[0]) if y.ndim == 1 else bias
        self.history_ = history.history
        self.n_iter_ = len(history.epoch)
        if self.tol is not None and not any(callback.stopped_epoch is not None for callback in callbacks):
            norm = self.history_["grad_norm"][-1]
            warnings.warn(
                f"LinearRegressor: after {self.n_iter_} epochs the gradient norm is {norm:.3g}, still above "
                f"tol={self.tol:g} times its norm at the start; raise epochs (or lr), or standardise the features",
                ConvergenceWarning,
                stacklevel=2,
            )
        return self

    def _seed(self) -> int | None:
        """fit's seed from `random_state`: an int as it is, None as it is, a RandomState drawn from."""
        if self.random_state is None or isinstance(self.random_state, numbers.Integral):
            return None if self.random_state is None else int(self.random_state)
        return int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))

    def predict(self, X: Any) -> np.ndarray:
        """Predictions for X: (n, d): (n,) when fitted on a 1-D y, (n, k) on a 2-D y."""
        check_is_fitted(self)
        _check_pandas("LinearRegressor.predict", X=X)
        X = validate_data(self, X, dtype=np.float64, order="C", reset=False)
        return X @ self.coef_.T + self.intercept_

    def _training_setup(self) -> tuple[optim.Optimizer, list[GradientNormStop | EarlyStopping]]:
        """The parameters checked: a fresh optimizer, and the callbacks that `tol` and `early_stopping` ask for."""
        if not isinstance(self.optimizer, str) or self.optimizer.lower() not in optim.BY_NAME:
            raise ValueError(
                f"LinearRegressor: optimizer must be one of {sorted(optim.BY_NAME)}, got {self.optimizer!r}"
            )
        optimizer_class, lr = optim.BY_NAME[self.optimizer.lower()]
        if self.lr is not None:
            lr = checks.check_number("LinearRegressor: lr", self.lr, low=0.0, low_inclusive=False)
        checks.check_count("LinearRegressor: epochs", self.epochs)
        if self.batch_size is not None:
            checks.check_count("LinearRegressor: batch_size", self.batch_size)
        checks.check_number("LinearRegressor: l2", self.l2, low=0.0)
        checks.check_fraction("LinearRegressor: validation_split", self.validation_split)
        callbacks: list[GradientNormStop | EarlyStopping] = []  # each says when it stopped training (stopped_epoch)
        if self.tol is not None:
            checks.check_number("LinearRegressor: tol", self.tol, low=0.0, low_inclusive=False)
        if self.early_stopping:
            if not self.validation_split:
                raise ValueError(
                    "LinearRegressor: early_stopping=True watches val_loss, which needs validation_split > 0 "
                    "(e.g. validation_split=0.1)"
                )
            callbacks.append(EarlyStopping("val_loss", patience=PATIENCE, restore_best_weights=True))
        return optimizer_class(lr=lr), callbacks

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True  # a 2-D y trains one output per column
        return tags


def _check_pandas(caller: str, **values: Any) -> None:
    """This package's errors for a DataFrame or Series (the column and row of a cell that is not a
    number); scikit-learn's validate_data then reads it again, keeping its column names."""
    for name, value in values.items():
        if checks.is_pandas(value):
            checks.as_real_array(f"{caller}: {name}", value)
