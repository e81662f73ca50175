"""Plain HTTP on the hub's port: the pages in ``static/``, the Streams bundle, health, origins.

These are ``process_request`` helpers for ``websockets``: each returns a
:class:`~websockets.http11.Response` to answer over HTTP, or ``None`` to go on
with the WebSocket handshake.

``websockets`` writes a response's whole body into the connection's transport
at once, so the hub cannot stream a file. Instead every served file is read
once and kept in memory (with a gzip copy for clients that accept it), every
response shares that one copy, and :class:`UnreadBytes` caps the bytes of file
responses that clients have not finished reading, in total and per address:
past the caps a file request gets HTTP 503.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import ipaddress
import mimetypes
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http import HTTPStatus
from importlib import resources
from pathlib import Path

import orjson
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from bridge.hub import events

WS_PATH = "/ws"
STREAMS_PREFIX = "/vendor/streams/"

#: What the hub tells its own pages about itself (static/js/pages/index.js): ``{"mode": "open"|"secured"}``.
PAGE_CONFIG_PATH = "/config.json"

#: The hub's API as an AsyncAPI 3.0.0 document (bridge.protocol.asyncapi, docs/api-description.md).
ASYNCAPI_PATH = "/asyncapi.json"

#: The Streams bundle static/ccp.html loads.
STREAMS_BUNDLE = "connect-streams-min.js"
#: The only files served from the Streams folder: what static/ccp.html loads.
STREAMS_FILES = frozenset({STREAMS_BUNDLE})

#: Host names a hub answers to when none are configured (besides its bind address).
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")

#: Where ccp.html may frame the real CCP (docs/browser.md).
CCP_FRAME_SOURCES = ("https://*.my.connect.aws", "https://*.awsapps.com")

#: Bodies at least this long get a gzip copy when it is smaller.
GZIP_MIN = 1024


def response(
    status: HTTPStatus, body: bytes, content_type: str, extra: Iterable[tuple[str, str]] = ()
) -> Response:
    headers = Headers(
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-cache"),
            ("X-Content-Type-Options", "nosniff"),
            ("Referrer-Policy", "no-referrer"),
            *extra,
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
    still present a valid token. The hub's own origin comes from ``Host``,
    which :func:`host_allowed` has checked against the hub's names first.
    """
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    allowed = tuple(allowed)
    if "*" in allowed or origin in allowed:
        return True
    host = request.headers.get("Host")
    return host is not None and origin in (f"http://{host}", f"https://{host}")


# --- Host (DNS rebinding) ------------------------------------------------------


