"""Approval stores: where requests and the audit hash chain live.

SQLite (embedded default) here; Kubernetes in ``kube_store``.

A store keeps each request exactly as submitted (never changed) and appends sealed entries to one
audit chain, compare-and-swap on the chain's head: ``Conflict`` means someone appended since it was
read, and the caller re-reads and retries. Policy and decisions live in ``policy.py`` and ``chain.py``.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from pathlib import Path
from typing import Protocol

from silverset.components.common.errors import SilversetInputError

from .chain import head_hash
from .model import ApprovalRequest, AuditEntry


class Conflict(RuntimeError):
    """The request exists already, or the audit chain grew since it was read (optimistic concurrency)."""


class ApprovalStore(Protocol):
    #: True when submit entries are part of the audit chain; False where the request object is the
    #: record of submission (Kubernetes: pipeline steps may create requests but never write the audit).
    submissions_chained: bool
    #: True only where a scripted demo approval is acceptable (a local SQLite file).
    allows_auto_approval: bool

    def load(self, digest: str) -> ApprovalRequest | None:
        """The request as submitted, or None."""

    def list(self) -> list[ApprovalRequest]:
        """Every request as submitted, oldest first."""

    def create(self, request: ApprovalRequest, submit: AuditEntry) -> None:
        """Store a new request (Conflict if it exists); stores that chain submissions append ``submit`` atomically."""

    def chain(self) -> tuple[list[AuditEntry], str]:
        """The whole audit chain in order, and a token naming its current head for ``append``."""

    def append(self, entry: AuditEntry, *, after: str) -> AuditEntry:
        """Seal ``entry`` onto the chain if its head is still ``after`` (else Conflict); return the sealed entry."""

    def authenticated_user(self) -> str | None:
        """Who the store's backend says the caller is (Kubernetes: a SelfSubjectReview), or None if it cannot tell."""


SCHEMA_VERSION = 2
_SCHEMA = """
CREATE TABLE IF NOT EXISTS approval_requests (
  candidate_digest TEXT PRIMARY KEY,
  body TEXT NOT NULL
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
CREATE TRIGGER IF NOT EXISTS approval_requests_no_update BEFORE UPDATE ON approval_requests
  BEGIN SELECT RAISE(ABORT, 'approval requests never change after submission'); END;
CREATE TRIGGER IF NOT EXISTS approval_requests_no_delete BEFORE DELETE ON approval_requests
  BEGIN SELECT RAISE(ABORT, 'approval requests never change after submission'); END;
"""


