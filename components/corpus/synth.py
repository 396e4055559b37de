"""Synthetic H.264 corpus whose attribute truth is visible in the pixels and only noisily in the text.

Each video is a few seconds of rendered shots. Four binary attributes, drawn independently per video
(each positive with probability ``prevalence``), are painted into the frames:

- ``red_dominant``: every shot's background is a red hue (else a non-red hue or a grey).
- ``moving_object``: a small disc travels at least half the frame width (else it stays put).
- ``frequent_cuts``: a hard cut every 0.3-0.6 s (else one continuous shot, or a single cut).
- ``onscreen_text``: a caption band with legible white text for the whole clip (else none).

With ``hard_case_share`` > 0 (0 by default: the corpus is then byte-identical to one made without it), that
share of videos gets a hard case for each attribute, still labelled by the attribute's definition: a positive
``red_dominant`` in dark crimson, a negative with a brief red flash (one continuous shot) or a red logo block
(a small red detail); a ``moving_object``
that travels a shorter way (still clearly moved); ``frequent_cuts`` between shots of near-identical colour;
an ``onscreen_text`` caption drawn straight on the picture, with no dark band. Their draws come from a
separate generator, so they change nothing else about a video.

The title and the description each mention an attribute with probability ``mention_if_true`` when it
holds and ``mention_if_false`` when it does not, so a text-only teacher is weak but not useless.
Same seed, same bytes: every random draw comes from ``numpy.random.default_rng([seed, video_number])``
and the encoder runs single-threaded.

Entry point: ``run(*, out_dir, options: SynthOptions) -> CorpusSummary`` (a frozen pydantic model: counts,
per-attribute prevalence and hard cases, the manifest and truth paths).
"""

from __future__ import annotations

import colorsys
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

ATTRIBUTES = ("red_dominant", "moving_object", "frequent_cuts", "onscreen_text")

# Phrases a title or description may use when it "mentions" an attribute.
MENTIONS = {
    "red_dominant": ("in red", "crimson tones", "red backdrop", "all red"),
    "moving_object": ("in motion", "moving ball", "tracking shot", "on the move"),
    "frequent_cuts": ("fast cuts", "quick edit", "rapid montage", "snappy cuts"),
    "onscreen_text": ("with captions", "subtitled", "text overlay", "lower thirds"),
}
SUBJECTS = (
    "Studio session",
    "Morning routine",
    "Test pattern",
    "Weekend vlog",
    "Product teaser",
    "City walk",
    "Abstract loop",
    "Short clip",
    "Channel intro",
    "Behind the scenes",
    "Daily update",
    "Sample reel",
)
CAPTIONS = ("HELLO WORLD", "BREAKING NEWS", "SUBSCRIBE", "CHAPTER ONE", "LIVE NOW", "SALE 50%", "THE END")
RED_PATCH_COLOUR = (220, 24, 30)
OBJECT_COLOURS = ((245, 245, 245), (20, 20, 20), (240, 220, 40), (40, 220, 230))


class SynthOptions(BaseModel):
    """How big and how long the corpus is; the defaults are the demo's."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    videos: int = Field(200, ge=1, le=100_000)
    seed: int = 0
    duration_s: float = Field(3.0, gt=0.0, le=600.0)
    width: int = Field(320, ge=32, le=3840)
    height: int = Field(240, ge=32, le=2160)
    fps: int = Field(15, ge=1, le=60)
    keyframe_interval_s: float = Field(1.0, gt=0.0)
    prevalence: float = Field(0.4, gt=0.0, lt=1.0)
    mention_if_true: float = Field(0.6, ge=0.0, le=1.0)
    mention_if_false: float = Field(0.15, ge=0.0, le=1.0)
    hard_case_share: float = Field(0.0, ge=0.0, le=1.0)


class CorpusSummary(BaseModel):
    """What ``run`` wrote: ``videos`` videos (``errors`` is always 0: a video the synthesizer cannot write stops
    the run), each attribute's share of positives and of hard cases, and the paths of its tables."""

    model_config = ConfigDict(frozen=True)

    videos: int
    errors: int
    prevalence: dict[str, float]
    hard_cases: dict[str, int]
    out_dir: str
    manifest_uri: str  # out_dir/manifest.parquet
    truth_uri: str  # out_dir/truth.parquet


