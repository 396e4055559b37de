"""Stop a promotion that a gate or the approval held back: the step fails, so the run ends FAILED in KFP.

A gate that fails, or an approval that is rejected or expires, is not an error in the code, but it is a
promotion that did not happen; a platform team scheduling runs must see it as a failed run (alerts, retries,
the KFP UI's red mark), not a green one. The message names the stage and its reasons.
"""

from __future__ import annotations

import fsspec

from silverset.components.common.artifacts import (
    APPROVAL_DECISION_FILE,
    GATE_FILE,
    read_approval_decision,
    read_gate,
)
from silverset.components.common.errors import SilversetInputError

GATE_STAGES = ("teacher_gate", "student_gate")
APPROVAL_STAGE = "approval"
DECISION_FILE = APPROVAL_DECISION_FILE  # {run_dir}/approval/decision.json: common.artifacts.ApprovalDecision


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
        uri = f"{root}/{APPROVAL_STAGE}/{DECISION_FILE}"
        fs, path = fsspec.core.url_to_fs(uri)
        if not fs.exists(path):
            return "approval: no decision recorded"
        try:
            decision = read_approval_decision(uri)
        except SilversetInputError as exc:
            return f"approval: decision unreadable: {exc}"
        who = decision.decided_by or "nobody"
        digest = (decision.candidate_digest or "")[:19]
        return f"approval {decision.decision.value} by {who} for {digest}: {decision.reason or 'no reason given'}"
    raise ValueError(f"stage {stage!r} cannot stop a promotion; expected one of {GATE_STAGES + (APPROVAL_STAGE,)}")


def stop(*, run_dir: str, stage: str) -> None:
    """Raise PromotionStopped naming ``stage`` and its reasons (the step's non-zero exit fails the run)."""
    raise PromotionStopped(f"promotion stopped at {stage}: {stop_reason(run_dir=run_dir, stage=stage)}")
