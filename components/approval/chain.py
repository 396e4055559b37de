"""The audit hash chain: verify its links, and derive each request's decision from it alone.

The chain is the only record of decisions. A request row says what was submitted; whether it is
approved is read from the chain: the first decision entry for that digest that the policy allows
(an approver of the request, before it expires, not the submitter unless the spec allows it).
Without a valid decision a request is pending until ``expires_at`` and expired after it.

A hash chain detects edits, deletions, insertions and reordering of entries that are followed by
another entry; dropping entries from the end leaves a shorter valid chain, which can only remove
decisions (fail closed), and a reader who can rewrite every entry can forge a new chain: the chain
is tamper-evident, not tamper-proof. Who may append is up to the store (on Kubernetes: RBAC).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Iterable

from silverset.components.common.identity import identity_problem

from .model import GENESIS_HASH, Action, ApprovalRequest, AuditEntry, State

EXPIRY_ACTOR = "system:expiry"


@dataclass(frozen=True)
class BrokenLink:
    """The first place the audit chain (or a request row) disagrees with itself."""

    index: int | None  # position of the entry in the chain; None for a request row
    candidate_digest: str
    problem: str

    def __str__(self) -> str:
        where = f"audit entry {self.index}" if self.index is not None else "request row"
        return f"{where} for {self.candidate_digest}: {self.problem}"


def head_hash(entries: list[AuditEntry]) -> str:
    """The hash the next entry must carry as ``prev_hash``."""
    return entries[-1].hash if entries else GENESIS_HASH


def decision_problem(request: ApprovalRequest, entry: AuditEntry) -> str | None:
    """Why the policy does not allow ``entry`` as a decision on ``request``, or None when it does."""
    to = entry.action.decides
    if to is None:
        return f"'{entry.action.value}' is not a decision"
    problem = identity_problem(entry.actor)
    if problem is not None:
        return f"actor {entry.actor!r} {problem}"
    if entry.actor not in request.approvers:
        return f"{entry.actor!r} is not an approver for {request.key} (approvers: {', '.join(request.approvers)})"
    if to is State.approved and entry.actor == request.submitter and not request.allow_self_approval:
        return f"{entry.actor!r} submitted this candidate; self-approval is not allowed for {request.key}"
    if entry.at >= request.expires_at:
        return (
            f"decided at {entry.at:%Y-%m-%d %H:%M:%S}Z, "
            f"after the request expired at {request.expires_at:%Y-%m-%d %H:%M:%S}Z"
        )
    if entry.at < request.created_at:
        return f"decided at {entry.at:%Y-%m-%d %H:%M:%S}Z, before the request was submitted"
    return None


def verify(
    entries: list[AuditEntry], requests: Iterable[ApprovalRequest], *, submissions_chained: bool
) -> BrokenLink | None:
    """The first broken link, or None when the chain and every request row agree.

    Checks, in chain order: each ``prev_hash`` is the previous entry's hash (nothing removed, inserted
    or moved), each ``hash`` matches its content (nothing edited), each entry names an existing request
    whose content still has the ``request_hash`` the entry was made against, and each decision is one
    the policy allows. Then each request row: it records no decision (decisions live only in the chain)
    and, where the store chains submissions, the chain holds its submit entry.
    """
    by_digest = {r.candidate_digest: r for r in requests}
    submitted: set[str] = set()
    prev = GENESIS_HASH
    for index, entry in enumerate(entries):
        digest = entry.candidate_digest
        if entry.prev_hash != prev:
            return BrokenLink(
                index,
                digest,
                f"prev_hash {entry.prev_hash[:16]} is not the hash of the entry before it "
                f"({prev[:16]}): an entry was removed, inserted or moved",
            )
        if entry.hash != entry.content_hash():
            return BrokenLink(
                index, digest, f"hash {entry.hash[:16]} does not match the entry's content: the entry was edited"
            )
        prev = entry.hash
        request = by_digest.get(digest)
        if request is None:
            return BrokenLink(index, digest, "names a request that no longer exists")
        if entry.request_hash != request.request_hash:
            return BrokenLink(index, digest, "the request was changed after this entry was made (request_hash differs)")
        if entry.action is Action.submit:
            if digest in submitted:
                return BrokenLink(index, digest, "a second submit entry for the same request")
            submitted.add(digest)
            continue
        if submissions_chained and digest not in submitted:
            return BrokenLink(index, digest, f"'{entry.action.value}' before the request's submit entry")
        problem = decision_problem(request, entry)
        if problem is not None:
            return BrokenLink(index, digest, f"'{entry.action.value}' the policy does not allow: {problem}")
    for digest, request in by_digest.items():
        if request.state is not State.pending or request.decided_by or request.decided_at or request.reason:
            return BrokenLink(
                None,
                digest,
                f"the stored request says '{request.state.value}' (decided by {request.decided_by!r}); "
                "decisions live only in the audit chain",
            )
        if submissions_chained and digest not in submitted:
            return BrokenLink(None, digest, "the audit chain holds no submit entry for this request")
    return None


def derive(request: ApprovalRequest, entries: Iterable[AuditEntry], *, now: datetime) -> ApprovalRequest:
    """``request`` with its state and decision as the chain says: the first allowed decision for its
    digest; else expired once ``now`` reaches ``expires_at``; else pending."""
    submitted = request.as_submitted()
    for entry in entries:
        if entry.candidate_digest != request.candidate_digest or entry.action.decides is None:
            continue
        if (
            entry.hash != entry.content_hash()
            or entry.request_hash != submitted.request_hash
            or decision_problem(submitted, entry) is not None
        ):
            continue  # an edited entry, or not a decision on this request that the policy allows; verify() reports it
        return submitted.model_copy(
            update={
                "state": entry.action.decides,
                "decided_by": entry.actor,
                "decided_at": entry.at,
                "reason": entry.reason,
            }
        )
    if now >= submitted.expires_at:
        return submitted.model_copy(
            update={
                "state": State.expired,
                "decided_by": EXPIRY_ACTOR,
                "decided_at": submitted.expires_at,
                "reason": f"no decision within {submitted.expires_at - submitted.created_at}",
            }
        )
    return submitted
