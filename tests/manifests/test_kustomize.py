"""Every overlay renders with `kubectl kustomize` and each object validates offline in strict mode."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from silverset.components.common import images

ROOT = Path(__file__).resolve().parents[2]
OVERLAYS = ["base", "overlays/local", "overlays/prod"]
KUBERNETES_VERSIONS = ["1.29.0", "1.33.0"]  # oldest and a recent minor that clusters running KFP 2.x use


def render(overlay: str) -> list[dict]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl is not installed (the machine image provides it)")
    out = subprocess.run([kubectl, "kustomize", str(ROOT / "manifests" / overlay)], check=True,
                         capture_output=True, text=True, timeout=60).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request) -> tuple[str, list[dict]]:
    return request.param, render(request.param)


def _one(objects: list[dict], kind: str, name: str) -> dict:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}"
    return found[0]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_object_validates_strictly(rendered, version):
    overlay, objects = rendered
    for obj in objects:
        kubernetes_validate.validate(obj, version, strict=True)


def test_everything_lives_in_the_silverset_namespace(rendered):
    _, objects = rendered
    for obj in objects:
        if obj["kind"] != "Namespace":
            assert obj["metadata"].get("namespace") == "silverset", obj["metadata"]["name"]


def test_rbac_lets_the_pipeline_approve_and_deploy_and_nothing_more(rendered):
    _, objects = rendered
    approvals = _one(objects, "Role", "silverset-approvals")["rules"]
    assert {"configmaps"} == set(approvals[0]["resources"])
    assert set(approvals[0]["verbs"]) == {"get", "list", "watch", "create", "update", "patch"}
    assert any("leases" in r["resources"] and "coordination.k8s.io" in r["apiGroups"] for r in approvals)
    deploy = _one(objects, "Role", "silverset-deploy")["rules"]
    deployments = next(r for r in deploy if "deployments" in r["resources"])
    assert set(deployments["verbs"]) == {"get", "list", "watch", "patch"}
    verbs = {v for r in approvals + deploy for v in r["verbs"]}
    assert "delete" not in verbs and "*" not in verbs
    for binding in ("silverset-approvals", "silverset-deploy"):
        subjects = _one(objects, "RoleBinding", binding)["subjects"]
        assert subjects == [{"kind": "ServiceAccount", "name": "silverset-pipeline", "namespace": "silverset"}]


def test_index_server_is_reachable_guarded_and_runs_the_image_from_images(rendered):
    overlay, objects = rendered
    deployment = _one(objects, "Deployment", "silverset-index")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == images.SERVER_IMAGE
    assert {p["path"] for p in (container["readinessProbe"]["httpGet"], container["livenessProbe"]["httpGet"])} == \
        {"/readyz", "/healthz"}
    service = _one(objects, "Service", "silverset-index")
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"][0]["targetPort"] in {p["name"] for p in container["ports"]}
    pdb = _one(objects, "PodDisruptionBudget", "silverset-index")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"]["minAvailable"] < deployment["spec"]["replicas"] or overlay == "overlays/local"
    policy = _one(objects, "NetworkPolicy", "silverset-index")
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    config = _one(objects, "ConfigMap", "silverset-index-server")
    assert config["data"]["SILVERSET_SERVING_ROOT"].startswith("/data")


def test_gemini_key_is_a_reference_never_a_value(rendered):
    _, objects = rendered
    secret = _one(objects, "Secret", "silverset-gemini")
    assert not secret.get("data") and not secret.get("stringData")


def test_prod_runs_more_replicas_than_local():
    replicas = {o: _one(render(o), "Deployment", "silverset-index")["spec"]["replicas"]
                for o in ("overlays/local", "overlays/prod")}
    assert replicas["overlays/local"] == 1 and replicas["overlays/prod"] >= 3
