"""The audit hash chain on the SQLite store: hand edits past the triggers are found, and decisions come from the chain.

Each tamper test does what the issue saw done: drop the append-only triggers, change the file by hand,
then ask the service, the CLI (`approvals audit --verify`, exit 3) and deploy's release check.
"""

from __future__ import annotations

import json
import sqlite3

import pytest
from typer.testing import CliRunner

from silverset.components.approval.model import GateResult, State
from silverset.components.approval.policy import ApprovalService
from silverset.components.approval.store import SqliteApprovalStore
from silverset.components.common.artifacts import IndexManifest
from silverset.components.common.errors import GateFailed
from silverset.components.common.spec import example_specs_dir, load_spec
from silverset.components.deploy.deploy import check_release
from silverset.pipelines.cli import app

A = "sha256:" + "a" * 64
B = "sha256:" + "b" * 64
SPEC = example_specs_dir() / "red_dominant.yaml"  # approvers alice, bob


@pytest.fixture
def history(tmp_path):
    """A store with A approved by alice and B rejected by bob: 4 chained entries (submit A, submit B, approve A,
    reject B)."""
    spec = load_spec(SPEC)
    path = tmp_path / "approvals.db"
    service = ApprovalService(SqliteApprovalStore(path))
    for digest in (A, B):
        service.submit(
            gate=GateResult(passed=True, candidate_digest=digest, spec_content_hash=spec.content_hash),
            spec=spec,
            submitter="carol@silverset.dev",
        )
    service.approve(A, user="alice@silverset.dev", reason="retention fine")
    service.reject(B, user="bob@silverset.dev", reason="drift")
    gate = tmp_path / "gate.json"
    gate.write_text(json.dumps({"passed": True, "candidate_digest": A, "spec_content_hash": spec.content_hash}))
    return path, service, gate


def tamper(path, *statements):
    db = sqlite3.connect(path)
    for trigger in (
        "approval_audit_no_update",
        "approval_audit_no_delete",
        "approval_requests_no_update",
        "approval_requests_no_delete",
    ):
        db.execute(f"DROP TRIGGER {trigger}")
    for sql, args in statements:
        db.execute(sql, args)
    db.commit()
    db.close()


def rows(path, table):
    return sqlite3.connect(path).execute(f"SELECT rowid, body FROM {table} ORDER BY rowid").fetchall()


def verify_cli(path):
    return CliRunner().invoke(app, ["approvals", "audit", "--verify", "--store", str(path)])


def release(gate, service):
    manifest = IndexManifest(
        format_version=1,
        version="red_dominant-v1-x",
        attribute="red_dominant",
        attribute_version=1,
        model_digest=A,
        digest="d",
        count=1,
        dimensions=4,
    )
    check_release(manifest=manifest, gate_path=str(gate), approvals=service)


def test_an_intact_chain_verifies_and_releases(history):
    path, service, gate = history
    entries = service.audit()
    assert [e.action.value for e in entries] == ["submit", "submit", "approve", "reject"]
    assert all(e.prev_hash == p.hash for p, e in zip(entries, entries[1:]))
    assert service.verify_audit() is None
    result = verify_cli(path)
    assert result.exit_code == 0 and "intact: 4 entries" in result.output
    release(gate, service)  # no exception: approved on an intact chain


