"""Run costs: CPU-seconds are measured (not wall time), the teacher is priced by Gemini tokens or by CPU time, and
the run summary reports teacher calls, spend, student items scored and cost per 1,000 videos."""

from __future__ import annotations

import json
import time

import pyarrow as pa

from silverset.components.common import schemas, tables
from silverset.components.common.artifacts import PlanSummary, write_plan
from silverset.components.common.cpu_stats import measure_cpu, read_cpu, write_cpu
from silverset.components.notify import webhook
from silverset.components.notify.costs import run_costs


def test_cpu_is_measured_as_cpu_time_not_wall_time():
    with measure_cpu() as idle:
        time.sleep(0.3)
    with measure_cpu() as busy:
        deadline = time.process_time() + 0.3
        while time.process_time() < deadline:
            pass
    assert idle.cpu_seconds < 0.1  # sleeping costs no CPU
    assert busy.cpu_seconds >= 0.29


def test_cpu_records_of_several_shards_add_up(tmp_path):
    write_cpu(str(tmp_path), "shard-00000-of-00002", cpu_seconds=1.5, items=3)
    write_cpu(str(tmp_path), "shard-00001-of-00002", cpu_seconds=2.0, items=4)
    (tmp_path / "stats" / "shard-00000-of-00002.json").write_text("{}")  # the runner's own stats are not CPU records
    assert read_cpu(str(tmp_path)) == {"cpu_seconds": 3.5, "items": 7, "steps": 2}
    assert read_cpu(str(tmp_path / "missing")) == {}


def test_a_gemini_teacher_is_priced_by_its_tokens_and_a_local_one_by_its_cpu_seconds():
    student = {"cpu_seconds": 36.0}  # 0.01 core-hours
    gemini = run_costs(
        annotate={
            "teacher_id": "gemini:gemini-3-flash",
            "processed": 12,
            "cache_hits": 2,
            "requests": 11,
            "cost_usd": 0.05,
        },
        golden_annotate={},
        teacher_cpu={"cpu_seconds": 900.0},
        golden_cpu={},
        student_cpu=student,
        scored=1000,
        cost_per_core_hour_usd=0.04,
        budget_videos=10,
    )
    assert gemini["teacher_calls"] == 10  # cache hits cost nothing and are no calls
    assert gemini["teacher_spend_usd"] == 0.05  # the price table's, not the CPU's
    assert gemini["teacher_usd_per_1000_videos"] == 5.0
    assert gemini["student_spend_usd"] == 0.0004 and gemini["student_usd_per_1000_videos"] == 0.0004
    assert gemini["teacher_to_student_cost_ratio"] == 12500.0

    local = run_costs(
        annotate={"teacher_id": "local:sha256:ab", "processed": 10, "cost_usd": 0.0},
        golden_annotate={"teacher_id": "local:sha256:ab", "processed": 5},
        teacher_cpu={"cpu_seconds": 72.0},
        golden_cpu={"cpu_seconds": 36.0},
        student_cpu=student,
        scored=100,
        cost_per_core_hour_usd=0.04,
    )
    assert local["teacher_spend_usd"] == 0.0008 and local["golden_teacher_spend_usd"] == 0.0004
    assert local["teacher_usd_per_1000_videos"] == 0.08 and local["student_usd_per_1000_videos"] == 0.004
    assert local["teacher_to_student_cost_ratio"] == 20.0
    nothing = run_costs(
        annotate={},
        golden_annotate={},
        teacher_cpu={},
        golden_cpu={},
        student_cpu={},
        scored=0,
        cost_per_core_hour_usd=0.04,
    )
    assert nothing["teacher_usd_per_1000_videos"] is None and nothing["teacher_to_student_cost_ratio"] is None


def test_the_run_summary_carries_the_costs_of_the_run_folder(tmp_path):
    run_dir, plan_dir = tmp_path / "runs" / "abc", tmp_path / "plans" / "r1"
    plan_dir.mkdir(parents=True)
    write_plan(
        plan_dir / "plan.json",
        PlanSummary(
            videos=10,
            todo=10,
            new=10,
            changed=0,
            unchanged=0,
            removed=0,
            errors=0,
            relabel_all=False,
            up_to_date=False,
            corpus_digest="abc",
            todo_manifest="",
            out_dir="",
            run_dir=str(run_dir),
            cost_per_core_hour_usd=0.36,
            teacher_sample={"budget_videos": 2, "budget_usd": 0.0},
        ),
    )
    stats = run_dir / "teacher" / "stats"
    stats.mkdir(parents=True)
    (stats / "shard-00000-of-00001.json").write_text(
        json.dumps({"model_id": "local:sha256:ab", "processed": 2, "outputs": 2, "requests": 0, "cost_usd": 0.0})
    )
    write_cpu(str(run_dir / "teacher"), "shard-00000-of-00001", cpu_seconds=20.0, items=2)
    scores = pa.table(
        {
            "video_id": [f"v{i}" for i in range(10)],
            "attribute": ["a"] * 10,
            "attribute_version": pa.array([1] * 10, pa.int32()),
            "probability": pa.array([0.5] * 10, pa.float32()),
            "model_digest": ["d"] * 10,
        },
        schema=schemas.SCORES,
    )
    tables.write_table(scores, run_dir / "scores" / "scores-00000.parquet", schemas.SCORES)
    write_cpu(str(run_dir / "scores"), "score", cpu_seconds=1.0, items=10)
    summary = webhook.build_summary(
        run_id="r1", status="FAILED", error_message="", attribute_spec="", workdir=str(tmp_path), plan_dir=str(plan_dir)
    )
    costs = summary.costs
    assert (costs["teacher_calls"], costs["teacher_budget_videos"], costs["student_items_scored"]) == (2, 2, 10)
    assert costs["teacher_spend_usd"] == 0.002 and costs["student_spend_usd"] == 0.0001  # 20 s and 1 s at $0.36/h
    assert costs["teacher_to_student_cost_ratio"] == 100.0  # $1/1k against $0.01/1k
    assert "teacher 2 calls" in summary.text and "student scored 10" in summary.text
