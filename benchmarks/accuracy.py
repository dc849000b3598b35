"""Correct digits of the closed form, and its time, beside numpy, statsmodels and scikit-learn (issue 26).

Each family of tests/strategies.py (polynomials up to degree 10 on intervals away from 0, NIST's Filip
drawn again, nearly collinear columns, columns of scales 1e-8 to 1e8, columns far from the origin) is drawn
`--draws` times, a third each with an intercept, without one, and weighted; every solver's answer is scored
against the exact answer of the float64 data (rational arithmetic, tests/test_accuracy.py) in correct
digits, -log10 of the relative error, the worst over the parameters (15.95 at most). Then NIST's Filip
problem itself, tl.stats' figures beside statsmodels', its robust standard errors (HC0-HC3, on the draws cut to
60 rows and 8 columns, where their exact values are quick: tests/test_accuracy.py's `small`) beside
statsmodels', and the time of one solve of 100,000 × 10 beside numpy's lstsq. The last lines say PASS or FAIL
for each of the issue's targets.

    python benchmarks/accuracy.py               # 30 draws a family, about 15 s on 2 cores
    python benchmarks/accuracy.py --draws 5     # a quick look
    python benchmarks/accuracy.py --threads 1   # OpenBLAS on one thread: steadier times on a busy machine
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
import warnings
from fractions import Fraction
from pathlib import Path

if "--threads" in sys.argv:  # (it must reach OpenBLAS before NumPy loads it)
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = sys.argv[sys.argv.index("--threads") + 1]

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import tinygrad_lr as tl
from tests.strategies import ACCURACY_FAMILIES, accuracy_problem
from tests.test_accuracy import (
    ENOUGH,
    ROBUST,
    SLACK,
    correct_digits,
    correct_digits_of_roots,
    exact_covariances,
    exact_figures,
    exact_least_squares,
    exact_statistics,
    figure_digits,
    figures_of,
    filip,
    ols_answer,
    reference_answers,
    small,
)

SOLVERS = ["tl.solvers.ols", "numpy lstsq", "statsmodels pinv", "statsmodels qr", "scikit-learn"]
VARIANTS = [(True, False), (False, False), (True, True)]  # (fit_intercept, weighted), in turn


def _draws(family: str, count: int):
    """`count` problems of a family, the same ones every run: (X, y, w, fit_intercept)."""
    rng = np.random.default_rng(26)
    for i in range(count):
        fit_intercept, weighted = VARIANTS[i % len(VARIANTS)]
        X, y, w = accuracy_problem(rng, family, fit_intercept, weighted)
        yield X, y, w, fit_intercept


def _digits(value: float) -> str:
    """Digits to one decimal, rounded down: 15.95 (all of them) shows as 15.9, never as 16.0."""
    return f"{math.floor(value * 10) / 10:4.1f}"


def _cell(values: list[float]) -> str:
    return f"{_digits(min(values))} / {_digits(float(np.median(values)))}"


def solver_table(draws: int) -> tuple[list[str], bool, bool]:
    """The table of digits (min / median over the draws) per family and solver; whether ols had at least
    the best reference's digits on every draw (to within SLACK, up to ENOUGH), and at least 7 digits on
    every degree-10 design of condition up to 1e15."""
    lines = [
        f"| family ({draws} draws) | " + " | ".join(SOLVERS) + " |",
        "|---" * (len(SOLVERS) + 1) + "|",
    ]
    as_good, seven = True, True
    for family in ACCURACY_FAMILIES:
        digits: dict[str, list[float]] = {name: [] for name in SOLVERS}
        for X, y, w, fit_intercept in _draws(family, draws):
            exact = exact_least_squares(X, y, fit_intercept, w)
            ours = correct_digits(ols_answer(X, y, w, fit_intercept), exact)
            digits["tl.solvers.ols"].append(ours)
            theirs = [correct_digits(answer, exact) for answer in reference_answers(X, y, w, fit_intercept).values()]
            for name, value in zip(SOLVERS[1:], theirs):
                digits[name].append(value)
            as_good &= ours >= min(max(theirs), ENOUGH) - SLACK
            design = np.column_stack([np.ones(len(X)), X]) if fit_intercept else X
            if X.shape[1] == 10 and np.linalg.cond(design) <= 1e15:
                seven &= ours >= 7
        lines.append(f"| {family} | " + " | ".join(_cell(digits[name]) for name in SOLVERS) + " |")
    return lines, as_good, seven


def filip_line() -> str:
    """NIST's Filip problem: digits against the exact answer of its float64 data, and against the certified values."""
    X, y, certified = filip()
    exact = exact_least_squares(X, y)
    answers = {"tl.solvers.ols": ols_answer(X, y, None, True), **reference_answers(X, y, None, True)}
    cells = [
        f"{_digits(correct_digits(answers[name], exact))} ({_digits(correct_digits(answers[name], certified))})"
        for name in SOLVERS
    ]
    limit = correct_digits([float(value) for value in exact], certified)
    return (
        "| NIST Filip | " + " | ".join(cells) + " |\n\n"
        f"(Filip: digits against the exact answer of the float64 data, and in parentheses against NIST's certified "
        f"values; the exact answer itself has {limit:.1f} digits of those, the rest being the rounding of the "
        "decimal data to float64.)"
    )


