"""Small output helpers the stage commands share: option errors and key/value summary tables."""

from __future__ import annotations

from typing import Any, Mapping

from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.table import Table

from silverset.components.common.errors import SilversetInputError


def options_error(name: str, exc: ValidationError) -> SilversetInputError:
    """An input error naming each bad option (``field: problem``) of the ``name`` options model."""
    problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
    return SilversetInputError(name, problems)


def print_summary(console: Console, title: str, summary: Mapping[str, Any] | BaseModel) -> None:
    """Print a stage's summary (its typed summary model, or a dict) as a two-column table."""
    table = Table(title=title, show_header=False)
    items = summary.model_dump(mode="json") if isinstance(summary, BaseModel) else summary
    for key, value in items.items():
        table.add_row(key, str(value))
    console.print(table)
