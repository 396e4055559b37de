"""Seek-based frame sampling on real H.264 files: right times, right pixels, every bad input named."""

from __future__ import annotations

import io

import av
import numpy as np
import pytest
from PIL import Image

from silverset.components.frames import extract
from silverset.components.frames.extract import FrameOptions, VideoError, sample_frames, sample_frames_full_decode


def _video(tiny_corpus, number: int = 0) -> str:
    return f"{tiny_corpus.out_dir}/videos/vid{number:05d}.mp4"


def _rgb(jpeg: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"))


def test_k_square_jpegs_at_uniform_times(tiny_corpus):
    frames = sample_frames("vid00000", _video(tiny_corpus), FrameOptions(frames_per_video=4, size=48))
    assert [f.frame_index for f in frames] == [0, 1, 2, 3]
    # 2 s at 15 fps (frames every 0.0667 s); targets are the slice midpoints 0.25, 0.75, 1.25, 1.75 s and
    # each output is the frame nearest its target.
    assert [round(f.timestamp_s, 3) for f in frames] == [0.267, 0.733, 1.267, 1.733]
    for frame in frames:
        assert (frame.width, frame.height) == (48, 48)
        assert _rgb(frame.jpeg).shape == (48, 48, 3)


def test_seeking_picks_exactly_the_frames_a_full_decode_picks(tiny_corpus):
    options = FrameOptions(frames_per_video=7, size=64)
    for number in range(4):
        sought = sample_frames("v", _video(tiny_corpus, number), options)
        decoded = sample_frames_full_decode("v", _video(tiny_corpus, number), options)
        assert [f.timestamp_s for f in sought] == [f.timestamp_s for f in decoded]
        assert [f.jpeg for f in sought] == [f.jpeg for f in decoded]


def test_seeks_once_per_frame_and_decodes_far_less_than_the_stream(tmp_path, monkeypatch, encode_video):
    # 20 s at 10 fps with a 1 s GOP: sampling 4 frames should decode about 4 half-GOPs, not 200 frames.
    ramp = [np.full((48, 64, 3), i % 256, np.uint8) for i in range(200)]
    path = encode_video(tmp_path / "long.mp4", ramp, fps=10, gop=10)
    seeks, decoded = [], []
    real_decode = extract._decode_from

    def counting_decode(video):
        for frame in real_decode(video):
            decoded.append(frame.pts)
            yield frame

    monkeypatch.setattr(extract, "_decode_from", counting_decode)
    real_seek = av.container.InputContainer.seek
    monkeypatch.setattr(
        av.container.InputContainer, "seek", lambda self, *a, **k: (seeks.append(a[0]), real_seek(self, *a, **k))[1]
    )
    frames = sample_frames("long", str(path), FrameOptions(frames_per_video=4, size=32))
    assert len(seeks) == 4
    assert len(decoded) <= 4 * 10
    assert [round(f.timestamp_s, 1) for f in frames] == [2.5, 7.5, 12.5, 17.5]
    # the ramp's grey level tells which source frame each output came from
    assert [int(round(_rgb(f.jpeg).mean())) for f in frames] == pytest.approx([25, 75, 125, 175], abs=3)


def test_short_side_resize_and_centre_crop(tmp_path, encode_video):
    # 160x96: a green centre square (x 32..128) with red side bands; the square crop must be all green.
    image = np.zeros((96, 160, 3), np.uint8)
    image[:, :, 0] = 220
    image[:, 32:128] = (30, 200, 40)
    path = encode_video(tmp_path / "wide.mp4", [image] * 10)
    frame = sample_frames("wide", str(path), FrameOptions(frames_per_video=1, size=48))[0]
    rgb = _rgb(frame.jpeg).astype(int)
    assert rgb.shape == (48, 48, 3)
    edges = np.concatenate([rgb[:, :3], rgb[:, -3:]], axis=1)
    assert np.all(edges[..., 1] > 150) and np.all(edges[..., 0] < 90)


def test_a_one_frame_video_gives_k_copies_of_its_frame(tmp_path, encode_video):
    path = encode_video(tmp_path / "still.mp4", [np.full((48, 64, 3), 128, np.uint8)])
    frames = sample_frames("still", str(path), FrameOptions(frames_per_video=3, size=32))
    assert len(frames) == 3 and len({f.jpeg for f in frames}) == 1


def test_every_kind_of_bad_input_raises_a_named_error(bad_videos, bad_kinds):
    reported = {}
    for kind, path in bad_videos.items():
        with pytest.raises(VideoError) as info:
            sample_frames(kind, str(path), FrameOptions(frames_per_video=2, size=32))
        assert str(path) in info.value.message, kind
        reported[kind] = info.value.error_type
    assert reported == bad_kinds


def test_resolution_over_the_limit_is_refused_before_decoding(tiny_corpus):
    with pytest.raises(VideoError) as info:
        sample_frames("big", _video(tiny_corpus), FrameOptions(max_pixels=128 * 96 - 1))
    assert info.value.error_type == "resolution_too_large"
    assert "128x96" in info.value.message
    assert FrameOptions().max_pixels == 7680 * 4320  # 8K UHD is the largest accepted by default


def test_garbled_stream_is_a_decode_error_not_a_crash(tiny_corpus, tmp_path):
    data = bytearray(open(_video(tiny_corpus), "rb").read())
    mdat = data.find(b"mdat")
    data[mdat + 8 : mdat + 8 + (len(data) - mdat) // 2] = np.random.default_rng(1).bytes((len(data) - mdat) // 2)
    path = tmp_path / "garbled.mp4"
    path.write_bytes(bytes(data))
    try:
        frames = sample_frames("g", str(path), FrameOptions(frames_per_video=4, size=32))
    except VideoError as exc:
        assert exc.error_type == "decode_error"
    else:  # FFmpeg may conceal the damage; then the frames must still be well formed
        assert len(frames) == 4


def test_any_beam_filesystem_uri_is_read_through_beams_filesystems(tiny_corpus, bad_videos):
    """A non-local URI goes through apache_beam's FileSystems (here a scheme registered by the test)."""
    from apache_beam.io.filesystem import CompressionTypes
    from apache_beam.io.localfilesystem import LocalFileSystem

    prefix = "silversettest://"

    class PrefixedLocalFileSystem(LocalFileSystem):
        @classmethod
        def scheme(cls):
            return "silversettest"

        def match(self, patterns, limits=None):
            return super().match([p.removeprefix(prefix) for p in patterns], limits)

        def open(self, path, mime_type="application/octet-stream", compression_type=CompressionTypes.AUTO):
            return super().open(path.removeprefix(prefix), mime_type, compression_type)

    options = FrameOptions(frames_per_video=3, size=32)
    remote = sample_frames("v", prefix + _video(tiny_corpus), options)
    local = sample_frames("v", _video(tiny_corpus), options)
    assert [f.jpeg for f in remote] == [f.jpeg for f in local]
    for kind, error_type in (
        ("missing", "missing_file"),
        ("zero_byte", "empty_file"),
        ("truncated", "unreadable_video"),
    ):
        with pytest.raises(VideoError) as info:
            sample_frames(kind, prefix + str(bad_videos[kind]), options)
        assert info.value.error_type == error_type