def stats_table(draws: int) -> tuple[list[str], bool]:
    """Digits of tl.stats' standard errors, SSR and R² beside statsmodels' (min / median); whether tl.stats had
    at least statsmodels' digits (pinv or qr, the better) on every draw, to within SLACK, up to ENOUGH."""
    import statsmodels.api as sm

    figures = ["bse", "ssr", "rsquared"]
    names = ["tl.stats", "statsmodels pinv", "statsmodels qr"]
    lines = [
        f"| family ({draws} draws) | " + " | ".join(f"{figure}: {name}" for figure in figures for name in names) + " |",
        "|---" * (len(figures) * len(names) + 1) + "|",
    ]
    as_good = True
    for family in ACCURACY_FAMILIES:
        digits: dict[tuple[str, str], list[float]] = {(f, n): [] for f in figures for n in names}
        for X, y, w, fit_intercept in _draws(family, draws):
            _, ssr, variances, rsquared = exact_statistics(X, y, fit_intercept, w)
            exact = {"bse": variances, "ssr": [ssr], "rsquared": [rsquared]}
            design = np.column_stack([np.ones(len(X)), X]) if fit_intercept else X
            fits = {"tl.stats": tl.stats.ols(X, y, fit_intercept=fit_intercept, sample_weight=w)}
            for method in ("pinv", "qr"):
                model = sm.OLS(y, design) if w is None else sm.WLS(y, design, weights=w)
                with warnings.catch_warnings(), np.errstate(all="ignore"):
                    warnings.simplefilter("ignore")
                    try:
                        fits[f"statsmodels {method}"] = model.fit(method=method)
                    except np.linalg.LinAlgError:
                        fits[f"statsmodels {method}"] = None
            for figure in figures:
                score = correct_digits_of_roots if figure == "bse" else correct_digits
                for name, fit in fits.items():
                    with warnings.catch_warnings(), np.errstate(all="ignore"):
                        warnings.simplefilter("ignore")
                        value = 0.0 if fit is None else score(np.atleast_1d(getattr(fit, figure)), exact[figure])
                    digits[figure, name].append(value)
                best = max(digits[figure, "statsmodels pinv"][-1], digits[figure, "statsmodels qr"][-1])
                as_good &= digits[figure, "tl.stats"][-1] >= min(best, ENOUGH) - SLACK
        lines.append(f"| {family} | " + " | ".join(_cell(digits[f, n]) for f in figures for n in names) + " |")
    return lines, as_good


