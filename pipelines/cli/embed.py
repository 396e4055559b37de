"""`silverset embed`: frames (+ manifest text) -> embeddings table, sharded and resumable."""

from __future__ import annotations

import json
from typing import Optional

import typer
from rich.console import Console

console = Console()


def embed(
    frames: str = typer.Option(..., "--frames", help="Frames table: Parquet file or folder of shards."),
    out: str = typer.Option(..., "--out", help="Output folder for the embeddings parts."),
    manifest: Optional[str] = typer.Option(None, "--manifest", help="Manifest for title/description (text block)."),
    embedder: str = typer.Option(
        "default",
        "--embedder",
        help="default | visual | text | clip:PATH_OR_HUB_ID (CLIP/SigLIP save_pretrained dir "
        "or a hub id in the local HF cache; never downloaded) | path to .onnx/.pt",
    ),
    text: Optional[bool] = typer.Option(
        None, "--text/--no-text", help="Append the MiniLM text block (default: with --manifest)."
    ),
    runtime: str = typer.Option(
        "auto", "--runtime", help="Checkpoint runtime: auto|eager|onnxruntime|onnxruntime-int8|tensorrt-fp16"
    ),
    shard: Optional[str] = typer.Option(None, "--shard", help="i/n: this worker's share of the videos."),
    batch_size: int = typer.Option(32, "--batch-size", min=1),
) -> None:
    """Embed every video: one vector per video (pooled frame features, optionally + text)."""
    from silverset.components.common.sharding import parse_shard
    from silverset.components.common.tables import resumable_output_folder
    from silverset.components.embed.embed import EmbedOptions, run

    options = EmbedOptions(embedder=embedder, with_text=text, runtime=runtime, batch_size=batch_size)
    with resumable_output_folder(out, command="embed"):
        summary = run(
            frames_uri=frames,
            out_dir=out,
            manifest_uri=manifest,
            options=options,
            shard=parse_shard(shard),
            progress=True,
        )
    console.print(f"embedder {summary.embedder_id} (d={summary.dimension}) -> {summary.out_dir}", markup=False)
    console.print(json.dumps(summary.stats.to_dict()), markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    app.command("embed")(embed)
