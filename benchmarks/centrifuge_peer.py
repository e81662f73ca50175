"""The Go Centrifuge peer (issue 15) as a benchmark side: finding and starting its binary, and
the client half of its JSON protocol on the lean :class:`common.WSConn`.

The peer is ``../shared/peers/centrifuge/main.go`` (``cfhub``), a minimal server on the
Centrifuge library (the engine of Centrifugo), built by that folder's ``build.sh`` into
``$TMPDIR/connect-bridge-peers/cfhub`` (or wherever ``$BENCH_CENTRIFUGE_BIN`` points). It runs
as its own process, pinned to the server core with ``GOMAXPROCS=1``; no code of it is here.

What the load client needs of the protocol (``PROTOCOL.md`` beside ``main.go``):

* endpoint ``/connection/websocket``; every message is one JSON object followed by ``\\n`` in a
  text frame, and the server packs up to 4 queued messages into one frame, so a frame carries
  as many messages as it has ``\\n`` bytes (JSON escapes a newline inside a string);
* a subscriber sends ``connect`` then ``subscribe`` (one frame, two commands) and is subscribed
  once the reply with id 2 arrives;
* the publisher sends ``connect`` and then one ``publish`` command per frame (the provider's
  event embedded raw as ``data``); it gets a reply per publish, which it reads and ignores;
* each publication reaches a subscriber as
  ``{"result":{"channel":C,"data":{"data":<payload>}}}\\n`` (54 bytes of envelope here).
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson

import common as c

#: The peer's folder (read-only; only its README's commands and its build are used).
PEER_DIR = c.ROOT.parent / "shared" / "peers" / "centrifuge"
#: What the peer's README says to install (Debian 12).
APT_LINE = ("apt-get install -y golang-go golang-github-centrifugal-centrifuge-dev "
            "golang-github-centrifugal-protocol-dev golang-github-fzambia-eagle-dev "
            "golang-github-igm-sockjs-go-dev golang-github-mna-redisc-dev")
BUILD_CMD = f"{PEER_DIR / 'build.sh'}"
ENV_VAR = "BENCH_CENTRIFUGE_BIN"
PATH = "/connection/websocket"


def default_binary() -> Path:
    """Where ``build.sh`` puts the binary when given no output path."""
    return Path(os.environ.get("TMPDIR") or "/tmp") / "connect-bridge-peers" / "cfhub"


def binary() -> Path:
    """$BENCH_CENTRIFUGE_BIN, else build.sh's default output."""
    env = os.environ.get(ENV_VAR)
    return Path(env) if env else default_binary()


def problem() -> str | None:
    """One line saying why the peer cannot run here (and how to fix it), or ``None`` when it can."""
    path = binary()
    if path.is_file() and os.access(path, os.X_OK):
        return None
    where = f"${ENV_VAR}={path}" if os.environ.get(ENV_VAR) else str(path)
    toolchain = "Go toolchain found" if shutil.which("go") else "no Go toolchain"
    return (f"Centrifuge peer skipped (hub and bare only): no binary at {where}, {toolchain}; "
            f"to build it: {APT_LINE} && {BUILD_CMD} (or set ${ENV_VAR})")


def sides(no_peer: bool, info: dict[str, Any]) -> tuple[list[str], str | None]:
    """The servers a benchmark runs (hub, bare, and the peer when it can) and, when the peer is left
    out, the one line saying why (printed here, and for the benchmark's summary); the peer's binary
    is recorded in ``info``."""
    problem_line = "left out (--no-peer)" if no_peer else problem()
    if problem_line:
        print(problem_line, flush=True)
        return ["hub", "bare"], problem_line
    info["peer_binary"] = str(binary())
    return ["hub", "bare", "peer"], None


