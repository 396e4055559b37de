"""The fake Kubernetes API refuses what a real API server refuses: 401 without a valid token, 403 with the
real Status body where RBAC grants nothing (resourceNames, namespaces, bindings), 409 on a stale
resourceVersion, 422 for a Lease update without one; and it applies patches as the real server does."""

from __future__ import annotations

import json

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.fakes.kube_api_server import FakeKubeApi

RBAC = "rbac.authorization.k8s.io/v1"


def role(name, namespace, *rules, kind="Role"):
    meta = {"name": name} | ({"namespace": namespace} if namespace else {})
    return {"apiVersion": RBAC, "kind": kind, "metadata": meta, "rules": list(rules)}


def binding(name, namespace, role_name, *subjects, role_kind="Role", kind="RoleBinding"):
    meta = {"name": name} | ({"namespace": namespace} if namespace else {})
    return {
        "apiVersion": RBAC,
        "kind": kind,
        "metadata": meta,
        "subjects": list(subjects),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role_name},
    }


def sa(namespace, name):
    return {"kind": "ServiceAccount", "name": name, "namespace": namespace}


def namespace(name):
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def service_account(namespace_name, name):
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": namespace_name}}


def configmap(name, **data):
    return client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name), data=data)


def refused(call) -> ApiException:
    with pytest.raises(ApiException) as info:
        call()
    return info.value


@pytest.fixture
def fake():
    with FakeKubeApi() as server:
        server.load_objects([namespace("control"), namespace("pods"), service_account("pods", "runner")])
        yield server


def test_a_request_without_a_valid_token_is_401_with_the_real_status(fake):
    anonymous = client.ApiClient(client.Configuration(host=fake.host))
    exc = refused(lambda: client.CoreV1Api(anonymous).list_namespaced_config_map("control"))
    assert exc.status == 401
    assert json.loads(exc.body) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "Unauthorized",
        "reason": "Unauthorized",
        "code": 401,
    }
    configuration = client.Configuration(host=fake.host)
    configuration.api_key, configuration.api_key_prefix = {"authorization": "made-up"}, {"authorization": "Bearer"}
    assert (
        refused(lambda: client.CoreV1Api(client.ApiClient(configuration)).list_namespaced_config_map("control")).status
        == 401
    )
    with pytest.raises(ValueError, match="not found"):
        fake.client_for_service_account("pods", "nobody")  # a token for a ServiceAccount that does not exist


def test_forbidden_is_403_with_the_real_body_naming_user_verb_resource_group_and_namespace(fake):
    client.CoreV1Api(fake.admin_client()).create_namespaced_config_map("control", configmap("x", a="1"))
    runner = client.CoreV1Api(fake.client_for_service_account("pods", "runner"))
    exc = refused(lambda: runner.patch_namespaced_config_map("x", "control", {"data": {"a": "2"}}))
    assert exc.status == 403
    assert json.loads(exc.body) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "reason": "Forbidden",
        "code": 403,
        "message": 'configmaps "x" is forbidden: User "system:serviceaccount:pods:runner" '
        'cannot patch resource "configmaps" in API group "" in the namespace "control"',
        "details": {"name": "x", "kind": "configmaps"},
    }
    listing = json.loads(refused(lambda: runner.list_namespaced_config_map("control")).body)["message"]
    assert listing.startswith('configmaps is forbidden: User "system:serviceaccount:pods:runner" cannot list resource')
    apps = client.AppsV1Api(fake.client_for_service_account("pods", "runner"))
    message = json.loads(refused(lambda: apps.read_namespaced_deployment("gone", "pods")).body)["message"]
    assert (
        message.startswith('deployments.apps "gone" is forbidden') and 'in API group "apps"' in message
    )  # 403 before 404
    assert ("system:serviceaccount:pods:runner", "patch", "configmaps", "control", "x", 403) in fake.audit_log


