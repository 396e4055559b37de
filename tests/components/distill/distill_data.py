"""Synthetic embeddings and teacher labels with a known linear truth, written as the real tables."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from silverset.components.common import schemas, tables
from silverset.components.common.spec import example_specs_dir

SPEC = str(example_specs_dir() / "red_dominant.yaml")
EMBEDDER = "minilm-test@sha256:0"


def write_synthetic(root: Path, *, n: int = 400, dimension: int = 16, seed: int = 0, positive_share: float = 0.3) -> dict:
    """Embeddings float32 [n, d] whose positives lie along one direction; teacher = noisy truth probability."""
    rng = np.random.default_rng(seed)
    truth = (rng.random(n) < positive_share).astype(np.int32)
    direction = rng.standard_normal(dimension).astype(np.float32)
    direction /= np.linalg.norm(direction)
    vectors = rng.standard_normal((n, dimension)).astype(np.float32) + np.outer(truth * 2.5 - 1.0, direction).astype(np.float32)
    margin = vectors @ direction
    teacher_prob = (1 / (1 + np.exp(-2.0 * (margin - 0.25)))).astype(np.float32)
    ids = [f"v{i:05d}" for i in range(n)]
    emb = pa.table(
        {
            "video_id": ids,
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), dimension),
            "embedder_id": [EMBEDDER] * n,
        }
    )
    tables.write_table(emb, root / "embeddings" / "part-0.parquet", schemas.embeddings_schema(dimension))
    labels = pa.table(
        {
            "video_id": ids,
            "attribute": ["red_dominant"] * n,
            "attribute_version": pa.array([1] * n, pa.int32()),
            "label": pa.array((teacher_prob >= 0.5).astype(np.int32)),
            "probability": pa.array(teacher_prob),
            "rationale": [None] * n,
            "teacher_id": ["sim"] * n,
            "prompt_hash": ["x"] * n,
        }
    )
    tables.write_table(labels, root / "labels.parquet", schemas.LABELS)
    return {"embeddings": str(root / "embeddings"), "labels": str(root / "labels.parquet"), "vectors": vectors,
            "truth": truth, "teacher": teacher_prob, "ids": ids, "dimension": dimension}

