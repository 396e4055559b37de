"""submit / schedule / runs drive the real kfp.Client into a loopback fake of the KFP v2beta1 API."""

from __future__ import annotations

from pathlib import Path

import pytest

from silverset.components.common.artifacts import RUN_SUMMARY_FILE, RunSummary, write_run_summary
from silverset.components.common.errors import SilversetInputError
from silverset.pipelines import cluster
from silverset.pipelines.compile import compile_pipeline
from tests.fakes.kfp_api_server import FakeKfpApiServer


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    return compile_pipeline(tmp_path_factory.mktemp("pkg") / "pipeline.yaml")


@pytest.fixture()
def kfp_api():
    with FakeKfpApiServer() as server:
        yield server


PARAMS = {
    "attribute_spec": "/data/specs/red_dominant.yaml",
    "manifest_uri": "/data/manifest.parquet",
    "workdir": "/data/red",
    "state_dir": "/data/red/state",
    "golden_set": "/data/red/golden.parquet",
}


def test_submit_creates_experiment_and_a_run_with_the_compiled_spec(kfp_api, package):
    run = cluster.submit(host=kfp_api.host, package=package, params=PARAMS, experiment="silverset-red")
    stored = kfp_api.runs[run.run_id]
    assert kfp_api.experiments[run.experiment_id]["display_name"] == "silverset-red"
    assert stored["runtime_config"]["parameters"] == PARAMS
    spec = stored["pipeline_spec"]
    spec = spec.get("pipeline_spec", spec)
    assert spec["pipelineInfo"]["name"] == "attribute-promotion"
    # the same experiment is reused by the next submit
    again = cluster.submit(host=kfp_api.host, package=package, params=PARAMS, experiment="silverset-red")
    assert again.experiment_id == run.experiment_id and len(kfp_api.experiments) == 1
    rows = cluster.list_runs(host=kfp_api.host, experiment="silverset-red")
    assert {r.run_id for r in rows} == {run.run_id, again.run_id}


def test_schedule_never_overlaps_and_does_not_backfill(kfp_api, package):
    job = cluster.schedule(host=kfp_api.host, package=package, params=PARAMS, cron="0 3 * * *", name="red-nightly")
    stored = kfp_api.recurring_runs[job.recurring_run_id]
    assert stored["trigger"]["cron_schedule"]["cron"] == "0 0 3 * * *"  # seconds field added for robfig/cron
    assert stored["max_concurrency"] == "1" and stored["no_catchup"] is True
    assert stored["runtime_config"]["parameters"]["workdir"] == "/data/red"
    assert job.max_concurrency == 1 and job.no_catchup


def test_schedule_is_idempotent_by_name(kfp_api, package):
    first = cluster.schedule(host=kfp_api.host, package=package, params=PARAMS, cron="0 3 * * *", name="red-nightly")
    again = cluster.schedule(host=kfp_api.host, package=package, params=PARAMS, cron="0 3 * * *", name="red-nightly")
    assert first.created and not again.created and again.recurring_run_id == first.recurring_run_id
    assert len(kfp_api.recurring_runs) == 1
    with pytest.raises(SilversetInputError, match="--replace"):  # other settings under the same name
        cluster.schedule(host=kfp_api.host, package=package, params=PARAMS, cron="0 4 * * *", name="red-nightly")
    replaced = cluster.schedule(
        host=kfp_api.host, package=package, params=PARAMS, cron="0 4 * * *", name="red-nightly", replace=True
    )
    assert list(kfp_api.recurring_runs) == [replaced.recurring_run_id] != [first.recurring_run_id]
    other = cluster.schedule(host=kfp_api.host, package=package, params=PARAMS, cron="0 3 * * *", name="blue-nightly")
    assert other.created and len(kfp_api.recurring_runs) == 2