def test_resource_names_limit_a_rule_to_those_objects_and_never_allow_create(fake):
    fake.load_objects(
        [
            role(
                "audit-writer",
                "control",
                {
                    "apiGroups": [""],
                    "resources": ["configmaps"],
                    "verbs": ["get", "update", "create"],
                    "resourceNames": ["audit"],
                },
            ),
            binding(
                "audit-writer",
                "control",
                "audit-writer",
                {"kind": "Group", "name": "approvers", "apiGroup": "rbac.authorization.k8s.io"},
            ),
        ]
    )
    admin = client.CoreV1Api(fake.admin_client())
    admin.create_namespaced_config_map("control", configmap("audit"))
    admin.create_namespaced_config_map("control", configmap("request"))
    alice = client.CoreV1Api(fake.client_for_user("alice", groups=["approvers"]))
    audit = alice.read_namespaced_config_map("audit", "control")
    audit.data = {"entry": "1"}
    assert alice.replace_namespaced_config_map("audit", "control", audit).data == {"entry": "1"}
    assert refused(lambda: alice.read_namespaced_config_map("request", "control")).status == 403
    assert refused(lambda: alice.create_namespaced_config_map("control", configmap("audit2"))).status == 403
    mallory = client.CoreV1Api(fake.client_for_user("mallory", groups=["viewers"]))
    assert refused(lambda: mallory.read_namespaced_config_map("audit", "control")).status == 403


def test_a_cluster_role_bound_by_a_role_binding_grants_only_in_that_namespace_and_aggregates(fake):
    fake.load_objects(
        [
            # Kubeflow's shape: kubeflow-edit aggregates every ClusterRole labelled aggregate-to-kubeflow-edit.
            {
                "apiVersion": RBAC,
                "kind": "ClusterRole",
                "metadata": {"name": "edit"},
                "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"aggregate-to-edit": "true"}}]},
                "rules": [],
            },
            {
                "apiVersion": RBAC,
                "kind": "ClusterRole",
                "metadata": {"name": "edit-configmaps", "labels": {"aggregate-to-edit": "true"}},
                "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["*"]}],
            },
            binding("runner-edit", "pods", "edit", sa("pods", "runner"), role_kind="ClusterRole"),
        ]
    )
    runner = client.CoreV1Api(fake.client_for_service_account("pods", "runner"))
    runner.create_namespaced_config_map("pods", configmap("mine"))
    assert refused(lambda: runner.create_namespaced_config_map("control", configmap("theirs"))).status == 403
    fake.load_objects(
        [binding("everywhere", None, "edit", sa("pods", "runner"), role_kind="ClusterRole", kind="ClusterRoleBinding")]
    )
    runner.create_namespaced_config_map(
        "control", configmap("theirs")
    )  # a ClusterRoleBinding grants in every namespace


def test_a_binding_to_a_missing_role_grants_nothing_and_says_so(fake):
    fake.load_objects([binding("dangling", "control", "not-there", sa("pods", "runner"))])
    runner = client.CoreV1Api(fake.client_for_service_account("pods", "runner"))
    message = json.loads(refused(lambda: runner.list_namespaced_config_map("control")).body)["message"]
    assert message.endswith(': RBAC: role.rbac.authorization.k8s.io "not-there" not found')


