"""Distillation quality: a visual teacher labels a random sample of a synthetic corpus, a student on embeddings
learns from those labels, and both are judged against the truth on the videos the teacher never saw.

For each of the four synthetic attributes and each sample share (5%, 10%, 20%, 50% by default):
the teacher is the frames CNN of ``components/teacher/frames_cnn.py`` (trained on its own synthetic corpus:
another seed, frame size and aspect, no hard cases), run through the real annotate stage
(``--teacher local``); the student is the real distill stage on the real embeddings (hand-made visual block +
MiniLM text block). On the unseen videos it reports F1 of the student vs truth and vs the teacher, the
teacher's F1 vs truth, retention = student F1 / teacher F1 with a paired bootstrap 95% CI, and the teacher
calls a budgeted run would pay and save. The labelled corpus has hard cases (``hard_case_share``), so the
teacher is not an oracle. Nothing here is tuned on the unseen videos: the student's threshold is chosen on a
held-out part of the sample, by the distill stage.

The teacher labels every video once (so its F1 on the unseen videos can be measured); a budgeted run would
call it only on the sample. Writes ``distill_quality.json`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ATTRIBUTE_SPECS = ROOT / "components" / "corpus" / "attributes"


def build_corpus(
    work: Path, *, videos: int, seed: int, hard_case_share: float, duration_s: float, width: int, height: int
) -> dict:
    """corpus synth -> frames (8 x 64 px) -> embed (visual + MiniLM text); returns paths, truth and stage seconds."""
    from silverset.components.corpus.synth import SynthOptions
    from silverset.components.corpus.synth import run as synth
    from silverset.components.embed.embed import run as embed
    from silverset.components.frames.extract import FrameOptions
    from silverset.components.frames.pipeline import run as frames

    seconds = {}
    start = time.perf_counter()
    corpus = synth(
        out_dir=work / "corpus",
        options=SynthOptions(
            videos=videos, seed=seed, duration_s=duration_s, width=width, height=height, hard_case_share=hard_case_share
        ),
    )
    seconds["corpus_synth"] = time.perf_counter() - start
    start = time.perf_counter()
    frames(
        manifest_uri=corpus.manifest_uri,
        out_dir=str(work / "frames"),
        options=FrameOptions(frames_per_video=8, size=64),
    )
    seconds["frames"] = time.perf_counter() - start
    start = time.perf_counter()
    embedded = embed(
        frames_uri=str(work / "frames"), out_dir=str(work / "embeddings"), manifest_uri=corpus.manifest_uri
    )
    seconds["embed"] = time.perf_counter() - start
    return {
        "corpus": corpus,
        "frames": str(work / "frames"),
        "embeddings": str(work / "embeddings"),
        "embedder_id": embedded.embedder_id,
        "seconds": seconds,
    }


def teacher_labels(work: Path, *, attribute: str, manifest: str, frames: str, cache: Path) -> tuple[str, float, str]:
    """Label every video with the frames CNN teacher through the annotate stage; (labels dir, seconds, teacher id)."""
    from silverset.components.teacher.annotate import AnnotateOptions
    from silverset.components.teacher.annotate import run as annotate
    from silverset.components.teacher.frames_cnn import teacher_checkpoint

    checkpoint = teacher_checkpoint(cache, attribute)
    start = time.perf_counter()
    summary = annotate(
        attribute_spec=str(ATTRIBUTE_SPECS / f"{attribute}.yaml"),
        manifest_uri=manifest,
        frames_uri=frames,
        out_dir=str(work / "labels" / attribute),
        options=AnnotateOptions(teacher="local", checkpoint=str(checkpoint), runtime="eager"),
    )
    return str(work / "labels" / attribute), time.perf_counter() - start, summary.teacher_id


def student_on_unseen(
    work: Path, *, attribute: str, embeddings: str, labels: str, sample: list[str], truth: dict[str, int] | None = None
) -> dict:
    """Distill on the sample's teacher labels (or, with ``truth``, on the sample's truth: what the embeddings allow
    at this sample size); returns the student's label for every video and the stage summary."""
    import pyarrow as pa

    from silverset.components.common import schemas, tables
    from silverset.components.distill.train import run as distill
    from silverset.components.score.bulk import ScoreOptions
    from silverset.components.score.bulk import run as score

    table = tables.read_table(labels, schemas.LABELS)
    if truth is not None:
        known = [truth[v] for v in table.column("video_id").to_pylist()]
        table = table.set_column(table.schema.get_field_index("label"), "label", pa.array(known, pa.int32()))
        table = table.set_column(
            table.schema.get_field_index("probability"),
            "probability",
            pa.array([float(x) for x in known], pa.float32()),
        )
    chosen = set(sample)
    sample_labels = work / "sample_labels.parquet"
    tables.write_table(
        table.filter(pa.array([v in chosen for v in table.column("video_id").to_pylist()])),
        sample_labels,
        schemas.LABELS,
    )
    spec = str(ATTRIBUTE_SPECS / f"{attribute}.yaml")
    trained = distill(
        embeddings=embeddings,
        labels=str(sample_labels),
        attribute_spec=spec,
        out_dir=str(work / "model"),
        measure_latency=False,
        overwrite=True,
    )
    score(
        model_dir=str(work / "model"),
        embeddings=embeddings,
        out_dir=str(work / "scores"),
        options=ScoreOptions(backend="torchscript"),
        overwrite=True,
    )
    scores = tables.read_table(work / "scores", schemas.SCORES)
    predicted = {
        v: int(p >= trained.threshold)
        for v, p in zip(scores.column("video_id").to_pylist(), scores.column("probability").to_pylist())
    }
    return {
        "predicted": predicted,
        "trained_on": trained.trained_on,
        "threshold": trained.threshold,
        "held_out_f1_vs_teacher": trained.held_out_f1_vs_teacher,
    }


