"""Index server hardening (issue 21): non-finite vectors, bounded metrics labels, the token on everything but
health, a bad version refused once without stopping other attributes, and loading off the event loop."""

from __future__ import annotations

import json
import logging
import shutil
import threading
import time

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from silverset.components.index import pointer
from silverset.components.index.registry import IndexRegistry
from silverset.components.index.server import ServerOptions, create_app
from tests.helpers.indexes import build_tiny_index, tiny_index_spec
from tests.helpers.ports import serve_app

URL = "/v1/attributes/red_dominant/search"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hardening")
    return build_tiny_index(tmp, tiny_index_spec(tmp))


def test_non_finite_or_overflowing_numbers_get_422_not_a_scann_traceback(tiny):
    out, vectors, ids, _ = tiny
    good = vectors[3].tolist()
    with TestClient(create_app(out)) as client:
        for text in ("NaN", "Infinity", "-Infinity", "1e309"):
            raw = json.dumps({"vector": good}).replace(repr(good[0]), text, 1)
            r = client.post(URL, content=raw, headers={"Content-Type": "application/json"})
            assert r.status_code == 422 and "'vector'" in r.json()["detail"], (text, r.text)
        r = client.post(URL, json={"vector": [3e38] * 16})
        assert r.status_code == 422 and "overflow" in r.json()["detail"]
        r = client.post(
            URL,
            content=json.dumps({"history_vectors": [good], "history_probabilities": [1.0]}).replace("1.0]", "NaN]"),
            headers={"Content-Type": "application/json"},
        )
        assert r.status_code == 422 and "history_probabilities" in r.json()["detail"]
        r = client.post(URL, json={"history_vectors": [[1e30] * 16], "history_probabilities": [0.9]})
        assert r.status_code == 422 and "history_vectors" in r.json()["detail"]
        hits = client.post(URL, json={"vector": good, "k": 3}).json()["results"]
        assert len(hits) == 3 and all(isinstance(h["score"], float) for h in hits)


def test_metrics_labels_come_only_from_live_attributes(tiny):
    out, vectors, _, _ = tiny
    with TestClient(create_app(out)) as client:
        for i in range(300):
            assert client.post(f"/v1/attributes/made-up-{i}/search", json={"vector": [0.0] * 16}).status_code == 404
        metrics = client.get("/metrics").text
    assert "made-up" not in metrics
    assert 'silverset_search_requests_total{attribute="_unknown",status="404"} 300.0' in metrics
    assert len(metrics) < 20_000


def test_token_guards_metrics_and_docs_but_not_health_and_an_empty_token_is_refused(tiny):
    out, _, _, _ = tiny
    auth = {"Authorization": "Bearer t0ken"}
    with TestClient(create_app(out, ServerOptions(bearer_token="t0ken"))) as client:
        for path in ("/metrics", "/docs", "/openapi.json", "/redoc", "/v1/attributes"):
            r = client.get(path)
            assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer", path
            assert client.get(path, headers={"Authorization": "Bearer t0ken-but-longer"}).status_code == 401
            assert client.get(path, headers=auth).status_code == 200, path
        assert client.get("/healthz").status_code == 200 and client.get("/readyz").status_code == 200
    for empty in ("", "   "):
        with pytest.raises(ValidationError, match="bearer_token"):
            ServerOptions(bearer_token=empty)


def test_index_serve_with_an_empty_token_env_exits_2_naming_it(tmp_path, monkeypatch, capsys):
    import sys

    from silverset.pipelines.cli import main

    monkeypatch.setenv("SILVERSET_INDEX_TOKEN", "")
    monkeypatch.setattr(sys, "argv", ["silverset", "index", "serve", "--index-dir", str(tmp_path), "--port", "1"])
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code == 2 and "SILVERSET_INDEX_TOKEN" in capsys.readouterr().err


def test_a_broken_manifest_is_refused_once_and_other_attributes_still_refresh(tmp_path, tiny, caplog):
    out, vectors, _, summary = tiny
    root = tmp_path / "serving"
    version = summary.version
    shutil.copytree(out, pointer.version_dir(root, "red_dominant", version))
    pointer.write_pointer(root, "red_dominant", version)
    # A second attribute whose published version has a manifest missing every field the server needs.
    broken = pointer.version_dir(root, "cooking", "cooking-v1-broken")
    broken.mkdir(parents=True)
    (broken / "manifest.json").write_text(json.dumps({"format_version": 1, "attribute": "cooking"}))
    pointer.write_pointer(root, "cooking", "cooking-v1-broken")
    with caplog.at_level(logging.ERROR, logger="silverset.components.index.server"):
        with TestClient(create_app(root, poll=False)) as client:
            for _ in range(3):
                r = client.post("/v1/admin/reload")
                assert r.status_code == 200
                assert r.json()["live"] == {"red_dominant": version}
                assert "cooking/cooking-v1-broken" in r.json()["refused"]
            ready = client.get("/readyz").json()
            assert ready["ready"] is True and "cooking" in ready["waiting"]
            assert client.post(URL, json={"vector": vectors[0].tolist()}).status_code == 200
    refusals = [r for r in caplog.records if "cooking-v1-broken" in r.getMessage()]
    assert len(refusals) == 1


def test_deploy_with_server_url_sends_the_token(tmp_path, tiny):
    from silverset.components.common.artifacts import read_index_manifest
    from silverset.components.common.errors import GateFailed
    from silverset.components.deploy.local import deploy_local

    out, _, _, summary = tiny
    root = tmp_path / "serving"
    root.mkdir()
    with serve_app(create_app(root, ServerOptions(bearer_token="t0ken"), poll=False)) as url:
        with pytest.raises(
            GateFailed, match="did not serve"
        ):  # no token: the reload is refused, the pointer rolled back
            deploy_local(
                index_dir=out, manifest=read_index_manifest(out), serve_root=root, server_url=url, timeout_s=1.5
            )
        done = deploy_local(
            index_dir=out,
            manifest=read_index_manifest(out),
            serve_root=root,
            server_url=url,
            timeout_s=20,
            token="t0ken",
        )
        assert done.changed is True
        assert httpx.get(f"{url}/readyz").json()["live"] == {"red_dominant": summary.version}


def test_a_slow_reload_does_not_stall_other_requests(tiny, monkeypatch):
    """Loading, hashing and tuning run in a worker thread: health and searches answer during a reload."""
    out, vectors, _, _ = tiny
    original = IndexRegistry.refresh
    started = threading.Event()

    def slow_refresh(self):
        if self._live:  # the first (startup) load is ordinary; a reload takes 2 s
            started.set()
            time.sleep(2.0)
        original(self)

    monkeypatch.setattr(IndexRegistry, "refresh", slow_refresh)
    with serve_app(create_app(out, poll=False)) as base:
        reload = threading.Thread(target=lambda: httpx.post(f"{base}/v1/admin/reload", timeout=10))
        reload.start()
        assert started.wait(5)
        t0 = time.monotonic()
        assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200
        assert httpx.post(base + URL, json={"vector": vectors[1].tolist()}, timeout=5).status_code == 200
        assert time.monotonic() - t0 < 1.0
        reload.join(10)
