"""The embed stage: one vector per video (pooled frame features, optionally + MiniLM text), sharded and resumable.

Frame features come from the hand-made visual statistics (default), a user's image-text model
(``clip:PATH_OR_HUB_ID``, see ``clip.py``) or a user's .onnx/.pt checkpoint.

An embedder id names every block of the vector with its width, e.g.
``visual-stats-v1[46]+minilm-l6-v2@sha256:ab12...[384]``; ``blocks`` / ``text_block`` read it back so the
studio can search the text block with ``embed_query_text``.

Entry point: ``run(*, frames_uri, out_dir, manifest_uri=None, options: EmbedOptions, shard) -> EmbedSummary``
(a frozen pydantic model: embedder id, dimension, output folder, the shard's ``ShardStats``).
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from pathlib import Path
from typing import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from silverset.components.common import schemas
from silverset.components.common.artifacts import ShardStats
from silverset.components.common.errors import SilversetInputError
from silverset.components.common.manifest import read_manifest
from silverset.components.common.sharding import Shard
from silverset.components.common.tables import ErrorRow
from silverset.components.runtime.handler import ItemResult, ModelHandler, WorkItem
from silverset.components.runtime.inputs import VideoFrames, load_frames, manifest_texts
from silverset.components.runtime.runner import run_sharded

from . import clip, visual
from . import text as text_tower

_LOGGER = logging.getLogger(__name__)

BUILTIN_EMBEDDERS = ("default", "visual", "text")
_BLOCK_RE = re.compile(r"^(?P<name>.+)\[(?P<dim>\d+)\]$")


class EmbedOptions(BaseModel):
    """Options of the embed stage (CLI flags map one to one)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    embedder: str = Field(
        "default", description="default | visual | text | clip:PATH_OR_HUB_ID | path to a .onnx/.pt checkpoint"
    )
    with_text: bool | None = Field(None, description="append the MiniLM text block; None = when a manifest is given")
    runtime: str = "auto"
    batch_size: int = Field(32, ge=1, le=4096)
    frames_per_video: int = Field(8, ge=1, le=256)
    checkpoint_image_size: int = Field(64, ge=8, le=1024)


def blocks(embedder_id: str) -> list[tuple[str, int, int]]:
    """``[(block name, start, end)]`` of a vector, read from its embedder id."""
    out, start = [], 0
    for part in embedder_id.split("+"):
        match = _BLOCK_RE.match(part)
        if not match:
            raise SilversetInputError(f"embedder id '{embedder_id}'", f"block {part!r} has no [dimension]")
        dim = int(match["dim"])
        out.append((match["name"], start, start + dim))
        start += dim
    return out


def text_block(vectors: np.ndarray, embedder_id: str) -> np.ndarray:
    """The MiniLM text block of embedding vectors float32 [n, d] -> float32 [n, 384] (compare with embed_query_text)."""
    for name, lo, hi in blocks(embedder_id):
        if name.startswith("minilm"):
            return vectors[:, lo:hi]
    raise SilversetInputError(f"embedder id '{embedder_id}'", "has no MiniLM text block; embed with a manifest")


