"""Scale-out over the real Redis server: several hub nodes, one bus (issue 5).

Every test uses its own key prefix on the shared server and deletes only
that prefix afterwards. In CI (CI=true) a missing Redis fails these tests;
elsewhere they are skipped with the reason.

Most tests run real ``connect-bridge serve --redis`` processes; a few check
the broker in-process where no second process is needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import pytest
import redis
import redis.asyncio as aioredis
from redis.asyncio.connection import SSLConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from websockets.exceptions import ConnectionClosed

from bridge.brokers import Position, Publication, PublicationType
from bridge.brokers.redis import RedisBroker
from bridge.brokers.redis.client import subscription_client
from bridge.brokers.redis.codec import decode_publication, decode_request, encode_publication, encode_request
from bridge.brokers.redis.keys import RedisKeys
from bridge.brokers.redis.retained import decode_frames
from bridge.brokers.redis.settings import DEFAULT_HEARTBEAT, RedisSettings
from bridge.brokers.redis.subscriptions import Subscriptions
from bridge.hub.config import HubConfig
from bridge.hub.server import HubServer

from .brokers.recorder import Recorder
from .helpers import eventually, within
from .redis_helpers import (
    Client,
    HubProcess,
    TcpProxy,
    answer_for,
    drop_prefix,
    is_error,
    is_kind,
    sample,
    serve_provider,
    start_hubs,
    unique_prefix,
)

pytestmark = pytest.mark.redis


@pytest.fixture(scope="module")
def cluster(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[HubProcess, HubProcess, str]]:
    """Two nodes sharing one prefix, for the tests that need no failure."""
    name = unique_prefix()
    hubs = start_hubs(2, redis_url, name, tmp_path_factory.mktemp("cluster"), request_timeout=1.0)
    yield hubs[0], hubs[1], name
    for hub in hubs:
        hub.stop()
    drop_prefix(name)


def agent_name(request: pytest.FixtureRequest) -> str:
    """A fresh agent per test, so tests sharing the cluster never see each other."""
    return f"agent-{request.node.name[5:40]}"


def registry(redis_url: str, key: str) -> bytes | None:
    client = redis.Redis.from_url(redis_url)
    try:
        value: bytes | None = client.get(key)  # type: ignore[assignment]
        return value
    finally:
        client.close()


def stored_frames(redis_url: str, prefix: str, agent: str) -> list[bytes]:
    """The agent's retained frames as Redis holds them, in slot order."""
    client = redis.Redis.from_url(redis_url)
    try:
        fields: dict[bytes, bytes] = client.hgetall(RedisKeys(prefix).retained(agent))  # type: ignore[assignment]
        return [frame.data for frame in decode_frames(fields)]
    finally:
        client.close()


async def retained_data(broker: RedisBroker, agent: str) -> list[bytes]:
    """The agent's retained frames as the broker answers them (their bytes only)."""
    return [frame.data for frame in await broker.get_retained(agent)]


def unpositioned(frame: dict[str, Any]) -> dict[str, Any]:
    """The frame without the position the hub adds (checked to be there: an offset and an epoch)."""
    assert isinstance(frame.get("offset"), int) and isinstance(frame.get("epoch"), str), frame
    return {key: value for key, value in frame.items() if key not in ("offset", "epoch")}


def announced(recorder: Recorder, agent: str, kind: PublicationType, connection_id: str) -> bool:
    """Whether the broker delivered that provider change for ``agent`` (whatever its position)."""
    return any(
        name == agent and p.type is kind and p.connection_id == connection_id for name, p in recorder.publications
    )


def make_broker(url: str, prefix: str, **settings: Any) -> RedisBroker:
    return RedisBroker(url, settings=RedisSettings(prefix=prefix, **settings))


STATE = "Amazon/Agent/SetAgentState"


def set_not_ready(request_id: str | None = None) -> dict[str, Any]:
    envelope = sample("seed-SetNotReady.request.json")
    if request_id is not None:
        envelope["id"] = request_id
    return envelope


def answers(request_id: str) -> Any:
    """Matches the frame (event or error) that answers ``request_id``."""
    return lambda frame: frame.get("replyTo") == request_id


# --- the broker on its own -------------------------------------------------------------


def test_publication_and_request_frames_pass_untouched() -> None:
    frame = b'{"channel": "Amazon",\n "topic": "Agent", "subtopic": "SetAgentState", "message": {"a": "\xc3\xa9"}}'
    for publication in (
        Publication(PublicationType.EVENT, frame, "req-1"),
        Publication(PublicationType.ERROR, frame, "req-2"),
        Publication(PublicationType.PROVIDER_UP, connection_id="c-1"),
        Publication(PublicationType.PROVIDER_DOWN, connection_id="c-1"),
        Publication(PublicationType.EVENT, frame, position=Position("k3v9-_x", 12)),
        Publication(PublicationType.PROVIDER_UP, connection_id="c-2", position=Position("k3v9-_x", 13)),
    ):
        encoded = encode_publication(publication, "node-1", 7)
        assert encoded.endswith(publication.data)
        assert decode_publication(encoded) == (publication, "node-1", 7)
    assert decode_request(encode_request("agent:ü 1", "id-1", frame)) == ("agent:ü 1", "id-1", frame)


