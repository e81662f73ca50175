"""The virtual agent's voice contacts, modelled as Amazon Connect keeps them, with no I/O.

:class:`Switchboard` holds the agent's live contacts and carries out the
``Amazon/InboundCall`` requests of protocol v1.1 (``calls.md``). Each change
returns the events to publish, in order: the first answers the request (its
``replyTo`` is the request's id), the rest follow unsolicited (a ``Dropped``
after ``Rejected``, the agent's ``SetAgentState`` when its system state
changed). Timers (ringing that nobody answers, a customer who hangs up, the
far end picking up) are not kept here: :meth:`Switchboard.timers` says which
are due to run, and the caller (:class:`bridge.sim.virtual_agent.VirtualAgent`)
runs them and calls back.

What it mimics:

* an inbound contact rings (``connecting``: the agent's connection
  connecting, the customer's connected), is answered (``connected``) or
  rejected (``Rejected``) or missed (``missed``), and every contact ends with
  ``Dropped``;
* hold and resume act on a connection; a consult adds a third party and
  holds the customer; conference joins them, swap toggles who is held; a
  blind transfer adds the party and the agent leaves;
* when the agent's last party hangs up (or the agent does) the contact goes
  to after-call work (``ACW``) until it is cleared;
* a dial out (``SetMakeCall``) is a new ``outbound`` contact that the
  simulated customer answers after a delay;
* the agent's system state follows its contacts (``PendingBusy``,
  ``CallingCustomer``, ``Busy``, ``AfterCallWork``), through
  :meth:`bridge.sim.agent_model.AgentModel.set_system`.

Simplification: a missed contact returns the agent to its selected state
(Connect would show ``MissedCallAgent`` until the agent changes state), so
that the demo keeps ringing its agents.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Final, NamedTuple

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
    SET_AGENT_STATE,
    SET_MAKE_CALL,
    SWAP,
    TRANSFER,
    ErrorType,
    Kind,
)
from bridge.sim.agent_model import (
    AFTER_CALL_WORK,
    BUSY,
    CALLING_CUSTOMER,
    PENDING_BUSY,
    AgentModel,
    AgentState,
    Answer,
    Failure,
    StateType,
    iso_ms,
)

#: Every request of the call family.
CALL_REQUESTS: Final = (
    ANSWER,
    REJECT,
    HOLD,
    RESUME,
    DISCONNECT,
    SET_MAKE_CALL,
    SEND_DTMF,
    CLEAR_CONTACT,
    CONSULT,
    CONFERENCE,
    SWAP,
    TRANSFER,
    GET_QUICK_CONNECTS,
    INBOUND_CALL_STATE_SYNC,
)

#: The error type of each call-control request (calls.md); the sentence is the protocol's.
CALL_ERRORS: Final[dict[str, ErrorType]] = {
    ANSWER.subtopic: ErrorType.ANSWER_CALL_FAILED,
    REJECT.subtopic: ErrorType.REJECT_CALL_FAILED,
    HOLD.subtopic: ErrorType.HOLD_CALL_FAILED,
    RESUME.subtopic: ErrorType.RESUME_CALL_FAILED,
    DISCONNECT.subtopic: ErrorType.DISCONNECT_CALL_FAILED,
    SET_MAKE_CALL.subtopic: ErrorType.MAKE_CALL_FAILED,
    SEND_DTMF.subtopic: ErrorType.SEND_DTMF_FAILED,
    CLEAR_CONTACT.subtopic: ErrorType.CLEAR_CONTACT_FAILED,
    CONSULT.subtopic: ErrorType.CONSULT_CALL_FAILED,
    CONFERENCE.subtopic: ErrorType.CONFERENCE_CALL_FAILED,
    SWAP.subtopic: ErrorType.SWAP_CALL_FAILED,
    TRANSFER.subtopic: ErrorType.TRANSFER_CALL_FAILED,
}

#: The instance the simulated ARNs belong to (the samples' instance).
INSTANCE_ARN: Final = "arn:aws:connect:us-east-1:123456789012:instance/0f6a2b1c-3d4e-4f50-8a61-72b3c4d5e6f7"
#: The contact center's number, the DNIS of inbound calls.
DEFAULT_DNIS: Final = "+18005550199"
DEFAULT_CALLER: Final = "+15555550123"


class CallTimers(NamedTuple):
    """The simulated calls' timers, in seconds; ``None`` is off.

    :data:`COMMAND_CALL_TIMERS` holds the command line's defaults. The Python
    class :class:`bridge.sim.virtual_agent.VirtualAgent` starts with every timer
    off but ``answer_delay`` instead: a program (a test) drives its calls itself.
    """

    #: An inbound call rings this often while the agent is free and routable.
    call_every: float | None
    #: The customer of an answered call hangs up after this long.
    call_length: float | None
    #: A ringing call nobody answers is missed after this long.
    ring_timeout: float | None
    #: A dialed customer or a consulted party picks up after this long (0: at once).
    answer_delay: float
    #: After-call work nobody clears ends after this long.
    acw_timeout: float | None


#: The one set of defaults for ``connect-bridge virtual-agent`` and ``connect-bridge demo``:
#: a call every 45 s while Available (a newcomer sees one within a minute, with time
#: to try each button), 20 s to ring and to talk, 2 s to pick up, 10 s of after-call work.
COMMAND_CALL_TIMERS: Final = CallTimers(
    call_every=45.0, call_length=20.0, ring_timeout=20.0, answer_delay=2.0, acw_timeout=10.0
)
DEFAULT_QUEUE: Final = "BasicQueue"

BUTTONS: Final = (
    "answer",
    "reject",
    "disconnect",
    "hold",
    "resume",
    "clearContact",
    "consult",
    "numberpad",
    "swap",
    "transfer",
    "conference",
)


def simulated_arn(kind: str, name: str) -> str:
    """A stable ARN of the simulated instance: ``…/transfer-destination/<uuid5 of name>``."""
    return f"{INSTANCE_ARN}/{kind}/{uuid.uuid5(uuid.NAMESPACE_URL, f'{kind}/{name}')}"


def is_e164(text: str) -> bool:
    """Whether ``text`` is a phone number in E.164 (what the schemas accept)."""
    digits = text[1:]
    return text.startswith("+") and 2 <= len(digits) <= 15 and digits.isdigit() and digits[0] != "0"


class Phase(StrEnum):
    """Where a contact stands for the agent; ``event`` is derived from it."""

    RINGING = "ringing"
    DIALING = "dialing"
    LIVE = "live"
    ACW = "acw"
    MISSED = "missed"
    REJECTED = "rejected"
    DROPPED = "dropped"


class Status(StrEnum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    HOLD = "hold"
    DISCONNECTED = "disconnected"


@dataclass(frozen=True, slots=True)
class QuickConnect:
    """One quick connect: ``type`` is ``phone_number``, ``agent`` or ``queue``."""

    name: str
    type: str
    endpoint_arn: str
    phone_number: str | None = None

    @classmethod
    def parse(cls, text: str) -> QuickConnect:
        """``"Front desk=+18005550111"`` (a number), ``"Billing=queue"``, ``"Sam=agent"``."""
        name, sep, target = text.rpartition("=")
        name, target = name.strip(), target.strip()
        if not sep or not name:
            raise ValueError(f"a quick connect is NAME=+E164, NAME=queue or NAME=agent, not {text!r}")
        if target in ("queue", "agent"):
            return cls(name, target, simulated_arn("transfer-destination", name))
        if not is_e164(target):
            raise ValueError(f"{text!r}: {target!r} is not an E.164 number, 'queue' or 'agent'")
        return cls(name, "phone_number", simulated_arn("transfer-destination", name), target)

    def as_endpoint(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "endpointARN": self.endpoint_arn, "phoneNumber": self.phone_number}


DEFAULT_QUICK_CONNECTS: Final = (
    QuickConnect.parse("Billing queue=queue"),
    QuickConnect.parse("Front desk=+18005550111"),
    QuickConnect.parse("Supervisor=agent"),
)


@dataclass(slots=True)
class Connection:
    """One party of a contact."""

    connection_id: str
    type: str  # agent, inbound, outbound
    phone_number: str | None
    status: Status
    since: datetime
    #: Whether this party ever answered (the far end of a dial, a consulted party).
    answered: bool = False

    @property
    def active(self) -> bool:
        return self.status is not Status.DISCONNECTED

    def as_json(self) -> dict[str, Any]:
        return {
            "connectionId": self.connection_id,
            "type": self.type,
            "phoneNumber": self.phone_number,
            "status": str(self.status),
            "since": iso_ms(self.since),
        }


@dataclass(slots=True)
class Contact:
    """One voice contact of the agent."""

    contact_id: str
    call_type: str  # inbound, outbound, transfer
    phase: Phase
    variables: dict[str, str]
    queue: dict[str, Any] | None
    connections: list[Connection]
    since: datetime
    #: Digits sent on it, in order (the event does not echo them; tests read them here).
    dtmf: list[str] = field(default_factory=list)
    parties_added: int = 0

    @property
    def agent(self) -> Connection:
        return self.connections[0]

    @property
    def customer(self) -> Connection:
        return self.connections[1]

    @property
    def third_parties(self) -> list[Connection]:
        return [c for c in self.connections[2:] if c.active]

    @property
    def parties(self) -> list[Connection]:
        """The other parties still on the call (customer and third parties)."""
        return [c for c in self.connections[1:] if c.active]

    @property
    def event(self) -> str:
        """The contact's state for the agent, spelled as the protocol spells it."""
        if self.phase in (Phase.RINGING, Phase.DIALING):
            return "connecting"
        if self.phase is Phase.LIVE:
            return "hold" if self.customer.status is Status.HOLD else "connected"
        return {Phase.ACW: "ACW", Phase.MISSED: "missed", Phase.REJECTED: "Rejected"}.get(self.phase, "Dropped")

    def buttons(self) -> dict[str, str]:
        """What Connect allows now (``ButtonStates.items``)."""
        shown: dict[str, str] = dict.fromkeys(BUTTONS, "Hide")
        if self.phase is Phase.RINGING:
            shown.update(answer="Enable", reject="Enable")
        elif self.phase is Phase.DIALING:
            shown.update(disconnect="Enable")
        elif self.phase is Phase.ACW:
            shown.update(clearContact="Enable")
        elif self.phase is Phase.LIVE:
            parties = self.parties
            held = [c for c in parties if c.status is Status.HOLD]
            talking = [c for c in parties if c.status is Status.CONNECTED]
            third = self.third_parties
            shown.update(disconnect="Enable", numberpad="Enable" if talking else "Disable")
            if self.customer.active:
                shown["hold" if self.customer.status is not Status.HOLD else "resume"] = "Enable"
            if third:
                if held and talking:
                    shown.update(swap="Enable", conference="Enable")
            else:
                shown.update(consult="Enable", transfer="Enable")
        return shown

    def as_call(self) -> dict[str, Any]:
        """The ``Call`` object of calls.md."""
        items = self.buttons()
        return {
            "id": self.contact_id,
            "event": self.event,
            "CallType": self.call_type,
            "CallVariables": dict(self.variables),
            "ButtonStates": {"items": items, "count": len(items)},
            "connections": [c.as_json() for c in self.connections],
            "queue": self.queue,
            "since": iso_ms(self.since),
        }


