"""The ``silverset`` command line: one typer app; each area registers its commands from its own module."""

from __future__ import annotations

import importlib
import sys

import typer
from rich.console import Console
from rich.text import Text

from silverset.components.common.errors import GateFailed, SilversetInputError

app = typer.Typer(
    name="silverset",
    help="Promote a plain-language video attribute to a served, A/B-tested retrieval signal.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err_console = Console(stderr=True)

# Each module defines register(app) and imports heavy libraries only inside its commands, so --help is fast.
AREAS = (
    "demo",
    "attribute",
    "corpus",
    "frames",
    "embed",
    "annotate",
    "distill",
    "evaluate",
    "approvals",
    "index",
    "pipeline",
    "studio",
    "abtest",
    "affinity",
)


def _register_all() -> None:
    for area in AREAS:
        importlib.import_module(f"{__name__}.{area}").register(app)


_register_all()


def main() -> None:
    """Entry point: bad input exits 2 with a message naming it; a failed gate exits 3."""
    from silverset.components.common.logs import configure_cli_logging

    try:
        configure_cli_logging()  # nothing unless SILVERSET_LOG_LEVEL is set: the CLI's output stays as it is
        app()
    except SilversetInputError as exc:
        err_console.print(Text("error: ", style="bold red") + Text(str(exc)))
        sys.exit(2)
    except GateFailed as exc:
        err_console.print(Text("gate failed: ", style="bold red") + Text(str(exc)))
        sys.exit(3)


def console_main() -> None:
    """The ``silverset`` command: :func:`main`, then ``process_exit.exit_now`` (the interpreter's own shutdown
    steps and an exit that skips native libraries' static destructors; see that module for why). ``main()`` stays
    the in-process entry the tests call."""
    from silverset.components.common.process_exit import exit_now

    code = 0
    try:
        main()
    except SystemExit as exc:
        if isinstance(exc.code, int) or exc.code is None:
            code = exc.code or 0
        else:  # sys.exit("message"): print it as the interpreter would
            print(exc.code, file=sys.stderr)
            code = 1
    exit_now(code)
