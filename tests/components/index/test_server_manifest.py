"""The index server Deployment runs what the server understands: its flags parse, its pins file is the
downwardAPI annotations mount, and its probes are the server's health and readiness endpoints."""

from __future__ import annotations

import re
from pathlib import Path

import typer
import yaml

from silverset.pipelines.cli.index import index_app

ROOT = Path(__file__).resolve().parents[3]


def _deployment() -> dict:
    docs = yaml.safe_load_all((ROOT / "manifests/base/index-server.yaml").read_text())
    return next(d for d in docs if d and d["kind"] == "Deployment" and d["metadata"]["name"] == "silverset-index")


def test_container_args_parse_as_index_serve_options_and_pin_from_the_downward_api_volume():
    pod = _deployment()["spec"]["template"]
    container = pod["spec"]["containers"][0]
    # $(VAR) is expanded by the kubelet from the container's env; any value of the right type parses here.
    args = [
        re.sub(r"\$\((\w+)\)", lambda m: {"SILVERSET_SERVING_ROOT": "/data/serving"}.get(m.group(1), "2"), a)
        for a in container["args"]
    ]
    command = typer.main.get_command(index_app).commands["serve"]
    params = command.make_context("serve", args).params
    pinned = str(params["pinned_versions"])
    assert Path(params["index_dir"]).as_posix().startswith("/data")

    mounts = {m["name"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    files = {
        f"{mounts[name]['mountPath'].rstrip('/')}/{item['path']}": item["fieldRef"]["fieldPath"]
        for name, volume in volumes.items()
        if "downwardAPI" in volume and name in mounts
        for item in volume["downwardAPI"]["items"]
    }
    assert files.get(pinned) == "metadata.annotations"
    assert all(m.get("readOnly") for m in mounts.values() if m["mountPath"].startswith(("/data", "/etc/podinfo")))


def test_probes_use_healthz_to_start_and_live_and_readyz_for_traffic_with_room_for_a_large_load():
    container = _deployment()["spec"]["template"]["spec"]["containers"][0]
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 600  # minutes of index loading before liveness
    assert "initialDelaySeconds" not in container["livenessProbe"]  # the startupProbe holds liveness back


def test_the_file_stays_namespace_free():
    docs = [d for d in yaml.safe_load_all((ROOT / "manifests/base/index-server.yaml").read_text()) if d]
    assert all("namespace" not in d["metadata"] for d in docs)
