"""The index server: FastAPI app holding one restricted index per attribute, hot-swapped on a pointer change.

``index_dir`` is either one built index folder (served as is) or a serving root laid out as in
``pointer.py``; for a root, a background thread polls each attribute's CURRENT pointer and swaps in a
new version only after it has loaded, matched its manifest digest and passed a self-check. Until then,
and when a version is refused, the old one keeps serving.
"""
from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from . import pointer
from .build import MANIFEST_FILE
from .loaded import IndexRefused, LoadedIndex

log = logging.getLogger(__name__)


class ServerOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    poll_interval_s: float = Field(2.0, gt=0)
    max_k: int = Field(1000, ge=1)
    max_body_bytes: int = Field(1 << 20, ge=1024)
    max_history: int = Field(10_000, ge=1)
    bearer_token: str | None = None
    verify_digest: bool = True


class IndexRegistry:
    """attribute -> LoadedIndex, swapped atomically (a dict assignment under a lock)."""

    def __init__(self, index_dir: str | Path, *, verify_digest: bool = True):
        self.index_dir = Path(index_dir)
        self.static = (self.index_dir / MANIFEST_FILE).is_file()
        self.verify_digest = verify_digest
        self._live: dict[str, LoadedIndex] = {}
        self._lock = threading.Lock()
        self.refused: dict[str, str] = {}  # "attribute/version" -> reason, never retried
        self.swaps = 0
        self.on_swap = lambda attribute, version: None
        self.on_refuse = lambda attribute, version, reason: None

    def get(self, attribute: str) -> LoadedIndex | None:
        return self._live.get(attribute)

    def live_versions(self) -> dict[str, str]:
        return {a: idx.version for a, idx in self._live.items()}

    def _install(self, attribute: str, candidate: Path, version: str) -> None:
        key = f"{attribute}/{version}"
        if key in self.refused:
            return
        try:
            loaded = LoadedIndex(candidate, verify_digest=self.verify_digest, expect_attribute=attribute)
            if loaded.version != version:
                raise IndexRefused(f"index '{candidate}'", f"manifest version {loaded.version!r} does not match pointer {version!r}")
            current = self._live.get(attribute)
            if current is not None and current.dimensions != loaded.dimensions:
                raise IndexRefused(f"index '{candidate}'", f"{loaded.dimensions} dimensions, live version has {current.dimensions}")
            loaded.self_check()
        except IndexRefused as exc:
            self.refused[key] = exc.problem
            log.error("refused index %s: %s", key, exc.problem)
            self.on_refuse(attribute, version, exc.problem)
            return
        with self._lock:
            new = dict(self._live)
            new[attribute] = loaded
            self._live = new
            self.swaps += 1
        log.info("serving %s version %s", attribute, version)
        self.on_swap(attribute, version)

    def refresh(self) -> None:
        """Load whatever the pointers name now (or the static folder, once)."""
        if self.static:
            if not self._live:
                m = LoadedIndex(self.index_dir, verify_digest=self.verify_digest).manifest
                self._install(m["attribute"], self.index_dir, m["version"])
            return
        for attribute in pointer.attributes(self.index_dir):
            version = pointer.read_pointer(self.index_dir, attribute)
            current = self._live.get(attribute)
            if version is None or (current is not None and current.version == version):
                continue
            self._install(attribute, pointer.version_dir(self.index_dir, attribute, version), version)


class SearchRequest(BaseModel):
    """Exactly one of ``vector``, ``history`` (video ids) or ``history_vectors`` (+ their probabilities)."""

    model_config = ConfigDict(extra="forbid")

    vector: list[float] | None = None
    history: list[str] | None = None
    history_vectors: list[list[float]] | None = None
    history_probabilities: list[float] | None = None
    k: int | None = Field(None, ge=1)
    exclude: list[str] = Field(default_factory=list, max_length=10_000)


