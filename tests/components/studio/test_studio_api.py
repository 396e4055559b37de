"""The studio's HTTP API through FastAPI's TestClient: labelling, feeds, scores, bandit, disagreements, golden sets."""

from __future__ import annotations

import io
import threading

import numpy as np
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from silverset.components.common import schemas, tables
from silverset.components.studio.app import create_app
from silverset.components.studio.scores import data_diversity, model_quality

from .conftest import bearer

KEY = "red_dominant@v1"


@pytest.fixture
def client(studio, users, tokens):
    """A TestClient signed in (bearer token) as the admin 'root'; ``label`` signs each request as its labeler."""
    with TestClient(create_app(studio, users=users), base_url="http://localhost", headers=bearer(tokens, "root")) as c:
        c.tokens = tokens
        assert c.post("/api/attributes", json={"example": "red_dominant", "policy": "ucb"}).status_code == 201
        yield c


def label(client, video_id, value, labeler="alice@silverset.dev", **extra):
    return client.post(
        f"/api/attributes/{KEY}/labels",
        json={"video_id": video_id, "label": value, **extra},
        headers=bearer(client.tokens, labeler),
    )


def label_by_truth(client, corpus, catalog, count_per_class, labeler="alice@silverset.dev"):
    pos = [catalog.video_ids[i] for i in np.flatnonzero(corpus.truth == 1)[:count_per_class]]
    neg = [catalog.video_ids[i] for i in np.flatnonzero(corpus.truth == 0)[:count_per_class]]
    for vid in pos:
        assert label(client, vid, "positive", labeler).status_code == 200
    for vid in neg:
        assert label(client, vid, "negative", labeler).status_code == 200
    return pos, neg


def test_page_and_thumbnails_are_served(client, catalog):
    assert "Silverset studio" in client.get("/").text
    assert client.get("/static/app.js").status_code == 200
    card = client.get(f"/api/attributes/{KEY}/search", params={"q": "crimson"}).json()[0]
    assert len(card["frames"]) == 4  # 4 evenly spaced of the 6 extracted frames
    jpeg = client.get(f"/api/videos/{card['video_id']}/frames/{card['frames'][0]}.jpg")
    assert jpeg.status_code == 200 and jpeg.content[:2] == b"\xff\xd8"
    assert client.get(f"/api/videos/{card['video_id']}/frames/99.jpg").status_code == 404


def test_search_finds_matching_metadata_and_hides_labelled(client, corpus, catalog):
    hits = client.get(f"/api/attributes/{KEY}/search", params={"q": "crimson", "limit": 10}).json()
    assert all("crimson" in h["title"] for h in hits)
    assert label(client, hits[0]["video_id"], "positive").status_code == 200
    again = client.get(f"/api/attributes/{KEY}/search", params={"q": "crimson", "limit": 10}).json()
    assert hits[0]["video_id"] not in {h["video_id"] for h in again}


def test_feeds_appear_after_ten_of_each_and_scores_match_oracles(client, corpus, catalog):
    label_by_truth(client, corpus, catalog, 9)
    state = client.get(f"/api/attributes/{KEY}").json()
    assert not state["feeds_ready"] and state["quality"] is None
    assert client.get(f"/api/attributes/{KEY}/feeds").json() == {"ready": False, "feeds": {}}
    assert client.post(f"/api/attributes/{KEY}/next-batch").status_code == 409
    pos, neg = label_by_truth(client, corpus, catalog, 10)
    state = client.get(f"/api/attributes/{KEY}").json()
    assert state["feeds_ready"] and (state["positives"], state["negatives"]) == (10, 10)
    rows = np.array([catalog.row_of[v] for v in pos + neg])
    y = np.array([1] * 10 + [0] * 10)
    assert state["quality"] == pytest.approx(model_quality(catalog.embeddings[rows], y))
    assert state["diversity"] == pytest.approx(data_diversity(catalog.clusters[rows], y))
    feeds = client.get(f"/api/attributes/{KEY}/feeds").json()["feeds"]
    assert set(feeds) == {"top_positive", "top_negative", "borderline", "random"}
    labelled = set(pos + neg)
    for cards in feeds.values():
        assert len(cards) == 25 and not labelled & {c["video_id"] for c in cards}
    top = [c["probability"] for c in feeds["top_positive"]]
    assert top == sorted(top, reverse=True)
    # The top-positive feed holds far more true positives than the corpus does: the model learnt something.
    truth = {catalog.video_ids[i]: int(t) for i, t in enumerate(corpus.truth)}
    assert np.mean([truth[c["video_id"]] for c in feeds["top_positive"]]) > 2 * corpus.truth.mean()
    assert np.mean([truth[c["video_id"]] for c in feeds["top_negative"]]) < corpus.truth.mean()
    border = [abs(c["probability"] - 0.5) for c in feeds["borderline"]]
    assert border == sorted(border)


