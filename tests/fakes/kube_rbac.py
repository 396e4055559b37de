"""RBAC authorizer of the fake Kubernetes API: the real API server's rule matching, on loaded RBAC objects.

Follows kubernetes' ``plugin/pkg/auth/authorizer/rbac`` (``rbac.go``, ``helpers.go``): a request is allowed
when any ClusterRoleBinding, or any RoleBinding in the request's namespace, has a subject that applies to
the user (User by name, Group by membership, ServiceAccount by ``system:serviceaccount:NS:NAME``, its
namespace defaulting to the binding's) and its role has a rule matching verb, API group, resource
(``*``, exact, ``*/subresource``) and, when the rule lists resourceNames, the request's object name
(a request without a name -- create, list -- never matches such a rule). RBAC only adds: nothing denies.
Aggregated ClusterRoles (``aggregationRule``, as Kubeflow's ``kubeflow-edit``) get the rules of every
ClusterRole their selectors match, as the clusterrole-aggregation controller writes them. A binding
to a role that does not exist grants nothing and is named in the denial's reason, as the real one does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"


@dataclass(frozen=True)
class UserInfo:
    """An authenticated caller, as the API server's authenticators produce it."""

    username: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    extra: dict = field(default_factory=dict, compare=False, hash=False)


def service_account_user(namespace: str, name: str, uid: str = "") -> UserInfo:
    """The identity a ServiceAccount token authenticates as (username and the three implicit groups)."""
    return UserInfo(
        f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}",
        ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"),
        uid,
    )


@dataclass(frozen=True)
class RequestAttributes:
    """What the authorizer decides on (``authorizer.Attributes`` of a resource request)."""

    verb: str
    api_group: str
    resource: str
    namespace: str = ""
    name: str = ""
    subresource: str = ""


def _rule_allows(rule: dict, request: RequestAttributes) -> bool:
    verbs, groups = rule.get("verbs") or [], rule.get("apiGroups") or []
    if not ("*" in verbs or request.verb in verbs):
        return False
    if not ("*" in groups or request.api_group in groups):
        return False
    combined = request.resource + (f"/{request.subresource}" if request.subresource else "")
    resources = rule.get("resources") or []
    if not any(
        r == "*" or r == combined or (request.subresource and r == f"*/{request.subresource}") for r in resources
    ):
        return False
    names = rule.get("resourceNames") or []
    return not names or request.name in names


def _subject_applies(subject: dict, user: UserInfo, binding_namespace: str) -> bool:
    kind = subject.get("kind")
    if kind == "User":
        return subject.get("name") == user.username
    if kind == "Group":
        return subject.get("name") in user.groups
    if kind == "ServiceAccount":
        namespace = subject.get("namespace") or binding_namespace
        return bool(namespace) and user.username == f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{subject.get('name')}"
    return False


def _labels_match(selector: dict, labels: dict) -> bool:
    if selector.get("matchExpressions"):
        raise NotImplementedError("the fake aggregates ClusterRoles by matchLabels only")
    return all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items())


class RbacAuthorizer:
    """Decides requests against the RBAC objects in ``objects`` (the fake's store, keyed (kind, ns, name))."""

    def __init__(self, objects: dict[tuple[str, str, str], dict]):
        self.objects = objects

    def _cluster_role_rules(self, name: str, seen: frozenset = frozenset()) -> list[dict] | None:
        role = self.objects.get(("ClusterRole", "", name))
        if role is None:
            return None
        aggregation = role.get("aggregationRule")
        if not aggregation:
            return list(role.get("rules") or [])
        rules: list[dict] = []  # aggregated roles nest (kubeflow-view is aggregated into kubeflow-edit)
        for (kind, _, other), candidate in sorted(self.objects.items()):
            if (
                kind == "ClusterRole"
                and other != name
                and other not in seen
                and any(
                    _labels_match(s, candidate["metadata"].get("labels") or {})
                    for s in aggregation.get("clusterRoleSelectors") or []
                )
            ):
                rules.extend(self._cluster_role_rules(other, seen | {name}) or [])
        return rules

    def _role_rules(self, role_ref: dict, binding_namespace: str) -> tuple[list[dict], str | None]:
        """The rules a binding grants, or ([], the real "not found" error text) when its role is missing."""
        name = role_ref.get("name", "")
        if role_ref.get("kind") == "ClusterRole":
            rules = self._cluster_role_rules(name)
            return (
                (rules, None)
                if rules is not None
                else ([], f'clusterrole.rbac.authorization.k8s.io "{name}" not found')
            )
        role = self.objects.get(("Role", binding_namespace, name))
        return (
            (list(role.get("rules") or []), None)
            if role is not None
            else ([], f'role.rbac.authorization.k8s.io "{name}" not found')
        )

    def _bindings(self, namespace: str):
        for (kind, ns, _), binding in sorted(self.objects.items()):
            if kind == "ClusterRoleBinding" or (kind == "RoleBinding" and namespace and ns == namespace):
                yield ns, binding

    def authorize(self, user: UserInfo, request: RequestAttributes) -> tuple[bool, str]:
        """(allowed, reason). The reason is empty unless a binding that applies names a missing role."""
        errors: list[str] = []
        for binding_namespace, binding in self._bindings(request.namespace):
            if not any(_subject_applies(s, user, binding_namespace) for s in binding.get("subjects") or []):
                continue
            rules, error = self._role_rules(binding.get("roleRef") or {}, binding_namespace)
            if error:
                errors.append(error)
            if any(_rule_allows(rule, request) for rule in rules):
                return True, ""
        if not errors:
            return False, ""
        return False, "RBAC: " + (errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]")


def bootstrap_policy() -> list[dict]:
    """The bootstrap RBAC every cluster starts with that matters here (``plugin/pkg/auth/authorizer/rbac/
    bootstrappolicy``): ``cluster-admin`` for group ``system:masters`` and ``system:basic-user`` (create
    self-subject reviews) for every authenticated user."""
    rbac = "rbac.authorization.k8s.io/v1"
    return [
        {
            "apiVersion": rbac,
            "kind": "ClusterRole",
            "metadata": {"name": "cluster-admin"},
            "rules": [
                {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
                {"nonResourceURLs": ["*"], "verbs": ["*"]},
            ],
        },
        {
            "apiVersion": rbac,
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "cluster-admin"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:masters"}],
        },
        {
            "apiVersion": rbac,
            "kind": "ClusterRole",
            "metadata": {"name": "system:basic-user"},
            "rules": [
                {
                    "apiGroups": ["authorization.k8s.io"],
                    "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                    "verbs": ["create"],
                },
                {"apiGroups": ["authentication.k8s.io"], "resources": ["selfsubjectreviews"], "verbs": ["create"]},
            ],
        },
        {
            "apiVersion": rbac,
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "system:basic-user"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:basic-user"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:authenticated"}],
        },
    ]
