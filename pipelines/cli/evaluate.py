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
    predictions: Optional[str] = typer.Option(
        None, "--predictions", help="Candidate labels or scores table (video_id, probability)."
    ),
    gate: str = typer.Option(..., "--gate", help="teacher or student."),
    out: str = typer.Option(..., "--out", help="Folder for gate.json, metrics.json and report.html."),
    baseline: Optional[str] = typer.Option(
        None, "--baseline", help="Scores of the currently promoted model (student gate)."
    ),
    teacher_predictions: Optional[str] = typer.Option(
        None, "--teacher-predictions", help="Teacher labels on the golden items (student gate)."
    ),
    model: Optional[str] = typer.Option(
        None, "--model", help="Candidate MODELDIR: digest, threshold, student latency."
    ),
    teacher_stats: Optional[str] = typer.Option(
        None, "--teacher-stats", help="Teacher labels folder holding stats/shard-*.json."
    ),
    teacher_latency: Optional[float] = typer.Option(
        None, "--teacher-latency-s", help="Teacher seconds per item (overrides --teacher-stats)."
    ),
    student_latency: Optional[float] = typer.Option(
        None, "--student-latency-s", help="Student seconds per item (overrides the model's)."
    ),
    threshold: Optional[float] = typer.Option(
        None, "--threshold", help="Decision threshold for the candidate (default: model's, else spec's)."
    ),
    metadata: Optional[str] = typer.Option(
        None, "--metadata", help="Table with video_id and the slice column (e.g. the manifest)."
    ),
    slice_column: Optional[str] = typer.Option(None, "--slice-column", help="Report per-slice metrics by this column."),
    frames: Optional[str] = typer.Option(
        None,
        "--frames",
        help="Frames table: thumbnails of the teacher's "
        "disagreements with the golden set in report.html (teacher gate).",
    ),
    manifest: Optional[str] = typer.Option(None, "--manifest", help="Manifest: titles of those disagreements."),
    raters: bool = typer.Option(
        False,
        "--raters",
        help="Teacher gate: also score each rater and the teacher "
        "against the adjudicated label (raters leave-one-out), teacher minus mean rater F1, "
        "Cohen/Fleiss kappa and Krippendorff's alpha; writes raters.json.",
    ),
) -> None:
    """Golden-set metrics with bootstrap CIs and the teacher or student gate; exit 0 pass, 3 fail."""
    from pydantic import ValidationError

    from silverset.components.common.errors import GateFailed, SilversetInputError
    from silverset.components.common.tables import resumable_output_folder
    from silverset.components.evaluate.gate import (
        StudentGateOptions,
        TeacherGateOptions,
        check_student,
        check_teacher,
    )

    if gate not in ("teacher", "student"):
        raise SilversetInputError("--gate", f"must be 'teacher' or 'student', got {gate!r}")
    other = "student" if gate == "teacher" else "teacher"
    given = {
        "teacher": {"--frames": frames, "--manifest": manifest, "--raters": raters or None},
        "student": {
            "--model": model,
            "--teacher-predictions": teacher_predictions,
            "--baseline": baseline,
            "--teacher-stats": teacher_stats,
            "--teacher-latency-s": teacher_latency,
            "--student-latency-s": student_latency,
        },
    }[other]
    for flag, value in given.items():
        if value is not None:
            raise SilversetInputError(flag, f"is a {other}-gate input; drop it or use --gate {other}")
    try:
        options = (TeacherGateOptions if gate == "teacher" else StudentGateOptions)(
            threshold=threshold, slice_column=slice_column
        )
    except ValidationError as exc:
        raise options_error(f"{gate} gate options", exc) from None
    rater_report = None
    with console.status(f"evaluating the {gate} gate..."), resumable_output_folder(out, command="evaluate"):
        if isinstance(options, TeacherGateOptions):
            summary = check_teacher(
                attribute_spec=attribute,
                golden_set=golden,
                predictions=predictions,
                out_dir=out,
                frames_uri=frames,
                manifest_uri=manifest,
                metadata=metadata,
                options=options,
            )
        else:
            summary = check_student(
                attribute_spec=attribute,
                golden_set=golden,
                predictions=predictions,
                model_dir=model,
                out_dir=out,
                teacher_predictions=teacher_predictions,
                baseline=baseline,
                teacher_stats=teacher_stats,
                teacher_latency_s_per_item=teacher_latency,
                student_latency_s_per_item=student_latency,
                metadata=metadata,
                options=options,
            )
        if raters:
            from silverset.components.evaluate.raters import run as run_raters

            rater_report = run_raters(
                attribute=attribute, golden=golden or "", predictions=predictions or "", out=out, threshold=threshold
            )
    figures = summary.result.metrics
    table = Table(title=f"{gate} gate: {'PASSED' if summary.passed else 'FAILED'}", show_header=False)
    candidate = figures.get("candidate")
    if candidate:
        for name in ("f1", "precision", "recall", "average_precision", "roc_auc", "ece"):
            m = candidate[name]
            table.add_row(name, f"{_num(m['value'])} [{_num(m['lower'])}, {_num(m['upper'])}]")
    if figures.get("f1_retention") is not None:
        table.add_row("f1_retention", _num(figures["f1_retention"]))
    ratio = figures.get("latency", {}).get("ratio")
    if ratio is not None:
        table.add_row("latency ratio", f"{ratio:.2e}")
    table.add_row("gate.json", summary.gate_result)
    table.add_row("report", summary.report)
    if summary.disagreements:
        table.add_row("disagreements", summary.disagreements)
    console.print(table)
    if rater_report is not None:
        print_rater_report(rater_report, path=f"{out.rstrip('/')}/raters.json")
    if not summary.passed:
        raise GateFailed(f"{gate} gate: " + "; ".join(summary.reasons))


