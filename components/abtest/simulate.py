"""A/B simulator with a known true effect: users, covariates, attribute affinity, exposures and outcomes.

Users carry four observed covariates (prior activity, tenure, past creator, interest in the attribute) and an
unobserved persistent level ``u``. Affinity for the attribute is sigmoid(eta(x) + logistic noise); eta's
covariate part is scaled by ``confounding``, so P(triggered | x) = sigmoid(eta(x) - logit(threshold)) is
exactly logistic. Treatment users whose affinity exceeds the spec's trigger threshold get restricted retrieval
and gain ``effect`` minutes of satisfied consumption and ``creation_effect`` in creation probability. The
same covariates raise the outcomes, so triggered-vs-not comparisons are confounded; pre-period metrics
share ``u`` with the outcomes, which is what CUPED exploits.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field
from scipy.special import expit, logit

from .experiment import assign

COVARIATES = ("prior_activity", "tenure", "past_creator", "attribute_interest")
METRICS = ("satisfied_consumption", "creation_participation")
BASE_CONSUMPTION = 20.0  # minutes per day


class SimulationOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    users: int = Field(20_000, ge=20)
    effect: float = Field(0.5, description="minutes/day of satisfied consumption gained by a triggered user")
    creation_effect: float = Field(
        0.005, ge=-0.2, le=0.2, description="creation probability gained by a triggered user"
    )
    confounding: float = Field(1.0, ge=0.0, description="how strongly covariates drive affinity (0 = none)")
    treatment_share: float = Field(0.5, gt=0.0, lt=1.0)
    trigger_threshold: float = Field(0.3, gt=0.0, lt=1.0)
    lost_treatment_share: float = Field(
        0.0, ge=0.0, lt=1.0, description="treatment users missing from the logs (a broken split)"
    )
    salt: str = "simulation"
    seed: int = 0


@dataclass(frozen=True)
class SimulatedExperiment:
    """Per-user arrays, all length n (after any simulated logging loss)."""

    user_id: np.ndarray  # str [n]
    treatment: np.ndarray  # bool [n]
    affinity: np.ndarray  # float [n] in (0, 1)
    triggered: np.ndarray  # bool [n]: treatment and affinity > threshold
    covariates: dict[str, np.ndarray]  # name -> float [n], incl. pre-period metrics pre_<metric>
    outcomes: dict[str, np.ndarray]  # metric -> float [n]
    truth: dict


def _affinity_logit(x: dict[str, np.ndarray], confounding: float) -> np.ndarray:
    return -0.6 + confounding * (
        0.9 * x["attribute_interest"] + 0.5 * x["prior_activity"] - 0.4 * x["tenure"] + 0.8 * (x["past_creator"] - 0.2)
    )


def _draw_covariates(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    return {
        "prior_activity": rng.normal(size=n),
        "tenure": rng.normal(size=n),
        "past_creator": (rng.random(n) < 0.2).astype(np.float64),
        "attribute_interest": rng.normal(size=n),
    }


def _consumption_mean(x: dict[str, np.ndarray], u: np.ndarray) -> np.ndarray:
    return (
        BASE_CONSUMPTION
        + 3.0 * x["prior_activity"]
        + 1.0 * x["tenure"]
        + 2.0 * (x["past_creator"] - 0.2)
        + 2.5 * x["attribute_interest"]
        + u
    )


def _creation_probability(x: dict[str, np.ndarray], u: np.ndarray) -> np.ndarray:
    return expit(-1.8 + 0.5 * x["prior_activity"] + 1.2 * x["past_creator"] + 0.3 * x["attribute_interest"] + u / 8)


@functools.lru_cache(maxsize=32)
def true_effects(*, effect: float, creation_effect: float, confounding: float, trigger_threshold: float) -> dict:
    """Population truths by Monte Carlo over 1,000,000 users (noise-free expectations, fixed seed).

    ``itt``: treatment-minus-control per user over everyone (effect x P(trigger)); ``relative_itt``: that over
    the control mean; ``att``: the effect on users who trigger (the CBPS target).
    """
    rng = np.random.default_rng(20140101)
    n = 1_000_000
    x = _draw_covariates(rng, n)
    u = rng.normal(scale=4.0, size=n)
    p_trigger = float(expit(_affinity_logit(x, confounding) - logit(trigger_threshold)).mean())
    creation_control = float(_creation_probability(x, u).mean())
    return {
        "trigger_rate": p_trigger,
        "satisfied_consumption": {
            "itt": effect * p_trigger,
            "relative_itt": effect * p_trigger / BASE_CONSUMPTION,
            "att": effect,
            "control_mean": BASE_CONSUMPTION,
        },
        "creation_participation": {
            "itt": creation_effect * p_trigger,
            "relative_itt": creation_effect * p_trigger / creation_control,
            "att": creation_effect,
            "control_mean": creation_control,
        },
    }


def simulate(options: SimulationOptions = SimulationOptions()) -> SimulatedExperiment:
    """Draw one experiment. Arms come from the same salted-hash bucketing as a real experiment."""
    rng = np.random.default_rng(options.seed)
    n = options.users
    user_id = np.array([f"user-{options.seed}-{i:07d}" for i in range(n)])
    treatment = assign(user_id, salt=options.salt, treatment_share=options.treatment_share)
    x = _draw_covariates(rng, n)
    u = rng.normal(scale=4.0, size=n)
    affinity = expit(_affinity_logit(x, options.confounding) + rng.logistic(size=n))
    triggered = treatment & (affinity > options.trigger_threshold)
    base = _consumption_mean(x, u)
    pre_consumption = base + rng.normal(scale=4.0, size=n)
    consumption = base + rng.normal(scale=4.0, size=n) + options.effect * triggered
    p_create = _creation_probability(x, u)
    pre_creation = (rng.random(n) < p_create).astype(np.float64)
    creation = (rng.random(n) < np.clip(p_create + options.creation_effect * triggered, 0, 1)).astype(np.float64)
    covariates = dict(x)
    covariates["pre_satisfied_consumption"] = pre_consumption
    covariates["pre_creation_participation"] = pre_creation
    keep = np.ones(n, dtype=bool)
    if options.lost_treatment_share > 0:
        keep = ~(treatment & (rng.random(n) < options.lost_treatment_share))
    truth = true_effects(
        effect=options.effect,
        creation_effect=options.creation_effect,
        confounding=options.confounding,
        trigger_threshold=options.trigger_threshold,
    )
    return SimulatedExperiment(
        user_id=user_id[keep],
        treatment=treatment[keep],
        affinity=affinity[keep],
        triggered=triggered[keep],
        covariates={k: v[keep] for k, v in covariates.items()},
        outcomes={"satisfied_consumption": consumption[keep], "creation_participation": creation[keep]},
        truth=truth,
    )


def write_logs(experiment: SimulatedExperiment, out_dir: str | Path) -> dict[str, str]:
    """Write exposures/outcomes/covariates Parquet logs and truth.json; returns their paths."""
    from silverset.components.common.tables import write_table

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    arm = np.where(experiment.treatment, "treatment", "control")
    paths = {name: str(out / f"{name}.parquet") for name in ("exposures", "outcomes", "covariates")}
    write_table(
        pa.table(
            {
                "user_id": experiment.user_id,
                "arm": arm,
                "triggered": experiment.triggered,
                "affinity": experiment.affinity,
            }
        ),
        paths["exposures"],
    )
    write_table(pa.table({"user_id": experiment.user_id, **experiment.outcomes}), paths["outcomes"])
    write_table(pa.table({"user_id": experiment.user_id, **experiment.covariates}), paths["covariates"])
    paths["truth"] = str(out / "truth.json")
    Path(paths["truth"]).write_text(json.dumps(experiment.truth, indent=2) + "\n", encoding="utf-8")
    return paths


def seed_effect_options(**overrides) -> SimulationOptions:
    """Options whose true whole-population lifts are the seeds' (+0.21% satisfied consumption, +0.49% creation).

    The per-triggered-user effects are the relative lift x control mean / P(trigger), from ``true_effects``.
    """
    from .power import SEED_EFFECTS

    base = SimulationOptions(**overrides)
    unit = true_effects(
        effect=1.0, creation_effect=0.0, confounding=base.confounding, trigger_threshold=base.trigger_threshold
    )
    p_trigger = unit["trigger_rate"]
    effect = SEED_EFFECTS["satisfied_consumption"] * unit["satisfied_consumption"]["control_mean"] / p_trigger
    creation = SEED_EFFECTS["creation_participation"] * unit["creation_participation"]["control_mean"] / p_trigger
    return base.model_copy(update={"effect": effect, "creation_effect": creation})


def metric_baselines(options: SimulationOptions, *, users: int = 200_000) -> dict:
    """Control-arm baselines of the simulator for power: creation rate, consumption mean and SD, and the
    share of consumption variance CUPED removes (from one draw of ``users`` users with no effect)."""
    sim = simulate(
        options.model_copy(update={"users": users, "effect": 0.0, "creation_effect": 0.0, "lost_treatment_share": 0.0})
    )
    y = sim.outcomes["satisfied_consumption"]
    x = sim.covariates["pre_satisfied_consumption"]
    return {
        "creation_rate": float(sim.outcomes["creation_participation"].mean()),
        "consumption_mean": float(y.mean()),
        "consumption_sd": float(y.std(ddof=1)),
        "cuped_variance_reduction": float(np.corrcoef(x, y)[0, 1] ** 2),
    }
