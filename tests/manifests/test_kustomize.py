"""Every overlay renders with `kubectl kustomize`, validates offline in strict mode, and -- loaded into the
RBAC-true fake API server beside Kubeflow's own RBAC -- lets each identity do exactly its job: the runner
ServiceAccount deploys, takes the run lock and files approval requests but cannot decide one; approvers
write only the audit; nobody else gets in. Dropping a verb the code needs from the manifests is a 403."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from silverset.components.common import images
from silverset.components.common.kube import CONTROL_NAMESPACE, LAYOUTS
from tests.fakes.kube_api_server import KUBEFLOW_RBAC, FakeKubeApi

ROOT = Path(__file__).resolve().parents[2]
OVERLAYS = ["overlays/kfp-standalone", "overlays/kfp-multi-user", "overlays/local", "overlays/prod"]
KUBERNETES_VERSIONS = ["1.29.0", "1.33.0"]  # oldest and a recent minor that clusters running KFP 2.x use
CONTROL_OBJECTS = {
    ("Namespace", "silverset-control"),
    ("Role", "silverset-pipeline-steps"),
    ("RoleBinding", "silverset-pipeline-steps"),
    ("Role", "silverset-approver"),
    ("RoleBinding", "silverset-approver"),
    ("ConfigMap", "silverset-approvals-audit"),
}
APPROVERS_GROUP = "silverset-approvers"


def render(overlay: str) -> list[dict]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl is not installed (the machine image provides it)")
    out = subprocess.run(
        [kubectl, "kustomize", str(ROOT / "manifests" / overlay)],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def layout(overlay: str):
    return LAYOUTS[overlay.rsplit("/", 1)[-1]]


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


def test_objects_live_where_kfp_runs_the_pods_or_in_the_control_namespace(rendered):
    overlay, objects = rendered
    pod_namespace = layout(overlay).pod_namespace
    for obj in objects:
        key = (obj["kind"], obj["metadata"]["name"])
        if obj["kind"] == "Namespace":
            assert key == ("Namespace", CONTROL_NAMESPACE)  # the pod namespace belongs to KFP or the Profile
        elif key in CONTROL_OBJECTS:
            assert obj["metadata"]["namespace"] == CONTROL_NAMESPACE, key
        else:
            assert obj["metadata"].get("namespace") == pod_namespace, key
    pvc = _one(objects, "PersistentVolumeClaim", "silverset-artifacts")
    assert pvc["metadata"]["namespace"] == pod_namespace  # every step mounts it, so it must sit beside the step pods


def test_roles_are_bound_to_the_service_account_kfp_runs_steps_as(rendered):
    overlay, objects = rendered
    runner = layout(overlay)
    for name in ("silverset-deploy", "silverset-pipeline-steps"):
        subjects = _one(objects, "RoleBinding", name)["subjects"]
        assert subjects == [
            {"kind": "ServiceAccount", "name": runner.runner_service_account, "namespace": runner.pod_namespace}
        ]
    assert _one(objects, "RoleBinding", "silverset-approver")["subjects"] == [
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": APPROVERS_GROUP}
    ]
    rules = [
        (rule, o["metadata"]["name"]) for o in objects if o["kind"] in ("Role", "ClusterRole") for rule in o["rules"]
    ]
    assert not [o for o in objects if o["kind"] in ("ClusterRole", "ClusterRoleBinding")]  # nothing cluster-wide
    for rule, role in rules:
        assert not set(rule["verbs"]) & {"*", "deletecollection", "escalate", "bind", "impersonate"}, role
        assert "*" not in rule["resources"] and "*" not in rule["apiGroups"], role
        assert "delete" not in rule["verbs"] or rule["resources"] == ["leases"], (
            role
        )  # only the run lock is ever deleted
    deploy = _one(objects, "Role", "silverset-deploy")["rules"]
    assert set(next(r for r in deploy if "deployments" in r["resources"])["verbs"]) == {"get", "list", "watch", "patch"}
    assert not any("delete" in r["verbs"] for r in deploy)


def test_the_base_alone_binds_nobody():
    objects = render("base")
    assert all(
        not o.get("subjects")
        for o in objects
        if o["kind"] == "RoleBinding" and o["metadata"]["name"] != "silverset-approver"
    )


def test_no_secret_is_shipped_and_the_gemini_key_command_is_documented(rendered):
    _, objects = rendered
    assert not [
        o for o in objects if o["kind"] == "Secret"
    ]  # a shipped Secret collides with, and prunes, the user's key
    comment = (ROOT / "manifests" / "base" / "kustomization.yaml").read_text()
    assert "create secret generic silverset-gemini --from-literal=api-key=" in comment


def test_index_server_is_reachable_guarded_and_runs_the_image_from_images(rendered):
    overlay, objects = rendered
    deployment = _one(objects, "Deployment", "silverset-index")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == images.SERVER_IMAGE
    # A mutable tag is pulled again on every start (kind/minikube load images into the node instead).
    assert container["imagePullPolicy"] == ("Never" if overlay == "overlays/local" else "Always")
    assert {p["path"] for p in (container["readinessProbe"]["httpGet"], container["livenessProbe"]["httpGet"])} == {
        "/readyz",
        "/healthz",
    }
    assert pod["securityContext"]["runAsUser"] == 10001 and pod["securityContext"]["fsGroup"] == 10001
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


def test_prod_runs_more_replicas_than_local():
    replicas = {
        o: _one(render(o), "Deployment", "silverset-index")["spec"]["replicas"]
        for o in ("overlays/local", "overlays/prod")
    }
    assert replicas["overlays/local"] == 1 and replicas["overlays/prod"] >= 3


# -- the identities at work, against the RBAC-true fake -------------------------------------------------
def cluster(objects: list[dict]) -> FakeKubeApi:
    """A fake cluster with Kubeflow installed (both layouts' RBAC) and ``objects`` applied by an admin."""
    fake = FakeKubeApi(namespaces=())
    fake.load_yaml(KUBEFLOW_RBAC)
    fake.load_objects(objects)
    return fake


def status_of(call) -> int:
    """200 when the call succeeds, else the HTTP status the API server refused it with."""
    try:
        call()
    except ApiException as exc:
        return exc.status
    return 200


def configmap(name, **data):
    return client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name), data=data)


