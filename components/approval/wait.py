"""The pipeline's approval step: submit the candidate, then wait with backoff until a decision or the request
expires."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Callable

from pydantic import BaseModel, ConfigDict, Field

from silverset.components.common import artifacts
from silverset.components.common.artifacts import ApprovalDecision
from silverset.components.common.errors import SilversetInputError
from silverset.components.common.spec import load_spec

from .model import ApprovalRequest, GateResult, State
from .notify import Notifier
from .policy import ApprovalService
from .store import open_store, parse_store_uri

log = logging.getLogger(__name__)


class ApprovalOptions(BaseModel):
    """How the approval step waits, and the local demo's scripted approver."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # The local demo only: approve as this user at once (refused unless the store is a SQLite file; audited as
    # ``auto-approve``). "" = wait for a person.
    auto_approve_as: str = ""
    initial_delay_s: float = Field(2.0, gt=0)  # first poll delay; each next one is twice as long ...
    max_delay_s: float = Field(60.0, gt=0)  # ... up to this


def read_gate(path: str | Path) -> GateResult:
    """gate.json (a file, or a folder holding one) as written by the evaluate stage; it must name its candidate."""
    gate = artifacts.read_gate(path)
    if not gate.candidate_digest:
        raise SilversetInputError(
            f"gate '{path}'",
            "names no candidate_digest: approval is bound to the digest of a "
            "distilled candidate (run the student gate with --model)",
        )
    return gate


def wait_for_decision(
    service: ApprovalService,
    digest: str,
    *,
    initial_delay_s: float = 2.0,
    max_delay_s: float = 60.0,
    factor: float = 2.0,
    max_wait_s: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> ApprovalRequest:
    """Poll until the request is approved, rejected or expired. Delays grow by ``factor`` up to ``max_delay_s``
    and never run past the request's ``expires_at``, so the wait ends at expiry at the latest.
    ``max_wait_s`` bounds this call further (the request then may still be pending)."""
    delay, waited = initial_delay_s, 0.0
    while True:
        request = service.get(digest)
        if request.state is not State.pending:
            return request
        if max_wait_s is not None and waited >= max_wait_s:
            return request
        remaining = (request.expires_at - service.now()).total_seconds()
        step = max(0.0, min(delay, max_delay_s, remaining + 0.001))
        sleep(step)
        waited += step
        delay = min(delay * factor, max_delay_s)


def run(
    *,
    gate_result: str,
    attribute_spec: str,
    approval_store: str,
    submitter: str,
    report_uri: str = "",
    webhook_url: str = "",
    options: ApprovalOptions = ApprovalOptions(),
    api_client=None,
    service: ApprovalService | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> ApprovalDecision:
    """Submit the gate's candidate with the spec's approvers and wait; return the outcome (the step's own output).

    ``gate_result`` is gate.json or its folder. ``decision`` is ``approved``, ``rejected`` or ``expired`` (nobody
    decided before the spec's ``approval_timeout_hours``; the wait never runs longer). A gate that did not pass is
    rejected at once (nobody is asked). The gate must carry the content hash of ``attribute_spec``: approvers come
    only from the spec the gate ran with. ``service`` replaces the store/webhook (tests).
    """
    auto_approve_as = options.auto_approve_as
    if auto_approve_as and (
        not service.store.allows_auto_approval if service else parse_store_uri(approval_store)[0] != "sqlite"
    ):
        raise SilversetInputError(
            "auto_approve_as",
            f"auto-approval is for the local demo's SQLite store only; the store {approval_store!r} "
            "needs a human approver (leave auto_approve_as empty)",
        )
    spec = load_spec(attribute_spec)
    gate = read_gate(gate_result)
    if service is None:
        service = ApprovalService(
            open_store(approval_store, api_client=api_client), notifier=Notifier(webhook_url) if webhook_url else None
        )
    if gate.spec_content_hash is None:
        raise SilversetInputError(
            f"gate '{gate_result}'",
            "records no spec_content_hash; the approval step takes approvers only from the spec "
            "the gate ran with (re-run the evaluate stage)",
        )
    if not gate.passed:
        outcome = ApprovalDecision(
            decision=State.rejected,
            candidate_digest=gate.candidate_digest,
            attribute=spec.name,
            attribute_version=spec.version,
            decided_by="gate",
            reason="; ".join(gate.reasons) or "gate failed",
        )
    else:
        request = service.submit(gate=gate, spec=spec, submitter=submitter, report_uri=report_uri)
        if auto_approve_as and request.state is State.pending:
            request = service.approve(
                request.candidate_digest, user=auto_approve_as, reason="auto-approved for the demo", auto=True
            )
        log.info(
            "waiting for a decision on %s (%s) until %s", request.candidate_digest[:19], request.key, request.expires_at
        )
        request = wait_for_decision(
            service,
            request.candidate_digest,
            initial_delay_s=options.initial_delay_s,
            max_delay_s=options.max_delay_s,
            sleep=sleep,
        )
        if request.state is State.expired:
            service.notify("expired", request)  # only the waiting step tells: an expiry is read, never written
        if request.state is State.approved:
            # The release must stand on the audit chain, not on this process's reading of it.
            request = service.approval_for(
                request.candidate_digest,
                attribute=spec.name,
                attribute_version=spec.version,
                spec_content_hash=spec.content_hash,
            )
        outcome = ApprovalDecision(
            decision=request.state,
            candidate_digest=request.candidate_digest,
            attribute=request.attribute,
            attribute_version=request.attribute_version,
            decided_by=request.decided_by,
            decided_at=request.decided_at,
            reason=request.reason,
            expires_at=request.expires_at,
        )
    return outcome
