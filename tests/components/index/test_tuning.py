"""Build-time ScaNN tuning: the grid's choice is the fastest config meeting the target, recorded with its curve."""

from __future__ import annotations

import json

import numpy as np

from silverset.components.common.artifacts import read_index_manifest
from silverset.components.index import ann, build, tuning
from silverset.components.index.loaded import LoadedIndex
from tests.helpers.indexes import clustered, write_inputs


def _point(build_id, recall, qps, size, **extra):
    return {"build": build_id, "recall": recall, "qps_single": qps, "size_mib": size, **extra}


def test_choose_keeps_the_fastest_meeting_the_target_ties_by_size():
    curve = [
        _point(0, 0.99, 1000.0, 5.0),
        _point(1, 0.96, 3000.0, 9.0),
        _point(2, 0.951, 2950.0, 4.0),
        _point(3, 0.90, 9000.0, 1.0),
    ]
    chosen, met = tuning.choose(curve, 0.95, tie_margin=0.03)
    # 3 is fastest but misses 0.95; 1 and 2 tie within 3% of QPS, 2 is smaller
    assert met and chosen["build"] == 2
    chosen, met = tuning.choose(curve, 0.95, tie_margin=0.0)
    assert met and chosen["build"] == 1


def test_choose_needs_the_recall_lower_bound_over_the_target():
    curve = [_point(0, 0.955, 5000.0, 1.0, recall_lower=0.93), _point(1, 0.97, 3000.0, 1.0, recall_lower=0.955)]
    assert tuning.choose(curve, 0.95)[0]["build"] == 1


def test_choose_with_a_target_nobody_meets_returns_the_highest_recall_flagged():
    curve = [_point(0, 0.80, 1000.0, 5.0), _point(1, 0.85, 500.0, 5.0), _point(2, 0.85, 700.0, 5.0)]
    chosen, met = tuning.choose(curve, 0.95)
    assert not met and chosen["build"] == 2


def test_build_records_the_curve_and_serves_the_fastest_config_meeting_the_target(tmp_path, spec_path):
    vectors = clustered(3000, 32, seed=1)
    scores, embeddings, _ = write_inputs(tmp_path, vectors, np.ones(3000))
    out = tmp_path / "index"
    options = build.BuildOptions(brute_force_below=1000, recall_queries=100)
    built = build.build_index(**_inputs(scores, embeddings, spec_path), out=out, options=options)
    manifest = built.model_dump(mode="json")
    record = manifest["build"]["tuning"]
    target = manifest["serving"]["recall_target"]

    # a small index (< FULL_GRID_FROM): 4 builds, dims per block 2 and 4, float32 and int8 reordering
    grid = {(b["parameters"]["dimensions_per_block"], b["parameters"]["reorder_quantize"]) for b in record["builds"]}
    assert grid == {(2, "float32"), (2, "int8"), (4, "float32"), (4, "int8")} and record["skipped_builds"] == 0
    # each build: 3 reorder depths per rung of leaves, up to the first rung where all three meet the target
    for b in record["builds"]:
        points = [p for p in record["curve"] if p["build"] == b["build"]]
        rungs = sorted({p["num_leaves_to_search"] for p in points})
        assert len(points) == 3 * len(rungs) and rungs[0] == 1
        top = [p for p in points if p["num_leaves_to_search"] == rungs[-1]]
        below = [p for p in points if p["num_leaves_to_search"] == rungs[-2]]
        assert (
            all(p["recall_lower"] >= target for p in top)
            or rungs[-1] == max(1, round(0.7 * b["parameters"]["num_leaves"]) + 1)
            or len(rungs) == 10
        )
        assert not all(p["recall_lower"] >= target for p in below)
    # recompute the choice from the recorded curve
    meeting = [p for p in record["curve"] if p["recall_lower"] >= target]
    assert meeting, "some configuration must reach the target on clustered vectors"
    chosen = record["chosen"]
    assert record["met_target"] and chosen["recall"] >= target
    assert chosen["qps_single"] >= (1 - build.BuildOptions().grid.tie_margin) * max(p["qps_single"] for p in meeting)
    assert manifest["build"]["recall"] == chosen["recall"]
    params = manifest["parameters"]
    assert (
        params["pre_reorder_num_neighbors"],
        params["reorder_quantize"],
        params["dimensions_per_block"],
        params["num_leaves"],
    ) == (
        chosen["pre_reorder_num_neighbors"],
        chosen["reorder_quantize"],
        chosen["dimensions_per_block"],
        chosen["num_leaves"],
    )
    # served leaves: the chosen ones, or more if the rebuilt index needed them for vocabulary videos to find themselves
    assert params["num_leaves_to_search"] == record["served"]["num_leaves_to_search"] >= chosen["num_leaves_to_search"]
    assert (
        record["served"]["self_hit"] >= build.BuildOptions().grid.min_self_hit
        and record["held_out_vocabulary_rows"] == 100
    )

    # manifest round trip: what is on disk is what the build returned, and the server loads that searcher
    assert read_index_manifest(out).model_dump(mode="json") == json.loads(json.dumps(manifest))
    loaded = LoadedIndex(out)
    loaded.self_check()
    assert loaded.leaves_to_search == params["num_leaves_to_search"]
    # ... serves with the tuned reorder depth, and the load-time halving (which counts history queries finding
    # themselves, overstating recall) leaves a grid-tuned index alone
    assert loaded.pre_reorder == params["pre_reorder_num_neighbors"] > 0
    assert loaded.tune_leaves_to_search(target=target)["leaves_to_search"] == params["num_leaves_to_search"]
    assert loaded.leaves_to_search == params["num_leaves_to_search"]
    id_of_row = {row: vid for vid, row in loaded.history_row.items()}
    found = 0
    for row in range(0, 3000, 100):  # 30 queries; every video is in the vocabulary
        query = loaded.history_vectors[row].astype(np.float32)
        exact = {id_of_row[int(r)] for r in np.argsort(-(loaded.history_vectors @ query))[:10]}
        hits = loaded.search(query, 10)
        assert len(hits) == 10
        found += len({h.video_id for h in hits} & exact)
    assert found / 300 >= target - 0.05  # single-query search with the tuned depth, near the build's measured recall


