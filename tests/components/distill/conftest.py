"""Fixtures for the distill tests."""

from __future__ import annotations

import pytest

from tests.helpers.factories import write_synthetic


@pytest.fixture
def synthetic(tmp_path):
    return write_synthetic(tmp_path)
