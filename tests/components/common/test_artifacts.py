"""common.artifacts: the files stages hand each other read back as written, old files still read, bad ones are
refused with the file and the problem named, and re-serializing a recorded approval keeps its hash."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from silverset.components.common import artifacts
from silverset.components.common.digest import sha256_json
from silverset.components.common.errors import SilversetInputError

DIGEST = "sha256:" + "a" * 64

# gate.json as evaluate wrote it before the contract had a model (keys sorted, NaN written as null).
OLD_GATE = {
    "attribute": "red_dominant",
    "attribute_version": 1,
    "best_f1_threshold_on_golden": {"f1": 0.9, "threshold": 0.4},
    "candidate_digest": DIGEST,
    "gate": "student",
    "golden_version": 1,
    "metrics": {
        "candidate": {"f1": {"value": 0.91, "lower": 0.85, "upper": 0.95}},
        "f1_retention": 0.97,
        "latency": {"student_s_per_item": 1e-6, "teacher_s_per_item": None},
    },
    "passed": True,
    "reasons": [],
    "spec_content_hash": "sha256:" + "b" * 64,
    "threshold": 0.42,
}


def test_an_old_gate_json_reads_from_its_file_or_folder_and_round_trips(tmp_path):
    (tmp_path / "gate.json").write_text(json.dumps(OLD_GATE))
    for path in (tmp_path, tmp_path / "gate.json"):
        gate = artifacts.read_gate(path)
        assert gate.passed and gate.candidate_digest == DIGEST and gate.threshold == 0.42 and gate.golden_version == 1
        assert gate.metrics["latency"]["teacher_s_per_item"] is None
    out = tmp_path / "again"
    written = artifacts.write_gate(out, artifacts.read_gate(tmp_path))
    assert written == f"{out}/gate.json" and json.loads((out / "gate.json").read_text()) == OLD_GATE


def test_a_gate_keeps_keys_it_does_not_model():
    gate = artifacts.GateResult.model_validate(OLD_GATE | {"written_by": "a newer evaluate"})
    assert gate.model_dump(mode="json")["written_by"] == "a newer evaluate"


def test_a_gate_recorded_before_the_late_fields_dumps_as_it_was_recorded():
    # Approval stores hash the request's JSON; a gate recorded with only the first fields must dump to exactly
    # those (no gate/threshold/golden_version nulls), or every old audit entry would stop verifying.
    recorded = {
        "passed": True,
        "reasons": [],
        "metrics": {"f1_retention": 0.97},
        "candidate_digest": DIGEST,
        "attribute": "red_dominant",
        "attribute_version": 1,
        "spec_content_hash": "sha256:" + "c" * 64,
    }
    gate = artifacts.GateResult.model_validate(recorded)
    assert gate.model_dump(mode="json") == recorded
    assert sha256_json(gate.model_dump(mode="json")) == sha256_json(recorded)
    # a late field that was set is kept, even when it is null on purpose
    assert artifacts.GateResult(passed=False, candidate_digest=None, threshold=None).model_dump()["threshold"] is None


def test_an_approval_request_hash_does_not_move_across_a_round_trip():
    from silverset.components.approval.model import ApprovalRequest

    now = datetime(2026, 11, 30, tzinfo=timezone.utc)
    gate = artifacts.GateResult.model_validate(OLD_GATE)
    request = ApprovalRequest(
        candidate_digest=DIGEST,
        attribute="red_dominant",
        attribute_version=1,
        spec_content_hash="sha256:" + "c" * 64,
        gate=gate,
        submitter="ci",
        approvers=("alice",),
        created_at=now,
        expires_at=now,
    )
    again = ApprovalRequest.model_validate_json(request.model_dump_json())
    assert again.request_hash == request.request_hash
    assert again.gate.model_dump(mode="json") == OLD_GATE


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (None, "file not found"),
        ("{not json", "is not JSON"),
        ("[1, 2]", "is a JSON list, expected an object"),
        ('{"reasons": []}', "passed: Field required"),
        ('{"passed": "maybe"}', "passed: Input should be a valid boolean"),
    ],
)
def test_a_bad_gate_json_is_refused_naming_the_file_and_the_problem(tmp_path, text, problem):
    path = tmp_path / "gate.json"
    if text is not None:
        path.write_text(text)
    with pytest.raises(SilversetInputError, match="gate") as caught:
        artifacts.read_gate(path)
    assert str(path) in caught.value.input_name and problem in caught.value.problem


def test_the_approval_step_refuses_a_gate_without_a_candidate(tmp_path):
    from silverset.components.approval.wait import read_gate

    artifacts.write_gate(tmp_path, artifacts.GateResult.model_validate(OLD_GATE | {"candidate_digest": None}))
    with pytest.raises(SilversetInputError, match="names no candidate_digest"):
        read_gate(tmp_path)


def _student(model_dir):
    """A tiny real model folder: TorchScript weights + an ONNX file (the digest hashes its bytes)."""
    import torch

    torch.manual_seed(0)
    model_dir.mkdir()
    torch.jit.script(torch.nn.Linear(4, 1)).save(str(model_dir / artifacts.TORCHSCRIPT_FILE))
    (model_dir / artifacts.ONNX_FILE).write_bytes(b"onnx graph bytes")
    metadata = artifacts.ModelMetadata(
        attribute="red_dominant",
        attribute_version=1,
        embedder_id="e1",
        dimension=4,
        threshold=0.5,
        latency_s_per_item=2e-6,
    )
    return metadata.model_copy(update={"model_digest": artifacts.model_digest(model_dir, metadata)})


def test_model_metadata_verifies_its_digest_and_refuses_an_edited_threshold(tmp_path):
    model_dir = tmp_path / "model"
    metadata = _student(model_dir)
    artifacts.write_model_metadata(model_dir, metadata)
    read = artifacts.read_model_metadata(model_dir)
    assert read == metadata and read.latency_s_per_item == 2e-6
    # the digest is over the fields that change decisions: another threshold is another model
    edited = json.loads((model_dir / "metadata.json").read_text()) | {"threshold": 0.1}
    (model_dir / "metadata.json").write_text(json.dumps(edited))
    with pytest.raises(SilversetInputError, match="digest mismatch"):
        artifacts.read_model_metadata(model_dir)
    assert artifacts.read_model_metadata(model_dir, verify=False).threshold == 0.1


def test_a_folder_without_metadata_is_not_a_model(tmp_path):
    with pytest.raises(SilversetInputError, match="has no metadata.json"):
        artifacts.read_model_metadata(tmp_path)


MANIFEST = {
    "format_version": 1,
    "version": "red_dominant-v1-0123456789ab",
    "attribute": "red_dominant",
    "attribute_version": 1,
    "spec_hash": "s",
    "model_digest": DIGEST,
    "digest": "d" * 64,
    "count": 3,
    "history_count": 5,
    "dimensions": 4,
    "vocabulary_rule": {"min_probability": 0.5},
    "serving": {"default_k": 10, "affinity_model": "gs://m/a.json"},
    "parameters": {"algorithm": "brute_force"},
    "build": {"recall": 1.0},
}


def test_an_index_manifest_round_trips_through_an_object_store_uri():
    uri = "memory://serve/red_dominant/versions/v1"
    artifacts.write_index_manifest(uri, artifacts.IndexManifest.model_validate(MANIFEST))
    manifest = artifacts.read_index_manifest(uri)
    assert manifest.model_dump(mode="json") == MANIFEST and manifest.serving["affinity_model"] == "gs://m/a.json"


def test_an_index_without_a_manifest_or_with_a_broken_one_is_refused(tmp_path):
    with pytest.raises(SilversetInputError, match="has no manifest.json"):
        artifacts.read_index_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps(MANIFEST | {"dimensions": 0}))
    with pytest.raises(SilversetInputError, match="dimensions: Input should be greater than or equal to 1"):
        artifacts.read_index_manifest(tmp_path)


PLAN = {
    "videos": 10,
    "todo": 3,
    "new": 3,
    "changed": 0,
    "unchanged": 7,
    "removed": 0,
    "errors": 0,
    "relabel_all": False,
    "up_to_date": False,
    "corpus_digest": "abc",
    "todo_manifest": "t.parquet",
    "out_dir": "o",
}


def test_a_plan_reads_as_a_plan_summary_or_a_lock_out(tmp_path):
    (tmp_path / "plan.json").write_text(json.dumps(PLAN))  # an old plan.json, before the embedder/cost fields
    plan = artifacts.read_plan(tmp_path)
    assert isinstance(plan, artifacts.PlanSummary) and plan.todo == 3 and plan.reembed == 0
    assert plan.cost_per_core_hour_usd == artifacts.DEFAULT_COST_PER_CORE_HOUR_USD
    locked = artifacts.LockedOut(run_id="manual", holder="scheduled", since="2027-01-15T08:00:00Z", message="held")
    artifacts.write_plan(tmp_path / "other" / "plan.json", locked)
    assert artifacts.read_plan(tmp_path / "other") == locked
    (tmp_path / "plan.json").write_text(json.dumps({"locked_out": True, "run_id": "x"}))
    with pytest.raises(SilversetInputError, match="is not a LockedOut: holder: Field required"):
        artifacts.read_plan(tmp_path)


def test_a_run_summary_round_trips_and_an_old_one_reads(tmp_path):
    summary = artifacts.RunSummary(
        text="run r: promoted",
        run_id="r",
        status="SUCCEEDED",
        outcome="promoted",
        plan=PLAN,
        gates={"student_gate": {"passed": True, "reasons": []}},
    )
    artifacts.write_run_summary(tmp_path / "run_summary.json", summary)
    assert artifacts.read_run_summary(tmp_path) == summary
    (tmp_path / "run_summary.json").write_text(json.dumps({"run_id": "old", "status": "FAILED", "text": "t"}))
    old = artifacts.read_run_summary(tmp_path)
    assert (old.outcome, old.costs, old.index_version) == ("failed", {}, "")


# ---------------------------------------------------------------- approval/decision.json


def test_an_approval_decision_round_trips_and_an_old_one_reads(tmp_path):
    decided = datetime(2027, 1, 15, 9, 30, tzinfo=timezone.utc)
    decision = artifacts.ApprovalDecision(
        decision="rejected",
        candidate_digest=DIGEST,
        attribute="red_dominant",
        attribute_version=2,
        decided_by="carol@silverset.dev",
        decided_at=decided,
        reason="too many false positives",
    )
    written = artifacts.write_approval_decision(tmp_path / "approval", decision)
    assert written == f"{tmp_path / 'approval'}/decision.json"
    for path in (tmp_path / "approval", written):
        again = artifacts.read_approval_decision(path)
        assert again == decision and again.decision is artifacts.ApprovalState.rejected and again.decided_at == decided
    # decision.json as the approval step wrote it before the digest and attribute were recorded
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "decision.json").write_text(
        json.dumps({"decision": "expired", "decided_by": "", "reason": "no decision in 72 h"})
    )
    old = artifacts.read_approval_decision(tmp_path / "old")
    assert (old.decision.value, old.candidate_digest, old.attribute, old.reason) == (
        "expired",
        None,
        "",
        "no decision in 72 h",
    )


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (None, "file not found"),
        ('{"decision": "maybe"}', r"is not a ApprovalDecision: decision: Input should be 'pending', 'approved'"),
        ('{"decided_by": "carol"}', "is not a ApprovalDecision: decision: Field required"),
        ('{"decision": "pending"}', "decision: Value error, a decision is approved, rejected or expired, not pending"),
        ('["approved"]', "is a JSON list, expected an object"),
    ],
)
def test_a_bad_approval_decision_is_refused_naming_the_file_and_the_problem(tmp_path, text, problem):
    if text is not None:
        (tmp_path / "decision.json").write_text(text)
    with pytest.raises(SilversetInputError, match=rf"approval decision '{tmp_path}/decision.json'.*{problem}"):
        artifacts.read_approval_decision(tmp_path)


# ---------------------------------------------------------------- deploy/deploy.json


def test_a_deploy_record_is_what_deploy_summary_said_and_an_old_one_reads(tmp_path):
    from silverset.components.deploy.deploy import DeploySummary

    summary = DeploySummary(target="local", attribute="red_dominant", version="v-2", changed=True, previous="v-1")
    record = artifacts.DeployRecord(status="deployed", **summary.model_dump(mode="json"))
    artifacts.write_deploy_record(tmp_path / "deploy", record)
    again = artifacts.read_deploy_record(tmp_path / "deploy")
    assert again == record and (again.version, again.previous, again.changed, again.error) == ("v-2", "v-1", True, "")
    # every field of the stage's summary is in the record, so it never drops what the deploy said
    assert set(DeploySummary.model_fields) <= set(artifacts.DeployRecord.model_fields)
    # deploy.json as the deploy step wrote it for a failure before the contract (no version, extra keys kept)
    (tmp_path / "deploy.json").write_text(
        json.dumps({"status": "failed", "target": "kubernetes", "error": "GateFailed: x", "rolled_back_to": "v-1"})
    )
    old = artifacts.read_deploy_record(tmp_path / "deploy.json")
    assert (old.status, old.version, old.previous, old.error) == ("failed", "", None, "GateFailed: x")
    assert old.model_dump()["rolled_back_to"] == "v-1"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (None, "file not found"),
        ('{"status": "live", "version": "v-2"}', r"is not a DeployRecord: status: Input should be 'deployed' or 'f"),
        ('{"status": "deployed", "changed": "maybe"}', "is not a DeployRecord: changed: Input should be a valid bool"),
        ("{not json", "is not JSON"),
    ],
)
def test_a_bad_deploy_record_is_refused_naming_the_file_and_the_problem(tmp_path, text, problem):
    if text is not None:
        (tmp_path / "deploy.json").write_text(text)
    with pytest.raises(SilversetInputError, match=rf"deploy record '{tmp_path}/deploy.json'.*{problem}"):
        artifacts.read_deploy_record(tmp_path)


# ---------------------------------------------------------------- stats/shard-<tag>.json


def test_shard_stats_round_trip_in_shard_order_and_a_stage_without_stats_has_none(tmp_path):
    assert artifacts.read_stage_stats(tmp_path) == []
    one = artifacts.ShardStats(shard="1/2", model_id="m", items=5, processed=4, outputs=3, errors=1)
    one.error_types["no_frames"] = 1  # the runner counts into its stats as batches finish
    zero = artifacts.ShardStats(shard="0/2", model_id="m", items=6, processed=6, outputs=6, cost_usd=0.25)
    for tag, stats in (("00001-of-00002", one), ("00000-of-00002", zero)):
        path = artifacts.write_shard_stats(tmp_path, stats, tag=tag)
        assert path == f"{tmp_path}/stats/shard-{tag}.json" == artifacts.shard_stats_uri(tmp_path, tag)
    assert artifacts.read_stage_stats(tmp_path) == [zero, one]
    assert json.loads((tmp_path / "stats" / "shard-00001-of-00002.json").read_text()) == one.to_dict()
    assert one.to_dict()["error_types"] == {"no_frames": 1}


def test_old_shard_stats_read_with_defaults_and_say_which_fields_they_recorded(tmp_path):
    # a runner's stats before shard/model_id/timing were recorded, with a key this version does not model
    (tmp_path / "stats").mkdir()
    (tmp_path / "stats" / "shard-00000-of-00001.json").write_text(
        json.dumps({"seconds": 30.0, "processed": 12, "cache_hits": 2, "gpu": "none"})
    )
    (old,) = artifacts.read_stage_stats(tmp_path)
    assert (old.shard, old.model_id, old.processed, old.timed_items, old.stopped) == ("", "", 12, 0, None)
    assert "timed_items" not in old.model_fields_set and old.to_dict()["gpu"] == "none"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('{"processed": "many"}', "is not a ShardStats: processed: Input should be a valid integer"),
        ('{"error_types": {"no_frames": "x"}}', "is not a ShardStats: error_types.no_frames: Input should be a valid"),
        ("[1, 2]", "is a JSON list, expected an object"),
    ],
)
def test_bad_shard_stats_are_refused_naming_the_file_and_the_problem(tmp_path, text, problem):
    (tmp_path / "stats").mkdir()
    (tmp_path / "stats" / "shard-00000-of-00001.json").write_text(text)
    with pytest.raises(
        SilversetInputError, match=rf"shard stats '{tmp_path}/stats/shard-00000-of-00001.json'.*{problem}"
    ):
        artifacts.read_stage_stats(tmp_path)


def test_a_missing_shard_stats_file_is_refused_naming_it(tmp_path):
    with pytest.raises(SilversetInputError, match=rf"shard stats '{tmp_path}/shard-x.json'.*file not found"):
        artifacts.read_shard_stats(tmp_path / "shard-x.json")


# ---------------------------------------------------------------- completed.json


def test_a_promotion_record_round_trips_and_none_means_no_promotion_yet(tmp_path):
    assert artifacts.read_completed(tmp_path) is None
    record = artifacts.CompletedPromotion(corpus_digest="sha256:" + "d" * 64, run_id="run-7")
    assert artifacts.write_completed(tmp_path, record) == f"{tmp_path}/completed.json"
    assert artifacts.read_completed(tmp_path) == record
    # completed.json as incremental wrote it by hand (sorted keys, no indent) still reads
    (tmp_path / "completed.json").write_text('{"corpus_digest": "abc", "run_id": "r"}')
    assert artifacts.read_completed(tmp_path) == artifacts.CompletedPromotion(corpus_digest="abc", run_id="r")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('{"run_id": "r"}', "is not a CompletedPromotion: corpus_digest: Field required"),
        ('{"corpus_digest": ""}', "is not a CompletedPromotion: corpus_digest: String should have at least 1"),
        ("corpus abc", "is not JSON"),
    ],
)
def test_a_bad_promotion_record_is_refused_naming_the_file_and_the_problem(tmp_path, text, problem):
    (tmp_path / "completed.json").write_text(text)
    with pytest.raises(SilversetInputError, match=rf"promotion record '{tmp_path}/completed.json'.*{problem}"):
        artifacts.read_completed(tmp_path)
