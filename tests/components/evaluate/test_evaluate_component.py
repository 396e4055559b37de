"""The evaluate KFP component: python_func with artifact stand-ins, and one kfp.local run of a failing gate."""

from __future__ import annotations

import json

import pytest

from silverset.components.evaluate.component import evaluate_gate
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
    out = evaluate_gate.python_func(
        attribute=SPEC,
        golden=golden,
        predictions=preds,
        gate="teacher",
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
    task = evaluate_gate(attribute=SPEC, golden=golden, predictions=preds, gate="teacher", out_dir=str(tmp_path / "e"))
    assert task.outputs["Output"] == "failed"
    gate = json.loads((tmp_path / "e" / "gate.json").read_text())
    assert gate["passed"] is False and "golden set too small" in gate["reasons"][0]
