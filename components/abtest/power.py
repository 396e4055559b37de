"""Power calculation: users (and days) a two-arm test needs to detect a minimum effect on a rate or a mean."""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field
from scipy import stats

from silverset.components.common.errors import SilversetInputError


class PowerResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    baseline: float = Field(description="control rate (or mean)")
    treated: float = Field(description="rate (or mean) under the minimum detectable effect")
    absolute_effect: float
    relative_effect: float
    alpha: float
    power: float
    treatment_share: float
    users_total: int
    users_treatment: int
    users_control: int
    days: float | None = None


def required_users(
    *,
    baseline_rate: float,
    mde: float,
    alpha: float = 0.05,
    power: float = 0.8,
    treatment_share: float = 0.5,
    relative: bool = True,
    baseline_sd: float | None = None,
    daily_users: int | None = None,
) -> PowerResult:
    """Total users for a two-sided z-test of ``treatment - control`` at level ``alpha`` with ``power``.

    ``baseline_rate`` is the control rate of a 0/1 metric (or its mean when ``baseline_sd`` is given);
    ``mde`` is the smallest effect worth detecting, relative to the baseline (0.005 = +0.5%) unless
    ``relative`` is False. Unequal splits use ``treatment_share`` of users in treatment. Formula:
    n = (z_{1-a/2} sd_0 + z_{power} sd_1)^2 / delta^2, sd_0 the null and sd_1 the alternative standard
    deviation of the difference for one user in total, so the null variance uses the pooled rate.
    """
    if not 0 < alpha < 1:
        raise SilversetInputError("--alpha", f"must be in (0, 1), got {alpha}")
    if not 0 < power < 1:
        raise SilversetInputError("--power", f"must be in (0, 1), got {power}")
    if not 0 < treatment_share < 1:
        raise SilversetInputError("--treatment-share", f"must be in (0, 1), got {treatment_share}")
    if mde == 0:
        raise SilversetInputError("--mde", "must not be zero")
    if baseline_sd is None and not 0 < baseline_rate < 1:
        raise SilversetInputError("--baseline-rate", f"a rate must be in (0, 1), got {baseline_rate}")
    if baseline_sd is not None and baseline_sd <= 0:
        raise SilversetInputError("--baseline-sd", f"must be > 0, got {baseline_sd}")
    if relative and baseline_rate == 0:
        raise SilversetInputError("--baseline-rate", "a relative MDE needs a non-zero baseline")
    treated = baseline_rate * (1 + mde) if relative else baseline_rate + mde
    delta = treated - baseline_rate
    if baseline_sd is None and not 0 < treated < 1:
        raise SilversetInputError("--mde", f"moves the rate to {treated:.4g}, outside (0, 1)")
    s, c = treatment_share, 1 - treatment_share
    if baseline_sd is None:
        pooled = c * baseline_rate + s * treated
        sd_null = math.sqrt(pooled * (1 - pooled) * (1 / s + 1 / c))
        sd_alt = math.sqrt(baseline_rate * (1 - baseline_rate) / c + treated * (1 - treated) / s)
    else:
        sd_null = sd_alt = baseline_sd * math.sqrt(1 / s + 1 / c)
    z_alpha = stats.norm.ppf(1 - alpha / 2)
    z_power = stats.norm.ppf(power)
    total = math.ceil(((z_alpha * sd_null + z_power * sd_alt) / delta) ** 2)
    n_treatment = math.ceil(total * s)
    n_control = math.ceil(total * c)
    return PowerResult(
        baseline=baseline_rate,
        treated=treated,
        absolute_effect=delta,
        relative_effect=delta / baseline_rate if baseline_rate else float("nan"),
        alpha=alpha,
        power=power,
        treatment_share=treatment_share,
        users_total=n_treatment + n_control,
        users_treatment=n_treatment,
        users_control=n_control,
        days=(n_treatment + n_control) / daily_users if daily_users else None,
    )


# The seeds' published A/B lifts of the promoted attribute (relative, whole population): creation and
# satisfied consumption, both significant at p < 0.05.
SEED_EFFECTS = {"creation_participation": 0.0049, "satisfied_consumption": 0.0021}


def seed_effect_requirements(
    *,
    creation_rate: float,
    consumption_mean: float,
    consumption_sd: float,
    alpha: float = 0.05,
    power: float = 0.8,
    treatment_share: float = 0.5,
    variance_reduction: float = 0.0,
    daily_users: int | None = None,
) -> dict[str, PowerResult]:
    """Users needed to detect the seeds' lifts: creation as a rate, consumption as a mean with ``consumption_sd``.

    ``variance_reduction`` (CUPED's, in [0, 1)) shrinks the consumption SD by sqrt(1 - reduction); the
    creation rate is sized without it (a conservative two-proportion test).
    """
    if not 0.0 <= variance_reduction < 1.0:
        raise SilversetInputError("--variance-reduction", f"must be in [0, 1), got {variance_reduction}")
    common = dict(alpha=alpha, power=power, treatment_share=treatment_share, daily_users=daily_users)
    return {
        "creation_participation": required_users(
            baseline_rate=creation_rate, mde=SEED_EFFECTS["creation_participation"], **common
        ),
        "satisfied_consumption": required_users(
            baseline_rate=consumption_mean,
            mde=SEED_EFFECTS["satisfied_consumption"],
            baseline_sd=consumption_sd * math.sqrt(1.0 - variance_reduction),
            **common,
        ),
    }
