"""The Kubernetes approval store on the RBAC-true fake, as the identities of the kfp-standalone overlay.

The pipeline step runs as ServiceAccount kubeflow/pipeline-runner: it may create requests and read
them, never decide one. Approvers are people in group silverset-approvers whose SelfSubjectReview
username is in the spec; the audit ConfigMap is all they may change.
"""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from kubernetes import client
from typer.testing import CliRunner

from silverset.components.approval.kube_store import (
    AUDIT_CONFIGMAP,
    ApprovalForbidden,
    KubernetesApprovalStore,
    configmap_name,
)
from silverset.components.approval.model import Action, AuditEntry, GateResult, State
from silverset.components.approval.policy import ApprovalService
from silverset.components.approval.wait import ApprovalOptions, run
from silverset.components.common.artifacts import IndexManifest
from silverset.components.common.errors import GateFailed, SilversetInputError
from silverset.components.common.spec import example_specs_dir, load_spec
from silverset.components.deploy.deploy import check_release
from silverset.pipelines.cli import app
from tests.fakes.kube_api_server import KUBEFLOW_RBAC, FakeKubeApi

CONTROL = "silverset-control"
STORE = f"kubernetes://{CONTROL}"
OVERLAY = Path(__file__).resolve().parents[3] / "manifests" / "overlays" / "kfp-standalone"
RUNNER = ("kubeflow", "pipeline-runner")
RUNNER_USER = "system:serviceaccount:kubeflow:pipeline-runner"
APPROVERS_GROUP = ("silverset-approvers",)
A = "sha256:" + "a" * 64
SPEC_PATH = example_specs_dir() / "red_dominant.yaml"  # approvers alice, bob


@pytest.fixture
def cluster():
    """The fake API server after `kubectl apply -k overlays/kfp-standalone` on a cluster with KFP installed."""
    with FakeKubeApi() as fake:
        fake.load_yaml(KUBEFLOW_RBAC)
        fake.apply_overlay(OVERLAY)
        yield fake


def service_as(api_client, **kwargs) -> ApprovalService:
    return ApprovalService(KubernetesApprovalStore(CONTROL, api_client=api_client), **kwargs)


def person(fake, name, groups=APPROVERS_GROUP):
    return fake.client_for_user(name, groups=groups)


def runner(fake):
    return fake.client_for_service_account(*RUNNER)


def submit_as_step(fake, spec=None, **kwargs):
    spec = spec or load_spec(SPEC_PATH)
    gate = GateResult(passed=True, candidate_digest=A, spec_content_hash=spec.content_hash)
    service = service_as(runner(fake), **kwargs)
    return service, service.submit(gate=gate, spec=spec, submitter="ci@silverset.dev")


def gate_file(tmp_path, spec=None) -> str:
    spec = spec or load_spec(SPEC_PATH)
    path = tmp_path / "gate.json"
    path.write_text(json.dumps({"passed": True, "candidate_digest": A, "spec_content_hash": spec.content_hash}))
    return str(path)


def test_the_manifest_ships_an_empty_audit_and_a_narrow_approver_role():
    objects = list(yaml.safe_load_all((OVERLAY.parents[1] / "base" / "approvals.yaml").read_text()))
    audit = next(o for o in objects if o["kind"] == "ConfigMap")
    assert audit["metadata"] == {"name": AUDIT_CONFIGMAP, "namespace": CONTROL}
    assert "data" not in audit  # `kubectl apply` of the manifests must never wipe the audit
    role = next(o for o in objects if o["kind"] == "Role")
    writes = [r for r in role["rules"] if set(r["verbs"]) & {"create", "update", "patch", "delete"}]
    assert writes == [
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "resourceNames": [AUDIT_CONFIGMAP],
            "verbs": ["update", "patch"],
        }
    ]
    binding = next(o for o in objects if o["kind"] == "RoleBinding")
    assert binding["subjects"] == [
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "silverset-approvers"}
    ]


