"""`score.run`: every embedding through the student with Beam RunInference, one block of rows per inference call.

Embeddings are read with tfx-bsl's ``ParquetTFXIO`` as Arrow RecordBatches (one per Parquet row group); each
batch is checked against the model (embedder id, dimension, finite values), its good rows are cut into
``ScoringBlock``s of ``batch_size`` rows (video ids + float32 [n, d]) that go through Beam's own
``OnnxModelHandlerNumpy`` or ``PytorchModelHandlerTensor`` as pre-batched elements (``with_no_batching``: one
block per call, no BatchElements step), and the probabilities are written as the scores table. Rows that do not
fit the model go to errors.parquet.

Throughput on DirectRunner is bound by what Beam does around the model: it encodes sampled elements of every
PCollection to estimate sizes (by default with pickle: ~35 samples of each PCollection per run, each a whole
block), and everything that crosses a stage boundary. So the files are read by one Beam read (one glob
pattern) rather than a Flatten of per-file reads; row groups stay unsliced (pickling a zero-copy Arrow slice
pickles its whole parent buffer); every PCollection on the scoring path is typed (row groups, blocks, scored
blocks, scores tables, tfx-bsl's untyped inner ones included) so it gets an Arrow IPC coder whose size
estimate is ``nbytes``; the per-row telemetry distributions tfx-bsl computes on a random tenth of the row
groups are turned off (its row and byte counters stay); and blocks carry compact id arrays and numpy views.
"""

from __future__ import annotations

import os
import shutil
from typing import Any, Iterator, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field

from silverset.components.common import schemas, tables
from silverset.components.common.artifacts import ModelMetadata, read_model_metadata
from silverset.components.common.errors import SilversetInputError

STAGE = "score"
SCORES_PREFIX = "scores"
ERRORS_TMP = ".errors-shards"


class ScoreOptions(BaseModel):
    """How bulk scoring runs: which exported model, how many rows per inference call, which Beam runner."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: Literal["onnx", "torchscript"] = "onnx"
    # rows per inference call (one Beam element, a ScoringBlock)
    batch_size: int = Field(8192, ge=1, le=1_000_000)
    runner: str = "DirectRunner"
    threads: int = Field(1, ge=1, le=64)  # intra-op threads per model copy
    pipeline_args: tuple[str, ...] = ()  # extra Beam options, e.g. ("--direct_num_workers=2",)


# ---------------------------------------------------------------- per-batch logic (plain Python)


class ScoringBlock:
    """A block of rows for one inference call: ``video_ids`` [n] (Arrow strings) and ``vectors`` float32 [n, d].

    One Beam element (a pre-batched RunInference input); ``len`` is its row count.
    """

    __slots__ = ("video_ids", "vectors")

    def __init__(self, video_ids: pa.Array, vectors: np.ndarray):
        if len(video_ids) != len(vectors):
            raise ValueError(f"{len(video_ids)} video ids for {len(vectors)} vectors")
        self.video_ids, self.vectors = video_ids, vectors

    def __len__(self) -> int:
        return len(self.video_ids)

    @property
    def nbytes(self) -> int:
        return self.video_ids.nbytes + self.vectors.nbytes


class ScoredBlock:
    """The model's answer for a ``ScoringBlock``: its ``video_ids`` [n] and ``probabilities`` float32 [n]."""

    __slots__ = ("video_ids", "probabilities")

    def __init__(self, video_ids: pa.Array, probabilities: np.ndarray):
        probabilities = np.asarray(probabilities, dtype=np.float32).reshape(-1)
        if len(video_ids) != len(probabilities):
            raise ValueError(f"{len(video_ids)} video ids for {len(probabilities)} probabilities")
        self.video_ids, self.probabilities = video_ids, probabilities

    def __len__(self) -> int:
        return len(self.video_ids)

    @property
    def nbytes(self) -> int:
        return self.video_ids.nbytes + self.probabilities.nbytes


