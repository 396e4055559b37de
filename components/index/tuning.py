"""Build-time ScaNN tuning: a small grid measured against exact recall@k.

It keeps the fastest config that meets the target.

Build-time knobs (one ScaNN build each): ``num_leaves`` (sqrt(n), and 2 sqrt(n) from ``FULL_GRID_FROM``
vectors up), ``dimensions_per_block`` 2 vs 4, reordering with float32 vs int8 vectors. Query-time knobs
(measured on every build, no rebuild): ``leaves_to_search`` (1-70% of the leaves, upward until every depth
meets the target) and the reorder depth (``pre_reorder_num_neighbors``, 5/10/25 x k; each build reorders
``max(depths)`` by default).

Every point of the grid gets recall@k against exact numpy search on the query sample (with a lower bound: recall less
``confidence_z`` standard errors over queries, so the choice does not sit on the target by luck), single-thread QPS
(one query per call, per CPU-second of the searching thread, median of ``passes`` passes over ``timed_queries``
queries) and the build's serialized size. ``choose`` keeps the fastest point meeting the target; points within
``tie_margin`` of
the fastest QPS count as a tie (noise on a shared machine) and the smallest index, then the highest
recall, wins. When no point meets the target it returns the highest-recall point, flagged, with a warning.

Bound on build time: at most ``len(grid)`` builds (8, or 4 below ``FULL_GRID_FROM``) and no new build
starts once the elapsed time plus the slowest build so far would pass ``budget_s``; the first build
(the untuned default) always runs; the chosen configuration is built once more on the whole vocabulary.
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
    search_fractions: tuple[float, ...] = (0.01, 0.02, 0.03, 0.05, 0.07, 0.1, 0.15, 0.2, 0.3, 0.5, 0.7)
    reorder_depth_factors: tuple[int, ...] = (5, 10, 25)
    timed_queries: int = Field(200, ge=1)
    passes: int = Field(3, ge=1)
    tie_margin: float = Field(0.03, ge=0, lt=1)
    # The served index needs this share of vocabulary queries to find themselves: the server's self-check refuses a
    # version when fewer than 90% of 16 sampled videos do, which at a true 95% still happens 19% of the time
    # (binomial), at 99% ~1%.
    min_self_hit: float = Field(0.99, ge=0, le=1)
    # Meeting the target means recall - z * standard error (over queries) >= target: fresh queries then meet it too.
    confidence_z: float = Field(2.0, ge=0)
    budget_s: float = Field(600.0, gt=0)


class Tuned:
    """Outcome: the chosen point, its searcher, the parameters to serve with, and the manifest record."""

    def __init__(self, *, chosen: dict, searcher, params: ann.IndexParameters, record: dict):
        self.chosen, self.searcher, self.params, self.record = chosen, searcher, params, record


def build_grid(
    count: int, dimensions: int, base: ann.IndexParameters, options: TuningOptions
) -> list[ann.IndexParameters]:
    """Build-time configurations, the untuned default (``base`` with float32 reorder) first."""
    factors = options.leaves_factors if count >= FULL_GRID_FROM else options.leaves_factors[:1]
    depth = max(options.reorder_depth_factors) * base.num_neighbors
    grid = []
    for factor, dpb, quantize in itertools.product(factors, options.dimensions_per_block, options.reorder_quantize):
        leaves = int(min(max(round(base.num_leaves * factor), 2), count))
        grid.append(
            base.model_copy(
                update={
                    "num_leaves": leaves,
                    "dimensions_per_block": min(dpb, dimensions),
                    "reorder_quantize": quantize,
                    "reorder_num_neighbors": depth,
                }
            )
        )
    first = base.model_copy(update={"reorder_quantize": "float32", "reorder_num_neighbors": depth})
    return [first] + [g for g in grid if g != first]


def _qps_single(searcher, queries: np.ndarray, k: int, leaves: int, depth: int, passes: int) -> float:
    """Queries per CPU-second of this thread, one query per call (median of ``passes``).

    Thread CPU time rather than wall time: on a shared machine other processes' load inflates wall
    time by 2x and more between points, which would decide the choice; CPU time does not include it.
    """
    rates = []
    for _ in range(passes):
        started = time.thread_time()
        for q in queries:
            searcher.search(q, final_num_neighbors=k, pre_reorder_num_neighbors=depth, leaves_to_search=leaves)
        rates.append(len(queries) / max(time.thread_time() - started, 1e-9))
    return statistics.median(rates)


def _size_mib(searcher) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        ann.save_searcher(searcher, tmp)
        return sum(f.stat().st_size for f in Path(tmp).rglob("*") if f.is_file()) / 2**20


def _ladder(num_leaves: int, options: TuningOptions) -> list[int]:
    return sorted({min(num_leaves, max(1, math.ceil(num_leaves * f))) for f in options.search_fractions})


def measure(
    searcher,
    params: ann.IndexParameters,
    build_id: int,
    queries: np.ndarray,
    truth: np.ndarray,
    options: TuningOptions,
    *,
    target: float = 1.0,
) -> list[dict]:
    """The query-time points of one build: recall@k (with its lower bound) and single-thread QPS per
    (leaves_to_search, reorder depth).

    Leaves go up the ladder and stop after the first rung where every reorder depth meets ``target``.
    """
    k = truth.shape[1]
    leaves_options = _ladder(params.num_leaves, options)
    depths = sorted({max(k, f * k) for f in options.reorder_depth_factors})
    timed = queries[: options.timed_queries]
    points = []
    for leaves, depth in itertools.product(leaves_options, depths):
        if points and depth == depths[0] and all(p["recall_lower"] >= target for p in points[-len(depths) :]):
            break  # every depth met the target at fewer leaves: more leaves only search longer
        found = ann.search_batched(searcher, queries, k, leaves_to_search=leaves, pre_reorder_num_neighbors=depth)
        per_query = np.array([len(set(f.tolist()) & set(t.tolist())) / k for f, t in zip(found, truth)])
        standard_error = float(per_query.std(ddof=1) / np.sqrt(len(per_query))) if len(per_query) > 1 else 0.0
        points.append(
            {
                "build": build_id,
                "num_leaves": params.num_leaves,
                "dimensions_per_block": params.dimensions_per_block,
                "reorder_quantize": params.reorder_quantize,
                "num_leaves_to_search": leaves,
                "pre_reorder_num_neighbors": depth,
                "recall": ann.recall_at_k(found, truth),
                "recall_lower": float(per_query.mean()) - options.confidence_z * standard_error,
                "qps_single": _qps_single(searcher, timed, k, leaves, depth, options.passes),
            }
        )
    return points


def choose(curve: list[dict], target: float, *, tie_margin: float = 0.03) -> tuple[dict, bool]:
    """(chosen point, met target): fastest meeting ``target``.

    Ties within ``tie_margin``: smallest, then highest recall.

    Meeting means recall_lower (recall less z standard errors; recall where absent) >= ``target``.
    No point meets it: the highest-recall point (then fastest) and False.
    """
    good = [p for p in curve if p.get("recall_lower", p["recall"]) >= target]
    if not good:
        return max(curve, key=lambda p: (p["recall"], p["qps_single"])), False
    fastest = max(p["qps_single"] for p in good)
    tied = [p for p in good if p["qps_single"] >= (1 - tie_margin) * fastest]
    return min(tied, key=lambda p: (p["size_mib"], -p["recall"], -p["qps_single"])), True


def _self_hit(searcher, database: np.ndarray, rows: np.ndarray, k: int, leaves: int, depth: int) -> float | None:
    if rows.size == 0:
        return None
    found = ann.search_batched(searcher, database[rows], k, leaves_to_search=leaves, pre_reorder_num_neighbors=depth)
    return float(np.mean([r in f for r, f in zip(rows, found)]))


def tune(
    database: np.ndarray,
    queries: np.ndarray,
    base: ann.IndexParameters,
    *,
    target: float,
    options: TuningOptions = TuningOptions(),
    self_rows: np.ndarray | None = None,
) -> Tuned:
    """Build and measure the grid for a tree index (``base.algorithm == "tree_ah"``); see the module docstring.

    ``self_rows`` int [q]: the database row each query is (-1: not in the database). Those rows are held
    out: the grid is built on the database without them, so every query is unseen by the partitioning and
    quantization training it is measured against. The chosen configuration is then built once more on the
    whole database (that searcher is returned), and its self-hit (vocabulary queries finding themselves,
    which the server's self-check requires) is checked; below ``min_self_hit`` the leaves searched step up
    the grid's ladder.
    """
    started = time.perf_counter()
    k = base.num_neighbors
    self_rows = np.full(len(queries), -1, np.int64) if self_rows is None else np.asarray(self_rows, np.int64)
    held_out = np.unique(self_rows[self_rows >= 0])
    keep = np.ones(database.shape[0], bool)
    keep[held_out] = False
    grid_database = database[keep]
    truth = ann.exact_top_k(grid_database, queries, k)
    grid = build_grid(grid_database.shape[0], database.shape[1], base, options)
    curve, builds, slowest, skipped = [], [], 0.0, 0
    for build_id, params in enumerate(grid):
        elapsed = time.perf_counter() - started
        if build_id > 0 and elapsed + slowest > options.budget_s:
            skipped = len(grid) - build_id
            break
        t0 = time.perf_counter()
        searcher = ann.build_searcher(grid_database, params)
        build_s = time.perf_counter() - t0
        size = _size_mib(searcher)
        builds.append(
            {
                "build": build_id,
                "parameters": params.model_dump(mode="json"),
                "build_s": round(build_s, 3),
                "size_mib": round(size, 3),
            }
        )
        points = measure(searcher, params, build_id, queries, truth, options, target=target)
        for p in points:
            p["size_mib"] = round(size, 3)
        curve += points
        slowest = max(slowest, time.perf_counter() - t0)  # measuring counts too
    chosen, met = choose(curve, target, tie_margin=options.tie_margin)
    params = grid[chosen["build"]]
    t0 = time.perf_counter()  # the served index: the chosen configuration over the whole vocabulary
    searcher = ann.build_searcher(database, params)
    final_build_s = time.perf_counter() - t0
    ladder = [n for n in _ladder(params.num_leaves, options) if n >= chosen["num_leaves_to_search"]]
    leaves, depth = chosen["num_leaves_to_search"], chosen["pre_reorder_num_neighbors"]
    self_hit = _self_hit(searcher, database, held_out, k, leaves, depth)
    for step in ladder[1:]:
        if self_hit is None or self_hit >= options.min_self_hit:
            break
        leaves, self_hit = step, _self_hit(searcher, database, held_out, k, step, depth)
    params = params.model_copy(update={"num_leaves_to_search": leaves, "pre_reorder_num_neighbors": depth})
    record = {
        "mode": "grid",
        "target": target,
        "met_target": met,
        "chosen": chosen,
        "served": {
            "num_leaves_to_search": leaves,
            "pre_reorder_num_neighbors": depth,
            "self_hit": self_hit,
            "build_s": round(final_build_s, 3),
        },
        "queries": int(queries.shape[0]),
        "held_out_vocabulary_rows": int(held_out.size),
        "query_source": "sampled history vectors (the server's queries are built from users' history); "
        "those in the vocabulary are held out of the grid's builds, "
        "the served index is rebuilt on the whole vocabulary",
        "timed_queries": int(min(options.timed_queries, queries.shape[0])),
        "qps": f"single-thread, one query per call, queries per thread CPU-second, median of {options.passes} passes",
        "builds": builds,
        "skipped_builds": skipped,
        "budget_s": options.budget_s,
        "seconds": round(time.perf_counter() - started, 3),
        "curve": curve,
    }
    if not met:
        record["warning"] = (
            f"no configuration reached recall@{k} {target:.3f}; the highest-recall one "
            f"({chosen['recall']:.3f}) is recorded"
        )
    return Tuned(chosen=chosen, searcher=searcher, params=params, record=record)
