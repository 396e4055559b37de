"""Security-suite fixtures: the in-process ``cli`` runner is the one tests/pipelines uses (loaded, not copied)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_spec = importlib.util.spec_from_file_location("silverset_cli_fixtures", Path(__file__).parents[1] / "pipelines" / "conftest.py")
_fixtures = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = _fixtures  # dataclasses look their module up by name
_spec.loader.exec_module(_fixtures)

cli = _fixtures.cli