def test_urls_with_password_and_tls_are_honoured() -> None:
    """Parsing only: the shared test server has no password and no TLS."""
    parsed = make_broker("rediss://bridge:s3cr%40t@redis.example.net:6380/3", "deployment-b")
    kwargs = parsed.redis.connection_pool.connection_kwargs
    assert kwargs["password"] == "s3cr@t"
    assert kwargs["username"] == "bridge"
    assert kwargs["host"] == "redis.example.net" and kwargs["port"] == 6380 and kwargs["db"] == 3
    assert parsed.redis.connection_pool.connection_class is SSLConnection
    assert parsed.keys.provider("agent1") == "deployment-b:provider:agent1"
    assert parsed.keys.agent_channel("agent1") == b"deployment-b:agent:agent1"
    assert parsed.keys.retained("agent1") == "deployment-b:retained:agent1"


def test_the_broker_reads_no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings come from RedisSettings only (the hub's configuration reads the environment)."""
    monkeypatch.setenv("BRIDGE_REDIS_HEARTBEAT", "0.25")
    monkeypatch.setenv("BRIDGE_REDIS_PREFIX", "from-the-environment")
    built = RedisBroker("redis://127.0.0.1:1/0")
    assert built.settings == RedisSettings() and built.settings.heartbeat == DEFAULT_HEARTBEAT
    assert built.keys.prefix == "connect-bridge"


async def test_a_wrong_password_leaves_the_node_degraded_not_crashed(redis_url: str, prefix: str) -> None:
    """Credentials from the URL are sent (the live server knows no such user), and a refusal
    is survivable. (redis-py ignores a bare password on a server that has none, so a
    user name is what makes this server say no.)"""
    parts = urlsplit(redis_url)
    refused = make_broker(f"redis://nosuchuser:wrong@{parts.netloc}{parts.path}", prefix, timeout=1)
    recorder = Recorder()
    await refused.start(recorder)
    try:
        assert not refused.healthy and recorder.health == [False]
        # Degraded, it still serves this node alone.
        await refused.follow("a1")
        await refused.claim_provider("a1", "c-1")
        assert await refused.send_request("a1", "r-1", b"{}") == "c-1"
        assert recorder.requests == [("a1", "r-1", b"{}")]
        await refused.set_retained("a1", STATE, b"state")
        assert await retained_data(refused, "a1") == [b"state"]
    finally:
        await refused.close()


async def test_registry_compare_and_delete_and_heartbeat(redis_url: str, prefix: str) -> None:
    a = make_broker(redis_url, prefix, heartbeat=0.2, provider_ttl=0.6)
    b = make_broker(redis_url, prefix, heartbeat=0.2, provider_ttl=0.6)
    handlers = Recorder(), Recorder()
    await a.start(handlers[0])
    await b.start(handlers[1])
    try:
        assert a.healthy and b.healthy and a.node_id != b.node_id
        await a.follow("a1")
        await b.follow("a1")
        await a.claim_provider("a1", "c-a")
        # The heartbeat keeps the entry alive well past its TTL.
        await asyncio.sleep(1.0)
        location = await b.provider("a1")
        assert location is not None and (location.node_id, location.connection_id) == (a.node_id, "c-a")
        # A takeover on b; a's late release must not delete b's entry.
        await b.claim_provider("a1", "c-b")
        assert await a.release_provider("a1", "c-a") is False
        assert registry(redis_url, b.keys.provider("a1")) == f"{b.node_id} c-b".encode()
        # Both nodes saw both arrivals, in order.
        for handler in handlers:
            await eventually(lambda h=handler: len(h.publications) >= 2)
            ups = [p.connection_id for _, p in handler.publications if p.type is PublicationType.PROVIDER_UP]
            assert ups[:2] == ["c-a", "c-b"]
        assert await b.release_provider("a1", "c-b") is True
        assert registry(redis_url, b.keys.provider("a1")) is None
    finally:
        await a.close()
        await b.close()


async def test_entries_of_a_node_that_no_longer_listens_are_dropped(redis_url: str, prefix: str) -> None:
    """What a SIGKILLed node leaves behind: an entry naming a node nobody hears."""
    node = make_broker(redis_url, prefix, heartbeat=0.2, provider_ttl=30)
    recorder = Recorder()
    await node.start(recorder)
    client = aioredis.from_url(redis_url)
    try:
        # A request finds the ghost: it fails at once, and the entry is dropped and announced.
        await client.set(node.keys.provider("g1"), b"deadnode c-ghost1", px=30_000)
        await node.follow("g1")
        assert await node.send_request("g1", "r-1", b"{}") is None
        assert await client.get(node.keys.provider("g1")) is None
        await eventually(lambda: announced(recorder, "g1", PublicationType.PROVIDER_DOWN, "c-ghost1"))
        # Nobody asks: the heartbeat's sweep finds it for the agents this node follows.
        await client.set(node.keys.provider("g2"), b"deadnode c-ghost2", px=30_000)
        await client.set(node.keys.provider("g3"), b"deadnode c-ghost3", px=30_000)
        await node.follow("g2")
        await eventually(lambda: announced(recorder, "g2", PublicationType.PROVIDER_DOWN, "c-ghost2"))
        assert await client.get(node.keys.provider("g2")) is None
        # An agent it does not follow is left to its TTL.
        assert await client.get(node.keys.provider("g3")) == b"deadnode c-ghost3"
    finally:
        await client.aclose()
        await node.close()


# --- two nodes, one bus ----------------------------------------------------------------


async def test_seed_round_trip_across_nodes(cluster: tuple[HubProcess, HubProcess, str],
                                            request: pytest.FixtureRequest) -> None:
    hub_a, hub_b, _ = cluster
    agent = agent_name(request)
    provider = await Client.join(hub_b.ws_url, "provider", agent)
    app = await Client.join(hub_a.ws_url, "app", agent)
    assert app.welcome["message"]["providerConnected"] is True
    await app.send(set_not_ready())  # no id: the hub adds one
    forwarded = await provider.recv()
    assert forwarded["subtopic"] == "SetNotReady" and forwarded["data"] == {"ReasonCodeId": "Not Ready"}
    await provider.send(answer_for(forwarded))
    answer, _ = await app.recv_until(is_kind("SetAgentState", replyTo=forwarded["id"]))
    assert answer["message"] == sample("seed-SetAgentState.event.json")["message"]
    for client in (app, provider):
        await client.close()


async def test_fan_out_across_nodes(cluster: tuple[HubProcess, HubProcess, str],
                                    request: pytest.FixtureRequest) -> None:
    hub_a, hub_b, _ = cluster
    agent = agent_name(request)
    provider = await Client.join(hub_a.ws_url, "provider", agent)
    apps = [await Client.join(hub.ws_url, "app", agent) for hub in (hub_a, hub_b, hub_b)]
    other = await Client.join(hub_b.ws_url, "app", agent + "-other")
    event = sample("seed-SetAgentState.event.json")
    await provider.send(event)
    for app in apps:
        got, _ = await app.recv_until(is_kind("SetAgentState"))
        assert unpositioned(got) == event
    # Nothing of it reached another agent's app on node B: B reads one connection
    # in order, so the first SetAgentState that app gets is its own agent's.
    other_provider = await Client.join(hub_a.ws_url, "provider", agent + "-other")
    own = sample("seed-SetAgentState.event.json")
    own["message"]["event"] = "Training"
    await other_provider.send(own)
    got, skipped = await other.recv_until(is_kind("SetAgentState"))
    assert unpositioned(got) == own and all(f["subtopic"] == "ProviderStatus" for f in skipped)
    for client in (*apps, other, provider, other_provider):
        await client.close()


async def test_retained_replay_on_a_node_that_joined_late(
    cluster: tuple[HubProcess, HubProcess, str], request: pytest.FixtureRequest, redis_url: str,
    tmp_path: Path,
) -> None:
    hub_a, _, name = cluster
    agent = agent_name(request)
    provider = await Client.join(hub_a.ws_url, "provider", agent)
    watcher = await Client.join(hub_a.ws_url, "app", agent)
    event = sample("seed-SetAgentState.event.json")
    await provider.send(event)
    await watcher.recv_until(is_kind("SetAgentState"))  # it has gone through
    [late] = start_hubs(1, redis_url, name, tmp_path)
    try:
        app = await Client.join(late.ws_url, "app", agent)
        assert app.welcome["message"]["providerConnected"] is True
        status = await app.recv()
        assert status["subtopic"] == "ProviderStatus" and status["retained"] is True
        assert status["message"] == {"connected": True}
        replay = await app.recv()
        assert unpositioned(replay) == {**event, "retained": True}
        await app.close()
    finally:
        late.stop()
    for client in (provider, watcher):
        await client.close()


async def test_provider_takeover_across_nodes(
    cluster: tuple[HubProcess, HubProcess, str], request: pytest.FixtureRequest, redis_url: str
) -> None:
    hub_a, hub_b, name = cluster
    agent = agent_name(request)
    old = await Client.join(hub_a.ws_url, "provider", agent)
    app = await Client.join(hub_a.ws_url, "app", agent)
    new = await Client.join(hub_b.ws_url, "provider", agent)
    replaced, _ = await old.recv_until(is_kind("Replaced"))
    assert replaced["message"] == {"connectionId": new.connection_id}
    with pytest.raises(ConnectionClosed):
        await old.recv(5)
    assert old.ws.close_code == 4001
    # Exactly one provider remains: the registry names the new one, and requests go there.
    node_b = hub_b.healthz()["node"]
    assert registry(redis_url, f"{name}:provider:{agent}") == f"{node_b} {new.connection_id}".encode()
    await app.send(set_not_ready("take-1"))
    forwarded = await new.recv()
    assert forwarded["subtopic"] == "SetNotReady" and forwarded["id"].startswith("h-")
    await new.send(answer_for(forwarded))
    await app.recv_until(is_kind("SetAgentState", replyTo="take-1"))
    for client in (app, new):
        await client.close()


async def test_request_timeout_across_nodes(cluster: tuple[HubProcess, HubProcess, str],
                                            request: pytest.FixtureRequest) -> None:
    hub_a, hub_b, _ = cluster
    agent = agent_name(request)
    provider = await Client.join(hub_b.ws_url, "provider", agent)
    app = await Client.join(hub_a.ws_url, "app", agent)
    await app.send(set_not_ready("slow-1"))
    forwarded = await provider.recv()  # delivered, and never answered
    assert forwarded["subtopic"] == "SetNotReady"
    error, _ = await app.recv_until(is_error(reply_to="slow-1"))
    assert error["data"]["errorType"] == "REQUEST_TIMEOUT"
    # A late answer after the timeout goes nowhere and breaks nothing.
    await provider.send(answer_for(forwarded))
    for client in (app, provider):
        await client.close()


async def test_provider_unavailable_across_nodes(cluster: tuple[HubProcess, HubProcess, str],
                                                 request: pytest.FixtureRequest) -> None:
    hub_a, _, _ = cluster
    app = await Client.join(hub_a.ws_url, "app", agent_name(request))
    await app.send(set_not_ready("none-1"))
    error, _ = await app.recv_until(is_error(reply_to="none-1"))
    assert error["data"]["errorType"] == "PROVIDER_UNAVAILABLE"
    await app.close()


async def test_errors_reach_only_the_requester_across_nodes(
    cluster: tuple[HubProcess, HubProcess, str], request: pytest.FixtureRequest
) -> None:
    hub_a, hub_b, _ = cluster
    agent = agent_name(request)
    provider = await Client.join(hub_b.ws_url, "provider", agent)
    requester = await Client.join(hub_a.ws_url, "app", agent)
    bystanders = [await Client.join(hub.ws_url, "app", agent) for hub in (hub_a, hub_b)]
    await requester.send(set_not_ready("err-1"))
    forwarded = await provider.recv()
    error = sample("ApiError.error.json")
    error["replyTo"] = forwarded["id"]
    await provider.send(error)
    got, _ = await requester.recv_until(is_error(reply_to="err-1"))
    assert got == {**error, "replyTo": "err-1"}  # under the requester's own id
    # Then an event to everyone: the agent's channel keeps order, so a bystander
    # that reaches the event without an error before it never got the error.
    await provider.send(sample("seed-SetAgentState.event.json"))
    for bystander in bystanders:
        _, skipped = await bystander.recv_until(is_kind("SetAgentState"))
        assert not [f for f in skipped if f["subtopic"] == "ApiError"]
    for client in (requester, provider, *bystanders):
        await client.close()


# --- failures ------------------------------------------------------------------------------


async def test_a_node_killed_mid_traffic(redis_url: str, prefix: str, tmp_path: Path) -> None:
    """SIGKILL: the dead node's provider entries go, apps are told, no request hangs, and
    a provider reconnecting to another node restores routing."""
    doomed, survivor = start_hubs(2, redis_url, prefix, tmp_path, request_timeout=3.0)
    try:
        providers = {a: await Client.join(doomed.ws_url, "provider", a) for a in ("k1", "k2", "k3")}
        # k3 has no app anywhere: no live node follows it, so only its TTL can end its entry.
        apps = {a: await Client.join(survivor.ws_url, "app", a) for a in ("k1", "k2")}
        serving = [asyncio.create_task(serve_provider(p)) for p in providers.values()]
        sent = 0

        async def traffic(agent: str, count: int) -> list[dict[str, Any]]:
            """Requests one after another, each waiting for its outcome; stops at the first failure."""
            nonlocal sent
            outcomes: list[dict[str, Any]] = []
            for _ in range(count):
                sent += 1
                request_id = f"{agent}-{sent}"
                await apps[agent].send(set_not_ready(request_id))
                frame, _ = await apps[agent].recv_until(answers(request_id), timeout=10)
                outcomes.append(frame)
                if frame["subtopic"] != "SetAgentState":
                    break
                await asyncio.sleep(0.03)  # stay under the hub's rate limit (50 frames/s)
            return outcomes

        assert all(f["subtopic"] == "SetAgentState" for f in await traffic("k1", 5))
        running = asyncio.create_task(traffic("k1", 10_000))
        await asyncio.sleep(0.3)
        doomed.kill()

        # k1's traffic ends with an error, not a hang: the request in flight at the kill,
        # or the next one, fails.
        outcomes = await asyncio.wait_for(running, 15)
        assert len(outcomes) > 1  # traffic was flowing when the node died
        assert outcomes[-1]["data"]["errorType"] in {"PROVIDER_UNAVAILABLE", "REQUEST_TIMEOUT"}
        # k2's apps are told their provider is gone (no ghost "connected"), unasked...
        await apps["k2"].recv_until(is_kind("ProviderStatus", message={"connected": False}))
        assert registry(redis_url, f"{prefix}:provider:k2") is None
        # ...and a request fails at once, not after the request timeout.
        await apps["k2"].send(set_not_ready("k2-after"))
        error, _ = await apps["k2"].recv_until(answers("k2-after"))
        assert error["data"]["errorType"] == "PROVIDER_UNAVAILABLE"
        # k3: the entry expires by itself (TTL 2.5 s in these tests) with no heartbeat.
        assert registry(redis_url, f"{prefix}:provider:k3") is not None
        await eventually(lambda: registry(redis_url, f"{prefix}:provider:k3") is None)

        # The provider reconnects to the surviving node: routing resumes.
        provider = await Client.join(survivor.ws_url, "provider", "k1")
        await apps["k1"].recv_until(is_kind("ProviderStatus", message={"connected": True}))
        serving.append(asyncio.create_task(serve_provider(provider)))
        assert all(f["subtopic"] == "SetAgentState" for f in await traffic("k1", 3))
        assert (await survivor.ahealthz())["status"] == "ok"
        assert all(app.open for app in apps.values())
        for client in (*apps.values(), provider):
            await client.close()
        await asyncio.gather(*serving)
    finally:
        doomed.stop()
        survivor.stop()


async def test_redis_cut_and_restored_mid_traffic(redis_url: str, prefix: str, tmp_path: Path) -> None:
    """Node E reaches Redis through a proxy the test cuts; node F stays connected."""
    target = urlsplit(redis_url)
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 6379).start()
    proxied = f"redis://127.0.0.1:{proxy.port}{target.path}"
    hub_e = HubProcess(proxied, prefix, tmp_path / "e.log", request_timeout=2.0).wait_ready()
    hub_f = HubProcess(redis_url, prefix, tmp_path / "f.log", request_timeout=2.0).wait_ready()
    clients: list[Client] = []
    try:
        assert (await hub_e.ahealthz())["status"] == "ok"
        provider = await Client.join(hub_e.ws_url, "provider", "x1")
        near = await Client.join(hub_e.ws_url, "app", "x1")  # same node as the provider
        far = await Client.join(hub_f.ws_url, "app", "x1")
        clients += [provider, near, far]
        answered: list[str] = []
        serving = asyncio.create_task(serve_provider(provider, answered))

        async def ask(app: Client, request_id: str) -> dict[str, Any]:
            await app.send(set_not_ready(request_id))
            frame, _ = await app.recv_until(answers(request_id), timeout=10)
            return frame

        assert (await ask(near, "before-near"))["subtopic"] == "SetAgentState"
        assert (await ask(far, "before-far"))["subtopic"] == "SetAgentState"

        proxy.cut()
        health = await eventually(lambda: _degraded(hub_e))
        assert health["status"] == "degraded"
        assert "bridge_broker_healthy 0.0" in await hub_e.ametrics()
        assert (await hub_f.ahealthz())["status"] == "ok"

        # E alone: its app still reaches its provider, and its events still fan out locally.
        for i in range(3):
            assert (await ask(near, f"during-near-{i}"))["subtopic"] == "SetAgentState"
        state = sample("seed-SetAgentState.event.json")
        state["message"]["event"] = "Lunch"
        state["message"]["data"]["reasonCode"]["id"] = "Lunch"
        state["message"]["rules"]["ResponseActual"]["name"] = "Lunch"
        await provider.send(state)
        await near.recv_until(is_kind("SetAgentState", message=state["message"]))
        # F cannot reach E's provider: it fails fast instead of timing out.
        error = await ask(far, "during-far")
        assert error["data"]["errorType"] == "PROVIDER_UNAVAILABLE"

        proxy.restore()
        await eventually(lambda: _healthy(hub_e))
        assert "bridge_broker_healthy 1.0" in await hub_e.ametrics()
        # E re-claimed its provider: F's app hears so, and its requests are routed again.
        await far.recv_until(is_kind("ProviderStatus", message={"connected": True}), timeout=10)
        # The state set during the outage was written back with the re-claim: a newcomer
        # on F gets it (before any answer below replaces it).
        newcomer = await Client.join(hub_f.ws_url, "app", "x1")
        clients.append(newcomer)
        assert (await newcomer.recv())["message"] == {"connected": True}
        assert (await newcomer.recv())["message"] == state["message"]
        assert (await ask(far, "after-far"))["subtopic"] == "SetAgentState"
        assert (await ask(near, "after-near"))["subtopic"] == "SetAgentState"
        # No client was dropped along the way.
        assert all(client.open for client in clients)
        # Every request reached the provider once (a backplane that failed mid-write duplicates none).
        assert len(answered) >= 7 and len(answered) == len(set(answered))
        serving.cancel()
        await asyncio.gather(serving, return_exceptions=True)
    finally:
        for client in clients:
            await client.close()
        hub_e.stop()
        hub_f.stop()
        proxy.close()


