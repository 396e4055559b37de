"""Approval policy on both stores: digest binding, allow-list, self-approval, timeout, idempotence, audit."""
from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta, timezone

import pytest

from silverset.components.approval.model import GateResult, State
from silverset.components.approval.policy import ApprovalService
from silverset.components.approval.store import KubernetesApprovalStore, SqliteApprovalStore
from silverset.components.common.errors import SilversetInputError
from silverset.components.common.spec import example_specs_dir, load_spec
from tests.fakes.kube_api_server import FakeKubeApi

A = "sha256:" + "a" * 64
B = "sha256:" + "b" * 64


class Clock:
    def __init__(self):
        self.t = datetime(2026, 1, 1, tzinfo=timezone.utc)

    def __call__(self):
        return self.t


@pytest.fixture(params=["sqlite", "kubernetes"])
def service(request, tmp_path):
    clock = Clock()
    if request.param == "sqlite":
        yield ApprovalService(SqliteApprovalStore(tmp_path / "approvals.db"), now=clock)
    else:
        with FakeKubeApi() as fake:
            yield ApprovalService(KubernetesApprovalStore("silverset", api_client=fake.api_client()), now=clock)


@pytest.fixture
def spec():
    return load_spec(example_specs_dir() / "red_dominant.yaml")  # approvers alice, bob; 72 h timeout


def gate(digest):
    return GateResult(passed=True, reasons=[], metrics={"f1_retention": 0.97}, candidate_digest=digest)


def test_approval_is_bound_to_the_exact_digest(service, spec):
    service.submit(gate=gate(A), spec=spec, submitter="carol@silverset.dev", report_uri="file:///r.html")
    service.submit(gate=gate(B), spec=spec, submitter="carol@silverset.dev")
    service.approve(A, user="alice@silverset.dev", reason="retention fine")
    assert service.is_approved(A, attribute="red_dominant", attribute_version=1)
    assert not service.is_approved(B) and not service.is_approved("sha256:" + "c" * 64)
    assert not service.is_approved(A, attribute_version=2)
    shown = service.get(A[:15])  # a unique prefix resolves
    assert shown.state is State.approved and shown.decided_by == "alice@silverset.dev" and shown.report_uri == "file:///r.html"


def test_allow_list_and_self_approval(service, spec):
    service.submit(gate=gate(A), spec=spec, submitter="alice@silverset.dev")
    with pytest.raises(SilversetInputError, match="not an approver"):
        service.approve(A, user="mallory@evil.dev", reason="trust me")
    with pytest.raises(SilversetInputError, match="self-approval"):
        service.approve(A, user="alice@silverset.dev", reason="mine")
    assert service.approve(A, user="bob@silverset.dev", reason="ok").state is State.approved


def test_decisions_are_idempotent_final_and_audited(service, spec):
    service.submit(gate=gate(A), spec=spec, submitter="carol@silverset.dev")
    service.reject(A, user="bob@silverset.dev", reason="report shows drift")
    service.reject(A, user="bob@silverset.dev", reason="again")  # no change, no new audit entry
    with pytest.raises(SilversetInputError, match="decisions are final"):
        service.approve(A, user="alice@silverset.dev", reason="overrule")
    audit = service.audit(A)
    assert [(e.actor, e.action, e.previous_state, e.new_state) for e in audit] == [
        ("carol@silverset.dev", "submit", None, State.pending),
        ("bob@silverset.dev", "reject", State.pending, State.rejected),
    ]
    assert audit[1].reason == "report shows drift"


def test_pending_request_times_out_to_rejected(service, spec):
    service.submit(gate=gate(A), spec=spec, submitter="carol@silverset.dev")
    service.now.t += timedelta(hours=71)
    assert service.get(A).state is State.pending
    service.now.t += timedelta(hours=2)
    request = service.get(A)
    assert request.state is State.rejected and request.decided_by == "system:timeout"
    assert service.audit(A)[-1].action == "timeout"
    with pytest.raises(SilversetInputError, match="decisions are final"):
        service.approve(A, user="alice@silverset.dev", reason="too late")


def test_auto_approval_is_marked_in_the_audit_log(service, spec):
    service.submit(gate=gate(A), spec=spec, submitter="demo")
    service.approve(A, user="alice@silverset.dev", reason="demo", auto=True)
    assert service.audit(A)[-1].action == "auto-approve"


def test_sqlite_audit_log_cannot_be_rewritten(tmp_path, spec):
    service = ApprovalService(SqliteApprovalStore(tmp_path / "a.db"))
    service.submit(gate=gate(A), spec=spec, submitter="carol@silverset.dev")
    db = sqlite3.connect(tmp_path / "a.db")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("UPDATE approval_audit SET body = '{}'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("DELETE FROM approval_audit")


def test_kubernetes_store_uses_resource_version_concurrency(spec):
    with FakeKubeApi() as fake:
        store = KubernetesApprovalStore("silverset", api_client=fake.api_client())
        alice = ApprovalService(store)
        alice.submit(gate=gate(A), spec=spec, submitter="carol@silverset.dev")
        request, revision = store.load(A)
        # Bob decides between Alice's read and her write: her stale write gets 409 and she re-reads.
        ApprovalService(KubernetesApprovalStore("silverset", api_client=fake.api_client())).reject(A, user="bob@silverset.dev", reason="no")
        from silverset.components.approval.store import Conflict
        from silverset.components.approval.model import AuditEntry

        with pytest.raises(Conflict):
            store.replace(request.model_copy(update={"state": State.approved}), revision,
                          AuditEntry(at=request.created_at, actor="alice@silverset.dev", action="approve", candidate_digest=A,
                                     previous_state=State.pending, new_state=State.approved))
        assert alice.get(A).state is State.rejected
        cm = fake.objects[("ConfigMap", "silverset", "silverset-approval-" + "a" * 40)]
        assert cm["metadata"]["labels"]["silverset.dev/state"] == "rejected"
