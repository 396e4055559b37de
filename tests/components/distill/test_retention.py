"""F1 retention (student F1 / teacher F1 against truth) with a paired bootstrap CI, on hand-worked cases."""

from __future__ import annotations

import numpy as np
import pytest

from silverset.components.distill.retention import f1_retention, f1_rows

TRUTH = np.array([1, 1, 1, 1, 0, 0, 0, 0])
TEACHER = np.array([1, 1, 1, 0, 0, 0, 0, 1])  # tp 3, fp 1, fn 1: F1 = 6 / 8
STUDENT = np.array([1, 1, 0, 0, 0, 0, 0, 0])  # tp 2, fp 0, fn 2: F1 = 4 / 6


def test_hand_worked_example():
    result = f1_retention(TRUTH, TEACHER, STUDENT, samples=500, seed=0)
    assert result.teacher_f1 == pytest.approx(0.75)
    assert result.student_f1 == pytest.approx(2 / 3)
    assert result.value == pytest.approx((2 / 3) / 0.75)  # 0.889
    assert result.lower < result.value < result.upper  # eight items: a wide interval around the point


def test_f1_rows_matches_scikit_learn_per_row():
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(1)
    y, yhat = rng.integers(0, 2, (5, 40)), rng.integers(0, 2, (5, 40))
    assert np.allclose(f1_rows(y, yhat), [f1_score(a, b) for a, b in zip(y, yhat)])


def test_a_student_that_copies_the_teacher_retains_exactly_one_with_no_spread():
    result = f1_retention(TRUTH, TEACHER, TEACHER.copy(), samples=300, seed=0)
    assert (result.value, result.lower, result.upper) == (1.0, 1.0, 1.0)


def test_a_better_student_retains_more_than_one_and_the_ci_is_seeded():
    better = f1_retention(TRUTH, STUDENT, TEACHER, samples=300, seed=3)
    assert better.value == pytest.approx(0.75 / (2 / 3))
    assert better == f1_retention(TRUTH, STUDENT, TEACHER, samples=300, seed=3)


def test_a_teacher_with_no_true_positive_gives_no_ratio():
    result = f1_retention(TRUTH, np.zeros(8, int), STUDENT, samples=100, seed=0)
    assert np.isnan(result.value) and np.isnan(result.lower)
