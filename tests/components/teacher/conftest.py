"""Fixtures for teacher tests: a tiny frames table, manifest and attribute spec on disk."""

from __future__ import annotations

from pathlib import Path

import pytest

from silverset.components.common.spec import example_specs_dir
from tests.helpers import factories
from tests.helpers.factories import VIDEO_KINDS as KINDS


@pytest.fixture
def corpus(tmp_path: Path) -> dict:
    videos = {f"vid{i:03d}": KINDS[i % len(KINDS)] for i in range(12)}
    frames = factories.write_frames(tmp_path / "frames", videos, n=4)
    manifest = factories.write_manifest(tmp_path / "manifest.csv", videos)
    return {
        "videos": videos,
        "frames": str(frames),
        "manifest": str(manifest),
        "spec": str(example_specs_dir() / "red_dominant.yaml"),
        "tmp": tmp_path,
    }
