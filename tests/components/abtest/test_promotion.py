"""The demo's closing A/B step: a simulated analysis for a promoted attribute, checked against the known truth."""

import json

from silverset.components.abtest.promotion import PromotionABOptions, simulate_and_analyze
from silverset.components.common.spec import example_specs_dir, load_spec


def test_simulated_ab_for_a_promoted_attribute(tmp_path):
    spec = load_spec(example_specs_dir() / "red_dominant.yaml")
    summary = simulate_and_analyze(
        attribute_spec=spec, out_dir=tmp_path, options=PromotionABOptions(users=8000, seed=3, bootstrap_samples=200)
    )
    assert summary.attribute == spec.key and summary.trigger_threshold == spec.serving.trigger_threshold
    assert summary.passed and summary.cbps_balance_passed and summary.cbps_max_abs_smd_after < 0.1
    assert all(summary.checks.values()), summary.checks
    consumption = summary.cbps_effects["satisfied_consumption"]
    assert consumption.naive_difference > consumption.ci[1]  # confounded comparison is outside the CBPS CI
    written = json.loads((tmp_path / "summary.json").read_text())
    assert written["checks"] == summary.checks and written["users_analysed"] == summary.users_analysed
    config = json.loads((tmp_path / "experiment.json").read_text())
    assert config["spec_content_hash"] == spec.content_hash
    for name in (
        "summary.json",
        "analysis/report.html",
        "analysis/result.json",
        "analysis/errors.parquet",
        "logs/exposures.parquet",
        "logs/truth.json",
    ):
        assert (tmp_path / name).exists(), name