def test_a_target_nobody_meets_is_flagged_with_the_highest_recall_config():
    rng = np.random.default_rng(0)
    database = rng.normal(size=(3000, 32)).astype(np.float32)  # no structure: partitions lose neighbours
    queries = rng.normal(size=(60, 32)).astype(np.float32)
    base = ann.choose_parameters(3000, 32, brute_force_below=1000)
    options = tuning.TuningOptions(search_fractions=(0.01, 0.05), reorder_depth_factors=(5,), passes=1)
    tuned = tuning.tune(database, queries, base, target=1.0, options=options)
    assert not tuned.record["met_target"] and "no configuration reached recall@10 1.000" in tuned.record["warning"]
    assert tuned.chosen["recall"] == max(p["recall"] for p in tuned.record["curve"]) < 1.0


def test_the_time_budget_stops_the_grid_after_the_default_build():
    database = clustered(2000, 16, seed=2)
    base = ann.choose_parameters(2000, 16, brute_force_below=1000)
    options = tuning.TuningOptions(budget_s=1e-6, search_fractions=(0.05,), reorder_depth_factors=(10,), passes=1)
    tuned = tuning.tune(database, database[:20], base, target=0.5, options=options, self_rows=np.arange(20))
    assert len(tuned.record["builds"]) == 1 and tuned.record["skipped_builds"] == 3
    assert tuned.record["builds"][0]["parameters"]["dimensions_per_block"] == base.dimensions_per_block
    assert tuned.record["builds"][0]["parameters"]["reorder_quantize"] == "float32"


def test_int8_reordering_builds_a_smaller_index():
    database = clustered(3000, 64, seed=4)
    base = ann.choose_parameters(3000, 64, brute_force_below=1000)
    options = tuning.TuningOptions(
        dimensions_per_block=(2,), search_fractions=(0.05,), reorder_depth_factors=(10,), passes=1
    )
    tuned = tuning.tune(database, database[:20], base, target=0.5, options=options, self_rows=np.arange(20))
    size = {b["parameters"]["reorder_quantize"]: b["size_mib"] for b in tuned.record["builds"]}
    assert size["int8"] < 0.6 * size["float32"]


def _inputs(scores, embeddings, spec_path):
    from silverset.components.common import schemas, tables
    from silverset.components.common.spec import load_spec

    spec = load_spec(str(spec_path))
    history, errors, digest = build.join_scores_embeddings(
        tables.read_table(scores, schemas.SCORES), tables.read_table(embeddings), spec
    )
    return {"history": history, "errors": errors, "model_digest": digest, "spec": spec}
