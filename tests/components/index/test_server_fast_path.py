"""Index server hot path: pure-ASGI search validation, leaves_to_search tuned at load, forked workers."""

from __future__ import annotations

import http.client
import json
import signal
import subprocess
import sys

import numpy as np
import pytest
from fastapi.testclient import TestClient

from silverset.components.index import ann, build
from silverset.components.index.loaded import LoadedIndex
from silverset.components.index.server import ServerOptions, create_app
from tests.helpers.indexes import clustered, tiny_index_spec, write_inputs
from tests.helpers.ports import free_port, wait_ready

URL = "/v1/attributes/red_dominant/search"


@pytest.fixture(scope="module")
def tree_index(tmp_path_factory):
    """A tree+AH index (3,000 clustered 16-d vectors, all in the vocabulary) and its vectors."""
    tmp = tmp_path_factory.mktemp("tree")
    spec = tiny_index_spec(tmp)
    vectors = clustered(3000, 16, clusters=64, seed=11)
    scores, embeddings, ids = write_inputs(tmp, vectors, np.ones(3000))
    out = tmp / "index"
    summary = build.run(
        scores=str(scores),
        embeddings=str(embeddings),
        attribute_spec=str(spec),
        out_dir=str(out),
        options=build.BuildOptions(brute_force_below=1000, recall_queries=100),
    )
    assert summary.algorithm == "tree_ah"
    return out, vectors, ids


