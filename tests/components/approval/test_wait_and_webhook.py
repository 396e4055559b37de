"""The approval step: waits with backoff until a decision, times out to rejected, posts to a webhook."""
from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from silverset.components.approval.model import GateResult, State
from silverset.components.approval.notify import Notifier
from silverset.components.approval.policy import ApprovalService
from silverset.components.approval.store import SqliteApprovalStore
from silverset.components.approval.wait import run, wait_for_decision
from silverset.components.common.spec import example_specs_dir, load_spec

A = "sha256:" + "a" * 64


@pytest.fixture
def webhook():
    received = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    server.shutdown()


def test_wait_backs_off_until_approved_and_webhook_hears_each_event(tmp_path, webhook):
    url, received = webhook
    service = ApprovalService(SqliteApprovalStore(tmp_path / "a.db"), notifier=Notifier(url))
    spec = load_spec(example_specs_dir() / "red_dominant.yaml")
    service.submit(gate=GateResult(passed=True, candidate_digest=A), spec=spec, submitter="ci")
    delays = []

    def sleep(seconds):
        delays.append(seconds)
        if len(delays) == 4:  # a human decides while the step waits
            service.approve(A, user="alice@silverset.dev", reason="looks good")

    request = wait_for_decision(service, A, initial_delay_s=1, max_delay_s=5, sleep=sleep)
    assert request.state is State.approved and delays == [1, 2, 4, 5]
    assert [m["event"] for m in received] == ["submitted", "approved"]
    assert received[1]["candidate_digest"] == A and "alice@silverset.dev" in received[1]["text"]


def test_wait_ends_rejected_when_the_request_times_out(tmp_path):
    clock = {"t": datetime(2026, 1, 1, tzinfo=timezone.utc)}
    service = ApprovalService(SqliteApprovalStore(tmp_path / "a.db"), now=lambda: clock["t"])
    spec = load_spec(example_specs_dir() / "red_dominant.yaml")
    service.submit(gate=GateResult(passed=True, candidate_digest=A), spec=spec, submitter="ci")

    def sleep(seconds):
        clock["t"] += timedelta(seconds=seconds)

    request = wait_for_decision(service, A, initial_delay_s=600, max_delay_s=3600, sleep=sleep)
    assert request.state is State.rejected and request.decided_by == "system:timeout"
    assert clock["t"] >= request.expires_at


def test_step_rejects_a_failed_gate_and_auto_approves_for_the_demo(tmp_path):
    spec = str(example_specs_dir() / "red_dominant.yaml")
    failed = tmp_path / "failed.json"
    failed.write_text(json.dumps({"passed": False, "reasons": ["latency"], "metrics": {}, "candidate_digest": A}))
    out = run(gate=str(failed), attribute=spec, store=str(tmp_path / "a.db"), submitter="ci")
    assert out["decision"] == "rejected" and out["reason"] == "latency"
    ok = tmp_path / "gate"
    ok.mkdir()
    (ok / "gate.json").write_text(json.dumps({"passed": True, "reasons": [], "metrics": {}, "candidate_digest": A}))
    out = run(gate=str(ok), attribute=spec, store=str(tmp_path / "a.db"), submitter="demo", auto_approve_as="alice@silverset.dev")
    assert out["decision"] == "approved"
    assert ApprovalService(SqliteApprovalStore(tmp_path / "a.db")).audit(A)[-1].action == "auto-approve"
