"""`abtest status`: counts per arm, SRM, trigger shares and interim lifts from an exposure log."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from silverset.components.abtest.experiment import ExperimentConfig
from silverset.components.abtest.exposure import Exposure, ExposureLog
from silverset.components.abtest.status import status
from silverset.components.common.errors import SilversetInputError

CONFIG = ExperimentConfig(
    experiment_id="exp-s",
    attribute="red_dominant",
    attribute_version=2,
    spec_content_hash="h",
    salt="status-salt",
    treatment_share=0.5,
    trigger_threshold=0.3,
)


def _log(
    folder,
    users: list[str],
    *,
    config=CONFIG,
    triggered=lambda i: i % 3 == 0,
    requests_per_user: int = 1,
    arm_of=None,
    served_control: int = 0,
):
    """Write an exposure log as the server would: arm by hash, served only in treatment when triggered."""
    arm_of = arm_of or config.arm_of
    with ExposureLog(folder, max_rows=500) as log:
        for r in range(requests_per_user):
            for i, user in enumerate(users):
                arm = arm_of(user)
                served = triggered(i) and (arm == "treatment" or i < served_control)
                log.append(
                    Exposure(
                        config.experiment_id,
                        f"{user}-{r}",
                        user,
                        arm,
                        triggered(i),
                        served,
                        0.5,
                        "rule",
                        config.attribute,
                        config.attribute_version,
                        "v2",
                        time.time(),
                    )
                )


def test_counts_users_once_per_arm_with_trigger_shares_and_a_passing_srm(tmp_path):
    users = [f"u{i}" for i in range(3000)]
    _log(tmp_path, users, requests_per_user=2)
    s = status(tmp_path, CONFIG)
    arms = s["arms"]
    expected_t = sum(CONFIG.arm_of(u) == "treatment" for u in users)
    assert arms["treatment"]["users"] == expected_t and arms["control"]["users"] == 3000 - expected_t
    assert arms["treatment"]["requests"] == 2 * expected_t
    expected_trig = sum(1 for i, u in enumerate(users) if i % 3 == 0 and CONFIG.arm_of(u) == "control")
    assert arms["control"]["triggered_users"] == expected_trig and arms["control"]["served_users"] == 0
    assert arms["control"]["triggered_share"] == pytest.approx(expected_trig / arms["control"]["users"])
    assert s["srm"]["p_value"] > 0.001 and s["healthy"] and s["problems"] == []
    # Rows of another experiment in the same folder are counted apart and change nothing else.
    _log(tmp_path, users[:100], config=CONFIG.model_copy(update={"experiment_id": "exp-other"}))
    again = status(tmp_path, CONFIG)
    assert again["other_experiment_rows"] == 100 and again["arms"] == s["arms"]
    assert s["trigger_sources"] == {"rule": 6000} and s["index_versions"] == ["v2"] and s["exposure_files"] >= 12


def test_a_broken_split_a_served_control_and_a_foreign_salt_are_reported(tmp_path):
    users = [f"u{i}" for i in range(4000)]
    kept = [u for i, u in enumerate(users) if CONFIG.arm_of(u) == "control" or i % 5]  # 20% of treatment lost
    _log(tmp_path / "lost", kept)
    s = status(tmp_path / "lost", CONFIG)
    assert s["srm"]["mismatch"] and not s["healthy"] and "sample ratio mismatch" in s["problems"][0]

    _log(tmp_path / "served", users[:300], served_control=30)
    s = status(tmp_path / "served", CONFIG)
    assert s["control_served_users"] > 0 and any("control user(s) were served" in p for p in s["problems"])

    other = CONFIG.model_copy(update={"salt": "another-salt"})
    _log(tmp_path / "salt", users[:1000], arm_of=other.arm_of)
    s = status(tmp_path / "salt", CONFIG)
    assert 300 < s["arm_mismatch_users"] < 700 and not s["healthy"]  # about half disagree with an independent salt

    _log(tmp_path / "both", users[:500])  # the same users again under the other salt: some land in both arms
    _log(tmp_path / "both", users[:500], arm_of=other.arm_of)
    s = status(tmp_path / "both", CONFIG)
    assert 150 < s["users_in_both_arms"] < 350 and any("both arms" in p for p in s["problems"])
    assert s["arms"]["control"]["users"] + s["arms"]["treatment"]["users"] == 500 - s["users_in_both_arms"]


def test_interim_lifts_recover_a_planted_effect_within_their_ci(tmp_path):
    rng = np.random.default_rng(7)
    users = [f"u{i}" for i in range(6000)]
    _log(tmp_path / "log", users, triggered=lambda i: i % 2 == 0)
    arm = np.array([CONFIG.arm_of(u) for u in users])
    triggered = np.arange(len(users)) % 2 == 0
    base = rng.normal(10.0, 2.0, len(users))
    effect = 1.0  # +1.0 for triggered treatment users only: +10% among triggered, about +5% overall
    outcome = base + effect * ((arm == "treatment") & triggered)
    frame = pd.DataFrame({"user_id": users, "minutes": outcome, "pre_minutes": base})
    frame.iloc[:3].to_parquet(tmp_path / "partial.parquet")  # too few users for a lift: noted, not crashed
    frame.to_parquet(tmp_path / "outcomes.parquet")

    s = status(tmp_path / "log", CONFIG, outcomes=tmp_path / "outcomes.parquet")
    assert set(s["lifts"]) == {"minutes"}  # pre_* columns are covariates, not metrics
    itt, trig = s["lifts"]["minutes"], s["triggered_lifts"]["minutes"]
    assert itt["difference_ci"]["low"] <= 0.5 <= itt["difference_ci"]["high"]
    assert trig["difference_ci"]["low"] <= 1.0 <= trig["difference_ci"]["high"] and trig["difference_ci"]["low"] > 0.5
    assert trig["n_treatment"] + trig["n_control"] == 3000 and s["users_without_outcomes"] == 0

    s = status(tmp_path / "log", CONFIG, outcomes=tmp_path / "partial.parquet", metrics=("minutes",))
    assert s["users_without_outcomes"] == 5997 and s["lifts"] == {} and any("too few users" in n for n in s["notes"])


def test_no_exposures_yet_and_bad_inputs(tmp_path):
    s = status(tmp_path, CONFIG)
    assert s["arms"]["treatment"]["users"] == 0 and s["srm"] is None and s["healthy"]
    assert "no exposures" in s["notes"][0]
    with pytest.raises(SilversetInputError, match="folder not found"):
        status(tmp_path / "missing", CONFIG)
    _log(tmp_path / "log", ["a", "b", "c", "d"])
    pd.DataFrame({"user_id": ["a"], "minutes": [1.0]}).to_parquet(tmp_path / "o.parquet")
    with pytest.raises(SilversetInputError, match="no numeric column 'clicks'"):
        status(tmp_path / "log", CONFIG, outcomes=tmp_path / "o.parquet", metrics=("clicks",))


def test_cli_prints_arms_srm_and_lifts_and_fails_a_broken_split(tmp_path):
    from typer.testing import CliRunner

    from silverset.components.common.errors import GateFailed
    from silverset.pipelines.cli import app

    (tmp_path / "experiment.json").write_text(CONFIG.model_dump_json())
    users = [f"u{i}" for i in range(400)]
    _log(tmp_path / "log", users)
    pd.DataFrame({"user_id": users, "minutes": np.random.default_rng(1).normal(10, 1, 400)}).to_parquet(
        tmp_path / "o.parquet"
    )
    base = ["abtest", "status", "--experiment", str(tmp_path / "experiment.json")]
    result = CliRunner().invoke(
        app,
        [*base, "--exposures", str(tmp_path / "log"), "--outcomes", str(tmp_path / "o.parquet")],
        terminal_width=200,
    )
    assert result.exit_code == 0, result.output
    assert (
        "SRM p =" in result.output and "minutes (exposed):" in result.output and "minutes (triggered):" in result.output
    )

    many = [f"w{i}" for i in range(2000)]
    _log(
        tmp_path / "lost", [u for i, u in enumerate(many) if CONFIG.arm_of(u) == "control" or i % 3]
    )  # a third of treatment lost
    result = CliRunner().invoke(app, [*base, "--exposures", str(tmp_path / "lost"), "--json"])
    assert isinstance(result.exception, GateFailed) and "sample ratio mismatch" in str(result.exception)
