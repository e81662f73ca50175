"""An operator's log: one line per refusal and per connection the hub closes, with who and why, never a token.

One real ``connect-bridge serve --log-format json`` process serves most tests
of the module at its default verbosity; the tests provoke each kind of line
over real sockets and read the process's stderr, one JSON object per line.
(Its repeat limiter writes 10 lines of a kind a minute: the tests of that
hub stay under it, and one of a hub of its own goes past it.)
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import websockets

from bridge.protocol.tokens import issue_token

from .helpers import Client, connect, eventually, free_port, hello, join, join_app, seed_event, within

SECRET = "log-lines-test-secret-long-enough-for-hs256"
OTHER_SECRET = "another-hubs-secret-that-signs-nothing-here"
#: What every log line about a client carries (JSON ``null`` when not known yet, at the handshake).
WHO = ("event", "remote", "agent", "role", "reason")


class Hub:
    """A ``serve`` process and the lines of its stderr, read as they come."""

    def __init__(self, *args: str) -> None:
        self.port = free_port()
        env = {**os.environ, "BRIDGE_SECRET": SECRET}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bridge", "serve", "--port", str(self.port), *args],
            stderr=subprocess.PIPE, text=True, env=env,
        )
        self.lines: list[str] = []
        self.ready = threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        if not self.ready.wait(30):
            self.stop()
            raise AssertionError(f"serve did not start: {self.lines}")

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line.rstrip("\n"))
            if "listening on" in line:
                self.ready.set()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def records(self) -> list[dict[str, Any]]:
        """The log lines so far, parsed (the start-up and shutdown notices are not log lines)."""
        return [orjson.loads(line) for line in list(self.lines) if line.startswith("{")]

    def events(self, event: str, **match: Any) -> list[dict[str, Any]]:
        return [r for r in self.records() if r.get("event") == event
                and all(r.get(key) == value for key, value in match.items())]

    async def one(self, event: str, **match: Any) -> dict[str, Any]:
        """The one line of ``event`` matching ``match``, once it is written (more than one fails)."""
        found = await eventually(lambda: self.events(event, **match))
        await asyncio.sleep(0.2)  # a second line about the same happening would be written by now
        found = self.events(event, **match)
        assert len(found) == 1, found
        return found[0]

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        self.process.wait(timeout=30)
        self.reader.join(timeout=5)


@pytest.fixture(scope="module")
def hub() -> Iterator[Hub]:
    hub = Hub("--log-format", "json", "--hello-timeout", "1", "--max-pending-hellos-per-address", "5",
              "--max-connections-per-agent", "1", "--rate-limit", "50", "--rate-burst", "500",
              "--flood-close-after", "5", "--max-send-buffer", "131072")
    yield hub
    hub.stop()


def token(agent: str, role: str = "app", *, secret: str = SECRET, ttl: int = 3600) -> str:
    return issue_token(secret, agent=agent, role=role, ttl=ttl)


def assert_who(line: dict[str, Any], **expected: Any) -> None:
    assert line["level"] == "WARNING" and line["logger"] == "bridge.events"
    assert {"time", "message"} <= set(line)
    for key in WHO:
        assert key in line, (key, line)
    assert line["remote"] == "127.0.0.1"
    for key, value in expected.items():
        assert line[key] == value, (key, line)


def get(url: str, **headers: str) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


# --- refused at Hello ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("agent", "signed", "said", "ttl", "reason"),
    [
        ("bad-signature", OTHER_SECRET, "app", 3600, "token signature does not match this hub's secret"),
        ("expired", SECRET, "app", -60, "token expired"),
        ("wrong-role", SECRET, "app", 3600, "the token is for role provider, not app"),
    ],
)
async def test_a_refused_token_is_one_line_naming_the_agent_and_why_never_the_token(
    hub: Hub, agent: str, signed: str, said: str, ttl: int, reason: str
) -> None:
    role = "provider" if agent == "wrong-role" else said
    presented = issue_token(signed, agent=agent, role=role, ttl=ttl)
    client = await connect(hub.url)
    await client.send(hello(said, token=presented, source="crm-widget"))
    assert (await client.recv())["data"]["errorType"] == "NOT_AUTHENTICATED"
    assert await client.closed() == 1008
    line = await hub.one("hello_refused", agent=agent)
    assert_who(line, role=said, source="crm-widget", reason=reason, error="NOT_AUTHENTICATED", code=1008)
    assert line["connection"].startswith("c-")
    assert presented not in "\n".join(hub.lines)
    assert presented.split(".")[2] not in "\n".join(hub.lines)  # not even its signature


async def test_an_agent_at_its_connection_cap_is_refused_in_one_line(hub: Hub) -> None:
    first = await join_app(hub.url, token=token("capped"))
    extra = await connect(hub.url)
    await extra.send(hello("app", token=token("capped")))
    assert (await extra.recv())["data"]["errorType"] == "FORBIDDEN"
    line = await hub.one("hello_refused", agent="capped")
    assert_who(line, role="app", error="FORBIDDEN", code=1008)
    assert "1 app connections" in line["reason"]
    await first.close()


async def test_no_hello_in_time_is_one_line(hub: Hub) -> None:
    silent = await connect(hub.url)
    assert await silent.closed() == 1008  # after --hello-timeout 1
    line = await hub.one("hello_refused", reason="no Hello within 1 s")
    assert_who(line, agent=None, role=None, code=1008)


# --- refused at the handshake ------------------------------------------------------------------


async def test_an_origin_not_allowed_is_one_line(hub: Hub) -> None:
    with pytest.raises(websockets.InvalidStatus):
        await websockets.connect(hub.url, origin="https://evil.example")
    line = await hub.one("origin_refused", origin="https://evil.example")
    assert_who(line, agent=None, role=None, status=403, path="/ws")


async def test_an_unknown_host_is_one_line(hub: Hub) -> None:
    assert await asyncio.to_thread(get, hub.http + "/ws", Host="rebinding.example") == 421
    line = await hub.one("host_refused", host="rebinding.example")
    assert_who(line, status=421, path="/ws")


async def test_a_request_that_is_not_a_websocket_handshake_is_one_line(hub: Hub) -> None:
    presented = token("in-a-query")
    assert await asyncio.to_thread(get, hub.http + "/ws?token=" + presented) == 426
    line = await hub.one("handshake_refused", status=426)
    assert_who(line, path="/ws")
    assert line["reason"].startswith("not a WebSocket handshake")
    assert presented.split(".")[2] not in "\n".join(hub.lines)


async def test_too_many_connections_waiting_for_hello_is_one_line_each(hub: Hub) -> None:
    waiting = [await connect(hub.url) for _ in range(5)]  # --max-pending-hellos-per-address 5
    with pytest.raises(websockets.InvalidStatus):
        await websockets.connect(hub.url)
    line = await hub.one("handshake_refused", status=503)
    assert_who(line, path="/ws")
    assert "waiting to say Hello" in line["reason"]
    for client in waiting:
        await client.close()


# --- closed by the hub ------------------------------------------------------------------------------


async def test_a_flood_close_is_one_line(hub: Hub) -> None:
    # It reads everything the hub answers (max_queue=None): flooding, not too slow, is what closes it.
    flooder = Client(await websockets.connect(hub.url, max_queue=None))
    await flooder.send(hello("app", token=token("flooder"), source="runaway"))
    assert (await flooder.recv())["subtopic"] == "Welcome"
    frame = orjson.dumps({"channel": "Amazon", "topic": "Agent", "subtopic": "SetReady", "source": "runaway"})
    for _ in range(5000):  # past the burst of 500, then 5 refused in a row (however slowly this runs)
        try:
            await flooder.ws.send(frame.decode())
        except websockets.ConnectionClosed:
            break
        if flooder.ws.close_code is not None:
            break
    assert await flooder.closed() == 1008
    line = await hub.one("flood_close", agent="flooder")
    assert_who(line, role="app", source="runaway", code=1008, reason="flooding")


async def test_a_slow_consumer_close_is_one_line(hub: Hub) -> None:
    provider, _ = await join(hub.url, "provider", token=token("slowpoke", "provider"))
    sock = socket.create_connection(("127.0.0.1", hub.port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled = Client(await websockets.connect(hub.url, sock=sock, max_queue=1))
    await stalled.send(hello("app", token=token("slowpoke"), source="stuck-tab"))
    event = seed_event()
    event["message"]["data"]["name"] = "x" * 40_000
    frame = orjson.dumps(event).decode()
    for _ in range(400):  # 16 MB for an app that reads nothing, past --max-send-buffer
        if hub.events("slow_consumer_close", agent="slowpoke"):
            break
        await provider.send(frame)
        await asyncio.sleep(0.01)
    line = await hub.one("slow_consumer_close", agent="slowpoke")
    assert_who(line, role="app", source="stuck-tab", code=4008)
    assert "too slow to read" in line["reason"]
    await provider.close()
    sock.close()


async def test_a_provider_takeover_is_one_line_about_the_replaced_one(hub: Hub) -> None:
    older, _ = await join(hub.url, "provider", token=token("taken-over", "provider"), source="old-tab")
    newer, _ = await join(hub.url, "provider", token=token("taken-over", "provider"), source="new-tab")
    assert (await older.recv_kind("Replaced"))["subtopic"] == "Replaced"
    assert await older.closed() == 4001
    line = await hub.one("provider_replaced", agent="taken-over")
    assert_who(line, role="provider", source="old-tab", code=4001)
    await newer.close()


async def test_a_binary_frame_close_is_one_line(hub: Hub) -> None:
    app = await join_app(hub.url, token=token("binary"))
    await app.ws.send(b"\x00\x01")
    assert await app.closed() == 1008
    line = await hub.one("binary_frame_close", agent="binary")
    assert_who(line, role="app", code=1008)


async def test_a_token_expiry_close_is_one_line(hub: Hub) -> None:
    app = await join_app(hub.url, token=token("expiring", ttl=2))  # whole seconds: ttl=1 may expire before Hello
    assert await within(app.closed(), 10) == 4003
    line = await hub.one("token_expired_close", agent="expiring")
    assert_who(line, role="app", code=4003)


# --- what is not written ----------------------------------------------------------------------------


async def test_a_client_that_joins_and_leaves_writes_nothing_at_the_default_verbosity(hub: Hub) -> None:
    before = len(hub.records())
    app = await join_app(hub.url, token=token("quiet"))
    await app.close()
    await asyncio.sleep(0.3)
    assert [r for r in hub.records()[before:] if r.get("agent") == "quiet"] == []


def test_no_line_holds_the_secret_and_every_line_is_json(hub: Hub) -> None:
    assert SECRET not in "\n".join(hub.lines)
    for line in hub.lines:
        if line.startswith("{"):
            assert isinstance(orjson.loads(line), dict)
        else:  # serve's own notices on stderr are not log lines; every log line is JSON
            assert " WARNING " not in line and "bridge." not in line, line


async def test_a_flood_of_refusals_is_limited_in_the_log_and_counted_in_full_in_the_metrics() -> None:
    hub = await asyncio.to_thread(Hub, "--log-format", "json")
    try:
        for n in range(15):
            client = await connect(hub.url)
            await client.send(hello("app", token=token(f"guess-{n}", secret=OTHER_SECRET)))
            assert await client.closed() == 1008
        metrics = await asyncio.to_thread(fetch, hub.http + "/metrics")
        assert 'bridge_errors_total{type="NOT_AUTHENTICATED"} 15.0' in metrics
        # Each line was written before its client saw the close; the reader may lag behind the pipe.
        await eventually(lambda: len(hub.events("hello_refused")) >= 10)
        await asyncio.sleep(0.3)
        assert len(hub.events("hello_refused")) == 10  # the rest held back, said with the next one after a minute
    finally:
        await asyncio.to_thread(hub.stop)


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


# --- text ----------------------------------------------------------------------------------------------


async def test_the_text_format_is_todays_line_with_key_value_fields() -> None:
    hub = await asyncio.to_thread(Hub)  # the default format
    try:
        presented = token("text-agent", secret=OTHER_SECRET)
        client = await connect(hub.url)
        await client.send(hello("app", token=presented, source="two words\nforged=line"))
        assert await client.closed() == 1008
        lines = await eventually(lambda: [line for line in hub.lines if "event=hello_refused" in line])
        assert len(lines) == 1
        line = lines[0]
        assert " WARNING bridge.events: refused a Hello event=hello_refused " in line
        assert "agent=text-agent role=app" in line and "remote=127.0.0.1" in line
        assert 'source="two words\\nforged=line"' in line  # quoted: no forged line or field
        assert 'reason="token signature does not match this hub\'s secret"' in line and "code=1008" in line
        assert presented not in "\n".join(hub.lines) and SECRET not in "\n".join(hub.lines)
    finally:
        await asyncio.to_thread(hub.stop)
