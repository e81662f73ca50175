"""Limits that protect one agent's provider and the hub itself, over real sockets (issue 10).

* The apps of an agent cannot take its provider's place: the per-agent cap
  counts apps only.
* A burst of requests the hub delivers to a provider (many apps at once, or
  a backplane that stalled then caught up) is not held against the
  provider's own rate limit when it answers them.
* A provider's made-up error types never become metric labels.
"""

from __future__ import annotations

import asyncio
import urllib.request
from typing import Any

import orjson
import pytest
import websockets

from bridge.hub.config import HubConfig
from bridge.hub.server import HubServer

from .helpers import Client, connect, hello, join, join_app, seed_event, within


async def test_apps_at_the_cap_never_lock_the_provider_out() -> None:
    async with HubServer(HubConfig(port=0, open_mode=True, max_connections_per_agent=3)) as hub:
        apps = [await join_app(hub.url) for _ in range(3)]
        extra = await connect(hub.url)
        await extra.send(hello("app", agent="agent1"))
        assert (await extra.recv())["data"]["errorType"] == "FORBIDDEN"
        assert await extra.closed() == 1008
        provider, welcome = await join(hub.url, "provider", "agent1")
        assert welcome["message"]["role"] == "provider"
        for app in apps:
            status = await app.recv_kind("ProviderStatus")
            assert status["message"] == {"connected": True}
        # A newer provider also gets in, and replaces the older one.
        newer, _ = await join(hub.url, "provider", "agent1")
        assert (await provider.recv_kind("Replaced"))["message"]["connectionId"]
        assert await provider.closed() == 4001
        await newer.send(seed_event())
        for app in apps:
            assert (await app.recv_kind("SetAgentState"))["message"]["event"]


async def hello_at_once(url: str, count: int) -> list[str]:
    """``count`` apps of agent1 say Hello at the same moment; what each got first (subtopic)."""
    clients = [await connect(url) for _ in range(count)]
    await asyncio.gather(*(c.send(hello("app", agent="agent1")) for c in clients))
    firsts = await asyncio.gather(*(c.recv() for c in clients))
    for client in clients:
        await client.close()
    return [frame["subtopic"] for frame in firsts]


@pytest.mark.redis
async def test_the_cap_holds_under_simultaneous_hellos_on_redis_nodes() -> None:
    """The cap is per node (docs/protocol.md), decided in one step per Hello: on Redis-backed
    nodes as on one process, 60 simultaneous Hellos never get more than the cap in per node."""
    from bridge.brokers.redis import RedisBroker
    from bridge.brokers.redis.settings import RedisSettings

    from .redis_helpers import drop_prefix, require_redis, unique_prefix

    url, prefix = require_redis(), unique_prefix()
    config = HubConfig(port=0, open_mode=True, max_connections_per_agent=10, max_pending_hellos_per_address=200)
    try:
        async with (
            HubServer(config, broker=RedisBroker(url, settings=RedisSettings(prefix=prefix))) as one,
            HubServer(config, broker=RedisBroker(url, settings=RedisSettings(prefix=prefix))) as two,
        ):
            alone = await hello_at_once(one.url, 60)
            assert alone.count("Welcome") == 10 and alone.count("ApiError") == 50
            both = await asyncio.gather(hello_at_once(one.url, 30), hello_at_once(two.url, 30))
            assert [firsts.count("Welcome") for firsts in both] == [10, 10]
    finally:
        drop_prefix(prefix)


async def answer_everything(provider: Client, count: int) -> None:
    """A provider that was busy: it reads every request first, then answers them all at once."""
    requests = [await provider.recv() for _ in range(count)]
    for request in requests:
        await provider.send(seed_event(request["id"]))


async def test_a_burst_the_hub_delivered_is_not_held_against_the_provider() -> None:
    config = HubConfig(port=0, open_mode=True, rate_limit=5, rate_burst=5, flood_close_after=100)
    async with HubServer(config) as hub:
        provider, _ = await join(hub.url, "provider", "agent1")
        apps = [await join_app(hub.url) for _ in range(10)]
        ready: dict[str, Any] = {"channel": "Amazon", "topic": "Agent", "subtopic": "SetReady", "source": "t"}
        for a, app in enumerate(apps):
            for n in range(5):  # within each app's own burst
                await app.send({**ready, "id": f"a{a}-{n}"})
        await within(answer_everything(provider, 50), 20)
        for a, app in enumerate(apps):
            answered = set()
            while len(answered) < 5:
                frame = await app.recv()
                assert frame["subtopic"] != "ApiError", frame
                if frame.get("replyTo", "").startswith(f"a{a}-"):
                    answered.add(frame["replyTo"])
        await provider.nothing(0.3)  # no RATE_LIMITED, no close
        # Frames it was not asked for still meet its limit.
        for _ in range(15):
            await provider.send(seed_event())
        errors = []
        while True:
            try:
                frame = await provider.recv(timeout=1)
            except TimeoutError:
                break
            errors.append(frame["data"]["errorType"])
        assert errors and set(errors) == {"RATE_LIMITED"}


