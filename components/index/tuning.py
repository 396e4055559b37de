"""Build-time ScaNN tuning: a small grid measured against exact recall@k, keeping the fastest config that meets the target.

Build-time knobs (one ScaNN build each): ``num_leaves`` (sqrt(n), and 2 sqrt(n) from ``FULL_GRID_FROM``
vectors up), ``dimensions_per_block`` 2 vs 4, reordering with float32 vs int8 vectors. Query-time knobs
(measured on every build, no rebuild): ``leaves_to_search`` (1-20% of the leaves) and the reorder depth
(``pre_reorder_num_neighbors``, 5/10/25 x k; each build reorders ``max(depths)`` by default).

Every point of the grid gets recall@k against exact numpy search on the query sample (with a lower bound: recall less
``confidence_z`` standard errors over queries, so the choice does not sit on the target by luck), single-thread QPS
(one query per call, median of ``passes`` passes over ``timed_queries`` queries) and the build's
serialized size. ``choose`` keeps the fastest point meeting the target (and finding vocabulary
queries themselves, which the server's self-check requires); points within ``tie_margin`` of
the fastest QPS count as a tie (noise on a shared machine) and the smallest index, then the highest
recall, wins. When no point meets the target it returns the highest-recall point, flagged, with a warning.

Bound on build time: at most ``len(grid)`` builds (8, or 4 below ``FULL_GRID_FROM``) and no new build
starts once the elapsed time plus the slowest build so far would pass ``budget_s``; the first build
(the untuned default) always runs.
"""
from __future__ import annotations

import itertools
import math
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from . import ann

# From this many vectors the grid also tries twice the leaves (4 -> 8 builds).
FULL_GRID_FROM = 100_000


class TuningOptions(BaseModel):
    """The grid and how it is measured."""

    model_config = ConfigDict(extra="forbid")

    leaves_factors: tuple[float, ...] = (1.0, 2.0)
    dimensions_per_block: tuple[int, ...] = (2, 4)
    reorder_quantize: tuple[str, ...] = ("float32", "int8")
    search_fractions: tuple[float, ...] = (0.01, 0.02, 0.05, 0.1, 0.2)
    reorder_depth_factors: tuple[int, ...] = (5, 10, 25)
    timed_queries: int = Field(200, ge=1)
    passes: int = Field(3, ge=1)
    tie_margin: float = Field(0.03, ge=0, lt=1)
    # A point also needs this share of vocabulary queries to find themselves (the server's self-check refuses < 0.9).
    min_self_hit: float = Field(0.95, ge=0, le=1)
    # Meeting the target means recall - z * standard error (over queries) >= target: fresh queries then meet it too.
    confidence_z: float = Field(2.0, ge=0)
    budget_s: float = Field(600.0, gt=0)


class Tuned:
    """Outcome: the chosen point, its searcher, the parameters to serve with, and the manifest record."""

    def __init__(self, *, chosen: dict, searcher, params: ann.IndexParameters, record: dict):
        self.chosen, self.searcher, self.params, self.record = chosen, searcher, params, record


def build_grid(count: int, dimensions: int, base: ann.IndexParameters, options: TuningOptions) -> list[ann.IndexParameters]:
    """Build-time configurations, the untuned default (``base`` with float32 reorder) first."""
    factors = options.leaves_factors if count >= FULL_GRID_FROM else options.leaves_factors[:1]
    depth = max(options.reorder_depth_factors) * base.num_neighbors
    grid = []
    for factor, dpb, quantize in itertools.product(factors, options.dimensions_per_block, options.reorder_quantize):
        leaves = int(min(max(round(base.num_leaves * factor), 2), count))
        grid.append(base.model_copy(update={"num_leaves": leaves, "dimensions_per_block": min(dpb, dimensions),
                                            "reorder_quantize": quantize, "reorder_num_neighbors": depth}))
    first = base.model_copy(update={"reorder_quantize": "float32", "reorder_num_neighbors": depth})
    return [first] + [g for g in grid if g != first]


def _qps_single(searcher, queries: np.ndarray, k: int, leaves: int, depth: int, passes: int) -> float:
    rates = []
    for _ in range(passes):
        started = time.perf_counter()
        for q in queries:
            searcher.search(q, final_num_neighbors=k, pre_reorder_num_neighbors=depth, leaves_to_search=leaves)
        rates.append(len(queries) / (time.perf_counter() - started))
    return statistics.median(rates)


def _size_mib(searcher) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        ann.save_searcher(searcher, tmp)
        return sum(f.stat().st_size for f in Path(tmp).rglob("*") if f.is_file()) / 2**20


def drop_self(ids: np.ndarray, self_rows: np.ndarray) -> np.ndarray:
    """Top-(k+1) row ids [q, k+1] -> top-k [q, k] without each query's own row (-1: none; then the last is dropped)."""
    out = np.empty((ids.shape[0], ids.shape[1] - 1), dtype=np.int64)
    for i, (row, own) in enumerate(zip(ids, self_rows)):
        hit = np.flatnonzero(row == own)
        out[i] = np.delete(row, hit[0]) if own >= 0 and hit.size else row[:-1]
    return out


