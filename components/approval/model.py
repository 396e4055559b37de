"""Approval requests and audit entries: the records every backend stores."""
from __future__ import annotations

from datetime import datetime, timezone
from enum import Enum

from pydantic import BaseModel, ConfigDict, Field


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class State(str, Enum):
    pending = "pending"
    approved = "approved"
    rejected = "rejected"


class GateResult(BaseModel):
    """The evaluate stage's gate.json, as recorded on the request."""

    model_config = ConfigDict(extra="allow")

    passed: bool
    reasons: list[str] = Field(default_factory=list)
    metrics: dict = Field(default_factory=dict)
    candidate_digest: str


class ApprovalRequest(BaseModel):
    """One candidate awaiting (or past) a human decision; keyed by ``candidate_digest``."""

    model_config = ConfigDict(extra="forbid")

    candidate_digest: str = Field(min_length=8)
    attribute: str
    attribute_version: int
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


class AuditEntry(BaseModel):
    """One change to a request: who, when, what, why, and the state before and after. Append-only."""

    model_config = ConfigDict(extra="forbid")

    at: datetime
    actor: str
    action: str  # submit | approve | auto-approve | reject | timeout
    candidate_digest: str
    previous_state: State | None
    new_state: State
    reason: str = ""
