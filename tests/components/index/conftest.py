"""Fixtures for the index tests: an attribute spec with a reachable recall target."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from silverset.components.common.spec import example_specs_dir


@pytest.fixture
def spec_path(tmp_path) -> Path:
    data = yaml.safe_load((example_specs_dir() / "red_dominant.yaml").read_text())
    data["serving"]["recall_target"] = 0.9
    path = tmp_path / "red_dominant.yaml"
    path.write_text(yaml.safe_dump(data))
    return path
