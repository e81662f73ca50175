"""The lines a hub writes for its operator: every refusal, and every connection it closes.

One WARNING line each (so ``serve`` shows them at its default verbosity),
on the logger ``bridge.events``, with the same structured fields
(:func:`bridge.logs.fields`): ``event`` (what happened, a fixed name),
``remote`` (the client's IP address), ``agent``, ``role``, ``reason``, and
``code`` (the close code) or ``status`` (the HTTP status). docs/operations.md
lists every line.

The server (and :mod:`bridge.hub.http` for file responses) calls these at
the I/O edge, next to where it counts the matching metric, if any: the core
decides, the edge tells. Each message is a fixed text, so the
:class:`bridge.logs.RepeatLimiter` treats a flood of one kind as one kind of
line, whatever the clients sent. No line carries a token: a refused token is
described by the agent and role it names (read without checking its
signature, so only as a claim) and by why it was refused.
"""

from __future__ import annotations

import base64
import binascii
import logging
from typing import Any, Final

import orjson

from bridge.hub.core.outputs import Close, Output, Send
from bridge.hub.core.router import Peer
from bridge.logs import fields
from bridge.protocol import CloseCode, Role

log = logging.getLogger("bridge.events")

#: Longest client-chosen text (an agent name, a source, a Host) written as is; longer is cut.
MAX_TEXT: Final = 200

#: The ``event`` of a close the hub decided, by its metrics cause.
_CLOSE_EVENTS: Final = {
    "flooding": "flood_close",
    "too_slow": "slow_consumer_close",
    "binary_frame": "binary_frame_close",
    "token_expired": "token_expired_close",
}


def _cut(value: Any) -> str | None:
    """A client-chosen string, at most :data:`MAX_TEXT` characters; ``None`` for anything else."""
    if not isinstance(value, str):
        return None
    return value if len(value) <= MAX_TEXT else value[: MAX_TEXT - 1] + "…"


def who(peer: Peer | None) -> dict[str, Any]:
    """A joined connection's ``agent``, ``role`` and ``source`` (a supervisor's ``agent`` is its own name)."""
    if peer is None:
        return {"agent": None, "role": None}
    agent = peer.name if peer.role is Role.SUPERVISOR else peer.agent
    return {"agent": agent, "role": str(peer.role), "source": peer.source}


def claimed(frame: str | bytes) -> dict[str, Any]:
    """The agent, role and source a refused Hello claimed, never its token.

    On a secured hub the agent is the token's ``sub``, read without checking
    the signature: it says which agent's page or app is failing, not that
    the token was really issued for it.
    """
    try:
        envelope = orjson.loads(frame)
    except orjson.JSONDecodeError:
        return {"agent": None, "role": None}
    if not isinstance(envelope, dict):
        return {"agent": None, "role": None}
    data = envelope.get("data")
    data = data if isinstance(data, dict) else {}
    agent = data.get("agent")
    token = data.get("token")
    if agent is None and isinstance(token, str):
        agent = _subject(token)
    return {"agent": _cut(agent), "role": _cut(data.get("role")), "source": _cut(envelope.get("source"))}


def _subject(token: str) -> Any:
    """The ``sub`` claim of a JWT, its signature unchecked; ``None`` when it has none or is malformed.

    Read here rather than with PyJWT, which checks the header too: this runs
    for every refused Hello, and only the claim is wanted.
    """
    parts = token.split(".")
    if len(parts) != 3:
        return None
    payload = parts[1]
    try:
        claims = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (binascii.Error, ValueError):  # orjson.JSONDecodeError is a ValueError
        return None
    return claims.get("sub") if isinstance(claims, dict) else None


def hello_refused(connection_id: str, remote: str, frame: str | bytes | None, outputs: list[Output]) -> None:
    """A connection turned away at Hello: bad token, wrong role, no Hello in time, agent full, ...

    ``outputs`` is the router's refusal: its error says why (``reason``,
    ``error``), its close has the code.
    """
    reason: str | None = None
    error: str | None = None
    code: int | None = None
    for output in outputs:
        if isinstance(output, Send) and output.error_type is not None:
            error = output.error_type
            try:
                reason = orjson.loads(output.data)["data"]["errorMessage"]
            except (orjson.JSONDecodeError, KeyError, TypeError):
                reason = None
        elif isinstance(output, Close):
            code = int(output.code)
    identity = claimed(frame) if frame is not None else {"agent": None, "role": None}
    log.warning(
        "refused a Hello",
        extra=fields(event="hello_refused", connection=connection_id, remote=remote, **identity,
                     reason=_cut(reason), error=error, code=code),
    )


def closed(connection_id: str, remote: str, peer: Peer | None, code: int, reason: str, cause: str | None) -> None:
    """The hub closed a joined connection: flooding (1008), too slow (4008), replaced (4001), ...

    ``cause`` is the metrics label the close is counted under, when it is
    counted; a provider replaced by a newer one has none (its event is
    ``provider_replaced``).
    """
    if cause is not None:
        event = _CLOSE_EVENTS.get(cause, f"{cause}_close")
    elif code == CloseCode.REPLACED:
        event = "provider_replaced"
    else:
        event = "close"
    log.warning(
        "closed a connection",
        extra=fields(event=event, connection=connection_id, remote=remote, **who(peer), reason=reason, code=code),
    )


def http_refused(remote: str, path: str, status: int, reason: str, **details: Any) -> None:
    """An HTTP request or WebSocket handshake answered with an error status.

    ``event`` is ``host_refused`` (421), ``origin_refused`` (403 at ``/ws``),
    ``handshake_refused`` (anything else at ``/ws``: too many connections
    waiting for Hello, not a WebSocket request, a repeated header) or
    ``http_refused`` (another path: ``/metrics`` from afar, too many unread
    file bytes). ``details`` are the request's offending values (``host``,
    ``origin``), cut to :data:`MAX_TEXT`.
    """
    if status == 421:
        event = "host_refused"
    elif path != "/ws":
        event = "http_refused"
    elif "origin" in details:
        event = "origin_refused"
    else:
        event = "handshake_refused"
    cut = {key: _cut(value) for key, value in details.items()}
    log.warning(
        "refused an HTTP request",
        extra=fields(event=event, remote=remote, agent=None, role=None, path=_cut(path), status=status,
                     reason=reason, **cut),
    )


def joined(connection_id: str, remote: str, peer: Peer) -> None:
    """A connection said a valid Hello (INFO: shown with ``-v``)."""
    log.info(
        "joined",
        extra=fields(event="joined", connection=connection_id, remote=remote, **who(peer),
                     agents=len(peer.agents) if peer.role is Role.SUPERVISOR else None),
    )
