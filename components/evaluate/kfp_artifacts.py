"""Fill KFP ``Metrics`` and ``ClassificationMetrics`` artifacts from an evaluation summary.

Duck-typed: no kfp import.
"""

from __future__ import annotations

from typing import Any

from . import metrics as golden_metrics


def log_artifacts(summary: dict[str, Any], *, metrics: Any, classification: Any) -> None:
    """metrics: scalar values (+ CI bounds) and the gate verdict.

    classification: ROC curve and confusion matrix of the candidate.
    """
    metrics.log_metric("passed", float(summary["passed"]))
    for role in ("candidate", "teacher"):
        block = summary["metrics"].get(role)
        if not block:
            continue
        for name in ("precision", "recall", "f1", "average_precision", "roc_auc", "ece"):
            for part in ("value", "lower", "upper"):
                value = block[name][part]
                if value is not None and value == value:  # NaN is not a metric KFP can show
                    metrics.log_metric(f"{role}_{name}" + ("" if part == "value" else f"_{part}"), float(value))
    if (
        isinstance(summary["metrics"].get("f1_retention"), float)
        and summary["metrics"]["f1_retention"] == summary["metrics"]["f1_retention"]
    ):
        metrics.log_metric("f1_retention", summary["metrics"]["f1_retention"])
    ratio = summary["metrics"].get("latency", {}).get("ratio")
    if ratio is not None:
        metrics.log_metric("latency_ratio", float(ratio))
    curve = summary.get("curves", {}).get("candidate")
    if curve is None:
        return
    roc = golden_metrics.roc_points(curve["labels"], curve["probabilities"])
    classification.log_roc_curve(roc["fpr"].tolist(), roc["tpr"].tolist(), roc["threshold"].tolist())
    tn, fp, fn, tp = golden_metrics.confusion_counts(curve["labels"], curve["decided"])
    classification.log_confusion_matrix(["negative", "positive"], [[tn, fp], [fn, tp]])
