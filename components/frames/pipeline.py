"""The frames stage as an Apache Beam pipeline: manifest -> K JPEG frames per video -> sharded Parquet.

Entry point: ``run(*, manifest_uri, out_dir, options: FrameOptions, beam_runner, beam_options, ...) ->
FramesSummary`` (a frozen pydantic model of counts and paths).

DirectRunner by default (one in-memory worker: this is a 2-core machine shared with other work); any
other runner of ``common.beam_runner.RUNNERS`` and its flags come in as ``beam_runner`` and ``beam_options``
(``--key=value`` or ``key=value`` strings, the words of Beam's own flags; checked there: no secrets).
No kfp import here.

Output folder: ``frames-SSSSS-of-NNNNN.parquet`` files in the frames schema plus ``errors.parquet``.
Every manifest row ends up in exactly one of them (``inputs == outputs + errors``). Local outputs are
written into a staging folder that replaces the output folder in one rename, so a reader never sees
half a set of files; object-store outputs are written in place.

Sharded across pods: ``shard=Shard(i, n)`` frames only the manifest rows whose video_id hashes to shard i
(``common.sharding``, the same split as embed and annotate) into ``out_dir/shard-0000i-of-0000n/`` (files and
that shard's own ``errors.parquet``); ``tables.read_table(out_dir)`` reads the n folders as one frames table
and ``sharding.read_shard_errors(out_dir)`` their errors. The union of the n shards equals the unsharded output.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from pathlib import Path
from typing import Sequence

import apache_beam as beam
import pyarrow as pa
from apache_beam.options.pipeline_options import PipelineOptions
from pydantic import BaseModel, ConfigDict

from silverset.components.common import schemas, tables
from silverset.components.common.beam_runner import check_option, check_runner
from silverset.components.common.errors import SilversetInputError
from silverset.components.common.manifest import read_manifest
from silverset.components.common.sharding import Shard, remove_other_shardings, shard_dir
from silverset.components.common.tables import ErrorRow

from .extract import STAGE, FrameOptions, VideoError, sample_frames

_LOGGER = logging.getLogger(__name__)

ERRORS_TAG = "errors"
DIRECT_DEFAULTS = {"direct_num_workers": "1", "direct_running_mode": "in_memory"}


class FramesSummary(BaseModel):
    """What one frames run (or shard) wrote: ``inputs == videos_ok + errors`` (manifest rows this shard owns)."""

    model_config = ConfigDict(frozen=True)

    inputs: int
    videos_ok: int  # videos with K frame rows
    errors: int  # rows of errors.parquet
    frames: int  # frame rows
    sampling: str
    repeated_frames: int  # rows repeating an earlier row's (video_id, timestamp_s)
    errors_by_type: dict[str, int]
    out_dir: str  # the folder this run wrote (the shard's own folder when sharded)
    shard: str
    table: str  # the folder all shards make one frames table of
    seconds: float


def pipeline_options(beam_runner: str = "DirectRunner", beam_options: Sequence[str] = ()) -> PipelineOptions:
    """Beam options from a runner name and Beam flags (``--key=value``; the leading ``--`` is optional).

    DirectRunner gets one in-memory worker unless ``direct_num_workers``/``direct_running_mode`` say
    otherwise, e.g. ``["--direct_num_workers=2", "--direct_running_mode=multi_threading"]``.
    """
    check_runner(beam_runner)
    given: dict[str, str] = {}
    flags = []
    for option in beam_options:
        text = option.removeprefix("--")
        key, sep, value = text.partition("=")
        if not key:
            raise SilversetInputError("beam_options", f"expected --key=value, got {option!r}")
        given[key] = value
        flags.append(check_option(f"--{text}" if sep else f"--{key}"))
    if beam_runner == "DirectRunner":
        flags += [f"--{k}={v}" for k, v in DIRECT_DEFAULTS.items() if k not in given]
    return PipelineOptions([f"--runner={beam_runner}", *flags], save_main_session=False)


class ExtractFrames(beam.DoFn):
    """Manifest row dict -> frame row dicts (main output) or one error row dict (``errors`` output)."""

    def __init__(self, options: FrameOptions):
        self._options = options
        self._videos = beam.metrics.Metrics.counter(STAGE, "videos_ok")
        self._failed = beam.metrics.Metrics.counter(STAGE, "videos_failed")

    def process(self, row: dict):
        video_id, uri = row["video_id"], row["uri"]
        try:
            frames = sample_frames(video_id, uri, self._options)
        except VideoError as exc:
            self._failed.inc()
            _LOGGER.debug("%s: no frames (%s)", video_id, exc.error_type)
            yield beam.pvalue.TaggedOutput(
                ERRORS_TAG,
                {"key": video_id, "uri": uri, "stage": STAGE, "error_type": exc.error_type, "message": exc.message},
            )
            return
        except Exception as exc:  # noqa: BLE001 - one bad video must not stop the run; its reason is kept
            self._failed.inc()
            _LOGGER.debug("%s: no frames (unexpected %s)", video_id, type(exc).__name__)
            yield beam.pvalue.TaggedOutput(
                ERRORS_TAG,
                {
                    "key": video_id,
                    "uri": uri,
                    "stage": STAGE,
                    "error_type": "unexpected_error",
                    "message": f"{type(exc).__name__}: {exc}",
                },
            )
            return
        self._videos.inc()
        _LOGGER.debug("%s: %d frames", video_id, len(frames))
        for frame in frames:
            yield frame.as_row()


def _error_dict(error: ErrorRow) -> dict:
    return {
        "key": error.key,
        "uri": error.uri,
        "stage": error.stage,
        "error_type": error.error_type,
        "message": error.message,
    }


def build(
    pipeline: beam.Pipeline,
    *,
    videos: list[dict],
    manifest_errors: list[ErrorRow],
    out_dir: str,
    options: FrameOptions,
    num_shards: int = 0,
) -> None:
    """Add the stage's transforms to ``pipeline``: videos -> frames shards + errors.parquet under ``out_dir``."""
    rows = (
        pipeline
        | "Manifest" >> beam.Create(videos)
        | "Spread" >> beam.Reshuffle()
        | "Extract" >> beam.ParDo(ExtractFrames(options)).with_outputs(ERRORS_TAG, main="frames")
    )
    early = pipeline | "ManifestErrors" >> beam.Create([_error_dict(e) for e in manifest_errors])
    errors = (rows[ERRORS_TAG], early) | "AllErrors" >> beam.Flatten()
    rows.frames | "WriteFrames" >> beam.io.WriteToParquet(
        f"{out_dir}/frames",
        schemas.FRAMES,
        num_shards=num_shards,
        file_name_suffix=".parquet",
        record_batch_size=256,
    )
    errors | "WriteErrors" >> beam.io.WriteToParquet(
        f"{out_dir}/errors", schemas.ERRORS, num_shards=1, shard_name_template="", file_name_suffix=".parquet"
    )


