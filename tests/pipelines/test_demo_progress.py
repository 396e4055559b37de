"""Per-task progress of a kfp.local run: a start and an end event per task, in order, with the task's display
name, its ParallelFor shard, its seconds and the count it reports; a failed task ends with FAILURE; the events
never reach kfp.local's task log, and kfp.local runs exactly as without them once the block is left."""
# No `from __future__ import annotations`: kfp reads the components' annotations as types.

import contextlib
import io
import time
from typing import NamedTuple

import pytest
from kfp import dsl, local

from silverset.pipelines.local_progress import TaskEvent, describe_outputs, following_tasks


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def frame_videos(videos: int) -> NamedTuple("Frames", videos=int, frames=int):
    import time
    from collections import namedtuple

    time.sleep(0.3)
    return namedtuple("Frames", "videos frames")(videos, videos * 8)


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def embed_shard(shard_index: int, shard_count: int, per_shard: int) -> str:
    import json

    return json.dumps({"outputs": per_shard + int(shard_index), "errors": 0})


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def gate(passed: bool) -> str:
    if not passed:
        raise RuntimeError("gate refused")
    return "passed"


@dsl.pipeline(name="progress-probe")
def probe(videos: int = 12, passed: bool = True):
    frames = frame_videos(videos=videos).set_display_name("frames")
    with dsl.ParallelFor(items=[0, 1], name="embed-shards") as shard:
        embed_shard(shard_index=shard, shard_count=2, per_shard=5).after(frames).set_display_name("embed-shard")
    gate(passed=passed).after(frames).set_display_name("teacher-gate")


@pytest.fixture
def kfp_local(tmp_path):
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"), raise_on_error=True)


def _run(passed: bool) -> tuple[list[TaskEvent], str]:
    events: list[TaskEvent] = []
    log = io.StringIO()
    with following_tasks(events.append), contextlib.redirect_stdout(log):
        try:
            probe(videos=12, passed=passed)
        except RuntimeError:
            pass
    return events, log.getvalue()


def test_each_task_starts_and_ends_with_its_seconds_and_the_count_it_reports(kfp_local):
    events, log = _run(passed=True)
    assert all(e.phase in ("start", "end") for e in events)
    by_label: dict[str, list[TaskEvent]] = {}
    for event in events:
        by_label.setdefault(event.label, []).append(event)
    # Four tasks: frames, two embed shards (one per ParallelFor iteration, numbered), the gate; each one start
    # then one end.
    assert sorted(by_label) == ["embed-shard [shard 1/2]", "embed-shard [shard 2/2]", "frames", "teacher-gate"]
    for label, pair in by_label.items():
        assert [e.phase for e in pair] == ["start", "end"], label
        assert pair[1].status == "SUCCESS" and pair[1].seconds is not None and pair[1].seconds > 0
    assert events.index(by_label["frames"][1]) < events.index(by_label["embed-shard [shard 1/2]"][0])  # .after(frames)
    frames = by_label["frames"][1]
    assert (frames.count, frames.unit) == (12, "videos framed") and frames.seconds >= 0.3  # the task slept 0.3 s
    assert [by_label[f"embed-shard [shard {i}/2]"][1].count for i in (1, 2)] == [5, 6]
    assert by_label["teacher-gate"][1].note == "passed" and by_label["teacher-gate"][1].count is None
    assert "frames" in log and "videos framed" not in log  # kfp.local's own log, without our lines


def test_a_failed_task_ends_with_failure_and_no_count(kfp_local):
    events, _ = _run(passed=False)
    ends = [e for e in events if e.phase == "end" and e.task == "teacher-gate"]
    assert len(ends) == 1 and ends[0].status == "FAILURE" and ends[0].note == "" and ends[0].count is None


def test_leaving_the_block_restores_kfp_local_and_a_failing_callback_never_fails_a_task(kfp_local):
    from kfp.local.orchestrator import task_executor

    original = task_executor.execute_single_task

    def broken(event: TaskEvent) -> None:
        raise ValueError("printer broke")

    with following_tasks(broken):
        assert task_executor.execute_single_task is not original
        started = time.perf_counter()
        probe(videos=3, passed=True)  # raises if a task failed
        assert time.perf_counter() - started < 120
    assert task_executor.execute_single_task is original


