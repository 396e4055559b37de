"""What a run cost, teacher against student: steps measure their own CPU-seconds, the run summary prices them.

Steps record their CPU-seconds with ``common.cpu_stats`` (``stats/cpu-<name>.json``). ``run_costs`` reads
them back: the teacher's spend is the Gemini price table applied to
the tokens each answer reported (the annotate stats' ``cost_usd``), or, for the local and zero-shot
teachers, measured CPU-seconds x the $/core-hour; the student's is its bulk-score CPU-seconds x the same
rate. Costs per 1,000 videos divide by the videos each one handled in this run. Not counted: frames and
embeddings (every video needs them, teacher or not), the student's training, and a step's wall time.
"""

from __future__ import annotations


def _per_1000(usd: float, videos: int) -> float | None:
    return round(usd / videos * 1000, 6) if videos > 0 else None


def run_costs(
    *,
    annotate: dict,
    golden_annotate: dict,
    teacher_cpu: dict,
    golden_cpu: dict,
    student_cpu: dict,
    scored: int,
    cost_per_core_hour_usd: float,
    budget_videos: int = 0,
    budget_usd: float = 0.0,
) -> dict:
    """The run's teacher and student costs (the ``costs`` of run_summary.json).

    ``annotate``/``golden_annotate``: the teacher's summed shard stats (webhook.teacher_spend) for the bulk
    sample and the golden set; ``*_cpu``: read_cpu of those folders and of the bulk scores; ``scored``:
    scores rows the student wrote. Teacher calls are videos the teacher answered in this run (cache hits
    and resumed videos excluded); the budget applies to the bulk sample, the golden set is the gate's.
    """
    rate = float(cost_per_core_hour_usd)
    gemini = str(annotate.get("teacher_id") or golden_annotate.get("teacher_id") or "").startswith("gemini:")

    def teacher(stats: dict, cpu: dict) -> dict:
        calls = max(int(stats.get("processed", 0)) - int(stats.get("cache_hits", 0)), 0)
        cpu_s = float(cpu.get("cpu_seconds", 0.0))
        usd = float(stats.get("cost_usd", 0.0)) if gemini else cpu_s / 3600 * rate
        return {
            "calls": calls,
            "requests": int(stats.get("requests", 0)),
            "cpu_seconds": cpu_s,
            "spend_usd": round(usd, 6),
        }

    bulk, golden = teacher(annotate, teacher_cpu), teacher(golden_annotate, golden_cpu)
    student_s = float(student_cpu.get("cpu_seconds", 0.0))
    student_usd = student_s / 3600 * rate
    teacher_per_1000 = _per_1000(bulk["spend_usd"], bulk["calls"])
    student_per_1000 = _per_1000(student_usd, scored)
    ratio = round(teacher_per_1000 / student_per_1000, 3) if teacher_per_1000 is not None and student_per_1000 else None
    return {
        "cost_per_core_hour_usd": rate,
        "teacher_priced_by": "gemini price table x reported tokens" if gemini else "measured CPU-seconds x $/core-hour",
        "teacher_budget_videos": int(budget_videos),
        "teacher_budget_usd": float(budget_usd),
        "teacher_calls": bulk["calls"],
        "teacher_requests": bulk["requests"],
        "teacher_spend_usd": bulk["spend_usd"],
        "teacher_cpu_seconds": bulk["cpu_seconds"],
        "golden_teacher_calls": golden["calls"],
        "golden_teacher_spend_usd": golden["spend_usd"],
        "student_items_scored": int(scored),
        "student_cpu_seconds": round(student_s, 4),
        "student_spend_usd": round(student_usd, 6),
        "teacher_usd_per_1000_videos": teacher_per_1000,
        "student_usd_per_1000_videos": student_per_1000,
        "teacher_to_student_cost_ratio": ratio,
    }
