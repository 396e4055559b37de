"""`silverset annotate`: label a manifest for one attribute with a gemini, local, zero-shot or clip-zero-shot
teacher."""

from __future__ import annotations

import json
from typing import Optional

import typer
from rich.console import Console

console = Console()


def annotate(
    attribute: str = typer.Option(..., "--attribute", help="Attribute spec YAML."),
    manifest: str = typer.Option(..., "--manifest", help="Manifest (CSV, JSONL or Parquet)."),
    out: str = typer.Option(..., "--out", help="Output folder for the labels parts."),
    frames: Optional[str] = typer.Option(None, "--frames", help="Frames table (needed by gemini and local)."),
    teacher: Optional[str] = typer.Option(
        None, "--teacher", help="gemini | local | zero-shot | clip-zero-shot (default: the spec's)."
    ),
    shard: Optional[str] = typer.Option(None, "--shard", help="i/n: this worker's share of the videos."),
    max_items: Optional[int] = typer.Option(None, "--max-items", min=1, help="Label at most N videos in this run."),
    max_usd: Optional[float] = typer.Option(None, "--max-usd", min=0, help="Stop cleanly at this spend (gemini)."),
    budget_videos: int = typer.Option(
        0, "--budget-videos", min=0, help="Label at most N videos of the manifest, chosen by --priority (0 = all)."
    ),
    budget_usd: float = typer.Option(
        0.0,
        "--budget-usd",
        min=0,
        help="gemini: label as many videos as this buys at "
        "the price table's estimate (0 = no cap); the hard stop too, unless --max-usd.",
    ),
    priority: str = typer.Option(
        "new,priority,views",
        "--priority",
        help="Which videos first: manifest columns, "
        "largest first, then a stable hash of video_id (the pipeline's teacher_priority).",
    ),
    rps: float = typer.Option(2.0, "--rps", help="Gemini requests/s of the API key, shared by all --shard workers."),
    tokens_per_min: int = typer.Option(2_000_000, "--tokens-per-min", help="Tokens/min of the key, all shards."),
    concurrency: int = typer.Option(8, "--concurrency", min=1),
    mode: str = typer.Option("online", "--mode", help="gemini: online | batch (Batch API, half price)."),
    model: Optional[str] = typer.Option(None, "--model", help="Gemini model (default: the spec's teacher.model)."),
    price_table: Optional[str] = typer.Option(
        None, "--price-table", help="Gemini price table YAML (default: the shipped, dated one)."
    ),
    base_url: Optional[str] = typer.Option(None, "--base-url", help="Gemini endpoint (else GOOGLE_GEMINI_BASE_URL)."),
    api_key_file: Optional[str] = typer.Option(None, "--api-key-file", help="Secret file holding the API key."),
    cache_dir: Optional[str] = typer.Option(None, "--cache", help="Gemini answer cache (default OUT/.teacher-cache)."),
    checkpoint: Optional[str] = typer.Option(
        None,
        "--checkpoint",
        help="local: .onnx or TorchScript .pt scorer; clip-zero-shot: CLIP/SigLIP "
        "save_pretrained dir or hub id in the local HF cache.",
    ),
    temperature: Optional[float] = typer.Option(
        None, "--temperature", help="clip-zero-shot: softmax temperature (default: the model's scale)."
    ),
    runtime: str = typer.Option(
        "auto", "--runtime", help="local: auto|eager|onnxruntime|onnxruntime-int8|tensorrt-fp16|tensorrt-int8"
    ),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1),
    precision: str = typer.Option("auto", "--precision", help="local: auto|fp32|fp16|int8 (int8 needs --calibration)."),
    calibration: Optional[str] = typer.Option(None, "--calibration", help="local: frames table to calibrate INT8 on."),
) -> None:
    """Write the labels table (label, probability, rationale, teacher id, prompt hash) and errors.parquet."""
    from silverset.components.common.sharding import parse_shard
    from silverset.components.teacher.annotate import run

    options = teacher_options(
        teacher=teacher,
        teacher_flag="--teacher",
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
        max_items=max_items,
        calibration=calibration,
    )
    from silverset.components.common.tables import resumable_output_folder
    from silverset.components.incremental.sample import annotate_sample, teacher_budget

    budget = teacher_budget(
        videos=budget_videos, usd=budget_usd, priority=priority, names=("--budget-videos", "--budget-usd", "--priority")
    )
    with resumable_output_folder(
        out, command="annotate"
    ):  # refuses a file or a foreign folder; a failed start leaves nothing
        manifest, choice, stop = annotate_sample(
            attribute_spec=attribute,
            manifest_uri=manifest,
            out_dir=out,
            budget=budget,
            teacher=teacher,
            model=model,
            price_table=price_table,
            batch=mode == "batch",
            shard=parse_shard(shard),
            max_usd=max_usd,
        )
        if choice is not None:
            options = options.model_copy(update={"gemini": options.gemini.model_copy(update={"max_usd": stop})})
            console.print(
                f"teacher sample: {choice.chosen} of {choice.candidates} videos (order: "
                f"{', '.join(choice.priority) or 'hash'})",
                markup=False,
            )
        summary = run(
            attribute_spec=attribute,
            manifest_uri=manifest,
            out_dir=out,
            frames_uri=frames,
            options=options,
            shard=parse_shard(shard),
            progress=True,
        )
    console.print(f"{summary.attribute} by {summary.teacher_id} -> {summary.out_dir}", markup=False)
    console.print(json.dumps(summary.stats.to_dict()), markup=False, highlight=False)
    if summary.stats.stopped == "budget":
        console.print(f"[yellow]{summary.stats.message}[/yellow]")