def measure(searcher, params: ann.IndexParameters, build_id: int, queries: np.ndarray, self_rows: np.ndarray, truth: np.ndarray,
            options: TuningOptions) -> list[dict]:
    """The query-time points of one build: recall@k (leave-one-out) and single-thread QPS per (leaves_to_search, reorder depth)."""
    k = truth.shape[1]
    leaves_options = sorted({min(params.num_leaves, max(1, math.ceil(params.num_leaves * f))) for f in options.search_fractions})
    depths = sorted({max(k, f * k) for f in options.reorder_depth_factors})
    timed = queries[: options.timed_queries]
    points = []
    for leaves, depth in itertools.product(leaves_options, depths):
        raw = ann.search_batched(searcher, queries, k + 1, leaves_to_search=leaves, pre_reorder_num_neighbors=max(depth, k + 1))
        own = self_rows >= 0
        self_hit = float(np.mean([r in row[:k] for r, row in zip(self_rows[own], raw[own])])) if own.any() else None
        found = drop_self(raw, self_rows)
        per_query = np.array([len(set(f.tolist()) & set(t.tolist())) / k for f, t in zip(found, truth)])
        standard_error = float(per_query.std(ddof=1) / np.sqrt(len(per_query))) if len(per_query) > 1 else 0.0
        points.append({"build": build_id, "num_leaves": params.num_leaves, "dimensions_per_block": params.dimensions_per_block,
                       "reorder_quantize": params.reorder_quantize, "num_leaves_to_search": leaves, "pre_reorder_num_neighbors": depth,
                       "recall": ann.recall_at_k(found, truth), "recall_lower": float(per_query.mean()) - options.confidence_z * standard_error,
                       "self_hit": self_hit, "qps_single": _qps_single(searcher, timed, k, leaves, depth, options.passes)})
    return points


def choose(curve: list[dict], target: float, *, tie_margin: float = 0.03, min_self_hit: float = 0.95) -> tuple[dict, bool]:
    """(chosen point, met target): fastest meeting ``target`` (ties within ``tie_margin``: smallest, then highest recall).

    Meeting means recall_lower (recall less z standard errors; recall where absent) >= ``target`` and, where measured, self_hit (vocabulary queries finding themselves
    in their top-k) >= ``min_self_hit``. No point meets it: the highest-recall point (then fastest) and False.
    """
    good = [p for p in curve if p.get("recall_lower", p["recall"]) >= target and (p.get("self_hit") is None or p["self_hit"] >= min_self_hit)]
    if not good:
        return max(curve, key=lambda p: (p["recall"], p["qps_single"])), False
    fastest = max(p["qps_single"] for p in good)
    tied = [p for p in good if p["qps_single"] >= (1 - tie_margin) * fastest]
    return min(tied, key=lambda p: (p["size_mib"], -p["recall"], -p["qps_single"])), True


def tune(database: np.ndarray, queries: np.ndarray, base: ann.IndexParameters, *, target: float, options: TuningOptions = TuningOptions(),
         self_rows: np.ndarray | None = None) -> Tuned:
    """Build and measure the grid for a tree index (``base.algorithm == "tree_ah"``); see the module docstring.

    ``self_rows`` int [q]: the database row each query is (-1: not in the database). Recall is leave-one-out:
    a query's own row is removed from both the exact and the found top-k, so vocabulary vectors used as
    queries count as held out (finding itself is no evidence about its neighbours).
    """
    started = time.perf_counter()
    self_rows = np.full(len(queries), -1, np.int64) if self_rows is None else np.asarray(self_rows, np.int64)
    truth = drop_self(ann.exact_top_k(database, queries, base.num_neighbors + 1), self_rows)
    grid = build_grid(database.shape[0], database.shape[1], base, options)
    curve, builds, kept, slowest, skipped = [], [], {}, 0.0, 0
    for build_id, params in enumerate(grid):
        elapsed = time.perf_counter() - started
        if build_id > 0 and elapsed + slowest > options.budget_s:
            skipped = len(grid) - build_id
            break
        t0 = time.perf_counter()
        searcher = ann.build_searcher(database, params)
        build_s = time.perf_counter() - t0
        slowest = max(slowest, build_s)
        size = _size_mib(searcher)
        builds.append({"build": build_id, "parameters": params.model_dump(mode="json"), "build_s": round(build_s, 3), "size_mib": round(size, 3)})
        points = measure(searcher, params, build_id, queries, self_rows, truth, options)
        for p in points:
            p["size_mib"] = round(size, 3)
        curve += points
        kept[build_id] = searcher
        keep = {choose(curve, target, tie_margin=options.tie_margin, min_self_hit=options.min_self_hit)[0]["build"], max(curve, key=lambda p: p["recall"])["build"]}
        kept = {b: s for b, s in kept.items() if b in keep}
        slowest = max(slowest, time.perf_counter() - t0)  # measuring counts too
    chosen, met = choose(curve, target, tie_margin=options.tie_margin, min_self_hit=options.min_self_hit)
    params = grid[chosen["build"]].model_copy(update={"num_leaves_to_search": chosen["num_leaves_to_search"],
                                                      "pre_reorder_num_neighbors": chosen["pre_reorder_num_neighbors"]})
    record = {
        "mode": "grid",
        "target": target,
        "met_target": met,
        "chosen": chosen,
        "queries": int(queries.shape[0]),
        "query_source": "sampled history vectors (the server's queries are built from users' history); recall is leave-one-out",
        "timed_queries": int(min(options.timed_queries, queries.shape[0])),
        "qps": f"single-thread, one query per call, median of {options.passes} passes",
        "builds": builds,
        "skipped_builds": skipped,
        "budget_s": options.budget_s,
        "seconds": round(time.perf_counter() - started, 3),
        "curve": curve,
    }
    if not met:
        record["warning"] = (f"no configuration reached recall@{base.num_neighbors} {target:.3f}; the highest-recall one "
                             f"({chosen['recall']:.3f}) is recorded")
    return Tuned(chosen=chosen, searcher=kept[chosen["build"]], params=params, record=record)
