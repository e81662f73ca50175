"""The virtual agent as a provider on a real hub: every v1 request, the failure paths,
calls and queued changes; everything it sends passes the hub's schemas."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, TypeVar

import orjson
import pytest

from bridge.client import (
    AgentStateNotFound,
    BridgeClient,
    Calls,
    ConnectionState,
    Envelope,
    MuteFailed,
    Replaced,
    Stream,
    UpdateAgentStateFailed,
)
from bridge.hub.config import HubConfig
from bridge.hub.server import HubServer
from bridge.protocol.catalog import Catalog
from bridge.protocol.tokens import issue_token
from bridge.sim.agent_model import AgentModel, AgentState, StateType
from bridge.sim.virtual_agent import VirtualAgent, agent_of_token

from .helpers import FAST, within

SET_AGENT_STATE = "Amazon/Agent/SetAgentState"
INBOUND_CALL = "Amazon/InboundCall/InboundCallStateChange"
CATALOG = Catalog.load()
T = TypeVar("T")


class Watcher:
    """An app that records every event it receives and checks each against the catalog."""

    def __init__(self, bus: BridgeClient) -> None:
        self.bus = bus
        self.all = bus.events()
        self.states: Stream[Envelope] = bus.events(SET_AGENT_STATE)
        self.seen: list[Envelope] = []

    async def state(self) -> dict[str, Any]:
        """The next SetAgentState message."""
        envelope = await within(self.states.get())
        return dict(envelope["message"])

    def check_all(self) -> None:
        self.all.close()
        for envelope in self.all._items:
            if isinstance(envelope, dict):
                problem = CATALOG.validate(orjson.loads(orjson.dumps(envelope)))
                assert problem is None, (problem, envelope)
                self.seen.append(envelope)


@pytest.fixture
async def app(hub: HubServer, va: VirtualAgent) -> AsyncIterator[Watcher]:
    async with BridgeClient(hub.url, agent="agent1", source="test-app", **FAST) as bus:
        watcher = Watcher(bus)
        first = await watcher.state()
        assert first["event"] == "Available"  # the retained state, published on connect
        yield watcher
        watcher.check_all()
        assert watcher.seen, "the watcher saw no event at all"


async def ask(app: Watcher, subtopic: str, data: dict[str, Any] | None = None) -> Envelope:
    return await within(app.bus.request("Amazon", "Agent", subtopic, data, timeout=5))


# ----- every v1 request --------------------------------------------------------------------


async def test_set_not_ready_and_set_ready(app: Watcher, va: VirtualAgent) -> None:
    answer = await ask(app, "SetNotReady", {"ReasonCodeId": "Break"})
    assert answer["message"]["data"]["state"] == "Not_Ready"
    assert answer["message"]["data"]["reasonCode"] == {"id": "Break"}
    assert "replyTo" in answer
    assert await app.state() == answer["message"]
    ready = await ask(app, "SetReady")
    assert (ready["message"]["event"], ready["message"]["data"]["state"]) == ("Available", "Ready")
    named = await ask(app, "SetReady", {"ReasonCodeId": "Available"})
    assert named["message"]["event"] == "Available"
    assert va.handled == 3


async def test_logout(app: Watcher) -> None:
    answer = await ask(app, "Logout")
    data = answer["message"]["data"]
    assert (data["state"], data["type"], "reasonCode" in data) == ("Logout", "offline", False)
    sync = await ask(app, "StateSync")
    assert sync["message"]["loginState"] == "LoggedOut"


async def test_get_states(app: Watcher) -> None:
    answer = await ask(app, "GetStates")
    assert answer["subtopic"] == "GetStates"
    assert [(s["label"], s["type"]) for s in answer["message"]["states"]] == [
        ("Available", "routable"),
        ("Break", "not_routable"),
        ("Lunch", "not_routable"),
        ("Training", "not_routable"),
        ("Offline", "offline"),
    ]


async def test_state_sync(app: Watcher) -> None:
    answer = await ask(app, "StateSync")
    message = answer["message"]
    assert answer["subtopic"] == "StateSync"
    assert message["loginState"] == "LoggedIn"
    assert message["agentInfo"]["loginName"] == "agent1"
    assert message["agentState"]["name"] == "Available"
    assert message["rules"]["ButtonStates"]["items"]["Ready"] == "Disable"


async def test_unknown_reason_is_agent_state_not_found(app: Watcher) -> None:
    with pytest.raises(AgentStateNotFound) as caught:
        await ask(app, "SetNotReady", {"ReasonCodeId": "Coffee"})
    assert caught.value.msg == "Specified Agent State not found."
    assert "Coffee" in caught.value.error_message
    with pytest.raises(AgentStateNotFound):
        await ask(app, "SetReady", {"ReasonCodeId": "Break"})  # not a routable state


async def test_fail_updates(app: Watcher, va: VirtualAgent) -> None:
    await va.set_fail_updates(True)
    for subtopic, data in (
        ("SetNotReady", {"ReasonCodeId": "Break"}),
        ("SetReady", None),
        ("Logout", None),
    ):
        with pytest.raises(UpdateAgentStateFailed) as caught:
            await ask(app, subtopic, data)
        assert caught.value.error_type == "UPDATE_AGENT_STATE_FAILED"
    await va.set_fail_updates(False)
    assert (await ask(app, "SetNotReady", {"ReasonCodeId": "Break"}))["message"]["event"] == "Break"


async def test_mute_off_call_fails(app: Watcher) -> None:
    for subtopic in ("Mute", "Unmute"):
        with pytest.raises(MuteFailed) as caught:
            await ask(app, subtopic)
        assert caught.value.error_type == "MUTE_FAILED"


async def test_mute_and_unmute_on_a_call(app: Watcher, va: VirtualAgent) -> None:
    assert await va.start_call()
    busy = await app.state()
    assert (busy["event"], busy["data"]["type"], busy["data"]["state"]) == (
        "Busy",
        "system",
        "Not_Ready",
    )
    assert busy["rules"]["ButtonStates"]["items"]["mute"] == "Enable"
    muted = await ask(app, "Mute")
    assert muted["message"]["data"]["muted"] is True
    items = muted["message"]["rules"]["ButtonStates"]["items"]
    assert (items["mute"], items["unmute"]) == ("Hide", "Enable")
    unmuted = await ask(app, "Unmute")
    assert unmuted["message"]["data"]["muted"] is False


# ----- calls and queued changes -----------------------------------------------------------


async def test_changes_during_a_call_are_queued(app: Watcher, va: VirtualAgent) -> None:
    await va.start_call()
    assert (await app.state())["event"] == "Busy"
    queued = await ask(app, "SetNotReady", {"ReasonCodeId": "Lunch"})
    assert queued["message"]["event"] == "Busy"  # still on the call
    assert va.model.next_state == AgentState("Lunch", StateType.NOT_ROUTABLE)
    await ask(app, "Mute")
    await va.end_call()
    states = [await app.state() for _ in range(3)]  # queued answer, mute, then the call's end
    after = states[-1]
    assert (after["event"], after["data"]["muted"]) == ("Lunch", False)
    assert app.bus.last(SET_AGENT_STATE) is not None
    assert "replyTo" not in app.bus.last(SET_AGENT_STATE)  # nobody asked: the call ended


async def test_scheduled_calls(hub: HubServer) -> None:
    # A call rings; once answered, the customer hangs up and after-call work ends by itself.
    async with (
        VirtualAgent(
            hub.url, agent="agent2", call_every=0.01, call_length=0.01, acw_timeout=0.01, **FAST
        ),
        BridgeClient(hub.url, agent="agent2", **FAST) as bus,
    ):
        watcher = Watcher(bus)
        ringing = await within(
            bus.wait_for(INBOUND_CALL, lambda e: e["message"]["call"]["event"] == "connecting")
        )
        await within(Calls(bus).answer(ringing["message"]["call"]["id"]))
        seen: list[str] = []
        while seen[-3:] != ["Busy", "AfterCallWork", "Available"]:
            seen.append((await watcher.state())["event"])
        assert "PendingBusy" in seen  # while it rang
        watcher.check_all()


async def test_scheduled_calls_skip_a_not_ready_agent(hub: HubServer) -> None:
    model = AgentModel("agent3", initial_state="Break")
    async with VirtualAgent(
        hub.url, model=model, agent="agent3", call_every=0.01, call_length=0.01, **FAST
    ) as va:
        await asyncio.sleep(0.1)  # several schedule ticks (the check is that nothing happens)
        assert va.model.on_call is False and va.model.state.name == "Break"


async def test_toggle_call(app: Watcher, va: VirtualAgent) -> None:
    assert await va.toggle_call() is True
    assert (await app.state())["event"] == "Busy"
    assert await va.toggle_call() is True
    assert (await app.state())["event"] == "Available"
    assert await va.end_call() is False


# ----- configuration, identity, takeover ------------------------------------------------


async def test_configured_states(hub: HubServer) -> None:
    states = [
        AgentState("Ready", StateType.ROUTABLE),
        AgentState("Meeting", StateType.NOT_ROUTABLE),
        AgentState("Away", StateType.OFFLINE),
    ]
    async with (
        VirtualAgent(
            hub.url, agent="agent4", model=AgentModel("agent4", states=states, name="Dana"), **FAST
        ),
        BridgeClient(hub.url, agent="agent4", **FAST) as bus,
    ):
        answer = await within(bus.request("Amazon", "Agent", "GetStates"))
        assert [s["label"] for s in answer["message"]["states"]] == ["Ready", "Meeting", "Away"]
        meeting = await within(
            bus.request("Amazon", "Agent", "SetNotReady", {"ReasonCodeId": "Meeting"})
        )
        assert meeting["message"]["data"]["name"] == "Dana"
        with pytest.raises(AgentStateNotFound):
            await within(bus.request("Amazon", "Agent", "SetNotReady", {"ReasonCodeId": "Break"}))


async def test_with_a_token_the_agent_comes_from_it() -> None:
    secret = "virtual-agent-tests-secret-0123456789"
    token = issue_token(secret, agent="agent9", role="provider")
    assert agent_of_token(token) == "agent9"
    with pytest.raises(ValueError):
        agent_of_token("not-a-token")
    async with (
        HubServer(HubConfig(host="127.0.0.1", port=0, secret=secret)) as hub,
        VirtualAgent(hub.url, token=token, **FAST) as va,
    ):
        assert va.model.login_name == "agent9"
        assert va.client.agent == "agent9"


async def test_a_newer_provider_replaces_it(hub: HubServer, va: VirtualAgent) -> None:
    async with VirtualAgent(hub.url, agent="agent1", **FAST) as newer:
        with pytest.raises(Replaced):
            await within(va.wait_closed())
        assert va.client.state is ConnectionState.CLOSED
        assert newer.client.state is ConnectionState.OPEN


async def test_republishes_its_state_after_a_drop(app: Watcher, va: VirtualAgent) -> None:
    await ask(app, "SetNotReady", {"ReasonCodeId": "Training"})
    assert (await app.state())["event"] == "Training"
    assert va.client._ws is not None
    va.client._ws.transport.abort()  # the provider's network drops
    # Apps see the provider go and come back, then its state again, unchanged.
    again = await app.state()
    assert again["event"] == "Training"
    assert va.client.connections == 2


def test_needs_an_agent() -> None:
    with pytest.raises(ValueError):
        VirtualAgent("ws://127.0.0.1:1/ws")


async def test_with_reclaim_it_comes_back_when_the_replacing_provider_leaves(hub: HubServer) -> None:
    # The demo's case: a page opened as agent1's provider replaces the virtual agent
    # (close 4001); when that page leaves, agent1 must be served again, as it was.
    async with (
        VirtualAgent(hub.url, agent="agent1", reclaim=True, reclaim_delay=0.05, **FAST) as va,
        BridgeClient(hub.url, agent="agent1", source="test-app", **FAST) as bus,
    ):
        app = Watcher(bus)
        assert (await app.state())["event"] == "Available"
        await ask(app, "SetNotReady", {"ReasonCodeId": "Training"})
        assert (await app.state())["event"] == "Training"
        statuses = bus.events("Bridge/Session/ProviderStatus")
        for round_ in (1, 2):  # and again: it is not a one-off
            async with BridgeClient(hub.url, agent="agent1", role="provider", source="a-page", **FAST):
                with pytest.raises(Replaced):
                    await within(va.wait_closed())
            # The page left (apps see the agent without a provider), then the virtual
            # agent is the provider again, with the state it had.
            for connected in (False, True):
                while (await within(statuses.get()))["message"]["connected"] is not connected:
                    pass
            await within(va.client.wait_for_state(ConnectionState.OPEN))
            assert (await app.state())["event"] == "Training"
            answer = await ask(app, "SetReady")
            assert answer["message"]["event"] == "Available"
            assert (await app.state())["event"] == "Available"
            await ask(app, "SetNotReady", {"ReasonCodeId": "Training"})
            assert (await app.state())["event"] == "Training"
            assert va.reclaimed == round_
