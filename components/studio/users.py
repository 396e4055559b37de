"""Studio users: who may label, adjudicate or administer (a local users file), bearer tokens, passwords, sessions.

A users file is YAML::

    users:
      alice@silverset.dev: {role: labeler, token_sha256: <sha256 hex of her bearer token>}
      dana: {role: adjudicator, password: "scrypt$16384$8$1$<salt hex>$<key hex>"}

``silverset studio hash-password`` and ``hash-token`` print the two secret forms; the file never holds a
plain secret. Roles are ordered: an adjudicator may do what a labeler may, an admin everything.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from silverset.components.common.errors import SilversetInputError

ROLES = ("labeler", "adjudicator", "admin")
USER_NAME_PATTERN = r"^[A-Za-z0-9._@+\-]{1,128}$"
SESSION_SECONDS = 12 * 3600
_SCRYPT = re.compile(r"^scrypt\$(\d+)\$(\d+)\$(\d+)\$([0-9a-f]{32,})\$([0-9a-f]{64})$")


def hash_token(token: str) -> str:
    """sha256 hex of a bearer token: what a users file stores (tokens are long and random, so no salt is needed)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def hash_password(password: str, *, n: int = 2**14, r: int = 8, p: int = 1) -> str:
    """A salted scrypt hash, ``scrypt$n$r$p$salt$key``, for a users file."""
    salt = secrets.token_bytes(16)
    key = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=32)
    return f"scrypt${n}${r}${p}${salt.hex()}${key.hex()}"


def _password_matches(password: str, stored: str) -> bool:
    n, r, p, salt, key = _SCRYPT.match(stored).groups()
    got = hashlib.scrypt(password.encode("utf-8"), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p), dklen=32)
    return hmac.compare_digest(got.hex(), key)


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    role: str = Field(pattern=f"^({'|'.join(ROLES)})$")
    token_sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    password: str | None = Field(None, pattern=_SCRYPT.pattern)

    @model_validator(mode="after")
    def _has_a_secret(self) -> "_Entry":
        if self.token_sha256 is None and self.password is None:
            raise ValueError("give token_sha256 or password (a scrypt hash)")
        return self


@dataclass(frozen=True)
class User:
    """A signed-in person: the name recorded on their labels, and their role."""

    name: str
    role: str

    def may(self, role: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)


class Users:
    """The users a studio accepts. ``Users.local(name)`` is the laptop mode: one admin, no sign-in, loopback only."""

    def __init__(self, entries: dict[str, _Entry], *, local_user: str | None = None):
        self._entries = entries
        self.local_user = User(local_user, "admin") if local_user else None
        self._by_token = {e.token_sha256: name for name, e in entries.items() if e.token_sha256}

    @classmethod
    def local(cls, name: str) -> "Users":
        if not re.match(USER_NAME_PATTERN, name):
            raise SilversetInputError("--user", f"'{name}' is not a user name (letters, digits and ._@+- only)")
        return cls({}, local_user=name)

    @classmethod
    def load(cls, path: str | Path) -> "Users":
        what = f"users file '{path}'"
        try:
            data = yaml.safe_load(Path(path).read_bytes().decode("utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise SilversetInputError(what, f"cannot be read as YAML: {type(exc).__name__}") from None
        if not isinstance(data, dict) or not isinstance(data.get("users"), dict) or not data["users"]:
            raise SilversetInputError(
                what, "must be a mapping with a non-empty 'users' mapping of name -> {role, secret}"
            )
        entries = {}
        for name, entry in data["users"].items():
            if not isinstance(name, str) or not re.match(USER_NAME_PATTERN, name):
                raise SilversetInputError(what, f"user name {name!r} is not letters, digits and ._@+- only")
            try:
                entries[name] = _Entry.model_validate(entry)
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first["loc"]) or "entry"
                raise SilversetInputError(
                    what, f"user '{name}': {where}: {first['msg'].removeprefix('Value error, ')}"
                ) from None
        return cls(entries)

    @property
    def has_entries(self) -> bool:
        """Whether anyone may sign in with a password or token."""
        return bool(self._entries)

    def by_token(self, token: str) -> User | None:
        name = self._by_token.get(hash_token(token))
        return User(name, self._entries[name].role) if name else None

    def by_password(self, name: str, password: str) -> User | None:
        entry = self._entries.get(name)
        if entry is None or entry.password is None or not _password_matches(password, entry.password):
            return None
        return User(name, entry.role)


@dataclass
class Session:
    user: User
    csrf_token: str
    expires: float


class Sessions:
    """Cookie sessions held in memory (a restart signs everyone out); each carries its own CSRF token."""

    def __init__(self, *, lifetime_s: float = SESSION_SECONDS):
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()
        self.lifetime_s = lifetime_s

    def open(self, user: User) -> tuple[str, Session]:
        session_id = secrets.token_urlsafe(32)
        session = Session(user, secrets.token_urlsafe(32), time.monotonic() + self.lifetime_s)
        with self._lock:
            self._sessions = {k: s for k, s in self._sessions.items() if s.expires > time.monotonic()}
            self._sessions[session_id] = session
        return session_id, session

    def get(self, session_id: str) -> Session | None:
        with self._lock:
            session = self._sessions.get(session_id)
        return session if session is not None and session.expires > time.monotonic() else None

    def close(self, session_id: str) -> None:
        with self._lock:
            self._sessions.pop(session_id, None)