def hard_case_ids(
    videos: int, *, seed: int, hard_case_share: float, duration_s: float, width: int, height: int, attribute: str
) -> list[str]:
    """The videos the synth gave a hard case for ``attribute`` (re-drawn from the same plans, not read from truth)."""
    from silverset.components.corpus.synth import SynthOptions, plan_video

    options = SynthOptions(
        videos=videos, seed=seed, hard_case_share=hard_case_share, duration_s=duration_s, width=width, height=height
    )
    return [plan.video_id for plan in (plan_video(i, options) for i in range(videos)) if attribute in plan.hard_cases]


def accuracy(truth: dict, teacher: dict, ids: list[str]) -> dict:
    right = sum(1 for v in ids if truth[v] == teacher[v])
    return {"videos": len(ids), "accuracy": round(right / len(ids), 4) if ids else None}


def f1_with_ci(truth: np.ndarray, predicted: np.ndarray, *, samples: int, seed: int) -> dict:
    from silverset.components.evaluate import metrics

    estimate = metrics.bootstrap_metrics(truth, predicted.astype(np.float64), predicted, samples=samples, seed=seed)
    return {k: round(v, 4) for k, v in estimate["f1"].as_dict().items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--videos", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=2026, help="corpus seed (the teacher trains on its own seed)")
    parser.add_argument("--hard-case-share", type=float, default=0.25)
    parser.add_argument("--duration-s", type=float, default=3.0)
    parser.add_argument("--size", default="320x240", help="WIDTHxHEIGHT of the synthetic videos")
    parser.add_argument("--shares", default="0.05,0.1,0.2,0.5", help="teacher sample shares, comma-separated")
    parser.add_argument("--attributes", default="red_dominant,moving_object,frequent_cuts,onscreen_text")
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--work", default=None, help="work folder (kept); default: a temporary folder")
    parser.add_argument(
        "--reuse", action="store_true", help="reuse the corpus, frames and embeddings already in --work (same settings)"
    )
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from silverset.components.common import schemas, tables
    from silverset.components.distill.retention import f1_retention
    from silverset.components.teacher.frames_cnn import teacher_card, teacher_checkpoint

    width, height = (int(x) for x in args.size.split("x"))
    shares = [float(s) for s in args.shares.split(",")]
    attributes = args.attributes.split(",")
    work = Path(args.work or tempfile.mkdtemp(prefix="distill-quality-"))
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    reused = args.reuse and (work / "built.json").exists()
    if reused:
        built = json.loads((work / "built.json").read_text())
    else:
        built = build_corpus(
            work,
            videos=args.videos,
            seed=args.seed,
            hard_case_share=args.hard_case_share,
            duration_s=args.duration_s,
            width=width,
            height=height,
        )
        (work / "built.json").write_text(json.dumps(built, default=str))
    seconds = dict(built["seconds"])
    start = time.perf_counter()
    card = teacher_card(teacher_checkpoint(work / "teacher", attributes[0]))
    seconds["teacher_training"] = time.perf_counter() - start
    truth_table = tables.read_table(built["corpus"].truth_uri, schemas.TRUTH)
    ids = sorted(set(truth_table.column("video_id").to_pylist()))

    results = {}
    for a_index, attribute in enumerate(attributes):
        truth = {
            v: int(label)
            for v, a, label in zip(
                truth_table.column("video_id").to_pylist(),
                truth_table.column("attribute").to_pylist(),
                truth_table.column("label").to_pylist(),
            )
            if a == attribute
        }
        labels, teacher_s, teacher_id = teacher_labels(
            work,
            attribute=attribute,
            manifest=built["corpus"].manifest_uri,
            frames=built["frames"],
            cache=work / "teacher",
        )
        table = tables.read_table(labels, schemas.LABELS)
        teacher = dict(zip(table.column("video_id").to_pylist(), (int(x) for x in table.column("label").to_pylist())))
        all_ids = np.array(ids)
        y_all, t_all = np.array([truth[v] for v in ids]), np.array([teacher[v] for v in ids])
        rows = []
        for s_index, share in enumerate(shares):
            rng = np.random.default_rng([args.seed, a_index, s_index])
            n_sample = int(round(share * len(ids)))
            sample = sorted(rng.choice(all_ids, size=n_sample, replace=False).tolist())
            start = time.perf_counter()
            student = student_on_unseen(
                work / "students" / attribute / f"{share:g}",
                attribute=attribute,
                embeddings=built["embeddings"],
                labels=labels,
                sample=sample,
            )
            student_s = time.perf_counter() - start
            on_truth = student_on_unseen(
                work / "students_on_truth" / attribute / f"{share:g}",
                attribute=attribute,
                embeddings=built["embeddings"],
                labels=labels,
                sample=sample,
                truth=truth,
            )
            unseen = sorted(set(ids) - set(sample))
            y = np.array([truth[v] for v in unseen])
            t = np.array([teacher[v] for v in unseen])
            s = np.array([student["predicted"][v] for v in unseen])
            ceiling = np.array([on_truth["predicted"][v] for v in unseen])
            retention = f1_retention(y, t, s, samples=args.bootstrap, seed=0)
            rows.append(
                {
                    "share": share,
                    "teacher_calls": n_sample,
                    "teacher_calls_saved": len(ids) - n_sample,
                    "unseen_videos": len(unseen),
                    "unseen_positives": int(y.sum()),
                    "student_f1_vs_truth": f1_with_ci(y, s, samples=args.bootstrap, seed=0),
                    "student_f1_vs_teacher": f1_with_ci(t, s, samples=args.bootstrap, seed=0),
                    "teacher_f1_vs_truth": f1_with_ci(y, t, samples=args.bootstrap, seed=0),
                    # the same student trained on the same sample's TRUTH: what the embeddings allow at this size
                    "student_on_truth_labels_f1_vs_truth": f1_with_ci(y, ceiling, samples=args.bootstrap, seed=0),
                    "retention": {k: round(v, 4) for k, v in retention.as_dict().items()},
                    "meets_target": bool(retention.value >= 0.95),
                    "student": {
                        "trained_on": student["trained_on"],
                        "threshold": round(student["threshold"], 4),
                        "held_out_f1_vs_teacher": round(student["held_out_f1_vs_teacher"], 4),
                        "distill_and_score_s": round(student_s, 1),
                    },
                }
            )
            print(
                f"{attribute:14s} {share:>4.0%}  teacher {rows[-1]['teacher_f1_vs_truth']['value']:.3f}  "
                f"student {rows[-1]['student_f1_vs_truth']['value']:.3f}  retention {retention.value:.3f} "
                f"[{retention.lower:.3f}, {retention.upper:.3f}]  student on truth "
                f"{rows[-1]['student_on_truth_labels_f1_vs_truth']['value']:.3f}",
                flush=True,
            )
        hard = hard_case_ids(
            len(ids),
            seed=args.seed,
            hard_case_share=args.hard_case_share,
            duration_s=args.duration_s,
            width=width,
            height=height,
            attribute=attribute,
        )
        results[attribute] = {
            "teacher_id": teacher_id,
            "teacher_labelling_s": round(teacher_s, 1),
            "teacher_f1_vs_truth_all_videos": f1_with_ci(y_all, t_all, samples=args.bootstrap, seed=0),
            "prevalence": round(float(y_all.mean()), 4),
            "teacher_accuracy_on_hard_cases": accuracy(truth, teacher, hard),
            "teacher_accuracy_on_other_videos": accuracy(truth, teacher, sorted(set(ids) - set(hard))),
            "by_share": rows,
        }

    at_20 = (
        {a: r["by_share"][shares.index(0.2)]["retention"]["value"] for a, r in results.items()} if 0.2 in shares else {}
    )
    report = {
        "benchmark": "distill_quality",
        "what": "teacher (frames CNN trained on its own synthetic corpus) labels a random share; student on embeddings "
        "trained on those labels; F1 on the videos the teacher never saw, against truth",
        "corpus": {
            "videos": len(ids),
            "seed": args.seed,
            "duration_s": args.duration_s,
            "size": args.size,
            "hard_case_share": args.hard_case_share,
            "hard_cases": built["corpus"].hard_cases,
            "embedder_id": built["embedder_id"],
        },
        "teacher": {"card": card, "runtime": "eager TorchScript via the annotate stage (--teacher local)"},
        "target": {"retention": 0.95, "share": 0.2, "on_at_least_attributes": 3},
        "retention_at_20_percent": at_20,
        "attributes_meeting_target_at_20_percent": sum(1 for v in at_20.values() if v >= 0.95),
        "results": results,
        "stage_seconds": {k: round(v, 1) for k, v in seconds.items()},
        "total_s": round(time.perf_counter() - started, 1),
        "reused_corpus_frames_embeddings": bool(args.reuse and reused),  # their seconds are from the run that made them
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "distill_quality.json").write_text(json.dumps(report, indent=2) + "\n")
    print(
        json.dumps(
            {
                k: report[k]
                for k in (
                    "retention_at_20_percent",
                    "attributes_meeting_target_at_20_percent",
                    "stage_seconds",
                    "total_s",
                )
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