def _count_outputs(out_dir: str) -> tuple[int, int, int, pa.Table]:
    """(frame rows, distinct videos with frames, rows repeating an earlier row's (video_id, timestamp_s),
    errors table) as read back from ``out_dir``."""
    import fsspec
    import pyarrow.parquet as pq

    frame_rows, video_ids, moments = 0, set(), set()
    for file in tables.parquet_files(out_dir):
        with fsspec.open(file, "rb") as f:
            table = pq.read_table(f, columns=["video_id", "timestamp_s"])
        frame_rows += table.num_rows
        ids = table.column("video_id").to_pylist()
        video_ids.update(ids)
        moments.update(zip(ids, table.column("timestamp_s").to_pylist()))
    return frame_rows, len(video_ids), frame_rows - len(moments), tables.read_errors(out_dir)


def run(
    *,
    manifest_uri: str,
    out_dir: str,
    options: FrameOptions = FrameOptions(),
    beam_runner: str = "DirectRunner",
    beam_options: Sequence[str] = (),
    num_shards: int = 0,
    overwrite: bool = False,
    shard: Shard = Shard(),
) -> FramesSummary:
    """Extract ``options.frames_per_video`` frames for every video in ``manifest_uri`` into ``out_dir``.

    ``options.sampling`` is ``exact`` (the frame at each target time) or ``keyframe`` (the keyframe nearest it;
    faster). The summary's ``repeated_frames`` counts rows that repeat an earlier row of the same video
    (same ``timestamp_s``): targets that landed on the same frame, common in keyframe mode when the video
    has fewer keyframes than K. Each such target still has its own row, so every video has K rows.

    Manifest-level problems (missing file, unknown format, missing column, no rows), an unknown runner and a
    refused Beam flag raise SilversetInputError before anything runs. Per-video problems become rows of
    ``out_dir/errors.parquet``. With ``shard`` i/n (n > 1) only the rows that shard owns are read and written,
    into ``out_dir/shard-<tag>/`` (folders of another shard count under ``out_dir`` are removed first); the
    summary's counts are the shard's, ``out_dir`` its folder and ``table`` the folder all shards make one table of.
    """
    started = time.monotonic()
    sampling, frames_per_video, size = options.sampling, options.frames_per_video, options.size
    beam_opts = pipeline_options(beam_runner, beam_options)
    table, manifest_errors = read_manifest(str(manifest_uri), stage=STAGE)
    videos = [row for row in table.select(["video_id", "uri"]).to_pylist() if shard.owns(row["video_id"])]
    manifest_errors = [error for error in manifest_errors if shard.owns(error.key)]
    inputs = len(videos) + len(manifest_errors)
    _LOGGER.info(
        "frames [shard %s]: %d videos, %d frames each (%s, %d px), runner %s",
        shard,
        len(videos),
        frames_per_video,
        sampling,
        size,
        beam_runner,
    )
    whole = str(out_dir).rstrip("/")
    out = shard_dir(whole, shard)
    if shard.count > 1:
        remove_other_shardings(whole, shard)
        if "://" not in whole or whole.startswith("file://"):  # an unsharded rerun may then replace the whole folder
            tables.check_output_folder(whole, command="frames", replaces=False)
            Path(whole.removeprefix("file://")).mkdir(parents=True, exist_ok=True)
            tables.write_output_marker(whole.removeprefix("file://"), command="frames")

    def execute(target: str) -> None:
        with beam.Pipeline(options=beam_opts) as pipeline:
            build(
                pipeline,
                videos=videos,
                manifest_errors=manifest_errors,
                out_dir=target,
                options=options,
                num_shards=num_shards,
            )
        if not _has_errors_file(target):  # Beam may skip an empty single-shard write
            tables.write_errors(target, [])

    if "://" not in out or out.startswith("file://"):
        with tables.atomic_directory(out, command="frames", overwrite=overwrite) as staging:
            execute(str(staging))
        out = str(Path(out.removeprefix("file://")).resolve())
    else:
        execute(out)

    frame_rows, videos_ok, repeated, errors = _count_outputs(out)
    by_type = Counter(errors.column("error_type").to_pylist())
    seconds = round(time.monotonic() - started, 2)
    if errors.num_rows:
        _LOGGER.warning(
            "frames [shard %s]: %d of %d videos written to the errors table (%s); first: %s",
            shard,
            errors.num_rows,
            inputs,
            ", ".join(f"{k} {n}" for k, n in sorted(by_type.items())),
            ", ".join(errors.column("key").to_pylist()[:5]),
        )
    _LOGGER.info(
        "frames [shard %s]: %d videos, %d frames, %d errors in %.1f s",
        shard,
        videos_ok,
        frame_rows,
        errors.num_rows,
        seconds,
    )
    return FramesSummary(
        inputs=inputs,
        videos_ok=videos_ok,
        errors=errors.num_rows,
        frames=frame_rows,
        sampling=sampling,
        repeated_frames=repeated,
        errors_by_type=dict(sorted(by_type.items())),
        out_dir=out,
        shard=str(shard),
        table=str(Path(whole.removeprefix("file://")).resolve())
        if "://" not in whole or whole.startswith("file://")
        else whole,
        seconds=seconds,
    )


def _has_errors_file(out_dir: str) -> bool:
    import fsspec

    fs, path = fsspec.core.url_to_fs(f"{out_dir}/{tables.ERRORS_FILE}")
    return fs.exists(path)
