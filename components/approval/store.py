"""Approval request stores: SQLite (embedded default) and Kubernetes ConfigMaps, both compare-and-swap.

A backend only loads, creates and conditionally replaces one request together with the audit entries
that change appends; policy lives in ``policy.py``. ``Conflict`` means someone else changed the request
since it was read: the caller re-reads and retries.
"""
from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Protocol

from silverset.components.common.errors import SilversetInputError

from .model import ApprovalRequest, AuditEntry


class Conflict(RuntimeError):
    """The request changed since it was read (optimistic concurrency)."""


class ApprovalStore(Protocol):
    def load(self, digest: str) -> tuple[ApprovalRequest, str] | None:
        """(request, revision token) or None."""

    def create(self, request: ApprovalRequest, entry: AuditEntry) -> None:
        """Store a new request; Conflict if it already exists."""

    def replace(self, request: ApprovalRequest, revision: str, entry: AuditEntry) -> None:
        """Replace the request if still at ``revision``; append ``entry`` to the audit log."""

    def list(self) -> list[ApprovalRequest]: ...

    def audit(self, digest: str | None = None) -> list[AuditEntry]: ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS approval_requests (
  candidate_digest TEXT PRIMARY KEY,
  body TEXT NOT NULL,
  revision INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS approval_audit (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  candidate_digest TEXT NOT NULL,
  body TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS approval_audit_no_update BEFORE UPDATE ON approval_audit
  BEGIN SELECT RAISE(ABORT, 'the approval audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS approval_audit_no_delete BEFORE DELETE ON approval_audit
  BEGIN SELECT RAISE(ABORT, 'the approval audit log is append-only'); END;
"""


class SqliteApprovalStore:
    """Requests and an append-only audit table in one SQLite file (triggers refuse UPDATE/DELETE on audit)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self._connect() as db:
            db.executescript(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            self._local.db = db
        return db

    def load(self, digest: str):
        row = self._connect().execute("SELECT body, revision FROM approval_requests WHERE candidate_digest = ?", (digest,)).fetchone()
        return None if row is None else (ApprovalRequest.model_validate_json(row[0]), str(row[1]))

    def create(self, request: ApprovalRequest, entry: AuditEntry) -> None:
        db = self._connect()
        try:
            db.execute("BEGIN IMMEDIATE")
            db.execute("INSERT INTO approval_requests VALUES (?, ?, 1)", (request.candidate_digest, request.model_dump_json()))
            db.execute("INSERT INTO approval_audit (candidate_digest, body) VALUES (?, ?)", (entry.candidate_digest, entry.model_dump_json()))
            db.execute("COMMIT")
        except sqlite3.IntegrityError:
            db.execute("ROLLBACK")
            raise Conflict(f"request for {request.candidate_digest} already exists") from None

    def replace(self, request: ApprovalRequest, revision: str, entry: AuditEntry) -> None:
        db = self._connect()
        db.execute("BEGIN IMMEDIATE")
        try:
            cur = db.execute(
                "UPDATE approval_requests SET body = ?, revision = revision + 1 WHERE candidate_digest = ? AND revision = ?",
                (request.model_dump_json(), request.candidate_digest, int(revision)),
            )
            if cur.rowcount != 1:
                raise Conflict(f"request for {request.candidate_digest} changed since revision {revision}")
            db.execute("INSERT INTO approval_audit (candidate_digest, body) VALUES (?, ?)", (entry.candidate_digest, entry.model_dump_json()))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def list(self) -> list[ApprovalRequest]:
        rows = self._connect().execute("SELECT body FROM approval_requests ORDER BY rowid").fetchall()
        return [ApprovalRequest.model_validate_json(r[0]) for r in rows]

    def audit(self, digest: str | None = None) -> list[AuditEntry]:
        sql, args = "SELECT body FROM approval_audit", ()
        if digest is not None:
            sql, args = sql + " WHERE candidate_digest = ?", (digest,)
        return [AuditEntry.model_validate_json(r[0]) for r in self._connect().execute(sql + " ORDER BY id", args).fetchall()]


LABELS = {"app.kubernetes.io/name": "silverset", "app.kubernetes.io/component": "approval-request"}
SELECTOR = ",".join(f"{k}={v}" for k, v in LABELS.items())
REQUEST_KEY = "request.json"
AUDIT_KEY = "audit.jsonl"


def configmap_name(digest: str) -> str:
    """``silverset-approval-<first 40 hex of the digest>``: a valid DNS-1123 name."""
    hexpart = "".join(c for c in digest.split(":", 1)[-1].lower() if c in "0123456789abcdef")
    if len(hexpart) < 8:
        raise SilversetInputError("candidate digest", f"{digest!r} has fewer than 8 hex digits")
    return f"silverset-approval-{hexpart[:40]}"


class KubernetesApprovalStore:
    """One ConfigMap per request; its ``audit.jsonl`` only ever grows. Updates are PUTs carrying the
    read ``resourceVersion``, so the API server rejects a stale write with 409 (-> Conflict)."""

    def __init__(self, namespace: str, *, api_client=None):
        from kubernetes import client

        self.namespace = namespace
        self.core = client.CoreV1Api(api_client)

    def load(self, digest: str):
        from kubernetes.client.exceptions import ApiException

        try:
            cm = self.core.read_namespaced_config_map(configmap_name(digest), self.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return ApprovalRequest.model_validate_json(cm.data[REQUEST_KEY]), cm.metadata.resource_version

    def _body(self, request: ApprovalRequest, audit_text: str, resource_version: str | None):
        from kubernetes import client

        labels = dict(LABELS, **{"silverset.dev/attribute": request.attribute, "silverset.dev/state": request.state.value})
        return client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name=configmap_name(request.candidate_digest), namespace=self.namespace,
                                         labels=labels, resource_version=resource_version),
            data={REQUEST_KEY: request.model_dump_json(), AUDIT_KEY: audit_text},
        )

    def create(self, request: ApprovalRequest, entry: AuditEntry) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            self.core.create_namespaced_config_map(self.namespace, self._body(request, entry.model_dump_json() + "\n", None))
        except ApiException as exc:
            if exc.status == 409:
                raise Conflict(f"request for {request.candidate_digest} already exists") from None
            raise

    def replace(self, request: ApprovalRequest, revision: str, entry: AuditEntry) -> None:
        from kubernetes.client.exceptions import ApiException

        name = configmap_name(request.candidate_digest)
        current = self.core.read_namespaced_config_map(name, self.namespace)
        if current.metadata.resource_version != revision:
            raise Conflict(f"request for {request.candidate_digest} changed since resourceVersion {revision}")
        audit_text = (current.data or {}).get(AUDIT_KEY, "") + entry.model_dump_json() + "\n"
        try:
            self.core.replace_namespaced_config_map(name, self.namespace, self._body(request, audit_text, revision))
        except ApiException as exc:
            if exc.status == 409:
                raise Conflict(f"request for {request.candidate_digest} changed since resourceVersion {revision}") from None
            raise

    def list(self) -> list[ApprovalRequest]:
        items = self.core.list_namespaced_config_map(self.namespace, label_selector=SELECTOR).items
        found = [ApprovalRequest.model_validate_json(cm.data[REQUEST_KEY]) for cm in items]
        return sorted(found, key=lambda r: r.created_at)

    def audit(self, digest: str | None = None) -> list[AuditEntry]:
        if digest is not None:
            try:
                cms = [self.core.read_namespaced_config_map(configmap_name(digest), self.namespace)]
            except Exception:  # noqa: BLE001 - no request, no audit
                return []
        else:
            cms = self.core.list_namespaced_config_map(self.namespace, label_selector=SELECTOR).items
        entries = [AuditEntry.model_validate_json(line) for cm in cms for line in (cm.data or {}).get(AUDIT_KEY, "").splitlines() if line]
        return sorted(entries, key=lambda e: e.at)


def open_store(uri: str, *, api_client=None) -> ApprovalStore:
    """``sqlite:///relative.db``, ``sqlite:////abs/approvals.db``, a plain path, or ``kubernetes://NAMESPACE``."""
    if uri.startswith("kubernetes://"):
        namespace = uri[len("kubernetes://"):].strip("/")
        if not namespace:
            raise SilversetInputError("approval store", f"{uri!r} names no namespace (kubernetes://NAMESPACE)")
        if api_client is None:
            from silverset.components.common.kube import load_api_client

            api_client = load_api_client()
        return KubernetesApprovalStore(namespace, api_client=api_client)
    # SQLAlchemy's convention: sqlite:///relative.db, sqlite:////absolute.db; a bare path also works.
    path = uri[len("sqlite:///"):] if uri.startswith("sqlite:///") else uri
    return SqliteApprovalStore(path)
