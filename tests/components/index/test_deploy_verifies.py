"""Local deploy verifies what it serves: digest + load + self-check before the pointer moves, PREVIOUS only
names a version that verifies, and a server restarted onto a broken CURRENT falls back to PREVIOUS, saying so."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from fastapi.testclient import TestClient

from silverset.components.common.artifacts import read_index_manifest
from silverset.components.deploy.local import deploy_local
from silverset.components.index import pointer
from silverset.components.index.loaded import IndexRefused
from silverset.components.index.server import create_app
from tests.helpers.indexes import build_two_versions


@pytest.fixture(scope="module")
def two_versions(tmp_path_factory):
    return [(out, version) for out, version, _, _ in build_two_versions(tmp_path_factory.mktemp("versions"))]


def truncate(index_dir) -> None:
    """What a half-copied or disk-damaged index looks like: scann/dataset.npy cut to half its bytes."""
    dataset = index_dir / "scann" / "dataset.npy"
    dataset.write_bytes(dataset.read_bytes()[: dataset.stat().st_size // 2])


def deploy(index_dir, root):
    return deploy_local(index_dir=index_dir, manifest=read_index_manifest(index_dir), serve_root=root)


def test_a_truncated_index_is_refused_before_any_pointer_moves(tmp_path, two_versions):
    (good, v1), (second, _) = two_versions
    root = tmp_path / "serve"
    assert deploy(good, root).changed is True
    broken = tmp_path / "broken"
    shutil.copytree(second, broken)
    truncate(broken)
    with pytest.raises(IndexRefused, match=f"index '.*{read_index_manifest(broken).version}'"):
        deploy(broken, root)
    assert pointer.read_pointer(root, "red_dominant") == v1
    assert pointer.read_pointer(root, "red_dominant", pointer.PREVIOUS) is None


def test_previous_never_names_a_version_that_no_longer_verifies(tmp_path, two_versions):
    (first, v1), (second, v2) = two_versions
    root = tmp_path / "serve"
    deploy(first, root)
    truncate(pointer.version_dir(root, "red_dominant", v1))  # the live copy got damaged on disk
    result = deploy(second, root)
    assert result.changed and pointer.read_pointer(root, "red_dominant") == v2
    assert pointer.read_pointer(root, "red_dominant", pointer.PREVIOUS) is None and result.previous is None


def test_a_restart_onto_a_broken_current_serves_previous_and_says_so(tmp_path, two_versions):
    (first, v1), (second, v2) = two_versions
    root = tmp_path / "serve"
    deploy(first, root)
    assert deploy(second, root).previous == v1
    truncate(pointer.version_dir(root, "red_dominant", v2))  # damaged after deploy, then the server restarts
    with TestClient(create_app(root, poll=False)) as client:
        ready = client.get("/readyz")
        body = ready.json()
        assert ready.status_code == 200 and body["live"] == {"red_dominant": v1}
        assert (
            body["fallback"]["red_dominant"]["serving"] == v1 and body["fallback"]["red_dominant"]["instead_of"] == v2
        )
        assert "digest" in body["fallback"]["red_dominant"]["reason"]
        vector = np.zeros(16, dtype=np.float32).tolist()
        answer = client.post("/v1/attributes/red_dominant/search", json={"vector": vector}).json()
        assert answer["index_version"] == v1
