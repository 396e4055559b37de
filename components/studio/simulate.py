"""A simulated labeler for the studio: a clustered corpus with known truth, and the Video Annotator paper's sources.

Contract: ``run_strategy`` labels videos from a pool in batches of d = 25 with one strategy and reports held-out
average precision (and data diversity, given corpus clusters) after each budget n. Strategies (``STRATEGIES``):
the paper's three sources alone (``va_loop``: search bootstrap then the four feeds interleaved; ``random``;
``zero_shot``: top similarity to the attribute's text) and the three bandits over those sources (``round_robin``,
``epsilon_greedy``, ``ucb``), which choose as the studio does (``bandits.choose``, reward = change in model quality).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

from . import bandits, feeds, scores


@dataclass(frozen=True)
class SyntheticCorpus:
    """embeddings: float32 [n, d]; truth: int [n] in {0, 1}; titles: str [n] (positives tend to mention ``keyword``);
    definition: the attribute's definition, the zero-shot query (it names ``keyword``)."""

    embeddings: np.ndarray
    truth: np.ndarray
    titles: list[str]
    keyword: str
    definition: str = "A crimson scene: crimson is the dominant colour of the picture."


def clustered_corpus(
    *,
    n: int = 2000,
    dimension: int = 64,
    clusters: int = 24,
    positive_clusters: int = 3,
    spread: float = 1.2,
    prevalence_noise: float = 0.03,
    seed: int = 0,
) -> SyntheticCorpus:
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


SOURCES: tuple[str, ...] = bandits.ARMS
STRATEGIES: tuple[str, ...] = (*SOURCES, *bandits.POLICIES)


def average_precision(truth: np.ndarray, probabilities: np.ndarray) -> float:
    from sklearn.metrics import average_precision_score

    return float(average_precision_score(truth, probabilities))


def run_strategy(
    strategy: str,
    *,
    embeddings: np.ndarray,
    truth: np.ndarray,
    search_similarity: np.ndarray,
    zero_shot_similarity: np.ndarray,
    pool: np.ndarray,
    test: np.ndarray,
    budgets: tuple[int, ...] = (25, 50, 100, 200),
    batch: int = bandits.BATCH_SIZE,
    clusters: np.ndarray | None = None,
    seed: int = 0,
) -> dict:
    """Label videos from ``pool`` (int row ids) in batches of ``batch`` and report test AP at each budget.

    ``random`` labels uniformly random pool videos from the start (the paper's random-clip classifier);
    ``zero_shot`` labels pool videos by descending ``zero_shot_similarity`` (float [n], the attribute's text
    against each video in the text tower: the paper's zero-shot classifier). ``va_loop`` and the bandits start
    as a person does in the studio: labelling text-search results (``search_similarity``: float [n]) until
    10 positives and 10 negatives exist, padding with random videos when search alone has not found enough
    negatives. Then ``va_loop`` takes every batch from the four feeds interleaved, and a bandit picks one
    source per batch (every source once first) with reward = change in model quality (25th pct balanced
    accuracy), exactly as the studio's ``next_batch`` does.

    AP is measured on ``test`` rows against ``truth`` with a logistic regression trained on the first n labels
    (the prevalence, i.e. AP of a random ranking, when a class is missing). With ``clusters`` (int [n], k-means
    over the corpus), the data diversity score of the first n labels is reported too.
    Returns {"strategy", "ap": {n: float}, "diversity": {n: float} (with clusters), "arms": [source per batch
    after the bootstrap], "labelled": [row ids in labelling order], "bootstrap_labels": int, "positives_labelled": int}.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy '{strategy}'; expected one of {', '.join(STRATEGIES)}")
    rng = np.random.default_rng(seed)
    py_rng = random.Random(seed)
    in_pool = np.zeros(len(truth), dtype=bool)
    in_pool[pool] = True
    labelled = ~in_pool  # test rows are never offered
    order: list[int] = []
    arms_used: list[str] = []
    bootstrap = 0
    budget = max(budgets)

    def take(rows: np.ndarray) -> None:
        for r in rows:
            if len(order) >= budget:
                break
            if not labelled[r]:
                labelled[r] = True
                order.append(int(r))

    if strategy == "random":
        take(rng.permutation(pool))
    elif strategy == "zero_shot":
        take(feeds.zero_shot_rows(zero_shot_similarity, labelled))
    else:
        search_rows = feeds.zero_shot_rows(search_similarity, labelled)
        cursor = 0
        while not feeds.ready(truth[order]) and len(order) < budget and (~labelled).any():
            positives = int(truth[order].sum()) if order else 0
            if positives < feeds.MIN_PER_CLASS and cursor < len(search_rows):
                take(search_rows[cursor : cursor + batch])
                cursor += batch
            else:
                take(feeds.random_rows(labelled, limit=batch, rng=rng))
        bootstrap = len(order)
        policy = strategy if strategy in bandits.POLICIES else None
        state = bandits.BanditState(policy=policy or "ucb", arms=list(SOURCES))
        while len(order) < budget and (~labelled).any():
            rows = np.array(order)
            model = feeds.train(embeddings, rows, truth[rows], seed=seed)
            if policy:
                quality = scores.model_quality(embeddings[rows], truth[rows], seed=seed)
                state = bandits.settle(state, quality_after=quality)
                arm = bandits.choose(state, py_rng)
                state = bandits.record_pull(state, arm, quality_before=quality)
            else:
                arm = "va_loop"
            arms_used.append(arm)
            if arm == "va_loop":
                take(feeds.va_loop_rows(model.probabilities, labelled, limit=batch, rng=rng)[0])
            elif arm == "random":
                take(feeds.random_rows(labelled, limit=batch, rng=rng))
            else:
                take(feeds.zero_shot_rows(zero_shot_similarity, labelled, limit=batch))

    ap: dict[int, float] = {}
    diversity: dict[int, float] = {}
    for n in budgets:
        rows = np.array(order[:n], dtype=np.int64)
        y = truth[rows]
        if clusters is not None:
            diversity[n] = scores.data_diversity(clusters[rows], y)
        if len(set(y.tolist())) < 2:
            ap[n] = float(truth[test].mean())
            continue
        model = feeds.train(embeddings, rows, y, seed=seed)
        ap[n] = average_precision(truth[test], model.probabilities[test])
    out = {
        "strategy": strategy,
        "ap": ap,
        "arms": arms_used,
        "labelled": order,
        "bootstrap_labels": bootstrap,
        "positives_labelled": int(truth[order].sum()),
    }
    if clusters is not None:
        out["diversity"] = diversity
    return out
