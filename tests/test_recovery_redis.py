"""Positions, history and recovery over the real Redis (issue 14): the faults that only Redis has.

The broker on its own first (positions assigned by Redis for every node, the
history read on another node, its bounds, a flushed Redis, an outage), then
the same over real sockets with raw ``websockets`` clients: an app whose node
is SIGKILLed recovers on another node; a flushed Redis gives a new epoch and
``recovered: false`` with the retained state; during a Redis outage local
delivery goes on, and recovery afterwards says honestly what it can.

Every test has its own key prefix on the shared server and deletes only that.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import pytest
import redis.asyncio as aioredis
from websockets.asyncio.client import connect

from bridge.brokers import Position, Publication, PublicationType, RetainChange
from bridge.brokers.redis import RedisBroker
from bridge.brokers.redis.settings import RedisSettings
from bridge.hub.config import HubConfig
from bridge.hub.server import HubServer

from .brokers.recorder import Recorder
from .helpers import eventually
from .redis_helpers import Client, TcpProxy, drop_prefix, sample, start_hubs

pytestmark = pytest.mark.redis

STATE = "Amazon/Agent/SetAgentState"


def broker(url: str, prefix: str, **settings: Any) -> RedisBroker:
    fast = {"heartbeat": 0.3, "provider_ttl": 2.0, "reconnect_max": 0.3, "timeout": 1.0}
    return RedisBroker(url, settings=RedisSettings(prefix=prefix, **{**fast, **settings}))


@contextlib.asynccontextmanager
async def started(*brokers: RedisBroker) -> AsyncIterator[list[Recorder]]:
    recorders = [Recorder() for _ in brokers]
    for node, recorder in zip(brokers, recorders, strict=True):
        await node.start(recorder)
    try:
        yield recorders
    finally:
        for node in brokers:
            await node.close()


def event(n: int) -> Publication:
    return Publication(PublicationType.EVENT, b'{"n": %d}' % n)


def positions(recorder: Recorder, agent: str) -> list[Position | None]:
    return [p.position for p in recorder.of(agent)]


# --- the broker on its own ---------------------------------------------------------------------


async def test_every_node_sees_the_positions_redis_gave_in_offset_order(redis_url: str, prefix: str) -> None:
    a, b = broker(redis_url, prefix), broker(redis_url, prefix)
    async with started(a, b) as (seen_a, seen_b):
        for node in (a, b):
            await node.follow("p1")
        for n in range(20):
            await a.publish("p1", event(n), RetainChange(STATE, True))
        await a.flush()  # (two nodes' calls are ordered by when they reach Redis)
        await b.claim_provider("p1", "c-1")  # another node's announcements take the next offsets
        await a.publish("p1", Publication(PublicationType.ERROR, b"{}", "req-1"))  # never positioned
        await a.flush()
        await b.release_provider("p1", "c-1")
        for seen in (seen_a, seen_b):
            await seen.until_count("p1", 23)
        got = positions(seen_a, "p1")
        assert got == positions(seen_b, "p1")
        epoch = got[0].epoch if got[0] is not None else ""
        assert got == [*(Position(epoch, n) for n in range(1, 22)), None, Position(epoch, 22)]
        assert [p.type for p in seen_a.of("p1")][20:] == [
            PublicationType.PROVIDER_UP, PublicationType.ERROR, PublicationType.PROVIDER_DOWN,
        ]
        assert await b.position("p1") == Position(epoch, 22)
        # The retained frame carries the position of the publication that set it.
        [frame] = await b.get_retained("p1")
        assert (frame.data, frame.position) == (b'{"n": 19}', Position(epoch, 20))


async def test_another_node_reads_the_history_after_a_position(redis_url: str, prefix: str) -> None:
    a, b = broker(redis_url, prefix), broker(redis_url, prefix)
    async with started(a, b):
        await a.claim_provider("h1", "c-1")
        for n in range(30):
            await a.publish("h1", event(n), RetainChange(STATE, True))
        await a.release_provider("h1", "c-1")
        top = await b.position("h1")  # b never followed h1: the history is in Redis
        assert top.offset == 32
        read = await b.history("h1", Position(top.epoch, 10))
        assert read.recovered and read.top == top
        assert [p.position for p in read.publications] == [Position(top.epoch, n) for n in range(11, 33)]
        assert [p.data for p in read.publications[:-1]] == [b'{"n": %d}' % n for n in range(9, 30)]
        assert (read.publications[-1].type, read.publications[-1].connection_id) == (
            PublicationType.PROVIDER_DOWN, "c-1",
        )
        # From the very start: the PROVIDER_UP is offset 1.
        first = (await b.history("h1", Position(top.epoch, 0))).publications[0]
        assert (first.type, first.connection_id, first.position) == (
            PublicationType.PROVIDER_UP, "c-1", Position(top.epoch, 1),
        )
        # Nothing missed: recovered, nothing to replay.
        assert await b.history("h1", top) == type(read)(True, top, [])
        # A position this stream never gave, or of another epoch: refused, never a silent gap.
        for asked in (Position(top.epoch, 33), Position("another-epoch", 10), Position(top.epoch, -1)):
            refused = await b.history("h1", asked)
            assert (refused.recovered, refused.top, refused.publications) == (False, top, [])


async def test_a_position_older_than_the_history_bounds_is_refused(redis_url: str, prefix: str) -> None:
    small = broker(redis_url, prefix, history_size=5)
    async with started(small):
        for n in range(20):
            await small.publish("b1", event(n))
        top = await small.position("b1")
        assert top.offset == 20
        kept = await small.history("b1", Position(top.epoch, 15))
        assert kept.recovered and len(kept.publications) == 5
        assert not (await small.history("b1", Position(top.epoch, 14))).recovered
    short = broker(redis_url, prefix, history_ttl=0.3)
    async with started(short):
        await short.publish("t1", event(1))
        await short.publish("t1", event(2))
        top = await short.position("t1")
        assert (await short.history("t1", Position(top.epoch, 0))).recovered
        await asyncio.sleep(0.5)  # past the TTL: the entries are too old to recover from
        assert not (await short.history("t1", Position(top.epoch, 0))).recovered
        assert (await short.history("t1", top)).recovered  # the top itself missed nothing
    none = broker(redis_url, prefix, history_size=0)
    async with started(none):
        await none.publish("z1", event(1))
        top = await none.position("z1")
        assert top.offset == 1  # still positioned
        assert not (await none.history("z1", Position(top.epoch, 0))).recovered


async def test_a_flushed_redis_gives_every_agent_a_new_epoch(redis_url: str, prefix: str) -> None:
    node = broker(redis_url, prefix)
    async with started(node) as (seen,):
        await node.follow("f1")
        for n in range(5):
            await node.publish("f1", event(n), RetainChange(STATE, True))
        before = await node.position("f1")
        drop_prefix(prefix)  # what FLUSHDB does to this test's keys (other tests share the server)
        after = await node.position("f1")
        assert after.epoch != before.epoch and after.offset == 0
        assert not (await node.history("f1", before)).recovered
        assert await node.get_retained("f1") == []
        await node.publish("f1", event(5), RetainChange(STATE, True))
        await seen.until_count("f1", 6)
        assert seen.of("f1")[-1].position == Position(after.epoch, 1)
        [frame] = await node.get_retained("f1")
        assert frame.position == Position(after.epoch, 1)


async def test_a_dead_nodes_provider_is_announced_gone_once_in_the_history(redis_url: str, prefix: str) -> None:
    """Every node that follows the agent notices; the history gets one PROVIDER_DOWN, not one per node."""
    a, b = broker(redis_url, prefix), broker(redis_url, prefix)
    async with started(a, b) as recorders:
        keys = a.keys
        client = aioredis.from_url(redis_url)
        try:
            await a.publish("gh", event(0))
            await a.flush()
            # What a claim on a node that was then SIGKILLed leaves: its entry, its announcement.
            await client.set(keys.provider("gh"), b"deadnode c-ghost", px=30_000)
            await client.hset(keys.position("gh"), "p", "c-ghost")
            for node in (a, b):
                await node.follow("gh")
                assert await node.provider("gh") is not None
            for seen in recorders:
                await seen.until(lambda: any(p.type is PublicationType.PROVIDER_DOWN for p in seen.of("gh")))  # noqa: B023
            await asyncio.sleep(1.0)  # a few more heartbeats of both nodes: nothing more is said
            for seen in recorders:
                assert [p.type for p in seen.of("gh")] == [PublicationType.PROVIDER_DOWN]
            top = await b.position("gh")
            read = await b.history("gh", Position(top.epoch, 0))
            assert [(p.type, p.connection_id) for p in read.publications] == [
                (PublicationType.EVENT, None), (PublicationType.PROVIDER_DOWN, "c-ghost"),
            ]
        finally:
            await client.aclose()


def through(proxy: TcpProxy, redis_url: str) -> str:
    return f"redis://127.0.0.1:{proxy.port}{urlsplit(redis_url).path}"


@contextlib.asynccontextmanager
async def proxied(redis_url: str) -> AsyncIterator[TcpProxy]:
    target = urlsplit(redis_url)
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 6379).start()
    try:
        yield proxy
    finally:
        proxy.close()


async def test_an_outage_gives_a_new_epoch_to_the_agents_published_without_redis(
    redis_url: str, prefix: str
) -> None:
    async with proxied(redis_url) as proxy:
        node = broker(through(proxy, redis_url), prefix)
        async with started(node) as (seen,):
            for agent in ("o1", "o2"):
                await node.follow(agent)
                await node.publish(agent, event(0), RetainChange(STATE, True))
            await seen.until_count("o2", 1)
            before = {agent: await node.position(agent) for agent in ("o1", "o2")}
            proxy.cut()
            await eventually(lambda: not node.healthy)
            # Served alone: delivered here, without a position; no history to read.
            await node.publish("o1", event(1), RetainChange(STATE, True))
            await seen.until_count("o1", 2)
            assert seen.of("o1")[-1].position is None
            assert not (await node.history("o1", before["o1"])).recovered
            assert await node.position("o1") == before["o1"]  # the last one this node heard
            proxy.restore()
            await eventually(lambda: node.healthy)
            # o1's stream has a hole Redis never saw: new epoch, offsets go on.
            rotated = await node.position("o1")
            assert rotated.epoch != before["o1"].epoch and rotated.offset == before["o1"].offset
            assert not (await node.history("o1", before["o1"])).recovered
            assert (await node.history("o1", rotated)).recovered
            # The retained frame of the old epoch keeps its data, not its dead position.
            assert [(f.data, f.position) for f in await node.get_retained("o1")] == [(b'{"n": 0}', None)]
            # o2 published nothing meanwhile: its positions still recover.
            assert await node.position("o2") == before["o2"]
            assert (await node.history("o2", before["o2"])).recovered
            await node.publish("o1", event(2))
            read = await node.history("o1", rotated)
            assert read.recovered and [p.data for p in read.publications] == [b'{"n": 2}']
            assert read.publications[0].position == Position(rotated.epoch, rotated.offset + 1)


# --- over real sockets ---------------------------------------------------------------------------


def named_state(name: str) -> dict[str, Any]:
    envelope = sample("seed-SetAgentState.event.json")
    envelope["message"]["data"]["name"] = name
    return envelope


def name_of(frame: dict[str, Any]) -> str:
    name: str = frame["message"]["data"]["name"]
    return name


async def rejoin(url: str, agent: str, last: Position | None) -> Client:
    """An app's Hello, asking to recover from ``last`` when given."""
    ws = await connect(url, open_timeout=5, close_timeout=1)
    data: dict[str, Any] = {"role": "app", "agent": agent}
    if last is not None:
        data["recover"] = {"epoch": last.epoch, "offset": last.offset}
    hello = {"channel": "Bridge", "topic": "Session", "subtopic": "Hello", "source": "recovery-test", "data": data}
    await ws.send(orjson.dumps(hello).decode())
    welcome = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
    assert welcome["subtopic"] == "Welcome", welcome
    return Client(ws, welcome)


