"""The teacher-gate and student-gate KFP components: python_func with artifact stand-ins, and one kfp.local run of a
failing gate."""

from __future__ import annotations

import json

import pytest

from silverset.components.evaluate.component import student_gate, teacher_gate
from tests.helpers.factories import SPEC, noisy_predictions, write_golden, write_scores


class _Artifact:
    def __init__(self, path):
        self.path = str(path)
        self.metadata = {}

    def log_metric(self, name, value):
        self.metadata[name] = value

    def log_roc_curve(self, fpr, tpr, threshold):
        self.metadata["roc"] = (fpr, tpr, threshold)

    def log_confusion_matrix(self, categories, matrix):
        self.metadata["confusion"] = (categories, matrix)


def test_python_func_fills_metrics_and_returns_passed(tmp_path, truth):
    golden = write_golden(tmp_path / "golden.parquet", truth)
    preds = write_scores(tmp_path / "p.parquet", noisy_predictions(truth, flip=0.05, seed=1))
    m, c, h = _Artifact(tmp_path / "m"), _Artifact(tmp_path / "c"), _Artifact(tmp_path / "report.html")
    out = teacher_gate.python_func(
        attribute_spec=SPEC,
        golden_set=golden,
        predictions=preds,
        out_dir=str(tmp_path / "e"),
        metrics=m,
        classification=c,
        report=h,
    )
    assert out == "passed"
    assert json.loads((tmp_path / "e" / "gate.json").read_text())["reasons"] == []
    assert m.metadata["passed"] == 1.0 and m.metadata["candidate_f1_lower"] <= m.metadata["candidate_f1"]
    tn_fp, fn_tp = c.metadata["confusion"][1]
    assert sum(tn_fp) + sum(fn_tp) == len(truth)
    assert "<img" in open(h.path).read()


@pytest.mark.slow
def test_kfp_local_run_reports_a_failed_gate_without_failing_the_task(tmp_path, truth):
    from kfp import local

    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
    golden = write_golden(tmp_path / "golden.parquet", truth[:15])  # too few positives: fails closed
    preds = write_scores(tmp_path / "p.parquet", noisy_predictions(truth, flip=0.0, seed=1))
    task = teacher_gate(attribute_spec=SPEC, golden_set=golden, predictions=preds, out_dir=str(tmp_path / "e"))
    assert task.outputs["Output"] == "failed"
    gate = json.loads((tmp_path / "e" / "gate.json").read_text())
    assert gate["passed"] is False and "golden set too small" in gate["reasons"][0]


def test_student_python_func_fails_closed_on_a_missing_model_and_logs_the_teacher(tmp_path, truth):
    golden = write_golden(tmp_path / "golden.parquet", truth)
    teacher = write_scores(tmp_path / "t.parquet", noisy_predictions(truth, flip=0.05, seed=1))
    student = write_scores(tmp_path / "s.parquet", noisy_predictions(truth, flip=0.05, seed=2))
    m, c, h = _Artifact(tmp_path / "m"), _Artifact(tmp_path / "c"), _Artifact(tmp_path / "report.html")
    out = student_gate.python_func(
        attribute_spec=SPEC,
        golden_set=golden,
        predictions=student,
        model_dir=str(tmp_path / "no-model"),
        teacher_predictions=teacher,
        out_dir=str(tmp_path / "e"),
        metrics=m,
        classification=c,
        report=h,
        teacher_latency_s_per_item=1.0,
    )
    assert out == "failed" and m.metadata["passed"] == 0.0
    gate = json.loads((tmp_path / "e" / "gate.json").read_text())
    assert gate["gate"] == "student" and "candidate model unusable" in gate["reasons"][0]
    assert "confusion" not in c.metadata  # nothing was scored: no curve to log
