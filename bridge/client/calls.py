"""Voice calls on the bus (``Amazon/InboundCall``, protocol v1.1): typed helpers for apps.

::

    async with BridgeClient(url, agent="agent1", source="crm") as bus:
        calls = Calls(bus)
        async with calls.events() as stream:        # retained calls first, then every change
            async for call in stream:
                if call.ringing:
                    print("ringing:", call.ani, call.variables.get("CustomerId"))
                    await calls.answer(call.id)

Each call-control helper sends one request and returns the :class:`Call`
that answers it (the ``InboundCallStateChange`` carrying the request's
``replyTo``); a refusal raises :class:`CallNotFound` (no such contact or
connection, or no ``data`` while the agent has no live contact or more than
one) or :class:`CallFailed` (Connect refused: ``HOLD_CALL_FAILED`` and the
like), both from :mod:`bridge.client.client`, or the client's usual errors (``SCHEMA_VIOLATION`` for a number that
is not E.164, ``PROVIDER_UNAVAILABLE``, ``REQUEST_TIMEOUT``…).

It uses only the public :class:`bridge.client.BridgeClient` API.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Self

from bridge.client.client import BridgeClient, Envelope, Stream
from bridge.protocol import (
    ANSWER,
    CLEAR_CONTACT,
    CONFERENCE,
    CONSULT,
    DISCONNECT,
    GET_QUICK_CONNECTS,
    HOLD,
    INBOUND_CALL_STATE_CHANGE,
    INBOUND_CALL_STATE_SYNC,
    REJECT,
    RESUME,
    SEND_DTMF,
    SET_MAKE_CALL,
    SWAP,
    TRANSFER,
    Kind,
)

__all__ = [
    "Call",
    "CallConnection",
    "CallStream",
    "Calls",
    "QuickConnect",
    "dial_target",
]

def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class CallConnection:
    """One party of a contact: ``type`` is ``agent``, ``inbound``, ``outbound`` or ``monitoring``;
    ``status`` is ``connecting``, ``connected``, ``hold`` or ``disconnected``."""

    connection_id: str
    type: str
    phone_number: str | None
    status: str
    since: datetime | None

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> CallConnection:
        return cls(
            str(value.get("connectionId", "")),
            str(value.get("type", "")),
            value.get("phoneNumber") if isinstance(value.get("phoneNumber"), str) else None,
            str(value.get("status", "")),
            _parse_time(value.get("since")),
        )


@dataclass(frozen=True, slots=True)
class Call:
    """One contact as an ``InboundCallStateChange`` (or ``StateSync``) shows it.

    ``event`` is ``connecting``, ``connected``, ``hold``, ``missed``,
    ``Rejected``, ``ACW`` or ``Dropped``; ``call_type`` ``inbound``,
    ``outbound`` or ``transfer``; ``variables`` the ``CallVariables`` (ANI,
    DNIS and the contact's attributes: the screen-pop data); ``buttons`` the
    ``ButtonStates`` items. ``retained``, ``recovered`` and ``reply_to`` come
    from the envelope (a replay to a joining app; an event a reconnect
    recovered; the request it answers). ``raw`` is the ``call`` object as received.
    """

    id: str
    event: str
    call_type: str
    variables: Mapping[str, str]
    buttons: Mapping[str, str]
    connections: tuple[CallConnection, ...]
    queue: str | None
    since: datetime | None
    retained: bool = False
    recovered: bool = False
    reply_to: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_json(cls, call: Mapping[str, Any], envelope: Mapping[str, Any] | None = None) -> Call:
        variables = call.get("CallVariables")
        buttons = (call.get("ButtonStates") or {}).get("items")
        queue = call.get("queue")
        reply_to = envelope.get("replyTo") if envelope is not None else None
        return cls(
            id=str(call.get("id", "")),
            event=str(call.get("event", "")),
            call_type=str(call.get("CallType", "")),
            variables=dict(variables) if isinstance(variables, dict) else {},
            buttons=dict(buttons) if isinstance(buttons, dict) else {},
            connections=tuple(
                CallConnection.from_json(c) for c in call.get("connections") or () if isinstance(c, dict)
            ),
            queue=str(queue["name"]) if isinstance(queue, dict) and "name" in queue else None,
            since=_parse_time(call.get("since")),
            retained=bool(envelope.get("retained")) if envelope is not None else False,
            recovered=bool(envelope.get("recovered")) if envelope is not None else False,
            reply_to=reply_to if isinstance(reply_to, str) else None,
            raw=dict(call),
        )

    @classmethod
    def from_event(cls, envelope: Envelope) -> Call:
        """The call of an ``InboundCallStateChange`` envelope."""
        return cls.from_json(envelope["message"]["call"], envelope)

    @property
    def ani(self) -> str | None:
        """The calling party (the customer on an inbound call)."""
        return self.variables.get("ANI")

    @property
    def dnis(self) -> str | None:
        """The called party (the contact center on an inbound call, the customer on an outbound one)."""
        return self.variables.get("DNIS")

    @property
    def ringing(self) -> bool:
        """An inbound (or transferred) contact waiting for the agent to answer."""
        return self.enabled("answer")

    @property
    def ended(self) -> bool:
        """``Dropped``: the contact's last event."""
        return self.event == "Dropped"

    @property
    def agent_connection(self) -> CallConnection | None:
        return next((c for c in self.connections if c.type == "agent"), None)

    @property
    def customer(self) -> CallConnection | None:
        """The first party that is not the agent (the customer)."""
        return next((c for c in self.connections if c.type != "agent"), None)

    @property
    def phone_number(self) -> str | None:
        """The customer's number."""
        customer = self.customer
        return customer.phone_number if customer is not None else None

    def enabled(self, button: str) -> bool:
        """Whether Connect allows ``button`` (``hold``, ``transfer``…) now."""
        return self.buttons.get(button) == "Enable"


@dataclass(frozen=True, slots=True)
class QuickConnect:
    """A quick connect: ``type`` is ``phone_number``, ``agent`` or ``queue``."""

    name: str
    type: str
    endpoint_arn: str
    phone_number: str | None

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> QuickConnect:
        number = value.get("phoneNumber")
        return cls(
            str(value.get("name", "")),
            str(value.get("type", "")),
            str(value.get("endpointARN", "")),
            number if isinstance(number, str) else None,
        )


def dial_target(target: str | QuickConnect) -> str | dict[str, str]:
    """The ``data`` of SetMakeCall, Consult and Transfer: a number as given, an ARN
    (``arn:…``) or a :class:`QuickConnect` as ``{"endpointARN": …}``. The hub checks
    the form (E.164, ARN) and refuses anything else with SCHEMA_VIOLATION."""
    if isinstance(target, QuickConnect):
        return {"endpointARN": target.endpoint_arn}
    if target.startswith("arn:"):
        return {"endpointARN": target}
    return target


class CallStream:
    """An async iterator of :class:`Call`, one per ``InboundCallStateChange`` received.

    Use ``async with`` (or :meth:`close`) to stop receiving. It ends when the
    client closes, raising the client's ``close_error`` if there was one.
    """

    def __init__(self, stream: Stream[Envelope]) -> None:
        self._stream = stream

    @property
    def dropped(self) -> int:
        """Events dropped because the consumer fell too far behind."""
        return self._stream.dropped

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Call:
        return Call.from_event(await self._stream.__anext__())

    async def get(self, timeout: float | None = None) -> Call:
        """The next call event; :class:`TimeoutError` after ``timeout`` seconds."""
        return Call.from_event(await self._stream.get(timeout))

    def close(self) -> None:
        self._stream.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


class Calls:
    """The call family on one app's :class:`BridgeClient`, or on a supervisor's for one agent.

    ``timeout`` is the client's own limit per request (default: the
    client's ``request_timeout``); the hub's per-kind deadline (longer for
    SetMakeCall, Consult and Transfer, see docs/kinds.md) normally ends a
    request first.

    ``agent`` (a supervisor's client): the agent whose calls these are; its
    requests need a scope that holds it and ``control``.
    """

    def __init__(self, bus: BridgeClient, *, timeout: float | None = None, agent: str | None = None) -> None:
        self.bus = bus
        self.timeout = timeout
        self.agent = agent

    # ----- events --------------------------------------------------------------------

    def events(self) -> CallStream:
        """Call events from now on: the retained calls replayed after each (re)connection
        come first (``retained`` true), or after a reconnect that recovered, the changes
        it missed (``recovered`` true); then every change of every contact.

        Create it right after the client starts to see the replay of the first
        connection; :meth:`state_sync` asks the provider for the live calls at any time.
        """
        return CallStream(self.bus.events(INBOUND_CALL_STATE_CHANGE, agent=self.agent))

    # ----- requests ------------------------------------------------------------------

    async def answer(self, contact_id: str | None = None) -> Call:
        """Accept the ringing contact (or ``contact_id``): the call ``connected`` (or ``connecting``)."""
        return await self._call(ANSWER, contact_id)

    async def reject(self, contact_id: str | None = None) -> Call:
        """Decline the ringing contact: the call ``Rejected`` (``Dropped`` follows)."""
        return await self._call(REJECT, contact_id)

    async def hold(self, connection_id: str | None = None) -> Call:
        """Hold ``connection_id`` (default: the customer of the one live contact)."""
        return await self._call(HOLD, connection_id)

    async def resume(self, connection_id: str | None = None) -> Call:
        """Resume ``connection_id`` (default: the customer of the one live contact)."""
        return await self._call(RESUME, connection_id)

    async def hangup(self, connection_id: str | None = None) -> Call:
        """Hang ``connection_id`` up; by default end the agent's part of the call (then ``ACW``)."""
        return await self._call(DISCONNECT, connection_id)

    disconnect = hangup

    async def dial(self, target: str | QuickConnect) -> Call:
        """Call out (SetMakeCall) to an E.164 number or a quick connect: the new contact, ``connecting``."""
        return await self._call(SET_MAKE_CALL, dial_target(target))

    async def dtmf(self, digits: str) -> Call:
        """Send DTMF digits (``0-9 * # ,``) on the customer connection of the one live contact."""
        return await self._call(SEND_DTMF, digits)

    async def consult(self, target: str | QuickConnect) -> Call:
        """Add a third party (number or quick connect); the customer goes on hold."""
        return await self._call(CONSULT, dial_target(target))

    async def conference(self) -> Call:
        """Join every party of the one live contact."""
        return await self._call(CONFERENCE, None)

    async def swap(self) -> Call:
        """Toggle which party of the one live contact is on hold."""
        return await self._call(SWAP, None)

    async def transfer(self, target: str | QuickConnect) -> Call:
        """Blind-transfer the one live contact: the party is added, the agent leaves (``ACW``)."""
        return await self._call(TRANSFER, dial_target(target))

    async def clear(self, contact_id: str | None = None) -> Call:
        """End after-call work: the call ``Dropped``; the agent's next state follows."""
        return await self._call(CLEAR_CONTACT, contact_id)

    async def quick_connects(self) -> list[QuickConnect]:
        """The agent's quick connects."""
        answer = await self._request(GET_QUICK_CONNECTS, None)
        return [QuickConnect.from_json(e) for e in answer["message"]["endpoints"]]

    async def state_sync(self) -> list[Call]:
        """The agent's live contacts now, as the provider sees them."""
        answer = await self._request(INBOUND_CALL_STATE_SYNC, None)
        return [Call.from_json(c, answer) for c in answer["message"]["calls"]]

    live = state_sync

    async def find_quick_connect(self, name: str) -> QuickConnect | None:
        """The quick connect called ``name`` (case-insensitive), or None."""
        wanted = name.casefold()
        return next((q for q in await self.quick_connects() if q.name.casefold() == wanted), None)

    # ----- internals -----------------------------------------------------------------

    async def _call(self, kind: Kind, data: Any) -> Call:
        return Call.from_event(await self._request(kind, data))

    async def _request(self, kind: Kind, data: Any) -> Envelope:
        return await self.bus.request_any(kind, data, timeout=self.timeout, agent=self.agent)

