"""The search hot path: ``POST /v1/attributes/{attribute}/search`` answered in plain Python.

``SearchEndpoint(attribute, raw_body, request_id)`` -> (HTTP status, JSON bytes): the body is validated as a
``SearchRequest``, checked against the live index (dimensions, k, history limits, finite numbers), the trigger is
decided for histories, the arm for a running experiment's users (control is never served), the ScaNN search runs,
and the exposure is logged. Bad requests are 404/422 with ``{"detail": ...}``; nothing here raises to the caller.
Called by the ASGI guard in ``fast_path.py``.
"""

from __future__ import annotations

import itertools
import math
import time
import uuid
from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from silverset.components.abtest.experiment import CONTROL
from silverset.components.abtest.exposure import Exposure

from .loaded import TriggerDecision
from .registry import IndexRegistry

if TYPE_CHECKING:
    from .server import ServerOptions


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


class SearchEndpoint:
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