@dataclass(frozen=True)
class VideoPlan:
    """Everything random about one video, drawn up front so rendering is a pure function of it."""

    video_id: str
    truth: dict[str, int]
    title: str
    description: str
    shot_starts_s: tuple[float, ...]
    shot_colours: tuple[tuple[int, int, int], ...]  # RGB per shot
    shot_stripes: tuple[tuple[int, float, float], ...]  # (period px, angle rad, strength 0..1) per shot
    object_colour: tuple[int, int, int]
    object_radius: int
    object_start: tuple[float, float]  # (x, y) px
    object_end: tuple[float, float]
    caption: str | None
    caption_band: bool = True  # False: the caption's letters sit straight on the picture (a hard case)
    red_patch: tuple[int, int, int, int] | None = None  # (x0, y0, x1, y1) px of a red logo block (a hard case)
    hard_cases: tuple[str, ...] = ()  # which attributes got a hard case


def video_id_of(number: int) -> str:
    return f"vid{number:05d}"


def _hsv_rgb(h_deg: float, s: float, v: float) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb((h_deg % 360.0) / 360.0, s, v)
    return (int(r * 255), int(g * 255), int(b * 255))


def _shot_colour(rng: np.random.Generator, red: bool) -> tuple[int, int, int]:
    if red:
        return _hsv_rgb(rng.uniform(-8.0, 8.0), rng.uniform(0.75, 0.95), rng.uniform(0.65, 0.95))
    if rng.random() < 0.2:  # a grey shot
        return _hsv_rgb(0.0, rng.uniform(0.0, 0.08), rng.uniform(0.3, 0.85))
    return _hsv_rgb(rng.uniform(45.0, 290.0), rng.uniform(0.45, 0.9), rng.uniform(0.45, 0.9))


def _mention_text(rng: np.random.Generator, truth: dict[str, int], options: SynthOptions) -> list[str]:
    phrases = []
    for attribute in ATTRIBUTES:
        p = options.mention_if_true if truth[attribute] else options.mention_if_false
        if rng.random() < p:
            choices = MENTIONS[attribute]
            phrases.append(choices[int(rng.integers(len(choices)))])
    return phrases


def _dark_red(rng: np.random.Generator) -> tuple[int, int, int]:
    return _hsv_rgb(rng.uniform(-8.0, 8.0), rng.uniform(0.75, 0.95), rng.uniform(0.2, 0.34))


def _harden(plan: VideoPlan, options: SynthOptions, number: int) -> VideoPlan:
    """The plan with hard cases for some attributes, drawn from ``default_rng([seed, number, 1])``."""
    from dataclasses import replace

    rng = np.random.default_rng([options.seed, number, 1])
    picked = [a for a in ATTRIBUTES if rng.random() < options.hard_case_share]
    w, h = options.width, options.height
    changes: dict = {}
    done: list[str] = []
    if "red_dominant" in picked:
        if plan.truth["red_dominant"]:  # dark crimson is still a red picture
            changes["shot_colours"] = tuple(_dark_red(rng) for _ in plan.shot_colours)
        elif len(plan.shot_starts_s) == 1:  # a brief red flash (0.3-0.5 s) in one continuous shot: negative
            start = float(rng.uniform(0.2, 0.7) * options.duration_s)
            changes["shot_starts_s"] = (0.0, start, start + float(rng.uniform(0.3, 0.5)))
            changes["shot_colours"] = (plan.shot_colours[0], _shot_colour(rng, True), plan.shot_colours[0])
            changes["shot_stripes"] = (plan.shot_stripes[0],) * 3
        else:  # a red logo block covering 8-15% of the frame is a small red detail, so still negative
            side_w = int(w * np.sqrt(rng.uniform(0.08, 0.15) * h / w))
            side_h = int(side_w * rng.uniform(0.8, 1.25))
            x0 = int(rng.uniform(0.2 * w, 0.8 * w - side_w))
            y0 = int(rng.uniform(0.05 * h, 0.7 * h - side_h))
            changes["red_patch"] = (x0, y0, x0 + side_w, y0 + side_h)
        done.append("red_dominant")
    if "moving_object" in picked and plan.truth["moving_object"]:  # a shorter trip, still a third of the width
        (x0, y0), (x1, y1) = plan.object_start, plan.object_end
        scale = rng.uniform(0.45, 0.6)
        changes["object_end"] = (x0 + (x1 - x0) * scale, y0 + (y1 - y0) * scale)
        done.append("moving_object")
    if "frequent_cuts" in picked and plan.truth["frequent_cuts"] and "shot_colours" not in changes:
        base = np.asarray(plan.shot_colours[0], float)  # cuts between near-identical colours
        changes["shot_colours"] = tuple(
            tuple(int(c) for c in np.clip(base * rng.uniform(0.85, 1.15), 0, 255)) for _ in plan.shot_colours
        )
        done.append("frequent_cuts")
    if "onscreen_text" in picked and plan.truth["onscreen_text"]:
        changes["caption_band"] = False
        done.append("onscreen_text")
    return replace(plan, **changes, hard_cases=tuple(done)) if done else plan


