"""The studio simulation of the Video Annotator paper's sources and bandits, and its benchmark's statistics.

Labelling orders are checked against numpy brute force (zero-shot ranking, the search bootstrap, the bandit's
zero-shot pulls), AP and diversity against scikit-learn and a hand count, the benchmark's intervals against scipy.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from silverset.components.studio import bandits, feeds, scores, simulate

ROOT = Path(__file__).resolve().parents[3]
BUDGETS = (25, 50, 100)


@pytest.fixture(scope="module")
def task():
    corpus = simulate.clustered_corpus(n=800, dimension=16, clusters=10, positive_clusters=2, seed=11)
    rng = np.random.default_rng(11)
    words = ("crimson", "city", "street", "kitchen", "beach")
    # a tiny text tower: one dimension per word of the titles
    text = np.array([[title.split().count(w) for w in words] for title in corpus.titles], dtype=np.float32)
    text /= np.maximum(np.linalg.norm(text, axis=1, keepdims=True), 1e-12)
    order = rng.permutation(800)
    zero_shot = text @ np.array([1.0, 0.0, 0.3, 0.0, 0.0], np.float32)  # the definition: crimson, a street
    return {
        "corpus": corpus,
        "search": text[:, 0].copy(),
        "zero_shot": zero_shot,
        "test": order[:160],
        "pool": order[160:],
        "clusters": scores.corpus_clusters(corpus.embeddings, seed=0),
    }


def _run(task, strategy, budgets=BUDGETS):
    c = task["corpus"]
    return simulate.run_strategy(
        strategy,
        embeddings=c.embeddings,
        truth=c.truth,
        search_similarity=task["search"],
        zero_shot_similarity=task["zero_shot"],
        pool=task["pool"],
        test=task["test"],
        budgets=budgets,
        clusters=task["clusters"],
        seed=3,
    )


def test_strategies_are_the_papers_sources_and_bandits():
    assert simulate.STRATEGIES == ("va_loop", "random", "zero_shot", "round_robin", "epsilon_greedy", "ucb")


def test_zero_shot_labels_the_pool_by_descending_similarity(task):
    result = _run(task, "zero_shot")
    pool = task["pool"].tolist()
    expected = sorted(pool, key=lambda r: (-task["zero_shot"][r], r))[:100]
    assert result["labelled"] == expected and result["arms"] == [] and result["bootstrap_labels"] == 0


def test_random_labels_distinct_pool_videos_and_ap_matches_sklearn(task):
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import average_precision_score

    c = task["corpus"]
    result = _run(task, "random")
    labelled = result["labelled"]
    assert len(labelled) == len(set(labelled)) == 100 and set(labelled) <= set(task["pool"].tolist())
    for n in BUDGETS:
        rows = np.array(labelled[:n])
        model = LogisticRegression(C=1.0, solver="liblinear", class_weight="balanced", random_state=3)
        model.fit(c.embeddings[rows], c.truth[rows])
        oracle = average_precision_score(c.truth[task["test"]], model.predict_proba(c.embeddings[task["test"]])[:, 1])
        assert result["ap"][n] == pytest.approx(oracle, abs=1e-6)
        # diversity by hand: per cluster, positives and negatives each capped at 10, over 2 * 10 * 10
        counts = sum(
            min(int(((task["clusters"][rows] == k) & (c.truth[rows] == label)).sum()), 10)
            for k in range(10)
            for label in (0, 1)
        )
        assert result["diversity"][n] == pytest.approx(counts / 200)


def test_va_loop_bootstraps_with_search_then_only_uses_the_feeds(task):
    c = task["corpus"]
    result = _run(task, "va_loop")
    labelled, boot = result["labelled"], result["bootstrap_labels"]
    assert boot % bandits.BATCH_SIZE == 0 and feeds.ready(c.truth[labelled[:boot]])
    assert not feeds.ready(c.truth[labelled[: boot - bandits.BATCH_SIZE]])
    search_order = sorted(task["pool"].tolist(), key=lambda r: (-task["search"][r], r))
    assert labelled[: bandits.BATCH_SIZE] == search_order[: bandits.BATCH_SIZE]
    assert result["arms"] == ["va_loop"] * ((100 - boot) // bandits.BATCH_SIZE)


@pytest.mark.parametrize("policy", bandits.POLICIES)
def test_bandits_pull_every_source_once_first_and_zero_shot_pulls_take_the_top_unlabelled(task, policy):
    c = task["corpus"]
    result = _run(task, policy, budgets=(300,))
    arms, labelled, boot = result["arms"], result["labelled"], result["bootstrap_labels"]
    assert arms[:3] == list(bandits.ARMS)
    if policy == "round_robin":
        assert arms == [bandits.ARMS[i % 3] for i in range(len(arms))]
    assert len(labelled) == 300 and set(labelled) <= set(task["pool"].tolist())
    for i, arm in enumerate(arms):
        lo = boot + i * bandits.BATCH_SIZE
        batch = labelled[lo : lo + bandits.BATCH_SIZE]
        if arm == "zero_shot":
            taken = set(labelled[:lo])
            ranked = sorted(task["pool"].tolist(), key=lambda r: (-task["zero_shot"][r], r))
            rest = [r for r in ranked if r not in taken]
            assert batch == rest[: bandits.BATCH_SIZE]
    assert c.truth[labelled].sum() == result["positives_labelled"]


def test_unknown_strategy_is_refused(task):
    with pytest.raises(ValueError, match="unknown strategy 'top_positive'"):
        _run(task, "top_positive")


def test_benchmark_reports_mean_and_t_interval_per_strategy_and_n(tmp_path):
    from scipy import stats

    out = tmp_path / "results"
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "studio_active_learning.py"),
            "--seeds",
            "3",
            "--videos",
            "400",
            "--budgets",
            "25",
            "50",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads((out / "studio_active_learning.json").read_text())
    assert summary["strategies"] == list(simulate.STRATEGIES) and summary["budgets"] == [25, 50]
    for strategy in simulate.STRATEGIES:
        for n in ("25", "50"):
            values = [run["ap"][n] for run in summary["runs"][strategy]]
            cell = summary["ap"][strategy][n]
            half = stats.t.ppf(0.975, 2) * np.std(values, ddof=1) / np.sqrt(3)
            assert cell["mean"] == pytest.approx(np.mean(values)) and cell["runs"] == 3
            assert cell["ci95"] == pytest.approx([np.mean(values) - half, np.mean(values) + half])
            if strategy != "va_loop":
                base = [run["ap"][n] for run in summary["runs"]["va_loop"]]
                gain = summary["gain_vs_va_loop"][strategy][n]["mean"]
                assert gain == pytest.approx(np.mean(values) - np.mean(base))
    assert (out / "studio_active_learning.png").stat().st_size > 5_000
