"""Real videos for the frames tests: a tiny synthetic corpus plus one file for every kind of bad input."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest

from silverset.components.corpus import synth
from silverset.components.corpus.synth import SynthOptions
from tests.helpers import factories

# error_type the frames stage must report for each bad file made by make_bad_videos
BAD_KINDS = {
    "missing": "missing_file",
    "zero_byte": "empty_file",
    "truncated": "unreadable_video",
    "corrupt": "unreadable_video",
    "not_a_video": "not_a_video",
    "still_image": "not_a_video",
    "audio_only": "no_video_stream",
    "zero_duration": "zero_duration",
    "huge_resolution": "resolution_too_large",
}


def make_bad_videos(folder: Path, good: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    data = good.read_bytes()
    paths = {kind: folder / f"{kind}.mp4" for kind in BAD_KINDS}
    paths["zero_byte"].write_bytes(b"")
    paths["truncated"].write_bytes(data[: len(data) * 2 // 5])  # the moov atom sits at the end
    paths["corrupt"].write_bytes(data[:32] + np.random.default_rng(0).bytes(len(data) - 32))
    paths["not_a_video"] = folder / "notes.txt"
    paths["not_a_video"].write_text("these are meeting notes, not a video\n" * 40)
    paths["still_image"] = folder / "poster.png"
    from PIL import Image

    Image.new("RGB", (64, 48), (200, 30, 30)).save(paths["still_image"])
    with av.open(str(paths["audio_only"]), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        stream.layout = "mono"
        for start in range(0, 16000, 1024):
            samples = (0.2 * np.sin(np.arange(start, start + 1024) * 0.17)).astype(np.float32)[None, :]
            frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, start
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    with av.open(str(paths["zero_duration"]), "w") as container:  # a video track with no samples
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        container.start_encoding()
    # One blank frame just above 8K UHD (7680x4320): refused from its header, never decoded.
    with av.open(str(paths["huge_resolution"]), "w") as container:
        stream = container.add_stream("libx264", rate=1, options={"preset": "ultrafast", "threads": "1"})
        stream.width, stream.height, stream.pix_fmt = 7696, 4336, "yuv420p"
        for packet in stream.encode(av.VideoFrame(7696, 4336, "yuv420p")):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return paths


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> synth.CorpusSummary:
    """4 synthetic videos, 2 s at 128x96 (15 fps, 1 s GOP), with manifest.parquet and truth.parquet."""
    out = tmp_path_factory.mktemp("frames-corpus") / "corpus"
    return synth.run(out_dir=out, options=SynthOptions(videos=4, seed=1, duration_s=2.0, width=128, height=96))


@pytest.fixture(scope="session")
def bad_videos(tmp_path_factory, tiny_corpus) -> dict[str, Path]:
    good = Path(tiny_corpus.out_dir) / "videos" / "vid00000.mp4"
    return make_bad_videos(tmp_path_factory.mktemp("bad-videos"), good)


@pytest.fixture(scope="session")
def bad_kinds() -> dict[str, str]:
    """kind of bad file -> error_type the frames stage must report for it."""
    return dict(BAD_KINDS)


@pytest.fixture(scope="session")
def encode_video():
    """``encode_video(path, frames, fps=10, gop=10) -> path``: H.264 MP4 from uint8 RGB frames [h, w, 3]."""
    return factories.encode_video


@pytest.fixture(scope="session")
def manifest_writer():
    """``manifest_writer(path, rows) -> path``: CSV, JSONL or Parquet by suffix."""
    return write_manifest


def write_manifest(path: Path, rows: list[dict]) -> Path:
    """Write rows as CSV, JSONL or Parquet, chosen by ``path``'s suffix."""
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif path.suffix == ".csv":
        columns = list(rows[0])
        path.write_text("\n".join([",".join(columns)] + [",".join(str(r[c]) for c in columns) for r in rows]) + "\n")
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path)
    return path
