"""The run lock: at most one run works on an incremental state at a time, atomically on every backend.

A lock is one record ``{holder, acquired_at, renewed_at, duration_s}`` (holder = the run id) kept where the
state's runs can all reach it:

- ``kubernetes://NS``: a coordination.k8s.io/v1 Lease in namespace NS named ``silverset-run-<sha256(key)[:16]>``
  (``key`` = the state folder the lock guards, also written in the ``silverset.dev/state`` annotation; a
  Lease name must be a DNS name, a state URI is not). holderIdentity, leaseDurationSeconds, acquireTime and
  renewTime carry the record; resourceVersion is the compare-and-swap token (a stale PUT gets 409).
- a folder path or ``file://``/``s3://``/``gs://`` URI (the state folder itself): ``<folder>/lock.json``.
  Local: created by hard-linking a fully written temp file (atomic, fails if the name exists); replaced
  under an ``flock`` on ``lock.json.guard`` after comparing the bytes read. S3: PutObject with
  ``If-None-Match: *`` to create, ``If-Match: <ETag>`` to replace. GCS: ``ifGenerationMatch=0`` to create,
  ``ifGenerationMatch=<generation>`` to replace.

Every change is a create-if-absent or a compare-and-swap on what was read, so two runs racing for the lock
never both win, and taking over an expired lock cannot overwrite a lock another run just took. A lock
expires ``duration_s`` after its last renewal: a crashed run frees it, a live run keeps it by renewing
(``held`` renews from a daemon thread, so a run waiting days for approval keeps it). Release never deletes:
it swaps in a record with no holder, so it too is a compare-and-swap and only the holder can do it.
Expiry compares clocks of different machines: keep ``duration_s`` well above their skew.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import hashlib
import json
import logging
import math
import os
import re
import threading
import time
import uuid
from dataclasses import asdict, dataclass, replace
from typing import Callable, Iterator, Protocol

from silverset.components.common.errors import SilversetInputError

_LOGGER = logging.getLogger(__name__)

LOCK_FILE = "lock.json"
LEASE_PREFIX = "silverset-run-"
STATE_ANNOTATION = "silverset.dev/state"
KUBERNETES_SCHEME = "kubernetes://"
DEFAULT_LEASE_S = 900.0  # outlasts the gap between two steps of a run (pod scheduling, image pulls)
DEFAULT_HEARTBEAT_S = 60.0
_ATTEMPTS = 20  # compare-and-swap retries before a contended lock is reported as held
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


class StateLocked(RuntimeError):
    """Another run holds the lock: this run must not touch the state, its plan or its run folder."""

    def __init__(self, where: str, holder: "LockRecord | None", problem: str = ""):
        self.where, self.holder = where, holder
        if holder is not None and holder.holder:
            problem = (
                f"held by run {holder.holder!r} since {_iso(holder.acquired_at)} (last renewed "
                f"{_iso(holder.renewed_at)}, free at {_iso(holder.expires_at)} unless renewed)"
                + (f"; {problem}" if problem else "")
            )
        super().__init__(f"run lock '{where}': {problem}")


class LockLost(StateLocked):
    """The heartbeat could not renew the lock (another run took it over after it expired)."""


@dataclass(frozen=True)
class LockRecord:
    """Who holds the lock and until when (seconds since the epoch); ``holder`` "" = released."""

    holder: str
    acquired_at: float
    renewed_at: float
    duration_s: float

    @property
    def expires_at(self) -> float:
        return self.renewed_at + self.duration_s

    def free_at(self, now: float) -> bool:
        return not self.holder or now >= self.expires_at


class _Exists(Exception):
    """create: a record is already there."""


class _Conflict(Exception):
    """replace: the record changed since it was read."""


class LockRecords(Protocol):
    """One backend's atomic operations on the lock record; ``token`` is its compare-and-swap version."""

    where: str

    def read(self) -> tuple[LockRecord, object] | None: ...

    def create(self, record: LockRecord) -> object: ...  # raises _Exists

    def replace(self, record: LockRecord, token: object) -> object: ...  # raises _Conflict


