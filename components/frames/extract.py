"""Sample K frames from one video with PyAV, in one of two modes (``FrameOptions.sampling``):

- ``exact`` (default): seek to the keyframe at or before each target time and decode forward to the first
  frame at or after it; the frames a full decode would pick, decoding about K half-GOPs.
- ``keyframe``: decode only the keyframe nearest each target (seek, read packets up to the next keyframe
  without decoding them, decode one keyframe with non-key frames skipped in the decoder). Faster; a frame
  can be up to half a GOP away from its target, and targets that share a keyframe share its row's time.

Either way the table gets K rows per video, ``frame_index`` i for the i-th target, ``timestamp_s`` the
chosen frame's own presentation time. Plain Python, no Beam and no kfp: the Beam pipeline
(``frames.pipeline``) and the benchmark call ``sample_frames``; ``sample_frames_full_decode`` is the
baseline that decodes the whole stream.
"""

from __future__ import annotations

import bisect
import io
import os
from dataclasses import dataclass
from fractions import Fraction
from typing import IO, Iterator, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

STAGE = "frames"
# FFmpeg "plays" text files as ANSI art (tty demuxer, ansi/bintext decoders); those are not videos.
TEXT_AS_VIDEO_FORMATS = frozenset({"tty", "ansi", "bin", "bintext", "xbin", "idf", "adf"})
SAMPLING_MODES = ("exact", "keyframe")
Sampling = Literal["exact", "keyframe"]


class FrameOptions(BaseModel):
    """How many frames per video, at what size, and which inputs are refused outright."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    frames_per_video: int = Field(8, ge=1, le=256)
    size: int = Field(224, ge=16, le=2048)  # output frames are size x size px
    jpeg_quality: int = Field(90, ge=10, le=100)
    # 8K UHD (7680x4320) is the largest frame we agree to decode; bigger is refused, not attempted.
    max_pixels: int = Field(7680 * 4320, ge=1)
    # Decoder threads per video; Beam parallelism sits above this, so keep it small.
    decoder_threads: int = Field(1, ge=0, le=64)
    # exact: the frame at each target time; keyframe: the keyframe nearest it (see the module docstring).
    sampling: Sampling = "exact"


class VideoError(Exception):
    """A per-video problem: it becomes one row of errors.parquet and the run goes on."""

    def __init__(self, error_type: str, message: str):
        self.error_type = error_type
        self.message = message
        super().__init__(f"{error_type}: {message}")


@dataclass(frozen=True)
class SampledFrame:
    """One output row of the frames table (jpeg holds a size x size RGB JPEG)."""

    video_id: str
    frame_index: int
    timestamp_s: float
    width: int
    height: int
    jpeg: bytes
    target_s: float | None = None  # the target time this row was sampled for (not a column of the table)

    def as_row(self) -> dict:
        return {
            "video_id": self.video_id,
            "frame_index": self.frame_index,
            "timestamp_s": self.timestamp_s,
            "width": self.width,
            "height": self.height,
            "jpeg": self.jpeg,
        }


def target_times(start_s: float, duration_s: float, k: int) -> list[float]:
    """K timestamps (s) uniform over [start, start + duration): the midpoints of K equal slices."""
    return [start_s + (i + 0.5) * duration_s / k for i in range(k)]


def _is_local(uri: str) -> bool:
    return "://" not in uri or uri.startswith("file://")


def _open_source(uri: str) -> str | IO[bytes]:
    """A local path for PyAV, or a seekable file object from Beam's filesystems for any other URI."""
    if _is_local(uri):
        path = uri[len("file://") :] if uri.startswith("file://") else uri
        try:
            size = os.stat(path).st_size
        except FileNotFoundError:
            raise VideoError("missing_file", f"no file at '{uri}'") from None
        except OSError as exc:
            raise VideoError("unreadable_file", f"cannot stat '{uri}': {exc}") from None
        if size == 0:
            raise VideoError("empty_file", f"'{uri}' is a zero-byte file")
        return path
    from apache_beam.io.filesystems import FileSystems

    try:
        matches = FileSystems.match([uri])[0].metadata_list
    except Exception as exc:  # noqa: BLE001 - every filesystem raises its own type
        raise VideoError("unreadable_file", f"cannot list '{uri}': {exc}") from None
    if not matches:
        raise VideoError("missing_file", f"no file at '{uri}'")
    if matches[0].size_in_bytes == 0:
        raise VideoError("empty_file", f"'{uri}' is a zero-byte file")
    return FileSystems.open(uri, compression_type="uncompressed")


