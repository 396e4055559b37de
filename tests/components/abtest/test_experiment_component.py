"""KFP component `create_experiment`: the promoted spec's experiment.json, the server's --experiment."""

import json

import pytest

from silverset.components.abtest.experiment import load_experiment
from silverset.components.common.spec import example_specs_dir, load_spec

SPEC = str(example_specs_dir() / "red_dominant.yaml")


def test_writes_the_promoted_versions_config_and_rerunning_keeps_every_arm(tmp_path):
    from silverset.components.abtest.component import create_experiment

    first = create_experiment.python_func(attribute_spec=SPEC, out_dir=str(tmp_path / "a"), treatment_share=0.2)
    again = create_experiment.python_func(attribute_spec=SPEC, out_dir=str(tmp_path / "b"), treatment_share=0.2)
    spec = load_spec(SPEC)
    config = load_experiment(first.experiment_path)
    assert (config.attribute, config.attribute_version, config.spec_content_hash) == (
        spec.name,
        spec.version,
        spec.content_hash,
    )
    assert first.attribute_version == spec.version and config.treatment_share == 0.2
    assert (tmp_path / "a" / "experiment.json").read_bytes() == (tmp_path / "b" / "experiment.json").read_bytes()
    assert first.experiment_id == again.experiment_id == config.experiment_id

    other = create_experiment.python_func(attribute_spec=SPEC, out_dir=str(tmp_path / "c"), salt="fresh")
    users = [f"u{i}" for i in range(200)]
    assert [config.arm_of(u) for u in users] != [load_experiment(other.experiment_path).arm_of(u) for u in users]


def test_a_bad_share_names_the_input(tmp_path):
    from silverset.components.abtest.component import create_experiment
    from silverset.components.common.errors import SilversetInputError

    with pytest.raises(SilversetInputError, match="--treatment-share"):
        create_experiment.python_func(attribute_spec=SPEC, out_dir=str(tmp_path), treatment_share=1.0)


@pytest.mark.slow
def test_runs_under_kfp_local(tmp_path):
    from kfp import local

    from silverset.components.abtest.component import create_experiment

    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
    task = create_experiment(attribute_spec=SPEC, out_dir=str(tmp_path / "exp"))
    assert (
        json.loads((tmp_path / "exp" / "experiment.json").read_text())["experiment_id"] == task.outputs["experiment_id"]
    )