def test_bandit_serves_every_source_once_then_learns_from_quality(client, corpus, catalog):
    label_by_truth(client, corpus, catalog, 10)
    truth = {catalog.video_ids[i]: int(t) for i, t in enumerate(corpus.truth)}
    served = []
    for _ in range(5):
        batch = client.post(f"/api/attributes/{KEY}/next-batch").json()
        served.append(batch["feed"])
        assert len(batch["videos"]) == 25
        for card in batch["videos"][:10]:
            label(client, card["video_id"], "positive" if truth[card["video_id"]] else "negative")
    assert served[:3] == ["va_loop", "random", "zero_shot"]  # the paper's sources, each once first
    bandit = client.get(f"/api/attributes/{KEY}").json()["bandit"]
    assert set(bandit["score"]) == set(served[:3]) and bandit["steps"] == 5
    assert client.put(f"/api/attributes/{KEY}/policy", json={"policy": "round_robin"}).json()["policy"] == "round_robin"
    assert client.put(f"/api/attributes/{KEY}/policy", json={"policy": "thompson"}).status_code == 422


def test_bad_input_gets_clear_4xx_and_nothing_is_lost(client, catalog):
    vid = catalog.video_ids[0]
    assert client.get("/api/attributes/nope@v1").status_code == 404
    assert "unknown attribute" in label_unknown(client, vid).json()["detail"]
    assert label(client, vid, "maybe").status_code == 422
    assert label(client, "no-such-video", "positive").status_code == 404
    assert client.post(f"/api/attributes/{KEY}/labels", json={"video_id": vid}).status_code == 422
    assert client.post("/api/attributes", json={"spec_yaml": "name: x\n"}).status_code == 422
    assert client.post("/api/attributes", json={"example": "no_such_example"}).status_code == 404
    assert client.get(f"/api/attributes/{KEY}/labels").json() == []
    # Concurrent edits by the same labeler: the second writer saw revision 0 and gets a 409, not an overwrite.
    first = label(client, vid, "positive", expected_revision=0)
    assert first.status_code == 200 and first.json()["label"]["revision"] == 1
    stale = label(client, vid, "negative", expected_revision=0)
    assert stale.status_code == 409 and stale.json()["current"]["label"] == "positive"
    assert label(client, vid, "negative", expected_revision=1).json()["label"]["revision"] == 2
    audit = client.get(f"/api/attributes/{KEY}/audit").json()
    assert [(a["old"], a["new"]) for a in audit] == [(None, "positive"), ("positive", "negative")]


def label_unknown(client, vid):
    return client.post("/api/attributes/nope@v1/labels", json={"video_id": vid, "label": "positive"})


