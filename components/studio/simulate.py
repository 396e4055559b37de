"""A simulated labeler for the studio's active-learning loop: a clustered corpus with known truth, and feed strategies."""
from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

from . import bandits, feeds, scores

STRATEGIES = ("ucb", "epsilon_greedy", "round_robin", "top_positive", "top_negative", "borderline", "random_feed", "random_only")


@dataclass(frozen=True)
class SyntheticCorpus:
    """embeddings: float32 [n, d]; truth: int [n] in {0, 1}; titles: str [n] (positives tend to mention ``keyword``)."""

    embeddings: np.ndarray
    truth: np.ndarray
    titles: list[str]
    keyword: str


def clustered_corpus(*, n: int = 2000, dimension: int = 64, clusters: int = 24, positive_clusters: int = 3,
                     spread: float = 1.2, prevalence_noise: float = 0.03, seed: int = 0) -> SyntheticCorpus:
    """Gaussian clusters, L2-normalised like real embedder output; the attribute is true for 80% of
    ``positive_clusters`` clusters and 3% elsewhere, so it is learnable but neither linear nor one cluster."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 1.0, size=(clusters, dimension)) * 2.0
    assignment = rng.integers(0, clusters, size=n)
    embeddings = centres[assignment] + rng.normal(0.0, spread, size=(n, dimension))
    embeddings = (embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)).astype(np.float32)
    positive = rng.choice(clusters, size=positive_clusters, replace=False)
    in_positive = np.isin(assignment, positive)
    truth = np.where(in_positive, rng.random(n) < 0.8, rng.random(n) < prevalence_noise).astype(np.int64)
    keyword = "crimson"
    fillers = ["city", "street", "kitchen", "beach", "forest", "studio", "garden", "office", "river", "market"]
    titles = []
    for t in truth:
        words = list(rng.choice(fillers, size=3))
        if (t == 1 and rng.random() < 0.6) or (t == 0 and rng.random() < 0.03):
            words.insert(int(rng.integers(0, 4)), keyword)
        titles.append(" ".join(words))
    return SyntheticCorpus(embeddings=embeddings, truth=truth, titles=titles, keyword=keyword)


def search_ranking(similarity: np.ndarray, exclude: np.ndarray) -> np.ndarray:
    """Rows by descending similarity (float [n]), skipping ``exclude`` (bool [n])."""
    order = np.argsort(-similarity, kind="stable")
    return order[~exclude[order]]


def average_precision(truth: np.ndarray, probabilities: np.ndarray) -> float:
    from sklearn.metrics import average_precision_score

    return float(average_precision_score(truth, probabilities))


def run_strategy(strategy: str, *, embeddings: np.ndarray, truth: np.ndarray, search_similarity: np.ndarray,
                 pool: np.ndarray, test: np.ndarray, budgets: tuple[int, ...] = (25, 50, 100, 200),
                 batch: int = bandits.BATCH_SIZE, seed: int = 0) -> dict:
    """Label videos from ``pool`` (int row ids) in batches of ``batch`` and report test AP at each budget.

    Every strategy but ``random_only`` starts as a person does: labelling text-search results
    (``search_similarity``: float [n]) until 10 positives and 10 negatives exist, padding with random
    videos when search alone has not found enough negatives. Then each batch comes from one feed: a fixed
    one, or the one a bandit picks with reward = change in model quality (25th pct balanced accuracy).
    ``random_only`` labels uniformly random videos from the start. AP is measured on ``test`` rows against
    ``truth`` with a logistic regression trained on the labels so far (prevalence when a class is missing).
    """
    rng = np.random.default_rng(seed)
    py_rng = random.Random(seed)
    in_pool = np.zeros(len(truth), dtype=bool)
    in_pool[pool] = True
    labelled = ~in_pool  # test rows are never offered
    order: list[int] = []
    arms_used: list[str] = []

    def take(rows: np.ndarray) -> None:
        for r in rows[: max(0, max(budgets) - len(order))]:
            if not labelled[r]:
                labelled[r] = True
                order.append(int(r))

    if strategy == "random_only":
        take(rng.permutation(pool))
    else:
        search_rows = search_ranking(search_similarity, labelled)
        cursor = 0
        while not feeds.ready(truth[order]) and len(order) < max(budgets):
            pos = int(truth[order].sum()) if order else 0
            if pos < feeds.MIN_PER_CLASS and cursor < len(search_rows):
                take(search_rows[cursor:cursor + batch])
                cursor += batch
            else:
                take(rng.permutation(np.flatnonzero(~labelled))[:batch])
        policy = strategy if strategy in bandits.POLICIES else None
        state = bandits.BanditState(policy=policy or "ucb", arms=list(feeds.FEEDS))
        while len(order) < max(budgets) and (~labelled).any():
            rows = np.array(order)
            model = feeds.train(embeddings, rows, truth[rows], seed=seed)
            quality = scores.model_quality(embeddings[rows], truth[rows], seed=seed)
            if policy:
                state = bandits.settle(state, quality_after=quality)
                arm = bandits.choose(state, py_rng)
                state = bandits.record_pull(state, arm, quality_before=quality)
            else:
                arm = "random" if strategy == "random_feed" else strategy
            arms_used.append(arm)
            take(feeds.feed_rows(arm, model.probabilities, labelled, limit=batch, rng=rng))

    ap = {}
    for budget in budgets:
        rows = np.array(order[:budget])
        y = truth[rows]
        if len(set(y.tolist())) < 2:
            ap[budget] = float(truth[test].mean())
            continue
        model = feeds.train(embeddings, rows, y, seed=seed)
        ap[budget] = average_precision(truth[test], model.probabilities[test])
    return {"strategy": strategy, "ap": ap, "arms": arms_used, "positives_labelled": int(truth[order].sum())}
