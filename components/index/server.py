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

The parts: ``registry.py`` (the loaded versions and their swaps), ``search.py`` (the search hot path),
``fast_path.py`` (the pure-ASGI guard that answers searches outside FastAPI). This module holds the options,
the FastAPI app for health, readiness, metrics and admin, the experiment wiring, and ``serve``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from silverset.components.common.errors import SilversetInputError

from .fast_path import IndexServerApp
from .registry import IndexRegistry
from .search import SearchEndpoint

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
    search = SearchEndpoint(registry, options, metrics, experiment=experiment_file.config if experiment_file else None)
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
