"""The teacher gate on per-rater (v2) golden sets: one resolved label per video, and labels carried across versions."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import f1_score

from silverset.components.common import golden, schemas, tables
from silverset.components.evaluate.gate import check_teacher
from tests.helpers.factories import SPEC, noisy_predictions, write_scores

AT = dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc)


def _per_rater_golden(path: Path, truth: np.ndarray, *, version: int = 1, classes=("negative", "positive")) -> str:
    """Three raters per video; the third always votes wrong, so the majority keeps the truth."""
    ids = [f"v{i:04d}" for i in range(len(truth))]
    votes = {v: {"alice": int(t), "bob": int(t), "carol": 1 - int(t)} for v, t in zip(ids, truth)}
    table = golden.golden_rows(
        attribute="red_dominant",
        version=version,
        classes=classes,
        votes=votes,
        resolved={v: int(t) for v, t in zip(ids, truth)},
        how={v: "majority" for v in ids},
        labeled_at={v: AT for v in ids},
    )
    tables.write_table(table, path, schemas.GOLDEN)
    return str(path)


def test_teacher_gate_counts_each_video_once_on_a_per_rater_golden_set(tmp_path, truth):
    path = _per_rater_golden(tmp_path / "golden.parquet", truth)
    probs = noisy_predictions(truth, flip=0.1, seed=2)
    s = check_teacher(
        attribute_spec=SPEC,
        golden_set=path,
        predictions=write_scores(tmp_path / "t.parquet", probs),
        out_dir=str(tmp_path / "eval"),
    )
    block = s.result.metrics["candidate"]
    assert block["n"] == len(truth)  # 3 rows per video in the file
    assert json.loads(Path(s.gate_result).read_text())["golden_version"] == 1  # the spec's own version
    assert block["f1"]["value"] == pytest.approx(f1_score(truth, (probs >= 0.5).astype(int)))


def _spec_v2(tmp_path: Path, *, classes: str | None = None) -> str:
    text = Path(SPEC).read_text().replace("version: 1\n", "version: 2\n", 1)
    if classes:
        text += f"classes: [{classes}]\n"
    path = tmp_path / "red_dominant_v2.yaml"
    path.write_text(text)
    return str(path)


def test_teacher_gate_reads_v1_labels_for_a_v2_spec_with_the_same_classes(tmp_path, truth):
    path = _per_rater_golden(tmp_path / "golden.parquet", truth, version=1)
    scores = write_scores(tmp_path / "t.parquet", noisy_predictions(truth, flip=0.05, seed=1), version=2)
    s = check_teacher(
        attribute_spec=_spec_v2(tmp_path), golden_set=path, predictions=scores, out_dir=str(tmp_path / "a")
    )
    assert s.passed, s.reasons
    written = json.loads(Path(s.gate_result).read_text())
    assert (written["attribute_version"], written["golden_version"]) == (2, 1)  # says whose labels it judged by


def test_teacher_gate_refuses_v1_labels_when_the_classes_changed(tmp_path, truth):
    path = _per_rater_golden(tmp_path / "golden.parquet", truth, version=1)
    scores = write_scores(tmp_path / "t.parquet", noisy_predictions(truth, flip=0.05, seed=1), version=2)
    s = check_teacher(
        attribute_spec=_spec_v2(tmp_path, classes="other, red"),
        golden_set=path,
        predictions=scores,
        out_dir=str(tmp_path / "a"),
    )
    assert not s.passed and any("attribute version mismatch" in r and "golden.parquet" in r for r in s.reasons)
