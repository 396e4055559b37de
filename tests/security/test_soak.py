"""Soak (issue 21 item 6): the real index server under uvicorn on loopback, 4 clients searching while versions swap.

Bounded (about 10 s of load, under 20 s in all). The test publishes good versions and flips ``CURRENT`` between
them, and once to a version damaged on disk after publishing (``scann/dataset.npy`` cut in half), which the
server must refuse while the live version keeps answering. Asserts: zero failed requests (every answer 200 with
``k`` results), every answer from a verified version, each good flip served under load, and resident memory
growth under 50 MiB. The QPS, error count and RSS figures are printed (``-s`` shows them).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections import Counter

import httpx
import numpy as np
import pytest

from silverset.components.index import build, pointer
from silverset.components.index.server import ServerOptions, create_app
from tests.helpers.indexes import build_tiny_index, tiny_index_spec, write_inputs
from tests.helpers.ports import serve_app

ATTRIBUTE = "red_dominant"
CLIENTS = 4
K = 10
LOAD_SECONDS = 10.0
MAX_RSS_GROWTH_MIB = 50


def rss_mib() -> float:
    """This process's resident set size (the server runs in it), from /proc/self/statm."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@contextlib.contextmanager
def running_server(root):
    """uvicorn serving ``create_app(root)`` on a loopback port, its pointer watcher polling every 0.1 s."""
    app = create_app(root, ServerOptions(poll_interval_s=0.1), poll=True)
    with serve_app(app, ready_path="/readyz", access_log=False) as url:
        yield url


@pytest.fixture(scope="module")
def versions(tmp_path_factory):
    """Three built indexes of the same 400 vectors (different vocabularies, so different versions)."""
    tmp = tmp_path_factory.mktemp("soak")
    spec = tiny_index_spec(tmp)
    first, vectors, _, summary = build_tiny_index(tmp, spec)
    built = [(first, summary.version)]
    for share in (0.7, 0.4):  # every video above `share` of the way through is out of the vocabulary
        folder = tmp / f"share-{share}"
        probabilities = np.where(np.arange(len(vectors)) < share * len(vectors), 0.9, 0.1)
        scores, embeddings, _ = write_inputs(folder, vectors, probabilities)
        out = build.run(
            scores=str(scores), embeddings=str(embeddings), attribute_spec=str(spec), out_dir=str(folder / "index")
        )
        built.append((folder / "index", out.version))
    assert len({v for _, v in built}) == 3
    return built, vectors


def wait_until(condition, *, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def test_hot_swaps_under_concurrent_search_fail_no_request_and_keep_memory_flat(tmp_path, versions):
    (good_a, a), (good_b, b), (damaged, c) = versions[0]
    vectors = versions[1]
    root = tmp_path / "serving"
    for index_dir, version in versions[0]:
        pointer.publish_version(index_dir, root, ATTRIBUTE, version)
    # Damaged on disk after publishing (what a half-copied volume looks like): its digest no longer matches.
    dataset = pointer.version_dir(root, ATTRIBUTE, c) / "scann" / "dataset.npy"
    dataset.write_bytes(dataset.read_bytes()[: dataset.stat().st_size // 2])
    pointer.write_pointer(root, ATTRIBUTE, a)
    verified = {a, b}

    with running_server(root) as url:
        stop = threading.Event()
        outcomes: list[Counter] = [Counter() for _ in range(CLIENTS)]
        failures: list[list[str]] = [[] for _ in range(CLIENTS)]

        def client(n: int) -> None:
            rng = np.random.default_rng(n)
            with httpx.Client(base_url=url, timeout=10) as http:
                while not stop.is_set():
                    query = vectors[rng.integers(len(vectors))].tolist()
                    try:
                        r = http.post(f"/v1/attributes/{ATTRIBUTE}/search", json={"vector": query, "k": K})
                        body = r.json()
                    except (httpx.HTTPError, ValueError) as exc:
                        failures[n].append(f"{type(exc).__name__}: {exc}")
                        continue
                    if r.status_code != 200 or len(body.get("results", [])) != K:
                        failures[n].append(f"{r.status_code}: {str(body)[:200]}")
                    else:
                        outcomes[n][body["index_version"]] += 1

        def served() -> Counter:
            return sum(outcomes, Counter())

        def live(version: str) -> bool:
            return httpx.get(f"{url}/readyz", timeout=5).json()["live"].get(ATTRIBUTE) == version

        # Warm up (first requests, allocator and caches) before the memory baseline.
        threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(CLIENTS)]
        for thread in threads:
            thread.start()
        assert wait_until(lambda: sum(served().values()) >= 200), "clients got no answers"
        rss_before, started, before = rss_mib(), time.monotonic(), sum(served().values())

        flips = 0
        swapped_under_load = []
        plan = [b, c, a, b, c, a, b, a, b]
        for target in plan:
            if time.monotonic() - started > LOAD_SECONDS:
                break
            pointer.write_pointer(root, ATTRIBUTE, target)
            flips += 1
            if target in verified:
                assert wait_until(lambda t=target: live(t)), f"version {target} never went live"
                count = served()[target]
                swapped_under_load.append(wait_until(lambda t=target, c0=count: served()[t] >= c0 + 50))
            else:
                assert wait_until(
                    lambda: f"{ATTRIBUTE}/{c}" in httpx.get(f"{url}/readyz", timeout=5).json()["refused"]
                ), "the damaged version was not refused"
            time.sleep(max(0.0, min(0.8, LOAD_SECONDS - (time.monotonic() - started))))
        time.sleep(max(0.0, LOAD_SECONDS - (time.monotonic() - started)))
        stop.set()
        for thread in threads:
            thread.join(timeout=15)
        elapsed = time.monotonic() - started
        rss_after = rss_mib()
        readiness = httpx.get(f"{url}/readyz", timeout=5).json()

    by_version = served()
    requests = sum(by_version.values()) - before
    errors = [f for client_failures in failures for f in client_failures]
    print(
        f"\nsoak: {requests} searches in {elapsed:.1f} s = {requests / elapsed:.0f} QPS by {CLIENTS} clients, "
        f"{flips} pointer flips, {len(errors)} failed; answers by version {dict(by_version)}; "
        f"RSS {rss_before:.0f} -> {rss_after:.0f} MiB ({rss_after - rss_before:+.1f})"
    )
    assert errors == [], errors[:5]
    assert set(by_version) <= verified, set(by_version) - verified  # never an answer from the damaged version
    assert flips >= 5 and all(swapped_under_load), swapped_under_load
    assert readiness["refused"].keys() == {f"{ATTRIBUTE}/{c}"} and readiness["live"][ATTRIBUTE] in verified
    assert rss_after - rss_before < MAX_RSS_GROWTH_MIB
