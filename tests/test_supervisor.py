"""Supervisors (protocol 1.2) through the Python client, against an in-process hub over real sockets.

What a wallboard or a recorder relies on: one connection follows many agents,
every frame says which agent it is about, the replay after Welcome gives each
agent's state, agents that appear later arrive live, and with control a
request reaches the named agent's provider and nobody else's.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import jwt
import pytest
import websockets

from bridge.client import (
    BridgeClient,
    Calls,
    ConnectionState,
    Forbidden,
    NotAuthenticated,
    ProviderUnavailable,
    agent_of,
)
from bridge.hub.config import HubConfig
from bridge.hub.server import HubServer
from bridge.protocol import PROVIDER_STATUS, Role
from bridge.protocol.tokens import issue_token
from bridge.sim.agent_model import AgentModel
from bridge.sim.virtual_agent import VirtualAgent

from .conftest import SECRET
from .helpers import FAST, Client, connect, hello, join, join_app, seed_event, within

STATE = "Amazon/Agent/SetAgentState"
CALL = "Amazon/InboundCall/InboundCallStateChange"


@pytest.fixture
async def floor(hub: HubServer) -> AsyncIterator[dict[str, VirtualAgent]]:
    """Three virtual agents on ``hub``: agent1 Available, agent2 on Break, agent3 on a call."""
    agents = {
        "agent1": VirtualAgent(hub.url, agent="agent1", **FAST),
        "agent2": VirtualAgent(hub.url, model=AgentModel("agent2", initial_state="Break"), agent="agent2", **FAST),
        "agent3": VirtualAgent(hub.url, agent="agent3", **FAST),
    }
    for va in agents.values():
        await va.start()
    await agents["agent3"].start_call()
    yield agents
    for va in agents.values():
        await va.close()


def supervisor(url: str, **options: Any) -> BridgeClient:
    return BridgeClient(url, role="supervisor", source="lead1", **FAST, **options)


# ----- joining and the replay ----------------------------------------------------------------


async def test_welcome_gives_the_scope_and_the_replay_gives_every_agent(
    hub: HubServer, floor: dict[str, VirtualAgent]
) -> None:
    async with supervisor(hub.url, agents=["*"]) as bus:
        assert bus.welcome is not None and bus.welcome["role"] == "supervisor"
        assert (bus.supervisor, bus.scope, bus.control) == ("lead1", ("*",), False)
        assert bus.agent is None and bus.provider_connected is None
        for name, state in (("agent1", "Available"), ("agent2", "Break"), ("agent3", "Busy")):
            event = await within(bus.wait_for(STATE, agent=name))
            assert event["agent"] == name and agent_of(event) == name
            assert event["retained"] is True
            assert event["message"]["event"] == state
            status = bus.last(PROVIDER_STATUS, agent=name)
            assert status is not None and status["message"] == {"connected": True}
        call = await within(bus.wait_for(CALL, agent="agent3"))
        assert call["retained"] is True and call["message"]["call"]["event"] == "connected"
        assert bus.last(CALL, agent="agent1") is None
        assert set(bus.seen_agents) == {"agent1", "agent2", "agent3"}


async def test_the_replay_per_agent_is_status_then_state_then_calls(
    hub: HubServer, floor: dict[str, VirtualAgent]
) -> None:
    async with supervisor(hub.url, agents=["agent3", "agent2"]) as bus, bus.events() as events:
        seen: dict[str, list[str]] = {}
        while sum(map(len, seen.values())) < 5:  # agent2: status, state; agent3: status, state, call
            event = await within(events.get())
            seen.setdefault(event["agent"], []).append(event["subtopic"])
        assert seen == {"agent2": ["ProviderStatus", "SetAgentState"],
                        "agent3": ["ProviderStatus", "SetAgentState", "InboundCallStateChange"]}


async def test_a_named_scope_shows_only_those_agents(hub: HubServer, floor: dict[str, VirtualAgent]) -> None:
    async with supervisor(hub.url, agents=["agent2"]) as bus, bus.events(STATE, current=True) as events:
        first = await within(events.get())
        assert first["agent"] == "agent2"
        await floor["agent1"].start_call()
        await floor["agent2"].start_call()
        changed = await within(events.get())
        assert changed["agent"] == "agent2" and changed["message"]["event"] == "Busy"
        assert bus.seen_agents == ("agent2",)
        assert bus.last(STATE, agent="agent1") is None


async def test_an_agent_that_appears_later_arrives_live(hub: HubServer) -> None:
    async with supervisor(hub.url, agents=["*"]) as bus, bus.events(agent="agent9") as events:
        async with VirtualAgent(hub.url, agent="agent9", **FAST):
            status = await within(events.get())
            assert status["subtopic"] == "ProviderStatus" and status["message"] == {"connected": True}
            assert "retained" not in status
            state = await within(events.get())
            assert state["subtopic"] == "SetAgentState" and "retained" not in state
        gone = await within(events.get())
        assert gone["subtopic"] == "ProviderStatus" and gone["message"] == {"connected": False}
        assert bus.last(PROVIDER_STATUS, agent="agent9") == gone


async def test_events_filter_by_agent_and_current_gives_the_last_of_each_agent(
    hub: HubServer, floor: dict[str, VirtualAgent]
) -> None:
    async with supervisor(hub.url, agents=["*"]) as bus:
        for name in floor:
            await within(bus.wait_for(STATE, agent=name))
        async with bus.events(STATE, current=True) as events:
            replayed = {(await within(events.get()))["agent"] for _ in floor}
        assert replayed == set(floor)
        async with bus.events(STATE, agent=["agent1", "agent2"]) as some:
            await floor["agent3"].end_call()
            await floor["agent1"].start_call()
            assert (await within(some.get()))["agent"] == "agent1"


# ----- control ------------------------------------------------------------------------------


async def test_a_request_with_control_reaches_the_named_agent_only(
    hub: HubServer, floor: dict[str, VirtualAgent]
) -> None:
    async with supervisor(hub.url, agents=["*"], control=True) as bus, BridgeClient(
        hub.url, agent="agent1", **FAST
    ) as app:
        assert bus.control is True
        answer = await within(bus.request("Amazon/Agent/SetNotReady", {"ReasonCodeId": "Lunch"}, agent="agent1"))
        assert answer["agent"] == "agent1" and answer["message"]["event"] == "Lunch"
        # The app of agent1 sees the answer too, without the supervisor's key.
        seen = await within(app.wait_for(STATE, lambda e: e["message"]["event"] == "Lunch"))
        assert "agent" not in seen
        assert floor["agent1"].model.state.name == "Lunch"
        assert floor["agent2"].model.state.name == "Break"


async def test_the_provider_sees_a_supervisors_request_as_an_apps(open_hub: HubServer) -> None:
    """Routed like an app's request: no ``agent`` key, the supervisor's ``source``; the answer
    comes back to the supervisor with its own id and the agent."""
    provider, _ = await join(open_hub.url, "provider", "agent7")
    async with supervisor(open_hub.url, agents=["agent7"], control=True) as bus:
        pending = asyncio.ensure_future(
            bus.request("Amazon/Agent/SetNotReady", {"ReasonCodeId": "Break"}, agent="agent7"))
        request = await provider.recv_kind("SetNotReady")
        assert "agent" not in request
        assert request["source"] == "lead1" and request["data"] == {"ReasonCodeId": "Break"}
        await provider.send(seed_event(request["id"]))
        answer = await within(pending)
        assert answer["agent"] == "agent7" and answer["subtopic"] == "SetAgentState"
    await provider.close()


async def test_requests_without_control_without_agent_or_outside_the_scope_are_forbidden(
    hub: HubServer, floor: dict[str, VirtualAgent]
) -> None:
    async with supervisor(hub.url, agents=["agent1"]) as watcher:
        with pytest.raises(Forbidden) as no_control:
            await within(watcher.request("Amazon/Agent/SetReady", agent="agent1"))
        assert no_control.value.agent == "agent1"
    async with supervisor(hub.url, agents=["agent1"], control=True) as lead:
        with pytest.raises(Forbidden):
            await within(lead.request("Amazon/Agent/SetReady"))
        with pytest.raises(Forbidden) as outside:
            await within(lead.request("Amazon/Agent/SetReady", agent="agent2"))
        assert outside.value.agent == "agent2"
        # Nothing reached agent2's provider; the supervisor is still connected and useful.
        assert floor["agent2"].model.state.name == "Break"
        answer = await within(lead.request("Amazon/Agent/SetNotReady", {"ReasonCodeId": "Break"}, agent="agent1"))
        assert answer["message"]["event"] == "Break"


async def test_an_agent_without_provider_is_unavailable(hub: HubServer) -> None:
    async with supervisor(hub.url, agents=["*"], control=True) as bus:
        with pytest.raises(ProviderUnavailable) as failure:
            await within(bus.request("Amazon/Agent/SetReady", agent="nobody"))
        assert failure.value.agent == "nobody"


async def test_calls_for_one_agent_through_a_supervisor(hub: HubServer, floor: dict[str, VirtualAgent]) -> None:
    async with supervisor(hub.url, agents=["agent1"], control=True) as bus:
        calls = Calls(bus, agent="agent1")
        async with calls.events() as stream:
            contact = await floor["agent1"].ring()
            ringing = await within(stream.get())
            assert ringing.id == contact and ringing.ringing
            answered = await within(calls.answer(contact))
            assert answered.event == "connected"
        assert floor["agent1"].model.on_call


# ----- tokens --------------------------------------------------------------------------------


async def test_a_supervisor_token_sets_name_scope_and_control(secure_hub: HubServer) -> None:
    token = issue_token(SECRET, agent="lead1", role=Role.SUPERVISOR, agents=["agent1", "agent2"], control=True)
    async with BridgeClient(secure_hub.url, role="supervisor", token=token, source="wallboard", **FAST) as bus:
        assert (bus.supervisor, bus.scope, bus.control) == ("lead1", ("agent1", "agent2"), True)
        with pytest.raises(ProviderUnavailable):
            await within(bus.request("Amazon/Agent/SetReady", agent="agent2"))
        with pytest.raises(Forbidden):
            await within(bus.request("Amazon/Agent/SetReady", agent="agent3"))


def forged(**claims: Any) -> str:
    """A token signed with the hub's secret, with these claims as they are (issue_token refuses them)."""
    now = int(time.time())
    return jwt.encode({"sub": "lead1", "role": "supervisor", "iat": now, "exp": now + 60, **claims},
                      SECRET, algorithm="HS256")