def create_app(index_dir: str | Path, options: ServerOptions = ServerOptions(), *, poll: bool = True):
    """Build the FastAPI app. ``poll`` starts the background pointer watcher on startup."""
    from contextlib import asynccontextmanager

    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, Response
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

    registry = IndexRegistry(index_dir, verify_digest=options.verify_digest)
    metrics = CollectorRegistry()
    requests_total = Counter("silverset_search_requests_total", "Search requests", ["attribute", "status"], registry=metrics)
    triggered_total = Counter("silverset_search_triggered_total", "History searches that triggered restricted retrieval", ["attribute", "triggered"], registry=metrics)
    latency = Histogram("silverset_search_seconds", "Search latency (seconds)", ["attribute"], registry=metrics,
                        buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5))
    swaps = Counter("silverset_index_swaps_total", "Index versions swapped in", ["attribute"], registry=metrics)
    refusals = Counter("silverset_index_refused_total", "Index versions refused", ["attribute"], registry=metrics)
    live_count = Gauge("silverset_index_vectors", "Vectors in the live index", ["attribute", "version"], registry=metrics)
    registry.on_swap = lambda a, v: (swaps.labels(a).inc(), live_count.labels(a, v).set(registry.get(a).manifest["count"]))
    registry.on_refuse = lambda a, v, reason: refusals.labels(a).inc()
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(options.poll_interval_s):
            try:
                registry.refresh()
            except Exception:  # noqa: BLE001 - the watcher must outlive one bad poll
                log.exception("index refresh failed")

    @asynccontextmanager
    async def lifespan(app):
        registry.refresh()
        thread = None
        if poll and not registry.static:
            thread = threading.Thread(target=watch, name="index-watcher", daemon=True)
            thread.start()
        yield
        stop.set()

    app = FastAPI(title="Silverset index server", lifespan=lifespan)
    app.state.registry = registry

    def problem(status: int, message: str) -> JSONResponse:
        return JSONResponse({"detail": message}, status_code=status)

    @app.middleware("http")
    async def guard(request: Request, call_next):
        if request.url.path.startswith("/v1/"):
            if options.bearer_token is not None:
                if request.headers.get("authorization", "") != f"Bearer {options.bearer_token}":
                    return problem(401, "missing or wrong bearer token")
            length = request.headers.get("content-length")
            if length is not None and int(length) > options.max_body_bytes:
                return problem(413, f"body is {length} bytes; the limit is {options.max_body_bytes}")
        return await call_next(request)

    @app.get("/healthz")
    async def healthz():
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz():
        live = registry.live_versions()
        if not live:
            return JSONResponse({"ready": False, "live": {}, "refused": registry.refused}, status_code=503)
        return {"ready": True, "live": live, "refused": registry.refused}

    @app.get("/metrics")
    async def prometheus_metrics():
        return Response(generate_latest(metrics), media_type=CONTENT_TYPE_LATEST)

    @app.post("/v1/admin/reload")
    async def reload():
        registry.refresh()
        return {"live": registry.live_versions(), "refused": registry.refused}

    @app.get("/v1/attributes")
    async def list_attributes():
        return {a: idx.manifest for a, idx in registry._live.items()}

    @app.post("/v1/attributes/{attribute}/search")
    async def search(attribute: str, body: SearchRequest):
        started = time.perf_counter()
        index = registry.get(attribute)
        if index is None:
            requests_total.labels(attribute, "404").inc()
            return problem(404, f"attribute '{attribute}' has no live index (live: {sorted(registry.live_versions())})")
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
                error = "'history_vectors' needs 'history_probabilities' of the same length (the student's scores, for affinity)"
        if error is not None:
            requests_total.labels(attribute, "422").inc()
            return problem(422, error)

        exclude = frozenset(body.exclude)
        triggered, affinity = True, None
        if body.vector is not None:
            query = np.asarray(body.vector, dtype=np.float32)
        elif body.history is not None:
            profile = index.profile(body.history)
            affinity, query = profile.affinity, profile.vector
            triggered = query is not None and affinity >= index.trigger_threshold
        else:
            vectors = np.asarray(body.history_vectors, dtype=np.float32)
            affinity = index.affinity_of(np.asarray(body.history_probabilities, dtype=np.float32)) if len(vectors) else 0.0
            query = vectors.mean(axis=0) if len(vectors) else None
            triggered = query is not None and affinity >= index.trigger_threshold
        hits = index.search(query, k, exclude=exclude) if triggered else []
        if affinity is not None:
            triggered_total.labels(attribute, str(triggered).lower()).inc()
        requests_total.labels(attribute, "200").inc()
        latency.labels(attribute).observe(time.perf_counter() - started)
        return {
            "results": [{"video_id": h.video_id, "score": h.score} for h in hits],
            "index_version": index.version,
            "triggered": triggered,
            "affinity": affinity,
        }

    return app


def serve(*, index_dir: str, host: str = "127.0.0.1", port: int = 8080, options: ServerOptions = ServerOptions()) -> None:
    """Run the server in this process until interrupted (uvicorn, one worker)."""
    import uvicorn

    uvicorn.run(create_app(index_dir, options), host=host, port=port, log_level="warning", access_log=False)
