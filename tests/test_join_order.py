"""No event lost at join: subscribed first, then the retained state read, then the replay.

A broker's subscribe step can take a while (a Redis round trip, or longer
under load). Events published meanwhile by another node reach this node only
once the subscription is confirmed. A joining app must therefore get the
agent's retained state *after* that confirmation, and every live event from
then on: whatever it receives first, it must then receive every later event,
in order, and end with the newest. Duplicates are allowed (an event published
while the snapshot is read may come both in the replay and live).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from bridge.brokers import MemoryBroker, Publication, PublicationType
from bridge.brokers.base import Broker
from bridge.hub.config import HubConfig
from bridge.hub.server import HubServer

from .helpers import Client, join, seed_event, within

STATE_SLOT = "Amazon/Agent/SetAgentState"
#: How long the broker takes to confirm a subscription: long enough for many events to pass.
SLOW = 0.3


def state(n: int) -> bytes:
    event = seed_event()
    event["message"]["event"] = f"state-{n}"
    return orjson.dumps(event)


def number(frame: dict[str, Any]) -> int:
    return int(frame["message"]["event"].removeprefix("state-"))


class SlowFollowMemoryBroker(MemoryBroker):
    """A memory broker whose subscriptions take ``SLOW`` seconds to be confirmed.

    Until then, publications for the agent do not reach this node, as with
    Redis before its SUBSCRIBE is confirmed.
    """

    async def follow(self, agent: str) -> None:
        await asyncio.sleep(SLOW)
        await super().follow(agent)


async def publish_from_elsewhere(broker: Broker, agent: str, stop: asyncio.Event) -> int:
    """Another node's provider: a new state every few milliseconds, retained then published."""
    n = 0
    while not stop.is_set():
        n += 1
        data = state(n)
        await broker.set_retained(agent, STATE_SLOT, data)
        await broker.publish(agent, Publication(PublicationType.EVENT, data))
        await asyncio.sleep(0.005)
    return n


async def states_until(client: Client, last: int) -> list[int]:
    """Every SetAgentState number the app receives (replay and live) until ``last`` arrives."""
    seen: list[int] = []
    while not seen or seen[-1] != last:
        frame = await client.recv()
        if frame["subtopic"] == "SetAgentState":
            seen.append(number(frame))
    return seen


def assert_no_gap(seen: list[int], last: int) -> None:
    """From the first state received, every later one arrives, in order (repeats allowed)."""
    assert seen, "no state at all"
    distinct = sorted(set(seen))
    assert distinct == list(range(seen[0], last + 1)), f"gap after joining: {seen}"
    assert seen == sorted(seen), f"out of order: {seen}"
    assert seen[-1] == last


@pytest.fixture
async def slow_hub() -> AsyncIterator[HubServer]:
    config = HubConfig(port=0, open_mode=True, request_timeout=1.0, hello_timeout=2.0)
    async with HubServer(config, broker=SlowFollowMemoryBroker()) as hub:
        yield hub


async def test_apps_joining_during_a_slow_subscribe_miss_nothing(slow_hub: HubServer) -> None:
    stop = asyncio.Event()
    publisher = asyncio.create_task(publish_from_elsewhere(slow_hub.broker, "agent1", stop))
    await asyncio.sleep(0.05)
    # The first app makes the node follow the agent; the second joins while
    # that subscription is still unconfirmed and must wait for it too.
    first = asyncio.create_task(join(slow_hub.url, "app", "agent1"))
    await asyncio.sleep(SLOW / 3)
    second = asyncio.create_task(join(slow_hub.url, "app", "agent1"))
    clients = [client for client, _ in await within(asyncio.gather(first, second))]
    await asyncio.sleep(0.1)
    stop.set()
    last = await publisher
    for client in clients:
        assert_no_gap(await within(states_until(client, last)), last)
        await client.close()


# --- the same against the real Redis, across two nodes ------------------------------------------


@pytest.mark.redis
async def test_an_app_joining_another_node_during_a_slow_subscribe_misses_nothing(tmp_path: Path) -> None:
    from bridge.brokers.redis import RedisBroker
    from bridge.brokers.redis.settings import RedisSettings

    from .redis_helpers import drop_prefix, require_redis, unique_prefix

    url = require_redis()
    prefix = unique_prefix()

    class SlowFollowRedisBroker(RedisBroker):
        async def follow(self, agent: str) -> None:
            await asyncio.sleep(SLOW)
            await super().follow(agent)

    config = HubConfig(port=0, open_mode=True, rate_limit=10_000, rate_burst=10_000)
    settings = RedisSettings(prefix=prefix)
    try:
        async with (
            HubServer(config, broker=RedisBroker(url, settings=settings)) as origin,
            HubServer(config, broker=SlowFollowRedisBroker(url, settings=settings)) as joined,
        ):
            provider, _ = await join(origin.url, "provider", "agent1")
            stop = asyncio.Event()

            async def provide() -> int:
                n = 0
                while not stop.is_set():
                    n += 1
                    await provider.send(state(n).decode())
                    await asyncio.sleep(0.005)
                return n

            publisher = asyncio.create_task(provide())
            await asyncio.sleep(0.05)
            app, _ = await within(join(joined.url, "app", "agent1"))
            await asyncio.sleep(0.1)
            stop.set()
            last = await publisher
            assert_no_gap(await within(states_until(app, last)), last)
            await app.close()
            with contextlib.suppress(Exception):
                await provider.close()
    finally:
        drop_prefix(prefix)
