"""Analysis straight from the index server's exposure log (one row per request) plus an outcomes table.

A synthetic log with a planted effect on served users: triggers depend on a pre-period covariate
(confounded), so the naive triggered-vs-not difference is biased while the randomized triggered-population
comparison and CBPS recover the effect."""

import json

import numpy as np
import pandas as pd
import pytest

from silverset.components.abtest import analyze
from silverset.components.abtest.experiment import ExperimentConfig
from silverset.components.abtest.exposure import Exposure
from silverset.components.common.errors import SilversetInputError
from silverset.components.common.tables import read_errors
from tests.helpers.factories import write_exposure_log as write_log

EFFECT = 1.5  # minutes/day for a served user


def _config(experiment_id: str = "exp-1") -> ExperimentConfig:
    return ExperimentConfig(
        experiment_id=experiment_id,
        attribute="cooking",
        attribute_version=3,
        spec_content_hash="h",
        salt="s1",
        treatment_share=0.5,
        trigger_threshold=0.3,
    )


def synthetic(tmp_path, *, users: int = 4000, effect: float = EFFECT, seed: int = 0, serve_control: int = 0):
    """Exposure-log folder and outcomes Parquet; returns their paths and the per-user truth."""
    rng = np.random.default_rng(seed)
    cfg = _config()
    interest = rng.normal(size=users)
    activity = rng.normal(size=users)
    affinity = 1 / (1 + np.exp(-(interest + 0.5 * activity - 0.3 + rng.logistic(size=users) * 0.5)))
    triggered = affinity >= cfg.trigger_threshold
    ids = [f"u{i:05d}" for i in range(users)]
    arm = np.array([cfg.arm_of(u) for u in ids])
    served = triggered & (arm == "treatment")
    if serve_control:
        served[np.flatnonzero(triggered & (arm == "control"))[:serve_control]] = True
    rows = []
    for i, u in enumerate(ids):
        for r in range(1 + i % 3):  # 1-3 requests per user; the trigger decision is per user here
            rows.append(
                Exposure(
                    cfg.experiment_id,
                    f"r{i}-{r}",
                    u,
                    arm[i],
                    bool(triggered[i]),
                    bool(served[i]),
                    float(affinity[i]),
                    "rule",
                    "cooking",
                    3,
                    "v1",
                    1_800_000_000.0 + i + r / 10,
                )
            )
    rng.shuffle(rows)
    write_log(tmp_path / "exposures", rows)
    level = rng.normal(scale=3.0, size=users)
    base = 20 + 3 * interest + 2 * activity + level
    outcomes = pd.DataFrame(
        {
            "user_id": ids,
            "satisfied_consumption": base + rng.normal(scale=2.0, size=users) + effect * served,
            "pre_satisfied_consumption": base + rng.normal(scale=2.0, size=users),
            "pre_interest": interest,
            "pre_activity": activity,
        }
    )
    outcomes.to_parquet(tmp_path / "outcomes.parquet")
    return tmp_path / "exposures", tmp_path / "outcomes.parquet", {"triggered": triggered, "served": served, "arm": arm}


def test_log_is_reduced_to_one_row_per_user(tmp_path):
    exposures, _, truth = synthetic(tmp_path, users=300)
    from silverset.components.abtest.exposure import read_exposures

    users = analyze.user_exposures(read_exposures(exposures)).set_index("user_id")
    assert len(users) == 300 and users["requests"].sum() == sum(1 + i % 3 for i in range(300))
    assert np.array_equal(users.loc[[f"u{i:05d}" for i in range(300)], "triggered"].to_numpy(), truth["triggered"])
    assert np.array_equal(users.loc[[f"u{i:05d}" for i in range(300)], "arm"].to_numpy(), truth["arm"])


def test_planted_effect_is_recovered_from_the_servers_log(tmp_path):
    exposures, outcomes, truth = synthetic(tmp_path)
    summary = analyze.run(
        exposures=exposures,
        outcomes=outcomes,
        out_dir=tmp_path / "out",
        options=analyze.AnalysisOptions(bootstrap_samples=0),
    )
    assert summary.passed and summary.control_served == 0 and summary.errors == 0
    assert summary.users_analysed == 4000
    # Randomized comparison among triggered users: the effect on served users, within its CI and away from 0.
    trig = summary.triggered_lifts["satisfied_consumption"]
    assert trig.difference_ci[0] <= EFFECT <= trig.difference_ci[1] and trig.difference_ci[0] > 0
    assert summary.triggered_users.treatment == int((truth["served"]).sum())
    # Whole-population lift: EFFECT x trigger rate.
    itt = summary.lifts["satisfied_consumption"]
    assert itt.difference_ci[0] <= EFFECT * truth["triggered"].mean() <= itt.difference_ci[1]
    # The pre_ columns were taken as covariates, not metrics; CBPS on the logged triggers balances all of them.
    result = json.loads((tmp_path / "out" / "result.json").read_text())
    assert [m["metric"] for m in result["metrics"]] == ["satisfied_consumption"]
    obs = result["observational"]
    assert {b["covariate"] for b in obs["balance"]} == {"pre_satisfied_consumption", "pre_interest", "pre_activity"}
    assert obs["max_abs_smd_before"] > 0.5 and all(abs(b["smd_after"]) < 0.1 for b in obs["balance"])
    naive, weighted = obs["effects"][0]["naive_difference"], obs["effects"][0]["difference"]
    assert abs(naive - EFFECT) > 3  # confounded: triggered users consume more anyway
    # CBPS removes most of that bias (its CI, from ~2,000 treatment users, is wide: checked over seeds 0-5 it
    # covered 1.5 in 5 of 6, so the test asserts the bias reduction, not one seed's coverage).
    assert abs(weighted - EFFECT) < abs(naive - EFFECT) / 4
    assert "Triggered users, both arms" in (tmp_path / "out" / "report.html").read_text()


