"""The A/B step of promoting an attribute: set up the experiment for the spec, simulate its traffic, analyse it,
and compare the estimates with the simulator's known truth (the demo's closing A/B summary)."""

from __future__ import annotations

import json
from pathlib import Path

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


def simulate_and_analyze(
    *,
    spec: AttributeSpec | str | Path,
    out_dir: str | Path,
    users: int = 20_000,
    seed: int = 0,
    effect: float = 0.5,
    creation_effect: float = 0.005,
    confounding: float = 1.0,
    treatment_share: float = 0.5,
    bootstrap_samples: int = 500,
) -> dict:
    """Simulated A/B analysis for a promoted attribute.

    Treatment = personalized restricted retrieval on: users whose affinity exceeds
    ``spec.serving.trigger_threshold`` trigger it. Writes ``out_dir/experiment.json``, ``out_dir/logs/`` and
    ``out_dir/analysis/`` (result.json, report.html, plots, errors.parquet). Returns the analysis summary plus
    ``truth`` and ``checks`` (whether each CI covers the simulator's true value).
    """
    if not isinstance(spec, AttributeSpec):
        spec = load_spec(spec)
    out = Path(out_dir)
    salt = f"sim-{seed}"
    config = create_experiment(spec=spec, salt=salt, treatment_share=treatment_share, out_dir=out)
    options = simulate.SimulationOptions(
        users=users,
        effect=effect,
        creation_effect=creation_effect,
        confounding=confounding,
        treatment_share=treatment_share,
        trigger_threshold=spec.serving.trigger_threshold,
        salt=salt,
        seed=seed,
    )
    logs = simulate_logs(out_dir=out / "logs", options=options)
    summary = analyze.run(
        exposures=logs["exposures"],
        outcomes=logs["outcomes"],
        covariates=logs["covariates"],
        out_dir=out / "analysis",
        options=analyze.AnalysisOptions(
            treatment_share=treatment_share, bootstrap_samples=bootstrap_samples, seed=seed
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
    if result.observational is not None:
        for e in result.observational.effects:
            checks[f"{e.metric}_cbps_ci_covers_att"] = (
                e.difference_ci_low <= truth[e.metric]["att"] <= e.difference_ci_high
            )
            summary.setdefault("cbps_effects", {})[e.metric] = {
                "naive_difference": e.naive_difference,
                "cbps_difference": e.difference,
                "ci": [e.difference_ci_low, e.difference_ci_high],
                "true_att": truth[e.metric]["att"],
            }
    summary.update(
        experiment_id=config.experiment_id,
        attribute=spec.key,
        users=users,
        trigger_threshold=spec.serving.trigger_threshold,
        triggered=logs["triggered"],
        truth=truth,
        checks=checks,
    )
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
    return summary