def lease(name, holder, resource_version=None):
    return client.V1Lease(
        metadata=client.V1ObjectMeta(name=name, resource_version=resource_version),
        spec=client.V1LeaseSpec(holder_identity=holder, lease_duration_seconds=60),
    )


def step_calls(fake: FakeKubeApi, pod_namespace: str, runner_client) -> dict[str, int]:
    """The Kubernetes calls pipeline steps make, as the runner: name -> HTTP status."""
    apps, core = client.AppsV1Api(runner_client), client.CoreV1Api(runner_client)
    leases = client.CoordinationV1Api(runner_client)
    pin = {"spec": {"template": {"metadata": {"annotations": {"index.silverset.dev/red_dominant": "v2"}}}}}
    calls = {
        "deploy: read the index server": lambda: apps.read_namespaced_deployment("silverset-index", pod_namespace),
        "deploy: patch the pod-template pin": lambda: apps.patch_namespaced_deployment(
            "silverset-index", pod_namespace, pin
        ),
        "deploy: create the version record": lambda: core.create_namespaced_config_map(
            pod_namespace, configmap("silverset-index-red-dominant", version="v2")
        ),
        "deploy: patch the version record": lambda: core.patch_namespaced_config_map(
            "silverset-index-red-dominant", pod_namespace, {"data": {"version": "v3"}}
        ),
        "approval: file a request": lambda: core.create_namespaced_config_map(
            CONTROL_NAMESPACE, configmap("silverset-approval-abc", state="pending")
        ),
        "approval: read requests": lambda: core.list_namespaced_config_map(CONTROL_NAMESPACE),
        "lock: take": lambda: leases.create_namespaced_lease(CONTROL_NAMESPACE, lease("silverset-run-lock", "run-1")),
    }
    results = {name: status_of(call) for name, call in calls.items()}
    taken = (
        leases.read_namespaced_lease("silverset-run-lock", CONTROL_NAMESPACE) if results["lock: take"] == 200 else None
    )
    if taken is not None:
        renewed = lease("silverset-run-lock", "run-1", taken.metadata.resource_version)
        renewed.spec.lease_duration_seconds = 120
        results["lock: renew"] = status_of(
            lambda: leases.replace_namespaced_lease("silverset-run-lock", CONTROL_NAMESPACE, renewed)
        )
        results["lock: release"] = status_of(
            lambda: leases.delete_namespaced_lease("silverset-run-lock", CONTROL_NAMESPACE)
        )
    return results


