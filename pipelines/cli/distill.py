"""`silverset distill`: train a student on embeddings from the teacher's labels; write TorchScript, ONNX and
metadata."""

from __future__ import annotations

from typing import Optional

import typer
from rich.console import Console

from silverset.pipelines.cli.output import options_error, print_summary

console = Console()


def distill(
    embeddings: str = typer.Option(..., "--embeddings", help="Embeddings table (Parquet file or folder)."),
    labels: str = typer.Option(..., "--labels", help="Teacher labels table (Parquet file or folder)."),
    attribute: str = typer.Option(..., "--attribute", help="Attribute spec YAML."),
    out: str = typer.Option(..., "--out", help="MODELDIR to write (replaced atomically)."),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace --out even when another command or the user wrote it."
    ),
    architecture: str = typer.Option("mlp", "--architecture", help="mlp or logistic."),
    hidden_units: int = typer.Option(128, "--hidden-units", min=1, help="MLP hidden width."),
    calibration: str = typer.Option("platt", "--calibration", help="platt, temperature or none (fit on held-out)."),
    target_precision: Optional[float] = typer.Option(
        None, "--target-precision", help="Pick the threshold for this precision (default: best F1)."
    ),
    max_epochs: int = typer.Option(200, "--max-epochs", min=1),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Distill a student (soft-target KD, class balancing, early stopping, calibration) into MODELDIR."""
    from pydantic import ValidationError

    from silverset.components.common.tables import check_output_folder
    from silverset.components.distill.student import StudentOptions
    from silverset.components.distill.train import run

    check_output_folder(out, command="distill", overwrite=overwrite)

    try:
        options = StudentOptions(
            architecture=architecture,
            hidden_units=hidden_units,
            calibration=calibration,
            target_precision=target_precision,
            max_epochs=max_epochs,
            seed=seed,
        )
    except ValidationError as exc:
        raise options_error("distill options", exc) from None
    with console.status("distilling the student..."):
        summary = run(
            embeddings=embeddings,
            labels=labels,
            attribute_spec=attribute,
            out_dir=out,
            options=options,
            overwrite=overwrite,
        )
    print_summary(console, "distill", summary)


def register(app: typer.Typer) -> None:
    app.command("distill")(distill)
