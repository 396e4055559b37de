"""The deploy KFP component: str paths in (gate.json's folder, as the pipeline passes it), refuses an unapproved
candidate, and records what it did (or why it failed) in the run folder for the run summary."""

from __future__ import annotations

import json

import pytest

from silverset.components.common.artifacts import read_deploy_record
from silverset.components.common.errors import GateFailed
from silverset.components.deploy.component import deploy_index
from silverset.components.index import pointer
from tests.helpers.indexes import DIGEST


def test_python_func_deploys_only_an_approved_candidate(tmp_path, release):
    index, gate, store, service = release
    version = json.loads((index / "manifest.json").read_text())["version"]
    gate_dir = tmp_path / "student_gate"
    gate_dir.mkdir()
    (gate_dir / "gate.json").write_text(gate.read_text())
    serve = tmp_path / "serve"
    run_dir = tmp_path / "run"
    kwargs = dict(
        index_dir=str(index),
        gate_result=str(gate_dir),
        approval_store=str(store),
        target="local",
        serve_root=str(serve),
        run_dir=str(run_dir),
    )
    with pytest.raises(GateFailed, match="no approval"):
        deploy_index.python_func(**kwargs)
    failed = read_deploy_record(run_dir / "deploy")
    assert failed.status == "failed" and "no approval" in failed.error and failed.version == ""
    service.approve(DIGEST, user="alice@silverset.dev", reason="ok")
    summary = json.loads(deploy_index.python_func(**kwargs))
    assert summary["version"] == version and summary["changed"]
    assert pointer.read_pointer(serve, "red_dominant") == version
    recorded = read_deploy_record(run_dir / "deploy")
    assert recorded.status == "deployed" and recorded.version == version and recorded.changed
    assert recorded.target == "local" and recorded.verified  # the published copy passed its checks first
    assert json.loads(deploy_index.python_func(**kwargs))["changed"] is False  # idempotent
