"""F1 retention of a student against its teacher on the same items (both judged against truth), with a CI.

retention = F1(student vs truth) / F1(teacher vs truth). The CI is a seeded percentile bootstrap over the
items, resampled once for both models (paired), so it reflects how much the ratio moves with the sample,
not two independent noises.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from silverset.components.evaluate.metrics import CONFIDENCE, bootstrap_indices


@dataclass(frozen=True)
class Retention:
    """Point value and percentile bootstrap CI of the retention, plus the two F1s it is made of."""

    value: float
    lower: float
    upper: float
    student_f1: float
    teacher_f1: float

    def as_dict(self) -> dict[str, float]:
        return {
            "value": self.value,
            "lower": self.lower,
            "upper": self.upper,
            "student_f1": self.student_f1,
            "teacher_f1": self.teacher_f1,
        }


def f1_rows(truth: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """F1 along the last axis of int arrays [..., n] (0 where there is neither a positive nor a prediction)."""
    tp = np.sum((truth == 1) & (predicted == 1), axis=-1)
    wrong = np.sum(truth != predicted, axis=-1)
    return np.where(2 * tp + wrong > 0, 2 * tp / np.maximum(2 * tp + wrong, 1), 0.0)


def f1_retention(
    truth: np.ndarray,
    teacher: np.ndarray,
    student: np.ndarray,
    *,
    samples: int = 1000,
    seed: int = 0,
    confidence: float = CONFIDENCE,
) -> Retention:
    """Retention of ``student`` vs ``teacher`` (int [n] 0/1 predictions) against ``truth`` (int [n]).

    Resamples where the teacher's F1 is 0 are left out of the CI (the ratio is undefined there); the value is
    NaN when the teacher's F1 on all items is 0.
    """
    truth, teacher, student = (np.asarray(a, dtype=np.int64) for a in (truth, teacher, student))
    teacher_f1, student_f1 = float(f1_rows(truth, teacher)), float(f1_rows(truth, student))
    value = student_f1 / teacher_f1 if teacher_f1 > 0 else float("nan")
    idx = bootstrap_indices(len(truth), samples=samples, seed=seed)
    t_draws, s_draws = f1_rows(truth[idx], teacher[idx]), f1_rows(truth[idx], student[idx])
    ratios = s_draws[t_draws > 0] / t_draws[t_draws > 0]
    if ratios.size == 0:
        return Retention(value, float("nan"), float("nan"), student_f1, teacher_f1)
    alpha = (1 - confidence) / 2
    return Retention(
        value, float(np.quantile(ratios, alpha)), float(np.quantile(ratios, 1 - alpha)), student_f1, teacher_f1
    )
