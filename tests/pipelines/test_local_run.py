"""`silverset pipeline run --local`: the whole pipeline through kfp.local. A promotion that a gate or the approval
stops ends FAILED with the reason in the run summary and leaves the corpus un-marked; the next run plans the
same videos again and pays the teacher nothing twice; two runs started together over one workdir never
corrupt each other."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path

import pytest
import yaml

from silverset.components.common.spec import example_specs_dir
from tests.helpers.cli import silverset_argv

PARAMS = {"frames_per_video": 2, "frame_size": 64, "teacher_backend": "local", "submitter": "silverset-pipeline"}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """30 tiny videos, a golden set of half of them from the synthetic truth, and the demo's local teacher."""
    from silverset.components.corpus.synth import SynthOptions
    from silverset.components.corpus.synth import run as synth
    from silverset.pipelines.demo import write_demo_teacher
    from silverset.pipelines.distill_flow import golden_from_truth

    root = tmp_path_factory.mktemp("corpus")
    made = synth(out_dir=root / "c", options=SynthOptions(videos=30, seed=0, duration_s=1.0, width=96, height=64))
    golden = golden_from_truth(
        truth=made.truth_uri,
        attribute_spec=str(example_specs_dir() / "red_dominant.yaml"),
        out=str(root / "golden.parquet"),
        share=0.5,
        seed=0,
    )
    return {
        "manifest_uri": made.manifest_uri,
        "golden": golden.golden_set,
        "checkpoint": write_demo_teacher(root / "teacher.pt"),
    }


@pytest.fixture(scope="module")
def corpus60(tmp_path_factory):
    """60 tiny videos with a golden set of half of them: a 20% teacher budget (12 of the 30 others) still leaves
    the student the 10 labels it needs."""
    from silverset.components.corpus.synth import SynthOptions
    from silverset.components.corpus.synth import run as synth
    from silverset.pipelines.demo import write_demo_teacher
    from silverset.pipelines.distill_flow import golden_from_truth

    root = tmp_path_factory.mktemp("corpus60")
    made = synth(out_dir=root / "c", options=SynthOptions(videos=60, seed=0, duration_s=1.0, width=96, height=64))
    golden = golden_from_truth(
        truth=made.truth_uri,
        attribute_spec=str(example_specs_dir() / "red_dominant.yaml"),
        out=str(root / "golden.parquet"),
        share=0.5,
        seed=0,
    )
    return {
        "manifest_uri": made.manifest_uri,
        "golden": golden.golden_set,
        "checkpoint": write_demo_teacher(root / "teacher.pt"),
    }


def spec_with(tmp_path: Path, **changes) -> str:
    """red_dominant with small-golden-set bars (a test corpus of 30 videos) and ``changes`` merged in."""
    data = yaml.safe_load((example_specs_dir() / "red_dominant.yaml").read_text())
    data["gates"]["teacher"].update(min_positives=2, min_negatives=2)
    data["gates"]["bootstrap_samples"] = 200
    data["serving"]["recall_target"] = 0.5
    for key, value in changes.items():
        section, _, field = key.partition("__")
        if field:
            node = data
            for part in section.split("."):
                node = node.setdefault(part, {})
            node[field] = value
        else:
            data[key] = value
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def run(corpus, workdir, spec, **params):
    from silverset.pipelines.attribute_promotion import PlatformOptions
    from silverset.pipelines.local_run import run_local

    return run_local(
        attribute_spec=spec,
        manifest_uri=corpus["manifest_uri"],
        workdir=workdir,
        golden_set=corpus["golden"],
        params={**PARAMS, "teacher_checkpoint": corpus["checkpoint"], **params},
        options=PlatformOptions(shards=1),
    )


def assert_stopped(result, outcome: str, reason: str) -> None:
    assert result.status == "FAILED", result.error
    assert result.summary.status == "FAILED" and result.summary.outcome == outcome
    assert any(reason in r for r in result.summary.reasons), result.summary.reasons
    assert reason in result.summary.text or outcome.replace("_", " ") in result.summary.text
    state = result.workdir / "state"
    assert not (state / "completed.json").exists() and not (state / "attribute.json").exists()  # nothing marked done
    assert not (state / "lock.json").exists() or json.loads((state / "lock.json").read_text())["holder"] == ""


@pytest.mark.slow
def test_a_failed_student_gate_fails_the_run_and_leaves_the_corpus_unmarked(corpus, tmp_path):
    spec = spec_with(tmp_path, **{"gates.student__max_latency_ratio": 1e-9})  # no student is that fast
    result = run(corpus, tmp_path / "w", spec)
    assert_stopped(result, "student_gate_failed", "latency")
    assert result.summary.annotate["outputs"] == result.plan.todo  # the teacher did label the corpus
    assert not (Path(result.summary.run_dir) / "approval").exists()


