"""Loopback fake of the Kubernetes API server that authenticates and authorizes as a real cluster does.

Served to the official ``kubernetes`` client over HTTP:

- core/v1 ConfigMaps and apps/v1 Deployments (get, list with label/field selectors, create, update, patch,
  delete), coordination.k8s.io/v1 Leases (the same; an update must carry ``resourceVersion`` and a PUT to
  a missing Lease creates it, as the Lease strategy allows), Namespaces and ServiceAccounts (read),
  authentication.k8s.io/v1 SelfSubjectReviews and authorization.k8s.io/v1 SelfSubjectAccessReviews.
- Authentication: a bearer token per ServiceAccount or user (:meth:`FakeKubeApi.client_for_service_account`,
  :meth:`~FakeKubeApi.client_for_user`, :meth:`~FakeKubeApi.admin_client`); none or an unknown one is 401,
  and a ServiceAccount token stops working when its ServiceAccount is gone.
- Authorization: RBAC over the Roles/ClusterRoles/bindings loaded with :meth:`~FakeKubeApi.load_objects` or
  :meth:`~FakeKubeApi.apply_overlay` plus the bootstrap policy (``kube_rbac``); a refusal is 403 with the
  real ``Status`` body. Authorization comes before existence, as on a real server.
- Writes bump a global ``resourceVersion``; a stale one on PUT, on a PATCH that carries one, or in a
  DELETE precondition is 409 Conflict; a no-op update writes nothing. A Deployment spec change bumps
  ``metadata.generation``; its status turns ready after ``ready_after_reads`` reads, unless its pod
  template carries an annotation value in ``unready_values`` or ``pod_ready(namespace, name, template)``
  (the tests' kubelet, called on each read) says no. Creating in a missing namespace is 404.
"""

from __future__ import annotations

import copy
import secrets
import shutil
import subprocess
import threading
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Callable
from urllib.parse import parse_qs, urlparse

import yaml

from tests.fakes.kube_patch import PatchError, apply_patch
from tests.fakes.kube_rbac import RbacAuthorizer, RequestAttributes, UserInfo, bootstrap_policy, service_account_user
from tests.fakes.loopback import JsonHandler

# kind -> (apiVersion, namespaced): what load_objects accepts, as `kubectl apply` would know the kinds.
KINDS = {
    "Namespace": ("v1", False),
    "ConfigMap": ("v1", True),
    "Secret": ("v1", True),
    "ServiceAccount": ("v1", True),
    "Service": ("v1", True),
    "PersistentVolumeClaim": ("v1", True),
    "Deployment": ("apps/v1", True),
    "Lease": ("coordination.k8s.io/v1", True),
    "PodDisruptionBudget": ("policy/v1", True),
    "NetworkPolicy": ("networking.k8s.io/v1", True),
    "Role": ("rbac.authorization.k8s.io/v1", True),
    "RoleBinding": ("rbac.authorization.k8s.io/v1", True),
    "ClusterRole": ("rbac.authorization.k8s.io/v1", False),
    "ClusterRoleBinding": ("rbac.authorization.k8s.io/v1", False),
    "Job": ("batch/v1", True),
}
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
# Kubeflow's own RBAC for KFP's runner ServiceAccounts (standalone and multi-user), vendored with its sources.
KUBEFLOW_RBAC = Path(__file__).with_name("kubeflow_rbac.yaml")


@dataclass(frozen=True)
class Resource:
    """One REST resource the fake serves: where it lives and which verbs it answers."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    verbs: frozenset
    unconditional_update: bool = True  # the registry strategy's AllowUnconditionalUpdate
    create_on_update: bool = False  # ... and AllowCreateOnUpdate

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """``schema.GroupResource.String()``: how error messages name the resource."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


CRUD = frozenset({"get", "list", "watch", "create", "update", "patch", "delete"})
READ = frozenset({"get", "list", "watch"})
RESOURCES = [
    Resource("", "v1", "configmaps", "ConfigMap", True, CRUD),
    Resource("", "v1", "namespaces", "Namespace", False, READ),
    Resource("", "v1", "serviceaccounts", "ServiceAccount", True, READ),
    Resource("apps", "v1", "deployments", "Deployment", True, CRUD),
    Resource(
        "coordination.k8s.io", "v1", "leases", "Lease", True, CRUD, unconditional_update=False, create_on_update=True
    ),
    Resource("authentication.k8s.io", "v1", "selfsubjectreviews", "SelfSubjectReview", False, frozenset({"create"})),
    Resource(
        "authorization.k8s.io",
        "v1",
        "selfsubjectaccessreviews",
        "SelfSubjectAccessReview",
        False,
        frozenset({"create"}),
    ),
]
BY_PATH = {(r.group, r.version, r.plural): r for r in RESOURCES}


