"""Fixtures for the evaluate tests."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def truth():
    """200 human labels, about 35% positive."""
    return (np.random.default_rng(7).random(200) < 0.35).astype(np.int32)
