"""Voice calls on the bus (issue 11): every request of the InboundCall family through the
virtual agent over real sockets, the faults on the Python side, and retention of calls.

Every event an app receives here is checked against the schemas too.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from bridge.client import (
    BridgeClient,
    Call,
    CallFailed,
    CallNotFound,
    Calls,
    CallStream,
    Envelope,
    InvalidRequest,
    ProviderUnavailable,
    QuickConnect,
)
from bridge.hub.server import HubServer
from bridge.protocol import ErrorType, Kind
from bridge.protocol.catalog import Catalog
from bridge.sim.contacts import CALL_REQUESTS
from bridge.sim.virtual_agent import VirtualAgent

from .helpers import FAST, within

CATALOG = Catalog.load()
SET_AGENT_STATE = "Amazon/Agent/SetAgentState"
CALL_EVENT = "Amazon/InboundCall/InboundCallStateChange"
CALLER = "+15555550123"
ATTRIBUTES = {"CustomerId": "C-20411", "Reason": "billing"}


class Phone:
    """An app of agent1 with the call helpers, a stream of its call events and one of its
    agent states; every event it received is checked against the catalog at the end."""

    def __init__(self, bus: BridgeClient) -> None:
        self.bus = bus
        self.calls = Calls(bus, timeout=5)
        self.everything = bus.events()
        self.stream: CallStream = self.calls.events()
        self.states = bus.events(SET_AGENT_STATE)

    async def next_call(self) -> Call:
        return await within(self.stream.get())

    async def call_until(self, event: str, unsolicited: bool = False) -> Call:
        """Skip call events until one whose ``event`` is ``event`` (and, with ``unsolicited``,
        that answers no request)."""
        while True:
            call = await self.next_call()
            if call.event == event and not (unsolicited and call.reply_to is not None):
                return call

    async def state_until(self, name: str) -> dict[str, Any]:
        while True:
            envelope = await within(self.states.get())
            if envelope["message"]["event"] == name:
                return dict(envelope["message"])

    def check_all(self) -> list[Envelope]:
        self.everything.close()
        seen = [e for e in self.everything._items if isinstance(e, dict)]
        for envelope in seen:
            problem = CATALOG.validate(orjson.loads(orjson.dumps(envelope)))
            assert problem is None, (problem, envelope)
        return seen


@pytest.fixture
async def agent(hub: HubServer) -> AsyncIterator[VirtualAgent]:
    async with VirtualAgent(
        hub.url, agent="agent1", answer_delay=0.01, call_attributes=ATTRIBUTES, **FAST
    ) as va:
        yield va


@pytest.fixture
async def phone(hub: HubServer, agent: VirtualAgent) -> AsyncIterator[Phone]:
    async with BridgeClient(hub.url, agent="agent1", source="crm", **FAST) as bus:
        app = Phone(bus)
        await within(bus.wait_for(SET_AGENT_STATE))
        yield app
        assert app.check_all()


async def ring(agent: VirtualAgent, phone: Phone) -> Call:
    contact_id = await agent.ring()
    call = await phone.call_until("connecting")
    assert call.id == contact_id
    return call


async def talking(agent: VirtualAgent, phone: Phone) -> Call:
    """An inbound call, answered."""
    rung = await ring(agent, phone)
    return await within(phone.calls.answer(rung.id))


# ----- an inbound call from ringing to cleared ------------------------------------------------


async def test_an_inbound_call_from_ringing_to_cleared(agent: VirtualAgent, phone: Phone) -> None:
    rung = await ring(agent, phone)
    assert (rung.event, rung.call_type, rung.ringing) == ("connecting", "inbound", True)
    assert rung.variables == {"ANI": CALLER, "DNIS": "+18005550199", **ATTRIBUTES}  # the screen pop
    assert rung.queue == "BasicQueue" and rung.phone_number == CALLER
    assert (await phone.state_until("PendingBusy"))["data"]["type"] == "system"

    answered = await within(phone.calls.answer())
    assert (answered.event, answered.reply_to is not None, answered.ringing) == ("connected", True, False)
    assert answered.enabled("hold") and answered.enabled("transfer") and not answered.enabled("answer")
    await phone.state_until("Busy")

    customer = answered.customer
    assert customer is not None and customer.type == "inbound"
    held = await within(phone.calls.hold(customer.connection_id))  # by connectionId, as the sample
    assert held.event == "hold" and held.enabled("resume") and held.buttons["numberpad"] == "Disable"
    resumed = await within(phone.calls.resume())  # no data: the customer of the one live call
    assert resumed.event == "connected" and resumed.enabled("hold")

    dtmf = await within(phone.calls.dtmf("1234#"))
    assert dtmf.event == "connected"  # the digits are not echoed
    assert agent.calls.contacts[rung.id].dtmf == ["1234#"]

    acw = await within(phone.calls.hangup())
    assert acw.event == "ACW" and acw.enabled("clearContact")
    assert {c.status for c in acw.connections} == {"disconnected"}
    await phone.state_until("AfterCallWork")

    dropped = await within(phone.calls.clear())
    assert dropped.event == "Dropped" and dropped.ended
    assert set(dropped.buttons.values()) == {"Hide"}
    after = await phone.state_until("Available")
    assert "nextState" not in after["data"]
    assert await within(phone.calls.state_sync()) == []


async def test_reject_then_dropped(agent: VirtualAgent, phone: Phone) -> None:
    rung = await ring(agent, phone)
    rejected = await within(phone.calls.reject(rung.id))
    assert rejected.event == "Rejected"
    assert (await phone.call_until("Dropped")).id == rung.id
    await phone.state_until("Available")


async def test_a_call_nobody_answers_is_missed(hub: HubServer) -> None:
    async with (
        VirtualAgent(hub.url, agent="agent2", ring_timeout=0.05, **FAST) as va,
        BridgeClient(hub.url, agent="agent2", **FAST) as bus,
    ):
        phone = Phone(bus)
        await va.ring()
        assert [(await phone.next_call()).event for _ in range(3)] == ["connecting", "missed", "Dropped"]
        phone.check_all()


async def test_the_customer_hangs_up(agent: VirtualAgent, phone: Phone) -> None:
    await talking(agent, phone)
    assert await agent.customer_hangs_up()
    assert (await phone.call_until("ACW")).reply_to is None
    await within(phone.calls.clear())


async def test_answered_calls_end_after_call_length(hub: HubServer) -> None:
    async with (
        VirtualAgent(hub.url, agent="agent2", call_length=0.01, acw_timeout=0.01, **FAST) as va,
        BridgeClient(hub.url, agent="agent2", **FAST) as bus,
    ):
        phone = Phone(bus)
        rung = await ring(va, phone)
        await within(phone.calls.answer(rung.id))
        await phone.call_until("ACW")
        await phone.call_until("Dropped")  # after-call work cleared by itself
        await phone.state_until("Available")
        phone.check_all()


# ----- outbound, quick connects, consult, conference, swap, transfer -----------------------------


async def test_dial_out_and_the_customer_answers(agent: VirtualAgent, phone: Phone) -> None:
    dialing = await within(phone.calls.dial("+16013261548"))
    assert (dialing.event, dialing.call_type, dialing.dnis) == ("connecting", "outbound", "+16013261548")
    assert dialing.ani is None and dialing.enabled("disconnect")
    await phone.state_until("CallingCustomer")
    connected = await phone.call_until("connected")
    assert connected.id == dialing.id and connected.reply_to is None  # unsolicited: the customer picked up
    await phone.state_until("Busy")
    with pytest.raises(CallFailed) as busy:
        await within(phone.calls.dial("+16013261549"))  # one call at a time
    assert busy.value.error_type == "MAKE_CALL_FAILED"
    await within(phone.calls.hangup())
    await within(phone.calls.clear(dialing.id))


async def test_quick_connects_and_dialing_one(agent: VirtualAgent, phone: Phone) -> None:
    quick = await within(phone.calls.quick_connects())
    assert [(q.name, q.type) for q in quick] == [
        ("Billing queue", "queue"),
        ("Front desk", "phone_number"),
        ("Supervisor", "agent"),
    ]
    front_desk = await within(phone.calls.find_quick_connect("front DESK"))
    assert front_desk is not None and front_desk.phone_number == "+18005550111"
    dialing = await within(phone.calls.dial(front_desk))
    assert dialing.phone_number == "+18005550111"
    await phone.call_until("connected")
    await within(phone.calls.hangup())
    await within(phone.calls.clear())
    unknown = QuickConnect("Nobody", "queue", front_desk.endpoint_arn[:-4] + "0000", None)
    with pytest.raises(CallFailed) as refused:
        await within(phone.calls.dial(unknown))  # a well-formed ARN Connect does not know
    assert refused.value.error_type == "MAKE_CALL_FAILED"


async def test_consult_swap_conference(agent: VirtualAgent, phone: Phone) -> None:
    call = await talking(agent, phone)
    consulting = await within(phone.calls.consult("+18005550111"))
    assert consulting.event == "hold"  # the customer waits
    third = consulting.connections[-1]
    assert (third.type, third.phone_number, third.status) == ("outbound", "+18005550111", "connecting")
    joined = await phone.call_until("hold")
    while joined.connections[-1].status != "connected":
        joined = await phone.next_call()
    assert joined.enabled("swap") and joined.enabled("conference") and not joined.enabled("consult")

    swapped = await within(phone.calls.swap())
    assert [c.status for c in swapped.connections] == ["connected", "connected", "hold"]
    assert swapped.event == "connected"  # the customer is back, the third party waits
    conference = await within(phone.calls.conference())
    assert [c.status for c in conference.connections] == ["connected"] * 3
    with pytest.raises(CallFailed) as no_swap:
        await within(phone.calls.swap())  # nobody is on hold in a conference
    assert no_swap.value.error_type == "SWAP_CALL_FAILED"

    assert await agent.third_party_hangs_up()
    left = await phone.call_until("connected", unsolicited=True)
    assert [c.status for c in left.connections] == ["connected", "connected", "disconnected"]
    assert (await within(phone.calls.hangup())).event == "ACW"
    await within(phone.calls.clear(call.id))


async def test_blind_transfer(agent: VirtualAgent, phone: Phone) -> None:
    await talking(agent, phone)
    quick = await within(phone.calls.quick_connects())
    acw = await within(phone.calls.transfer(quick[0].endpoint_arn))  # an ARN string works too
    assert acw.event == "ACW"
    assert acw.connections[-1].type == "outbound"
    await phone.state_until("AfterCallWork")
    await within(phone.calls.clear())


async def test_a_transfer_target_that_is_no_quick_connect_fails(agent: VirtualAgent, phone: Phone) -> None:
    await talking(agent, phone)
    arn = "arn:aws:connect:us-east-1:123456789012:instance/0f6a2b1c/transfer-destination/unknown"
    with pytest.raises(CallFailed) as refused:
        await within(phone.calls.transfer(arn))
    assert refused.value.error_type == "TRANSFER_CALL_FAILED"
    assert refused.value.msg == "Call transfer failed."


async def test_state_sync_lists_the_live_calls(agent: VirtualAgent, phone: Phone) -> None:
    first = await talking(agent, phone)
    second = await ring(agent, phone)
    live = await within(phone.calls.state_sync())
    assert [(c.id, c.event) for c in live] == [(first.id, "connected"), (second.id, "connecting")]


# ----- CALL_NOT_FOUND and the kinds' own errors --------------------------------------------------


@pytest.mark.parametrize(
    "subtopic, data",
    [("Answer", None), ("Reject", None), ("Hold", None), ("Resume", None), ("Disconnect", None),
     ("SendDTMF", "1"), ("ClearContact", None), ("Consult", "+18005550111"), ("Conference", None),
     ("Swap", None), ("Transfer", "+18005550111")],
)
async def test_no_live_call_is_call_not_found(phone: Phone, subtopic: str, data: Any) -> None:
    with pytest.raises(CallNotFound) as caught:
        await within(phone.bus.request_any(Kind("Amazon", "InboundCall", subtopic), data))
    assert (caught.value.error_type, caught.value.msg) == ("CALL_NOT_FOUND", "No such call.")
    assert "no live contact" in caught.value.error_message


async def test_two_live_calls_need_a_name(agent: VirtualAgent, phone: Phone) -> None:
    first = await talking(agent, phone)
    await ring(agent, phone)
    for ask in (phone.calls.hold, phone.calls.answer, phone.calls.hangup, phone.calls.conference):
        with pytest.raises(CallNotFound) as caught:
            await within(ask())
        assert "2 live contacts" in caught.value.error_message
    # Named, they work.
    assert first.customer is not None
    assert (await within(phone.calls.hold(first.customer.connection_id))).event == "hold"


async def test_unknown_contact_or_connection_is_call_not_found(agent: VirtualAgent, phone: Phone) -> None:
    await ring(agent, phone)
    for ask in (phone.calls.answer, phone.calls.reject, phone.calls.clear, phone.calls.hold,
                phone.calls.resume, phone.calls.hangup):
        with pytest.raises(CallNotFound):
            await within(ask("no-such-id"))


async def test_answer_with_nothing_ringing(agent: VirtualAgent, phone: Phone) -> None:
    with pytest.raises(CallNotFound):
        await within(phone.calls.answer())  # no contact at all
    await talking(agent, phone)
    with pytest.raises(CallFailed) as caught:
        await within(phone.calls.answer())  # one contact, already answered
    assert type(caught.value) is CallFailed
    assert (caught.value.error_type, caught.value.msg) == ("ANSWER_CALL_FAILED", "Answering call failed.")


async def test_hold_on_a_held_call(agent: VirtualAgent, phone: Phone) -> None:
    await talking(agent, phone)
    await within(phone.calls.hold())
    with pytest.raises(CallFailed) as caught:
        await within(phone.calls.hold())
    assert (caught.value.error_type, caught.value.msg) == ("HOLD_CALL_FAILED", "Call hold failed.")
    assert caught.value.request == Kind("Amazon", "InboundCall", "Hold")


async def test_clear_before_after_call_work_fails(agent: VirtualAgent, phone: Phone) -> None:
    await talking(agent, phone)
    with pytest.raises(CallFailed) as caught:
        await within(phone.calls.clear())
    assert caught.value.error_type == "CLEAR_CONTACT_FAILED"


async def test_the_customer_hangs_up_while_a_hold_is_in_flight(agent: VirtualAgent, phone: Phone) -> None:
    await talking(agent, phone)
    agent.hold_requests()
    hold = asyncio.ensure_future(phone.calls.hold())
    while agent.waiting == 0:  # the Hold reached the provider, which has not carried it out
        await within(asyncio.sleep(0.01))
    assert await agent.customer_hangs_up()
    agent.release_requests()
    with pytest.raises(CallFailed) as caught:
        await within(hold)
    assert caught.value.error_type == "HOLD_CALL_FAILED"
    assert (await phone.call_until("ACW")).reply_to is None  # what happened instead, unsolicited


@pytest.mark.parametrize("subtopic", ["Hold", "Transfer", "SetMakeCall", "Answer"])
async def test_fail_makes_a_kind_fail(hub: HubServer, subtopic: str) -> None:
    async with (
        VirtualAgent(hub.url, agent="agent3", fail=[subtopic], **FAST) as va,
        BridgeClient(hub.url, agent="agent3", **FAST) as bus,
    ):
        phone = Phone(bus)
        if subtopic != "SetMakeCall":
            await ring(va, phone)
            if subtopic != "Answer":
                await within(phone.calls.answer())
        data = "+18005550111" if subtopic in ("Transfer", "SetMakeCall") else None
        with pytest.raises(CallFailed) as caught:
            await within(bus.request_any(Kind("Amazon", "InboundCall", subtopic), data))
        expected = {"Hold": "HOLD_CALL_FAILED", "Transfer": "TRANSFER_CALL_FAILED",
                    "SetMakeCall": "MAKE_CALL_FAILED", "Answer": "ANSWER_CALL_FAILED"}[subtopic]
        assert caught.value.error_type == expected
        assert caught.value.msg == {"Hold": "Call hold failed.", "Transfer": "Call transfer failed.",
                                    "SetMakeCall": "Make call failed.", "Answer": "Answering call failed."}[subtopic]
        assert f"--fail {subtopic}" in caught.value.error_message


def test_fail_refuses_kinds_without_an_error_type(hub: HubServer) -> None:
    with pytest.raises(ValueError, match="StateSync"):
        VirtualAgent("ws://127.0.0.1:1/ws", agent="a", fail=["StateSync"])


# ----- refused by the hub ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "subtopic, data, rule",
    [
        ("SendDTMF", "12a", "pattern"),
        ("SendDTMF", "", "pattern"),
        ("SendDTMF", "1" * 65, "pattern"),
        ("SetMakeCall", "6013261548", "pattern"),
        ("SetMakeCall", "+0123", "pattern"),
        ("SetMakeCall", None, "required"),
        ("Consult", "front desk", "pattern"),
        ("Transfer", "bob", "pattern"),
        ("Transfer", {"endpointARN": "arn:nope"}, "pattern"),
        ("Transfer", {"arn": "x"}, ""),
        ("Hold", 5, "anyOf"),
    ],
)
async def test_malformed_input_is_a_schema_violation(
    agent: VirtualAgent, phone: Phone, subtopic: str, data: Any, rule: str
) -> None:
    handled = agent.handled
    with pytest.raises(InvalidRequest) as caught:
        await within(phone.bus.request_any(Kind("Amazon", "InboundCall", subtopic), data))
    assert caught.value.error_type == "SCHEMA_VIOLATION"
    assert f"({rule})" in caught.value.error_message if rule else "$.data" in caught.value.error_message
    assert agent.handled == handled  # the provider never saw it


@pytest.mark.parametrize("kind", CALL_REQUESTS, ids=str)
async def test_the_family_with_no_provider_is_provider_unavailable(hub: HubServer, kind: Kind) -> None:
    data = {"SetMakeCall": "+16013261548", "Consult": "+16013261548", "Transfer": "+16013261548",
            "SendDTMF": "1"}.get(kind.subtopic)
    async with BridgeClient(hub.url, agent="nobody", **FAST) as bus:
        with pytest.raises(ProviderUnavailable) as caught:
            await within(bus.request_any(kind, data))
        assert caught.value.error_type == ErrorType.PROVIDER_UNAVAILABLE


# ----- the agent's state during a call ------------------------------------------------------------


async def test_a_state_asked_for_during_a_call_is_queued_as_next_state(agent: VirtualAgent, phone: Phone) -> None:
    await talking(agent, phone)
    await phone.state_until("Busy")
    queued = await within(phone.bus.request("Amazon/Agent/SetNotReady", {"ReasonCodeId": "Break"}))
    data = queued["message"]["data"]
    assert (queued["message"]["event"], data["nextState"]) == ("Busy", {"name": "Break", "type": "not_routable"})
    await within(phone.calls.hangup())
    acw = await phone.state_until("AfterCallWork")
    assert acw["data"]["nextState"]["name"] == "Break"
    await within(phone.calls.clear())
    after = await phone.state_until("Break")
    assert "nextState" not in after["data"] and after["data"]["reasonCode"] == {"id": "Break"}


# ----- retention and a provider that (re)joins -----------------------------------------------------


async def late_joiner(hub: HubServer, agent: str = "agent1") -> list[Envelope]:
    """Everything an app joining now is replayed (until the hub sends nothing more for a moment)."""
    async with BridgeClient(hub.url, agent=agent, **FAST) as bus:
        stream = bus.events()
        replay: list[Envelope] = []
        while True:
            try:
                replay.append(await stream.get(timeout=0.3))
            except TimeoutError:
                return replay


async def test_a_late_joiner_gets_each_live_call_once(hub: HubServer, agent: VirtualAgent, phone: Phone) -> None:
    first = await talking(agent, phone)
    second = await ring(agent, phone)
    await within(phone.calls.hold(first.customer.connection_id if first.customer else None))
    replay = await late_joiner(hub)
    names = [e["subtopic"] for e in replay]
    assert names == ["ProviderStatus", "SetAgentState", "InboundCallStateChange", "InboundCallStateChange"]
    calls = [Call.from_event(e) for e in replay[2:]]
    assert [(c.id, c.event) for c in calls] == [(first.id, "hold"), (second.id, "connecting")]
    assert all(c.retained and c.reply_to is None for c in calls)
    # A call replayed no more once Dropped.
    await within(phone.calls.reject(second.id))
    await phone.call_until("Dropped")
    replay = await late_joiner(hub)
    assert [Call.from_event(e).id for e in replay if e["subtopic"] == "InboundCallStateChange"] == [first.id]


async def test_the_provider_republishes_its_calls_when_it_reconnects(agent: VirtualAgent, phone: Phone) -> None:
    call = await talking(agent, phone)
    assert agent.client._ws is not None
    agent.client._ws.transport.abort()  # the provider's network drops
    again = await phone.call_until("connected", unsolicited=True)
    assert again.id == call.id
    assert agent.client.connections == 2


async def test_no_ghost_call_after_the_provider_rejoins(hub: HubServer) -> None:
    """A call that ended while no provider was connected is not replayed (calls.md, "Retained
    calls"): the hub forgets the agent's calls when a provider joins, and the provider
    republishes the live ones. The forgetting is the hub's (resetOnProviderJoin)."""
    async with BridgeClient(hub.url, agent="agent4", **FAST) as bus:
        phone = Phone(bus)
        async with VirtualAgent(hub.url, agent="agent4", **FAST) as first:
            ghost = await ring(first, phone)
        # The provider is gone; its last known call stays retained meanwhile.
        replay = await late_joiner(hub, "agent4")
        assert [Call.from_event(e).id for e in replay if e["subtopic"] == "InboundCallStateChange"] == [ghost.id]
        # A new provider (a reloaded page) has no such call.
        async with VirtualAgent(hub.url, agent="agent4", **FAST) as second:
            await within(bus.wait_for(SET_AGENT_STATE, lambda e: e["message"]["event"] == "Available"))
            live = await within(second.ring())
            replay = await late_joiner(hub, "agent4")
            ids = [Call.from_event(e).id for e in replay if e["subtopic"] == "InboundCallStateChange"]
            assert ids == [live], "the ended call stayed retained after the provider rejoined"
        phone.check_all()
