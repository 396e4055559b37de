"""The A/B step of promoting an attribute: set up the experiment for the spec, simulate its traffic, analyse it,
and compare the estimates with the simulator's known truth (the demo's closing A/B summary)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from silverset.components.common.spec import AttributeSpec, load_spec

from . import analyze, simulate
from .experiment import create_experiment


def simulate_logs(*, out_dir: str | Path, options: simulate.SimulationOptions = simulate.SimulationOptions()) -> dict:
    """Write simulated exposures/outcomes/covariates logs and truth.json into ``out_dir``; returns their paths."""
    experiment = simulate.simulate(options)
    paths = simulate.write_logs(experiment, out_dir)
    return {
        "users": len(experiment.user_id),
        "triggered": int(experiment.triggered.sum()),
        **paths,
        "truth_values": experiment.truth,
    }


class PromotionABOptions(BaseModel):
    """The simulated traffic of ``simulate_and_analyze`` (see simulate.SimulationOptions) and its analysis."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    users: int = Field(20_000, ge=20)
    seed: int = 0
    effect: float = 0.5  # minutes of satisfied consumption a served, interested user gains
    creation_effect: float = 0.005
    confounding: float = 1.0  # how strongly the pre-period covariates drive the trigger
    treatment_share: float = Field(0.5, gt=0, lt=1)
    bootstrap_samples: int = Field(500, ge=0)


class CbpsEffect(BaseModel):
    """The CBPS estimate of one metric's effect on the triggered, next to the naive comparison and the truth."""

    model_config = ConfigDict(frozen=True)

    naive_difference: float
    cbps_difference: float
    ci: tuple[float, float]
    true_att: float


class PromotionABSummary(analyze.AnalysisSummary):
    """The analysis summary plus the simulation's truth and whether each CI covers it (summary.json)."""

    experiment_id: str
    attribute: str  # the spec's key
    users: int
    trigger_threshold: float
    triggered: int  # simulated users whose affinity triggers restricted retrieval
    truth: dict  # metric -> the simulator's true effects (relative_itt, att, ...), and the trigger_rate
    checks: dict[str, bool]  # "<metric>_relative_lift_ci_covers_truth", "<metric>_cbps_ci_covers_att"
    cbps_effects: dict[str, CbpsEffect] = Field(default_factory=dict)


def simulate_and_analyze(
    *,
    attribute_spec: AttributeSpec | str | Path,
    out_dir: str | Path,
    options: PromotionABOptions = PromotionABOptions(),
) -> PromotionABSummary:
    """Simulated A/B analysis for a promoted attribute.

    Treatment = personalized restricted retrieval on: users whose affinity exceeds
    ``spec.serving.trigger_threshold`` trigger it. Writes ``out_dir/experiment.json``, ``out_dir/logs/``,
    ``out_dir/analysis/`` (result.json, report.html, plots, errors.parquet) and ``out_dir/summary.json``. Returns
    the analysis summary plus ``truth`` and ``checks`` (whether each CI covers the simulator's true value).
    """
    spec = attribute_spec if isinstance(attribute_spec, AttributeSpec) else load_spec(attribute_spec)
    out = Path(out_dir)
    salt = f"sim-{options.seed}"
    config = create_experiment(spec=spec, salt=salt, treatment_share=options.treatment_share, out_dir=out)
    simulation = simulate.SimulationOptions(
        users=options.users,
        effect=options.effect,
        creation_effect=options.creation_effect,
        confounding=options.confounding,
        treatment_share=options.treatment_share,
        trigger_threshold=spec.serving.trigger_threshold,
        salt=salt,
        seed=options.seed,
    )
    logs = simulate_logs(out_dir=out / "logs", options=simulation)
    analysis = analyze.run(
        exposures=logs["exposures"],
        outcomes=logs["outcomes"],
        covariates=logs["covariates"],
        out_dir=out / "analysis",
        options=analyze.AnalysisOptions(
            treatment_share=options.treatment_share, bootstrap_samples=options.bootstrap_samples, seed=options.seed
        ),
    )
    result = analyze.AnalysisResult.model_validate_json((out / "analysis" / analyze.RESULT_FILE).read_text())
    truth = logs["truth_values"]
    checks = {}
    for m in result.metrics:
        est = m.cuped or m.estimate
        checks[f"{m.metric}_relative_lift_ci_covers_truth"] = est.relative_lift_ci.covers(
            truth[m.metric]["relative_itt"]
        )
    cbps_effects = {}
    if result.observational is not None:
        for e in result.observational.effects:
            checks[f"{e.metric}_cbps_ci_covers_att"] = (
                e.difference_ci_low <= truth[e.metric]["att"] <= e.difference_ci_high
            )
            cbps_effects[e.metric] = CbpsEffect(
                naive_difference=e.naive_difference,
                cbps_difference=e.difference,
                ci=(e.difference_ci_low, e.difference_ci_high),
                true_att=truth[e.metric]["att"],
            )
    summary = PromotionABSummary(
        **analysis.model_dump(),
        experiment_id=config.experiment_id,
        attribute=spec.key,
        users=options.users,
        trigger_threshold=spec.serving.trigger_threshold,
        triggered=logs["triggered"],
        truth=truth,
        checks=checks,
        cbps_effects=cbps_effects,
    )
    (out / "summary.json").write_text(summary.model_dump_json(indent=2) + "\n", encoding="utf-8")
    return summary
