"""Golden-set metrics against scikit-learn and hand-worked cases; bootstrap and threshold behaviour."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from silverset.components.evaluate import metrics


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_point_metrics_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    y = (rng.random(300) < 0.3).astype(int)
    p = np.clip(y * 0.3 + rng.random(300) * 0.7, 0, 1).round(2)  # rounding makes ties, which AP/AUC must handle
    yhat = (p >= 0.5).astype(int)
    got = metrics.point_metrics(y, p, yhat)
    assert got["precision"] == pytest.approx(skm.precision_score(y, yhat))
    assert got["recall"] == pytest.approx(skm.recall_score(y, yhat))
    assert got["f1"] == pytest.approx(skm.f1_score(y, yhat))
    assert got["average_precision"] == pytest.approx(skm.average_precision_score(y, p))
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p))
    assert metrics.confusion_counts(y, yhat) == tuple(skm.confusion_matrix(y, yhat).ravel())


def test_hand_made_case():
    y = np.array([1, 1, 0, 0, 1])
    p = np.array([0.9, 0.4, 0.6, 0.1, 0.8])
    yhat = (p >= 0.5).astype(int)  # tp=2, fp=1, fn=1
    got = metrics.point_metrics(y, p, yhat)
    assert got["precision"] == pytest.approx(2 / 3)
    assert got["recall"] == pytest.approx(2 / 3)
    assert got["f1"] == pytest.approx(2 / 3)
    # AP by hand: ranks 0.9(+) 0.8(+) 0.6(-) 0.4(+) -> 1/3*(1 + 1 + 3/4)
    assert got["average_precision"] == pytest.approx((1 + 1 + 0.75) / 3)
    # AUC: of 6 (pos, neg) pairs only (0.4, 0.6) is misordered
    assert got["roc_auc"] == pytest.approx(5 / 6)


def test_expected_calibration_error_by_hand():
    # bin [0.2,0.3): two items at 0.2, one positive -> |0.5-0.2| ; bin [0.9,1.0]: two at 0.9, both positive -> 0.1
    y = np.array([1, 0, 1, 1])
    p = np.array([0.2, 0.2, 0.9, 0.9])
    assert metrics.expected_calibration_error(y, p) == pytest.approx(0.5 * 0.3 + 0.5 * 0.1)


def test_zero_division_and_missing_class_are_not_silent_passes():
    y = np.zeros(5, dtype=int)
    got = metrics.point_metrics(y, np.full(5, 0.1), np.zeros(5, dtype=int))
    assert got["f1"] == 0.0 and np.isnan(got["roc_auc"]) and np.isnan(got["average_precision"])


def test_bootstrap_is_seeded_and_brackets_the_value():
    rng = np.random.default_rng(3)
    y = (rng.random(150) < 0.4).astype(int)
    p = np.clip(y * 0.4 + rng.random(150) * 0.6, 0, 1)
    yhat = (p >= 0.5).astype(int)
    a = metrics.bootstrap_metrics(y, p, yhat, samples=300, seed=11)
    b = metrics.bootstrap_metrics(y, p, yhat, samples=300, seed=11)
    c = metrics.bootstrap_metrics(y, p, yhat, samples=300, seed=12)
    assert a == b and a["f1"] != c["f1"]
    for name, est in a.items():
        assert est.lower <= est.value <= est.upper, name
    assert a["f1"].upper - a["f1"].lower > 0.02  # 150 items cannot pin F1 down to the third decimal


def test_select_threshold_matches_brute_force():
    rng = np.random.default_rng(5)
    y = (rng.random(200) < 0.3).astype(int)
    p = np.clip(y * 0.35 + rng.random(200) * 0.65, 0, 1)
    best = max(np.unique(p), key=lambda t: (skm.f1_score(y, (p >= t).astype(int)), t))
    chosen = metrics.select_threshold(y, p)
    assert skm.f1_score(y, (p >= chosen["threshold"]).astype(int)) == pytest.approx(
        skm.f1_score(y, (p >= best).astype(int))
    )
    target = metrics.select_threshold(y, p, target_precision=0.8)
    ok = [t for t in np.unique(p) if skm.precision_score(y, (p >= t).astype(int), zero_division=0) >= 0.8]
    assert target["threshold"] == pytest.approx(min(ok))
    assert target["precision"] >= 0.8


def test_paired_comparison_flags_a_real_regression_only():
    rng = np.random.default_rng(9)
    y = (rng.random(400) < 0.4).astype(int)
    good = np.where(rng.random(400) < 0.05, 1 - y, y)
    worse = np.where(rng.random(400) < 0.3, 1 - y, y)
    assert metrics.paired_f1_comparison(y, worse, good, alpha=0.05, samples=500, seed=0).regression
    assert not metrics.paired_f1_comparison(y, good, good, alpha=0.05, samples=500, seed=0).regression
    assert not metrics.paired_f1_comparison(y, good, worse, alpha=0.05, samples=500, seed=0).regression


def test_vectorized_bootstrap_rows_match_the_scalar_metrics():
    rng = np.random.default_rng(4)
    y = (rng.random((20, 60)) < 0.3).astype(int)
    p = rng.random((20, 60)).round(1)  # many ties
    y[0] = 0  # a resample without positives
    for fn, rows in (
        (metrics.average_precision, metrics._average_precision_rows),
        (metrics.roc_auc, metrics._roc_auc_rows),
        (metrics.expected_calibration_error, metrics._ece_rows),
    ):
        expected = np.array([fn(y[b], p[b]) for b in range(20)])
        np.testing.assert_allclose(rows(y, p), expected, equal_nan=True, atol=1e-12)
