"""Local deploy target: publish the index version under the serving root, verify it, then swap its CURRENT pointer."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from silverset.components.common.artifacts import IndexManifest
from silverset.components.common.errors import GateFailed
from silverset.components.common.logs import safe_url
from silverset.components.index import pointer
from silverset.components.index.loaded import IndexRefused, load_verified

from .deploy import DeploySummary

log = logging.getLogger(__name__)


def wait_until_serving(
    server_url: str, attribute: str, version: str, *, timeout_s: float, token: str | None = None
) -> bool:
    """Poll the server's /v1/admin/reload then /readyz until ``attribute`` serves ``version``."""
    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    deadline = time.monotonic() + timeout_s
    attempt = 0
    while time.monotonic() < deadline:
        attempt += 1
        try:
            httpx.post(f"{server_url}/v1/admin/reload", headers=headers, timeout=30)
            live = httpx.get(f"{server_url}/readyz", timeout=5).json().get("live", {})
            if live.get(attribute) == version:
                log.info("%s: %s serves %s after %d poll(s)", attribute, safe_url(server_url), version, attempt)
                return True
            log.debug("%s: poll %d, server serves %s, waiting for %s", attribute, attempt, live.get(attribute), version)
        except httpx.HTTPError as exc:
            # the server may be restarting: keep polling until the deadline; one WARNING, then DEBUG
            log.log(
                logging.WARNING if attempt == 1 else logging.DEBUG,
                "%s: poll %d of %s failed (%s); retrying in 0.2 s until %g s have passed",
                attribute,
                attempt,
                safe_url(server_url),
                type(exc).__name__,
                timeout_s,
            )
        time.sleep(0.2)
    return False


def _verifies(root: str | Path, attribute: str, version: str) -> bool:
    """Whether the published ``version`` still loads, matches its digest and passes the self-check."""
    try:
        load_verified(pointer.version_dir(root, attribute, version), attribute=attribute)
    except IndexRefused as exc:
        log.warning("%s/%s no longer verifies (%s); it will not become PREVIOUS", attribute, version, exc.problem)
        return False
    return True


def deploy_local(
    *,
    index_dir: str | Path,
    manifest: IndexManifest,
    serve_root: str | Path,
    server_url: str | None = None,
    timeout_s: float = 60.0,
    token: str | None = None,
) -> DeploySummary:
    """Make ``manifest.version`` (the index in ``index_dir``) live under ``serve_root``. No-op when it already is.

    The published copy is verified (digest, load, self-check search) before any pointer moves: a corrupt or
    truncated index raises IndexRefused (exit 2) and leaves CURRENT and PREVIOUS as they were. PREVIOUS only
    ever names a version that verifies now. With ``server_url`` (and the server's bearer ``token``), waits for
    the running server to report the new version and, if it does not, puts both pointers back (removing
    CURRENT on a first deploy) and raises GateFailed.
    """
    attribute, version = manifest.attribute, manifest.version
    live = pointer.read_pointer(serve_root, attribute)
    previous = pointer.read_pointer(serve_root, attribute, pointer.PREVIOUS)
    if live == version:
        log.info("%s: %s is already live under %s; nothing to do", attribute, version, serve_root)
        return DeploySummary(target="local", attribute=attribute, version=version, changed=False, previous=previous)
    published = pointer.publish_version(index_dir, serve_root, attribute, version)
    load_verified(published, attribute=attribute)  # before the pointer moves
    if live is not None and _verifies(serve_root, attribute, live):
        pointer.write_pointer(serve_root, attribute, live, pointer.PREVIOUS)
    pointer.write_pointer(serve_root, attribute, version)
    if server_url and not wait_until_serving(server_url, attribute, version, timeout_s=timeout_s, token=token):
        if live is not None:
            pointer.write_pointer(serve_root, attribute, live)
        else:
            pointer.remove_pointer(serve_root, attribute)
        if previous is not None:
            pointer.write_pointer(serve_root, attribute, previous, pointer.PREVIOUS)
        log.error(
            "%s: %s did not serve %s within %g s; CURRENT rolled back to %s",
            attribute,
            safe_url(server_url),
            version,
            timeout_s,
            live,
        )
        raise GateFailed(
            f"{attribute}: server at {server_url} did not serve {version} within {timeout_s:.0f} s; "
            f"pointer rolled back to {live}"
        )
    log.info("%s: CURRENT is now %s under %s (was %s)", attribute, version, serve_root, live)
    return DeploySummary(
        target="local",
        attribute=attribute,
        version=version,
        changed=True,
        previous=pointer.read_pointer(serve_root, attribute, pointer.PREVIOUS),
        verified=True,
    )
