"""Approval policy over any store: submit, approve, reject, time out; allow-list, self-approval, audit.

Every decision names one exact candidate digest; approving one candidate can never release another.
Approve and reject are idempotent (repeating the decision changes nothing and appends nothing); a
decided request is final. A pending request past ``expires_at`` becomes rejected (actor
``system:timeout``) the next time anyone reads it.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Callable

from silverset.components.common.errors import SilversetInputError
from silverset.components.common.spec import AttributeSpec

from .model import ApprovalRequest, AuditEntry, GateResult, State, utc_now
from .notify import Notifier
from .store import ApprovalStore, Conflict

log = logging.getLogger(__name__)
TIMEOUT_ACTOR = "system:timeout"
MAX_RETRIES = 20


class ApprovalService:
    def __init__(self, store: ApprovalStore, *, notifier: Notifier | None = None, now: Callable[[], datetime] = utc_now,
                 extra_approvers: tuple[str, ...] = ()):
        self.store = store
        self.notifier = notifier
        self.now = now
        self.extra_approvers = extra_approvers

    # -- reading -----------------------------------------------------------------------------
    def resolve(self, candidate: str) -> str:
        """Full digest for ``candidate`` (a digest, or a unique prefix of >= 8 characters)."""
        if self.store.load(candidate) is not None:
            return candidate
        bare = candidate.split(":", 1)[-1]
        matches = [r.candidate_digest for r in self.store.list() if r.candidate_digest.split(":", 1)[-1].startswith(bare)]
        if len(bare) < 8 or not matches:
            raise SilversetInputError(f"candidate '{candidate}'", "no approval request for that digest")
        if len(matches) > 1:
            raise SilversetInputError(f"candidate '{candidate}'", f"prefix matches {len(matches)} requests; give more of the digest")
        return matches[0]

    def get(self, candidate: str) -> ApprovalRequest:
        digest = self.resolve(candidate)
        return self._expire_if_due(digest)

    def list(self) -> list[ApprovalRequest]:
        return [self._expire_if_due(r.candidate_digest) for r in self.store.list()]

    def audit(self, candidate: str | None = None) -> list[AuditEntry]:
        return self.store.audit(self.resolve(candidate) if candidate else None)

    def is_approved(self, digest: str, *, attribute: str | None = None, attribute_version: int | None = None) -> bool:
        """True only for an approved request for exactly this digest (and attribute/version when given)."""
        loaded = self.store.load(digest)
        if loaded is None:
            return False
        request = self._expire_if_due(digest)
        return (request.state is State.approved and request.candidate_digest == digest
                and (attribute is None or request.attribute == attribute)
                and (attribute_version is None or request.attribute_version == attribute_version))

    # -- changing ----------------------------------------------------------------------------
    def submit(self, *, gate: GateResult, spec: AttributeSpec, submitter: str, report_uri: str = "") -> ApprovalRequest:
        """Open a request for ``gate.candidate_digest`` (idempotent: an existing request is returned)."""
        existing = self.store.load(gate.candidate_digest)
        if existing is not None:
            request = existing[0]
            if (request.attribute, request.attribute_version) != (spec.name, spec.version):
                raise SilversetInputError(f"candidate '{gate.candidate_digest}'", f"already requested for {request.key}, not {spec.key}")
            return self._expire_if_due(request.candidate_digest)
        now = self.now()
        request = ApprovalRequest(
            candidate_digest=gate.candidate_digest, attribute=spec.name, attribute_version=spec.version, gate=gate,
            report_uri=report_uri, submitter=submitter, approvers=tuple(dict.fromkeys(spec.approvers + self.extra_approvers)),
            allow_self_approval=spec.allow_self_approval, created_at=now,
            expires_at=now + timedelta(hours=spec.approval_timeout_hours),
        )
        entry = AuditEntry(at=now, actor=submitter, action="submit", candidate_digest=request.candidate_digest,
                           previous_state=None, new_state=State.pending, reason=f"gate passed={gate.passed}")
        try:
            self.store.create(request, entry)
        except Conflict:  # submitted concurrently by someone else: theirs stands
            return self.get(gate.candidate_digest)
        self._notify("submitted", request)
        return request

    def approve(self, candidate: str, *, user: str, reason: str, auto: bool = False) -> ApprovalRequest:
        """Approve exactly this candidate as ``user``; ``auto`` marks a scripted (demo) approval in the audit log."""
        return self._decide(candidate, user=user, reason=reason, to=State.approved, action="auto-approve" if auto else "approve")

    def reject(self, candidate: str, *, user: str, reason: str) -> ApprovalRequest:
        return self._decide(candidate, user=user, reason=reason, to=State.rejected, action="reject")

    def _decide(self, candidate: str, *, user: str, reason: str, to: State, action: str) -> ApprovalRequest:
        if not reason.strip():
            raise SilversetInputError("--reason", "a decision needs a reason for the audit log")
        digest = self.resolve(candidate)
        for _ in range(MAX_RETRIES):
            request = self._expire_if_due(digest)
            # Who may decide is checked first: a repeat by a stranger must not look like success.
            if user not in request.approvers:
                raise SilversetInputError("--as", f"{user!r} is not an approver for {request.key} (approvers: {', '.join(request.approvers)})")
            if to is State.approved and user == request.submitter and not request.allow_self_approval:
                raise SilversetInputError("--as", f"{user!r} submitted this candidate; self-approval is not allowed for {request.key}")
            if request.state is to:
                return request  # idempotent: the same decision again changes nothing
            if request.state is not State.pending:
                raise SilversetInputError(
                    f"candidate '{digest}'", f"already {request.state.value} by {request.decided_by} at {request.decided_at:%Y-%m-%d %H:%M}Z; decisions are final")
            try:
                decided = self._transition(digest, to=to, actor=user, action=action, reason=reason)
            except Conflict:
                continue
            self._notify(to.value, decided)
            return decided
        raise RuntimeError(f"could not record the decision on {digest}: the request kept changing")

    def _transition(self, digest: str, *, to: State, actor: str, action: str, reason: str) -> ApprovalRequest:
        request, revision = self.store.load(digest)
        if request.state is not State.pending:
            raise Conflict("decided meanwhile")
        now = self.now()
        decided = request.model_copy(update={"state": to, "decided_by": actor, "decided_at": now, "reason": reason})
        entry = AuditEntry(at=now, actor=actor, action=action, candidate_digest=digest, previous_state=request.state,
                           new_state=to, reason=reason)
        self.store.replace(decided, revision, entry)
        return decided

    def _expire_if_due(self, digest: str) -> ApprovalRequest:
        for _ in range(MAX_RETRIES):
            request, _revision = self.store.load(digest)
            if request.state is not State.pending or self.now() < request.expires_at:
                return request
            try:
                expired = self._transition(digest, to=State.rejected, actor=TIMEOUT_ACTOR, action="timeout",
                                           reason=f"no decision within {request.expires_at - request.created_at}")
            except Conflict:
                continue
            self._notify("timed_out", expired)
            return expired
        raise RuntimeError(f"could not expire {digest}: the request kept changing")

    def _notify(self, event: str, request: ApprovalRequest) -> None:
        if self.notifier is not None:
            self.notifier.send(event, request)
