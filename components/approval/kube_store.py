"""The Kubernetes approval store: requests are ConfigMaps pipeline steps create; decisions go into one audit ConfigMap.

Layout in the control namespace (``kubernetes://silverset-control``), matching the RBAC in
``manifests/base/approvals.yaml`` and the overlays:

- ``silverset-approval-<first 40 hex of the digest>``: one request, created by the approval step
  (Role ``silverset-pipeline-steps``: configmaps get/list/watch/create). Nobody's role may update it,
  so the request *is* the record of submission; the step never writes the audit.
- ``silverset-approvals-audit``: the hash-chained audit (key ``audit.jsonl``, one sealed entry per
  line), shipped empty by the manifests. Only group ``silverset-approvers`` may update it, and only
  this one ConfigMap (``resourceNames``); every append is a PUT carrying the read ``resourceVersion``,
  so two approvers deciding at once get a 409 for the later one, which re-reads and retries.

The API server refuses a ConfigMap whose data exceeds 1 MiB (1,048,576 bytes). A decision entry with
a one-line reason is about 550 bytes of JSON (measured in the tests), so the audit ConfigMap holds
about 1,900 decisions; reasons are capped at 2,000 characters (an entry at most ~2.5 KB, so never
fewer than ~420). ``append`` refuses with a clear error before the limit, and an operator then
archives the chain (copy it out, start a new one whose first entry links to the archived head).

The approver's identity is what the API server says it is (a SelfSubjectReview), never a flag.
"""

from __future__ import annotations

from silverset.components.common.errors import SilversetInputError
from silverset.components.common.identity import check_identity

from .chain import head_hash
from .model import ApprovalRequest, AuditEntry
from .store import Conflict

LABELS = {"app.kubernetes.io/name": "silverset", "app.kubernetes.io/component": "approval-request"}
SELECTOR = ",".join(f"{k}={v}" for k, v in LABELS.items())
REQUEST_KEY = "request.json"
AUDIT_CONFIGMAP = "silverset-approvals-audit"
AUDIT_KEY = "audit.jsonl"
CONFIGMAP_LIMIT_BYTES = 1024 * 1024
APPROVERS_GROUP = "silverset-approvers"


class ApprovalForbidden(SilversetInputError):
    """The API server refused the caller (401/403): the caller's identity is the input it cannot use."""


def configmap_name(digest: str) -> str:
    """``silverset-approval-<first 40 hex of the digest>``: a valid DNS-1123 name."""
    hexpart = "".join(c for c in digest.split(":", 1)[-1].lower() if c in "0123456789abcdef")
    if len(hexpart) < 8:
        raise SilversetInputError("candidate digest", f"{digest!r} has fewer than 8 hex digits")
    return f"silverset-approval-{hexpart[:40]}"


