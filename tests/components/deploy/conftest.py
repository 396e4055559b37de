"""Deploy fixtures shared by the deploy and deploy-component tests: two built index versions and a release."""

from __future__ import annotations

import json
import shutil

import pytest

from silverset.components.approval.model import GateResult
from silverset.components.approval.policy import ApprovalService
from silverset.components.approval.store import SqliteApprovalStore
from silverset.components.common.spec import example_specs_dir, load_spec
from tests.helpers.indexes import DIGEST, build_two_versions


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Two real index versions of red_dominant (ScaNN brute force on 400 tiny vectors): (folder, version) each."""
    return [(out, version) for out, version, _, _ in build_two_versions(tmp_path_factory.mktemp("built"))]


@pytest.fixture
def release(tmp_path, built):
    """A real index folder (deploy verifies its digest and self-check), a passing gate for candidate ``DIGEST``, and
    an approval store with the request submitted: (index folder, gate.json, store path, ApprovalService)."""
    index = tmp_path / "index"
    shutil.copytree(built[0][0], index)
    gate = tmp_path / "gate.json"
    gate.write_text(json.dumps({"passed": True, "reasons": [], "metrics": {}, "candidate_digest": DIGEST}))
    store = tmp_path / "approvals.db"
    service = ApprovalService(SqliteApprovalStore(store))
    service.submit(
        gate=GateResult.model_validate_json(gate.read_text()),
        spec=load_spec(example_specs_dir() / "red_dominant.yaml"),
        submitter="ci",
    )
    return index, gate, store, service
