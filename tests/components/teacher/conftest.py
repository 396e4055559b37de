"""Fixtures for teacher tests: a tiny frames table, manifest and attribute spec on disk."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "embed"))
import frames_factory  # noqa: E402

from silverset.components.common.spec import example_specs_dir  # noqa: E402

KINDS = ["red", "moving", "cuts", "text", "plain"]


@pytest.fixture
def corpus(tmp_path: Path) -> dict:
    videos = {f"vid{i:03d}": KINDS[i % len(KINDS)] for i in range(12)}
    frames = frames_factory.write_frames(tmp_path / "frames", videos, n=4)
    manifest = frames_factory.write_manifest(tmp_path / "manifest.csv", videos)
    return {"videos": videos, "frames": str(frames), "manifest": str(manifest),
            "spec": str(example_specs_dir() / "red_dominant.yaml"), "tmp": tmp_path}
