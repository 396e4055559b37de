"""The exit handler's webhook: a person gets the run's outcome and why; clean-up touches only this run's things."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from silverset.components.common import run_lock
from silverset.components.common.artifacts import IndexManifest, PlanSummary, write_index_manifest, write_plan
from silverset.components.incremental import plan as incremental_plan
from silverset.components.notify import webhook


@pytest.fixture()
def receiver():
    """A loopback webhook endpoint; answers 503 to the first ``fail_first`` posts."""
    received: list[dict] = []
    config = {"fail_first": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if config["fail_first"] > 0:
                config["fail_first"] -= 1
                self.send_response(503)
                self.end_headers()
                return
            received.append(json.loads(body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook", received, config
    server.shutdown()


def plan_of(**fields) -> PlanSummary:
    """A plan of 10 videos, 3 to do (new), as the plan step writes it; ``fields`` override."""
    counts = {
        "videos": 10,
        "todo": 3,
        "new": 3,
        "changed": 0,
        "unchanged": 7,
        "removed": 0,
        "errors": 0,
        "relabel_all": False,
        "up_to_date": False,
        "corpus_digest": "abc",
        "todo_manifest": "",
        "out_dir": "",
    }
    return PlanSummary(**(counts | fields))


def _run(workdir, run_id: str, **plan_fields) -> tuple[str, object]:
    """A planned run: plans/<run_id>/plan.json naming its run folder; returns (run_dir, plan_dir Path)."""
    run_dir = workdir / "runs" / "abc"
    plan_dir = workdir / "plans" / run_id
    plan_dir.mkdir(parents=True)
    write_plan(plan_dir / "plan.json", plan_of(run_dir=str(run_dir), run_id=run_id, **plan_fields))
    run_dir.mkdir(parents=True, exist_ok=True)
    return str(run_dir), plan_dir


def _write(path, value) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value))


def test_a_failed_run_is_posted_with_its_error_releases_its_lock_and_cleans_only_its_own_folders(tmp_path, receiver):
    url, received, config = receiver
    config["fail_first"] = 2  # the webhook is flaky: two 503s, then it answers
    state_dir, work = str(tmp_path / "state"), tmp_path / "work"
    run_lock.open_run_lock(state_dir).acquire("run-7")
    run_dir, plan_dir = _run(work, "run-7")
    (tmp_path / "work" / "runs" / "abc" / "frames" / "._staging-frames-abc").mkdir(parents=True)
    other = work / "runs" / "def" / "._staging-embeddings-123"  # a live run's half-written output
    other.mkdir(parents=True)
    result = webhook.run(
        run_id="run-7",
        status="FAILED",
        error_message="distill: out of memory",
        webhook_url=url,
        workdir=str(work),
        state_dir=state_dir,
        options=webhook.NotifyOptions(backoff_s=0.01),
    )
    assert result.webhook_status == 200 and result.attempts == 3
    assert received[0]["status"] == "FAILED" and received[0]["outcome"] == "failed"
    assert "distill: out of memory" in received[0]["text"] and received[0]["reasons"] == ["distill: out of memory"]
    assert result.released_lock and result.removed_staging == 1 and other.is_dir()
    assert not (tmp_path / "state" / incremental_plan.COMPLETED_FILE).exists()  # notify never marks the corpus done
    assert json.loads((plan_dir / "run_summary.json").read_text())["outcome"] == "failed"
    run_lock.open_run_lock(state_dir).acquire("run-8")  # the next scheduled run can start


def test_a_locked_out_run_reports_the_holder_and_touches_nothing(tmp_path, receiver):
    url, received, _ = receiver
    state_dir, work = str(tmp_path / "state"), tmp_path / "work"
    run_lock.open_run_lock(state_dir).acquire("scheduled")
    holder_dir, _ = _run(work, "scheduled")
    staging = work / "runs" / "abc" / "._staging-frames-1"
    staging.mkdir()
    lockout = work / "plans" / "manual"
    _write(
        lockout / "plan.json",
        {
            "locked_out": True,
            "run_id": "manual",
            "holder": "scheduled",
            "since": "2027-01-15T08:00:00Z",
            "message": "run lock 'x': held by run 'scheduled' since 2027-01-15T08:00:00Z",
        },
    )
    result = webhook.run(
        run_id="manual",
        status="FAILED",
        error_message="StateLocked",
        webhook_url=url,
        workdir=str(work),
        state_dir=state_dir,
    )
    assert result.outcome == "locked" and not result.released_lock and result.removed_staging == 0
    assert received[0]["outcome"] == "locked" and "held by run 'scheduled'" in received[0]["text"]
    assert staging.is_dir() and not (work / "run_summary.json").exists()
    assert run_lock.open_run_lock(state_dir).holder().holder == "scheduled"


@pytest.mark.parametrize(
    "records, outcome, says",
    [
        (
            {"teacher_gate/gate.json": {"passed": False, "reasons": ["F1 0.41 < 0.60"]}},
            "teacher_gate_failed",
            "teacher gate FAILED (F1 0.41 < 0.60)",
        ),
        (
            {
                "teacher_gate/gate.json": {"passed": True, "reasons": []},
                "student_gate/gate.json": {"passed": False, "reasons": ["F1 retention 0.80 < 0.95"]},
            },
            "student_gate_failed",
            "student gate FAILED (F1 retention 0.80 < 0.95)",
        ),
        (
            {
                "student_gate/gate.json": {"passed": True, "reasons": []},
                "approval/decision.json": {
                    "decision": "rejected",
                    "decided_by": "carol",
                    "reason": "too many false positives",
                    "candidate_digest": "sha256:1",
                },
            },
            "approval_rejected",
            "approval rejected by carol",
        ),
        (
            {
                "student_gate/gate.json": {"passed": True, "reasons": []},
                "approval/decision.json": {"decision": "expired", "decided_by": "", "reason": "no decision in 72 h"},
            },
            "approval_expired",
            "approval expired by nobody",
        ),
        (
            {
                "approval/decision.json": {"decision": "approved", "decided_by": "carol"},
                "deploy/deploy.json": {
                    "status": "failed",
                    "error": "GateFailed: canary did not become ready; rolled back to v1",
                },
            },
            "deploy_failed",
            "deploy FAILED (GateFailed: canary did not become ready; rolled back to v1)",
        ),
    ],
)
def test_the_summary_names_the_stage_that_stopped_the_promotion_and_why(tmp_path, receiver, records, outcome, says):
    url, received, _ = receiver
    run_dir, _ = _run(tmp_path, "r")
    for name, value in records.items():
        _write(tmp_path / "runs" / "abc" / name, value)
    webhook.run(run_id="r", status="FAILED", webhook_url=url, workdir=str(tmp_path))
    assert received[0]["outcome"] == outcome and says in received[0]["text"]
    assert f"FAILED, {outcome.replace('_', ' ')}" in received[0]["text"]
    assert received[0]["reasons"] and received[0]["run_dir"] == run_dir


def test_a_promoted_run_reports_spend_approver_and_the_live_version(tmp_path, receiver):
    url, received, _ = receiver
    _run(tmp_path, "r")
    runs = tmp_path / "runs" / "abc"
    for shard, (outputs, cost) in enumerate([(2, 0.25), (1, 0.125)]):
        _write(
            runs / "teacher" / "stats" / f"shard-0000{shard}-of-00002.json",
            {
                "model_id": "gemini:gemini-3-pro",
                "items": 2,
                "processed": 2,
                "outputs": outputs,
                "errors": 2 - outputs,
                "requests": 2,
                "cost_usd": cost,
                "resumed": 0,
            },
        )
    _write(runs / "teacher_gate" / "gate.json", {"passed": True, "reasons": []})
    _write(runs / "student_gate" / "gate.json", {"passed": True, "reasons": []})
    _write(
        runs / "approval" / "decision.json",
        {"decision": "approved", "decided_by": "carol", "reason": "ok", "candidate_digest": "sha256:9"},
    )
    write_index_manifest(
        runs / "index",
        IndexManifest(
            format_version=1,
            version="v-123",
            attribute="red_dominant",
            model_digest="d",
            digest="x",
            count=3,
            dimensions=4,
        ),
    )
    _write(
        runs / "deploy" / "deploy.json",
        {"status": "deployed", "version": "v-123", "previous": "v-100", "changed": True},
    )
    result = webhook.run(run_id="r", status="SUCCEEDED", webhook_url=url, workdir=str(tmp_path))
    body = received[0]
    assert result.outcome == body["outcome"] == "promoted"
    assert (
        body["annotate"]["outputs"] == 3 and body["annotate"]["cost_usd"] == 0.375 and body["annotate"]["shards"] == 2
    )
    assert body["approval"]["decided_by"] == "carol" and body["deploy"]["version"] == "v-123"
    assert body["text"] == (
        "silverset attribute-promotion run r: SUCCEEDED, promoted; 3 of 10 videos to process; "
        "teacher labelled 3 (4 requests, $0.38); teacher gate passed; student gate passed; "
        "approval approved by carol; index v-123; deployed v-123 (previous v-100)"
    )
    assert json.loads((tmp_path / "run_summary.json").read_text())["outcome"] == "promoted"


@pytest.mark.parametrize(
    ("name", "value", "named"),
    [
        ("deploy/deploy.json", {"status": "live", "version": "v-2"}, "deploy record"),
        ("approval/decision.json", {"decision": "maybe"}, "approval decision"),
        ("teacher/stats/shard-00000-of-00001.json", {"processed": "many"}, "shard stats"),
    ],
)
def test_an_unreadable_stage_record_is_reported_not_raised(tmp_path, receiver, name, value, named):
    """The summary still goes out when a stage left a record it cannot read, and its reason names the file."""
    url, received, _ = receiver
    run_dir, _ = _run(tmp_path, "r")
    _write(tmp_path / "runs" / "abc" / name, value)
    result = webhook.run(run_id="r", status="SUCCEEDED", webhook_url=url, workdir=str(tmp_path))
    body = received[0]
    assert result.outcome == body["outcome"] == "failed"
    assert body["reasons"][0].startswith(f"{named} '{run_dir}/{name}'")
    assert body["deploy"] == {} and body["approval"] == {} and body["annotate"] == {}


def test_an_unchanged_corpus_is_a_success_with_nothing_to_do(tmp_path, receiver):
    url, received, _ = receiver
    write_plan(
        tmp_path / "plans" / "r" / "plan.json", plan_of(up_to_date=True, todo=0, new=0, unchanged=10, run_dir="")
    )
    result = webhook.run(run_id="r", status="SUCCEEDED", webhook_url=url, workdir=str(tmp_path))
    assert result.outcome == "up_to_date" and "nothing to do" in received[0]["text"]


def test_unreachable_webhook_does_not_raise(tmp_path):
    result = webhook.run(
        run_id="r",
        status="SUCCEEDED",
        webhook_url="http://127.0.0.1:9/none",
        workdir=str(tmp_path),
        options=webhook.NotifyOptions(attempts=2, backoff_s=0.01),
    )
    assert result.webhook_status is None and result.attempts == 2 and result.outcome == "failed"
