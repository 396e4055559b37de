"""The learned trigger's model: features on hand-worked histories, JSON round trip, refusal of malformed files."""

import json
import math

import numpy as np
import pytest

from silverset.components.abtest.affinity import FEATURE_NAMES, FORMAT, AffinityModel, history_features
from silverset.components.common.errors import SilversetInputError


def _model(**over) -> AffinityModel:
    base = dict(
        coefficients=(1.0, 0.5, -0.25, 2.0, 0.1),
        intercept=-0.3,
        scaler_mean=(0.2, 0.3, 0.5, 0.3, 1.5),
        scaler_scale=(0.1, 0.2, 0.3, 0.2, 0.5),
        threshold=0.4,
        half_life=2.0,
        training={"rows": 10},
    )
    base.update(over)
    return AffinityModel(**base)


def test_features_of_a_hand_worked_history():
    # oldest -> newest; half-life 1 item: weights 0.25, 0.5, 1 for ages 2, 1, 0.
    f = dict(zip(FEATURE_NAMES, history_features([0.9, 0.1, 0.6], 0.5, half_life=1.0)))
    assert f["share"] == pytest.approx(2 / 3)
    assert f["mean_score"] == pytest.approx(1.6 / 3)
    assert f["max_score"] == pytest.approx(0.9)
    assert f["recent_mean"] == pytest.approx((0.25 * 0.9 + 0.5 * 0.1 + 1.0 * 0.6) / 1.75)
    assert f["log_history"] == pytest.approx(math.log(4))


def test_recency_tells_apart_histories_the_rule_cannot():
    # Same share, mean and max, opposite order: only the recency-weighted mean differs, newest counting most.
    old_fan = history_features([0.9, 0.9, 0.1, 0.1], 0.5)
    new_fan = history_features([0.1, 0.1, 0.9, 0.9], 0.5)
    assert np.allclose(old_fan[[0, 1, 2, 4]], new_fan[[0, 1, 2, 4]])
    assert new_fan[3] > 0.5 > old_fan[3]


def test_empty_history_is_all_zeros_and_share_counts_the_threshold_itself():
    assert np.array_equal(history_features([], 0.5), np.zeros(len(FEATURE_NAMES)))
    assert history_features([0.5, 0.49], 0.5)[0] == 0.5


def test_probability_is_the_standardized_logistic():
    m = _model()
    x = m.features([0.9, 0.2, 0.7], 0.5)
    z = np.dot((x - np.array(m.scaler_mean)) / np.array(m.scaler_scale), m.coefficients) + m.intercept
    assert m.probability(x) == pytest.approx(1 / (1 + math.exp(-z)))
    triggered, affinity = m.triggers([0.9, 0.2, 0.7], 0.5)
    assert affinity == pytest.approx(m.probability(x)) and triggered == (affinity >= 0.4)


def test_json_round_trip_gives_the_same_probabilities(tmp_path):
    m = _model()
    path = tmp_path / "m.json"
    m.save(path)
    back = AffinityModel.load(path)
    assert back == m
    rng = np.random.default_rng(0)
    feats = np.stack([m.features(rng.random(n), 0.5) for n in range(1, 30)])
    assert np.array_equal(back.probabilities(feats), m.probabilities(feats))


@pytest.mark.parametrize(
    "mutate, problem",
    [
        (lambda d: d.update(format="pickle"), "format"),
        (
            lambda d: d.update(feature_names=["share", "mean_score", "max_score", "recent_mean", "clicks"]),
            "feature_names",
        ),
        (lambda d: d.update(coefficients=[1.0, 2.0]), "'coefficients' must be 5 finite numbers"),
        (lambda d: d.update(coefficients=[1.0, 2.0, 3.0, 4.0, "5"]), "'coefficients'"),
        (lambda d: d["scaler"].update(scale=[1.0, 1.0, 0.0, 1.0, 1.0]), "'scaler.scale' entries must be > 0"),
        (lambda d: d.update(threshold=1.5), "'threshold'"),
        (lambda d: d.update(threshold=True), "'threshold'"),
        (lambda d: d.pop("intercept"), "'intercept'"),
        (lambda d: d.update(half_life=0), "'half_life'"),
        (lambda d: d.update(training=[1]), "'training'"),
    ],
)
def test_malformed_model_files_are_refused_naming_the_file(tmp_path, mutate, problem):
    data = _model().to_json()
    mutate(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(SilversetInputError) as err:
        AffinityModel.load(path)
    assert str(path) in str(err.value) and problem in str(err.value)


def test_non_json_nan_missing_and_oversized_files_are_refused(tmp_path):
    nan_file = tmp_path / "nan.json"
    nan_file.write_text(json.dumps(_model().to_json()).replace('"intercept": -0.3', '"intercept": NaN'))
    pickled = tmp_path / "model.pkl"
    pickled.write_bytes(b"\x80\x04\x95")
    huge = tmp_path / "huge.json"
    huge.write_text(json.dumps({"format": FORMAT, "training": {"pad": "x" * (1 << 20)}}))
    for path, problem in (
        (nan_file, "NaN"),
        (pickled, "not valid JSON"),
        (tmp_path / "absent.json", "does not exist"),
        (huge, "larger than"),
    ):
        with pytest.raises(SilversetInputError, match=problem):
            AffinityModel.load(path)


def test_spec_names_the_model_and_the_index_manifest_carries_it(tmp_path):
    import yaml

    from silverset.components.common.artifacts import read_index_manifest
    from silverset.components.common.spec import example_specs_dir, load_spec
    from tests.helpers.indexes import build_tiny_index, tiny_index_spec

    plain = tiny_index_spec(tmp_path)
    data = yaml.safe_load(plain.read_text())
    data["serving"]["affinity_model"] = "gs://models/red_dominant/affinity-1.json"
    named = tmp_path / "named" / "red_dominant.yaml"
    named.parent.mkdir()
    named.write_text(yaml.safe_dump(data))
    index_dir, _, _, _ = build_tiny_index(tmp_path / "named", named, n=120)
    assert read_index_manifest(index_dir).serving["affinity_model"] == "gs://models/red_dominant/affinity-1.json"
    # Without a model the field is absent everywhere: a spec's content hash is what it was before the field existed.
    spec = load_spec(example_specs_dir() / "red_dominant.yaml")
    assert "affinity_model" not in spec.model_dump(mode="json")["serving"]
    assert load_spec(named).content_hash != load_spec(plain).content_hash
    data["serving"]["affinity_model"] = ""
    named.write_text(yaml.safe_dump(data))
    with pytest.raises(SilversetInputError, match="affinity_model"):
        load_spec(named)