def position_of(frame: dict[str, Any]) -> Position:
    return Position(frame["epoch"], frame["offset"])


async def states(app: Client, count: int) -> list[dict[str, Any]]:
    """The next ``count`` SetAgentState frames (other kinds skipped)."""
    out: list[dict[str, Any]] = []
    while len(out) < count:
        frame = await app.recv(10)
        if frame.get("subtopic") == "SetAgentState":
            out.append(frame)
    return out


async def test_an_app_whose_node_was_killed_recovers_every_event_on_another_node(
    redis_url: str, prefix: str, tmp_path: Path
) -> None:
    node_a, node_b = start_hubs(2, redis_url, prefix, tmp_path)
    try:
        provider = await Client.join(node_b.ws_url, "provider", "k1")
        app = await Client.join(node_a.ws_url, "app", "k1")
        for n in range(10):
            await provider.send(named_state(f"s{n}"))
        seen = await states(app, 10)
        assert [name_of(f) for f in seen] == [f"s{n}" for n in range(10)]
        last = position_of(seen[-1])
        node_a.kill()  # SIGKILL: no goodbye; the app's socket just breaks
        for n in range(10, 60):
            await provider.send(named_state(f"s{n}"))
        app = await rejoin(node_b.ws_url, "k1", last)
        assert app.welcome["message"]["recovered"] is True
        replayed = await states(app, 50)
        assert [name_of(f) for f in replayed] == [f"s{n}" for n in range(10, 60)]
        assert all(f["recovered"] is True and "retained" not in f for f in replayed)
        assert [position_of(f) for f in replayed] == [Position(last.epoch, last.offset + n) for n in range(1, 51)]
        # Then live, with no gap and nothing twice.
        await provider.send(named_state("live"))
        [live] = await states(app, 1)
        assert name_of(live) == "live" and "recovered" not in live
        assert position_of(live) == Position(last.epoch, last.offset + 51)
        for client in (app, provider):
            await client.close()
    finally:
        for node in (node_a, node_b):
            node.stop()