BAD_CLAIMS = [
    pytest.param({}, id="no-agents"),
    pytest.param({"agents": []}, id="empty-list"),
    pytest.param({"agents": "agent1"}, id="a-string"),
    pytest.param({"agents": {"agent1": True}}, id="an-object"),
    pytest.param({"agents": [1, 2]}, id="not-names"),
    pytest.param({"agents": ["*", "agent1"]}, id="star-mixed"),
    pytest.param({"agents": ["agent1"], "control": "yes"}, id="control-not-boolean"),
]


@pytest.mark.parametrize("claims", BAD_CLAIMS)
async def test_a_token_with_a_bad_scope_is_refused_and_closed(secure_hub: HubServer, claims: dict[str, Any]) -> None:
    client = await connect(secure_hub.url)
    await client.send(hello("supervisor", token=forged(**claims)))
    refusal = await client.recv()
    assert refusal["subtopic"] == "ApiError" and refusal["data"]["errorType"] == "NOT_AUTHENTICATED", refusal
    assert await client.closed() == 1008


@pytest.mark.parametrize("claims", BAD_CLAIMS[:3])
def test_issue_token_refuses_a_bad_scope(claims: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        issue_token(SECRET, agent="lead1", role=Role.SUPERVISOR, agents=claims.get("agents"))


async def test_the_client_stops_on_a_refused_supervisor_token(secure_hub: HubServer) -> None:
    bus = BridgeClient(secure_hub.url, role="supervisor", token=forged(agents=[]), **FAST)
    with pytest.raises(NotAuthenticated):
        await within(bus.start())


# ----- the client's own checks -------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "fault"),
    [
        ({"role": "supervisor", "agent": "agent1"}, "not agent"),
        ({"role": "supervisor"}, "exactly one"),
        ({"role": "supervisor", "agents": ["a"], "token": "t"}, "exactly one"),
        ({"role": "supervisor", "agents": "agent1"}, "not a string"),
        ({"role": "supervisor", "agents": []}, "non-empty"),
        ({"role": "supervisor", "agents": ["*", "a"]}, "never mixed"),
        ({"role": "supervisor", "token": "t", "control": True}, "from the token"),
        ({"agent": "agent1", "agents": ["a"]}, "role='supervisor'"),
        ({"agent": "agent1", "control": True}, "role='supervisor'"),
    ],
)
def test_the_client_refuses_what_the_hub_would(options: dict[str, Any], fault: str) -> None:
    with pytest.raises(ValueError, match=fault):
        BridgeClient("ws://127.0.0.1:1/ws", **options)