class SqliteApprovalStore:
    """Requests and the audit chain in one SQLite file. Triggers refuse UPDATE/DELETE on both tables;
    the hash chain catches what a hand edit past the triggers changes."""

    submissions_chained = True
    allows_auto_approval = True

    def __init__(self, path: str | Path, *, create: bool = True):
        """Open (``create``: or start) the store file; a folder, a non-SQLite file or, without ``create``, a
        missing file is a SilversetInputError naming the path."""
        self.path = Path(path)
        where = f"approval store '{self.path}'"
        if self.path.is_dir():
            raise SilversetInputError(where, "is a folder; give the SQLite file inside it, e.g. approvals.db")
        if not create and not self.path.exists():
            raise SilversetInputError(where, "does not exist (nothing was submitted to it); check --store")
        if self.path.parent.exists() and not self.path.parent.is_dir():
            raise SilversetInputError(where, f"'{self.path.parent}' is a file, not a folder")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        try:
            db = self._connect()
            version = db.execute("PRAGMA user_version").fetchone()[0]
            has_tables = db.execute("SELECT count(*) FROM sqlite_master WHERE name = 'approval_requests'").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise SilversetInputError(where, f"is not a SQLite database ({exc})") from None
        if has_tables and version != SCHEMA_VERSION:
            raise SilversetInputError(
                f"approval store '{self.path}'",
                "was written by an older Silverset without the audit hash chain; start a new store file",
            )
        db.executescript(_SCHEMA)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _connect(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            self._local.db = db
        return db

    def load(self, digest: str) -> ApprovalRequest | None:
        row = (
            self._connect()
            .execute("SELECT body FROM approval_requests WHERE candidate_digest = ?", (digest,))
            .fetchone()
        )
        return None if row is None else ApprovalRequest.model_validate_json(row[0])

    def list(self) -> list[ApprovalRequest]:
        rows = self._connect().execute("SELECT body FROM approval_requests ORDER BY rowid").fetchall()
        return [ApprovalRequest.model_validate_json(r[0]) for r in rows]

    def _entries(self, db: sqlite3.Connection) -> list[AuditEntry]:
        return [
            AuditEntry.model_validate_json(r[0])
            for r in db.execute("SELECT body FROM approval_audit ORDER BY id").fetchall()
        ]

    def _last_hash(self, db: sqlite3.Connection) -> str:
        row = db.execute("SELECT body FROM approval_audit ORDER BY id DESC LIMIT 1").fetchone()
        return head_hash([AuditEntry.model_validate_json(row[0])] if row else [])

    def create(self, request: ApprovalRequest, submit: AuditEntry) -> None:
        db = self._connect()
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute(
                "INSERT INTO approval_requests (candidate_digest, body) VALUES (?, ?)",
                (request.candidate_digest, request.as_submitted().model_dump_json()),
            )
            sealed = submit.sealed(self._last_hash(db))
            db.execute(
                "INSERT INTO approval_audit (candidate_digest, body) VALUES (?, ?)",
                (sealed.candidate_digest, sealed.model_dump_json()),
            )
            db.execute("COMMIT")
        except sqlite3.IntegrityError:
            db.execute("ROLLBACK")
            raise Conflict(f"request for {request.candidate_digest} already exists") from None
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def chain(self) -> tuple[list[AuditEntry], str]:
        entries = self._entries(self._connect())
        return entries, head_hash(entries)

    def append(self, entry: AuditEntry, *, after: str) -> AuditEntry:
        db = self._connect()
        db.execute("BEGIN IMMEDIATE")
        try:
            head = self._last_hash(db)
            if head != after:
                raise Conflict(f"the audit chain grew since it was read (head {after[:16]} is now {head[:16]})")
            sealed = entry.sealed(head)
            db.execute(
                "INSERT INTO approval_audit (candidate_digest, body) VALUES (?, ?)",
                (sealed.candidate_digest, sealed.model_dump_json()),
            )
            db.execute("COMMIT")
            return sealed
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def authenticated_user(self) -> str | None:
        return None  # a local file cannot tell who is at the keyboard: the CLI's --as names the approver


_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def parse_store_uri(uri: str) -> tuple[str, str]:
    """``("kubernetes", NAMESPACE)`` or ``("sqlite", PATH)``; any other scheme (``k8s:silverset``, ``s3://...``)
    is refused rather than taken for a file name. Accepts ``kubernetes://NAMESPACE``,
    ``sqlite:///relative.db``, ``sqlite:////abs/approvals.db`` (SQLAlchemy's convention) or a plain path."""
    scheme = _SCHEME.match(uri)
    if scheme and scheme.group(1) not in ("sqlite", "kubernetes"):
        raise SilversetInputError(
            "approval store",
            f"{uri!r}: unknown scheme '{scheme.group(1)}:'; use kubernetes://NAMESPACE, sqlite:///FILE or a file path",
        )
    if uri.startswith("kubernetes://"):
        namespace = uri[len("kubernetes://") :].strip("/")
        if not _NAMESPACE.match(namespace):
            raise SilversetInputError(
                "approval store",
                f"{uri!r} names no valid namespace (kubernetes://NAMESPACE, "
                "a DNS-1123 label such as silverset-control)",
            )
        return "kubernetes", namespace
    if uri.startswith("sqlite:") and not uri.startswith("sqlite:///"):
        raise SilversetInputError("approval store", f"{uri!r}: write sqlite:///relative.db or sqlite:////absolute.db")
    if not uri:
        raise SilversetInputError(
            "approval store", "is empty; use kubernetes://NAMESPACE, sqlite:///FILE or a file path"
        )
    return "sqlite", uri[len("sqlite:///") :] if uri.startswith("sqlite:///") else uri


def open_store(uri: str, *, api_client=None, create: bool = True) -> ApprovalStore:
    """The store ``uri`` names (see ``parse_store_uri``); ``api_client`` is used for ``kubernetes://``.

    ``create=False`` (commands that only read) refuses a SQLite file that does not exist instead of creating it.
    """
    kind, where = parse_store_uri(uri)
    if kind == "kubernetes":
        from .kube_store import KubernetesApprovalStore

        if api_client is None:
            from silverset.components.common.kube import load_api_client

            api_client = load_api_client()
        return KubernetesApprovalStore(where, api_client=api_client)
    return SqliteApprovalStore(where, create=create)