def _to_jpeg(frame, size: int, quality: int) -> bytes:
    """Resize so the short side is ``size`` px, centre-crop to size x size, encode JPEG."""
    from PIL import Image

    w, h = frame.width, frame.height
    scale = size / min(w, h)
    rw, rh = max(size, round(w * scale)), max(size, round(h * scale))
    rgb = frame.reformat(width=rw, height=rh, format="rgb24", interpolation="AREA").to_ndarray()
    top, left = (rh - size) // 2, (rw - size) // 2
    crop = np.ascontiguousarray(rgb[top : top + size, left : left + size])
    buf = io.BytesIO()
    Image.fromarray(crop).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


class _OpenVideo:
    """An opened container plus the facts about its first video stream that sampling needs."""

    def __init__(self, uri: str, options: FrameOptions):
        import av

        self._source = _open_source(uri)
        try:
            self.container = av.open(self._source, mode="r", metadata_errors="ignore")
        except av.error.FFmpegError as exc:
            self._close_source()
            raise VideoError("unreadable_video", f"cannot open '{uri}' as a video container: {exc}") from None
        try:
            self._inspect(uri, options)
        except BaseException:
            self.close()
            raise

    def _inspect(self, uri: str, options: FrameOptions) -> None:
        if not self.container.streams and not self.container.duration:
            # e.g. an MP4 whose only track has no samples: FFmpeg drops the empty track.
            raise VideoError("zero_duration", f"'{uri}' holds no samples at all (zero duration)")
        if not self.container.streams.video:
            kinds = sorted({s.type for s in self.container.streams}) or ["none"]
            raise VideoError("no_video_stream", f"'{uri}' has no video stream (streams: {', '.join(kinds)})")
        stream = self.container.streams.video[0]
        format_name = self.container.format.name
        if format_name in TEXT_AS_VIDEO_FORMATS or stream.codec_context.name in TEXT_AS_VIDEO_FORMATS:
            raise VideoError("not_a_video", f"'{uri}' is a text file ({format_name}), not a video")
        if format_name == "image2" or format_name.endswith("_pipe"):
            raise VideoError("not_a_video", f"'{uri}' is a still image ({format_name}), not a video")
        width, height = stream.codec_context.width, stream.codec_context.height
        if not width or not height:
            raise VideoError("unreadable_video", f"'{uri}' video stream has no frame size")
        if width * height > options.max_pixels:
            raise VideoError(
                "resolution_too_large",
                f"'{uri}' is {width}x{height} ({width * height} px), above the limit of {options.max_pixels} px",
            )
        time_base: Fraction = stream.time_base
        if stream.duration:
            duration = float(stream.duration * time_base)
        elif self.container.duration:
            duration = self.container.duration / 1_000_000
        else:
            duration = 0.0
        if duration <= 0:
            raise VideoError("zero_duration", f"'{uri}' has a video stream of zero duration")
        stream.codec_context.thread_count = options.decoder_threads
        if options.decoder_threads != 1:
            stream.thread_type = "AUTO"
        self.stream = stream
        self.time_base = time_base
        self.start_s = float(stream.start_time * time_base) if stream.start_time is not None else 0.0
        self.duration_s = duration

    def _close_source(self) -> None:
        if not isinstance(self._source, str):  # a file object from Beam's filesystems is ours to close
            self._source.close()

    def close(self) -> None:
        self.container.close()
        self._close_source()


def _decode_from(video: _OpenVideo) -> Iterator:
    import av

    try:
        for frame in video.container.decode(video.stream):
            if frame.pts is not None:
                yield frame
    except av.error.EOFError:
        return


def _frame_time(video: _OpenVideo, frame) -> float:
    return float(frame.pts * video.time_base)


def sample_frames(video_id: str, uri: str, options: FrameOptions = FrameOptions()) -> list[SampledFrame]:
    """K frames uniformly over the video, chosen as ``options.sampling`` says (see the module docstring).

    Raises VideoError (missing/empty/unreadable file, no video stream, zero duration, resolution over
    ``max_pixels``, decode failure) for anything that must become an error row.
    """
    import av

    video = _OpenVideo(uri, options)
    try:
        targets = target_times(video.start_s, video.duration_s, options.frames_per_video)
        sample = _sample_keyframes if options.sampling == "keyframe" else _sample_exact
        return sample(video, video_id, targets, options)
    except av.error.FFmpegError as exc:
        raise VideoError("decode_error", f"'{uri}' failed to decode: {exc}") from None
    finally:
        video.close()


def _seek_back(video: _OpenVideo, target: float) -> None:
    """Put the demuxer on the keyframe at or before ``target`` s (the decoder is flushed by the seek).

    Containers with a sample index (MP4, Matroska) land there exactly; MPEG-TS seeks by byte position and
    may land past it, which the callers check. At or before the stream's start, go to the file's start
    (a seek to the first timestamp can land past it too)."""
    if target > video.start_s:
        video.container.seek(int(target / video.time_base), stream=video.stream, backward=True, any_frame=False)
    else:
        video.container.seek(0)


