"""No client, however broken or hostile, hurts another."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import urllib.request
from typing import Any

import orjson
import pytest
import websockets
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.hub.config import HubConfig
from bridge.hub.core.outputs import Answer, Close, Forward, Publish, Send
from bridge.hub.core.router import Peer, Router
from bridge.hub.server import HubServer
from bridge.protocol import Role
from bridge.protocol.catalog import Catalog

from .helpers import Client, free_port, hello, join, join_app, sample, seed_event


async def test_a_stalled_app_is_dropped_and_the_others_get_everything() -> None:
    config = HubConfig(port=0, open_mode=True, rate_limit=100_000, rate_burst=100_000, max_send_buffer=256 * 1024)
    async with HubServer(config) as hub:
        provider, _ = await join(hub.url, "provider")
        readers = [await join_app(hub.url) for _ in range(49)]
        # The stalled app: a tiny receive buffer and no reading at all.
        sock = socket.create_connection(("127.0.0.1", hub.port))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled = Client(await websockets.connect(hub.url, sock=sock, max_queue=1))
        await stalled.send(hello("app", agent="agent1"))
        event = seed_event()
        event["message"]["data"]["name"] = "x" * 40_000
        frame = orjson.dumps(event).decode()
        count = 400

        async def read_all(client: Client) -> int:
            for _ in range(count):
                await client.recv(timeout=20)
            return count

        reading = [asyncio.create_task(read_all(r)) for r in readers]
        for _ in range(count):
            await provider.send(frame)
            await asyncio.sleep(0)
        assert await asyncio.gather(*reading) == [count] * 49
        for _ in range(100):
            if hub.metrics.disconnects.labels("too_slow")._value.get() >= 1:
                break
            await asyncio.sleep(0.05)
        assert hub.metrics.disconnects.labels("too_slow")._value.get() == 1
        # The hub queued a 4008 close behind the backlog and cut the socket after the grace period.
        for _ in range(100):
            if hub.node.stats()["connections"]["app"] == 49:
                break
            await asyncio.sleep(0.05)
        assert hub.node.stats()["connections"]["app"] == 49
        # The 49 are still served as before.
        await provider.send(seed_event())
        for reader in readers:
            assert (await reader.recv())["message"]["data"]["name"] == "Agent 1"


async def test_connections_per_agent_are_capped() -> None:
    async with HubServer(HubConfig(port=0, open_mode=True, max_connections_per_agent=3)) as hub:
        for _ in range(3):
            await join_app(hub.url)
        extra = await websockets.connect(hub.url)
        await extra.send(hello("app", agent="agent1"))
        err = orjson.loads(await extra.recv())
        assert err["data"]["errorType"] == "FORBIDDEN" and "3 app connections" in err["data"]["errorMessage"]
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await extra.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
        await join(hub.url, "app", "agent2")  # other agents are unaffected


async def test_compression_is_off_by_default(open_hub: HubServer) -> None:
    client = await websockets.connect(open_hub.url, compression="deflate")
    assert client.response is not None
    assert "Sec-WebSocket-Extensions" not in client.response.headers
    await client.close()


# --- property-based: arbitrary input at the frame-handling path -------------------

CATALOG = Catalog.load()
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=20,
)
envelope_like = st.fixed_dictionaries(
    {"channel": st.sampled_from(["Amazon", "Bridge", "X", ""]),
     "topic": st.sampled_from(["Agent", "Session", "Error"]),
     "subtopic": st.sampled_from(["SetNotReady", "SetAgentState", "Hello", "ApiError", "Mute", "GetStates"])},
    optional={"source": json_values, "data": json_values, "message": json_values, "id": json_values,
              "replyTo": json_values, "extra": json_values},
)


def check_outputs(router: Router, outputs: list[Any]) -> None:
    for output in outputs:
        assert isinstance(output, (Send, Forward, Publish, Answer, Close)), output
        if isinstance(output, Send):
            error = orjson.loads(output.data)
            assert CATALOG.validate(error) is None, error
            assert error["subtopic"] == "ApiError"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=json_values | envelope_like, role=st.sampled_from([Role.APP, Role.PROVIDER]))
def test_arbitrary_json_never_escapes_as_an_exception(value: Any, role: Role) -> None:
    router = Router(CATALOG, secret=None, open_mode=True)
    peer = Peer("c-1", role, "fuzz", ("agent1",))
    outputs = router.receive(peer, orjson.dumps(value))
    check_outputs(router, outputs)
    forwards = [o for o in outputs if isinstance(o, Forward)]
    assert len(router.pending) == len(forwards)  # nothing pending that was not sent on
    assert isinstance(router.hello("c-2", orjson.dumps(value)), object)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=200))
def test_arbitrary_bytes_never_escape_as_an_exception(data: bytes) -> None:
    router = Router(CATALOG, secret=None, open_mode=True)
    check_outputs(router, router.receive(Peer("c-1", Role.APP, "fuzz", ("agent1",)), data))
    router.hello("c-2", data)


# --- graceful shutdown ----------------------------------------------------------------

async def start_hub_process(port: int) -> subprocess.Popen[bytes]:
    # Starting a process does not block the loop for long; waiting for it would.
    proc = subprocess.Popen(  # noqa: ASYNC220
        [sys.executable, "-m", "bridge", "serve", "--open", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    for _ in range(100):
        try:
            await asyncio.to_thread(urllib.request.urlopen, f"http://127.0.0.1:{port}/healthz", None, 1)
            return proc
        except OSError:
            await asyncio.sleep(0.1)
    proc.kill()
    raise AssertionError(proc.stderr.read().decode() if proc.stderr else "hub did not start")


async def test_sigterm_answers_in_flight_closes_with_1001_and_exits() -> None:
    port = free_port()
    url = f"ws://127.0.0.1:{port}/ws"
    proc = await start_hub_process(port)
    try:
        provider, _ = await join(url, "provider")
        app = await join_app(url)
        await provider.send(seed_event())
        assert (await app.recv())["subtopic"] == "SetAgentState"
        await app.send({**sample("Mute.request.json")})
        await provider.recv()
        await provider.send(sample("SetAgentState-muted.event.json"))  # in flight as we stop
        proc.send_signal(signal.SIGTERM)
        assert (await app.recv())["replyTo"] == "req-17"
        assert await app.closed() == 1001
        assert await provider.closed() == 1001
        assert await asyncio.to_thread(proc.wait, 10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    # Clients come back to the restarted hub; the provider republishes, apps get it retained.
    proc = await start_hub_process(port)
    try:
        provider, _ = await join(url, "provider")
        await provider.send(sample("SetAgentState-muted.event.json"))
        await asyncio.sleep(0.1)
        app = await join_app(url)
        replay = await app.recv()
        assert replay["retained"] is True and replay["message"]["data"]["muted"] is True
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(proc.wait, 10)