def test_runs_show_each_runs_promotion_outcome(kfp_api, package):
    ids = [cluster.submit(host=kfp_api.host, package=package, params=PARAMS).run_id for _ in range(4)]
    kfp_api.set_task_states(
        ids[0],
        "FAILED",
        {
            "plan-incremental": "SUCCEEDED",
            "frames": "SUCCEEDED",
            "teacher-gate": "SUCCEEDED",
            "stop-teacher-gate": "FAILED",
        },
    )
    kfp_api.set_task_states(
        ids[1],
        "FAILED",
        {
            "plan-incremental": "SUCCEEDED",
            "frames": "SUCCEEDED",
            "human-approval": "SUCCEEDED",
            "stop-approval": "FAILED",
        },
    )
    kfp_api.set_task_states(
        ids[2],
        "SUCCEEDED",
        {
            "plan-incremental": "SUCCEEDED",
            "frames": "SUCCEEDED",
            "deploy-index": "SUCCEEDED",
            "commit-promoted-state": "SUCCEEDED",
        },
    )
    kfp_api.set_task_states(ids[3], "SUCCEEDED", {"plan-incremental": "SUCCEEDED", "notify-and-clean-up": "SUCCEEDED"})
    outcome = {r.run_id: r.outcome for r in cluster.list_runs(host=kfp_api.host, experiment="silverset")}
    assert [outcome[i] for i in ids] == ["teacher gate failed", "not approved", "promoted", "nothing new"]


def test_runs_show_each_runs_teacher_and_student_costs_from_its_run_summary(
    kfp_api, package, tmp_path, cli, monkeypatch
):
    monkeypatch.setenv("COLUMNS", "400")  # one table line per row: assertions read whole cells
    ids = [cluster.submit(host=kfp_api.host, package=package, params=PARAMS).run_id for _ in range(2)]
    costs = {
        "teacher_calls": 12,
        "teacher_budget_videos": 12,
        "teacher_spend_usd": 0.0123,
        "student_items_scored": 60,
        "teacher_usd_per_1000_videos": 1.025,
        "student_usd_per_1000_videos": 0.0041,
    }
    own = tmp_path / "plans" / ids[0]
    own.mkdir(parents=True)
    write_run_summary(own / RUN_SUMMARY_FILE, RunSummary(text="", run_id=ids[0], status="SUCCEEDED", costs=costs))
    rows = {r.run_id: r for r in cluster.list_runs(host=kfp_api.host, workdir=str(tmp_path))}
    assert rows[ids[0]].costs == costs and rows[ids[1]].costs is None  # the other run wrote no summary there
    shown = cli("pipeline", "runs", "--host", kfp_api.host, "--workdir", str(tmp_path))
    assert shown.code == 0, shown.err
    assert "12of12" in shown.flat_out and "1.0250:0.0041" in shown.flat_out


def test_command_line_values_take_the_types_the_pipeline_declares(kfp_api, package):
    run = cluster.submit(
        host=kfp_api.host,
        package=package,
        params={**PARAMS, "frames_per_video": "4", "gemini_rps": "2.5", "submitter": "0042"},
    )
    sent = kfp_api.runs[run.run_id]["runtime_config"]["parameters"]
    assert sent["frames_per_video"] == 4 and sent["gemini_rps"] == 2.5 and sent["submitter"] == "0042"
    budget = cluster.submit(
        host=kfp_api.host,
        package=package,
        params={
            **PARAMS,
            "teacher_budget_videos": "2000",
            "teacher_budget_usd": "12.5",
            "teacher_priority": "new,views",
            "cost_per_core_hour_usd": "0.05",
        },
    )
    sent = kfp_api.runs[budget.run_id]["runtime_config"]["parameters"]
    assert (sent["teacher_budget_videos"], sent["teacher_budget_usd"]) == (2000, 12.5)
    assert (sent["teacher_priority"], sent["cost_per_core_hour_usd"]) == ("new,views", 0.05)
    with pytest.raises(SilversetInputError, match="--param teacher_budget_videos: '20%' is not an integer"):
        cluster.submit(host=kfp_api.host, package=package, params={**PARAMS, "teacher_budget_videos": "20%"})
    with pytest.raises(SilversetInputError, match="--param frames_per_video: 'eight' is not an integer"):
        cluster.submit(host=kfp_api.host, package=package, params={**PARAMS, "frames_per_video": "eight"})


