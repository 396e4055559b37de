"""The server's ASGI entry: a pure-ASGI guard on ``/v1/`` (bearer token, body size) and the search fast path.

Search requests (``POST /v1/attributes/{attribute}/search``) are read and answered here, handed to
``search.SearchEndpoint``, never entering FastAPI; everything else (health, readiness, metrics, admin) goes on to
the FastAPI app. ``/healthz`` and ``/readyz`` are open without the token (the kubelet's probes).
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING

from .search import SearchEndpoint

if TYPE_CHECKING:
    from .server import ServerOptions


_SEARCH_PREFIX, _SEARCH_SUFFIX = "/v1/attributes/", "/search"
# Open without the bearer token: the kubelet's probes.
OPEN_PATHS = frozenset({"/healthz", "/readyz"})
_JSON = (b"content-type", b"application/json")


class IndexServerApp:
    """The server's ASGI app: a pure-ASGI guard on ``/v1/`` and the search hot path, FastAPI for the rest.

    Starlette's ``BaseHTTPMiddleware`` and FastAPI's per-route machinery (dependency solving, response
    encoding through ``jsonable_encoder``) cost several times the ScaNN search itself, so search
    requests never enter them; health, readiness, metrics and admin routes stay on FastAPI.
    """

    def __init__(self, api, search: SearchEndpoint, options: ServerOptions):
        self.api = api
        self.search = search
        self.options = options
        self.state = api.state
        self._token = f"Bearer {options.bearer_token}".encode() if options.bearer_token is not None else None

    async def __call__(self, scope, receive, send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http":
            await self.api(scope, receive, send)
            return
        length = None
        authorization = b""
        request_id = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                length = value
            elif name == b"authorization":
                authorization = value
            elif name == b"x-request-id":
                request_id = value
        if self._token is not None and path not in OPEN_PATHS and not hmac.compare_digest(authorization, self._token):
            await _respond(
                send,
                401,
                self.search.dumps({"detail": "missing or wrong bearer token"}),
                extra=[(b"www-authenticate", b"Bearer")],
            )
            return
        if not path.startswith("/v1/"):
            await self.api(scope, receive, send)
            return
        limit = self.options.max_body_bytes
        if length is not None and (not length.isdigit() or int(length) > limit):
            await _respond(
                send,
                413 if length.isdigit() else 400,
                self.search.dumps({"detail": f"body is {length.decode(errors='replace')} bytes; the limit is {limit}"}),
            )
            return
        is_search = path.startswith(_SEARCH_PREFIX) and path.endswith(_SEARCH_SUFFIX)
        attribute = path[len(_SEARCH_PREFIX) : -len(_SEARCH_SUFFIX)] if is_search else ""
        if scope["method"] != "POST" or not attribute or "/" in attribute:
            await self.api(scope, receive, send)
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:  # a chunked body without Content-Length
                await _respond(send, 413, self.search.dumps({"detail": f"body is over the limit of {limit} bytes"}))
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        status, answer = self.search(attribute, body, _request_id(request_id))
        await _respond(send, status, answer)


def _request_id(header: bytes | None) -> str | None:
    """The client's X-Request-ID when it is a plausible id (1-128 printable ASCII), else None (the server makes one)."""
    if header is None or not 0 < len(header) <= 128:
        return None
    text = header.decode("ascii", errors="replace")
    return text if text.isprintable() and text.isascii() else None


async def _respond(send, status: int, body: bytes, extra: list | None = None) -> None:
    headers = [_JSON, (b"content-length", str(len(body)).encode()), *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
