"""Bulk scoring throughput of a 384-d MLP student: Beam RunInference over ParquetTFXIO RecordBatches (``score.run``)
against its reference measured in the same run, a plain in-process loop over the same Parquet files (pyarrow
``iter_batches`` -> the same ONNX session settings -> ``ParquetWriter``).

Goals (issue 19, part 3): Beam >= 10M items/min end to end and <= 1.3x the loop's time (1M items).

Per size and input layout, ``--rounds`` rounds alternate loop and Beam (the order flips each round); reported
are medians of wall seconds and of process CPU seconds (the 2-core machine is shared: CPU seconds move less with
the neighbours' load than wall time), the 1-minute load average around each timing, and the fixed cost of one
Beam run (the same pipeline over 1,024 rows). ``--profile`` adds one cProfile'd Beam run per size and layout,
broken down by stage: Beam graph construction and translation, Parquet read, tfx-bsl telemetry, the model
check and block cutting, inference, the scores table, Parquet write, coders, write finalization, and the rest
of Beam's runtime (every bundle runs on the profiled main thread with the in-memory DirectRunner).

Default size 200k items (a few minutes here); ``--full`` adds the issue's 1M. Writes <out>/bulk_scoring.json.
Run from the repository root: ``python -m benchmarks.bulk_scoring [--full] [--profile]``.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import platform
import pstats
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

if not __package__:  # run as a file, the repository root is not importable: say how to run it
    raise SystemExit("run from the repository root as a module: python -m benchmarks.bulk_scoring")


def plain_loop(model_dir: Path, embeddings: Path, out: Path, batch_size: int) -> int:
    """Reference: pyarrow iter_batches -> onnxruntime -> one Parquet file per input file; returns rows scored."""
    import onnxruntime as ort
    import pyarrow.parquet as pq

    from silverset.components.common.artifacts import read_model_metadata
    from silverset.components.score.bulk import scores_batch, vectors_of_batch

    meta = read_model_metadata(model_dir)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(model_dir / "model.onnx"), options, providers=["CPUExecutionProvider"])
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    rows = 0
    for i, path in enumerate(sorted(embeddings.glob("*.parquet"))):
        writer = None
        for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_size):
            probs = session.run(None, {"embeddings": vectors_of_batch(batch, meta.dimension)})[0]
            table = scores_batch(batch.column(0), probs, meta)
            writer = writer or pq.ParquetWriter(out / f"part-{i}.parquet", table.schema)
            writer.write_table(table)
            rows += len(probs)
        writer.close()
    return rows


def write_items(
    folder: Path, *, items: int, files: int, dimension: int, embedder: str, row_group_rows: int | None = None
) -> int:
    """``files`` Parquet files of random float32 [items / files, dimension] embeddings.

    ``row_group_rows`` None: one row group per file (what ``tables.write_table`` writes for embed's shards today).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from silverset.components.common import schemas, tables

    rng = np.random.default_rng(0)
    per_file = items // files
    for f in range(files):
        vectors = rng.standard_normal((per_file, dimension), dtype=np.float32)
        table = pa.table(
            {
                "video_id": [f"b{f}-{i}" for i in range(per_file)],
                "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), dimension),
                "embedder_id": [embedder] * per_file,
            }
        )
        if row_group_rows is None:
            tables.write_table(table, folder / f"part-{f}.parquet", schemas.embeddings_schema(dimension))
        else:
            folder.mkdir(parents=True, exist_ok=True)
            pq.write_table(
                table.cast(schemas.embeddings_schema(dimension)),
                folder / f"part-{f}.parquet",
                row_group_size=row_group_rows,
            )
    return per_file * files


def timed(fn, items: int) -> dict:
    load_before = os.getloadavg()[0]
    cpu0, start = time.process_time(), time.perf_counter()
    scored = fn()
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu0
    assert scored == items, (scored, items)
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "load_1min_before": round(load_before, 2),
        "load_1min_after": round(os.getloadavg()[0], 2),
    }


def summary(runs: list[dict], items: int) -> dict:
    wall = statistics.median(r["seconds"] for r in runs)
    cpu = statistics.median(r["cpu_seconds"] for r in runs)
    return {
        "median_seconds": round(wall, 3),
        "median_cpu_seconds": round(cpu, 3),
        "items_per_min": round(items / wall * 60),
        "items_per_min_per_cpu_second": round(items / cpu * 60),
        "rounds": [{k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()} for r in runs],
    }


# What each stage's time is, from the profile of one Beam run: (label, [(file suffix, function name)]).
# Times are cumulative per function; stages do not nest in one another (checked: none calls another's function).
STAGES = [
    ("parquet_read", [("pyarrow/parquet/core.py", "read_row_group")]),
    ("tfxio_telemetry", [("tfx_bsl/tfxio/telemetry.py", "process")]),
    ("check_and_cut_blocks", [("score/bulk.py", "check")]),
    ("inference", [("score/handlers.py", "run_inference")]),
    ("scores_table", [("score/bulk.py", "to_scores")]),
    ("parquet_write", [("apache_beam/io/parquetio.py", "write_record"), ("apache_beam/io/parquetio.py", "close")]),
    (
        "coders_encode_decode_size",
        [
            ("score/handlers.py", "encode"),
            ("score/handlers.py", "decode"),
            ("score/handlers.py", "estimate_size"),
            ("~", "<built-in method _pickle.dumps>"),
            ("~", "<built-in method _pickle.loads>"),
        ],
    ),
    ("write_finalize", [("apache_beam/io/filebasedsink.py", "finalize_write")]),
]