def plan_video(number: int, options: SynthOptions) -> VideoPlan:
    """Draw one video's truth, text and shot layout from ``default_rng([seed, number])`` (hard cases: see module)."""
    rng = np.random.default_rng([options.seed, number])
    truth = {a: int(rng.random() < options.prevalence) for a in ATTRIBUTES}
    duration = options.duration_s

    if truth["frequent_cuts"]:
        starts = [0.0]
        while True:
            nxt = starts[-1] + rng.uniform(0.3, 0.6)
            if nxt > duration - 0.15:
                break
            starts.append(nxt)
    elif rng.random() < 0.5:
        starts = [0.0, rng.uniform(0.3, 0.7) * duration]
    else:
        starts = [0.0]
    colours = tuple(_shot_colour(rng, bool(truth["red_dominant"])) for _ in starts)
    stripes = tuple(
        (int(rng.integers(12, 40)), float(rng.uniform(0, np.pi)), float(rng.uniform(0.15, 0.35))) for _ in starts
    )

    w, h = options.width, options.height
    radius = max(4, int(round(min(w, h) * rng.uniform(0.06, 0.1))))
    y = rng.uniform(radius + 2, 0.62 * h)  # above the caption band
    if truth["moving_object"]:
        span = rng.uniform(0.55, 0.8) * (w - 2 * radius)
        x0 = rng.uniform(radius, w - radius - span)
        x1 = x0 + span
        if rng.random() < 0.5:
            x0, x1 = x1, x0
        y1 = float(np.clip(y + rng.uniform(-0.15, 0.15) * h, radius + 2, 0.62 * h))
        start, end = (x0, y), (x1, y1)
    else:
        x = rng.uniform(radius, w - radius)
        start = end = (x, y)
    object_colour = OBJECT_COLOURS[int(rng.integers(len(OBJECT_COLOURS)))]
    caption = CAPTIONS[int(rng.integers(len(CAPTIONS)))] if truth["onscreen_text"] else None

    subject = SUBJECTS[int(rng.integers(len(SUBJECTS)))]
    title_mentions = _mention_text(rng, truth, options)
    title = subject + (" - " + ", ".join(title_mentions) if title_mentions else "")
    desc_mentions = _mention_text(rng, truth, options)
    description = f"{subject} number {number}." + (
        " Features " + " and ".join(desc_mentions) + "." if desc_mentions else " Uploaded by a test channel."
    )
    plan = VideoPlan(
        video_id=video_id_of(number),
        truth=truth,
        title=title,
        description=description,
        shot_starts_s=tuple(float(s) for s in starts),
        shot_colours=colours,
        shot_stripes=stripes,
        object_colour=object_colour,
        object_radius=radius,
        object_start=(float(start[0]), float(start[1])),
        object_end=(float(end[0]), float(end[1])),
        caption=caption,
    )
    return _harden(plan, options, number) if options.hard_case_share > 0 else plan


def _background(colour: tuple[int, int, int], stripes: tuple[int, float, float], w: int, h: int) -> np.ndarray:
    """One shot's backdrop: uint8 [h, w, 3], the shot colour with a vertical shade and faint stripes."""
    period, angle, strength = stripes
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    phase = (xx * np.cos(angle) + yy * np.sin(angle)) * (2 * np.pi / period)
    shade = (0.85 + 0.25 * (1.0 - yy / h)) * (1.0 - strength * 0.5 * (1.0 + np.sin(phase)))
    image = np.asarray(colour, np.float32)[None, None, :] * shade[..., None]
    return np.clip(image, 0, 255).astype(np.uint8)


