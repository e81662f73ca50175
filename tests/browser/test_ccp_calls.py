"""Voice calls through the Streams page in real Chromium: a Python app drives them over a real hub.

ccp.html?emulate=1 runs our provider (static/js/provider/) on the real
amazon-connect-streams library; its Amazon Connect backend is emulated in the
page (static/js/emulator/ccp-emulator.js), which records every CTI call the
library made. Each request crosses: Python app -> hub -> provider -> Streams
contact API -> emulated Connect -> agent snapshot -> Streams events ->
provider -> hub -> app.
"""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import Page

from bridge.client import BridgeClient, CallFailed, CallNotFound, Stream
from bridge.protocol.names import (
    ANSWER,
    CLEAR_CONTACT,
    DISCONNECT,
    GET_QUICK_CONNECTS,
    HOLD,
    INBOUND_CALL_STATE_CHANGE,
    INBOUND_CALL_STATE_SYNC,
    RESUME,
    SEND_DTMF,
    SET_AGENT_STATE,
    SET_MAKE_CALL,
    TRANSFER,
)

from .conftest import Browse, screenshot

pytestmark = pytest.mark.browser

#: The contact CTI methods of the emulated backend (what Streams' contact API calls).
CONTACT_METHODS = {
    "acceptContact", "rejectContact", "holdConnection", "resumeConnection", "destroyConnection",
    "createOutboundContact", "sendDigits", "clearContact", "createAdditionalConnection",
    "conferenceConnections", "toggleActiveConnections", "getEndpoints",
}

#: The agent's own queue in the emulated routing profile (what getAllQueueARNs gives).
AGENT_QUEUE = (
    "arn:aws:connect:us-east-1:123456789012:instance/0f6a2b1c-3d4e-4f50-8a61-72b3c4d5e6f7"
    "/queue/agent/9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c60"
)

RING = """(call) => window.ccpEmulator.incomingCall(call)"""
CALLER = {"phoneNumber": "+15555550123", "attributes": {"CustomerId": "C-20411", "Reason": "billing"},
          "queue": "Billing"}


async def cti_calls(ccp: Page) -> list[dict[str, Any]]:
    """The contact CTI calls the emulated Connect saw, oldest first: {method, params}."""
    seen: list[dict[str, Any]] = await ccp.evaluate("() => window.ccpEmulator.calls")
    return [{"method": c["method"], "params": c["params"]} for c in seen if c["method"] in CONTACT_METHODS]


async def next_call(events: Stream[dict[str, Any]], contact_id: str) -> dict[str, Any]:
    """The next call event of ``contact_id`` (others are skipped)."""
    while True:
        envelope = await events.get(timeout=5)
        call: dict[str, Any] = envelope["message"]["call"]
        if call["id"] == contact_id:
            return call


async def until_event(events: Stream[dict[str, Any]], contact_id: str, event: str) -> list[str]:
    """The events of ``contact_id`` up to and including the first ``event``."""
    seen: list[str] = []
    while not seen or seen[-1] != event:
        seen.append((await next_call(events, contact_id))["event"])
    return seen


def customer_of(call: dict[str, Any]) -> dict[str, Any]:
    [customer] = [c for c in call["connections"] if c["type"] in ("inbound", "outbound")]
    return customer


async def ring_and_answer(ccp: Page, app: BridgeClient) -> dict[str, Any]:
    """A call rings and the app answers it; returns the connected call."""
    events = app.events(INBOUND_CALL_STATE_CHANGE)
    contact_id = await ccp.evaluate(RING, CALLER)
    assert (await next_call(events, contact_id))["event"] == "connecting"
    events.close()
    answer = await app.request_any(ANSWER, timeout=5)
    call: dict[str, Any] = answer["message"]["call"]
    assert call["event"] == "connected"
    return call


async def shoot(ccp: Page, name: str) -> None:
    """The softphone page at 1280 and 360 px wide."""
    for width in (1280, 360):
        await ccp.set_viewport_size({"width": width, "height": 800})
        await screenshot(ccp, f"{name}-{width}")
        overflow = await ccp.evaluate("() => document.scrollingElement.scrollWidth")
        assert overflow <= width, f"ccp.html is {overflow} px wide at {width} px"
    await ccp.set_viewport_size({"width": 1100, "height": 720})