CONFIG = HubConfig(host="127.0.0.1", port=0, open_mode=True, request_timeout=3.0)


def hub_broker(url: str, prefix: str) -> RedisBroker:
    return broker(url, prefix, heartbeat=0.5, provider_ttl=2.5, reconnect_max=0.3)


async def replay_after_welcome(app: Client) -> list[dict[str, Any]]:
    """The retained replay: ProviderStatus, then the retained frames (until a quiet moment)."""
    out = [await app.recv()]
    with contextlib.suppress(TimeoutError):
        while True:
            out.append(await app.recv(0.5))
    return out


async def test_a_flushed_redis_refuses_recovery_and_sends_the_retained_state(redis_url: str, prefix: str) -> None:
    async with HubServer(CONFIG, broker=hub_broker(redis_url, prefix)) as hub:
        provider = await Client.join(hub.url, "provider", "fl1")
        app = await Client.join(hub.url, "app", "fl1")
        await provider.send(named_state("before"))
        [before] = await states(app, 1)
        last = position_of(before)
        await app.close()
        drop_prefix(prefix)  # Redis lost everything of this deployment
        await provider.send(named_state("after"))
        app = await rejoin(hub.url, "fl1", last)
        assert app.welcome["message"]["recovered"] is False
        replay = await replay_after_welcome(app)
        retained = [f for f in replay if f.get("subtopic") == "SetAgentState"]
        assert [name_of(f) for f in retained] == ["after"] and retained[0]["retained"] is True
        assert retained[0]["epoch"] != last.epoch  # a new stream: never a silent gap
        assert all("recovered" not in f for f in replay)
        for client in (app, provider):
            await client.close()


