"""The approval step: waits with backoff until a decision, ends "expired" at the spec's expiry, posts to a webhook;
auto-approval only on the demo's SQLite store."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from silverset.components.approval.model import Action, GateResult, State
from silverset.components.approval.notify import Notifier
from silverset.components.approval.policy import ApprovalService
from silverset.components.approval.store import SqliteApprovalStore
from silverset.components.approval.wait import ApprovalOptions, run, wait_for_decision
from silverset.components.common.errors import SilversetInputError
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
    service.submit(
        gate=GateResult(passed=True, candidate_digest=A, spec_content_hash=spec.content_hash), spec=spec, submitter="ci"
    )
    delays = []

    def sleep(seconds):
        delays.append(seconds)
        if len(delays) == 4:  # a human decides while the step waits
            service.approve(A, user="alice@silverset.dev", reason="looks good")

    request = wait_for_decision(service, A, initial_delay_s=1, max_delay_s=5, sleep=sleep)
    assert request.state is State.approved and delays == [1, 2, 4, 5]
    assert [m["event"] for m in received] == ["submitted", "approved"]
    assert received[1]["candidate_digest"] == A and "alice@silverset.dev" in received[1]["text"]


def gate_file(path, *, passed=True, reasons=(), spec=None):
    spec = spec or load_spec(example_specs_dir() / "red_dominant.yaml")
    path.write_text(
        json.dumps(
            {
                "passed": passed,
                "reasons": list(reasons),
                "metrics": {},
                "candidate_digest": A,
                "spec_content_hash": spec.content_hash,
            }
        )
    )
    return str(path)


def test_the_step_ends_expired_at_the_specs_expiry_without_writing_the_audit(tmp_path, webhook):
    """Nobody decides: the step's sleeps stop at expires_at (72 h for this spec), it returns "expired",
    and the audit holds only the submit (the expiry is derived, not written)."""
    clock = {"t": datetime(2026, 1, 1, tzinfo=timezone.utc)}
    url, received = webhook
    store = SqliteApprovalStore(tmp_path / "a.db")
    service = ApprovalService(store, now=lambda: clock["t"], notifier=Notifier(url))
    slept = []

    def sleep(seconds):
        slept.append(seconds)
        clock["t"] += timedelta(seconds=seconds)

    outcome = run(
        gate_result=gate_file(tmp_path / "gate.json"),
        attribute_spec=str(example_specs_dir() / "red_dominant.yaml"),
        approval_store="unused",
        submitter="ci@silverset.dev",
        service=service,
        sleep=sleep,
        options=ApprovalOptions(initial_delay_s=600, max_delay_s=3600),
    )
    assert outcome.decision is State.expired and outcome.decided_by == "system:expiry"
    assert sum(slept) == pytest.approx(72 * 3600, abs=1) and clock["t"] - outcome.expires_at < timedelta(seconds=1)
    assert [e.action for e in service.audit(A)] == [Action.submit]
    assert [m["event"] for m in received] == ["submitted", "expired"] and received[1]["state"] == "expired"


def test_step_rejects_a_failed_gate_and_auto_approves_for_the_demo(tmp_path):
    spec = str(example_specs_dir() / "red_dominant.yaml")
    out = run(
        gate_result=gate_file(tmp_path / "failed.json", passed=False, reasons=["latency"]),
        attribute_spec=spec,
        approval_store=str(tmp_path / "a.db"),
        submitter="ci",
    )
    assert out.decision == "rejected" and out.reason == "latency" and out.decided_by == "gate"
    ok = tmp_path / "gate"
    ok.mkdir()
    gate_file(ok / "gate.json")
    out = run(
        gate_result=str(ok),
        attribute_spec=spec,
        approval_store=str(tmp_path / "a.db"),
        submitter="demo",
        options=ApprovalOptions(auto_approve_as="alice@silverset.dev"),
    )
    assert out.decision == "approved" and out.decided_by == "alice@silverset.dev"
    assert ApprovalService(SqliteApprovalStore(tmp_path / "a.db")).audit(A)[-1].action is Action.auto_approve


def test_auto_approval_is_refused_off_the_demo_store(tmp_path):
    """A cluster store never takes a scripted approval, whatever name the run parameter carries."""
    with pytest.raises(
        SilversetInputError, match="auto_approve_as: auto-approval is for the local demo's SQLite store only"
    ):
        run(
            gate_result=gate_file(tmp_path / "gate.json"),
            attribute_spec=str(example_specs_dir() / "red_dominant.yaml"),
            approval_store="kubernetes://silverset-control",
            submitter="ci",
            options=ApprovalOptions(auto_approve_as="alice@silverset.dev"),
        )


def test_the_step_refuses_a_gate_without_its_specs_hash(tmp_path):
    gate = tmp_path / "gate.json"
    gate.write_text(json.dumps({"passed": True, "candidate_digest": A}))
    with pytest.raises(SilversetInputError, match="records no spec_content_hash"):
        run(
            gate_result=str(gate),
            attribute_spec=str(example_specs_dir() / "red_dominant.yaml"),
            approval_store=str(tmp_path / "a.db"),
            submitter="ci",
        )
    assert not ApprovalService(SqliteApprovalStore(tmp_path / "a.db")).list()


def test_the_step_refuses_a_spec_other_than_the_gates(tmp_path):
    spec = load_spec(example_specs_dir() / "red_dominant.yaml")
    other = tmp_path / "other.yaml"
    other.write_text(spec.normalized_yaml().replace("- bob@silverset.dev", "- mallory@evil.dev"))
    with pytest.raises(SilversetInputError, match="not the spec the gate ran with"):
        run(
            gate_result=gate_file(tmp_path / "gate.json", spec=spec),
            attribute_spec=str(other),
            approval_store=str(tmp_path / "a.db"),
            submitter="ci",
        )