async def test_inbound_call_from_ringing_to_cleared(browse: Browse) -> None:
    ccp = await browse.ccp("agent1")
    async with BridgeClient(browse.hub.url, agent="agent1", source="pytest-app") as app:
        events = app.events(INBOUND_CALL_STATE_CHANGE)
        contact_id = await ccp.evaluate(RING, CALLER)

        # Ringing: the screen-pop data, Answer and Reject only.
        ringing = await next_call(events, contact_id)
        assert ringing["event"] == "connecting"
        assert ringing["CallType"] == "inbound"
        assert ringing["CallVariables"] == {
            "ANI": "+15555550123", "DNIS": "+18005550199", "CustomerId": "C-20411", "Reason": "billing",
        }
        assert ringing["queue"]["name"] == "Billing"
        enabled = {name for name, state in ringing["ButtonStates"]["items"].items() if state == "Enable"}
        assert enabled == {"answer", "reject"}
        await shoot(ccp, "ccp-call-ringing")

        answer = await app.request_any(ANSWER, timeout=5)
        assert answer["replyTo"]
        connected = answer["message"]["call"]
        assert (connected["id"], connected["event"]) == (contact_id, "connected")
        assert connected["ButtonStates"]["items"]["hold"] == "Enable"
        await shoot(ccp, "ccp-call-connected")

        customer = customer_of(connected)["connectionId"]
        held = await app.request_any(HOLD, customer, timeout=5)
        assert held["message"]["call"]["event"] == "hold"
        assert customer_of(held["message"]["call"])["status"] == "hold"
        resumed = await app.request_any(RESUME, timeout=5)  # no data: the customer's connection
        assert resumed["message"]["call"]["event"] == "connected"

        dtmf = await app.request_any(SEND_DTMF, "1234#", timeout=5)
        assert dtmf["message"]["call"]["event"] == "connected"
        assert await ccp.evaluate("() => window.ccpEmulator.digitsSent.map((d) => d.digits)") == ["1234#"]

        # The quick connects come from agent.getEndpoints.
        quick = await app.request_any(GET_QUICK_CONNECTS, timeout=5)
        assert {"name": "Front desk", "type": "phone_number", "phoneNumber": "+18005550111"}.items() <= next(
            e for e in quick["message"]["endpoints"] if e["name"] == "Front desk").items()

        transferred = await app.request_any(TRANSFER, "+18005550111", timeout=5)
        assert transferred["message"]["call"]["event"] == "ACW"
        assert transferred["message"]["call"]["ButtonStates"]["items"]["clearContact"] == "Enable"

        await app.wait_for(SET_AGENT_STATE, lambda e: e["message"]["event"] == "AfterCallWork", timeout=5)
        everything = app.events(SET_AGENT_STATE, INBOUND_CALL_STATE_CHANGE)
        cleared = await app.request_any(CLEAR_CONTACT, timeout=5)
        assert cleared["message"]["call"]["event"] == "Dropped"
        # The agent's next state follows the Dropped event.
        after = [await everything.get(timeout=5) for _ in range(2)]
        assert [e["subtopic"] for e in after] == ["InboundCallStateChange", "SetAgentState"]
        assert after[1]["message"]["event"] == "Available"
        sync = await app.request_any(INBOUND_CALL_STATE_SYNC, timeout=5)
        assert sync["message"] == {"calls": []}

        # Every change was published once, in order; SendDTMF is answered with the current
        # event (connected again); the transfer held the customer while adding the party.
        assert await until_event(events, contact_id, "Dropped") == [
            "connected", "hold", "connected", "connected", "hold", "ACW", "Dropped",
        ]

    calls = await cti_calls(ccp)
    quick_connects = calls.pop(4)
    assert quick_connects["method"] == "getEndpoints"
    assert quick_connects["params"]["queueARNs"] == [AGENT_QUEUE]
    assert calls == [
        {"method": "acceptContact", "params": {"contactId": contact_id}},
        {"method": "holdConnection", "params": {"contactId": contact_id, "connectionId": customer}},
        {"method": "resumeConnection", "params": {"contactId": contact_id, "connectionId": customer}},
        {"method": "sendDigits", "params": {"contactId": contact_id, "connectionId": customer, "digits": "1234#"}},
        {"method": "createAdditionalConnection", "params": {"contactId": contact_id, "endpoint": {
            "endpointARN": None, "type": "phone_number", "name": None, "phoneNumber": "+18005550111",
            "agentLogin": None, "queue": None}}},
        {"method": "destroyConnection", "params": {"contactId": contact_id, "connectionId": f"{contact_id}-agent"}},
        {"method": "clearContact", "params": {"contactId": contact_id}},
    ]


async def test_outbound_call_then_disconnect(browse: Browse) -> None:
    ccp = await browse.ccp("agent2")
    async with BridgeClient(browse.hub.url, agent="agent2", source="pytest-app") as app:
        events = app.events(INBOUND_CALL_STATE_CHANGE)
        dialled = await app.request_any(SET_MAKE_CALL, "+16013261548", timeout=5)
        call = dialled["message"]["call"]
        assert (call["event"], call["CallType"]) == ("connecting", "outbound")
        assert call["CallVariables"] == {"ANI": "+18005550199", "DNIS": "+16013261548"}
        # The customer picks up (after the emulator's answer delay), unasked.
        assert (await until_event(events, call["id"], "connected"))[-1] == "connected"

        # Not Ready asked for on the call is queued by Connect: SetAgentState shows it as nextState.
        queued = await app.request("Amazon/Agent/SetNotReady", {"ReasonCodeId": "Break"}, timeout=5)
        assert queued["message"]["event"] == "Busy"
        assert queued["message"]["data"]["nextState"] == {"name": "Break", "type": "not_routable"}

        hung_up = await app.request_any(DISCONNECT, timeout=5)
        assert hung_up["message"]["call"]["event"] == "ACW"
        await app.request_any(CLEAR_CONTACT, call["id"], timeout=5)
        # Cleared: the queued state applies, and nextState is gone.
        applied = await app.wait_for(SET_AGENT_STATE, lambda e: e["message"]["event"] == "Break", timeout=5)
        assert "nextState" not in applied["message"]["data"]

    calls = await cti_calls(ccp)
    assert [c["method"] for c in calls] == ["createOutboundContact", "destroyConnection", "clearContact"]
    assert calls[0]["params"]["endpoint"]["phoneNumber"] == "+16013261548"
    assert calls[0]["params"]["queueARN"].endswith("/queue/2d4f6a8b-0c1e-4f3a-9b5d-7e9f1a3c5e70")
    assert calls[1]["params"]["connectionId"] == f"{call['id']}-agent"