class EmbedHandler(ModelHandler):
    """Frames (+ text) -> one vector per video, for the visual default, the text tower or a user checkpoint."""

    stage = "embed"

    def __init__(self, options: EmbedOptions, *, with_text: bool):
        self.options = options
        self.with_text = with_text
        # An image-text model is loaded here, so missing weights stop the run before anything is written.
        self.image_text = clip.load(options.embedder) if clip.is_clip(options.embedder) else None
        builtin = options.embedder in BUILTIN_EMBEDDERS or self.image_text is not None
        self.checkpoint = None if builtin else Path(options.embedder)
        if self.checkpoint is not None and not self.checkpoint.exists():
            raise SilversetInputError(
                "--embedder",
                f"{options.embedder!r} is neither one of "
                f"{', '.join(BUILTIN_EMBEDDERS)}, clip:PATH_OR_HUB_ID "
                "nor an existing checkpoint file",
            )
        self._runner = None
        self._id: str | None = None

    def batch_elements_kwargs(self) -> dict[str, int]:
        return {"min_batch_size": 1, "max_batch_size": self.options.batch_size}

    def load_model(self):
        if self.checkpoint is not None:
            from silverset.components.runtime.backends import open_checkpoint

            s = self.options.checkpoint_image_size
            self._runner = open_checkpoint(
                self.checkpoint,
                runtime=self.options.runtime,  # type: ignore[arg-type]
                batch_size=self.options.batch_size,
                frames_shape=(self.options.frames_per_video, 3, s, s),
            )
        return self._runner

    @property
    def uses_frames(self) -> bool:
        return self.options.embedder != "text"

    def block_ids(self, checkpoint_dim: int | None = None) -> list[str]:
        parts = []
        if self.options.embedder in ("default", "visual"):
            parts.append(f"{visual.VISUAL_ID}[{visual.VISUAL_DIM}]")
        elif self.image_text is not None:
            parts.append(f"{self.image_text.block_name}[{self.image_text.dimension}]")
        elif self.checkpoint is not None:
            from silverset.components.common.digest import sha256_file

            parts.append(
                f"checkpoint:{self.checkpoint.name}@sha256:{sha256_file(self.checkpoint)[:16]}[{checkpoint_dim or 0}]"
            )
        if self.with_text or self.options.embedder == "text":
            parts.append(f"{text_tower.text_embedder_id()}[{text_tower.TEXT_DIM}]")
        return parts

    @property
    def model_id(self) -> str:
        if self._id is None:
            dim = None
            if self.checkpoint is not None:
                runner = self._runner or self.load_model()
                s = self.options.checkpoint_image_size
                probe = runner(
                    np.zeros((1, self.options.frames_per_video, 3, s, s), np.float32),
                    np.zeros((1, text_tower.TEXT_DIM), np.float32),
                )
                dim = int(np.asarray(probe).reshape(1, -1).shape[1])
            self._id = "+".join(self.block_ids(dim))
        return self._id

    @property
    def dimension(self) -> int:
        return blocks(self.model_id)[-1][2]

    def run_inference(self, batch: Sequence[WorkItem], model) -> list[ItemResult]:
        texts = [item.payload[1] for item in batch]
        needs_text = self.with_text or self.options.embedder == "text" or self.checkpoint is not None
        text_vecs = text_tower.embed_texts(texts) if needs_text else None
        vectors: list[np.ndarray | None] = [None] * len(batch)
        results: list[ItemResult] = []
        if self.options.embedder in ("default", "visual"):
            for i, item in enumerate(batch):
                try:
                    frames = item.payload[0].decode(visual.SIZE, max_frames=self.options.frames_per_video)
                    vectors[i] = visual.pooled_visual_vector(frames)
                except Exception as exc:  # noqa: BLE001 - a bad JPEG drops that video, not the batch
                    results.append(
                        ItemResult(key=item.key, error_type="bad_frames", message=f"{type(exc).__name__}: {exc}")
                    )
        elif self.image_text is not None:
            results += self._image_text_vectors(batch, vectors)
        elif self.checkpoint is not None:
            s = self.options.checkpoint_image_size
            stack, ok = [], []
            for i, item in enumerate(batch):
                try:
                    stack.append(checkpoint_frames(item.payload[0], self.options.frames_per_video, s))
                    ok.append(i)
                except Exception as exc:  # noqa: BLE001
                    results.append(
                        ItemResult(key=item.key, error_type="bad_frames", message=f"{type(exc).__name__}: {exc}")
                    )
            if ok:
                out = np.asarray(model(np.stack(stack), text_vecs[ok])).reshape(len(ok), -1)
                for j, i in enumerate(ok):
                    vectors[i] = out[j].astype(np.float32)
        for i, item in enumerate(batch):
            if self.options.embedder == "text":
                vec = text_vecs[i]
            elif vectors[i] is None:
                continue
            else:
                vec = np.concatenate([vectors[i], text_vecs[i]]) if self.with_text else vectors[i]
            results.append(
                ItemResult(
                    key=item.key,
                    row={"video_id": item.key, "vector": vec.astype(np.float32).tolist(), "embedder_id": self.model_id},
                )
            )
        return results

    def _image_text_vectors(self, batch: Sequence[WorkItem], vectors: list[np.ndarray | None]) -> list[ItemResult]:
        """Fill ``vectors[i]`` with video i's pooled image vector; one forward pass over every frame of the batch."""
        per_video, failed = self.image_text.encode_videos(
            {item.key: item.payload[0] for item in batch}, max_frames=self.options.frames_per_video
        )
        for i, item in enumerate(batch):
            if item.key in per_video:
                vectors[i] = clip.pool_frames(per_video[item.key])
        return [ItemResult(key=key, error_type="bad_frames", message=message) for key, message in failed.items()]