class Timer(NamedTuple):
    """A timer the switchboard wants run: ``purpose`` on a contact (and a connection)."""

    purpose: str  # "ring" (missed), "answer" (the far end picks up), "hangup" (customer), "acw" (auto clear)
    contact_id: str
    connection_id: str | None = None


Outcome = list[Answer] | Failure


class Switchboard:
    """The agent's voice contacts: requests, simulated parties and the agent's system state."""

    def __init__(
        self,
        model: AgentModel,
        *,
        quick_connects: Iterable[QuickConnect] = DEFAULT_QUICK_CONNECTS,
        fail: Iterable[str] = (),
        dnis: str = DEFAULT_DNIS,
        queue: str = DEFAULT_QUEUE,
        clock: Callable[[], datetime] | None = None,
        ids: Callable[[], str] | None = None,
    ) -> None:
        """``fail``: subtopics (``Hold``, ``Transfer``…) that Connect refuses with the kind's error."""
        self.model = model
        self.quick_connects: tuple[QuickConnect, ...] = tuple(quick_connects)
        unknown = sorted(set(fail) - set(CALL_ERRORS))
        if unknown:
            raise ValueError(f"cannot fail {', '.join(unknown)}: not one of {', '.join(CALL_ERRORS)}")
        self.fail: set[str] = set(fail)
        self.dnis = dnis
        self.queue = {"name": queue, "arn": simulated_arn("queue", queue)}
        self._clock = clock if clock is not None else model.clock
        self._ids = ids if ids is not None else (lambda: str(uuid.uuid4()))
        #: Live contacts by id, in the order they first appeared.
        self.contacts: dict[str, Contact] = {}

    # ----- reading ---------------------------------------------------------------------

    def live(self) -> list[Contact]:
        return list(self.contacts.values())

    def call_event(self, contact: Contact) -> Answer:
        return Answer(INBOUND_CALL_STATE_CHANGE, {"call": contact.as_call(), "source": "event"}, changed=True)

    def snapshot(self) -> list[Answer]:
        """One call event per live contact: what a provider publishes when it (re)joins."""
        return [self.call_event(c) for c in self.contacts.values()]

    def state_sync(self) -> Answer:
        return Answer(INBOUND_CALL_STATE_SYNC, {"calls": [c.as_call() for c in self.contacts.values()]})

    def get_quick_connects(self) -> Answer:
        return Answer(GET_QUICK_CONNECTS, {"endpoints": [q.as_endpoint() for q in self.quick_connects]})

    def timers(self) -> set[Timer]:
        """The timers due to run now; a timer no longer listed is to be cancelled."""
        due: set[Timer] = set()
        for contact in self.contacts.values():
            if contact.phase is Phase.RINGING:
                due.add(Timer("ring", contact.contact_id))
            elif contact.phase is Phase.ACW:
                due.add(Timer("acw", contact.contact_id))
            if contact.phase in (Phase.DIALING, Phase.LIVE):
                for party in contact.parties:
                    if party.status is Status.CONNECTING:
                        due.add(Timer("answer", contact.contact_id, party.connection_id))
                if contact.phase is Phase.LIVE and contact.customer.active and contact.customer.answered:
                    due.add(Timer("hangup", contact.contact_id, contact.customer.connection_id))
        return due

    # ----- events from the simulated world ---------------------------------------------------

    def ring(self, caller: str = DEFAULT_CALLER, attributes: Mapping[str, str] | None = None) -> list[Answer] | None:
        """An inbound contact rings for the agent; ``None`` when the agent is logged out."""
        if self.model.state.type is StateType.OFFLINE:
            return None
        now = self._clock()
        contact_id = self._ids()
        variables = {"ANI": caller, "DNIS": self.dnis, **{str(k): str(v) for k, v in (attributes or {}).items()}}
        contact = Contact(
            contact_id,
            "inbound",
            Phase.RINGING,
            variables,
            dict(self.queue),
            [
                Connection(f"{contact_id}-a", "agent", None, Status.CONNECTING, now),
                Connection(f"{contact_id}-c", "inbound", caller, Status.CONNECTED, now, answered=True),
            ],
            now,
        )
        self.contacts[contact_id] = contact
        return [self.call_event(contact), *self._agent_state()]

    def start_answered(self, caller: str = DEFAULT_CALLER, attributes: Mapping[str, str] | None = None) -> list[Answer] | None:
        """An inbound contact already answered (the agent picked up by hand)."""
        rung = self.ring(caller, attributes)
        if rung is None:
            return None
        contact = list(self.contacts.values())[-1]
        self._set_phase(contact, Phase.LIVE)
        self._set_status(contact.agent, Status.CONNECTED)
        return [self.call_event(contact), *self._agent_state()]

    def end_all(self) -> list[Answer]:
        """Every live contact ends at once (hung up and cleared): ``Dropped`` for each."""
        out: list[Answer] = []
        for contact in list(self.contacts.values()):
            out += self._drop(contact)
        return out + self._agent_state()

    def timer_fired(self, timer: Timer) -> list[Answer]:
        """Carry out a timer that :meth:`timers` asked for (nothing if it no longer applies)."""
        if timer not in self.timers():
            return []
        contact = self.contacts[timer.contact_id]
        if timer.purpose == "ring":
            return self.miss(contact.contact_id)
        if timer.purpose == "acw":
            return self._clear(contact)
        party = self._connection(contact, timer.connection_id)
        if party is None:  # pragma: no cover - timers() names existing connections
            return []
        if timer.purpose == "answer":
            return self.far_end_answers(contact, party)
        return self.party_hangs_up(contact, party)

    def miss(self, contact_id: str) -> list[Answer]:
        """Nobody answered the ringing contact: ``missed``, then ``Dropped``."""
        contact = self.contacts[contact_id]
        self._set_phase(contact, Phase.MISSED)
        self._set_status(contact.agent, Status.DISCONNECTED)
        return [self.call_event(contact), *self._drop(contact), *self._agent_state()]

    def far_end_answers(self, contact: Contact, party: Connection) -> list[Answer]:
        """The dialed customer or the consulted party picks up."""
        self._set_status(party, Status.CONNECTED)
        party.answered = True
        if contact.phase is Phase.DIALING:
            self._set_phase(contact, Phase.LIVE)
        else:
            self._touch(contact)
        return [self.call_event(contact), *self._agent_state()]

    def customer_hangs_up(self, contact_id: str | None = None) -> list[Answer]:
        """The customer of ``contact_id`` (or of the one live contact) hangs up; [] if none."""
        contact = self.contacts.get(contact_id) if contact_id else self._only()
        if contact is None or not contact.customer.active:
            return []
        if contact.phase is Phase.RINGING:  # the caller gave up before the agent answered
            self._set_status(contact.customer, Status.DISCONNECTED)
            return [*self._drop(contact), *self._agent_state()]
        return self.party_hangs_up(contact, contact.customer)

    def third_party_hangs_up(self, contact_id: str | None = None) -> list[Answer]:
        """The consulted party of ``contact_id`` (or of the one live contact) hangs up."""
        contact = self.contacts.get(contact_id) if contact_id else self._only()
        if contact is None or not contact.third_parties:
            return []
        return self.party_hangs_up(contact, contact.third_parties[0])

    def party_hangs_up(self, contact: Contact, party: Connection) -> list[Answer]:
        self._set_status(party, Status.DISCONNECTED)
        if not contact.parties:
            self._to_acw(contact)
        else:
            self._touch(contact)
        return [self.call_event(contact), *self._agent_state()]

    # ----- requests ------------------------------------------------------------------------

    def handle(self, kind: Kind, data: Any = None) -> Outcome:
        """Carry out one request of the call family (``data`` already passed the schema)."""
        if kind == GET_QUICK_CONNECTS:
            return [self.get_quick_connects()]
        if kind == INBOUND_CALL_STATE_SYNC:
            return [self.state_sync()]
        if kind == SET_MAKE_CALL:
            return self._refused(kind) or self.dial(data)
        handler = {
            ANSWER: self._answer,
            REJECT: self._reject,
            CLEAR_CONTACT: self._clear_request,
            HOLD: self._hold,
            RESUME: self._resume,
            DISCONNECT: self._disconnect,
            SEND_DTMF: self._dtmf,
            CONSULT: self._consult,
            CONFERENCE: self._conference,
            SWAP: self._swap,
            TRANSFER: self._transfer,
        }.get(kind)
        if handler is None:
            return Failure(ErrorType.UNKNOWN_MESSAGE, f"the virtual agent does not carry out {kind}")
        if kind in (HOLD, RESUME, DISCONNECT):
            found = self._find_connection(kind, data)
        else:
            found = self._find_contact(kind, data if kind in (ANSWER, REJECT, CLEAR_CONTACT) else None)
        if isinstance(found, Failure):
            return found
        return self._refused(kind) or handler(found, data)

    def dial(self, data: Any) -> Outcome:
        """``SetMakeCall``: a new outbound contact, ringing the customer."""
        if self.model.state.type is StateType.OFFLINE:
            return self._failed(SET_MAKE_CALL, "InvalidStateException: the agent is offline")
        if self.contacts:
            busy = next(iter(self.contacts))
            return self._failed(SET_MAKE_CALL, f"InvalidStateException: the agent already has contact {busy}")
        target = self._target(SET_MAKE_CALL, data)
        if isinstance(target, Failure):
            return target
        number, _ = target
        now = self._clock()
        contact_id = self._ids()
        contact = Contact(
            contact_id,
            "outbound",
            Phase.DIALING,
            {"DNIS": number} if number else {},
            None,
            [
                Connection(f"{contact_id}-a", "agent", None, Status.CONNECTED, now),
                Connection(f"{contact_id}-c", "outbound", number, Status.CONNECTING, now),
            ],
            now,
        )
        self.contacts[contact_id] = contact
        return [self.call_event(contact), *self._agent_state()]

    # ----- request handlers (the target exists) --------------------------------------------

    def _answer(self, found: Contact | Connection, _: Any) -> Outcome:
        contact = self._contact_of(found)
        if contact.phase is not Phase.RINGING:
            return self._failed(ANSWER, f"InvalidStateException: contact {contact.contact_id} is {contact.event}, not ringing")
        self._set_phase(contact, Phase.LIVE)
        self._set_status(contact.agent, Status.CONNECTED)
        return [self.call_event(contact), *self._agent_state()]

    def _reject(self, found: Contact | Connection, _: Any) -> Outcome:
        contact = self._contact_of(found)
        if contact.phase is not Phase.RINGING:
            return self._failed(REJECT, f"InvalidStateException: contact {contact.contact_id} is {contact.event}, not ringing")
        self._set_phase(contact, Phase.REJECTED)
        self._set_status(contact.agent, Status.DISCONNECTED)
        return [self.call_event(contact), *self._drop(contact), *self._agent_state()]

    def _clear_request(self, found: Contact | Connection, _: Any) -> Outcome:
        contact = self._contact_of(found)
        if contact.phase is not Phase.ACW:
            return self._failed(
                CLEAR_CONTACT, f"InvalidStateException: contact {contact.contact_id} is {contact.event}, not in after-call work"
            )
        return self._clear(contact)

    def _hold(self, found: Contact | Connection, _: Any) -> Outcome:
        contact, party = self._party(found)
        if contact.phase is not Phase.LIVE or party.type == "agent" or party.status is not Status.CONNECTED:
            why = "the agent's own connection" if party.type == "agent" else party.status
            return self._failed(HOLD, f"InvalidStateException: cannot hold connection {party.connection_id} ({why})")
        self._set_status(party, Status.HOLD)
        self._touch(contact)
        return [self.call_event(contact)]

    def _resume(self, found: Contact | Connection, _: Any) -> Outcome:
        contact, party = self._party(found)
        if contact.phase is not Phase.LIVE or party.status is not Status.HOLD:
            return self._failed(
                RESUME, f"InvalidStateException: connection {party.connection_id} is {party.status}, not on hold"
            )
        self._set_status(party, Status.CONNECTED)
        self._touch(contact)
        return [self.call_event(contact)]

    def _disconnect(self, found: Contact | Connection, _: Any) -> Outcome:
        # No data: the agent's own part of the call, as Streams' contact-level hang-up.
        contact, party = (found, found.agent) if isinstance(found, Contact) else self._party(found)
        if contact.phase not in (Phase.LIVE, Phase.DIALING) or not party.active:
            return self._failed(
                DISCONNECT, f"InvalidStateException: connection {party.connection_id} of a contact in {contact.event}"
            )
        if party.type == "agent":
            for other in contact.parties:
                self._set_status(other, Status.DISCONNECTED)
            self._to_acw(contact)
            return [self.call_event(contact), *self._agent_state()]
        return self.party_hangs_up(contact, party)

    def _dtmf(self, found: Contact | Connection, data: Any) -> Outcome:
        contact = self._contact_of(found)
        if contact.phase is not Phase.LIVE or not any(c.status is Status.CONNECTED for c in contact.parties):
            return self._failed(SEND_DTMF, f"InvalidStateException: no connected party on contact {contact.contact_id}")
        contact.dtmf.append(str(data))
        return [self.call_event(contact)]

    def _consult(self, found: Contact | Connection, data: Any) -> Outcome:
        contact = self._contact_of(found)
        if contact.phase is not Phase.LIVE or contact.third_parties:
            why = "a third party is already on it" if contact.third_parties else f"it is {contact.event}"
            return self._failed(CONSULT, f"InvalidStateException: cannot consult on contact {contact.contact_id}: {why}")
        target = self._target(CONSULT, data)
        if isinstance(target, Failure):
            return target
        if contact.customer.status is Status.CONNECTED:
            self._set_status(contact.customer, Status.HOLD)
        self._add_party(contact, target[0], Status.CONNECTING)
        return [self.call_event(contact)]

    def _conference(self, found: Contact | Connection, _: Any) -> Outcome:
        contact = self._contact_of(found)
        parties = contact.parties
        if len(parties) < 2 or any(c.status is Status.CONNECTING for c in parties):
            return self._failed(
                CONFERENCE, f"InvalidStateException: contact {contact.contact_id} has no connected third party"
            )
        for party in parties:
            self._set_status(party, Status.CONNECTED)
        self._touch(contact)
        return [self.call_event(contact)]

    def _swap(self, found: Contact | Connection, _: Any) -> Outcome:
        contact = self._contact_of(found)
        parties = contact.parties
        statuses = sorted(str(c.status) for c in parties)
        if len(parties) != 2 or statuses != ["connected", "hold"]:
            return self._failed(
                SWAP, f"InvalidStateException: contact {contact.contact_id} has no held and active party to swap"
            )
        for party in parties:
            self._set_status(party, Status.CONNECTED if party.status is Status.HOLD else Status.HOLD)
        self._touch(contact)
        return [self.call_event(contact)]

    def _transfer(self, found: Contact | Connection, data: Any) -> Outcome:
        contact = self._contact_of(found)
        if contact.phase is not Phase.LIVE or contact.third_parties:
            why = "a third party is already on it" if contact.third_parties else f"it is {contact.event}"
            return self._failed(TRANSFER, f"InvalidStateException: cannot transfer contact {contact.contact_id}: {why}")
        target = self._target(TRANSFER, data)
        if isinstance(target, Failure):
            return target
        # Blind: the party is added, then the agent leaves; the call goes on without the agent.
        self._add_party(contact, target[0], Status.DISCONNECTED)
        self._set_status(contact.customer, Status.DISCONNECTED)
        self._to_acw(contact)
        return [self.call_event(contact), *self._agent_state()]

    # ----- internals -------------------------------------------------------------------

    def _refused(self, kind: Kind) -> Failure | None:
        """``--fail KIND``: Connect refuses this kind whatever the contact's state."""
        if kind.subtopic in self.fail:
            return self._failed(kind, f"InvalidStateException: refused (simulated: --fail {kind.subtopic})")
        return None

    def _failed(self, kind: Kind, error_message: str) -> Failure:
        return Failure(CALL_ERRORS[kind.subtopic], error_message)

    def _only(self) -> Contact | None:
        return next(iter(self.contacts.values())) if len(self.contacts) == 1 else None

    def _no_default(self, kind: Kind) -> Failure:
        count = len(self.contacts)
        why = "the agent has no live contact" if not count else f"the agent has {count} live contacts: name one"
        return Failure(ErrorType.CALL_NOT_FOUND, f"{kind.subtopic} without data: {why}")

    def _find_contact(self, kind: Kind, data: Any) -> Contact | Failure:
        if isinstance(data, str):
            found = self.contacts.get(data)
            if found is None:
                return Failure(ErrorType.CALL_NOT_FOUND, f"{kind.subtopic}: no live contact {data!r}")
            return found
        return self._only() or self._no_default(kind)

    def _find_connection(self, kind: Kind, data: Any) -> Contact | Connection | Failure:
        if isinstance(data, str):
            for contact in self.contacts.values():
                for connection in contact.connections:
                    if connection.connection_id == data:
                        return connection
            return Failure(ErrorType.CALL_NOT_FOUND, f"{kind.subtopic}: no connection {data!r} on a live contact")
        return self._only() or self._no_default(kind)

    def _contact_of(self, found: Contact | Connection) -> Contact:
        if isinstance(found, Contact):
            return found
        return next(c for c in self.contacts.values() if found in c.connections)

    def _party(self, found: Contact | Connection) -> tuple[Contact, Connection]:
        """The contact and the connection a Hold or Resume acts on (no data: the customer)."""
        if isinstance(found, Connection):
            return self._contact_of(found), found
        return found, found.customer

    def _connection(self, contact: Contact, connection_id: str | None) -> Connection | None:
        return next((c for c in contact.connections if c.connection_id == connection_id), None)

    def _target(self, kind: Kind, data: Any) -> tuple[str | None, QuickConnect | None] | Failure:
        """The number to call, from an E.164 string or a configured quick connect's ARN."""
        if isinstance(data, str):
            return data, None
        arn = data.get("endpointARN") if isinstance(data, dict) else None
        for quick in self.quick_connects:
            if quick.endpoint_arn == arn:
                return quick.phone_number, quick
        return self._failed(kind, f"ResourceNotFoundException: no quick connect {arn!r}")

    def _add_party(self, contact: Contact, number: str | None, status: Status) -> None:
        contact.parties_added += 1
        connection_id = f"{contact.contact_id}-t{contact.parties_added}"
        contact.connections.append(Connection(connection_id, "outbound", number, status, self._clock()))
        self._touch(contact)

    def _to_acw(self, contact: Contact) -> None:
        self._set_status(contact.agent, Status.DISCONNECTED)
        self._set_phase(contact, Phase.ACW)

    def _clear(self, contact: Contact) -> list[Answer]:
        return [*self._drop(contact), *self._agent_state()]

    def _drop(self, contact: Contact) -> list[Answer]:
        """The contact leaves the agent: its last event, ``Dropped``, every connection gone."""
        for connection in contact.connections:
            self._set_status(connection, Status.DISCONNECTED)
        self._set_phase(contact, Phase.DROPPED)
        del self.contacts[contact.contact_id]
        return [self.call_event(contact)]

    def _set_phase(self, contact: Contact, phase: Phase) -> None:
        if contact.phase is not phase:
            contact.phase = phase
            contact.since = self._clock()

    def _touch(self, contact: Contact) -> None:
        contact.since = self._clock()

    def _set_status(self, connection: Connection, status: Status) -> None:
        if connection.status is not status:
            connection.status = status
            connection.since = self._clock()

    def _agent_state(self) -> list[Answer]:
        """The agent's system state from its contacts; a SetAgentState when it changed."""
        phases = {c.phase for c in self.contacts.values()}
        system: AgentState | None = None
        if Phase.LIVE in phases:
            system = BUSY
        elif Phase.DIALING in phases:
            system = CALLING_CUSTOMER
        elif Phase.RINGING in phases:
            system = PENDING_BUSY
        elif Phase.ACW in phases:
            system = AFTER_CALL_WORK
        if not self.model.set_system(system):
            return []
        return [Answer(SET_AGENT_STATE, self.model.set_agent_state(), changed=True)]
