"""A kubelet for the fake API server: runs the REAL index server app for a Deployment's pod template and
reports the pod ready exactly when the server's ``/readyz`` answers 200.

It reads the template as a kubelet would: the ``server`` container's args with ``$(VAR)`` expanded from its
``envFrom`` ConfigMaps (read from the fake), the artifacts PVC's mount path mapped onto a host folder (the
"volume"), and the downwardAPI ``metadata.annotations`` volume written in the kubelet's format. So a
template that does not pin versions, mounts the PVC elsewhere or points the server at another root does
not get ready here either.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from fastapi.testclient import TestClient

from silverset.components.index.server import ServerOptions, create_app
from tests.fakes.kube_api_server import FakeKubeApi
from tests.helpers.downward_api import write_annotations_volume


class IndexServerKubelet:
    """``fake.pod_ready`` hook: one real server per distinct template (cached), asked for /readyz."""

    def __init__(self, fake: FakeKubeApi, volume: Path):
        self.fake = fake
        self.volume = volume  # host folder behind PVC silverset-artifacts
        self.readiness: dict[str, dict] = {}  # template annotations (repr) -> last /readyz body
        self._cache: dict[str, bool] = {}

    def _expand(self, namespace: str, container: dict, value: str) -> str:
        env = {}
        for source in container.get("envFrom") or []:
            name = (source.get("configMapRef") or {}).get("name")
            env |= self.fake.objects.get(("ConfigMap", namespace, name), {}).get("data") or {}
        env |= {e["name"]: e["value"] for e in container.get("env") or [] if "value" in e}
        return re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), value)

    def _host_path(self, pod_path: str, mounts: dict[str, Path]) -> Path:
        for mount_path, host in sorted(mounts.items(), key=lambda kv: -len(kv[0])):
            if pod_path == mount_path or pod_path.startswith(mount_path.rstrip("/") + "/"):
                return host / pod_path[len(mount_path) :].lstrip("/")
        return Path(tempfile.mkdtemp()) / "not-mounted"  # the pod sees an empty path there

    def __call__(self, namespace: str, name: str, template: dict) -> bool:
        annotations = template.get("metadata", {}).get("annotations") or {}
        key = repr((namespace, name, sorted(annotations.items())))
        if key not in self._cache:
            self._cache[key] = self._start_pod(namespace, template, annotations, key)
        return self._cache[key]

    def _start_pod(self, namespace: str, template: dict, annotations: dict, key: str) -> bool:
        spec = template["spec"]
        container = next(c for c in spec["containers"] if c["name"] == "server")
        volumes = {v["name"]: v for v in spec.get("volumes") or []}
        pod_dir = Path(tempfile.mkdtemp(prefix="pod-"))
        mounts: dict[str, Path] = {}
        for mount in container.get("volumeMounts") or []:
            volume = volumes[mount["name"]]
            if (volume.get("persistentVolumeClaim") or {}).get("claimName") == "silverset-artifacts":
                mounts[mount["mountPath"]] = self.volume
            elif "downwardAPI" in volume:
                items = volume["downwardAPI"]["items"]
                item = next(i for i in items if i["fieldRef"]["fieldPath"] == "metadata.annotations")
                write_annotations_volume(pod_dir / mount["name"], annotations, name=item["path"])
                mounts[mount["mountPath"]] = pod_dir / mount["name"]
            else:
                mounts[mount["mountPath"]] = pod_dir / mount["name"]
        args = [self._expand(namespace, container, a) for a in container.get("args") or []]
        option = dict(zip(args[::2], args[1::2]))
        pinned = option.get("--pinned-versions")
        options = ServerOptions(
            poll_interval_s=60, pinned_versions=str(self._host_path(pinned, mounts)) if pinned else None
        )
        with TestClient(create_app(self._host_path(option["--index-dir"], mounts), options, poll=False)) as server:
            answer = server.get(container["readinessProbe"]["httpGet"]["path"])
        self.readiness[key] = answer.json()
        return answer.status_code == 200
