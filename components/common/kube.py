"""The one place a Kubernetes API client is made: in-cluster credentials first, then ~/.kube/config."""
from __future__ import annotations


def load_api_client():
    """Return a ``kubernetes.client.ApiClient`` for the current context (lazy import: CPU images need no cluster)."""
    from kubernetes import client, config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return client.ApiClient()
