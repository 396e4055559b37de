"""`silverset attribute validate`: normalized spec + hashes, or exit 2 naming the bad field."""

from __future__ import annotations

from silverset.components.common.spec import example_specs_dir, load_spec


def test_valid_spec_prints_normalized_yaml_and_content_hash(cli):
    path = example_specs_dir() / "red_dominant.yaml"
    result = cli("attribute", "validate", str(path))
    assert result.code == 0
    spec = load_spec(path)
    assert "name: red_dominant" in result.out
    assert spec.content_hash in result.flat_out and spec.prompt_hash in result.flat_out


def test_invalid_spec_exits_2_naming_the_field(cli, tmp_path):
    text = (
        (example_specs_dir() / "red_dominant.yaml")
        .read_text()
        .replace("decision_threshold: 0.5", "decision_threshold: 1.7")
    )
    (tmp_path / "bad.yaml").write_text(text)
    result = cli("attribute", "validate", str(tmp_path / "bad.yaml"))
    assert result.code == 2
    assert result.out == ""
    assert "field'decision_threshold'" in result.flat_err and "lessthanorequalto1" in result.flat_err


def test_missing_spec_file_exits_2(cli, tmp_path):
    result = cli("attribute", "validate", str(tmp_path / "absent.yaml"))
    assert result.code == 2 and "filenotfound" in result.flat_err
