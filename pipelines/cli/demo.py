"""`silverset demo`: run the pipeline on embedded defaults and print what it made."""
from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

console = Console()


def demo(
    workdir: Path = typer.Option(Path("demo-workdir"), "--workdir", help="Folder that keeps every artifact."),
    videos: int = typer.Option(200, "--videos", min=1, help="Synthetic videos to generate."),
    seed: int = typer.Option(0, "--seed", help="Random seed for the corpus."),
) -> None:
    """Run the demo end to end (corpus synth -> frames) and print a summary."""
    from silverset.pipelines.demo import run_demo

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as progress:
        task = progress.add_task("corpus synth", total=videos)

        def advance(_: str) -> None:
            progress.advance(task)
            if progress.tasks[task].completed == videos:
                progress.update(task, description="frames (Beam)")

        summary = run_demo(workdir=workdir, videos=videos, seed=seed, on_video=advance)
    print_summary(summary)


def _in_workdir(path: str, workdir: str) -> str:
    try:
        return str(Path(path).relative_to(workdir)) + "/"
    except ValueError:
        return path


def print_summary(summary: dict) -> None:
    corpus, frames = summary["corpus"], summary["frames"]
    table = Table(title=f"silverset demo: {summary['workdir']}")
    for column in ("stage", "inputs", "outputs", "errors"):
        table.add_column(column)
    table.add_column("path (in workdir)", overflow="fold")
    table.add_row("corpus synth", "-", f"{corpus['videos']} videos", str(corpus["errors"]),
                  _in_workdir(corpus["out"], summary["workdir"]))
    table.add_row("frames", str(frames["inputs"]), f"{frames['videos_ok']} videos / {frames['frames']} frames",
                  str(frames["errors"]), _in_workdir(frames["out"], summary["workdir"]))
    console.print(table)
    prevalence = ", ".join(f"{a} {p:.0%}" for a, p in corpus["prevalence"].items())
    console.print(f"truth prevalence: {prevalence}", markup=False)
    console.print(f"manifest: {corpus['manifest']}\ntruth:    {corpus['truth']}", markup=False)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
