"""Approval policy over any store: submit, approve, reject, expire, verify; decisions read from the audit chain.

Every decision names one exact candidate digest; approving one candidate can never release another.
The approvers of a request are the attribute spec's, taken from the spec the gate ran with, never
from the submitter. A decided request is final, and repeating the same decision changes nothing.
Nothing writes an expiry: a pending request past ``expires_at`` reads as expired for everyone.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Callable

from silverset.components.common.errors import SilversetInputError
from silverset.components.common.identity import check_identity
from silverset.components.common.spec import AttributeSpec

from . import chain
from .chain import BrokenLink
from .model import Action, ApprovalRequest, AuditEntry, GateResult, State, utc_now
from .notify import Notifier
from .store import ApprovalStore, Conflict

log = logging.getLogger(__name__)
MAX_RETRIES = 20
MAX_REASON_CHARS = 2000  # keeps an audit entry under ~2.5 KB (the Kubernetes audit is one 1 MiB ConfigMap)


class NotApproved(Exception):
    """Why a digest may not be released (no request, not approved, expired, broken audit chain, mismatch)."""


class ApprovalService:
    def __init__(
        self, store: ApprovalStore, *, notifier: Notifier | None = None, now: Callable[[], datetime] = utc_now
    ):
        self.store = store
        self.notifier = notifier
        self.now = now

    # -- reading -----------------------------------------------------------------------------
    def resolve(self, candidate: str) -> str:
        """Full digest for ``candidate`` (a digest, or a unique prefix of >= 8 characters)."""
        if self.store.load(candidate) is not None:
            return candidate
        bare = candidate.split(":", 1)[-1]
        matches = [
            r.candidate_digest for r in self.store.list() if r.candidate_digest.split(":", 1)[-1].startswith(bare)
        ]
        if len(bare) < 8 or not matches:
            raise SilversetInputError(f"candidate '{candidate}'", "no approval request for that digest")
        if len(matches) > 1:
            raise SilversetInputError(
                f"candidate '{candidate}'", f"prefix matches {len(matches)} requests; give more of the digest"
            )
        return matches[0]

    def get(self, candidate: str) -> ApprovalRequest:
        """The request with its state as the audit chain says (pending, approved, rejected or expired)."""
        digest = self.resolve(candidate)
        entries, _head = self.store.chain()
        return chain.derive(self.store.load(digest), entries, now=self.now())

    def list(self) -> list[ApprovalRequest]:
        entries, _head = self.store.chain()
        now = self.now()
        return [chain.derive(r, entries, now=now) for r in self.store.list()]

    def audit(self, candidate: str | None = None) -> list[AuditEntry]:
        """The audit chain in order (only ``candidate``'s entries when given)."""
        entries, _head = self.store.chain()
        if candidate is None:
            return entries
        digest = self.resolve(candidate)
        return [e for e in entries if e.candidate_digest == digest]

    def verify_audit(self) -> BrokenLink | None:
        """The first broken link of the audit chain (or request row that disagrees with it); None when intact."""
        entries, _head = self.store.chain()
        return chain.verify(entries, self.store.list(), submissions_chained=self.store.submissions_chained)

    def approval_for(
        self,
        digest: str,
        *,
        attribute: str | None = None,
        attribute_version: int | None = None,
        spec_content_hash: str | None = None,
    ) -> ApprovalRequest:
        """The approved request for exactly ``digest``, checked against an intact audit chain.

        Raise NotApproved otherwise.

        The audit must verify end to end, and hold an ``approve`` entry for this digest by one of the
        request's (the spec's) approvers that the policy allows; the request row alone never suffices.
        ``attribute``/``attribute_version``/``spec_content_hash``, when given, must match the request.
        """
        request = self.store.load(digest)
        if request is None:
            raise NotApproved(f"candidate {digest[:19]} has no approval request")
        broken = self.verify_audit()
        if broken is not None:
            raise NotApproved(
                f"the approvals audit chain is broken ({broken}); nothing is released until it is repaired"
            )
        entries, _head = self.store.chain()
        decided = chain.derive(request, entries, now=self.now())
        if decided.state is not State.approved:
            raise NotApproved(
                f"candidate {digest[:19]} ({decided.key}) is {decided.state.value}"
                + (f" by {decided.decided_by}: {decided.reason}" if decided.decided_by else "")
            )
        if attribute is not None and decided.attribute != attribute:
            raise NotApproved(f"candidate {digest[:19]} was approved for {decided.key}, not {attribute}")
        if attribute_version is not None and decided.attribute_version != attribute_version:
            raise NotApproved(
                f"candidate {digest[:19]} was approved for {decided.key}, not version {attribute_version}"
            )
        if spec_content_hash is not None and decided.spec_content_hash != spec_content_hash:
            raise NotApproved(
                f"candidate {digest[:19]} was approved under spec {decided.spec_content_hash[:12]}, "
                f"the gate ran with spec {spec_content_hash[:12]}"
            )
        return decided

    def is_approved(
        self,
        digest: str,
        *,
        attribute: str | None = None,
        attribute_version: int | None = None,
        spec_content_hash: str | None = None,
    ) -> bool:
        """True only when ``approval_for`` finds an approval for exactly this digest on an intact chain."""
        try:
            self.approval_for(
                digest, attribute=attribute, attribute_version=attribute_version, spec_content_hash=spec_content_hash
            )
        except NotApproved:
            return False
        return True

    # -- changing ----------------------------------------------------------------------------
    def submit(self, *, gate: GateResult, spec: AttributeSpec, submitter: str, report_uri: str = "") -> ApprovalRequest:
        """Open a request for ``gate.candidate_digest`` with the spec's approvers.

        Idempotent for the same spec: submitting again returns the existing request. A second submit
        of the digest under a different attribute, version, spec content or approver list is refused,
        so the first submitter cannot fix an approver list the spec does not give.
        """
        check_identity(submitter, what="submitter")
        if gate.spec_content_hash is not None and gate.spec_content_hash != spec.content_hash:
            raise SilversetInputError(
                f"attribute spec {spec.key}",
                f"is not the spec the gate ran with (gate: spec {gate.spec_content_hash[:12]}, "
                f"given: {spec.content_hash[:12]}); approvers come only from the gate's spec",
            )
        existing = self.store.load(gate.candidate_digest)
        if existing is not None:
            self._check_same_spec(existing, spec)
            return self.get(gate.candidate_digest)
        now = self.now()
        request = ApprovalRequest(
            candidate_digest=gate.candidate_digest,
            attribute=spec.name,
            attribute_version=spec.version,
            spec_content_hash=spec.content_hash,
            gate=gate,
            report_uri=report_uri,
            submitter=submitter,
            approvers=spec.approvers,
            allow_self_approval=spec.allow_self_approval,
            created_at=now,
            expires_at=now + timedelta(hours=spec.approval_timeout_hours),
        )
        entry = AuditEntry(
            at=now,
            actor=submitter,
            action=Action.submit,
            candidate_digest=request.candidate_digest,
            previous_state=None,
            new_state=State.pending,
            reason=f"gate passed={gate.passed}",
            request_hash=request.request_hash,
        )
        try:
            self.store.create(request, entry)
        except Conflict:  # submitted concurrently by someone else: theirs stands if it is the same spec
            existing = self.store.load(gate.candidate_digest)
            self._check_same_spec(existing, spec)
            return self.get(gate.candidate_digest)
        self.notify("submitted", request)
        return request

    @staticmethod
    def _check_same_spec(existing: ApprovalRequest, spec: AttributeSpec) -> None:
        where = f"candidate '{existing.candidate_digest}'"
        if (existing.attribute, existing.attribute_version) != (spec.name, spec.version):
            raise SilversetInputError(where, f"already requested for {existing.key}, not {spec.key}")
        if existing.spec_content_hash != spec.content_hash:
            raise SilversetInputError(
                where,
                f"already requested under spec {existing.spec_content_hash[:12]}, "
                f"not {spec.content_hash[:12]}; a changed spec needs a new gate run",
            )
        if (
            tuple(existing.approvers) != tuple(spec.approvers)
            or existing.allow_self_approval != spec.allow_self_approval
        ):
            raise SilversetInputError(
                where,
                f"already requested with approvers {', '.join(existing.approvers)}; "
                f"the given spec lists {', '.join(spec.approvers)}",
            )

    def approve(self, candidate: str, *, user: str | None = None, reason: str, auto: bool = False) -> ApprovalRequest:
        """Approve exactly this candidate as ``user`` (on Kubernetes: as the API server's identity of the caller).

        ``auto`` records a scripted demo approval (``auto-approve``); only a store that allows it accepts it.
        """
        if auto and not self.store.allows_auto_approval:
            raise SilversetInputError(
                "auto_approve_as",
                f"auto-approval is for the local demo's SQLite store only, "
                f"not {type(self.store).__name__}; a human approves here",
            )
        return self._decide(candidate, user=user, reason=reason, action=Action.auto_approve if auto else Action.approve)

    def reject(self, candidate: str, *, user: str | None = None, reason: str) -> ApprovalRequest:
        return self._decide(candidate, user=user, reason=reason, action=Action.reject)

    def actor(self, user: str | None) -> str:
        """Who is deciding: the store's authenticated identity where it has one (then ``user`` must be None:
        no flag names an approver there), else ``user``; checked as an identity either way."""
        authenticated = self.store.authenticated_user()
        if authenticated is not None:
            if user is not None:
                raise SilversetInputError(
                    "--as",
                    f"this store takes the approver's identity from the API server "
                    f"(you are {authenticated!r}); drop --as {user!r}",
                )
            return authenticated
        if user is None:
            raise SilversetInputError("--as", "this store cannot tell who you are; name the approver with --as")
        return check_identity(user, what="--as")

    def _decide(self, candidate: str, *, user: str | None, reason: str, action: Action) -> ApprovalRequest:
        if not reason.strip():
            raise SilversetInputError("--reason", "a decision needs a reason for the audit log")
        if len(reason) > MAX_REASON_CHARS:
            raise SilversetInputError(
                "--reason", f"is {len(reason)} characters; at most {MAX_REASON_CHARS} (link a document for more)"
            )
        to = action.decides
        actor = self.actor(user)
        digest = self.resolve(candidate)
        for _ in range(MAX_RETRIES):
            request = self.store.load(digest)
            entries, head = self.store.chain()
            now = max(
                self.now(), request.created_at
            )  # a clock behind the submitter's must not date a decision before the request
            current = chain.derive(request, entries, now=now)
            entry = AuditEntry(
                at=now,
                actor=actor,
                action=action,
                candidate_digest=digest,
                previous_state=current.state,
                new_state=to,
                reason=reason,
                request_hash=request.request_hash,
            )
            # Who may decide is checked first: a repeat by a stranger must not look like success.
            problem = chain.decision_problem(request, entry)
            if problem is not None:
                raise SilversetInputError(f"decision on candidate '{digest[:19]}'", problem)
            if current.state is to:
                return current  # idempotent: the same decision again changes nothing
            if current.state is not State.pending:
                raise SilversetInputError(
                    f"candidate '{digest}'",
                    f"already {current.state.value} by {current.decided_by} "
                    f"at {current.decided_at:%Y-%m-%d %H:%M}Z; decisions are final",
                )
            try:
                sealed = self.store.append(entry, after=head)
            except Conflict:
                continue
            decided = chain.derive(request, [*entries, sealed], now=now)
            self.notify(to.value, decided)
            return decided
        raise RuntimeError(f"could not record the decision on {digest}: the audit kept changing")

    def notify(self, event: str, request: ApprovalRequest) -> None:
        """Tell the webhook, if any (a dead webhook never blocks a decision)."""
        if self.notifier is not None:
            self.notifier.send(event, request)
