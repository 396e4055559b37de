"""Attribute spec: the shipped examples validate; bad files name the field; hashes move when they should."""

from __future__ import annotations

import pytest
import yaml

from silverset.components.common.errors import SilversetInputError
from silverset.components.common.spec import AttributeSpec, example_specs_dir, load_spec, parse_spec

EXAMPLES = sorted(example_specs_dir().glob("*.yaml"))


def _example_dict() -> dict:
    return yaml.safe_load((example_specs_dir() / "red_dominant.yaml").read_text())


def _merged(base: dict, change: dict) -> dict:
    out = dict(base)
    for key, value in change.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _error_for(data) -> str:
    with pytest.raises(SilversetInputError) as info:
        parse_spec(yaml.safe_dump(data) if not isinstance(data, str) else data, source="spec.yaml")
    return str(info.value)


def test_every_synthetic_attribute_ships_an_example_spec():
    names = {load_spec(p).name for p in EXAMPLES}
    assert names == {"red_dominant", "moving_object", "frequent_cuts", "onscreen_text"}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_spec_round_trips_through_its_normalized_yaml(path):
    spec = load_spec(path)
    again = parse_spec(spec.normalized_yaml())
    assert again == spec
    assert again.content_hash == spec.content_hash


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"name": "Red Dominant"}, "name", "pattern"),
        ({"version": 0}, "version", "greater than or equal to 1"),
        ({"decision_threshold": 1.5}, "decision_threshold", "less than or equal to 1"),
        ({"definition": "too short"}, "definition", "at least 20"),
        ({"owners": []}, "owners", "at least 1"),
        ({"gates": {"teacher": {"min_f1": -0.1}}}, "gates.teacher.min_f1", "greater than or equal to 0"),
        ({"serving": {"affinity": "magic"}}, "serving.affinity", "share"),
        ({"colour": "red"}, "colour", "not permitted"),
        ({"classes": ["a", "b", "c"]}, "(top level)", "binary attribute has exactly 2 classes"),
        ({"label_type": "ternary"}, "label_type", "binary"),
    ],
)
def test_invalid_spec_error_names_the_field_and_the_problem(change, field, words):
    message = _error_for(_merged(_example_dict(), change))
    assert "spec.yaml" in message
    assert f"field '{field}'" in message
    assert words in message


def test_missing_required_fields_are_each_named():
    message = _error_for({"name": "x_attr", "version": 1})
    for field in ("title", "definition", "owners", "approvers"):
        assert f"field '{field}': Field required" in message


def test_yaml_that_is_not_a_mapping_or_not_yaml_is_refused():
    assert "mapping" in _error_for("- just\n- a list\n")
    assert "not valid YAML" in _error_for("name: [unclosed\n")


def test_missing_file_is_named(tmp_path):
    with pytest.raises(SilversetInputError, match="file not found"):
        load_spec(tmp_path / "nope.yaml")


def test_multiclass_is_refused_for_now_but_has_room_in_the_schema():
    message = _error_for({**_example_dict(), "label_type": "multiclass", "classes": ["a", "b", "c"]})
    assert "not supported by the stages yet" in message


def test_prompt_hash_follows_what_the_teacher_is_asked_content_hash_follows_everything():
    base = AttributeSpec.model_validate(_example_dict())
    gate_edit = AttributeSpec.model_validate({**_example_dict(), "decision_threshold": 0.7})
    prompt_edit = AttributeSpec.model_validate({**_example_dict(), "definition": base.definition + " Also crimson."})
    version_bump = AttributeSpec.model_validate({**_example_dict(), "version": base.version + 1})

    assert gate_edit.prompt_hash == base.prompt_hash
    assert gate_edit.content_hash != base.content_hash
    assert prompt_edit.prompt_hash != base.prompt_hash
    assert version_bump.prompt_hash != base.prompt_hash
    assert len(base.content_hash) == 64 and int(base.content_hash, 16) >= 0


def test_hashes_ignore_formatting_and_key_order():
    data = _example_dict()
    reordered = dict(reversed(list(data.items())))
    reordered["definition"] = "  " + data["definition"].replace("\n", "   \n") + "\n\n"
    a, b = AttributeSpec.model_validate(data), AttributeSpec.model_validate(reordered)
    assert a.content_hash == b.content_hash
    assert a.prompt_hash == b.prompt_hash


def test_duplicate_keys_non_finite_numbers_and_boolean_versions_are_refused():
    text = (example_specs_dir() / "red_dominant.yaml").read_text()
    nested = text.replace("gates:\n", "gates:\n  seed: 1\n  seed: 2\n", 1)
    assert nested != text
    for bad, words in (
        (nested, "duplicate key 'seed'"),
        (text.replace("version: 1", "version: yes", 1), "'version'"),
        (text + "\ndecision_threshold: .nan\n", "duplicate key 'decision_threshold'"),
    ):
        with pytest.raises(SilversetInputError, match=words):
            parse_spec(bad, source="spec.yaml")
    spec = yaml.safe_load(text)
    for field, value in (("approval_timeout_hours", float("inf")), ("decision_threshold", float("nan"))):
        with pytest.raises(SilversetInputError, match=f"'{field}'"):
            parse_spec(yaml.safe_dump({**spec, field: value}), source="spec.yaml")


def test_an_oversized_or_binary_spec_file_is_named(tmp_path):
    binary = tmp_path / "model.bin"
    binary.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(SilversetInputError, match="model.bin.*not UTF-8"):
        load_spec(binary)
    with pytest.raises(SilversetInputError, match="at most"):
        parse_spec("#" * 300_000, source="big.yaml")
