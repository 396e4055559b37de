"""The distill KFP component: python_func directly, and one kfp.local run."""

from __future__ import annotations

import pytest

from silverset.components.common.artifacts import read_model_metadata
from silverset.components.distill.component import distill_student
from tests.helpers.factories import SPEC


def test_python_func_returns_the_digest(tmp_path, synthetic):
    out = distill_student.python_func(
        embeddings=synthetic["embeddings"],
        labels=synthetic["labels"],
        attribute_spec=SPEC,
        out_dir=str(tmp_path / "m"),
        hidden_units=16,
        max_epochs=20,
    )
    assert out.model_digest == read_model_metadata(out.model_dir).model_digest


@pytest.mark.slow
def test_kfp_local_run(tmp_path, synthetic):
    from kfp import local

    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
    task = distill_student(
        embeddings=synthetic["embeddings"],
        labels=synthetic["labels"],
        attribute_spec=SPEC,
        out_dir=str(tmp_path / "m"),
        architecture="logistic",
        max_epochs=20,
    )
    assert task.outputs["model_digest"] == read_model_metadata(tmp_path / "m").model_digest
    assert 0 < task.outputs["threshold"] < 1
