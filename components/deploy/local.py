"""Local deploy target: publish the index version under the serving root and swap its CURRENT pointer."""
from __future__ import annotations

import time
from pathlib import Path

from silverset.components.common.errors import GateFailed
from silverset.components.index import pointer


def wait_until_serving(server_url: str, attribute: str, version: str, *, timeout_s: float, token: str | None = None) -> bool:
    """Poll the server's /v1/admin/reload then /readyz until ``attribute`` serves ``version``."""
    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            httpx.post(f"{server_url}/v1/admin/reload", headers=headers, timeout=30)
            live = httpx.get(f"{server_url}/readyz", timeout=5).json().get("live", {})
            if live.get(attribute) == version:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    return False


def deploy_local(*, index_dir: str | Path, manifest: dict, serve_root: str | Path, server_url: str | None = None,
                 timeout_s: float = 60.0, token: str | None = None) -> dict:
    """Make ``manifest['version']`` live under ``serve_root``. No-op when it already is.

    With ``server_url``, waits for the running server to report the new version and, if it does not
    (it refused the version or timed out), puts the previous pointer back and raises GateFailed.
    """
    attribute, version = manifest["attribute"], manifest["version"]
    live = pointer.read_pointer(serve_root, attribute)
    if live == version:
        return {"target": "local", "attribute": attribute, "version": version, "changed": False, "previous": pointer.read_pointer(serve_root, attribute, pointer.PREVIOUS)}
    pointer.publish_version(index_dir, serve_root, attribute, version)
    if live is not None:
        pointer.write_pointer(serve_root, attribute, live, pointer.PREVIOUS)
    pointer.write_pointer(serve_root, attribute, version)
    if server_url and not wait_until_serving(server_url, attribute, version, timeout_s=timeout_s, token=token):
        if live is not None:
            pointer.write_pointer(serve_root, attribute, live)
        raise GateFailed(f"{attribute}: server at {server_url} did not serve {version} within {timeout_s:.0f} s; pointer rolled back to {live}")
    return {"target": "local", "attribute": attribute, "version": version, "changed": True, "previous": live}
