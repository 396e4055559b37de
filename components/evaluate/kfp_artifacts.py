"""Publish a gate check's summary to KFP: ``Metrics`` and ``ClassificationMetrics`` artifacts, the HTML report, and
the one string ("passed" / "failed") the pipeline's ``dsl.If`` branches on.

Duck-typed artifacts: no kfp import.
"""

from __future__ import annotations

import json
import shutil
from typing import TYPE_CHECKING, Any

import numpy as np

from . import metrics as golden_metrics

if TYPE_CHECKING:
    from .gate import GateSummary


def log_artifacts(summary: GateSummary, *, metrics: Any, classification: Any) -> None:
    """metrics: scalar values (+ CI bounds) and the gate verdict.

    classification: ROC curve and confusion matrix of the candidate.
    """
    figures = summary.result.metrics
    metrics.log_metric("passed", float(summary.passed))
    for role in ("candidate", "teacher"):
        block = figures.get(role)
        if not block:
            continue
        for name in ("precision", "recall", "f1", "average_precision", "roc_auc", "ece"):
            for part in ("value", "lower", "upper"):
                value = block[name][part]
                if value is not None and value == value:  # NaN is not a metric KFP can show
                    metrics.log_metric(f"{role}_{name}" + ("" if part == "value" else f"_{part}"), float(value))
    retention = figures.get("f1_retention")
    if isinstance(retention, float) and retention == retention:
        metrics.log_metric("f1_retention", retention)
    ratio = figures.get("latency", {}).get("ratio")
    if ratio is not None:
        metrics.log_metric("latency_ratio", float(ratio))
    curve = summary.candidate_curve
    if curve is None:
        return
    labels = np.asarray(curve.labels, dtype=np.int64)
    probabilities = np.asarray(curve.probabilities, dtype=np.float64)
    decided = np.asarray(curve.decided, dtype=np.int64)
    roc = golden_metrics.roc_points(labels, probabilities)
    classification.log_roc_curve(roc["fpr"].tolist(), roc["tpr"].tolist(), roc["threshold"].tolist())
    tn, fp, fn, tp = golden_metrics.confusion_counts(labels, decided)
    classification.log_confusion_matrix(["negative", "positive"], [[tn, fp], [fn, tp]])


def publish(summary: GateSummary, *, metrics: Any, classification: Any, report: Any) -> str:
    """Fill the KFP artifacts, copy report.html to ``report``, print the verdict; returns "passed" or "failed"."""
    log_artifacts(summary, metrics=metrics, classification=classification)
    shutil.copyfile(summary.report, report.path)
    result = summary.result
    print(
        json.dumps(
            {
                "passed": result.passed,
                "reasons": result.reasons,
                "gate": result.gate,
                "candidate_digest": result.candidate_digest,
            }
        )
    )
    return "passed" if summary.passed else "failed"
