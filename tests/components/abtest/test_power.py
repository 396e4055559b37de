"""Power calculation against a hand-worked case and a Monte Carlo rejection rate."""

import numpy as np
import pytest
from scipy import stats

from silverset.components.abtest.power import required_users
from silverset.components.common.errors import SilversetInputError


def test_two_proportions_hand_worked():
    # p1 = 0.10, p2 = 0.12, alpha 0.05, power 0.8, 50/50: per arm
    # n = (1.95996 sqrt(2 * 0.11 * 0.89) + 0.84162 sqrt(0.1 * 0.9 + 0.12 * 0.88))^2 / 0.02^2 = 3840.4 -> 3841
    r = required_users(baseline_rate=0.10, mde=0.02, relative=False)
    assert r.users_treatment == r.users_control
    assert abs(r.users_treatment - 3841) <= 1


def test_seed_sized_lift_needs_millions_and_days_follow_traffic():
    r = required_users(baseline_rate=0.1, mde=0.0049, daily_users=2_000_000)
    assert 11_000_000 < r.users_total < 12_500_000
    assert r.days == pytest.approx(r.users_total / 2_000_000)


def test_power_is_achieved_by_simulation():
    r = required_users(baseline_rate=0.2, mde=0.1, power=0.8, treatment_share=0.3)
    rng = np.random.default_rng(0)
    reps = 4000
    x_t = rng.binomial(r.users_treatment, r.treated, size=reps)
    x_c = rng.binomial(r.users_control, r.baseline, size=reps)
    p_t, p_c = x_t / r.users_treatment, x_c / r.users_control
    pooled = (x_t + x_c) / (r.users_treatment + r.users_control)
    se = np.sqrt(pooled * (1 - pooled) * (1 / r.users_treatment + 1 / r.users_control))
    rejected = np.abs(p_t - p_c) / se > stats.norm.ppf(0.975)
    assert abs(rejected.mean() - 0.8) < 0.025  # MC SD 0.0063


def test_continuous_metric_uses_the_sd():
    r = required_users(baseline_rate=20.0, mde=0.5, relative=False, baseline_sd=7.0)
    expected = 2 * (stats.norm.ppf(0.975) + stats.norm.ppf(0.8)) ** 2 * 7.0**2 / 0.5**2  # per arm
    assert abs(r.users_treatment - expected) <= 1


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(baseline_rate=1.2, mde=0.1),
        dict(baseline_rate=0.1, mde=0.0),
        dict(baseline_rate=0.1, mde=0.1, alpha=1.5),
        dict(baseline_rate=0.9, mde=0.5),
    ],
)
def test_bad_inputs_name_the_flag(kwargs):
    with pytest.raises(SilversetInputError):
        required_users(**kwargs)


def test_seed_effects_against_the_analytic_formula():
    from silverset.components.abtest.power import SEED_EFFECTS, seed_effect_requirements

    z = stats.norm.ppf(0.975) + stats.norm.ppf(0.8)
    r = seed_effect_requirements(creation_rate=0.2, consumption_mean=20.0, consumption_sd=7.0)
    delta = 20.0 * 0.0021
    expected = z**2 * 7.0**2 * (1 / 0.5 + 1 / 0.5) / delta**2  # total users, 50/50
    assert abs(r["satisfied_consumption"].users_total - expected) <= 2
    # Two proportions 0.2 -> 0.2 * 1.0049, pooled null variance (hand formula as in required_users' docstring).
    p0, p1 = 0.2, 0.2 * (1 + SEED_EFFECTS["creation_participation"])
    pooled = (p0 + p1) / 2
    n = (
        (
            stats.norm.ppf(0.975) * np.sqrt(pooled * (1 - pooled) * 4)
            + stats.norm.ppf(0.8) * np.sqrt(2 * p0 * (1 - p0) + 2 * p1 * (1 - p1))
        )
        / (p1 - p0)
    ) ** 2
    assert abs(r["creation_participation"].users_total - n) <= 2
    # CUPED removing 46% of the variance needs 54% of the users.
    c = seed_effect_requirements(creation_rate=0.2, consumption_mean=20.0, consumption_sd=7.0, variance_reduction=0.46)
    assert c["satisfied_consumption"].users_total == pytest.approx(0.54 * expected, rel=1e-4)
    with pytest.raises(SilversetInputError, match="variance-reduction"):
        seed_effect_requirements(creation_rate=0.2, consumption_mean=20.0, consumption_sd=7.0, variance_reduction=1.0)


def test_simulator_at_the_seed_effect_sizes_has_those_true_lifts():
    from silverset.components.abtest.simulate import seed_effect_options, true_effects

    o = seed_effect_options(trigger_threshold=0.4)
    t = true_effects(
        effect=o.effect,
        creation_effect=o.creation_effect,
        confounding=o.confounding,
        trigger_threshold=o.trigger_threshold,
    )
    assert t["satisfied_consumption"]["relative_itt"] == pytest.approx(0.0021)
    assert t["creation_participation"]["relative_itt"] == pytest.approx(0.0049)
