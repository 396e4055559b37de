"""Randomized lift: delta-method CIs against oracles and repeated simulations, CUPED, bootstrap, SRM."""

import numpy as np
import pytest
from scipy import stats

from silverset.components.abtest import lift
from silverset.components.abtest.analyze import AnalysisOptions, analyze_arrays
from silverset.components.abtest.simulate import SimulationOptions, simulate


def test_difference_se_matches_welch():
    rng = np.random.default_rng(1)
    t, c = rng.normal(10.5, 3, 500), rng.normal(10, 2, 800)
    est = lift.difference_in_means(t, c)
    welch = stats.ttest_ind(t, c, equal_var=False)
    assert est.difference == pytest.approx(t.mean() - c.mean())
    assert est.difference / est.difference_se == pytest.approx(welch.statistic)
    z = stats.norm.ppf(0.975)
    assert est.difference_ci.low == pytest.approx(est.difference - z * est.difference_se)


def test_relative_lift_se_matches_the_hand_worked_delta_method():
    # means 11 and 10, Var(mean_t) = 0.04, Var(mean_c) = 0.09:
    # Var(r) = 0.04 / 100 + 121 * 0.09 / 10^4 = 0.0004 + 0.001089 = 0.001489
    est = lift.lift_from_moments(
        metric="m", method="x", mean_t=11.0, mean_c=10.0, var_mean_t=0.04, var_mean_c=0.09, n_t=10, n_c=10, alpha=0.05
    )
    assert est.relative_lift == pytest.approx(0.1)
    assert est.relative_lift_se == pytest.approx(np.sqrt(0.001489))


def _coverage(confounding: float, reps: int, users: int):
    hits = {"raw": 0, "cuped": 0, "creation": 0}
    widths = {"raw": [], "cuped": []}
    for seed in range(reps):
        sim = simulate(SimulationOptions(users=users, seed=seed, salt=f"cov-{seed}", confounding=confounding))
        result = analyze_arrays(
            treatment=sim.treatment,
            outcomes=sim.outcomes,
            covariates=sim.covariates,
            options=AnalysisOptions(bootstrap_samples=0),
        )
        truth = sim.truth
        consumption, creation = result.metrics
        hits["raw"] += consumption.estimate.relative_lift_ci.covers(truth["satisfied_consumption"]["relative_itt"])
        hits["cuped"] += consumption.cuped.relative_lift_ci.covers(truth["satisfied_consumption"]["relative_itt"])
        hits["creation"] += creation.estimate.difference_ci.covers(truth["creation_participation"]["itt"])
        widths["raw"].append(consumption.estimate.relative_lift_ci.width)
        widths["cuped"].append(consumption.cuped.relative_lift_ci.width)
    return {k: v / reps for k, v in hits.items()}, {k: float(np.mean(v)) for k, v in widths.items()}


def test_cis_cover_the_truth_at_close_to_95_percent_and_cuped_narrows_them():
    coverage, widths = _coverage(confounding=1.0, reps=300, users=3000)
    # 300 reps: binomial SD of a 95% rate is 1.3%, so [0.91, 0.99] is 3 SD either side
    for name, rate in coverage.items():
        assert 0.91 <= rate <= 0.99, (name, rate)
    assert widths["cuped"] < 0.85 * widths["raw"]


def test_cuped_theta_is_the_ols_slope_and_variance_falls():
    rng = np.random.default_rng(3)
    pre = rng.normal(size=4000)
    y = 2.0 + 1.5 * pre + rng.normal(size=4000)
    treated = rng.random(4000) < 0.5
    est, adj = lift.cuped(y[treated], y[~treated], pre[treated], pre[~treated])
    slope = np.polyfit(np.concatenate([pre[treated], pre[~treated]]), np.concatenate([y[treated], y[~treated]]), 1)[0]
    assert adj.theta == pytest.approx(slope)
    assert adj.variance_reduction == pytest.approx(1.5**2 / (1.5**2 + 1), abs=0.03)
    assert est.difference_ci.width < lift.difference_in_means(y[treated], y[~treated]).difference_ci.width


def test_bootstrap_agrees_with_the_delta_method():
    rng = np.random.default_rng(4)
    t, c = rng.exponential(2.1, 3000), rng.exponential(2.0, 3000)
    est = lift.difference_in_means(t, c)
    check = lift.bootstrap_check(t, c, est, samples=2000, seed=0)
    assert check.agrees
    assert check.relative_lift_ci.low == pytest.approx(est.relative_lift_ci.low, abs=0.1 * est.relative_lift_ci.width)


def test_srm_is_caught_and_a_fair_split_is_not_flagged():
    broken = simulate(SimulationOptions(users=20_000, seed=7, lost_treatment_share=0.1))
    fair = simulate(SimulationOptions(users=20_000, seed=7))

    def check(s):
        return lift.sample_ratio_mismatch(
            n_treatment=int(s.treatment.sum()), n_control=int((~s.treatment).sum()), treatment_share=0.5
        )

    assert check(broken).mismatch
    assert not check(fair).mismatch
    # hand check: 5100 vs 4900 at 50/50 -> chi2 = 2 * 100^2 / 5000 = 4.0
    assert lift.sample_ratio_mismatch(
        n_treatment=5100, n_control=4900, treatment_share=0.5
    ).chi_square == pytest.approx(4.0)


def test_srm_false_alarm_rate_is_near_its_threshold():
    # Under a correct 30/70 split the p-value is uniform: flags at the 0.05 level should be ~5%.
    rng = np.random.default_rng(5)
    flags = [
        lift.sample_ratio_mismatch(
            n_treatment=int(k), n_control=10_000 - int(k), treatment_share=0.3, threshold=0.05
        ).mismatch
        for k in rng.binomial(10_000, 0.3, size=2000)
    ]
    assert 0.035 < np.mean(flags) < 0.065