def host_name(value: str) -> str:
    """The name part of a ``Host`` value or a configured name: no port, no brackets, lower case."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:].split("]", 1)[0]
    if value.count(":") == 1:
        return value.split(":", 1)[0]
    return value  # a name, or a bare IPv6 address


def public_names(public_hosts: Iterable[str], bind_host: str) -> frozenset[str]:
    """The names ``Host`` may carry: the configured ones, the bind address and the loopback names.

    Loopback names are always safe: a rebinding page reaches the hub under
    the attacker's own domain name, never under ``localhost`` or an address.
    """
    names = (*public_hosts, bind_host, *LOOPBACK_NAMES)
    return frozenset(host_name(name) for name in names if name)


def host_allowed(request: Request, names: frozenset[str]) -> bool:
    """Whether the request's ``Host`` is one of the hub's names (any port).

    A DNS-rebinding page reaches the hub under the attacker's name: its
    ``Host`` carries that name, so it is refused here before the origin check
    (which trusts ``Host``) and before anything else.
    """
    host = request.headers.get("Host")
    return host is not None and host_name(host) in names


def is_loopback(address: str) -> bool:
    """Whether an address (or ``localhost``) is a loopback one; an IPv6 zone (``%lo``) is ignored."""
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


# --- files ---------------------------------------------------------------------


def builtin_static_dir() -> Path | None:
    packaged = Path(str(resources.files("bridge"))) / "_data" / "static"
    if packaged.is_dir():
        return packaged
    checkout = Path(__file__).resolve().parents[2] / "static"
    return checkout if checkout.is_dir() else None


def user_streams_dir() -> Path:
    """The user data folder ``connect-bridge fetch-streams`` puts the Streams bundle in.

    A pip install has no checkout and so no ``node_modules``: this is where such an
    install keeps the bundle (``~/.local/share/connect-bridge/streams`` on Linux).
    """
    import platformdirs  # only here: the hub needs it for this one path

    return Path(platformdirs.user_data_dir("connect-bridge", appauthor=False)) / "streams"


def default_streams_dir() -> Path | None:
    """The Streams bundle when no ``--streams-dir`` (``BRIDGE_STREAMS_DIR``) names one.

    In order: ``./node_modules/amazon-connect-streams/release`` (``npm ci`` in a
    checkout, from where the hub starts), the same under the checkout this module
    runs from, then :func:`user_streams_dir` (``connect-bridge fetch-streams``).
    ``None`` when none holds the bundle.
    """
    candidates = [
        Path.cwd() / "node_modules" / "amazon-connect-streams" / "release",
        Path(__file__).resolve().parents[2] / "node_modules" / "amazon-connect-streams" / "release",
        user_streams_dir(),
    ]
    for release in candidates:
        if (release / STREAMS_BUNDLE).is_file():
            return release
    return None


def streams_warning(streams_dir: Path | None) -> str | None:
    """The one start-up line when the Streams bundle cannot be served, else ``None``.

    Without it the emulated and the real CCP page (ccp.html) cannot load; the
    rest of the hub works. The line says what to run, which fits a pip install
    and a checkout alike.
    """
    if streams_dir is not None and (streams_dir / STREAMS_BUNDLE).is_file():
        return None
    where = f"no {STREAMS_BUNDLE} in {streams_dir}" if streams_dir is not None else "the Streams bundle is missing"
    return (f"WARNING: {where}, so ccp.html cannot load; run: connect-bridge fetch-streams "
            "(needs npm), or pass --streams-dir (BRIDGE_STREAMS_DIR) a folder holding it")


_INLINE = re.compile(r"<(script|style)\b([^>]*)>(.*?)</\1\s*>", re.S | re.I)
_COMMENT = re.compile(r"<!--.*?-->", re.S)


def inline_hashes(html: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """CSP hashes of a page's inline scripts and inline styles (comments ignored)."""
    scripts: list[str] = []
    styles: list[str] = []
    for tag, attributes, body in _INLINE.findall(_COMMENT.sub("", html)):
        if tag.lower() == "script" and re.search(r"\bsrc\s*=", attributes, re.I):
            continue
        digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        (scripts if tag.lower() == "script" else styles).append(f"'sha256-{digest}'")
    return tuple(scripts), tuple(styles)


@dataclass(frozen=True, slots=True)
class CachedFile:
    """One file as served: read once, shared by every response."""

    body: bytes
    gzipped: bytes | None
    content_type: str
    stamp: tuple[int, int]  # (mtime_ns, size): a changed file is read again
    script_hashes: tuple[str, ...] = ()
    style_hashes: tuple[str, ...] = ()

    @property
    def is_html(self) -> bool:
        return self.content_type.startswith("text/html")

    @classmethod
    def read(cls, path: Path, stamp: tuple[int, int]) -> CachedFile:
        body = path.read_bytes()
        # The system's table would call the TypeScript declarations a Qt translation file.
        typescript = path.name.endswith(".ts")
        content_type = "text/x-typescript" if typescript else mimetypes.guess_type(path.name)[0]
        content_type = content_type or "application/octet-stream"
        compressible = content_type.startswith("text/") or content_type in (
            "application/javascript",
            "application/json",
            "image/svg+xml",
        )
        if content_type.startswith("text/") or content_type == "application/javascript":
            content_type += "; charset=utf-8"
        gzipped = None
        if compressible and len(body) >= GZIP_MIN:
            packed = gzip.compress(body, compresslevel=9, mtime=0)
            gzipped = packed if len(packed) < len(body) else None
        scripts: tuple[str, ...] = ()
        styles: tuple[str, ...] = ()
        if content_type.startswith("text/html"):
            scripts, styles = inline_hashes(body.decode("utf-8", "replace"))
        return cls(body, gzipped, content_type, stamp, scripts, styles)


