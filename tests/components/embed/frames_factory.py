"""Tiny frames tables made directly with PIL/numpy (JPEG bytes), for tests of embed and teacher."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pyarrow as pa
from PIL import Image

from silverset.components.common import schemas, tables


def jpeg(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def video_frames(kind: str, *, n: int = 8, size: int = 48, seed: int = 0) -> list[np.ndarray]:
    """Frames uint8 [size, size, 3] of a synthetic video: 'red', 'moving', 'cuts', 'text' or 'plain'."""
    rng = np.random.default_rng(seed)
    base = np.full((size, size, 3), (70, 90, 110), np.uint8) + rng.integers(0, 10, (size, size, 3), dtype=np.uint8)
    out = []
    for t in range(n):
        f = base.copy()
        if kind == "red":
            f[..., 0], f[..., 1], f[..., 2] = 210, 30, 35
        elif kind == "moving":
            x = 4 + t * (size - 16) // n
            f[20:32, x : x + 10] = (250, 250, 250)
        elif kind == "cuts":
            f[:] = [(20, 160, 40), (200, 200, 30), (30, 40, 200), (160, 60, 160)][t % 4]
        elif kind == "text":
            for c in range(4, size - 4, 4):
                f[size - 14 : size - 6, c : c + 2] = 255
        out.append(f)
    return out


def write_frames(path: Path, videos: dict[str, str], *, n: int = 8) -> Path:
    """Write a frames table for ``{video_id: kind}`` as one Parquet shard under ``path`` (a folder)."""
    rows = []
    for i, (vid, kind) in enumerate(videos.items()):
        for t, f in enumerate(video_frames(kind, n=n, seed=i)):
            rows.append({"video_id": vid, "frame_index": t, "timestamp_s": t * 0.5, "width": f.shape[1],
                         "height": f.shape[0], "jpeg": jpeg(f)})
    tables.write_table(pa.Table.from_pylist(rows, schema=schemas.FRAMES), path / "frames-00000.parquet", schemas.FRAMES)
    return path


def write_manifest(path: Path, videos: dict[str, str]) -> Path:
    titles = {"red": "A crimson scene", "moving": "A ball rolling across", "cuts": "Fast montage",
              "text": "Lecture with captions", "plain": "Quiet grey room"}
    lines = ["video_id,uri,title,description"]
    for vid, kind in videos.items():
        lines.append(f"{vid},file:///videos/{vid}.mp4,{titles[kind]},synthetic {kind} clip")
    path.write_text("\n".join(lines) + "\n")
    return path