def test_the_step_submits_an_approver_approves_and_deploy_sees_it(cluster, tmp_path):
    steps, request = submit_as_step(cluster)
    assert request.approvers == ("alice@silverset.dev", "bob@silverset.dev")
    assert ("ConfigMap", CONTROL, configmap_name(A)) in cluster.objects

    decided = service_as(person(cluster, "alice@silverset.dev")).approve(
        A[:50], reason="retention fine"
    )  # a prefix past the name's 40 hex
    assert decided.state is State.approved and decided.decided_by == "alice@silverset.dev"
    chain = service_as(runner(cluster)).audit()
    assert [(e.actor, e.action) for e in chain] == [("alice@silverset.dev", Action.approve)]

    # The deploy step (the runner again) reads the decision from the verified chain.
    manifest = IndexManifest(
        format_version=1,
        version="red_dominant-v1-x",
        attribute="red_dominant",
        attribute_version=1,
        model_digest=A,
        digest="d",
        count=1,
        dimensions=4,
    )
    check_release(manifest=manifest, gate_path=gate_file(tmp_path), approvals=steps)
    assert steps.get(A).state is State.approved and steps.verify_audit() is None
    # Nobody wrote to the request object after the step created it.
    assert [w for w in cluster.writes if w[2] == configmap_name(A)] == [("create", "ConfigMap", configmap_name(A))]


def test_the_step_identity_cannot_decide_even_when_a_spec_names_it(cluster, tmp_path):
    """A run started with a spec that lists the step's own ServiceAccount as approver: policy lets it
    try, RBAC refuses the write (403), and the refusal names the identity and the missing group."""
    spec = load_spec(SPEC_PATH)
    own = tmp_path / "own.yaml"
    own.write_text(spec.normalized_yaml().replace("- bob@silverset.dev", f"- {RUNNER_USER}"))
    steps, _request = submit_as_step(cluster, spec=load_spec(own))
    with pytest.raises(ApprovalForbidden) as refused:
        steps.approve(A, reason="I approve myself")
    message = str(refused.value)
    assert RUNNER_USER in message and "HTTP 403" in message and "silverset-approvers" in message
    assert 'configmaps "silverset-approvals-audit" is forbidden' in message
    assert steps.get(A).state is State.pending and steps.audit() == []
    assert (RUNNER_USER, "update", "configmaps", CONTROL, AUDIT_CONFIGMAP, 403) in cluster.audit_log


@pytest.mark.parametrize(
    "overlay,step_identity",
    [("kfp-standalone", ("kubeflow", "pipeline-runner")), ("kfp-multi-user", ("silverset", "default-editor"))],
)
def test_in_each_kfp_layout_the_step_submits_but_cannot_decide(overlay, step_identity, tmp_path):
    """Multi-user KFP's default-editor may write any ConfigMap in its profile namespace (kubeflow-edit),
    but approvals live in silverset-control, where only Silverset's Roles apply."""
    user = "system:serviceaccount:{}:{}".format(*step_identity)
    spec = load_spec(SPEC_PATH)
    own = tmp_path / "own.yaml"
    own.write_text(spec.normalized_yaml().replace("- bob@silverset.dev", f"- {user}"))
    with FakeKubeApi() as fake:
        fake.load_yaml(KUBEFLOW_RBAC)
        fake.apply_overlay(OVERLAY.parent / overlay)
        steps = service_as(fake.client_for_service_account(*step_identity))
        own_spec = load_spec(own)
        steps.submit(
            gate=GateResult(passed=True, candidate_digest=A, spec_content_hash=own_spec.content_hash),
            spec=own_spec,
            submitter="ci@silverset.dev",
        )
        with pytest.raises(ApprovalForbidden, match="HTTP 403"):
            steps.approve(A, reason="I approve myself")
        assert steps.get(A).state is State.pending
        assert service_as(person(fake, "alice@silverset.dev")).approve(A, reason="ok").state is State.approved


def test_the_step_identity_cannot_rewrite_a_request_or_the_audit(cluster):
    """What a step could try by hand with the client: every write but create is 403."""
    submit_as_step(cluster)
    core = client.CoreV1Api(runner(cluster))
    cm = core.read_namespaced_config_map(configmap_name(A), CONTROL)
    body = json.loads(cm.data["request.json"]) | {"approvers": [RUNNER_USER]}
    cm.data["request.json"] = json.dumps(body)
    for attempt in (
        lambda: core.replace_namespaced_config_map(configmap_name(A), CONTROL, cm),
        lambda: core.patch_namespaced_config_map(AUDIT_CONFIGMAP, CONTROL, {"data": {"audit.jsonl": "{}\n"}}),
        lambda: core.delete_namespaced_config_map(configmap_name(A), CONTROL),
    ):
        with pytest.raises(client.ApiException) as refused:
            attempt()
        assert refused.value.status == 403 and json.loads(refused.value.body)["reason"] == "Forbidden"
    assert service_as(runner(cluster)).get(A).approvers == ("alice@silverset.dev", "bob@silverset.dev")


