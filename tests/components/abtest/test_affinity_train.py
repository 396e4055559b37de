"""Training the learned trigger on simulated users whose engagement probability is known."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import roc_auc_score

from silverset.components.abtest import affinity_train
from silverset.components.abtest.affinity import AffinityModel
from silverset.components.abtest.experiment import ExperimentConfig
from silverset.components.abtest.exposure import Exposure
from silverset.components.abtest.simulated_users import simulate_users
from silverset.components.common.errors import SilversetInputError
from silverset.components.common.spec import example_specs_dir, load_spec
from tests.helpers.factories import write_exposure_log as write_log

SILVERSET = str(Path(sys.executable).with_name("silverset"))
SPEC = load_spec(example_specs_dir() / "red_dominant.yaml")  # share rule, min_probability 0.5, trigger 0.3


def _catalogue(n: int = 300, seed: int = 1):
    rng = np.random.default_rng(seed)
    ids = [f"v{i:04d}" for i in range(n)]
    probs = np.where(rng.random(n) < 0.4, rng.uniform(0.55, 1.0, n), rng.uniform(0.0, 0.45, n))
    return ids, probs


@pytest.fixture(scope="module")
def simulated():
    ids, probs = _catalogue()
    users = simulate_users(ids, probs, users=3000, min_probability=0.5, seed=5)
    lookup = dict(zip(ids, probs))
    x, rule, known = affinity_train.feature_matrix(users.histories, lookup, min_probability=0.5, affinity="share")
    y = (np.random.default_rng(9).random(len(users.interest)) < users.interest).astype(np.int64)
    return users, x, rule, known, y


def test_model_beats_the_rule_and_approaches_the_oracle(simulated):
    users, x, rule, known, y = simulated
    assert known.min() >= 8  # every history video is in the catalogue
    model, auc = affinity_train.fit(x, y, rule, spec=SPEC, options=affinity_train.TrainOptions(bootstrap_samples=300))
    oracle = roc_auc_score(y, users.interest)  # the true engagement probability: no trigger can beat it in expectation
    # The rule's share over the whole history lags the user's drifted taste; recency lets the model see it.
    assert auc.difference_ci[0] > 0, auc
    assert auc.rule < auc.model <= oracle + 0.03
    assert auc.model_ci[0] <= auc.model <= auc.model_ci[1] and auc.test_users == 900
    # Equal reach: the model triggers (about) the share of users the rule triggers at 0.3.
    reach_rule = np.mean(rule >= SPEC.serving.trigger_threshold)
    reach_model = np.mean(model.probabilities(x) >= model.threshold)
    assert abs(reach_model - reach_rule) < 0.005
    # ... and the users it reaches are more interested than the rule's (what makes its lift larger).
    assert users.interest[model.probabilities(x) >= model.threshold].mean() > users.interest[rule >= 0.3].mean() + 0.02
    assert model.training["threshold_rule"].startswith("equal reach")


def test_without_drift_the_model_has_no_edge_to_find(simulated, monkeypatch):
    # Histories whose old part follows the current taste: the rule already sees everything; the AUC gap is ~0.
    from silverset.components.abtest import simulated_users

    monkeypatch.setattr(simulated_users, "TASTE_CORRELATION", 1.0)
    ids, probs = _catalogue()
    users = simulate_users(ids, probs, users=3000, min_probability=0.5, seed=5)
    x, rule, _ = affinity_train.feature_matrix(
        users.histories, dict(zip(ids, probs)), min_probability=0.5, affinity="share"
    )
    y = (np.random.default_rng(9).random(3000) < users.interest).astype(np.int64)
    _, auc = affinity_train.fit(x, y, rule, spec=SPEC, options=affinity_train.TrainOptions(bootstrap_samples=300))
    assert auc.difference_ci[0] < 0.01 and abs(auc.difference) < 0.03


def test_too_few_labels_are_refused(simulated):
    _, x, rule, _, _ = simulated
    with pytest.raises(SilversetInputError, match="both labels"):
        affinity_train.fit(x[:100], np.zeros(100, dtype=np.int64), rule[:100], spec=SPEC)


def _files(tmp_path, simulated, *, drop_history: int = 0):
    users, _, _, _, y = simulated
    cfg = ExperimentConfig(
        experiment_id="e",
        attribute="red_dominant",
        attribute_version=1,
        spec_content_hash="h",
        salt="s",
        treatment_share=0.5,
        trigger_threshold=0.3,
    )
    rows = [
        Exposure("e", f"r{i}", u, cfg.arm_of(u), False, False, 0.1, "rule", "red_dominant", 1, "v", 1.0 + i)
        for i, u in enumerate(users.user_id)
    ]
    write_log(tmp_path / "exposures", rows, files=2)
    histories = [h if i >= drop_history else ["unknown-video"] for i, h in enumerate(users.histories)]
    pq.write_table(
        pa.table(
            {
                "user_id": users.user_id,
                "attribute_engagement": y,
                "history": pa.array(histories, type=pa.list_(pa.string())),
            }
        ),
        tmp_path / "outcomes.parquet",
    )
    ids, probs = _catalogue()
    pq.write_table(
        pa.table({"video_id": ids, "attribute": ["red_dominant"] * len(ids), "probability": probs}),
        tmp_path / "scores.parquet",
    )
    return cfg


def test_cli_trains_from_the_log_and_writes_a_loadable_model_and_errors(tmp_path, simulated):
    cfg = _files(tmp_path, simulated, drop_history=7)
    spec_path = example_specs_dir() / "red_dominant.yaml"
    done = subprocess.run(
        [
            SILVERSET,
            "affinity",
            "train",
            "--exposures",
            str(tmp_path / "exposures"),
            "--outcomes",
            str(tmp_path / "outcomes.parquet"),
            "--scores",
            str(tmp_path / "scores.parquet"),
            "--attribute",
            str(spec_path),
            "--out",
            str(tmp_path / "m.json"),
            "--bootstrap-samples",
            "200",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "held-out AUC" in done.stdout and "equal" not in done.stderr
    model = AffinityModel.load(tmp_path / "m.json")
    control = sum(cfg.arm_of(u) == "control" for u in simulated[0].user_id[7:])
    assert model.training["users"] == control and model.training["arm"] == "control"
    errors = pq.read_table(tmp_path / "m.errors.parquet").to_pandas()
    assert set(errors["error_type"]) == {"no_known_history"}
    assert len(errors) == sum(cfg.arm_of(u) == "control" for u in simulated[0].user_id[:7])
    assert model.training["auc"]["model"] > model.training["auc"]["rule"]


def test_cli_names_a_missing_history_column(tmp_path, simulated):
    _files(tmp_path, simulated)
    pd.read_parquet(tmp_path / "outcomes.parquet").drop(columns=["history"]).to_parquet(tmp_path / "outcomes.parquet")
    done = subprocess.run(
        [
            SILVERSET,
            "affinity",
            "train",
            "--exposures",
            str(tmp_path / "exposures"),
            "--outcomes",
            str(tmp_path / "outcomes.parquet"),
            "--scores",
            str(tmp_path / "scores.parquet"),
            "--attribute",
            str(example_specs_dir() / "red_dominant.yaml"),
            "--out",
            str(tmp_path / "m.json"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "400"},
    )
    assert done.returncode == 2
    assert "missing required column 'history'" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "m.json").exists()