def test_unknown_or_missing_parameters_are_refused_before_anything_is_sent(kfp_api, package):
    with pytest.raises(SilversetInputError, match="unknown pipeline parameter.*wrokdir.*valid: .*workdir"):
        cluster.submit(host=kfp_api.host, package=package, params={**PARAMS, "wrokdir": "/x"})
    with pytest.raises(SilversetInputError, match="missing required pipeline parameter.*golden_set"):
        cluster.submit(
            host=kfp_api.host, package=package, params={k: v for k, v in PARAMS.items() if k != "golden_set"}
        )
    with pytest.raises(SilversetInputError, match="unknown pipeline parameter.*auto_approve_as"):
        cluster.schedule(
            host=kfp_api.host,
            package=package,
            params={**PARAMS, "auto_approve_as": "alice@example.com"},
            cron="0 3 * * *",
            name="x",
        )
    assert kfp_api.runs == {} and kfp_api.recurring_runs == {}


def test_the_fake_server_itself_refuses_unknown_parameters(kfp_api, package):
    """The check above runs client-side; the fake still answers 400 as the real API server would."""
    import kfp
    import kfp_server_api

    client = kfp.Client(host=kfp_api.host)
    with pytest.raises(kfp_server_api.ApiException, match="unknown pipeline parameter"):
        client.create_run_from_pipeline_package(str(package), arguments={**PARAMS, "wrokdir": "/x"})


@pytest.mark.parametrize(
    "name,value,ok",
    [
        ("approval_store", "kubernetes://silverset-control", True),
        ("approval_store", "sqlite:////data/approvals.db", True),
        ("approval_store", "k8s:silverset", False),  # the form manifests/README.md once documented
        ("approval_store", "/data/approvals.db", False),
        ("approval_store", "kubernetes://Not_A_Namespace", False),
        ("run_lock", "kubernetes://silverset-control", True),
        ("run_lock", "s3://bucket/red/state", True),
        ("run_lock", "k8s:silverset", False),
    ],
)
def test_store_uris_are_checked_and_a_bad_one_names_the_parameter(kfp_api, package, name, value, ok):
    params = {**PARAMS, name: value}
    if ok:
        cluster.submit(host=kfp_api.host, package=package, params=params)
    else:
        with pytest.raises(SilversetInputError, match=f"--param {name}"):
            cluster.submit(host=kfp_api.host, package=package, params=params)


def test_bad_inputs_name_the_flag(tmp_path, package):
    with pytest.raises(SilversetInputError, match="--param"):
        cluster.parse_params(["novalue"])
    with pytest.raises(SilversetInputError, match="--cron"):
        cluster.schedule(host="http://127.0.0.1:9", package=package, params={}, cron="daily", name="x")
    with pytest.raises(SilversetInputError, match="compile"):
        cluster.submit(host="http://127.0.0.1:9", package=tmp_path / "missing.yaml", params={})


def test_embedder_and_experiment_parameters_reach_the_run_and_a_bad_share_is_refused_before_sending(kfp_api, package):
    run = cluster.submit(
        host=kfp_api.host,
        package=package,
        params={
            **PARAMS,
            "embedder": "clip:/data/models/vit-b32",
            "experiment_treatment_share": "0.3",
            "experiment_dir": "/data/red/experiment",
            "teacher_temperature": "0.01",
        },
    )
    sent = kfp_api.runs[run.run_id]["runtime_config"]["parameters"]
    assert sent["embedder"] == "clip:/data/models/vit-b32" and sent["experiment_treatment_share"] == 0.3
    assert sent["experiment_dir"] == "/data/red/experiment" and sent["teacher_temperature"] == 0.01
    for share in ("1", "1.5", "-0.2", "nan"):  # 0 is "no experiment"; a full or negative share splits nothing
        with pytest.raises(SilversetInputError, match="--param experiment_treatment_share: must be 0"):
            cluster.submit(host=kfp_api.host, package=package, params={**PARAMS, "experiment_treatment_share": share})
    assert len(kfp_api.runs) == 1