def _sample_exact(video: _OpenVideo, video_id: str, targets: list[float], options: FrameOptions) -> list[SampledFrame]:
    """For each target, the first frame at or after it (within half a frame): seek to the keyframe at or
    before it and decode forward, or, when no keyframe lies between the frame last decoded and the target
    (targets closer together than a GOP, known from an MP4/MOV sample index), keep decoding forward
    without a seek. Decodes about K half-GOPs at most, never the stream; picks what a full decode picks."""
    half_frame = 0.5 / float(video.stream.average_rate or 30)
    key_dts = _keyframe_decode_times(video)
    frames, last = None, None  # the live decode and the frame last taken from it
    jpegs: dict[int, bytes] = {}
    rows: list[SampledFrame] = []
    for index, target in enumerate(targets):
        if last is not None and _frame_time(video, last) >= target - half_frame:
            chosen = last  # the previous target's frame is also the first at or after this one
        elif last is not None and _no_keyframe_between(key_dts, last.dts, target / video.time_base):
            chosen = last
            for frame in frames:
                chosen = frame
                if _frame_time(video, frame) >= target - half_frame:
                    break
        else:
            frames, chosen = _seek_and_decode_to(video, target, half_frame)
        if chosen is None:
            raise VideoError("decode_error", f"no frame could be decoded near {target:.3f} s")
        last = chosen
        if chosen.pts not in jpegs:
            jpegs[chosen.pts] = _to_jpeg(chosen, options.size, options.jpeg_quality)
        rows.append(
            SampledFrame(
                video_id, index, _frame_time(video, chosen), options.size, options.size, jpegs[chosen.pts], target
            )
        )
    return rows


def _seek_and_decode_to(video: _OpenVideo, target: float, half_frame: float) -> tuple:
    """(live decode, first frame at or after ``target`` s, or the last frame before the stream ends).

    Where the seek lands past the target (MPEG-TS seeks by byte position), seeks again from 1, 2, 4... s
    further back."""
    back = 0.0
    while True:
        _seek_back(video, target - back)
        frames = _decode_from(video)
        first = chosen = None
        for frame in frames:
            if first is None:
                first = frame
            chosen = frame
            if _frame_time(video, frame) >= target - half_frame:
                break
        landed_past = first is None or _frame_time(video, first) > target + half_frame
        if not landed_past or target - back <= video.start_s:
            return frames, chosen
        back = max(1.0, 2 * back)


def _keyframe_decode_times(video: _OpenVideo) -> list[int] | None:
    """Decode times (stream time base, ascending) of every keyframe from the container's full sample
    index (MP4/MOV list every sample), or None: Matroska and MPEG-TS index keyframes lazily or not at all."""
    entries = video.stream.index_entries
    if len(entries) < 2 or all(e.is_keyframe for e in entries):
        return None
    return sorted(e.timestamp for e in entries if e.is_keyframe)


def _no_keyframe_between(key_dts: list[int] | None, after_dts: int | None, target_ticks: float) -> bool:
    """Whether the index shows no keyframe decoded after ``after_dts`` and at or before the target time
    (a frame's decode time is never after its presentation time, so this errs towards a seek)."""
    if key_dts is None or after_dts is None:
        return False
    i = bisect.bisect_right(key_dts, after_dts)
    return i == len(key_dts) or key_dts[i] > target_ticks


def _keyframes_around(video: _OpenVideo, target: float) -> list:
    """The last keyframe packet at or before ``target`` and the first one after it, read without decoding.

    Stops reading as soon as a packet lies further past the target than the earlier keyframe lies before
    it: no later keyframe can then be nearer. Where a seek lands past the target or off a keyframe
    (MPEG-TS seeks by byte position), seeks again from further back: 1, 2, 4... s before the target, down
    to the stream's start. Returns 0, 1 or 2 packets, earliest first."""
    back = 0.0
    while True:
        before, after = _read_keyframes_around(video, target, target - back)
        if before is not None or target - back <= video.start_s:
            return [p for p in (before, after) if p is not None]
        back = max(1.0, 2 * back)


def _read_keyframes_around(video: _OpenVideo, target: float, seek_to: float) -> tuple:
    _seek_back(video, seek_to)
    before = after = None
    for packet in video.container.demux(video.stream):
        if packet.pts is None:
            continue  # the demuxer's closing empty packet, or a packet without a time
        time = float(packet.pts * video.time_base)
        if packet.is_keyframe:
            if time <= target:
                before = packet
                continue
            after = packet
            break
        if before is not None and time - target > target - float(before.pts * video.time_base):
            break
    return before, after


