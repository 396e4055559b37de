"""The bulk-score KFP component: python_func directly, and one kfp.local run."""

from __future__ import annotations

import pytest

from silverset.components.score.component import bulk_score

pytestmark = pytest.mark.slow  # Beam + tfx-bsl import TensorFlow


def test_python_func(distilled, tmp_path):
    out = bulk_score.python_func(
        model_dir=distilled["model"], embeddings=distilled["embeddings"], out_dir=str(tmp_path / "s")
    )
    assert (out.scored, out.errors) == (300, 0)


def test_kfp_local_run(distilled, tmp_path):
    from kfp import local

    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
    task = bulk_score(
        model_dir=distilled["model"],
        embeddings=distilled["embeddings"],
        out_dir=str(tmp_path / "s"),
        backend="torchscript",
    )
    assert task.outputs["scored"] == 300 and task.outputs["errors"] == 0
