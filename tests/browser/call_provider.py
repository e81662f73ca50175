"""A small provider with voice calls, over a real WebSocket, for the widget and screen-pop tests.

It joins the hub as the agent's provider, publishes the agent's state, rings
calls when the test says so and answers each call request with the event that
shows its result (``replyTo`` set), built from the contract's samples
(``samples/calls/``): the same shapes the Streams provider and the virtual
agent publish. Every request it receives is recorded, so a test can check what
the widget sent. It stands in until the emulated CCP and the virtual agent
carry calls; it is a real provider over real sockets, not a mock of the hub.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime
from typing import Any

import websockets

from ..helpers import Client, join, sample, seed_event

#: The ButtonStates of each event, as Connect allows the buttons (from the samples).
EVENT_SAMPLES = {
    "connecting": "calls/01-ringing.event.json",
    "connected": "calls/03-connected.event.json",
    "hold": "calls/05-hold.event.json",
    "ACW": "calls/09-acw.event.json",
    "Dropped": "calls/11-dropped.event.json",
}

#: What a connection's status is in each event (agent, customer).
STATUSES = {
    "connecting": ("connecting", "connected"),
    "connected": ("connected", "connected"),
    "hold": ("connected", "hold"),
    "ACW": ("disconnected", "disconnected"),
    "Dropped": ("disconnected", "disconnected"),
}

#: The sentence of each call error type (calls.md).
SENTENCES = {
    "HOLD_CALL_FAILED": "Call hold failed.",
    "TRANSFER_CALL_FAILED": "Call transfer failed.",
    "MAKE_CALL_FAILED": "Make call failed.",
    "SEND_DTMF_FAILED": "Failed to send DTMF.",
}

QUICK_CONNECTS = sample("calls/17-GetQuickConnects.event.json")["message"]["endpoints"]


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def build_call(
    call_id: str,
    event: str,
    *,
    call_type: str = "inbound",
    variables: dict[str, str] | None = None,
    number: str = "+15555550123",
) -> dict[str, Any]:
    """A ``Call`` like the sample of ``event``, for contact ``call_id``, changed ``since`` now."""
    call: dict[str, Any] = copy.deepcopy(sample(EVENT_SAMPLES[event])["message"]["call"])
    since = now_iso()
    call["id"] = call_id
    call["CallType"] = call_type
    if variables is not None:
        call["CallVariables"] = variables
    call["since"] = since
    agent_status, customer_status = STATUSES[event]
    agent, customer = call["connections"]
    agent.update(connectionId=f"{call_id}-a", status=agent_status, since=since)
    customer.update(
        connectionId=f"{call_id}-c",
        type="outbound" if call_type == "outbound" else "inbound",
        phoneNumber=number,
        status=customer_status,
        since=since,
    )
    if call_type == "outbound":
        call["queue"] = None
    return call


class CallProvider:
    """The agent's provider: rings calls, answers the widget's requests, records them."""

    def __init__(self, client: Client, agent: str) -> None:
        self.client = client
        self.agent = agent
        self.requests: list[dict[str, Any]] = []
        #: Live contacts by id, in the order they appeared.
        self.calls: dict[str, dict[str, Any]] = {}
        #: subtopic -> errorType: the next request of that subtopic fails with it.
        self.fail_next: dict[str, str] = {}
        #: False: InboundCall/StateSync goes unanswered (a test of the retained events alone).
        self.answer_sync = True
        self._ids = itertools.count(1)
        self._arrived = asyncio.Condition()

    # -- what the test does -----------------------------------------------------------

    async def publish_agent_state(
        self, *, busy: bool = False, next_state: dict[str, str] | None = None
    ) -> None:
        """The agent's state: the seed's Not Ready Break, or ``busy`` on a call (system state Busy)."""
        event = seed_event()
        message = event["message"]
        data = message["data"]
        data.update(loginName=self.agent, name=self.agent, stateChangeTime=now_iso())
        if busy:
            message["event"] = "Busy"
            del data["reasonCode"]
            data["type"] = "system"
            message["rules"]["ResponseActual"].update(type="system", name="Busy")
            message["rules"]["ButtonStates"]["items"]["make_call"] = "Disable"
        if next_state is not None:
            data["nextState"] = next_state
        await self.client.send(event)

    async def ring(self, variables: dict[str, str] | None = None, number: str = "+15555550123") -> str:
        """An inbound call rings (unsolicited event); returns its contact id."""
        call_id = f"contact-{next(self._ids)}"
        base = sample(EVENT_SAMPLES["connecting"])["message"]["call"]["CallVariables"]
        call = build_call(call_id, "connecting", variables=variables or dict(base), number=number)
        await self.publish(call)
        return call_id

    async def move(self, call_id: str, event: str, reply_to: str | None = None) -> dict[str, Any]:
        """Contact ``call_id`` goes to ``event`` and it is published."""
        old = self.calls[call_id]
        customer = old["connections"][1]
        call = build_call(
            call_id,
            event,
            call_type=old["CallType"],
            variables=old["CallVariables"],
            number=customer["phoneNumber"],
        )
        await self.publish(call, reply_to)
        return call

    async def publish(self, call: dict[str, Any], reply_to: str | None = None) -> None:
        if call["event"] == "Dropped":
            self.calls.pop(call["id"], None)
        else:
            self.calls[call["id"]] = call
        envelope: dict[str, Any] = {
            "channel": "Amazon",
            "topic": "InboundCall",
            "subtopic": "InboundCallStateChange",
            "message": {"call": call, "source": "event"},
        }
        if reply_to is not None:
            envelope["replyTo"] = reply_to
        await self.client.send(envelope)

    async def received(self, subtopic: str, count: int = 1) -> list[dict[str, Any]]:
        """Wait until ``count`` requests of ``subtopic`` arrived; return them all."""

        def matching() -> list[dict[str, Any]]:
            return [request for request in self.requests if request["subtopic"] == subtopic]

        async with asyncio.timeout(5), self._arrived:
            await self._arrived.wait_for(lambda: len(matching()) >= count)
        return matching()

    def seen(self, subtopic: str) -> list[dict[str, Any]]:
        return [request for request in self.requests if request["subtopic"] == subtopic]

    # -- answering ----------------------------------------------------------------------

    async def serve(self) -> None:
        with suppress(websockets.ConnectionClosed):
            while True:
                frame = await self.client.recv(timeout=3600)
                if "message" in frame or frame.get("topic") == "Error":
                    continue  # the hub's own events (none expected), or a refusal: the test sees those
                async with self._arrived:
                    self.requests.append(frame)
                    self._arrived.notify_all()
                await self.answer(frame)

    async def answer(self, request: dict[str, Any]) -> None:
        topic, subtopic, rid = request["topic"], request["subtopic"], request["id"]
        error_type = self.fail_next.pop(subtopic, None)
        if error_type is not None:
            await self.error(request, error_type, "InvalidStateException: refused by the test.")
            return
        if topic == "Agent":
            if subtopic == "GetStates":
                states = [
                    {"label": name, "code": name, "type": kind}
                    for name, kind in (
                        ("Available", "routable"),
                        ("Break", "not_routable"),
                        ("Lunch", "not_routable"),
                        ("Team meeting and product training", "not_routable"),
                    )
                ]
                await self.reply(request, "Agent", "GetStates", {"states": states})
            return
        if subtopic == "StateSync":
            if self.answer_sync:
                await self.reply(request, "InboundCall", "StateSync", {"calls": list(self.calls.values())})
            return
        if subtopic == "GetQuickConnects":
            await self.reply(request, "InboundCall", "GetQuickConnects", {"endpoints": QUICK_CONNECTS})
            return
        if subtopic == "SetMakeCall":
            call_id = f"contact-{next(self._ids)}"
            number = request["data"] if isinstance(request["data"], str) else "+18005550111"
            call = build_call(
                call_id, "connecting", call_type="outbound", variables={"DNIS": number}, number=number
            )
            call["ButtonStates"]["items"].update(answer="Hide", reject="Hide", disconnect="Enable")
            await self.publish(call, rid)
            return
        call_id = self.target(request)
        if call_id is None:
            await self.error(request, "CALL_NOT_FOUND", "no such contact", msg="No such call.")
            return
        next_event = {
            "Answer": "connected",
            "Hold": "hold",
            "Resume": "connected",
            "Disconnect": "ACW",
            "Transfer": "ACW",
            "ClearContact": "Dropped",
        }.get(subtopic, self.calls[call_id]["event"])  # SendDTMF, Consult...: the current event
        await self.move(call_id, next_event, rid)
        if subtopic == "ClearContact":
            await self.publish_agent_state()

    def target(self, request: dict[str, Any]) -> str | None:
        """The contact a request names (a contact or connection id), or the only live one."""
        data = request.get("data")
        for call_id in self.calls:
            if isinstance(data, str) and (data == call_id or data.startswith(f"{call_id}-")):
                return call_id
        if len(self.calls) == 1 and not (isinstance(data, str) and data.startswith("contact-")):
            return next(iter(self.calls))
        return None

    async def reply(
        self, request: dict[str, Any], topic: str, subtopic: str, message: dict[str, Any]
    ) -> None:
        await self.client.send(
            {
                "channel": "Amazon",
                "topic": topic,
                "subtopic": subtopic,
                "message": message,
                "replyTo": request["id"],
            }
        )

    async def error(
        self, request: dict[str, Any], error_type: str, cause: str, *, msg: str | None = None
    ) -> None:
        await self.client.send(
            {
                "channel": "Amazon",
                "topic": "Error",
                "subtopic": "ApiError",
                "replyTo": request["id"],
                "data": {
                    "errorType": error_type,
                    "errorMessage": cause,
                    "msg": msg or SENTENCES.get(error_type, "The request failed."),
                    "request": {k: request[k] for k in ("channel", "topic", "subtopic")},
                },
            }
        )


@asynccontextmanager
async def call_provider(url: str, agent: str) -> AsyncIterator[CallProvider]:
    """A provider for ``agent`` joined to the hub at ``url``, its state published."""
    client, _ = await join(url, "provider", agent, source="test-provider")
    provider = CallProvider(client, agent)
    await provider.publish_agent_state()
    task = asyncio.create_task(provider.serve())
    try:
        yield provider
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
        await client.close()