async def _degraded(hub: HubProcess) -> dict[str, Any] | None:
    stats = await hub.ahealthz()
    return stats if stats["status"] == "degraded" else None


async def _healthy(hub: HubProcess) -> dict[str, Any] | None:
    stats = await hub.ahealthz()
    return stats if stats["status"] == "ok" else None


# --- queued writes: order, close, failure, backpressure ----------------------------------------


def named_state(name: str) -> dict[str, Any]:
    """The seed SetAgentState with ``message.data.name`` set (a free string in the schema)."""
    event = sample("seed-SetAgentState.event.json")
    event["message"]["data"]["name"] = name
    return event


async def test_many_events_keep_their_order_across_nodes(redis_url: str, prefix: str) -> None:
    """Two nodes in this process; two agents stream at once, their providers on different
    nodes, each agent with an app on both nodes: every app gets the 500 events in order,
    then the provider's departure after the last of them, and the retained state is the
    last frame, byte for byte."""
    config = HubConfig(host="127.0.0.1", port=0, open_mode=True, redis_url=redis_url, redis_prefix=prefix,
                       rate_limit=1e6, rate_burst=1_000_000)
    count = 500
    async with HubServer(config) as hub_a, HubServer(config) as hub_b:
        homes = {"o1": (hub_a, hub_b), "o2": (hub_b, hub_a)}  # agent: (provider's node, the other)
        providers = {agent: await Client.join(home.url, "provider", agent) for agent, (home, _) in homes.items()}
        apps = [(agent, await Client.join(node.url, "app", agent)) for agent, nodes in homes.items() for node in nodes]
        frames = {agent: [orjson.dumps(named_state(f"{agent}-{i}")) for i in range(count)] for agent in homes}

        async def stream(agent: str) -> None:
            for frame in frames[agent]:
                await providers[agent].ws.send(frame.decode())
            await providers[agent].close()

        async def collect(app: Client) -> list[str]:
            names: list[str] = []
            while True:
                frame = await app.recv(timeout=30)
                if frame["subtopic"] == "SetAgentState":
                    names.append(frame["message"]["data"]["name"])
                elif frame["subtopic"] == "ProviderStatus" and frame["message"] == {"connected": False}:
                    return names

        received = await asyncio.gather(*(collect(app) for _, app in apps), *(stream(a) for a in homes))
        for (agent, _), names in zip(apps, received[: len(apps)], strict=True):
            assert names == [f"{agent}-{i}" for i in range(count)]
        for agent in homes:
            assert stored_frames(redis_url, prefix, agent) == [frames[agent][-1]]
        for _, app in apps:
            await app.close()