async def test_during_a_redis_outage_local_delivery_goes_on_and_recovery_is_honest(
    redis_url: str, prefix: str
) -> None:
    async with proxied(redis_url) as proxy, HubServer(CONFIG, broker=hub_broker(through(proxy, redis_url), prefix)) as hub:
        provider = await Client.join(hub.url, "provider", "u1")
        app = await Client.join(hub.url, "app", "u1")
        await provider.send(named_state("before"))
        [before] = await states(app, 1)
        last_before = position_of(before)
        proxy.cut()
        await eventually(lambda: not hub.node.broker_healthy)
        # Local delivery goes on, without a position (it is in no history).
        await provider.send(named_state("during"))
        [during] = await states(app, 1)
        assert name_of(during) == "during" and "offset" not in during and "epoch" not in during
        # An app joining now cannot recover (no history while Redis is away); it takes
        # the position the node gives it, from inside the outage.
        inside = await rejoin(hub.url, "u1", last_before)
        assert inside.welcome["message"]["recovered"] is False
        status = await inside.recv()
        assert status["subtopic"] == "ProviderStatus"
        last_inside = position_of(status)
        await inside.close()
        proxy.restore()
        await eventually(lambda: hub.node.broker_healthy)
        await app.close()
        # Positions from before and inside the outage do not recover: the node
        # delivered "during" alone, and Redis gave the agent a new epoch.
        for last in (last_before, last_inside):
            again = await rejoin(hub.url, "u1", last)
            assert again.welcome["message"]["recovered"] is False
            replay = await replay_after_welcome(again)
            assert [name_of(f) for f in replay if f.get("subtopic") == "SetAgentState"] == ["during"]
            await again.close()
        # A position taken after the resync recovers.
        fresh = await rejoin(hub.url, "u1", None)
        replay = await replay_after_welcome(fresh)
        status = next(f for f in replay if f.get("subtopic") == "ProviderStatus")
        last_after = position_of(status)
        assert last_after.epoch != last_before.epoch
        await fresh.close()
        for name in ("after-1", "after-2"):
            await provider.send(named_state(name))
        app = await rejoin(hub.url, "u1", last_after)
        assert app.welcome["message"]["recovered"] is True
        replayed = await states(app, 2)
        assert [name_of(f) for f in replayed] == ["after-1", "after-2"]
        assert all(f["recovered"] is True for f in replayed)
        for client in (app, provider):
            await client.close()