async def test_made_up_error_types_are_not_metric_labels() -> None:
    async with HubServer(HubConfig(port=0, open_mode=True, rate_limit=1000, rate_burst=1000)) as hub:
        provider, _ = await join(hub.url, "provider", "agent1")
        app = await join_app(hub.url)
        for n in range(30):
            await app.send({"channel": "Amazon", "topic": "Agent", "subtopic": "Logout", "source": "t", "id": f"r{n}"})
            request = await provider.recv()
            await provider.send({"channel": "Amazon", "topic": "Error", "subtopic": "ApiError", "replyTo": request["id"],
                                 "data": {"errorType": f"MADE_UP_{n}_" + "X" * 200, "errorMessage": "x", "msg": "x"}})
            error = await app.recv()
            assert error["data"]["errorType"].startswith("MADE_UP_")  # the requester still gets it as sent
        body = await asyncio.to_thread(lambda: urllib.request.urlopen(hub.http_url + "/metrics").read())
        text = body.decode()
        assert "MADE_UP" not in text
        assert 'bridge_errors_total{type="OTHER"} 30.0' in text
        assert orjson.loads(await asyncio.to_thread(
            lambda: urllib.request.urlopen(hub.http_url + "/healthz").read()))["status"] == "ok"


async def test_what_an_error_echoes_of_a_huge_frame_is_bounded(open_hub: HubServer) -> None:
    app = await join_app(open_hub.url)
    huge = "X" * 60_000
    for frame in ({"channel": huge, "topic": "Agent", "subtopic": "SetReady", "source": "t", "id": "r1"},
                  {"channel": "Amazon", "topic": huge, "subtopic": "SetReady", "source": "t", "id": "r2"}):
        await app.send(frame)
        raw = await app.ws.recv()
        error = orjson.loads(raw)
        assert error["data"]["errorType"] == "UNKNOWN_MESSAGE" and error["replyTo"] == frame["id"]
        assert len(raw) < 2_000 and "request" not in error["data"]
    await app.send({"channel": "Amazon", "topic": "Agent", "subtopic": "SetReady", "source": "t", "id": "r3"})
    assert (await app.recv())["data"]["errorType"] == "PROVIDER_UNAVAILABLE"  # the connection still works


async def test_repeated_host_or_origin_headers_get_400(open_hub: HubServer) -> None:
    for header in ("Host", "Origin"):
        reader, writer = await asyncio.open_connection("127.0.0.1", open_hub.port)
        writer.write((f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\n{header}: http://a.example\r\n{header}: http://b.example\r\n"
                      "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                      "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        await writer.drain()
        status = await within(reader.readline())
        assert status.startswith(b"HTTP/1.1 400"), status
        writer.close()
    # The hub is unharmed.
    await join_app(open_hub.url)


async def test_connections_that_never_say_hello_are_capped_per_address() -> None:
    config = HubConfig(port=0, open_mode=True, hello_timeout=5, max_pending_hellos=100, max_pending_hellos_per_address=3)
    async with HubServer(config) as hub:
        silent = [await connect(hub.url) for _ in range(3)]
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(hub.url)
        assert refused.value.response.status_code == 503
        # Saying Hello frees the place: a client that does gets in again.
        await silent[0].send(hello("app", agent="agent1"))
        assert (await silent[0].recv())["subtopic"] == "Welcome"
        await within(_until_admitted(hub.url))


async def _until_admitted(url: str) -> None:
    while True:
        try:
            app = await join_app(url)
        except websockets.InvalidStatus:
            await asyncio.sleep(0.02)
            continue
        await app.close()
        return


async def ping_flood(port: int, *, hello_frame: str | None) -> int:
    """Ping a hub without ever reading; return how many pings it took until the hub cut the socket."""
    import base64
    import os
    import socket
    import struct

    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # what we never read piles up at the hub
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write((f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    await writer.drain()
    assert (await within(reader.readuntil(b"\r\n\r\n"))).startswith(b"HTTP/1.1 101")

    def frame(opcode: int, payload: bytes) -> bytes:
        return bytes([0x80 | opcode, 0x80 | len(payload)]) + b"\0\0\0\0" + payload  # masked with a zero key

    if hello_frame is not None:
        data = hello_frame.encode()
        writer.write(bytes([0x81, 0x80 | 126]) + struct.pack("!H", len(data)) + b"\0\0\0\0" + data)
    ping = frame(0x9, b"p" * 125)
    for sent in range(0, 400_000, 100):  # at most ~50 MB of pings: a safety net, not a threshold
        try:
            writer.write(ping * 100)
            await asyncio.wait_for(writer.drain(), 5)
        except (ConnectionError, TimeoutError):
            writer.close()
            return sent
    writer.close()
    raise AssertionError("the hub never cut a client that pings and never reads")


async def test_a_ping_flood_that_never_reads_is_cut_before_and_after_hello() -> None:
    config = HubConfig(port=0, open_mode=True, max_send_buffer=256 * 1024)
    async with HubServer(config) as hub:
        await within(ping_flood(hub.port, hello_frame=None), 60)
        await within(ping_flood(hub.port, hello_frame=hello("app", agent="agent1")), 60)
        body = await asyncio.to_thread(lambda: urllib.request.urlopen(hub.http_url + "/metrics").read())
        assert 'bridge_disconnects_total{reason="too_slow"} 2.0' in body.decode()
        await join_app(hub.url)  # others are still served
