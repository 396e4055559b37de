"""`silverset evaluate` (golden-set gates, exit 3 on a failed gate) and `silverset score` (bulk scoring with Beam)."""
from __future__ import annotations

from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table

from silverset.pipelines.cli.output import options_error, print_summary

console = Console()


def evaluate(
    attribute: str = typer.Option(..., "--attribute", help="Attribute spec YAML."),
    golden: Optional[str] = typer.Option(None, "--golden", help="Golden set table (human labels)."),
    predictions: Optional[str] = typer.Option(None, "--predictions", help="Candidate labels or scores table (video_id, probability)."),
    gate: str = typer.Option(..., "--gate", help="teacher or student."),
    out: str = typer.Option(..., "--out", help="Folder for gate.json, metrics.json and report.html."),
    baseline: Optional[str] = typer.Option(None, "--baseline", help="Scores of the currently promoted model (student gate)."),
    teacher_predictions: Optional[str] = typer.Option(None, "--teacher-predictions", help="Teacher labels on the golden items (student gate)."),
    model: Optional[str] = typer.Option(None, "--model", help="Candidate MODELDIR: digest, threshold, student latency."),
    teacher_stats: Optional[str] = typer.Option(None, "--teacher-stats", help="Teacher labels folder holding stats/shard-*.json."),
    teacher_latency: Optional[float] = typer.Option(None, "--teacher-latency-s", help="Teacher seconds per item (overrides --teacher-stats)."),
    student_latency: Optional[float] = typer.Option(None, "--student-latency-s", help="Student seconds per item (overrides the model's)."),
    threshold: Optional[float] = typer.Option(None, "--threshold", help="Decision threshold for the candidate (default: model's, else spec's)."),
    metadata: Optional[str] = typer.Option(None, "--metadata", help="Table with video_id and the slice column (e.g. the manifest)."),
    slice_column: Optional[str] = typer.Option(None, "--slice-column", help="Report per-slice metrics by this column."),
    frames: Optional[str] = typer.Option(None, "--frames", help="Frames table: thumbnails of the teacher's "
                                         "disagreements with the golden set in report.html (teacher gate)."),
    manifest: Optional[str] = typer.Option(None, "--manifest", help="Manifest: titles of those disagreements."),
) -> None:
    """Golden-set metrics with bootstrap CIs and the teacher or student gate; exit 0 pass, 3 fail."""
    from silverset.components.common.errors import GateFailed
    from silverset.components.common.tables import resumable_output_folder
    from silverset.components.evaluate.gate import run

    with console.status(f"evaluating the {gate} gate..."), resumable_output_folder(out, command="evaluate"):
        summary = run(attribute=attribute, golden=golden, predictions=predictions, gate=gate, out=out, baseline=baseline,
                      teacher_predictions=teacher_predictions, model=model, threshold=threshold,
                      teacher_latency_s_per_item=teacher_latency, teacher_stats=teacher_stats,
                      student_latency_s_per_item=student_latency, metadata=metadata, slice_column=slice_column,
                      frames=frames, manifest=manifest)
    table = Table(title=f"{gate} gate: {'PASSED' if summary['passed'] else 'FAILED'}", show_header=False)
    candidate = summary["metrics"].get("candidate")
    if candidate:
        for name in ("f1", "precision", "recall", "average_precision", "roc_auc", "ece"):
            m = candidate[name]
            table.add_row(name, f"{m['value']:.3f} [{m['lower']:.3f}, {m['upper']:.3f}]")
    if "f1_retention" in summary["metrics"]:
        table.add_row("f1_retention", f"{summary['metrics']['f1_retention']:.3f}")
    ratio = summary["metrics"].get("latency", {}).get("ratio")
    if ratio is not None:
        table.add_row("latency ratio", f"{ratio:.2e}")
    table.add_row("gate.json", summary["gate_json"])
    table.add_row("report", summary["report"])
    if summary.get("disagreements"):
        table.add_row("disagreements", summary["disagreements"])
    console.print(table)
    if not summary["passed"]:
        raise GateFailed(f"{gate} gate: " + "; ".join(summary["reasons"]))


def score(
    model: str = typer.Option(..., "--model", help="MODELDIR written by `silverset distill`."),
    embeddings: str = typer.Option(..., "--embeddings", help="Embeddings table (Parquet file or folder)."),
    out: str = typer.Option(..., "--out", help="Scores folder (replaced atomically)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace --out even when another command or the user wrote it."),
    runner: str = typer.Option("DirectRunner", "--runner", help="Beam runner."),
    backend: str = typer.Option("onnx", "--backend", help="onnx or torchscript."),
    batch_size: int = typer.Option(8192, "--batch-size", min=1, help="Rows per inference call (block of a RecordBatch)."),
    pipeline_option: Optional[List[str]] = typer.Option(None, "--pipeline-option", help="Extra Beam option, e.g. --direct_num_workers=2; repeat."),
) -> None:
    """Score every embedding with the student (Beam RunInference); mismatched rows go to errors.parquet."""
    from pydantic import ValidationError

    from silverset.components.common.tables import check_output_folder
    from silverset.components.score.bulk import ScoreOptions, run

    check_output_folder(out, command="score", overwrite=overwrite)

    try:
        options = ScoreOptions(backend=backend, runner=runner, batch_size=batch_size, pipeline_args=tuple(pipeline_option or ()))
    except ValidationError as exc:
        raise options_error("score options", exc) from None
    with console.status("scoring (Beam RunInference)..."):
        summary = run(model=model, embeddings=embeddings, out=out, options=options, overwrite=overwrite)
    print_summary(console, "score", summary)


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate)
    app.command("score")(score)
