"""The one place a Kubernetes API client is made, and the namespaces Silverset's objects live in on a cluster.

KFP runs every step pod in the *pod namespace* as its runner ServiceAccount: ``kubeflow/pipeline-runner``
on standalone KFP, ``<profile>/default-editor`` on multi-user Kubeflow (``manifests/overlays/kfp-*``).
The index server and its version ConfigMaps live in the pod namespace; approval requests, the approvals
audit and the run-lock Leases live in :data:`CONTROL_NAMESPACE`, where no pod runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

CONTROL_NAMESPACE = "silverset-control"
CONTROL_STORE_URI = f"kubernetes://{CONTROL_NAMESPACE}"  # approval store and run lock on a cluster
SERVICE_ACCOUNT_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


@dataclass(frozen=True)
class KfpLayout:
    """Where a KFP installation runs step pods and as whom (what an overlay binds Silverset's Roles to)."""

    overlay: str
    pod_namespace: str
    runner_service_account: str

    @property
    def runner_username(self) -> str:
        return f"system:serviceaccount:{self.pod_namespace}:{self.runner_service_account}"


KFP_STANDALONE = KfpLayout("kfp-standalone", "kubeflow", "pipeline-runner")
KFP_MULTI_USER = KfpLayout("kfp-multi-user", "silverset", "default-editor")
# overlay name -> layout; local (kind/minikube) and prod are sizings of the standalone layout.
LAYOUTS = {
    "kfp-standalone": KFP_STANDALONE,
    "kfp-multi-user": KFP_MULTI_USER,
    "local": KFP_STANDALONE,
    "prod": KFP_STANDALONE,
}


def load_api_client():
    """Return a ``kubernetes.client.ApiClient`` for the current context (lazy import: CPU images need no cluster)."""
    from kubernetes import client, config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return client.ApiClient()


def current_namespace(default: str = "default") -> str:
    """The namespace this process runs in: the pod's own (mounted with its ServiceAccount token), else the
    kubeconfig context's, else ``default``. A step pod learns the pod namespace this way, so the pipeline
    needs no namespace parameter for objects that live beside its pods."""
    try:
        return SERVICE_ACCOUNT_NAMESPACE_FILE.read_text().strip() or default
    except OSError:
        pass
    try:
        from kubernetes import config

        _, context = config.list_kube_config_contexts()
        return (context or {}).get("context", {}).get("namespace") or default
    except Exception:  # no kubeconfig at all: nothing to read the namespace from
        return default