def status_body(code: int, reason: str, message: str, details: dict | None = None) -> dict:
    """A ``metav1.Status`` failure as the API server writes it (empty detail fields omitted, as Go does)."""
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
    }
    if details:
        body["details"] = {k: v for k, v in details.items() if v}
    body["code"] = code
    return body


class ApiError(Exception):
    """An answer other than success: HTTP code plus the Status body."""

    def __init__(self, code: int, reason: str, message: str, details: dict | None = None):
        super().__init__(message)
        self.code, self.body = code, status_body(code, reason, message, details)


def _details(resource: Resource, name: str) -> dict:
    return {"name": name, "group": resource.group, "kind": resource.plural}


def not_found(resource: Resource, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{resource.qualified} "{name}" not found', _details(resource, name))


def conflict(resource: Resource, name: str, why: str) -> ApiError:
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {resource.qualified} "{name}": {why}',
        _details(resource, name),
    )


STALE = "the object has been modified; please apply your changes to the latest version and try again"


def forbidden(user: UserInfo, request: RequestAttributes, resource: Resource, reason: str) -> ApiError:
    """The real 403 (``responsewriters.Forbidden`` + ``apierrors.NewForbidden``)."""
    scope = f'in the namespace "{request.namespace}"' if request.namespace else "at the cluster scope"
    why = (
        f'User "{user.username}" cannot {request.verb} resource "{request.resource}" in API group '
        f'"{request.api_group}" {scope}'
    ) + (f": {reason}" if reason else "")
    what = f'{resource.qualified} "{request.name}"' if request.name else resource.qualified
    return ApiError(403, "Forbidden", f"{what} is forbidden: {why}", _details(resource, request.name))


def _selector_matches(selector: str, labels: dict) -> bool:
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key.strip()) != value.strip():
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


