"""One scale point of each cost curve, measured through Silverset's own entry points (for ``benchmarks.cost_curves``).

Each ``measure_<stage>(n=..., work=..., options)`` runs in its own child process (``cost_curves`` starts it), so
its peak RSS (``resource.getrusage(...).ru_maxrss``, of this process and of the processes it waited for) is that
point's alone, and the data it made is freed with it. Every function returns a dict of plain JSON values with at
least ``n``, ``seconds`` and ``rate``; the load average around each timing is recorded beside it.

- frames: a synthetic corpus (``corpus.synth``) of ``n`` videos framed by ``frames.pipeline.run`` (Beam,
  DirectRunner) once whole and then as ``shards`` shards run one after another (as kfp.local runs a ParallelFor
  on this machine); the shards' union row count must equal the single run's.
- scoring: ``n`` random 384-d embeddings (``benchmarks.bulk_scoring.write_items``, files of at most
  ``SCORING_FILE_ROWS`` rows so no more than one file's vectors are in memory while writing) scored by
  ``score.bulk.run`` (Beam RunInference, ONNX) and by ``score.shards.run_shard`` per shard, one after another.
- index: ``n`` + queries 128-d clustered unit vectors (the distribution of ``benchmarks.ann.clustered``, made in
  chunks) -> ``index.build.build_index`` (the build-time tuning grid as the pipeline runs it); peak RSS of the
  build over the RSS after loading the vectors; single-thread QPS and recall@10 of held-out queries on the
  served searcher with its served parameters.
- pipeline: ``pipelines.demo.run_demo`` with ``n`` videos and ``shards``; per kfp.local task seconds (from the
  demo's task events), summed per task name.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import time
from pathlib import Path

import numpy as np

SCORING_DIMENSION = 384
SCORING_FILE_ROWS = 250_000
SCORING_ROW_GROUP = 65_536
INDEX_DIMENSION = 128
INDEX_QUERIES = 300
ROOT = Path(__file__).resolve().parents[1]


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def peak_rss_mib() -> dict:
    """High-water RSS of this process and of the largest child it has waited for (MiB)."""
    return {
        "self": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "children": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
    }


def _field(summary, name: str):
    """``name`` of a stage's summary: a dict, or a pydantic model (the entry points are moving to typed summaries)."""
    return summary[name] if isinstance(summary, dict) else getattr(summary, name)


def _timed(fn) -> tuple[object, dict]:
    load_before, started = _load(), time.perf_counter()
    result = fn()
    return result, {
        "seconds": round(time.perf_counter() - started, 3),
        "load_1min_before": load_before,
        "load_1min_after": _load(),
    }


# ----------------------------------------------------------------------------------------------------------- frames


def measure_frames(*, n: int, work: Path, shards: int, duration_s: float, width: int, height: int, k: int) -> dict:
    from silverset.components.common import tables
    from silverset.components.common.sharding import Shard
    from silverset.components.corpus.synth import SynthOptions
    from silverset.components.corpus.synth import run as synth
    from silverset.components.frames.extract import FrameOptions
    from silverset.components.frames.pipeline import FramesSummary
    from silverset.components.frames.pipeline import run as frames

    def extract(manifest: str, out: Path, shard: Shard = Shard()) -> FramesSummary:
        return frames(
            manifest_uri=manifest, out_dir=str(out), options=FrameOptions(frames_per_video=k, size=112), shard=shard
        )

    warm = synth(
        out_dir=work / "warm-corpus",
        options=SynthOptions(videos=4, seed=1, duration_s=duration_s, width=width, height=height),
    )
    extract(warm.manifest_uri, work / "warm-frames")  # Beam's lazy imports and runner start: paid once per worker
    corpus, synth_t = _timed(
        lambda: synth(
            out_dir=work / "corpus",
            options=SynthOptions(videos=n, seed=0, duration_s=duration_s, width=width, height=height),
        )
    )
    manifest = corpus.manifest_uri  # type: ignore[attr-defined]
    single, single_t = _timed(lambda: extract(manifest, work / "frames-single"))
    assert single.videos_ok == n, single  # type: ignore[attr-defined]
    per_shard = []
    for index in range(shards):
        summary, timing = _timed(lambda: extract(manifest, work / "frames-sharded", Shard(index, shards)))
        per_shard.append({"shard": f"{index}/{shards}", "videos": summary.inputs, **timing})  # type: ignore[attr-defined]
    union_rows = tables.read_table(str(work / "frames-sharded")).num_rows
    sharded_s = sum(s["seconds"] for s in per_shard)
    return {
        "n": n,
        "seconds": single_t["seconds"],
        "rate": round(n / single_t["seconds"], 2),
        "rate_unit": "videos/s",
        "frames_rows": single.frames,  # type: ignore[attr-defined]
        "timing": single_t,
        "corpus_synth_seconds": synth_t["seconds"],
        "sharded": {
            "shards": shards,
            "seconds": round(sharded_s, 3),
            "rate": round(n / sharded_s, 2),
            "per_shard": per_shard,
            "union_rows": union_rows,
            "union_rows_equal_single_run": union_rows == _field(single, "frames"),
        },
    }