class KubernetesApprovalStore:
    """Requests and the audit chain as ConfigMaps in ``namespace`` (see the module docstring)."""

    submissions_chained = False
    allows_auto_approval = False

    def __init__(self, namespace: str, *, api_client=None):
        from kubernetes import client

        self.namespace = namespace
        self.api_client = api_client
        self.core = client.CoreV1Api(api_client)
        self._user: str | None = None

    # -- errors --------------------------------------------------------------------------
    def _refused(self, exc, doing: str) -> Exception:
        """An ApprovalForbidden naming who was refused what, from the API server's Status body."""
        import json

        try:
            message = json.loads(exc.body).get("message", exc.reason)
        except (TypeError, ValueError):
            message = exc.reason
        who = self._user or "the caller"
        if who.startswith("system:serviceaccount:"):
            hint = (
                "a pipeline step may create and read requests (Role silverset-pipeline-steps) but never decide; "
                f"deciding needs a person in group '{APPROVERS_GROUP}'"
            )
        else:
            hint = f"approvers need membership in group '{APPROVERS_GROUP}' (Role silverset-approver)"
        return ApprovalForbidden(
            f"identity {who!r}",
            f"the Kubernetes API server refused to {doing} in namespace "
            f"'{self.namespace}' (HTTP {exc.status}: {message}); {hint}",
        )

    # -- requests ------------------------------------------------------------------------
    def load(self, digest: str) -> ApprovalRequest | None:
        from kubernetes.client.exceptions import ApiException

        try:
            cm = self.core.read_namespaced_config_map(configmap_name(digest), self.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            if exc.status in (401, 403):
                raise self._refused(exc, "read an approval request") from None
            raise
        request = ApprovalRequest.model_validate_json(cm.data[REQUEST_KEY])
        return (
            request if request.candidate_digest == digest else None
        )  # the name holds 40 hex: a prefix is not the digest

    def list(self) -> list[ApprovalRequest]:
        from kubernetes.client.exceptions import ApiException

        try:
            items = self.core.list_namespaced_config_map(self.namespace, label_selector=SELECTOR).items
        except ApiException as exc:
            if exc.status in (401, 403):
                raise self._refused(exc, "list approval requests") from None
            raise
        found = [ApprovalRequest.model_validate_json(cm.data[REQUEST_KEY]) for cm in items]
        return sorted(found, key=lambda r: r.created_at)

    def create(self, request: ApprovalRequest, submit: AuditEntry) -> None:
        """Create the request ConfigMap; ``submit`` is not written (the created object is the submission record)."""
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        labels = dict(LABELS, **{"silverset.dev/attribute": request.attribute})
        body = client.V1ConfigMap(
            metadata=client.V1ObjectMeta(
                name=configmap_name(request.candidate_digest), namespace=self.namespace, labels=labels
            ),
            data={REQUEST_KEY: request.as_submitted().model_dump_json()},
        )
        try:
            self.core.create_namespaced_config_map(self.namespace, body)
        except ApiException as exc:
            if exc.status == 409:
                raise Conflict(f"request for {request.candidate_digest} already exists") from None
            if exc.status in (401, 403):
                raise self._refused(exc, "create an approval request") from None
            raise

    # -- the audit chain -----------------------------------------------------------------
    def _read_audit(self):
        from kubernetes.client.exceptions import ApiException

        try:
            return self.core.read_namespaced_config_map(AUDIT_CONFIGMAP, self.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            if exc.status in (401, 403):
                raise self._refused(exc, "read the approvals audit") from None
            raise

    @staticmethod
    def _entries(cm) -> list[AuditEntry]:
        text = (cm.data or {}).get(AUDIT_KEY, "") if cm is not None else ""
        return [AuditEntry.model_validate_json(line) for line in text.splitlines() if line.strip()]

    def chain(self) -> tuple[list[AuditEntry], str]:
        cm = self._read_audit()
        return self._entries(cm), (cm.metadata.resource_version if cm is not None else "")

    def append(self, entry: AuditEntry, *, after: str) -> AuditEntry:
        from kubernetes.client.exceptions import ApiException

        cm = self._read_audit()
        if cm is None:
            raise SilversetInputError(
                f"approval store 'kubernetes://{self.namespace}'",
                f"ConfigMap '{AUDIT_CONFIGMAP}' does not exist; apply manifests/base/approvals.yaml",
            )
        if cm.metadata.resource_version != after:
            raise Conflict(f"the audit changed since resourceVersion {after}")
        entries = self._entries(cm)
        sealed = entry.sealed(head_hash(entries))
        text = "".join(e.model_dump_json() + "\n" for e in entries) + sealed.model_dump_json() + "\n"
        size = len(AUDIT_KEY) + len(text.encode("utf-8"))
        if size > CONFIGMAP_LIMIT_BYTES:
            raise SilversetInputError(
                f"ConfigMap '{AUDIT_CONFIGMAP}'",
                f"full: {len(entries)} entries; one more would make it {size} bytes, "
                f"over the API server's {CONFIGMAP_LIMIT_BYTES}-byte limit; archive the chain",
            )
        cm.data = dict(cm.data or {}, **{AUDIT_KEY: text})
        cm.metadata.resource_version = after  # the API server compares it: a stale write gets 409
        try:
            self.core.replace_namespaced_config_map(AUDIT_CONFIGMAP, self.namespace, cm)
        except ApiException as exc:
            if exc.status == 409:
                raise Conflict(f"the audit changed since resourceVersion {after}") from None
            if exc.status in (401, 403):
                raise self._refused(exc, f"update ConfigMap '{AUDIT_CONFIGMAP}'") from None
            raise
        return sealed

    # -- who is calling ------------------------------------------------------------------
    def authenticated_user(self) -> str:
        """The caller's username from a SelfSubjectReview (authentication.k8s.io/v1), checked as an identity."""
        if self._user is None:
            from kubernetes import client
            from kubernetes.client.exceptions import ApiException

            try:
                review = client.AuthenticationV1Api(self.api_client).create_self_subject_review(
                    client.V1SelfSubjectReview(api_version="authentication.k8s.io/v1", kind="SelfSubjectReview")
                )
            except ApiException as exc:
                if exc.status in (401, 403):
                    raise self._refused(exc, "tell who the caller is (SelfSubjectReview)") from None
                raise
            user_info = review.status.user_info if review.status is not None else None
            self._user = check_identity(
                user_info.username if user_info is not None else "", what="SelfSubjectReview username"
            )
        return self._user
