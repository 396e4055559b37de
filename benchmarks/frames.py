"""Benchmark the frames stage: exact and keyframe sampling vs full decode and a bare PyAV keyframe loop,
Beam throughput, peak RSS vs clip length.

Writes ``<out>/frames.json``. Not a test: numbers depend on the machine and its load (recorded too).

1. A generated 60 s 1280x720 H.264 clip at 30 fps with a 2 s GOP; K=16 frames at 224 px. Five samplers,
   alternated (the order rotates each repeat), median of ``--repeats`` runs each, process CPU seconds
   (all decode single-threaded; wall time on a shared 2-core machine mostly measures the neighbours) with
   wall medians beside them:
   - ``full_decode``: ``sample_frames_full_decode`` (decode from the start, stop after the last target);
   - ``exact``: ``sample_frames`` with sampling=exact (seek + decode forward); goal >= 3x full decode;
   - ``keyframe``: ``sample_frames`` with sampling=keyframe; goal within 1.1x of the bare loop;
   - ``bare_seek_keyframe``: the shortest PyAV loop a user would write: skip_frame=NONKEY, per target
     ``seek(backward, any_frame=False)`` and take the first decoded frame (the keyframe at or before the
     target, not the nearest), same resize + JPEG;
   - ``bare_all_keyframes``: skip_frame=NONKEY over the whole stream (every keyframe decoded once), keep the
     keyframe nearest each target, same resize + JPEG: it must give the keyframe mode's exact JPEGs.
   Also the frames each sampler decodes (counted from the clip's keyframe layout), which bounds the speedup.
   The same clip with a 10 s GOP (targets 3.75 s apart, so about two share each GOP): ``exact`` (decodes on
   within a GOP) against ``exact_seek_every_target`` (the previous exact mode: one seek per target, each
   decoding from its GOP's keyframe) and ``full_decode``.
2. Videos/s through the Beam pipeline (DirectRunner) on the synthetic demo corpus (3 s, 320x240),
   with 1 in-memory worker (the default) in both modes and with 2 threads (``direct_num_workers=2``).
3. Peak RSS of one process sampling K=16 frames from a 10 s and a 120 s clip (1280x720): it should be
   flat, not grow with the clip's length.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RSS_CHILD = r"""