# ---------------------------------------------------------------------------------------------------------- scoring


def _student(work: Path) -> tuple[Path, str]:
    """Train the benchmark's 384-d MLP student once (as benchmarks.bulk_scoring does); its folder and embedder id."""
    from silverset.components.common import tables
    from silverset.components.distill.student import StudentOptions
    from silverset.components.distill.train import run as distill
    from tests.helpers.factories import write_synthetic

    model = work / "model"
    train = write_synthetic(work / "train", n=2000, dimension=SCORING_DIMENSION)
    embedder = tables.read_table(train["embeddings"]).column("embedder_id")[0].as_py()
    if not (model / "model.onnx").exists():
        distill(
            embeddings=train["embeddings"],
            labels=train["labels"],
            attribute_spec=str(ROOT / "components" / "corpus" / "attributes" / "red_dominant.yaml"),
            out_dir=str(model),
            options=StudentOptions(architecture="mlp", hidden_units=128, max_epochs=30),
            measure_latency=False,
        )
    return model, embedder


def measure_scoring(*, n: int, work: Path, shards: int) -> dict:
    from benchmarks.bulk_scoring import write_items
    from silverset.components.common import tables
    from silverset.components.common.sharding import Shard
    from silverset.components.score.bulk import ScoreOptions
    from silverset.components.score.bulk import run as score
    from silverset.components.score.shards import run_shard

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    model, embedder = _student(work.parent / "scoring-model")
    options = ScoreOptions(batch_size=8192)
    files = max(1, -(-n // SCORING_FILE_ROWS))

    def write(folder: Path, items: int, count: int) -> int:
        return write_items(
            folder,
            items=items,
            files=count,
            dimension=SCORING_DIMENSION,
            embedder=embedder,
            row_group_rows=SCORING_ROW_GROUP,
        )

    write(work / "warm", 1024, 1)
    score(model_dir=str(model), embeddings=str(work / "warm"), out_dir=str(work / "warm-scores"), options=options)
    items, write_t = _timed(lambda: write(work / "embeddings", n, files))
    assert items == n, (items, n)
    single, single_t = _timed(
        lambda: score(
            model_dir=str(model), embeddings=str(work / "embeddings"), out_dir=str(work / "single"), options=options
        )
    )
    assert single.scored == n, single  # type: ignore[attr-defined]
    shutil.rmtree(work / "single", ignore_errors=True)
    per_shard = []
    for index in range(shards):
        summary, timing = _timed(
            lambda: run_shard(
                model_dir=str(model),
                embeddings=str(work / "embeddings"),
                out_dir=str(work / "sharded"),
                shard=Shard(index, shards),
                options=options,
            )
        )
        per_shard.append({"shard": f"{index}/{shards}", "items": summary.scored, **timing})  # type: ignore[attr-defined]
    union_rows = tables.read_table(str(work / "sharded")).num_rows
    sharded_s = sum(s["seconds"] for s in per_shard)
    shutil.rmtree(work / "embeddings", ignore_errors=True)
    shutil.rmtree(work / "sharded", ignore_errors=True)
    return {
        "n": n,
        "seconds": single_t["seconds"],
        "rate": round(n / single_t["seconds"] * 60),
        "rate_unit": "items/min",
        "input_files": files,
        "timing": single_t,
        "write_embeddings_seconds": write_t["seconds"],
        "sharded": {
            "shards": shards,
            "seconds": round(sharded_s, 3),
            "rate": round(n / sharded_s * 60),
            "per_shard": per_shard,
            "union_rows": union_rows,
            "union_rows_equal_single_run": union_rows == _field(single, "scored"),
            "note": "each shard first copies the rows it owns (run_shard's owned_rows), then runs bulk.run",
        },
    }


# ------------------------------------------------------------------------------------------------------------ index


def clustered_chunks(path: Path, *, n: int, d: int, clusters: int = 1000, seed: int = 0, chunk: int = 250_000) -> Path:
    """float32 [n, d] unit vectors around ``clusters`` Gaussian centres (``benchmarks.ann.clustered``'s
    distribution: centre + N(0, 1) noise, normalised), written to the .npy ``path`` ``chunk`` rows at a time."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, d)).astype(np.float32)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, d))
    for start in range(0, n, chunk):
        rows = min(chunk, n - start)
        x = centres[rng.integers(0, clusters, rows)]
        x += rng.normal(size=(rows, d)).astype(np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        out[start : start + rows] = x
    out.flush()
    del out
    return path


def measure_index(*, n: int, work: Path, data: str, budget_s: float | None, grid: dict | None = None) -> dict:
    """``grid``: TuningOptions fields narrowing the build's grid (e.g. to the configuration the tuner chose at a
    smaller n: one build-time configuration, its query-time knobs still measured); None: the build's own grid."""
    import pyarrow as pa
    from threadpoolctl import threadpool_limits

    from silverset.components.common.spec import load_spec
    from silverset.components.index import ann
    from silverset.components.index.build import BuildOptions, build_index
    from silverset.components.index.tuning import TuningOptions

    vectors = np.load(data)  # [n + INDEX_QUERIES, d]: the database, then held-out queries from the same clusters
    database, queries = vectors[:n], np.ascontiguousarray(vectors[n:])
    del vectors
    spec = load_spec(ROOT / "components" / "corpus" / "attributes" / "red_dominant.yaml")
    # every video passes the vocabulary rule; ids sort as their row numbers, so vocabulary row i is database row i
    history = pa.table(
        {
            "video_id": [f"v{i:09d}" for i in range(n)],
            "probability": pa.array(np.full(n, 0.9, np.float32)),
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(database.ravel()), database.shape[1]),
        }
    )
    rss_before = peak_rss_mib()["self"]
    narrowed = {key: value for key, value in (grid or {}).items() if key != "chosen_at_n"}
    grid_fields = {**narrowed, **({"budget_s": budget_s} if budget_s else {})}
    options = BuildOptions(grid=TuningOptions(**grid_fields))
    manifest, timing = _timed(
        lambda: build_index(
            history=history, errors=[], model_digest="cost-curves", spec=spec, out=work / "index", options=options
        )
    )
    rss_after = peak_rss_mib()["self"]
    params = manifest.parameters  # type: ignore[attr-defined]
    build = manifest.build  # type: ignore[attr-defined]
    searcher = ann.load_searcher(work / "index" / "scann")
    leaves, depth = params.get("num_leaves_to_search"), params.get("pre_reorder_num_neighbors")
    truth = ann.exact_top_k(database, queries, 10)
    with threadpool_limits(1):
        found = ann.search_batched(searcher, queries, 10, leaves_to_search=leaves, pre_reorder_num_neighbors=depth)
        recall = ann.recall_at_k(found, truth)
        rates = []
        for _ in range(3):
            started = time.perf_counter()
            for q in queries:
                searcher.search(q, final_num_neighbors=10, leaves_to_search=leaves, pre_reorder_num_neighbors=depth)
            rates.append(len(queries) / (time.perf_counter() - started))
    tuning = build.get("tuning", {})
    chosen = tuning.get("chosen", {})
    return {
        "n": n,
        "seconds": timing["seconds"],
        "rate": round(max(rates), 1),
        "rate_unit": "QPS single-thread (best of 3 passes, one query per call)",
        "timing": timing,
        "build_seconds_in_manifest": build.get("seconds"),
        "grid_builds": len(tuning.get("builds", [])),
        "grid_builds_skipped_by_budget": tuning.get("skipped_builds"),
        "tuning_seconds": tuning.get("seconds"),
        "chosen": {key: chosen.get(key) for key in ("num_leaves", "dimensions_per_block", "reorder_quantize")},
        "served_parameters": {"num_leaves_to_search": leaves, "pre_reorder_num_neighbors": depth},
        "recall_at_10_held_out": round(float(recall), 4),
        "held_out_queries": int(len(queries)),
        "qps_passes": [round(r, 1) for r in rates],
        "rss_after_loading_vectors_mib": rss_before,
        "peak_rss_mib_build": rss_after,
        "peak_rss_delta_mib_build": round(rss_after - rss_before, 1),
        "tuning_budget_s": budget_s or TuningOptions().budget_s,
        "grid": "narrowed: " + json.dumps(grid) if grid else "the build's own (as the pipeline runs it)",
    }


