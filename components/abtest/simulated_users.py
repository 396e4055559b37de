"""Simulated users of an attribute for the A/B loop and the learned trigger: drifting interest, watch histories drawn
from an index's scored videos, pre-period covariates that confound the trigger, and outcomes from what was served.

Each user has a current interest in the attribute (the probability of engaging with it) and an older one that is
only partly the same (tastes drift). Histories are oldest first: the older 70% follows the old interest, the newest
30% the current one, so the rule's share over the whole history lags what a recency-aware model sees. A served user
gains ``effect x current interest`` minutes of satisfied consumption (``outcomes_of``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from scipy.special import expit

from silverset.components.common.errors import SilversetInputError

RECENT_SHARE = 0.3  # newest part of a history that follows the current interest
TASTE_CORRELATION = 0.3  # corr(old taste, current taste) on the logit scale
METRICS = ("satisfied_consumption", "creation_participation")


@dataclass(frozen=True)
class SimulatedUsers:
    """Per-user arrays, length n; ``histories`` are lists of video ids, oldest first."""

    user_id: list[str]
    histories: list[list[str]]
    interest: np.ndarray  # float [n]: current P(engage with the attribute)
    covariates: dict[str, np.ndarray]  # pre_* -> float [n]
    base: np.ndarray  # float [n]: expected consumption without treatment
    creation_logit: np.ndarray  # float [n]


def simulate_users(
    video_ids: list[str],
    probabilities: np.ndarray,
    *,
    users: int,
    min_probability: float,
    seed: int = 0,
    id_prefix: str = "user",
) -> SimulatedUsers:
    """Draw ``users`` users whose histories come from ``video_ids`` (student ``probabilities`` decide which
    count as the attribute's: >= ``min_probability``)."""
    ids = np.asarray(video_ids, dtype=object)
    p = np.asarray(probabilities, dtype=np.float64)
    attr_pool, other_pool = ids[p >= min_probability], ids[p < min_probability]
    if len(attr_pool) == 0 or len(other_pool) == 0:
        raise SilversetInputError(
            "index history",
            f"needs videos on both sides of min_probability {min_probability} "
            f"to draw histories (has {len(attr_pool)} above, {len(other_pool)} below)",
        )
    rng = np.random.default_rng(seed)
    z_now = rng.normal(size=users)
    z_old = TASTE_CORRELATION * z_now + np.sqrt(1 - TASTE_CORRELATION**2) * rng.normal(size=users)
    interest = expit(-1.0 + 1.6 * z_now)
    interest_old = expit(-1.0 + 1.6 * z_old)
    lengths = rng.integers(8, 41, size=users)
    histories = []
    for i in range(users):
        n = int(lengths[i])
        recent = max(2, int(round(RECENT_SHARE * n)))
        share = np.where(np.arange(n) >= n - recent, interest[i], interest_old[i])
        from_attr = rng.random(n) < share
        picks = np.where(
            from_attr, attr_pool[rng.integers(0, len(attr_pool), n)], other_pool[rng.integers(0, len(other_pool), n)]
        )
        histories.append([str(v) for v in picks])
    activity, tenure, level = rng.normal(size=users), rng.normal(size=users), rng.normal(scale=3.0, size=users)
    base = 20.0 + 3.0 * activity + 1.0 * tenure + 2.0 * z_now + level
    creation_logit = -1.8 + 0.5 * activity + 0.3 * z_now + level / 8
    covariates = {
        "pre_activity": activity,
        "pre_tenure": tenure,
        "pre_attribute_minutes": 4.0 * interest_old + rng.normal(size=users),
        "pre_satisfied_consumption": base + rng.normal(scale=2.0, size=users),
        "pre_creation_participation": (rng.random(users) < expit(creation_logit)).astype(np.float64),
    }
    return SimulatedUsers(
        [f"{id_prefix}-{seed}-{i:06d}" for i in range(users)], histories, interest, covariates, base, creation_logit
    )


def outcomes_of(
    sim: SimulatedUsers, served: np.ndarray, *, effect: float, creation_effect: float, seed: int
) -> pa.Table:
    """Outcome table from what was served (bool [n]): metrics, pre_* covariates, the engagement label, history."""
    rng = np.random.default_rng(seed + 7919)
    gain = sim.interest * np.asarray(served, dtype=np.float64)
    consumption = sim.base + rng.normal(scale=2.0, size=len(gain)) + effect * gain
    creation = rng.random(len(gain)) < np.clip(expit(sim.creation_logit) + creation_effect * gain, 0.0, 1.0)
    return pa.table(
        {
            "user_id": sim.user_id,
            "satisfied_consumption": consumption,
            "creation_participation": creation.astype(np.float64),
            **sim.covariates,
            "attribute_engagement": (rng.random(len(gain)) < sim.interest).astype(np.int64),
            "history": pa.array(sim.histories, type=pa.list_(pa.string())),
        }
    )
