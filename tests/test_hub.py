"""The hub over real sockets on loopback: routing, retained state, providers, isolation."""

from __future__ import annotations

import asyncio
import urllib.request

import orjson
import pytest
import websockets

from bridge.hub.config import HubConfig
from bridge.hub.server import HubServer

from .helpers import connect, join, join_app, sample, sample_text, seed_event


async def test_seed_round_trip(open_hub: HubServer) -> None:
    provider, welcome = await join(open_hub.url, "provider")
    assert welcome["message"]["providerConnected"] is True and welcome["message"]["role"] == "provider"
    app = await join_app(open_hub.url)
    await app.send(sample_text("seed-SetNotReady.request.json"))
    request = await provider.recv()
    assert request["subtopic"] == "SetNotReady" and request["data"] == {"ReasonCodeId": "Not Ready"}
    assert request["id"]  # the hub added one
    await provider.send(seed_event(reply_to=request["id"]))
    answer = await app.recv()
    # As sent, with its place in the agent's stream appended (the provider's arrival was the first).
    assert answer == {**seed_event(reply_to=request["id"]), "offset": 2, "epoch": answer["epoch"]}
    assert list(answer)[-2:] == ["offset", "epoch"] and isinstance(answer["epoch"], str)


async def test_events_reach_every_app_of_the_agent(open_hub: HubServer) -> None:
    provider, _ = await join(open_hub.url, "provider")
    apps = [await join_app(open_hub.url) for _ in range(5)]
    await provider.send(sample("SetAgentState-muted.event.json"))
    for app in apps:
        assert (await app.recv())["message"]["data"]["muted"] is True


async def test_a_late_app_gets_provider_status_then_the_last_state(open_hub: HubServer) -> None:
    provider, _ = await join(open_hub.url, "provider")
    await provider.send(seed_event(reply_to="old-request"))
    await provider.send(sample("SetAgentState-muted.event.json"))
    await asyncio.sleep(0.1)
    app, welcome = await join(open_hub.url, "app")
    assert welcome["message"]["providerConnected"] is True
    status = await app.recv()
    # The status as of now: at the agent's top (provider up, two states: offset 3).
    assert status == {**sample("ProviderStatus.event.json"), "offset": 3, "epoch": status["epoch"]}
    replay = await app.recv()
    expected = sample("SetAgentState-muted.event.json")
    del expected["replyTo"]  # a replay answers nothing
    assert replay == {**expected, "retained": True, "offset": 3, "epoch": status["epoch"]}


async def test_provider_status_follows_the_provider(open_hub: HubServer) -> None:
    app, welcome = await join(open_hub.url, "app")
    assert welcome["message"]["providerConnected"] is False
    assert (await app.recv())["message"] == {"connected": False}
    provider, _ = await join(open_hub.url, "provider")
    assert (await app.recv())["message"] == {"connected": True}
    await provider.close()
    status = await app.recv()
    assert status["subtopic"] == "ProviderStatus" and status["message"] == {"connected": False}
    assert "retained" not in status


async def test_a_newer_provider_replaces_the_older(open_hub: HubServer) -> None:
    old, _ = await join(open_hub.url, "provider")
    app = await join_app(open_hub.url)
    new, welcome = await join(open_hub.url, "provider")
    replaced = await old.recv()
    assert replaced["subtopic"] == "Replaced"
    assert replaced["message"] == {"connectionId": welcome["message"]["connectionId"]}
    assert await old.closed() == 4001
    assert (await app.recv())["message"] == {"connected": True}
    await app.send(sample_text("Mute.request.json"))
    assert (await new.recv())["subtopic"] == "Mute"
    assert open_hub.node.stats()["providers"] == 1


async def test_no_provider_gives_provider_unavailable_at_once(open_hub: HubServer) -> None:
    app = await join_app(open_hub.url)
    await app.send(sample_text("Mute.request.json"))
    err = await app.recv()
    assert err["data"]["errorType"] == "PROVIDER_UNAVAILABLE" and err["replyTo"] == "req-17"
    assert err["channel"] == "Amazon"
    assert err["data"]["request"] == {"channel": "Amazon", "topic": "Agent", "subtopic": "Mute"}


async def test_a_silent_provider_gives_request_timeout(open_hub: HubServer) -> None:
    provider, _ = await join(open_hub.url, "provider")
    app = await join_app(open_hub.url)
    await app.send(sample_text("Mute.request.json"))
    await provider.recv()
    err = await app.recv(timeout=3)
    assert err["data"]["errorType"] == "REQUEST_TIMEOUT" and err["replyTo"] == "req-17"
    # A late answer still reaches the apps as an event but is no longer an error source.
    await provider.send(sample("SetAgentState-muted.event.json"))
    assert (await app.recv())["subtopic"] == "SetAgentState"


async def test_a_provider_that_leaves_fails_its_requests_at_once(open_hub: HubServer) -> None:
    provider, _ = await join(open_hub.url, "provider")
    app = await join_app(open_hub.url)
    await app.send(sample_text("Mute.request.json"))
    await provider.recv()
    await provider.close()
    frames = [await app.recv(), await app.recv()]
    errors = [f for f in frames if f["subtopic"] == "ApiError"]
    assert errors and errors[0]["data"]["errorType"] == "PROVIDER_UNAVAILABLE"
    assert errors[0]["replyTo"] == "req-17"


async def test_provider_errors_reach_the_requester_only(open_hub: HubServer) -> None:
    provider, _ = await join(open_hub.url, "provider")
    requester = await join_app(open_hub.url)
    bystander = await join_app(open_hub.url)
    await requester.send({**sample("seed-SetNotReady.request.json"), "id": "req-18"})
    request = await provider.recv()
    # The provider sees the hub's id for the request, and answers it...
    assert request["id"].startswith("h-")
    await provider.send({**sample("ApiError.error.json"), "replyTo": request["id"]})
    # ...and the requester gets the error under its own id.
    assert await requester.recv() == sample("ApiError.error.json")
    await bystander.nothing()