def _reject_when_asked(workdir: Path, digest_seen: dict) -> threading.Thread:
    """An approver who rejects the candidate as soon as the pipeline's request appears in the SQLite store."""
    from silverset.components.approval.policy import ApprovalService
    from silverset.components.approval.store import open_store

    def decide() -> None:
        deadline = time.monotonic() + 300
        store = workdir / "approvals.db"
        while time.monotonic() < deadline:
            if store.exists():
                service = ApprovalService(open_store(f"sqlite:///{store}"))
                pending = [r for r in service.list() if r.state.value == "pending"]
                if pending:
                    digest_seen["digest"] = pending[0].candidate_digest
                    service.reject(
                        pending[0].candidate_digest,
                        user="bob@silverset.dev",
                        reason="the report shows red logos labelled positive",
                    )
                    return
            time.sleep(0.5)

    thread = threading.Thread(target=decide, daemon=True)
    thread.start()
    return thread


@pytest.mark.slow
def test_a_rejected_approval_fails_the_run_and_the_next_run_pays_the_teacher_nothing_twice(corpus, tmp_path):
    spec = spec_with(tmp_path, **{"gates.student__min_f1_retention": 0.0})
    workdir = tmp_path / "w"
    seen: dict = {}
    approver = _reject_when_asked(workdir, seen)
    first = run(corpus, workdir, spec)
    approver.join(timeout=5)
    assert_stopped(first, "approval_rejected", "red logos")
    assert first.summary.approval["decided_by"] == "bob@silverset.dev" and seen["digest"]
    labelled = first.summary.annotate["processed"]
    assert labelled == first.plan.todo > 0

    # Nothing was committed, so the next run plans the same videos into the same run folder, and the teacher's
    # finished shards there are reused: zero videos labelled again.
    approver = _reject_when_asked(workdir, {})
    second = run(corpus, workdir, spec)
    approver.join(timeout=5)
    assert second.plan.todo == first.plan.todo and second.plan.run_dir == first.plan.run_dir
    assert second.summary.annotate["processed"] == 0
    assert second.summary.annotate["resumed"] == labelled
    assert_stopped(second, "approval_rejected", "red logos")


@pytest.mark.slow
def test_a_20pct_teacher_budget_labels_12_of_60_videos_and_the_student_scores_all_60(corpus60, tmp_path):
    """The issue's "done when": teacher calls <= a budget of 20% of the corpus, student scores for all of it."""
    from silverset.components.common import tables

    spec = spec_with(tmp_path, **{"gates.student__min_f1_retention": 0.0})
    workdir = tmp_path / "w"
    budget = {"teacher_budget_videos": 12, "cost_per_core_hour_usd": 0.0408}  # 20% of the 60-video corpus
    result = run(
        corpus60, workdir, spec, **budget, auto_approve_as="alice@silverset.dev", experiment_treatment_share=0.25
    )
    assert result.status == "SUCCEEDED", result.error
    assert result.summary.outcome == "promoted"
    # The experiment step ran after the commit: the promoted version's experiment, beside the serving root.
    from silverset.components.abtest.experiment import load_experiment
    from silverset.components.common.spec import load_spec

    experiment = load_experiment(workdir / "experiment" / "experiment.json")
    promoted = load_spec(spec)
    assert (experiment.treatment_share, experiment.attribute_version) == (0.25, promoted.version)
    assert experiment.spec_content_hash == promoted.content_hash and (workdir / "state" / "completed.json").exists()
    # The teacher labelled its sample only, golden-set videos left to the gate (which labels them anyway).
    sample = result.plan.teacher_sample
    assert result.plan.todo == 60 and sample["chosen"] == 12 and sample["excluded"] == result.plan.golden == 30
    costs = result.summary.costs
    assert costs["teacher_calls"] == result.summary.annotate["processed"] == 12 <= costs["teacher_budget_videos"]
    assert costs["golden_teacher_calls"] == 30  # the teacher gate's labelling, reported apart from the budget
    # The student scored every video of the corpus, the 48 the teacher never saw included.
    scored = set(tables.read_table(str(Path(result.plan.run_dir) / "scores")).column("video_id").to_pylist())
    assert scored == set(tables.read_table(corpus60["manifest_uri"]).column("video_id").to_pylist())
    assert costs["student_items_scored"] == 60
    # Costs come from measured CPU-seconds at the stated rate (the demo teacher is local: no price table).
    assert costs["teacher_cpu_seconds"] > 0 and costs["student_cpu_seconds"] > 0
    assert costs["teacher_spend_usd"] == pytest.approx(costs["teacher_cpu_seconds"] / 3600 * 0.0408, abs=1e-6)
    assert costs["teacher_usd_per_1000_videos"] > 0 and costs["student_usd_per_1000_videos"] > 0
    assert costs["teacher_to_student_cost_ratio"] is not None
    # The state keeps the 48 unlabelled videos as such: labels only for what the teacher labelled.
    assert len(tables.read_table(str(workdir / "state" / "labels"))) == 12
    assert len(tables.read_table(str(workdir / "state" / "videos.parquet"))) == 60
    again = run(corpus60, workdir, spec, **budget, auto_approve_as="alice@silverset.dev")
    assert again.status == "SUCCEEDED" and again.plan.up_to_date  # unlabelled videos are not work to redo
    assert again.summary.annotate == {} and again.summary.costs == {}
    assert load_experiment(workdir / "experiment" / "experiment.json") == experiment  # nothing promoted: untouched


