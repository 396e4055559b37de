"""The in-process ``silverset`` runner: the ``cli`` fixture calls the console script's ``main`` and reads its exit code.

The root ``tests/conftest.py`` registers this module as a plugin, so every test can take ``cli``.
"""
from __future__ import annotations

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