async def test_an_app_cannot_name_an_agent(hub: HubServer, va: VirtualAgent) -> None:
    async with BridgeClient(hub.url, agent="agent1", **FAST) as app:
        with pytest.raises(ValueError, match="supervisor"):
            await app.request("Amazon/Agent/SetReady", agent="agent2")
        assert app.agent == "agent1" and app.supervisor is None and app.scope == ()


async def test_a_reconnect_forgets_the_last_events_and_replays_them(hub: HubServer, va: VirtualAgent) -> None:
    """last() is per connection for supervisors too: after a hub restart it refills from the new one."""
    port = hub.port
    bus = supervisor(hub.url, agents=["*"])
    await bus.start()
    try:
        await within(bus.wait_for(STATE, agent="agent1"))
        first = bus.connections
        await hub.close()
        await within(bus.wait_for_state(ConnectionState.RECONNECTING))
        async with HubServer(HubConfig(host="127.0.0.1", port=port, open_mode=True)):
            await within(bus.wait_for_state(ConnectionState.OPEN), 10)
            assert bus.connections == first + 1
            # Retained if the provider came back first, live otherwise: either way it is agent1's.
            event = await within(bus.wait_for(STATE, agent="agent1"), 10)
            assert event["agent"] == "agent1" and bus.seen_agents == ("agent1",)
    finally:
        await bus.close()



