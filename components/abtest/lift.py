"""Randomized comparison of two arms: difference in means and relative lift with delta-method CIs,
a bootstrap check, CUPED variance reduction and the sample-ratio-mismatch chi-square test."""

from __future__ import annotations

import math

import numpy as np
from pydantic import BaseModel, ConfigDict
from scipy import stats


class Interval(BaseModel):
    model_config = ConfigDict(frozen=True)

    low: float
    high: float

    def covers(self, value: float) -> bool:
        return self.low <= value <= self.high

    @property
    def width(self) -> float:
        return self.high - self.low


class LiftEstimate(BaseModel):
    """One metric's treatment-vs-control comparison.

    ``difference`` is mean(treatment) - mean(control) in the metric's units; ``relative_lift`` is
    mean(treatment) / mean(control) - 1 (0.0049 = +0.49%), its standard error from the delta method.
    """

    model_config = ConfigDict(frozen=True)

    metric: str
    method: str
    n_treatment: int
    n_control: int
    mean_treatment: float
    mean_control: float
    difference: float
    difference_se: float
    difference_ci: Interval
    relative_lift: float
    relative_lift_se: float
    relative_lift_ci: Interval
    p_value: float
    alpha: float


def _z(alpha: float) -> float:
    return float(stats.norm.ppf(1 - alpha / 2))


def lift_from_moments(
    *,
    metric: str,
    method: str,
    mean_t: float,
    mean_c: float,
    var_mean_t: float,
    var_mean_c: float,
    n_t: int,
    n_c: int,
    alpha: float,
    cov_means: float = 0.0,
) -> LiftEstimate:
    """Lift from two arm means and the variances of those means (independent arms unless ``cov_means``).

    Delta method for r = m_t / m_c - 1: Var(r) ~= Var(m_t)/m_c^2 + m_t^2 Var(m_c)/m_c^4 - 2 m_t Cov/m_c^3.
    """
    z = _z(alpha)
    difference = mean_t - mean_c
    se = math.sqrt(max(var_mean_t + var_mean_c - 2 * cov_means, 0.0))
    if mean_c != 0:
        relative = mean_t / mean_c - 1
        var_rel = var_mean_t / mean_c**2 + mean_t**2 * var_mean_c / mean_c**4 - 2 * mean_t * cov_means / mean_c**3
        se_rel = math.sqrt(max(var_rel, 0.0))
    else:
        relative, se_rel = float("nan"), float("nan")
    p_value = float(2 * stats.norm.sf(abs(difference) / se)) if se > 0 else (0.0 if difference else 1.0)
    return LiftEstimate(
        metric=metric,
        method=method,
        n_treatment=n_t,
        n_control=n_c,
        mean_treatment=mean_t,
        mean_control=mean_c,
        difference=difference,
        difference_se=se,
        difference_ci=Interval(low=difference - z * se, high=difference + z * se),
        relative_lift=relative,
        relative_lift_se=se_rel,
        relative_lift_ci=Interval(low=relative - z * se_rel, high=relative + z * se_rel),
        p_value=p_value,
        alpha=alpha,
    )


def difference_in_means(
    treatment: np.ndarray,
    control: np.ndarray,
    *,
    metric: str = "metric",
    alpha: float = 0.05,
    method: str = "difference in means",
) -> LiftEstimate:
    """Compare per-user values ``treatment``: float [n_t] and ``control``: float [n_c] (unequal variances)."""
    t = np.asarray(treatment, dtype=np.float64)
    c = np.asarray(control, dtype=np.float64)
    if len(t) < 2 or len(c) < 2:
        raise ValueError(f"{metric}: each arm needs at least 2 users, got {len(t)} treatment and {len(c)} control")
    return lift_from_moments(
        metric=metric,
        method=method,
        mean_t=float(t.mean()),
        mean_c=float(c.mean()),
        var_mean_t=float(t.var(ddof=1)) / len(t),
        var_mean_c=float(c.var(ddof=1)) / len(c),
        n_t=len(t),
        n_c=len(c),
        alpha=alpha,
    )


class CupedAdjustment(BaseModel):
    model_config = ConfigDict(frozen=True)

    covariate: str
    theta: float
    variance_reduction: float  # 1 - Var(adjusted) / Var(raw), pooled over both arms


