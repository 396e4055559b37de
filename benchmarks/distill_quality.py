"""Distillation quality on the synthetic corpus: teacher F1, student F1 and F1 retention against the truth table
(the golden set) and against the teacher's labels, each with a seeded bootstrap 95% CI. Target retention >= 0.95.

Runs the real stages (`silverset corpus synth`, `frames`, `embed`, `annotate --teacher zero-shot`) when they
work here; otherwise it says so and simulates a teacher from the truth with label noise on synthetic
embeddings. The golden items' teacher labels are held out of the student's training data."""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "components" / "distill"))


def cli(*args: str) -> None:
    subprocess.run([sys.executable, "-c", "from silverset.pipelines.cli import main; main()", *args], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def real_corpus(work: Path, *, videos: int, attribute: str, spec: str) -> dict:
    """corpus synth -> frames -> embed -> annotate (zero-shot teacher); returns the table paths and stage seconds."""
    seconds = {}
    for name, args in (
        ("corpus_synth", ("corpus", "synth", "--out", str(work / "corpus"), "--videos", str(videos))),
        ("frames", ("frames", "--manifest", str(work / "corpus" / "manifest.parquet"), "--out", str(work / "frames"))),
        ("embed", ("embed", "--frames", str(work / "frames"), "--out", str(work / "embeddings"), "--manifest", str(work / "corpus" / "manifest.parquet"))),
        ("annotate", ("annotate", "--attribute", spec, "--manifest", str(work / "corpus" / "manifest.parquet"), "--frames", str(work / "frames"),
                      "--teacher", "zero-shot", "--out", str(work / "labels"))),
    ):
        start = time.perf_counter()
        cli(*args)
        seconds[name] = round(time.perf_counter() - start, 1)
    from silverset.components.common import schemas, tables

    truth = tables.read_table(work / "corpus" / "truth.parquet", schemas.TRUTH)
    truth = {v: l for v, a, l in zip(truth.column("video_id").to_pylist(), truth.column("attribute").to_pylist(),
                                     truth.column("label").to_pylist()) if a == attribute}
    return {"embeddings": str(work / "embeddings"), "labels": str(work / "labels"), "truth": truth,
            "teacher_stats": str(work / "labels"), "seconds": seconds, "source": "real stages: corpus synth, frames, embed, annotate --teacher zero-shot"}


def simulated_corpus(work: Path, *, videos: int, noise: float, seed: int) -> dict:
    from distill_data import write_synthetic

    from silverset.components.common import schemas, tables

    data = write_synthetic(work, n=videos, dimension=384, seed=seed)
    rng = np.random.default_rng(seed + 1)
    flip = rng.random(videos) < noise
    teacher_label = np.where(flip, 1 - data["truth"], data["truth"])
    teacher_prob = np.clip(np.where(teacher_label == 1, 0.75, 0.25) + rng.normal(0, 0.15, videos), 0.01, 0.99).astype(np.float32)
    labels = tables.read_table(data["labels"], schemas.LABELS)
    import pyarrow as pa

    labels = labels.set_column(3, "label", pa.array(teacher_label.astype(np.int32))).set_column(4, "probability", pa.array(teacher_prob))
    tables.write_table(labels, data["labels"], schemas.LABELS)
    return {"embeddings": data["embeddings"], "labels": data["labels"], "truth": dict(zip(data["ids"], data["truth"].tolist())),
            "teacher_stats": None, "seconds": {}, "source": f"SIMULATED: teacher = truth with {noise:.0%} label noise on synthetic 384-d embeddings"}


def write_golden(path: Path, truth: dict, ids: list[str], attribute: str) -> str:
    import pyarrow as pa

    from silverset.components.common import schemas, tables

    n = len(ids)
    tables.write_table(pa.table({
        "video_id": ids, "attribute": [attribute] * n, "attribute_version": pa.array([1] * n, pa.int32()),
        "label": pa.array([int(truth[v]) for v in ids], pa.int32()), "labeler": ["truth-table"] * n,
        "labeled_at": pa.array([dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)] * n, pa.timestamp("us", tz="UTC")),
    }), path, schemas.GOLDEN)
    return str(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--videos", type=int, default=300)
    parser.add_argument("--attribute", default="red_dominant")
    parser.add_argument("--golden-share", type=float, default=0.4)
    parser.add_argument("--simulate", action="store_true", help="Skip the real stages and simulate the teacher.")
    parser.add_argument("--noise", type=float, default=0.05, help="Label noise of the simulated teacher.")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from silverset.components.common import schemas, tables
    from silverset.components.distill.flow import distill_and_gate
    from silverset.components.evaluate import metrics

    spec = str(ROOT / "components" / "corpus" / "attributes" / f"{args.attribute}.yaml")
    work = Path(tempfile.mkdtemp(prefix="distill-quality-"))
    fallback_reason = None
    if args.simulate:
        fallback_reason = "--simulate"
    else:
        try:
            corpus = real_corpus(work / "real", videos=args.videos, attribute=args.attribute, spec=spec)
        except subprocess.CalledProcessError as exc:
            fallback_reason = f"real stage failed: {' '.join(exc.cmd[3:5])}: {(exc.stderr or '')[-400:]}"
    if fallback_reason:
        corpus = simulated_corpus(work / "sim", videos=args.videos, noise=args.noise, seed=0)

    ids = sorted(corpus["truth"])
    golden_ids = sorted(np.random.default_rng(0).choice(ids, size=int(len(ids) * args.golden_share), replace=False).tolist())
    golden = write_golden(work / "golden.parquet", corpus["truth"], golden_ids, args.attribute)
    start = time.perf_counter()
    flow = distill_and_gate(attribute=spec, embeddings=corpus["embeddings"], labels=corpus["labels"], golden=golden,
                            out=str(work / "flow"), teacher_stats=corpus["teacher_stats"],
                            teacher_latency_s_per_item=None if corpus["teacher_stats"] else 1.0, stop_on_teacher_failure=False)
    flow_seconds = time.perf_counter() - start

    labels = tables.read_table(corpus["labels"], schemas.LABELS)
    teacher_label = dict(zip(labels.column("video_id").to_pylist(), labels.column("label").to_pylist()))
    scores = tables.read_table(work / "flow" / "scores", schemas.SCORES)
    student_prob = dict(zip(scores.column("video_id").to_pylist(), scores.column("probability").to_pylist()))
    model_dir = work / "flow" / "model"
    threshold = json.loads((model_dir / "metadata.json").read_text())["threshold"]
    y_truth = np.array([corpus["truth"][v] for v in golden_ids])
    y_teacher = np.array([teacher_label[v] for v in golden_ids])
    p_student = np.array([student_prob[v] for v in golden_ids], dtype=np.float64)
    yhat_student = (p_student >= threshold).astype(int)
    teacher_prob = dict(zip(labels.column("video_id").to_pylist(), labels.column("probability").to_pylist()))
    p_teacher = np.array([teacher_prob[v] for v in golden_ids], dtype=np.float64)

    def est(y, p, yhat):
        m = metrics.bootstrap_metrics(y, p, yhat, samples=1000, seed=0)
        return {k: m[k].as_dict() for k in ("f1", "precision", "recall", "average_precision")}

    idx = metrics.bootstrap_indices(len(golden_ids), samples=1000, seed=0)

    def f1_rows(y, yhat):
        tp = ((y == 1) & (yhat == 1)).sum(-1); fp = ((y == 0) & (yhat == 1)).sum(-1); fn = ((y == 1) & (yhat == 0)).sum(-1)
        return np.where(2 * tp + fp + fn > 0, 2 * tp / np.maximum(2 * tp + fp + fn, 1), 0.0)

    ratio_draws = f1_rows(y_truth[idx], yhat_student[idx]) / np.maximum(f1_rows(y_truth[idx], y_teacher[idx]), 1e-9)
    teacher_vs_truth = est(y_truth, p_teacher, y_teacher)
    student_vs_truth = est(y_truth, p_student, yhat_student)
    report = {
        "benchmark": "distill_quality",
        "data": corpus["source"],
        "fallback_reason": fallback_reason,
        "videos": len(ids),
        "golden_items": len(golden_ids),
        "golden_positives": int(y_truth.sum()),
        "attribute": args.attribute,
        "teacher_vs_truth": teacher_vs_truth,
        "student_vs_truth": student_vs_truth,
        "f1_retention_vs_truth": {"value": student_vs_truth["f1"]["value"] / teacher_vs_truth["f1"]["value"] if teacher_vs_truth["f1"]["value"] else None,
                                  "lower": float(np.quantile(ratio_draws, 0.025)), "upper": float(np.quantile(ratio_draws, 0.975))},
        "student_vs_teacher_labels": est(y_teacher, p_student, yhat_student),
        "target_retention": 0.95,
        "teacher_gate": {"passed": flow["teacher_gate"]["passed"], "reasons": flow["teacher_gate"]["reasons"]},
        "student_gate": {"passed": flow.get("student_gate", {}).get("passed"), "reasons": flow.get("student_gate", {}).get("reasons"),
                         "latency": flow.get("student_gate", {}).get("metrics", {}).get("latency")},
        "student": {k: flow["distill"][k] for k in ("trained_on", "threshold", "model_digest", "latency_s_per_item")},
        "scoring": {k: flow["score"][k] for k in ("inputs", "scored", "errors")},
        "stage_seconds": {**corpus["seconds"], "gates_distill_score": round(flow_seconds, 1)},
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "distill_quality.json").write_text(json.dumps(report, indent=2, default=float) + "\n")
    print(json.dumps(report, indent=2, default=float))


if __name__ == "__main__":
    main()