async def test_connect_refusing_and_unknown_targets(browse: Browse) -> None:
    ccp = await browse.ccp("agent3")
    async with BridgeClient(browse.hub.url, agent="agent3", source="pytest-app") as app:
        with pytest.raises(CallNotFound) as nothing:
            await app.request_any(ANSWER, timeout=5)
        assert nothing.value.msg == "No such call."
        await ring_and_answer(ccp, app)

        await ccp.evaluate("() => window.ccpEmulator.failNext('holdConnection')")
        with pytest.raises(CallFailed) as refused:
            await app.request_any(HOLD, timeout=5)
        assert refused.value.error_type == "HOLD_CALL_FAILED"
        assert refused.value.msg == "Call hold failed."
        assert "InvalidStateException" in refused.value.error_message

        with pytest.raises(CallNotFound):
            await app.request_any(HOLD, "no-such-connection", timeout=5)
        # Connect itself refuses a Resume of a call that is not on hold.
        with pytest.raises(CallFailed) as not_held:
            await app.request_any(RESUME, timeout=5)
        assert not_held.value.error_type == "RESUME_CALL_FAILED"
        assert "Cannot resume connection" in not_held.value.error_message

    assert [c["method"] for c in await cti_calls(ccp)] == ["acceptContact", "holdConnection", "resumeConnection"]


async def test_a_cti_call_that_never_answers_ends_in_the_kinds_error(browse: Browse) -> None:
    ccp = await browse.ccp("agent4", callTimeout=600)
    async with BridgeClient(browse.hub.url, agent="agent4", source="pytest-app") as app:
        await ccp.evaluate(RING, CALLER)
        await ccp.evaluate("() => window.ccpEmulator.neverAnswerNext('acceptContact')")
        # The provider's own timeout answers (ANSWER_CALL_FAILED), long before the hub's REQUEST_TIMEOUT.
        with pytest.raises(CallFailed) as silent:
            await app.request_any(ANSWER, timeout=5)
        assert silent.value.error_type == "ANSWER_CALL_FAILED"
        assert silent.value.msg == "Answering call failed."
        assert "did not answer acceptContact within 600 ms" in silent.value.error_message
        # Not stuck: the next Answer works.
        answered = await app.request_any(ANSWER, timeout=5)
        assert answered["message"]["call"]["event"] == "connected"
    assert [c["method"] for c in await cti_calls(ccp)] == ["acceptContact", "acceptContact"]


async def test_reloading_the_provider_mid_call_republishes_the_live_contact(browse: Browse) -> None:
    ccp = await browse.ccp("agent5")
    async with BridgeClient(browse.hub.url, agent="agent5", source="pytest-app") as app:
        connected = await ring_and_answer(ccp, app)
        await app.request_any(HOLD, timeout=5)
        events = app.events(INBOUND_CALL_STATE_CHANGE)

        await ccp.reload()
        await ccp.wait_for_function("() => window.connectBridge && window.connectBridge.client.state === 'open'")

        # The page's first frames after the reload: the agent's state, then the live contact.
        first: list[dict[str, Any]] = await ccp.evaluate("() => window.connectBridge.provider.sent.slice(0, 2)")
        assert [f["kind"] for f in first] == ["Amazon/Agent/SetAgentState", "Amazon/InboundCall/InboundCallStateChange"]
        assert first[0]["message"]["event"] == "Busy"
        call = first[1]["message"]["call"]
        assert (call["id"], call["event"]) == (connected["id"], "hold")

        again = await next_call(events, connected["id"])
        assert again["event"] == "hold"
        # An app joining now gets the same contact from the hub's retained calls.
        async with BridgeClient(browse.hub.url, agent="agent5", source="late-app") as late:
            sync = await late.request_any(INBOUND_CALL_STATE_SYNC, timeout=5)
            assert [c["id"] for c in sync["message"]["calls"]] == [connected["id"]]
            retained = late.last(INBOUND_CALL_STATE_CHANGE)
            assert retained is not None and retained["message"]["call"]["event"] == "hold"

        # The call goes on after the reload: Resume reaches the same contact.
        resumed = await app.request_any(RESUME, timeout=5)
        assert resumed["message"]["call"]["event"] == "connected"