@contextlib.asynccontextmanager
async def sender_and_watcher(
    redis_url: str, prefix: str, agent: str
) -> AsyncIterator[tuple[RedisBroker, Recorder]]:
    """Two brokers on one prefix: the first sends; the second follows ``agent`` and records."""
    a = make_broker(redis_url, prefix)
    b = make_broker(redis_url, prefix)
    seen = Recorder()
    await a.start(Recorder())
    await b.start(seen)
    try:
        await b.follow(agent)
        yield a, seen
    finally:
        await a.close()
        await b.close()


@contextlib.asynccontextmanager
async def behind_a_proxy(
    redis_url: str, prefix: str, **settings: Any
) -> AsyncIterator[tuple[RedisBroker, Recorder, TcpProxy]]:
    """A started broker that reaches Redis through a proxy the test can cut or stall."""
    target = urlsplit(redis_url)
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 6379).start()
    node = make_broker(f"redis://127.0.0.1:{proxy.port}{target.path}", prefix,
                       **{"heartbeat": 0.3, "reconnect_max": 0.3, **settings})
    recorder = Recorder()
    await node.start(recorder)
    try:
        yield node, recorder, proxy
    finally:
        await node.close()
        proxy.close()


async def test_claims_and_releases_follow_queued_publications(redis_url: str, prefix: str) -> None:
    """PROVIDER_UP and PROVIDER_DOWN come from Lua scripts, outside the queue: they wait for it."""
    async with sender_and_watcher(redis_url, prefix, "q1") as (a, seen):
        for i in range(100):
            await a.publish("q1", Publication(PublicationType.EVENT, b"%d" % i))
        await a.claim_provider("q1", "c-1")
        for i in range(100, 200):
            await a.publish("q1", Publication(PublicationType.EVENT, b"%d" % i))
        assert a.pending_writes > 0  # queued, not sent, when the release starts
        await a.release_provider("q1", "c-1")
        await eventually(lambda: len(seen.publications) >= 202)
        got = [p.data.decode() or p.type.value for _, p in seen.publications]
        assert got == [*map(str, range(100)), "up", *map(str, range(100, 200)), "down"]


