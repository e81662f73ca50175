"""Plain HTTP on the hub's port: the pages in ``static/``, the Streams bundle, health, origins.

These are ``process_request`` helpers for ``websockets``: each returns a
:class:`~websockets.http11.Response` to answer over HTTP, or ``None`` to go on
with the WebSocket handshake.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Iterable
from http import HTTPStatus
from importlib import resources
from pathlib import Path

from websockets.datastructures import Headers
from websockets.http11 import Request, Response

WS_PATH = "/ws"
STREAMS_PREFIX = "/vendor/streams/"


def response(status: HTTPStatus, body: bytes, content_type: str) -> Response:
    headers = Headers(
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-cache"),
            ("X-Content-Type-Options", "nosniff"),
        ]
    )
    return Response(status.value, status.phrase, headers, body)


def text(status: HTTPStatus, body: str) -> Response:
    return response(status, body.encode(), "text/plain; charset=utf-8")


def repeated_header(request: Request) -> str | None:
    """The first of ``Origin`` and ``Host`` that the request sends more than once, if any.

    Either, repeated, makes the origin check ambiguous: such a request gets
    HTTP 400 before anything reads them.
    """
    for name in ("Host", "Origin"):
        if len(request.headers.get_all(name)) > 1:
            return name
    return None


def origin_allowed(request: Request, allowed: Iterable[str]) -> bool:
    """Browsers send ``Origin``; accept the hub's own origin and the configured ones.

    Clients that send no ``Origin`` (servers, the CLI) pass here and must
    still present a valid token.
    """
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    allowed = tuple(allowed)
    if "*" in allowed or origin in allowed:
        return True
    host = request.headers.get("Host")
    return host is not None and origin in (f"http://{host}", f"https://{host}")


def builtin_static_dir() -> Path | None:
    packaged = Path(str(resources.files("bridge"))) / "_data" / "static"
    if packaged.is_dir():
        return packaged
    checkout = Path(__file__).resolve().parents[2] / "static"
    return checkout if checkout.is_dir() else None


def default_streams_dir() -> Path | None:
    """Where ``npm ci`` put the pinned amazon-connect-streams release bundle."""
    candidates = [
        Path.cwd() / "node_modules",
        Path(__file__).resolve().parents[2] / "node_modules",
    ]
    for base in candidates:
        release = base / "amazon-connect-streams" / "release"
        if (release / "connect-streams-min.js").is_file():
            return release
    return None


def serve_file(root: Path | None, relative: str) -> Response:
    """A file below ``root``; never one outside it."""
    if root is None:
        return text(HTTPStatus.NOT_FOUND, "not found\n")
    base = root.resolve()
    target = (base / relative.lstrip("/")).resolve()
    if target.is_dir():
        target = target / "index.html"
    if (base != target and base not in target.parents) or not target.is_file():
        return text(HTTPStatus.NOT_FOUND, "not found\n")
    content_type = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
    if content_type.startswith("text/") or content_type == "application/javascript":
        content_type += "; charset=utf-8"
    return response(HTTPStatus.OK, target.read_bytes(), content_type)


# ES modules must be served as JavaScript whatever the platform's mime table says.
mimetypes.add_type("text/javascript", ".js")
mimetypes.add_type("text/javascript", ".mjs")
mimetypes.add_type("text/css", ".css")
mimetypes.add_type("image/svg+xml", ".svg")
