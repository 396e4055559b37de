"""Incremental plans: only new/changed videos are re-done; a version change re-labels everything; no mixing."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from silverset.components.common import schemas, tables
from silverset.components.common.errors import SilversetInputError
from silverset.components.common.spec import load_spec
from silverset.components.common.step import nothing_to_do
from silverset.components.incremental import plan, state
from tests.helpers.factories import file_corpus, golden_for_ids, spec_version, teacher_labels


def _cycle(tmp: Path, manifest: Path, spec_path: Path, run: int) -> tuple[plan.PlanSummary, int, plan.FinalizeSummary]:
    plan_dir = tmp / f"run{run}" / "plan"
    summary = plan.run(
        manifest_uri=str(manifest), attribute_spec=str(spec_path), state_dir=str(tmp / "state"), out_dir=str(plan_dir)
    )
    labels_dir, calls = teacher_labels(summary.todo_manifest, spec_path, tmp / f"run{run}" / "teacher")
    merged = plan.finalize(plan_dir=str(plan_dir), new_labels=labels_dir, out_dir=str(tmp / f"run{run}" / "merged"))
    plan.commit_promotion(
        plan_dir=str(plan_dir),
        merged_dir=str(tmp / f"run{run}" / "merged"),
        state_dir=str(tmp / "state"),
        run_id=f"run{run}",
    )
    return summary, calls, merged


def test_second_run_over_unchanged_corpus_makes_no_teacher_calls(tmp_path):
    manifest, spec_path = file_corpus(tmp_path, 12), spec_version(tmp_path)
    first, calls1, merged1 = _cycle(tmp_path, manifest, spec_path, 1)
    assert (first.todo, first.new, calls1, merged1.labels) == (12, 12, 12, 12)
    second, calls2, merged2 = _cycle(tmp_path, manifest, spec_path, 2)
    assert calls2 == 0 and second.todo == 0 and second.unchanged == 12
    assert second.up_to_date
    assert merged2.labels == 12 and merged2.carried_labels == 12


def test_new_and_changed_videos_only_are_relabelled(tmp_path):
    manifest, spec_path = file_corpus(tmp_path, 10), spec_version(tmp_path)
    _cycle(tmp_path, manifest, spec_path, 1)
    (tmp_path / "videos" / "v003.mp4").write_bytes(b"re-encoded content")  # changed content, same id
    extra = tmp_path / "videos" / "v100.mp4"
    extra.write_bytes(b"new video")
    with manifest.open("a") as f:
        f.write(f"v100,{extra},new\n")
    summary, calls, merged = _cycle(tmp_path, manifest, spec_path, 2)
    assert (summary.new, summary.changed, summary.unchanged, calls) == (1, 1, 9, 2)
    assert not summary.up_to_date
    assert merged.labels == 11
    assert sorted(tables.read_table(summary.todo_manifest).column("video_id").to_pylist()) == ["v003", "v100"]


def test_attribute_version_change_relabels_everything_and_never_mixes(tmp_path):
    manifest = file_corpus(tmp_path, 6)
    _cycle(tmp_path, manifest, spec_version(tmp_path, version=1), 1)
    summary, calls, merged = _cycle(tmp_path, manifest, spec_version(tmp_path, version=2), 2)
    assert summary.relabel_all and calls == 6 and merged.carried_labels == 0
    labels = tables.read_table(merged.labels_dir, schemas.LABELS)
    assert set(labels.column("attribute_version").to_pylist()) == {2}
    assert set(state.load(str(tmp_path / "state")).labels.column("attribute_version").to_pylist()) == {2}


def test_unreadable_video_is_an_error_row_and_is_retried_next_run(tmp_path):
    manifest, spec_path = file_corpus(tmp_path, 4), spec_version(tmp_path)
    missing = tmp_path / "videos" / "v001.mp4"
    missing.unlink()
    first, calls1, _ = _cycle(tmp_path, manifest, spec_path, 1)
    assert (first.videos, first.todo, first.errors, calls1) == (4, 3, 1, 3)
    errors = tables.read_errors(first.out_dir)
    assert errors.column("key").to_pylist() == ["v001"]
    missing.write_bytes(b"now it exists")
    second, calls2, _ = _cycle(tmp_path, manifest, spec_path, 2)
    assert (second.new, calls2) == (1, 1)


def test_commit_refuses_labels_of_another_version(tmp_path):
    spec = load_spec(spec_version(tmp_path))
    row = {
        "video_id": "a",
        "attribute": spec.name,
        "attribute_version": 7,
        "label": 1,
        "probability": 0.9,
        "rationale": None,
        "teacher_id": "t",
        "prompt_hash": spec.prompt_hash,
    }
    labels = pa.Table.from_pylist([row], schema=schemas.LABELS)
    with pytest.raises(SilversetInputError, match="must not mix"):
        state.commit(
            str(tmp_path / "s"),
            videos=state.VIDEO_STATE.empty_table(),
            labels=labels,
            attribute=spec.name,
            attribute_version=spec.version,
            prompt_hash=spec.prompt_hash,
        )


def test_golden_videos_are_framed_every_run_and_held_out_of_student_training(tmp_path):
    manifest, spec_path = file_corpus(tmp_path, 8), spec_version(tmp_path)
    golden = golden_for_ids(tmp_path / "golden.parquet", ["v001", "v002", "v007"])
    golden_for_ids(tmp_path / "other.parquet", ["v000"], attribute="moving_object")
    state_dir = str(tmp_path / "state")
    first = plan.run(
        manifest_uri=str(manifest),
        attribute_spec=str(spec_path),
        state_dir=state_dir,
        out_dir=str(tmp_path / "p1"),
        golden_set=golden,
    )
    assert first.golden == 3
    ids = lambda name, d="p1": sorted(tables.read_table(str(tmp_path / d / name)).column("video_id").to_pylist())  # noqa: E731
    assert ids("golden_manifest.parquet") == ["v001", "v002", "v007"]
    labels_dir, _ = teacher_labels(first.todo_manifest, spec_path, tmp_path / "t1")
    embeddings = tmp_path / "e1"
    tables.write_table(
        pa.table({"video_id": [f"v{i:03d}" for i in range(8)], "x": list(range(8))}), embeddings / "part.parquet"
    )
    merged = plan.finalize(
        plan_dir=str(tmp_path / "p1"),
        new_labels=labels_dir,
        out_dir=str(tmp_path / "m1"),
        new_embeddings=str(embeddings),
        golden_set=golden,
    )
    assert merged.labels == 8 and merged.train_labels == 5
    train = tables.read_table(str(tmp_path / "m1" / "train_labels")).column("video_id").to_pylist()
    assert not {"v001", "v002", "v007"} & set(train)
    assert ids("golden_embeddings", "m1") == ["v001", "v002", "v007"]
    plan.commit_promotion(
        plan_dir=str(tmp_path / "p1"), merged_dir=str(tmp_path / "m1"), state_dir=state_dir, run_id="r1"
    )

    # One new video: only it is labelled, but the golden videos are framed again for the teacher gate.
    (tmp_path / "videos" / "v003.mp4").write_bytes(b"re-encoded")
    second = plan.run(
        manifest_uri=str(manifest),
        attribute_spec=str(spec_path),
        state_dir=state_dir,
        out_dir=str(tmp_path / "p2"),
        golden_set=golden,
    )
    assert second.todo == 1 and ids("todo_manifest.parquet", "p2") == ["v003"]
    assert ids("frames_manifest.parquet", "p2") == ["v001", "v002", "v003", "v007"]


def test_a_changed_golden_set_is_new_work_and_an_empty_plan_manifest_is_detected(tmp_path):
    manifest, spec_path = file_corpus(tmp_path, 4), spec_version(tmp_path)
    state_dir = str(tmp_path / "state")
    golden = golden_for_ids(tmp_path / "golden.parquet", ["v000", "v001"])
    summary, _, _ = _cycle(tmp_path, manifest, spec_path, 1)
    same = plan.run(
        manifest_uri=str(manifest),
        attribute_spec=str(spec_path),
        state_dir=state_dir,
        out_dir=str(tmp_path / "p"),
        golden_set=golden,
    )
    assert same.todo == 0 and same.corpus_digest != summary.corpus_digest and not same.up_to_date
    assert nothing_to_do(same.todo_manifest)
    assert not nothing_to_do(str(tmp_path / "p" / "golden_manifest.parquet"))