def test_sqlite_triggers_refuse_rewrites(history):
    path, _service, _gate = history
    db = sqlite3.connect(path)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("UPDATE approval_audit SET body = '{}'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("DELETE FROM approval_audit")
    with pytest.raises(sqlite3.DatabaseError, match="never change"):
        db.execute("UPDATE approval_requests SET body = '{}'")


def test_editing_an_audit_row_is_detected(history):
    path, service, gate = history
    rowid, body = rows(path, "approval_audit")[3]  # bob's reject of B becomes an approval
    edited = json.loads(body) | {"action": "approve", "new_state": "approved"}
    tamper(path, ("UPDATE approval_audit SET body = ? WHERE rowid = ?", (json.dumps(edited), rowid)))
    broken = service.verify_audit()
    assert (broken.index, broken.candidate_digest) == (3, B) and "was edited" in broken.problem
    result = verify_cli(path)
    assert result.exit_code == 3 and f"audit entry 3 for {B}" in result.output and "edited" in result.output
    assert not service.is_approved(B) and not service.is_approved(A)  # a broken chain releases nothing
    with pytest.raises(GateFailed, match="audit chain is broken"):
        release(gate, service)


def test_deleting_an_audit_row_is_detected(history):
    path, service, _gate = history
    rowid, _body = rows(path, "approval_audit")[1]  # the submit of B
    tamper(path, ("DELETE FROM approval_audit WHERE rowid = ?", (rowid,)))
    broken = service.verify_audit()
    assert (broken.index, broken.candidate_digest) == (1, A) and "removed, inserted or moved" in broken.problem
    result = verify_cli(path)
    assert result.exit_code == 3 and "audit entry 1" in result.output


def test_reordering_audit_rows_is_detected(history):
    path, service, _gate = history
    (r1, b1), (r2, b2) = rows(path, "approval_audit")[2:4]
    tamper(
        path,
        ("UPDATE approval_audit SET body = ? WHERE rowid = ?", (b2, r1)),
        ("UPDATE approval_audit SET body = ? WHERE rowid = ?", (b1, r2)),
    )
    broken = service.verify_audit()
    assert broken.index == 2 and broken.candidate_digest == B and "moved" in broken.problem
    assert verify_cli(path).exit_code == 3


def test_a_request_row_edited_to_approved_does_not_deploy(tmp_path):
    """The issue's case: the request body says approved, nothing in the chain says so."""
    spec = load_spec(SPEC)
    path = tmp_path / "approvals.db"
    service = ApprovalService(SqliteApprovalStore(path))
    service.submit(
        gate=GateResult(passed=True, candidate_digest=A, spec_content_hash=spec.content_hash),
        spec=spec,
        submitter="carol@silverset.dev",
    )
    _rowid, body = rows(path, "approval_requests")[0]
    edited = json.loads(body) | {"state": "approved", "decided_by": "alice@silverset.dev", "reason": "by hand"}
    tamper(path, ("UPDATE approval_requests SET body = ? WHERE candidate_digest = ?", (json.dumps(edited), A)))

    assert service.get(A).state is State.pending  # list/show read the chain, not the row
    broken = service.verify_audit()
    assert (
        broken.index is None
        and broken.candidate_digest == A
        and "decisions live only in the audit chain" in broken.problem
    )
    result = verify_cli(path)
    assert result.exit_code == 3 and "request row for" in result.output
    listed = CliRunner().invoke(app, ["approvals", "list", "--store", str(path)])
    assert "pending" in listed.output and "audit chain is broken" in listed.output
    gate = tmp_path / "gate.json"
    gate.write_text(json.dumps({"passed": True, "candidate_digest": A, "spec_content_hash": spec.content_hash}))
    with pytest.raises(GateFailed, match="no approval"):
        release(gate, service)


def test_widening_the_approvers_of_a_pending_request_is_detected(tmp_path):
    """Editing a request's approvers by hand changes its hash: the submit entry no longer matches it."""
    spec = load_spec(SPEC)
    path = tmp_path / "approvals.db"
    service = ApprovalService(SqliteApprovalStore(path))
    service.submit(
        gate=GateResult(passed=True, candidate_digest=A, spec_content_hash=spec.content_hash),
        spec=spec,
        submitter="carol@silverset.dev",
    )
    _rowid, body = rows(path, "approval_requests")[0]
    edited = json.loads(body) | {"approvers": ["alice@silverset.dev", "mallory@evil.dev"]}
    tamper(path, ("UPDATE approval_requests SET body = ? WHERE candidate_digest = ?", (json.dumps(edited), A)))
    service.approve(A, user="mallory@evil.dev", reason="the row says I may")  # the row is all a client can read
    broken = service.verify_audit()
    assert broken.index == 0 and "request was changed after this entry was made" in broken.problem
    assert not service.is_approved(A)


def test_an_approval_appended_by_hand_for_a_stranger_is_not_a_decision(history):
    """A correctly chained entry by someone outside the spec's approvers: verify names it, and it never approves."""
    path, service, _gate = history
    from silverset.components.approval.model import Action, AuditEntry

    store = service.store
    spec = load_spec(SPEC)
    service.submit(
        gate=GateResult(passed=True, candidate_digest="sha256:" + "c" * 64, spec_content_hash=spec.content_hash),
        spec=spec,
        submitter="carol@silverset.dev",
    )
    request = store.load("sha256:" + "c" * 64)
    _entries, head = store.chain()
    store.append(
        AuditEntry(
            at=request.created_at,
            actor="mallory@evil.dev",
            action=Action.approve,
            candidate_digest=request.candidate_digest,
            previous_state=State.pending,
            new_state=State.approved,
            request_hash=request.request_hash,
        ),
        after=head,
    )
    assert service.get(request.candidate_digest).state is State.pending
    broken = service.verify_audit()
    assert broken.index == 5 and "not an approver" in broken.problem


def test_audit_entries_fit_the_configmap_limit_estimate(history):
    """The Kubernetes store's docstring promises ~1,900 decisions per 1 MiB ConfigMap (one-line reasons),
    and never fewer than ~420 with the longest reason allowed."""
    from silverset.components.approval.policy import MAX_REASON_CHARS

    _path, service, _gate = history
    decisions = [e for e in service.audit() if e.action.value != "submit"]
    typical = max(len(e.model_dump_json()) + 1 for e in decisions)
    longest = (
        len(decisions[0].model_copy(update={"reason": "x" * MAX_REASON_CHARS}).sealed("0" * 64).model_dump_json()) + 1
    )
    assert 1024 * 1024 // typical >= 1_900 and 1024 * 1024 // longest >= 420
