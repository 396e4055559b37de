"""Golden sets and prediction tables built by hand for the gate tests."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pyarrow as pa

from silverset.components.common import schemas, tables
from silverset.components.common.golden import GOLDEN_V1
from silverset.components.common.spec import example_specs_dir

SPEC = str(example_specs_dir() / "red_dominant.yaml")  # teacher gate: F1 >= 0.6, lower CI >= 0.45, 10 pos / 10 neg


def write_golden(path: Path, labels, *, version: int = 1, attribute: str = "red_dominant") -> str:
    n = len(labels)
    table = pa.table({
        "video_id": [f"v{i:04d}" for i in range(n)],
        "attribute": [attribute] * n,
        "attribute_version": pa.array([version] * n, pa.int32()),
        "label": pa.array(np.asarray(labels, dtype=np.int32)),
        "labeler": ["alice"] * n,
        "labeled_at": pa.array([dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)] * n, pa.timestamp("us", tz="UTC")),
    })
    tables.write_table(table, path, GOLDEN_V1)  # the v1 layout: golden.py reads it
    return str(path)


def write_scores(path: Path, probabilities, *, ids=None, version: int = 1, digest: str = "d0") -> str:
    probabilities = np.asarray(probabilities, dtype=np.float32)
    ids = ids if ids is not None else [f"v{i:04d}" for i in range(len(probabilities))]
    n = len(ids)
    table = pa.table({
        "video_id": ids,
        "attribute": ["red_dominant"] * n,
        "attribute_version": pa.array([version] * n, pa.int32()),
        "probability": pa.array(probabilities),
        "model_digest": [digest] * n,
    })
    tables.write_table(table, path, schemas.SCORES)
    return str(path)


def noisy_predictions(truth: np.ndarray, *, flip: float, seed: int) -> np.ndarray:
    """P(positive) that agrees with ``truth`` except on a seeded ``flip`` share of items."""
    rng = np.random.default_rng(seed)
    wrong = rng.random(len(truth)) < flip
    decided = np.where(wrong, 1 - truth, truth)
    return np.where(decided == 1, 0.6 + 0.39 * rng.random(len(truth)), 0.4 * rng.random(len(truth)))