def split_batch(
    batch: pa.RecordBatch, *, embedder_id: str, dimension: int
) -> tuple[pa.RecordBatch | None, list[tables.ErrorRow]]:
    """The rows of ``batch`` the model can score, and an error row for each one it cannot.

    A batch whose ``vector`` column is not fixed_size_list<float>[dimension] is all errors.
    """
    video_ids = batch.column(batch.schema.get_field_index("video_id"))
    vector_type = batch.schema.field("vector").type
    if not (
        pa.types.is_fixed_size_list(vector_type)
        and vector_type.list_size == dimension
        and pa.types.is_floating(vector_type.value_type)
    ):
        found = vector_type.list_size if pa.types.is_fixed_size_list(vector_type) else str(vector_type)
        message = f"vector dimension {found}, model expects {dimension}"
        return None, [tables.ErrorRow(v, STAGE, "dimension_mismatch", message) for v in video_ids.to_pylist()]
    embedders = batch.column(batch.schema.get_field_index("embedder_id"))
    same = pc.equal(embedders, pa.scalar(embedder_id, embedders.type))
    right_embedder = pc.fill_null(same, False).to_numpy(zero_copy_only=False)
    finite = np.isfinite(vectors_of_batch(batch, dimension)).all(axis=1)
    keep = right_embedder & finite
    errors: list[tables.ErrorRow] = []
    for i in map(int, np.flatnonzero(~keep)):  # only the misfit rows pay for Python objects
        vid = video_ids[i].as_py()
        if not right_embedder[i]:
            eid = embedders[i].as_py()
            errors.append(
                tables.ErrorRow(vid, STAGE, "embedder_mismatch", f"embedder id {eid!r}, model expects {embedder_id!r}")
            )
        else:
            errors.append(tables.ErrorRow(vid, STAGE, "non_finite_vector", "vector has NaN or infinite values"))
    if not keep.any():
        return None, errors
    good = batch if keep.all() else batch.filter(pa.array(keep))
    return good, errors


def vectors_of_batch(batch: pa.RecordBatch, dimension: int) -> np.ndarray:
    """float32 [n, d] of a RecordBatch's fixed-size-list ``vector`` column."""
    column = batch.column(batch.schema.get_field_index("vector"))
    flat = column.flatten().to_numpy(zero_copy_only=False)
    return np.asarray(flat, dtype=np.float32).reshape(-1, dimension)


def blocks_of(batch: pa.RecordBatch, *, rows: int, dimension: int) -> Iterator[ScoringBlock]:
    """Blocks of at most ``rows`` rows (video_ids [k], vectors float32 [k, d]), in order, covering ``batch``.

    Ids are compacted (a slice would drag its parent's whole buffer into any encode Beam does); vectors are
    numpy views, which encode only their own rows.
    """
    ids = batch.column(batch.schema.get_field_index("video_id"))
    vectors = vectors_of_batch(batch, dimension)
    for start in range(0, len(ids), rows):
        stop = min(start + rows, len(ids))
        yield ScoringBlock(pa.concat_arrays([ids.slice(start, stop - start)]), vectors[start:stop])


def scores_batch(video_ids: pa.Array, probabilities: np.ndarray, metadata: ModelMetadata) -> pa.Table:
    """One scores table for a scored block: probabilities float32 [n] aligned with ``video_ids``."""
    n = len(video_ids)
    return pa.table(
        {
            "video_id": video_ids,
            "attribute": pa.array([metadata.attribute] * n, pa.string()),
            "attribute_version": pa.array(np.full(n, metadata.attribute_version, dtype=np.int32)),
            "probability": pa.array(np.asarray(probabilities, dtype=np.float32).reshape(-1)),
            "model_digest": pa.array([metadata.model_digest] * n, pa.string()),
        },
        schema=schemas.SCORES,
    )


# ---------------------------------------------------------------- pipeline


def read_patterns(files: list[str]) -> list[str]:
    """One glob pattern that matches exactly ``files`` (same folder, shared name prefix), else ``files`` themselves.

    ``ParquetTFXIO`` makes one Beam read per pattern and Flattens them; DirectRunner then pickles every
    row group across the stage boundary. One read keeps the row groups in the stage that scores them.
    """
    if len(files) < 2:
        return files
    folders = {f.rsplit("/", 1)[0] for f in files}
    names = {f.rsplit("/", 1)[-1] for f in files}
    prefix = os.path.commonprefix(sorted(names))
    if len(folders) != 1 or any(c in prefix for c in "*?[]") or not all(n.endswith(".parquet") for n in names):
        return files
    from apache_beam.io.filesystem import BeamIOError
    from apache_beam.io.filesystems import FileSystems

    pattern = f"{folders.pop()}/{prefix}*.parquet"
    try:
        matched = {m.path.rsplit("/", 1)[-1] for m in FileSystems.match([pattern])[0].metadata_list}
    except BeamIOError:  # a filesystem that cannot glob: read the files one by one, as listed
        return files
    return [pattern] if matched == names else files


def _input_rows(files: list[str]) -> int:
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(f).metadata.num_rows for f in files)


