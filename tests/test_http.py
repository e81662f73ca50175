"""Plain HTTP on the hub's port, over real sockets: files, slow readers, headers, Host, health.

Issue 10 ("Hardening, round two"): only the files the pages load are served,
from memory, gzip when accepted; unread file responses are capped in bytes
(total and per address, HTTP 503 past the caps); pages carry a CSP, a framing
policy and no referrer; ``Host`` must be one of the hub's names; health and
metrics answer loopback only unless ``metrics_public``.
"""

from __future__ import annotations

import asyncio
import gzip
import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import websockets

from bridge.hub import http
from bridge.hub import server as server_module
from bridge.hub.config import HubConfig
from bridge.hub.server import HubServer

from .helpers import prerequisite_missing, within

REPO = Path(__file__).resolve().parents[1]
STATIC_DIR = REPO / "static"
STREAMS_DIR = REPO / "node_modules" / "amazon-connect-streams" / "release"
BUNDLE = "/vendor/streams/connect-streams-min.js"


async def get(
    port: int, path: str, *, host: str | None = None, headers: dict[str, str] | None = None, source: str = "127.0.0.1"
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 GET read to the end: status, headers (lower-case names), body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    lines = [f"GET {path} HTTP/1.1"]
    if host != "":
        lines.append(f"Host: {host or f'127.0.0.1:{port}'}")
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    raw = await within(reader.read())
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    parsed = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        parsed[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), parsed, body


def never_reader(port: int, path: str, source: str) -> socket.socket:
    """A client that sends a GET and never reads: a tiny receive window, nothing consumed."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    return sock


async def answered(sock: socket.socket) -> bytes:
    """The status line the hub sent, peeked at without consuming anything."""
    return await within(asyncio.to_thread(sock.recv, 12, socket.MSG_PEEK))


# --- 1. files and slow readers ----------------------------------------------------


@pytest.fixture
def streams_dir(tmp_path: Path) -> Path:
    """A Streams folder whose bundle is 1 MiB of incompressible bytes, beside files never served."""
    folder = tmp_path / "release"
    folder.mkdir()
    (folder / "connect-streams-min.js").write_bytes(os.urandom(1024 * 1024))
    (folder / "connect-streams-test.js").write_bytes(b"// test bundle\n" * 1000)
    (folder / "connect-streams.js").write_bytes(b"// source\n")
    return folder


@pytest.fixture
async def capped_hub(streams_dir: Path) -> AsyncIterator[HubServer]:
    config = HubConfig(
        port=0,
        open_mode=True,
        streams_dir=streams_dir,
        max_unread_file_bytes=3 * 1024 * 1024 + 512 * 1024,
        max_unread_file_bytes_per_address=2 * 1024 * 1024 + 512 * 1024,
    )
    async with HubServer(config) as hub:
        yield hub


async def test_only_the_bundle_the_pages_load_is_served_from_the_streams_folder(capped_hub: HubServer) -> None:
    status, _, body = await get(capped_hub.port, BUNDLE)
    assert status == 200 and len(body) == 1024 * 1024
    for name in ("connect-streams-test.js", "connect-streams.js", "", "../release/connect-streams-test.js"):
        status, _, _ = await get(capped_hub.port, http.STREAMS_PREFIX + name)
        assert status == 404, name


def test_the_pages_load_nothing_else_from_the_streams_folder() -> None:
    pages = [*STATIC_DIR.glob("*.html"), *STATIC_DIR.glob("js/**/*.js")]
    wanted = set()
    for page in pages:
        for found in page.read_text().split(http.STREAMS_PREFIX)[1:]:
            wanted.add(found.split('"', 1)[0].split(" ", 1)[0])
    assert wanted == set(http.STREAMS_FILES)


async def test_the_real_bundle_is_read_once_and_sent_gzip_when_accepted() -> None:
    if not (STREAMS_DIR / "connect-streams-min.js").is_file():
        prerequisite_missing(f"amazon-connect-streams not installed in {STREAMS_DIR.parent}: run npm ci")
    async with HubServer(HubConfig(port=0, open_mode=True, streams_dir=STREAMS_DIR)) as hub:
        original = (STREAMS_DIR / "connect-streams-min.js").read_bytes()
        status, headers, body = await get(hub.port, BUNDLE, headers={"Accept-Encoding": "gzip, deflate, br"})
        assert status == 200
        assert headers["content-encoding"] == "gzip" and headers["vary"] == "Accept-Encoding"
        assert len(body) < len(original) / 2 and gzip.decompress(body) == original
        status, headers, body = await get(hub.port, BUNDLE, headers={"Accept-Encoding": "gzip;q=0"})
        assert status == 200 and "content-encoding" not in headers and body == original
        assert headers["content-type"] == "text/javascript; charset=utf-8"
        # One copy in memory, shared by every response.
        site = hub.site
        first = site.streams.get("connect-streams-min.js")
        assert first is not None and site.streams.get("connect-streams-min.js") is first


async def test_unread_file_responses_are_capped_per_address_and_in_total(capped_hub: HubServer) -> None:
    port = capped_hub.port
    readers: list[socket.socket] = []
    try:
        # Two never-reading clients from 127.0.0.1 hold 2 MiB: a third from there is refused.
        for _ in range(2):
            readers.append(never_reader(port, BUNDLE, "127.0.0.1"))
            assert await answered(readers[-1]) == b"HTTP/1.1 200"
        readers.append(never_reader(port, BUNDLE, "127.0.0.1"))
        assert await answered(readers[-1]) == b"HTTP/1.1 503"
        # A normal client elsewhere is served in full, and releases what it held once read.
        status, _, body = await get(port, BUNDLE, source="127.0.0.2")
        assert status == 200 and len(body) == 1024 * 1024
        # A third never-reader (127.0.0.3) brings the total to 3 MiB: the next bundle is refused ...
        readers.append(never_reader(port, BUNDLE, "127.0.0.3"))
        assert await answered(readers[-1]) == b"HTTP/1.1 200"
        status, _, _ = await get(port, BUNDLE, source="127.0.0.4")
        assert status == 503
        # ... while a small page, the health check and WebSocket clients still get in.
        status, _, body = await get(port, "/widget.html", source="127.0.0.4")
        assert status == 200 and b"<html" in body
        assert (await get(port, "/healthz"))[0] == 200
        async with websockets.connect(capped_hub.url) as ws:
            await ws.send('{"channel":"Bridge","topic":"Session","subtopic":"Hello","source":"t","data":{"role":"app","agent":"a1"}}')
            assert "Welcome" in str(await within(ws.recv()))
    finally:
        for sock in readers:
            sock.close()

    # Once the never-readers are gone, their bytes are released.
    async def served_again() -> None:
        while True:
            if (await get(port, BUNDLE))[0] == 200:
                return
            await asyncio.sleep(0.05)

    await within(served_again())


# --- 2. headers for pages framed by a CRM ------------------------------------------


def directives(csp: str) -> dict[str, list[str]]:
    parsed = {}
    for part in csp.split(";"):
        name, *values = part.split()
        parsed[name] = values
    return parsed


async def test_pages_carry_a_csp_a_framing_policy_and_no_referrer() -> None:
    config = HubConfig(port=0, open_mode=True, static_dir=STATIC_DIR, allow_origins=("https://crm.example",))
    async with HubServer(config) as hub:
        host = f"127.0.0.1:{hub.port}"
        status, headers, _ = await get(hub.port, "/widget.html?token=secret")
        assert status == 200 and headers["referrer-policy"] == "no-referrer"
        assert headers["x-content-type-options"] == "nosniff"
        csp = directives(headers["content-security-policy"])
        assert csp["frame-ancestors"] == ["'self'", "https://crm.example"]
        assert csp["script-src"] == ["'self'"] and csp["style-src"] == ["'self'"]
        assert csp["connect-src"] == ["'self'", f"ws://{host}", f"wss://{host}"]
        assert csp["frame-src"] == ["'none'"] and csp["object-src"] == ["'none'"]

        csp = directives((await get(hub.port, "/ccp.html"))[1]["content-security-policy"])
        assert csp["frame-src"] == ["https://*.my.connect.aws", "https://*.awsapps.com"]

        # index.html keeps its inline <style>: allowed by its hash, nothing else inline.
        csp = directives((await get(hub.port, "/"))[1]["content-security-policy"])
        _, styles = http.inline_hashes((STATIC_DIR / "index.html").read_text())
        assert len(styles) == 1 and csp["style-src"] == ["'self'", *styles]

        # Scripts and styles get no CSP of their own, but the same no-referrer.
        status, headers, _ = await get(hub.port, "/js/pages/widget.js")
        assert status == 200 and "content-security-policy" not in headers
        assert headers["referrer-policy"] == "no-referrer"


async def test_any_origin_may_frame_the_pages_when_any_origin_is_allowed() -> None:
    async with HubServer(HubConfig(port=0, open_mode=True, allow_origins=("*",))) as hub:
        csp = directives((await get(hub.port, "/widget.html"))[1]["content-security-policy"])
        assert csp["frame-ancestors"] == ["*"]


def test_inline_hashes_skip_external_scripts_and_comments() -> None:
    page = '<!-- <script>x()</script> --><script src="a.js"></script><script>go()</script><style>p{}</style>'
    scripts, styles = http.inline_hashes(page)
    assert len(scripts) == 1 and len(styles) == 1 and scripts != styles


# --- 3. DNS rebinding: Host must be one of the hub's names ---------------------------


async def test_a_foreign_host_is_refused_over_http_and_websocket(open_hub: HubServer) -> None:
    port = open_hub.port
    for host in ("attacker.example", f"attacker.example:{port}", "127.0.0.1.attacker.example", ""):
        status, _, body = await get(port, "/widget.html", host=host)
        assert status == 421 and b"Host" in body, host
        status, _, _ = await get(port, "/ws", host=host, headers={"Origin": f"http://{host}"})
        assert status == 421, host
    for host in ("localhost", f"localhost:{port}", "127.0.0.1", f"[::1]:{port}", "LOCALHOST"):
        assert (await get(port, "/widget.html", host=host))[0] == 200, host


async def test_configured_public_hosts_add_to_the_loopback_names() -> None:
    config = HubConfig(port=0, secret="s" * 32, public_hosts=("bridge.example.com",))
    async with HubServer(config) as hub:
        assert (await get(hub.port, "/widget.html", host="bridge.example.com"))[0] == 200
        assert (await get(hub.port, "/widget.html", host="bridge.example.com:443"))[0] == 200
        assert (await get(hub.port, "/widget.html", host="evil.example"))[0] == 421
        # Operators' own checks on the machine keep working (a rebinding page never uses these names).
        assert (await get(hub.port, "/healthz", host="127.0.0.1"))[0] == 200
        assert (await get(hub.port, "/healthz", host="localhost"))[0] == 200
        assert (await get(hub.port, "/ws", host="evil.example"))[0] == 421


def test_host_names_are_compared_without_port_or_brackets() -> None:
    names = http.public_names((), "0.0.0.0")
    assert names == {"0.0.0.0", "localhost", "127.0.0.1", "::1"}
    assert http.host_name("[::1]:8765") == "::1" and http.host_name("Example.COM:80") == "example.com"


# --- 4. health and metrics from loopback only ---------------------------------------


@pytest.mark.parametrize("public", [False, True])
async def test_health_and_metrics_answer_loopback_only_unless_public(
    public: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = HubConfig(port=0, open_mode=True, metrics_public=public)
    async with HubServer(config) as hub:
        for path in ("/healthz", "/metrics"):
            assert (await get(hub.port, path))[0] == 200
        # The same requests, as the hub sees a client from outside (a documentation address: nothing is sent there).
        monkeypatch.setattr(server_module, "_address", lambda connection: "192.0.2.10")
        for path in ("/healthz", "/metrics"):
            assert (await get(hub.port, path))[0] == (200 if public else 403)
        assert (await get(hub.port, "/widget.html"))[0] == 200  # pages stay public


def test_loopback_addresses() -> None:
    assert http.is_loopback("127.0.0.2") and http.is_loopback("::1")
    assert not http.is_loopback("10.0.0.1") and not http.is_loopback("?")
