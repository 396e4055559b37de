"""Model quality, data diversity, feeds and bandits against hand-worked cases and sklearn/numpy oracles."""

from __future__ import annotations

import random

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import StratifiedKFold

from silverset.components.studio import bandits, feeds, scores


def test_quality_is_25th_percentile_of_fold_balanced_accuracy():
    rng = np.random.default_rng(0)
    x = np.vstack([rng.normal(0, 1, (40, 5)), rng.normal(0.8, 1, (25, 5))]).astype(np.float32)
    y = np.array([0] * 40 + [1] * 25)
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
    per_fold = [
        balanced_accuracy_score(
            y[te],
            LogisticRegression(solver="liblinear", max_iter=1000, class_weight="balanced", random_state=0)
            .fit(x[tr], y[tr])
            .predict(x[te]),
        )
        for tr, te in folds.split(x, y)
    ]
    assert scores.model_quality(x, y, seed=0) == pytest.approx(np.percentile(per_fold, 25))
    assert scores.model_quality(x, y, seed=0) <= np.median(per_fold)


def test_quality_needs_five_of_each_class():
    x = np.zeros((12, 3), dtype=np.float32)
    assert scores.model_quality(x, np.array([1] * 4 + [0] * 8)) is None


def test_diversity_hand_worked():
    # k = 10, s = 10: 12 positives in cluster 0 (capped at 10), 3 negatives in cluster 1, 2 in cluster 2.
    clusters = np.array([0] * 12 + [1] * 3 + [2] * 2)
    labels = np.array([1] * 12 + [0] * 5)
    assert scores.data_diversity(clusters, labels) == pytest.approx((10 + 3 + 2) / 200)
    # A label that aligns perfectly with one cluster can reach at most 0.5.
    clusters = np.repeat(np.arange(10), 30)
    aligned = (clusters == 0).astype(int)
    assert scores.data_diversity(clusters, aligned) == pytest.approx((10 + 9 * 10) / 200)
    assert scores.data_diversity(np.repeat(np.arange(10), 10), np.tile([0, 1], 50)) == pytest.approx(0.5)
    both = np.concatenate([np.repeat(np.arange(10), 10)] * 2)
    assert scores.data_diversity(both, np.array([0] * 100 + [1] * 100)) == pytest.approx(1.0)


def test_feeds_order_and_exclusion():
    p = np.array([0.9, 0.1, 0.52, 0.7, 0.45, 0.99], dtype=np.float32)
    exclude = np.array([False, False, False, False, False, True])
    rng = np.random.default_rng(0)
    assert feeds.feed_rows("top_positive", p, exclude, limit=2, rng=rng).tolist() == [0, 3]
    assert feeds.feed_rows("top_negative", p, exclude, limit=2, rng=rng).tolist() == [1, 4]
    assert feeds.feed_rows("borderline", p, exclude, limit=2, rng=rng).tolist() == [2, 4]
    random_rows = feeds.feed_rows("random", p, exclude, limit=10, rng=rng)
    assert sorted(random_rows.tolist()) == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="unknown feed"):
        feeds.feed_rows("nope", p, exclude, limit=1, rng=rng)


def _pull(state, arm, before, after):
    state = bandits.record_pull(state, arm, quality_before=before)
    return bandits.settle(state, quality_after=after)


def test_round_robin_cycles():
    state = bandits.BanditState(policy="round_robin", arms=list(feeds.FEEDS))
    picks = []
    for _ in range(8):
        arm = bandits.choose(state, random.Random(0))
        picks.append(arm)
        state = _pull(state, arm, 0.5, 0.5)
    assert picks == list(feeds.FEEDS) * 2


def test_ucb_tries_every_arm_then_follows_score_plus_bonus():
    state = bandits.BanditState(policy="ucb", arms=["a", "b", "c"])
    rewards = {"a": 0.02, "b": 0.10, "c": -0.01}
    for expected in ("a", "b", "c"):
        assert bandits.choose(state, random.Random(0)) == expected
        state = _pull(state, expected, 0.5, 0.5 + rewards[expected])
    assert state.score == pytest.approx(rewards)
    assert bandits.choose(state, random.Random(0)) == "b"
    # With c = 0.01 the exploration bonus is sqrt(ln N / n_i) * 0.01: an arm pulled far less often wins
    # only when scores are within that bonus.
    state = state.model_copy(
        update={"score": {"a": 0.0, "b": 0.001, "c": 0.0}, "pulls": {"a": 1, "b": 50, "c": 50}, "steps": 101}
    )
    bonus = {arm: state.score[arm] + 1e-2 * np.sqrt(np.log(101) / state.pulls[arm]) for arm in "abc"}
    assert bandits.choose(state, random.Random(0)) == max(bonus, key=bonus.get) == "a"


def test_epsilon_greedy_explores_a_quarter_of_the_time():
    state = bandits.BanditState(
        policy="epsilon_greedy",
        arms=["a", "b", "c", "d"],
        score={"a": 0.1, "b": 0.0, "c": 0.0, "d": 0.0},
        pulls={"a": 1, "b": 1, "c": 1, "d": 1},
        steps=4,
    )
    rng = random.Random(1)
    picks = [bandits.choose(state, rng) for _ in range(4000)]
    # greedy 75% + a quarter of the 25% random picks
    assert picks.count("a") / 4000 == pytest.approx(0.75 + 0.25 / 4, abs=0.03)


def test_settle_without_quality_keeps_pending():
    state = bandits.record_pull(bandits.BanditState(arms=["a"]), "a", quality_before=None)
    assert bandits.settle(state, quality_after=None).pending_arm == "a"
    assert bandits.settle(state, quality_after=0.7).score == {"a": 0.0}