# --------------------------------------------------------------------------------------------------------- pipeline


def measure_pipeline(*, n: int, work: Path, shards: int, teacher_dir: Path) -> dict:
    from silverset.pipelines.demo import PIPELINE_STAGE, run_demo

    events: list = []
    workdir = work / "demo"
    workdir.mkdir(parents=True, exist_ok=True)
    teacher_dir.mkdir(parents=True, exist_ok=True)
    (workdir / "teacher").symlink_to(teacher_dir, target_is_directory=True)  # trained once for all points
    summary, timing = _timed(
        lambda: run_demo(
            workdir=workdir,
            videos=n,
            shards=shards,
            on_event=lambda event: events.append(event) if event.phase == "end" else None,
        )
    )
    tasks: dict[str, dict] = {}
    demo_stages: dict[str, float] = {}
    for event in events:
        if event.within == PIPELINE_STAGE:
            entry = tasks.setdefault(event.task, {"seconds": 0.0, "runs": 0, "max_seconds": 0.0})
            entry["seconds"] = round(entry["seconds"] + (event.seconds or 0.0), 3)
            entry["max_seconds"] = round(max(entry["max_seconds"], event.seconds or 0.0), 3)
            entry["runs"] += 1
            if event.count is not None:
                entry["count"] = entry.get("count", 0) + event.count
        else:
            demo_stages[event.task] = round(event.seconds or 0.0, 3)
    pipeline_s = demo_stages.get(PIPELINE_STAGE, float("nan"))
    return {
        "n": n,
        "shards": shards,
        "seconds": pipeline_s,
        "rate": round(n / pipeline_s, 3),
        "rate_unit": "videos/s through the kfp.local pipeline",
        "status": _field(summary, "pipeline")["status"],
        "demo_total_seconds": timing["seconds"],
        "gates": {
            name: {key: _field(summary, f"{name}_gate").get(key) for key in ("passed", "reasons")}
            for name in ("teacher", "student")
        },
        "timing": timing,
        "pipeline_tasks": tasks,
        "demo_stages": demo_stages,
        "note": "task seconds are summed over a task's runs (shards); kfp.local may run two ParallelFor "
        "iterations at once, so summed task seconds can exceed the pipeline's wall seconds",
    }
