"""A simulated Amazon Connect agent: states, calls, mute and queued changes, with no I/O.

This is the brain of the virtual agent (``bridge.virtual_agent``). It takes the
requests of protocol v1 and answers each with an :class:`Answer` (the event
message to publish) or a :class:`Failure` (the error to send), and it builds
``SetAgentState`` messages with the seed sample's shape. Nothing here touches a
socket or a timer, so every rule is testable with plain function calls; the
clock is injectable.

What it mimics (see shared/protocol/streams-notes.md):

* the agent picks one of its configured states (routable, not routable or
  offline);
* on a contact the visible state is a system state (``PendingBusy`` while
  one rings, ``CallingCustomer`` while dialing out, ``Busy`` in a
  conversation, ``AfterCallWork``); the contacts themselves are modelled by
  :mod:`bridge.sim.contacts`, which sets it. A state change requested
  meanwhile is queued as the *next state* (Streams' ``enqueueNextState``),
  shown as ``data.nextState`` and applied when the last contact ends; a later
  request replaces the queued one, as in Connect;
* mute acts only in a conversation and is cleared when the contact ends;
* ``rules.ButtonStates`` follow the state.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final

from bridge.protocol import ErrorType, Kind

AGENT: Final = ("Amazon", "Agent")
SET_NOT_READY: Final = Kind("Amazon", "Agent", "SetNotReady")
SET_READY: Final = Kind("Amazon", "Agent", "SetReady")
LOGOUT: Final = Kind("Amazon", "Agent", "Logout")
MUTE: Final = Kind("Amazon", "Agent", "Mute")
UNMUTE: Final = Kind("Amazon", "Agent", "Unmute")
GET_STATES: Final = Kind("Amazon", "Agent", "GetStates")
STATE_SYNC: Final = Kind("Amazon", "Agent", "StateSync")
SET_AGENT_STATE: Final = Kind("Amazon", "Agent", "SetAgentState")

#: Every request kind of protocol v1 that a provider carries out.
V1_REQUESTS: Final = (SET_NOT_READY, SET_READY, LOGOUT, MUTE, UNMUTE, GET_STATES, STATE_SYNC)


class StateType(StrEnum):
    """Streams' agent state types."""

    ROUTABLE = "routable"
    NOT_ROUTABLE = "not_routable"
    OFFLINE = "offline"
    SYSTEM = "system"
    ERROR = "error"
    INIT = "init"


#: The types an agent may select (``getAgentStates()``); the others are set by Connect.
SELECTABLE_TYPES: Final = frozenset({StateType.ROUTABLE, StateType.NOT_ROUTABLE, StateType.OFFLINE})


@dataclass(frozen=True, slots=True)
class AgentState:
    """One agent state: its display name (what ``ReasonCodeId`` names) and its type."""

    name: str
    type: StateType

    @classmethod
    def parse(cls, text: str) -> AgentState:
        """``"Break=not_routable"`` -> ``AgentState("Break", StateType.NOT_ROUTABLE)``."""
        name, sep, type_ = text.rpartition("=")
        if not sep or not name.strip():
            raise ValueError(f"a state is NAME=TYPE (e.g. Break=not_routable), not {text!r}")
        return cls(name.strip(), _selectable_type(type_.strip(), text))


def _selectable_type(value: str, where: str) -> StateType:
    try:
        state_type = StateType(value)
    except ValueError:
        raise ValueError(
            f"{where}: type {value!r} is not one of routable, not_routable, offline"
        ) from None
    if state_type not in SELECTABLE_TYPES:
        raise ValueError(f"{where}: type {value!r} is set by Connect, not selectable")
    return state_type


DEFAULT_STATES: Final = (
    AgentState("Available", StateType.ROUTABLE),
    AgentState("Break", StateType.NOT_ROUTABLE),
    AgentState("Lunch", StateType.NOT_ROUTABLE),
    AgentState("Training", StateType.NOT_ROUTABLE),
    AgentState("Offline", StateType.OFFLINE),
)

#: The system state Connect shows while the agent is in a conversation.
BUSY: Final = AgentState("Busy", StateType.SYSTEM)
#: While an inbound contact rings for the agent.
PENDING_BUSY: Final = AgentState("PendingBusy", StateType.SYSTEM)
#: While the agent dials out and the customer has not answered yet.
CALLING_CUSTOMER: Final = AgentState("CallingCustomer", StateType.SYSTEM)
#: After the conversation, until the contact is cleared.
AFTER_CALL_WORK: Final = AgentState("AfterCallWork", StateType.SYSTEM)


