"""Reading the frames table and manifest into per-video work: frames grouped by video, decoded on demand."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pyarrow as pa

from silverset.components.common import schemas, tables
from silverset.components.common.sharding import Shard


@dataclass(frozen=True)
class VideoFrames:
    """One video's sampled frames, in frame_index order: JPEG bytes and timestamps in seconds."""

    video_id: str
    timestamps_s: tuple[float, ...]
    jpegs: tuple[bytes, ...]

    @property
    def digest(self) -> str:
        """sha256 over the frames' JPEG bytes: the cache key part that changes when frames change."""
        h = hashlib.sha256()
        for ts, jpeg in zip(self.timestamps_s, self.jpegs):
            h.update(f"{ts:.6f}:{len(jpeg)}:".encode())
            h.update(jpeg)
        return h.hexdigest()

    def decode(self, size: int | None = None, *, max_frames: int | None = None) -> np.ndarray:
        """Decode to uint8 [T, H, W, 3] RGB; ``size`` resizes each frame to size x size pixels."""
        from PIL import Image

        picks = sample_indices(len(self.jpegs), max_frames) if max_frames else range(len(self.jpegs))
        frames = []
        for i in picks:
            jpeg = Image.open(io.BytesIO(self.jpegs[i]))
            jpeg.draft("RGB", (size, size) if size else jpeg.size)  # JPEG DCT scaling: decode smaller, faster
            img = jpeg.convert("RGB")
            if size:
                img = img.resize((size, size), Image.Resampling.BILINEAR)
            frames.append(np.asarray(img, dtype=np.uint8))
        return np.stack(frames)


def sample_indices(n: int, k: int | None) -> list[int]:
    """``k`` indices spread evenly over ``range(n)`` (all of them when k >= n)."""
    if not k or k >= n:
        return list(range(n))
    return sorted({int(round(i * (n - 1) / (k - 1))) for i in range(k)}) if k > 1 else [n // 2]


def load_frames(
    frames_uri: str, *, shard: Shard = Shard(), video_ids: Sequence[str] | None = None
) -> dict[str, VideoFrames]:
    """Read the frames table (file or folder of shards) for the videos ``shard`` owns.

    Returns ``{video_id: VideoFrames}``; frames are ordered by frame_index.
    """
    table = tables.read_table(frames_uri, schemas.FRAMES, name=f"frames '{frames_uri}'")
    ids = table.column("video_id").to_pylist()
    wanted = set(video_ids) if video_ids is not None else None
    mask = [shard.owns(v) and (wanted is None or v in wanted) for v in ids]
    table = table.filter(pa.array(mask, pa.bool_()))
    table = table.sort_by([("video_id", "ascending"), ("frame_index", "ascending")])
    out: dict[str, VideoFrames] = {}
    if table.num_rows == 0:
        return out
    vids = table.column("video_id").to_pylist()
    ts = table.column("timestamp_s").to_pylist()
    jpegs = table.column("jpeg").to_pylist()
    start = 0
    for i in range(1, len(vids) + 1):
        if i == len(vids) or vids[i] != vids[start]:
            out[vids[start]] = VideoFrames(vids[start], tuple(ts[start:i]), tuple(jpegs[start:i]))
            start = i
    return out


def video_text(title: str | None, description: str | None) -> str:
    """The text a text tower sees for a video: title and description joined."""
    return ". ".join(part.strip() for part in (title, description) if part and part.strip())


def manifest_texts(manifest: pa.Table) -> dict[str, str]:
    """``{video_id: title + description}`` from a manifest table."""
    return {
        v: video_text(t, d)
        for v, t, d in zip(
            manifest.column("video_id").to_pylist(),
            manifest.column("title").to_pylist(),
            manifest.column("description").to_pylist(),
        )
    }