async def test_close_sends_what_is_queued(redis_url: str, prefix: str) -> None:
    async with sender_and_watcher(redis_url, prefix, "w1") as (a, seen):
        for i in range(300):
            await a.set_retained("w1", STATE, b"state %d" % i)
            await a.publish("w1", Publication(PublicationType.EVENT, b"%d" % i))
        # publish() and set_retained() did not wait for Redis: all of it is still queued.
        assert a.pending_writes == 600
        await a.close()
        assert a.pending_writes == 0
        await eventually(lambda: len(seen.publications) >= 300)
        assert [p.data for _, p in seen.publications] == [b"%d" % i for i in range(300)]
        assert stored_frames(redis_url, prefix, "w1") == [b"state 299"]
        # Closed, it no longer queues anything.
        await a.publish("w1", Publication(PublicationType.EVENT, b"late"))
        assert a.pending_writes == 0


# --- retained frames in Redis ------------------------------------------------------------------


async def test_retained_frames_are_one_hash_per_agent_with_a_ttl(redis_url: str, prefix: str) -> None:
    """The layout of bridge/brokers/redis/retained.py: a frame and a rank per slot; every write
    restarts the TTL; the hash goes with its last slot."""
    node = make_broker(redis_url, prefix, retained_ttl=500)
    await node.start(Recorder())
    client = aioredis.from_url(redis_url)
    key = node.keys.retained("r1")
    call = "Amazon/InboundCall/InboundCallStateChange#c-1"
    try:
        await node.set_retained("r1", STATE, b"state")
        await node.set_retained("r1", call, b"call")
        await node.flush()  # set_retained only queues the write
        assert await client.hgetall(key) == {
            f"s:{STATE}".encode(): b"state", f"o:{STATE}".encode(): b"1",
            f"s:{call}".encode(): b"call", f"o:{call}".encode(): b"2",
            b"n": b"2",
        }
        assert 0 < await client.pttl(key) <= 500_000
        await client.pexpire(key, 100_000)
        await node.drop_retained("r1", STATE)  # a drop is a write too
        await node.flush()
        assert 100_000 < await client.pttl(key) <= 500_000
        await node.drop_retained("r1", call)
        await node.flush()
        assert await client.exists(key) == 0
        # Retained frames kept forever: no TTL at all.
        forever = make_broker(redis_url, prefix, retained_ttl=0)
        await forever.start(Recorder())
        try:
            await forever.set_retained("r1", STATE, b"kept")
            await forever.flush()
            assert await client.pttl(key) == -1
        finally:
            await forever.close()
    finally:
        await client.aclose()
        await node.close()


