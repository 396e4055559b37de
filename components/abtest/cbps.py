"""Covariate Balancing Propensity Score (Imai & Ratkovic 2014) with scipy.optimize, for non-randomized comparisons.

The propensity is logistic, pi(x) = sigmoid(z' beta), z = [1, whitened covariates]. Just-identified CBPS solves
the balancing moment conditions exactly (weighted covariate means of the two groups are then equal, so every
standardized mean difference is ~0); the over-identified version adds the logistic score condition and is
fitted by two-step GMM. The weighted effect's standard error comes from a sandwich over the stacked
estimating equations, so it accounts for estimating the propensity.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict
from scipy import optimize, stats
from scipy.special import expit

Estimand = Literal["ATT", "ATE"]
_CLIP = 1e-6


class CovariateBalance(BaseModel):
    """Standardized mean difference of one covariate: (mean_treated - mean_control) / pooled unweighted SD."""

    model_config = ConfigDict(frozen=True)

    covariate: str
    smd_before: float
    smd_after: float


class CBPSFit(BaseModel):
    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    estimand: str
    over_identified: bool
    converged: bool
    max_moment: float  # largest |mean balance moment| at the solution (0 when exactly balanced)
    balance: list[CovariateBalance]
    coefficients: list[float]  # on the whitened design [1, z_1..z_k]; only meaningful with this module's transform

    propensity: np.ndarray  # float [n]
    weights: np.ndarray  # float [n], normalized to sum 1 within each group

    def max_abs_smd(self) -> float:
        return max((abs(b.smd_after) for b in self.balance), default=0.0)


def _design(covariates: np.ndarray) -> np.ndarray:
    """[1, whitened covariates]: float [n, 1 + rank]. Whitening (SVD) keeps the optimization well conditioned;
    balancing the whitened columns balances every linear combination of the originals."""
    x = np.asarray(covariates, dtype=np.float64)
    centered = x - x.mean(axis=0)
    u, s, _ = np.linalg.svd(centered, full_matrices=False)
    keep = s > s.max() * 1e-8 if s.size else np.zeros(0, dtype=bool)
    return np.column_stack([np.ones(len(x)), u[:, keep] * np.sqrt(len(x))])


def _unnormalized_weights(pi: np.ndarray, treated: np.ndarray, estimand: Estimand) -> tuple[np.ndarray, np.ndarray]:
    t = treated.astype(np.float64)
    if estimand == "ATT":
        return t, (1 - t) * pi / (1 - pi)
    return t / pi, (1 - t) / (1 - pi)


def _balance_moments(beta: np.ndarray, z: np.ndarray, treated: np.ndarray, estimand: Estimand) -> np.ndarray:
    """Per-user balance conditions: float [n, p]; their mean is 0 when weighted covariate means agree."""
    pi = np.clip(expit(z @ beta), _CLIP, 1 - _CLIP)
    w1, w0 = _unnormalized_weights(pi, treated, estimand)
    scale = len(z) / max(treated.sum(), 1) if estimand == "ATT" else 1.0
    return scale * (w1 - w0)[:, None] * z


def _score_moments(beta: np.ndarray, z: np.ndarray, treated: np.ndarray) -> np.ndarray:
    pi = expit(z @ beta)
    return (treated - pi)[:, None] * z


def _logistic_mle(z: np.ndarray, treated: np.ndarray) -> np.ndarray:
    def nll(beta):
        eta = z @ beta
        return float(np.sum(np.logaddexp(0, eta) - treated * eta)), z.T @ (expit(eta) - treated)

    res = optimize.minimize(nll, np.zeros(z.shape[1]), jac=True, method="BFGS")
    return res.x


def logistic_propensity(covariates: np.ndarray, treated: np.ndarray) -> np.ndarray:
    """Maximum-likelihood logistic propensity on the same design CBPS uses: float [n]. The usual IPW baseline."""
    z = _design(np.asarray(covariates, dtype=np.float64))
    return np.clip(expit(z @ _logistic_mle(z, np.asarray(treated).astype(np.float64))), _CLIP, 1 - _CLIP)


def standardized_mean_differences(
    covariates: np.ndarray, treated: np.ndarray, weights: np.ndarray | None = None
) -> np.ndarray:
    """SMD per covariate column, float [k]: weighted group means over the pooled *unweighted* SD
    sqrt((var_treated + var_control) / 2), so before/after values share one scale."""
    x = np.asarray(covariates, dtype=np.float64)
    t = treated.astype(bool)
    w = np.ones(len(x)) if weights is None else np.asarray(weights, dtype=np.float64)
    mean_t = np.average(x[t], axis=0, weights=w[t])
    mean_c = np.average(x[~t], axis=0, weights=w[~t])
    sd = np.sqrt((x[t].var(axis=0, ddof=1) + x[~t].var(axis=0, ddof=1)) / 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(sd > 0, (mean_t - mean_c) / sd, 0.0)


def fit(
    covariates: np.ndarray,
    treated: np.ndarray,
    *,
    names: list[str] | None = None,
    estimand: Estimand = "ATT",
    over_identified: bool = False,
) -> CBPSFit:
    """Fit CBPS. ``covariates``: float [n, k]; ``treated``: bool [n] (e.g. triggered restricted retrieval).

    ATT weights: treated 1, control pi/(1-pi); ATE: treated 1/pi, control 1/(1-pi); normalized within group.
    """
    x = np.asarray(covariates, dtype=np.float64)
    t = np.asarray(treated).astype(np.float64)
    if x.ndim != 2 or len(x) != len(t):
        raise ValueError(f"covariates must be [n, k] with n = len(treated), got {x.shape} and {t.shape}")
    if t.sum() < 2 or (1 - t).sum() < 2:
        raise ValueError("CBPS needs at least 2 users in each group")
    names = names or [f"x{i}" for i in range(x.shape[1])]
    z = _design(x)
    beta0 = _logistic_mle(z, t)

    def mean_balance(beta):
        return _balance_moments(beta, z, t, estimand).mean(axis=0)

    sol = optimize.least_squares(mean_balance, beta0, method="lm", xtol=1e-12, ftol=1e-12, gtol=1e-12)
    beta = sol.x
    if over_identified:

        def stacked(b):
            return np.hstack([_score_moments(b, z, t), _balance_moments(b, z, t, estimand)])

        g = stacked(beta)
        cov = np.cov(g, rowvar=False) + 1e-9 * np.eye(g.shape[1])
        chol = np.linalg.cholesky(np.linalg.inv(cov))  # W = L L'; objective |L' gbar|^2 = gbar' W gbar
        sol = optimize.least_squares(
            lambda b: chol.T @ stacked(b).mean(axis=0), beta, method="lm", xtol=1e-12, ftol=1e-12, gtol=1e-12
        )
        beta = sol.x
    max_moment = float(np.abs(mean_balance(beta)).max())
    pi = np.clip(expit(z @ beta), _CLIP, 1 - _CLIP)
    w1, w0 = _unnormalized_weights(pi, t, estimand)
    weights = w1 / w1.sum() + w0 / w0.sum()
    before = standardized_mean_differences(x, t)
    after = standardized_mean_differences(x, t, weights)
    return CBPSFit(
        estimand=estimand,
        over_identified=over_identified,
        converged=bool(sol.success) and (over_identified or max_moment < 1e-6),
        max_moment=max_moment,
        balance=[
            CovariateBalance(covariate=n, smd_before=float(b), smd_after=float(a))
            for n, b, a in zip(names, before, after)
        ],
        coefficients=[float(v) for v in beta],
        propensity=pi,
        weights=weights,
    )


class WeightedEffect(BaseModel):
    """Weighted (Hajek) difference in means between groups with a sandwich CI that includes propensity estimation."""

    model_config = ConfigDict(frozen=True)

    metric: str
    estimand: str
    n_treated: int
    n_control: int
    mean_treated: float
    mean_control: float  # weighted: the treated group's counterfactual mean under ATT
    difference: float
    difference_se: float
    difference_ci_low: float
    difference_ci_high: float
    relative_lift: float
    relative_lift_se: float
    relative_lift_ci_low: float
    relative_lift_ci_high: float
    naive_difference: float
    alpha: float


def weighted_effect(
    fit_result: CBPSFit,
    covariates: np.ndarray,
    treated: np.ndarray,
    outcome: np.ndarray,
    *,
    metric: str = "metric",
    alpha: float = 0.05,
) -> WeightedEffect:
    """Effect of ``treated`` on ``outcome`` (float [n]) under ``fit_result``'s weights.

    Stacked M-estimation over theta = (beta, mu_1, mu_0): psi_i = [M g_i(beta), w1_i (y_i - mu_1),
    w0_i (y_i - mu_0)], with M = I for just-identified CBPS and M = G'W (the GMM first-order condition)
    when over-identified. Var(theta) = A^-1 B A^-T / n, A the mean Jacobian (numeric in beta), B = mean psi psi'.
    """
    x = np.asarray(covariates, dtype=np.float64)
    t = np.asarray(treated).astype(np.float64)
    y = np.asarray(outcome, dtype=np.float64)
    z = _design(x)
    n, p = z.shape
    estimand: Estimand = fit_result.estimand  # type: ignore[assignment]
    beta = np.asarray(fit_result.coefficients)
    weights = fit_result.weights
    mu1 = float(np.sum(weights * t * y))
    mu0 = float(np.sum(weights * (1 - t) * y))

    if fit_result.over_identified:

        def stacked(b):
            return np.hstack([_score_moments(b, z, t), _balance_moments(b, z, t, estimand)])

        g = stacked(beta)
        w_gmm = np.linalg.inv(np.cov(g, rowvar=False) + 1e-9 * np.eye(g.shape[1]))
        jac = _numeric_jacobian(lambda b: stacked(b).mean(axis=0), beta)
        m = jac.T @ w_gmm

        def beta_equations(b):
            return stacked(b) @ m.T
    else:

        def beta_equations(b):
            return _balance_moments(b, z, t, estimand)

    def psi(theta: np.ndarray) -> np.ndarray:
        b, m1, m0 = theta[:p], theta[p], theta[p + 1]
        pi = np.clip(expit(z @ b), _CLIP, 1 - _CLIP)
        w1, w0 = _unnormalized_weights(pi, t, estimand)
        return np.column_stack([beta_equations(b), w1 * (y - m1), w0 * (y - m0)])

    theta = np.concatenate([beta, [mu1, mu0]])
    a = _numeric_jacobian(lambda th: psi(th).mean(axis=0), theta)
    values = psi(theta)
    b_mat = values.T @ values / n
    a_inv = np.linalg.pinv(a)
    cov = a_inv @ b_mat @ a_inv.T / n
    var1, var0, cov10 = cov[p, p], cov[p + 1, p + 1], cov[p, p + 1]
    z_crit = float(stats.norm.ppf(1 - alpha / 2))
    diff = mu1 - mu0
    se = float(np.sqrt(max(var1 + var0 - 2 * cov10, 0.0)))
    rel = mu1 / mu0 - 1 if mu0 else float("nan")
    var_rel = var1 / mu0**2 + mu1**2 * var0 / mu0**4 - 2 * mu1 * cov10 / mu0**3 if mu0 else float("nan")
    se_rel = float(np.sqrt(max(var_rel, 0.0)))
    tb = t.astype(bool)
    return WeightedEffect(
        metric=metric,
        estimand=estimand,
        n_treated=int(tb.sum()),
        n_control=int((~tb).sum()),
        mean_treated=mu1,
        mean_control=mu0,
        difference=diff,
        difference_se=se,
        difference_ci_low=diff - z_crit * se,
        difference_ci_high=diff + z_crit * se,
        relative_lift=rel,
        relative_lift_se=se_rel,
        relative_lift_ci_low=rel - z_crit * se_rel,
        relative_lift_ci_high=rel + z_crit * se_rel,
        naive_difference=float(y[tb].mean() - y[~tb].mean()),
        alpha=alpha,
    )


def _numeric_jacobian(func, point: np.ndarray) -> np.ndarray:
    """Central-difference Jacobian of a vector function: float [len(func(point)), len(point)]."""
    point = np.asarray(point, dtype=np.float64)
    columns = []
    for i in range(len(point)):
        step = 1e-6 * max(1.0, abs(point[i]))
        up, down = point.copy(), point.copy()
        up[i] += step
        down[i] -= step
        columns.append((func(up) - func(down)) / (2 * step))
    return np.column_stack(columns)
