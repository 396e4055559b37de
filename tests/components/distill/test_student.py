"""Distillation: KD loss by hand, calibration, determinism, metadata/digest, and which rows become errors."""

from __future__ import annotations

import json
import math

import numpy as np
import onnxruntime as ort
import pyarrow as pa
import pytest
import torch

from silverset.components.common import schemas, tables
from silverset.components.common.artifacts import read_model_metadata
from silverset.components.common.errors import SilversetInputError
from silverset.components.distill import train
from silverset.components.distill.student import DistillationLoss, StudentOptions, fit_calibration
from tests.helpers.factories import EMBEDDER, SPEC

FAST = StudentOptions(max_epochs=40, patience=5, hidden_units=16)


def test_kd_loss_matches_a_hand_worked_example():
    # logits 0 and ln 3 (sigmoid 1/2 and 3/4); teacher 0.8 and 0.1; pos_weight 2
    logits = torch.tensor([0.0, math.log(3.0)])
    teacher = torch.tensor([0.8, 0.1])
    item1 = -(2 * 0.8 * math.log(0.5) + 0.2 * math.log(0.5))
    item2 = -(2 * 0.1 * math.log(0.75) + 0.9 * math.log(0.25))
    assert float(DistillationLoss(pos_weight=2.0)(logits, teacher)) == pytest.approx((item1 + item2) / 2, rel=1e-6)
    # half hard labels: targets 1 and 0
    hard1 = -2 * math.log(0.5)
    hard2 = -math.log(0.25)
    mixed = 0.5 * (item1 + item2) / 2 + 0.5 * (hard1 + hard2) / 2
    assert float(DistillationLoss(pos_weight=2.0, hard_weight=0.5)(logits, teacher)) == pytest.approx(mixed, rel=1e-6)


def test_platt_calibration_recovers_a_known_scale_and_bias():
    z = torch.linspace(-4, 4, 400)
    target = torch.sigmoid(0.5 * z - 1.0)
    scale, bias = fit_calibration(z, target, method="platt")
    assert scale == pytest.approx(0.5, abs=1e-3) and bias == pytest.approx(-1.0, abs=1e-3)
    t_scale, t_bias = fit_calibration(z, torch.sigmoid(0.5 * z), method="temperature")
    assert t_scale == pytest.approx(0.5, abs=1e-3) and t_bias == 0.0


def test_distill_writes_both_exports_metadata_and_a_verifiable_digest(tmp_path, synthetic):
    s = train.run(
        embeddings=synthetic["embeddings"],
        labels=synthetic["labels"],
        attribute_spec=SPEC,
        out_dir=str(tmp_path / "m"),
        options=FAST,
    )
    meta = read_model_metadata(tmp_path / "m")  # recomputes the digest
    assert meta.model_digest == s.model_digest
    assert (meta.attribute, meta.attribute_version, meta.embedder_id, meta.dimension) == (
        "red_dominant",
        1,
        EMBEDDER,
        16,
    )
    assert 0 < meta.threshold < 1 and meta.training_data_digest and meta.latency_s_per_item > 0
    assert meta.training_metrics["held_out_vs_teacher"]["f1"] > 0.85
    # both exports give calibrated probabilities that agree with the truth
    x = synthetic["vectors"]
    onnx = ort.InferenceSession(str(tmp_path / "m" / "model.onnx")).run(None, {"embeddings": x})[0]
    ts = torch.jit.load(str(tmp_path / "m" / "model.pt"))(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(onnx, ts, atol=1e-5)
    agree = np.mean((onnx >= meta.threshold) == (synthetic["teacher"] >= 0.5))
    assert agree > 0.9
    assert tables.read_errors(tmp_path / "m").num_rows == 0
    # tampering with the weights is caught
    (tmp_path / "m" / "metadata.json").write_text(json.dumps({**meta.model_dump(mode="json"), "threshold": 0.01}))
    with pytest.raises(SilversetInputError, match="digest mismatch"):
        read_model_metadata(tmp_path / "m")


def test_same_seed_same_student(tmp_path, synthetic):
    a = train.run(
        embeddings=synthetic["embeddings"],
        labels=synthetic["labels"],
        attribute_spec=SPEC,
        out_dir=str(tmp_path / "a"),
        options=FAST,
        measure_latency=False,
    )
    b = train.run(
        embeddings=synthetic["embeddings"],
        labels=synthetic["labels"],
        attribute_spec=SPEC,
        out_dir=str(tmp_path / "b"),
        options=FAST,
        measure_latency=False,
    )
    c = train.run(
        embeddings=synthetic["embeddings"],
        labels=synthetic["labels"],
        attribute_spec=SPEC,
        out_dir=str(tmp_path / "c"),
        options=FAST.model_copy(update={"seed": 1}),
        measure_latency=False,
    )
    assert a.model_digest == b.model_digest != c.model_digest
    assert a.threshold == b.threshold


def test_logistic_head_and_target_precision(tmp_path, synthetic):
    options = StudentOptions(architecture="logistic", target_precision=0.95, max_epochs=40)
    train.run(
        embeddings=synthetic["embeddings"],
        labels=synthetic["labels"],
        attribute_spec=SPEC,
        out_dir=str(tmp_path / "m"),
        options=options,
        measure_latency=False,
    )
    meta = read_model_metadata(tmp_path / "m")
    assert (
        meta.threshold_rule.startswith("precision>=0.95")
        and meta.training_metrics["held_out_vs_teacher"]["precision"] >= 0.95
    )


def test_unlabelled_and_foreign_embeddings_become_errors(tmp_path, synthetic):
    emb = tables.read_table(synthetic["embeddings"])
    extra = pa.table(
        {
            "video_id": ["new1", "new2"],
            "vector": emb.column("vector").slice(0, 2).combine_chunks(),
            "embedder_id": [EMBEDDER, "clip@other"],
        }
    )
    tables.write_table(extra, tmp_path / "emb2" / "b.parquet", schemas.embeddings_schema(16))
    tables.write_table(emb, tmp_path / "emb2" / "a.parquet", schemas.embeddings_schema(16))
    s = train.run(
        embeddings=str(tmp_path / "emb2"),
        labels=synthetic["labels"],
        attribute_spec=SPEC,
        out_dir=str(tmp_path / "m"),
        options=FAST,
        measure_latency=False,
    )
    errors = tables.read_errors(tmp_path / "m").to_pylist()
    assert s.items == s.trained_on + s.errors == 402
    assert {(e["key"], e["error_type"]) for e in errors} == {
        ("new1", "no_teacher_label"),
        ("new2", "embedder_mismatch"),
    }


def test_labels_for_another_attribute_version_are_refused(tmp_path, synthetic):
    labels = tables.read_table(synthetic["labels"], schemas.LABELS)
    labels = labels.set_column(2, "attribute_version", pa.array([2] * labels.num_rows, pa.int32()))
    tables.write_table(labels, tmp_path / "v2.parquet", schemas.LABELS)
    with pytest.raises(SilversetInputError, match="attribute version mismatch"):
        train.run(
            embeddings=synthetic["embeddings"],
            labels=str(tmp_path / "v2.parquet"),
            attribute_spec=SPEC,
            out_dir=str(tmp_path / "m"),
            options=FAST,
        )
