"""benchmarks.cost_curves: the growth classifier on cost series of known growth, the plots, the skip prediction
and the CLI's bad-flag exit; the measurements themselves are run by hand (``python -m benchmarks.cost_curves``)."""

from __future__ import annotations

import importlib
import importlib.util
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _benchmark(name: str):
    """``benchmarks.<name>``: the repository root is not on pytest's sys.path (and tests never edit it), so the
    ``benchmarks`` package is registered from its folder, as ``python -m benchmarks.<name>`` would find it."""
    if "benchmarks" not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            "benchmarks", ROOT / "benchmarks" / "__init__.py", submodule_search_locations=[str(ROOT / "benchmarks")]
        )
        assert spec is not None and spec.loader is not None
        package = importlib.util.module_from_spec(spec)
        sys.modules["benchmarks"] = package
        spec.loader.exec_module(package)
    return importlib.import_module(f"benchmarks.{name}")


growth = _benchmark("_cost_growth")
cost_curves = _benchmark("cost_curves")
FULL = [100_000, 1_000_000, 5_000_000]
QUICK = [10, 30, 60]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("n", [FULL, QUICK, [200, 1_000, 5_000]])
def test_known_growths_are_named(n):
    x = np.asarray(n, dtype=float)
    assert growth.fit_growth(x, 3e-6 * x)["growth"] == "linear"
    assert growth.fit_growth(x, 2e-7 * x * np.log(x))["growth"] == "n log n"
    assert growth.fit_growth(x, 1e-9 * x**2)["growth"] == "super-linear"
    assert growth.fit_growth(x, [4.0] * len(x))["growth"] == "sub-linear (fixed costs dominate)"


def test_exponent_is_the_log_log_slope():
    n = np.array([100.0, 1_000.0, 5_000.0])
    fit = growth.fit_growth(n, 0.5 * n**1.5)
    assert fit["exponent_b"] == pytest.approx(1.5, abs=1e-3)
    assert math.exp(fit["intercept_a"]) == pytest.approx(0.5, rel=1e-3)
    # neither one-parameter model fits n^1.5: log(cost / n) = log 0.5 + 0.5 log n spreads by 0.5 * std(log n)
    assert fit["rms_log_residual_linear"] == pytest.approx(0.5 * np.std(np.log(n)), abs=1e-3)
    assert fit["rms_log_residual_n_log_n"] > 0.3
    assert fit["growth"] == "super-linear"
    # n log n over 100..5000: the slope of log(n ln n) on log n, brute force over the same points
    slope = np.polyfit(np.log(n), np.log(n * np.log(n)), 1)[0]
    assert fit["n_log_n_exponent_over_this_range"] == pytest.approx(slope, abs=1e-3)


def test_a_few_percent_of_noise_keeps_a_linear_cost_linear_and_a_fixed_cost_plus_linear_sub_linear():
    n = np.array(FULL, dtype=float)
    assert growth.fit_growth(n, 1e-6 * n * np.array([1.03, 0.97, 1.02]))["growth"] == "linear"
    # a 10 s fixed cost over 1 us per item: 10.1 s, 11 s, 15 s
    assert growth.fit_growth(n, 10 + 1e-6 * n)["growth"] == "sub-linear (fixed costs dominate)"


@pytest.mark.parametrize(
    ("n", "cost", "problem"),
    [([100], [1.0], "at least 2 distinct n"), ([100, 100], [1.0, 2.0], "at least 2 distinct n"),
     ([100, 1000], [1.0, 0.0], "cost > 0"), ([100, 1000, 10], [1.0, 2.0], "one length")],
)  # fmt: skip
def test_unfittable_series_are_refused_with_the_reason(n, cost, problem):
    with pytest.raises(ValueError, match=problem):
        growth.fit_growth(n, cost)


def test_plot_is_written_as_a_png(tmp_path):
    n = [100, 1_000, 5_000]
    path = growth.plot_curve(
        tmp_path / "sub" / "curve.png",
        title="t",
        series={"linear": (n, [0.1, 1.0, 5.0]), "fixed": (n, [2.0, 2.1, 2.4])},
        xlabel="videos",
        ylabel="seconds",
    )
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 5_000


