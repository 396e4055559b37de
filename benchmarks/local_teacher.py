"""Benchmark the local teacher's CPU runtimes: ONNX Runtime with dynamic INT8 vs eager TorchScript, same model
and batch.

Writes ``<out>/local_teacher.json``. Not a test: numbers depend on the machine and its load (recorded too).

The model is a small frames + text scorer with the local teacher's input contract (frames float32
[B, 8, 3, 64, 64] in [0, 1], MiniLM text float32 [B, 384] -> one logit per video): 8x8 patches -> Linear
patch embedding (192 -> 256) -> pre-norm MLP block (256 -> 1024 -> 256) -> mean over patches and frames,
concatenated with a projected text vector -> MLP head. It is exported to TorchScript (the baseline) and
ONNX (the target) and opened through ``open_checkpoint`` exactly as ``silverset annotate --teacher local``
does. Weights are seeded; only the last layer is fitted (ridge regression on 96 separate videos, "has a
moving block" -> logit +-3) so the logits have a trained scorer's spread. Label = logit >= 0.

- target: ``onnxruntime-int8`` (dynamic INT8 MatMul/Gemm weights, ORT_ENABLE_ALL graph optimisation)
- baseline: ``eager`` TorchScript FP32, same batch, same threads
- levers also measured: ORT FP32, ORT INT8 with basic graph optimisation, batch sizes, intra-op threads.

Reported: items/s (median of ``--repeats`` alternated passes over ``--items`` videos), speed-up over eager,
label agreement with eager, max |logit difference|.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FRAMES_SHAPE = (8, 3, 64, 64)
TEXT_DIM = 384


def build_scorer(folder: Path, *, seed: int = 0) -> tuple[Path, Path]:
    """Write ``scorer.pt`` (TorchScript) and ``scorer.onnx`` (dynamic batch axis) into ``folder``."""
    import torch
    from torch import nn

    torch.manual_seed(seed)

    class Scorer(nn.Module):
        def __init__(self, patch: int = 8, dim: int = 256):
            super().__init__()
            self.patch = patch
            self.embed = nn.Linear(3 * patch * patch, dim)
            self.norm = nn.LayerNorm(dim)
            self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
            self.text = nn.Linear(TEXT_DIM, dim)
            self.head = nn.Sequential(nn.Linear(2 * dim, dim), nn.ReLU(), nn.Linear(dim, 1))

        def features(self, frames: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
            b, t, c, h, w = frames.shape
            p = self.patch
            x = frames.reshape(b, t, c, h // p, p, w // p, p).permute(0, 1, 3, 5, 2, 4, 6)
            x = self.embed(x.reshape(b, t * (h // p) * (w // p), c * p * p))  # [B, patches, dim]
            x = x + self.mlp(self.norm(x))
            pooled = x.mean(1)
            return self.head[:-1](torch.cat([pooled, torch.tanh(self.text(text))], -1))  # [B, dim]

        def forward(self, frames: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
            return self.head[-1](self.features(frames, text)).squeeze(-1)

    model = Scorer().eval()
    # Fit only the last layer (ridge regression, lambda 1, to logits of +-3 for "has a moving block") on separate
    # videos, so logits have a trained scorer's margins instead of a random network's tight cluster.
    fit_frames, fit_text, fit_labels = make_inputs(96, seed=7)
    with torch.no_grad():
        feats = model.features(torch.from_numpy(fit_frames), torch.from_numpy(fit_text)).double()
        x = torch.cat([feats, torch.ones(len(feats), 1, dtype=torch.float64)], 1)
        y = torch.from_numpy(np.where(fit_labels, 3.0, -3.0))
        w = torch.linalg.solve(x.T @ x + 1.0 * torch.eye(x.shape[1], dtype=torch.float64), x.T @ y)
        model.head[-1].weight.copy_(w[:-1].float().unsqueeze(0))
        model.head[-1].bias.copy_(w[-1:].float())
    example = (torch.rand(2, *FRAMES_SHAPE), torch.randn(2, TEXT_DIM))
    script = folder / "scorer.pt"
    torch.jit.trace(model, example).save(str(script))
    onnx = folder / "scorer.onnx"
    torch.onnx.export(
        model,
        example,
        str(onnx),
        input_names=["frames", "text"],
        output_names=["logit"],
        dynamic_axes={"frames": {0: "batch"}, "text": {0: "batch"}, "logit": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    return script, onnx


def make_inputs(n: int, *, seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Video-like inputs: per-video colour + noise, half with a moving bright block; unit text vectors.

    Returns frames float32 [n, 8, 3, 64, 64], text float32 [n, 384], has_block bool [n].
    """
    rng = np.random.default_rng(seed)
    frames = np.empty((n, *FRAMES_SHAPE), np.float32)
    has_block = np.zeros(n, bool)
    for i in range(n):
        base = rng.uniform(0.1, 0.9, (3, 1, 1)).astype(np.float32)
        clip = np.broadcast_to(base, FRAMES_SHAPE).copy() + rng.normal(0, 0.05, FRAMES_SHAPE).astype(np.float32)
        if rng.random() < 0.5:
            has_block[i] = True
            for t in range(FRAMES_SHAPE[0]):
                x = 4 + t * 6
                clip[t, :, 20:34, x : x + 10] = 1.0
        frames[i] = np.clip(clip, 0, 1)
    text = rng.normal(size=(n, TEXT_DIM)).astype(np.float32)
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    return frames, text, has_block


