"""Loopback fake of the Kubernetes API server: enough REST for the official ``kubernetes`` client.

ConfigMaps (create, read, replace, list with labelSelector, delete) and apps/v1 Deployments (create,
read, replace). Writes bump a global ``resourceVersion``; a PUT carrying a stale one gets 409
Conflict, as the real API server does. Deployments get a status: a spec change bumps
``metadata.generation``; the rollout becomes ready after ``ready_after_reads`` reads, unless the pod
template carries an annotation value listed in ``unready_values`` (a version that never gets ready).
"""
from __future__ import annotations

import copy
import json
import re
import threading
from http.server import ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from tests.fakes.loopback import JsonHandler

ROUTES = [
    (re.compile(r"^/api/v1/namespaces/([^/]+)/configmaps(?:/([^/]+))?$"), "ConfigMap", "v1"),
    (re.compile(r"^/apis/apps/v1/namespaces/([^/]+)/deployments(?:/([^/]+))?$"), "Deployment", "apps/v1"),
]


def _status(code: int, reason: str, message: str) -> dict:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message, "reason": reason, "code": code}


class FakeKubeApi:
    """State plus a server thread. Use as a context manager; ``host`` is the base URL for the client."""

    def __init__(self):
        self.objects: dict[tuple[str, str, str], dict] = {}
        self.resource_version = 100
        self.lock = threading.Lock()
        self.ready_after_reads = 1
        self.unready_values: set[str] = set()
        self.reads_since_change: dict[tuple[str, str, str], int] = {}
        self.writes: list[tuple[str, str, str]] = []  # (verb, kind, name): what changed, in order
        self.conflicts = 0
        fake = self

        class Handler(JsonHandler):

            def _route(self):
                url = urlparse(self.path)
                for pattern, kind, api_version in ROUTES:
                    m = pattern.match(url.path)
                    if m:
                        return kind, api_version, m.group(1), m.group(2), parse_qs(url.query)
                return None

            def do_GET(self):
                route = self._route()
                if route is None:
                    return self._send(404, _status(404, "NotFound", f"no route {self.path}"))
                self._send(*fake.get(*route))

            def do_POST(self):
                route = self._route()
                if route is None:
                    return self._send(404, _status(404, "NotFound", f"no route {self.path}"))
                self._send(*fake.create(*route[:3], self._body()))

            def do_PUT(self):
                route = self._route()
                if route is None or route[3] is None:
                    return self._send(404, _status(404, "NotFound", f"no route {self.path}"))
                self._send(*fake.replace(*route[:4], self._body()))

            def do_DELETE(self):
                route = self._route()
                kind, _, ns, name, _ = route
                with fake.lock:
                    obj = fake.objects.pop((kind, ns, name), None)
                if obj is None:
                    return self._send(404, _status(404, "NotFound", f'{kind.lower()}s "{name}" not found'))
                self._send(200, _status(200, "", "deleted") | {"status": "Success"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "FakeKubeApi":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def api_client(self):
        """A real ``kubernetes.client.ApiClient`` pointed at this server."""
        from kubernetes import client

        configuration = client.Configuration()
        configuration.host = self.host
        return client.ApiClient(configuration)

    # -- state ----------------------------------------------------------------------------------
    def _next_version(self) -> str:
        self.resource_version += 1
        return str(self.resource_version)

    def _with_status(self, key, obj: dict) -> dict:
        if key[0] != "Deployment":
            return obj
        obj = copy.deepcopy(obj)
        replicas = obj.get("spec", {}).get("replicas", 1)
        annotations = obj.get("spec", {}).get("template", {}).get("metadata", {}).get("annotations", {}) or {}
        never = any(v in self.unready_values for v in annotations.values())
        ready = 0 if never or self.reads_since_change.get(key, 0) < self.ready_after_reads else replicas
        obj["status"] = {"observedGeneration": obj["metadata"]["generation"], "replicas": replicas,
                         "updatedReplicas": replicas, "readyReplicas": ready, "availableReplicas": ready,
                         "unavailableReplicas": replicas - ready or None}
        return obj

    def get(self, kind, api_version, ns, name, query):
        with self.lock:
            if name is None:
                selector = dict(part.split("=", 1) for part in query.get("labelSelector", [""])[0].split(",") if "=" in part)
                items = [self._with_status(k, o) for k, o in sorted(self.objects.items())
                         if k[0] == kind and k[1] == ns and all(o["metadata"].get("labels", {}).get(a) == b for a, b in selector.items())]
                return 200, {"kind": f"{kind}List", "apiVersion": api_version, "metadata": {"resourceVersion": str(self.resource_version)}, "items": items}
            key = (kind, ns, name)
            if key not in self.objects:
                return 404, _status(404, "NotFound", f'{kind.lower()}s "{name}" not found')
            self.reads_since_change[key] = self.reads_since_change.get(key, 0) + 1
            return 200, self._with_status(key, self.objects[key])

    def create(self, kind, api_version, ns, body):
        with self.lock:
            name = body["metadata"]["name"]
            key = (kind, ns, name)
            if key in self.objects:
                return 409, _status(409, "AlreadyExists", f'{kind.lower()}s "{name}" already exists')
            body = copy.deepcopy(body)
            body.update(kind=kind, apiVersion=api_version)
            body["metadata"].update(namespace=ns, resourceVersion=self._next_version(), generation=1, uid=f"uid-{self.resource_version}")
            body.pop("status", None)
            self.objects[key] = body
            self.reads_since_change[key] = 0
            self.writes.append(("create", kind, name))
            return 201, self._with_status(key, body)

    def replace(self, kind, api_version, ns, name, body):
        with self.lock:
            key = (kind, ns, name)
            current = self.objects.get(key)
            if current is None:
                return 404, _status(404, "NotFound", f'{kind.lower()}s "{name}" not found')
            sent = body.get("metadata", {}).get("resourceVersion")
            if sent and sent != current["metadata"]["resourceVersion"]:
                self.conflicts += 1
                return 409, _status(409, "Conflict", f'Operation cannot be fulfilled on {kind.lower()}s "{name}": the object has been modified; please apply your changes to the latest version and try again')
            body = copy.deepcopy(body)
            body.update(kind=kind, apiVersion=api_version)
            body.pop("status", None)
            generation = current["metadata"].get("generation", 1)
            if kind == "Deployment" and body.get("spec") != current.get("spec"):
                generation += 1
                self.reads_since_change[key] = 0
            body["metadata"].update(namespace=ns, resourceVersion=self._next_version(), generation=generation, uid=current["metadata"]["uid"])
            self.objects[key] = body
            self.writes.append(("replace", kind, name))
            return 200, self._with_status(key, body)
