"""Clean errors: a bad --store exits 2 with one line naming it, and a read-only command creates nothing."""

from __future__ import annotations

import pytest
import yaml

from silverset.components.common.spec import example_specs_dir


@pytest.mark.parametrize("command", [("list",), ("audit",), ("audit", "--verify"), ("show", "sha256:abcd")])
def test_a_bad_store_exits_2_naming_it_and_creates_nothing(cli, tmp_path, command):
    folder = tmp_path / "stores"
    folder.mkdir()
    not_a_db = tmp_path / "notes.db"
    not_a_db.write_text("these are my notes, not a database\n" * 20)
    missing = tmp_path / "no" / "such" / "dir" / "x.db"
    for store, problem in ((folder, "isafolder"), (not_a_db, "isnotaSQLitedatabase"), (missing, "doesnotexist")):
        result = cli("approvals", *command, "--store", str(store))
        assert result.code == 2, (store, result.err)
        assert f"approvalstore'{store}'" in result.flat_err and problem in result.flat_err
        assert "Traceback" not in result.err
    assert not (tmp_path / "no").exists()
    assert not_a_db.read_text().startswith("these are my notes")


def _example_spec() -> str:
    from silverset.components.common.spec import example_specs_dir

    return (example_specs_dir() / "red_dominant.yaml").read_text()


@pytest.mark.parametrize(
    "content, problem",
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe", "isnotUTF-8text"),
        (b"name: x\x00\x00\x00\n", "NULbytes"),
        ("approval_timeout_hours: .inf\n", "approval_timeout_hours':Inputshouldbeafinitenumber"),
        ("approval_timeout_hours: .nan\n", "approval_timeout_hours':Inputshouldbeafinitenumber"),
        ("version: true\n", "field'version':Inputshouldbeavalidinteger"),
        ("version: 99999999999999999999999\n", "field'version':Inputshouldbelessthanorequalto2147483647"),
        ("name: other_name\n", "duplicatekey'name'"),
    ],
)
def test_a_bad_spec_file_exits_2_with_one_line_naming_it(cli, tmp_path, content, problem):
    path = tmp_path / "spec.yaml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        base = _example_spec()
        key = content.split(":")[0]
        path.write_text(
            "\n".join(line for line in base.splitlines() if not line.startswith(f"{key}:") or key == "name")
            + "\n"
            + content
        )
    result = cli("attribute", "validate", str(path))
    assert result.code == 2, result.err
    assert f"attributespec'{path}'" in result.flat_err and problem in result.flat_err, result.err
    assert "Traceback" not in result.err


def test_a_50_mb_spec_file_is_refused_without_parsing_it(cli, tmp_path):
    import time

    path = tmp_path / "huge.yaml"
    path.write_text("a: [" * 12_500_000)
    started = time.monotonic()
    result = cli("attribute", "validate", str(path))
    assert result.code == 2 and "bytes" in result.flat_err and time.monotonic() - started < 5


def test_studio_commands_name_a_bad_users_file_a_public_host_and_a_huge_version(cli, tmp_path):
    users = tmp_path / "users.yaml"
    users.write_text("users:\n  bob: {role: labeler}\n")
    result = cli("studio", "serve", "--workdir", str(tmp_path), "--users", str(users))
    assert result.code == 2 and f"usersfile'{users}'" in result.flat_err and "token_sha256orpassword" in result.flat_err
    result = cli("studio", "serve", "--workdir", str(tmp_path), "--host", "0.0.0.0")
    assert result.code == 2 and "--host" in result.flat_err and "needs--users" in result.flat_err
    for err in (cli("studio", "serve", "--workdir", str(tmp_path), "--users", str(tmp_path / "no.yaml")).err,):
        assert "Traceback" not in err and "no.yaml" in err


def test_a_spec_field_name_with_a_newline_is_still_a_one_line_error(cli, tmp_path):
    spec = yaml.safe_load((example_specs_dir() / "red_dominant.yaml").read_text())
    spec["bad\nkey"] = 0
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    result = cli("attribute", "validate", str(path))
    assert result.code == 2 and "field'bad\\nkey'" in result.flat_err, result.err  # escaped, not a line break
