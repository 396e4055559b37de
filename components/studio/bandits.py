"""Feed selection as a multi-armed bandit (round robin, epsilon-greedy, UCB); reward = change in model quality."""
from __future__ import annotations

import math
import random
from typing import Literal

from pydantic import BaseModel, Field

Policy = Literal["round_robin", "epsilon_greedy", "ucb"]
POLICIES: tuple[str, ...] = ("round_robin", "epsilon_greedy", "ucb")
EPSILON = 0.25
UCB_C = 1e-2
BATCH_SIZE = 25  # d: videos per pull


class BanditState(BaseModel):
    """Per-attribute bandit memory; stored as JSON in the studio database.

    ``score[arm]`` is the most recent reward of that arm (the paper found the latest value beat simple
    and exponentially weighted averages); ``pulls[arm]`` is n_i; ``steps`` is N.
    """

    policy: Policy = "ucb"
    arms: list[str]
    score: dict[str, float] = Field(default_factory=dict)
    pulls: dict[str, int] = Field(default_factory=dict)
    steps: int = 0
    pending_arm: str | None = None
    pending_quality: float | None = None


def choose(state: BanditState, rng: random.Random, *, epsilon: float = EPSILON, c: float = UCB_C) -> str:
    """Pick the next feed. Every arm is pulled once first (its initial score); then the policy decides."""
    if state.policy == "round_robin":
        return state.arms[state.steps % len(state.arms)]
    untried = [arm for arm in state.arms if state.pulls.get(arm, 0) == 0]
    if untried:
        return untried[0]
    if state.policy == "epsilon_greedy":
        if rng.random() < epsilon:
            return rng.choice(state.arms)
        return max(state.arms, key=lambda arm: state.score.get(arm, 0.0))
    # UCB: s_i + c * sqrt(ln N / n_i)
    total = max(state.steps, 1)
    return max(state.arms, key=lambda arm: state.score.get(arm, 0.0) + c * math.sqrt(math.log(total) / state.pulls[arm]))


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