def test_racing_writers_one_wins_one_conflicts(client, catalog):
    vid = catalog.video_ids[1]
    label(client, vid, "skip", expected_revision=0)
    codes, barrier = [], threading.Barrier(8)

    def write(value):
        barrier.wait()
        codes.append(label(client, vid, value, expected_revision=1).status_code)

    threads = [threading.Thread(target=write, args=("positive" if i % 2 else "negative",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes) == [200] + [409] * 7
    assert client.get(f"/api/attributes/{KEY}/labels").json()[0]["revision"] == 2
    assert len(client.get(f"/api/attributes/{KEY}/audit").json()) == 2


def test_disagreements_resolve_by_majority_or_adjudication(client, catalog, tmp_path):
    a, b = catalog.video_ids[2], catalog.video_ids[3]
    label(client, a, "positive", "alice")
    label(client, a, "positive", "bob")
    label(client, a, "negative", "carol")
    label(client, b, "positive", "alice")
    label(client, b, "negative", "bob")
    assert client.get(f"/api/attributes/{KEY}/disagreements").json() == [
        {"video_id": b, "votes": {"alice": "positive", "bob": "negative"}}
    ]
    out = client.post(f"/api/attributes/{KEY}/export", json={"out_dir": "g1"}).json()
    assert (out["rows"], out["errors"]) == (1, 1)
    assert tables.read_errors(tmp_path / "golden" / "g1").column("key").to_pylist() == [b]
    adjudication = {"video_id": b, "label": "negative"}
    assert (
        client.post(
            f"/api/attributes/{KEY}/adjudications", json=adjudication, headers=bearer(client.tokens, "bob")
        ).status_code
        == 403
    )
    assert (
        client.post(
            f"/api/attributes/{KEY}/adjudications", json=adjudication, headers=bearer(client.tokens, "dana")
        ).status_code
        == 200
    )
    assert client.get(f"/api/attributes/{KEY}/disagreements").json() == []
    golden = tables.read_table(
        client.post(f"/api/attributes/{KEY}/export", json={"out_dir": "g2"}).json()["path"], schemas.GOLDEN
    )
    rows = {(r["video_id"], r["labeler"]): r for r in golden.to_pylist()}  # GOLDEN v2: one row per rater
    assert {k: (r["rater_label"], r["label"], r["how"]) for k, r in rows.items()} == {
        (a, "alice"): (1, 1, "majority"),
        (a, "bob"): (1, 1, "majority"),
        (a, "carol"): (0, 1, "majority"),
        (b, "alice"): (1, 0, "adjudicated"),
        (b, "bob"): (0, 0, "adjudicated"),
    }  # dana decided, did not vote
    assert rows[(a, "alice")]["labeled_at"].tzinfo is not None


def test_export_then_import_round_trips_into_a_fresh_database(client, corpus, catalog, tmp_path, users):
    from silverset.components.studio.service import Studio

    label_by_truth(client, corpus, catalog, 12)
    label(client, catalog.video_ids[0], "positive" if corpus.truth[0] else "negative", labeler="bob")
    label(client, catalog.video_ids[-1], "skip")
    exported = client.post(f"/api/attributes/{KEY}/export").json()
    assert (exported["rows"], exported["positives"], exported["negatives"], exported["errors"]) == (24, 12, 12, 0)
    assert exported["path"].endswith("red_dominant/v1/golden.parquet")
    download = client.get(f"/api/attributes/{KEY}/golden.parquet")
    assert pq.read_table(io.BytesIO(download.content)).num_rows == 25  # GOLDEN v2: one row per (video, rater)

    rows = [
        {**r, "labeled_at": r["labeled_at"].isoformat()}
        for r in pq.read_table(io.BytesIO(download.content)).to_pylist()
    ]
    assert {r["labeler"] for r in rows} == {"alice@silverset.dev", "bob"}

    fresh = Studio(catalog=catalog, db_url=f"sqlite:///{tmp_path / 'fresh.db'}")
    with TestClient(
        create_app(fresh, users=users), base_url="http://localhost", headers=bearer(client.tokens, "root")
    ) as other:
        other.post("/api/attributes", json={"example": "red_dominant"})
        result = other.post(f"/api/attributes/{KEY}/import", json={"rows": rows}).json()
        assert (result["applied"], result["unchanged"], result["skipped"]) == (
            25,
            0,
            [],
        )  # each rater's row: their label
        again = other.post(f"/api/attributes/{KEY}/import", json={"rows": rows}).json()
        assert (again["applied"], again["unchanged"]) == (0, 25)
        state = other.get(f"/api/attributes/{KEY}").json()
        assert (state["positives"], state["negatives"], state["feeds_ready"]) == (12, 12, True)
        audit = other.get(f"/api/attributes/{KEY}/audit").json()
        assert {a["actor"] for a in audit if a["action"] == "label"} == {"alice@silverset.dev", "bob"}
        assert [(a["actor"], a["action"], a["new"], a["source"]) for a in audit if a["video_id"] == "*"] == [
            ("root", "import", "25 rows", "api"),
            ("root", "import", "0 rows", "api"),
        ]  # the importer, each time
        # JSON only (no cross-site simple request), rows checked, labeler names checked, admins only.
        assert (
            other.post(
                f"/api/attributes/{KEY}/import", content=download.content, headers={"Content-Type": "text/plain"}
            ).status_code
            == 415
        )
        assert other.post(f"/api/attributes/{KEY}/import", json={"rows": [{"video_id": "x"}]}).status_code == 422
        evil = [{**rows[0], "labeler": "<script>"}]
        assert other.post(f"/api/attributes/{KEY}/import", json={"rows": evil}).status_code == 422
        assert (
            other.post(
                f"/api/attributes/{KEY}/import", json={"rows": rows}, headers=bearer(client.tokens, "dana")
            ).status_code
            == 403
        )


def test_same_spec_is_idempotent_and_changed_spec_conflicts(client):
    from silverset.components.common.spec import example_specs_dir

    text = (example_specs_dir() / "red_dominant.yaml").read_text()
    assert client.post("/api/attributes", json={"spec_yaml": text}).status_code == 201
    changed = text.replace("min_probability: 0.5", "min_probability: 0.6")
    assert client.post("/api/attributes", json={"spec_yaml": changed}).status_code == 409
    assert [a["key"] for a in client.get("/api/attributes").json()] == [KEY]
