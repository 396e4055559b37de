"""What the index server serves on Kubernetes: the versions its pod's annotations pin, ready only when all are loaded.

The pins file is written the way the kubelet writes a downwardAPI ``metadata.annotations`` volume.
"""

from __future__ import annotations

import shutil
import subprocess
import time

import httpx
import pytest
from fastapi.testclient import TestClient

from silverset.components.common.errors import SilversetInputError
from silverset.components.index import pins, pointer
from silverset.components.index.server import ServerOptions, create_app
from tests.helpers.cli import silverset_argv
from tests.helpers.downward_api import format_annotations, write_annotations_volume
from tests.helpers.indexes import build_two_versions
from tests.helpers.ports import free_port

URL = "/v1/attributes/red_dominant/search"
PIN = pins.ANNOTATION_PREFIX + "red_dominant"
# Annotations a real pod carries beside ours (values exercise Go's quoting).
OTHER = {"kubectl.kubernetes.io/restartedAt": "2026-01-02T03:04:05Z", "note": 'say "hi"\\n\ttab é \x01 😀'}


@pytest.fixture(scope="module")
def two_versions(tmp_path_factory):
    """Two published-ready index folders of the same attribute: (folder, version, vectors, ids) each."""
    return build_two_versions(tmp_path_factory.mktemp("versions"))