def robust_table(draws: int) -> tuple[list[str], bool]:
    """Digits of the robust standard errors (min / median over the draws, cut by `small`), a row per family and
    covariance type: tl.stats.ols, tl.stats.summarize of a layer holding ols's answer (against the exact figures
    of those weights, the exact answer rounded), statsmodels (pinv and qr); whether tl.stats.ols had at least
    statsmodels' digits (the better of the two) on every draw, to within SLACK, up to ENOUGH."""
    from scipy import stats as distributions

    names = ["tl.stats.ols", "tl.stats.summarize", "statsmodels pinv", "statsmodels qr"]
    lines = [f"| family ({draws} draws) | covariance | " + " | ".join(names) + " |", "|---" * (len(names) + 2) + "|"]
    quantile = distributions.norm.ppf(0.975)
    as_good = True
    for family in ACCURACY_FAMILIES:
        digits: dict[tuple[str, str], list[float]] = {(c, n): [] for c in ROBUST for n in names}
        for X, y, w, fit_intercept in _draws(family, draws):
            X, y, w = small(X, y, w)
            theta, covariances = exact_covariances(X, y, fit_intercept, w)
            params = tl.stats.ols(X, y, fit_intercept=fit_intercept, sample_weight=w).params
            _, at_weights = exact_covariances(X, y, fit_intercept, w, params=params)
            layer = tl.nn.Linear(X.shape[1], 1, bias=fit_intercept, dtype=np.float64)
            layer.set_weights([params[fit_intercept:].reshape(-1, 1)] + ([params[:1]] if fit_intercept else []))
            design = np.column_stack([np.ones(len(X)), X]) if fit_intercept else X
            for cov_type in ROBUST:
                exact = exact_figures(theta, covariances[cov_type], quantile)
                ours = tl.stats.ols(X, y, fit_intercept=fit_intercept, sample_weight=w, cov_type=cov_type)
                digits[cov_type, names[0]].append(figure_digits(figures_of(ours), exact)["bse"])
                summarized = tl.stats.summarize(layer, X, y, sample_weight=w, cov_type=cov_type)
                exact_there = exact_figures([Fraction(float(v)) for v in params], at_weights[cov_type], quantile)
                digits[cov_type, names[1]].append(figure_digits(figures_of(summarized), exact_there)["bse"])
                for method in ("pinv", "qr"):
                    model = _statsmodels_model(y, design, w)
                    with warnings.catch_warnings(), np.errstate(all="ignore"):
                        warnings.simplefilter("ignore")
                        try:
                            value = figure_digits(figures_of(model.fit(method=method, cov_type=cov_type)), exact)["bse"]
                        except np.linalg.LinAlgError:
                            value = 0.0
                    digits[cov_type, f"statsmodels {method}"].append(value)
                best = max(digits[cov_type, "statsmodels pinv"][-1], digits[cov_type, "statsmodels qr"][-1])
                as_good &= digits[cov_type, names[0]][-1] >= min(best, ENOUGH) - SLACK
        for cov_type in ROBUST:
            cells = " | ".join(_cell(digits[cov_type, name]) for name in names)
            lines.append(f"| {family} | {cov_type} | {cells} |")
    return lines, as_good


def _statsmodels_model(y: np.ndarray, design: np.ndarray, w: np.ndarray | None):
    """statsmodels' OLS, or WLS with weights."""
    import statsmodels.api as sm

    return sm.OLS(y, design) if w is None else sm.WLS(y, design, weights=w)


