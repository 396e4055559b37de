"""Binary classification metrics on a golden set, seeded bootstrap CIs, threshold selection, paired tests.

Everything here is plain numpy so a bootstrap of 1000 resamples over a few thousand golden items takes
well under a second. ``labels`` are int {0, 1} [n]; ``probabilities`` are float P(positive) in [0, 1] [n];
``predicted`` are int {0, 1} [n] (the model's decisions at its threshold).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

CONFIDENCE = 0.95
ECE_BINS = 10


# ---------------------------------------------------------------- point metrics


def confusion_counts(labels: np.ndarray, predicted: np.ndarray) -> tuple[int, int, int, int]:
    """(tn, fp, fn, tp) counts."""
    labels = np.asarray(labels, dtype=bool)
    predicted = np.asarray(predicted, dtype=bool)
    tp = int(np.sum(labels & predicted))
    fp = int(np.sum(~labels & predicted))
    fn = int(np.sum(labels & ~predicted))
    tn = int(np.sum(~labels & ~predicted))
    return tn, fp, fn, tp


def _prf(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall, F1 from counts (arrays of any shape); 0 where undefined, as scikit-learn's zero_division=0."""
    tp, fp, fn = (np.asarray(a, dtype=np.float64) for a in (tp, fp, fn))
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        recall = np.where(tp + fn > 0, tp / (tp + fn), 0.0)
        f1 = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
    return precision, recall, f1


