"""Each image runs what it claims: a venv built from exactly the image's install lines runs its entrypoint.

The index server venv serves a real query through its ENTRYPOINT (``silverset index serve``) on a tiny
index built here with the project venv; the CPU venv imports every module of the package and the KFP
executor the components run under, and answers ``silverset --help``.
"""

from __future__ import annotations

import json
import subprocess
import time

import httpx
import yaml

from silverset.components.common.spec import example_specs_dir
from silverset.components.index import pins, pointer
from tests.helpers.downward_api import write_annotations_volume
from tests.helpers.indexes import build_tiny_index
from tests.helpers.ports import free_port, wait_ready
from tests.images.image_venv import build_image_venv, image_env


def _distributions(python, where) -> set[str]:
    code = (
        "import importlib.metadata as m, json; "
        "print(json.dumps(sorted(d.metadata['Name'].lower() for d in m.distributions())))"
    )
    out = subprocess.run(
        [str(python), "-c", code], env=image_env(where), capture_output=True, text=True, check=True
    ).stdout
    return set(json.loads(out))


def test_index_server_image_serves_a_pinned_index_through_its_entrypoint(tmp_path):
    started = time.monotonic()
    python = build_image_venv("index-server", tmp_path / "image")
    built_s = time.monotonic() - started
    installed = _distributions(python, tmp_path)
    assert not {"torch", "tensorflow", "apache-beam", "kfp"} & installed  # the small image stays small

    # The tiny index comes from the project venv (the CPU image's job); the image venv only serves it.
    data = yaml.safe_load((example_specs_dir() / "red_dominant.yaml").read_text())
    data["serving"]["recall_target"] = 0.9
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(data))
    index, vectors, ids, summary = build_tiny_index(tmp_path / "build", tmp_path / "spec.yaml")
    root = tmp_path / "serving"
    pointer.publish_version(index, root, "red_dominant", summary.version)
    annotations = write_annotations_volume(
        tmp_path / "podinfo", {pins.ANNOTATION_PREFIX + "red_dominant": summary.version}
    )

    # ENTRYPOINT ["silverset", "index", "serve", "--host", ..., "--port", ...] with the Deployment's pin flag.
    port = free_port()
    server = subprocess.Popen(
        [
            str(python.parent / "silverset"),
            "index",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--index-dir",
            str(root),
            "--pinned-versions",
            str(annotations),
        ],
        cwd=tmp_path,
        env=image_env(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(port, server, timeout_s=90, poll_s=0.2)
        body = httpx.post(
            f"{url}/v1/attributes/red_dominant/search", json={"vector": vectors[4].tolist(), "k": 1}
        ).json()
        assert body["index_version"] == summary.version and body["results"][0]["video_id"] == ids[4]
        assert "silverset_search_requests_total" in httpx.get(f"{url}/metrics").text
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(f"index-server venv built in {built_s:.1f} s")


CPU_SMOKE = """
import importlib, pkgutil, sys
import silverset.components, silverset.pipelines
failed = []
names = ["kfp.dsl.executor_main"]  # what KFP runs: python3 -m kfp.dsl.executor_main (install_kfp_package=False)
for package in (silverset.components, silverset.pipelines):
    names += [m.name for m in pkgutil.walk_packages(package.__path__, package.__name__ + ".")]
for name in names:
    try:
        importlib.import_module(name)
    except Exception as exc:
        failed.append(f"{name}: {type(exc).__name__}: {exc}")
print(len(names), "modules")
sys.exit("\\n".join(failed) if failed else 0)
"""


def test_cpu_image_imports_every_module_and_runs_the_cli(tmp_path):
    started = time.monotonic()
    python = build_image_venv("cpu", tmp_path / "image")
    built_s = time.monotonic() - started
    result = subprocess.run(
        [str(python), "-c", CPU_SMOKE],
        cwd=tmp_path,
        env=image_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"imports failed in the CPU image:\n{result.stderr[-4000:]}"
    assert int(result.stdout.split()[0]) > 50
    cli = subprocess.run(
        [str(python.parent / "silverset"), "--help"],
        cwd=tmp_path,
        env=image_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cli.returncode == 0, cli.stderr
    assert all(area in cli.stdout for area in ("pipeline", "index", "approvals"))
    assert {"kfp", "kfp-kubernetes"} <= _distributions(python, tmp_path)
    print(f"cpu venv built in {built_s:.1f} s")
