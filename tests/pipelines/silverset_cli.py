"""Run the real ``silverset`` entry point in-process (exit code, stdout, stderr) for CLI tests."""
from __future__ import annotations

import sys

import pytest


def run_cli(capsys, monkeypatch, *args: str) -> tuple[int, str, str]:
    """Call ``silverset.pipelines.cli.main`` with ``args``; returns (exit code, stdout, stderr)."""
    from silverset.pipelines.cli import main

    monkeypatch.setattr(sys, "argv", ["silverset", *args])
    with pytest.raises(SystemExit) as info:
        main()
        raise SystemExit(0)
    captured = capsys.readouterr()
    code = info.value.code if isinstance(info.value.code, int) else (0 if info.value.code is None else 1)
    return code, captured.out, captured.err


def squash(text: str) -> str:
    """Text without whitespace or table borders, so assertions survive rich's wrapping and boxes."""
    return "".join(ch for ch in "".join(text.split()) if not "\u2500" <= ch <= "\u257f")
