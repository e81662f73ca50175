"""Wire-protocol vocabulary (version 1): names, error types, close codes, envelope builders.

Everything here is pure data and pure functions. The contract itself lives in
``docs/protocol.md``; this module is its executable summary, shared by the hub,
the Python client and the virtual agent so that none of them spells a name twice.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum
from typing import Any, Final, NamedTuple

import orjson

__all__ = [
    "BRIDGE",
    "ERROR_SUBTOPIC",
    "ERROR_TOPIC",
    "HELLO",
    "HUMAN_MESSAGES",
    "PROTOCOL_VERSION",
    "PROVIDER_STATUS",
    "REPLACED",
    "SESSION",
    "SET_AGENT_STATE",
    "WELCOME",
    "CloseCode",
    "ErrorType",
    "Kind",
    "Role",
    "dumps",
    "error",
    "event",
    "is_error_kind",
    "kind_of",
    "request",
]

PROTOCOL_VERSION: Final = 1

BRIDGE: Final = "Bridge"
SESSION: Final = "Session"


class Role(StrEnum):
    """Who a connection speaks for."""

    APP = "app"
    PROVIDER = "provider"


class Kind(NamedTuple):
    """The name of a message kind: ``channel/topic/subtopic``."""

    channel: str
    topic: str
    subtopic: str

    def __str__(self) -> str:
        return f"{self.channel}/{self.topic}/{self.subtopic}"

    @classmethod
    def parse(cls, text: str) -> Kind:
        """``"Amazon/Agent/SetNotReady"`` -> ``Kind("Amazon", "Agent", "SetNotReady")``."""
        parts = text.split("/")
        if len(parts) != 3 or not all(parts):
            raise ValueError(f"a kind is channel/topic/subtopic, not {text!r}")
        return cls(*parts)

    def as_dict(self) -> dict[str, str]:
        return {"channel": self.channel, "topic": self.topic, "subtopic": self.subtopic}


HELLO: Final = Kind(BRIDGE, SESSION, "Hello")
WELCOME: Final = Kind(BRIDGE, SESSION, "Welcome")
PROVIDER_STATUS: Final = Kind(BRIDGE, SESSION, "ProviderStatus")
REPLACED: Final = Kind(BRIDGE, SESSION, "Replaced")
SET_AGENT_STATE: Final = Kind("Amazon", "Agent", "SetAgentState")
ERROR_TOPIC: Final = "Error"
ERROR_SUBTOPIC: Final = "ApiError"


class ErrorType(StrEnum):
    """Stable ``errorType`` codes. Never rename one: clients switch on them."""

    INVALID_JSON = "INVALID_JSON"
    INVALID_ENVELOPE = "INVALID_ENVELOPE"
    UNKNOWN_MESSAGE = "UNKNOWN_MESSAGE"
    SCHEMA_VIOLATION = "SCHEMA_VIOLATION"
    NOT_AUTHENTICATED = "NOT_AUTHENTICATED"
    FORBIDDEN = "FORBIDDEN"
    PROVIDER_UNAVAILABLE = "PROVIDER_UNAVAILABLE"
    REQUEST_TIMEOUT = "REQUEST_TIMEOUT"
    RATE_LIMITED = "RATE_LIMITED"
    # Extension (documented in docs/protocol.md): an ``id`` already in flight for the agent.
    DUPLICATE_REQUEST_ID = "DUPLICATE_REQUEST_ID"
    # Sent by providers (the catalog's documented errors).
    AGENT_STATE_NOT_FOUND = "AGENT_STATE_NOT_FOUND"
    UPDATE_AGENT_STATE_FAILED = "UPDATE_AGENT_STATE_FAILED"
    MUTE_FAILED = "MUTE_FAILED"


#: The sentence shown to a person for each error the hub raises itself.
HUMAN_MESSAGES: Final[dict[ErrorType, str]] = {
    ErrorType.INVALID_JSON: "The message could not be read.",
    ErrorType.INVALID_ENVELOPE: "The message is not a valid envelope.",
    ErrorType.UNKNOWN_MESSAGE: "This kind of message is not known.",
    ErrorType.SCHEMA_VIOLATION: "The message is not valid for its kind.",
    ErrorType.NOT_AUTHENTICATED: "You are not signed in to the bridge.",
    ErrorType.FORBIDDEN: "You may not send this kind of message.",
    ErrorType.PROVIDER_UNAVAILABLE: "The agent's softphone is not connected.",
    ErrorType.REQUEST_TIMEOUT: "The agent's softphone did not answer in time.",
    ErrorType.RATE_LIMITED: "Too many messages; slow down.",
    ErrorType.DUPLICATE_REQUEST_ID: "A request with this id is already in progress.",
    ErrorType.AGENT_STATE_NOT_FOUND: "Specified Agent State not found.",
    ErrorType.UPDATE_AGENT_STATE_FAILED: "The agent state could not be changed.",
    ErrorType.MUTE_FAILED: "Mute could not be changed.",
}


class CloseCode(IntEnum):
    """WebSocket close codes the hub uses."""

    GOING_AWAY = 1001
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    REPLACED = 4001
    TOO_SLOW = 4008


def dumps(value: Any) -> bytes:
    """Serialize one envelope (UTF-8 JSON bytes)."""
    return orjson.dumps(value)


def error(
    error_type: ErrorType | str,
    error_message: str,
    *,
    msg: str | None = None,
    channel: str = BRIDGE,
    request: Kind | None = None,
    reply_to: str | None = None,
) -> dict[str, Any]:
    """Build an error envelope (``<channel>/Error/ApiError``)."""
    if msg is None:
        known = ErrorType.__members__.get(str(error_type))
        msg = HUMAN_MESSAGES[known] if known is not None else "The request failed."
    data: dict[str, Any] = {"errorType": str(error_type), "errorMessage": error_message, "msg": msg}
    if request is not None:
        data["request"] = request.as_dict()
    envelope: dict[str, Any] = {
        "channel": channel,
        "topic": ERROR_TOPIC,
        "subtopic": ERROR_SUBTOPIC,
        "data": data,
    }
    if reply_to is not None:
        envelope["replyTo"] = reply_to
    return envelope


def event(
    kind: Kind,
    message: Any,
    *,
    reply_to: str | None = None,
    retained: bool = False,
) -> dict[str, Any]:
    """Build an event envelope."""
    envelope: dict[str, Any] = {**kind.as_dict(), "message": message}
    if reply_to is not None:
        envelope["replyTo"] = reply_to
    if retained:
        envelope["retained"] = True
    return envelope


def request(
    kind: Kind,
    source: str,
    data: dict[str, Any] | None = None,
    *,
    id: str | None = None,
) -> dict[str, Any]:
    """Build a request envelope."""
    envelope: dict[str, Any] = {**kind.as_dict(), "source": source}
    if data is not None:
        envelope["data"] = data
    if id is not None:
        envelope["id"] = id
    return envelope


def kind_of(envelope: Any) -> Kind | None:
    """The kind an envelope names, or ``None`` when it names none readable."""
    if not isinstance(envelope, dict):
        return None
    channel, topic, subtopic = (
        envelope.get("channel"),
        envelope.get("topic"),
        envelope.get("subtopic"),
    )
    if isinstance(channel, str) and isinstance(topic, str) and isinstance(subtopic, str):
        # tuple.__new__ skips the NamedTuple's Python-level __new__: this runs per frame.
        return tuple.__new__(Kind, (channel, topic, subtopic))
    return None


def is_error_kind(kind: Kind) -> bool:
    return kind.topic == ERROR_TOPIC and kind.subtopic == ERROR_SUBTOPIC
