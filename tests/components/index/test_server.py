"""Index server: the search API, restricted-retrieval trigger, validation, and hot swap with refusal."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from fastapi.testclient import TestClient

from silverset.components.index import build, pointer
from silverset.components.index.server import ServerOptions, create_app
from tests.helpers.indexes import clustered, write_inputs


@pytest.fixture
def built(tmp_path, spec_path):
    vectors = clustered(400, 16, seed=3)
    probs = np.where(np.arange(400) % 2 == 0, 0.9, 0.1)  # even ids are in the vocabulary
    scores, embeddings, ids = write_inputs(tmp_path, vectors, probs)
    out = tmp_path / "index"
    summary = build.run(scores=str(scores), embeddings=str(embeddings), attribute_spec=str(spec_path), out_dir=str(out))
    return out, vectors, ids, summary


def deploy_local(root, index_dir, version):
    shutil.copytree(index_dir, pointer.version_dir(root, "red_dominant", version))
    pointer.write_pointer(root, "red_dominant", version)


def test_search_by_vector_returns_exact_top_k_of_the_vocabulary(built):
    out, vectors, ids, summary = built
    with TestClient(create_app(out)) as client:
        query = vectors[7]
        r = client.post(
            "/v1/attributes/red_dominant/search", json={"vector": query.tolist(), "k": 5, "exclude": ["v000000"]}
        )
        assert r.status_code == 200, r.text
        body = r.json()
        vocab = np.arange(0, 400, 2)
        vocab = vocab[vocab != 0]
        best = vocab[np.argsort(-(vectors[vocab] @ query))[:5]]
        assert [h["video_id"] for h in body["results"]] == [ids[i] for i in best]
        assert body["index_version"] == summary.version and body["triggered"] is True
        assert client.get("/readyz").json()["live"] == {"red_dominant": summary.version}
        assert "silverset_search_requests_total" in client.get("/metrics").text


def test_history_triggers_restricted_retrieval_only_above_threshold(built):
    out, vectors, ids, _ = built
    with TestClient(create_app(out)) as client:
        fan = [ids[0], ids[2], ids[3]]  # share in vocabulary = 2/3 >= 0.3
        r = client.post("/v1/attributes/red_dominant/search", json={"history": fan, "k": 10, "exclude": fan})
        body = r.json()
        assert body["triggered"] is True and body["affinity"] == pytest.approx(2 / 3)
        user = vectors[[0, 2, 3]].mean(axis=0)
        vocab = np.array([i for i in range(0, 400, 2) if i not in (0, 2)])
        best = vocab[np.argsort(-(vectors[vocab] @ user))[:10]]
        assert [h["video_id"] for h in body["results"]] == [ids[i] for i in best]
        stranger = [ids[1], ids[3], ids[5], ids[7]]  # none in the vocabulary: affinity 0
        body = client.post("/v1/attributes/red_dominant/search", json={"history": stranger}).json()
        assert body == {
            "results": [],
            "index_version": body["index_version"],
            "triggered": False,
            "affinity": 0.0,
            "trigger_source": "rule",
            "served": False,
        }


def test_bad_requests_get_4xx_with_a_clear_message(built):
    out, vectors, _, _ = built
    app = create_app(out, ServerOptions(max_k=50, max_body_bytes=4096, bearer_token="s3cret"))
    auth = {"Authorization": "Bearer s3cret"}
    with TestClient(app) as client:
        url = "/v1/attributes/red_dominant/search"
        assert client.post(url, json={"vector": [0.0] * 16}).status_code == 401
        r = client.post(url, json={"vector": [0.0] * 3}, headers=auth)
        assert r.status_code == 422 and "3 dimensions; the index has 16" in r.json()["detail"]
        r = client.post(url, json={"vector": [0.0] * 16, "k": 51}, headers=auth)
        assert r.status_code == 422 and "limit is 50" in r.json()["detail"]
        r = client.post(url, json={"vector": [0.0] * 16, "history": ["a"]}, headers=auth)
        assert r.status_code == 422 and "exactly one" in r.json()["detail"]
        r = client.post(url, json={"history": ["x" * 50] * 200}, headers=auth)
        assert r.status_code == 413
        assert client.post("/v1/attributes/nope/search", json={"vector": [0.0] * 16}, headers=auth).status_code == 404
        assert client.get("/healthz").status_code == 200


def test_hot_swap_keeps_old_version_until_new_one_passes(tmp_path, built, spec_path):
    out, vectors, ids, summary = built
    root = tmp_path / "serving"
    deploy_local(root, out, summary.version)
    app = create_app(root, poll=False)
    url = "/v1/attributes/red_dominant/search"
    with TestClient(app) as client:
        assert client.post(url, json={"vector": vectors[0].tolist()}).json()["index_version"] == summary.version

        # A corrupt new version: refused, the old one keeps answering.
        bad = "red_dominant-v1-corrupt"
        shutil.copytree(out, pointer.version_dir(root, "red_dominant", bad))
        (pointer.version_dir(root, "red_dominant", bad) / "vocabulary.parquet").write_bytes(b"garbage")
        pointer.write_pointer(root, "red_dominant", bad)
        reload = client.post("/v1/admin/reload").json()
        assert reload["live"] == {"red_dominant": summary.version}
        assert "red_dominant/" + bad in reload["refused"]
        assert client.post(url, json={"vector": vectors[0].tolist()}).json()["index_version"] == summary.version

        # A good new version (every video in the vocabulary) swaps in.
        scores, embeddings, _ = write_inputs(tmp_path / "v2", vectors, np.ones(400))
        new = build.run(
            scores=str(scores),
            embeddings=str(embeddings),
            attribute_spec=str(spec_path),
            out_dir=str(tmp_path / "index2"),
        )
        deploy_local(root, tmp_path / "index2", new.version)
        assert client.post("/v1/admin/reload").json()["live"] == {"red_dominant": new.version}
        body = client.post(url, json={"vector": vectors[1].tolist(), "k": 1}).json()
        assert body["index_version"] == new.version and body["results"][0]["video_id"] == ids[1]
        assert "silverset_index_refused_total" in client.get("/metrics").text