import resource, sys
from silverset.components.frames.extract import FrameOptions, sample_frames
sample_frames("warm", sys.argv[2], FrameOptions(frames_per_video=2, size=224))  # imports + codec init
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
frames = sample_frames("clip", sys.argv[1], FrameOptions(frames_per_video=16, size=224))
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(len(frames), before, after)
"""


def make_clip(
    path: Path, *, seconds: float, width: int = 1280, height: int = 720, fps: int = 30, gop_s: float = 2.0
) -> Path:
    """H.264 clip of a drifting textured picture with a moving block (uint8 RGB frames [height, width, 3])."""
    import av

    rng = np.random.default_rng(0)
    texture = rng.integers(0, 255, (height // 8, width // 8, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps, options={"preset": "ultrafast", "crf": "26", "threads": "2"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.gop_size = int(gop_s * fps)
        for i in range(int(seconds * fps)):
            frame = np.roll(texture, shift=(i * 3) % width, axis=1)
            x = (i * 7) % (width - 160)
            frame[200:360, x : x + 160] = (i * 5 % 255, 40, 200)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _timed(fn) -> tuple[list, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def bare_seek_keyframe(path: str, k: int, size: int, quality: int = 90) -> list[bytes]:
    """Per target: seek back to a keyframe, decode one frame with non-key frames skipped, resize + JPEG."""
    import av

    from silverset.components.frames.extract import _to_jpeg, target_times

    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.codec_context.skip_frame = "NONKEY"
        start = float(stream.start_time * stream.time_base)
        duration = float(stream.duration * stream.time_base)
        out = []
        for target in target_times(start, duration, k):
            container.seek(int(target / stream.time_base), stream=stream, backward=True, any_frame=False)
            frame = next(container.decode(stream))
            out.append(_to_jpeg(frame, size, quality))
        return out


def bare_all_keyframes(path: str, k: int, size: int, quality: int = 90) -> list[bytes]:
    """Decode the whole stream with non-key frames skipped; the keyframe nearest each target, resize + JPEG."""
    import av

    from silverset.components.frames.extract import _to_jpeg, target_times

    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.codec_context.skip_frame = "NONKEY"
        start = float(stream.start_time * stream.time_base)
        duration = float(stream.duration * stream.time_base)
        keyframes = [(float(f.pts * stream.time_base), f) for f in container.decode(stream)]
        jpegs: dict[float, bytes] = {}
        out = []
        for target in target_times(start, duration, k):
            time_s, frame = min(keyframes, key=lambda kf: abs(kf[0] - target))
            if time_s not in jpegs:
                jpegs[time_s] = _to_jpeg(frame, size, quality)
            out.append(jpegs[time_s])
        return out


def decoded_frame_counts(path: Path, k: int) -> dict:
    """How many frames each sampler has to decode on this clip, from its frame and keyframe layout."""
    import av

    from silverset.components.frames.extract import target_times

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [(float(f.pts * stream.time_base), bool(f.key_frame)) for f in container.decode(stream)]
        half = 0.5 / float(stream.average_rate)
        duration = float(stream.duration * stream.time_base)
    times = [t for t, _ in frames]
    targets = target_times(frames[0][0], duration, k)
    per_seek = on = 0
    previous = None  # (keyframe, chosen) of the previous target
    for target in targets:
        chosen = next((i for i, t in enumerate(times) if t >= target - half), len(times) - 1)
        key = max(i for i in range(chosen + 1) if frames[i][1])
        per_seek += chosen - key + 1
        on += chosen - previous[1] if previous and previous[0] == key else chosen - key + 1
        previous = (key, chosen)
    full = next((i for i, t in enumerate(times) if t >= targets[-1] - half), len(times) - 1) + 1
    keyframes = sum(key for _, key in frames)
    return {
        "full_decode": full,
        "exact": on,
        "exact_seek_every_target": per_seek,
        "keyframe_at_most": k,
        "bare_all_keyframes": keyframes,
        "frames_in_clip": len(frames),
        "keyframes_in_clip": keyframes,
        "exact_speedup_bound_from_frames": round(full / on, 2),
    }


def sampling_vs_references(clip: Path, repeats: int) -> dict:
    """The five samplers alternated ``repeats`` times (order rotated each time); CPU and wall medians."""
    from silverset.components.frames.extract import FrameOptions, sample_frames, sample_frames_full_decode

    k, size, path = 16, 224, str(clip)
    samplers = {
        "full_decode": lambda: [
            f.jpeg for f in sample_frames_full_decode("clip", path, FrameOptions(frames_per_video=k, size=size))
        ],
        "exact": lambda: sample_frames("clip", path, FrameOptions(frames_per_video=k, size=size)),
        "keyframe": lambda: sample_frames(
            "clip", path, FrameOptions(frames_per_video=k, size=size, sampling="keyframe")
        ),
        "bare_seek_keyframe": lambda: bare_seek_keyframe(path, k, size),
        "bare_all_keyframes": lambda: bare_all_keyframes(path, k, size),
    }
    names = list(samplers)
    for name in names:  # warm-up: imports, codec init, page cache
        samplers[name]()
    times = {name: {"wall": [], "cpu": []} for name in names}
    outputs: dict = {}
    for repeat in range(repeats):
        for name in names[repeat % len(names) :] + names[: repeat % len(names)]:
            outputs[name], wall, cpu = _timed(samplers[name])
            times[name]["wall"].append(wall)
            times[name]["cpu"].append(cpu)
    med = {n: {m: statistics.median(v) for m, v in t.items()} for n, t in times.items()}

    def ratio(a: str, b: str, measure: str) -> float:
        return round(med[a][measure] / med[b][measure], 2)

    exact_rows, key_rows = outputs["exact"], outputs["keyframe"]
    best_bare = min(("bare_seek_keyframe", "bare_all_keyframes"), key=lambda n: med[n]["cpu"])
    return {
        "clip": "60 s, 1280x720, 30 fps, H.264, 2 s GOP",
        "k": k,
        "size": size,
        "repeats": repeats,
        "cpu_s_median": {n: round(m["cpu"], 3) for n, m in med.items()},
        "wall_s_median": {n: round(m["wall"], 3) for n, m in med.items()},
        "all_runs_s": {n: {m: [round(x, 3) for x in v] for m, v in t.items()} for n, t in times.items()},
        "decoded_frames": decoded_frame_counts(clip, k),
        "exact_speedup_over_full_decode": {
            "cpu": ratio("full_decode", "exact", "cpu"),
            "wall": ratio("full_decode", "exact", "wall"),
            "goal": 3.0,
            "meets_goal": ratio("full_decode", "exact", "cpu") >= 3.0,
        },
        "keyframe_speedup_over_full_decode": {
            "cpu": ratio("full_decode", "keyframe", "cpu"),
            "wall": ratio("full_decode", "keyframe", "wall"),
        },
        "keyframe_over_bare": {
            "fastest_bare_loop": best_bare,
            "cpu": ratio("keyframe", best_bare, "cpu"),
            "wall": ratio("keyframe", best_bare, "wall"),
            "cpu_vs_bare_seek_keyframe": ratio("keyframe", "bare_seek_keyframe", "cpu"),
            "cpu_vs_bare_all_keyframes": ratio("keyframe", "bare_all_keyframes", "cpu"),
            "goal": 1.1,
            "meets_goal": ratio("keyframe", best_bare, "cpu") <= 1.1,
        },
        "exact_frames_identical_to_full_decode": [f.jpeg for f in exact_rows] == outputs["full_decode"],
        "keyframe_frames_identical_to_bare_all_keyframes": [f.jpeg for f in key_rows] == outputs["bare_all_keyframes"],
        "distinct_frames": {
            "exact": len({f.timestamp_s for f in exact_rows}),
            "keyframe": len({f.timestamp_s for f in key_rows}),
        },
        "mean_abs_offset_from_target_s": {
            "exact": round(statistics.mean(abs(f.timestamp_s - f.target_s) for f in exact_rows), 4),
            "keyframe": round(statistics.mean(abs(f.timestamp_s - f.target_s) for f in key_rows), 4),
        },
    }


def exact_seek_every_target(path: str, k: int, size: int) -> list[bytes]:
    """The exact mode before decoding on within a GOP: seek per target, decode from its keyframe."""
    from silverset.components.frames import extract

    video = extract._OpenVideo(path, extract.FrameOptions())
    try:
        half = 0.5 / float(video.stream.average_rate)
        out = []
        for target in extract.target_times(video.start_s, video.duration_s, k):
            _, frame = extract._seek_and_decode_to(video, target, half)
            out.append(extract._to_jpeg(frame, size, 90))
        return out
    finally:
        video.close()


def long_gop_exact(clip: Path, repeats: int) -> dict:
    """exact vs the seek-per-target exact vs full decode on a 10 s GOP clip, alternated, medians."""
    from silverset.components.frames.extract import FrameOptions, sample_frames, sample_frames_full_decode

    k, size, path = 16, 224, str(clip)
    samplers = {
        "full_decode": lambda: [
            f.jpeg for f in sample_frames_full_decode("c", path, FrameOptions(frames_per_video=k, size=size))
        ],
        "exact": lambda: [f.jpeg for f in sample_frames("c", path, FrameOptions(frames_per_video=k, size=size))],
        "exact_seek_every_target": lambda: exact_seek_every_target(path, k, size),
    }
    names = list(samplers)
    outputs = {name: samplers[name]() for name in names}  # warm-up
    times = {name: {"wall": [], "cpu": []} for name in names}
    for repeat in range(repeats):
        for name in names[repeat % len(names) :] + names[: repeat % len(names)]:
            outputs[name], wall, cpu = _timed(samplers[name])
            times[name]["wall"].append(wall)
            times[name]["cpu"].append(cpu)
    med = {n: {m: statistics.median(v) for m, v in t.items()} for n, t in times.items()}
    return {
        "clip": "60 s, 1280x720, 30 fps, H.264, 10 s GOP",
        "k": k,
        "size": size,
        "repeats": repeats,
        "cpu_s_median": {n: round(m["cpu"], 3) for n, m in med.items()},
        "wall_s_median": {n: round(m["wall"], 3) for n, m in med.items()},
        "decoded_frames": decoded_frame_counts(clip, k),
        "exact_speedup_over_full_decode_cpu": round(med["full_decode"]["cpu"] / med["exact"]["cpu"], 2),
        "exact_speedup_over_seek_every_target_cpu": round(
            med["exact_seek_every_target"]["cpu"] / med["exact"]["cpu"], 2
        ),
        "all_three_identical": outputs["exact"] == outputs["full_decode"] == outputs["exact_seek_every_target"],
    }


def beam_throughput(workdir: Path, videos: int) -> dict:
    from silverset.components.corpus.synth import SynthOptions
    from silverset.components.corpus.synth import run as synth
    from silverset.components.frames.extract import FrameOptions
    from silverset.components.frames.pipeline import run as extract

    corpus = synth(out_dir=workdir / "corpus", options=SynthOptions(videos=videos, seed=0))
    results = {"videos": videos, "clip": "3 s, 320x240, 15 fps synthetic", "k": 8, "size": 224}
    for label, sampling, flags in (
        ("1_worker_in_memory", "exact", ()),
        ("1_worker_in_memory_keyframe", "keyframe", ()),
        ("2_workers_multi_threading", "exact", ("--direct_num_workers=2", "--direct_running_mode=multi_threading")),
    ):
        summary = extract(
            manifest_uri=corpus.manifest_uri,
            out_dir=str(workdir / f"frames-{label}"),
            options=FrameOptions(frames_per_video=8, size=224, sampling=sampling),  # type: ignore[arg-type]
            beam_options=flags,
        )
        assert summary.videos_ok == videos, summary
        results[label] = {"seconds": summary.seconds, "videos_per_s": round(videos / summary.seconds, 2)}
    return results


def peak_rss(workdir: Path) -> dict:
    warm = make_clip(workdir / "warm.mp4", seconds=1)
    out = {}
    for seconds in (10, 120):
        clip = make_clip(workdir / f"clip-{seconds}s.mp4", seconds=seconds)
        result = subprocess.run(
            [sys.executable, "-c", RSS_CHILD, str(clip), str(warm)], capture_output=True, text=True, check=True
        )
        n, before, after = (int(v) for v in result.stdout.split())
        out[f"{seconds}s"] = {
            "frames": n,
            "peak_rss_mib": round(after / 1024, 1),
            "peak_rss_after_warmup_mib": round(before / 1024, 1),
            "file_mib": round(clip.stat().st_size / 2**20, 1),
        }
    out["ratio_120s_over_10s"] = round(out["120s"]["peak_rss_mib"] / out["10s"]["peak_rss_mib"], 3)
    out["clip"] = "1280x720, 30 fps, H.264, 2 s GOP; K=16"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results", help="folder for frames.json")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--videos", type=int, default=60, help="synthetic videos for the Beam throughput run")
    parser.add_argument("--sampling-only", action="store_true", help="skip the peak-RSS and Beam sections")
    args = parser.parse_args()
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="silverset-bench-frames-") as tmp:
        workdir = Path(tmp)
        clip = make_clip(workdir / "clip-60s.mp4", seconds=60)
        result = {
            "benchmark": "frames",
            "machine": {
                "cpus": os.cpu_count(),
                "loadavg_at_start": os.getloadavg(),
                "python": platform.python_version(),
            },
            "sampling_vs_references": sampling_vs_references(clip, args.repeats),
            "long_gop_exact": long_gop_exact(
                make_clip(workdir / "clip-60s-gop10.mp4", seconds=60, gop_s=10.0), args.repeats
            ),
        }
        if not args.sampling_only:
            result["peak_rss"] = peak_rss(workdir)
            result["beam"] = beam_throughput(workdir, args.videos)
    result["machine"]["loadavg_at_end"] = os.getloadavg()
    result["wall_s"] = round(time.time() - started, 1)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    path = Path(args.out) / "frames.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