async def test_a_failed_batch_is_delivered_locally(
    redis_url: str, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The queued batch meets a cut connection: the broker degrades, its own follower gets the
    whole batch in order and once, the retained frames are kept and written back on re-claim."""
    caplog.set_level(logging.WARNING, logger="bridge.redis")
    call = "Amazon/InboundCall/InboundCallStateChange#c-1"
    async with behind_a_proxy(redis_url, prefix, provider_ttl=1.5, timeout=1) as (node, recorder, proxy):
        await node.follow("f1")
        await node.claim_provider("f1", "c-1")
        await node.set_retained("f1", call, b"ringing")
        await eventually(lambda: len(recorder.publications) == 1)  # our own PROVIDER_UP
        proxy.cut()
        # No await reached the event loop since the cut: the broker still believes Redis
        # is there, so these are queued, and the writer meets the cut connection.
        assert node.healthy
        for i in range(50):
            await node.set_retained("f1", STATE, b"state %d" % i)
            await node.publish("f1", Publication(PublicationType.EVENT, b"%d" % i))
        await node.drop_retained("f1", call)  # in the failed batch: owed to Redis
        assert node.pending_writes == 101
        await node.flush()
        assert not node.healthy
        assert "a batch of 101 Redis writes failed" in caplog.text
        events = [p.data for _, p in recorder.publications[1:]]
        assert events == [b"%d" % i for i in range(50)]
        # Degraded, a publication still reaches this node's clients, after the batch,
        # and the retained frames it set are served from its copy.
        await node.publish("f1", Publication(PublicationType.EVENT, b"after"))
        assert recorder.publications[-1][1].data == b"after"
        await node.set_retained("f1", "Amazon/Agent/Mute", b"muted")
        assert await retained_data(node, "f1") == [b"state 49", b"muted"]
        assert stored_frames(redis_url, prefix, "f1") == [b"ringing"]  # what Redis has meanwhile

        proxy.restore()
        await eventually(lambda: node.healthy and recorder.resyncs == 1)
        await node.claim_provider("f1", "c-1")  # what the node does on resync
        assert stored_frames(redis_url, prefix, "f1") == [b"state 49", b"muted"]


async def test_a_slot_dropped_and_set_again_during_an_outage_ends_last(redis_url: str, prefix: str) -> None:
    async with behind_a_proxy(redis_url, prefix, provider_ttl=1.5, timeout=1) as (node, recorder, proxy):
        await node.claim_provider("d1", "c-1")
        for slot in ("k/a", "k/b", "k/c"):
            await node.set_retained("d1", slot, slot.encode())
        await node.flush()
        proxy.cut()
        await eventually(lambda: not node.healthy)
        await node.drop_retained("d1", "k/a")
        await node.set_retained("d1", "k/a", b"k/a again")
        await node.drop_retained("d1", "k/b")
        assert await retained_data(node, "d1") == [b"k/c", b"k/a again"]
        proxy.restore()
        await eventually(lambda: node.healthy and recorder.resyncs == 1)
        await node.claim_provider("d1", "c-1")
        assert stored_frames(redis_url, prefix, "d1") == [b"k/c", b"k/a again"]
        assert await retained_data(node, "d1") == [b"k/c", b"k/a again"]


# --- following -----------------------------------------------------------------------------------


async def test_a_second_follow_waits_for_the_first_subscription(redis_url: str, prefix: str) -> None:
    """Redis stops answering while a SUBSCRIBE is unconfirmed: a second follow of the same
    agent does not return early; both return once the broker gives up on that connection."""
    async with behind_a_proxy(redis_url, prefix, heartbeat=0.5, provider_ttl=3, timeout=2) as (node, _, proxy):
        proxy.stall()
        first = asyncio.create_task(node.follow("s1"))
        await asyncio.sleep(0.05)
        second = asyncio.create_task(node.follow("s1"))
        await asyncio.sleep(0.5)
        assert not first.done() and not second.done()
        proxy.resume()  # drops the stalled connections: the epoch ends, and frees both
        await within(asyncio.gather(first, second), 10)
        await eventually(lambda: node.healthy)
        await node.follow("s1")  # resubscribed by the new epoch: returns at once


async def complete_and_in_order(seen: Recorder, agents: list[str]) -> None:
    """Each agent's 25 events, in publishing order with offsets one apart, and nothing more."""
    await seen.until(lambda: len(seen.publications) >= 25 * len(agents), timeout=30)
    assert len(seen.publications) == 25 * len(agents)  # none twice (with the pattern, its copy only)
    for agent in agents:
        got = seen.of(agent)
        assert [p.data.decode() for p in got] == [f"{agent}:{k}" for k in range(25)]
        offsets = [p.position.offset for p in got if p.position is not None]
        assert len(offsets) == 25 and offsets == list(range(offsets[0], offsets[0] + 25))


async def test_a_burst_arrives_complete_and_in_order(redis_url: str, prefix: str) -> None:
    """500 publications over 20 agents, sent in one pipeline, so they reach the watchers
    back to back (many per read of the subscription connection): one node follows the 20
    agents by name, one follows every agent (the pattern). Each gets every publication
    once, each agent's in publishing order with offsets one apart."""
    agents = [f"burst{i}" for i in range(20)]
    sender, by_name, by_pattern = (make_broker(redis_url, prefix) for _ in range(3))
    named, everyone = Recorder(), Recorder()
    await sender.start(Recorder())
    await by_name.start(named)
    await by_pattern.start(everyone)
    try:
        for agent in agents:
            await by_name.follow(agent)
        await by_pattern.follow_all()
        sender.writes.max_items = 1000  # all 500 in one pipeline
        for k in range(25):
            for agent in agents:
                await sender.publish(agent, Publication(PublicationType.EVENT, f"{agent}:{k}".encode()))
        assert sender.pending_writes == 500
        await sender.flush()
        await complete_and_in_order(named, agents)
        await complete_and_in_order(everyone, agents)
    finally:
        for broker in (sender, by_name, by_pattern):
            await broker.close()


async def test_a_silent_subscription_connection_ends_its_epoch(redis_url: str, prefix: str) -> None:
    """The subscription reader waits on no timer: its watcher pings a connection that said
    nothing for a heartbeat, so an idle connection that answers lives on; one that stops
    answering (stalled, as a half-open connection would be) ends the reader with an error
    once silent for ``silence``, which ends the broker's epoch."""
    target = urlsplit(redis_url)
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 6379).start()
    client = subscription_client(f"redis://127.0.0.1:{proxy.port}{target.path}", RedisSettings(timeout=1), "silent")
    delivered: list[bytes] = []
    subscriptions = Subscriptions(client, lambda _channel, payload, _via: delivered.append(payload),
                                  timeout=1, heartbeat=0.1, silence=0.5)
    channel = f"{prefix}:silent".encode()
    try:
        await within(subscriptions.open([channel]))
        reader = subscriptions.reader
        assert reader is not None
        await asyncio.sleep(1.0)  # twice the silence, idle: the pongs keep it alive
        assert not reader.done()
        publisher = aioredis.from_url(redis_url)
        try:
            await publisher.publish(channel, b"still here")
        finally:
            await publisher.aclose()
        await eventually(lambda: delivered == [b"still here"])
        proxy.stall()
        with pytest.raises(RedisConnectionError, match="stopped answering"):
            await within(asyncio.shield(reader))
    finally:
        await subscriptions.close()
        await client.aclose()
        proxy.close()


