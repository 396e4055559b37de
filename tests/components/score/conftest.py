"""A distilled model and its embeddings, built once per test module (distilling takes a few seconds)."""

from __future__ import annotations

import pytest

from tests.helpers.checkpoints import distill_student


@pytest.fixture(scope="module")
def distilled(tmp_path_factory):
    """``factories.write_synthetic``'s dict (n=300) plus ``model`` (the distilled student's folder) and ``root``."""
    return distill_student(tmp_path_factory.mktemp("distilled"), n=300)
