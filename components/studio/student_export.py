"""The studio's classifier written as a student candidate: a MODELDIR in exactly the distill stage's format.

The studio's logistic regression (``scores.classifier``) becomes a ``CalibratedStudent`` over a ``StudentNet`` with
the logistic architecture (its coefficients and intercept copied in, calibration scale 1 and bias 0), exported
to ``model.pt`` + ``model.onnx`` with ``metadata.json`` and its ``model_digest`` by the distill stage's own
functions, so ``silverset score`` and ``silverset evaluate --gate student --model`` read it like any distilled
student. Both exports map embeddings float32 [n, d] to P(positive) float32 [n], equal to sklearn's
``predict_proba(x)[:, 1]`` (to float32 rounding).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from silverset.components.common import tables
from silverset.components.common.errors import SilversetInputError
from silverset.components.common.spec import AttributeSpec
from silverset.components.common.tables import ErrorRow

_LOGGER = logging.getLogger(__name__)
COMMAND = "studio export-model"
SOURCE = "studio"


def logistic_student(coefficients: np.ndarray, intercept: float):
    """A CalibratedStudent whose output is sigmoid(x @ coefficients + intercept); coefficients: float [d]."""
    import torch

    from silverset.components.distill.student import CalibratedStudent, StudentNet

    coefficients = np.asarray(coefficients, dtype=np.float32).reshape(-1)
    net = StudentNet(len(coefficients), architecture="logistic")
    with torch.no_grad():
        net.body.weight.copy_(torch.from_numpy(coefficients).reshape(1, -1))
        net.body.bias.fill_(float(intercept))
    return CalibratedStudent(net, scale=1.0, bias=0.0).eval()


def write_candidate(
    *,
    spec: AttributeSpec,
    embedder_id: str,
    video_ids: list[str],
    vectors: np.ndarray,
    labels: np.ndarray,
    out: str | Path,
    seed: int,
    studio_info: dict[str, Any],
    errors: list[ErrorRow],
    measure_latency: bool = True,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Fit the studio's classifier on ``vectors`` (float32 [n, d]) and ``labels`` (int [n], 0/1) and write MODELDIR.

    ``errors``: labelled videos the classifier did not train on (unresolved disagreements), kept in
    ``errors.parquet`` as the distill stage keeps its dropped rows. Returns the summary (model_dir, model_digest,
    threshold, counts, latency).
    """
    from silverset.components.common.artifacts import ModelMetadata
    from silverset.components.distill.train import (
        ONNX_FILE,
        ONNX_INPUT,
        ONNX_OUTPUT,
        TORCHSCRIPT_FILE,
        export_model,
        seal_model_dir,
        training_data_digest,
    )

    from .scores import classifier

    if "," in embedder_id:
        raise SilversetInputError(
            "studio corpus", f"mixes embedders ({embedder_id[:300]}); a student serves one embedding space"
        )
    labels = np.asarray(labels, dtype=np.int64)
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    fitted = classifier(seed).fit(vectors, labels)
    model = logistic_student(fitted.coef_[0], float(fitted.intercept_[0]))
    dimension = int(vectors.shape[1])
    n_pos = int(labels.sum())
    with tables.atomic_directory(out, command=COMMAND, overwrite=overwrite) as staging:
        export_model(model, dimension, staging)
        metadata = ModelMetadata(
            attribute=spec.name,
            attribute_version=spec.version,
            prompt_hash=spec.prompt_hash,
            embedder_id=embedder_id,
            dimension=dimension,
            # The classifier weighs classes to balance, so its own decision point is 0.5; the spec's threshold
            # (0.5 unless the spec says otherwise) is what the gate would use for any other candidate.
            threshold=float(spec.decision_threshold),
            threshold_rule="spec decision_threshold (studio classifier, class-balanced)",
            training_data_digest=training_data_digest(video_ids, vectors, labels.astype(np.float32)),
            training_metrics={
                "source": SOURCE,
                "n_train": int(len(labels)),
                "n_held_out": 0,
                "n_positives": n_pos,
                "n_negatives": int(len(labels) - n_pos),
                "quality": studio_info.get("quality"),
                "diversity": studio_info.get("diversity"),
            },
            calibration={"method": "none", "scale": 1.0, "bias": 0.0},
            options={
                "architecture": "logistic",
                "trainer": "sklearn LogisticRegression(liblinear, C=1, class_weight=balanced)",
                "targets": "human golden labels (resolved)",
                "seed": seed,
            },
            files={"torchscript": TORCHSCRIPT_FILE, "onnx": ONNX_FILE},
            onnx_io={"input": ONNX_INPUT, "output": ONNX_OUTPUT},
            source=SOURCE,
            studio=studio_info,
        )
        metadata = seal_model_dir(staging, metadata, measure_latency=measure_latency)
        tables.write_errors(staging, errors)
    _LOGGER.info("studio classifier for %s exported to %s (%s)", spec.key, out, metadata.model_digest)
    return {
        "model_dir": str(out),
        "model_digest": metadata.model_digest,
        "attribute": spec.key,
        "embedder_id": embedder_id,
        "trained_on": int(len(labels)),
        "positives": n_pos,
        "negatives": int(len(labels) - n_pos),
        "errors": len(errors),
        "threshold": metadata.threshold,
        "latency_s_per_item": metadata.latency_s_per_item,
    }
