"""A distilled model and its embeddings, built once per test module (distilling takes a few seconds)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "distill"))
import distill_data as distill_fixtures  # noqa: E402 - shared synthetic data, one definition


@pytest.fixture(scope="module")
def distilled(tmp_path_factory):
    from silverset.components.distill import train
    from silverset.components.distill.student import StudentOptions

    root = tmp_path_factory.mktemp("distilled")
    data = distill_fixtures.write_synthetic(root, n=300)
    train.run(embeddings=data["embeddings"], labels=data["labels"], attribute=distill_fixtures.SPEC, out=str(root / "model"),
              options=StudentOptions(max_epochs=30, hidden_units=16), measure_latency=False)
    return {**data, "model": str(root / "model"), "root": root}
