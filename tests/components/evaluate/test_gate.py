"""Teacher and student gates on hand-made golden sets: passes, failures, and every fail-closed case."""

from __future__ import annotations

import json

import numpy as np
import pytest

from silverset.components.evaluate.gate import check_student, check_teacher
from tests.helpers.cli import run_silverset
from tests.helpers.factories import SPEC, noisy_predictions, write_golden, write_scores


def gate_json(out):
    return json.loads((out / "gate.json").read_text())


def test_teacher_gate_passes_a_good_teacher_and_writes_the_report(tmp_path, truth):
    golden = write_golden(tmp_path / "golden.parquet", truth)
    preds = write_scores(tmp_path / "teacher.parquet", noisy_predictions(truth, flip=0.05, seed=1))
    s = check_teacher(attribute_spec=SPEC, golden_set=golden, predictions=preds, out_dir=str(tmp_path / "eval"))
    assert s.passed, s.reasons
    g = gate_json(tmp_path / "eval")
    assert g["passed"] is True and g["reasons"] == []
    f1 = g["metrics"]["candidate"]["f1"]
    assert f1["lower"] <= f1["value"] <= f1["upper"] and f1["value"] > 0.8
    report = (tmp_path / "eval" / "report.html").read_text()
    for figure in ("pr_curve", "calibration", "confusion_matrix"):
        assert f"id='{figure}' src='data:image/png;base64," in report


def test_teacher_gate_fails_a_poor_teacher_with_reasons(tmp_path, truth):
    golden = write_golden(tmp_path / "golden.parquet", truth)
    preds = write_scores(tmp_path / "teacher.parquet", noisy_predictions(truth, flip=0.35, seed=1))
    s = check_teacher(attribute_spec=SPEC, golden_set=golden, predictions=preds, out_dir=str(tmp_path / "eval"))
    assert not s.passed
    assert any("teacher F1" in r for r in s.reasons)


@pytest.mark.parametrize(
    "case",
    ["no_golden", "missing_file", "too_small", "golden_version", "prediction_version", "missing_predictions", "nan"],
)
def test_fail_closed(tmp_path, truth, case):
    golden = write_golden(tmp_path / "golden.parquet", truth)
    probs = noisy_predictions(truth, flip=0.0, seed=1)
    preds = write_scores(tmp_path / "p.parquet", probs)
    expected = {
        "no_golden": "no golden set",
        "missing_file": "golden set unreadable",
        "too_small": "golden set too small",
        "golden_version": "attribute version mismatch",
        "prediction_version": "attribute version mismatch",
        "missing_predictions": "have no candidate prediction",
        "nan": "NaN",
    }[case]
    if case == "no_golden":
        golden = None
    elif case == "missing_file":
        golden = str(tmp_path / "nope.parquet")
    elif case == "too_small":
        golden = write_golden(tmp_path / "small.parquet", [1] * 5 + [0] * 30)
    elif case == "golden_version":
        golden = write_golden(tmp_path / "v2.parquet", truth, version=2)
    elif case == "prediction_version":
        preds = write_scores(tmp_path / "p2.parquet", probs, version=2)
    elif case == "missing_predictions":
        preds = write_scores(tmp_path / "p3.parquet", probs[:-3], ids=[f"v{i:04d}" for i in range(len(probs) - 3)])
    elif case == "nan":
        probs = probs.copy()
        probs[4] = np.nan
        preds = write_scores(tmp_path / "p4.parquet", probs)
    s = check_teacher(attribute_spec=SPEC, golden_set=golden, predictions=preds, out_dir=str(tmp_path / "eval"))
    assert not s.passed
    assert any(expected in r for r in s.reasons), s.reasons
    assert gate_json(tmp_path / "eval")["passed"] is False


def _student_inputs(tmp_path, truth, *, student_flip, teacher_flip=0.05):
    golden = write_golden(tmp_path / "golden.parquet", truth)
    teacher = write_scores(tmp_path / "teacher.parquet", noisy_predictions(truth, flip=teacher_flip, seed=1))
    student = write_scores(tmp_path / "student.parquet", noisy_predictions(truth, flip=student_flip, seed=2))
    return golden, teacher, student


