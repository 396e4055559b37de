"""Run one ASGI app under uvicorn, in this process or pre-forked into N worker processes sharing one socket.

``run_app`` is what ``server.serve`` runs the index server with, and what the serving benchmark runs its bare
fixed-body endpoint with, so both see exactly the same HTTP server settings (uvicorn config, socket, workers).
"""

from __future__ import annotations

import logging
from typing import Any, Callable

log = logging.getLogger(__name__)


def uvicorn_config(app: Any, *, host: str, port: int):
    """The uvicorn settings every Silverset server runs with (no access log, no Server header)."""
    import uvicorn

    return uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, server_header=False)


def run_app(
    app: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    workers: int = 1,
    before_fork: Callable[[], None] | None = None,
) -> None:
    """Serve ``app`` until interrupted.

    ``workers`` > 1: bind the socket here, call ``before_fork`` (e.g. load the index once so the workers share
    its pages copy-on-write), then fork that many uvicorn processes on the socket; SIGTERM/SIGINT stop them all.
    """
    import os
    import signal
    import socket

    import uvicorn

    config = uvicorn_config(app, host=host, port=port)
    if workers <= 1:
        uvicorn.Server(config).run()
        return
    # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY only on accepted sockets whose proto says TCP, and
    # without it the response's two writes (head, body) meet delayed ACKs: ~40 ms per request.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(config.backlog)
    if before_fork is not None:
        before_fork()
    children = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                uvicorn.Server(config).run(sockets=[sock])
            except BaseException:  # noqa: BLE001 - a forked child must never return into the parent's code
                log.exception("server worker failed")
                code = 1
            finally:
                os._exit(code)
        children.append(pid)

    def stop(signum, frame):
        for child in children:
            try:
                os.kill(child, signal.SIGTERM)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for child in children:
        os.waitpid(child, 0)