def _ci(estimate) -> str:
    if estimate.value is None or estimate.value != estimate.value:
        return "-"
    return f"{estimate.value:.3f} [{estimate.lower:.3f}, {estimate.upper:.3f}]"


def _num(value: float | None, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


def print_rater_report(report, *, path: str) -> None:
    """The raters.json figures as readable tables: scores, the paired teacher-minus-raters difference, agreement."""
    scores = Table(
        title=f"raters vs teacher on {report.videos} golden videos (raters: adjudicated label, else "
        f"majority of >= {report.min_other_votes} OTHER raters; teacher: resolved label)"
    )
    for column in ("who", "n", "F1", "precision", "recall", "accuracy", "kappa w/ teacher", "F1 incl. own vote"):
        scores.add_column(column)
    t = report.teacher
    scores.add_row("teacher", str(t.n), _ci(t.f1), _ci(t.precision), _ci(t.recall), _ci(t.accuracy), "", "")
    for r in report.per_rater:
        s = r.scores
        scores.add_row(
            r.rater,
            f"{s.n} ({r.adjudicated_references} adj)",
            _ci(s.f1),
            _ci(s.precision),
            _ci(s.recall),
            _ci(s.accuracy),
            _num(r.teacher_kappa),
            _ci(r.vs_resolved.f1),
        )
    console.print(scores)
    d = report.teacher_minus_mean_rater
    if d.value is None:
        console.print(
            "teacher - mean rater F1: no rater has a reference (adjudication or >= "
            f"{report.min_other_votes} other votes) on any video"
        )
    else:
        console.print(
            f"teacher - mean rater F1 (paired bootstrap, same videos and references): {d.value:+.3f} "
            f"[{d.lower:+.3f}, {d.upper:+.3f}], p={d.p_value:.3f}; teacher {d.teacher_f1_mean:.3f} vs "
            f"raters {d.rater_f1_mean:.3f} over {d.raters} raters"
        )
    a = report.agreement
    agree = Table(title=f"rater agreement on {a.videos} videos with >= 2 votes", show_header=False)
    agree.add_row("percent agreement (rater pairs)", _num(a.percent_agreement, ".1%"))
    agree.add_row("unanimous videos", _num(a.unanimous_share, ".1%"))
    agree.add_row(
        "Fleiss' kappa",
        f"{_num(a.fleiss_kappa)} ({a.fleiss_videos} videos with {a.fleiss_votes_per_video} votes each, the modal count)"
        if a.fleiss_votes_per_video
        else "-",
    )
    agree.add_row("Krippendorff's alpha (nominal)", _num(a.krippendorff_alpha))
    for p in a.pairs:
        agree.add_row(
            f"Cohen's kappa {p.rater_a} / {p.rater_b}",
            f"{_num(p.cohen_kappa)} (agree {_num(p.percent_agreement, '.1%')}, n={p.n})",
        )
    agree.add_row("raters.json", path)
    console.print(agree)


def score(
    model: str = typer.Option(..., "--model", help="MODELDIR written by `silverset distill`."),
    embeddings: str = typer.Option(..., "--embeddings", help="Embeddings table (Parquet file or folder)."),
    out: str = typer.Option(..., "--out", help="Scores folder (replaced atomically)."),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace --out even when another command or the user wrote it."
    ),
    runner: str = typer.Option("DirectRunner", "--runner", help="Beam runner."),
    backend: str = typer.Option("onnx", "--backend", help="onnx or torchscript."),
    batch_size: int = typer.Option(
        8192, "--batch-size", min=1, help="Rows per inference call (block of a RecordBatch)."
    ),
    pipeline_option: Optional[List[str]] = typer.Option(
        None, "--pipeline-option", help="Extra Beam option, e.g. --direct_num_workers=2; repeat."
    ),
) -> None:
    """Score every embedding with the student (Beam RunInference); mismatched rows go to errors.parquet."""
    from pydantic import ValidationError

    from silverset.components.common.tables import check_output_folder
    from silverset.components.score.bulk import ScoreOptions, run

    check_output_folder(out, command="score", overwrite=overwrite)

    try:
        options = ScoreOptions(
            backend=backend, runner=runner, batch_size=batch_size, pipeline_args=tuple(pipeline_option or ())
        )
    except ValidationError as exc:
        raise options_error("score options", exc) from None
    with console.status("scoring (Beam RunInference)..."):
        summary = run(model_dir=model, embeddings=embeddings, out_dir=out, options=options, overwrite=overwrite)
    print_summary(console, "score", summary)


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate)
    app.command("score")(score)
