"""Running the ``silverset`` CLI from tests: in-process (the ``cli`` fixture) or in a fresh process (``run_silverset``).

The ``cli`` fixture calls the console script's ``main`` and reads its exit code and output; the root
``tests/conftest.py`` registers this module as a plugin, so every test can take ``cli``. ``run_silverset`` is for
commands that must own their process (servers, signals, a clean import state).
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass

import pytest


def squash(text: str) -> str:
    """Text without whitespace or table borders, so assertions survive rich's wrapping and boxes."""
    return "".join(ch for ch in "".join(text.split()) if not "\u2500" <= ch <= "\u257f")


@dataclass(frozen=True)
class CliResult:
    code: int
    out: str
    err: str

    @property
    def flat_out(self) -> str:
        return squash(self.out)

    @property
    def flat_err(self) -> str:
        return squash(self.err)


@pytest.fixture
def cli(capsys, monkeypatch):
    """``cli(*args) -> CliResult``: calls ``silverset.pipelines.cli.main`` as the console script would."""
    from silverset.pipelines.cli import main

    def run(*args: str) -> CliResult:
        monkeypatch.setattr(sys, "argv", ["silverset", *args])
        with pytest.raises(SystemExit) as info:
            main()
            raise SystemExit(0)
        captured = capsys.readouterr()
        code = info.value.code
        return CliResult(code if isinstance(code, int) else (0 if code is None else 1), captured.out, captured.err)

    return run


def silverset_argv(*args: str) -> list[str]:
    """The argv that runs ``silverset ARGS`` with this Python (the console script's ``main``), for ``subprocess``."""
    code = "import sys; from silverset.pipelines.cli import main; sys.argv[0] = 'silverset'; main()"
    return [sys.executable, "-c", code, *args]


def run_silverset(*args: str, cwd=None, timeout_s: float = 300) -> subprocess.CompletedProcess:
    """``silverset ARGS`` in a new process (from ``cwd``), its text stdout/stderr captured, killed after
    ``timeout_s``."""
    return subprocess.run(silverset_argv(*args), cwd=cwd, capture_output=True, text=True, timeout=timeout_s)
