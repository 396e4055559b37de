"""The run lock as a Lease in silverset-control, taken as the identity KFP runs steps under (RBAC-true fake)."""

from __future__ import annotations

import copy
import threading
from pathlib import Path

import pytest

from silverset.components.common import run_lock
from tests.fakes.kube_api_server import kfp_cluster

CONTROL = "silverset-control"
STATE = "s3://silverset-state/red_dominant"
RUNNER = ("kubeflow", "pipeline-runner")  # standalone KFP's step identity

STANDALONE = Path(__file__).resolve().parents[3] / "manifests" / "overlays" / "kfp-standalone"


def _without_lease_update(fake) -> None:
    """Re-apply the overlay's steps Role with `update` dropped from its leases rule (as an admin would)."""
    role = copy.deepcopy(fake.objects[("Role", CONTROL, "silverset-pipeline-steps")])
    for rule in role["rules"]:
        if "leases" in rule["resources"]:
            rule["verbs"] = [v for v in rule["verbs"] if v != "update"]
    fake.load_objects([role])


class Clock:
    def __init__(self, now: float = 1_800_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def kube():
    """`kubectl apply -k overlays/kfp-standalone` on a cluster with KFP (and its runner's own RBAC) installed:
    the lock runs with exactly the Roles the manifests grant."""
    with kfp_cluster(STANDALONE) as fake:
        yield fake


def _lock(fake, clock=None, lease_s: float = 600):
    return run_lock.open_run_lock(
        f"kubernetes://{CONTROL}",
        key=STATE,
        lease_duration_s=lease_s,
        api_client=fake.client_for_service_account(*RUNNER),
        **({"clock": clock} if clock else {}),
    )


def test_the_pipeline_runner_takes_renews_and_releases_a_lease_with_compare_and_swap(kube):
    clock = Clock()
    lock, other = _lock(kube, clock), _lock(kube, clock)
    lock.acquire("attribute-promotion-run-1")
    with pytest.raises(
        run_lock.StateLocked, match=r"held by run 'attribute-promotion-run-1' since 2027-01-15T08:00:00Z"
    ):
        other.acquire("attribute-promotion-run-2")
    clock.now += 300
    assert lock.renew("attribute-promotion-run-1").renewed_at == clock.now
    lease = kube.objects[("Lease", CONTROL, run_lock.lease_name(STATE))]
    assert lease["spec"]["holderIdentity"] == "attribute-promotion-run-1"
    assert lease["spec"]["leaseDurationSeconds"] == 600
    assert lease["spec"]["renewTime"].startswith("2027-01-15T08:05:00.000000")
    assert lease["metadata"]["annotations"][run_lock.STATE_ANNOTATION] == STATE
    assert not other.release("attribute-promotion-run-2")  # not the holder: refused, nothing written
    assert lock.release("attribute-promotion-run-1")
    assert other.acquire("attribute-promotion-run-2").holder == "attribute-promotion-run-2"
    who = {entry[0] for entry in kube.audit_log if entry[2] == "leases"}
    assert who == {"system:serviceaccount:kubeflow:pipeline-runner"}


def test_an_expired_lease_is_taken_over_and_the_old_holder_loses_it(kube):
    clock = Clock()
    crashed, next_run = _lock(kube, clock), _lock(kube, clock)
    crashed.acquire("crashed-run")
    clock.now += 601
    assert next_run.acquire("next-run").holder == "next-run"
    with pytest.raises(run_lock.LockLost, match="'next-run'"):
        crashed.renew("crashed-run")


def test_runs_racing_for_the_lease_never_both_win(kube):
    for trial in range(15):
        key = f"{STATE}/trial-{trial}"
        locks = [
            run_lock.open_run_lock(
                f"kubernetes://{CONTROL}", key=key, api_client=kube.client_for_service_account(*RUNNER)
            )
            for _ in range(3)
        ]
        barrier, won = threading.Barrier(len(locks)), []

        def race(lock, run_id):
            barrier.wait()
            try:
                lock.acquire(run_id)
                won.append(run_id)
            except run_lock.StateLocked:
                pass

        threads = [threading.Thread(target=race, args=(lock, f"run-{i}")) for i, lock in enumerate(locks)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert len(won) == 1, (trial, won)


def test_without_update_on_leases_the_runner_cannot_keep_its_lock(kube):
    _without_lease_update(kube)
    lock = _lock(kube)
    lock.acquire("run-1")  # the create is granted
    with pytest.raises(PermissionError, match=r'cannot update resource "leases" in API group "coordination.k8s.io"'):
        lock.renew("run-1")


def test_an_identity_with_no_role_in_the_control_namespace_is_refused(kube):
    kube.load_objects(
        [
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": "default-editor", "namespace": "kubeflow"},
            }
        ]
    )
    lock = run_lock.open_run_lock(
        f"kubernetes://{CONTROL}", key=STATE, api_client=kube.client_for_service_account("kubeflow", "default-editor")
    )
    with pytest.raises(PermissionError, match="403"):
        lock.acquire("run-1")
