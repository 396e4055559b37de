"""Benchmark the embed stage: videos/s per embedder (visual statistics, MiniLM text, and the combined default).

Writes ``<out>/embed.json``. Not a test: numbers depend on the machine and its load (recorded too).

Input: ``--videos`` synthetic videos, 8 JPEG frames each at 224x224 (coloured backgrounds, moving blocks,
cuts, caption-like stripes), plus a manifest with titles and descriptions. Each embedder runs the whole
stage (``silverset embed``: read frames, decode, embed, write Parquet parts, errors, stats) on a fresh
output folder, after a warm-up that loads MiniLM once (load time reported separately).

- ``visual``: visual-stats-v1 (colour / texture / motion / cut statistics, no weights)
- ``text``: MiniLM-L6-v2 on title + description
- ``default``: visual-stats-v1 + MiniLM concatenated (what the demo and the studio use)
- baseline: ``default`` with --batch-size 1 (no batching: one MiniLM call and one Parquet part per video)

Each is measured with torch's default intra-op threads (one per visible core) and again with 1 thread:
on an oversubscribed machine (or a container whose CPU quota is below its visible cores) every OpenMP
barrier inside MiniLM waits for a descheduled thread, which makes small text batches very slow.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def make_inputs(folder: Path, n: int, *, frames_per_video: int = 8, size: int = 224) -> tuple[Path, Path]:
    import pyarrow as pa
    from PIL import Image

    from silverset.components.common import schemas, tables

    rng = np.random.default_rng(0)
    kinds = ["red", "moving", "cuts", "text", "plain"]
    rows, lines = [], ["video_id,uri,title,description"]
    for v in range(n):
        kind, vid = kinds[v % len(kinds)], f"emb{v:05d}"
        lines.append(
            f"{vid},file:///videos/{vid}.mp4,A {kind} clip number {v},synthetic {kind} video for the benchmark"
        )
        base = rng.integers(40, 200, 3)
        for t in range(frames_per_video):
            f = np.empty((size, size, 3), np.uint8)
            f[:] = (210, 30, 35) if kind == "red" else base
            f = np.clip(f.astype(int) + rng.integers(-12, 12, f.shape), 0, 255).astype(np.uint8)
            if kind == "moving":
                x = 10 + t * (size - 60) // frames_per_video
                f[90:140, x : x + 40] = 250
            elif kind == "cuts":
                f[:] = rng.integers(0, 255, 3)
            elif kind == "text":
                for c in range(10, size - 10, 6):
                    f[size - 40 : size - 20, c : c + 3] = 255
            buf = io.BytesIO()
            Image.fromarray(f).save(buf, format="JPEG", quality=85)
            rows.append(
                {
                    "video_id": vid,
                    "frame_index": t,
                    "timestamp_s": t * 0.5,
                    "width": size,
                    "height": size,
                    "jpeg": buf.getvalue(),
                }
            )
    frames = folder / "frames"
    tables.write_table(
        pa.Table.from_pylist(rows, schema=schemas.FRAMES), frames / "frames-00000.parquet", schemas.FRAMES
    )
    manifest = folder / "manifest.csv"
    manifest.write_text("\n".join(lines) + "\n")
    return frames, manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--videos", type=int, default=120)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)

    from silverset.components.embed import embed, text

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        frames, manifest = make_inputs(folder, args.videos)
        start = time.perf_counter()
        text.embed_texts(["warm-up"])
        minilm_load_s = time.perf_counter() - start
        import torch

        default_threads = torch.get_num_threads()
        configs = [
            ("visual", dict(embedder="visual", with_text=False), False, args.batch_size, default_threads),
            ("text", dict(embedder="text"), True, args.batch_size, default_threads),
            ("default", dict(embedder="default"), True, args.batch_size, default_threads),
            ("default, batch 1 (baseline)", dict(embedder="default"), True, 1, default_threads),
            ("text", dict(embedder="text"), True, args.batch_size, 1),
            ("default", dict(embedder="default"), True, args.batch_size, 1),
            ("default, batch 1 (baseline)", dict(embedder="default"), True, 1, 1),
        ]
        runs = []
        for name, opts, with_manifest, batch, threads in configs:
            torch.set_num_threads(threads)
            seconds, summary = [], None
            for r in range(1 if batch == 1 else args.repeats):
                out = folder / f"out-{len(runs)}-{r}"
                t0 = time.perf_counter()
                summary = embed.run(
                    frames_uri=str(frames),
                    out_dir=str(out),
                    manifest_uri=str(manifest) if with_manifest else None,
                    options=embed.EmbedOptions(batch_size=batch, **opts),
                )
                seconds.append(time.perf_counter() - t0)
            assert summary is not None and summary.stats.outputs == args.videos, summary
            median = statistics.median(seconds)
            runs.append(
                {
                    "embedder": name,
                    "embedder_id": summary.embedder_id,
                    "dimension": summary.dimension,
                    "batch_size": batch,
                    "torch_threads": threads,
                    "videos": args.videos,
                    "seconds": [round(s, 3) for s in seconds],
                    "videos_per_s": round(args.videos / median, 2),
                }
            )
            print(json.dumps(runs[-1]), flush=True)
        torch.set_num_threads(default_threads)
    by_name = {(r["embedder"], r["torch_threads"]): r for r in runs}
    result = {
        "benchmark": "embed",
        "setup": {
            "frames_per_video": 8,
            "frame_size": "224x224 JPEG",
            "stage": "embed.run (read, decode, embed, write parts + errors + stats)",
            "device": "cpu",
            "minilm_load_s": round(minilm_load_s, 2),
        },
        "runs": runs,
        "summary": {
            "videos_per_s": {f"{r['embedder']}, torch threads {r['torch_threads']}": r["videos_per_s"] for r in runs},
            "default_batched_vs_batch_1": {
                f"torch threads {t}": round(
                    by_name[("default", t)]["videos_per_s"]
                    / by_name[("default, batch 1 (baseline)", t)]["videos_per_s"],
                    2,
                )
                for t in sorted({default_threads, 1})
            },
        },
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "load_avg_1m": os.getloadavg()[0]},
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "embed.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["summary"], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