def _decode_keyframe(video: _OpenVideo, packet):
    """Decode one keyframe packet alone (the decoder skips non-key frames); the frame, or None."""
    context = video.stream.codec_context
    frames = context.decode(packet) or context.decode(None)  # drain: a lone packet may sit in the decoder
    return next((f for f in frames if f.pts is not None), None)


def _first_packet(video: _OpenVideo, pts: int):
    """The first timed packet after seeking back from ``pts`` (stream time base) to a keyframe."""
    video.container.seek(pts, stream=video.stream, backward=True, any_frame=False)
    return next((p for p in video.container.demux(video.stream) if p.pts is not None), None)


def _indexed_keyframes(video: _OpenVideo) -> list[int] | None:
    """Every keyframe's presentation time (stream time base) from the container's full sample index, or
    None where there is none to trust (Matroska and MPEG-TS index keyframes lazily or not at all).

    MP4/MOV index every sample by its decode time; a keyframe shows later by the stream's reorder delay,
    read once from the first keyframe's packet."""
    keys = _keyframe_decode_times(video)
    first = _first_packet(video, keys[0]) if keys else None
    if first is None or not first.is_keyframe or first.dts != keys[0]:
        return None
    return [k + first.pts - first.dts for k in keys]


def _nearest(keyframes: list[int], target: float, time_base: Fraction) -> int:
    """The keyframe time (stream time base) nearest ``target`` s; the earlier one on a tie."""
    return min(keyframes, key=lambda k: abs(float(k * time_base) - target))


def _nearest_keyframe_packet(video: _OpenVideo, target: float, indexed_pts: int | None):
    """The keyframe packet nearest ``target`` s: read with one seek where the index named it
    (``indexed_pts``) and the packet found there is that keyframe; otherwise found by reading the packets
    around the target."""
    if indexed_pts is not None:
        packet = _first_packet(video, indexed_pts)
        if packet is not None and packet.is_keyframe and packet.pts == indexed_pts:
            return packet
    candidates = _keyframes_around(video, target)
    return min(candidates, key=lambda p: abs(float(p.pts * video.time_base) - target)) if candidates else None


def _sample_keyframes(
    video: _OpenVideo, video_id: str, targets: list[float], options: FrameOptions
) -> list[SampledFrame]:
    """For each target, the keyframe nearest it (the earlier one on a tie). Targets that pick the same
    keyframe get one seek, one decode and one JPEG, and rows with the same ``timestamp_s`` and JPEG."""
    video.stream.codec_context.skip_frame = "NONKEY"
    keyframes = _indexed_keyframes(video)
    by_pts: dict[int, tuple[float, bytes]] = {}
    rows: list[SampledFrame] = []
    for index, target in enumerate(targets):
        key = _nearest(keyframes, target, video.time_base) if keyframes else None
        if key not in by_pts:
            packet = _nearest_keyframe_packet(video, target, key)
            if packet is None:
                raise VideoError("decode_error", f"no keyframe found near {target:.3f} s")
            key = packet.pts
        if key not in by_pts:
            frame = _decode_keyframe(video, packet)
            if frame is None:
                raise VideoError("decode_error", f"the keyframe at {float(key * video.time_base):.3f} s did not decode")
            by_pts[key] = (_frame_time(video, frame), _to_jpeg(frame, options.size, options.jpeg_quality))
        time, jpeg = by_pts[key]
        rows.append(SampledFrame(video_id, index, time, options.size, options.size, jpeg, target))
    return rows


def sample_frames_full_decode(video_id: str, uri: str, options: FrameOptions = FrameOptions()) -> list[SampledFrame]:
    """Baseline for the benchmark: decode every frame in order and keep the same K targets."""
    import av

    video = _OpenVideo(uri, options)
    try:
        targets = target_times(video.start_s, video.duration_s, options.frames_per_video)
        half_frame = 0.5 / float(video.stream.average_rate or 30)
        rows: list[SampledFrame] = []
        last = None
        for frame in _decode_from(video):
            last = frame
            while len(rows) < len(targets) and _frame_time(video, frame) >= targets[len(rows)] - half_frame:
                rows.append(
                    SampledFrame(
                        video_id,
                        len(rows),
                        _frame_time(video, frame),
                        options.size,
                        options.size,
                        _to_jpeg(frame, options.size, options.jpeg_quality),
                    )
                )
            if len(rows) == len(targets):
                break
        while last is not None and len(rows) < len(targets):
            rows.append(
                SampledFrame(
                    video_id,
                    len(rows),
                    _frame_time(video, last),
                    options.size,
                    options.size,
                    _to_jpeg(last, options.size, options.jpeg_quality),
                )
            )
        if not rows:
            raise VideoError("decode_error", f"no frame could be decoded from '{uri}'")
        return rows
    except av.error.FFmpegError as exc:
        raise VideoError("decode_error", f"'{uri}' failed to decode: {exc}") from None
    finally:
        video.close()