def test_a_group_member_outside_the_spec_is_refused_by_policy(cluster):
    submit_as_step(cluster)
    eve = service_as(person(cluster, "eve@silverset.dev"))
    with pytest.raises(SilversetInputError, match="'eve@silverset.dev' is not an approver for red_dominant@v1"):
        eve.approve(A, reason="looks fine to me")
    # Writing the entry by hand gets past RBAC (she is in the group) but never counts, and verify names it.
    store = eve.store
    request = store.load(A)
    _entries, head = store.chain()
    store.append(
        AuditEntry(
            at=request.created_at,
            actor="eve@silverset.dev",
            action=Action.approve,
            candidate_digest=A,
            previous_state=State.pending,
            new_state=State.approved,
            request_hash=request.request_hash,
        ),
        after=head,
    )
    steps = service_as(runner(cluster))
    assert steps.get(A).state is State.pending and not steps.is_approved(A)
    assert "not an approver" in steps.verify_audit().problem


def test_a_spec_approver_outside_the_group_gets_a_clear_refusal(cluster):
    submit_as_step(cluster)
    with pytest.raises(
        ApprovalForbidden, match=r"identity 'bob@silverset.dev'.*HTTP 403.*membership in group 'silverset-approvers'"
    ):
        service_as(person(cluster, "bob@silverset.dev", groups=())).approve(A, reason="ok")


def test_the_approver_identity_comes_from_the_api_server_not_a_flag(cluster):
    submit_as_step(cluster)
    with pytest.raises(
        SilversetInputError,
        match=r"--as: .*API server \(you are 'eve@silverset.dev'\); drop --as 'alice@silverset.dev'",
    ):
        service_as(person(cluster, "eve@silverset.dev")).approve(A, user="alice@silverset.dev", reason="as alice")
    with pytest.raises(
        SilversetInputError, match="SelfSubjectReview username: identity 'alice @silverset.dev' contains whitespace"
    ):
        service_as(person(cluster, "alice @silverset.dev")).approve(A, reason="lookalike")
    assert service_as(runner(cluster)).audit() == []


def test_removing_update_from_the_approver_role_stops_approvals(cluster):
    """The test depends on the manifest: without `update` on the audit ConfigMap nobody can decide."""
    role = dict(cluster.objects[("Role", CONTROL, "silverset-approver")])
    role["rules"] = [r for r in role["rules"] if "resourceNames" not in r]
    cluster.load_objects([role])
    submit_as_step(cluster)
    with pytest.raises(ApprovalForbidden, match="HTTP 403"):
        service_as(person(cluster, "alice@silverset.dev")).approve(A, reason="ok")


