"""Kubernetes deploy target through the official client: canary first, readiness with a timeout, rollback.

The index server Deployment (and optionally ``<name>-canary``) carries the live version of each
attribute as a pod-template annotation ``index.silverset.dev/<attribute>``; changing it rolls the pods,
which load that version at start. The ConfigMap ``<name>-<attribute>`` records ``version``,
``previous`` and ``index_uri`` and is updated last, with resourceVersion concurrency.
"""
from __future__ import annotations

import time
from typing import Callable

from silverset.components.common.errors import GateFailed

ANNOTATION_PREFIX = "index.silverset.dev/"


def _annotation(attribute: str) -> str:
    return ANNOTATION_PREFIX + attribute


def _template_version(deployment, attribute: str) -> str | None:
    annotations = deployment.spec.template.metadata.annotations or {}
    return annotations.get(_annotation(attribute))


def _is_ready(deployment) -> bool:
    status, spec = deployment.status, deployment.spec
    replicas = spec.replicas if spec.replicas is not None else 1
    return bool(status and (status.observed_generation or 0) >= (deployment.metadata.generation or 0)
                and (status.updated_replicas or 0) >= replicas and (status.ready_replicas or 0) >= replicas
                and (status.available_replicas or 0) >= replicas)


def _retry_on_conflict(attempt: Callable[[], None], *, what: str, tries: int = 10) -> None:
    """Run ``attempt`` (read, modify, write) until its write lands; a 409 Conflict means someone else wrote
    first (stale resourceVersion), so read again and retry."""
    from kubernetes.client.exceptions import ApiException

    for _ in range(tries):
        try:
            attempt()
            return
        except ApiException as exc:
            if exc.status != 409:
                raise
    raise RuntimeError(f"{what} kept changing; gave up after {tries} conflicting writes")


class KubernetesDeployer:
    def __init__(self, namespace: str, *, deployment: str = "silverset-index", api_client=None, timeout_s: float = 300.0,
                 poll_s: float = 2.0, sleep: Callable[[float], None] = time.sleep):
        from kubernetes import client

        self.namespace = namespace
        self.deployment = deployment
        self.apps = client.AppsV1Api(api_client)
        self.core = client.CoreV1Api(api_client)
        self.timeout_s = timeout_s
        self.poll_s = poll_s
        self.sleep = sleep

    def configmap_name(self, attribute: str) -> str:
        return f"{self.deployment}-{attribute.replace('_', '-')}"

    def _read(self, name: str):
        from kubernetes.client.exceptions import ApiException

        try:
            return self.apps.read_namespaced_deployment(name, self.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def _set_version(self, name: str, attribute: str, version: str | None) -> None:
        """Set (or with None, remove) the attribute's annotation; re-read and retry on 409."""

        def attempt() -> None:
            deployment = self.apps.read_namespaced_deployment(name, self.namespace)
            annotations = dict(deployment.spec.template.metadata.annotations or {})
            if version is None:
                annotations.pop(_annotation(attribute), None)
            else:
                annotations[_annotation(attribute)] = version
            deployment.spec.template.metadata.annotations = annotations
            deployment.status = None
            self.apps.replace_namespaced_deployment(name, self.namespace, deployment)

        _retry_on_conflict(attempt, what=f"deployment {name} ({attribute}={version})")

    def _wait_ready(self, name: str) -> bool:
        deadline = time.monotonic() + self.timeout_s
        while True:
            if _is_ready(self.apps.read_namespaced_deployment(name, self.namespace)):
                return True
            if time.monotonic() >= deadline:
                return False
            self.sleep(self.poll_s)

    def _record(self, attribute: str, version: str, previous: str | None, index_uri: str) -> None:
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        name = self.configmap_name(attribute)
        data = {"attribute": attribute, "version": version, "previous": previous or "", "index_uri": index_uri}

        def attempt() -> None:
            try:
                cm = self.core.read_namespaced_config_map(name, self.namespace)
            except ApiException as exc:
                if exc.status != 404:
                    raise
                labels = {"app.kubernetes.io/name": "silverset", "app.kubernetes.io/component": "index-version"}
                body = client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name, labels=labels), data=data)
                self.core.create_namespaced_config_map(self.namespace, body)  # 409: created meanwhile, retry
                return
            cm.data = data
            self.core.replace_namespaced_config_map(name, self.namespace, cm)

        _retry_on_conflict(attempt, what=f"configmap {name}")

    def live_version(self, attribute: str) -> str | None:
        stable = self._read(self.deployment)
        return None if stable is None else _template_version(stable, attribute)

    def deploy(self, *, attribute: str, version: str, index_uri: str) -> dict:
        """Roll ``version`` out: canary (if it exists) -> ready -> stable -> ready -> ConfigMap.

        Any readiness timeout rolls every Deployment touched back to its previous version and raises
        GateFailed. Deploying the live version changes nothing.
        """
        stable = self._read(self.deployment)
        if stable is None:
            raise GateFailed(f"deployment {self.namespace}/{self.deployment} does not exist; apply manifests/ first")
        previous = _template_version(stable, attribute)
        canary_name = f"{self.deployment}-canary"
        canary = self._read(canary_name)
        if previous == version and (canary is None or _template_version(canary, attribute) == version):
            return {"target": "kubernetes", "attribute": attribute, "version": version, "changed": False, "previous": previous}
        steps = [canary_name, self.deployment] if canary is not None else [self.deployment]
        touched: list[tuple[str, str | None]] = []
        for name in steps:
            before = _template_version(self._read(name), attribute)
            self._set_version(name, attribute, version)
            touched.append((name, before))
            if not self._wait_ready(name):
                for undo_name, undo_version in reversed(touched):
                    self._set_version(undo_name, attribute, undo_version)
                raise GateFailed(f"{attribute}: {name} did not become ready with {version} within {self.timeout_s:.0f} s; rolled back to {previous}")
        self._record(attribute, version, previous, index_uri)
        return {"target": "kubernetes", "attribute": attribute, "version": version, "changed": True, "previous": previous,
                "canary": canary is not None}
