"""`silverset demo`: the whole flow on embedded defaults, one stage after another, in one work folder.

So far: synthetic corpus -> frames. Later stages append themselves to ``run_demo``; every artifact
stays under ``workdir`` for a person to inspect.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable


def run_demo(
    *,
    workdir: str | Path = "demo-workdir",
    videos: int = 200,
    seed: int = 0,
    duration_s: float = 3.0,
    width: int = 320,
    height: int = 240,
    frames_per_video: int = 8,
    frame_size: int = 224,
    on_video: Callable[[str], None] | None = None,
) -> dict:
    """Run corpus synth then frames under ``workdir``; returns ``{"corpus": {...}, "frames": {...}, "workdir": ...}``.

    ``workdir/corpus`` holds the videos, manifest.parquet and truth.parquet; ``workdir/frames`` the frame
    shards and errors.parquet. ``on_video`` is called once per synthesized video (progress bars).
    """
    from silverset.components.corpus.synth import run as synth
    from silverset.components.frames.pipeline import run as extract_frames

    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    corpus = synth(out=workdir / "corpus", videos=videos, seed=seed, duration_s=duration_s, width=width,
                   height=height, on_video=on_video)
    frames = extract_frames(manifest=corpus["manifest"], out=str(workdir / "frames"),
                            frames_per_video=frames_per_video, size=frame_size)
    return {"workdir": str(workdir), "corpus": corpus, "frames": frames}
