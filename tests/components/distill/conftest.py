"""Fixtures for the distill tests."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from distill_data import write_synthetic  # noqa: E402 - test-data helper beside this file


@pytest.fixture
def synthetic(tmp_path):
    return write_synthetic(tmp_path)
