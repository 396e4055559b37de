"""The four active-learning feeds over unlabelled videos: top positive, top negative, borderline, random."""
from __future__ import annotations

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
    return FeedModel(probabilities=probabilities, n_positive=int((labels == 1).sum()), n_negative=int((labels == 0).sum()))


def feed_rows(feed: str, probabilities: np.ndarray, exclude: np.ndarray, *, limit: int, rng: np.random.Generator) -> np.ndarray:
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
