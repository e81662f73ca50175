"""Supervisors across hub nodes over the real Redis server (issue 12, item 2).

A supervisor joins node A; the agents it follows have their providers and
apps on node B. It must see them (replayed, then live), see agents that
appear on B later (scope ``*``), reach their providers with control, and be
told when node B dies (``ProviderStatus`` down) and when the providers come
back on another node (up).

Each test uses its own key prefix and deletes only that prefix afterwards; the
nodes are real ``connect-bridge serve --open --redis`` processes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.client import BridgeClient, Forbidden, ProviderUnavailable
from bridge.sim.agent_model import AgentModel
from bridge.sim.virtual_agent import VirtualAgent

from .helpers import FAST, within
from .redis_helpers import Client, HubProcess, start_hubs

pytestmark = pytest.mark.redis

STATE = "Amazon/Agent/SetAgentState"
STATUS = "Bridge/Session/ProviderStatus"


@pytest.fixture
def nodes(redis_url: str, prefix: str, tmp_path: Path) -> Iterator[tuple[HubProcess, HubProcess]]:
    """Node A (the supervisor's) and node B (the agents'), sharing ``prefix``."""
    a, b = start_hubs(2, redis_url, prefix, tmp_path, request_timeout=3.0)
    yield a, b
    a.stop()
    b.stop()


def supervisor(url: str, agents: list[str], *, control: bool = False) -> BridgeClient:
    return BridgeClient(url, role="supervisor", agents=agents, control=control, source="lead1", **FAST)


def virtual(url: str, agent: str, **options: Any) -> VirtualAgent:
    return VirtualAgent(url, agent=agent, **FAST, **options)


async def test_a_supervisor_follows_agents_of_another_node(nodes: tuple[HubProcess, HubProcess]) -> None:
    a, b = nodes
    async with virtual(b.ws_url, "r1") as r1, virtual(
        b.ws_url, "r2", model=AgentModel("r2", initial_state="Break")
    ) as r2:
        await r2.start_call()
        app = await Client.join(b.ws_url, "app", "r1")
        async with supervisor(a.ws_url, ["*"], control=True) as bus:
            # The replay: each agent's status and state, and r2's live call, from node B's retained state.
            for name, state in (("r1", "Available"), ("r2", "Busy")):
                event = await within(bus.wait_for(STATE, agent=name))
                assert event["message"]["event"] == state
                status = await within(bus.wait_for(STATUS, agent=name))
                assert status["message"] == {"connected": True}
            call = await within(bus.wait_for("Amazon/InboundCall/InboundCallStateChange", agent="r2"))
            assert call["message"]["call"]["event"] == "connected"

            # Live: a change on node B reaches the supervisor on node A, with its agent.
            async with bus.events(STATE, agent="r2") as changes:
                await r2.end_call()
                changed = await within(changes.get())
                assert changed["message"]["event"] == "Break" and "retained" not in changed

            # Control: the request crosses to r1's provider on B; the answer comes back to A,
            # and r1's app on B sees it too.
            answer = await within(bus.request("Amazon/Agent/SetNotReady", {"ReasonCodeId": "Lunch"}, agent="r1"))
            assert answer["agent"] == "r1" and answer["message"]["event"] == "Lunch"
            assert r1.model.state.name == "Lunch"
            seen, _ = await app.recv_until(lambda f: f.get("subtopic") == "SetAgentState"
                                           and f["message"]["event"] == "Lunch")
            assert "agent" not in seen
            # An agent with no provider anywhere: PROVIDER_UNAVAILABLE, from across the bus too.
            with pytest.raises(ProviderUnavailable):
                await within(bus.request("Amazon/Agent/SetReady", agent="nobody"))
        await app.close()


async def test_an_agent_appearing_later_on_another_node_arrives_live(nodes: tuple[HubProcess, HubProcess]) -> None:
    a, b = nodes
    async with supervisor(a.ws_url, ["*"]) as every, supervisor(a.ws_url, ["late2"]) as named:
        async with every.events(agent="late1") as late1, named.events() as late2:
            async with virtual(b.ws_url, "late1"), virtual(b.ws_url, "late2"):
                status = await within(late1.get(), 10)
                assert status["subtopic"] == "ProviderStatus" and status["message"] == {"connected": True}
                assert "retained" not in status
                state = await within(late1.get(), 10)
                assert state["subtopic"] == "SetAgentState" and state["agent"] == "late1"
                assert "retained" not in state
                first = await within(late2.get(), 10)
                assert first["agent"] == "late2" and "retained" not in first
            # Both providers left node B: each supervisor is told.
            await within(every.wait_for(STATUS, lambda e: e["message"] == {"connected": False},
                                        agent="late1", current=False), 10)
        assert set(named.seen_agents) == {"late2"}


async def test_a_named_scope_stays_named_across_nodes(nodes: tuple[HubProcess, HubProcess]) -> None:
    a, b = nodes
    async with virtual(b.ws_url, "n1"), virtual(b.ws_url, "n2") as n2, supervisor(
        a.ws_url, ["n1"], control=True
    ) as bus:
        await within(bus.wait_for(STATE, agent="n1"))
        with pytest.raises(Forbidden):
            await within(bus.request("Amazon/Agent/SetReady", agent="n2"))
        await n2.start_call()
        await asyncio.sleep(0.3)  # n2's change has had time to cross; it must not arrive
        assert bus.seen_agents == ("n1",)
        assert n2.model.on_call


async def test_a_node_dying_under_a_supervisor(redis_url: str, prefix: str, tmp_path: Path) -> None:
    """Node B is killed (SIGKILL) while a supervisor on A follows its agents: ProviderStatus down
    for each, then up again when the providers reconnect to A; control works again."""
    survivor, doomed = start_hubs(2, redis_url, prefix, tmp_path, request_timeout=3.0)
    providers: list[Client] = []
    try:
        for name in ("d1", "d2"):
            providers.append(await Client.join(doomed.ws_url, "provider", name))
        every = supervisor(survivor.ws_url, ["*"], control=True)
        named = supervisor(survivor.ws_url, ["d2"])
        async with every, named:
            for bus in (every, named):
                await within(bus.wait_for(STATUS, lambda e: e["message"]["connected"], agent="d2"))
            await within(every.wait_for(STATUS, lambda e: e["message"]["connected"], agent="d1"))

            doomed.kill()
            for bus, names in ((every, ("d1", "d2")), (named, ("d2",))):
                for name in names:
                    down = await within(bus.wait_for(STATUS, lambda e: not e["message"]["connected"], agent=name), 15)
                    assert down["agent"] == name
            with pytest.raises(ProviderUnavailable):
                await within(every.request("Amazon/Agent/SetReady", agent="d1"))

            # The agents' softphones reconnect to the surviving node.
            async with virtual(survivor.ws_url, "d1") as d1, virtual(survivor.ws_url, "d2"):
                for bus, names in ((every, ("d1", "d2")), (named, ("d2",))):
                    for name in names:
                        await within(bus.wait_for(STATUS, lambda e: e["message"]["connected"], agent=name), 10)
                answer = await within(every.request("Amazon/Agent/SetNotReady", {"ReasonCodeId": "Break"},
                                                    agent="d1"))
                assert answer["agent"] == "d1" and d1.model.state.name == "Break"
            assert (await survivor.ahealthz())["status"] == "ok"
    finally:
        for provider in providers:
            await provider.close()
        survivor.stop()
        doomed.stop()

