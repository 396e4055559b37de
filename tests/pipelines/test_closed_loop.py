"""The closed loop against the real index server (uvicorn on loopback) over a tiny real index: the analysis of
the server's own exposure log recovers the known effect; the learned trigger the server runs is the model file's."""

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from silverset.components.abtest import affinity_train
from silverset.components.abtest.affinity import AffinityModel
from silverset.components.abtest.experiment import create_experiment
from silverset.components.abtest.exposure import read_exposures
from silverset.components.common.errors import SilversetInputError
from silverset.components.common.spec import load_spec
from silverset.components.index import pointer
from silverset.components.index.build import MANIFEST_FILE
from silverset.pipelines.closed_loop import run_closed_loop
from tests.helpers.indexes import build_tiny_index, tiny_index_spec


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    import shutil

    folder = tmp_path_factory.mktemp("loop")
    spec_path = tiny_index_spec(folder)
    index_dir, _, _, summary = build_tiny_index(folder, spec_path)  # even ids p=0.9 (vocabulary), odd p=0.1
    root = folder / "serve"
    shutil.copytree(index_dir, pointer.version_dir(root, "red_dominant", summary.version))
    pointer.write_pointer(root, "red_dominant", summary.version)
    spec = load_spec(spec_path)
    create_experiment(spec=spec, salt="loop-1", treatment_share=0.5, out_dir=folder / "exp")
    report = run_closed_loop(
        serve_root=root,
        attribute="red_dominant",
        experiment_path=folder / "exp",
        out_dir=folder / "A",
        users=1200,
        effect=3.0,
        seed=1,
        bootstrap_samples=0,
    )
    return root, folder, spec, report


def test_analysis_of_the_servers_log_recovers_the_known_effect(served):
    _, folder, _, report = served
    assert report["checks"] == {
        "effect_within_ci": True,
        "srm_passed": True,
        "cbps_all_abs_smd_below_0_1": True,
        "control_never_served": True,
        "arms_match_experiment": True,
        "every_request_logged": True,
    }
    trig = report["analysis"]["triggered_lifts"]["satisfied_consumption"]
    assert trig["difference_ci"][0] > 0  # the effect is found, not just covered by a wide interval
    assert report["logged_requests"] == report["requests"] == 1500
    log = read_exposures(folder / "A" / "exposures").to_pandas()
    assert not log[(log["arm"] == "control")]["served"].any()
    assert log[(log["arm"] == "treatment") & log["triggered"]]["served"].all()
    assert set(log["trigger_source"]) == {"rule"}
    assert json.loads((folder / "A" / "summary.json").read_text())["passed"]


def test_server_triggers_with_the_trained_model_exactly_as_the_file_says(served):
    root, folder, spec, report = served
    history = pointer.version_dir(root, "red_dominant", report["index_version"]) / "history.parquet"
    model_path = folder / "model.json"
    affinity_train.run(
        exposures=report["paths"]["exposures"],
        outcomes=report["paths"]["outcomes"],
        scores=history,
        attribute_spec=spec,
        model_path=model_path,
        options=affinity_train.TrainOptions(bootstrap_samples=100),
    )
    model = AffinityModel.load(model_path)
    b = run_closed_loop(
        serve_root=root,
        attribute="red_dominant",
        experiment_path=folder / "exp",
        out_dir=folder / "B",
        users=400,
        effect=3.0,
        seed=2,
        affinity_model=model_path,
        bootstrap_samples=0,
    )
    assert b["checks"]["control_never_served"] and b["checks"]["every_request_logged"]
    # Recompute every logged affinity from the user's history and the model file: the server ran this model.
    log = read_exposures(folder / "B" / "exposures").to_pandas().drop_duplicates("user_id").set_index("user_id")
    outcomes = pq.read_table(folder / "B" / "outcomes.parquet").to_pandas().set_index("user_id")
    probs = dict(zip(*(pq.read_table(history).column(c).to_pylist() for c in ("video_id", "probability"))))
    assert set(log["trigger_source"]) == {"model"}
    for user, row in log.iterrows():
        p = np.array([probs[v] for v in outcomes.loc[user, "history"]], dtype=np.float32)
        expected = model.probability(model.features(p, spec.vocabulary.min_probability))
        assert row["affinity"] == pytest.approx(expected, abs=1e-9)
        assert row["triggered"] == (expected >= model.threshold)
    # The served manifest names the model; the source serve root was left alone.
    staged = json.loads(
        (pointer.version_dir(folder / "B" / "serve", "red_dominant", b["index_version"]) / MANIFEST_FILE).read_text()
    )
    assert staged["serving"]["affinity_model"] == str(model_path.resolve())
    assert (
        "affinity_model"
        not in json.loads((pointer.version_dir(root, "red_dominant", b["index_version"]) / MANIFEST_FILE).read_text())[
            "serving"
        ]
    )


def test_an_experiment_for_another_attribute_is_refused(served, tmp_path):
    root, folder, _, _ = served
    config = json.loads((folder / "exp" / "experiment.json").read_text())
    config["attribute"] = "moving_object"
    (tmp_path / "experiment.json").write_text(json.dumps(config))
    with pytest.raises(SilversetInputError, match="is for 'moving_object'"):
        run_closed_loop(
            serve_root=root, attribute="red_dominant", experiment_path=tmp_path, out_dir=tmp_path / "x", users=50
        )