def _run_all(runner, frames: np.ndarray, text: np.ndarray, batch: int) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    out = [
        np.asarray(runner(frames[i : i + batch], text[i : i + batch])).reshape(-1) for i in range(0, len(frames), batch)
    ]
    return np.concatenate(out), time.perf_counter() - start


def _ort_session(onnx: Path, *, int8: bool, level: str, threads: int):
    """An ORT runner with an explicit graph optimisation level (the shipped runner always uses ORT_ENABLE_ALL)."""
    import onnxruntime as ort

    from silverset.components.common.digest import sha256_file
    from silverset.components.runtime.backends import default_cache_dir, quantized_model

    path = quantized_model(onnx, sha256_file(onnx), default_cache_dir()) if int8 else onnx
    options = ort.SessionOptions()
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def run(frames, text):
        return session.run(None, {"frames": frames, "text": text})[0]

    return run


def measure(runners: dict, frames: np.ndarray, text: np.ndarray, batch: int, repeats: int) -> dict[str, dict]:
    """Alternate passes over all runners (warm-up pass first); median items/s per runner."""
    outputs, times = {}, {name: [] for name in runners}
    for name, runner in runners.items():
        _run_all(runner, frames[: batch * 2], text[: batch * 2], batch)  # warm-up
    for _ in range(repeats):
        for name, runner in runners.items():
            out, seconds = _run_all(runner, frames, text, batch)
            outputs[name] = out
            times[name].append(seconds)
    return {
        name: {
            "items_per_s": round(len(frames) / statistics.median(times[name]), 2),
            "seconds": [round(t, 3) for t in times[name]],
            "logits": outputs[name],
        }
        for name in runners
    }


