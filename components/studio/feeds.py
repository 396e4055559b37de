"""Where candidate videos come from: the four active-learning feeds and the bandit's three sources (arms).

Contract:
- The four feeds (``FEEDS``) rank unlabelled videos by the current classifier: top positive, top negative,
  borderline (|p - 0.5| smallest) and random. They are the studio's views and what the ``va_loop`` arm draws from.
- The arms' batches (see ``bandits.ARMS``): ``va_loop_rows`` interleaves the four feeds (one video from each in
  ``FEEDS`` order, repeating, each video once); ``random_rows`` is a uniform sample; ``zero_shot_rows`` ranks by
  similarity between each video and the text of ``zero_shot_query`` (the attribute's title and the first sentence
  of its definition) in the embedding's text tower. All skip videos already labelled.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from .scores import classifier

FEEDS: tuple[str, ...] = ("top_positive", "top_negative", "borderline", "random")
MIN_PER_CLASS = 10  # the paper's bootstrap bar before the active-learning loop starts


@dataclass(frozen=True)
class FeedModel:
    """A logistic regression trained on the labelled videos, scoring the whole corpus.

    probabilities: float [n_corpus], P(positive) for every video in corpus order.
    """

    probabilities: np.ndarray
    n_positive: int
    n_negative: int


def ready(labels: np.ndarray) -> bool:
    """True once there are at least 10 positives and 10 negatives."""
    labels = np.asarray(labels)
    return int((labels == 1).sum()) >= MIN_PER_CLASS and int((labels == 0).sum()) >= MIN_PER_CLASS


def train(embeddings: np.ndarray, labelled_rows: np.ndarray, labels: np.ndarray, *, seed: int = 0) -> FeedModel:
    """Fit on ``embeddings[labelled_rows]`` (float32 [n, d]) with ``labels`` (int [m]) and score all n videos."""
    model = classifier(seed).fit(embeddings[labelled_rows], labels)
    probabilities = model.predict_proba(embeddings)[:, 1].astype(np.float32)
    return FeedModel(
        probabilities=probabilities, n_positive=int((labels == 1).sum()), n_negative=int((labels == 0).sum())
    )


def feed_rows(
    feed: str, probabilities: np.ndarray, exclude: np.ndarray, *, limit: int, rng: np.random.Generator
) -> np.ndarray:
    """Corpus row indices of one feed, best first, skipping rows in ``exclude`` (already labelled).

    probabilities: float [n]; exclude: bool [n]. Ties are broken by row order so feeds are stable.
    """
    candidates = np.flatnonzero(~exclude)
    if feed == "random":
        return rng.permutation(candidates)[:limit]
    p = probabilities[candidates]
    if feed == "top_positive":
        key = -p
    elif feed == "top_negative":
        key = p
    elif feed == "borderline":
        key = np.abs(p - 0.5)
    else:
        raise ValueError(f"unknown feed '{feed}'; expected one of {', '.join(FEEDS)}")
    return candidates[np.argsort(key, kind="stable")[:limit]]


def va_loop_rows(
    probabilities: np.ndarray, exclude: np.ndarray, *, limit: int, rng: np.random.Generator
) -> tuple[np.ndarray, list[str]]:
    """The ``va_loop`` arm's batch: the four feeds interleaved, each row once, up to ``limit`` rows.

    probabilities: float [n]; exclude: bool [n]. Returns (rows int [m], the feed each row came from).
    """
    lists = [feed_rows(feed, probabilities, exclude, limit=limit, rng=rng).tolist() for feed in FEEDS]
    rows: list[int] = []
    sources: list[str] = []
    seen: set[int] = set()
    cursors = [0] * len(FEEDS)
    while len(rows) < limit and any(cursors[i] < len(lists[i]) for i in range(len(FEEDS))):
        for i, feed in enumerate(FEEDS):
            while cursors[i] < len(lists[i]) and lists[i][cursors[i]] in seen:
                cursors[i] += 1
            if cursors[i] < len(lists[i]) and len(rows) < limit:
                row = lists[i][cursors[i]]
                cursors[i] += 1
                seen.add(row)
                rows.append(row)
                sources.append(feed)
    return np.asarray(rows, dtype=np.int64), sources


def random_rows(exclude: np.ndarray, *, limit: int, rng: np.random.Generator) -> np.ndarray:
    """The ``random`` arm's batch: ``limit`` uniformly random rows not in ``exclude`` (bool [n])."""
    return rng.permutation(np.flatnonzero(~exclude))[:limit]


def zero_shot_rows(similarity: np.ndarray, exclude: np.ndarray, *, limit: int | None = None) -> np.ndarray:
    """The ``zero_shot`` arm's ranking: rows by descending ``similarity`` (float [n]) to the attribute's text,
    skipping ``exclude`` (bool [n]); ties by row order. ``limit`` None returns every such row."""
    order = np.argsort(-np.asarray(similarity), kind="stable")
    order = order[~exclude[order]]
    return order if limit is None else order[:limit]


def zero_shot_query(*, title: str, definition: str) -> str:
    """The zero-shot text query: the attribute's title and the first sentence of its definition (the positive
    criterion; later sentences usually describe negatives, which would pull the query towards them)."""
    first = re.split(r"(?<=[.!?])\s+", " ".join(definition.split()), maxsplit=1)[0]
    return f"{title.strip()}. {first}" if title.strip() else first
