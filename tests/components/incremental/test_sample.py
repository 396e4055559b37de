"""The teacher's budgeted sample: priority order, caps in videos and USD, golden set left out, stable under
reordering; in a plan, the teacher labels the sample only, the student's inputs keep every embedding, and the
state records the videos the teacher never saw as unlabelled."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import pyarrow as pa
import pytest

from silverset.components.common import tables
from silverset.components.common.errors import SilversetInputError
from silverset.components.common.spec import load_spec
from silverset.components.incremental import plan, state
from silverset.components.incremental.sample import (
    TeacherBudget,
    choose_sample,
    gemini_usd_per_video,
    parse_priority,
    teacher_budget,
)
from tests.helpers.factories import file_corpus, golden_for_ids, spec_version, teacher_labels


def _manifest(rows: list[dict]) -> pa.Table:
    base = {"uri": "file:///v.mp4", "title": "", "description": ""}
    return pa.Table.from_pylist([{**base, **r} for r in rows])


def _ids(table: pa.Table) -> list[str]:
    return table.column("video_id").to_pylist()


def test_new_videos_first_then_priority_then_views_then_hash_order():
    m = _manifest(
        [
            {"video_id": "old-p9", "priority": 9, "views": 1},
            {"video_id": "new-p1", "priority": 1, "views": 5},
            {"video_id": "new-p5-v1", "priority": 5, "views": 1},
            {"video_id": "new-p5-v9", "priority": 5, "views": 9},
            {"video_id": "old-none", "priority": None, "views": 100},
            {"video_id": "old-p2", "priority": 2, "views": 0},
        ]
    )
    chosen, choice = choose_sample(m, TeacherBudget(), new_ids={"new-p1", "new-p5-v1", "new-p5-v9"})
    # new before old; within each, priority descending (missing last), then views descending
    assert _ids(chosen) == ["new-p5-v9", "new-p5-v1", "new-p1", "old-p9", "old-p2", "old-none"]
    assert choice.priority == ["new", "priority", "views"] and choice.cap is None and choice.chosen == 6


def test_ties_fall_back_to_a_stable_hash_of_the_video_id_and_text_values_sort_last():
    ids = [f"v{i:02d}" for i in range(12)]
    m = _manifest([{"video_id": v, "views": "n/a" if i % 3 == 0 else "7"} for i, v in enumerate(ids)])  # CSV text
    chosen, choice = choose_sample(m, TeacherBudget(priority="views"))
    numeric = sorted((v for i, v in enumerate(ids) if i % 3), key=lambda v: hashlib.sha256(v.encode()).hexdigest())
    text = sorted((v for i, v in enumerate(ids) if i % 3 == 0), key=lambda v: hashlib.sha256(v.encode()).hexdigest())
    assert _ids(chosen) == numeric + text
    assert numeric != sorted(numeric)  # the hash order is not the id order (the test would not see a mix-up)


def test_the_sample_is_the_same_whatever_the_manifest_row_order():
    rows = [{"video_id": f"v{i:03d}", "views": i % 5} for i in range(200)]
    budget = TeacherBudget(videos=40)
    first, _ = choose_sample(_manifest(rows), budget, new_ids={f"v{i:03d}" for i in range(0, 200, 7)})
    for seed in range(3):
        shuffled = rows[:]
        random.Random(seed).shuffle(shuffled)
        again, _ = choose_sample(_manifest(shuffled), budget, new_ids={f"v{i:03d}" for i in range(0, 200, 7)})
        assert _ids(again) == _ids(first)
    assert len(_ids(first)) == 40 and len(set(_ids(first))) == 40


def test_a_budget_in_videos_caps_the_sample_and_absent_columns_are_reported():
    m = _manifest([{"video_id": f"v{i}"} for i in range(10)])
    chosen, choice = choose_sample(m, TeacherBudget(videos=3))
    assert chosen.num_rows == 3 and choice.cap == 3 and choice.candidates == 10
    assert choice.priority == [] and choice.ignored_priority == ["new", "priority", "views"]  # no state, no columns
    everything, _ = choose_sample(m, TeacherBudget(videos=0))
    assert everything.num_rows == 10  # 0 = no cap
    more, _ = choose_sample(m, TeacherBudget(videos=50))
    assert more.num_rows == 10


def test_a_budget_in_usd_divides_by_the_price_tables_estimate_and_the_smaller_cap_wins():
    spec = load_spec(_spec_path())
    per_video = gemini_usd_per_video(spec)
    assert 0 < per_video < 0.1  # a few thousand tokens at a Gemini list price
    m = _manifest([{"video_id": f"v{i}"} for i in range(1000)])
    chosen, choice = choose_sample(m, TeacherBudget(usd=10 * per_video + per_video / 2), usd_per_video=per_video)
    assert chosen.num_rows == 10 and choice.usd_per_video == per_video
    both, _ = choose_sample(m, TeacherBudget(usd=10 * per_video, videos=4), usd_per_video=per_video)
    assert both.num_rows == 4
    batch = gemini_usd_per_video(spec, batch=True)
    assert batch < per_video  # the Batch API discount makes a USD budget go further


def test_a_usd_budget_without_a_price_per_video_and_bad_values_are_refused_naming_them():
    m = _manifest([{"video_id": "a"}])
    with pytest.raises(SilversetInputError, match="teacher_budget_usd.*Gemini"):
        choose_sample(m, TeacherBudget(usd=1.0))  # a local/zero-shot teacher has no price per video
    with pytest.raises(SilversetInputError, match="--budget-videos"):
        teacher_budget(videos=-1, names=("--budget-videos", "--budget-usd", "--priority"))
    with pytest.raises(SilversetInputError, match="teacher_budget_usd"):
        teacher_budget(usd=float("nan"))
    with pytest.raises(SilversetInputError, match="teacher_priority"):
        teacher_budget(priority="views;drop table")
    with pytest.raises(SilversetInputError, match="twice"):
        parse_priority("views,views")


def _spec_path() -> Path:
    from silverset.components.common.spec import example_specs_dir

    return example_specs_dir() / "red_dominant.yaml"


def _embeddings(path: Path, ids: list[str]) -> str:
    tables.write_table(pa.table({"video_id": ids, "x": list(range(len(ids)))}), path / "part.parquet")
    return str(path)


def test_a_budgeted_plan_labels_the_sample_only_and_the_state_keeps_the_rest_as_unlabelled(tmp_path):
    manifest, spec_path = file_corpus(tmp_path, 20), spec_version(tmp_path)
    golden = golden_for_ids(tmp_path / "golden.parquet", ["v000", "v001", "v002", "v003"])
    state_dir = str(tmp_path / "state")
    budget = TeacherBudget(videos=4)
    first = plan.run(
        manifest_uri=str(manifest),
        attribute_spec=str(spec_path),
        state_dir=state_dir,
        out_dir=str(tmp_path / "p1"),
        golden_set=golden,
        budget=budget,
    )
    sample = _ids(tables.read_table(first.teacher_manifest))
    assert first.todo == 20 and len(sample) == 4
    assert not set(sample) & {"v000", "v001", "v002", "v003"}  # the gate labels the golden set anyway
    assert first.teacher_sample["candidates"] == 16 and first.teacher_sample["excluded"] == 4
    # the teacher sees the sample
    labels_dir, calls = teacher_labels(first.teacher_manifest, spec_path, tmp_path / "t1")
    assert calls == 4
    every = [f"v{i:03d}" for i in range(20)]
    merged = plan.finalize(
        plan_dir=str(tmp_path / "p1"),
        new_labels=labels_dir,
        out_dir=str(tmp_path / "m1"),
        new_embeddings=_embeddings(tmp_path / "e1", every),
        golden_set=golden,
    )
    assert (merged.labels, merged.embeddings, merged.unlabelled, merged.train_labels) == (4, 20, 16, 4)
    committed = plan.commit_promotion(
        plan_dir=str(tmp_path / "p1"), merged_dir=str(tmp_path / "m1"), state_dir=state_dir, run_id="r1"
    )
    assert (committed.videos, committed.labels, committed.embeddings) == (20, 4, 20)
    previous = state.load(state_dir)
    assert sorted(previous.labels.column("video_id").to_pylist()) == sorted(sample)  # only real teacher labels

    # Two new videos: they are due (and new first); the 16 unlabelled ones are carried as unlabelled, not re-done.
    extra = file_corpus(tmp_path / "more", 22)
    lines = Path(manifest).read_text().splitlines() + Path(extra).read_text().splitlines()[21:]
    Path(manifest).write_text("\n".join(lines) + "\n")
    second = plan.run(
        manifest_uri=str(manifest),
        attribute_spec=str(spec_path),
        state_dir=state_dir,
        out_dir=str(tmp_path / "p2"),
        golden_set=golden,
        budget=budget,
    )
    assert second.todo == 2 and second.carried_unlabelled == 16 and second.unchanged == 20
    assert sorted(_ids(tables.read_table(second.teacher_manifest))) == ["v020", "v021"]
    carried = tables.read_table(str(tmp_path / "p2" / "carried" / "labels"))
    assert sorted(_ids(carried)) == sorted(sample)


def test_a_sampled_video_the_teacher_did_not_answer_is_not_committed_and_is_planned_again(tmp_path):
    manifest, spec_path = file_corpus(tmp_path, 6), spec_version(tmp_path)
    state_dir = str(tmp_path / "state")
    first = plan.run(
        manifest_uri=str(manifest),
        attribute_spec=str(spec_path),
        state_dir=state_dir,
        out_dir=str(tmp_path / "p1"),
        budget=TeacherBudget(videos=3),
    )
    sample = _ids(tables.read_table(first.teacher_manifest))
    labels_dir, _ = teacher_labels(first.teacher_manifest, spec_path, tmp_path / "t1")
    # the teacher answered two of its three videos (the third failed: an error row, no label)
    answered = tables.read_table(labels_dir).filter(pa.array([v != sample[2] for v in sample]))
    (tmp_path / "t1" / "part-00000.parquet").unlink()
    tables.write_table(answered, tmp_path / "t1" / "part-00000-of-00001-00000.parquet")  # as the runner names parts
    blocked = tables.errors_table([tables.ErrorRow(sample[2], "annotate", "safety_blocked", "blocked")])
    tables.write_table(blocked, tmp_path / "t1" / ".parts" / "errors-00000-of-00001-00000.parquet")
    plan.finalize(
        plan_dir=str(tmp_path / "p1"),
        new_labels=labels_dir,
        out_dir=str(tmp_path / "m1"),
        new_embeddings=_embeddings(tmp_path / "e1", [f"v{i:03d}" for i in range(6)]),
    )
    committed = plan.commit_promotion(
        plan_dir=str(tmp_path / "p1"), merged_dir=str(tmp_path / "m1"), state_dir=state_dir, run_id="r1"
    )
    assert (committed.videos, committed.labels) == (5, 2)
    again = plan.run(
        manifest_uri=str(manifest),
        attribute_spec=str(spec_path),
        state_dir=state_dir,
        out_dir=str(tmp_path / "p2"),
        budget=TeacherBudget(videos=3),
    )
    assert _ids(tables.read_table(again.todo_manifest)) == [sample[2]]


def test_the_budget_is_part_of_the_run_folder_digest_and_an_unchanged_corpus_stays_up_to_date(tmp_path):
    manifest, spec_path = file_corpus(tmp_path, 5), spec_version(tmp_path)
    state_dir = str(tmp_path / "state")
    kw = dict(
        manifest_uri=str(manifest),
        attribute_spec=str(spec_path),
        state_dir=state_dir,
        workdir=str(tmp_path / "w"),
        out_dir="",
    )
    uncapped = plan.run(**kw)
    capped = plan.run(**kw, budget=TeacherBudget(videos=2))
    other = plan.run(**kw, budget=TeacherBudget(videos=2, priority="views"))
    assert len({uncapped.run_dir, capped.run_dir, other.run_dir}) == 3  # a new sample never reuses a cached one
    assert uncapped.corpus_digest == plan.run(**kw, budget=TeacherBudget(videos=0)).corpus_digest

    labels_dir, _ = teacher_labels(capped.teacher_manifest, spec_path, tmp_path / "t")
    plan.finalize(
        plan_dir=capped.out_dir,
        new_labels=labels_dir,
        out_dir=str(tmp_path / "m"),
        new_embeddings=_embeddings(tmp_path / "e", [f"v{i:03d}" for i in range(5)]),
    )
    plan.commit_promotion(plan_dir=capped.out_dir, merged_dir=str(tmp_path / "m"), state_dir=state_dir, run_id="r")
    again = plan.run(**kw, budget=TeacherBudget(videos=2))
    assert again.up_to_date and again.run_dir == ""  # the 3 unlabelled videos are not work to do again
    wider = plan.run(**kw, budget=TeacherBudget(videos=4))
    assert not wider.up_to_date and wider.todo == 0 and wider.carried_unlabelled == 3


def test_annotate_by_hand_labels_the_same_budgeted_sample_as_the_pipeline_would(tmp_path):
    from silverset.components.common.manifest import read_manifest
    from silverset.components.common.sharding import Shard
    from silverset.components.incremental.sample import annotate_sample

    manifest, spec_path = file_corpus(tmp_path, 8), spec_version(tmp_path)
    budget = TeacherBudget(videos=3)
    path, choice, hard_stop = annotate_sample(
        attribute_spec=str(spec_path),
        manifest_uri=str(manifest),
        out_dir=str(tmp_path / "o"),
        budget=budget,
        teacher="zero-shot",
    )
    rows, _ = read_manifest(str(manifest))
    assert _ids(tables.read_table(path)) == _ids(choose_sample(rows, budget)[0]) and choice.chosen == 3
    assert hard_stop is None and Path(path).parent.name == ".sample"  # hidden: not a labels part of the output
    assert annotate_sample(
        attribute_spec=str(spec_path),
        manifest_uri=str(manifest),
        out_dir=str(tmp_path / "o"),
        budget=TeacherBudget(),
        max_usd=2.0,
    ) == (str(manifest), None, 2.0)
    with pytest.raises(SilversetInputError, match="--budget-usd"):
        annotate_sample(
            attribute_spec=str(spec_path),
            manifest_uri=str(manifest),
            out_dir=str(tmp_path / "o"),
            budget=TeacherBudget(usd=1.0),
            teacher="local",
        )
    # A Gemini USD cap: each shard's hard stop is its share; together they never pass the budget.
    stops = [
        annotate_sample(
            attribute_spec=str(spec_path),
            manifest_uri=str(manifest),
            out_dir=str(tmp_path / "g"),
            budget=TeacherBudget(usd=0.05),
            teacher="gemini",
            shard=Shard(i, 3),
        )[2]
        for i in range(3)
    ]
    assert sum(stops) == pytest.approx(0.05) and all(s >= 0 for s in stops)
