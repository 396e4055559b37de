"""Benchmark the image-text embedder on CPU: videos/s of ``--embedder clip:DIR`` (ViT-B/32 shape) vs visual-stats-v1.

Writes ``<out>/clip_embed.json``. Not a test: numbers depend on the machine and its load (recorded too).

What it shows: what the CLIP embedder costs in the whole embed stage (read frames, decode, preprocess, vision
tower over 8 frames per video, pool, write parts) next to the weight-free default visual statistics, on the
same synthetic 224x224 frames (``benchmarks/embed.py``'s inputs), and the per-query latency of the studio's
text search with the CLIP text tower next to MiniLM. What it does not show: quality. No CLIP weights can be
had here, so the model is randomly initialised in the exact shape of OpenAI's ViT-B/32 (transformers'
``CLIPConfig`` defaults); the compute is the same as the real model's, the vectors are meaningless. The
query tokenizer is word-level (about one token per word, like BPE on plain English).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

if not __package__:  # run as a file, the repository root is not importable: say how to run it
    raise SystemExit("run from the repository root as a module: python -m benchmarks.clip_embed")

QUERY = "red is the dominant colour of the picture"


def _median_ms(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return round(1000 * statistics.median(times), 2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--videos", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=8, help="videos per batch (8 frames each)")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)

    import torch

    from benchmarks.embed import make_inputs  # the same synthetic frames as the embed benchmark
    from silverset.components.embed import clip, embed, text
    from tests.helpers.checkpoints import save_tiny_clip

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        frames, _ = make_inputs(folder, args.videos)
        model_dir = save_tiny_clip(folder / "vit-b32-random", vit_b32=True)
        t0 = time.perf_counter()
        loaded = clip.load(f"clip:{model_dir}")
        load_s = time.perf_counter() - t0
        params = sum(p.numel() for p in loaded.model.parameters())
        runs = []
        for name, embedder in (("visual-stats-v1 (baseline)", "visual"), ("clip ViT-B/32 shape", f"clip:{model_dir}")):
            seconds, summary = [], None
            for r in range(args.repeats):
                t0 = time.perf_counter()
                summary = embed.run(
                    frames_uri=str(frames),
                    out_dir=str(folder / f"out-{len(runs)}-{r}"),
                    options=embed.EmbedOptions(embedder=embedder, with_text=False, batch_size=args.batch_size),
                )
                seconds.append(time.perf_counter() - t0)
            assert summary is not None and summary.stats.outputs == args.videos, summary
            runs.append(
                {
                    "embedder": name,
                    "embedder_id": summary.embedder_id,
                    "dimension": summary.dimension,
                    "videos": args.videos,
                    "frames_per_video": 8,
                    "batch_size": args.batch_size,
                    "seconds": [round(s, 3) for s in seconds],
                    "videos_per_s": round(args.videos / statistics.median(seconds), 2),
                }
            )
            print(json.dumps(runs[-1]), flush=True)
        text.embed_texts(["warm-up"])
        query_ms = {
            "minilm-l6-v2 (baseline)": _median_ms(lambda: text.embed_query_text(QUERY), 20),
            "clip ViT-B/32 shape text tower": _median_ms(lambda: clip.encode_text(loaded, [QUERY]), 20),
        }
    visual, clip_run = runs
    result = {
        "benchmark": "clip_embed",
        "setup": {
            "frames": "8 per video, 224x224 JPEG (benchmarks/embed.py inputs)",
            "device": "cpu",
            "torch_threads": torch.get_num_threads(),
            "model": "CLIPModel, transformers CLIPConfig defaults "
            "(ViT-B/32 shape), random weights: speed only, vectors meaningless",
            "model_parameters": params,
            "model_load_s": round(load_s, 2),
            "stage": "embed.run without the text block (read, decode, embed, write parts + errors + stats)",
        },
        "runs": runs,
        "summary": {
            "videos_per_s": {r["embedder"]: r["videos_per_s"] for r in runs},
            "clip_seconds_per_1000_videos": round(1000 / clip_run["videos_per_s"], 1),
            "clip_slowdown_vs_visual_stats": round(visual["videos_per_s"] / clip_run["videos_per_s"], 1),
            "query_ms": query_ms,
        },
        "machine": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "cpus": os.cpu_count(),
            "load_avg_1m": round(os.getloadavg()[0], 2),
        },
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "clip_embed.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["summary"], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
