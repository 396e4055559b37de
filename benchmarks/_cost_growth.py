"""Growth of a cost curve and its plot, for ``benchmarks.cost_curves`` (pure: numpy and matplotlib only).

``fit_growth(n, cost)`` fits ``log(cost) = a + b log(n)`` (numpy polyfit) and compares two one-parameter models,
``cost = c n`` and ``cost = c n log n``, by the spread of ``log(cost / model)``; ``classify`` names the growth:
"sub-linear (fixed costs dominate)" (b < ``SUB_LINEAR_BELOW``), "super-linear" (b above the n log n exponent over
the same range by more than ``SUPER_LINEAR_MARGIN``), else "linear" or "n log n", whichever model fits closer.
``plot_curve`` writes a log-log PNG of cost vs n with the fitted line and an ideal-linear line through the
smallest point.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

SUB_LINEAR_BELOW = 0.85
SUPER_LINEAR_MARGIN = 0.15


def _checked(n: Sequence[float], cost: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(n, dtype=np.float64), np.asarray(cost, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"n and cost must be 1-d of one length, got {x.shape} and {y.shape}")
    if len(x) < 2 or len(set(x.tolist())) < 2:
        raise ValueError(f"a growth fit needs at least 2 distinct n, got {x.tolist()}")
    if (x <= 1).any() or (y <= 0).any():
        raise ValueError(f"n must be > 1 and cost > 0 for a log-log fit, got n={x.tolist()} cost={y.tolist()}")
    return x, y


def _log_spread(values: np.ndarray) -> float:
    """Root mean square of log(values) around its mean: 0 when ``values`` is a constant multiple of the model."""
    logs = np.log(values)
    return float(np.sqrt(np.mean((logs - logs.mean()) ** 2)))


def fit_growth(n: Sequence[float], cost: Sequence[float]) -> dict:
    """The log-log fit (exponent ``b``, intercept ``a``), the n log n exponent over the same n, the fit of
    ``cost = c n`` and ``cost = c n log n`` (rms of log residuals), and ``growth`` (see ``classify``)."""
    x, y = _checked(n, cost)
    b, a = np.polyfit(np.log(x), np.log(y), 1)
    b_nlogn = float(np.polyfit(np.log(x), np.log(x * np.log(x)), 1)[0])
    fit = {
        "exponent_b": round(float(b), 3),
        "intercept_a": round(float(a), 4),
        "n_log_n_exponent_over_this_range": round(b_nlogn, 3),
        "rms_log_residual_linear": round(_log_spread(y / x), 4),
        "rms_log_residual_n_log_n": round(_log_spread(y / (x * np.log(x))), 4),
    }
    fit["growth"] = classify(fit)
    return fit


def classify(fit: dict) -> str:
    """The growth a ``fit_growth`` result shows (see the module docstring)."""
    b = fit["exponent_b"]
    if b < SUB_LINEAR_BELOW:
        return "sub-linear (fixed costs dominate)"
    if b > fit["n_log_n_exponent_over_this_range"] + SUPER_LINEAR_MARGIN:
        return "super-linear"
    if fit["rms_log_residual_n_log_n"] < fit["rms_log_residual_linear"]:
        return "n log n"
    return "linear"


def plot_curve(
    path: str | Path,
    *,
    title: str,
    series: dict[str, tuple[Sequence[float], Sequence[float]]],
    xlabel: str,
    ylabel: str,
) -> Path:
    """Write a log-log PNG: per series its points, its fitted line (legend: exponent and growth) and a dashed
    ideal-linear line through its smallest point. ``series``: label -> (n, cost). Returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    many = len(series) > 6  # the legend goes beside the axes, not over the points
    figure, axes = plt.subplots(figsize=(12, 5.5) if many else (7, 4.8))
    try:
        for index, (label, (n, cost)) in enumerate(series.items()):
            x, y = _checked(n, cost)
            order = np.argsort(x)
            x, y = x[order], y[order]
            colour = f"C{index % 10}"
            fit = fit_growth(x, y)
            grid = np.geomspace(x[0], x[-1], 50)
            axes.plot(x, y, "o", color=colour)
            axes.plot(
                grid,
                np.exp(fit["intercept_a"]) * grid ** fit["exponent_b"],
                "-",
                color=colour,
                label=f"{label}: n^{fit['exponent_b']:.2f} ({fit['growth']})",
            )
            axes.plot(grid, y[0] * grid / x[0], ":", color=colour, alpha=0.6)
        axes.plot([], [], ":", color="grey", label="ideal linear through the smallest point")
        axes.set_xscale("log")
        axes.set_yscale("log")
        axes.set_xlabel(xlabel)
        axes.set_ylabel(ylabel)
        axes.set_title(title, fontsize=10)
        axes.grid(True, which="both", alpha=0.3)
        axes.legend(fontsize=7, loc="upper left", **({"bbox_to_anchor": (1.01, 1.0)} if many else {}))
        figure.tight_layout()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=110)
    finally:
        plt.close(figure)
    return path


def describe(fit: dict) -> str:
    """One line: ``growth (b=..., n log n would be ...)``."""
    return (
        f"{fit['growth']} (log-log exponent b={fit['exponent_b']}, n log n over this range would be "
        f"{fit['n_log_n_exponent_over_this_range']})"
    )
