"""KFP component: python_func directly, and one kfp.local run."""

import json

import pytest

from silverset.components.common.spec import example_specs_dir

SPEC = str(example_specs_dir() / "red_dominant.yaml")


def test_component_python_func(tmp_path):
    from silverset.components.abtest.component import ab_analysis

    out = ab_analysis.python_func(attribute_spec=SPEC, out_dir=str(tmp_path), users=3000, seed=1)
    assert out.passed and json.loads(out.summary_json)["attribute"] == "red_dominant@v1"
    assert (tmp_path / "analysis" / "report.html").exists()


@pytest.mark.slow
def test_component_runs_under_kfp_local(tmp_path):
    from kfp import local

    from silverset.components.abtest.component import ab_analysis

    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
    task = ab_analysis(attribute_spec=SPEC, out_dir=str(tmp_path / "ab"), users=3000, seed=2)
    assert task.outputs["passed"] is True
    assert (tmp_path / "ab" / "analysis" / "result.json").exists()
