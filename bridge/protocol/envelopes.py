"""Envelopes: roles, the error/event/request builders and the kind an envelope names.

Everything here is pure data and pure functions. Kind names, error types and
close codes are generated from ``schemas/`` into :mod:`bridge.protocol.names`. The contract itself lives in
``docs/protocol.md``; this module is its executable summary, shared by the hub,
the Python client and the virtual agent so that none of them spells a name twice.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Final

import orjson

from bridge.protocol.kind import Kind
from bridge.protocol.names import HUMAN_MESSAGES, ErrorType

__all__ = [
    "BRIDGE",
    "ERROR_SUBTOPIC",
    "ERROR_TOPIC",
    "SESSION",
    "Role",
    "dumps",
    "error",
    "event",
    "is_error_kind",
    "kind_of",
    "request",
]

BRIDGE: Final = "Bridge"
SESSION: Final = "Session"


class Role(StrEnum):
    """Who a connection speaks for."""

    APP = "app"
    PROVIDER = "provider"
    #: Follows many agents on one connection (protocol 1.2, ../shared/protocol/supervisor.md).
    SUPERVISOR = "supervisor"


ERROR_TOPIC: Final = "Error"
ERROR_SUBTOPIC: Final = "ApiError"


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
