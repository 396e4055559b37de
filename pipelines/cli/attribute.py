"""`silverset attribute ...`: validate attribute specs, list the examples, compare two definitions on a golden set."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

console = Console()
attribute_app = typer.Typer(help="Attribute specs: validate, inspect and compare.", no_args_is_help=True)


@attribute_app.command("validate")
def validate(file: Path = typer.Argument(..., help="Attribute spec YAML file.")) -> None:
    """Validate a spec; print its normalized form and content hash (exit 2 if invalid)."""
    from silverset.components.common.spec import load_spec

    spec = load_spec(file)
    console.print(spec.normalized_yaml(), end="", markup=False, highlight=False)
    console.print(f"# {spec.key}")
    console.print(f"# content_hash: {spec.content_hash}")
    console.print(f"# prompt_hash: {spec.prompt_hash}")


@attribute_app.command("examples")
def examples() -> None:
    """List the example specs shipped for the synthetic corpus."""
    from silverset.components.common.spec import example_specs_dir

    for path in sorted(example_specs_dir().glob("*.yaml")):
        console.print(str(path), markup=False)


@attribute_app.command("compare")
def compare(
    a: Path = typer.Argument(..., help="Definition A (attribute spec YAML), e.g. the current version."),
    b: Path = typer.Argument(..., help="Definition B: another version of the same attribute, same classes."),
    golden: str = typer.Option(..., "--golden", help="Golden set table (human labels) of the attribute."),
    out: Optional[str] = typer.Option(
        None,
        "--out",
        help="Folder for compare.json, compare.html and the teacher's "
        "labels (default: compare-NAME-vA-vB); a rerun into it resumes.",
    ),
    manifest: Optional[str] = typer.Option(
        None,
        "--manifest",
        help="Manifest: titles/descriptions of the golden videos (the zero-shot teacher reads nothing else).",
    ),
    frames: Optional[str] = typer.Option(
        None, "--frames", help="Frames table (needed by gemini, local, clip-zero-shot)."
    ),
    teacher: Optional[str] = typer.Option(
        None,
        "--teacher-backend",
        "--teacher",
        help="gemini | local | zero-shot | clip-zero-shot (default: the specs').",
    ),
    model: Optional[str] = typer.Option(None, "--model", help="Gemini model (default: the spec's teacher.model)."),
    base_url: Optional[str] = typer.Option(None, "--base-url", help="Gemini endpoint (else GOOGLE_GEMINI_BASE_URL)."),
    api_key_file: Optional[str] = typer.Option(None, "--api-key-file", help="Secret file holding the API key."),
    cache_dir: Optional[str] = typer.Option(
        None,
        "--cache",
        help="Gemini answer cache to reuse, e.g. an annotate run's OUT/.teacher-cache (default OUT/.teacher-cache).",
    ),
    rps: float = typer.Option(2.0, "--rps", help="Gemini requests/s of the API key."),
    tokens_per_min: int = typer.Option(2_000_000, "--tokens-per-min", help="Gemini tokens/min of the key."),
    concurrency: int = typer.Option(8, "--concurrency", min=1),
    mode: str = typer.Option("online", "--mode", help="gemini: online | batch (Batch API, half price)."),
    max_usd: Optional[float] = typer.Option(None, "--max-usd", min=0, help="Stop cleanly at this spend (gemini)."),
    price_table: Optional[str] = typer.Option(None, "--price-table", help="Gemini price table YAML."),
    checkpoint: Optional[str] = typer.Option(
        None, "--checkpoint", help="local: .onnx or TorchScript .pt; clip-zero-shot: CLIP/SigLIP."
    ),
    temperature: Optional[float] = typer.Option(None, "--temperature", help="clip-zero-shot: softmax temperature."),
    runtime: str = typer.Option("auto", "--runtime", help="local: auto|eager|onnxruntime|onnxruntime-int8|..."),
    precision: str = typer.Option("auto", "--precision", help="local: auto|fp32|fp16|int8."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1),
) -> None:
    """Run the teacher over the golden set with definitions A and B (cached answers reused); F1 with CIs side by
    side, the paired difference B - A, and the items that flipped. Exit 2 for specs of different attributes or
    classes."""
    from pydantic import ValidationError

    from silverset.components.common.spec import load_spec
    from silverset.components.common.tables import resumable_output_folder
    from silverset.components.evaluate.compare import COMPARE_REPORT, check_comparable, run
    from silverset.pipelines.cli.annotate import teacher_options
    from silverset.pipelines.cli.output import options_error

    spec_a, spec_b = load_spec(a), load_spec(b)
    check_comparable(spec_a, spec_b, a_name=str(a), b_name=str(b))  # before any folder is made
    try:
        options = teacher_options(
            teacher=teacher,
            teacher_flag="--teacher-backend",
            mode=mode,
            model=model,
            base_url=base_url,
            api_key_file=api_key_file,
            rps=rps,
            tokens_per_min=tokens_per_min,
            concurrency=concurrency,
            max_usd=max_usd,
            cache_dir=cache_dir,
            price_table=price_table,
            checkpoint=checkpoint,
            runtime=runtime,
            precision=precision,
            temperature=temperature,
            batch_size=batch_size,
        )
    except ValidationError as exc:
        raise options_error("compare options", exc) from None
    out = out or f"compare-{spec_a.name}-v{spec_a.version}-v{spec_b.version}"
    with (
        console.status("labelling the golden set with both definitions..."),
        resumable_output_folder(out, command="attribute-compare"),
    ):
        report = run(a=str(a), b=str(b), golden=golden, out=out, manifest=manifest, frames=frames, options=options)
    table = Table(title=f"{report.attribute} on {report.n} golden items ({report.positives} positive)")
    table.add_column("")
    table.add_column(f"A {report.a.key}")
    table.add_column(f"B {report.b.key}")
    for name in ("f1", "precision", "recall"):
        ma, mb = getattr(report.a, name), getattr(report.b, name)
        table.add_row(name, _ci(ma.value, ma.lower, ma.upper), _ci(mb.value, mb.lower, mb.upper))
    for label, field in (
        ("labelled now", "labelled_now"),
        ("API requests", "teacher_requests"),
        ("cache hits", "cache_hits"),
        ("resumed", "resumed"),
    ):
        table.add_row(label, str(getattr(report.a, field)), str(getattr(report.b, field)))
    d = report.f1_difference
    console.print(table)
    console.print(f"F1(B) - F1(A) = {_ci(d.value, d.lower, d.upper)}: {d.verdict}", markup=False)
    console.print(f"{len(report.flipped)} items flipped; report: {Path(out) / COMPARE_REPORT}", markup=False)


def _ci(value: float, lower: float | None, upper: float | None) -> str:
    fmt = lambda x: "n/a" if x is None else f"{x:.3f}"  # noqa: E731
    return f"{fmt(value)} [{fmt(lower)}, {fmt(upper)}]"


def register(app: typer.Typer) -> None:
    app.add_typer(attribute_app, name="attribute")
