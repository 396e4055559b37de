"""Benchmark: does the studio's active learning beat random labelling? AP against truth after N labels.

A simulated labeler (answers from the truth table) labels videos with each strategy: the bandit feed
selectors (UCB, epsilon-greedy, round robin), each single feed (top positive, top negative, borderline,
random after the search bootstrap) and random only (no search, no model). After N = 25, 50, 100, 200
labels a logistic regression on the labelled embeddings is scored by average precision on a held-out
20% of the corpus. Repeated over several seeds (and attributes, with --workdir); the mean is reported.

Corpus: ``--workdir W`` reads W/embeddings and W/truth.parquet (the synthetic corpus after the embed stage)
with text search over the embeddings' MiniLM text block; without it, a clustered-Gaussian corpus with known
truth is generated (search = keyword match on its titles through a hashed bag of words).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from silverset.components.studio import simulate

BUDGETS = (25, 50, 100, 200)


def _bag_of_words(texts: list[str], dims: int = 2048) -> np.ndarray:
    import hashlib
    import re

    out = np.zeros((len(texts), dims), dtype=np.float32)
    for i, text in enumerate(texts):
        for word in re.findall(r"[a-z0-9]+", text.lower()):
            out[i, int(hashlib.md5(word.encode()).hexdigest(), 16) % dims] += 1.0
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def generated_tasks(seeds: int, videos: int) -> list[dict]:
    tasks = []
    for seed in range(seeds):
        corpus = simulate.clustered_corpus(n=videos, dimension=64, clusters=24, positive_clusters=3, seed=seed)
        text = _bag_of_words(corpus.titles)
        similarity = text @ _bag_of_words([corpus.keyword])[0]
        tasks.append({"name": f"generated-seed{seed}", "embeddings": corpus.embeddings, "truth": corpus.truth,
                      "similarity": similarity, "seed": seed})
    return tasks


def workdir_tasks(workdir: Path, seeds: int) -> list[dict]:
    from silverset.components.common import schemas, tables
    from silverset.components.embed.embed import text_block
    from silverset.components.embed.text import embed_query_text
    from silverset.components.studio.catalog import load_catalog

    catalog = load_catalog(embeddings=workdir / "embeddings")
    truth_table = tables.read_table(workdir / "truth.parquet", schemas.TRUTH).to_pylist()
    text = text_block(catalog.embeddings, catalog.embedder_id)
    queries = {"red_dominant": "red", "moving_object": "moving ball", "frequent_cuts": "fast cuts", "onscreen_text": "captions"}
    tasks = []
    for attribute, query in queries.items():
        truth_of = {r["video_id"]: r["label"] for r in truth_table if r["attribute"] == attribute}
        truth = np.array([truth_of.get(v, 0) for v in catalog.video_ids], dtype=np.int64)
        similarity = text @ embed_query_text(query)[0]
        for seed in range(seeds):
            tasks.append({"name": f"{attribute}-seed{seed}", "embeddings": catalog.embeddings, "truth": truth,
                          "similarity": similarity, "seed": seed})
    return tasks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--workdir", type=Path, default=None, help="Use W/embeddings + W/truth.parquet instead of a generated corpus")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--videos", type=int, default=3000, help="Generated corpus size")
    args = parser.parse_args(argv)

    from rich.progress import Progress

    tasks = workdir_tasks(args.workdir, args.seeds) if args.workdir else generated_tasks(args.seeds, args.videos)
    results: dict[str, list[dict]] = {s: [] for s in simulate.STRATEGIES}
    started = time.perf_counter()
    with Progress() as progress:
        bar = progress.add_task("simulated labelling", total=len(tasks) * len(simulate.STRATEGIES))
        for task in tasks:
            rng = np.random.default_rng(task["seed"])
            order = rng.permutation(len(task["truth"]))
            test, pool = order[: len(order) // 5], order[len(order) // 5:]
            for strategy in simulate.STRATEGIES:
                run = simulate.run_strategy(strategy, embeddings=task["embeddings"], truth=task["truth"],
                                            search_similarity=task["similarity"], pool=pool, test=test,
                                            budgets=BUDGETS, seed=task["seed"])
                results[strategy].append({"task": task["name"], "ap": run["ap"], "arms": run["arms"],
                                          "positives_labelled": run["positives_labelled"]})
                progress.advance(bar)
    table = {s: {str(n): float(np.mean([r["ap"][n] for r in runs])) for n in BUDGETS} for s, runs in results.items()}
    spread = {s: {str(n): float(np.std([r["ap"][n] for r in runs])) for n in BUDGETS} for s, runs in results.items()}
    prevalence = float(np.mean([t["truth"].mean() for t in tasks]))
    summary = {
        "benchmark": "studio_active_learning",
        "corpus": str(args.workdir) if args.workdir else f"generated clustered Gaussians, {args.videos} videos, d=64, 24 clusters",
        "tasks": len(tasks), "prevalence": prevalence, "budgets": list(BUDGETS), "batch": 25,
        "metric": "average precision on a held-out 20% against truth (mean over tasks)",
        "baseline": "random_only",
        "mean_ap": table, "std_ap": spread,
        "gain_vs_random_only": {s: {n: table[s][n] - table["random_only"][n] for n in table[s]} for s in table},
        "runs": results, "seconds": time.perf_counter() - started,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "studio_active_learning.json").write_text(json.dumps(summary, indent=2) + "\n")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for strategy in simulate.STRATEGIES:
        style = "-" if strategy in ("ucb", "epsilon_greedy", "round_robin") else ("--" if strategy != "random_only" else ":")
        ax.plot(BUDGETS, [table[strategy][str(n)] for n in BUDGETS], style, marker="o", label=strategy, linewidth=2 if strategy in ("ucb", "random_only") else 1)
    ax.axhline(prevalence, color="grey", linewidth=0.8, label="prevalence (AP of chance)")
    ax.set_xscale("log")
    ax.minorticks_off()
    ax.set_xticks(BUDGETS, [str(n) for n in BUDGETS])
    ax.set_xlabel("labels (N)")
    ax.set_ylabel("held-out AP vs truth")
    ax.set_title("Studio active learning: AP after N simulated labels")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out / "studio_active_learning.png", dpi=120)

    header = "strategy".ljust(16) + "".join(f"N={n}".rjust(9) for n in BUDGETS)
    print(header)
    for strategy in simulate.STRATEGIES:
        print(strategy.ljust(16) + "".join(f"{table[strategy][str(n)]:9.3f}" for n in BUDGETS))
    print(f"prevalence {prevalence:.3f}; {len(tasks)} tasks; {summary['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
