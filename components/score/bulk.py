"""`score.run`: every embedding through the student with Beam RunInference, one RecordBatch per inference call.

Embeddings are read with tfx-bsl's ``ParquetTFXIO`` as Arrow RecordBatches; each batch is checked
against the model (embedder id, dimension, finite values), its good rows go through Beam's own
``OnnxModelHandlerNumpy`` or ``PytorchModelHandlerTensor`` as one float32 [n, d] block, and the
probabilities are written as the scores table. Rows that do not fit the model go to errors.parquet.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from silverset.components.common import schemas, tables
from silverset.components.common.errors import SilversetInputError

STAGE = "score"
SCORES_PREFIX = "scores"
ERRORS_TMP = ".errors-shards"


class ScoreOptions(BaseModel):
    """How bulk scoring runs: which exported model, how many rows per inference call, which Beam runner."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: Literal["onnx", "torchscript"] = "onnx"
    batch_size: int = Field(1024, ge=1, le=1_000_000)  # rows per RecordBatch = per inference call (1024 beat 8192 here: Beam pickles the first ~30 elements of every PCollection to size them)
    runner: str = "DirectRunner"
    threads: int = Field(1, ge=1, le=64)  # intra-op threads per model copy
    pipeline_args: tuple[str, ...] = ()  # extra Beam options, e.g. ("--direct_num_workers=2",)


# ---------------------------------------------------------------- per-batch logic (plain Python)

def split_batch(batch: pa.RecordBatch, *, embedder_id: str, dimension: int) -> tuple[pa.RecordBatch | None, list[tables.ErrorRow]]:
    """The rows of ``batch`` the model can score, and an error row for each one it cannot.

    A batch whose ``vector`` column is not fixed_size_list<float>[dimension] is all errors.
    """
    ids = batch.column(batch.schema.get_field_index("video_id")).to_pylist()
    vector_type = batch.schema.field("vector").type
    if not (pa.types.is_fixed_size_list(vector_type) and vector_type.list_size == dimension and pa.types.is_floating(vector_type.value_type)):
        found = vector_type.list_size if pa.types.is_fixed_size_list(vector_type) else str(vector_type)
        return None, [tables.ErrorRow(v, STAGE, "dimension_mismatch", f"vector dimension {found}, model expects {dimension}") for v in ids]
    embedders = batch.column(batch.schema.get_field_index("embedder_id")).to_pylist()
    vectors = vectors_of_batch(batch, dimension)
    finite = np.isfinite(vectors).all(axis=1)
    errors: list[tables.ErrorRow] = []
    keep = np.ones(len(ids), dtype=bool)
    for i, (vid, eid) in enumerate(zip(ids, embedders)):
        if eid != embedder_id:
            errors.append(tables.ErrorRow(vid, STAGE, "embedder_mismatch", f"embedder id {eid!r}, model expects {embedder_id!r}"))
            keep[i] = False
        elif not finite[i]:
            errors.append(tables.ErrorRow(vid, STAGE, "non_finite_vector", "vector has NaN or infinite values"))
            keep[i] = False
    if not keep.any():
        return None, errors
    good = batch if keep.all() else batch.filter(pa.array(keep))
    return good, errors


def vectors_of_batch(batch: pa.RecordBatch, dimension: int) -> np.ndarray:
    """float32 [n, d] of a RecordBatch's fixed-size-list ``vector`` column."""
    column = batch.column(batch.schema.get_field_index("vector"))
    flat = column.flatten().to_numpy(zero_copy_only=False)
    return np.asarray(flat, dtype=np.float32).reshape(-1, dimension)


def scores_batch(video_ids: pa.Array, probabilities: np.ndarray, metadata: dict[str, Any]) -> pa.Table:
    """One scores table for a scored block: probabilities float32 [n] aligned with ``video_ids``."""
    n = len(video_ids)
    return pa.table(
        {
            "video_id": video_ids,
            "attribute": pa.array([metadata["attribute"]] * n, pa.string()),
            "attribute_version": pa.array(np.full(n, metadata["attribute_version"], dtype=np.int32)),
            "probability": pa.array(np.asarray(probabilities, dtype=np.float32).reshape(-1)),
            "model_digest": pa.array([metadata["model_digest"]] * n, pa.string()),
        },
        schema=schemas.SCORES,
    )