def checkpoint_frames(video: VideoFrames, frames_per_video: int, size: int) -> np.ndarray:
    """A checkpoint's frames input for one video: float32 [T, 3, size, size] in [0, 1]; short videos repeat frames."""
    frames = video.decode(size, max_frames=frames_per_video)
    if frames.shape[0] < frames_per_video:
        frames = frames[np.resize(np.arange(frames.shape[0]), frames_per_video)]
    return frames.transpose(0, 3, 1, 2).astype(np.float32) / 255.0


class EmbedSummary(BaseModel):
    """What one embed run (or shard) did: the embedder, its vector width, the output folder and the shard's stats."""

    model_config = ConfigDict(frozen=True)

    embedder_id: str
    dimension: int
    out_dir: str
    stats: ShardStats


def run(
    *,
    frames_uri: str,
    out_dir: str,
    manifest_uri: str | None = None,
    options: EmbedOptions = EmbedOptions(),
    shard: Shard = Shard(),
    progress: bool = False,
) -> EmbedSummary:
    """Embed every video of ``shard``: frames table (+ manifest for text) -> embeddings parts in ``out_dir``.

    Inputs are the manifest's videos when a manifest is given (a video with no frames is an error row), else
    the videos of the frames table. Writes ``out_dir/part-*.parquet`` (embeddings schema),
    ``out_dir/errors.parquet`` and ``out_dir/stats/shard-<tag>.json``.
    """
    frames, out, manifest = frames_uri, out_dir, manifest_uri
    with_text = options.with_text if options.with_text is not None else manifest is not None
    if with_text and manifest is None:
        raise SilversetInputError("--text", "the text block needs --manifest (titles and descriptions)")
    handler = EmbedHandler(options, with_text=with_text)
    prior: list[ErrorRow] = []
    keys: list[str] = []
    texts: dict[str, str] = {}
    uris: dict[str, str] = {}
    if manifest is not None:
        table, prior = read_manifest(manifest, stage="embed")
        texts = manifest_texts(table)
        uris = dict(zip(table.column("video_id").to_pylist(), table.column("uri").to_pylist()))
        keys = list(texts)
    if options.embedder != "text":
        videos = load_frames(frames, shard=shard, video_ids=keys if manifest is not None else None)
        if manifest is None:
            keys = sorted(videos)
    else:
        videos = {}
    work: list[WorkItem] = []
    for key in keys:
        if handler.uses_frames and key not in videos:
            if shard.owns(key):
                prior.append(
                    ErrorRow(
                        key=key,
                        uri=uris.get(key),
                        stage="embed",
                        error_type="no_frames",
                        message=f"video '{key}' has no rows in the frames table '{frames}'",
                    )
                )
            continue
        work.append(WorkItem(key=key, payload=(videos.get(key), texts.get(key, "")), uri=uris.get(key)))
    _LOGGER.info(
        "embed [shard %s]: %s (%d dims) on %d videos",
        shard,
        handler.model_id,
        handler.dimension,
        sum(1 for it in work if shard.owns(it.key)),
    )
    dropped = [e for e in prior if shard.owns(e.key)]
    if dropped:
        reasons = Counter(e.error_type for e in dropped)
        _LOGGER.warning(
            "embed [shard %s]: %d video(s) skipped before the embedder and written to the errors table (%s); first: %s",
            shard,
            len(dropped),
            ", ".join(f"{k} {n}" for k, n in sorted(reasons.items())),
            ", ".join(e.key for e in dropped[:5]),
        )
    stats = run_sharded(
        items=work,
        handler=handler,
        out_dir=out,
        shard=shard,
        batch_size=options.batch_size,
        schema=schemas.embeddings_schema(handler.dimension),
        prior_errors=prior,
        id_column="embedder_id",
        progress=progress,
        description="embed",
    )
    _LOGGER.info(
        "embed [shard %s]: %d embedded, %d errors %s, %d resumed, %d remaining in %.1f s (%.1f videos/s)",
        shard,
        stats.outputs,
        stats.errors,
        stats.error_types,
        stats.resumed,
        stats.remaining,
        stats.seconds,
        stats.items_per_s,
    )
    return EmbedSummary(embedder_id=handler.model_id, dimension=handler.dimension, out_dir=str(out), stats=stats)