def cuped(
    treatment: np.ndarray,
    control: np.ndarray,
    pre_treatment: np.ndarray,
    pre_control: np.ndarray,
    *,
    metric: str = "metric",
    covariate: str = "pre_metric",
    alpha: float = 0.05,
) -> tuple[LiftEstimate, CupedAdjustment]:
    """CUPED (Deng et al. 2013): y' = y - theta (x - mean x), theta = Cov(y, x) / Var(x) pooled over arms.

    ``pre_*`` is a pre-period covariate per user, float [n_t] / [n_c], unaffected by treatment. The
    adjusted arm means stay unbiased for the raw means, so lift and relative lift keep their meaning.
    """
    y = np.concatenate([treatment, control]).astype(np.float64)
    x = np.concatenate([pre_treatment, pre_control]).astype(np.float64)
    var_x = float(x.var(ddof=1))
    theta = float(np.cov(y, x, ddof=1)[0, 1] / var_x) if var_x > 0 else 0.0
    adjusted = y - theta * (x - x.mean())
    n_t = len(treatment)
    estimate = difference_in_means(adjusted[:n_t], adjusted[n_t:], metric=metric, alpha=alpha, method="CUPED")
    var_y = float(y.var(ddof=1))
    reduction = 1 - float(adjusted.var(ddof=1)) / var_y if var_y > 0 else 0.0
    return estimate, CupedAdjustment(covariate=covariate, theta=theta, variance_reduction=reduction)


class BootstrapCheck(BaseModel):
    """Percentile bootstrap CIs beside the delta-method ones; ``agrees`` when every bound is within
    ``tolerance`` of the delta-method interval's width."""

    model_config = ConfigDict(frozen=True)

    samples: int
    difference_ci: Interval
    relative_lift_ci: Interval
    agrees: bool
    tolerance: float


def bootstrap_check(
    treatment: np.ndarray,
    control: np.ndarray,
    estimate: LiftEstimate,
    *,
    samples: int = 1000,
    seed: int = 0,
    tolerance: float = 0.15,
) -> BootstrapCheck:
    """Resample users within each arm ``samples`` times; compare percentile CIs with ``estimate``'s."""
    rng = np.random.default_rng(seed)
    means_t = _bootstrap_means(np.asarray(treatment, dtype=np.float64), samples, rng)
    means_c = _bootstrap_means(np.asarray(control, dtype=np.float64), samples, rng)
    q = [estimate.alpha / 2 * 100, (1 - estimate.alpha / 2) * 100]
    diff = np.percentile(means_t - means_c, q)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.percentile(means_t / means_c - 1, q)
    diff_ci = Interval(low=float(diff[0]), high=float(diff[1]))
    rel_ci = Interval(low=float(rel[0]), high=float(rel[1]))

    def close(a: Interval, b: Interval) -> bool:
        scale = max(b.width, 1e-300)
        return abs(a.low - b.low) <= tolerance * scale and abs(a.high - b.high) <= tolerance * scale

    agrees = close(diff_ci, estimate.difference_ci) and close(rel_ci, estimate.relative_lift_ci)
    return BootstrapCheck(
        samples=samples, difference_ci=diff_ci, relative_lift_ci=rel_ci, agrees=agrees, tolerance=tolerance
    )


def _bootstrap_means(values: np.ndarray, samples: int, rng: np.random.Generator) -> np.ndarray:
    """Means of ``samples`` resamples (with replacement) of ``values``: float [samples]. Chunked to bound memory."""
    n = len(values)
    out = np.empty(samples)
    chunk = max(1, 4_000_000 // max(n, 1))
    for start in range(0, samples, chunk):
        stop = min(samples, start + chunk)
        idx = rng.integers(0, n, size=(stop - start, n))
        out[start:stop] = values[idx].mean(axis=1)
    return out


class SampleRatioCheck(BaseModel):
    """Chi-square goodness of fit of the arm counts to the configured split; a tiny p-value means a broken split."""

    model_config = ConfigDict(frozen=True)

    n_treatment: int
    n_control: int
    expected_treatment_share: float
    observed_treatment_share: float
    chi_square: float
    p_value: float
    threshold: float
    mismatch: bool


def sample_ratio_mismatch(
    *, n_treatment: int, n_control: int, treatment_share: float, threshold: float = 0.001
) -> SampleRatioCheck:
    """SRM test: flags ``mismatch`` when p < ``threshold`` (0.001 by convention, since it runs on every test)."""
    total = n_treatment + n_control
    expected = np.array([total * (1 - treatment_share), total * treatment_share])
    chi2, p = stats.chisquare([n_control, n_treatment], f_exp=expected)
    return SampleRatioCheck(
        n_treatment=n_treatment,
        n_control=n_control,
        expected_treatment_share=treatment_share,
        observed_treatment_share=n_treatment / total if total else float("nan"),
        chi_square=float(chi2),
        p_value=float(p),
        threshold=threshold,
        mismatch=bool(p < threshold),
    )
