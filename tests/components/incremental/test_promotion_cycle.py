"""Only promoted work is marked done: a stopped promotion is planned again, into the same run folder, for free."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from silverset.components.common import run_lock, tables
from silverset.components.incremental import plan, state
from silverset.components.teacher import annotate
from tests.helpers.factories import file_corpus, spec_version


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _plan(tmp: Path, run_id: str, **kw) -> plan.PlanSummary:
    return plan.plan_run(
        manifest_uri=str(tmp / "manifest.csv"),
        attribute_spec=str(tmp / "spec_v1.yaml"),
        state_dir=str(tmp / "state"),
        workdir=str(tmp / "work"),
        run_id=run_id,
        options=plan.PlanOptions(**kw),
    )


def _annotate(summary: plan.PlanSummary) -> annotate.AnnotateSummary:
    """The zero-shot teacher over the plan's todo videos, into the run folder's resumable teacher shards."""
    return annotate.run(
        attribute_spec=str(Path(summary.run_dir).parents[2] / "spec_v1.yaml"),
        manifest_uri=summary.todo_manifest,
        out_dir=f"{summary.run_dir}/teacher",
        options=annotate.AnnotateOptions(teacher="zero-shot"),
    )


def test_a_stopped_promotion_is_replanned_into_the_same_run_folder_and_the_teacher_is_not_paid_twice(tmp_path):
    file_corpus(tmp_path, 6), spec_version(tmp_path)
    first = _plan(tmp_path, "run-1")
    assert (first.todo, first.relabel_all) == (6, True)
    assert first.plan_dir == str(tmp_path / "work" / "plans" / "run-1")
    assert first.run_dir == f"{tmp_path}/work/runs/{first.corpus_digest[:16]}"
    assert plan.read_plan(first.plan_dir).run_dir == first.run_dir
    labelled = _annotate(first)
    assert (labelled.stats.processed, labelled.stats.resumed) == (6, 0)
    merged = plan.finalize(
        plan_dir=first.out_dir, new_labels=f"{first.run_dir}/teacher", out_dir=f"{first.run_dir}/merged"
    )
    assert merged.labels == 6
    # The student gate (or the approval, or the deploy) stops the promotion here: no commit.
    stale = Path(first.run_dir) / "student_gate" / "gate.json"
    stale.parent.mkdir()
    stale.write_text(json.dumps({"passed": False, "reasons": ["F1 retention 0.80 < 0.95"]}))
    assert not state.load(str(tmp_path / "state")).exists
    assert not (tmp_path / "state" / plan.COMPLETED_FILE).exists()
    run_lock.open_run_lock(str(tmp_path / "state")).release("run-1")  # what the exit handler does

    second = _plan(tmp_path, "run-2")
    assert (second.todo, second.up_to_date, second.run_dir) == (6, False, first.run_dir)
    assert not stale.exists()  # this attempt's summary never reads the last attempt's gate
    again = _annotate(second)
    assert (again.stats.processed, again.stats.resumed, again.stats.requests) == (0, 6, 0)  # zero teacher calls
    plan.finalize(plan_dir=second.out_dir, new_labels=f"{second.run_dir}/teacher", out_dir=f"{second.run_dir}/merged")
    committed = plan.commit_promotion(
        plan_dir=second.out_dir,
        merged_dir=f"{second.run_dir}/merged",
        state_dir=str(tmp_path / "state"),
        run_id="run-2",
    )
    assert committed.videos == 6
    previous = state.load(str(tmp_path / "state"))
    assert previous.labels.num_rows == 6 and previous.teacher_identity.startswith("zero-shot:minilm-l6-v2@sha256:")
    run_lock.open_run_lock(str(tmp_path / "state")).release("run-2")

    third = _plan(tmp_path, "run-3")
    assert third.up_to_date and third.run_dir == ""
    assert plan.read_plan(third.plan_dir).up_to_date is True


def test_commit_keeps_only_videos_whose_scores_went_live(tmp_path):
    import pyarrow as pa

    file_corpus(tmp_path, 4), spec_version(tmp_path)
    summary = _plan(tmp_path, "run-1")
    _annotate(summary)
    plan.finalize(plan_dir=summary.out_dir, new_labels=f"{summary.run_dir}/teacher", out_dir=f"{summary.run_dir}/m")
    scores = tmp_path / "scores.parquet"
    tables.write_table(pa.table({"video_id": ["v000", "v002"], "probability": [0.1, 0.9]}), scores)
    plan.commit_promotion(
        plan_dir=summary.out_dir,
        merged_dir=f"{summary.run_dir}/m",
        state_dir=str(tmp_path / "state"),
        run_id="run-1",
        scores=str(scores),
    )
    assert sorted(state.load(str(tmp_path / "state")).videos.column("video_id").to_pylist()) == ["v000", "v002"]
    run_lock.open_run_lock(str(tmp_path / "state")).release("run-1")
    nxt = _plan(tmp_path, "run-2")
    assert (nxt.todo, nxt.unchanged, nxt.up_to_date) == (2, 2, False)


def test_a_new_teacher_checkpoint_relabels_every_video(tmp_path):
    file_corpus(tmp_path, 3), spec_version(tmp_path)
    checkpoint = tmp_path / "teacher.onnx"
    checkpoint.write_bytes(b"weights v1")
    first = _plan(tmp_path, "run-1", teacher_backend="local", teacher_checkpoint=str(checkpoint))
    assert first.teacher_identity.startswith("local:sha256:")
    same = plan.plan_run(
        manifest_uri=str(tmp_path / "manifest.csv"),
        attribute_spec=str(tmp_path / "spec_v1.yaml"),
        state_dir=str(tmp_path / "state"),
        workdir=str(tmp_path / "work"),
        run_id="run-1",
        options=plan.PlanOptions(teacher_backend="local", teacher_checkpoint=str(checkpoint)),
    )
    assert same.corpus_digest == first.corpus_digest  # re-planning by the lock holder: same work, same folder
    checkpoint.write_bytes(b"weights v2")
    retrained = _plan(tmp_path, "run-1", teacher_backend="local", teacher_checkpoint=str(checkpoint))
    assert retrained.corpus_digest != first.corpus_digest and retrained.run_dir != first.run_dir
    gemini = _plan(tmp_path, "run-1", teacher_backend="gemini")
    assert gemini.teacher_identity == "gemini:gemini-3.8-flash"  # the spec's model
    from silverset.components.common.errors import SilversetInputError

    with pytest.raises(SilversetInputError, match="teacher checkpoint"):
        _plan(tmp_path, "run-1", teacher_backend="local", teacher_checkpoint=str(tmp_path / "missing.onnx"))


def test_a_teacher_change_against_the_committed_state_relabels_everything(tmp_path):
    file_corpus(tmp_path, 3), spec_version(tmp_path)
    summary = _plan(tmp_path, "run-1")
    _annotate(summary)
    plan.finalize(plan_dir=summary.out_dir, new_labels=f"{summary.run_dir}/teacher", out_dir=f"{summary.run_dir}/m")
    plan.commit_promotion(
        plan_dir=summary.out_dir, merged_dir=f"{summary.run_dir}/m", state_dir=str(tmp_path / "state"), run_id="run-1"
    )
    run_lock.open_run_lock(str(tmp_path / "state")).release("run-1")
    switched = _plan(tmp_path, "run-2", teacher_backend="gemini")
    assert switched.relabel_all and switched.todo == 3 and switched.unchanged == 0


def test_a_run_that_finds_the_state_locked_touches_nothing_but_its_own_record(tmp_path):
    file_corpus(tmp_path, 3), spec_version(tmp_path)
    holder = _plan(tmp_path, "scheduled-run")
    before = _files(tmp_path)
    with pytest.raises(run_lock.StateLocked, match="held by run 'scheduled-run'"):
        _plan(tmp_path, "manual-run")
    after = _files(tmp_path)
    own = "work/plans/manual-run/plan.json"
    assert set(after) - set(before) == {own} and all(after[k] == before[k] for k in before)
    record = json.loads(after[own])
    assert record["locked_out"] and record["holder"] == "scheduled-run" and record["run_id"] == "manual-run"
    assert holder.run_dir and plan.read_plan(holder.plan_dir).run_id == "scheduled-run"


def test_run_keys_are_one_safe_path_segment():
    assert (
        plan.plan_dir_of("s3://b/work/", "attribute-promotion-x7k2p") == "s3://b/work/plans/attribute-promotion-x7k2p"
    )
    assert plan.run_key("../../etc/passwd run") == "etc-passwd-run"
    from silverset.components.common.errors import SilversetInputError

    with pytest.raises(SilversetInputError, match="run_id"):
        plan.run_key("../")


@pytest.mark.parametrize("cost", [-0.01, float("inf"), float("nan")])
def test_a_bad_core_hour_price_is_refused_by_name_before_the_lock_is_taken(tmp_path, cost):
    from silverset.components.common.errors import SilversetInputError

    file_corpus(tmp_path, 2), spec_version(tmp_path)
    with pytest.raises(SilversetInputError, match="cost_per_core_hour_usd"):
        _plan(tmp_path, "run-1", cost_per_core_hour_usd=cost)
    assert run_lock.open_run_lock(str(tmp_path / "state")).holder() is None  # no lock taken
    assert not (tmp_path / "work").exists()


def test_the_plan_options_reach_the_recorded_plan(tmp_path):
    file_corpus(tmp_path, 4), spec_version(tmp_path)
    summary = _plan(
        tmp_path,
        "run-1",
        budget=plan.TeacherBudget(videos=2),
        cost_per_core_hour_usd=0.5,
        embedder="visual",
    )
    recorded = plan.read_plan(summary.plan_dir)
    assert recorded.cost_per_core_hour_usd == 0.5
    assert recorded.teacher_sample["chosen"] == 2 and tables.read_table(recorded.teacher_manifest).num_rows == 2
    assert recorded.embedder_identity.startswith("visual-stats-v1")
