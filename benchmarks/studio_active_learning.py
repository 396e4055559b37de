"""Benchmark: the Video Annotator paper's annotation sources and bandits in the studio, by AP after n labels.

A simulated labeler (answers from the truth table) labels videos in batches of d = 25 with each strategy of
``simulate.STRATEGIES``: the paper's three sources alone (``va_loop``: text-search bootstrap to 10 positives and
10 negatives, then the four feeds interleaved; ``random``; ``zero_shot``: top similarity of the attribute's text in
the text tower) and the three bandits over those sources (round robin, epsilon-greedy 0.25, UCB c = 0.01; reward =
change in the studio's model-quality score, as ``Studio.next_batch`` does). After n = 25, 50, 100, 200 labels a
logistic regression on the labelled embeddings is scored by average precision on a held-out 20% of the corpus,
and the data diversity score of the n labels is recorded. Repeated over ``--seeds`` corpora/splits; the JSON holds
per (strategy, n) the mean, the standard deviation and a 95% t-interval of the mean, the paired gain over
``va_loop`` (the paper's baseline for source selection, its Table 3) with its own interval, and the AP the same
classifier reaches with every pool video labelled (what more labels could still buy).

Corpus: without ``--workdir``, a clustered-Gaussian corpus with known truth per seed (the text tower is a hashed
bag of words over titles; search queries the keyword, zero-shot the attribute's definition). ``--workdir W`` reads
W/embeddings and W/truth.parquet (the synthetic corpus after the embed stage) and uses the embeddings' MiniLM text
block, with the example specs' title and first definition sentence as the zero-shot query.

    python -m benchmarks.studio_active_learning            # 10 seeds, 3,000 videos (about a minute on 2 cores)
    python -m benchmarks.studio_active_learning --quick    # 3 seeds, 1,500 videos
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from silverset.components.studio import feeds, scores, simulate

BUDGETS = (25, 50, 100, 200)
BASELINE = "va_loop"


def _bag_of_words(texts: list[str], dims: int = 2048) -> np.ndarray:
    import hashlib
    import re

    out = np.zeros((len(texts), dims), dtype=np.float32)
    for i, text in enumerate(texts):
        for word in re.findall(r"[a-z0-9]+", text.lower()):
            out[i, int(hashlib.md5(word.encode()).hexdigest(), 16) % dims] += 1.0
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def generated_tasks(
    seeds: int, videos: int, *, clusters: int = 24, positive_clusters: int = 3, noise: float = 0.03
) -> list[dict]:
    tasks = []
    for seed in range(seeds):
        corpus = simulate.clustered_corpus(
            n=videos,
            dimension=64,
            clusters=clusters,
            positive_clusters=positive_clusters,
            prevalence_noise=noise,
            seed=seed,
        )
        text = _bag_of_words(corpus.titles)
        tasks.append(
            {
                "name": f"generated-seed{seed}",
                "embeddings": corpus.embeddings,
                "truth": corpus.truth,
                "search": text @ _bag_of_words([corpus.keyword])[0],
                "zero_shot": text @ _bag_of_words([corpus.definition])[0],
                "clusters": scores.corpus_clusters(corpus.embeddings, seed=seed),
                "seed": seed,
            }
        )
    return tasks


def workdir_tasks(workdir: Path, seeds: int) -> list[dict]:
    from silverset.components.common import schemas, tables
    from silverset.components.common.spec import example_specs_dir, parse_spec
    from silverset.components.embed.embed import text_block
    from silverset.components.embed.text import embed_query_text
    from silverset.components.studio.catalog import load_catalog

    catalog = load_catalog(embeddings=workdir / "embeddings")
    truth_table = tables.read_table(workdir / "truth.parquet", schemas.TRUTH).to_pylist()
    text = text_block(catalog.embeddings, catalog.embedder_id)
    queries = {
        "red_dominant": "red",
        "moving_object": "moving ball",
        "frequent_cuts": "fast cuts",
        "onscreen_text": "captions",
    }
    tasks = []
    for attribute, query in queries.items():
        spec = parse_spec((example_specs_dir() / f"{attribute}.yaml").read_text(), source=attribute)
        truth_of = {r["video_id"]: r["label"] for r in truth_table if r["attribute"] == attribute}
        truth = np.array([truth_of.get(v, 0) for v in catalog.video_ids], dtype=np.int64)
        search = text @ embed_query_text(query)[0]
        zero_shot = text @ embed_query_text(feeds.zero_shot_query(title=spec.title, definition=spec.definition))[0]
        for seed in range(seeds):
            tasks.append(
                {
                    "name": f"{attribute}-seed{seed}",
                    "embeddings": catalog.embeddings,
                    "truth": truth,
                    "search": search,
                    "zero_shot": zero_shot,
                    "clusters": catalog.clusters,
                    "seed": seed,
                }
            )
    return tasks


def interval(values: list[float]) -> dict:
    """Mean, sample standard deviation and the 95% t-interval of the mean (None bounds with one value)."""
    from scipy import stats

    x = np.asarray(values, dtype=float)
    mean = float(x.mean())
    if len(x) < 2:
        return {"mean": mean, "std": 0.0, "ci95": [None, None], "runs": len(x)}
    std = float(x.std(ddof=1))
    half = float(stats.t.ppf(0.975, len(x) - 1) * std / np.sqrt(len(x)))
    return {"mean": mean, "std": std, "ci95": [mean - half, mean + half], "runs": len(x)}


def all_pool_ap(task: dict, pool: np.ndarray, test: np.ndarray) -> float:
    """AP of the same classifier trained on every pool video's truth: what labelling could reach on this split."""
    model = feeds.train(task["embeddings"], pool, task["truth"][pool], seed=task["seed"])
    return simulate.average_precision(task["truth"][test], model.probabilities[test])