def test_no_effect_gives_an_interval_around_zero(tmp_path):
    exposures, outcomes, _ = synthetic(tmp_path, effect=0.0, seed=3)
    summary = analyze.run(
        exposures=exposures,
        outcomes=outcomes,
        out_dir=tmp_path / "out",
        options=analyze.AnalysisOptions(bootstrap_samples=0),
    )
    low, high = summary.triggered_lifts["satisfied_consumption"].difference_ci
    assert low <= 0 <= high and high - low < 1.0


def test_control_served_fails_the_analysis(tmp_path):
    exposures, outcomes, _ = synthetic(tmp_path, users=1000, serve_control=5)
    summary = analyze.run(
        exposures=exposures,
        outcomes=outcomes,
        out_dir=tmp_path / "out",
        options=analyze.AnalysisOptions(bootstrap_samples=0),
    )
    assert not summary.passed and summary.control_served == 5
    assert "5 control user(s) were served" in summary.failures[0]


def test_missing_outcomes_and_null_covariates_go_to_errors(tmp_path):
    exposures, outcomes, _ = synthetic(tmp_path, users=1000)
    frame = pd.read_parquet(outcomes)
    frame.loc[:4, "pre_interest"] = np.nan
    frame.iloc[10:].to_parquet(outcomes)
    summary = analyze.run(
        exposures=exposures,
        outcomes=outcomes,
        out_dir=tmp_path / "out",
        options=analyze.AnalysisOptions(bootstrap_samples=0),
    )
    errors = read_errors(tmp_path / "out").to_pandas()
    assert sorted(errors["error_type"].value_counts().items()) == [("missing_outcome", 10)]
    frame = pd.read_parquet(outcomes)
    frame.loc[frame.index[:4], "pre_interest"] = np.nan
    frame.to_parquet(outcomes)
    summary = analyze.run(
        exposures=exposures,
        outcomes=outcomes,
        out_dir=tmp_path / "out2",
        options=analyze.AnalysisOptions(bootstrap_samples=0),
    )
    assert summary.users_in == summary.users_analysed + summary.errors and summary.errors == 14


def test_bad_logs_are_refused_naming_the_problem(tmp_path):
    cfg = _config()
    both = [
        Exposure("exp-1", f"r{i}", "u1", arm, False, False, 0.1, "rule", "cooking", 3, "v1", 1.0 + i)
        for i, arm in enumerate(["control", "treatment"])
    ]
    both += [
        Exposure("exp-1", f"q{i}", f"v{i}", cfg.arm_of(f"v{i}"), False, False, 0.1, "rule", "cooking", 3, "v1", 5.0)
        for i in range(20)
    ]
    write_log(tmp_path / "both", both, files=1)
    pd.DataFrame({"user_id": ["u1"] + [f"v{i}" for i in range(20)], "m": 1.0}).to_parquet(tmp_path / "o.parquet")
    with pytest.raises(SilversetInputError, match="exposed in both arms"):
        analyze.run(exposures=tmp_path / "both", outcomes=tmp_path / "o.parquet", out_dir=tmp_path / "out")
    two = [r._replace(experiment_id="exp-2", user_id=r.user_id + "x") for r in both[2:]] + both[2:]
    write_log(tmp_path / "two", two, files=2)
    with pytest.raises(SilversetInputError, match="holds 2 experiments"):
        analyze.run(exposures=tmp_path / "two", outcomes=tmp_path / "o.parquet", out_dir=tmp_path / "out")
    with pytest.raises(SilversetInputError, match="no rows of experiment 'exp-9'"):
        analyze.run(
            exposures=tmp_path / "two",
            outcomes=tmp_path / "o.parquet",
            out_dir=tmp_path / "out",
            options=analyze.AnalysisOptions(experiment_id="exp-9"),
        )


def test_cli_analyses_the_log_of_the_experiment_it_is_given(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    exposures, outcomes, _ = synthetic(tmp_path, users=1500)
    (tmp_path / "experiment.json").write_text(_config().model_dump_json())
    silverset = str(Path(sys.executable).with_name("silverset"))
    done = subprocess.run(
        [
            silverset,
            "abtest",
            "analyze",
            "--exposures",
            str(exposures),
            "--outcomes",
            str(outcomes),
            "--experiment",
            str(tmp_path / "experiment.json"),
            "--out",
            str(tmp_path / "out"),
            "--bootstrap-samples",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert done.returncode == 0, done.stderr
    assert "triggered users (" in done.stdout and "SRM p = " in done.stdout
    other = _config("exp-other").model_dump_json()
    (tmp_path / "experiment.json").write_text(other)
    done = subprocess.run(
        [
            silverset,
            "abtest",
            "analyze",
            "--exposures",
            str(exposures),
            "--outcomes",
            str(outcomes),
            "--experiment",
            str(tmp_path / "experiment.json"),
            "--out",
            str(tmp_path / "out2"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "400"},
    )
    assert done.returncode == 2 and "no rows of experiment 'exp-other'" in done.stderr
