"""The distill half of the flow in one call (``distill_and_gate``: teacher gate, distill, bulk score, student gate)
and the demo golden set drawn from the synthetic corpus's truth (``golden_from_truth``); used by the demo, tests
and benchmarks.

It spans four stages (evaluate, distill, score, evaluate), so it lives here with the other cross-stage code rather
than in a stage package: no stage package imports another that imports it back.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
from pydantic import BaseModel, ConfigDict

from silverset.components.common import schemas, tables
from silverset.components.common.golden import GOLDEN_V1, golden_video_ids
from silverset.components.distill.student import StudentOptions
from silverset.components.distill.train import DistillSummary
from silverset.components.distill.train import run as distill
from silverset.components.evaluate.gate import GateSummary, check_student, check_teacher
from silverset.components.score.bulk import ScoreOptions, ScoreSummary
from silverset.components.score.bulk import run as score


class DemoGoldenSet(BaseModel):
    """A golden set written by ``golden_from_truth``: its file, how many videos, how many positives."""

    model_config = ConfigDict(frozen=True)

    golden_set: str
    items: int
    positives: int


class DistillFlowSummary(BaseModel):
    """Each step's summary (None for the steps a failed teacher gate stopped); ``passed``: both gates passed."""

    model_config = ConfigDict(frozen=True)

    teacher_gate: GateSummary
    distill: DistillSummary | None = None
    score: ScoreSummary | None = None
    student_gate: GateSummary | None = None
    passed: bool


def golden_from_truth(*, truth: str, attribute_spec: str, out: str, share: float = 0.4, seed: int = 0) -> DemoGoldenSet:
    """A demo golden set at ``out`` (a Parquet file): a seeded ``share`` of the synthetic corpus's truth rows for
    the spec's attribute, as human labels.

    Only for the synthetic corpus (whose truth is known); a real golden set comes from the studio.
    """
    import datetime as dt

    import numpy as np

    from silverset.components.common.spec import load_spec

    spec = load_spec(attribute_spec)
    table = tables.read_table(truth, schemas.TRUTH)
    rows = [
        (v, label)
        for v, a, label in zip(
            table.column("video_id").to_pylist(),
            table.column("attribute").to_pylist(),
            table.column("label").to_pylist(),
        )
        if a == spec.name
    ]
    rows.sort()
    pick = np.sort(np.random.default_rng(seed).choice(len(rows), size=int(round(len(rows) * share)), replace=False))
    chosen = [rows[i] for i in pick]
    n = len(chosen)
    labeled_at = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    tables.write_table(
        pa.table(
            {
                "video_id": [v for v, _ in chosen],
                "attribute": [spec.name] * n,
                "attribute_version": pa.array([spec.version] * n, pa.int32()),
                "label": pa.array([int(x) for _, x in chosen], pa.int32()),
                "labeler": ["synthetic-truth"] * n,
                "labeled_at": pa.array([labeled_at] * n, pa.timestamp("us", tz="UTC")),
            }
        ),
        out,
        GOLDEN_V1,
    )
    return DemoGoldenSet(golden_set=out, items=n, positives=int(sum(x for _, x in chosen)))


def golden_predictions(scores: str, golden_set: str, out: str) -> str:
    """The scores rows of the golden items, as one Parquet file (what the student gate reads)."""
    golden_ids = set(golden_video_ids(golden_set))
    table = tables.read_table(scores, schemas.SCORES)
    mask = pa.array([v in golden_ids for v in table.column("video_id").to_pylist()])
    tables.write_table(table.filter(mask), out, schemas.SCORES)
    return out


def distill_and_gate(
    *,
    attribute_spec: str,
    embeddings: str,
    labels: str,
    golden_set: str,
    out_dir: str,
    teacher_stats: str | None = None,
    teacher_latency_s_per_item: float | None = None,
    baseline: str | None = None,
    options: StudentOptions = StudentOptions(),
    score_backend: str = "onnx",
    exclude_golden_from_training: bool = True,
    stop_on_teacher_failure: bool = True,
) -> DistillFlowSummary:
    """Run teacher gate -> distill -> score -> student gate under ``out_dir`` ({teacher_gate,model,scores,
    student_gate}).

    The golden items' teacher labels are left out of the student's training data by default, so the
    student gate measures the student on items it never saw. Stops after the teacher gate when it
    fails (bulk work is not spent on a teacher that failed) unless ``stop_on_teacher_failure`` is False
    (benchmarks measure the student anyway).
    """
    root = Path(out_dir)
    teacher_gate = check_teacher(
        attribute_spec=attribute_spec, golden_set=golden_set, predictions=labels, out_dir=str(root / "teacher_gate")
    )
    if not teacher_gate.passed and stop_on_teacher_failure:
        return DistillFlowSummary(teacher_gate=teacher_gate, passed=False)
    train_labels = labels
    if exclude_golden_from_training:
        golden_ids = set(golden_video_ids(golden_set))
        table = tables.read_table(labels, schemas.LABELS)
        keep = pa.array([v not in golden_ids for v in table.column("video_id").to_pylist()])
        train_labels = str(root / "train_labels.parquet")
        tables.write_table(table.filter(keep), train_labels, schemas.LABELS)
    model_dir = str(root / "model")
    distilled = distill(
        embeddings=embeddings, labels=train_labels, attribute_spec=attribute_spec, out_dir=model_dir, options=options
    )
    scored = score(
        model_dir=model_dir,
        embeddings=embeddings,
        out_dir=str(root / "scores"),
        options=ScoreOptions(backend=score_backend),
    )
    student_golden = golden_predictions(str(root / "scores"), golden_set, str(root / "student_golden_scores.parquet"))
    student_gate = check_student(
        attribute_spec=attribute_spec,
        golden_set=golden_set,
        predictions=student_golden,
        model_dir=model_dir,
        out_dir=str(root / "student_gate"),
        teacher_predictions=labels,
        baseline=baseline,
        teacher_stats=teacher_stats,
        teacher_latency_s_per_item=teacher_latency_s_per_item,
    )
    return DistillFlowSummary(
        teacher_gate=teacher_gate,
        distill=distilled,
        score=scored,
        student_gate=student_gate,
        passed=teacher_gate.passed and student_gate.passed,
    )