async def test_a_supervisor_too_slow_for_2000_agents_is_dropped_and_nobody_else_loses_a_frame() -> None:
    """A supervisor of every agent that stops reading while 2,000 agents change state is closed
    (4008, counted as too slow); an app and a reading supervisor get every frame."""
    config = HubConfig(port=0, open_mode=True, max_pending_hellos=5000, max_pending_hellos_per_address=5000)
    async with HubServer(config) as hub:
        agents = [f"floor{n}" for n in range(2000)]
        providers = [(await join(hub.url, "provider", agent))[0] for agent in agents]
        app = await join_app(hub.url, "floor7")
        reader = Client(await websockets.connect(hub.url, max_queue=None))
        await reader.send({"channel": "Bridge", "topic": "Session", "subtopic": "Hello", "source": "reader",
                           "data": {"role": "supervisor", "agents": ["*"]}})
        assert (await reader.recv())["subtopic"] == "Welcome"
        replayed = [await reader.recv() for _ in range(2000)]  # one ProviderStatus per agent
        assert {frame["agent"] for frame in replayed} == set(agents)
        sock = socket.create_connection(("127.0.0.1", hub.port))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # and it never reads
        stalled = Client(await websockets.connect(hub.url, sock=sock, max_queue=1))
        await stalled.send({"channel": "Bridge", "topic": "Session", "subtopic": "Hello", "source": "stalled",
                            "data": {"role": "supervisor", "agents": ["*"]}})
        async def states(client: Client, count: int) -> int:
            seen = 0
            while seen < count:
                if (await client.recv(timeout=30))["subtopic"] == "SetAgentState":
                    seen += 1
            return seen

        rounds = 3
        reading = [asyncio.create_task(states(reader, 2000 * rounds)), asyncio.create_task(states(app, rounds))]
        changed = seed_event()
        changed["message"]["data"]["name"] = "x" * 2000  # enough bytes to fill the kernel's buffers too
        for _ in range(rounds):  # every agent changes state, three times (about 17 MB to each supervisor)
            for n, provider in enumerate(providers):
                await provider.send(changed)
                if n % 50 == 0:
                    await asyncio.sleep(0.002)  # the readers share this process: let them read
        assert await asyncio.gather(*reading) == [2000 * rounds, rounds]
        for _ in range(200):
            if hub.metrics.disconnects.labels("too_slow")._value.get() >= 1:
                break
            await asyncio.sleep(0.05)
        assert hub.metrics.disconnects.labels("too_slow")._value.get() == 1
        # Still served: the next change reaches the reading supervisor and the app.
        await providers[7].send(seed_event())
        assert (await reader.recv_kind("SetAgentState"))["agent"] == "floor7"
        assert (await app.recv_kind("SetAgentState"))["message"]["event"]
        for provider in providers:
            await provider.close()