# --- backpressure ----------------------------------------------------------------------------------


async def test_a_full_queue_makes_publishers_wait(redis_url: str, prefix: str) -> None:
    """Backpressure: below the bound a write returns at once; the one that fills the queue
    returns only once the queue has been sent."""
    node = make_broker(redis_url, prefix)
    await node.start(Recorder())
    try:
        node.writes.max_items = 10
        for i in range(9):
            await node.set_retained("p1", STATE, b"%d" % i)
        assert node.pending_writes == 9  # nothing awaited Redis
        await node.set_retained("p1", STATE, b"9")  # the tenth fills the queue
        assert node.pending_writes == 0
        assert stored_frames(redis_url, prefix, "p1") == [b"9"]
        node.writes.max_items = 1000
        node.writes.max_bytes = 1000
        await node.set_retained("p1", STATE, b"x" * 600)
        assert node.pending_writes == 1
        await node.set_retained("p1", STATE, b"y" * 600)  # over the byte bound
        assert node.pending_writes == 0
        assert stored_frames(redis_url, prefix, "p1") == [b"y" * 600]
    finally:
        await node.close()


async def test_a_stalled_redis_frees_waiting_publishers_and_close(redis_url: str, prefix: str) -> None:
    """Redis stops answering: a publisher held by a full queue is freed by the command
    timeout (the broker degrades, the batch is delivered locally), and close does not
    wait for Redis beyond its bound."""
    async with behind_a_proxy(redis_url, prefix, provider_ttl=3, timeout=0.5) as (node, recorder, proxy):
        await node.follow("s1")
        node.writes.max_items = 20
        proxy.stall()
        for i in range(20):  # the twentieth fills the queue and waits, until the command timeout
            await within(node.publish("s1", Publication(PublicationType.EVENT, b"%d" % i)), 10)
        assert not node.healthy
        assert [p.data for _, p in recorder.publications] == [b"%d" % i for i in range(20)]

        # Again, healthy: this time close() meets the stalled batch.
        proxy.resume()
        await eventually(lambda: node.healthy)
        recorder.publications.clear()
        proxy.stall()
        for i in range(5):
            await node.publish("s1", Publication(PublicationType.EVENT, b"%d" % i))
        await within(node.close(), 10)  # bounded: it does not wait on the stalled Redis
        assert [p.data for _, p in recorder.publications] == [b"%d" % i for i in range(5)]