# ---------------------------------------------------------------- pipeline

def _input_rows(files: list[str]) -> int:
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(f).metadata.num_rows for f in files)


def run(*, model: str, embeddings: str, out: str, options: ScoreOptions | None = None) -> dict[str, Any]:
    """Score every row of ``embeddings`` with the student in MODELDIR ``model``; write ``out``/scores-*.parquet + errors.parquet.

    Returns inputs, scored, errors (inputs == scored + errors), the model digest and the output path.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # tfx-bsl pulls in TensorFlow; keep its start-up chatter out
    import apache_beam as beam
    from apache_beam.ml.inference.base import RunInference
    from apache_beam.options.pipeline_options import PipelineOptions
    # tfx-bsl 1.21 does not re-export ParquetTFXIO from tfx_bsl.public.tfxio; the class lives here.
    from tfx_bsl.tfxio.parquet_tfxio import ParquetTFXIO

    from silverset.components.distill.train import read_metadata

    from .handlers import model_handler

    options = options or ScoreOptions()
    metadata = read_metadata(model)
    files = tables.parquet_files(embeddings)
    if not files:
        raise SilversetInputError(f"embeddings '{embeddings}'", "has no Parquet files")
    n_inputs = _input_rows(files)
    embedder_id, dimension = metadata["embedder_id"], int(metadata["dimension"])
    torch_backend = options.backend == "torchscript"

    def check(batch: pa.RecordBatch):
        good, errors = split_batch(batch, embedder_id=embedder_id, dimension=dimension)
        if errors:
            yield beam.pvalue.TaggedOutput("errors", tables.errors_table(errors))
        if good is not None:
            block = vectors_of_batch(good, dimension)
            if torch_backend:
                import torch

                block = torch.from_numpy(np.array(block))  # writable copy: torch refuses read-only Arrow memory
            yield good.column(good.schema.get_field_index("video_id")), block

    def to_scores(keyed: tuple) -> pa.Table:
        video_ids, result = keyed
        return scores_batch(video_ids, np.asarray(result.inference), metadata)

    with tables.atomic_directory(out) as staging:
        beam_options = PipelineOptions(list(options.pipeline_args), runner=options.runner)
        with beam.Pipeline(options=beam_options) as pipeline:
            checked = (
                pipeline
                | "ReadEmbeddings" >> ParquetTFXIO(files, column_names=["video_id", "vector", "embedder_id"]).BeamSource(batch_size=options.batch_size)
                | "CheckAgainstModel" >> beam.FlatMap(check).with_outputs("errors", main="blocks")
            )
            _ = (
                checked.blocks
                | "RunInference" >> RunInference(model_handler(model, metadata, backend=options.backend, threads=options.threads))
                | "ToScores" >> beam.Map(to_scores)
                | "WriteScores" >> beam.io.WriteToParquetBatched(
                    str(staging / SCORES_PREFIX), schema=schemas.SCORES, file_name_suffix=".parquet"
                )
            )
            _ = checked.errors | "WriteErrorShards" >> beam.io.WriteToParquetBatched(
                str(staging / ERRORS_TMP / "part"), schema=schemas.ERRORS, file_name_suffix=".parquet"
            )
        error_dir = staging / ERRORS_TMP
        error_rows = tables.read_table(error_dir, schemas.ERRORS) if error_dir.exists() and any(error_dir.glob("*.parquet")) else schemas.ERRORS.empty_table()
        tables.write_table(error_rows, staging / tables.ERRORS_FILE, schemas.ERRORS)
        shutil.rmtree(error_dir, ignore_errors=True)
        scored = _input_rows([str(p) for p in staging.glob(f"{SCORES_PREFIX}*.parquet")])
    return {
        "scores": str(out),
        "model_digest": metadata["model_digest"],
        "backend": options.backend,
        "inputs": n_inputs,
        "scored": scored,
        "errors": error_rows.num_rows,
    }
