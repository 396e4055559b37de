"""Fixtures for the evaluate tests."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

# importlib import mode: make the test-data helper beside this file importable as `golden_data`.
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def truth():
    """200 human labels, about 35% positive."""
    return (np.random.default_rng(7).random(200) < 0.35).astype(np.int32)
