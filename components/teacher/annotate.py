"""The annotate stage: manifest + frames + attribute spec -> labels table, with any teacher, sharded and resumable.

Entry point: ``run(*, attribute_spec, manifest_uri, out_dir, frames_uri=None, options: AnnotateOptions, shard)
-> AnnotateSummary`` (a frozen pydantic model: teacher id, attribute name, output folder, the shard's
``ShardStats``).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from silverset.components.common import schemas
from silverset.components.common.artifacts import ShardStats
from silverset.components.common.errors import SilversetInputError
from silverset.components.common.manifest import read_manifest
from silverset.components.common.sharding import Shard
from silverset.components.common.spec import AttributeSpec, load_spec
from silverset.components.common.tables import ErrorRow
from silverset.components.runtime.handler import ModelHandler, WorkItem
from silverset.components.runtime.inputs import VideoFrames, load_frames, manifest_texts, video_text
from silverset.components.runtime.runner import run_sharded

from .gemini import GeminiOptions

_LOGGER = logging.getLogger(__name__)

TEACHERS = ("zero-shot", "gemini", "local", "clip-zero-shot")


@dataclass(frozen=True)
class TeacherInput:
    """What a teacher sees of one video."""

    title: str
    description: str
    frames: VideoFrames | None

    @property
    def text(self) -> str:
        return video_text(self.title, self.description)


class AnnotateOptions(BaseModel):
    """Options of the annotate stage; CLI flags map one to one. ``teacher`` None = the spec's backend."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    teacher: Literal["zero-shot", "gemini", "local", "clip-zero-shot"] | None = None
    max_items: int | None = Field(None, ge=1)
    batch_size: int | None = Field(None, ge=1, le=4096)
    gemini: GeminiOptions = GeminiOptions()
    checkpoint: str | None = None  # local teacher: .onnx or TorchScript .pt; clip-zero-shot: [clip:]PATH_OR_HUB_ID
    temperature: float | None = Field(None, gt=0)  # clip-zero-shot: softmax temperature (None = the model's scale)
    # local teacher: auto | eager | onnxruntime | onnxruntime-int8 | tensorrt | tensorrt-fp16 | tensorrt-int8
    runtime: str = "auto"
    precision: str = "auto"  # local teacher: auto | fp32 | fp16 | int8 (int8 needs calibration)
    calibration: str | None = None  # local teacher: frames table whose videos calibrate INT8 (Q/DQ) ranges
    threshold_logit: float = 0.0  # local teacher: label = logit >= this


class AnnotateSummary(BaseModel):
    """What one annotate run (or shard) did: the teacher, the attribute's name, the output folder, the stats."""

    model_config = ConfigDict(frozen=True)

    teacher_id: str
    attribute: str  # the spec's key, e.g. "red_dominant"
    out_dir: str
    stats: ShardStats


def make_handler(
    spec: AttributeSpec, options: AnnotateOptions, *, out: str, manifest: str | None = None, shard_count: int = 1
) -> ModelHandler:
    """The teacher ``options`` select for ``spec``; a Gemini teacher takes 1/``shard_count`` of the key's quota."""
    teacher = options.teacher or spec.teacher.backend
    if teacher == "zero-shot":
        from .zero_shot import ZeroShotHandler

        return ZeroShotHandler(spec, batch_size=options.batch_size or 64)
    if teacher == "gemini":
        from .gemini import GeminiHandler

        gemini = options.gemini
        if gemini.model is None:
            gemini = gemini.model_copy(update={"model": spec.teacher.model})
        cache = gemini.cache_dir or str(Path(out) / ".teacher-cache")
        return GeminiHandler(
            spec,
            gemini.model_copy(update={"cache_dir": cache}),
            frames_per_request=spec.teacher.frames_per_request,
            batch_size=options.batch_size,
            shard_count=shard_count,
        )
    if teacher == "clip-zero-shot":
        from .zero_shot import ImageTextZeroShotHandler

        if not options.checkpoint:
            raise SilversetInputError(
                "--checkpoint",
                "the clip-zero-shot teacher needs an image-text model: "
                "a save_pretrained directory or a hub id in the local Hugging Face cache",
            )
        return ImageTextZeroShotHandler(
            spec, model=options.checkpoint, temperature=options.temperature, batch_size=options.batch_size or 16
        )
    if teacher == "local":
        from .local import LocalTeacherHandler

        if not options.checkpoint:
            raise SilversetInputError("--checkpoint", "the local teacher needs a .onnx or TorchScript checkpoint")
        texts = manifest_texts(read_manifest(manifest)[0]) if options.calibration and manifest else None
        return LocalTeacherHandler(
            spec,
            checkpoint=options.checkpoint,
            runtime=options.runtime,
            precision=options.precision,
            calibration=options.calibration,
            calibration_texts=texts,
            batch_size=options.batch_size or 32,
            threshold_logit=options.threshold_logit,
        )
    raise SilversetInputError("--teacher", f"unknown teacher {teacher!r}; use one of {', '.join(TEACHERS)}")