def teacher_options(
    *,
    teacher: Optional[str],
    teacher_flag: str,
    mode: str,
    model: Optional[str],
    base_url: Optional[str],
    api_key_file: Optional[str],
    rps: float,
    tokens_per_min: int,
    concurrency: int,
    max_usd: Optional[float],
    cache_dir: Optional[str],
    price_table: Optional[str],
    checkpoint: Optional[str],
    runtime: str,
    precision: str,
    temperature: Optional[float],
    batch_size: Optional[int],
    max_items: Optional[int] = None,
    calibration: Optional[str] = None,
):
    """The teacher's AnnotateOptions from the command-line flags that `annotate` and `attribute compare` share;
    an unknown teacher (named by ``teacher_flag``), mode or a temperature <= 0 is refused naming the flag."""
    from silverset.components.common.errors import SilversetInputError
    from silverset.components.teacher.annotate import TEACHERS, AnnotateOptions
    from silverset.components.teacher.gemini import GeminiOptions

    if teacher is not None and teacher not in TEACHERS:
        raise SilversetInputError(teacher_flag, f"unknown teacher {teacher!r}; use one of {', '.join(TEACHERS)}")
    if temperature is not None and not temperature > 0:
        raise SilversetInputError("--temperature", f"must be > 0, got {temperature}")
    if mode not in ("online", "batch"):
        raise SilversetInputError("--mode", f"use online or batch, got {mode!r}")
    gemini = GeminiOptions(
        model=model,
        mode=mode,
        base_url=base_url,
        api_key_file=api_key_file,
        rps=rps,
        tokens_per_min=tokens_per_min,
        concurrency=concurrency,
        max_usd=max_usd,
        cache_dir=cache_dir,
        price_table=price_table,
    )
    return AnnotateOptions(
        teacher=teacher,
        max_items=max_items,
        batch_size=batch_size,
        gemini=gemini,
        checkpoint=checkpoint,
        runtime=runtime,
        precision=precision,
        calibration=calibration,
        temperature=temperature,
    )


def register(app: typer.Typer) -> None:
    app.command("annotate")(annotate)
