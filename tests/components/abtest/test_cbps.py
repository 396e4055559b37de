"""CBPS: balance it promises (every |SMD| < 0.1), recovery of a known effect under confounding, honest CIs."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from silverset.components.abtest import cbps
from silverset.components.abtest.simulate import SimulationOptions, simulate


def _observational(seed: int, users: int = 6000, confounding: float = 1.0):
    sim = simulate(SimulationOptions(users=users, seed=seed, salt=f"cbps-{seed}", confounding=confounding))
    names = list(sim.covariates)
    x = np.column_stack([sim.covariates[k] for k in names])[sim.treatment]
    t = sim.triggered[sim.treatment]
    y = sim.outcomes["satisfied_consumption"][sim.treatment]
    return names, x, t, y, sim.truth


def test_smd_matches_a_hand_computation():
    x = np.array([[1.0], [2.0], [3.0], [4.0], [5.0], [9.0]])
    t = np.array([1, 1, 1, 0, 0, 0], dtype=bool)
    # treated mean 2, var 1; control mean 6, var 7 -> (2 - 6) / sqrt(4) = -2
    assert cbps.standardized_mean_differences(x, t)[0] == pytest.approx(-2.0)
    # weights that move the control mean to 4.5: SMD (2 - 4.5) / 2
    w = np.array([1, 1, 1, 0.5, 0.5, 0.0])
    assert cbps.standardized_mean_differences(x, t, w)[0] == pytest.approx(-1.25)


@pytest.mark.parametrize("estimand", ["ATT", "ATE"])
def test_just_identified_cbps_balances_every_covariate(estimand):
    names, x, t, _, _ = _observational(seed=11)
    before = np.abs(cbps.standardized_mean_differences(x, t))
    assert before.max() > 0.3  # the comparison really is confounded
    fit = cbps.fit(x, t, names=names, estimand=estimand)
    assert fit.converged
    # the promise, checked independently of the fit's own report
    after = np.abs(cbps.standardized_mean_differences(x, t, fit.weights))
    assert after.max() < 1e-6 < 0.1
    assert [b.covariate for b in fit.balance] == names
    assert fit.weights[t].sum() == pytest.approx(1.0) and fit.weights[~t].sum() == pytest.approx(1.0)


def test_over_identified_gmm_still_balances_below_0_1_and_stays_near_the_logistic_fit():
    names, x, t, _, _ = _observational(seed=12)
    fit = cbps.fit(x, t, names=names, over_identified=True)
    assert fit.max_abs_smd() < 0.1
    # the propensity model is correctly specified, so GMM and maximum likelihood agree closely
    mle = LogisticRegression(C=1e10, max_iter=1000).fit(x, t).predict_proba(x)[:, 1]
    assert np.abs(fit.propensity - mle).mean() < 0.02


def test_naive_difference_is_biased_and_cbps_recovers_the_truth():
    names, x, t, y, truth = _observational(seed=13, users=20_000)
    fit = cbps.fit(x, t, names=names)
    effect = cbps.weighted_effect(fit, x, t, y, metric="satisfied_consumption")
    true_att = truth["satisfied_consumption"]["att"]
    assert effect.naive_difference - true_att > 5 * effect.difference_se  # badly biased upwards
    assert effect.difference_ci_low <= true_att <= effect.difference_ci_high


@pytest.mark.slow
def test_cbps_cis_cover_the_truth_over_repeated_simulations():
    reps, hits, estimates, naive = 120, 0, [], []
    for seed in range(reps):
        names, x, t, y, truth = _observational(seed=100 + seed, users=4000)
        fit = cbps.fit(x, t, names=names)
        assert fit.max_abs_smd() < 0.1
        e = cbps.weighted_effect(fit, x, t, y)
        hits += e.difference_ci_low <= truth["satisfied_consumption"]["att"] <= e.difference_ci_high
        estimates.append(e.difference)
        naive.append(e.naive_difference)
    true_att = truth["satisfied_consumption"]["att"]
    # 120 reps: SD of a 95% rate is 2%; [0.89, 0.99] is 3 SD below / 2 above
    assert 0.89 <= hits / reps <= 0.99
    assert abs(np.mean(estimates) - true_att) < 3 * np.std(estimates) / np.sqrt(reps)
    assert np.mean(naive) - true_att > 1.0


def test_no_confounding_means_little_to_correct():
    names, x, t, y, truth = _observational(seed=14, users=20_000, confounding=0.0)
    assert np.abs(cbps.standardized_mean_differences(x, t)).max() < 0.1
    fit = cbps.fit(x, t, names=names)
    e = cbps.weighted_effect(fit, x, t, y)
    assert e.difference_ci_low <= truth["satisfied_consumption"]["att"] <= e.difference_ci_high
