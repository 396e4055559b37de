"""`silverset attribute ...`: validate attribute specs."""
from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

console = Console()
attribute_app = typer.Typer(help="Attribute specs: validate and inspect.", no_args_is_help=True)


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


def register(app: typer.Typer) -> None:
    app.add_typer(attribute_app, name="attribute")