def start_peer(*, core: int | None = c.SERVER_CORE, log_name: str = "peer") -> c.Server:
    """The peer as a fresh process on ``core`` with ``GOMAXPROCS=1``. ``env`` execs the binary, so
    the Server's pid is the peer's own (its CPU, schedstat and RSS are read from it)."""
    port = c.free_port()
    argv = ["env", "GOMAXPROCS=1", str(binary()), "--port", str(port), "--max-life", "86400"]
    return c.Server("peer", argv, port, core=core, log=c.RESULTS / "logs" / f"{log_name}.log", health_path="/stats")


def stats(server: c.Server, *, gc: bool = False) -> dict[str, Any]:
    """The peer's /stats (or /gc: a forced GC and FreeOSMemory first)."""
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/{'gc' if gc else 'stats'}", timeout=10) as r:
        return dict(orjson.loads(r.read()))


def channel_of(agent: str) -> str:
    return f"agent:{agent}"


def subscribe_command(token: str, channel: str) -> bytes:
    """connect (id 1) and subscribe (id 2) in one frame's payload."""
    return (orjson.dumps({"id": 1, "params": {"token": token}}) + b"\n"
            + orjson.dumps({"id": 2, "method": 1, "params": {"channel": channel}}))


def connect_command(token: str) -> bytes:
    return orjson.dumps({"id": 1, "params": {"token": token}})


def publish_wrap(channel: str, ident: int = 3) -> tuple[bytes, bytes]:
    """(prefix, suffix) that make a publish command of a raw JSON payload placed between them."""
    prefix = b'{"id":%d,"method":3,"params":{"channel":' % ident + orjson.dumps(channel) + b',"data":'
    return prefix, b"}}"


def publish_command(channel: str, payload: bytes, ident: int = 3) -> bytes:
    prefix, suffix = publish_wrap(channel, ident)
    return prefix + payload + suffix


def publish_template(channel: str, template: tuple[bytes, bytes]) -> tuple[bytes, bytes]:
    """:func:`common.timestamped_event_template` wrapped in a publish command, for
    :func:`common.timestamped_event` (the send time stays in ``message.data.name``)."""
    prefix, suffix = publish_wrap(channel)
    return prefix + template[0], template[1] + suffix


def messages_in(frame_payload: bytes) -> int:
    """Messages in one server frame: each ends with ``\\n``."""
    return frame_payload.count(b"\n")


async def open_peer_clients(port: int, tokens_channels: Sequence[tuple[str, str | None]], tally: c.Tally,
                            on_text: Callable[[c.WSConn, bytes, int], None] | None = None,
                            *, batch: int = 50) -> list[c.WSConn]:
    """One connection per (token, channel): connect, and subscribe to ``channel`` unless it is
    ``None``; returns once every one has its last reply (connect's, or subscribe's). Afterwards
    each connection's ``on_text`` is ``on_text`` (None: frames are only counted).

    Opens ``batch`` at a time: the server's listen backlog is finite.
    """
    loop = asyncio.get_running_loop()
    conns: list[c.WSConn] = []

    async def one(token: str, channel: str | None) -> c.WSConn:
        _, conn = await loop.create_connection(lambda: c.WSConn("127.0.0.1", port, tally, path=PATH),
                                               "127.0.0.1", port)
        await asyncio.wait_for(conn.opened, 30)
        ready: asyncio.Future[None] = loop.create_future()
        want = b'"id":2' if channel is not None else b'"id":1'

        def until_ready(conn: c.WSConn, payload: bytes, now: int) -> None:
            if b'"error"' in payload and not ready.done():
                ready.set_exception(ConnectionError(f"peer refused: {payload[:200]!r}"))
            elif want in payload and not ready.done():
                ready.set_result(None)

        conn.on_text = until_ready
        conn.send(subscribe_command(token, channel) if channel is not None else connect_command(token))
        await asyncio.wait_for(ready, 30)
        conn.on_text = on_text
        if not conn.first_text.done():  # unused here; done, so a later close leaves no stray exception
            conn.first_text.set_result(b"")
        return conn

    for i in range(0, len(tokens_channels), batch):
        chunk = tokens_channels[i:i + batch]
        conns += await asyncio.gather(*(one(token, channel) for token, channel in chunk))
    return conns
