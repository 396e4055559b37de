"""`silverset pipeline run --local`: the whole pipeline through kfp.local; a failed gate stops what follows,
an unchanged corpus makes a second run do nothing, and an empty todo list still finishes the run."""
from __future__ import annotations

import json

import pytest

from silverset.components.common import tables
from silverset.components.common.spec import example_specs_dir

SPEC = str(example_specs_dir() / "red_dominant.yaml")
PARAMS = {"frames_per_video": 2, "frame_size": 64}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from silverset.components.corpus.synth import run as synth

    return synth(out=tmp_path_factory.mktemp("corpus") / "c", videos=4, seed=0, duration_s=1.0, width=96, height=64)


@pytest.mark.slow
def test_without_a_golden_set_the_teacher_gate_fails_closed_and_nothing_is_promoted(corpus, tmp_path):
    from silverset.pipelines.attribute_promotion import PlatformOptions
    from silverset.pipelines.local_run import run_local

    workdir = tmp_path / "w"
    first = run_local(attribute_spec=SPEC, manifest=corpus["manifest"], workdir=workdir, params=PARAMS,
                      options=PlatformOptions(shards=1))
    assert first.status == "SUCCEEDED" and first.plan["todo"] == 4
    run_dir = first.plan["run_dir"]
    gate = json.loads(open(f"{run_dir}/teacher_gate/gate.json").read())
    assert gate["passed"] is False and gate["reasons"] == ["no golden set given"]
    assert tables.read_table(f"{run_dir}/frames").num_rows == 8  # frames and embed ran before the gate
    assert tables.read_table(f"{run_dir}/embeddings").num_rows == 4
    for skipped in ("teacher", "merged", "model", "student_gate", "scores", "index"):  # no bulk labels, no promotion
        assert not (workdir / "runs" / run_dir.rsplit("/", 1)[1] / skipped).exists(), skipped
    summary = json.loads((workdir / "run_summary.json").read_text())
    assert summary["gates"]["teacher_gate"]["passed"] is False and "teacher gate FAILED" in summary["text"]
    assert not (workdir / "state" / "lock.json").exists()

    # The corpus is unchanged but nothing was committed: the next run plans the same work again.
    again = run_local(attribute_spec=SPEC, manifest=corpus["manifest"], workdir=workdir, params=PARAMS,
                      options=PlatformOptions(shards=1))
    assert again.plan["todo"] == 4 and not again.plan["up_to_date"]


@pytest.mark.slow
def test_an_empty_todo_list_after_a_crash_past_the_commit_still_runs(corpus, tmp_path):
    """The state holds every label (a run died after carry) but the run was never completed: frames,
    embed and annotate get an empty manifest and must not fail."""
    from silverset.components.incremental import plan as incremental
    from silverset.pipelines.attribute_promotion import PlatformOptions
    from silverset.pipelines.local_run import run_local
    from silverset.components.teacher.annotate import AnnotateOptions, run as annotate

    workdir, state = tmp_path / "w", str(tmp_path / "w" / "state")
    first = incremental.plan_run(manifest=corpus["manifest"], attribute_spec=SPEC, state_dir=state, workdir=str(workdir))
    annotate(attribute=SPEC, manifest=first.todo_manifest, out=str(tmp_path / "labels"),
             options=AnnotateOptions(teacher="zero-shot"))
    incremental.finalize(plan_dir=first.out_dir, new_labels=str(tmp_path / "labels"), state_dir=state,
                         out_dir=str(tmp_path / "merged"))  # committed, never marked completed
    run = run_local(attribute_spec=SPEC, manifest=corpus["manifest"], workdir=workdir, params=PARAMS,
                    options=PlatformOptions(shards=1))
    assert run.status == "SUCCEEDED" and run.plan["todo"] == 0 and not run.plan["up_to_date"]
    assert run.summary["status"] == "SUCCEEDED"
    assert json.loads((workdir / "state" / "completed.json").read_text())["corpus_digest"] == run.plan["corpus_digest"]