def _caption_layer(text: str, w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    """(band mask bool [h, w], text mask bool [h, w]): a dark lower-third band and white letters on it."""
    from PIL import Image, ImageDraw, ImageFont

    band_top = int(h * 0.74)
    band = np.zeros((h, w), bool)
    band[band_top : int(h * 0.94), int(w * 0.04) : int(w * 0.96)] = True
    canvas = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(canvas)
    # Keep the letters inside the centre square, so a square centre crop still shows all of them.
    font_px = max(8, int(h * 0.12))
    while True:
        font = ImageFont.load_default(size=font_px)
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        if right - left <= 0.9 * min(w, h) or font_px <= 8:
            break
        font_px -= 1
    x = (w - (right - left)) // 2 - left
    y = band_top + (int(h * 0.20) - (bottom - top)) // 2 - top
    draw.text((x, y), text, fill=255, font=font)
    return band, np.asarray(canvas) > 127


def frame_count(options: SynthOptions) -> int:
    return max(1, int(round(options.duration_s * options.fps)))


def render_frames(plan: VideoPlan, options: SynthOptions, frame_numbers: Sequence[int] | None = None):
    """Yield the video's frames in order (only ``frame_numbers`` when given), each uint8 RGB [height, width, 3]."""
    w, h = options.width, options.height
    n_frames = frame_count(options)
    backgrounds = [_background(c, s, w, h) for c, s in zip(plan.shot_colours, plan.shot_stripes)]
    caption = _caption_layer(plan.caption, w, h) if plan.caption else None
    yy, xx = np.ogrid[0:h, 0:w]
    starts = np.asarray(plan.shot_starts_s)
    for i in range(n_frames) if frame_numbers is None else frame_numbers:
        t = i / options.fps
        shot = int(np.searchsorted(starts, t, side="right") - 1)
        frame = backgrounds[shot].copy()
        progress = i / max(1, n_frames - 1)
        cx = plan.object_start[0] + (plan.object_end[0] - plan.object_start[0]) * progress
        cy = plan.object_start[1] + (plan.object_end[1] - plan.object_start[1]) * progress
        if plan.red_patch is not None:
            x0, y0, x1, y1 = plan.red_patch
            frame[y0:y1, x0:x1] = RED_PATCH_COLOUR
        frame[(xx - cx) ** 2 + (yy - cy) ** 2 <= plan.object_radius**2] = plan.object_colour
        if caption is not None:
            band, letters = caption
            if plan.caption_band:
                frame[band] = (frame[band] * 0.25).astype(np.uint8)
            frame[letters] = 255
        yield frame


def encode_video(path: Path, frames, *, fps: int, width: int, height: int, keyframe_interval_s: float = 1.0) -> None:
    """Encode uint8 RGB frames [height, width, 3] to an H.264 MP4 at ``path`` (deterministic bytes)."""
    import av

    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps, options={"preset": "ultrafast", "crf": "23", "threads": "1"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.gop_size = max(1, int(round(keyframe_interval_s * fps)))
        for array in frames:
            frame = av.VideoFrame.from_ndarray(array, format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def run(
    *,
    out_dir: str | Path,
    options: SynthOptions = SynthOptions(),
    on_video: Callable[[str], None] | None = None,
    overwrite: bool = False,
) -> CorpusSummary:
    """Write ``out_dir/videos/*.mp4``, ``out_dir/manifest.parquet``, ``out_dir/truth.parquet`` and
    ``out_dir/errors.parquet``.

    The folder is replaced atomically. Returns a summary: counts, per-attribute prevalence, paths.
    ``on_video(video_id)`` is called after each video is written (for progress bars).
    """
    import pyarrow as pa

    from silverset.components.common import schemas, tables

    if options.width % 2 or options.height % 2:
        from silverset.components.common.errors import SilversetInputError

        raise SilversetInputError(
            "--size", f"H.264 (yuv420p) needs even width and height, got {options.width}x{options.height}"
        )
    final = Path(out_dir).resolve()
    manifest_rows, truth_rows = [], []
    hard_cases = dict.fromkeys(ATTRIBUTES, 0)
    with tables.atomic_directory(final, command="corpus synth", overwrite=overwrite) as staging:
        (staging / "videos").mkdir()
        for number in range(options.videos):
            plan = plan_video(number, options)
            name = f"{plan.video_id}.mp4"
            encode_video(
                staging / "videos" / name,
                render_frames(plan, options),
                fps=options.fps,
                width=options.width,
                height=options.height,
                keyframe_interval_s=options.keyframe_interval_s,
            )
            manifest_rows.append(
                {
                    "video_id": plan.video_id,
                    "uri": str(final / "videos" / name),
                    "title": plan.title,
                    "description": plan.description,
                }
            )
            for attribute in plan.hard_cases:
                hard_cases[attribute] += 1
            truth_rows.extend({"video_id": plan.video_id, "attribute": a, "label": plan.truth[a]} for a in ATTRIBUTES)
            if on_video is not None:
                on_video(plan.video_id)
        tables.write_table(pa.Table.from_pylist(manifest_rows, schema=schemas.MANIFEST), staging / "manifest.parquet")
        tables.write_table(pa.Table.from_pylist(truth_rows, schema=schemas.TRUTH), staging / "truth.parquet")
        tables.write_errors(staging, [])
        (staging / "corpus.json").write_text(json.dumps(options.model_dump(), indent=2, sort_keys=True) + "\n")
    prevalence = {a: sum(r["label"] for r in truth_rows if r["attribute"] == a) / options.videos for a in ATTRIBUTES}
    return CorpusSummary(
        videos=options.videos,
        errors=0,
        prevalence=prevalence,
        hard_cases=hard_cases,
        out_dir=str(final),
        manifest_uri=str(final / "manifest.parquet"),
        truth_uri=str(final / "truth.parquet"),
    )