class FakeKubeApi:
    """Cluster state plus the HTTP server thread. Use as a context manager; ``host`` is the base URL.

    ``objects`` maps (kind, namespace or "", name) to the stored object; ``audit_log`` lists
    (username, verb, resource, namespace, name, http_code) per request; ``writes`` lists
    (verb, kind, name) for every change, in order.
    """

    def __init__(self, *, namespaces: tuple[str, ...] = ("silverset",)):
        self.objects: dict[tuple[str, str, str], dict] = {}
        self.resource_version = 100
        self.lock = threading.RLock()
        self.ready_after_reads = 1
        self.unready_values: set[str] = set()
        self.pod_ready: Callable[[str, str, dict], bool] | None = None
        self.reads_since_change: dict[tuple[str, str, str], int] = {}
        self.writes: list[tuple[str, str, str]] = []
        self.audit_log: list[tuple[str, str, str, str, str, int]] = []
        self.conflicts = 0
        self.tokens: dict[str, UserInfo] = {}
        self.authorizer = RbacAuthorizer(self.objects)
        self.load_objects(bootstrap_policy())
        self.load_objects(
            [
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
                for ns in SYSTEM_NAMESPACES + namespaces
            ]
        )
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self.host = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "FakeKubeApi":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- identities ------------------------------------------------------------------------------
    def _client(self, user: UserInfo):
        from kubernetes import client

        token = secrets.token_urlsafe(24)
        self.tokens[token] = user
        configuration = client.Configuration()
        configuration.host = self.host
        configuration.api_key = {"authorization": token}
        configuration.api_key_prefix = {"authorization": "Bearer"}
        return client.ApiClient(configuration)

    def client_for_service_account(self, namespace: str, name: str):
        """A ``kubernetes.client.ApiClient`` authenticating as ServiceAccount ``namespace/name`` (which must exist)."""
        account = self.objects.get(("ServiceAccount", namespace, name))
        if account is None:
            raise ValueError(
                f'serviceaccounts "{name}" not found in namespace {namespace!r}: '
                "load the manifests that create it first"
            )
        return self._client(service_account_user(namespace, name, account["metadata"]["uid"]))

    def client_for_user(self, username: str, groups: tuple[str, ...] | list[str] = ()):
        """A client authenticating as a person (as an OIDC token would): ``username`` in ``groups``."""
        return self._client(UserInfo(username, tuple(groups) + ("system:authenticated",)))

    def admin_client(self):
        """Cluster admin (group ``system:masters``), for test set-up only."""
        return self._client(UserInfo("kubernetes-admin", ("system:masters", "system:authenticated")))

    def api_client(self):
        """Deprecated alias of :meth:`admin_client`, for tests written before the fake checked identities."""
        return self.admin_client()

    def authenticate(self, header: str | None) -> UserInfo | None:
        if not header or not header.startswith("Bearer "):
            return None
        user = self.tokens.get(header[len("Bearer ") :].strip())
        if user is not None and user.uid:  # a ServiceAccount token dies with its ServiceAccount
            namespace, name = user.username.split(":")[2:4]
            account = self.objects.get(("ServiceAccount", namespace, name))
            if account is None or account["metadata"]["uid"] != user.uid:
                return None
        return user

    # -- seeding, as a cluster admin's `kubectl apply` -------------------------------------------
    def load_objects(self, objects: list[dict]) -> list[dict]:
        """Create or replace each object as ``kubectl apply`` by a cluster admin would (no RBAC check).

        Namespaced objects without a namespace go to ``default``; a missing namespace, an unknown kind or a
        changed RoleBinding ``roleRef`` raise ValueError, as the real apply fails on them.
        """
        loaded = []
        with self.lock:
            for obj in objects:
                kind = obj.get("kind")
                if kind not in KINDS:
                    raise ValueError(f'no matches for kind "{kind}" in version "{obj.get("apiVersion")}"')
                api_version, namespaced = KINDS[kind]
                if obj.get("apiVersion") != api_version:
                    raise ValueError(f'no matches for kind "{kind}" in version "{obj.get("apiVersion")}"')
                obj = copy.deepcopy(obj)
                meta = obj.setdefault("metadata", {})
                namespace = (meta.get("namespace") or "default") if namespaced else ""
                if namespaced and ("Namespace", "", namespace) not in self.objects:
                    raise ValueError(f'namespaces "{namespace}" not found (applying {kind} {meta.get("name")})')
                key = (kind, namespace, meta["name"])
                current = self.objects.get(key)
                if (
                    kind in ("RoleBinding", "ClusterRoleBinding")
                    and current
                    and current.get("roleRef") != obj.get("roleRef")
                ):
                    raise ValueError(
                        f'{kind} "{meta["name"]}" is invalid: roleRef: Invalid value: cannot change roleRef'
                    )
                if namespaced:
                    meta["namespace"] = namespace
                self._store(key, obj, current, verb="update" if current else "create")
                loaded.append(obj)
        return loaded

    def load_yaml(self, path: str | Path) -> list[dict]:
        """:meth:`load_objects` every document of a YAML file (e.g. ``KUBEFLOW_RBAC``)."""
        return self.load_objects([doc for doc in yaml.safe_load_all(Path(path).read_text()) if doc])

    def apply_overlay(self, path: str | Path) -> list[dict]:
        """Render ``path`` with ``kubectl kustomize`` and :meth:`load_objects` the result; returns the objects."""
        kubectl = shutil.which("kubectl")
        if kubectl is None:
            raise RuntimeError("kubectl is not installed (the machine image provides it)")
        rendered = subprocess.run(
            [kubectl, "kustomize", str(path)], check=True, capture_output=True, text=True, timeout=60
        ).stdout
        return self.load_objects([doc for doc in yaml.safe_load_all(rendered) if doc])

    # -- storage ---------------------------------------------------------------------------------
    def _next_version(self) -> str:
        self.resource_version += 1
        return str(self.resource_version)

    def _store(self, key, obj: dict, current: dict | None, *, verb: str) -> dict:
        """Write ``obj`` at ``key`` with fresh resourceVersion/uid/generation; unchanged content writes nothing."""
        obj.pop("status", None)
        obj["apiVersion"], _ = KINDS[key[0]]
        obj["kind"] = key[0]
        meta = obj["metadata"]
        if current is not None:
            meta["uid"] = current["metadata"]["uid"]
            meta["creationTimestamp"] = current["metadata"].get("creationTimestamp")
            if key[0] == "Deployment":
                meta["generation"] = current["metadata"].get("generation", 1)
            meta["resourceVersion"] = current["metadata"]["resourceVersion"]
            if obj == current:
                return current
            if key[0] == "Deployment" and obj.get("spec") != current.get("spec"):
                meta["generation"] += 1
                self.reads_since_change[key] = 0
        else:
            meta["uid"] = f"uid-{self.resource_version + 1}"
            meta["creationTimestamp"] = "2026-01-01T00:00:00Z"
            if key[0] == "Deployment":
                meta["generation"] = 1
            self.reads_since_change[key] = 0
        meta["resourceVersion"] = self._next_version()
        self.objects[key] = obj
        self.writes.append((verb, key[0], key[2]))
        return obj

    def _deployment_status(self, key, obj: dict) -> dict:
        obj = copy.deepcopy(obj)
        spec = obj.get("spec", {})
        replicas = spec.get("replicas", 1)
        template = spec.get("template", {})
        annotations = template.get("metadata", {}).get("annotations") or {}
        ready = not any(v in self.unready_values for v in annotations.values())
        ready = ready and self.reads_since_change.get(key, 0) >= self.ready_after_reads
        if ready and self.pod_ready is not None:
            ready = bool(self.pod_ready(key[1], key[2], copy.deepcopy(template)))
        count = replicas if ready else 0
        obj["status"] = {
            "observedGeneration": obj["metadata"].get("generation", 1),
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": count,
            "availableReplicas": count,
            "unavailableReplicas": replicas - count or None,
        }
        return obj

    def _shown(self, key, obj: dict) -> dict:
        return self._deployment_status(key, obj) if key[0] == "Deployment" else copy.deepcopy(obj)

    # -- the REST verbs (called with the lock not held; each takes it) ----------------------------
    def get(self, resource: Resource, namespace: str, name: str) -> dict:
        key = (resource.kind, namespace, name)
        with self.lock:
            if key not in self.objects:
                raise not_found(resource, name)
            self.reads_since_change[key] = self.reads_since_change.get(key, 0) + 1
            obj = copy.deepcopy(self.objects[key])
        return self._shown(key, obj)

    def list(self, resource: Resource, namespace: str, query: dict) -> dict:
        labels = query.get("labelSelector", [""])[0]
        if "(" in labels:
            raise ApiError(400, "BadRequest", f"set-based label selectors are not served by this fake: {labels!r}")
        fields = dict(t.split("=", 1) for t in query.get("fieldSelector", [""])[0].split(",") if "=" in t)
        with self.lock:
            found = [
                (k, copy.deepcopy(o))
                for k, o in sorted(self.objects.items())
                if k[0] == resource.kind
                and (not resource.namespaced or not namespace or k[1] == namespace)
                and _selector_matches(labels, o["metadata"].get("labels") or {})
                and fields.get("metadata.name", k[2]) == k[2]
                and fields.get("metadata.namespace", k[1]) == k[1]
            ]
            version = str(self.resource_version)
        return {
            "kind": f"{resource.kind}List",
            "apiVersion": resource.api_version,
            "metadata": {"resourceVersion": version},
            "items": [self._shown(k, o) for k, o in found],
        }

    def create(self, resource: Resource, namespace: str, body: dict, *, dry_run: bool = False) -> dict:
        body = copy.deepcopy(body)
        meta = body.setdefault("metadata", {})
        if meta.get("namespace") and meta["namespace"] != namespace:
            raise ApiError(
                400,
                "BadRequest",
                "the namespace of the provided object does not match the namespace sent on the request",
            )
        name = meta.get("name")
        if not name:
            raise ApiError(
                422,
                "Invalid",
                f'{resource.kind} "" is invalid: metadata.name: Required value: name or generateName is required',
                {"group": resource.group, "kind": resource.kind},
            )
        with self.lock:
            if resource.namespaced and ("Namespace", "", namespace) not in self.objects:
                raise ApiError(
                    404, "NotFound", f'namespaces "{namespace}" not found', {"name": namespace, "kind": "namespaces"}
                )
            key = (resource.kind, namespace, name)
            if key in self.objects:
                raise ApiError(
                    409, "AlreadyExists", f'{resource.qualified} "{name}" already exists', _details(resource, name)
                )
            meta.pop("resourceVersion", None)
            if resource.namespaced:
                meta["namespace"] = namespace
            stored = body if dry_run else self._store(key, body, None, verb="create")
            return self._shown(key, stored)

    def update(
        self,
        resource: Resource,
        namespace: str,
        name: str,
        body: dict,
        *,
        may_create: Callable[[], None],
        dry_run: bool = False,
    ) -> tuple[int, dict]:
        body = copy.deepcopy(body)
        meta = body.setdefault("metadata", {})
        if meta.get("name") != name:
            raise ApiError(
                400,
                "BadRequest",
                "the name of the object (%s) does not match the name on the URL (%s)" % (meta.get("name"), name),
            )
        with self.lock:
            key = (resource.kind, namespace, name)
            current = self.objects.get(key)
            if current is None:
                if not resource.create_on_update or meta.get("resourceVersion"):
                    raise not_found(resource, name)
                may_create()  # creating through PUT also needs the create verb
                return 201, self.create(resource, namespace, body, dry_run=dry_run)
            sent = meta.get("resourceVersion")
            if not sent and not resource.unconditional_update:
                raise ApiError(
                    422,
                    "Invalid",
                    f'{resource.qualified} "{name}" is invalid: metadata.resourceVersion: Invalid value: 0x0: '
                    "must be specified for an update",
                    {"name": name, "group": resource.group, "kind": resource.plural},
                )
            if sent and sent != current["metadata"]["resourceVersion"]:
                self.conflicts += 1
                raise conflict(resource, name, STALE)
            meta["namespace"] = namespace
            stored = body if dry_run else self._store(key, body, current, verb="update")
            return 200, self._shown(key, stored)

    def patch(
        self, resource: Resource, namespace: str, name: str, content_type: str, patch, *, dry_run: bool = False
    ) -> dict:
        with self.lock:
            key = (resource.kind, namespace, name)
            current = self.objects.get(key)
            if current is None:
                raise not_found(resource, name)
            try:
                patched = apply_patch(content_type, copy.deepcopy(current), patch)
            except PatchError as exc:
                raise ApiError(
                    exc.status, {400: "BadRequest", 415: "UnsupportedMediaType"}.get(exc.status, "Invalid"), str(exc)
                )
            meta = patched.setdefault("metadata", {})
            if meta.get("resourceVersion") != current["metadata"]["resourceVersion"]:
                self.conflicts += 1
                raise conflict(resource, name, STALE)  # the patch carried a stale resourceVersion
            if meta.get("name") != name or meta.get("namespace", namespace) != namespace:
                raise ApiError(400, "BadRequest", "metadata.name and metadata.namespace cannot be changed by a patch")
            stored = patched if dry_run else self._store(key, patched, current, verb="patch")
            return self._shown(key, stored)

    def delete(self, resource: Resource, namespace: str, name: str, options: dict, *, dry_run: bool = False) -> dict:
        with self.lock:
            key = (resource.kind, namespace, name)
            current = self.objects.get(key)
            if current is None:
                raise not_found(resource, name)
            preconditions = (options or {}).get("preconditions") or {}
            for field, label in (("resourceVersion", "ResourceVersion"), ("uid", "UID")):
                wanted = preconditions.get(field)
                if wanted and wanted != current["metadata"][field]:
                    raise conflict(
                        resource,
                        name,
                        f"Precondition failed: {label} in precondition: {wanted}, "
                        f"{label} in object meta: {current['metadata'][field]}",
                    )
            if not dry_run:
                del self.objects[key]
                self.writes.append(("delete", resource.kind, name))
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": {
                "name": name,
                "group": resource.group,
                "kind": resource.plural,
                "uid": current["metadata"]["uid"],
            },
        }

    def review(self, resource: Resource, user: UserInfo, body: dict) -> dict:
        """SelfSubjectReview (who am I) or SelfSubjectAccessReview (may I), answered for ``user``."""
        body = copy.deepcopy(body)
        body.update(apiVersion=resource.api_version, kind=resource.kind)
        body.setdefault("metadata", {})
        if resource.kind == "SelfSubjectReview":
            info = {"username": user.username, "groups": list(user.groups)} | ({"uid": user.uid} if user.uid else {})
            body["status"] = {"userInfo": info}
            return body
        attrs = (body.get("spec") or {}).get("resourceAttributes")
        if not attrs:
            body["status"] = {"allowed": False, "reason": "the fake answers resourceAttributes only"}
            return body
        request = RequestAttributes(
            attrs.get("verb", ""),
            attrs.get("group", ""),
            attrs.get("resource", ""),
            attrs.get("namespace", ""),
            attrs.get("name", ""),
            attrs.get("subresource", ""),
        )
        allowed, reason = self.authorizer.authorize(user, request)
        body["status"] = {"allowed": allowed} | ({"reason": reason} if reason else {})
        return body


