"""A cluster rehearsal, offline: the stand-in for `kubectl apply -k manifests/overlays/<overlay>` plus one run.

For every overlay: render it onto an RBAC-true fake API server that already holds what a KFP install leaves
(Kubeflow's own RBAC for the runner), compile the pipeline, and check every step pod as KFP would create it:
its ServiceAccount exists in its namespace, every Secret and PVC it mounts exists or is optional, its image
is one of Silverset's with every module its code imports; then run the steps' own code that talks to the
Kubernetes API (run lock, approval request and wait, deploy onto index-server pods that run the real server,
lock release) as the runner's identity, with a person from the spec deciding as themselves, and require
that no call of the run was refused.
"""

from __future__ import annotations

import ast
import json
import threading
import time
from pathlib import Path

import pytest
import yaml

from silverset.components.common import kube
from silverset.components.common.images import REPOSITORIES
from silverset.components.common.kube import CONTROL_STORE_URI, LAYOUTS
from silverset.components.common.spec import load_spec
from silverset.pipelines.compile import compile_pipeline
from tests.fakes.kube_api_server import kfp_cluster
from tests.helpers.indexes import build_tiny_index, tiny_index_spec
from tests.helpers.kubelet import IndexServerKubelet

ROOT = Path(__file__).resolve().parents[2]
OVERLAYS = sorted(LAYOUTS)
PIN = "index.silverset.dev/red_dominant"


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    path = compile_pipeline(tmp_path_factory.mktemp("pkg") / "pipeline.yaml")
    spec, platform = list(yaml.safe_load_all(path.read_text()))
    return spec, platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """A real index of red_dominant, the spec it was gated with, and a passing gate.json for its model digest."""
    tmp = tmp_path_factory.mktemp("release")
    spec_path = tiny_index_spec(tmp)
    index, _, _, summary = build_tiny_index(tmp / "built", spec_path)
    manifest = json.loads((index / "manifest.json").read_text())
    gate_dir = tmp / "student_gate"
    gate_dir.mkdir()
    (gate_dir / "gate.json").write_text(
        json.dumps(
            {
                "passed": True,
                "reasons": [],
                "metrics": {},
                "candidate_digest": manifest["model_digest"],
                "spec_content_hash": load_spec(spec_path).content_hash,
            }
        )
    )
    return spec_path, index, gate_dir, summary.version


def _imports(source: str) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            modules.add(node.module)
    return modules


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_step_pod_can_start_where_the_overlay_puts_it(overlay, package):
    import importlib.util

    spec, executors = package
    layout = LAYOUTS[overlay]
    with kfp_cluster(ROOT / "manifests" / "overlays" / overlay) as fake:
        ns = layout.pod_namespace
        assert ("ServiceAccount", ns, layout.runner_service_account) in fake.objects
        for name, config in executors.items():
            for mount in config.get("pvcMount", []):
                assert ("PersistentVolumeClaim", ns, mount["constant"]) in fake.objects, (name, mount)
            for secret in config.get("secretAsEnv", []) + config.get("secretAsVolume", []):
                # No Secret ships with the manifests: a step may only reference one it can start without.
                assert secret.get("optional") is True or ("Secret", ns, secret["secretName"]) in fake.objects, name
        # An image pull secret that does not exist only matters for a private registry (the pod still starts
        # from a public one); the manifests document creating it.
        for name, executor in spec["deploymentSpec"]["executors"].items():
            container = executor["container"]
            repository = container["image"].rsplit("/", 1)[-1].split(":")[0].split("@")[0]
            assert repository in (REPOSITORIES["cpu"], REPOSITORIES["gpu"]), (name, container["image"])
            source = container["command"][-1]
            for module in sorted(m for m in _imports(source) if m.split(".")[0] in ("silverset", "kfp")):
                # This venv is the CPU image's install (tests/images builds it from images/cpu's own lines).
                assert importlib.util.find_spec(module) is not None, (name, module)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_one_run_of_the_steps_kubernetes_calls_succeeds_as_the_runner(overlay, release, tmp_path, monkeypatch):
    from silverset.components.approval.component import approval_gate
    from silverset.components.approval.kube_store import KubernetesApprovalStore
    from silverset.components.approval.policy import ApprovalService
    from silverset.components.common.run_lock import open_run_lock
    from silverset.components.common.step import renewing
    from silverset.components.deploy.component import deploy_index

    spec_path, index, gate_dir, version = release
    layout = LAYOUTS[overlay]
    with kfp_cluster(ROOT / "manifests" / "overlays" / overlay) as fake:
        fake.pod_ready = IndexServerKubelet(fake, tmp_path / "pvc")
        runner = fake.client_for_service_account(layout.pod_namespace, layout.runner_service_account)
        # Inside a step pod: in-cluster credentials are the runner's, the pod namespace comes from its token mount.
        monkeypatch.setattr(kube, "load_api_client", lambda: runner)
        namespace_file = tmp_path / "namespace"
        namespace_file.write_text(layout.pod_namespace)
        monkeypatch.setattr(kube, "SERVICE_ACCOUNT_NAMESPACE_FILE", namespace_file)
        run = {
            "run_lock": CONTROL_STORE_URI,
            "state_dir": "/data/red_dominant/state",
            "run_id": "attribute-promotion-x1",
        }

        with renewing(**run):  # the plan step takes the lock; every later step re-takes and renews it
            pass
        outcome: dict = {}
        step = threading.Thread(
            target=lambda: outcome.update(
                decision=approval_gate.python_func(
                    gate_result=str(gate_dir),
                    attribute_spec=str(spec_path),
                    approval_store=CONTROL_STORE_URI,
                    submitter="silverset-pipeline",
                    run_dir=str(tmp_path / "run"),
                    **run,
                )
            )
        )
        step.start()
        approver = fake.client_for_user(load_spec(spec_path).approvers[0], groups=("silverset-approvers",))
        people = ApprovalService(KubernetesApprovalStore("silverset-control", api_client=approver))
        digest = json.loads((gate_dir / "gate.json").read_text())["candidate_digest"]
        deadline = time.monotonic() + 60
        while people.store.load(digest) is None and time.monotonic() < deadline:
            time.sleep(0.1)
        people.approve(digest, reason="rehearsal: report reviewed")
        step.join(timeout=120)
        assert outcome.get("decision") == "approved"

        deployed = json.loads(
            deploy_index.python_func(
                index_dir=str(index),
                gate_result=str(gate_dir),
                approval_store=CONTROL_STORE_URI,
                run_dir=str(tmp_path / "run"),
                target="kubernetes",
                serve_root=str(tmp_path / "pvc" / "serving"),
                **run,
            )
        )
        assert deployed["changed"] and deployed["version"] == version
        stable = fake.objects[("Deployment", layout.pod_namespace, "silverset-index")]
        assert stable["spec"]["template"]["metadata"]["annotations"][PIN] == version
        assert open_run_lock(CONTROL_STORE_URI, key=run["state_dir"], api_client=runner).release(run["run_id"])

        runner_calls = [entry for entry in fake.audit_log if entry[0] == layout.runner_username]
        refused = [entry for entry in runner_calls if entry[5] >= 400 and entry[5] not in (404, 409)]
        assert runner_calls and not refused, refused
        wrote = {(verb, resource) for _, verb, resource, _, _, code in runner_calls if code < 300}
        assert ("patch", "deployments") in wrote and ("create", "leases") in wrote and ("create", "configmaps") in wrote
        assert not any(
            name == "silverset-approvals-audit" and verb not in ("get", "list", "watch")
            for _, verb, _, _, name, _ in runner_calls
        )  # the run never touched the decisions