def test_analyse_fits_every_curve_and_writes_the_stage_plot(tmp_path):
    points = [
        {"n": n, "seconds": s, "rate": n / s, "sharded": {"seconds": s2}}
        for n, s, s2 in ((100, 2.0, 4.0), (1_000, 20.0, 40.0), (5_000, 100.0, 200.0))
    ]
    entry = {"points": points}
    cost_curves.analyse("frames", entry, tmp_path)
    assert entry["growth"]["seconds_single_run"]["growth"] == "linear"
    assert entry["growth"]["seconds_2_shards_in_sequence"]["exponent_b"] == pytest.approx(1.0, abs=1e-3)
    assert entry["plots"] == ["cost_curves_frames.png"]
    assert (tmp_path / "cost_curves_frames.png").read_bytes().startswith(PNG_MAGIC)


def test_a_point_is_predicted_from_the_smaller_ones_at_least_linearly():
    # measured linear: 1 s at 100, 10 s at 1,000 -> 50 s at 5,000
    assert cost_curves.predicted_seconds([{"n": 100, "seconds": 1.0}, {"n": 1_000, "seconds": 10.0}], 5_000) == (
        pytest.approx(50.0, rel=1e-3)
    )
    # a flat (fixed-cost) curve is still extrapolated linearly from its largest fit, never below
    flat = [{"n": 100, "seconds": 5.0}, {"n": 1_000, "seconds": 5.0}]
    assert cost_curves.predicted_seconds(flat, 10_000) >= 5.0 * 10_000 / 1_000 * 0.99
    assert cost_curves.predicted_seconds([], 10) is None


def test_an_unknown_stage_exits_2_naming_the_flag():
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.cost_curves", "--only", "frames,bogus"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "--only" in result.stderr and "bogus" in result.stderr


def test_pipeline_curves_are_fitted_per_shard_setting_and_per_task(tmp_path):
    # shards=2: a 60 s fixed cost plus 0.1 s per video in "embed-shard"; shards=1 has one point only (no fit)
    points = [
        {"n": n, "shards": 2, "seconds": 60 + 0.1 * n, "pipeline_tasks": {"embed-shard": {"seconds": 0.1 * n}}}
        for n in (200, 1_000, 5_000)
    ] + [{"n": 200, "shards": 1, "seconds": 70.0, "pipeline_tasks": {}}]
    entry = {"points": points}
    cost_curves.analyse("pipeline", entry, tmp_path)
    assert entry["growth"]["pipeline_seconds_shards_2"]["growth"] == "sub-linear (fixed costs dominate)"
    assert entry["growth"]["pipeline_seconds_shards_2"]["marginal_cost_per_unit"] == [pytest.approx(0.1)] * 2
    assert entry["growth"]["pipeline_seconds_shards_1"] is None
    assert entry["growth"]["task_seconds_shards_2"]["embed-shard"]["growth"] == "linear"
    assert entry["plots"] == ["cost_curves_pipeline.png", "cost_curves_pipeline_tasks.png"]


def test_a_stage_written_by_another_run_meanwhile_keeps_its_other_points(tmp_path):
    path = tmp_path / "cost_curves.json"
    other = {"scales": "full", "points": [{"n": 200, "shards": 2, "seconds": 1.0}], "skipped": []}
    cost_curves.merge_write(path, {"pipeline": other}, quick=False)
    ours = {
        "scales": "full",
        "points": [{"n": 200, "shards": 1, "seconds": 2.0}],
        "skipped": [{"n": 5_000, "shards": 1, "reason": "predicted"}],
    }
    merged = cost_curves.merge_write(path, {"pipeline": ours}, quick=False)["stages"]["pipeline"]
    assert [(p["n"], p["shards"]) for p in merged["points"]] == [(200, 1), (200, 2)]
    assert merged["skipped"] == [{"n": 5_000, "shards": 1, "reason": "predicted"}]