def kfp_cluster(overlay: str | Path) -> FakeKubeApi:
    """A fake cluster as a platform team has it: Kubeflow's runner RBAC (both layouts, ``KUBEFLOW_RBAC``)
    installed, then ``overlay`` applied by an admin. Not started: use it as a context manager."""
    fake = FakeKubeApi(namespaces=())
    fake.load_yaml(KUBEFLOW_RBAC)
    fake.apply_overlay(overlay)
    return fake


def _route(path: str) -> tuple[Resource, str, str] | None:
    """(resource, namespace, name) for an API path, or None when the fake serves no such resource."""
    parts = [p for p in path.split("/") if p]
    if parts[:2] == ["api", "v1"]:
        group, version, rest = "", "v1", parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    namespace = ""
    if len(rest) >= 3 and rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
    if not rest or len(rest) > 2:
        return None
    resource = BY_PATH.get((group, version, rest[0]))
    name = rest[1] if len(rest) == 2 else ""
    if resource is None or (namespace and not resource.namespaced) or (resource.namespaced and name and not namespace):
        return None
    return resource, namespace, name


def _handler_for(fake: FakeKubeApi):
    class Handler(JsonHandler):
        def _serve(self, method: str) -> None:
            url = urlparse(self.path)
            query = parse_qs(url.query)
            user = fake.authenticate(self.headers.get("Authorization"))
            route = _route(url.path)
            resource, namespace, name = route if route else (None, "", "")
            verb = {
                "GET": "watch" if query.get("watch", ["false"])[0] in ("true", "1") else ("get" if name else "list"),
                "POST": "create",
                "PUT": "update",
                "PATCH": "patch",
                "DELETE": "delete",
            }[method]
            code, body = 500, {}
            try:
                if user is None:
                    raise ApiError(401, "Unauthorized", "Unauthorized")
                if resource is None:
                    raise ApiError(404, "NotFound", "the server could not find the requested resource")
                request = RequestAttributes(verb, resource.group, resource.plural, namespace, name)
                allowed, reason = fake.authorizer.authorize(user, request)
                if not allowed:
                    raise forbidden(user, request, resource, reason)
                if (
                    verb not in resource.verbs
                    or (verb == "create" and name)
                    or (verb in ("update", "patch", "delete") and not name)
                ):
                    raise ApiError(
                        405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
                    )
                code, body = self._dispatch(user, resource, namespace, name, verb, query)
            except ApiError as exc:
                code, body = exc.code, exc.body
            fake.audit_log.append(
                (user.username if user else "", verb, resource.plural if resource else url.path, namespace, name, code)
            )
            self._send(code, body)

        def _dispatch(self, user, resource, namespace, name, verb, query) -> tuple[int, dict]:
            dry_run = bool(query.get("dryRun"))
            if verb == "watch":
                raise ApiError(405, "MethodNotAllowed", "the fake serves no watches; poll with get/list")
            if verb == "get":
                return 200, fake.get(resource, namespace, name)
            if verb == "list":
                return 200, fake.list(resource, namespace, query)
            if verb == "patch":
                content_type = self.headers.get("Content-Type", "")
                if "yaml" in content_type:
                    return 200, fake.patch(resource, namespace, name, content_type, None)  # refused: 415
                return 200, fake.patch(resource, namespace, name, content_type, self._body(), dry_run=dry_run)
            if verb == "delete":
                return 200, fake.delete(resource, namespace, name, self._body(), dry_run=dry_run)
            if resource.kind in ("SelfSubjectReview", "SelfSubjectAccessReview"):
                return 201, fake.review(resource, user, self._body())
            if verb == "create":
                return 201, fake.create(resource, namespace, self._body(), dry_run=dry_run)

            def may_create() -> None:
                request = RequestAttributes("create", resource.group, resource.plural, namespace, name)
                allowed, reason = fake.authorizer.authorize(user, request)
                if not allowed:
                    raise forbidden(user, request, resource, reason)

            return fake.update(resource, namespace, name, self._body(), may_create=may_create, dry_run=dry_run)

        def do_GET(self):
            self._serve("GET")

        def do_POST(self):
            self._serve("POST")

        def do_PUT(self):
            self._serve("PUT")

        def do_PATCH(self):
            self._serve("PATCH")

        def do_DELETE(self):
            self._serve("DELETE")

    return Handler
