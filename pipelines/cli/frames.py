"""`silverset frames`: sample K frames per video with a Beam pipeline (DirectRunner by default)."""

from __future__ import annotations

from typing import TYPE_CHECKING, List, Optional

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from silverset.components.frames.pipeline import FramesSummary

console = Console()


def frames(
    manifest: str = typer.Option(..., "--manifest", help="Manifest (CSV, JSONL or Parquet) with video_id and uri."),
    out: str = typer.Option(..., "--out", help="Output folder (local: replaced atomically)."),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace --out even when another command or the user wrote it."
    ),
    frames_per_video: int = typer.Option(8, "--frames-per-video", "-k", min=1, max=256, help="Frames per video (K)."),
    size: int = typer.Option(224, "--size", min=16, max=2048, help="Output frames are SIZE x SIZE px."),
    runner: str = typer.Option(
        "DirectRunner", "--runner", help="Beam runner (DirectRunner, FlinkRunner, DataflowRunner...)."
    ),
    pipeline_option: Optional[List[str]] = typer.Option(
        None, "--pipeline-option", help="Beam pipeline option key=value; repeat for more."
    ),
    sampling: str = typer.Option(
        "exact",
        "--sampling",
        help="exact: the frame at each target time; keyframe: the keyframe nearest it (faster, up to half a GOP off).",
    ),
) -> None:
    """Sample K frames per video (exact: seek + decode forward; keyframe: nearest keyframes only), write
    sharded Parquet and errors.parquet."""
    from silverset.components.common.errors import SilversetInputError
    from silverset.components.common.manifest import read_manifest
    from silverset.components.common.tables import check_output_folder
    from silverset.components.frames.extract import SAMPLING_MODES, FrameOptions

    if sampling not in SAMPLING_MODES:
        raise SilversetInputError("--sampling", f"{sampling!r} is not one of {', '.join(SAMPLING_MODES)}")
    flags = []
    for option in pipeline_option or ():
        if not option.removeprefix("--").partition("=")[0]:
            raise SilversetInputError("--pipeline-option", f"expected key=value, got {option!r}")
        flags.append(f"--{option.removeprefix('--')}")
    check_output_folder(out, command="frames", overwrite=overwrite)
    read_manifest(manifest)  # fail fast on a bad manifest, before the ~20 s Beam import
    from silverset.components.frames.pipeline import run

    options = FrameOptions(frames_per_video=frames_per_video, size=size, sampling=sampling)  # type: ignore[arg-type]
    with console.status("extracting frames (Beam)..."):
        summary = run(
            manifest_uri=manifest,
            out_dir=out,
            options=options,
            beam_runner=runner,
            beam_options=flags,
            overwrite=overwrite,
        )
    print_summary(summary)


def print_summary(summary: FramesSummary) -> None:
    table = Table(title="frames", show_header=False)
    table.add_column("what")
    table.add_column("value", overflow="fold")
    for key in ("inputs", "videos_ok", "errors", "frames", "sampling", "repeated_frames", "out_dir", "seconds"):
        table.add_row(key, str(getattr(summary, key)))
    for error_type, count in summary.errors_by_type.items():
        table.add_row(f"  error: {error_type}", str(count))
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("frames")(frames)
