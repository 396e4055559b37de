"""Keyframe sampling on real H.264 files: nearest keyframe per target, only keyframes decoded, K rows kept,
the target times recorded, and the option refused when it names no mode."""

from __future__ import annotations

import io

import av
import numpy as np
import pytest
from PIL import Image
from pydantic import ValidationError

from silverset.components.common import schemas, tables
from silverset.components.common.errors import SilversetInputError
from silverset.components.frames import extract, pipeline
from silverset.components.frames.component import extract_frames
from silverset.components.frames.extract import FrameOptions, sample_frames, target_times
from tests.helpers.cli import run_silverset


def _grey(jpeg: bytes) -> int:
    return int(round(np.asarray(Image.open(io.BytesIO(jpeg)).convert("L")).mean()))


def _decoded(path) -> list[tuple[float, bool]]:
    """(time s, key_frame) of every frame a full decode gives."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [(float(f.pts * stream.time_base), bool(f.key_frame)) for f in container.decode(stream)]


@pytest.fixture(scope="module")
def ramp_video(tmp_path_factory, encode_video):
    """12 s at 10 fps with a keyframe every 15 frames (1.5 s); frame i is grey level 2 * i."""
    frames = [np.full((48, 64, 3), 2 * i, np.uint8) for i in range(120)]
    return encode_video(tmp_path_factory.mktemp("ramp") / "ramp.mp4", frames, fps=10, gop=15)


def test_keyframe_mode_picks_the_keyframe_nearest_each_target(ramp_video, monkeypatch):
    decoded_calls = []
    real = extract._decode_keyframe
    monkeypatch.setattr(extract, "_decode_keyframe", lambda video, p: (decoded_calls.append(p.pts), real(video, p))[1])
    monkeypatch.setattr(extract, "_decode_from", lambda video: pytest.fail("keyframe mode decoded forward"))
    rows = sample_frames("ramp", str(ramp_video), FrameOptions(frames_per_video=7, size=32, sampling="keyframe"))

    every = _decoded(ramp_video)
    keyframes = [t for t, key in every if key]
    assert len(keyframes) >= 8  # the encoder kept the 1.5 s GOP, so there is a real choice per target
    targets = target_times(every[0][0], 12.0, 7)
    assert [r.frame_index for r in rows] == list(range(7))
    assert [r.target_s for r in rows] == pytest.approx(targets)
    for row, target in zip(rows, targets):
        assert row.timestamp_s in keyframes  # a decoded frame with key_frame set, at the recorded time
        nearest = min(abs(k - target) for k in keyframes)
        assert abs(row.timestamp_s - target) == pytest.approx(nearest)
        # the pixels are that keyframe's: grey level 2 * (frame number) at 10 fps
        assert _grey(row.jpeg) == pytest.approx(2 * round(row.timestamp_s * 10), abs=3)
    # one decode per distinct keyframe chosen, nothing else
    assert len(decoded_calls) == len(set(decoded_calls)) == len({r.timestamp_s for r in rows})


def test_exact_mode_stays_the_default_and_picks_non_key_frames(ramp_video):
    exact = sample_frames("ramp", str(ramp_video), FrameOptions(frames_per_video=7, size=32))
    keyed = dict(_decoded(ramp_video))
    assert FrameOptions().sampling == "exact"
    assert [r.target_s for r in exact] == pytest.approx(target_times(0.0, 12.0, 7))
    assert any(not keyed[r.timestamp_s] for r in exact)  # exact frames are not limited to keyframes
    for row in exact:
        assert abs(row.timestamp_s - row.target_s) <= 0.05 + 1e-9  # within half a frame at 10 fps


def test_targets_sharing_a_keyframe_keep_their_own_rows(tmp_path, encode_video):
    # 3 s at 10 fps with a single keyframe at 0 s: all 4 targets land on it.
    path = encode_video(
        tmp_path / "one-gop.mp4", [np.full((48, 64, 3), 3 * i, np.uint8) for i in range(30)], fps=10, gop=300
    )
    assert sum(key for _, key in _decoded(path)) == 1
    rows = sample_frames("one", str(path), FrameOptions(frames_per_video=4, size=32, sampling="keyframe"))
    assert [r.frame_index for r in rows] == [0, 1, 2, 3]
    assert {r.timestamp_s for r in rows} == {0.0} and len({r.jpeg for r in rows}) == 1
    assert len({r.target_s for r in rows}) == 4


def test_pipeline_keyframe_run_writes_k_rows_and_counts_repeats(tmp_path, tiny_corpus):
    # tiny corpus: 2 s at 15 fps with a 1 s GOP, so 4 targets over 2 keyframes repeat some frames.
    out = tmp_path / "frames"
    summary = pipeline.run(
        manifest_uri=tiny_corpus.manifest_uri,
        out_dir=str(out),
        options=FrameOptions(frames_per_video=4, size=32, sampling="keyframe"),
    )
    frames = tables.read_table(out, schemas.FRAMES).to_pylist()
    assert summary.sampling == "keyframe" and summary.videos_ok == 4
    assert summary.frames == len(frames) == 16
    distinct = {(f["video_id"], f["timestamp_s"]) for f in frames}
    assert summary.repeated_frames == 16 - len(distinct) > 0
    keyframe_times = {t for t, key in _decoded(f"{tiny_corpus.out_dir}/videos/vid00000.mp4") if key}
    assert {f["timestamp_s"] for f in frames if f["video_id"] == "vid00000"} <= keyframe_times


def test_an_unknown_sampling_mode_is_refused_before_anything_runs(tmp_path, tiny_corpus):
    with pytest.raises(SilversetInputError, match="frame_sampling.*'fast' is not one of exact, keyframe"):
        extract_frames.python_func(
            manifest_uri=tiny_corpus.manifest_uri, out_dir=str(tmp_path / "frames"), frame_sampling="fast"
        )
    with pytest.raises(ValidationError, match="sampling"):
        FrameOptions(sampling="fast")  # type: ignore[arg-type]
    assert not (tmp_path / "frames").exists()


def test_cli_bad_sampling_exits_2_with_one_line(tmp_path, tiny_corpus):
    result = run_silverset(
        "frames",
        "--manifest",
        tiny_corpus.manifest_uri,
        "--out",
        str(tmp_path / "frames"),
        "--sampling",
        "keyframes",
        timeout_s=120,
    )
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "--sampling" in lines[0] and "'keyframes' is not one of exact, keyframe" in lines[0]
    assert not (tmp_path / "frames").exists()


def test_keyframe_mode_names_every_bad_input_like_exact_mode(bad_videos, bad_kinds):
    reported = {}
    for kind, path in bad_videos.items():
        with pytest.raises(extract.VideoError) as info:
            sample_frames(kind, str(path), FrameOptions(frames_per_video=2, size=32, sampling="keyframe"))
        reported[kind] = info.value.error_type
    assert reported == bad_kinds


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_keyframe_mode_on_a_garbled_stream_is_a_decode_error_or_k_frames(tiny_corpus, tmp_path, seed):
    data = bytearray(open(f"{tiny_corpus.out_dir}/videos/vid00001.mp4", "rb").read())
    mdat = data.find(b"mdat")
    data[mdat + 8 : len(data) * 3 // 4] = np.random.default_rng(seed).bytes(len(data) * 3 // 4 - mdat - 8)
    path = tmp_path / "garbled.mp4"
    path.write_bytes(bytes(data))
    try:
        rows = sample_frames("g", str(path), FrameOptions(frames_per_video=4, size=32, sampling="keyframe"))
    except extract.VideoError as exc:
        assert exc.error_type == "decode_error"
    else:  # FFmpeg may conceal the damage; then the rows must still be well formed
        assert len(rows) == 4 and all(Image.open(io.BytesIO(r.jpeg)).size == (32, 32) for r in rows)


def _encode_with_b_frames(path, fmt: str):
    """6 s at 10 fps, keyframe every 15 frames, up to 3 B-frames (presentation differs from decode order)."""
    with av.open(str(path), "w", format=fmt) as container:
        stream = container.add_stream("libx264", rate=10, options={"preset": "medium", "bf": "3", "threads": "1"})
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.codec_context.gop_size = 15
        for i in range(60):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 4 * i, np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.mark.parametrize(
    "fmt,suffix,reads_index", [("mp4", "mp4", True), ("matroska", "mkv", False), ("mpegts", "ts", False)]
)
def test_nearest_keyframe_in_every_container_with_b_frames(tmp_path, monkeypatch, fmt, suffix, reads_index):
    # MP4 lists every sample in its index (keyframes found without reading packets); Matroska and MPEG-TS do
    # not, and the packets around each target are read instead. Either way: the nearest keyframe.
    path = _encode_with_b_frames(tmp_path / f"b.{suffix}", fmt)
    around = []
    real = extract._keyframes_around
    monkeypatch.setattr(extract, "_keyframes_around", lambda video, t: (around.append(t), real(video, t))[1])
    rows = sample_frames("b", str(path), FrameOptions(frames_per_video=6, size=32, sampling="keyframe"))
    every = _decoded(path)
    keyframes = [t for t, key in every if key]
    assert len(keyframes) >= 4
    for row in rows:
        assert row.timestamp_s in keyframes
        assert abs(row.timestamp_s - row.target_s) == pytest.approx(min(abs(k - row.target_s) for k in keyframes))
        start = every[0][0]
        assert _grey(row.jpeg) == pytest.approx(4 * round((row.timestamp_s - start) * 10), abs=4)
    assert (not around) == reads_index


@pytest.mark.parametrize("fmt,suffix", [("mp4", "mp4"), ("matroska", "mkv"), ("mpegts", "ts")])
def test_exact_mode_matches_a_full_decode_in_every_container_with_b_frames(tmp_path, fmt, suffix):
    # MPEG-TS seeks by byte position and can land past the target; exact mode then seeks further back
    # (before, it raised decode_error on this file).
    path = _encode_with_b_frames(tmp_path / f"b.{suffix}", fmt)
    options = FrameOptions(frames_per_video=6, size=32)
    sought = sample_frames("b", str(path), options)
    decoded = extract.sample_frames_full_decode("b", str(path), options)
    assert [f.timestamp_s for f in sought] == [f.timestamp_s for f in decoded]
    assert [f.jpeg for f in sought] == [f.jpeg for f in decoded]


@pytest.mark.parametrize("b_frames", [0, 3])
def test_exact_mode_decodes_on_without_seeking_when_targets_share_a_gop(tmp_path, monkeypatch, b_frames):
    # 20 s at 10 fps with a keyframe every 10 s: 8 targets 2.5 s apart, 4 in each GOP. One seek per GOP, each
    # frame decoded at most once, and the frames a full decode picks.
    path = tmp_path / "long-gop.mp4"
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream(
            "libx264",
            rate=10,
            options={
                "preset": "medium" if b_frames else "ultrafast",
                "bf": str(b_frames),
                "threads": "1",
                "x264-params": "scenecut=0",
            },
        )
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.codec_context.gop_size = 100
        for i in range(200):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i, np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    assert sum(key for _, key in _decoded(path)) == 2
    seeks, decoded = [], []
    real_seek, real_decode = av.container.InputContainer.seek, extract._decode_from
    monkeypatch.setattr(
        av.container.InputContainer, "seek", lambda self, *a, **k: (seeks.append(a[0]), real_seek(self, *a, **k))[1]
    )

    def counting_decode(video):
        for frame in real_decode(video):
            decoded.append(frame.pts)
            yield frame

    monkeypatch.setattr(extract, "_decode_from", counting_decode)
    options = FrameOptions(frames_per_video=8, size=32)
    rows = sample_frames("long", str(path), options)
    assert len(seeks) == 2 and len(decoded) == len(set(decoded)) <= 190
    monkeypatch.undo()
    full = extract.sample_frames_full_decode("long", str(path), options)
    assert [r.timestamp_s for r in rows] == [r.timestamp_s for r in full]
    assert [r.jpeg for r in rows] == [r.jpeg for r in full]
