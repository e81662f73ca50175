"""A provider's burst is delivered in batches (one step per app per loop turn): nothing lost, reordered or doubled.

The node hands the events of one loop turn to each app together
(``Node._batch``), and the server writes each app's frames of the turn in one
write (``wire.Outbox``). These tests send bursts that arrive in one read, with
joins, requests and leaves between them, and check what each app saw.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from collections.abc import AsyncIterator

import pytest

from bridge.brokers import MemoryBroker
from bridge.hub.config import HubConfig
from bridge.hub.core.router import Joined, Limits, Router
from bridge.hub.node import Node
from bridge.hub.server import HubServer
from bridge.protocol.catalog import Catalog

from .helpers import Client, connect, hello, join, join_app, seed_event, within


def state(n: int) -> str:
    event = seed_event()
    event["message"]["event"] = f"state-{n}"
    return orjson.dumps(event).decode()


def number(frame: dict[str, Any]) -> int:
    return int(frame["message"]["event"].removeprefix("state-"))


async def states(client: Client, last: int) -> list[dict[str, Any]]:
    """Every SetAgentState up to and including state ``last``."""
    seen: list[dict[str, Any]] = []
    while not seen or number(seen[-1]) != last:
        frame = await client.recv()
        if frame.get("subtopic") == "SetAgentState":
            seen.append(frame)
    return seen


@pytest.fixture
async def hub() -> AsyncIterator[HubServer]:
    """An open hub without the per-connection rate limit (the bursts are the point)."""
    async with HubServer(HubConfig(host="127.0.0.1", port=0, open_mode=True, rate_limit=1e9,
                                   rate_burst=1_000_000_000)) as server:
        yield server


async def test_bursts_reach_every_app_whole_in_order_and_once_across_joins_and_requests(hub: HubServer) -> None:
    provider, _ = await join(hub.url, "provider")
    first = await join_app(hub.url)

    for n in range(100):  # one burst: the hub reads it in one turn
        await provider.send(state(n))
    # A second app joins while the next burst arrives: its Hello is on the wire before them.
    late = await connect(hub.url)
    await late.send(hello("app", agent="agent1"))
    for n in range(100, 200):
        await provider.send(state(n))
    # A request between two bursts: forwarded to the provider between the events it sent.
    await first.send({"channel": "Amazon", "topic": "Agent", "subtopic": "GetStates", "source": "test",
                      "data": {}, "id": "r1"})
    leaving = await join_app(hub.url)
    for n in range(200, 300):
        await provider.send(state(n))
    await leaving.close()
    for n in range(300, 400):
        await provider.send(state(n))

    seen = await within(states(first, 399), 10)
    assert [number(frame) for frame in seen] == list(range(400))
    offsets = [frame["offset"] for frame in seen]
    assert offsets == list(range(offsets[0], offsets[0] + 400))  # no gap, no duplicate

    # The late app: Welcome, its replay (the retained state, or nothing yet), then every later event once.
    welcome = await late.recv()
    assert welcome["subtopic"] == "Welcome"
    late_seen = await within(states(late, 399), 10)
    numbers = [number(frame) for frame in late_seen]
    assert numbers == list(range(numbers[0], 400))
    late_offsets = [frame["offset"] for frame in late_seen]
    assert late_offsets == list(range(late_offsets[0], late_offsets[0] + len(late_offsets)))

    # The provider got the request, after the events it had sent before it was asked.
    request = await within(provider.recv_kind("GetStates"), 5)
    assert request["data"] == {}
    await asyncio.gather(provider.close(), first.close(), late.close())


class Recorded:
    """A Transport that records what the node hands it, batches unpacked, in order."""

    def __init__(self) -> None:
        self.frames: list[dict[str, Any]] = []

    def send(self, data: bytes) -> None:
        self.frames.append(orjson.loads(data))

    def send_batch(self, payloads: list[bytes]) -> None:
        self.frames.extend(orjson.loads(p) for p in payloads)

    def close(self, code: int, reason: str, cause: str | None = None) -> None:
        pass

    def allow(self, extra: int) -> None:
        pass


def kinds(transport: Recorded) -> list[str]:
    return [frame["subtopic"] + (f":{number(frame)}" if frame["subtopic"] == "SetAgentState" else "")
            for frame in transport.frames]


async def test_what_a_connection_is_sent_after_batched_events_reaches_it_after_them() -> None:
    """Within one loop turn: events batched, a join, an event, an error to an app. The error comes
    after the events, and the joiner gets the events of before its join in its replay only."""
    router = Router(Catalog.load(), secret=None, open_mode=True, limits=Limits(rate=1e9, burst=10**9))
    node = Node(router, MemoryBroker())
    await node.start()
    try:
        transports = {role: Recorded() for role in ("provider", "app", "joiner")}
        ids = {role: node.connect(transport) for role, transport in transports.items()}
        peers = {}
        for role in ("provider", "app"):
            joined = await node.hello(ids[role], hello(role, agent="agent1"))
            assert isinstance(joined, Joined)
            peers[role] = joined.peer
        await asyncio.sleep(0.05)  # joins settle; then one turn with nothing awaited that suspends:
        transports["app"].frames.clear()
        await node.receive(peers["provider"], state(1))
        await node.receive(peers["provider"], state(2))
        assert list(node._batched) == ["agent1"]  # the case under test: the events wait for the turn's end
        await node.hello(ids["joiner"], hello("app", agent="agent1"))
        await node.receive(peers["provider"], state(3))
        await node.receive(peers["app"], b'{"channel": "Amazon"}')  # refused: an error to the app
        await asyncio.sleep(0.05)
        assert kinds(transports["app"]) == ["SetAgentState:1", "SetAgentState:2", "SetAgentState:3", "ApiError"]
        # The joiner's replay holds the latest state; no event of before its join comes again after it.
        assert kinds(transports["joiner"]) == ["Welcome", "ProviderStatus", "SetAgentState:2", "SetAgentState:3"]
    finally:
        await node.close()
