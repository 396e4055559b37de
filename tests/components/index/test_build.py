"""Index build: restricted vocabulary by the spec's rule, recall against numpy exact search, manifest."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from silverset.components.common import tables
from silverset.components.common.errors import GateFailed, SilversetInputError
from silverset.components.index import ann, build
from silverset.components.index.loaded import IndexRefused, LoadedIndex
from tests.helpers.indexes import DIGEST, clustered, write_inputs


def test_exact_top_k_matches_a_hand_sorted_example():
    db = np.array([[1, 0], [0, 1], [0.7, 0.7], [-1, 0]], dtype=np.float32)
    q = np.array([[1, 0.1]], dtype=np.float32)
    assert ann.exact_top_k(db, q, 3).tolist() == [[0, 2, 1]]
    assert ann.recall_at_k(np.array([[0, 1, 3]]), np.array([[0, 2, 1]])) == pytest.approx(2 / 3)


def test_parameters_follow_scann_guidance_by_size():
    assert ann.choose_parameters(5_000, 64).algorithm == "brute_force"
    big = ann.choose_parameters(1_000_000, 128)
    assert big.algorithm == "tree_ah" and big.num_leaves == 1000 and big.num_leaves_to_search == 50
    assert big.training_sample_size == 250_000 and big.reorder_num_neighbors == 100


def test_build_restricts_vocabulary_and_records_manifest(tmp_path, spec_path):
    vectors = clustered(600, 16)
    probs = np.linspace(0, 1, 600)
    scores, embeddings, ids = write_inputs(tmp_path, vectors, probs, missing_embedding=3)
    out = tmp_path / "index"
    summary = build.run(scores=str(scores), embeddings=str(embeddings), attribute_spec=str(spec_path), out_dir=str(out))

    expected = {vid for vid, p in zip(ids[3:], probs[3:].astype(np.float32)) if p >= 0.5}
    vocab = tables.read_table(out / "vocabulary.parquet")
    assert set(vocab.column("video_id").to_pylist()) == expected
    assert summary.vocabulary == len(expected)
    # inputs == outputs + errors: the three videos without embeddings are in errors.parquet
    errors = tables.read_errors(out)
    assert errors.column("key").to_pylist() == ids[:3] and summary.history + summary.errors == 600
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["model_digest"] == DIGEST and manifest["dimensions"] == 16 and manifest["count"] == len(expected)
    assert manifest["parameters"]["algorithm"] == "brute_force" and manifest["build"]["recall"] == 1.0
    # small indexes skip the grid: one measured brute-force point
    assert manifest["build"]["tuning"]["mode"] == "brute_force" and len(manifest["build"]["tuning"]["curve"]) == 1
    # the same inputs give the same version (deploy idempotence relies on it)
    again = build.run(
        scores=str(scores), embeddings=str(embeddings), attribute_spec=str(spec_path), out_dir=str(tmp_path / "again")
    )
    assert again.version == summary.version


def test_tree_index_recall_against_exact_search_and_round_trip(tmp_path, spec_path):
    # 50 extra points from the same clusters are the fresh queries: the build tunes for the query
    # distribution it samples (history vectors), so fresh queries come from that distribution too.
    everything = clustered(3050, 32, seed=1)
    vectors, queries = everything[:3000], everything[3000:]
    probs = np.ones(3000)
    scores, embeddings, ids = write_inputs(tmp_path, vectors, probs)
    out = tmp_path / "index"
    options = build.BuildOptions(brute_force_below=1000, recall_queries=100)
    summary = build.run(
        scores=str(scores), embeddings=str(embeddings), attribute_spec=str(spec_path), out_dir=str(out), options=options
    )
    assert summary.algorithm == "tree_ah" and summary.recall >= 0.9

    loaded = LoadedIndex(out)
    loaded.self_check()
    truth = ann.exact_top_k(vectors, queries, 10)
    found = [[int(h.video_id[1:]) for h in loaded.search(q, 10)] for q in queries]
    # Fresh queries, not the build's own recall sample; ScaNN's partition training samples at random, so
    # allow a little below the build's 0.9 (a broken index or wrong ids scores near 0).
    assert ann.recall_at_k(np.array(found), truth) >= 0.85


def test_the_load_self_check_refuses_an_index_whose_ids_do_not_match_its_vectors(tmp_path, spec_path):
    vectors = clustered(3000, 32, seed=2)
    scores, embeddings, _ = write_inputs(tmp_path, vectors, np.ones(3000))
    out = tmp_path / "index"
    build.run(
        scores=str(scores),
        embeddings=str(embeddings),
        attribute_spec=str(spec_path),
        out_dir=str(out),
        options=build.BuildOptions(brute_force_below=1000, recall_queries=100),
    )
    loaded = LoadedIndex(out)
    loaded.self_check()  # the sound index passes
    # the searcher's rows name other videos (a vocabulary of another build, rows out of order): refused
    loaded.vocabulary_ids = np.random.default_rng(0).permutation(loaded.vocabulary_ids)
    with pytest.raises(IndexRefused, match="find themselves"):
        loaded.self_check()


def test_recall_below_target_fails_the_build_and_writes_nothing(tmp_path, spec_path):
    data = yaml.safe_load(spec_path.read_text())
    data["serving"]["recall_target"] = 1.0
    spec_path.write_text(yaml.safe_dump(data))
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(3000, 32)).astype(np.float32)  # no structure: partitions lose neighbours
    scores, embeddings, _ = write_inputs(tmp_path, vectors, np.ones(3000))
    options = build.BuildOptions(brute_force_below=1000, recall_queries=100)
    with pytest.raises(GateFailed, match="recall@10"):
        build.run(
            scores=str(scores),
            embeddings=str(embeddings),
            attribute_spec=str(spec_path),
            out_dir=str(tmp_path / "index"),
            options=options,
        )
    assert not (tmp_path / "index").exists()


def test_scores_for_another_attribute_or_mixed_digests_are_refused(tmp_path, spec_path):
    vectors = clustered(50, 8)
    scores, embeddings, _ = write_inputs(tmp_path, vectors, np.ones(50), attribute="moving_object")
    with pytest.raises(SilversetInputError, match="no usable scores"):
        build.run(
            scores=str(scores), embeddings=str(embeddings), attribute_spec=str(spec_path), out_dir=str(tmp_path / "i")
        )


def test_corrupt_index_is_refused_on_load(tmp_path, spec_path):
    scores, embeddings, _ = write_inputs(tmp_path, clustered(200, 8), np.ones(200))
    out = tmp_path / "index"
    build.run(scores=str(scores), embeddings=str(embeddings), attribute_spec=str(spec_path), out_dir=str(out))
    target = next(p for p in (out / "scann").iterdir() if p.is_file() and p.stat().st_size > 100)
    target.write_bytes(target.read_bytes()[:-50])
    with pytest.raises(IndexRefused, match="digest"):
        LoadedIndex(out)
