"""Annotation-source selection as a multi-armed bandit, as in the Video Annotator paper (Ziai & Vartakavi, KDD'24, 5.2).

Contract:
- The arms are the paper's three sources of candidates (``ARMS``): ``va_loop`` (the active-learning loop: its batch
  is drawn from the four feeds, see ``feeds.va_loop_rows``), ``random`` (uniformly random unlabelled videos) and
  ``zero_shot`` (unlabelled videos most similar to the attribute's definition in the embedding's text tower).
- Each pull serves one batch of ``BATCH_SIZE`` (d = 25) videos from the chosen arm.
- Reward: the change in model quality since the arm was pulled (the paper records the gain in model quality
  compared with the previous step; the studio's model quality is the 25th percentile cross-validated balanced
  accuracy, ``scores.model_quality``). An arm's score s_i is its most recent reward (the paper found that better
  than simple or exponentially weighted averages).
- Every arm is pulled once first (its initial score, the paper's t = 0); then the policy decides:
  round robin cycles through the arms without looking at s_i; epsilon-greedy (epsilon = 0.25) picks a uniformly
  random arm with probability epsilon, else the highest s_i; UCB (c = 0.01) picks the highest
  s_i + c * sqrt(ln N / n_i), N = steps so far, n_i = pulls of arm i. Ties go to the earlier arm in ``ARMS``.
- ``choose`` takes the arms available now (e.g. no ``zero_shot`` without a text tower); unavailable arms are skipped.
"""

from __future__ import annotations

import math
import random
from typing import Literal

from pydantic import BaseModel, Field

Policy = Literal["round_robin", "epsilon_greedy", "ucb"]
POLICIES: tuple[str, ...] = ("round_robin", "epsilon_greedy", "ucb")
ARMS: tuple[str, ...] = ("va_loop", "random", "zero_shot")
EPSILON = 0.25
UCB_C = 1e-2
BATCH_SIZE = 25  # d: videos per pull


class BanditState(BaseModel):
    """Per-attribute bandit memory; stored as JSON in the studio database.

    ``score[arm]`` is the most recent reward of that arm; ``pulls[arm]`` is n_i; ``steps`` is N.
    """

    policy: Policy = "ucb"
    arms: list[str] = Field(default_factory=lambda: list(ARMS))
    score: dict[str, float] = Field(default_factory=dict)
    pulls: dict[str, int] = Field(default_factory=dict)
    steps: int = 0
    pending_arm: str | None = None
    pending_quality: float | None = None


def current(state: BanditState) -> BanditState:
    """The state over the paper's arms: a memory kept over other arms (the studio's earlier four-feed bandit)
    restarts empty with the same policy, since its scores say nothing about these arms."""
    if list(state.arms) == list(ARMS):
        return state
    return BanditState(policy=state.policy, arms=list(ARMS))


def ucb_value(state: BanditState, arm: str, *, c: float = UCB_C) -> float:
    """s_i + c * sqrt(ln N / n_i) for an arm that has been pulled (n_i >= 1)."""
    total = max(state.steps, 1)
    return state.score.get(arm, 0.0) + c * math.sqrt(math.log(total) / state.pulls[arm])


def choose(
    state: BanditState,
    rng: random.Random,
    *,
    available: list[str] | tuple[str, ...] | None = None,
    epsilon: float = EPSILON,
    c: float = UCB_C,
) -> str:
    """Pick the next arm among ``available`` (default: all of ``state.arms``, in their order)."""
    arms = [arm for arm in state.arms if available is None or arm in available]
    if not arms:
        raise ValueError(f"no arm is available (arms {state.arms}, available {list(available or [])})")
    if state.policy == "round_robin":
        return arms[state.steps % len(arms)]
    untried = [arm for arm in arms if state.pulls.get(arm, 0) == 0]
    if untried:
        return untried[0]
    if state.policy == "epsilon_greedy":
        if rng.random() < epsilon:
            return rng.choice(arms)
        return max(arms, key=lambda arm: state.score.get(arm, 0.0))
    return max(arms, key=lambda arm: ucb_value(state, arm, c=c))


def record_pull(state: BanditState, arm: str, *, quality_before: float | None) -> BanditState:
    """Remember that ``arm`` was served; its reward is settled by the next quality score."""
    state = state.model_copy(deep=True)
    state.pending_arm = arm
    state.pending_quality = quality_before
    state.pulls[arm] = state.pulls.get(arm, 0) + 1
    state.steps += 1
    return state


def settle(state: BanditState, *, quality_after: float | None) -> BanditState:
    """Set the pending arm's score to the change in model quality since it was pulled."""
    if state.pending_arm is None or quality_after is None:
        return state
    state = state.model_copy(deep=True)
    before = state.pending_quality if state.pending_quality is not None else quality_after
    state.score[state.pending_arm] = quality_after - before
    state.pending_arm = None
    state.pending_quality = None
    return state
