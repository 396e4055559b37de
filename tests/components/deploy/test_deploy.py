"""Deploy: refuses without gate + approval for the same digest; local pointer swap; Kubernetes canary,
readiness, rollback and idempotence against the loopback fake API server."""
from __future__ import annotations

import json

import pytest
from kubernetes import client

from silverset.components.approval.model import GateResult
from silverset.components.approval.policy import ApprovalService
from silverset.components.approval.store import SqliteApprovalStore
from silverset.components.common.errors import GateFailed
from silverset.components.common.spec import example_specs_dir, load_spec
from silverset.components.deploy import deploy
from silverset.components.index import pointer
from tests.fakes.kube_api_server import FakeKubeApi

DIGEST = "sha256:" + "ab" * 32
VERSION = "red_dominant-v1-000000000001"


@pytest.fixture
def release(tmp_path):
    """An index folder (manifest only is enough for deploy), a passing gate, and an approval store."""
    index = tmp_path / "index"
    index.mkdir()
    manifest = {"version": VERSION, "attribute": "red_dominant", "attribute_version": 1, "model_digest": DIGEST}
    (index / "manifest.json").write_text(json.dumps(manifest))
    gate = tmp_path / "gate.json"
    gate.write_text(json.dumps({"passed": True, "reasons": [], "metrics": {}, "candidate_digest": DIGEST}))
    store = tmp_path / "approvals.db"
    service = ApprovalService(SqliteApprovalStore(store))
    service.submit(gate=GateResult.model_validate_json(gate.read_text()), spec=load_spec(example_specs_dir() / "red_dominant.yaml"), submitter="ci")
    return index, gate, store, service


def test_refuses_without_approval_or_with_a_gate_for_another_digest(tmp_path, release):
    index, gate, store, service = release
    with pytest.raises(GateFailed, match="no approval"):
        deploy.run(index=str(index), gate=str(gate), approval_store=str(store), serve_root=str(tmp_path / "serve"))
    service.approve(DIGEST, user="alice@silverset.dev", reason="ok")
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"passed": True, "candidate_digest": "sha256:" + "cd" * 32}))
    with pytest.raises(GateFailed, match="gate result is for candidate"):
        deploy.run(index=str(index), gate=str(other), approval_store=str(store), serve_root=str(tmp_path / "serve"))
    failed = tmp_path / "failed.json"
    failed.write_text(json.dumps({"passed": False, "reasons": ["f1 retention 0.80 < 0.95"], "candidate_digest": DIGEST}))
    with pytest.raises(GateFailed, match="retention"):
        deploy.run(index=str(index), gate=str(failed), approval_store=str(store), serve_root=str(tmp_path / "serve"))
    assert not (tmp_path / "serve").exists()


def test_local_deploy_swaps_the_pointer_and_is_idempotent(tmp_path, release):
    index, gate, store, service = release
    service.approve(DIGEST, user="bob@silverset.dev", reason="ok")
    root = tmp_path / "serve"
    pointer.write_pointer(root, "red_dominant", "red_dominant-v1-old")
    first = deploy.run(index=str(index), gate=str(gate), approval_store=str(store), serve_root=str(root))
    assert first["changed"] and first["previous"] == "red_dominant-v1-old"
    assert pointer.read_pointer(root, "red_dominant") == VERSION
    assert (pointer.version_dir(root, "red_dominant", VERSION) / "manifest.json").is_file()
    again = deploy.run(index=str(index), gate=str(gate), approval_store=str(store), serve_root=str(root))
    assert again["changed"] is False and pointer.read_pointer(root, "red_dominant") == VERSION


def make_deployment(fake, name, version, replicas=2):
    apps = client.AppsV1Api(fake.api_client())
    body = client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1DeploymentSpec(
            replicas=replicas, selector=client.V1LabelSelector(match_labels={"app": name}),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels={"app": name}, annotations={"index.silverset.dev/red_dominant": version}),
                spec=client.V1PodSpec(containers=[client.V1Container(name="server", image="silverset-index-server")]))))
    apps.create_namespaced_deployment("silverset", body)


def annotation(fake, name):
    return fake.objects[("Deployment", "silverset", name)]["spec"]["template"]["metadata"]["annotations"]["index.silverset.dev/red_dominant"]


def test_kubernetes_canary_then_stable_then_configmap(release):
    index, gate, store, service = release
    service.approve(DIGEST, user="alice@silverset.dev", reason="ok")
    with FakeKubeApi() as fake:
        fake.ready_after_reads = 2  # readiness is waited for, not assumed
        make_deployment(fake, "silverset-index", "red_dominant-v1-old")
        make_deployment(fake, "silverset-index-canary", "red_dominant-v1-old", replicas=1)
        fake.writes.clear()
        kwargs = dict(index=str(index), gate=str(gate), approval_store=str(store), target="kubernetes", namespace="silverset",
                      timeout_s=5, poll_s=0.02, api_client=fake.api_client())
        result = deploy.run(**kwargs)
        assert result["changed"] and result["canary"] and result["previous"] == "red_dominant-v1-old"
        assert fake.writes == [("replace", "Deployment", "silverset-index-canary"), ("replace", "Deployment", "silverset-index"),
                               ("create", "ConfigMap", "silverset-index-red-dominant")]
        assert annotation(fake, "silverset-index") == VERSION
        cm = fake.objects[("ConfigMap", "silverset", "silverset-index-red-dominant")]["data"]
        assert cm["version"] == VERSION and cm["previous"] == "red_dominant-v1-old"
        fake.writes.clear()
        assert deploy.run(**kwargs)["changed"] is False and fake.writes == []


def test_kubernetes_rollback_when_canary_never_gets_ready(release):
    index, gate, store, service = release
    service.approve(DIGEST, user="alice@silverset.dev", reason="ok")
    with FakeKubeApi() as fake:
        fake.unready_values = {VERSION}
        make_deployment(fake, "silverset-index", "red_dominant-v1-old")
        make_deployment(fake, "silverset-index-canary", "red_dominant-v1-old", replicas=1)
        with pytest.raises(GateFailed, match="rolled back"):
            deploy.run(index=str(index), gate=str(gate), approval_store=str(store), target="kubernetes", namespace="silverset",
                       timeout_s=0.5, poll_s=0.02, api_client=fake.api_client())
        assert annotation(fake, "silverset-index-canary") == "red_dominant-v1-old"
        assert annotation(fake, "silverset-index") == "red_dominant-v1-old"
        assert ("ConfigMap", "silverset", "silverset-index-red-dominant") not in fake.objects


def test_a_conflicting_write_is_retried_from_a_fresh_read_and_other_errors_are_not():
    from kubernetes.client.exceptions import ApiException

    from silverset.components.deploy.kube import _retry_on_conflict

    writes = []

    def attempt():  # someone else wins the first two writes (stale resourceVersion -> 409)
        writes.append(len(writes))
        if len(writes) <= 2:
            raise ApiException(status=409, reason="Conflict")

    _retry_on_conflict(attempt, what="deployment x")
    assert writes == [0, 1, 2]

    def always_conflicts():
        raise ApiException(status=409, reason="Conflict")

    with pytest.raises(RuntimeError, match="kept changing"):
        _retry_on_conflict(always_conflicts, what="deployment x", tries=3)

    def forbidden():
        raise ApiException(status=403, reason="Forbidden")

    with pytest.raises(ApiException):
        _retry_on_conflict(forbidden, what="deployment x")
