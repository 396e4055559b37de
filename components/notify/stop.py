"""Stop a promotion that a gate or the approval held back: the step fails, so the run ends FAILED in KFP.

A gate that fails, or an approval that is rejected or expires, is not an error in the code, but it is a
promotion that did not happen; a platform team scheduling runs must see it as a failed run (alerts, retries,
the KFP UI's red mark), not a green one. The message names the stage and its reasons.
"""

from __future__ import annotations

import json

import fsspec
from pydantic import BaseModel

from silverset.components.common.artifacts import GATE_FILE, read_gate
from silverset.components.common.errors import SilversetInputError
from silverset.components.common.tables import read_json

GATE_STAGES = ("teacher_gate", "student_gate")
APPROVAL_STAGE = "approval"
DECISION_FILE = "decision.json"  # {run_dir}/approval/decision.json, written by the approval step


class PromotionStopped(RuntimeError):
    """A gate failed or the approval did not approve: nothing after it ran."""


def stop_reason(*, run_dir: str, stage: str) -> str:
    """One line saying why ``stage`` stopped the promotion in ``run_dir`` (read from what the stage wrote)."""
    root = run_dir.rstrip("/")
    if stage in GATE_STAGES:
        uri = f"{root}/{stage}/{GATE_FILE}"
        fs, path = fsspec.core.url_to_fs(uri)
        if not fs.exists(path):
            reasons = "no gate result written"
        else:
            try:
                reasons = "; ".join(read_gate(uri).reasons) or "no reasons given"
            except SilversetInputError as exc:
                reasons = f"gate result unreadable: {exc}"
        return f"{stage.replace('_', ' ')} failed: {reasons}"
    if stage == APPROVAL_STAGE:
        decision = read_json(f"{root}/{APPROVAL_STAGE}/{DECISION_FILE}")
        if not decision:
            return "approval: no decision recorded"
        who = decision.get("decided_by") or "nobody"
        digest = str(decision.get("candidate_digest") or "")[:19]
        return (
            f"approval {decision.get('decision', '?')} by {who} for {digest}: "
            f"{decision.get('reason') or 'no reason given'}"
        )
    raise ValueError(f"stage {stage!r} cannot stop a promotion; expected one of {GATE_STAGES + (APPROVAL_STAGE,)}")


def stop(*, run_dir: str, stage: str) -> None:
    """Raise PromotionStopped naming ``stage`` and its reasons (the step's non-zero exit fails the run)."""
    raise PromotionStopped(f"promotion stopped at {stage}: {stop_reason(run_dir=run_dir, stage=stage)}")


def write_decision(run_dir: str, decision: BaseModel) -> str:
    """Record the approval step's outcome (approval.model.ApprovalOutcome: decision, decided_by, reason,
    candidate_digest) for the run summary."""
    uri = f"{run_dir.rstrip('/')}/{APPROVAL_STAGE}/{DECISION_FILE}"
    fs, path = fsspec.core.url_to_fs(uri)
    fs.makedirs(fs._parent(path), exist_ok=True)
    with fs.open(path, "w") as f:
        json.dump(decision.model_dump(mode="json"), f, sort_keys=True)
    return uri