def test_student_gate_passes_on_retention_and_latency(tmp_path, truth):
    golden, teacher, student = _student_inputs(tmp_path, truth, student_flip=0.05)
    s = check_student(
        attribute_spec=SPEC,
        golden_set=golden,
        model_dir=None,
        predictions=student,
        teacher_predictions=teacher,
        out_dir=str(tmp_path / "eval"),
        teacher_latency_s_per_item=2.0,
        student_latency_s_per_item=1e-5,
    )
    assert s.passed, s.reasons
    assert s.result.metrics["f1_retention"] >= 0.95
    assert s.result.metrics["latency"]["ratio"] == pytest.approx(5e-6)


def test_student_gate_fails_on_retention_latency_and_regression(tmp_path, truth):
    golden, teacher, student = _student_inputs(tmp_path, truth, student_flip=0.3)
    promoted = write_scores(tmp_path / "promoted.parquet", noisy_predictions(truth, flip=0.02, seed=3))
    s = check_student(
        attribute_spec=SPEC,
        golden_set=golden,
        model_dir=None,
        predictions=student,
        teacher_predictions=teacher,
        baseline=promoted,
        out_dir=str(tmp_path / "eval"),
        teacher_latency_s_per_item=0.01,
        student_latency_s_per_item=0.001,
    )
    text = " | ".join(s.reasons)
    assert "F1 retention" in text and "latency ratio" in text and "regression vs the promoted model" in text


def test_student_gate_fails_closed_without_teacher_or_latency(tmp_path, truth):
    golden, teacher, student = _student_inputs(tmp_path, truth, student_flip=0.05)
    s = check_student(
        attribute_spec=SPEC,
        golden_set=golden,
        model_dir=None,
        predictions=student,
        out_dir=str(tmp_path / "a"),
        teacher_predictions=None,
        teacher_latency_s_per_item=1.0,
        student_latency_s_per_item=1e-6,
    )
    assert not s.passed and "no teacher predictions" in s.reasons[0]
    s = check_student(
        attribute_spec=SPEC,
        golden_set=golden,
        model_dir=None,
        predictions=student,
        teacher_predictions=teacher,
        out_dir=str(tmp_path / "b"),
    )
    assert not s.passed and any("latency unknown" in r for r in s.reasons)


def test_teacher_latency_comes_from_shard_stats(tmp_path, truth):
    golden, teacher, student = _student_inputs(tmp_path, truth, student_flip=0.05)
    stats = tmp_path / "labels" / "stats"
    stats.mkdir(parents=True)
    (stats / "shard-0.json").write_text(json.dumps({"seconds": 30.0, "processed": 12, "cache_hits": 2}))
    (stats / "shard-1.json").write_text(json.dumps({"seconds": 10.0, "processed": 10, "cache_hits": 0}))
    s = check_student(
        attribute_spec=SPEC,
        golden_set=golden,
        model_dir=None,
        predictions=student,
        teacher_predictions=teacher,
        out_dir=str(tmp_path / "eval"),
        teacher_stats=str(tmp_path / "labels"),
        student_latency_s_per_item=1e-4,
    )
    assert s.result.metrics["latency"]["teacher_s_per_item"] == pytest.approx(40.0 / 20)
    assert s.passed, s.reasons


@pytest.mark.slow  # two CLI start-ups
def test_cli_exit_codes(tmp_path, truth):
    golden = write_golden(tmp_path / "golden.parquet", truth)
    good = write_scores(tmp_path / "good.parquet", noisy_predictions(truth, flip=0.05, seed=1))
    bad = write_scores(tmp_path / "bad.parquet", noisy_predictions(truth, flip=0.4, seed=1))
    cli = ["evaluate", "--attribute", SPEC, "--golden", golden, "--gate", "teacher"]
    ok = run_silverset(*cli, "--predictions", good, "--out", str(tmp_path / "a"))
    assert ok.returncode == 0, ok.stderr
    failed = run_silverset(*cli, "--predictions", bad, "--out", str(tmp_path / "b"))
    assert failed.returncode == 3 and "gate failed" in failed.stderr