def average_precision(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """Average precision (area under the step PR curve), as ``sklearn.metrics.average_precision_score``.

    NaN with no positives.
    """
    labels = np.asarray(labels, dtype=np.float64)
    scores = np.asarray(probabilities, dtype=np.float64)
    n_pos = labels.sum()
    if n_pos == 0:
        return float("nan")
    order = np.argsort(-scores, kind="mergesort")
    scores, labels = scores[order], labels[order]
    # one PR point per distinct threshold (ties collapse), as scikit-learn does
    last_of_run = np.r_[np.diff(scores) != 0, True]
    tps = np.cumsum(labels)[last_of_run]
    predicted_pos = (np.arange(1, len(labels) + 1))[last_of_run]
    precision = tps / predicted_pos
    recall = tps / n_pos
    recall_steps = np.diff(np.r_[0.0, recall])
    return float(np.sum(recall_steps * precision))


def roc_auc(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """ROC-AUC via the Mann-Whitney rank statistic (ties count one half); NaN when one class is absent."""
    labels = np.asarray(labels, dtype=bool)
    scores = np.asarray(probabilities, dtype=np.float64)
    n_pos = int(labels.sum())
    n_neg = len(labels) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    from scipy.stats import rankdata

    ranks = rankdata(scores)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def calibration_bins(labels: np.ndarray, probabilities: np.ndarray, *, bins: int = ECE_BINS) -> dict[str, list[float]]:
    """Equal-width reliability bins over [0, 1]: per bin the count, mean predicted probability and positive rate."""
    labels = np.asarray(labels, dtype=np.float64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    index = np.clip((probabilities * bins).astype(int), 0, bins - 1)
    count = np.bincount(index, minlength=bins).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_prob = np.bincount(index, weights=probabilities, minlength=bins) / count
        positive_rate = np.bincount(index, weights=labels, minlength=bins) / count
    return {"count": count.tolist(), "mean_probability": mean_prob.tolist(), "positive_rate": positive_rate.tolist()}


def expected_calibration_error(labels: np.ndarray, probabilities: np.ndarray, *, bins: int = ECE_BINS) -> float:
    """ECE: sum over equal-width bins of (bin share) * |positive rate - mean predicted probability|."""
    if len(labels) == 0:
        return float("nan")
    table = calibration_bins(labels, probabilities, bins=bins)
    count = np.array(table["count"])
    gap = np.abs(np.nan_to_num(np.array(table["positive_rate"])) - np.nan_to_num(np.array(table["mean_probability"])))
    return float(np.sum(count / count.sum() * gap))


def point_metrics(labels: np.ndarray, probabilities: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """precision, recall, f1, accuracy, average_precision, roc_auc, ece on one set of items."""
    tn, fp, fn, tp = confusion_counts(labels, predicted)
    precision, recall, f1 = (float(v) for v in _prf(tp, fp, fn))
    n = tn + fp + fn + tp
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "accuracy": (tp + tn) / n if n else float("nan"),
        "average_precision": average_precision(labels, probabilities),
        "roc_auc": roc_auc(labels, probabilities),
        "ece": expected_calibration_error(labels, probabilities),
    }


# ---------------------------------------------------------------- bootstrap


@dataclass(frozen=True)
class Estimate:
    """A metric's value on the full set and its percentile bootstrap CI."""

    value: float
    lower: float
    upper: float

    def as_dict(self) -> dict[str, float]:
        return {"value": self.value, "lower": self.lower, "upper": self.upper}


def bootstrap_indices(n: int, *, samples: int, seed: int) -> np.ndarray:
    """int64 [samples, n] resample indices from a seeded generator (same seed, same resamples)."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, n, size=(samples, n))


def _interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    values = values[np.isfinite(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    alpha = (1 - confidence) / 2
    return float(np.quantile(values, alpha)), float(np.quantile(values, 1 - alpha))


def bootstrap_metrics(
    labels: np.ndarray,
    probabilities: np.ndarray,
    predicted: np.ndarray,
    *,
    samples: int,
    seed: int,
    confidence: float = CONFIDENCE,
) -> dict[str, Estimate]:
    """Every metric of ``point_metrics`` with a seeded percentile bootstrap CI (resampling golden items)."""
    labels = np.asarray(labels, dtype=np.int64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    predicted = np.asarray(predicted, dtype=np.int64)
    point = point_metrics(labels, probabilities, predicted)
    n = len(labels)
    if n == 0:
        return {k: Estimate(float("nan"), float("nan"), float("nan")) for k in point}
    idx = bootstrap_indices(n, samples=samples, seed=seed)
    y, p, yhat = labels[idx], probabilities[idx], predicted[idx]
    tp = np.sum((y == 1) & (yhat == 1), axis=1)
    fp = np.sum((y == 0) & (yhat == 1), axis=1)
    fn = np.sum((y == 1) & (yhat == 0), axis=1)
    precision, recall, f1 = _prf(tp, fp, fn)
    draws = {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "accuracy": np.mean(y == yhat, axis=1),
        "average_precision": _average_precision_rows(y, p),
        "roc_auc": _roc_auc_rows(y, p),
        "ece": _ece_rows(y, p),
    }
    return {name: Estimate(point[name], *_interval(draws[name], confidence)) for name in point}


def _average_precision_rows(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """``average_precision`` of each row of y, p [b, n] at once (NaN for rows without positives)."""
    order = np.argsort(-p, axis=1, kind="mergesort")
    s = np.take_along_axis(p, order, axis=1)
    lab = np.take_along_axis(y, order, axis=1).astype(np.float64)
    last_of_run = np.concatenate([np.diff(s, axis=1) != 0, np.ones((len(s), 1), dtype=bool)], axis=1)
    tps = np.cumsum(lab, axis=1)
    at_ends = np.where(last_of_run, tps, 0.0)
    prev_end = np.concatenate([np.zeros((len(s), 1)), np.maximum.accumulate(at_ends, axis=1)[:, :-1]], axis=1)
    rank = np.arange(1, s.shape[1] + 1)
    n_pos = lab.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        contribution = np.where(last_of_run, (tps - prev_end) * tps / rank, 0.0)
        return np.where(n_pos > 0, contribution.sum(axis=1) / n_pos, np.nan)


def _roc_auc_rows(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """``roc_auc`` of each row of y, p [b, n] (NaN for rows missing a class)."""
    from scipy.stats import rankdata

    ranks = rankdata(p, axis=1)
    positive = y == 1
    n_pos = positive.sum(axis=1).astype(np.float64)
    n_neg = y.shape[1] - n_pos
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = (np.where(positive, ranks, 0.0).sum(axis=1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    return np.where((n_pos > 0) & (n_neg > 0), auc, np.nan)


def _ece_rows(y: np.ndarray, p: np.ndarray, *, bins: int = ECE_BINS) -> np.ndarray:
    """``expected_calibration_error`` of each row of y, p [b, n]."""
    rows, n = p.shape
    index = np.clip((p * bins).astype(int), 0, bins - 1) + bins * np.arange(rows)[:, None]
    prob_sum = np.bincount(index.ravel(), weights=p.ravel(), minlength=rows * bins).reshape(rows, bins)
    pos_sum = np.bincount(index.ravel(), weights=y.ravel().astype(np.float64), minlength=rows * bins).reshape(
        rows, bins
    )
    return np.abs(pos_sum - prob_sum).sum(axis=1) / n


@dataclass(frozen=True)
class PairedComparison:
    """Candidate minus baseline F1 on the same golden items, with a one-sided paired bootstrap test."""

    candidate_f1: float
    baseline_f1: float
    delta: float
    delta_lower: float
    delta_upper: float
    p_value: float  # share of resamples where the candidate is at least as good (small = regression)
    regression: bool
    extra: dict = field(default_factory=dict)


def paired_f1_comparison(
    labels: np.ndarray,
    candidate_predicted: np.ndarray,
    baseline_predicted: np.ndarray,
    *,
    alpha: float,
    samples: int,
    seed: int,
) -> PairedComparison:
    """Paired bootstrap of F1(candidate) - F1(baseline); a regression when P(delta >= 0) < alpha."""
    labels = np.asarray(labels, dtype=np.int64)
    cand = np.asarray(candidate_predicted, dtype=np.int64)
    base = np.asarray(baseline_predicted, dtype=np.int64)

    def f1_of(y: np.ndarray, yhat: np.ndarray) -> np.ndarray:
        tp = np.sum((y == 1) & (yhat == 1), axis=-1)
        fp = np.sum((y == 0) & (yhat == 1), axis=-1)
        fn = np.sum((y == 1) & (yhat == 0), axis=-1)
        return _prf(tp, fp, fn)[2]

    cand_f1, base_f1 = float(f1_of(labels, cand)), float(f1_of(labels, base))
    idx = bootstrap_indices(len(labels), samples=samples, seed=seed)
    delta = f1_of(labels[idx], cand[idx]) - f1_of(labels[idx], base[idx])
    lower, upper = _interval(delta, 1 - 2 * alpha)
    p_value = float(np.mean(delta >= 0))
    return PairedComparison(
        candidate_f1=cand_f1,
        baseline_f1=base_f1,
        delta=cand_f1 - base_f1,
        delta_lower=lower,
        delta_upper=upper,
        p_value=p_value,
        regression=p_value < alpha,
    )


# ---------------------------------------------------------------- thresholds and curves


def pr_curve(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall, F1 at every distinct threshold t (predict positive when probability >= t), descending t."""
    labels = np.asarray(labels, dtype=np.float64)
    scores = np.asarray(probabilities, dtype=np.float64)
    order = np.argsort(-scores, kind="mergesort")
    scores, labels = scores[order], labels[order]
    last_of_run = np.r_[np.diff(scores) != 0, True]
    tp = np.cumsum(labels)[last_of_run]
    fp = np.cumsum(1 - labels)[last_of_run]
    fn = labels.sum() - tp
    precision, recall, f1 = _prf(tp, fp, fn)
    return {"threshold": scores[last_of_run], "precision": precision, "recall": recall, "f1": f1, "tp": tp, "fp": fp}


def roc_points(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, np.ndarray]:
    """False and true positive rates at every distinct threshold (descending), starting at (0, 0)."""
    curve = pr_curve(labels, probabilities)
    labels = np.asarray(labels)
    n_pos = max(int(labels.sum()), 1)
    n_neg = max(len(labels) - int(labels.sum()), 1)
    return {
        "threshold": np.r_[1.0, np.minimum(curve["threshold"], 1.0)],
        "fpr": np.r_[0.0, curve["fp"] / n_neg],
        "tpr": np.r_[0.0, curve["tp"] / n_pos],
    }


def select_threshold(
    labels: np.ndarray, probabilities: np.ndarray, *, target_precision: float | None = None
) -> dict[str, float | str]:
    """Pick a decision threshold on labelled items.

    ``target_precision`` None: the threshold with the best F1. Otherwise the lowest threshold whose
    precision reaches the target (most recall at that precision); if none does, the best-F1 one, with
    ``rule`` saying so. Returns threshold, precision, recall, f1 and rule.
    """
    if len(labels) == 0 or int(np.sum(labels)) == 0:
        return {
            "threshold": 0.5,
            "precision": float("nan"),
            "recall": float("nan"),
            "f1": float("nan"),
            "rule": "default (no positives)",
        }
    curve = pr_curve(labels, probabilities)
    best = int(np.argmax(curve["f1"]))
    rule = "best_f1"
    if target_precision is not None:
        ok = np.flatnonzero(curve["precision"] >= target_precision)
        if ok.size:
            best = int(ok[-1])
            rule = f"precision>={target_precision}"
        else:
            rule = f"best_f1 (precision {target_precision} unreachable)"
    return {
        "threshold": float(curve["threshold"][best]),
        "precision": float(curve["precision"][best]),
        "recall": float(curve["recall"][best]),
        "f1": float(curve["f1"][best]),
        "rule": rule,
    }