def _iso(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _encode(record: LockRecord) -> bytes:
    return json.dumps(asdict(record), sort_keys=True).encode("utf-8")


def _decode(data: bytes, where: str) -> LockRecord:
    try:
        raw = json.loads(data)
        return LockRecord(
            holder=str(raw["holder"]),
            acquired_at=float(raw["acquired_at"]),
            renewed_at=float(raw["renewed_at"]),
            duration_s=float(raw["duration_s"]),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise SilversetInputError(f"run lock '{where}'", f"unreadable lock record: {exc}") from None


class RunLock:
    """acquire / renew / release one state's lock for a run id; ``held`` keeps it renewed while a step works."""

    def __init__(
        self, records: LockRecords, *, lease_duration_s: float = DEFAULT_LEASE_S, clock: Callable[[], float] = time.time
    ):
        if lease_duration_s <= 0:
            raise SilversetInputError("lease_duration_s", f"must be > 0 seconds, got {lease_duration_s}")
        self.records, self.lease_duration_s, self.clock = records, float(lease_duration_s), clock

    @property
    def where(self) -> str:
        return self.records.where

    def holder(self) -> LockRecord | None:
        """The current record (None when no run ever took the lock)."""
        found = self.records.read()
        return found[0] if found else None

    def acquire(self, run_id: str) -> LockRecord:
        """Take the lock for ``run_id``: free, expired, or already this run's. Raises StateLocked otherwise."""
        _check_run_id(run_id)
        for _ in range(_ATTEMPTS):
            now = self.clock()
            mine = LockRecord(holder=run_id, acquired_at=now, renewed_at=now, duration_s=self.lease_duration_s)
            try:
                self.records.create(mine)
                _LOGGER.info("run lock %s taken by %s", self.where, run_id)
                return mine
            except _Exists:
                pass
            found = self.records.read()
            if found is None:
                continue  # no record between our create and read: try the create again
            current, token = found
            if current.holder != run_id and not current.free_at(now):
                raise StateLocked(self.where, current)
            if current.holder == run_id:
                mine = replace(mine, acquired_at=current.acquired_at)
            elif current.holder:
                _LOGGER.warning(
                    "run lock %s: taking over from %s, whose lease expired at %s",
                    self.where,
                    current.holder,
                    _iso(current.expires_at),
                )
            try:
                self.records.replace(mine, token)
                return mine
            except _Conflict:
                continue  # someone else changed it between our read and swap: look again
        raise StateLocked(self.where, self.holder(), f"still contended after {_ATTEMPTS} attempts")

    def renew(self, run_id: str) -> LockRecord:
        """Extend ``run_id``'s lock by the lease duration from now; raises LockLost if another run holds it."""
        _check_run_id(run_id)
        for _ in range(_ATTEMPTS):
            found = self.records.read()
            if found is None or found[0].holder != run_id:
                raise LockLost(self.where, found[0] if found else None, f"run {run_id!r} no longer holds it")
            current, token = found
            mine = replace(current, renewed_at=self.clock(), duration_s=self.lease_duration_s)
            try:
                self.records.replace(mine, token)
                return mine
            except _Conflict:
                continue
        raise LockLost(self.where, self.holder(), f"still contended after {_ATTEMPTS} attempts")

    def release(self, run_id: str) -> bool:
        """Free the lock if ``run_id`` holds it; returns whether it did (a non-holder changes nothing)."""
        for _ in range(_ATTEMPTS):
            found = self.records.read()
            if found is None or found[0].holder != run_id or not run_id:
                return False
            current, token = found
            try:
                self.records.replace(replace(current, holder="", renewed_at=self.clock()), token)
                _LOGGER.info("run lock %s released by %s", self.where, run_id)
                return True
            except _Conflict:
                continue
        return False

    @contextlib.contextmanager
    def held(
        self, run_id: str, *, heartbeat_s: float = DEFAULT_HEARTBEAT_S, release_on_exit: bool = False
    ) -> Iterator["Heartbeat"]:
        """Acquire (or re-take) the lock, renew it every ``heartbeat_s`` seconds until the block exits.

        The lock stays held after the block unless ``release_on_exit``: a run's later steps take it up
        again, and the run's clean-up releases it. Raises LockLost at exit when a renewal found the lock
        taken over, so the step fails instead of reporting work done without the lock.
        """
        if not 0 < heartbeat_s < self.lease_duration_s:
            raise SilversetInputError(
                "heartbeat_s",
                f"must be > 0 and below the lease duration ({self.lease_duration_s:g} s), got {heartbeat_s}",
            )
        self.acquire(run_id)
        beat = Heartbeat(self, run_id, heartbeat_s)
        beat.start()
        try:
            yield beat
        finally:
            beat.stop()
            if release_on_exit:
                self.release(run_id)
        if beat.lost is not None:
            raise beat.lost


class Heartbeat:
    """A daemon thread renewing one run's lock; ``lost`` is the LockLost that stopped it, if any."""

    def __init__(self, lock: RunLock, run_id: str, interval_s: float):
        self.lock, self.run_id, self.interval_s = lock, run_id, interval_s
        self.renewals = 0
        self.lost: LockLost | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"run-lock-heartbeat-{run_id}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.lock.renew(self.run_id)
                self.renewals += 1
            except LockLost as exc:
                _LOGGER.error("%s", exc)
                self.lost = exc
                return
            except Exception as exc:  # noqa: BLE001 - a failed renewal is retried next beat, the lease has slack
                _LOGGER.warning(
                    "run lock %s: renewal failed, retrying in %.0f s: %s: %s",
                    self.lock.where,
                    self.interval_s,
                    type(exc).__name__,
                    exc,
                )


def _check_run_id(run_id: str) -> None:
    if not run_id or not run_id.strip():
        raise SilversetInputError("run_id", "must not be empty: the lock names the run that holds it")


# --- backends ----------------------------------------------------------------------------------------------
class LocalRecords:
    """``lock.json`` on a local (or NFS) filesystem."""

    def __init__(self, folder: str):
        self.path = os.path.join(folder, LOCK_FILE)
        self.where = self.path

    def read(self) -> tuple[LockRecord, object] | None:
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return None
        return _decode(data, self.where), data

    def _temp(self, data: bytes) -> str:
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        tmp = f"{self.path}.{uuid.uuid4().hex}.tmp"
        with open(tmp, "xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        return tmp

    def create(self, record: LockRecord) -> object:
        data = _encode(record)
        tmp = self._temp(data)
        try:
            os.link(tmp, self.path)  # atomic; EEXIST when the lock file is there, and never half-written
        except FileExistsError:
            raise _Exists() from None
        finally:
            os.unlink(tmp)
        return data

    def replace(self, record: LockRecord, token: object) -> object:
        import fcntl

        data = _encode(record)
        tmp = self._temp(data)
        try:
            with open(f"{self.path}.guard", "a") as guard:
                fcntl.flock(guard, fcntl.LOCK_EX)
                try:
                    with open(self.path, "rb") as f:
                        if f.read() != token:
                            raise _Conflict()
                except FileNotFoundError:
                    raise _Conflict() from None
                os.replace(tmp, self.path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        return data


class S3Records:
    """``lock.json`` in an S3 bucket through s3fs: conditional PutObject (If-None-Match / If-Match on the ETag)."""

    def __init__(self, fs, path: str, where: str):
        self.fs, self.where = fs, where
        self.bucket, self.key, _ = fs.split_path(path)

    def _run(self, coroutine_function):
        from fsspec.asyn import sync

        return sync(self.fs.loop, coroutine_function)

    @staticmethod
    def _code(exc: BaseException) -> str:
        cause = exc.__cause__ if getattr(exc, "__cause__", None) is not None else exc
        response = getattr(cause, "response", None) or {}
        return str(response.get("Error", {}).get("Code", ""))

    def read(self) -> tuple[LockRecord, object] | None:
        async def get():
            try:
                response = await self.fs._call_s3("get_object", Bucket=self.bucket, Key=self.key)
            except FileNotFoundError:
                return None
            async with response["Body"] as body:
                return await body.read(), response["ETag"]

        found = self._run(get)
        return None if found is None else (_decode(found[0], self.where), found[1])

    def _put(self, record: LockRecord, **condition) -> object:
        async def put():
            response = await self.fs._call_s3(
                "put_object",
                Bucket=self.bucket,
                Key=self.key,
                Body=_encode(record),
                ContentType="application/json",
                **condition,
            )
            return response["ETag"]

        return self._run(put)

    def create(self, record: LockRecord) -> object:
        try:
            return self._put(record, IfNoneMatch="*")
        except FileExistsError:
            raise _Exists() from None
        except OSError as exc:
            # 409 ConditionalRequestConflict: a concurrent conditional write to the same key is in flight.
            if self._code(exc) in ("PreconditionFailed", "ConditionalRequestConflict"):
                raise _Exists() from None
            raise

    def replace(self, record: LockRecord, token: object) -> object:
        try:
            return self._put(record, IfMatch=str(token))
        except FileNotFoundError:
            raise _Conflict() from None
        except OSError as exc:
            if self._code(exc) in ("PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey"):
                raise _Conflict() from None
            raise


class GcsRecords:
    """``lock.json`` in a GCS bucket through gcsfs's JSON API calls: ``ifGenerationMatch`` (0 to create)."""

    def __init__(self, fs, path: str, where: str):
        self.fs, self.where = fs, where
        self.bucket, self.key, _ = fs.split_path(path)

    def _run(self, coroutine_function):
        from fsspec.asyn import sync

        return sync(self.fs.loop, coroutine_function)

    @staticmethod
    def _precondition_failed(exc: BaseException) -> bool:
        return getattr(exc, "code", None) == 412 or isinstance(exc, FileExistsError)

    def read(self) -> tuple[LockRecord, object] | None:
        async def get():
            try:
                meta = await self.fs._call("GET", "b/{}/o/{}", self.bucket, self.key, json_out=True)
                generation = meta["generation"]
                # Read exactly the generation whose number is the swap token.
                _, data = await self.fs._call(
                    "GET", "b/{}/o/{}", self.bucket, self.key, alt="media", generation=generation
                )
            except FileNotFoundError:
                return None
            return data, generation

        found = self._run(get)
        return None if found is None else (_decode(found[0], self.where), found[1])

    def _upload(self, record: LockRecord, generation: str) -> object:
        async def upload():
            response = await self.fs._call(
                "POST",
                f"{self.fs._location}/upload/storage/v1/b/{self.bucket}/o",
                uploadType="media",
                name=self.key,
                ifGenerationMatch=generation,
                headers={"Content-Type": "application/json"},
                data=_encode(record),
                json_out=True,
            )
            return response["generation"]

        return self._run(upload)

    def create(self, record: LockRecord) -> object:
        try:
            return self._upload(record, "0")
        except Exception as exc:
            if self._precondition_failed(exc):
                raise _Exists() from None
            raise

    def replace(self, record: LockRecord, token: object) -> object:
        try:
            return self._upload(record, str(token))
        except Exception as exc:
            if self._precondition_failed(exc) or isinstance(exc, FileNotFoundError):
                raise _Conflict() from None
            raise


def lease_name(key: str) -> str:
    """The Lease of the state folder ``key``: ``silverset-run-<first 16 hex of sha256(key)>``."""
    return LEASE_PREFIX + hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


def _micro_time(seconds: float) -> str:
    """A Kubernetes MicroTime (RFC 3339, exactly 6 fractional digits, as the API server parses it)."""
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaseRecords:
    """A coordination.k8s.io/v1 Lease; resourceVersion is the compare-and-swap token (409 on a stale PUT)."""

    def __init__(self, api_client, namespace: str, key: str):
        from kubernetes import client

        self.api = client.CoordinationV1Api(api_client)
        self.namespace, self.key, self.name = namespace, key, lease_name(key)
        self.where = f"{KUBERNETES_SCHEME}{namespace}/leases/{self.name} ({key})"

    def _body(self, record: LockRecord, resource_version: str | None = None) -> dict:
        metadata = {
            "name": self.name,
            "namespace": self.namespace,
            "labels": {"app.kubernetes.io/part-of": "silverset", "app.kubernetes.io/component": "run-lock"},
            "annotations": {STATE_ANNOTATION: self.key},
        }
        if resource_version is not None:
            metadata["resourceVersion"] = resource_version
        spec = {
            "leaseDurationSeconds": max(1, math.ceil(record.duration_s)),
            "acquireTime": _micro_time(record.acquired_at),
            "renewTime": _micro_time(record.renewed_at),
        }
        if record.holder:
            spec["holderIdentity"] = record.holder
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": metadata, "spec": spec}

    def _forbidden(self, exc) -> Exception:
        try:
            message = json.loads(exc.body).get("message", exc.reason)
        except (TypeError, ValueError):
            message = exc.reason
        return PermissionError(errno.EACCES, f"run lock {self.where}: {exc.status} {message}")

    def read(self) -> tuple[LockRecord, object] | None:
        from kubernetes.client.rest import ApiException

        try:
            lease = self.api.read_namespaced_lease(self.name, self.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise self._forbidden(exc) from None
        spec = lease.spec
        seconds = lambda t: t.timestamp() if t is not None else 0.0  # noqa: E731
        record = LockRecord(
            holder=spec.holder_identity or "",
            acquired_at=seconds(spec.acquire_time),
            renewed_at=seconds(spec.renew_time),
            duration_s=float(spec.lease_duration_seconds or 0),
        )
        return record, lease.metadata.resource_version

    def create(self, record: LockRecord) -> object:
        from kubernetes.client.rest import ApiException

        try:
            return self.api.create_namespaced_lease(self.namespace, self._body(record)).metadata.resource_version
        except ApiException as exc:
            if exc.status == 409:
                raise _Exists() from None
            raise self._forbidden(exc) from None

    def replace(self, record: LockRecord, token: object) -> object:
        from kubernetes.client.rest import ApiException

        try:
            lease = self.api.replace_namespaced_lease(self.name, self.namespace, self._body(record, str(token)))
            return lease.metadata.resource_version
        except ApiException as exc:
            if exc.status in (404, 409):
                raise _Conflict() from None
            raise self._forbidden(exc) from None


def open_run_lock(
    uri: str,
    *,
    key: str = "",
    api_client=None,
    lease_duration_s: float = DEFAULT_LEASE_S,
    clock: Callable[[], float] = time.time,
) -> RunLock:
    """The run lock at ``uri``: ``kubernetes://NS`` (a Lease for the state ``key``), or a folder path/URI.

    ``key`` is what the lock guards (the state folder URI); it names the Lease and is required for
    ``kubernetes://``. A folder lock lives in ``<uri>/lock.json``. ``api_client`` is a
    ``kubernetes.client.ApiClient`` (default: in-cluster, then ~/.kube/config).
    """
    if not uri:
        raise SilversetInputError("run lock", "no URI given: use kubernetes://NAMESPACE or the state folder")
    if uri.startswith(KUBERNETES_SCHEME):
        namespace = uri[len(KUBERNETES_SCHEME) :].strip("/")
        if not _DNS_LABEL.match(namespace):
            raise SilversetInputError(f"run lock '{uri}'", "expected kubernetes://NAMESPACE with a DNS-label namespace")
        if not key:
            raise SilversetInputError(f"run lock '{uri}'", "a Lease lock needs the state folder it guards (key)")
        if api_client is None:
            from silverset.components.common.kube import load_api_client

            api_client = load_api_client()
        return RunLock(LeaseRecords(api_client, namespace, key), lease_duration_s=lease_duration_s, clock=clock)
    if "://" not in uri or uri.startswith("file://"):
        return RunLock(LocalRecords(uri.removeprefix("file://")), lease_duration_s=lease_duration_s, clock=clock)
    import fsspec

    protocol = uri.split("://", 1)[0]
    lock_uri = f"{uri.rstrip('/')}/{LOCK_FILE}"
    if protocol in ("s3", "s3a"):
        fs, path = fsspec.core.url_to_fs(lock_uri)
        return RunLock(S3Records(fs, path, lock_uri), lease_duration_s=lease_duration_s, clock=clock)
    if protocol in ("gs", "gcs"):
        fs, path = fsspec.core.url_to_fs(lock_uri)
        return RunLock(GcsRecords(fs, path, lock_uri), lease_duration_s=lease_duration_s, clock=clock)
    raise SilversetInputError(
        f"run lock '{uri}'",
        f"no atomic create-if-absent on '{protocol}://'; use a local path, s3://, gs:// or kubernetes://NAMESPACE",
    )