class FileCache:
    """The files below ``root`` (only the names in ``only``, when given), kept in memory.

    Never a file outside ``root``. Each request costs a ``stat``; the file is
    read again only when its size or modification time changed.
    """

    def __init__(self, root: Path | None, only: frozenset[str] | None = None) -> None:
        self.root = root.resolve() if root is not None else None
        self.only = only
        self._files: dict[Path, CachedFile] = {}

    def get(self, relative: str) -> CachedFile | None:
        if self.root is None:
            return None
        relative = relative.lstrip("/")
        if self.only is not None and relative not in self.only:
            return None
        target = (self.root / relative).resolve()
        if target.is_dir():
            target = target / "index.html"
        if self.root != target and self.root not in target.parents:
            return None
        try:
            info = target.stat()
        except OSError:
            self._files.pop(target, None)
            return None
        stamp = (info.st_mtime_ns, info.st_size)
        cached = self._files.get(target)
        if cached is None or cached.stamp != stamp:
            if not target.is_file():
                return None
            try:
                cached = CachedFile.read(target, stamp)
            except OSError:
                return None
            self._files[target] = cached
        return cached


def accepts_gzip(request: Request) -> bool:
    """Whether ``Accept-Encoding`` allows gzip (``gzip`` or ``*`` without ``q=0``)."""
    for value in request.headers.get_all("Accept-Encoding"):
        for item in value.split(","):
            coding, _, params = item.strip().partition(";")
            if coding.strip().lower() not in ("gzip", "x-gzip", "*"):
                continue
            quality = params.strip().lower()
            if quality.startswith("q="):
                try:
                    if float(quality[2:]) == 0:
                        continue
                except ValueError:
                    continue
            return True
    return False


def content_security_policy(
    cached: CachedFile, host: str, frame_ancestors: Iterable[str], *, frames_ccp: bool
) -> str:
    """The CSP of one page: its own scripts, styles and hub; framed only by allowed origins."""
    ancestors = tuple(frame_ancestors)
    ancestors_src = "*" if "*" in ancestors else " ".join(("'self'", *ancestors))
    return "; ".join(
        (
            "default-src 'self'",
            " ".join(("script-src 'self'", *cached.script_hashes)),
            " ".join(("style-src 'self'", *cached.style_hashes)),
            "img-src 'self' data:",
            f"connect-src 'self' ws://{host} wss://{host}",
            "frame-src " + (" ".join(CCP_FRAME_SOURCES) if frames_ccp else "'none'"),
            f"frame-ancestors {ancestors_src}",
            "object-src 'none'",
            "base-uri 'self'",
            "form-action 'self'",
        )
    )


# --- slow readers --------------------------------------------------------------


class UnreadBytes:
    """Bytes of file responses handed to connections that have not finished reading them.

    A response body sits in the connection's transport until the client has
    read it (or ``websockets`` aborts the connection at its open timeout): a
    crowd of clients that never read would pin one copy each. A response is
    counted from the moment it is handed over until its connection is lost;
    one that would take its address or the total past the caps is refused.
    """

    def __init__(self, total: int, per_address: int) -> None:
        self.cap_total = total
        self.cap_per_address = per_address
        self.total = 0
        self.by_address: dict[str, int] = {}

    def reserve(self, address: str, size: int) -> Callable[[], None] | None:
        """Count ``size`` bytes for ``address``; the release to call once, or None past a cap."""
        held = self.by_address.get(address, 0)
        if self.total + size > self.cap_total or held + size > self.cap_per_address:
            return None
        self.total += size
        self.by_address[address] = held + size
        released = False

        def release() -> None:
            nonlocal released
            if released:
                return
            released = True
            self.total -= size
            left = self.by_address.get(address, 0) - size
            if left > 0:
                self.by_address[address] = left
            else:
                self.by_address.pop(address, None)

        return release