def run(
    *,
    attribute_spec: str,
    manifest_uri: str,
    out_dir: str,
    frames_uri: str | None = None,
    options: AnnotateOptions = AnnotateOptions(),
    shard: Shard = Shard(),
    progress: bool = False,
) -> AnnotateSummary:
    """Label every manifest video this ``shard`` owns for the attribute spec at ``attribute_spec``.

    Writes ``out_dir/part-*.parquet`` (labels schema), ``out_dir/errors.parquet`` and
    ``out_dir/stats/shard-<tag>.json``. Rerunning the same command resumes: finished videos are skipped, and the
    Gemini cache means a paid answer is never paid for again. Frames are required by the gemini and local teachers.
    """
    manifest, out, frames = manifest_uri, out_dir, frames_uri
    spec = load_spec(attribute_spec)
    handler = make_handler(spec, options, out=out, manifest=manifest, shard_count=shard.count)
    needs_frames = not isinstance(handler, _zero_shot_type())
    if needs_frames and not frames:
        raise SilversetInputError(
            "--frames", f"the {options.teacher or spec.teacher.backend} teacher needs the frames table"
        )
    table, prior = read_manifest(manifest, stage="annotate")
    ids = table.column("video_id").to_pylist()
    videos = load_frames(frames, shard=shard, video_ids=ids) if frames else {}
    items: list[WorkItem] = []
    for vid, uri, title, desc in zip(
        ids, table.column("uri").to_pylist(), table.column("title").to_pylist(), table.column("description").to_pylist()
    ):
        if needs_frames and vid not in videos:
            if shard.owns(vid):
                prior.append(
                    ErrorRow(
                        key=vid,
                        uri=uri,
                        stage="annotate",
                        error_type="no_frames",
                        message=f"video '{vid}' has no rows in the frames table",
                    )
                )
            continue
        items.append(WorkItem(key=vid, uri=uri, payload=TeacherInput(title or "", desc or "", videos.get(vid))))
    _LOGGER.info(
        "annotate %s [shard %s]: %s teacher on %d of %d manifest videos",
        spec.key,
        shard,
        handler.model_id,
        sum(1 for it in items if shard.owns(it.key)),
        len(ids),
    )
    dropped = [e for e in prior if shard.owns(e.key)]
    if dropped:
        reasons = Counter(e.error_type for e in dropped)
        _LOGGER.warning(
            "annotate %s [shard %s]: %d video(s) skipped before the teacher and written to the errors "
            "table (%s); first: %s",
            spec.key,
            shard,
            len(dropped),
            ", ".join(f"{kind} {n}" for kind, n in sorted(reasons.items())),
            ", ".join(e.key for e in dropped[:5]),
        )
    stats = run_sharded(
        items=items,
        handler=handler,
        out_dir=out,
        shard=shard,
        schema=schemas.LABELS,
        batch_size=options.batch_size,
        prior_errors=prior,
        max_items=options.max_items,
        id_column="teacher_id",
        progress=progress,
        description=f"annotate {spec.key}",
    )
    _LOGGER.log(
        logging.WARNING if stats.stopped == "budget" else logging.INFO,
        "annotate %s [shard %s]: %d labelled, %d errors %s, %d resumed, %d remaining (stopped: %s); $%.4f, "
        "%d requests, %d cache hits in %.1f s",
        spec.key,
        shard,
        stats.outputs,
        stats.errors,
        stats.error_types,
        stats.resumed,
        stats.remaining,
        stats.stopped or "no",
        stats.cost_usd,
        stats.requests,
        stats.cache_hits,
        stats.seconds,
    )
    return AnnotateSummary(teacher_id=handler.model_id, attribute=spec.key, out_dir=str(out), stats=stats)


def _zero_shot_type():
    from .zero_shot import ZeroShotHandler

    return ZeroShotHandler
