"""Approval policy: digest binding, approvers only from the gate's spec, self-approval, expiry, idempotence,
identities."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from silverset.components.approval.model import Action, GateResult, State
from silverset.components.approval.policy import ApprovalService
from silverset.components.approval.store import SqliteApprovalStore, open_store
from silverset.components.common.errors import SilversetInputError
from silverset.components.common.spec import example_specs_dir, load_spec, parse_spec

A = "sha256:" + "a" * 64
B = "sha256:" + "b" * 64


class Clock:
    def __init__(self):
        self.t = datetime(2026, 1, 1, tzinfo=timezone.utc)

    def __call__(self):
        return self.t


@pytest.fixture
def service(tmp_path):
    return ApprovalService(SqliteApprovalStore(tmp_path / "approvals.db"), now=Clock())


@pytest.fixture
def spec():
    return load_spec(example_specs_dir() / "red_dominant.yaml")  # approvers alice, bob; 72 h timeout


def spec_with(spec, **changes):
    """The example spec with some fields changed (validated like a YAML file)."""
    return parse_spec(spec.model_copy(update=changes).normalized_yaml(), source="changed.yaml")


def gate(digest, spec=None):
    return GateResult(
        passed=True,
        reasons=[],
        metrics={"f1_retention": 0.97},
        candidate_digest=digest,
        spec_content_hash=spec.content_hash if spec else None,
    )


def test_approval_is_bound_to_the_exact_digest(service, spec):
    service.submit(gate=gate(A, spec), spec=spec, submitter="carol@silverset.dev", report_uri="file:///r.html")
    service.submit(gate=gate(B, spec), spec=spec, submitter="carol@silverset.dev")
    service.approve(A, user="alice@silverset.dev", reason="retention fine")
    assert service.is_approved(A, attribute="red_dominant", attribute_version=1, spec_content_hash=spec.content_hash)
    assert not service.is_approved(B) and not service.is_approved("sha256:" + "c" * 64)
    assert not service.is_approved(A, attribute_version=2)
    assert not service.is_approved(A, spec_content_hash="f" * 64)
    shown = service.get(A[:15])  # a unique prefix resolves
    assert (
        shown.state is State.approved
        and shown.decided_by == "alice@silverset.dev"
        and shown.report_uri == "file:///r.html"
    )


def test_only_the_specs_approvers_decide_and_not_the_submitter(service, spec):
    service.submit(gate=gate(A, spec), spec=spec, submitter="alice@silverset.dev")
    with pytest.raises(SilversetInputError, match="not an approver"):
        service.approve(A, user="mallory@evil.dev", reason="trust me")
    with pytest.raises(SilversetInputError, match="self-approval"):
        service.approve(A, user="alice@silverset.dev", reason="mine")
    assert service.get(A).state is State.pending
    assert service.approve(A, user="bob@silverset.dev", reason="ok").state is State.approved


def test_a_second_submit_cannot_change_the_approvers(service, spec):
    service.submit(gate=gate(A, spec), spec=spec, submitter="carol@silverset.dev")
    with_mallory = spec_with(spec, approvers=("mallory@evil.dev",))
    with pytest.raises(SilversetInputError, match="already requested under spec"):
        service.submit(gate=gate(A), spec=with_mallory, submitter="mallory@evil.dev")
    with pytest.raises(SilversetInputError, match="already requested for red_dominant@v1, not red_dominant@v2"):
        service.submit(gate=gate(A), spec=spec_with(spec, version=2), submitter="carol@silverset.dev")
    # The same spec again is idempotent, and the request still lists only the spec's approvers.
    again = service.submit(gate=gate(A, spec), spec=spec, submitter="dave@silverset.dev")
    assert again.approvers == ("alice@silverset.dev", "bob@silverset.dev") and again.submitter == "carol@silverset.dev"
    with pytest.raises(SilversetInputError, match="not an approver"):
        service.approve(A, user="mallory@evil.dev", reason="mine now")


def test_the_first_submitter_cannot_fix_an_approver_list_the_spec_does_not_give(service, spec):
    # Mallory submits first with a spec of her own: the real run's submit for the same digest is refused,
    # so her list never silently stands for the real spec's request.
    with_mallory = spec_with(spec, approvers=("mallory@evil.dev",))
    service.submit(gate=gate(A, with_mallory), spec=with_mallory, submitter="ci@silverset.dev")
    with pytest.raises(SilversetInputError, match="already requested under spec"):
        service.submit(gate=gate(A, spec), spec=spec, submitter="ci@silverset.dev")
    service.approve(A, user="mallory@evil.dev", reason="mine")
    # ...and an approval under her spec does not release the gate that ran with the real one.
    assert not service.is_approved(
        A, attribute="red_dominant", attribute_version=1, spec_content_hash=spec.content_hash
    )


def test_submit_refuses_a_spec_other_than_the_gates(service, spec):
    other = spec_with(spec, approvers=("mallory@evil.dev",))
    with pytest.raises(SilversetInputError, match="not the spec the gate ran with"):
        service.submit(gate=gate(A, spec), spec=other, submitter="ci@silverset.dev")
    assert service.store.load(A) is None


@pytest.mark.parametrize(
    "bad",
    ["", " ", "alice @silverset.dev", "alice@silverset.dev\n", "ali\x00ce", "ali\u200bce@silverset.dev", "a" * 257],
)
def test_malformed_identities_are_refused_everywhere(service, spec, bad):
    with pytest.raises(SilversetInputError, match="approvers.*identity|approver"):
        spec_with(spec, approvers=("bob@silverset.dev", bad))
    with pytest.raises(SilversetInputError, match="submitter: identity"):
        service.submit(gate=gate(A, spec), spec=spec, submitter=bad)
    service.submit(gate=gate(A, spec), spec=spec, submitter="carol@silverset.dev")
    with pytest.raises(SilversetInputError, match="--as: identity"):
        service.approve(A, user=bad, reason="ok")
    assert service.get(A).state is State.pending


def test_an_empty_approver_cannot_approve(service, spec):
    # The case: `approvers: ['']` with `--as ''`; the spec itself no longer loads.
    text = spec.normalized_yaml().replace("- alice@silverset.dev", "- ''")
    with pytest.raises(SilversetInputError, match=r"field 'approvers': approver '' is empty"):
        parse_spec(text, source="empty.yaml")


def test_decisions_are_idempotent_final_and_audited(service, spec):
    service.submit(gate=gate(A, spec), spec=spec, submitter="carol@silverset.dev")
    service.reject(A, user="bob@silverset.dev", reason="report shows drift")
    service.reject(A, user="bob@silverset.dev", reason="again")  # no change, no new audit entry
    with pytest.raises(SilversetInputError, match="decisions are final"):
        service.approve(A, user="alice@silverset.dev", reason="overrule")
    audit = service.audit(A)
    assert [(e.actor, e.action, e.previous_state, e.new_state) for e in audit] == [
        ("carol@silverset.dev", Action.submit, None, State.pending),
        ("bob@silverset.dev", Action.reject, State.pending, State.rejected),
    ]
    assert audit[1].reason == "report shows drift" and audit[1].prev_hash == audit[0].hash
    assert service.verify_audit() is None


def test_pending_request_expires_for_everyone_without_a_write(service, spec):
    service.submit(gate=gate(A, spec), spec=spec, submitter="carol@silverset.dev")
    service.now.t += timedelta(hours=71)
    assert service.get(A).state is State.pending
    service.now.t += timedelta(hours=2)
    request = service.get(A)
    assert request.state is State.expired and request.decided_by == "system:expiry"
    assert [e.action for e in service.audit(A)] == [Action.submit]  # nothing was written
    with pytest.raises(SilversetInputError, match="after the request expired"):
        service.approve(A, user="alice@silverset.dev", reason="too late")
    assert not service.is_approved(A)


def test_auto_approval_is_marked_in_the_audit_log(service, spec):
    service.submit(gate=gate(A, spec), spec=spec, submitter="demo")
    service.approve(A, user="alice@silverset.dev", reason="demo", auto=True)
    assert service.audit(A)[-1].action is Action.auto_approve and service.is_approved(A)


def test_concurrent_deciders_see_one_decision(tmp_path, spec):
    """Two approvers read the same head; the later append is refused (CAS on the chain head) and re-reads."""
    from silverset.components.approval.model import AuditEntry
    from silverset.components.approval.store import Conflict

    store = SqliteApprovalStore(tmp_path / "a.db")
    service = ApprovalService(store)
    request = service.submit(gate=gate(A, spec), spec=spec, submitter="carol@silverset.dev")
    _entries, head = store.chain()
    service.reject(A, user="bob@silverset.dev", reason="no")
    stale = AuditEntry(
        at=request.created_at,
        actor="alice@silverset.dev",
        action=Action.approve,
        candidate_digest=A,
        previous_state=State.pending,
        new_state=State.approved,
        request_hash=request.request_hash,
    )
    with pytest.raises(Conflict):
        store.append(stale, after=head)
    assert service.get(A).state is State.rejected


@pytest.mark.parametrize(
    "uri,problem",
    [
        ("k8s:silverset", "unknown scheme 'k8s:'"),
        ("s3://bucket/a.db", "unknown scheme 's3:'"),
        ("kubernetes://", "names no valid namespace"),
        ("kubernetes://Bad_NS", "names no valid namespace"),
        ("sqlite:a.db", "write sqlite:///relative.db"),
    ],
)
def test_store_uris_are_validated(uri, problem):
    with pytest.raises(SilversetInputError, match="approval store") as info:
        open_store(uri)
    assert problem in str(info.value)


def test_an_older_store_file_is_refused_by_name(tmp_path):
    import sqlite3

    path = tmp_path / "old.db"
    sqlite3.connect(path).execute(
        "CREATE TABLE approval_requests (candidate_digest TEXT PRIMARY KEY, body TEXT, revision INTEGER)"
    )
    with pytest.raises(SilversetInputError, match="older Silverset"):
        SqliteApprovalStore(path)


def test_a_decision_needs_a_short_reason(service, spec):
    service.submit(gate=gate(A, spec), spec=spec, submitter="carol@silverset.dev")
    with pytest.raises(SilversetInputError, match="--reason: a decision needs a reason"):
        service.approve(A, user="alice@silverset.dev", reason="  ")
    with pytest.raises(SilversetInputError, match="--reason: is 2001 characters; at most 2000"):
        service.approve(A, user="alice@silverset.dev", reason="x" * 2001)
    assert service.get(A).state is State.pending


def test_a_sqlite_decision_must_name_its_approver(service, spec):
    service.submit(gate=gate(A, spec), spec=spec, submitter="carol@silverset.dev")
    with pytest.raises(SilversetInputError, match="--as: this store cannot tell who you are"):
        service.approve(A, reason="ok")