def _best_time(solve, repeats: int) -> float:
    """The shortest of `repeats` solves, in seconds: the one the machine's other work disturbed least."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        solve()
        times.append(time.perf_counter() - start)
    return min(times)


def timing(repeats: int) -> tuple[list[str], float]:
    """Seconds per solve of 100,000 × 10 (with an intercept), ols beside lstsq: the best of `repeats` solves in each
    of three turns (so that the machine's other work weighs on all of them alike); the ratio of ols to lstsq."""
    rng = np.random.default_rng(0)
    n, d = 100_000, 10
    X = rng.normal(size=(n, d)) * 10.0 ** rng.uniform(-1, 1, d) + rng.uniform(-5, 5, d)
    y = X @ rng.normal(size=d) + 3.0 + rng.normal(size=n)
    A = np.column_stack([np.ones(n), X])
    x = np.sort(rng.uniform(-9, -3, n))
    P = x[:, None] ** np.arange(1, 11)  # degree 10, as Filip: the QR and more refinement steps
    q = np.cos(x) + 1e-3 * rng.normal(size=n)
    runs = {
        "ols": lambda: tl.solvers.ols(X, y),
        "lstsq": lambda: np.linalg.lstsq(np.column_stack([np.ones(n), X]), y, rcond=None),
        "lstsq, [1 X] built beforehand": lambda: np.linalg.lstsq(A, y, rcond=None),
        "ols, degree-10 polynomial": lambda: tl.solvers.ols(P, q),
        "lstsq, degree-10 polynomial": lambda: np.linalg.lstsq(np.column_stack([np.ones(n), P]), q, rcond=None),
    }
    for solve in runs.values():
        solve()  # (warm up)
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(3):
        for name, solve in runs.items():
            seconds[name].append(_best_time(solve, repeats))
    best = {name: min(values) for name, values in seconds.items()}
    ratio = best["ols"] / best["lstsq"]
    lines = [f"{name:32s} {1e3 * value:8.1f} ms" for name, value in best.items()]
    lines.append(
        f"ols / lstsq: {ratio:.2f} (lstsq on [1 X] built in the call, as ols builds what it needs from X; "
        f"{best['ols'] / best['lstsq, [1 X] built beforehand']:.2f} against lstsq on a [1 X] built beforehand; "
        f"{best['ols, degree-10 polynomial'] / best['lstsq, degree-10 polynomial']:.2f} on the polynomial)"
    )
    return lines, ratio


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=30, help="draws per family (default 30)")
    parser.add_argument("--repeats", type=int, default=7, help="solves per timing (default 7)")
    parser.add_argument("--threads", type=int, help="threads for OpenBLAS (default: its own choice)")
    args = parser.parse_args(argv)

    print("Correct digits, min / median over the draws (15.95 is every digit a float64 holds)\n")
    lines, as_good, seven = solver_table(args.draws)
    print("\n".join(lines))
    print(filip_line())
    print("\ntl.stats beside statsmodels: correct digits of the standard errors, SSR and R², min / median\n")
    stats_lines, stats_as_good = stats_table(max(args.draws // 3, 3))
    print("\n".join(stats_lines))
    print(
        "\ntl.stats' robust standard errors beside statsmodels': correct digits, min / median, on the draws cut to "
        "60 rows and 8 columns\n"
    )
    robust_lines, robust_as_good = robust_table(max(args.draws // 3, 3))
    print("\n".join(robust_lines))
    print("\nTime per solve, 100,000 × 10 with an intercept (the best of the solves)\n")
    time_lines, ratio = timing(args.repeats)
    print("\n".join(time_lines))
    checks = [
        (as_good, f"ols has the best reference's digits on every draw (within {SLACK}, up to {ENOUGH})"),
        (seven, "ols keeps at least 7 digits on every degree-10 design of condition up to 1e15"),
        (stats_as_good, f"tl.stats' bse, SSR and R² have statsmodels' digits on every draw (within {SLACK})"),
        (robust_as_good, f"tl.stats' robust bse (HC0-HC3) have statsmodels' digits on every draw (within {SLACK})"),
        (ratio <= 3.0, f"ols takes at most 3 times lstsq's time on 100,000 × 10 ({ratio:.2f})"),
    ]
    print()
    for ok, what in checks:
        print(f"{'PASS' if ok else 'FAIL'}: {what}")
    return 0 if all(ok for ok, _ in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
