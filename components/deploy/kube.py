"""Kubernetes deploy target: publish the index where the pods read it, pin it on the pods, wait, roll back.

1. Publish: copy the index folder to ``<serve_root>/<attribute>/versions/<version>/`` (``pointer.publish_version``;
   ``serve_root`` is ``/data/serving`` on the artifacts PVC the server mounts, or an fsspec URI).
2. Pin: PATCH the pod-template annotation ``index.silverset.dev/<attribute>: <version>`` of the index server
   Deployment -- the canary (``<name>-canary``) first when it exists, then the stable one. The change rolls the
   pods; each serves exactly the versions its annotations pin (``--pinned-versions``, downwardAPI) and is
   ready only when they are loaded and self-checked. Only PATCH is used (RBAC verb ``patch``, never ``update``).
3. Wait for the rollout as ``kubectl rollout status`` does; on a timeout or a failed progress deadline, put
   the previous pin back on every Deployment touched (only where ours is still the pin) and raise GateFailed.
4. Record the live version in ConfigMap ``<name>-<attribute>`` (create, or patch when it exists).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Callable

from silverset.components.common.errors import GateFailed, SilversetInputError
from silverset.components.index import pointer

from .deploy import DeploySummary

_LOGGER = logging.getLogger(__name__)
ANNOTATION_PREFIX = "index.silverset.dev/"


def _annotation(attribute: str) -> str:
    return ANNOTATION_PREFIX + attribute


def _template_version(deployment, attribute: str) -> str | None:
    annotations = deployment.spec.template.metadata.annotations or {}
    return annotations.get(_annotation(attribute))


def rollout_state(deployment) -> tuple[bool, str]:
    """(done, what it waits for), by the rules of ``kubectl rollout status`` for a Deployment."""
    status, spec = deployment.status, deployment.spec
    if status is None or (status.observed_generation or 0) < (deployment.metadata.generation or 0):
        return False, "waiting for the rollout to be observed"
    for condition in status.conditions or []:
        if condition.type == "Progressing" and condition.reason == "ProgressDeadlineExceeded":
            raise GateFailed(f"deployment {deployment.metadata.name} exceeded its progress deadline")
    replicas = spec.replicas if spec.replicas is not None else 1
    updated = status.updated_replicas or 0
    if updated < replicas:
        return False, f"{updated} of {replicas} new replicas updated"
    if (status.replicas or 0) > updated:
        return False, f"{(status.replicas or 0) - updated} old replicas pending termination"
    if (status.available_replicas or 0) < updated:
        return False, f"{status.available_replicas or 0} of {updated} updated replicas available"
    return True, "rolled out"


class KubernetesDeployer:
    """Rolls index versions onto the index server Deployment(s) in ``namespace`` (the KFP pod namespace)."""

    def __init__(
        self,
        namespace: str,
        *,
        deployment: str = "silverset-index",
        api_client=None,
        timeout_s: float = 300.0,
        poll_s: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
    ):
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

    def _pin(self, name: str, attribute: str, version: str) -> None:
        """Set the attribute's pod-template annotation (a strategic merge patch: other annotations stay)."""
        body = {"spec": {"template": {"metadata": {"annotations": {_annotation(attribute): version}}}}}
        self.apps.patch_namespaced_deployment(name, self.namespace, body)

    def _unpin(self, name: str, attribute: str, ours: str, previous: str | None) -> None:
        """Put ``previous`` back (or drop the pin), but only while ``ours`` is still the pin: a JSON patch whose
        ``test`` makes the API server refuse (422) if someone pinned another version meanwhile."""
        from kubernetes.client.exceptions import ApiException

        path = "/spec/template/metadata/annotations/" + _annotation(attribute).replace("~", "~0").replace("/", "~1")
        change = (
            {"op": "remove", "path": path} if previous is None else {"op": "replace", "path": path, "value": previous}
        )
        try:
            self.apps.patch_namespaced_deployment(
                name, self.namespace, [{"op": "test", "path": path, "value": ours}, change]
            )
        except ApiException as exc:
            if exc.status != 422:
                raise
            _LOGGER.warning("%s: %s no longer pins %s; left as it is", attribute, name, ours)

    def _wait_rolled_out(self, name: str) -> tuple[bool, str]:
        deadline = time.monotonic() + self.timeout_s
        while True:
            done, waiting_for = rollout_state(self.apps.read_namespaced_deployment(name, self.namespace))
            if done or time.monotonic() >= deadline:
                return done, waiting_for
            self.sleep(self.poll_s)

    def _record(self, attribute: str, version: str, previous: str | None, published_uri: str) -> None:
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        name = self.configmap_name(attribute)
        data = {"attribute": attribute, "version": version, "previous": previous or "", "index_uri": published_uri}
        labels = {"app.kubernetes.io/name": "silverset", "app.kubernetes.io/component": "index-version"}
        try:
            self.core.create_namespaced_config_map(
                self.namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name, labels=labels), data=data)
            )
        except ApiException as exc:
            if exc.status != 409:
                raise
            self.core.patch_namespaced_config_map(name, self.namespace, {"data": data})

    def live_version(self, attribute: str) -> str | None:
        stable = self._read(self.deployment)
        return None if stable is None else _template_version(stable, attribute)

    def deploy(
        self,
        *,
        attribute: str,
        version: str,
        index_dir: str | Path | None = None,
        serve_root: str | None = None,
        published_uri: str | None = None,
    ) -> DeploySummary:
        """Publish ``index_dir`` under ``serve_root`` and roll ``version`` out: canary (if any) -> stable -> ConfigMap.

        A rollout that does not finish within ``timeout_s`` puts the previous pin back on every Deployment
        touched and raises GateFailed. Deploying the live version changes nothing. ``published_uri`` (recorded
        in the ConfigMap as ``index_uri``) defaults to the published version folder.
        """
        if not serve_root:
            raise SilversetInputError(
                "--serve-root",
                "the kubernetes target publishes the index where the index server pods read it: "
                "/data/serving on the artifacts PVC, or an s3:// or gs:// URI",
            )
        if index_dir is None:
            raise SilversetInputError("--index", "the kubernetes target needs the built index folder to publish")
        stable = self._read(self.deployment)
        if stable is None:
            raise GateFailed(
                f"deployment {self.namespace}/{self.deployment} does not exist; apply manifests/overlays/<layout> first"
            )
        published = str(pointer.publish_version(index_dir, serve_root, attribute, version))
        previous = _template_version(stable, attribute)
        canary_name = f"{self.deployment}-canary"
        canary = self._read(canary_name)
        result = dict(
            target="kubernetes",
            attribute=attribute,
            version=version,
            previous=previous,
            canary=canary is not None,
            published=published,
        )
        if previous == version and (canary is None or _template_version(canary, attribute) == version):
            return DeploySummary(**result, changed=False)
        touched: list[tuple[str, str | None]] = []
        for name, before in ([(canary_name, _template_version(canary, attribute))] if canary is not None else []) + [
            (self.deployment, previous)
        ]:
            _LOGGER.info("%s: pinning %s on %s/%s (was %s)", attribute, version, self.namespace, name, before)
            self._pin(name, attribute, version)
            touched.append((name, before))
            try:
                done, waiting_for = self._wait_rolled_out(name)
            except GateFailed as exc:
                done, waiting_for = False, str(exc)
            if not done:
                for undo_name, undo_version in reversed(touched):
                    self._unpin(undo_name, attribute, version, undo_version)
                raise GateFailed(
                    f"{attribute}: {name} did not become ready with {version} within {self.timeout_s:.0f} s "
                    f"({waiting_for}); rolled back to {previous}"
                )
        self._record(attribute, version, previous, published_uri or published)
        _LOGGER.info("%s: %s live on %s/%s", attribute, version, self.namespace, self.deployment)
        return DeploySummary(**result, changed=True)
