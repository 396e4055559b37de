"""Approval requests and audit entries: the records every backend stores."""

from __future__ import annotations

from datetime import datetime, timezone
from enum import Enum

from pydantic import BaseModel, ConfigDict, Field

from silverset.components.common.artifacts import ApprovalState as State  # decision.json's states, too
from silverset.components.common.artifacts import GateResult  # noqa: F401 - gate.json's model, recorded on requests
from silverset.components.common.digest import sha256_json

GENESIS_HASH = "0" * 64  # prev_hash of the first audit entry


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class Action(str, Enum):
    submit = "submit"
    approve = "approve"
    auto_approve = "auto-approve"  # the local demo's scripted approval (SQLite store only)
    reject = "reject"

    @property
    def decides(self) -> State | None:
        """The state this action moves a pending request to (None for submit)."""
        return {Action.approve: State.approved, Action.auto_approve: State.approved, Action.reject: State.rejected}.get(
            self
        )


class ApprovalRequest(BaseModel):
    """One candidate awaiting (or past) a human decision; keyed by ``candidate_digest``.

    Stores keep the request exactly as submitted (``state`` pending, no decision fields) and never
    change it; the decision fields are filled in by ``ApprovalService`` from the audit chain.
    ``approvers`` and ``allow_self_approval`` are the spec's (``spec_content_hash``), never the submitter's.
    """

    model_config = ConfigDict(extra="forbid")

    candidate_digest: str = Field(min_length=8)
    attribute: str
    attribute_version: int
    spec_content_hash: str = Field(min_length=8)
    gate: GateResult
    report_uri: str = ""
    submitter: str
    approvers: tuple[str, ...]
    allow_self_approval: bool = False
    created_at: datetime
    expires_at: datetime
    state: State = State.pending
    decided_by: str | None = None
    decided_at: datetime | None = None
    reason: str | None = None

    @property
    def key(self) -> str:
        return f"{self.attribute}@v{self.attribute_version}"

    def as_submitted(self) -> "ApprovalRequest":
        """The request without any decision: what a store holds."""
        return self.model_copy(update={"state": State.pending, "decided_by": None, "decided_at": None, "reason": None})

    @property
    def request_hash(self) -> str:
        """sha256 over the canonical JSON of the submitted request (decision fields excluded)."""
        return sha256_json(self.as_submitted().model_dump(mode="json"))


class AuditEntry(BaseModel):
    """One event on a request: who, when, what, why, and the state before and after.

    Entries form a hash chain: ``hash`` is sha256 over the canonical JSON of every other field,
    ``prev_hash`` included, so editing, deleting or reordering an entry breaks the link after it.
    ``request_hash`` binds the entry to the exact request content it was made against.
    """

    model_config = ConfigDict(extra="forbid")

    at: datetime
    actor: str
    action: Action
    candidate_digest: str
    previous_state: State | None
    new_state: State
    reason: str = ""
    request_hash: str
    prev_hash: str = ""
    hash: str = ""

    def content_hash(self) -> str:
        """The hash this entry should carry (over everything but ``hash`` itself)."""
        return sha256_json(self.model_dump(mode="json", exclude={"hash"}))

    def sealed(self, prev_hash: str) -> "AuditEntry":
        """This entry linked after ``prev_hash``, with its own hash filled in."""
        linked = self.model_copy(update={"prev_hash": prev_hash, "hash": ""})
        return linked.model_copy(update={"hash": linked.content_hash()})