def compare(results: dict[str, dict], baseline: str) -> dict[str, dict]:
    base = results[baseline]["logits"]
    threshold = 0.0  # label = logit >= 0, as the local teacher's default --threshold-logit
    base_labels = base >= threshold
    table = {}
    for name, r in results.items():
        labels = r["logits"] >= threshold
        table[name] = {
            "items_per_s": r["items_per_s"],
            "seconds": r["seconds"],
            "speedup_vs_eager": round(r["items_per_s"] / results[baseline]["items_per_s"], 3),
            "label_agreement": round(float((labels == base_labels).mean()), 4),
            "max_abs_logit_diff": round(float(np.abs(r["logits"] - base).max()), 5),
        }
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--items", type=int, default=192)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    import torch

    from silverset.components.runtime.backends import open_checkpoint

    result: dict = {
        "benchmark": "local_teacher",
        "device": "cpu",
        "gpu": "none lent in this run; TensorRT FP16 vs eager FP16 not measured",
        "items": args.items,
        "frames_shape": list(FRAMES_SHAPE),
    }
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["SILVERSET_CACHE"] = str(Path(tmp) / "cache")
        script, onnx = build_scorer(Path(tmp))
        frames, text, has_block = make_inputs(args.items)
        from silverset.components.common.digest import sha256_file

        result["model"] = {"params": None, "onnx_bytes": onnx.stat().st_size, "onnx_sha256": sha256_file(onnx)[:16]}
        result["model"]["params"] = sum(p.numel() for p in torch.jit.load(str(script)).parameters())

        def shipped(threads: int) -> dict:
            return {
                "eager": open_checkpoint(script, runtime="eager", threads=threads),
                "onnxruntime-int8": open_checkpoint(onnx, runtime="onnxruntime-int8", threads=threads),
                "onnxruntime-fp32": open_checkpoint(onnx, runtime="onnxruntime", threads=threads),
            }

        # 1. the headline: shipped runners, same batch and threads
        main_runners = shipped(args.threads)
        main_runners["onnxruntime-int8-basic-opt"] = _ort_session(
            onnx, int8=True, level="ORT_ENABLE_BASIC", threads=args.threads
        )
        # static INT8 as TensorRT 10/11 take it (Q/DQ graph), calibrated on the first 64 items, run by ONNX Runtime
        calibration = [(frames[i : i + 16], text[i : i + 16]) for i in range(0, min(64, args.items), 16)]
        main_runners["onnxruntime-int8-qdq"] = open_checkpoint(
            onnx, runtime="onnxruntime", precision="int8", calibration=calibration, threads=args.threads
        )
        measured = measure(main_runners, frames, text, args.batch_size, args.repeats)
        eager_logits = measured["eager"]["logits"]
        result["model"]["eager_logits"] = {
            "mean": round(float(eager_logits.mean()), 3),
            "std": round(float(eager_logits.std()), 3),
            "positive_fraction": round(float((eager_logits >= 0).mean()), 3),
            "accuracy_vs_has_block": round(float(((eager_logits >= 0) == has_block).mean()), 3),
        }
        headline = compare(measured, "eager")
        result["headline"] = {"batch_size": args.batch_size, "threads": args.threads, "runtimes": headline}
        print(json.dumps(result["headline"], indent=1), flush=True)

        # 2. levers: batch size and intra-op threads (eager vs int8 only, fewer repeats)
        sweeps = []
        for batch, threads in ((8, args.threads), (128, args.threads), (args.batch_size, 1)):
            runners = shipped(threads)
            runners.pop("onnxruntime-fp32")
            table = compare(measure(runners, frames, text, batch, max(1, args.repeats - 1)), "eager")
            sweeps.append({"batch_size": batch, "threads": threads, "runtimes": table})
            print(json.dumps(sweeps[-1]), flush=True)
        torch.set_num_threads(args.threads)
        result["levers"] = sweeps
    head = result["headline"]["runtimes"]["onnxruntime-int8"]
    result["summary"] = {
        "goal": ">= 2x items/s over eager with >= 99% label agreement (CPU)",
        "speedup_int8_vs_eager": head["speedup_vs_eager"],
        "label_agreement": head["label_agreement"],
        "met": head["speedup_vs_eager"] >= 2.0 and head["label_agreement"] >= 0.99,
        "best_config": max(
            (
                [("headline", name, r["speedup_vs_eager"]) for name, r in result["headline"]["runtimes"].items()]
                + [
                    (f"batch {s['batch_size']} threads {s['threads']}", name, r["speedup_vs_eager"])
                    for s in result["levers"]
                    for name, r in s["runtimes"].items()
                ]
            ),
            key=lambda x: x[2],
        ),
    }
    result["machine"] = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_avg_1m": os.getloadavg()[0],
        "torch": torch.__version__,
        "onnxruntime": __import__("onnxruntime").__version__,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "local_teacher.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["summary"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
