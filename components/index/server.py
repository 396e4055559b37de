"""The index server: FastAPI app holding one restricted index per attribute, hot-swapped on a pointer change.

``index_dir`` is either one built index folder (served as is) or a serving root laid out as in
``pointer.py``; for a root, a background thread polls each attribute's CURRENT pointer (or, with
``pinned_versions``, the versions the pod's annotations pin, see ``pins.py``) and swaps in a new
version only after it has loaded, matched its manifest digest and passed a self-check. Until then, and
when a version is refused, the old one keeps answering. A missing or empty root starts live but
unready and is picked up when versions appear.

With an experiment (``abtest create``'s experiment.json), searches of its attribute must carry a
``user_id``: the user's arm comes from the experiment's salted hash, the trigger is decided in both
arms, only treatment is served, and every request is appended to the exposure log (``abtest/exposure.py``).
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import logging
import math
import threading
import time
import uuid
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from silverset.components.abtest.experiment import CONTROL
from silverset.components.abtest.exposure import Exposure
from silverset.components.common.errors import SilversetInputError

from . import pins, pointer
from .build import MANIFEST_FILE
from .loaded import IndexRefused, LoadedIndex, TriggerDecision

log = logging.getLogger(__name__)


class ServerOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    poll_interval_s: float = Field(2.0, gt=0)
    max_k: int = Field(1000, ge=1)
    max_body_bytes: int = Field(1 << 20, ge=1024)
    max_history: int = Field(10_000, ge=1)
    bearer_token: str | None = None
    verify_digest: bool = True
    # Lower leaves_to_search at load while recall@10 stays >= the spec's target (LoadedIndex.tune_leaves_to_search).
    tune_leaves: bool = True
    # The pod's downwardAPI annotations file: serve exactly its index.silverset.dev/<attribute> versions.
    pinned_versions: str | None = None
    # An A/B test run by this server: experiment.json from `abtest create`, and the folder its exposures go to.
    experiment: str | None = None
    exposure_log: str | None = None
    exposure_max_rows: int = Field(50_000, ge=1)  # rows per finalized exposure file
    exposure_max_seconds: float = Field(60.0, gt=0)  # longest a row stays in memory

    @field_validator("bearer_token")
    @classmethod
    def _token_not_blank(cls, value: str | None) -> str | None:
        # An empty SILVERSET_INDEX_TOKEN must not silently mean "no auth": unset it to serve without a token.
        if value is not None and not value.strip():
            raise ValueError("is empty; set a non-empty token, or unset it to serve without one")
        return value


class IndexRegistry:
    """attribute -> LoadedIndex, swapped atomically (a dict assignment under a lock).

    Three ways to say what to serve: one index folder (``static``); a serving root whose
    ``<attribute>/CURRENT`` pointers name the versions; or a serving root plus ``pinned_file``, the
    pod's downwardAPI annotations file, whose ``index.silverset.dev/<attribute>`` pins name exactly the
    versions to serve (CURRENT is then ignored, and attributes no longer pinned are dropped). When a pin
    changes in place, the old version answers until the new one has loaded, while /readyz says 503.
    """

    def __init__(
        self,
        index_dir: str | Path,
        *,
        verify_digest: bool = True,
        tune_leaves: bool = True,
        pinned_file: str | Path | None = None,
    ):
        self.index_dir = Path(index_dir)
        self.static = (self.index_dir / MANIFEST_FILE).is_file()
        self.pinned_file = Path(pinned_file) if pinned_file is not None else None
        if self.static and self.pinned_file is not None:
            raise SilversetInputError(
                "--pinned-versions", f"pins versions under a serving root; '{index_dir}' is one index folder"
            )
        self.verify_digest = verify_digest
        self.tune_leaves = tune_leaves
        self.served_with: dict[str, dict] = {}  # attribute -> search parameters tuned at load
        self._live: dict[str, LoadedIndex] = {}
        self._lock = threading.Lock()
        self.refused: dict[str, str] = {}  # "attribute/version" -> reason, never retried
        self.wanted: dict[str, str] = {}  # attribute -> version the pointers or pins name at the last refresh
        self.waiting: dict[str, str] = {}  # attribute -> why its wanted version is not live
        self.source_problem: str | None = None  # why the pins could not be read at the last refresh
        self.fallback: dict[str, dict] = {}  # attribute -> {"serving", "instead_of", "reason"}: PREVIOUS serves
        self.swaps = 0
        self._refreshing = threading.Lock()  # the watcher and /v1/admin/reload never load the same version twice
        self.on_swap = lambda attribute, version: None
        self.on_refuse = lambda attribute, version, reason: None

    @property
    def mode(self) -> str:
        return "static" if self.static else "pinned" if self.pinned_file is not None else "current"

    def get(self, attribute: str) -> LoadedIndex | None:
        return self._live.get(attribute)

    def live_versions(self) -> dict[str, str]:
        return {a: idx.version for a, idx in self._live.items()}

    def _install(self, attribute: str, candidate: Path, version: str) -> str | None:
        """Load, check and swap in ``version``; return why not (None once it serves)."""
        key = f"{attribute}/{version}"
        if key in self.refused:
            return f"version {version} was refused: {self.refused[key]}"
        if not self.static and not (candidate / MANIFEST_FILE).is_file():
            return f"version {version} is not published at '{candidate}' yet"  # retried on the next poll
        try:
            loaded = LoadedIndex(candidate, verify_digest=self.verify_digest, expect_attribute=attribute)
            if loaded.version != version:
                raise IndexRefused(
                    f"index '{candidate}'",
                    f"manifest version {loaded.version!r} does not match the pinned or pointed version {version!r}",
                )
            current = self._live.get(attribute)
            if current is not None and current.dimensions != loaded.dimensions:
                raise IndexRefused(
                    f"index '{candidate}'", f"{loaded.dimensions} dimensions, live version has {current.dimensions}"
                )
            loaded.self_check()
            target = float(loaded.manifest["serving"]["recall_target"])
            tuning = loaded.tune_leaves_to_search(target=target) if self.tune_leaves else None
        except Exception as exc:  # noqa: BLE001 - any unservable version is refused once; others keep refreshing
            problem = exc.problem if isinstance(exc, IndexRefused) else f"cannot be served: {type(exc).__name__}: {exc}"
            self.refused[key] = problem
            log.error("refused index %s: %s", key, problem)
            self.on_refuse(attribute, version, problem)
            return f"version {version} was refused: {problem}"
        with self._lock:
            new = dict(self._live)
            new[attribute] = loaded
            self._live = new
            self.swaps += 1
            if tuning is not None:
                self.served_with[attribute] = tuning
        log.info("serving %s version %s (leaves_to_search %s)", attribute, version, loaded.leaves_to_search)
        self.on_swap(attribute, version)
        return None

    def _wanted_now(self) -> dict[str, str]:
        if self.pinned_file is not None:
            return pins.read_pinned_versions(self.pinned_file)
        wanted = {}
        for attribute in pointer.attributes(self.index_dir):
            version = pointer.read_pointer(self.index_dir, attribute)
            if version is not None:
                wanted[attribute] = version
        return wanted

    def refresh(self) -> None:
        """Load whatever the pins or pointers name now (or the static folder, once); blocking, so off the event loop."""
        with self._refreshing:
            self._refresh()

    def _refresh(self) -> None:
        if self.static:
            if not self._live:
                m = LoadedIndex(self.index_dir, verify_digest=self.verify_digest).manifest
                self._install(m["attribute"], self.index_dir, m["version"])
            return
        try:
            wanted = self._wanted_now()
            self.source_problem = None
        except SilversetInputError as exc:  # unreadable pins: keep serving what is live, report unready
            self.source_problem = str(exc)
            log.error("%s", exc)
            return
        waiting = {}
        for attribute, version in sorted(wanted.items()):
            current = self._live.get(attribute)
            if current is not None and current.version == version:
                continue
            reason = self._install(attribute, pointer.version_dir(self.index_dir, attribute, version), version)
            if reason is not None:
                waiting[attribute] = reason
                self._fall_back(attribute, version, reason)
            else:
                self.fallback.pop(attribute, None)
        if self.pinned_file is not None and set(self._live) - set(wanted):
            with self._lock:
                dropped = sorted(set(self._live) - set(wanted))
                self._live = {a: idx for a, idx in self._live.items() if a in wanted}
            log.info("no longer pinned, dropped: %s", ", ".join(dropped))
        self.wanted, self.waiting = wanted, waiting

    def _fall_back(self, attribute: str, version: str, reason: str) -> None:
        """With nothing live for ``attribute`` (a restart onto a broken CURRENT), serve its PREVIOUS pointer's version.

        Deploy only ever writes a verified version to PREVIOUS; it is checked here again like any other.
        """
        if self.mode != "current" or attribute in self._live:
            return
        previous = pointer.read_pointer(self.index_dir, attribute, pointer.PREVIOUS)
        if previous is None or previous == version:
            return
        if self._install(attribute, pointer.version_dir(self.index_dir, attribute, previous), previous) is None:
            self.fallback[attribute] = {"serving": previous, "instead_of": version, "reason": reason}
            log.warning(
                "%s: serving PREVIOUS version %s because CURRENT %s cannot be served: %s",
                attribute,
                previous,
                version,
                reason,
            )

    def readiness(self) -> dict:
        """The /readyz body; ``ready`` is true when traffic may come here.

        Pinned: every pinned version is loaded and self-checked. CURRENT pointers or one folder: some
        version serves (a refused new version leaves the old one serving).
        """
        live = self.live_versions()
        body: dict = {"ready": False, "mode": self.mode, "live": live}
        if self.mode == "pinned":
            body["pinned"] = self.wanted
        body["waiting"] = self.waiting
        body["refused"] = self.refused
        if self.fallback:
            body["fallback"] = self.fallback
        if self.source_problem is not None:
            body["reason"] = self.source_problem
        elif self.mode == "pinned" and not self.wanted:
            body["reason"] = (
                f"no index version is pinned in '{self.pinned_file}' (annotations {pins.ANNOTATION_PREFIX}<attribute>)"
            )
        elif self.mode == "pinned" and any(live.get(a) != v for a, v in self.wanted.items()):
            body["reason"] = "pinned versions not serving yet: " + "; ".join(
                f"{a}: {self.waiting.get(a, 'loading')}" for a, v in sorted(self.wanted.items()) if live.get(a) != v
            )
        elif not live:
            body["reason"] = (
                f"serving root '{self.index_dir}' has no {pointer.CURRENT} pointer yet"
                if not self.wanted
                else "no version serves yet: " + "; ".join(f"{a}: {r}" for a, r in sorted(self.waiting.items()))
            )
        else:
            body["ready"] = True
        return body


class SearchRequest(BaseModel):
    """Exactly one of ``vector``, ``history`` (video ids) or ``history_vectors`` (+ their probabilities).

    Histories are oldest first (the learned trigger weighs recent videos more). ``user_id`` is required
    for the attribute of a running experiment: it decides the arm.
    """

    model_config = ConfigDict(extra="forbid")

    user_id: str | None = Field(None, min_length=1, max_length=256)
    vector: list[float] | None = None
    history: list[str] | None = None
    history_vectors: list[list[float]] | None = None
    history_probabilities: list[float] | None = None
    k: int | None = Field(None, ge=1)
    exclude: list[str] = Field(default_factory=list, max_length=10_000)


def _json_dumps():
    """orjson when installed (about 10x faster on the result list), else the standard library."""
    try:
        import orjson

        return orjson.dumps
    except ImportError:  # pragma: no cover - orjson ships with the locked environment
        import json

        return lambda obj: json.dumps(obj, separators=(",", ":")).encode()


def _validation_message(exc) -> str:
    """A pydantic ValidationError as one line: "field: problem; field: problem"."""
    parts = []
    for e in exc.errors(include_url=False)[:5]:
        where = ".".join(str(x) for x in e["loc"]) or "body"
        parts.append(f"{where}: {e['msg']}")
    return "; ".join(parts)


class _SearchEndpoint:
    """``POST /v1/attributes/{attribute}/search`` answered in plain Python, outside FastAPI's routing.

    The request body is validated by ``SearchRequest`` straight from JSON bytes (pydantic-core, ~10 us for 128
    floats: a hand-checked orjson parse measured no cheaper once its checks match pydantic's), the checks that need
    the live index follow, the vector is converted once (float64 for the range checks, float32 for ScaNN), and the
    answer is encoded once by orjson. Returns (status, JSON bytes).
    """

    def __init__(self, registry: IndexRegistry, options: ServerOptions, metrics, experiment=None):
        from prometheus_client import Counter, Histogram

        self.registry = registry
        self.options = options
        self.experiment = experiment  # ExperimentConfig or None
        self.exposures = None  # ExposureLog, opened per process at startup (after any fork)
        self.new_request_ids()
        self.dumps = _json_dumps()
        self.exposures_total = Counter(
            "silverset_experiment_exposures_total",
            "Search requests of the running experiment",
            ["attribute", "arm", "triggered", "served"],
            registry=metrics,
        )
        self.requests_total = Counter(
            "silverset_search_requests_total", "Search requests", ["attribute", "status"], registry=metrics
        )
        self.triggered_total = Counter(
            "silverset_search_triggered_total",
            "History searches that triggered restricted retrieval",
            ["attribute", "triggered"],
            registry=metrics,
        )
        self.latency = Histogram(
            "silverset_search_seconds",
            "Search latency (seconds)",
            ["attribute"],
            registry=metrics,
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5),
        )
        # live attribute -> (its 200 counter, its latency histogram): labels() takes a lock on every call
        self._served_metrics: dict = {}

    def _ok_metrics(self, attribute: str):
        metrics = self._served_metrics.get(attribute)
        if metrics is None:
            metrics = self._served_metrics[attribute] = (
                self.requests_total.labels(attribute, "200"),
                self.latency.labels(attribute),
            )
        return metrics

    @staticmethod
    def parse(raw_body: bytes) -> tuple[SearchRequest, np.ndarray | None]:
        """The request, and its ``vector`` as float64 [d] (None without one); pydantic's ValidationError if refused."""
        body = SearchRequest.model_validate_json(raw_body)
        return body, (np.asarray(body.vector, dtype=np.float64) if body.vector is not None else None)

    def new_request_ids(self) -> None:
        """Ids for requests without X-Request-ID: a random per-process prefix and a counter (uuid4 costs ~2 us)."""
        prefix = uuid.uuid4().hex[:16]
        counter = itertools.count()
        self.next_request_id = lambda: f"{prefix}-{next(counter)}"

    def problem(self, attribute: str, status: int, message: str) -> tuple[int, bytes]:
        # Only live attributes become label values: a client choosing names must not grow /metrics.
        label = attribute if self.registry.get(attribute) is not None else UNKNOWN_ATTRIBUTE
        self.requests_total.labels(label, str(status)).inc()
        return status, self.dumps({"detail": message})

    def __call__(self, attribute: str, raw_body: bytes, request_id: str | None = None) -> tuple[int, bytes]:
        from pydantic import ValidationError

        started = time.perf_counter()
        options = self.options
        index = self.registry.get(attribute)
        if index is None:
            live = sorted(self.registry.live_versions())
            return self.problem(attribute, 404, f"attribute '{attribute}' has no live index (live: {live})")
        try:
            body, vector = self.parse(raw_body)
        except ValidationError as exc:
            return self.problem(attribute, 422, _validation_message(exc))
        k = body.k or int(index.manifest["serving"]["default_k"])
        given = [name for name in ("vector", "history", "history_vectors") if getattr(body, name) is not None]
        error = None
        if len(given) != 1:
            error = f"give exactly one of 'vector', 'history', 'history_vectors' (got {given or 'none'})"
        elif k > options.max_k:
            error = f"'k' is {k}; the limit is {options.max_k}"
        if error is None and body.vector is not None and len(body.vector) != index.dimensions:
            error = f"'vector' has {len(body.vector)} dimensions; the index has {index.dimensions}"
        history_len = len(body.history or body.history_vectors or [])
        if error is None and history_len > options.max_history:
            error = f"history has {history_len} entries; the limit is {options.max_history}"
        if error is None and body.history_vectors is not None:
            if any(len(v) != index.dimensions for v in body.history_vectors):
                error = f"every 'history_vectors' entry needs {index.dimensions} dimensions"
            elif body.history_probabilities is None or len(body.history_probabilities) != len(body.history_vectors):
                error = (
                    "'history_vectors' needs 'history_probabilities' of the same length "
                    "(the student's scores, for affinity)"
                )
        experiment = self.experiment if self.experiment is not None and self.experiment.attribute == attribute else None
        if error is None and experiment is not None and body.user_id is None:
            error = (
                f"user_id: required while experiment '{experiment.experiment_id}' runs on '{attribute}' "
                "(it decides the arm)"
            )
        if error is None:
            error = _non_finite(body, vector)
        if error is not None:
            return self.problem(attribute, 422, error)

        exclude = frozenset(body.exclude)
        decision: TriggerDecision | None = None  # a plain vector carries no history: nothing to decide
        if vector is not None:
            query = vector.astype(np.float32)
        elif body.vector is not None:
            query = np.asarray(body.vector, dtype=np.float32)
        elif body.history is not None:
            profile = index.profile(body.history)
            decision, query = index.decide_trigger(profile.probabilities), profile.vector
        else:
            vectors = np.asarray(body.history_vectors, dtype=np.float32)
            decision = index.decide_trigger(np.asarray(body.history_probabilities, dtype=np.float32))
            query = vectors.mean(axis=0) if len(vectors) else None
        triggered = decision.triggered if decision is not None else True
        arm = experiment.arm_of(body.user_id) if experiment is not None else None
        # Control gets the same trigger decision, logged, but never the restricted results.
        hits = index.search(query, k, exclude=exclude) if triggered and arm != CONTROL else []
        if any(not math.isfinite(h.score) for h in hits):
            return self.problem(
                attribute, 422, "the query vector's scores overflow float32; send a vector of ordinary magnitude"
            )
        served = bool(hits)
        affinity = decision.affinity if decision is not None else None
        if decision is not None:
            self.triggered_total.labels(attribute, str(triggered).lower()).inc()
        reply = {
            "results": [{"video_id": h.video_id, "score": h.score} for h in hits],
            "index_version": index.version,
            "triggered": triggered,
            "affinity": affinity,
            "trigger_source": decision.source if decision is not None else None,
            "served": served,
        }
        if experiment is not None:
            request_id = request_id or self.next_request_id()
            reply.update(arm=arm, experiment_id=experiment.experiment_id, request_id=request_id)
            self.exposures_total.labels(attribute, arm, str(triggered).lower(), str(served).lower()).inc()
            if self.exposures is not None:
                self.exposures.append(
                    Exposure(
                        experiment.experiment_id,
                        request_id,
                        body.user_id,
                        arm,
                        triggered,
                        served,
                        affinity,
                        decision.source if decision is not None else index.trigger_source,
                        attribute,
                        index.attribute_version or experiment.attribute_version,
                        index.version,
                        time.time(),
                    )
                )
        answer = self.dumps(reply)
        requests_ok, latency = self._ok_metrics(attribute)
        requests_ok.inc()
        latency.observe(time.perf_counter() - started)
        return 200, answer


UNKNOWN_ATTRIBUTE = "_unknown"
# The largest float32 a query component may take: beyond it the squared norm (and any score) overflows float32.
MAX_COMPONENT = 1e18


def _non_finite(body: SearchRequest, vector: np.ndarray | None = None) -> str | None:
    """Why the request's numbers cannot be searched (NaN, infinite, or overflowing float32), or None.

    ``vector``: the body's vector already as float64 [d], so it is not converted twice.
    """
    for name in ("vector", "history_vectors", "history_probabilities"):
        values = getattr(body, name)
        if values is None:
            continue
        array = vector if name == "vector" and vector is not None else np.asarray(values, dtype=np.float64)
        if not array.size:
            continue
        largest = float(np.abs(array).max())  # NaN when any value is NaN, inf when any is infinite: one pass
        if not math.isfinite(largest):
            return f"'{name}' holds NaN or infinite values"
        if largest > MAX_COMPONENT:
            return f"'{name}' holds values beyond +/-{MAX_COMPONENT:g}; scores would overflow float32"
    return None


_SEARCH_PREFIX, _SEARCH_SUFFIX = "/v1/attributes/", "/search"
# Open without the bearer token: the kubelet's probes.
OPEN_PATHS = frozenset({"/healthz", "/readyz"})
_JSON = (b"content-type", b"application/json")


class IndexServerApp:
    """The server's ASGI app: a pure-ASGI guard on ``/v1/`` and the search hot path, FastAPI for the rest.

    Starlette's ``BaseHTTPMiddleware`` and FastAPI's per-route machinery (dependency solving, response
    encoding through ``jsonable_encoder``) cost several times the ScaNN search itself, so search
    requests never enter them; health, readiness, metrics and admin routes stay on FastAPI.
    """

    def __init__(self, api, search: _SearchEndpoint, options: ServerOptions):
        self.api = api
        self.search = search
        self.options = options
        self.state = api.state
        self._token = f"Bearer {options.bearer_token}".encode() if options.bearer_token is not None else None

    async def __call__(self, scope, receive, send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http":
            await self.api(scope, receive, send)
            return
        length = None
        authorization = b""
        request_id = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                length = value
            elif name == b"authorization":
                authorization = value
            elif name == b"x-request-id":
                request_id = value
        if self._token is not None and path not in OPEN_PATHS and not hmac.compare_digest(authorization, self._token):
            await _respond(
                send,
                401,
                self.search.dumps({"detail": "missing or wrong bearer token"}),
                extra=[(b"www-authenticate", b"Bearer")],
            )
            return
        if not path.startswith("/v1/"):
            await self.api(scope, receive, send)
            return
        limit = self.options.max_body_bytes
        if length is not None and (not length.isdigit() or int(length) > limit):
            await _respond(
                send,
                413 if length.isdigit() else 400,
                self.search.dumps({"detail": f"body is {length.decode(errors='replace')} bytes; the limit is {limit}"}),
            )
            return
        is_search = path.startswith(_SEARCH_PREFIX) and path.endswith(_SEARCH_SUFFIX)
        attribute = path[len(_SEARCH_PREFIX) : -len(_SEARCH_SUFFIX)] if is_search else ""
        if scope["method"] != "POST" or not attribute or "/" in attribute:
            await self.api(scope, receive, send)
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:  # a chunked body without Content-Length
                await _respond(send, 413, self.search.dumps({"detail": f"body is over the limit of {limit} bytes"}))
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        status, answer = self.search(attribute, body, _request_id(request_id))
        await _respond(send, status, answer)


def _request_id(header: bytes | None) -> str | None:
    """The client's X-Request-ID when it is a plausible id (1-128 printable ASCII), else None (the server makes one)."""
    if header is None or not 0 < len(header) <= 128:
        return None
    text = header.decode("ascii", errors="replace")
    return text if text.isprintable() and text.isascii() else None


async def _respond(send, status: int, body: bytes, extra: list | None = None) -> None:
    headers = [_JSON, (b"content-length", str(len(body)).encode()), *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def create_app(index_dir: str | Path, options: ServerOptions = ServerOptions(), *, poll: bool = True) -> IndexServerApp:
    """Build the ASGI app. ``poll`` starts the background pointer watcher on startup."""
    from contextlib import asynccontextmanager

    from fastapi import FastAPI
    from fastapi.responses import JSONResponse, Response
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, generate_latest

    registry = IndexRegistry(
        index_dir,
        verify_digest=options.verify_digest,
        tune_leaves=options.tune_leaves,
        pinned_file=options.pinned_versions,
    )
    metrics = CollectorRegistry()
    experiment_file = load_server_experiment(options)
    search = _SearchEndpoint(registry, options, metrics, experiment=experiment_file.config if experiment_file else None)
    Gauge(
        "silverset_exposure_log_rows_written", "Exposure rows finalized to Parquet by this process", registry=metrics
    ).set_function(lambda: search.exposures.rows_written if search.exposures else 0)
    Gauge(
        "silverset_exposure_log_rows_dropped", "Exposure rows dropped after repeated write failures", registry=metrics
    ).set_function(lambda: search.exposures.rows_dropped if search.exposures else 0)
    swaps = Counter("silverset_index_swaps_total", "Index versions swapped in", ["attribute"], registry=metrics)
    refusals = Counter("silverset_index_refused_total", "Index versions refused", ["attribute"], registry=metrics)
    live_count = Gauge(
        "silverset_index_vectors", "Vectors in the live index", ["attribute", "version"], registry=metrics
    )
    registry.on_swap = lambda a, v: (
        swaps.labels(a).inc(),
        live_count.labels(a, v).set(registry.get(a).manifest["count"]),
    )
    registry.on_refuse = lambda a, v, reason: refusals.labels(a).inc()
    stop = threading.Event()

    def follow_experiment() -> None:
        if experiment_file is not None and experiment_file.refresh():
            search.experiment = experiment_file.config  # one assignment: a request sees the old or the new config

    def watch() -> None:
        while not stop.wait(options.poll_interval_s):
            try:
                if not registry.static:
                    registry.refresh()
                follow_experiment()
            except Exception:  # noqa: BLE001 - the watcher must outlive one bad poll
                log.exception("index refresh failed")

    @asynccontextmanager
    async def lifespan(app):
        await asyncio.to_thread(registry.refresh)
        thread = None
        if poll and (not registry.static or experiment_file is not None):
            thread = threading.Thread(target=watch, name="index-watcher", daemon=True)
            thread.start()
        if options.exposure_log is not None:  # here, not in create_app: each forked worker needs its own writer thread
            from silverset.components.abtest.exposure import ExposureLog

            search.new_request_ids()  # a forked worker must not repeat its parent's ids
            search.exposures = ExposureLog(
                options.exposure_log, max_rows=options.exposure_max_rows, max_seconds=options.exposure_max_seconds
            )
        yield
        stop.set()
        if search.exposures is not None:
            exposures, search.exposures = search.exposures, None
            await asyncio.to_thread(exposures.close)

    api = FastAPI(title="Silverset index server", lifespan=lifespan)
    api.state.registry = registry

    @api.get("/healthz")
    async def healthz():
        return {"status": "ok"}

    @api.get("/readyz")
    async def readyz():
        body = registry.readiness()
        if search.experiment is not None:
            experiment, live = search.experiment, registry.get(search.experiment.attribute)
            body["experiment"] = {
                "experiment_id": experiment.experiment_id,
                "attribute": experiment.attribute,
                "attribute_version": experiment.attribute_version,
                "serving_attribute_version": live.manifest.get("attribute_version") if live else None,
                "exposure_log": options.exposure_log,
            }
            if experiment_file.problem is not None:
                body["experiment"]["problem"] = experiment_file.problem
        return JSONResponse(body, status_code=200 if body["ready"] else 503)

    @api.get("/metrics")
    async def prometheus_metrics():
        return Response(generate_latest(metrics), media_type=CONTENT_TYPE_LATEST)

    @api.post("/v1/admin/reload")
    async def reload():
        await asyncio.to_thread(registry.refresh)  # loading, hashing and tuning must not stall searches
        await asyncio.to_thread(follow_experiment)
        return {"live": registry.live_versions(), "refused": registry.refused}

    @api.get("/v1/attributes")
    async def list_attributes():
        return {a: {**idx.manifest, "served_with": registry.served_with.get(a)} for a, idx in registry._live.items()}

    # POST /v1/attributes/{attribute}/search (body: SearchRequest) is answered by IndexServerApp itself.
    return IndexServerApp(api, search, options)


def load_server_experiment(options: ServerOptions):
    """The experiment file named by the options, loaded (an ExperimentFile), or None.

    Both or neither of ``experiment`` and ``exposure_log``; the exposure folder must be writable.
    """
    if options.experiment is None and options.exposure_log is None:
        return None
    if options.experiment is None:
        raise SilversetInputError("--exposure-log", "needs --experiment: exposures are logged for a running experiment")
    if options.exposure_log is None:
        raise SilversetInputError(
            "--exposure-log", f"required with --experiment '{options.experiment}': the analysis reads it"
        )
    from silverset.components.abtest.experiment import ExperimentFile

    source = ExperimentFile(options.experiment)
    experiment = source.config
    _check_log_folder(options.exposure_log)
    log.info(
        "experiment %s on %s v%d: %.2f%% treatment, exposures to %s",
        experiment.experiment_id,
        experiment.attribute,
        experiment.attribute_version,
        100 * experiment.treatment_share,
        options.exposure_log,
    )
    return source


def _check_log_folder(folder: str) -> None:
    """Fail at start-up, with exit 2, on an exposure folder the server could not write (not at the first flush)."""
    import os

    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        problem = f"cannot create the folder: {exc.strerror or exc}"
        raise SilversetInputError(f"--exposure-log '{folder}'", problem) from None
    if not os.access(folder, os.W_OK):
        raise SilversetInputError(f"--exposure-log '{folder}'", "folder is not writable")


def serve(
    *,
    index_dir: str,
    host: str = "127.0.0.1",
    port: int = 8080,
    options: ServerOptions = ServerOptions(),
    workers: int = 1,
) -> None:
    """Run the server until interrupted (uvicorn; h11/httptools and asyncio/uvloop, whichever is installed).

    ``workers`` > 1 loads the index once, then forks that many uvicorn processes sharing the listening
    socket and the index pages (copy-on-write), see ``supervisor.run_app``. Each worker keeps its own
    Prometheus counters and pointer watcher; on Kubernetes prefer more replicas of one worker.
    """
    from .supervisor import run_app

    app = create_app(index_dir, options)
    run_app(app, host=host, port=port, workers=workers, before_fork=app.state.registry.refresh)
