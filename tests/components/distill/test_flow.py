"""The distill half of the flow end to end: teacher gate, distill (golden items held out), Beam scoring, student
gate."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from silverset.components.common import schemas, tables
from silverset.components.distill.student import StudentOptions
from silverset.pipelines.distill_flow import distill_and_gate, golden_from_truth
from tests.helpers.factories import SPEC, write_synthetic


@pytest.mark.slow  # Beam + tfx-bsl import TensorFlow
def test_distill_and_gate_passes_both_gates_and_writes_reports(tmp_path):
    data = write_synthetic(tmp_path / "data", n=400)
    truth = pa.table({"video_id": data["ids"], "attribute": ["red_dominant"] * 400, "label": pa.array(data["truth"])})
    tables.write_table(truth, tmp_path / "truth.parquet", schemas.TRUTH)
    golden = golden_from_truth(
        truth=str(tmp_path / "truth.parquet"), attribute_spec=SPEC, out=str(tmp_path / "golden.parquet")
    )
    assert golden.items == 160
    result = distill_and_gate(
        attribute_spec=SPEC,
        embeddings=data["embeddings"],
        labels=data["labels"],
        golden_set=golden.golden_set,
        out_dir=str(tmp_path / "flow"),
        teacher_latency_s_per_item=0.5,
        options=StudentOptions(architecture="logistic"),
    )  # the simulated teacher is linear in the embedding
    assert result.teacher_gate.passed, result.teacher_gate.reasons
    assert result.student_gate.passed, result.student_gate.reasons
    assert result.passed
    assert result.distill.trained_on == 240  # golden items never reach the student's training data
    assert result.score.scored == 400
    gate = json.loads((tmp_path / "flow" / "student_gate" / "gate.json").read_text())
    assert gate["candidate_digest"] == result.distill.model_digest == result.student_gate.candidate_digest
    assert (tmp_path / "flow" / "student_gate" / "report.html").exists()


def test_a_failed_teacher_gate_stops_before_distilling(tmp_path):
    data = write_synthetic(tmp_path / "data", n=200)
    wrong = pa.array([1 - int(x) for x in data["truth"]], pa.int32())  # the golden set says the opposite
    truth = pa.table({"video_id": data["ids"], "attribute": ["red_dominant"] * 200, "label": wrong})
    tables.write_table(truth, tmp_path / "truth.parquet", schemas.TRUTH)
    golden = golden_from_truth(truth=str(tmp_path / "truth.parquet"), attribute_spec=SPEC, out=str(tmp_path / "g.pq"))
    result = distill_and_gate(
        attribute_spec=SPEC,
        embeddings=data["embeddings"],
        labels=data["labels"],
        golden_set=golden.golden_set,
        out_dir=str(tmp_path / "flow"),
    )
    assert not result.passed and not result.teacher_gate.passed
    assert any("teacher F1" in r for r in result.teacher_gate.reasons)
    assert result.distill is None and result.score is None and result.student_gate is None
    assert not (tmp_path / "flow" / "model").exists()