def build_scoring(
    pipeline: Any,
    *,
    files: list[str],
    model_dir: str,
    metadata: ModelMetadata,
    options: ScoreOptions,
    scores_prefix: str,
    errors_prefix: str,
) -> None:
    """Add the scoring graph to ``pipeline``: read ``files``, check, RunInference, write scores and error shards.

    Every PCollection on the way is typed with an Arrow-coded type (see the module docstring); nothing runs here.
    """
    import apache_beam as beam
    from apache_beam.ml.inference.base import RunInference

    # tfx-bsl 1.21 does not re-export ParquetTFXIO from tfx_bsl.public.tfxio; the class lives here.
    from tfx_bsl.tfxio.parquet_tfxio import ParquetTFXIO

    from .handlers import model_handler, quiet_tfxio_row_telemetry, register_scoring_coders, type_arrow_read_outputs

    embedder_id, dimension = metadata.embedder_id, metadata.dimension

    def check(batch: pa.RecordBatch):
        good, errors = split_batch(batch, embedder_id=embedder_id, dimension=dimension)
        if errors:
            yield beam.pvalue.TaggedOutput("errors", tables.errors_table(errors))
        if good is not None:
            yield from blocks_of(good, rows=options.batch_size, dimension=dimension)

    def to_scores(scored: ScoredBlock) -> pa.Table:
        return scores_batch(scored.video_ids, scored.probabilities, metadata)

    register_scoring_coders()
    columns = ["video_id", "vector", "embedder_id"]
    read = ParquetTFXIO(read_patterns(files), column_names=columns).BeamSource(batch_size=None)  # unsliced row groups
    checked = (
        pipeline
        | "ReadEmbeddings" >> read
        | "CheckAgainstModel"
        >> beam.FlatMap(check).with_output_types(ScoringBlock).with_outputs("errors", main="blocks")
    )
    scored = checked.blocks | "RunInference" >> RunInference(
        model_handler(model_dir, metadata, backend=options.backend, threads=options.threads)
    )
    scored.element_type = ScoredBlock  # Beam leaves RunInference's output Any, i.e. pickled for every size sample
    checked.errors.element_type = pa.Table
    _ = (
        scored
        | "ToScores" >> beam.Map(to_scores).with_output_types(pa.Table)
        | "WriteScores"
        >> beam.io.WriteToParquetBatched(scores_prefix, schema=schemas.SCORES, file_name_suffix=".parquet")
    )
    _ = checked.errors | "WriteErrorShards" >> beam.io.WriteToParquetBatched(
        errors_prefix, schema=schemas.ERRORS, file_name_suffix=".parquet"
    )
    type_arrow_read_outputs(pipeline, "ReadEmbeddings")
    quiet_tfxio_row_telemetry(pipeline, "ReadEmbeddings")


class ScoreSummary(BaseModel):
    """What one scoring run wrote: the scores folder, the model that scored it, and ``inputs == scored + errors``."""

    model_config = ConfigDict(frozen=True)

    scores: str  # the folder holding scores-*.parquet and errors.parquet
    model_digest: str
    backend: str
    inputs: int
    scored: int
    errors: int


def run(
    *,
    model_dir: str,
    embeddings: str,
    out_dir: str,
    options: ScoreOptions = ScoreOptions(),
    overwrite: bool = False,
) -> ScoreSummary:
    """Score every row of ``embeddings`` with the student in MODELDIR ``model_dir``.

    Writes ``out_dir``/scores-*.parquet + errors.parquet.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # tfx-bsl pulls in TensorFlow; keep its start-up chatter out
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    metadata = read_model_metadata(model_dir)
    files = tables.parquet_files(embeddings)
    if not files:
        raise SilversetInputError(f"embeddings '{embeddings}'", "has no Parquet files")
    n_inputs = _input_rows(files)
    with tables.atomic_directory(out_dir, command="score", overwrite=overwrite) as staging:
        beam_options = PipelineOptions(list(options.pipeline_args), runner=options.runner)
        with beam.Pipeline(options=beam_options) as pipeline:
            build_scoring(
                pipeline,
                files=files,
                model_dir=model_dir,
                metadata=metadata,
                options=options,
                scores_prefix=str(staging / SCORES_PREFIX),
                errors_prefix=str(staging / ERRORS_TMP / "part"),
            )
        error_dir = staging / ERRORS_TMP
        has_errors = error_dir.exists() and any(error_dir.glob("*.parquet"))
        error_rows = tables.read_table(error_dir, schemas.ERRORS) if has_errors else schemas.ERRORS.empty_table()
        tables.write_table(error_rows, staging / tables.ERRORS_FILE, schemas.ERRORS)
        shutil.rmtree(error_dir, ignore_errors=True)
        scored = _input_rows([str(p) for p in staging.glob(f"{SCORES_PREFIX}*.parquet")])
    return ScoreSummary(
        scores=str(out_dir),
        model_digest=metadata.model_digest,
        backend=options.backend,
        inputs=n_inputs,
        scored=scored,
        errors=error_rows.num_rows,
    )