@pytest.mark.parametrize("overlay", ["overlays/kfp-standalone", "overlays/kfp-multi-user"])
def test_the_runner_deploys_locks_and_files_requests_but_cannot_decide_one(overlay):
    runner = layout(overlay)
    with cluster(render(overlay)) as fake:
        runner_client = fake.client_for_service_account(runner.pod_namespace, runner.runner_service_account)
        results = step_calls(fake, runner.pod_namespace, runner_client)
        assert set(results.values()) == {200}, results
        assert set(results) >= {"lock: renew", "lock: release"}
        core = client.CoreV1Api(runner_client)
        request = core.read_namespaced_config_map("silverset-approval-abc", CONTROL_NAMESPACE)
        request.data = {"state": "approved"}
        assert (
            status_of(lambda: core.replace_namespaced_config_map("silverset-approval-abc", CONTROL_NAMESPACE, request))
            == 403
        )
        assert (
            status_of(
                lambda: core.patch_namespaced_config_map(
                    "silverset-approvals-audit", CONTROL_NAMESPACE, {"data": {"1": "x"}}
                )
            )
            == 403
        )
        assert status_of(lambda: core.delete_namespaced_config_map("silverset-approval-abc", CONTROL_NAMESPACE)) == 403
        assert fake.objects[("ConfigMap", CONTROL_NAMESPACE, "silverset-approval-abc")]["data"] == {"state": "pending"}


@pytest.mark.parametrize("overlay", ["overlays/kfp-standalone", "overlays/kfp-multi-user"])
def test_approvers_write_only_the_audit_and_strangers_see_nothing(overlay):
    with cluster(render(overlay)) as fake:
        admin = client.CoreV1Api(fake.admin_client())
        admin.create_namespaced_config_map(CONTROL_NAMESPACE, configmap("silverset-approval-abc", state="pending"))
        alice_client = fake.client_for_user("alice@example.com", groups=[APPROVERS_GROUP])
        me = (
            client.AuthenticationV1Api(alice_client)
            .create_self_subject_review(client.V1SelfSubjectReview())
            .status.user_info
        )
        assert me.username == "alice@example.com"
        alice = client.CoreV1Api(alice_client)
        assert status_of(lambda: alice.list_namespaced_config_map(CONTROL_NAMESPACE)) == 200
        assert (
            status_of(
                lambda: alice.patch_namespaced_config_map(
                    "silverset-approvals-audit", CONTROL_NAMESPACE, {"data": {"1": "entry"}}
                )
            )
            == 200
        )
        assert (
            status_of(
                lambda: alice.patch_namespaced_config_map(
                    "silverset-approval-abc", CONTROL_NAMESPACE, {"data": {"state": "approved"}}
                )
            )
            == 403
        )
        assert (
            status_of(
                lambda: alice.create_namespaced_config_map(CONTROL_NAMESPACE, configmap("silverset-approval-forged"))
            )
            == 403
        )
        mallory = client.CoreV1Api(fake.client_for_user("mallory@example.com", groups=["developers"]))
        assert status_of(lambda: mallory.list_namespaced_config_map(CONTROL_NAMESPACE)) == 403
        pod_namespace = layout(overlay).pod_namespace
        server = client.CoreV1Api(fake.client_for_service_account(pod_namespace, "silverset-index-server"))
        assert (
            status_of(lambda: server.list_namespaced_config_map(pod_namespace)) == 403
        )  # the server needs no API access


def without_verb(objects: list[dict], role: str, resource: str, verb: str) -> list[dict]:
    """The rendered objects with ``verb`` dropped from every rule of Role ``role`` that covers ``resource``."""
    objects = json.loads(json.dumps(objects))
    for obj in objects:
        if obj["kind"] == "Role" and obj["metadata"]["name"] == role:
            for rule in obj["rules"]:
                if resource in rule["resources"] and verb in rule["verbs"]:
                    rule["verbs"].remove(verb)
    return objects


# (role, resource, verb dropped, the step call that must then be refused). In the pod namespace Kubeflow's own
# roles already grant some of Silverset's verbs (pipeline-runner: deployments '*'; kubeflow-edit: configmaps
# and deployments writes), so only verbs that Kubeflow does not also grant there can be shown missing.
REMOVALS = {
    "overlays/kfp-standalone": [
        ("silverset-deploy", "configmaps", "create", "deploy: create the version record"),
        ("silverset-deploy", "configmaps", "patch", "deploy: patch the version record"),
        ("silverset-pipeline-steps", "configmaps", "create", "approval: file a request"),
        ("silverset-pipeline-steps", "configmaps", "list", "approval: read requests"),
        ("silverset-pipeline-steps", "leases", "create", "lock: take"),
    ],
    "overlays/kfp-multi-user": [
        ("silverset-pipeline-steps", "configmaps", "create", "approval: file a request"),
        ("silverset-pipeline-steps", "leases", "create", "lock: take"),
    ],
}


