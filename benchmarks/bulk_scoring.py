"""Bulk scoring throughput of a 384-d MLP student: Beam RunInference over ParquetTFXIO RecordBatches (target)
vs a plain in-process loop over the same Parquet files with the same ONNX session settings (baseline).
Targets: Beam within 2x of the loop, and >= 500k items/min on this machine."""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "components" / "distill"))


def plain_loop(model_dir: Path, embeddings: Path, out: Path, batch_size: int) -> int:
    """Baseline: pyarrow iter_batches -> onnxruntime -> one Parquet file per input file; returns rows scored."""
    import onnxruntime as ort
    import pyarrow.parquet as pq

    from silverset.components.distill.train import read_metadata
    from silverset.components.score.bulk import scores_batch, vectors_of_batch

    meta = read_metadata(model_dir)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(model_dir / "model.onnx"), options, providers=["CPUExecutionProvider"])
    out.mkdir(parents=True, exist_ok=True)
    rows = 0
    for i, path in enumerate(sorted(embeddings.glob("*.parquet"))):
        writer = None
        for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_size):
            probs = session.run(None, {"embeddings": vectors_of_batch(batch, meta["dimension"])})[0]
            table = scores_batch(batch.column(0), probs, meta)
            writer = writer or pq.ParquetWriter(out / f"part-{i}.parquet", table.schema)
            writer.write_table(table)
            rows += len(probs)
        writer.close()
    return rows


def write_items(folder: Path, *, items: int, files: int, dimension: int, embedder: str, row_group_rows: int | None = None) -> int:
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
        table = pa.table({"video_id": [f"b{f}-{i}" for i in range(per_file)],
                          "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), dimension),
                          "embedder_id": [embedder] * per_file})
        if row_group_rows is None:
            tables.write_table(table, folder / f"part-{f}.parquet", schemas.embeddings_schema(dimension))
        else:
            folder.mkdir(parents=True, exist_ok=True)
            pq.write_table(table.cast(schemas.embeddings_schema(dimension)), folder / f"part-{f}.parquet", row_group_size=row_group_rows)
    return per_file * files


