"""Tiny real index inputs and indexes: clustered embeddings, student scores, and built brute-force indexes.

Used by the index, deploy, A/B, cluster, image and security tests.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from silverset.components.common import schemas, tables

DIGEST = "sha256:" + "ab" * 32


def clustered(n: int, d: int, *, clusters: int = 32, seed: int = 0) -> np.ndarray:
    """float32 [n, d] unit vectors around ``clusters`` random centres."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, d))
    x = centres[rng.integers(0, clusters, n)] + 0.35 * rng.normal(size=(n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def write_inputs(
    folder: Path,
    vectors: np.ndarray,
    probabilities: np.ndarray,
    *,
    attribute="red_dominant",
    version=1,
    digest=DIGEST,
    missing_embedding: int = 0,
):
    ids = [f"v{i:06d}" for i in range(len(vectors))]
    d = vectors.shape[1]
    emb_ids = ids[missing_embedding:]
    emb = pa.table(
        {
            "video_id": emb_ids,
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors[missing_embedding:].reshape(-1)), d),
            "embedder_id": ["test"] * len(emb_ids),
        }
    )
    tables.write_table(emb, folder / "embeddings" / "part-0.parquet", schemas.embeddings_schema(d))
    scores = pa.table(
        {
            "video_id": ids,
            "attribute": [attribute] * len(ids),
            "attribute_version": [version] * len(ids),
            "probability": probabilities.astype(np.float32),
            "model_digest": [digest] * len(ids),
        }
    )
    tables.write_table(scores, folder / "scores.parquet", schemas.SCORES)
    return folder / "scores.parquet", folder / "embeddings", ids


def tiny_index_spec(folder: Path, *, recall_target: float = 0.9) -> Path:
    """red_dominant with a recall target a tiny brute-force index can show on a small query sample."""
    import yaml

    from silverset.components.common.spec import example_specs_dir

    data = yaml.safe_load((example_specs_dir() / "red_dominant.yaml").read_text())
    data["serving"]["recall_target"] = recall_target
    path = Path(folder) / "red_dominant.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def build_tiny_index(
    folder: Path, spec_path: Path, *, n: int = 400, seed: int = 3, probabilities: np.ndarray | None = None
):
    """Build a real brute-force index of ``n`` clustered 16-d vectors (even ids in the vocabulary by default).

    Returns (index folder, vectors float32 [n, 16], video ids, build summary).
    """
    from silverset.components.index import build

    vectors = clustered(n, 16, seed=seed)
    probs = np.where(np.arange(n) % 2 == 0, 0.9, 0.1) if probabilities is None else probabilities
    scores, embeddings, ids = write_inputs(folder, vectors, probs)
    out = folder / "index"
    summary = build.run(scores=str(scores), embeddings=str(embeddings), attribute_spec=str(spec_path), out_dir=str(out))
    return out, vectors, ids, summary


def build_two_versions(folder: Path):
    """Two real versions of red_dominant's tiny index (even ids, then every id in the vocabulary), as
    [(index folder, version, vectors, ids), ...]; their versions differ."""
    spec = tiny_index_spec(folder)
    first = build_tiny_index(folder / "first", spec)
    second = build_tiny_index(folder / "second", spec, probabilities=np.ones(400))
    assert first[3].version != second[3].version
    return [(out, summary.version, vectors, ids) for out, vectors, ids, summary in (first, second)]