def test_every_authenticated_identity_may_ask_who_it_is_and_what_it_may_do(fake):
    runner = fake.client_for_service_account("pods", "runner")
    info = client.AuthenticationV1Api(runner).create_self_subject_review(client.V1SelfSubjectReview()).status.user_info
    assert info.username == "system:serviceaccount:pods:runner"
    assert set(info.groups) == {"system:serviceaccounts", "system:serviceaccounts:pods", "system:authenticated"}
    alice = client.AuthenticationV1Api(fake.client_for_user("alice@example.com", groups=["approvers"]))
    assert alice.create_self_subject_review(client.V1SelfSubjectReview()).status.user_info.groups == [
        "approvers",
        "system:authenticated",
    ]
    fake.load_objects(
        [
            role(
                "leases",
                "control",
                {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
            ),
            binding("leases", "control", "leases", sa("pods", "runner")),
        ]
    )

    def may(verb, resource, group, ns):
        review = client.V1SelfSubjectAccessReview(
            spec=client.V1SelfSubjectAccessReviewSpec(
                resource_attributes=client.V1ResourceAttributes(verb=verb, resource=resource, group=group, namespace=ns)
            )
        )
        return client.AuthorizationV1Api(runner).create_self_subject_access_review(review).status.allowed

    assert may("create", "leases", "coordination.k8s.io", "control")
    assert not may("delete", "leases", "coordination.k8s.io", "control") and not may(
        "create", "leases", "coordination.k8s.io", "pods"
    )


def lease(name, holder, resource_version=None, duration=30):
    return client.V1Lease(
        metadata=client.V1ObjectMeta(name=name, resource_version=resource_version),
        spec=client.V1LeaseSpec(holder_identity=holder, lease_duration_seconds=duration),
    )


def test_leases_compare_and_swap_on_resource_version(fake):
    leases = client.CoordinationV1Api(fake.admin_client())
    first = leases.create_namespaced_lease("control", lease("run-lock", "run-1"))
    assert refused(lambda: leases.create_namespaced_lease("control", lease("run-lock", "run-2"))).status == 409
    mine = leases.replace_namespaced_lease(
        "run-lock", "control", lease("run-lock", "run-1", first.metadata.resource_version, duration=60)
    )
    stale = refused(
        lambda: leases.replace_namespaced_lease(
            "run-lock", "control", lease("run-lock", "run-2", first.metadata.resource_version)
        )
    )
    assert stale.status == 409 and json.loads(stale.body)["reason"] == "Conflict"
    assert "the object has been modified" in json.loads(stale.body)["message"]
    blind = refused(lambda: leases.replace_namespaced_lease("run-lock", "control", lease("run-lock", "run-2")))
    assert blind.status == 422 and "must be specified for an update" in json.loads(blind.body)["message"]
    options = client.V1DeleteOptions(
        preconditions=client.V1Preconditions(resource_version=first.metadata.resource_version)
    )
    assert refused(lambda: leases.delete_namespaced_lease("run-lock", "control", body=options)).status == 409
    assert leases.read_namespaced_lease("run-lock", "control").spec.holder_identity == "run-1"
    options = client.V1DeleteOptions(
        preconditions=client.V1Preconditions(resource_version=mine.metadata.resource_version)
    )
    leases.delete_namespaced_lease("run-lock", "control", body=options)
    assert refused(lambda: leases.read_namespaced_lease("run-lock", "control")).status == 404


def test_a_put_that_would_create_a_lease_needs_the_create_verb_too(fake):
    fake.load_objects(
        [
            role(
                "renew", "control", {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["update"]}
            ),
            binding("renew", "control", "renew", sa("pods", "runner")),
        ]
    )
    runner = client.CoordinationV1Api(fake.client_for_service_account("pods", "runner"))
    exc = refused(lambda: runner.replace_namespaced_lease("run-lock", "control", lease("run-lock", "run-1")))
    assert exc.status == 403 and "cannot create resource" in json.loads(exc.body)["message"]
    admin = client.CoordinationV1Api(fake.admin_client())
    assert (
        admin.replace_namespaced_lease("run-lock", "control", lease("run-lock", "run-1")).spec.holder_identity
        == "run-1"
    )


def deployment(name, annotations):
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1DeploymentSpec(
            replicas=2,
            selector=client.V1LabelSelector(match_labels={"app": name}),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels={"app": name}, annotations=annotations),
                spec=client.V1PodSpec(
                    containers=[
                        client.V1Container(name="server", image="img:1", env=[client.V1EnvVar(name="A", value="1")])
                    ]
                ),
            ),
        ),
    )


