"""The index KFP component: str paths in (as the pipeline passes them), the index version out."""

from __future__ import annotations

import json

import numpy as np

from silverset.components.index.component import build_index
from tests.helpers.indexes import clustered, write_inputs


def test_python_func_builds_the_restricted_index_and_returns_its_version(tmp_path, spec_path):
    scores, embeddings, ids = write_inputs(tmp_path, clustered(300, 16, seed=3), np.linspace(0, 1, 300))
    version = build_index.python_func(
        scores=str(scores), embeddings=str(embeddings), attribute_spec=str(spec_path), out_dir=str(tmp_path / "index")
    )
    manifest = json.loads((tmp_path / "index" / "manifest.json").read_text())
    assert version == manifest["version"]
    assert manifest["count"] == int((np.linspace(0, 1, 300).astype(np.float32) >= 0.5).sum())  # the vocabulary rule