def timed(fn, items: int) -> dict:
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    scored = fn()
    seconds = time.perf_counter() - start
    assert scored == items, (scored, items)
    return {"seconds": round(seconds, 3), "items": items, "items_per_min": round(items / seconds * 60),
            "load_1min_before": round(load_before, 2), "load_1min_after": round(os.getloadavg()[0], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--items", type=int, nargs="+", default=[200_000, 1_000_000])
    parser.add_argument("--dimension", type=int, default=384)
    parser.add_argument("--batch-size", type=int, default=8192, help="rows per inference call, Beam and loop alike")
    parser.add_argument("--loop-batch-size", type=int, default=1024, help="a second loop baseline at this batch size (the faster loop is the baseline)")
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--row-group-rows", type=int, nargs="+", default=[0, 65536],
                        help="input layouts to time: rows per Parquet row group (0: one row group per file)")
    parser.add_argument("--torchscript-items", type=int, default=200_000, help="also time the TorchScript handler at this size (0: skip)")
    args = parser.parse_args()

    from distill_data import write_synthetic
    from silverset.components.common import tables
    from silverset.components.distill.student import StudentOptions
    from silverset.components.distill.train import run as distill

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    work = Path(tempfile.mkdtemp(prefix="bulk-scoring-"))
    train = write_synthetic(work / "train", n=2000, dimension=args.dimension)
    spec = str(Path(__file__).resolve().parents[1] / "components" / "corpus" / "attributes" / "red_dominant.yaml")
    distill(embeddings=train["embeddings"], labels=train["labels"], attribute=spec,
            out=str(work / "model"), options=StudentOptions(architecture="mlp", hidden_units=128, max_epochs=30), measure_latency=False)
    embedder = tables.read_table(train["embeddings"]).column("embedder_id")[0].as_py()

    # Import Beam, its RunInference (which imports torch), tfx-bsl/TensorFlow and ORT before timing:
    # a worker pays that once, not per run.
    import apache_beam  # noqa: F401
    import apache_beam.ml.inference.base  # noqa: F401
    import apache_beam.ml.inference.onnx_inference  # noqa: F401
    import tfx_bsl.tfxio.parquet_tfxio  # noqa: F401

    from silverset.components.score.bulk import ScoreOptions, run as score

    def beam(folder: Path, out: str, **options) -> int:
        return score(model=str(work / "model"), embeddings=str(folder), out=str(work / out),
                     options=ScoreOptions(batch_size=args.batch_size, **options))["scored"]

    # Fixed cost of one Beam run (pipeline construction, runner start-up, model load, write finalize):
    # the same pipeline over 4 x 256 rows.
    tiny = work / "tiny"
    tiny_items = write_items(tiny, items=1024, files=args.files, dimension=args.dimension, embedder=embedder)
    beam(tiny, "warm-up")  # first run also pays lazy imports inside Beam's runner; not a per-run cost
    fixed = timed(lambda: beam(tiny, "tiny-onnx"), tiny_items)

    layouts = {}
    for row_group_rows in args.row_group_rows:
        layout = "one_row_group_per_file" if not row_group_rows else f"row_groups_of_{row_group_rows}_rows"
        sizes = layouts[layout] = {}
        for items in args.items:
            folder = work / f"bulk-{items}-{row_group_rows}"
            items = write_items(folder, items=items, files=args.files, dimension=args.dimension, embedder=embedder,
                                row_group_rows=row_group_rows or None)
            results = {
                f"plain_loop_batch_{args.loop_batch_size}": timed(lambda: plain_loop(work / "model", folder, work / "loop-a", args.loop_batch_size), items),
                f"plain_loop_batch_{args.batch_size}": timed(lambda: plain_loop(work / "model", folder, work / "loop-b", args.batch_size), items),
                "beam_onnx": timed(lambda: beam(folder, f"beam-onnx-{items}-{row_group_rows}"), items),
            }
            if items == args.torchscript_items and not row_group_rows:
                results["beam_torchscript"] = timed(lambda: beam(folder, f"beam-ts-{items}", backend="torchscript"), items)
            loop_seconds = min(v["seconds"] for k, v in results.items() if k.startswith("plain_loop"))
            beam_seconds = results["beam_onnx"]["seconds"]
            steady = beam_seconds - fixed["seconds"]
            sizes[str(items)] = {
                "results": results,
                "beam_onnx_over_fastest_loop_time_ratio": round(beam_seconds / loop_seconds, 3),
                "beam_onnx_steady_state": {
                    "seconds": round(steady, 3),
                    "items_per_min": round(items / steady * 60) if steady > 0 else None,
                    "over_fastest_loop_time_ratio": round(steady / loop_seconds, 3),
                    "how": "end-to-end seconds minus the fixed-cost run's seconds",
                },
                "targets": {"beam_within_2x_of_loop_end_to_end": beam_seconds / loop_seconds <= 2.0,
                            "beam_onnx_at_least_500k_items_per_min_end_to_end": results["beam_onnx"]["items_per_min"] >= 500_000},
            }
            print(json.dumps({layout: {items: sizes[str(items)]}}, indent=2), flush=True)
            shutil.rmtree(folder, ignore_errors=True)

    report = {
        "benchmark": "bulk_scoring",
        "what": f"{args.dimension}-d MLP student (hidden 128), ONNX Runtime 1 intra-op thread; Beam DirectRunner (in-process), "
                f"ParquetTFXIO row-group RecordBatches cut into {args.batch_size}-row blocks per RunInference call; "
                f"{args.files} input files per size, in each row-group layout; wall time including Parquet read and write, excluding library import. "
                "Baseline: pyarrow iter_batches -> the same ONNX session settings -> ParquetWriter, in one process.",
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version(),
                    "note": "2 cores shared with other engineers' jobs; load_1min_* is os.getloadavg() around each timing"},
        "dimension": args.dimension,
        "layout_note": "Beam's Parquet read (inside tfx-bsl's ParquetTFXIO) materializes one whole row group per element through a "
                       "Python file object; the loop streams iter_batches natively, so it does not care. One 250k-row (385 MB) "
                       "row group per file is what embed's shards get from tables.write_table today; ~100 MB row groups "
                       "(65536 rows x 384-d) are the usual Parquet sizing.",
        "beam_fixed_cost_run": fixed,
        "input_layouts": layouts,
        "before_this_change": {
            "items": 200000, "plain_loop_seconds": 1.357, "beam_onnx_seconds": 16.143, "beam_onnx_items_per_min": 743361,
            "ratio": 11.896, "cause": "tfx-bsl sliced each row group into 1024-row RecordBatches; Beam samples elements of "
                                      "every PCollection for size by pickling them, and pickling a zero-copy slice pickles its "
                                      "whole parent buffers (~77 MB per 50k-row row group); a Flatten over per-file reads also "
                                      "pickled every row group across a stage boundary",
        },
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bulk_scoring.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