@dataclass(frozen=True, slots=True)
class SiteSettings:
    static_dir: Path | None
    streams_dir: Path | None
    allow_origins: tuple[str, ...]
    max_unread: int
    max_unread_per_address: int
    #: Open (demo) mode: the landing page links the demo pages; secured, it says they need a token.
    open_mode: bool = False


class Site:
    """The files a hub serves, cached, and the cap on their unread responses."""

    def __init__(self, settings: SiteSettings) -> None:
        self.settings = settings
        self.static = FileCache(settings.static_dir)
        self.streams = FileCache(settings.streams_dir, STREAMS_FILES)
        self.unread = UnreadBytes(settings.max_unread, settings.max_unread_per_address)

    def serve(
        self, request: Request, path: str, address: str, lost: asyncio.Future[None], document: CachedFile | None = None
    ) -> Response:
        """The response to a GET of ``path`` from ``address``; ``lost`` resolves when its connection ends.

        ``document``: a body the hub made (:class:`HostedDocument`), served as files are, instead of a file.
        """
        if path == PAGE_CONFIG_PATH:
            return page_config(open_mode=self.settings.open_mode)
        if document is not None:
            cached: CachedFile | None = document
        elif path.startswith(STREAMS_PREFIX):
            cached = self.streams.get(path[len(STREAMS_PREFIX) :])
        else:
            cached = self.static.get(path)
        if cached is None:
            return text(HTTPStatus.NOT_FOUND, "not found\n")
        body = cached.body
        extra: list[tuple[str, str]] = []
        if cached.gzipped is not None:
            extra.append(("Vary", "Accept-Encoding"))
            if accepts_gzip(request):
                body = cached.gzipped
                extra.append(("Content-Encoding", "gzip"))
        if cached.is_html:
            host = request.headers.get("Host", "")
            frames_ccp = path.rstrip("/").rsplit("/", 1)[-1] == "ccp.html"
            csp = content_security_policy(cached, host, self.settings.allow_origins, frames_ccp=frames_ccp)
            extra.append(("Content-Security-Policy", csp))
        release = self.unread.reserve(address, len(body))
        if release is None:
            events.http_refused(address, path, HTTPStatus.SERVICE_UNAVAILABLE,
                                "too many file responses not yet read (see --max-unread-file-bytes)")
            return text(HTTPStatus.SERVICE_UNAVAILABLE, "too many file responses not yet read; retry\n")
        if lost.done():
            release()
        else:
            lost.add_done_callback(lambda _: release())
        return response(HTTPStatus.OK, body, cached.content_type, extra)


def page_config(*, open_mode: bool) -> Response:
    """``/config.json``: whether pages must bring a token, so the landing page says so.

    It tells nothing a client could not learn by saying Hello without a token.
    """
    body = b'{"mode": "open"}' if open_mode else b'{"mode": "secured"}'
    return response(HTTPStatus.OK, body, "application/json")


class HostedDocument:
    """A JSON document that names the host its reader reached the hub under (``/asyncapi.json``).

    It is rendered once, on first use, with :data:`PLACEHOLDER` as the host; each
    response puts the request's ``Host`` (already checked against the hub's
    names) in its place. A byte replace, not a rendering: a client naming a new
    port each time costs no more than one naming the same.
    """

    PLACEHOLDER = "connect-bridge-host.invalid"

    def __init__(self, render: Callable[[str], bytes]) -> None:
        self._render = render
        self._template: bytes | None = None

    def get(self, request: Request) -> CachedFile:
        if self._template is None:
            self._template = self._render(self.PLACEHOLDER)
        host = orjson.dumps(request.headers.get("Host", ""))[1:-1]  # as a JSON string's content
        body = self._template.replace(self.PLACEHOLDER.encode(), host)
        return CachedFile(body, None, "application/json", (0, 0))


# ES modules must be served as JavaScript whatever the platform's mime table says.
mimetypes.add_type("text/javascript", ".js")
mimetypes.add_type("text/javascript", ".mjs")
mimetypes.add_type("text/css", ".css")
mimetypes.add_type("image/svg+xml", ".svg")