def test_two_approvers_at_once_leave_one_decision(cluster):
    """Both PUT the audit with the same resourceVersion; the API server's 409 makes the later one re-read and see
    the decision."""
    submit_as_step(cluster)
    alice, bob = service_as(person(cluster, "alice@silverset.dev")), service_as(person(cluster, "bob@silverset.dev"))
    barrier = threading.Barrier(2)
    for service in (alice, bob):
        put = service.store.core.replace_namespaced_config_map
        first = [True]

        def put_together(*args, _put=put, _first=first, **kwargs):
            if _first[0]:  # both have read the same audit before either writes
                _first[0] = False
                barrier.wait(timeout=10)
            return _put(*args, **kwargs)

        service.store.core.replace_namespaced_config_map = put_together
    results = {}

    def decide(name, act):
        try:
            results[name] = act().state
        except SilversetInputError as exc:
            results[name] = str(exc)

    threads = [
        threading.Thread(target=decide, args=("alice", lambda: alice.approve(A, reason="ok"))),
        threading.Thread(target=decide, args=("bob", lambda: bob.reject(A, reason="drift"))),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    chain = service_as(runner(cluster)).audit()
    assert len(chain) == 1 and cluster.conflicts == 1
    winner = chain[0].actor.split("@")[0]
    loser = "bob" if winner == "alice" else "alice"
    assert results[winner] in (State.approved, State.rejected) and "decisions are final" in results[loser]


def test_the_step_waits_on_the_cluster_and_returns_the_approval(cluster, tmp_path):
    alice = service_as(person(cluster, "alice@silverset.dev"))
    sleeps = []

    def sleep(seconds):
        sleeps.append(seconds)
        if len(sleeps) == 2:  # alice decides while the step waits
            alice.approve(A, reason="retention fine")

    outcome = run(
        gate_result=gate_file(tmp_path),
        attribute_spec=str(SPEC_PATH),
        approval_store=STORE,
        submitter="ci@silverset.dev",
        api_client=runner(cluster),
        sleep=sleep,
        options=ApprovalOptions(initial_delay_s=1),
    )
    assert outcome.decision is State.approved and outcome.decided_by == "alice@silverset.dev" and sleeps == [1, 2]


def test_an_expired_request_reads_expired_for_everyone_and_the_step_writes_nothing(cluster, tmp_path):
    clock = {"t": None}
    steps, request = submit_as_step(cluster)
    clock["t"] = request.created_at

    def sleep(seconds):
        clock["t"] += timedelta(seconds=seconds)

    writes_before = list(cluster.writes)
    waiting = service_as(runner(cluster), now=lambda: clock["t"])
    outcome = run(
        gate_result=gate_file(tmp_path),
        attribute_spec=str(SPEC_PATH),
        approval_store=STORE,
        submitter="ci@silverset.dev",
        service=waiting,
        sleep=sleep,
        options=ApprovalOptions(initial_delay_s=3600, max_delay_s=3600),
    )
    assert outcome.decision is State.expired and clock["t"] >= request.expires_at
    assert cluster.writes == writes_before  # the expiry is derived, not written
    late = service_as(person(cluster, "alice@silverset.dev"), now=lambda: clock["t"])
    assert late.get(A).state is State.expired
    with pytest.raises(SilversetInputError, match="after the request expired"):
        late.approve(A, reason="too late")


def kubeconfig_for(fake, api_client, path: Path) -> str:
    """A kubeconfig file pointing at the fake with ``api_client``'s bearer token (what `silverset` loads)."""
    token = api_client.configuration.api_key["authorization"]
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "fake",
                "clusters": [{"name": "fake", "cluster": {"server": fake.host}}],
                "users": [{"name": "me", "user": {"token": token}}],
                "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "me"}}],
            }
        )
    )
    return str(path)


def test_cli_approves_as_the_kubeconfig_identity_and_refuses_as(cluster, tmp_path, monkeypatch):
    submit_as_step(cluster)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    # What KUBECONFIG=... does for a fresh `silverset` process (the client reads the variable at import).
    monkeypatch.setattr(
        "kubernetes.config.kube_config.KUBE_CONFIG_DEFAULT_LOCATION",
        kubeconfig_for(cluster, person(cluster, "bob@silverset.dev"), tmp_path / "bob.kubeconfig"),
    )
    cli = CliRunner()
    refused = cli.invoke(
        app, ["approvals", "approve", A[:20], "--as", "alice@silverset.dev", "--reason", "x", "--store", STORE]
    )
    assert isinstance(refused.exception, SilversetInputError) and "drop --as" in str(refused.exception)
    done = cli.invoke(app, ["approvals", "approve", A[:20], "--reason", "retention fine", "--store", STORE])
    assert done.exit_code == 0, done.output
    assert json.loads(done.output)["decided_by"] == "bob@silverset.dev"
    verified = cli.invoke(app, ["approvals", "audit", "--verify", "--store", STORE])
    assert verified.exit_code == 0 and "intact: 1 entries, 1 requests" in verified.output


def test_deploy_refuses_when_the_cluster_audit_was_rewritten(cluster, tmp_path):
    steps, _request = submit_as_step(cluster)
    service_as(person(cluster, "alice@silverset.dev")).reject(A, reason="drift")
    # An admin (or anyone past RBAC) turns the rejection into an approval by hand.
    core = client.CoreV1Api(cluster.admin_client())
    cm = core.read_namespaced_config_map(AUDIT_CONFIGMAP, CONTROL)
    cm.data["audit.jsonl"] = (
        cm.data["audit.jsonl"]
        .replace('"action":"reject"', '"action":"approve"')
        .replace('"new_state":"rejected"', '"new_state":"approved"')
    )
    core.replace_namespaced_config_map(AUDIT_CONFIGMAP, CONTROL, cm)
    broken = steps.verify_audit()
    assert broken.index == 0 and "edited" in broken.problem
    manifest = IndexManifest(
        format_version=1,
        version="red_dominant-v1-x",
        attribute="red_dominant",
        attribute_version=1,
        model_digest=A,
        digest="d",
        count=1,
        dimensions=4,
    )
    with pytest.raises(GateFailed, match="audit chain is broken"):
        check_release(manifest=manifest, gate_path=gate_file(tmp_path), approvals=steps)