async def test_two_apps_may_use_the_same_request_ids(open_hub: HubServer) -> None:
    """Ids are a per-connection matter: neither app can pre-claim, or answer for, the other's."""
    provider, _ = await join(open_hub.url, "provider")
    one, two = await join_app(open_hub.url), await join_app(open_hub.url)
    await one.send(sample_text("Mute.request.json"))
    await two.send(sample_text("Mute.request.json"))  # the same id, "req-17"
    first, second = await provider.recv(), await provider.recv()
    assert first["id"] != second["id"]
    await provider.send({**sample("ApiError.error.json"), "replyTo": second["id"]})
    await provider.send({**sample("SetAgentState-muted.event.json"), "replyTo": first["id"]})
    # Each requester gets its own answer under its own id.
    error = await two.recv()
    assert error["subtopic"] == "ApiError" and error["replyTo"] == "req-17"
    answer = await one.recv()
    assert answer["subtopic"] == "SetAgentState" and answer["replyTo"] == "req-17"
    # The other app sees the event too, under the hub's id for the request.
    seen = await two.recv()
    assert seen["subtopic"] == "SetAgentState" and seen["replyTo"] == first["id"]
    # Reusing an id while it is in flight on the same connection is refused.
    await one.send(sample_text("Mute.request.json"))
    await provider.recv()
    await one.send(sample_text("Mute.request.json"))
    refused = await one.recv()
    assert refused["data"]["errorType"] == "DUPLICATE_REQUEST_ID" and refused["replyTo"] == "req-17"


async def test_agents_are_isolated(open_hub: HubServer) -> None:
    clients = {}
    for agent in ("agent1", "agent2"):
        provider, _ = await join(open_hub.url, "provider", agent)
        apps = [await join_app(open_hub.url, agent) for _ in range(3)]
        clients[agent] = (provider, apps)
    # Each agent's traffic, with the same request id on both sides.
    for agent, (_, apps) in clients.items():
        await apps[0].send({**sample("seed-SetNotReady.request.json"), "id": "same-id",
                            "data": {"ReasonCodeId": f"Break-{agent}"}})
    for agent, (provider, _) in clients.items():
        request = await provider.recv()
        assert request["data"]["ReasonCodeId"] == f"Break-{agent}"
        event = seed_event(reply_to="same-id")
        event["message"]["data"]["loginName"] = agent
        await provider.send(event)
    for agent, (provider, apps) in clients.items():
        for app in apps:
            assert (await app.recv())["message"]["data"]["loginName"] == agent
            await app.nothing(0.1)
        await provider.nothing(0.1)


async def test_healthz_counts_connections(open_hub: HubServer) -> None:
    await join(open_hub.url, "provider", "agent1")
    await join_app(open_hub.url, "agent1")
    await join_app(open_hub.url, "agent2")
    body = await asyncio.to_thread(lambda: urllib.request.urlopen(open_hub.http_url + "/healthz").read())
    health = orjson.loads(body)
    assert health["status"] == "ok"
    assert health["connections"] == {"app": 2, "provider": 1, "supervisor": 0}
    assert health["agents"] == 2 and health["providers"] == 1


async def test_metrics_are_prometheus_text(open_hub: HubServer) -> None:
    app = await join_app(open_hub.url)
    await app.send("not json")
    await app.recv()
    body = await asyncio.to_thread(lambda: urllib.request.urlopen(open_hub.http_url + "/metrics").read())
    text = body.decode()
    assert 'bridge_errors_total{type="INVALID_JSON"} 1.0' in text
    assert 'bridge_connections{role="app"} 1.0' in text
    assert "bridge_validation_seconds_count" in text and "bridge_broker_healthy 1.0" in text


async def test_browser_origins_are_checked_at_the_handshake() -> None:
    config = HubConfig(port=0, open_mode=True, allow_origins=("https://crm.example.com",))
    async with HubServer(config) as hub:
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(hub.url, origin="https://evil.example.net")
        assert refused.value.response.status_code == 403
        for origin in ("https://crm.example.com", f"http://127.0.0.1:{hub.port}", None):
            client = await connect(hub.url, origin=origin)
            await client.close()


async def test_a_frame_larger_than_the_limit_closes_with_1009_others_unharmed(open_hub: HubServer) -> None:
    provider, _ = await join(open_hub.url, "provider")
    big = await join_app(open_hub.url)
    other = await join_app(open_hub.url)
    await big.send({**sample("Mute.request.json"), "pad": "x" * (64 * 1024)})
    assert await big.closed() == 1009
    await provider.send(seed_event())
    assert (await other.recv())["subtopic"] == "SetAgentState"


async def test_a_key_given_twice_reaches_apps_only_as_validated(open_hub: HubServer) -> None:
    """A parser that keeps the first of two keys must never see what the hub did not validate."""
    provider, _ = await join(open_hub.url, "provider")
    app = await join_app(open_hub.url)
    text = sample_text("seed-SetAgentState.event.json")
    doubled = text.replace('"message"', '"message": {"event": "forged", "rogue": true}, "message"', 1)
    await provider.send(doubled)
    got = await app.recv_kind("SetAgentState")
    assert got == {**sample("seed-SetAgentState.event.json"), "offset": got["offset"], "epoch": got["epoch"]}
    # The frame on the wire holds one "message": what the schema checked.
    await provider.send(doubled)
    raw = await app.ws.recv()
    assert isinstance(raw, str) and raw.count('"message"') == 1 and "rogue" not in raw
