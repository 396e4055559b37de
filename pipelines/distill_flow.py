"""The distill half of the flow in one call: teacher gate, distill, bulk score, student gate (used by tests and
benchmarks).

It spans four stages (evaluate, distill, score, evaluate), so it lives here with the other cross-stage code rather
than in a stage package: no stage package imports another that imports it back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from silverset.components.common import schemas, tables
from silverset.components.common.golden import golden_video_ids
from silverset.components.distill.student import StudentOptions


def golden_predictions(scores: str, golden: str, out: str) -> str:
    """The scores rows of the golden items, as one Parquet file (what the student gate reads)."""
    golden_ids = set(golden_video_ids(golden))
    table = tables.read_table(scores, schemas.SCORES)
    mask = pa.array([v in golden_ids for v in table.column("video_id").to_pylist()])
    tables.write_table(table.filter(mask), out, schemas.SCORES)
    return out


def distill_and_gate(
    *,
    attribute: str,
    embeddings: str,
    labels: str,
    golden: str,
    out: str,
    teacher_stats: str | None = None,
    teacher_latency_s_per_item: float | None = None,
    baseline: str | None = None,
    options: StudentOptions | None = None,
    score_backend: str = "onnx",
    exclude_golden_from_training: bool = True,
    stop_on_teacher_failure: bool = True,
) -> dict[str, Any]:
    """Run teacher gate -> distill -> score -> student gate under ``out`` ({teacher_gate,model,scores,student_gate}).

    The golden items' teacher labels are left out of the student's training data by default, so the
    student gate measures the student on items it never saw. Stops after the teacher gate when it
    fails (bulk work is not spent on a teacher that failed) unless ``stop_on_teacher_failure`` is False
    (benchmarks measure the student anyway). Returns
    each step's summary; ``passed`` is True only when both gates passed.
    """
    from silverset.components.distill.train import run as distill
    from silverset.components.evaluate.gate import run as evaluate
    from silverset.components.score.bulk import ScoreOptions
    from silverset.components.score.bulk import run as score

    root = Path(out)
    result: dict[str, Any] = {}
    result["teacher_gate"] = evaluate(
        attribute=attribute, golden=golden, predictions=labels, gate="teacher", out=str(root / "teacher_gate")
    )
    if not result["teacher_gate"]["passed"] and stop_on_teacher_failure:
        result["passed"] = False
        return result
    train_labels = labels
    if exclude_golden_from_training:
        golden_ids = set(golden_video_ids(golden))
        table = tables.read_table(labels, schemas.LABELS)
        keep = pa.array([v not in golden_ids for v in table.column("video_id").to_pylist()])
        train_labels = str(root / "train_labels.parquet")
        tables.write_table(table.filter(keep), train_labels, schemas.LABELS)
    result["distill"] = distill(
        embeddings=embeddings, labels=train_labels, attribute=attribute, out=str(root / "model"), options=options
    )
    result["score"] = score(
        model=str(root / "model"),
        embeddings=embeddings,
        out=str(root / "scores"),
        options=ScoreOptions(backend=score_backend),
    )
    student_golden = golden_predictions(str(root / "scores"), golden, str(root / "student_golden_scores.parquet"))
    result["student_gate"] = evaluate(
        attribute=attribute,
        golden=golden,
        predictions=student_golden,
        gate="student",
        out=str(root / "student_gate"),
        model=str(root / "model"),
        teacher_predictions=labels,
        baseline=baseline,
        teacher_stats=teacher_stats,
        teacher_latency_s_per_item=teacher_latency_s_per_item,
    )
    result["passed"] = bool(result["teacher_gate"]["passed"] and result["student_gate"]["passed"])
    for step in ("teacher_gate", "student_gate"):
        result[step].pop("curves", None)
    return result
