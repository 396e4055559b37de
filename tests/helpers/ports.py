"""Loopback ports and readiness: ``free_port()`` and ``wait_ready(port, server)`` for servers started by tests."""
from __future__ import annotations

import http.client
import socket
import subprocess
import time


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def readyz_ok(port: int, *, timeout_s: float = 5.0) -> bool:
    """True when ``GET /readyz`` on loopback ``port`` answers 200; False when it refuses or answers otherwise."""
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
        try:
            connection.request("GET", "/readyz")
            return connection.getresponse().status == 200
        finally:
            connection.close()
    except OSError:
        return False


def wait_ready(port: int, server: subprocess.Popen, *, timeout_s: float = 120.0, poll_s: float = 0.3) -> None:
    """Poll ``/readyz`` on loopback ``port`` until it answers 200.

    Raises AssertionError when the ``server`` process exits first (with its exit code, and the end of its stderr when
    that is a pipe) or when ``timeout_s`` passes.
    """
    deadline = time.monotonic() + timeout_s
    while not readyz_ok(port):
        code = server.poll()
        if code is not None:
            stderr = server.stderr.read() if server.stderr is not None else b""
            tail = (stderr.decode(errors="replace") if isinstance(stderr, bytes) else stderr)[-3000:]
            raise AssertionError(f"server on port {port} exited with code {code} before it was ready\n{tail}")
        assert time.monotonic() < deadline, f"server on port {port} not ready after {timeout_s:g} s"
        time.sleep(poll_s)
