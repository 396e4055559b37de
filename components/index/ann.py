"""ScaNN index parameters, build, serialize/load, and exact search (the recall oracle).

Vectors are float32 [n, d] and scored by dot product; callers that want cosine similarity
L2-normalize before building (MiniLM-style embeddings already are).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from .scann_import import scann_ops_pybind

# Below this many vectors ScaNN's own guidance is brute force: partitioning buys nothing.
BRUTE_FORCE_BELOW = 20_000


class IndexParameters(BaseModel):
    """What the ScaNN searcher was built with; recorded in the index manifest."""

    model_config = ConfigDict(extra="forbid")

    algorithm: Literal["brute_force", "tree_ah"]
    distance: Literal["dot_product"] = "dot_product"
    num_neighbors: int = Field(10, ge=1)
    num_leaves: int = 0
    num_leaves_to_search: int = 0
    training_sample_size: int = 0
    dimensions_per_block: int = 2
    anisotropic_quantization_threshold: float = 0.2
    # Candidates the searcher reorders by default (built into the searcher); exact float32 or int8 scores.
    reorder_num_neighbors: int = 0
    reorder_quantize: Literal["float32", "int8"] = "float32"
    # Candidates to reorder per query as tuned at build time (0: the built default), like num_leaves_to_search.
    pre_reorder_num_neighbors: int = 0


def choose_parameters(
    count: int, dimensions: int, *, k: int = 10, brute_force_below: int = BRUTE_FORCE_BELOW
) -> IndexParameters:
    """Pick parameters by dataset size following ScaNN's algorithms.md.

    Fewer than ``brute_force_below`` points: brute force. Otherwise a partitioning tree with about
    sqrt(n) leaves, searching ~5% of them, asymmetric hashing with 2 dimensions per block and
    anisotropic threshold 0.2, and exact reordering of the top ~10k candidates' worth (``max(100, 10 k)``).
    """
    if count < 1:
        raise ValueError("cannot build an index over zero vectors")
    if count < brute_force_below:
        return IndexParameters(algorithm="brute_force", num_neighbors=k)
    num_leaves = int(min(max(round(math.sqrt(count)), 16), 4000))
    return IndexParameters(
        algorithm="tree_ah",
        num_neighbors=k,
        num_leaves=num_leaves,
        num_leaves_to_search=max(8, num_leaves // 20),
        training_sample_size=min(count, 250_000),
        dimensions_per_block=2 if dimensions % 2 == 0 else 1,
        reorder_num_neighbors=max(100, 10 * k),
    )


def build_searcher(database: np.ndarray, params: IndexParameters, *, training_threads: int = 0):
    """Build a ScaNN searcher over ``database`` (float32 [n, d])."""
    ops = scann_ops_pybind()
    database = np.ascontiguousarray(database, dtype=np.float32)
    builder = ops.builder(database, params.num_neighbors, params.distance)
    if params.algorithm == "brute_force":
        builder = builder.score_brute_force()
    else:
        builder = (
            builder.tree(
                num_leaves=params.num_leaves,
                num_leaves_to_search=params.num_leaves_to_search,
                training_sample_size=params.training_sample_size,
            )
            .score_ah(
                params.dimensions_per_block,
                anisotropic_quantization_threshold=params.anisotropic_quantization_threshold,
            )
            .reorder(params.reorder_num_neighbors, quantize=_reorder_type(params.reorder_quantize))
        )
    return builder.set_n_training_threads(training_threads).build() if training_threads else builder.build()


def _reorder_type(name: str):
    from scann.scann_ops.py.scann_builder import ReorderType  # imported by scann_ops_pybind() above

    return ReorderType.INT8 if name == "int8" else ReorderType.FLOAT32


def save_searcher(searcher, directory: str | Path) -> None:
    """Serialize with relative paths so the folder can be copied or mounted anywhere."""
    Path(directory).mkdir(parents=True, exist_ok=True)
    searcher.serialize(str(directory), relative_path=True)


def load_searcher(directory: str | Path):
    return scann_ops_pybind().load_searcher(str(directory))


def search_batched(
    searcher,
    queries: np.ndarray,
    k: int,
    *,
    leaves_to_search: int | None = None,
    parallel: bool = False,
    pre_reorder_num_neighbors: int | None = None,
) -> np.ndarray:
    """Row ids int64 [q, k] of the top-k database vectors for each query (float32 [q, d]).

    ``pre_reorder_num_neighbors`` (None or 0: the searcher's built default) is how many AH candidates are reordered.
    """
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    fn = searcher.search_batched_parallel if parallel else searcher.search_batched
    ids, _ = fn(
        queries,
        final_num_neighbors=k,
        leaves_to_search=leaves_to_search,
        pre_reorder_num_neighbors=pre_reorder_num_neighbors or None,
    )
    return np.asarray(ids, dtype=np.int64)


def exact_top_k(database: np.ndarray, queries: np.ndarray, k: int, *, block: int = 256) -> np.ndarray:
    """Exact dot-product top-k row ids int64 [q, k] (best first) by numpy brute force."""
    k = min(k, database.shape[0])
    out = np.empty((queries.shape[0], k), dtype=np.int64)
    for start in range(0, queries.shape[0], block):
        scores = queries[start : start + block] @ database.T
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        order = np.take_along_axis(scores, part, axis=1).argsort(axis=1)[:, ::-1]
        out[start : start + block] = np.take_along_axis(part, order, axis=1)
    return out


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean over queries of |found ∩ truth| / |truth| (both int [q, k])."""
    if truth.size == 0:
        return 1.0
    hits = sum(len(set(f.tolist()) & set(t.tolist())) for f, t in zip(found, truth))
    return hits / truth.size