def test_patches_apply_as_the_python_client_sends_them_and_a_stale_one_conflicts(fake):
    apps = client.AppsV1Api(fake.admin_client())
    created = apps.create_namespaced_deployment(
        "pods", deployment("index", {"keep": "me", "index.silverset.dev/a": "v1"})
    )
    # a dict body goes as a strategic merge patch: annotations merge, containers merge by name
    patched = apps.patch_namespaced_deployment(
        "index",
        "pods",
        {
            "spec": {
                "template": {
                    "metadata": {"annotations": {"index.silverset.dev/a": "v2"}},
                    "spec": {"containers": [{"name": "server", "env": [{"name": "B", "value": "2"}]}]},
                }
            }
        },
    )
    template = patched.spec.template
    assert template.metadata.annotations == {"keep": "me", "index.silverset.dev/a": "v2"}
    assert template.spec.containers[0].image == "img:1" and [e.name for e in template.spec.containers[0].env] == [
        "A",
        "B",
    ]
    assert patched.metadata.generation == created.metadata.generation + 1
    # a list body goes as a JSON patch; a failed test operation changes nothing
    apps.patch_namespaced_deployment(
        "index", "pods", [{"op": "remove", "path": "/spec/template/metadata/annotations/keep"}]
    )
    failed = refused(
        lambda: apps.patch_namespaced_deployment(
            "index",
            "pods",
            [
                {"op": "test", "path": "/spec/replicas", "value": 5},
                {"op": "replace", "path": "/spec/replicas", "value": 1},
            ],
        )
    )
    assert failed.status == 422
    current = apps.read_namespaced_deployment("index", "pods")
    assert current.spec.replicas == 2 and current.spec.template.metadata.annotations == {"index.silverset.dev/a": "v2"}
    # a patch that carries a stale resourceVersion is refused (optimistic concurrency through PATCH)
    stale = refused(
        lambda: apps.patch_namespaced_deployment(
            "index",
            "pods",
            {"metadata": {"resourceVersion": created.metadata.resource_version}, "spec": {"replicas": 3}},
        )
    )
    assert stale.status == 409
    # a merge patch replaces lists and null deletes keys
    core = client.CoreV1Api(fake.admin_client())
    core.create_namespaced_config_map("pods", configmap("cm", a="1", b="2"))
    core.api_client.call_api(
        "/api/v1/namespaces/{ns}/configmaps/{name}",
        "PATCH",
        {"ns": "pods", "name": "cm"},
        header_params={"Content-Type": "application/merge-patch+json", "Accept": "application/json"},
        body={"data": {"a": None, "c": "3"}},
        auth_settings=["BearerToken"],
        response_type="V1ConfigMap",
    )
    assert core.read_namespaced_config_map("cm", "pods").data == {"b": "2", "c": "3"}


def test_patch_and_update_are_separate_verbs(fake):
    fake.load_objects(
        [
            role("deploy", "pods", {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "patch"]}),
            binding("deploy", "pods", "deploy", sa("pods", "runner")),
        ]
    )
    client.AppsV1Api(fake.admin_client()).create_namespaced_deployment("pods", deployment("index", {}))
    apps = client.AppsV1Api(fake.client_for_service_account("pods", "runner"))
    current = apps.read_namespaced_deployment("index", "pods")
    current.spec.template.metadata.annotations = {"index.silverset.dev/a": "v2"}
    exc = refused(lambda: apps.replace_namespaced_deployment("index", "pods", current))
    assert (
        exc.status == 403
        and 'cannot update resource "deployments" in API group "apps"' in json.loads(exc.body)["message"]
    )
    apps.patch_namespaced_deployment(
        "index", "pods", {"spec": {"template": {"metadata": {"annotations": {"index.silverset.dev/a": "v2"}}}}}
    )


def test_deployment_readiness_follows_the_kubelet_hook_and_the_new_generation(fake):
    apps = client.AppsV1Api(fake.admin_client())
    seen = []
    fake.pod_ready = lambda ns, name, template: (
        seen.append(template["metadata"]["annotations"])
        or template["metadata"]["annotations"].get("index.silverset.dev/a") != "broken"
    )
    apps.create_namespaced_deployment("pods", deployment("index", {"index.silverset.dev/a": "v1"}))
    assert apps.read_namespaced_deployment("index", "pods").status.ready_replicas == 2
    apps.patch_namespaced_deployment(
        "index", "pods", {"spec": {"template": {"metadata": {"annotations": {"index.silverset.dev/a": "broken"}}}}}
    )
    status = apps.read_namespaced_deployment("index", "pods").status
    assert status.ready_replicas == 0 and status.observed_generation == 2
    assert seen[-1] == {"index.silverset.dev/a": "broken"}


def test_creating_in_a_namespace_that_does_not_exist_is_404(fake):
    exc = refused(lambda: client.CoreV1Api(fake.admin_client()).create_namespaced_config_map("nowhere", configmap("x")))
    assert exc.status == 404 and json.loads(exc.body)["message"] == 'namespaces "nowhere" not found'
    with pytest.raises(ValueError, match='namespaces "nowhere" not found'):
        fake.load_objects([service_account("nowhere", "x")])
