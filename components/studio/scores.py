"""Live scores from the Video Annotator paper: model quality (25th pct balanced accuracy) and data diversity."""
from __future__ import annotations

import numpy as np

QUALITY_FOLDS = 5
QUALITY_PERCENTILE = 25.0
DIVERSITY_CLUSTERS = 10  # k
DIVERSITY_CAP = 10  # s


def classifier(seed: int = 0):
    """The studio's lightweight classifier: L2 logistic regression on embeddings, classes weighted to balance.

    liblinear rather than lbfgs: on a few hundred labels it is ~10x faster and does not depend on BLAS
    threads, so a retrain after each batch stays well under a second on a busy CPU.
    """
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=1.0, solver="liblinear", max_iter=1000, class_weight="balanced", random_state=seed)


def model_quality(embeddings: np.ndarray, labels: np.ndarray, *, folds: int = QUALITY_FOLDS, seed: int = 0) -> float | None:
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


def data_diversity(cluster_ids: np.ndarray, labels: np.ndarray, *, k: int = DIVERSITY_CLUSTERS,
                   cap: int = DIVERSITY_CAP) -> float:
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
