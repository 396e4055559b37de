"""Analysis over log files: bad logs get clear errors, accounting holds, report and JSON are written, gates fail."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from silverset.components.abtest import analyze
from silverset.components.abtest.promotion import simulate_logs
from silverset.components.abtest.simulate import SimulationOptions
from silverset.components.common.errors import SilversetInputError
from silverset.components.common.tables import read_errors

SILVERSET = str(Path(sys.executable).with_name("silverset"))


@pytest.fixture(scope="module")
def logs(tmp_path_factory):
    return simulate_logs(out_dir=tmp_path_factory.mktemp("logs"), options=SimulationOptions(users=3000, seed=2))


def _write_csv(path: Path, frame: pd.DataFrame) -> Path:
    frame.to_csv(path, index=False)
    return path


def test_full_analysis_writes_json_report_and_plots(logs, tmp_path):
    summary = analyze.run(
        exposures=logs["exposures"],
        outcomes=logs["outcomes"],
        covariates=logs["covariates"],
        out_dir=tmp_path,
        options=analyze.AnalysisOptions(bootstrap_samples=200),
    )
    assert summary.passed and summary.errors == 0
    result = json.loads((tmp_path / "result.json").read_text())
    assert {m["metric"] for m in result["metrics"]} == {"satisfied_consumption", "creation_participation"}
    assert all(m["cuped"] is not None and m["bootstrap"]["agrees"] for m in result["metrics"])
    assert result["observational"]["balance_passed"]
    assert all(abs(b["smd_after"]) < 0.1 for b in result["observational"]["balance"])
    html = (tmp_path / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 2 and "CBPS covariate balance" in html
    assert (tmp_path / "lift.png").stat().st_size > 1000 and (tmp_path / "balance.png").stat().st_size > 1000
    assert len(read_errors(tmp_path)) == 0


def test_csv_logs_and_dropped_rows_keep_inputs_equal_outputs_plus_errors(logs, tmp_path):
    exposures = pd.read_parquet(logs["exposures"])
    outcomes = pd.read_parquet(logs["outcomes"])
    outcomes = pd.concat(
        [
            outcomes.iloc[10:],
            pd.DataFrame(
                {
                    "user_id": ["stranger-1", "stranger-2"],
                    "satisfied_consumption": [1.0, 2.0],
                    "creation_participation": [0.0, 1.0],
                }
            ),
        ]
    )
    summary = analyze.run(
        exposures=_write_csv(tmp_path / "e.csv", exposures),
        outcomes=_write_csv(tmp_path / "o.csv", outcomes),
        out_dir=tmp_path / "out",
        options=analyze.AnalysisOptions(bootstrap_samples=0),
    )
    errors = read_errors(tmp_path / "out").to_pandas()
    assert sorted(errors["error_type"].value_counts().items()) == [("missing_outcome", 10), ("not_exposed", 2)]
    assert summary.users_in == len(exposures) + 2
    assert summary.users_in == summary.users_analysed + summary.errors
    zero = analyze.run(
        exposures=tmp_path / "e.csv",
        outcomes=tmp_path / "o.csv",
        out_dir=tmp_path / "zero",
        options=analyze.AnalysisOptions(bootstrap_samples=0, missing_outcome="zero"),
    )
    assert zero.users_analysed == len(exposures)


@pytest.mark.parametrize(
    "breakage, message",
    [
        (lambda e: e.drop(columns=["arm"]), "missing required column 'arm'"),
        (lambda e: e.drop(columns=["user_id"]), "missing required column 'user_id'"),
        (lambda e: pd.concat([e, e.iloc[:3]]), "3 duplicate exposure(s)"),
        (
            lambda e: pd.concat(
                [e, e.iloc[:2].assign(arm=lambda d: d["arm"].map({"control": "treatment", "treatment": "control"}))]
            ),
            "2 user(s) exposed in both arms",
        ),
        (lambda e: e.assign(arm=e["arm"].str.upper()), "column 'arm' must be 'control' or 'treatment'"),
    ],
)
def test_bad_exposure_logs_get_clear_errors(logs, tmp_path, breakage, message):
    bad = breakage(pd.read_parquet(logs["exposures"]))
    path = tmp_path / "bad.parquet"
    bad.to_parquet(path)
    with pytest.raises(SilversetInputError) as info:
        analyze.run(exposures=path, outcomes=logs["outcomes"], out_dir=tmp_path / "out")
    assert message in str(info.value) and "exposures" in str(info.value)


def test_bad_outcome_logs_get_clear_errors(logs, tmp_path):
    outcomes = pd.read_parquet(logs["outcomes"])
    pd.concat([outcomes, outcomes.iloc[:1]]).to_parquet(tmp_path / "dup.parquet")
    with pytest.raises(SilversetInputError, match="more than one row"):
        analyze.run(exposures=logs["exposures"], outcomes=tmp_path / "dup.parquet", out_dir=tmp_path / "o1")
    with pytest.raises(SilversetInputError, match="missing required column"):
        analyze.run(
            exposures=logs["exposures"],
            outcomes=logs["outcomes"],
            out_dir=tmp_path / "o2",
            options=analyze.AnalysisOptions(metrics=("watch_time",)),
        )
    with pytest.raises(SilversetInputError, match="file not found"):
        analyze.run(exposures=tmp_path / "nope.csv", outcomes=logs["outcomes"], out_dir=tmp_path / "o3")


def test_imbalance_fails_the_balance_gate(logs, tmp_path):
    # over-identified GMM trades exact balance for efficiency; a strict threshold then fails the check
    summary = analyze.run(
        exposures=logs["exposures"],
        outcomes=logs["outcomes"],
        covariates=logs["covariates"],
        out_dir=tmp_path,
        options=analyze.AnalysisOptions(bootstrap_samples=0, over_identified=True, smd_threshold=1e-4),
    )
    assert not summary.passed
    assert any("CBPS balance" in f for f in summary.failures)
    assert "FAILED" in (tmp_path / "report.html").read_text()


@pytest.mark.slow
def test_cli_exit_codes(tmp_path):
    sim = tmp_path / "sim"

    def run(*args):
        return subprocess.run([SILVERSET, "abtest", *map(str, args)], capture_output=True, text=True)

    assert run("simulate", "--users", 3000, "--lost-treatment-share", 0.2, "--out", sim).returncode == 0
    broken = run(
        "analyze",
        "--exposures",
        sim / "exposures.parquet",
        "--outcomes",
        sim / "outcomes.parquet",
        "--bootstrap-samples",
        0,
        "--out",
        tmp_path / "a",
    )
    assert broken.returncode == 3 and "sample ratio mismatch" in broken.stderr
    missing = run(
        "analyze", "--exposures", sim / "nope.parquet", "--outcomes", sim / "outcomes.parquet", "--out", tmp_path / "b"
    )
    assert missing.returncode == 2 and "nope.parquet" in missing.stderr
    power = run("power", "--baseline-rate", 0.1, "--mde", 0.0049, "--json")
    assert power.returncode == 0 and json.loads(power.stdout)["users_total"] > 10_000_000
