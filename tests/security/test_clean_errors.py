"""Clean errors: a bad --store exits 2 with one line naming it, and a read-only command creates nothing."""
from __future__ import annotations

import pytest


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