@pytest.mark.slow
def test_an_expired_approval_fails_the_run_as_expired(corpus, tmp_path):
    spec = spec_with(tmp_path, **{"gates.student__min_f1_retention": 0.0, "approval_timeout_hours": 0.001})  # 3.6 s
    result = run(corpus, tmp_path / "w", spec)
    assert_stopped(result, "approval_expired", "expired")
    assert result.summary.approval["decision"] == "expired"


@pytest.mark.slow
def test_an_unknown_pipeline_parameter_is_named_with_the_valid_ones(corpus, tmp_path, cli):
    result = cli(
        "pipeline",
        "run",
        "--local",
        "--attribute",
        spec_with(tmp_path),
        "--manifest",
        corpus["manifest_uri"],
        "--workdir",
        str(tmp_path / "w"),
        "--param",
        "teacher=zero-shot",
    )
    assert result.code == 2
    assert (
        "unknown pipeline parameter(s) teacher" in result.flat_err.replace(" ", "")
        or "unknownpipelineparameter(s)teacher" in result.flat_err
    )
    assert "teacher_backend" in result.err


@pytest.mark.slow
def test_two_runs_started_together_over_one_workdir_never_corrupt_each_other(corpus, tmp_path):
    """Two `silverset pipeline run --local` processes over one workdir: one holds the run lock, the other ends at
    its plan with outcome "locked", naming the holder, and touches nothing of the first run's."""
    spec = spec_with(tmp_path, **{"gates.teacher__min_positives": 50})  # the holder stops at its teacher gate
    workdir = tmp_path / "w"
    command = silverset_argv(
        "pipeline",
        "run",
        "--local",
        "--attribute",
        spec,
        "--manifest",
        corpus["manifest_uri"],
        "--golden-set",
        corpus["golden"],
        "--workdir",
        str(workdir),
        "--shards",
        "1",
        "--param",
        "frames_per_video=2",
        "--param",
        "frame_size=64",
    )
    # The second run starts once the first holds the lock (its plan step has taken it), so the test does not depend
    # on which process's interpreter starts first; racing creators of one lock are tested in test_lock/test_s3_lock.
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lock_file, deadline = workdir / "state" / "lock.json", time.monotonic() + 300
    while time.monotonic() < deadline and first.poll() is None:
        if lock_file.is_file() and json.loads(lock_file.read_text() or "{}").get("holder"):
            break
        time.sleep(0.05)
    processes = [first, subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)]
    outputs = [p.communicate(timeout=900)[0] for p in processes]
    assert [p.returncode for p in processes] == [1, 1], outputs  # both FAILED: one locked out, one at its gate
    summaries = [json.loads(p.read_text()) for p in sorted((workdir / "plans").glob("*/run_summary.json"))]
    outcomes = sorted(s["outcome"] for s in summaries)
    assert outcomes == ["locked", "teacher_gate_failed"], (outcomes, outputs)
    holder = next(s for s in summaries if s["outcome"] == "teacher_gate_failed")
    locked = next(s for s in summaries if s["outcome"] == "locked")
    assert holder["run_id"] in locked["reasons"][0] and locked["run_dir"] == ""
    # The holder's run folder is whole: its gate result is there and was written by the holder. Its failed teacher
    # gate stopped the run before bulk labels: nothing after the gate exists and nothing was promoted.
    run_dir = Path(holder["run_dir"])
    assert (run_dir / "teacher_gate" / "gate.json").is_file()
    assert holder["status"] == "FAILED" and any("positives" in r for r in holder["reasons"]), holder["reasons"]
    for skipped in ("teacher", "merged", "model", "student_gate", "scores", "index"):
        assert not (run_dir / skipped).exists(), skipped
    assert not (workdir / "state" / "completed.json").exists() and not (workdir / "state" / "attribute.json").exists()
    assert json.loads((workdir / "run_summary.json").read_text())["run_id"] == holder["run_id"]
    assert json.loads((workdir / "state" / "lock.json").read_text())["holder"] == ""  # released by its holder
