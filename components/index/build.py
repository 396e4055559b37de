"""Build one attribute's restricted vocabulary and its ScaNN index version, with a recall@k gate.

Index folder layout (everything the server needs, shipped together):

    manifest.json        version, digest, counts, dimensions, parameters, build stats, recall
    scann/               the serialized ScaNN searcher (relative paths)
    vocabulary.parquet   video_id, probability; row i is ScaNN datapoint i
    history.parquet      video_id, probability, vector for every scored video with an embedding,
                         so the server can compute a user's affinity and mean history vector
    errors.parquet       scored videos that could not be used (inputs == history rows + errors)
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field

from silverset.components.common import schemas, tables
from silverset.components.common.artifacts import (
    INDEX_MANIFEST_FILE,
    IndexManifest,
    write_index_manifest,
)
from silverset.components.common.digest import sha256_json, sha256_tree
from silverset.components.common.errors import GateFailed, SilversetInputError
from silverset.components.common.spec import AttributeSpec, load_spec

from . import ann, tuning
from .tuning import TuningOptions

_LOGGER = logging.getLogger(__name__)

STAGE = "index"
MANIFEST_FILE = INDEX_MANIFEST_FILE  # the index's own manifest.json (common.artifacts.IndexManifest)
FORMAT_VERSION = 1
# Files not covered by the content digest: the manifest holds the digest, errors are not served.
DIGEST_EXCLUDE = (MANIFEST_FILE, tables.ERRORS_FILE, tables.OUTPUT_MARKER)


class BuildOptions(BaseModel):
    """How the index build measures itself."""

    model_config = ConfigDict(extra="forbid")

    recall_k: int = Field(10, ge=1, le=1000)
    recall_queries: int = Field(200, ge=1, le=100_000)
    seed: int = 0
    # Below this many vocabulary vectors: brute force, no grid (one measured point in build.tuning).
    brute_force_below: int = Field(ann.BRUTE_FORCE_BELOW, ge=1)
    grid: TuningOptions = TuningOptions()


def history_schema(dimension: int) -> pa.Schema:
    """history.parquet: every scored video with an embedding (probability float32, vector float32 [d])."""
    return pa.schema(
        [
            pa.field("video_id", pa.string(), nullable=False),
            pa.field("probability", pa.float32(), nullable=False),
            pa.field("vector", pa.list_(pa.float32(), dimension), nullable=False),
        ]
    )


VOCABULARY = pa.schema(
    [pa.field("video_id", pa.string(), nullable=False), pa.field("probability", pa.float32(), nullable=False)]
)


def _embedding_dimension(table: pa.Table, name: str) -> int:
    vtype = table.schema.field("vector").type if "vector" in table.column_names else None
    if vtype is None:
        raise SilversetInputError(name, "missing required column 'vector'")
    if pa.types.is_fixed_size_list(vtype):
        return vtype.list_size
    if table.num_rows == 0:
        raise SilversetInputError(name, "has no rows")
    return len(table.column("vector")[0].as_py())


def join_scores_embeddings(
    scores: pa.Table, embeddings: pa.Table, spec: AttributeSpec
) -> tuple[pa.Table, list[tables.ErrorRow], str]:
    """Scores of ``spec``'s attribute joined to embeddings -> (history table, error rows, model digest).

    A scored row is dropped to errors when it is for another attribute or version, is a duplicate
    video, or has no embedding. All kept rows must share one model digest.
    """
    errors: list[tables.ErrorRow] = []
    dimension = _embedding_dimension(embeddings, "embeddings")
    embeddings = tables.conform(embeddings, schemas.embeddings_schema(dimension), name="embeddings")
    row_of = {vid: i for i, vid in enumerate(embeddings.column("video_id").to_pylist())}
    vectors = (
        embeddings.column("vector").combine_chunks().flatten().to_numpy(zero_copy_only=False).reshape(-1, dimension)
    )

    keep_rows, keep_ids, keep_prob, digests, seen = [], [], [], set(), set()
    for vid, attr, version, prob, digest in zip(
        *(
            scores.column(c).to_pylist()
            for c in ("video_id", "attribute", "attribute_version", "probability", "model_digest")
        )
    ):
        if attr != spec.name or version != spec.version:
            errors.append(
                tables.ErrorRow(
                    vid, STAGE, "OtherAttribute", f"score is for {attr}@v{version}, index is for {spec.key}"
                )
            )
        elif vid in seen:
            errors.append(tables.ErrorRow(vid, STAGE, "DuplicateScore", f"video scored more than once for {spec.key}"))
        elif vid not in row_of:
            errors.append(tables.ErrorRow(vid, STAGE, "MissingEmbedding", "scored video has no embedding"))
        else:
            seen.add(vid)
            keep_rows.append(row_of[vid])
            keep_ids.append(vid)
            keep_prob.append(prob)
            digests.add(digest)
    if len(digests) > 1:
        raise SilversetInputError("scores", f"mixes {len(digests)} model digests; an index is built from one candidate")
    if not keep_ids:
        raise SilversetInputError("scores", f"no usable scores for {spec.key} ({len(errors)} dropped)")
    kept_vectors = vectors[np.asarray(keep_rows, dtype=np.int64)].astype(np.float32, copy=False)
    history = pa.table(
        {
            "video_id": pa.array(keep_ids, pa.string()),
            "probability": pa.array(keep_prob, pa.float32()),
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(kept_vectors.reshape(-1), pa.float32()), dimension),
        },
        schema=history_schema(dimension),
    )
    return history, errors, digests.pop()


def restricted_vocabulary(history: pa.Table, spec: AttributeSpec) -> pa.Table:
    """Videos whose student probability passes ``spec.vocabulary`` (>= min_probability, top max_size).

    Returned as rows of ``history`` sorted by probability descending, then video_id.
    """
    mask = pc.greater_equal(history.column("probability"), pa.scalar(spec.vocabulary.min_probability, pa.float32()))
    chosen = history.filter(mask).sort_by([("probability", "descending"), ("video_id", "ascending")])
    if spec.vocabulary.max_size is not None:
        chosen = chosen.slice(0, spec.vocabulary.max_size)
    return chosen


def vectors_of(table: pa.Table) -> np.ndarray:
    """The ``vector`` column as float32 [n, d]."""
    column = table.column("vector").combine_chunks()
    dimension = column.type.list_size
    return column.flatten().to_numpy(zero_copy_only=False).reshape(-1, dimension).astype(np.float32, copy=False)


def measure_brute_force(
    searcher, params: ann.IndexParameters, database: np.ndarray, queries: np.ndarray, options: TuningOptions
) -> dict:
    """build.tuning for a brute-force index: its one point (recall@k, single-thread QPS), no grid."""
    truth = ann.exact_top_k(database, queries, params.num_neighbors)
    timed = queries[: options.timed_queries]
    rates = []
    for _ in range(options.passes):
        started = time.perf_counter()
        for q in timed:
            searcher.search(q, final_num_neighbors=truth.shape[1])
        rates.append(len(timed) / (time.perf_counter() - started))
    point = {
        "build": 0,
        "recall": ann.recall_at_k(ann.search_batched(searcher, queries, truth.shape[1]), truth),
        "qps_single": float(np.median(rates)),
    }
    return {
        "mode": "brute_force",
        "chosen": point,
        "curve": [point],
        "queries": int(queries.shape[0]),
        "timed_queries": int(timed.shape[0]),
    }


def _point_text(point: dict) -> str:
    return ", ".join(
        f"{key}={value:.3f}" if isinstance(value, float) else f"{key}={value}" for key, value in point.items()
    )


def index_version(
    *, spec: AttributeSpec, model_digest: str, vocabulary_ids: list[str], params: ann.IndexParameters
) -> str:
    """Deterministic version id: the same candidate, rule and parameters give the same version."""
    digest = sha256_json(
        {
            "attribute": spec.name,
            "attribute_version": spec.version,
            "rule": spec.vocabulary.model_dump(mode="json"),
            "model_digest": model_digest,
            "vocabulary": sha256_json(vocabulary_ids),
            "parameters": params.model_dump(mode="json"),
        }
    )
    return f"{spec.name}-v{spec.version}-{digest[:12]}"


def build_index(
    *,
    history: pa.Table,
    errors: list[tables.ErrorRow],
    model_digest: str,
    spec: AttributeSpec,
    out: str | Path,
    options: BuildOptions = BuildOptions(),
    overwrite: bool = False,
) -> IndexManifest:
    """Build, gate and write one index version into ``out`` (replaced atomically). Returns its manifest.

    Brute force below ``options.brute_force_below`` vectors; otherwise the tuning grid
    (components/index/tuning.py) picks the fastest configuration meeting ``spec.serving.recall_target``
    and the manifest's ``build.tuning`` records the choice and the whole measured curve. Raises
    GateFailed (nothing written) when no configuration reaches the target.
    """
    if errors:
        reasons = Counter(e.error_type for e in errors)
        _LOGGER.warning(
            "index %s: %d scored video(s) left out of the index and written to the errors table (%s); first: %s",
            spec.key,
            len(errors),
            ", ".join(f"{k} {n}" for k, n in sorted(reasons.items())),
            ", ".join(e.key for e in errors[:5]),
        )
    vocabulary = restricted_vocabulary(history, spec)
    if vocabulary.num_rows == 0:
        _LOGGER.error(
            "index %s: no video of %d passes the vocabulary rule (probability >= %s)",
            spec.key,
            history.num_rows,
            spec.vocabulary.min_probability,
        )
        raise GateFailed(
            f"{spec.key}: no video passes the vocabulary rule (probability >= {spec.vocabulary.min_probability})"
        )
    database = vectors_of(vocabulary)
    count, dimension = database.shape
    params = ann.choose_parameters(count, dimension, k=options.recall_k, brute_force_below=options.brute_force_below)
    _LOGGER.info(
        "index %s: %d of %d scored videos in the vocabulary (%d dims), %s",
        spec.key,
        count,
        history.num_rows,
        dimension,
        params.algorithm,
    )

    # Queries are the kind the server sees: vectors of scored videos (users' history), in or out of the vocabulary.
    rng = np.random.default_rng(options.seed)
    all_vectors = vectors_of(history)
    sample = rng.choice(all_vectors.shape[0], size=min(options.recall_queries, all_vectors.shape[0]), replace=False)
    queries = all_vectors[np.sort(sample)]

    started = time.perf_counter()
    if params.algorithm == "brute_force":
        searcher = ann.build_searcher(database, params)
        tuned = measure_brute_force(searcher, params, database, queries, options.grid)
    else:
        row_of = {vid: i for i, vid in enumerate(vocabulary.column("video_id").to_pylist())}
        history_ids = history.column("video_id").to_pylist()
        self_rows = np.array([row_of.get(history_ids[i], -1) for i in np.sort(sample)], np.int64)
        result = tuning.tune(
            database, queries, params, target=spec.serving.recall_target, options=options.grid, self_rows=self_rows
        )
        searcher, params, tuned = result.searcher, result.params, result.record
    build_seconds = time.perf_counter() - started
    recall = tuned["chosen"]["recall"]
    # A tuned index must meet the target with margin (recall less 2 standard errors over the queries).
    if not tuned.get("met_target", recall >= spec.serving.recall_target):
        _LOGGER.error(
            "index %s: recall@%d %.3f below the target %.3f after %d configurations; nothing written",
            spec.key,
            options.recall_k,
            recall,
            spec.serving.recall_target,
            len(tuned["curve"]),
        )
        raise GateFailed(
            f"{spec.key}: index recall@{options.recall_k} {recall:.3f} "
            f"(lower bound {tuned['chosen'].get('recall_lower', recall):.3f}) "
            f"is below the spec's target {spec.serving.recall_target:.3f}; best of {len(tuned['curve'])} measured "
            f"configurations: {_point_text(tuned['chosen'])}"
        )

    vocabulary_ids = vocabulary.column("video_id").to_pylist()
    version = index_version(spec=spec, model_digest=model_digest, vocabulary_ids=vocabulary_ids, params=params)
    with tables.atomic_directory(out, command="index build", overwrite=overwrite) as staging:
        # The tuned num_leaves_to_search and pre_reorder_num_neighbors are recorded in the manifest for the server
        # to pass per query.
        ann.save_searcher(searcher, staging / "scann")
        tables.write_table(vocabulary.select(["video_id", "probability"]), staging / "vocabulary.parquet", VOCABULARY)
        tables.write_table(history, staging / "history.parquet", history_schema(dimension))
        tables.write_errors(staging, errors)
        manifest = IndexManifest(
            format_version=FORMAT_VERSION,
            version=version,
            attribute=spec.name,
            attribute_version=spec.version,
            spec_hash=spec.content_hash,
            model_digest=model_digest,
            vocabulary_rule=spec.vocabulary.model_dump(mode="json"),
            serving=spec.serving.model_dump(mode="json"),
            count=count,
            history_count=history.num_rows,
            dimensions=dimension,
            parameters=params.model_dump(mode="json"),
            build={
                "seconds": round(build_seconds, 3),
                "recall_k": options.recall_k,
                "recall": recall,
                "recall_queries": int(queries.shape[0]),
                "tuning": tuned,
                "errors": len(errors),
            },
            digest=sha256_tree(staging, exclude=DIGEST_EXCLUDE),
        )
        write_index_manifest(staging, manifest)
    _LOGGER.info(
        "index %s: version %s, %d vectors, %s, recall@%d %.3f, built in %.1f s",
        spec.key,
        version,
        count,
        params.algorithm,
        options.recall_k,
        recall,
        build_seconds,
    )
    return manifest


class BuildSummary(BaseModel):
    """What ``run`` built: the index folder, its version and counts (inputs == history + errors)."""

    model_config = ConfigDict(frozen=True)

    index_dir: str
    version: str
    model_digest: str
    inputs: int  # scored videos read
    history: int  # scored videos with an embedding (history.parquet rows)
    errors: int  # scored videos left out (errors.parquet rows)
    vocabulary: int  # videos in the restricted vocabulary (ScaNN datapoints)
    algorithm: str  # "tree_ah" | "brute_force"
    recall: float  # recall@k of the chosen configuration


def run(
    *,
    scores: str,
    embeddings: str,
    attribute_spec: str,
    out_dir: str,
    options: BuildOptions = BuildOptions(),
    overwrite: bool = False,
) -> BuildSummary:
    """`silverset index build`: scores + embeddings + spec -> index folder ``out_dir``."""
    spec = load_spec(attribute_spec)
    scores_table = tables.read_table(scores, schemas.SCORES, name=f"scores '{scores}'")
    embeddings_table = tables.read_table(embeddings, name=f"embeddings '{embeddings}'")
    history, errors, model_digest = join_scores_embeddings(scores_table, embeddings_table, spec)
    manifest = build_index(
        history=history,
        errors=errors,
        model_digest=model_digest,
        spec=spec,
        out=out_dir,
        options=options,
        overwrite=overwrite,
    )
    return BuildSummary(
        index_dir=str(out_dir),
        version=manifest.version,
        model_digest=model_digest,
        inputs=scores_table.num_rows,
        history=history.num_rows,
        errors=len(errors),
        vocabulary=manifest.count,
        algorithm=manifest.parameters["algorithm"],
        recall=manifest.build["recall"],
    )