def test_student_summary_names_the_candidate_model_and_refuses_another_models_scores(tmp_path, truth):
    from silverset.components.common.artifacts import read_gate, read_model_metadata
    from tests.helpers.checkpoints import distill_student

    model_dir = distill_student(tmp_path / "trained", n=60)["model"]
    digest = read_model_metadata(model_dir).model_digest
    golden, teacher, _ = _student_inputs(tmp_path, truth, student_flip=0.05)
    probs = np.where(truth == 1, 0.999, 0.001)  # right at any threshold the model picked
    inputs = dict(attribute_spec=SPEC, golden_set=golden, model_dir=model_dir, teacher_predictions=teacher)
    latency = dict(teacher_latency_s_per_item=1.0, student_latency_s_per_item=1e-6)

    own = write_scores(tmp_path / "own.parquet", probs, digest=digest)
    s = check_student(**inputs, predictions=own, out_dir=str(tmp_path / "own"), **latency)
    assert s.passed, s.reasons
    assert s.candidate_digest == digest == read_gate(s.gate_result).candidate_digest
    assert s.result.gate == "student" and s.disagreements is None
    assert len(s.candidate_curve.labels) == len(truth)

    other = write_scores(tmp_path / "other.parquet", probs, digest="sha256:another-model")
    s = check_student(**inputs, predictions=other, out_dir=str(tmp_path / "other"), **latency)
    assert not s.passed and "different model" in s.reasons[0]
    assert s.candidate_digest == digest  # the gate still names the candidate it refused to bless


def test_teacher_summary_lists_its_files_and_has_no_candidate_model(tmp_path, truth):
    golden = write_golden(tmp_path / "golden.parquet", truth)
    preds = write_scores(tmp_path / "teacher.parquet", noisy_predictions(truth, flip=0.1, seed=1), digest="")
    s = check_teacher(attribute_spec=SPEC, golden_set=golden, predictions=preds, out_dir=str(tmp_path / "eval"))
    assert s.result.gate == "teacher" and s.gate_result == str(tmp_path / "eval" / "gate.json")
    assert json.loads((tmp_path / "eval" / "disagreements.json").read_text()) and s.disagreements
    assert (
        json.loads((tmp_path / "eval" / "metrics.json").read_text())["candidate"]["f1"]
        == gate_json(tmp_path / "eval")["metrics"]["candidate"]["f1"]
    )
    decided = np.asarray(s.candidate_curve.decided)
    assert (
        decided.sum()
        == s.result.metrics["candidate"]["confusion_matrix"]["tp"]
        + s.result.metrics["candidate"]["confusion_matrix"]["fp"]
    )


@pytest.mark.parametrize(
    ("gate", "flag", "value"),
    [
        ("teacher", "--model", "m"),
        ("teacher", "--teacher-predictions", "t.parquet"),
        ("teacher", "--baseline", "b.parquet"),
        ("teacher", "--teacher-latency-s", "1.0"),
        ("student", "--frames", "frames"),
        ("student", "--manifest", "manifest.csv"),
        ("student", "--raters", None),
    ],
)
def test_cli_refuses_the_other_gates_inputs(tmp_path, cli, gate, flag, value):
    args = ["evaluate", "--attribute", SPEC, "--gate", gate, "--out", str(tmp_path / "e"), flag]
    result = cli(*args, *([value] if value is not None else []))
    assert result.code == 2
    other = "student" if gate == "teacher" else "teacher"
    assert flag in result.err and f"{other}-gateinput" in result.flat_err
    assert not (tmp_path / "e").exists()


def test_cli_refuses_an_unknown_gate_and_a_threshold_out_of_range(tmp_path, cli):
    base = ["evaluate", "--attribute", SPEC, "--out", str(tmp_path / "e")]
    unknown = cli(*base, "--gate", "teachr")
    assert unknown.code == 2 and "--gate" in unknown.err and "teachr" in unknown.err
    high = cli(*base, "--gate", "teacher", "--threshold", "1.5")
    assert high.code == 2 and "threshold" in high.err
