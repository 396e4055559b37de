"""notify.stop: the step that fails a held-back promotion names the stage and why, read from what the stage wrote
(gate.json, the approval step's decision.json), and says so when there is nothing or something unreadable there."""

from __future__ import annotations

import json

import pytest

from silverset.components.common.artifacts import ApprovalDecision, GateResult, write_approval_decision, write_gate
from silverset.components.notify.stop import PromotionStopped, stop, stop_reason

DIGEST = "sha256:" + "c" * 64


def test_a_rejected_approval_names_who_for_which_candidate_and_why(tmp_path):
    decision = ApprovalDecision(
        decision="rejected", candidate_digest=DIGEST, attribute="red_dominant", decided_by="carol", reason="logos"
    )
    write_approval_decision(tmp_path / "approval", decision)
    assert (
        stop_reason(run_dir=f"{tmp_path}/", stage="approval") == f"approval rejected by carol for {DIGEST[:19]}: logos"
    )
    with pytest.raises(PromotionStopped, match="promotion stopped at approval: approval rejected by carol"):
        stop(run_dir=str(tmp_path), stage="approval")


def test_an_old_expired_decision_without_a_digest_still_reads(tmp_path):
    (tmp_path / "approval").mkdir()
    (tmp_path / "approval" / "decision.json").write_text(json.dumps({"decision": "expired", "decided_by": None}))
    assert stop_reason(run_dir=str(tmp_path), stage="approval") == "approval expired by nobody for : no reason given"


def test_no_decision_and_an_unreadable_one_are_told_apart(tmp_path):
    assert stop_reason(run_dir=str(tmp_path), stage="approval") == "approval: no decision recorded"
    (tmp_path / "approval").mkdir()
    (tmp_path / "approval" / "decision.json").write_text(json.dumps({"decision": "maybe"}))
    reason = stop_reason(run_dir=str(tmp_path), stage="approval")
    assert reason.startswith(f"approval: decision unreadable: approval decision '{tmp_path}/approval/decision.json'")
    assert "decision: Input should be" in reason


def test_a_failed_gate_gives_its_reasons(tmp_path):
    write_gate(tmp_path / "student_gate", GateResult(passed=False, reasons=["F1 retention 0.80 < 0.95", "latency"]))
    assert stop_reason(run_dir=str(tmp_path), stage="student_gate") == (
        "student gate failed: F1 retention 0.80 < 0.95; latency"
    )
    assert stop_reason(run_dir=str(tmp_path), stage="teacher_gate") == "teacher gate failed: no gate result written"
    with pytest.raises(ValueError, match="cannot stop a promotion"):
        stop_reason(run_dir=str(tmp_path), stage="deploy")