def run(tasks: list[dict], budgets: tuple[int, ...]) -> tuple[dict[str, list[dict]], list[float]]:
    from rich.progress import Progress

    results: dict[str, list[dict]] = {s: [] for s in simulate.STRATEGIES}
    ceilings = []
    with Progress() as progress:
        bar = progress.add_task("simulated labelling", total=len(tasks) * len(simulate.STRATEGIES))
        for task in tasks:
            order = np.random.default_rng(task["seed"]).permutation(len(task["truth"]))
            test, pool = order[: len(order) // 5], order[len(order) // 5 :]
            ceilings.append(all_pool_ap(task, pool, test))
            for strategy in simulate.STRATEGIES:
                result = simulate.run_strategy(
                    strategy,
                    embeddings=task["embeddings"],
                    truth=task["truth"],
                    search_similarity=task["search"],
                    zero_shot_similarity=task["zero_shot"],
                    pool=pool,
                    test=test,
                    budgets=budgets,
                    clusters=task["clusters"],
                    seed=task["seed"],
                )
                results[strategy].append(
                    {
                        "task": task["name"],
                        "ap": result["ap"],
                        "diversity": result["diversity"],
                        "arms": result["arms"],
                        "bootstrap_labels": result["bootstrap_labels"],
                        "positives_labelled": result["positives_labelled"],
                    }
                )
                progress.advance(bar)
    return results, ceilings


def summarise(results: dict[str, list[dict]], budgets: tuple[int, ...]) -> dict:
    ap = {s: {str(n): interval([r["ap"][n] for r in runs]) for n in budgets} for s, runs in results.items()}
    diversity = {
        s: {str(n): interval([r["diversity"][n] for r in runs]) for n in budgets} for s, runs in results.items()
    }
    gain = {
        s: {str(n): interval([r["ap"][n] - b["ap"][n] for r, b in zip(runs, results[BASELINE])]) for n in budgets}
        for s, runs in results.items()
        if s != BASELINE
    }
    arm_share = {}
    for s, runs in results.items():
        pulls = [arm for r in runs for arm in r["arms"]]
        arm_share[s] = {arm: pulls.count(arm) / max(len(pulls), 1) for arm in simulate.SOURCES}
    return {"ap": ap, "diversity": diversity, "gain_vs_va_loop": gain, "arm_share": arm_share}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument(
        "--workdir", type=Path, default=None, help="Use W/embeddings + W/truth.parquet instead of a generated corpus"
    )
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--videos", type=int, default=3000, help="Generated corpus size")
    parser.add_argument("--budgets", type=int, nargs="+", default=list(BUDGETS), help="Label counts n to score at")
    parser.add_argument("--clusters", type=int, default=24, help="Generated corpus: Gaussian clusters")
    parser.add_argument(
        "--positive-clusters",
        type=int,
        default=3,
        help="Generated corpus: clusters where the attribute holds for 80%% of videos",
    )
    parser.add_argument(
        "--noise", type=float, default=0.03, help="Generated corpus: rate of positives outside the positive clusters"
    )
    parser.add_argument("--quick", action="store_true", help="3 seeds and 1,500 generated videos")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.videos = min(args.seeds, 3), min(args.videos, 1500)
    if args.seeds < 1 or args.videos < 200 or min(args.budgets) < 1:
        parser.error("--seeds must be >= 1, --videos >= 200 and every --budgets value >= 1")
    if not 1 <= args.positive_clusters < args.clusters or not 0.0 <= args.noise < 0.8:
        parser.error("--positive-clusters must be in [1, --clusters) and --noise in [0, 0.8)")
    budgets = tuple(sorted(set(args.budgets)))

    started = time.perf_counter()
    tasks = (
        workdir_tasks(args.workdir, args.seeds)
        if args.workdir
        else generated_tasks(
            args.seeds, args.videos, clusters=args.clusters, positive_clusters=args.positive_clusters, noise=args.noise
        )
    )
    results, ceilings = run(tasks, budgets)
    summary = {
        "benchmark": "studio_active_learning",
        "question": "AP after n labels for the Video Annotator paper's sources (va_loop, random, zero_shot) and "
        "bandits over them (round_robin, epsilon_greedy 0.25, ucb c=0.01), batch d=25",
        "corpus": str(args.workdir)
        if args.workdir
        else (
            f"generated clustered Gaussians, {args.videos} videos, d=64, {args.clusters} clusters "
            f"({args.positive_clusters} 80% positive, {args.noise:.0%} positive elsewhere); "
            "text tower = hashed bag of words of titles"
        ),
        "tasks": len(tasks),
        "prevalence": float(np.mean([t["truth"].mean() for t in tasks])),
        "budgets": list(budgets),
        "batch": 25,
        "strategies": list(simulate.STRATEGIES),
        "metric": "average precision on a held-out 20% against truth; mean, std, 95% t-interval over tasks",
        "baseline": BASELINE,
        "ap_all_pool_labels": interval(ceilings),
        **summarise(results, budgets),
        "bootstrap_labels_mean": {
            s: float(np.mean([r["bootstrap_labels"] for r in runs])) for s, runs in results.items()
        },
        "runs": results,
        "seconds": None,
    }
    summary["seconds"] = time.perf_counter() - started
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "studio_active_learning.json").write_text(json.dumps(summary, indent=2) + "\n")
    _plot(summary, args.out / "studio_active_learning.png")

    print("strategy".ljust(16) + "".join(f"n={n}".rjust(22) for n in budgets))
    for strategy in simulate.STRATEGIES:
        cells = []
        for n in budgets:
            cell = summary["ap"][strategy][str(n)]
            lo, hi = cell["ci95"]
            cells.append(f"{cell['mean']:.3f}" + (f" [{lo:.3f},{hi:.3f}]" if lo is not None else ""))
        print(strategy.ljust(16) + "".join(c.rjust(22) for c in cells))
    ceiling = summary["ap_all_pool_labels"]["mean"]
    print(
        f"prevalence {summary['prevalence']:.3f}; AP with every pool label {ceiling:.3f}; {len(tasks)} tasks; "
        f"{summary['seconds']:.0f} s"
    )
    return 0


def _plot(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    budgets = summary["budgets"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for strategy in summary["strategies"]:
        means = [summary["ap"][strategy][str(n)]["mean"] for n in budgets]
        style = "-" if strategy in ("ucb", "epsilon_greedy", "round_robin") else "--"
        ax.plot(budgets, means, style, marker="o", label=strategy, linewidth=2 if strategy in ("ucb", BASELINE) else 1)
    ax.axhline(summary["prevalence"], color="grey", linewidth=0.8, label="prevalence (AP of chance)")
    ax.axhline(
        summary["ap_all_pool_labels"]["mean"],
        color="black",
        linestyle=":",
        linewidth=0.8,
        label="AP with every pool label",
    )
    ax.set_xscale("log")
    ax.minorticks_off()
    ax.set_xticks(budgets, [str(n) for n in budgets])
    ax.set_xlabel("labels (n)")
    ax.set_ylabel("held-out AP vs truth")
    ax.set_title(f"Studio sources and bandits: AP after n simulated labels ({summary['tasks']} tasks)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
