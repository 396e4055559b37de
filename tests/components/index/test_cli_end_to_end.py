"""The issue's path through the CLI: build -> submit (demo auto-approve) -> deploy local -> serve -> query."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import numpy as np
import pytest

from tests.helpers.cli import run_silverset as cli
from tests.helpers.cli import silverset_argv
from tests.helpers.indexes import DIGEST, clustered, write_inputs
from tests.helpers.ports import free_port, wait_ready

SILVERSET = [sys.executable, "-m", "silverset.pipelines.cli"]


@pytest.mark.slow
def test_approved_candidate_is_deployed_and_answers_a_query(tmp_path, spec_path):
    vectors = clustered(500, 16, seed=5)
    scores, embeddings, ids = write_inputs(tmp_path, vectors, np.linspace(0, 1, 500))
    gate = tmp_path / "gate.json"
    gate.write_text(
        json.dumps({"passed": True, "reasons": [], "metrics": {"f1_retention": 0.97}, "candidate_digest": DIGEST})
    )
    store = str(tmp_path / "approvals.db")

    r = cli(
        "index",
        "build",
        "--scores",
        str(scores),
        "--embeddings",
        str(embeddings),
        "--attribute",
        str(spec_path),
        "--out",
        str(tmp_path / "index"),
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    # Deploy before approval is refused with the gate exit code.
    r = cli(
        "index",
        "deploy",
        "--index",
        str(tmp_path / "index"),
        "--gate",
        str(gate),
        "--serve-root",
        str(tmp_path / "serve"),
        "--approval-store",
        store,
        cwd=tmp_path,
    )
    assert r.returncode == 3 and "no approval" in r.stderr
    r = cli(
        "approvals",
        "submit",
        "--gate",
        str(gate),
        "--attribute",
        str(spec_path),
        "--as",
        "demo",
        "--auto-approve-as",
        "alice@silverset.dev",
        "--store",
        store,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    r = cli(
        "approvals", "approve", DIGEST[:20], "--as", "mallory@evil.dev", "--reason", "x", "--store", store, cwd=tmp_path
    )
    assert r.returncode == 2 and "not an approver" in " ".join(r.stderr.split())  # rich wraps lines
    r = cli(
        "index",
        "deploy",
        "--index",
        str(tmp_path / "index"),
        "--gate",
        str(gate),
        "--serve-root",
        str(tmp_path / "serve"),
        "--approval-store",
        store,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    version = json.loads(r.stdout)["version"]
    r = cli("approvals", "audit", "--store", store, cwd=tmp_path)
    assert [json.loads(line)["action"] for line in r.stdout.splitlines()] == ["submit", "auto-approve"]

    port = free_port()
    server = subprocess.Popen(
        silverset_argv("index", "serve", "--index-dir", str(tmp_path / "serve"), "--port", str(port)),
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(port, server, timeout_s=120, poll_s=0.2)
        body = httpx.post(
            f"{url}/v1/attributes/red_dominant/search", json={"history": [ids[499], ids[498]], "k": 3}
        ).json()
        assert body["triggered"] and body["index_version"] == version and len(body["results"]) == 3
    finally:
        server.terminate()
        server.wait(timeout=30)
