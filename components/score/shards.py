"""Bulk scoring of one shard of the embeddings: the rows whose video_id hashes to shard i of n, scored by bulk.run.

Contract: ``run_shard(model_dir=..., embeddings=..., out_dir=..., shard=Shard(i, n))`` copies the rows shard i
owns (``common.sharding``: the same split as frames, embed and annotate) into a hidden input folder under
``out_dir``, scores them with ``bulk.run`` into ``out_dir/shard-<tag>/`` (that shard's ``scores-*.parquet`` and its
own ``errors.parquet``) and removes the copy. ``tables.read_table(out_dir)`` reads the n folders as one scores
table and ``sharding.read_shard_errors(out_dir)`` their errors; the union equals one unsharded run's output. A
shard that owns no row writes an empty ``errors.parquet`` and no scores. ``Shard(0, 1)`` is plain ``bulk.run``.
Returns a ``ShardScoreSummary``.

The copy lives under ``out_dir`` (not in the pod's /tmp) so that a distributed Beam runner's workers, which see
the run folder (a shared PVC or an object store) but not this pod, can read it.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pyarrow as pa

from silverset.components.common import schemas, tables
from silverset.components.common.artifacts import read_model_metadata
from silverset.components.common.errors import SilversetInputError
from silverset.components.common.sharding import Shard, remove_other_shardings, shard_dir

from .bulk import ScoreOptions, ScoreSummary

_LOGGER = logging.getLogger(__name__)
INPUT_PREFIX = ".input-"  # hidden: parquet_files/read_table of the scores folder never read it
INPUT_COLUMNS = ["video_id", "vector", "embedder_id"]


def owned_rows(embeddings: str, shard: Shard, folder: Path) -> int:
    """Write the rows of the embeddings table ``embeddings`` (file or folder) that ``shard`` owns into ``folder``,
    one ``part-NNNNN.parquet`` per input file that has some (each keeps its file's schema, so a misfit file still
    reaches bulk scoring's errors); returns how many rows. Columns: those bulk scoring reads."""
    import fsspec
    import pyarrow.parquet as pq

    files = tables.parquet_files(embeddings)
    if not files:
        raise SilversetInputError(f"embeddings '{embeddings}'", "has no Parquet files")
    folder.mkdir(parents=True, exist_ok=True)
    kept = 0
    for number, file in enumerate(files):
        with fsspec.open(file, "rb") as f:
            table = pq.read_table(f, columns=INPUT_COLUMNS)
        mine = table.filter(pa.array([shard.owns(v) for v in table.column("video_id").to_pylist()], pa.bool_()))
        if mine.num_rows:
            pq.write_table(mine, folder / f"part-{number:05d}.parquet")
            kept += mine.num_rows
    return kept


class ShardScoreSummary(ScoreSummary):
    """One shard's scoring: bulk.run's summary over the rows the shard owns, plus the shard and ``table``, the
    folder every shard's output makes one scores table of."""

    shard: str  # "i/n"
    table: str


def run_shard(
    *,
    model_dir: str,
    embeddings: str,
    out_dir: str,
    shard: Shard = Shard(),
    options: ScoreOptions = ScoreOptions(),
    overwrite: bool = False,
) -> ShardScoreSummary:
    """Score the embeddings ``shard`` owns into ``out_dir/shard-<tag>/`` (``out_dir`` itself for Shard(0, 1));
    inputs == scored + errors over the shard's rows."""
    from .bulk import run

    out = str(out_dir).rstrip("/")
    if shard.count == 1:
        whole = run(model_dir=model_dir, embeddings=embeddings, out_dir=out, options=options, overwrite=overwrite)
        return ShardScoreSummary(**whole.model_dump(), shard=str(shard), table=out)
    if "://" in out and not out.startswith("file://"):
        raise SilversetInputError(
            f"out_dir '{out}'", "bulk scoring writes a local folder (a PVC path), not an object store"
        )
    folder = Path(out.removeprefix("file://"))
    tables.check_output_folder(folder, command="score", replaces=False)
    folder.mkdir(parents=True, exist_ok=True)
    tables.write_output_marker(folder, command="score")
    for stale in remove_other_shardings(str(folder), shard):
        _LOGGER.info("removed %s, written with another shard count", stale)
    for stale in (folder / "stats").glob("cpu-score-*.json"):
        if not stale.name.endswith(f"-of-{shard.count:05d}.json"):
            stale.unlink(missing_ok=True)
    staging = folder / f"{INPUT_PREFIX}{shard.tag}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        kept = owned_rows(embeddings, shard, staging)
        target = shard_dir(str(folder), shard)
        if kept == 0:
            summary = _empty_shard(model_dir, target, options)
        else:
            summary = run(
                model_dir=model_dir, embeddings=str(staging), out_dir=target, options=options, overwrite=overwrite
            )
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ShardScoreSummary(**summary.model_dump(), shard=str(shard), table=str(folder))


def _empty_shard(model_dir: str, target: str, options: ScoreOptions) -> ScoreSummary:
    """A shard that owns no embedding: an output folder with an empty errors.parquet, no scores."""
    metadata = read_model_metadata(model_dir)
    with tables.atomic_directory(target, command="score", overwrite=False) as staging:
        tables.write_table(schemas.ERRORS.empty_table(), staging / tables.ERRORS_FILE, schemas.ERRORS)
    return ScoreSummary(
        scores=target, model_digest=metadata.model_digest, backend=options.backend, inputs=0, scored=0, errors=0
    )