def states_from_config(value: Any, where: str = "states") -> tuple[AgentState, ...]:
    """Read agent states from parsed JSON or TOML.

    Accepted shapes: ``{"states": [...]}`` or a bare list, each item either
    ``{"name": "Break", "type": "not_routable"}`` or ``"Break=not_routable"``.
    Raises :class:`ValueError` saying what is wrong.
    """
    if isinstance(value, Mapping):
        if set(value) != {"states"}:
            raise ValueError(f"{where}: expected one key 'states', got {sorted(value)}")
        value = value["states"]
    if not isinstance(value, list):
        # ValueError, not TypeError: this is a fault in the user's file, reported as such.
        raise ValueError(f"{where}: expected a list of states")
    states: list[AgentState] = []
    for index, item in enumerate(value):
        at = f"{where}[{index}]"
        if isinstance(item, str):
            states.append(AgentState.parse(item))
        elif isinstance(item, Mapping):
            if set(item) != {"name", "type"}:
                raise ValueError(f"{at}: a state has exactly 'name' and 'type', got {sorted(item)}")
            name, type_ = item["name"], item["type"]
            if not isinstance(name, str) or not name.strip() or not isinstance(type_, str):
                raise ValueError(f"{at}: name and type must be non-empty strings")
            states.append(AgentState(name.strip(), _selectable_type(type_, at)))
        else:
            raise ValueError(f"{at}: expected an object or 'NAME=TYPE'")
    return tuple(states)


