"""The pipeline's approval step: submit the candidate, then wait with backoff for a decision or timeout."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

from silverset.components.common.errors import SilversetInputError
from silverset.components.common.spec import load_spec

from .model import ApprovalRequest, GateResult, State
from .notify import Notifier
from .policy import ApprovalService
from .store import open_store


def read_gate(path: str | Path) -> GateResult:
    """gate.json (a file, or a folder holding one) as written by the evaluate stage."""
    path = Path(path)
    if path.is_dir():
        path = path / "gate.json"
    try:
        return GateResult.model_validate(json.loads(path.read_text()))
    except FileNotFoundError:
        raise SilversetInputError(f"gate '{path}'", "file not found") from None
    except (json.JSONDecodeError, ValueError) as exc:
        raise SilversetInputError(f"gate '{path}'", f"not a gate result: {exc}") from None


def wait_for_decision(service: ApprovalService, digest: str, *, initial_delay_s: float = 2.0, max_delay_s: float = 60.0,
                      factor: float = 2.0, max_wait_s: float | None = None, sleep: Callable[[float], None] = time.sleep) -> ApprovalRequest:
    """Poll until the request is approved or rejected (a timeout is a rejection). Delays grow by ``factor``
    up to ``max_delay_s``. ``max_wait_s`` bounds this call only; the request's own timeout still applies."""
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


def run(*, gate: str, attribute: str, store: str, submitter: str, report_uri: str = "", webhook_url: str = "",
        auto_approve_as: str = "", initial_delay_s: float = 2.0, max_delay_s: float = 60.0) -> dict:
    """Submit and wait. Returns ``{"decision": "approved"|"rejected", "candidate_digest", "decided_by", "reason"}``.

    A gate that did not pass is rejected at once (nobody is asked). ``auto_approve_as`` is for the demo:
    the approval is recorded as ``auto-approve`` in the audit log.
    """
    spec = load_spec(attribute)
    gate_result = read_gate(gate)
    service = ApprovalService(open_store(store), notifier=Notifier(webhook_url) if webhook_url else None)
    if not gate_result.passed:
        return {"decision": "rejected", "candidate_digest": gate_result.candidate_digest, "decided_by": "gate",
                "reason": "; ".join(gate_result.reasons) or "gate failed"}
    request = service.submit(gate=gate_result, spec=spec, submitter=submitter, report_uri=report_uri)
    if auto_approve_as and request.state is State.pending:
        request = service.approve(request.candidate_digest, user=auto_approve_as, reason="auto-approved for the demo", auto=True)
    request = wait_for_decision(service, request.candidate_digest, initial_delay_s=initial_delay_s, max_delay_s=max_delay_s)
    return {"decision": request.state.value, "candidate_digest": request.candidate_digest,
            "decided_by": request.decided_by, "reason": request.reason}
