"""`silverset attribute validate`: normalized spec + hashes, or exit 2 naming the bad field."""
from __future__ import annotations

from silverset_cli import run_cli, squash
from silverset.components.common.spec import example_specs_dir, load_spec


def test_valid_spec_prints_normalized_yaml_and_content_hash(capsys, monkeypatch):
    path = example_specs_dir() / "red_dominant.yaml"
    code, out, _ = run_cli(capsys, monkeypatch, "attribute", "validate", str(path))
    assert code == 0
    spec = load_spec(path)
    assert "name: red_dominant" in out
    assert spec.content_hash in squash(out) and spec.prompt_hash in squash(out)


def test_invalid_spec_exits_2_naming_the_field(capsys, monkeypatch, tmp_path):
    text = (example_specs_dir() / "red_dominant.yaml").read_text().replace("decision_threshold: 0.5",
                                                                            "decision_threshold: 1.7")
    (tmp_path / "bad.yaml").write_text(text)
    code, out, err = run_cli(capsys, monkeypatch, "attribute", "validate", str(tmp_path / "bad.yaml"))
    assert code == 2
    assert out == ""
    assert "field'decision_threshold'" in squash(err) and "lessthanorequalto1" in squash(err)


def test_missing_spec_file_exits_2(capsys, monkeypatch, tmp_path):
    code, _, err = run_cli(capsys, monkeypatch, "attribute", "validate", str(tmp_path / "absent.yaml"))
    assert code == 2 and "filenotfound" in squash(err)
