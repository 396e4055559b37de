"""`silverset affinity train`: fit the learned trigger (components/abtest/affinity.py) from the server's logs."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

console = Console()
affinity_app = typer.Typer(
    help="The learned trigger of restricted retrieval: train an affinity model.", no_args_is_help=True
)


@affinity_app.command("train")
def train(
    exposures: Path = typer.Option(
        ..., "--exposures", help="The index server's exposure-log folder (which users, which arm)."
    ),
    outcomes: Path = typer.Option(
        ..., "--outcomes", help="Parquet: user_id, the label column, and 'history' (video ids, oldest first)."
    ),
    scores: Path = typer.Option(
        ..., "--scores", help="Student scores (video_id, attribute, probability) or an index's history.parquet."
    ),
    attribute: Path = typer.Option(
        ..., "--attribute", help="Attribute spec YAML: vocabulary min_probability, the rule and its threshold."
    ),
    out: Path = typer.Option(..., "--out", help="Model JSON to write (errors go to <out>.errors.parquet)."),
    label: str = typer.Option(
        "attribute_engagement", "--label", help="0/1 outcome column: the user engaged with the attribute."
    ),
    arm: str = typer.Option(
        "control", "--arm", help="Users to learn from: control (label untouched by serving), treatment or all."
    ),
    experiment_id: Optional[str] = typer.Option(
        None, "--experiment-id", help="When the log holds several experiments."
    ),
    bootstrap_samples: int = typer.Option(1000, "--bootstrap-samples", help="Resamples for the AUC CIs."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Fit logistic regression on history features; print held-out AUC vs the rule (95% CIs) and the threshold."""
    from pydantic import ValidationError

    from silverset.components.abtest import affinity_train
    from silverset.components.common.errors import SilversetInputError
    from silverset.components.common.spec import load_spec

    try:
        options = affinity_train.TrainOptions(label=label, arm=arm, bootstrap_samples=bootstrap_samples, seed=seed)
    except ValidationError as exc:
        raise SilversetInputError(
            "affinity train options", "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        ) from None
    record = affinity_train.run(
        exposures=exposures,
        outcomes=outcomes,
        scores=scores,
        attribute_spec=load_spec(attribute),
        model_path=out,
        options=options,
        experiment_id=experiment_id,
    )
    auc = record.auc
    console.print(
        f"{record.users} users ({record.positives} engaged), {record.errors} dropped -> {record.errors_table}",
        markup=False,
    )
    console.print(
        f"held-out AUC ({auc.test_users} users): model {auc.model:.3f} "
        f"[{auc.model_ci[0]:.3f}, {auc.model_ci[1]:.3f}], "
        f"rule ({record.rule}) {auc.rule:.3f} [{auc.rule_ci[0]:.3f}, {auc.rule_ci[1]:.3f}], difference "
        f"{auc.difference:+.3f} [{auc.difference_ci[0]:+.3f}, {auc.difference_ci[1]:+.3f}]",
        markup=False,
    )
    console.print(
        f"threshold {record.threshold:.4f}: triggers {record.reach:.1%} of users, as the rule does at "
        f"{record.rule_trigger_threshold} -> {out}",
        markup=False,
    )


def register(app: typer.Typer) -> None:
    app.add_typer(affinity_app, name="affinity")