@pytest.mark.parametrize(
    ("task", "outputs", "expected"),
    [
        ("frames", {"frames_dir": "/r/frames", "videos": 60, "errors": 0, "frames": 480}, (60, "videos framed", "")),
        (
            "annotate-shard",
            {"Output": '{"outputs": 0, "resumed": 30, "errors": 0}'},
            (0, "videos labelled", "30 done by an earlier run"),
        ),
        ("bulk-score", {"scores": "/r/scores", "scored": 58.0, "errors": 2}, (58, "videos scored", "")),
        (
            "restricted-vocabulary-and-index",
            {"Output": "20261130T101500-ab12"},
            (None, "", "version 20261130T101500-ab12"),
        ),
        ("notify-and-clean-up", {"Output": "none"}, (None, "", "")),
        (
            "deploy-index",
            {"Output": '{"target": "local", "version": "red_dominant-v1-4a90", "changed": false}'},
            (None, "", "red_dominant-v1-4a90 already live"),
        ),
        ("plan-incremental", {"Output": ""}, (None, "", "corpus unchanged: nothing to do")),
        ("plan-incremental", {"Output": "/no/such/run"}, (None, "", "")),
    ],
)
def test_counts_come_from_what_each_stage_returns(task, outputs, expected):
    assert describe_outputs(task, outputs) == expected


def test_the_plan_step_counts_the_videos_its_plan_says_are_due(tmp_path):
    from silverset.components.common.spec import example_specs_dir
    from silverset.components.incremental.plan import plan_run

    videos = tmp_path / "videos"
    videos.mkdir()
    lines = ["video_id,uri"]
    for i in range(5):
        (videos / f"v{i}.mp4").write_bytes(f"bytes {i}".encode())
        lines.append(f"v{i},{videos / f'v{i}.mp4'}")
    (tmp_path / "manifest.csv").write_text("\n".join(lines) + "\n")
    summary = plan_run(
        manifest_uri=str(tmp_path / "manifest.csv"),
        state_dir=str(tmp_path / "state"),
        attribute_spec=str(example_specs_dir() / "red_dominant.yaml"),
        workdir=str(tmp_path / "w"),
        run_id="run-1",
    )
    assert describe_outputs("plan-incremental", {"Output": summary.run_dir}) == (
        5,
        "of 5 videos to process (new or changed)",
        "",
    )


def test_the_demo_prints_one_line_per_start_and_end_with_count_note_and_seconds():
    from rich.console import Console

    from silverset.pipelines.cli.demo import ProgressPrinter

    out = io.StringIO()
    printer = ProgressPrinter(Console(file=out, width=60))
    printer(TaskEvent(task="corpus synth", phase="start"))
    printer(TaskEvent(task="corpus synth", phase="end", seconds=12.34, status="SUCCESS", count=200, unit="videos"))
    printer(
        TaskEvent(
            task="embed-shard",
            phase="end",
            shard=1,
            shards=2,
            seconds=3.0,
            status="SUCCESS",
            count=100,
            unit="videos embedded",
            note="4 done by an earlier run",
            within="pipeline",
        )
    )
    printer(TaskEvent(task="student-gate", phase="end", seconds=0.5, status="FAILURE", within="pipeline"))
    lines = [line[9:] for line in out.getvalue().splitlines()]  # after HH:MM:SS
    assert lines == [
        "start corpus synth",
        "done  corpus synth: 200 videos  12.3 s",
        "  done  embed-shard [shard 2/2]: 100 videos embedded, 4 done by an earlier run  3.0 s",
        "  FAILED student-gate  0.5 s",
    ]  # one line each, even past the console's 60 columns


def test_quiet_libraries_reach_a_subprocess_keep_the_users_own_setting_and_are_undone(monkeypatch):
    import os
    import subprocess
    import sys

    from silverset.pipelines.demo import quiet_libraries

    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    monkeypatch.setenv("TRANSFORMERS_VERBOSITY", "info")  # the user's choice wins
    script = "import os; print(os.environ.get('TQDM_DISABLE'), os.environ.get('TRANSFORMERS_VERBOSITY'))"
    with quiet_libraries():
        seen = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert seen.split() == ["1", "info"]
    assert "TQDM_DISABLE" not in os.environ and os.environ["TRANSFORMERS_VERBOSITY"] == "info"
