"""`silverset corpus synth`: generate the synthetic H.264 corpus with known truth."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

if TYPE_CHECKING:
    from silverset.components.corpus.synth import CorpusSummary, SynthOptions

console = Console()
corpus_app = typer.Typer(help="Corpora: generate the synthetic corpus with known truth.", no_args_is_help=True)


def parse_size(text: str) -> tuple[int, int]:
    """``"320x240"`` -> (320, 240); anything else is a SilversetInputError naming --size."""
    from silverset.components.common.errors import SilversetInputError

    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise SilversetInputError("--size", f"expected WxH such as 320x240, got {text!r}") from None
    if width < 32 or height < 32 or width % 2 or height % 2:
        raise SilversetInputError("--size", f"width and height must be even and >= 32, got {text!r}")
    return width, height


def synth_with_progress(*, out: Path, options: SynthOptions, overwrite: bool = False) -> CorpusSummary:
    """Run the synthesizer under a rich progress bar; returns its summary."""
    from silverset.components.corpus.synth import run

    with Progress(
        TextColumn("corpus synth"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("videos", total=options.videos)
        return run(out_dir=out, options=options, on_video=lambda _: progress.advance(task), overwrite=overwrite)


@corpus_app.command("synth")
def synth(
    out: Path = typer.Option(..., "--out", help="Output folder (replaced atomically)."),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace --out even when another command or the user wrote it."
    ),
    videos: int = typer.Option(200, "--videos", min=1, help="Number of videos."),
    seed: int = typer.Option(0, "--seed", help="Random seed: same seed, same bytes."),
    duration_s: float = typer.Option(3.0, "--duration-s", min=0.1, help="Seconds per video."),
    size: str = typer.Option("320x240", "--size", help="Frame size WxH (even numbers)."),
) -> None:
    """Write synthetic H.264 MP4s, manifest.parquet and truth.parquet (4 binary attributes)."""
    from silverset.components.common.tables import check_output_folder
    from silverset.components.corpus.synth import SynthOptions

    width, height = parse_size(size)
    check_output_folder(out, command="corpus synth", overwrite=overwrite)
    options = SynthOptions(videos=videos, seed=seed, duration_s=duration_s, width=width, height=height)
    summary = synth_with_progress(out=out, options=options, overwrite=overwrite)
    prevalence = ", ".join(f"{a} {p:.0%}" for a, p in summary.prevalence.items())
    console.print(f"wrote {summary.videos} videos to {summary.out_dir}", markup=False)
    console.print(f"prevalence: {prevalence}", markup=False)
    console.print(f"manifest: {summary.manifest_uri}\ntruth: {summary.truth_uri}", markup=False)


def register(app: typer.Typer) -> None:
    app.add_typer(corpus_app, name="corpus")
