"""Experiment set-up: deterministic salted bucketing and the config file."""

import json

import numpy as np
import pytest

from silverset.components.abtest.experiment import BUCKETS, assign, bucket_of, create_experiment, load_experiment
from silverset.components.common.errors import SilversetInputError
from silverset.components.common.spec import example_specs_dir, load_spec


@pytest.fixture
def spec():
    return load_spec(example_specs_dir() / "red_dominant.yaml")


def test_same_user_and_salt_always_get_the_same_arm():
    users = [f"u{i}" for i in range(2000)]
    first = assign(users, salt="exp-1", treatment_share=0.3)
    again = assign(list(reversed(users)), salt="exp-1", treatment_share=0.3)[::-1]
    assert np.array_equal(first, again)
    assert all(0 <= bucket_of(u, "exp-1") < BUCKETS for u in users[:50])


def test_split_matches_the_share_and_a_new_salt_reshuffles_users():
    users = [f"user-{i}" for i in range(40_000)]
    a = assign(users, salt="exp-1", treatment_share=0.3)
    b = assign(users, salt="exp-2", treatment_share=0.3)
    # binomial SD of the share at n = 40k is 0.0023: 0.01 is > 4 SD
    assert abs(a.mean() - 0.3) < 0.01
    # independent salts: P(both treatment) ~= 0.3 * 0.3
    assert abs((a & b).mean() - 0.09) < 0.01


def test_create_writes_a_config_bound_to_the_spec(spec, tmp_path):
    config = create_experiment(spec=spec, salt="s1", treatment_share=0.25, out_dir=tmp_path)
    stored = json.loads((tmp_path / "experiment.json").read_text())
    assert stored["spec_content_hash"] == spec.content_hash
    assert stored["trigger_threshold"] == spec.serving.trigger_threshold
    assert set(stored["arms"]) == {"control", "treatment"}
    loaded = load_experiment(tmp_path)
    assert loaded == config
    assert loaded.arm_of("alice") == loaded.arm_of("alice")


@pytest.mark.parametrize("share", [0.0, 1.0, 1.5, 0.123456])
def test_bad_treatment_share_is_refused(spec, tmp_path, share):
    with pytest.raises(SilversetInputError):
        create_experiment(spec=spec, salt="s", treatment_share=share, out_dir=tmp_path)
