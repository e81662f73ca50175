"""Recovery over real sockets, one hub node: no event lost across a reconnect (issue 14).

Raw WebSocket clients play the apps and supervisors, so what is under test
is the hub: the positions it gives, the history it keeps and the join rule
with recovery (docs/protocol.md, "Positions, history and recovery").
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
import websockets

from bridge.hub.config import HubConfig
from bridge.hub.server import HubServer

from .helpers import Client, connect, free_port, join, seed_event

#: High enough that a provider may stream hundreds of events at once.
FAST_PROVIDER: dict[str, Any] = {"rate_limit": 100_000, "rate_burst": 100_000}


@pytest.fixture
async def hub() -> AsyncIterator[HubServer]:
    async with HubServer(HubConfig(port=0, open_mode=True, **FAST_PROVIDER)) as server:
        yield server


def hello(role: str, recover: Any, *, agent: str | None = None, agents: list[str] | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"role": role}
    if recover is not None:
        data["recover"] = recover
    if agent is not None:
        data["agent"] = agent
    if agents is not None:
        data["agents"] = agents
    return {"channel": "Bridge", "topic": "Session", "subtopic": "Hello", "source": "test", "data": data}


def numbered(i: int, padding: int = 0) -> dict[str, Any]:
    """A provider event that says which one it is (in the agent state's name), ``padding`` bytes bigger."""
    event = seed_event()
    event["message"]["data"]["name"] = f"event {i} " + "x" * padding
    return event


def number(frame: dict[str, Any]) -> int:
    return int(frame["message"]["data"]["name"].split()[1])


def position(frame: dict[str, Any]) -> dict[str, Any]:
    return {"epoch": frame["epoch"], "offset": frame["offset"]}


async def app_at(url: str, agent: str = "agent1", *, states: int = 0) -> tuple[Client, dict[str, Any]]:
    """An app past its Welcome and replay (``states`` retained frames); with the replay's top position."""
    app, _ = await join(url, "app", agent)
    status = await app.recv()
    assert status["subtopic"] == "ProviderStatus" and status["retained"] is True
    for _ in range(states):
        state = await app.recv()
        assert state["retained"] is True and state["offset"] <= status["offset"]
    return app, position(status)


async def stream(provider: Client, first: int, count: int) -> None:
    for i in range(first, first + count):
        await provider.send(numbered(i))


async def read_until(client: Client, last: int, timeout: float = 20.0) -> list[dict[str, Any]]:
    """Every frame up to the event numbered ``last`` (a safety timeout, not a timing assertion)."""
    frames: list[dict[str, Any]] = []
    while not frames or frames[-1].get("subtopic") != "SetAgentState" or number(frames[-1]) != last:
        frames.append(await client.recv(timeout))
    return frames


def cut(client: Client) -> None:
    """Cut the socket as a network failure would: no close frame, no FIN; the hub is not told."""
    transport = client.ws.transport
    transport.abort()


async def test_an_app_cut_off_while_200_events_pass_recovers_them_all_in_order_then_goes_live(
    hub: HubServer,
) -> None:
    provider, _ = await join(hub.url, "provider")
    app, _ = await app_at(hub.url)
    witness, _ = await app_at(hub.url)
    await stream(provider, 0, 5)
    before = await read_until(app, 4)
    seen = position(before[-1])
    cut(app)
    await stream(provider, 5, 200)
    assert [number(f) for f in await read_until(witness, 204)] == list(range(205))  # all published

    back = await connect(hub.url)
    await back.send(hello("app", seen, agent="agent1"))
    welcome = await back.recv()
    assert welcome["subtopic"] == "Welcome" and welcome["message"]["recovered"] is True
    missed = await read_until(back, 204)
    assert [number(f) for f in missed] == list(range(5, 205))  # all 200, in order, none twice
    assert [f["offset"] for f in missed] == list(range(seen["offset"] + 1, seen["offset"] + 201))
    assert all(f["recovered"] is True and f["epoch"] == seen["epoch"] and "retained" not in f for f in missed)
    await provider.send(numbered(205))
    live = await back.recv()
    assert number(live) == 205 and live["offset"] == seen["offset"] + 201 and "recovered" not in live


async def test_an_app_that_reconnects_while_events_flow_gets_each_once_without_a_gap(hub: HubServer) -> None:
    """The join rule with recovery: history read while live events are held; those in it are dropped."""
    provider, _ = await join(hub.url, "provider")
    app, _ = await app_at(hub.url)
    await stream(provider, 0, 3)
    seen = position((await read_until(app, 2))[-1])
    cut(app)
    flowing = asyncio.create_task(stream(provider, 3, 400))
    await asyncio.sleep(0)
    back = await connect(hub.url)
    await back.send(hello("app", seen, agent="agent1"))
    welcome = await back.recv()
    assert welcome["message"]["recovered"] is True
    frames = await read_until(back, 402)
    await flowing
    assert [number(f) for f in frames] == list(range(3, 403))
    assert [f["offset"] for f in frames] == list(range(seen["offset"] + 1, seen["offset"] + 401))
    # Recovered ones first, then live ones: never interleaved.
    marks = [bool(f.get("recovered")) for f in frames]
    assert marks == sorted(marks, reverse=True)


async def test_an_app_dropped_for_being_slow_reconnects_and_recovers_what_it_missed() -> None:
    config = HubConfig(port=0, open_mode=True, max_send_buffer=256 * 1024, **FAST_PROVIDER)
    async with HubServer(config) as hub:
        provider, _ = await join(hub.url, "provider")
        # The slow app: a tiny receive buffer, and it reads nothing after its replay.
        sock = socket.create_connection(("127.0.0.1", hub.port))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow = Client(await websockets.connect(hub.url, sock=sock, max_queue=1))
        await slow.send(hello("app", None, agent="agent1"))
        assert (await slow.recv())["subtopic"] == "Welcome"
        status = await slow.recv()
        seen = position(status)  # the last position it has seen: the replay's top
        witness, _ = await app_at(hub.url)
        count = 400
        reading = asyncio.create_task(read_until(witness, count - 1, timeout=60))  # a fast app
        for i in range(count):
            await provider.send(numbered(i, padding=40_000))  # big: the slow app's backlog grows fast
            await asyncio.sleep(0)
        await reading
        for _ in range(200):  # the hub drops it (4008) once its backlog passes max_send_buffer
            if hub.metrics.disconnects.labels("too_slow")._value.get() >= 1:
                break
            await asyncio.sleep(0.05)
        assert hub.metrics.disconnects.labels("too_slow")._value.get() == 1
        slow.ws.transport.abort()

        back = await connect(hub.url, max_size=None)
        await back.send(hello("app", seen, agent="agent1"))
        assert (await back.recv())["message"]["recovered"] is True
        missed = await read_until(back, count - 1, timeout=60)
        assert [number(f) for f in missed] == list(range(count))
        assert all(f["recovered"] is True for f in missed)


async def test_a_position_older_than_the_history_gets_recovered_false_and_the_retained_state() -> None:
    async with HubServer(HubConfig(port=0, open_mode=True, history_size=10, **FAST_PROVIDER)) as hub:
        provider, _ = await join(hub.url, "provider")
        app, _ = await app_at(hub.url)
        await stream(provider, 0, 3)
        seen = position((await read_until(app, 2))[-1])
        cut(app)
        await stream(provider, 3, 30)  # more than the 10 kept
        witness, _ = await app_at(hub.url, states=1)  # (all 30 have passed)

        back = await connect(hub.url)
        await back.send(hello("app", seen, agent="agent1"))
        welcome = await back.recv()
        assert welcome["message"]["recovered"] is False
        status = await back.recv()
        assert status["subtopic"] == "ProviderStatus" and status["retained"] is True
        assert status["message"] == {"connected": True} and status["epoch"] == seen["epoch"]
        state = await back.recv()
        assert state["retained"] is True and number(state) == 32  # the current state, never a silent gap
        assert state["offset"] == status["offset"] == seen["offset"] + 30
        await provider.send(numbered(33))
        live = await back.recv()
        assert number(live) == 33 and live["offset"] == status["offset"] + 1
        await witness.close()


async def test_a_position_from_before_a_restart_gets_recovered_false_and_the_new_state() -> None:
    port = free_port()
    config = HubConfig(port=port, open_mode=True, **FAST_PROVIDER)
    async with HubServer(config) as first:
        provider, _ = await join(first.url, "provider")
        app, _ = await app_at(first.url)
        await stream(provider, 0, 3)
        seen = position((await read_until(app, 2))[-1])
    async with HubServer(config) as second:  # a new process: a new memory broker, new epochs
        provider, _ = await join(second.url, "provider")
        await provider.send(numbered(7))
        witness, _ = await app_at(second.url, states=1)
        back = await connect(second.url)
        await back.send(hello("app", seen, agent="agent1"))
        assert (await back.recv())["message"]["recovered"] is False
        status = await back.recv()
        assert status["retained"] is True and status["epoch"] != seen["epoch"]
        state = await back.recv()
        assert number(state) == 7 and state["retained"] is True and state["epoch"] == status["epoch"]
        await witness.close()


async def test_a_supervisor_recovers_each_agent_it_can_and_is_told_which(hub: HubServer) -> None:
    provider_a, _ = await join(hub.url, "provider", "agent-a")
    provider_b, _ = await join(hub.url, "provider", "agent-b")
    app_a, _ = await app_at(hub.url, "agent-a")
    await stream(provider_a, 0, 2)
    await stream(provider_b, 0, 2)
    seen_a = position((await read_until(app_a, 1))[-1])
    await stream(provider_a, 2, 3)  # the supervisor missed these of agent-a
    await stream(provider_b, 2, 1)
    recover = {"agent-a": seen_a, "agent-b": {"epoch": "from-another-life", "offset": 1}}

    supervisor = await connect(hub.url)
    await supervisor.send(hello("supervisor", recover, agents=["agent-a", "agent-b"]))
    welcome = await supervisor.recv()
    assert welcome["message"]["recovered"] == {"agent-a": True, "agent-b": False}
    replay = [await supervisor.recv() for _ in range(5)]
    of_a = [f for f in replay if f["agent"] == "agent-a"]
    of_b = [f for f in replay if f["agent"] == "agent-b"]
    assert [number(f) for f in of_a] == [2, 3, 4] and all(f["recovered"] is True for f in of_a)
    assert [f["offset"] for f in of_a] == [seen_a["offset"] + 1, seen_a["offset"] + 2, seen_a["offset"] + 3]
    assert [f["subtopic"] for f in of_b] == ["ProviderStatus", "SetAgentState"]
    assert all(f["retained"] is True for f in of_b) and number(of_b[1]) == 2
    await provider_b.send(numbered(3))
    live = await supervisor.recv()
    assert live["agent"] == "agent-b" and number(live) == 3 and live["offset"] == of_b[0]["offset"] + 1


async def test_an_app_that_missed_nothing_recovers_with_nothing_to_replay(hub: HubServer) -> None:
    provider, _ = await join(hub.url, "provider")
    app, _ = await app_at(hub.url)
    await stream(provider, 0, 2)
    seen = position((await read_until(app, 1))[-1])
    cut(app)
    back = await connect(hub.url)
    await back.send(hello("app", seen, agent="agent1"))
    assert (await back.recv())["message"]["recovered"] is True
    await provider.send(numbered(2))
    first = await back.recv()  # no retained replay, no ProviderStatus: straight to live
    assert number(first) == 2 and first["offset"] == seen["offset"] + 1 and "recovered" not in first


async def test_a_provider_may_not_set_positions(hub: HubServer) -> None:
    provider, _ = await join(hub.url, "provider")
    app, _ = await app_at(hub.url)
    for key, value in (("offset", 99), ("epoch", "mine"), ("recovered", True)):
        await provider.send({**seed_event(), key: value})
        error = await provider.recv()
        assert error["data"]["errorType"] == "INVALID_ENVELOPE"
        assert "set by the hub" in error["data"]["errorMessage"]
    await provider.send(numbered(1))
    assert number(await app.recv()) == 1  # nothing of the refused ones reached the app


async def test_a_hello_whose_recover_does_not_fit_its_role_is_refused(hub: HubServer) -> None:
    for role, recover, extra in (
        ("app", {"agent1": {"epoch": "e", "offset": 1}}, {"agent": "agent1"}),
        ("supervisor", {"epoch": "e", "offset": 1}, {"agents": ["agent1"]}),
        ("provider", {"epoch": "e", "offset": 1}, {"agent": "agent1"}),
    ):
        client = await connect(hub.url)
        await client.send(hello(role, recover, **extra))
        error = await client.recv()
        assert error["subtopic"] == "ApiError" and "recover" in error["data"]["errorMessage"], error
        assert await client.closed() == 1008


async def test_a_supervisor_of_every_agent_recovers_the_agents_it_names(hub: HubServer) -> None:
    provider_a, _ = await join(hub.url, "provider", "agent-a")
    provider_b, _ = await join(hub.url, "provider", "agent-b")
    app_a, _ = await app_at(hub.url, "agent-a")
    await stream(provider_a, 0, 2)
    seen_a = position((await read_until(app_a, 1))[-1])
    await stream(provider_a, 2, 2)
    await stream(provider_b, 0, 1)

    supervisor = await connect(hub.url)
    await supervisor.send(hello("supervisor", {"agent-a": seen_a}, agents=["*"]))
    welcome = await supervisor.recv()
    assert welcome["message"]["recovered"] == {"agent-a": True}
    replay = [await supervisor.recv() for _ in range(4)]
    of_a = [f for f in replay if f["agent"] == "agent-a"]
    of_b = [f for f in replay if f["agent"] == "agent-b"]
    assert [(number(f), f["recovered"]) for f in of_a] == [(2, True), (3, True)]
    assert [(f["subtopic"], f["retained"]) for f in of_b] == [("ProviderStatus", True), ("SetAgentState", True)]
    await provider_a.send(numbered(4))
    live = await supervisor.recv()
    assert live["agent"] == "agent-a" and number(live) == 4 and live["offset"] == of_a[-1]["offset"] + 1