def profile_breakdown(fn) -> dict:
    """Seconds per stage of one profiled call of ``fn`` (a Beam run): see ``STAGES``."""
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.enable()
    fn()
    profiler.disable()
    total = time.perf_counter() - start
    stats = pstats.Stats(profiler).stats  # (file, line, name) -> (cc, nc, tottime, cumtime, callers)

    def cumulative(file_suffix: str, name: str) -> float:
        return sum(v[3] for (f, _, n), v in stats.items() if n == name and f.endswith(file_suffix))

    out = {label: round(sum(cumulative(f, n) for f, n in parts), 3) for label, parts in STAGES}
    running = cumulative("fn_api_runner/fn_runner.py", "run_stages")
    out["beam_graph_construction_and_translation"] = round(total - running, 3)
    out["beam_runtime_other"] = round(running - sum(out[label] for label, _ in STAGES), 3)
    out["total_profiled_seconds"] = round(total, 3)
    out["note"] = "cProfile adds overhead per Python call: it inflates graph construction (many small calls) most"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--items", type=int, nargs="+", default=[200_000])
    parser.add_argument("--full", action="store_true", help="also the issue's 1M items")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dimension", type=int, default=384)
    parser.add_argument("--batch-size", type=int, default=8192, help="rows per inference call, Beam and loop alike")
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument(
        "--row-group-rows",
        type=int,
        nargs="+",
        default=[0, 65536],
        help="input layouts to time: rows per Parquet row group (0: one row group per file)",
    )
    parser.add_argument("--torchscript", action="store_true", help="also time the TorchScript handler once per size")
    parser.add_argument("--profile", action="store_true", help="one cProfile'd Beam run per size and layout, by stage")
    args = parser.parse_args()
    sizes = sorted(set(args.items + ([1_000_000] if args.full else [])))

    from silverset.components.common import tables
    from silverset.components.distill.student import StudentOptions
    from silverset.components.distill.train import run as distill
    from tests.helpers.factories import write_synthetic

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    work = Path(tempfile.mkdtemp(prefix="bulk-scoring-"))
    load_at_start = list(os.getloadavg())
    train = write_synthetic(work / "train", n=2000, dimension=args.dimension)
    spec = str(Path(__file__).resolve().parents[1] / "components" / "corpus" / "attributes" / "red_dominant.yaml")
    distill(
        embeddings=train["embeddings"],
        labels=train["labels"],
        attribute_spec=spec,
        out_dir=str(work / "model"),
        options=StudentOptions(architecture="mlp", hidden_units=128, max_epochs=30),
        measure_latency=False,
    )
    embedder = tables.read_table(train["embeddings"]).column("embedder_id")[0].as_py()

    # Import Beam, its RunInference (which imports torch), tfx-bsl/TensorFlow and ORT before timing:
    # a worker pays that once, not per run.
    import apache_beam  # noqa: F401
    import apache_beam.ml.inference.base  # noqa: F401
    import apache_beam.ml.inference.onnx_inference  # noqa: F401
    import tfx_bsl.tfxio.parquet_tfxio  # noqa: F401

    from silverset.components.score.bulk import ScoreOptions
    from silverset.components.score.bulk import run as score

    def beam(folder: Path, out: str, **options) -> int:
        shutil.rmtree(work / out, ignore_errors=True)
        return score(
            model_dir=str(work / "model"),
            embeddings=str(folder),
            out_dir=str(work / out),
            options=ScoreOptions(batch_size=args.batch_size, **options),
        ).scored

    tiny = work / "tiny"
    tiny_items = write_items(tiny, items=1024, files=args.files, dimension=args.dimension, embedder=embedder)
    beam(tiny, "warm-up")  # first run also pays lazy imports inside Beam's runner; not a per-run cost
    fixed_runs = []

    layouts: dict = {}
    for row_group_rows in args.row_group_rows:
        layout = "one_row_group_per_file" if not row_group_rows else f"row_groups_of_{row_group_rows}_rows"
        layouts[layout] = {}
        for items in sizes:
            folder = work / f"bulk-{items}-{row_group_rows}"
            items = write_items(
                folder,
                items=items,
                files=args.files,
                dimension=args.dimension,
                embedder=embedder,
                row_group_rows=row_group_rows or None,
            )
            loop_runs, beam_runs = [], []
            for r in range(args.rounds):
                order = ["loop", "beam"] if r % 2 == 0 else ["beam", "loop"]
                for which in order:
                    if which == "loop":
                        loop = lambda: plain_loop(work / "model", folder, work / "loop", args.batch_size)  # noqa: E731
                        loop_runs.append(timed(loop, items))
                    else:
                        beam_runs.append(timed(lambda: beam(folder, "beam"), items))
                fixed_runs.append(timed(lambda: beam(tiny, "tiny-scores"), tiny_items))
            loop, beam_onnx = summary(loop_runs, items), summary(beam_runs, items)
            per_round = [b["seconds"] / a["seconds"] for a, b in zip(loop_runs, beam_runs)]
            entry = {
                "items": items,
                "plain_loop": loop,
                "beam_onnx": beam_onnx,
                "beam_over_loop_time_ratio": round(beam_onnx["median_seconds"] / loop["median_seconds"], 3),
                "beam_over_loop_time_ratio_per_round": [round(x, 3) for x in per_round],
                "beam_over_loop_cpu_ratio": round(beam_onnx["median_cpu_seconds"] / loop["median_cpu_seconds"], 3),
                "goals": {
                    "beam_at_least_10M_items_per_min": beam_onnx["items_per_min"] >= 10_000_000,
                    "beam_within_1.3x_of_loop_time": beam_onnx["median_seconds"] <= 1.3 * loop["median_seconds"],
                },
            }
            if args.torchscript and row_group_rows == args.row_group_rows[0]:
                torchscript = timed(lambda: beam(folder, "beam-ts", backend="torchscript"), items)
                entry["beam_torchscript_once"] = summary([torchscript], items)
            if args.profile:
                entry["beam_onnx_profile_seconds_by_stage"] = profile_breakdown(lambda: beam(folder, "beam-profiled"))
            layouts[layout][str(items)] = entry
            print(json.dumps({layout: {items: entry}}, indent=2), flush=True)
            shutil.rmtree(folder, ignore_errors=True)

    report = {
        "benchmark": "bulk_scoring",
        "sizes_run": sizes,
        "what": f"{args.dimension}-d MLP student (hidden 128), ONNX Runtime 1 intra-op thread; Beam DirectRunner "
        f"(in-process), ParquetTFXIO row-group RecordBatches cut into {args.batch_size}-row ScoringBlocks, one "
        f"per RunInference call (pre-batched, no BatchElements); {args.files} input files per size, in each "
        "row-group layout; wall time "
        "including Parquet read and write, excluding library import. Reference in the same run: pyarrow "
        "iter_batches -> the same ONNX session settings -> ParquetWriter, in one process, same batch size; "
        f"{args.rounds} alternating rounds, medians.",
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "note": "2 cores shared with other engineers' jobs; load_1min_* is os.getloadavg() around each timing",
        },
        "load_average_at_start": load_at_start,
        "load_average_at_end": list(os.getloadavg()),
        "dimension": args.dimension,
        "beam_fixed_cost_run": {"items": tiny_items, **summary(fixed_runs, tiny_items)},
        "input_layouts": layouts,
        "before_this_change": {
            "issue_19_1M": {"beam_items_per_min": 8_900_000, "loop_items_per_min": 14_800_000, "ratio": 1.68},
            "side_by_side_1M_one_row_group_per_file": {
                "how": "the previous bulk.py/handlers.py (commit 5de1085) loaded beside the current ones in one "
                "process, "
                "alternating with the loop, 2 rounds, medians; load average 1.5-3.7",
                "plain_loop_seconds": 2.184,
                "beam_before_seconds": 6.517,
                "beam_now_seconds": 4.855,
                "cpu_seconds": {"plain_loop": 2.198, "beam_before": 6.485, "beam_now": 4.711},
            },
            "side_by_side_200k_one_row_group_per_file": {
                "plain_loop_seconds": 0.501,
                "beam_before_seconds": 1.21,
                "beam_now_seconds": 1.192,
                "rounds": 3,
            },
            "cause": "three PCollections on the scoring path were untyped (blocks, RunInference's keyed "
            "PredictionResults, the scores tables; plus BatchElements' lists), so Beam's size sampling "
            "pickled ~35 elements of each per run, each holding a whole 8192 x 384 float32 block (12.6 MB) "
            "or, for PredictionResult, the block again as its example; tfx-bsl's telemetry updated per-row "
            "distributions on a random 10% of row groups (~0.3 s per 50k rows)",
        },
        "remaining_gap": (
            "what is left is (1) the fixed cost of one Beam run (graph construction, translation, runner start, model "
            "load: beam_fixed_cost_run, ~0.45 CPU-s), which dominates at 200k, and (2) Beam's Parquet read inside "
            "tfx-bsl's ParquetTFXIO, which materializes each whole row group through a Python file object: every "
            "byte lands in freshly mapped memory (page faults: ~384k minor faults and 1-3 s of system time per 1M x "
            "384 read in one-row-group files, measured with getrusage), where the loop's iter_batches streams through "
            "reused buffers (~10k faults). Smaller row groups (65,536 rows) shrink (2); neither is in the scoring "
            "code: the read is tfx-bsl's, the layout is the embed stage's."
        ),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bulk_scoring.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: report[k] for k in ("sizes_run", "beam_fixed_cost_run")}, indent=2))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