def test_tuned_leaves_keep_recall_at_the_spec_target_against_exact_search(tree_index):
    out, vectors, _ = tree_index
    index = LoadedIndex(out)
    manifest_leaves = index.leaves_to_search
    tuning = index.tune_leaves_to_search(target=0.9)
    assert tuning["leaves_to_search"] == index.leaves_to_search <= manifest_leaves
    assert index.leaves_to_search >= -(-index.manifest["parameters"]["num_leaves"] // 100)
    # Oracle: queries unlike the tuning sample (perturbed vectors), numpy brute force over the vocabulary.
    rng = np.random.default_rng(5)
    queries = vectors[rng.choice(len(vectors), 200, replace=False)] + 0.05 * rng.normal(size=(200, 16)).astype(
        np.float32
    )
    truth = ann.exact_top_k(vectors, queries.astype(np.float32), 10)
    found = ann.search_batched(index.searcher, queries, 10, leaves_to_search=index.leaves_to_search)
    assert ann.recall_at_k(found, truth) >= 0.9


def test_served_index_reports_its_tuned_parameters_and_answers_like_exact_search(tree_index):
    out, vectors, ids = tree_index
    with TestClient(create_app(out)) as client:
        served = client.get("/v1/attributes").json()["red_dominant"]["served_with"]
        # tuned at build time (held-out history queries): served with the manifest's leaves, not halved at load
        params = json.loads((out / "manifest.json").read_text())["parameters"]
        assert served["tuned_at_build"] and served["recall"] >= 0.9
        assert served["leaves_to_search"] == params["num_leaves_to_search"] and served["trials"] == []
        found = 0
        for row in range(0, 400, 20):  # 20 queries: recall@10 against exact search, at the build's target or near it
            query = vectors[row]
            body = client.post(URL, json={"vector": query.tolist(), "k": 10}).json()
            best = set(np.argsort(-(vectors @ query))[:10].tolist())
            found += len({ids.index(h["video_id"]) for h in body["results"]} & best)
        assert found / 200 >= 0.9
    with TestClient(create_app(out, ServerOptions(tune_leaves=False))) as client:
        assert client.get("/v1/attributes").json()["red_dominant"]["served_with"] is None


def test_malformed_bodies_get_a_clear_422_or_413(tree_index):
    out, _, _ = tree_index
    with TestClient(create_app(out, ServerOptions(max_body_bytes=2048))) as client:
        r = client.post(URL, content=b"{not json", headers={"Content-Type": "application/json"})
        assert r.status_code == 422 and "JSON" in r.json()["detail"]
        r = client.post(URL, json={"vector": [0.0] * 16, "colour": "red"})
        assert r.status_code == 422 and "colour" in r.json()["detail"]
        r = client.post(URL, json={"vector": [0.0] * 16, "k": 0})
        assert r.status_code == 422 and "k" in r.json()["detail"]
        r = client.post(URL, json={"vector": ["a"] * 16})
        assert r.status_code == 422 and "vector.0" in r.json()["detail"]

        def chunks():  # no Content-Length: the limit is enforced while reading
            for _ in range(10):
                yield b" " * 512

        r = client.post(URL, content=chunks(), headers={"Content-Type": "application/json"})
        assert r.status_code == 413 and "2048" in r.json()["detail"]
        metrics = client.get("/metrics").text
        assert 'silverset_search_requests_total{attribute="red_dominant",status="422"} 4.0' in metrics


def test_bearer_token_guards_every_v1_route_but_not_health(tree_index):
    out, _, _ = tree_index
    with TestClient(create_app(out, ServerOptions(bearer_token="t0ken"))) as client:
        assert client.get("/v1/attributes").status_code == 401
        assert client.post("/v1/admin/reload").status_code == 401
        assert client.get("/v1/attributes", headers={"Authorization": "Bearer t0ken"}).status_code == 200
        assert client.get("/readyz").status_code == 200 and client.get("/healthz").status_code == 200


@pytest.mark.slow
def test_two_forked_workers_serve_over_loopback_and_stop_on_sigterm(tree_index):
    out, vectors, ids = tree_index
    port = free_port()
    code = (
        "from silverset.components.index.server import serve, ServerOptions; "
        f"serve(index_dir={str(out)!r}, port={port}, options=ServerOptions(), workers=2)"
    )
    server = subprocess.Popen([sys.executable, "-c", code])
    try:
        wait_ready(port, server)
        connections = [http.client.HTTPConnection("127.0.0.1", port, timeout=10) for _ in range(4)]
        found_itself = 0
        for i in range(40):  # keep-alive connections, spread over both workers by the kernel
            conn = connections[i % 4]
            conn.request(
                "POST", URL, json.dumps({"vector": vectors[i].tolist(), "k": 10}), {"Content-Type": "application/json"}
            )
            response = conn.getresponse()
            assert response.status == 200
            found_itself += ids[i] in [r["video_id"] for r in json.loads(response.read())["results"]]
        # An approximate index tuned to the recall target: nearly every indexed vector finds itself.
        assert found_itself >= 36
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
    finally:
        if server.poll() is None:
            server.kill()


def test_a_vector_search_answers_exact_search_and_refuses_out_of_range_numbers(tree_index):
    out, vectors, ids = tree_index
    query = vectors[7]
    with TestClient(create_app(out)) as client:
        plain = client.post(URL, content=json.dumps({"vector": query.tolist(), "k": 5}))
        # the same numbers as JSON strings (pydantic's lax floats): the same search
        slow = client.post(URL, content=json.dumps({"vector": [repr(float(x)) for x in query], "k": 5}))
        assert plain.status_code == slow.status_code == 200
        assert plain.json()["results"] == slow.json()["results"] and len(plain.json()["results"]) == 5
        assert plain.json()["results"][0]["video_id"] == ids[7]  # the video itself is its own best match
        exact = np.sort(vectors @ query.astype(np.float64))[::-1][:5]
        np.testing.assert_allclose([h["score"] for h in plain.json()["results"]], exact, rtol=0, atol=0.02)
        bad = client.post(URL, content=json.dumps({"vector": [1e30] + [0.0] * 15}))
        assert bad.status_code == 422 and "beyond" in bad.json()["detail"]
        short = client.post(URL, content=json.dumps({"vector": [0.0] * 3}))
        assert short.status_code == 422 and "3 dimensions; the index has 16" in short.json()["detail"]
        metrics = client.get("/metrics").text
        assert 'silverset_search_requests_total{attribute="red_dominant",status="200"} 2.0' in metrics
        assert 'silverset_search_seconds_count{attribute="red_dominant"} 2.0' in metrics