def iso_ms(moment: datetime) -> str:
    """ISO-8601 UTC with milliseconds, as Streams writes it: ``2020-04-09T13:31:21.183Z``."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def utc_now() -> datetime:
    return datetime.now(UTC)


def display_name(login_name: str) -> str:
    """A readable agent name from a login: ``agent1`` -> ``Agent 1``, ``jdoe`` -> ``Jdoe``."""
    match = re.fullmatch(r"([A-Za-z]+)[-_.]?(\d+)", login_name)
    if match:
        return f"{match.group(1).capitalize()} {match.group(2)}"
    return login_name[:1].upper() + login_name[1:]


@dataclass(frozen=True, slots=True)
class Answer:
    """A request carried out: publish ``message`` as an event of ``kind``.

    ``changed`` tells whether the agent's visible state (or mute) changed, which
    is when Streams would also fire its own events.
    """

    kind: Kind
    message: dict[str, Any]
    changed: bool = False


@dataclass(frozen=True, slots=True)
class Failure:
    """A request refused: send an error of ``error_type``.

    ``msg`` is left to the protocol's standard sentence when ``None``.
    """

    error_type: ErrorType
    error_message: str
    msg: str | None = None


Outcome = Answer | Failure


class AgentModel:
    """One logged-in agent as Amazon Connect would keep it.

    Construct it, feed it requests through :meth:`handle` (or the named
    methods) and call events (:meth:`start_call`, :meth:`end_call`); read
    :meth:`set_agent_state` for the message to publish after any change.
    """

    def __init__(
        self,
        login_name: str,
        *,
        states: Iterable[AgentState] = DEFAULT_STATES,
        name: str | None = None,
        extension: str = "",
        softphone_enabled: bool = True,
        initial_state: str | None = None,
        fail_updates: bool = False,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        """Raise :class:`ValueError` when the states cannot make a working agent.

        Needs at least one routable state (for SetReady) and one offline state
        (for Logout), and unique names. ``initial_state`` defaults to the first
        routable state: the demo's agents start Available.
        """
        self.login_name = login_name
        self.name = name if name is not None else display_name(login_name)
        self.extension = extension
        self.softphone_enabled = softphone_enabled
        #: When true, every state change fails with UPDATE_AGENT_STATE_FAILED (for testing apps).
        self.fail_updates = fail_updates
        self._clock = clock
        self.states: tuple[AgentState, ...] = tuple(states)
        names = [s.name for s in self.states]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"agent state names must be unique: {', '.join(duplicates)}")
        for state in self.states:
            if state.type not in SELECTABLE_TYPES:
                raise ValueError(f"state {state.name!r}: type {state.type} is not selectable")
        if not any(s.type is StateType.ROUTABLE for s in self.states):
            raise ValueError("the agent needs at least one routable state")
        if not any(s.type is StateType.OFFLINE for s in self.states):
            raise ValueError("the agent needs an offline state")
        if initial_state is None:
            chosen = next(s for s in self.states if s.type is StateType.ROUTABLE)
        else:
            found = self._find(initial_state)
            if found is None:
                raise ValueError(
                    f"initial state {initial_state!r} is not among: {', '.join(names)}"
                )
            chosen = found
        #: The state the agent selected; hidden behind a system state during a contact.
        self.selected: AgentState = chosen
        #: A change requested during a contact, applied when the last contact ends.
        self.next_state: AgentState | None = None
        #: The system state Connect shows while the agent has a contact (``None``: no contact).
        self.system: AgentState | None = None
        self.muted = False
        self._since = self._clock()

    # ----- reading -------------------------------------------------------------------

    @property
    def state(self) -> AgentState:
        """The visible state: the system state during a contact, else the selected one."""
        return self.system if self.system is not None else self.selected

    @property
    def on_call(self) -> bool:
        """Whether the agent has a contact (ringing, dialing, talking or in after-call work)."""
        return self.system is not None

    @property
    def in_conversation(self) -> bool:
        """Whether the agent is talking on a contact: what mute needs."""
        return self.system == BUSY

    @property
    def clock(self) -> Callable[[], datetime]:
        """The model's clock (the contacts of :mod:`bridge.sim.contacts` share it)."""
        return self._clock

    @property
    def since(self) -> datetime:
        """When the visible state began."""
        return self._since

    @property
    def logged_in(self) -> bool:
        return self.state.type is not StateType.OFFLINE

    def coarse_state(self) -> str:
        """What integrations switch on: ``Ready``, ``Not_Ready`` or ``Logout``."""
        if self.state.type is StateType.ROUTABLE:
            return "Ready"
        if self.state.type is StateType.OFFLINE:
            return "Logout"
        return "Not_Ready"

    def button_states(self) -> dict[str, str]:
        """What an agent desktop should offer now (``rules.ButtonStates.items``).

        Ready is pointless when already routable; Not Ready stays enabled (in
        Break one may switch to Lunch, as the seed sample shows); mute and
        unmute exist only in a conversation, and only the one that changes
        something is shown; a call cannot be placed while on one or while logged out.
        """
        state_type = self.state.type
        talking = self.in_conversation
        return {
            "NotReady": "Enable",
            "Ready": "Disable" if state_type is StateType.ROUTABLE else "Enable",
            "make_call": "Disable" if self.on_call or state_type is StateType.OFFLINE else "Enable",
            "mute": "Enable" if talking and not self.muted else "Hide",
            "unmute": "Enable" if talking and self.muted else "Hide",
        }

    def agent_state(self) -> dict[str, Any]:
        """``agent.getState()``: the ``rules.ResponseActual`` object."""
        return {
            "agentStateARN": None,
            "type": str(self.state.type),
            "name": self.state.name,
            "startTimestamp": iso_ms(self._since),
        }

    def rules(self) -> dict[str, Any]:
        items = self.button_states()
        return {
            "ButtonStates": {"items": items, "count": len(items)},
            "ResponseActual": self.agent_state(),
        }

    def agent_data(self) -> dict[str, Any]:
        """The agent as integrations see it (``message.data`` of SetAgentState)."""
        data: dict[str, Any] = {
            "muted": self.muted,
            "name": self.name,
            "extension": self.extension,
            "loginName": self.login_name,
            "softphoneEnabled": self.softphone_enabled,
            "state": self.coarse_state(),
        }
        # The seed sample puts reasonCode between state and stateChangeTime; keep its order.
        if self.state.type is StateType.NOT_ROUTABLE:
            data["reasonCode"] = {"id": self.state.name}
        data["stateChangeTime"] = iso_ms(self._since)
        data["type"] = str(self.state.type)
        if self.next_state is not None:
            # calls.md: the state Connect will apply when the contact ends, for widgets to show.
            data["nextState"] = {"name": self.next_state.name, "type": str(self.next_state.type)}
        return data

    def set_agent_state(self) -> dict[str, Any]:
        """The ``message`` of an ``Amazon/Agent/SetAgentState`` event for the current state."""
        return {
            "rules": self.rules(),
            "data": self.agent_data(),
            "event": self.state.name,
            "source": "event",
        }

    def get_states(self) -> Answer:
        """``Amazon/Agent/GetStates``: the selectable states.

        ``code`` is the name, which is what ``ReasonCodeId`` takes back.
        """
        states = [{"label": s.name, "code": s.name, "type": str(s.type)} for s in self.states]
        return Answer(GET_STATES, {"states": states})

    def state_sync(self) -> Answer:
        """``Amazon/Agent/StateSync``: everything at once."""
        return Answer(
            STATE_SYNC,
            {
                "loginState": "LoggedIn" if self.logged_in else "LoggedOut",
                "agentInfo": self.agent_data(),
                "agentState": self.agent_state(),
                "rules": self.rules(),
            },
        )

    # ----- requests ------------------------------------------------------------------

    def handle(self, kind: Kind, data: Mapping[str, Any] | None = None) -> Outcome:
        """Carry out one request of protocol v1 and say what to answer.

        ``data`` is the request's ``data`` (the hub has already checked it
        against the schema). Kinds the model does not know get UNKNOWN_MESSAGE.
        """
        reason = data.get("ReasonCodeId") if data else None
        reason = reason if isinstance(reason, str) else None
        if kind == SET_NOT_READY:
            if reason is None:
                return Failure(ErrorType.SCHEMA_VIOLATION, "SetNotReady needs data.ReasonCodeId")
            return self.set_not_ready(reason)
        if kind == SET_READY:
            return self.set_ready(reason)
        if kind == LOGOUT:
            return self.logout()
        if kind == MUTE:
            return self.set_muted(True)
        if kind == UNMUTE:
            return self.set_muted(False)
        if kind == GET_STATES:
            return self.get_states()
        if kind == STATE_SYNC:
            return self.state_sync()
        return Failure(ErrorType.UNKNOWN_MESSAGE, f"the virtual agent does not carry out {kind}")

    def set_not_ready(self, reason: str) -> Outcome:
        """Select the not-routable state named ``reason``."""
        target = self._find(reason, StateType.NOT_ROUTABLE)
        if target is None:
            return self._not_found(reason, StateType.NOT_ROUTABLE, "not-routable")
        return self._change_to(target)

    def set_ready(self, reason: str | None = None) -> Outcome:
        """Select the routable state named ``reason``, or the first routable one."""
        if reason is None:
            target = next(s for s in self.states if s.type is StateType.ROUTABLE)
        else:
            found = self._find(reason, StateType.ROUTABLE)
            if found is None:
                return self._not_found(reason, StateType.ROUTABLE, "routable")
            target = found
        return self._change_to(target)

    def logout(self) -> Outcome:
        """Select the (first) offline state, as Streams' logout must (#493)."""
        return self._change_to(next(s for s in self.states if s.type is StateType.OFFLINE))

    def set_muted(self, muted: bool) -> Outcome:
        """Mute or unmute; only possible in a conversation, as with a softphone."""
        if not self.in_conversation:
            action = "mute" if muted else "unmute"
            return Failure(
                ErrorType.MUTE_FAILED,
                f"cannot {action}: {self.login_name} has no active softphone call",
            )
        changed = self.muted != muted
        self.muted = muted
        return Answer(SET_AGENT_STATE, self.set_agent_state(), changed)

    # ----- calls ---------------------------------------------------------------------

    def start_call(self) -> bool:
        """Put the agent on a call (state ``Busy``). False when already on one or logged out."""
        if self.on_call or self.selected.type is StateType.OFFLINE:
            return False
        return self.set_system(BUSY)

    def end_call(self) -> bool:
        """End the call: apply the queued state, if any, else return to the selected one.

        False when there was no call.
        """
        if not self.on_call:
            return False
        return self.set_system(None)

    def set_system(self, state: AgentState | None) -> bool:
        """Show ``state`` while the agent has contacts, or ``None`` when the last one ended.

        Leaving the system states applies the queued next state; mute is
        cleared when a contact begins and when the last one ends. True when
        the visible state changed.
        """
        if state == self.system:
            return False
        if state is not None and state.type is not StateType.SYSTEM:
            raise ValueError(f"{state.name!r} is not a system state")
        if self.system is None or state is None:
            self.muted = False
        if state is None and self.next_state is not None:
            self.selected, self.next_state = self.next_state, None
        self.system = state
        self._since = self._clock()
        return True

    # ----- internals -----------------------------------------------------------------

    def _find(self, name: str, state_type: StateType | None = None) -> AgentState | None:
        for state in self.states:
            if state.name == name and (state_type is None or state.type is state_type):
                return state
        return None

    def _not_found(self, reason: str, state_type: StateType, label: str) -> Failure:
        among = ", ".join(s.name for s in self.states if s.type is state_type)
        return Failure(
            ErrorType.AGENT_STATE_NOT_FOUND,
            f"no {label} agent state named {reason!r} among: {among}",
        )

    def _change_to(self, target: AgentState) -> Outcome:
        if self.fail_updates:
            # Streams' failure callback gets this JSON string from Connect.
            return Failure(
                ErrorType.UPDATE_AGENT_STATE_FAILED,
                '{"type":"InvalidStateException","message":"Cannot change agent state: '
                'Invalid agent or contact state."} (simulated: fail_updates is on)',
            )
        if self.on_call:
            # enqueueNextState: Connect keeps the agent Busy and applies this after the call.
            self.next_state = target
            return Answer(SET_AGENT_STATE, self.set_agent_state(), changed=False)
        if target == self.selected:
            return Answer(SET_AGENT_STATE, self.set_agent_state(), changed=False)
        self.selected = target
        self.next_state = None
        self._since = self._clock()
        return Answer(SET_AGENT_STATE, self.set_agent_state(), changed=True)
