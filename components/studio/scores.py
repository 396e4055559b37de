"""Live scores from the Video Annotator paper: model quality (25th pct balanced accuracy), data diversity, stop rule.

Contract: ``model_quality`` and ``data_diversity`` are in [0, 1] (quality None until stratified folds exist);
``stop_rule`` says whether labelling may stop: both scores at least ``STOP_SCORE`` (0.8), or ``MAX_LABELS`` (1,000)
labels, the condition the paper gave its annotators ("model and data scores of at least 80, or 1K total examples").
"""

from __future__ import annotations

import numpy as np

QUALITY_FOLDS = 5
QUALITY_PERCENTILE = 25.0
DIVERSITY_CLUSTERS = 10  # k
DIVERSITY_CAP = 10  # s
STOP_SCORE = 0.8
MAX_LABELS = 1000


def classifier(seed: int = 0):
    """The studio's lightweight classifier: L2 logistic regression on embeddings, classes weighted to balance.

    liblinear rather than lbfgs: on a few hundred labels it is ~10x faster and does not depend on BLAS
    threads, so a retrain after each batch stays well under a second on a busy CPU.
    """
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=1.0, solver="liblinear", max_iter=1000, class_weight="balanced", random_state=seed)


def model_quality(
    embeddings: np.ndarray, labels: np.ndarray, *, folds: int = QUALITY_FOLDS, seed: int = 0
) -> float | None:
    """25th percentile of balanced accuracy over stratified ``folds``-fold cross-validation.

    embeddings: float32 [n, d]; labels: int [n] in {0, 1}. Returns None when a class has fewer than
    ``folds`` examples (stratified folds are impossible), else a value in [0, 1].
    """
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.model_selection import StratifiedKFold

    labels = np.asarray(labels).astype(int)
    if min(int((labels == 1).sum()), int((labels == 0).sum())) < folds:
        return None
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    accuracies = []
    for train, test in splitter.split(embeddings, labels):
        model = classifier(seed).fit(embeddings[train], labels[train])
        accuracies.append(balanced_accuracy_score(labels[test], model.predict(embeddings[test])))
    return float(np.percentile(accuracies, QUALITY_PERCENTILE))


def corpus_clusters(embeddings: np.ndarray, *, k: int = DIVERSITY_CLUSTERS, seed: int = 0) -> np.ndarray:
    """k-means over the embeddings of every video in the corpus (as the paper does); returns int [n] cluster ids."""
    from sklearn.cluster import KMeans

    k = min(k, len(embeddings))
    return KMeans(n_clusters=k, n_init=4, random_state=seed).fit_predict(embeddings).astype(np.int64)


def data_diversity(
    cluster_ids: np.ndarray, labels: np.ndarray, *, k: int = DIVERSITY_CLUSTERS, cap: int = DIVERSITY_CAP
) -> float:
    """Data diversity score in [0, 1].

    cluster_ids: int [m], the corpus cluster of each labelled video; labels: int [m] in {0, 1}.
    Positives and negatives are counted per cluster independently, each count capped at ``cap`` (s),
    summed and divided by 2·k·s. A label that aligns perfectly with one cluster can reach at most 0.5.
    """
    cluster_ids = np.asarray(cluster_ids, dtype=np.int64)
    labels = np.asarray(labels).astype(int)
    total = 0
    for label in (0, 1):
        counts = np.bincount(cluster_ids[labels == label], minlength=k)[:k]
        total += int(np.minimum(counts, cap).sum())
    return total / (2 * k * cap)


def stop_rule(
    *, quality: float | None, diversity: float, labels: int, threshold: float = STOP_SCORE, max_labels: int = MAX_LABELS
) -> dict:
    """The stop rule: reached when quality and diversity are both >= ``threshold``, or ``labels`` >= ``max_labels``.

    quality: the model quality score (None before it can be computed, which never meets the threshold);
    diversity: the data diversity score; labels: labelled videos in the training set. ``reason`` says which
    condition holds, or what is still missing.
    """
    scores_met = quality is not None and quality >= threshold and diversity >= threshold
    count_met = labels >= max_labels
    if scores_met:
        reason = f"model quality {quality:.3f} and data diversity {diversity:.3f} are both at least {threshold}"
    elif count_met:
        reason = f"{labels} labels reached the cap of {max_labels}"
    else:
        missing = []
        if quality is None or quality < threshold:
            shown = "not yet computed" if quality is None else f"{quality:.3f}"
            missing.append(f"model quality {shown} < {threshold}")
        if diversity < threshold:
            missing.append(f"data diversity {diversity:.3f} < {threshold}")
        reason = "; ".join(missing) + f"; {labels} of {max_labels} labels"
    return {
        "reached": bool(scores_met or count_met),
        "reason": reason,
        "quality": None if quality is None else float(quality),
        "diversity": float(diversity),
        "labels": int(labels),
        "threshold": float(threshold),
        "max_labels": int(max_labels),
    }