@pytest.mark.parametrize(
    "overlay,removal",
    [(o, r) for o, rs in REMOVALS.items() for r in rs],
    ids=lambda v: v if isinstance(v, str) else f"{v[0]}-{v[2]}-{v[1]}",
)
def test_dropping_a_needed_verb_from_the_manifests_is_a_403(overlay, removal):
    role, resource, verb, call = removal
    runner = layout(overlay)
    with cluster(without_verb(render(overlay), role, resource, verb)) as fake:
        runner_client = fake.client_for_service_account(runner.pod_namespace, runner.runner_service_account)
        results = step_calls(fake, runner.pod_namespace, runner_client)
        assert results[call] == 403, results
        refused = [entry for entry in fake.audit_log if entry[-1] == 403]
        assert refused and all(entry[0] == runner.runner_username for entry in refused)


def test_dropping_the_lease_update_verb_stops_the_lock_renewal():
    overlay = "overlays/kfp-standalone"
    runner = layout(overlay)
    with cluster(without_verb(render(overlay), "silverset-pipeline-steps", "leases", "update")) as fake:
        results = step_calls(
            fake,
            runner.pod_namespace,
            fake.client_for_service_account(runner.pod_namespace, runner.runner_service_account),
        )
        assert results["lock: take"] == 200 and results["lock: renew"] == 403


def render_with_experiment(overlay: str, tmp_path: Path) -> list[dict]:
    """``overlay`` plus components/experiment, as a user's own overlay would list it."""
    import os

    tmp_path.mkdir(parents=True, exist_ok=True)
    manifests = os.path.relpath(ROOT / "manifests", tmp_path)
    (tmp_path / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        f"resources:\n  - {manifests}/{overlay}\ncomponents:\n  - {manifests}/components/experiment\n"
    )
    out = subprocess.run(
        [shutil.which("kubectl") or "kubectl", "kustomize", str(tmp_path)],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def test_no_overlay_starts_the_server_with_an_experiment_it_may_not_have(rendered):
    _, objects = rendered
    config = _one(objects, "ConfigMap", "silverset-index-server")["data"]
    assert "SILVERSET_EXPERIMENT" not in config and "SILVERSET_EXPOSURE_LOG" not in config


@pytest.mark.parametrize("overlay", ["overlays/kfp-standalone", "overlays/local"])
def test_the_experiment_component_serves_the_pipelines_experiment_and_logs_to_the_pvc(overlay, tmp_path):
    from posixpath import dirname, join, relpath

    from silverset.components.abtest.component import create_experiment
    from silverset.components.abtest.experiment import load_experiment
    from silverset.components.common.spec import example_specs_dir

    objects = render_with_experiment(overlay, tmp_path / "overlay")
    for obj in objects:
        kubernetes_validate.validate(obj, KUBERNETES_VERSIONS[-1], strict=True)
    config = _one(objects, "ConfigMap", "silverset-index-server")["data"]
    pod = _one(objects, "Deployment", "silverset-index")["spec"]["template"]["spec"]
    mounts = {m["mountPath"]: m for m in pod["containers"][0]["volumeMounts"]}
    assert mounts["/data"]["readOnly"] is True  # the index and the experiment file stay read-only
    # The pipeline's experiment step (experiment_dir "" -> beside the serving root) writes the file the server reads.
    pvc = tmp_path / "pvc"
    serving_on_pvc = pvc / relpath(config["SILVERSET_SERVING_ROOT"], "/data")
    made = create_experiment.python_func(
        attribute_spec=str(example_specs_dir() / "red_dominant.yaml"),
        serve_root=str(serving_on_pvc),
        treatment_share=0.3,
    )
    assert made.experiment_path == str(pvc / relpath(config["SILVERSET_EXPERIMENT"], "/data"))
    assert load_experiment(made.experiment_path).treatment_share == 0.3
    # The exposure log is a writable mount of the same PVC, beside the experiment file, made writable by the Job.
    log = mounts[config["SILVERSET_EXPOSURE_LOG"]]
    assert not log.get("readOnly") and log["name"] == mounts["/data"]["name"]
    on_pvc = join("/data", log["subPath"])
    assert dirname(on_pvc) == dirname(config["SILVERSET_EXPERIMENT"])
    volume = next(v for v in pod["volumes"] if v["name"] == log["name"])
    assert volume["persistentVolumeClaim"]["claimName"] == "silverset-artifacts"
    assert not volume["persistentVolumeClaim"].get("readOnly")
    init = _one(objects, "Job", "silverset-artifacts-init")["spec"]["template"]["spec"]["containers"][0]
    script = " ".join(init["command"])
    assert "mkdir -p" in script and on_pvc in script and "chown 10001:10001" in script
