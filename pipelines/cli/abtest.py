"""`silverset abtest ...`: set up, size, simulate and analyse the A/B test of a promoted attribute."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

console = Console()
abtest_app = typer.Typer(
    help="A/B tests of promoted attributes: create, power, simulate, analyze, status.", no_args_is_help=True
)


@abtest_app.command("create")
def create(
    attribute: Path = typer.Option(..., "--attribute", help="Attribute spec YAML of the promoted attribute."),
    salt: str = typer.Option(..., "--salt", help="Bucketing salt; a new salt reshuffles every user."),
    treatment_share: float = typer.Option(0.5, "--treatment-share", help="Share of users in treatment, in (0, 1)."),
    out: Path = typer.Option(..., "--out", help="Folder for experiment.json (and assignments.parquet with --users)."),
    users: Optional[Path] = typer.Option(None, "--users", help="Optional CSV/Parquet with user_id: write their arms."),
) -> None:
    """Write an experiment config: treatment = personalized restricted retrieval on, control = off."""
    from silverset.components.abtest.experiment import assign, create_experiment
    from silverset.components.common.spec import load_spec

    config = create_experiment(spec=load_spec(attribute), salt=salt, treatment_share=treatment_share, out_dir=out)
    console.print(
        f"experiment {config.experiment_id}: {config.treatment_share:.2%} treatment, trigger threshold "
        f"{config.trigger_threshold} -> {out / 'experiment.json'}",
        markup=False,
    )
    if users is not None:
        import numpy as np
        import pyarrow as pa

        from silverset.components.abtest.analyze import read_log
        from silverset.components.common.tables import write_table

        ids = read_log(users, "users")["user_id"].to_numpy()
        arms = np.where(assign(ids, salt=salt, treatment_share=treatment_share), "treatment", "control")
        write_table(pa.table({"user_id": ids.astype(str), "arm": arms}), out / "assignments.parquet")
        console.print(
            f"{len(ids)} users assigned: {int((arms == 'treatment').sum())} treatment -> {out / 'assignments.parquet'}",
            markup=False,
        )


@abtest_app.command("power")
def power(
    baseline_rate: Optional[float] = typer.Option(
        None, "--baseline-rate", help="Control rate of a 0/1 metric (or its mean with --baseline-sd)."
    ),
    mde: Optional[float] = typer.Option(
        None, "--mde", help="Minimum detectable effect, relative (0.005 = +0.5%) unless --absolute."
    ),
    alpha: float = typer.Option(0.05, "--alpha", help="Two-sided significance level."),
    power_: float = typer.Option(0.8, "--power", help="Probability of detecting the MDE."),
    treatment_share: float = typer.Option(0.5, "--treatment-share"),
    absolute: bool = typer.Option(False, "--absolute", help="Read --mde in the metric's units."),
    baseline_sd: Optional[float] = typer.Option(None, "--baseline-sd", help="Per-user SD for a continuous metric."),
    daily_users: Optional[int] = typer.Option(
        None, "--daily-users", help="New users entering per day: prints days to run."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    seed_effects: bool = typer.Option(
        False,
        "--seed-effects",
        help="Size for the seeds' lifts (+0.49% creation, +0.21% satisfied consumption) on the simulator's baselines.",
    ),
) -> None:
    """Users (and days) needed to detect the MDE."""
    from silverset.components.abtest.power import required_users
    from silverset.components.common.errors import SilversetInputError

    if seed_effects:
        _seed_effect_power(
            alpha=alpha, power=power_, treatment_share=treatment_share, daily_users=daily_users, as_json=as_json
        )
        return
    if baseline_rate is None or mde is None:
        raise SilversetInputError("abtest power", "give --baseline-rate and --mde, or --seed-effects")

    result = required_users(
        baseline_rate=baseline_rate,
        mde=mde,
        alpha=alpha,
        power=power_,
        treatment_share=treatment_share,
        relative=not absolute,
        baseline_sd=baseline_sd,
        daily_users=daily_users,
    )
    if as_json:
        console.print_json(json.dumps(result.model_dump()))
        return
    console.print(
        f"{result.baseline:.6g} -> {result.treated:.6g} ({result.relative_effect:+.3%}) at alpha {alpha}, "
        f"power {power_}: {result.users_total:,} users ({result.users_treatment:,} treatment, "
        f"{result.users_control:,} control)",
        markup=False,
    )
    if result.days is not None:
        console.print(f"about {result.days:.1f} days at {daily_users:,} users/day", markup=False)


def _seed_effect_power(
    *, alpha: float, power: float, treatment_share: float, daily_users: int | None, as_json: bool
) -> dict:
    from silverset.components.abtest.power import SEED_EFFECTS, seed_effect_requirements
    from silverset.components.abtest.simulate import SimulationOptions, metric_baselines

    base = metric_baselines(SimulationOptions(treatment_share=treatment_share))
    common = dict(
        creation_rate=base["creation_rate"],
        consumption_mean=base["consumption_mean"],
        consumption_sd=base["consumption_sd"],
        alpha=alpha,
        power=power,
        treatment_share=treatment_share,
        daily_users=daily_users,
    )
    raw = seed_effect_requirements(**common)
    cuped = seed_effect_requirements(**common, variance_reduction=base["cuped_variance_reduction"])
    result = {
        "baselines": base,
        "seed_effects": SEED_EFFECTS,
        "users_needed": {
            m: {
                "raw": raw[m].users_total,
                "cuped": cuped[m].users_total if m == "satisfied_consumption" else None,
                "days_raw": raw[m].days,
            }
            for m in SEED_EFFECTS
        },
    }
    if as_json:
        console.print_json(json.dumps(result))
        return result
    for m, lift_ in SEED_EFFECTS.items():
        line = f"{m}: {lift_:+.2%} on {raw[m].baseline:.4g} needs {raw[m].users_total:,} users"
        if m == "satisfied_consumption":
            line += f" ({cuped[m].users_total:,} with CUPED, variance -{base['cuped_variance_reduction']:.0%})"
        if raw[m].days is not None:
            line += f", about {raw[m].days:.1f} days at {daily_users:,} users/day"
        console.print(line, markup=False)
    return result


@abtest_app.command("simulate")
def simulate(
    users: int = typer.Option(20_000, "--users", help="Users to simulate."),
    effect: float = typer.Option(0.5, "--effect", help="Minutes/day of satisfied consumption a triggered user gains."),
    creation_effect: float = typer.Option(
        0.005, "--creation-effect", help="Creation probability a triggered user gains."
    ),
    confounding: float = typer.Option(1.0, "--confounding", help="How strongly covariates drive affinity (0 = none)."),
    treatment_share: float = typer.Option(0.5, "--treatment-share"),
    trigger_threshold: float = typer.Option(
        0.3, "--trigger-threshold", help="Affinity above which restricted retrieval triggers."
    ),
    lost_treatment_share: float = typer.Option(
        0.0, "--lost-treatment-share", help="Drop this share of treatment users from the logs (a broken split)."
    ),
    seed: int = typer.Option(0, "--seed"),
    out: Path = typer.Option(..., "--out", help="Folder for exposures/outcomes/covariates Parquet and truth.json."),
    seed_effects: bool = typer.Option(
        False,
        "--seed-effects",
        help="Set --effect/--creation-effect so the true lifts are the seeds' (+0.21%, +0.49%) "
        "and print the users they need.",
    ),
) -> None:
    """Simulate users, covariates, affinity, exposures and outcomes with a known true effect."""
    from pydantic import ValidationError

    from silverset.components.abtest.promotion import simulate_logs
    from silverset.components.abtest.simulate import SimulationOptions, seed_effect_options
    from silverset.components.common.errors import SilversetInputError

    try:
        settings = dict(
            users=users,
            confounding=confounding,
            treatment_share=treatment_share,
            trigger_threshold=trigger_threshold,
            lost_treatment_share=lost_treatment_share,
            seed=seed,
            salt=f"sim-{seed}",
        )
        options = (
            seed_effect_options(**settings)
            if seed_effects
            else SimulationOptions(effect=effect, creation_effect=creation_effect, **settings)
        )
    except ValidationError as exc:
        raise SilversetInputError(
            "simulate options", "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        ) from None
    result = simulate_logs(out_dir=out, options=options)
    truth = result["truth_values"]
    console.print(
        f"{result['users']} users, {result['triggered']} triggered restricted retrieval -> {out}", markup=False
    )
    console.print(
        f"truth: satisfied_consumption ITT {truth['satisfied_consumption']['relative_itt']:+.3%}, "
        f"ATT {truth['satisfied_consumption']['att']:+.4g}; creation_participation ITT "
        f"{truth['creation_participation']['relative_itt']:+.3%}, ATT {truth['creation_participation']['att']:+.4g}",
        markup=False,
    )
    if seed_effects:
        _seed_effect_power(alpha=0.05, power=0.8, treatment_share=treatment_share, daily_users=None, as_json=False)
    console.print(
        f"next: silverset abtest analyze --exposures {result['exposures']} --outcomes {result['outcomes']} "
        f"--covariates {result['covariates']} --treatment-share {treatment_share} --out DIR",
        markup=False,
    )


@abtest_app.command(
    "analyze",
    help="Lift with 95% CIs (delta method, bootstrap check), CUPED, SRM and CBPS balance; "
    "exit 3 if SRM or balance fails.",
)
def analyze(
    exposures: Path = typer.Option(
        ...,
        "--exposures",
        help="The index server's exposure-log folder, or Parquet/CSV: user_id, arm (control|treatment), "
        "optional triggered.",
    ),
    outcomes: Path = typer.Option(
        ...,
        "--outcomes",
        help="Parquet/CSV: user_id, one numeric column per metric; pre_* columns are pre-period covariates "
        "unless --covariates is given.",
    ),
    covariates: Optional[Path] = typer.Option(
        None,
        "--covariates",
        help="Parquet/CSV: user_id and numeric pre-period covariates (pre_<metric> enables CUPED).",
    ),
    out: Path = typer.Option(..., "--out", help="Folder for result.json, report.html, plots and errors.parquet."),
    experiment: Optional[Path] = typer.Option(
        None, "--experiment", help="experiment.json (or its folder): the split for the SRM test."
    ),
    treatment_share: Optional[float] = typer.Option(
        None, "--treatment-share", help="Configured split if no --experiment (default 0.5)."
    ),
    metric: Optional[list[str]] = typer.Option(
        None, "--metric", help="Metric column(s) to analyse (default: all numeric)."
    ),
    alpha: float = typer.Option(0.05, "--alpha"),
    bootstrap_samples: int = typer.Option(1000, "--bootstrap-samples", help="0 skips the bootstrap check."),
    estimand: str = typer.Option("ATT", "--estimand", help="CBPS estimand: ATT (effect on triggered users) or ATE."),
    over_identified: bool = typer.Option(False, "--over-identified", help="CBPS with the score condition too (GMM)."),
    missing_outcome: str = typer.Option(
        "drop", "--missing-outcome", help="Exposed users without outcomes: drop or zero."
    ),
    seed: int = typer.Option(0, "--seed"),
    experiment_id: Optional[str] = typer.Option(
        None,
        "--experiment-id",
        help="Exposure-log rows of this experiment (default: the log's only one, or --experiment's).",
    ),
) -> None:
    from pydantic import ValidationError

    from silverset.components.abtest import analyze as analysis
    from silverset.components.abtest.experiment import load_experiment
    from silverset.components.common.errors import GateFailed, SilversetInputError

    share = treatment_share
    if experiment is not None:
        config = load_experiment(experiment)
        share = config.treatment_share if share is None else share
        experiment_id = experiment_id or config.experiment_id
    try:
        options = analysis.AnalysisOptions(
            alpha=alpha,
            treatment_share=share if share is not None else 0.5,
            metrics=tuple(metric) if metric else None,
            bootstrap_samples=bootstrap_samples,
            seed=seed,
            estimand=estimand.upper(),
            over_identified=over_identified,
            missing_outcome=missing_outcome,
            experiment_id=experiment_id,
        )
    except ValidationError as exc:
        raise SilversetInputError(
            "analyze options", "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        ) from None
    with console.status("analysing"):
        summary = analysis.run(
            exposures=exposures, outcomes=outcomes, covariates=covariates, out_dir=out, options=options
        )
    table = Table(title=f"A/B: {summary.users_analysed} users analysed, {summary.errors} errors")
    for column in ("metric", "method", "relative lift", "95% CI", "p"):
        table.add_column(column)
    for name, row in summary.lifts.items():
        table.add_row(
            name,
            row.method,
            f"{row.relative_lift:+.3%}",
            f"[{row.ci[0]:+.3%}, {row.ci[1]:+.3%}]",
            f"{row.p_value:.3g}",
        )
    console.print(table)
    console.print(f"SRM p = {summary.srm_p_value:.3g}" + (" (MISMATCH)" if summary.srm_mismatch else ""), markup=False)
    for name, row in summary.triggered_lifts.items():
        users = summary.triggered_users
        console.print(
            f"triggered users ({users.treatment} treatment, {users.control} control): {name} "
            f"{row.relative_lift:+.3%} [{row.ci[0]:+.3%}, {row.ci[1]:+.3%}]",
            markup=False,
        )
    if summary.cbps_max_abs_smd_after is not None:
        console.print(
            f"CBPS max |SMD| {summary.cbps_max_abs_smd_before:.3f} -> {summary.cbps_max_abs_smd_after:.4f}",
            markup=False,
        )
    console.print(f"report: {summary.report}", markup=False)
    if not summary.passed:
        raise GateFailed("; ".join(summary.failures))


@abtest_app.command("status")
def status(
    experiment: Path = typer.Option(..., "--experiment", help="experiment.json (or its folder) the index server runs."),
    exposures: Path = typer.Option(..., "--exposures", help="The server's --exposure-log folder."),
    outcomes: Optional[Path] = typer.Option(
        None, "--outcomes", help="Parquet/CSV: user_id + numeric metrics: interim lifts."
    ),
    metric: Optional[list[str]] = typer.Option(
        None, "--metric", help="Metric column(s) (default: numeric, not pre_*)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Exposure counts per arm, SRM, triggered share and interim lifts with CIs; exit 3 if the split is broken."""
    from silverset.components.abtest.status import status as experiment_status
    from silverset.components.common.errors import GateFailed

    s = experiment_status(exposures, experiment, outcomes=outcomes, metrics=tuple(metric) if metric else None)
    if as_json:
        console.print_json(json.dumps(s))
    else:
        table = Table(title=f"{s['experiment_id']}: {s['attribute']}, {s['expected_treatment_share']:.0%} treatment")
        for column in ("arm", "users", "requests", "triggered share", "served users"):
            table.add_column(column)
        for arm, a in s["arms"].items():
            share = "-" if a["triggered_share"] is None else f"{a['triggered_share']:.1%}"
            table.add_row(arm, str(a["users"]), str(a["requests"]), share, str(a["served_users"]))
        console.print(table)
        if s["srm"] is not None:
            console.print(
                f"SRM p = {s['srm']['p_value']:.3g}" + (" (MISMATCH)" if s["srm"]["mismatch"] else ""), markup=False
            )
        for population, lifts in (("exposed", s["lifts"]), ("triggered", s["triggered_lifts"])):
            for name, e in lifts.items():
                ci = e["relative_lift_ci"]
                console.print(
                    f"{name} ({population}): {e['relative_lift']:+.3%} [{ci['low']:+.3%}, {ci['high']:+.3%}], "
                    f"p = {e['p_value']:.3g}",
                    markup=False,
                )
        for note in s["notes"]:
            console.print(f"note: {note}", markup=False)
    if not s["healthy"]:
        raise GateFailed("; ".join(s["problems"]))


def register(app: typer.Typer) -> None:
    app.add_typer(abtest_app, name="abtest")
