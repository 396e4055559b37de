"""Loopback servers for tests and benchmarks: ``free_port()``, ``wait_ready(port, process)`` for a server process,
and ``serve_app(app)``, an ASGI app served by uvicorn in a thread."""

from __future__ import annotations

import contextlib
import http.client
import socket
import subprocess
import threading
import time
from collections.abc import Iterator


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def readyz_ok(port: int) -> bool:
    """True when ``GET /readyz`` on loopback ``port`` answers 200; False when it refuses or answers otherwise."""
    return _get_ok(port, "/readyz")


def wait_ready(
    port: int, server: subprocess.Popen, *, timeout_s: float = 120.0, poll_s: float = 0.3, path: str = "/readyz"
) -> None:
    """Poll ``GET path`` on loopback ``port`` until it answers 200.

    Raises AssertionError when the ``server`` process exits first (with its exit code, and the end of its stderr when
    that is a pipe) or when ``timeout_s`` passes.
    """
    deadline = time.monotonic() + timeout_s
    while not _get_ok(port, path):
        code = server.poll()
        if code is not None:
            stderr = server.stderr.read() if server.stderr is not None else b""
            tail = (stderr.decode(errors="replace") if isinstance(stderr, bytes) else stderr)[-3000:]
            raise AssertionError(f"server on port {port} exited with code {code} before it was ready\n{tail}")
        assert time.monotonic() < deadline, f"server on port {port} not ready after {timeout_s:g} s"
        time.sleep(poll_s)


@contextlib.contextmanager
def serve_app(app, *, ready_path: str | None = None, timeout_s: float = 30.0, access_log: bool = True) -> Iterator[str]:
    """Serve the ASGI ``app`` with uvicorn on a free loopback port in a daemon thread; yields ``http://127.0.0.1:PORT``.

    Waits until uvicorn has started and, with ``ready_path``, until ``GET ready_path`` answers 200 (AssertionError
    after ``timeout_s``). On exit asks uvicorn to stop and joins its thread (up to ``timeout_s``).
    """
    import uvicorn

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=access_log)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while not server.started or (ready_path is not None and not _get_ok(port, ready_path)):
            assert thread.is_alive(), f"uvicorn on port {port} stopped before it was ready"
            assert time.monotonic() < deadline, f"server on port {port} not ready after {timeout_s:g} s"
            time.sleep(0.05)
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout_s)


def _get_ok(port: int, path: str) -> bool:
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            connection.request("GET", path)
            return connection.getresponse().status == 200
        finally:
            connection.close()
    except OSError:
        return False
