"""The studio's source-selection bandit (Video Annotator paper, 5.2): arms, policies, reward, zero-shot, stop rule.

Policies are checked on hand-made states against hand-worked numbers; the zero-shot arm against a numpy
brute-force ranking; the stop rule at both of its thresholds; the service end to end on the studio fixtures.
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from silverset.components.common.spec import example_specs_dir
from silverset.components.studio import bandits, feeds, scores
from silverset.components.studio.service import Conflict, Studio

KEY = "red_dominant@v1"
VA, RANDOM, ZERO_SHOT = bandits.ARMS


def _pull(state, arm, before, after):
    return bandits.settle(bandits.record_pull(state, arm, quality_before=before), quality_after=after)


def test_the_arms_are_the_papers_three_sources_with_its_constants():
    assert bandits.ARMS == ("va_loop", "random", "zero_shot")
    assert (bandits.BATCH_SIZE, bandits.EPSILON, bandits.UCB_C) == (25, 0.25, 0.01)
    assert bandits.BanditState().arms == ["va_loop", "random", "zero_shot"]


def test_round_robin_cycles_through_the_arms_ignoring_scores():
    state = bandits.BanditState(policy="round_robin")
    picks = []
    for step in range(7):
        arm = bandits.choose(state, random.Random(step))
        picks.append(arm)
        # a big reward for zero_shot must not change round robin's order
        state = _pull(state, arm, 0.5, 0.9 if arm == ZERO_SHOT else 0.5)
    assert picks == [VA, RANDOM, ZERO_SHOT, VA, RANDOM, ZERO_SHOT, VA]


def test_round_robin_without_a_text_tower_cycles_over_the_two_other_arms():
    state = bandits.BanditState(policy="round_robin")
    picks = []
    for _ in range(4):
        arm = bandits.choose(state, random.Random(0), available=[VA, RANDOM])
        picks.append(arm)
        state = _pull(state, arm, 0.5, 0.5)
    assert picks == [VA, RANDOM, VA, RANDOM]
    with pytest.raises(ValueError, match="no arm is available"):
        bandits.choose(state, random.Random(0), available=[])


@pytest.mark.parametrize("policy", ["epsilon_greedy", "ucb"])
def test_every_arm_is_pulled_once_first_and_its_reward_is_the_change_in_quality(policy):
    state = bandits.BanditState(policy=policy)
    qualities = [0.60, 0.64, 0.61, 0.70]  # quality when each pull is served, then after the third batch
    served = []
    for i in range(3):
        arm = bandits.choose(state, random.Random(99))  # an rng that would explore: untried arms come first anyway
        served.append(arm)
        state = bandits.settle(state, quality_after=qualities[i])
        state = bandits.record_pull(state, arm, quality_before=qualities[i])
    state = bandits.settle(state, quality_after=qualities[3])
    assert served == [VA, RANDOM, ZERO_SHOT]
    assert state.score == pytest.approx({VA: 0.04, RANDOM: -0.03, ZERO_SHOT: 0.09})
    assert (state.steps, state.pulls) == (3, {VA: 1, RANDOM: 1, ZERO_SHOT: 1})


def test_epsilon_greedy_explores_at_rate_a_quarter():
    state = bandits.BanditState(
        policy="epsilon_greedy",
        score={VA: 0.0, RANDOM: 0.05, ZERO_SHOT: -0.02},
        pulls={VA: 1, RANDOM: 1, ZERO_SHOT: 1},
        steps=3,
    )
    rng = random.Random(7)
    draws = 12_000
    picks = [bandits.choose(state, rng) for _ in range(draws)]
    # Greedy picks 'random' (highest s_i); exploring picks each of the 3 arms with probability 1/3, so the two
    # others are picked at epsilon/3 each and the exploration rate is (others' share) * 3/2.
    others = (picks.count(VA) + picks.count(ZERO_SHOT)) / draws
    assert others * 3 / 2 == pytest.approx(0.25, abs=0.015)
    assert picks.count(VA) / draws == pytest.approx(0.25 / 3, abs=0.01)
    assert picks.count(RANDOM) / draws == pytest.approx(0.75 + 0.25 / 3, abs=0.015)


def test_ucb_picks_the_highest_score_plus_bonus_worked_by_hand():
    # N = 8 steps; n_i = 1, 1, 6. ln 8 = 2.0794.
    # va_loop:   0.010 + 0.01 * sqrt(2.0794 / 1) = 0.010 + 0.014420 = 0.024420
    # random:    0.000 + 0.01 * sqrt(2.0794 / 1) = 0.014420
    # zero_shot: 0.020 + 0.01 * sqrt(2.0794 / 6) = 0.020 + 0.005887 = 0.025887  -> zero_shot
    state = bandits.BanditState(
        policy="ucb", score={VA: 0.010, RANDOM: 0.0, ZERO_SHOT: 0.020}, pulls={VA: 1, RANDOM: 1, ZERO_SHOT: 6}, steps=8
    )
    assert bandits.ucb_value(state, VA) == pytest.approx(0.024420, abs=1e-6)
    assert bandits.ucb_value(state, RANDOM) == pytest.approx(0.014420, abs=1e-6)
    assert bandits.ucb_value(state, ZERO_SHOT) == pytest.approx(0.025887, abs=1e-6)
    assert bandits.choose(state, random.Random(0)) == ZERO_SHOT
    # Lower zero_shot's score to 0.018: 0.023887 < 0.024420, the rarely pulled va_loop wins on its bonus.
    state = state.model_copy(update={"score": {VA: 0.010, RANDOM: 0.0, ZERO_SHOT: 0.018}})
    assert bandits.choose(state, random.Random(0)) == VA
    # With c = 1 the bonus dominates: zero_shot drops to 0.018 + 0.589 = 0.607, under random's 0 + 1.442 and
    # va_loop's 0.010 + 1.442, so the least-pulled arm with the better score wins.
    assert bandits.ucb_value(state, ZERO_SHOT, c=1.0) == pytest.approx(0.018 + math.sqrt(math.log(8) / 6))
    assert bandits.choose(state, random.Random(0), c=1.0) == VA
    state = state.model_copy(update={"score": {VA: 0.0, RANDOM: 0.001, ZERO_SHOT: 0.3}})
    assert bandits.choose(state, random.Random(0), c=1.0) == RANDOM  # 1.443 > 1.442 > 0.889


def test_a_stored_four_feed_bandit_restarts_over_the_papers_arms():
    old = bandits.BanditState(
        policy="epsilon_greedy", arms=list(feeds.FEEDS), score={"borderline": 0.1}, pulls={"borderline": 3}, steps=3
    )
    new = bandits.current(old)
    assert (new.policy, new.arms, new.score, new.pulls, new.steps) == ("epsilon_greedy", list(bandits.ARMS), {}, {}, 0)
    same = bandits.BanditState(policy="ucb", score={VA: 0.1}, pulls={VA: 1}, steps=1)
    assert bandits.current(same) is same


def test_va_loop_rows_interleave_the_four_feeds_once_each():
    p = np.array([0.9, 0.1, 0.5, 0.8, 0.2, 0.45, 0.95, 0.05], dtype=np.float32)
    exclude = np.zeros(8, dtype=bool)
    exclude[6] = True  # the top positive is already labelled
    shuffled = np.random.default_rng(0).permutation(np.flatnonzero(~exclude)).tolist()
    assert shuffled == [2, 4, 3, 7, 5, 0, 1]  # the random feed's order with this seed
    rows, sources = feeds.va_loop_rows(p, exclude, limit=7, rng=np.random.default_rng(0))
    # round 1: top positive 0 (0.9), top negative 7 (0.05), borderline 2 (0.5), random 2 is taken -> 4;
    # round 2: top positive 3 (0.8), top negative 1 (0.1), borderline 2 is taken -> 5 (0.45); 7 rows reached.
    assert rows.tolist() == [0, 7, 2, 4, 3, 1, 5]
    assert sources == [
        "top_positive",
        "top_negative",
        "borderline",
        "random",
        "top_positive",
        "top_negative",
        "borderline",
    ]
    everything, _ = feeds.va_loop_rows(p, exclude, limit=100, rng=np.random.default_rng(0))
    assert sorted(everything.tolist()) == [0, 1, 2, 3, 4, 5, 7]


def test_zero_shot_rows_are_the_top_similarity_unlabelled_videos():
    rng = np.random.default_rng(5)
    similarity = rng.normal(size=200)
    exclude = rng.random(200) < 0.3
    rows = feeds.zero_shot_rows(similarity, exclude, limit=25)
    candidates = [i for i in range(200) if not exclude[i]]
    assert rows.tolist() == sorted(candidates, key=lambda i: -similarity[i])[:25]


def test_zero_shot_query_is_title_and_first_sentence_of_the_definition():
    query = feeds.zero_shot_query(
        title="Red is dominant", definition="Label POSITIVE when red fills\nthe frame. Small red logos are NEGATIVE."
    )
    assert query == "Red is dominant. Label POSITIVE when red fills the frame."


@pytest.mark.parametrize(
    ("quality", "diversity", "labels", "reached"),
    [
        (0.80, 0.80, 40, True),  # both scores exactly at 0.8
        (0.95, 0.79, 40, False),  # diversity just under
        (0.79, 0.95, 40, False),  # quality just under
        (None, 0.95, 40, False),  # quality not computable yet
        (0.50, 0.30, 999, False),  # one label short of the cap
        (0.50, 0.30, 1000, True),  # the 1,000-label cap
        (None, 0.10, 1000, True),
    ],
)
def test_stop_rule_at_both_thresholds(quality, diversity, labels, reached):
    stop = scores.stop_rule(quality=quality, diversity=diversity, labels=labels)
    assert stop["reached"] is reached
    assert {k: stop[k] for k in ("quality", "diversity", "labels", "threshold", "max_labels")} == {
        "quality": quality,
        "diversity": diversity,
        "labels": labels,
        "threshold": 0.8,
        "max_labels": 1000,
    }
    if reached and labels >= 1000 and (quality is None or quality < 0.8):
        assert stop["reason"] == "1000 labels reached the cap of 1000"
    if not reached:
        assert "< 0.8" in stop["reason"] and f"{labels} of 1000 labels" in stop["reason"]


# ---- the service, end to end on the studio fixtures --------------------------------------------------------


def _create(studio, policy="ucb"):
    studio.create_attribute(spec_yaml=(example_specs_dir() / "red_dominant.yaml").read_text(), policy=policy)


def _label_ten_each(studio, corpus, catalog):
    for value, t in (("positive", 1), ("negative", 0)):
        for i in np.flatnonzero(corpus.truth == t)[:10]:
            studio.set_label(KEY, video_id=catalog.video_ids[i], value=value, labeler="alice")


def _label_batch(studio, corpus, catalog, batch, count):
    for card in batch["videos"][:count]:
        value = "positive" if corpus.truth[catalog.row_of[card["video_id"]]] else "negative"
        studio.set_label(KEY, video_id=card["video_id"], value=value, labeler="alice")


def test_service_serves_each_source_once_then_by_ucb_with_batches_of_25(studio, corpus, catalog):
    _create(studio)
    with pytest.raises(Conflict, match="10 positives and 10 negatives"):
        studio.next_batch(KEY)
    _label_ten_each(studio, corpus, catalog)
    served = []
    for step in range(4):
        if step == 3:
            # UCB's pick, worked from the stored memory: N = 3 and n_i = 1 for every arm, so the bonuses are equal
            # and the highest score wins (the pending zero_shot pull is settled by the quality now).
            bandit = studio.state(KEY)["bandit"]
            score = {**bandit["score"], ZERO_SHOT: studio.state(KEY)["quality"] - bandit["pending_quality"]}
            expected = max(bandits.ARMS, key=lambda arm: score[arm])
        batch = studio.next_batch(KEY)
        served.append(batch["arm"])
        assert batch["feed"] == batch["arm"] and len(batch["videos"]) == bandits.BATCH_SIZE == 25
        labelled = {label["video_id"] for label in studio.labels(KEY)}
        assert not labelled & {c["video_id"] for c in batch["videos"]}
        assert set(batch["stop"]) == {"reached", "reason", "quality", "diversity", "labels", "threshold", "max_labels"}
        if batch["arm"] == VA:
            assert {c["source"] for c in batch["videos"]} == set(feeds.FEEDS)
        else:
            assert {c["source"] for c in batch["videos"]} == {batch["arm"]}
        _label_batch(studio, corpus, catalog, batch, 10)
    assert served == [VA, RANDOM, ZERO_SHOT, expected]
    state = studio.state(KEY)
    assert state["bandit"]["steps"] == 4 and set(state["bandit"]["score"]) == set(bandits.ARMS)
    assert state["bandit"]["score"][ZERO_SHOT] == pytest.approx(score[ZERO_SHOT])
    assert state["arms"] == list(bandits.ARMS)


def test_service_zero_shot_batch_is_the_text_towers_top_25_unlabelled(studio, corpus, catalog):
    _create(studio, policy="round_robin")
    _label_ten_each(studio, corpus, catalog)
    for expected in (VA, RANDOM):
        assert studio.next_batch(KEY)["arm"] == expected
    batch = studio.next_batch(KEY)
    assert batch["arm"] == ZERO_SHOT
    # oracle: the same text tower (the fixture's hashing encoder), numpy brute force over unlabelled videos
    query = studio.zero_shot_query(KEY)
    assert query.startswith("Red is the dominant colour. Label a video POSITIVE")
    index = catalog.text_index()
    q = catalog.text_encoder([query])[0]
    similarity = index @ q / np.maximum(np.linalg.norm(index, axis=1) * np.linalg.norm(q), 1e-12)
    labelled = {catalog.row_of[label["video_id"]] for label in studio.labels(KEY)}
    expected = [r for r in np.argsort(-similarity, kind="stable") if r not in labelled][:25]
    assert [catalog.row_of[c["video_id"]] for c in batch["videos"]] == expected
    assert [c["similarity"] for c in batch["videos"]] == pytest.approx(similarity[expected].tolist(), abs=1e-5)
    # the definition names crimson: the zero-shot batch is richer in positives than the corpus
    assert np.mean([corpus.truth[r] for r in expected]) > 2 * corpus.truth.mean()


def test_service_without_a_text_tower_has_no_zero_shot_arm(catalog, corpus, tmp_path):
    from dataclasses import replace

    bare = replace(catalog, text_encoder=None, clusters=catalog.clusters)
    studio = Studio(catalog=bare, db_url=f"sqlite:///{tmp_path / 'bare.db'}")
    _create(studio, policy="round_robin")
    _label_ten_each(studio, corpus, bare)
    assert [studio.next_batch(KEY)["arm"] for _ in range(3)] == [VA, RANDOM, VA]
    assert studio.state(KEY)["arms"] == [VA, RANDOM]


def test_state_reports_the_stop_rule_from_the_live_scores(studio, corpus, catalog):
    _create(studio)
    stop = studio.state(KEY)["stop"]
    assert stop == {
        "reached": False,
        "reason": stop["reason"],
        "quality": None,
        "diversity": 0.0,
        "labels": 0,
        "threshold": 0.8,
        "max_labels": 1000,
    }
    _label_ten_each(studio, corpus, catalog)
    state = studio.state(KEY)
    stop = state["stop"]
    assert (stop["quality"], stop["diversity"], stop["labels"]) == (state["quality"], state["diversity"], 20)
    assert stop["reached"] is (state["quality"] >= 0.8 and state["diversity"] >= 0.8)


def test_set_policy_moves_a_stored_four_feed_bandit_onto_the_papers_arms(studio):
    from sqlalchemy import update
    from sqlalchemy.orm import Session

    from silverset.components.studio.models import AttributeRow

    _create(studio)
    legacy = bandits.BanditState(
        policy="ucb", arms=list(feeds.FEEDS), score={"random": 0.2}, pulls={"random": 1}, steps=1
    )
    with Session(studio.engine) as session:
        session.execute(update(AttributeRow).values(bandit_state=legacy.model_dump_json()))
        session.commit()
    assert studio.state(KEY)["bandit"]["arms"] == list(bandits.ARMS)
    studio.set_policy(KEY, "round_robin")
    bandit = studio.state(KEY)["bandit"]
    assert (bandit["policy"], bandit["arms"], bandit["steps"]) == ("round_robin", list(bandits.ARMS), 0)