def wait_for(predicate, *, timeout_s: float = 30.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("condition not met within the timeout")


def test_kubelet_annotations_file_parses_back_to_the_pod_annotations(tmp_path):
    annotations = {PIN: "red_dominant-v1-abc", pins.ANNOTATION_PREFIX + "pets": "pets-v2-def", **OTHER}
    text = format_annotations(annotations)
    assert text.splitlines()[0].startswith(PIN.replace("red_dominant", "pets"))  # sorted, as the kubelet writes
    assert pins.parse_annotations(text) == annotations
    path = write_annotations_volume(tmp_path / "podinfo", annotations)
    assert pins.read_pinned_versions(path) == {"red_dominant": "red_dominant-v1-abc", "pets": "pets-v2-def"}

    write_annotations_volume(tmp_path / "podinfo", {PIN: "../../etc"})
    with pytest.raises(
        SilversetInputError,
        match=r"annotation index.silverset.dev/red_dominant='../../etc' does not name a version folder",
    ):
        pins.read_pinned_versions(path)
    with pytest.raises(SilversetInputError, match=r"--pinned-versions '.*nowhere': does not exist"):
        pins.read_pinned_versions(tmp_path / "nowhere")


def test_empty_or_missing_serving_root_is_live_but_unready_then_picks_up_a_version(tmp_path, two_versions):
    (index, version, vectors, _), _ = two_versions
    root = tmp_path / "serving"  # does not exist yet
    with TestClient(create_app(root, ServerOptions(poll_interval_s=0.1))) as client:
        assert client.get("/healthz").status_code == 200
        r = client.get("/readyz")
        assert r.status_code == 503
        assert r.json()["reason"] == f"serving root '{root}' has no CURRENT pointer yet" and r.json()["live"] == {}
        assert client.post(URL, json={"vector": vectors[0].tolist()}).status_code == 404

        pointer.publish_version(index, root, "red_dominant", version)
        pointer.write_pointer(root, "red_dominant", version)
        wait_for(lambda: client.get("/readyz").status_code == 200)
        assert client.post(URL, json={"vector": vectors[0].tolist()}).json()["index_version"] == version


def test_pinned_version_is_served_and_current_is_ignored(tmp_path, two_versions):
    (first, v1, vectors, ids), (second, v2, _, _) = two_versions
    root = tmp_path / "serving"
    for folder, version in ((first, v1), (second, v2)):
        pointer.publish_version(folder, root, "red_dominant", version)
    pointer.write_pointer(root, "red_dominant", v2)  # CURRENT says v2; the pod pins v1
    pinned = write_annotations_volume(tmp_path / "podinfo", {PIN: v1, **OTHER})
    with TestClient(create_app(root, ServerOptions(pinned_versions=str(pinned)), poll=False)) as client:
        r = client.get("/readyz")
        assert r.status_code == 200, r.text
        assert r.json()["pinned"] == {"red_dominant": v1} and r.json()["live"] == {"red_dominant": v1}
        body = client.post(URL, json={"vector": vectors[2].tolist(), "k": 1}).json()
        assert body["index_version"] == v1 and body["results"][0]["video_id"] == ids[2]


def test_unready_while_a_pinned_version_is_missing_or_corrupt(tmp_path, two_versions):
    (first, v1, _, _), (second, v2, _, _) = two_versions
    root = tmp_path / "serving"
    pointer.publish_version(first, root, "red_dominant", v1)
    corrupt = "pets-v1-000000000bad"
    shutil.copytree(second, pointer.version_dir(root, "pets", corrupt))
    pinned = write_annotations_volume(tmp_path / "podinfo", {PIN: v2})  # v2 is not published
    with TestClient(create_app(root, ServerOptions(pinned_versions=str(pinned)), poll=False)) as client:
        r = client.get("/readyz")
        assert r.status_code == 503
        missing = pointer.version_dir(root, "red_dominant", v2)
        assert (
            r.json()["reason"]
            == f"pinned versions not serving yet: red_dominant: version {v2} is not published at '{missing}' yet"
        )
        assert r.json()["live"] == {}

        # v1 published and pinned, plus a corrupt pin for a second attribute: still unready, and says why.
        write_annotations_volume(tmp_path / "podinfo", {PIN: v1, pins.ANNOTATION_PREFIX + "pets": corrupt})
        r = client.post("/v1/admin/reload")
        r = client.get("/readyz")
        assert r.status_code == 503 and r.json()["live"] == {"red_dominant": v1}
        assert "pets: version pets-v1-000000000bad was refused: " in r.json()["reason"]
        assert "is for attribute 'red_dominant', expected 'pets'" in r.json()["refused"][f"pets/{corrupt}"]

        # Published later (the deploy step copies after the pod started): picked up on the next poll.
        write_annotations_volume(tmp_path / "podinfo", {PIN: v2})
        client.post("/v1/admin/reload")
        assert client.get("/readyz").status_code == 503
        pointer.publish_version(second, root, "red_dominant", v2)
        client.post("/v1/admin/reload")
        r = client.get("/readyz")
        assert r.status_code == 200 and r.json()["live"] == {"red_dominant": v2}


def test_a_changed_pins_file_is_picked_up_on_the_poll_and_an_unpinned_attribute_is_dropped(tmp_path, two_versions):
    (first, v1, vectors, _), (second, v2, _, _) = two_versions
    root = tmp_path / "serving"
    for folder, version in ((first, v1), (second, v2)):
        pointer.publish_version(folder, root, "red_dominant", version)
    pinned = write_annotations_volume(tmp_path / "podinfo", {PIN: v1})
    with TestClient(create_app(root, ServerOptions(pinned_versions=str(pinned), poll_interval_s=0.1))) as client:
        assert client.get("/readyz").json()["live"] == {"red_dominant": v1}
        write_annotations_volume(tmp_path / "podinfo", {PIN: v2, **OTHER})  # the kubelet's in-place update
        wait_for(lambda: client.get("/readyz").json()["live"] == {"red_dominant": v2})
        assert client.get("/readyz").status_code == 200
        assert client.post(URL, json={"vector": vectors[0].tolist()}).json()["index_version"] == v2

        write_annotations_volume(tmp_path / "podinfo", OTHER)
        wait_for(lambda: client.get("/readyz").json()["live"] == {})
        r = client.get("/readyz")
        assert r.status_code == 503 and "no index version is pinned" in r.json()["reason"]
        assert client.post(URL, json={"vector": vectors[0].tolist()}).status_code == 404


def test_cli_serve_on_a_missing_root_starts_unready_and_serves_what_the_env_pins(tmp_path, two_versions):
    (first, v1, vectors, _), _ = two_versions
    root = tmp_path / "serving"
    pinned = write_annotations_volume(tmp_path / "podinfo", {PIN: v1})
    port = free_port()
    env = {"SILVERSET_PINNED_VERSIONS": str(pinned), "PATH": "/usr/bin:/bin"}
    server = subprocess.Popen(
        silverset_argv("index", "serve", "--index-dir", str(root), "--port", str(port), "--poll-interval", "0.2"),
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"

    def get(path):
        try:
            return httpx.get(url + path)
        except httpx.HTTPError:
            assert server.poll() is None, f"server exited {server.returncode}: {server.stderr.read().decode()}"
            return None

    try:
        assert wait_for(lambda: get("/healthz")).status_code == 200
        r = get("/readyz")
        assert r.status_code == 503 and r.json()["mode"] == "pinned" and "is not published" in r.json()["reason"]
        pointer.publish_version(first, root, "red_dominant", v1)
        wait_for(lambda: get("/readyz").status_code == 200)
        body = httpx.post(f"{url}{URL}", json={"vector": vectors[0].tolist(), "k": 2}).json()
        assert body["index_version"] == v1 and len(body["results"]) == 2
    finally:
        server.terminate()
        server.wait(timeout=30)
