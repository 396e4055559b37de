"""Deploy: refuses without gate + approval for the same digest; local pointer swap; and on Kubernetes, as
KFP's runner ServiceAccount of the kfp-standalone overlay against the RBAC-true fake API server, with a
kubelet that runs the real index server for each pod template: the index is published on the artifacts
volume, pinned canary then stable by PATCH, served by the pods, recorded; a version the pods cannot load
never gets ready and is rolled back."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from silverset.components.common.errors import GateFailed, SilversetInputError
from silverset.components.common.kube import KFP_STANDALONE
from silverset.components.deploy import deploy
from silverset.components.deploy.kube import KubernetesDeployer
from silverset.components.index import pointer
from tests.fakes.kube_api_server import FakeKubeApi, kfp_cluster
from tests.helpers.indexes import DIGEST
from tests.helpers.kubelet import IndexServerKubelet

ROOT = Path(__file__).resolve().parents[3]
STANDALONE = ROOT / "manifests" / "overlays" / "kfp-standalone"
PIN = "index.silverset.dev/red_dominant"


def test_refuses_without_approval_or_with_a_gate_for_another_digest(tmp_path, release):
    index, gate, store, service = release
    with pytest.raises(GateFailed, match="no approval"):
        deploy.run(
            index_dir=str(index), gate_result=str(gate), approval_store=str(store), serve_root=str(tmp_path / "serve")
        )
    service.approve(DIGEST, user="alice@silverset.dev", reason="ok")
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"passed": True, "candidate_digest": "sha256:" + "cd" * 32}))
    with pytest.raises(GateFailed, match="gate result is for candidate"):
        deploy.run(
            index_dir=str(index), gate_result=str(other), approval_store=str(store), serve_root=str(tmp_path / "serve")
        )
    failed = tmp_path / "failed.json"
    failed.write_text(
        json.dumps({"passed": False, "reasons": ["f1 retention 0.80 < 0.95"], "candidate_digest": DIGEST})
    )
    with pytest.raises(GateFailed, match="retention"):
        deploy.run(
            index_dir=str(index), gate_result=str(failed), approval_store=str(store), serve_root=str(tmp_path / "serve")
        )
    assert not (tmp_path / "serve").exists()


def test_local_deploy_swaps_the_pointer_and_is_idempotent(tmp_path, release):
    index, gate, store, service = release
    service.approve(DIGEST, user="bob@silverset.dev", reason="ok")
    root = tmp_path / "serve"
    pointer.write_pointer(root, "red_dominant", "red_dominant-v1-old")
    first = deploy.run(index_dir=str(index), gate_result=str(gate), approval_store=str(store), serve_root=str(root))
    version = json.loads((index / "manifest.json").read_text())["version"]
    assert first.changed and first.previous is None  # the old pointer names nothing verifiable: never PREVIOUS
    assert pointer.read_pointer(root, "red_dominant") == version
    assert (pointer.version_dir(root, "red_dominant", version) / "manifest.json").is_file()
    again = deploy.run(index_dir=str(index), gate_result=str(gate), approval_store=str(store), serve_root=str(root))
    assert again.changed is False and pointer.read_pointer(root, "red_dominant") == version


@pytest.fixture
def cluster(tmp_path):
    """kfp-standalone installed on a fake cluster with Kubeflow's RBAC, a canary beside the stable index
    server, and the real index server as kubelet; yields (fake, kubelet, runner client, host folder of the PVC)."""
    with kfp_cluster(STANDALONE) as fake:
        stable = fake.objects[("Deployment", "kubeflow", "silverset-index")]
        canary = json.loads(json.dumps(stable))
        canary["metadata"] = {"name": "silverset-index-canary", "namespace": "kubeflow"}
        canary["spec"]["replicas"] = 1
        fake.load_objects([canary])
        kubelet = IndexServerKubelet(fake, tmp_path / "pvc")
        fake.pod_ready = kubelet
        runner = fake.client_for_service_account(KFP_STANDALONE.pod_namespace, KFP_STANDALONE.runner_service_account)
        yield fake, kubelet, runner, tmp_path / "pvc"


def pin(fake, name):
    return (
        fake.objects[("Deployment", "kubeflow", name)]["spec"]["template"]["metadata"].get("annotations") or {}
    ).get(PIN)


def deployment_writes(fake):
    return [
        (verb, name)
        for user, verb, resource, _, name, code in fake.audit_log
        if resource == "deployments" and verb not in ("get", "list", "watch") and code < 300
    ]


def deployer(runner, **kwargs):
    return KubernetesDeployer(
        KFP_STANDALONE.pod_namespace, api_client=runner, timeout_s=kwargs.pop("timeout_s", 30), poll_s=0.02, **kwargs
    )


def test_the_index_reaches_the_pods_canary_first_and_deploying_again_changes_nothing(cluster, built):
    fake, kubelet, runner, pvc = cluster
    (first, v1), (second, v2) = built
    result = deployer(runner).deploy(
        attribute="red_dominant", version=v1, index_dir=first, serve_root=str(pvc / "serving")
    )
    assert result.changed and result.canary and result.previous is None
    assert (
        pointer.version_dir(pvc / "serving", "red_dominant", v1) / "manifest.json"
    ).is_file()  # published on the PVC
    assert deployment_writes(fake) == [("patch", "silverset-index-canary"), ("patch", "silverset-index")]  # PATCH only
    assert pin(fake, "silverset-index") == v1 and pin(fake, "silverset-index-canary") == v1
    served = [body for key, body in kubelet.readiness.items() if "'silverset-index'" in key and v1 in key]
    assert served and served[-1]["live"] == {"red_dominant": v1}  # the pods' real /readyz: v1 loaded and self-checked
    record = fake.objects[("ConfigMap", "kubeflow", "silverset-index-red-dominant")]["data"]
    assert record["version"] == v1 and record["previous"] == "" and record["index_uri"].endswith(f"versions/{v1}")

    again = deployer(runner).deploy(
        attribute="red_dominant", version=v1, index_dir=first, serve_root=str(pvc / "serving")
    )
    assert again.changed is False and len(deployment_writes(fake)) == 2

    result = deployer(runner).deploy(
        attribute="red_dominant", version=v2, index_dir=second, serve_root=str(pvc / "serving")
    )
    assert result.previous == v1 and pin(fake, "silverset-index") == v2
    record = fake.objects[("ConfigMap", "kubeflow", "silverset-index-red-dominant")]["data"]
    assert record["version"] == v2 and record["previous"] == v1


def test_an_index_the_pods_cannot_load_never_gets_ready_and_is_rolled_back(cluster, built, tmp_path):
    fake, kubelet, runner, pvc = cluster
    (first, v1), (second, v2) = built
    deployer(runner).deploy(attribute="red_dominant", version=v1, index_dir=first, serve_root=str(pvc / "serving"))
    broken = tmp_path / "broken"
    shutil.copytree(second, broken)
    largest = max(
        (p for p in broken.rglob("*") if p.is_file() and p.name != "manifest.json"), key=lambda p: p.stat().st_size
    )
    data = bytearray(largest.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte: the manifest's digest no longer matches
    largest.write_bytes(bytes(data))
    with pytest.raises(GateFailed, match=f"silverset-index-canary did not become ready with {v2}.*rolled back to {v1}"):
        deployer(runner, timeout_s=1).deploy(
            attribute="red_dominant", version=v2, index_dir=broken, serve_root=str(pvc / "serving")
        )
    assert (
        pin(fake, "silverset-index-canary") == v1 and pin(fake, "silverset-index") == v1
    )  # the stable one never saw v2
    refused = [body for key, body in kubelet.readiness.items() if v2 in key]
    assert refused and all(body["live"] == {} and "refused" in body["reason"] for body in refused)
    assert fake.objects[("ConfigMap", "kubeflow", "silverset-index-red-dominant")]["data"]["version"] == v1


def test_silverset_roles_alone_allow_patch_but_refuse_replace(built, tmp_path):
    """A runner without Kubeflow's broad grants (here only Silverset's Role binds it) can still deploy, because
    deploy only PATCHes; the pre-fix deploy's replace (verb update) is refused."""
    (first, v1), _ = built
    with FakeKubeApi(namespaces=("kubeflow",)) as fake:
        fake.load_objects(
            [
                {
                    "apiVersion": "v1",
                    "kind": "ServiceAccount",
                    "metadata": {"name": "pipeline-runner", "namespace": "kubeflow"},
                }
            ]
        )
        fake.apply_overlay(STANDALONE)
        runner = fake.client_for_service_account("kubeflow", "pipeline-runner")
        apps = client.AppsV1Api(runner)
        current = apps.read_namespaced_deployment("silverset-index", "kubeflow")
        current.spec.template.metadata.annotations = {PIN: v1}
        with pytest.raises(ApiException) as refused:
            apps.replace_namespaced_deployment("silverset-index", "kubeflow", current)
        assert refused.value.status == 403
        assert 'cannot update resource "deployments" in API group "apps"' in json.loads(refused.value.body)["message"]
        result = deployer(runner).deploy(
            attribute="red_dominant", version=v1, index_dir=first, serve_root=str(tmp_path / "serving")
        )
        assert result.changed and pin(fake, "silverset-index") == v1


def test_kubernetes_deploy_needs_a_serving_root_and_an_installed_index_server(built, tmp_path):
    (first, v1), _ = built
    with FakeKubeApi(namespaces=("kubeflow",)) as fake:
        with pytest.raises(SilversetInputError, match="--serve-root"):
            deployer(fake.admin_client()).deploy(attribute="red_dominant", version=v1, index_dir=first, serve_root=None)
        with pytest.raises(GateFailed, match="kubeflow/silverset-index does not exist; apply manifests/overlays"):
            deployer(fake.admin_client()).deploy(
                attribute="red_dominant", version=v1, index_dir=first, serve_root=str(tmp_path)
            )
