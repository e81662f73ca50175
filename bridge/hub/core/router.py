"""The routing core: given who sent a frame and the frame, decide what goes where.

No sockets, no asyncio, no broker: the router turns text into *outputs*
(:class:`Reply`, :class:`Forward`, :class:`Publish`, :class:`Answer`,
:class:`Close`) that the node (:mod:`bridge.node`) carries out. Tests drive it
with plain strings and a fake clock.
"""

from __future__ import annotations

import itertools
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from time import perf_counter
from typing import Any, Final

import orjson

from bridge import protocol
from bridge.hub.core.pending import Pending, PendingRequests
from bridge.protocol import HELLO, SET_AGENT_STATE, CloseCode, ErrorType, Kind, Role
from bridge.protocol.catalog import Catalog
from bridge.protocol.tokens import TokenError, verify_token

_ID_MAX: Final = 64


@dataclass(frozen=True, slots=True)
class Peer:
    """A joined connection: which agent it belongs to and as what."""

    connection_id: str
    agent: str
    role: Role
    source: str


# --- outputs -----------------------------------------------------------------
# Plain slotted classes, not frozen ones: one is made per frame, and a frozen
# dataclass's __init__ costs several times more.


@dataclass(slots=True)
class Reply:
    """Send ``data`` to the connection that sent the frame."""

    data: bytes
    #: Set when ``data`` is an error (for metrics).
    error_type: str | None = None


@dataclass(frozen=True, slots=True)
class Close:
    """Close the sender's connection (after any replies before it)."""

    code: CloseCode
    reason: str


@dataclass(slots=True)
class Forward:
    """Hand a request to the agent's provider, wherever it is connected."""

    agent: str
    request_id: str
    kind: Kind
    data: bytes


@dataclass(slots=True)
class Publish:
    """Send an event to every app of the agent; keep it as retained state if ``retain``."""

    agent: str
    data: bytes
    reply_to: str | None
    retain: bool


@dataclass(slots=True)
class Answer:
    """Send a provider's error to the requester of ``reply_to`` only."""

    agent: str
    reply_to: str
    data: bytes


Output = Reply | Close | Forward | Publish | Answer


@dataclass(frozen=True, slots=True)
class Joined:
    peer: Peer


@dataclass(frozen=True, slots=True)
class Refused:
    outputs: list[Output]


def _ignore(label: str) -> None:
    pass


def new_connection_id() -> str:
    return "c-" + secrets.token_hex(6)


_request_prefix = "h-" + secrets.token_hex(4) + "-"
_request_counter = itertools.count(1)


def new_request_id() -> str:
    """Unique across nodes (a random prefix per process) and cheap (a counter)."""
    return f"{_request_prefix}{next(_request_counter)}"


class Router:
    """Decides, frame by frame, for one hub node.

    It owns the node's table of requests in flight (:attr:`pending`), because
    answers and timeouts are routing decisions too.
    """

    def __init__(
        self,
        catalog: Catalog,
        *,
        secret: str | None,
        open_mode: bool = False,
        token_leeway: float = 0.0,
        request_timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        connection_ids: Callable[[], str] = new_connection_id,
        request_ids: Callable[[], str] = new_request_id,
        on_frame: Callable[[str], None] | None = None,
    ) -> None:
        if not open_mode and not secret:
            raise ValueError("a hub needs a secret unless it runs in open mode")
        self.catalog = catalog
        self.secret = secret
        self.open_mode = open_mode
        self.token_leeway = token_leeway
        self.request_timeout = request_timeout
        self.clock = clock
        self.connection_ids = connection_ids
        self.request_ids = request_ids
        self.pending = PendingRequests()
        #: Told the kind of every frame received (or why it was refused): metrics.
        self.on_frame = on_frame or _ignore
        #: Time spent in schema validation, and how many frames it checked.
        self.validation_seconds = 0.0
        self.validations = 0

    # --- session -------------------------------------------------------------

    def hello(self, frame: str | bytes) -> Joined | Refused:
        """Check a connection's first frame; it must be a valid ``Hello``."""
        try:
            envelope = orjson.loads(frame)
        except orjson.JSONDecodeError as exc:
            return self.refuse(f"the first frame must be Hello; it is not JSON: {exc}", None)
        reply_to = _reply_to(envelope)
        if protocol.kind_of(envelope) != HELLO:
            return self.refuse("the first frame must be Bridge/Session/Hello", reply_to)
        verdict = self.catalog.check(envelope, HELLO, "app")
        if verdict.problem is not None:
            return self.refuse(f"bad Hello: {verdict.detail}", reply_to)
        data = envelope["data"]
        role = Role(data["role"])
        if self.open_mode:
            agent = data.get("agent")
            if agent is None:
                return self.refuse("this hub runs in open mode: name the agent in data.agent", reply_to)
        else:
            token = data.get("token")
            if token is None or self.secret is None:
                return self.refuse("a token is required (data.token)", reply_to)
            try:
                claims = verify_token(self.secret, token, leeway=self.token_leeway)
            except TokenError as exc:
                return self.refuse(str(exc), reply_to)
            if claims.role != role:
                return self.refuse(
                    f"the token is for role {claims.role}, not {role}", reply_to
                )
            agent = claims.agent
        return Joined(Peer(self.connection_ids(), agent, role, envelope["source"]))

    def refuse(
        self, why: str, reply_to: str | None = None, *, error_type: ErrorType = ErrorType.NOT_AUTHENTICATED
    ) -> Refused:
        """Turn a connection away at ``Hello`` (bad Hello or token, none in time, agent full)."""
        err = protocol.error(error_type, why, channel=protocol.BRIDGE, request=HELLO, reply_to=reply_to)
        return Refused([Reply(orjson.dumps(err), error_type), Close(CloseCode.POLICY_VIOLATION, "Hello refused")])

    def binary_frame(self) -> list[Output]:
        """Binary frames are outside the protocol: say so, then close (1008)."""
        why = "binary frames are not accepted; send JSON envelopes as text"
        return [self._error(ErrorType.INVALID_ENVELOPE, why, None, None), Close(CloseCode.POLICY_VIOLATION, why)]

    def rate_limited(self, frame: str | bytes, limit: str) -> Reply:
        """The answer to a frame dropped by the connection's rate limit."""
        try:
            reply_to = _reply_to(orjson.loads(frame))
        except orjson.JSONDecodeError:
            reply_to = None
        return self._error(ErrorType.RATE_LIMITED, f"over the limit of {limit}; frame dropped", None, reply_to)

    # --- frames from a joined connection ---------------------------------------

    def receive(self, peer: Peer, frame: str | bytes) -> list[Output]:
        """Route one frame from a joined connection."""
        try:
            envelope: Any = orjson.loads(frame)
        except orjson.JSONDecodeError as exc:
            return [self._error(ErrorType.INVALID_JSON, f"not JSON: {exc}", None, None)]
        reply_to = _reply_to(envelope)
        kind = protocol.kind_of(envelope)
        if kind is None:
            why = (
                "an envelope is a JSON object"
                if not isinstance(envelope, dict)
                else "channel, topic and subtopic must all be strings"
            )
            return [self._error(ErrorType.INVALID_ENVELOPE, why, None, reply_to)]
        if kind == HELLO:
            return [self._error(ErrorType.FORBIDDEN, "Hello was already accepted", kind, reply_to)]
        started = perf_counter()
        verdict = self.catalog.check(envelope, kind, peer.role)
        self.validation_seconds += perf_counter() - started
        self.validations += 1
        self.on_frame(verdict.spec.label if verdict.spec is not None else "refused")
        if verdict.problem is not None:
            error_type = {
                "unknown": ErrorType.UNKNOWN_MESSAGE,
                "forbidden": ErrorType.FORBIDDEN,
                "schema": ErrorType.SCHEMA_VIOLATION,
            }[verdict.problem]
            return [self._error(error_type, verdict.detail, kind, reply_to)]
        assert verdict.spec is not None
        shape = verdict.spec.shape
        if shape == "request":
            return [self._request(peer, envelope, kind, frame)]
        data = frame.encode() if isinstance(frame, str) else frame
        answers = envelope.get("replyTo")  # valid per the schema: absent or a short string
        if shape == "event":
            return [Publish(peer.agent, data, answers, retain=kind == SET_AGENT_STATE)]
        if answers is None:
            # An error that answers nothing cannot reach anyone; it is dropped.
            return []
        return [Answer(peer.agent, answers, data)]

    def _request(
        self, peer: Peer, envelope: dict[str, Any], kind: Kind, frame: str | bytes
    ) -> Output:
        request_id = envelope.get("id")
        if request_id is None:
            request_id = self.request_ids()
            envelope["id"] = request_id
            data = orjson.dumps(envelope)
        else:
            data = frame.encode() if isinstance(frame, str) else frame
        if (peer.agent, request_id) in self.pending:
            return self._error(
                ErrorType.DUPLICATE_REQUEST_ID,
                f"request id {request_id!r} is already in flight for agent {peer.agent}",
                kind,
                request_id,
            )
        now = self.clock()
        self.pending.add(
            Pending(
                agent=peer.agent,
                request_id=request_id,
                connection_id=peer.connection_id,
                kind=kind,
                started=now,
                deadline=now + self.request_timeout,
            )
        )
        return Forward(peer.agent, request_id, kind, data)

    def _error(
        self, error_type: ErrorType, why: str, kind: Kind | None, reply_to: str | None
    ) -> Reply:
        return Reply(orjson.dumps(hub_error(error_type, why, kind, reply_to)), error_type)

    # --- answers, timeouts and provider changes ----------------------------------

    def timeouts(self, now: float | None = None) -> list[tuple[str, bytes]]:
        """Errors for every request whose provider did not answer in time."""
        now = self.clock() if now is None else now
        return [
            _failure(
                entry,
                ErrorType.REQUEST_TIMEOUT,
                f"the provider did not answer within {self.request_timeout:g} s",
            )
            for entry in self.pending.expired(now)
        ]

    def provider_unavailable(self, agent: str, request_id: str) -> tuple[str, bytes] | None:
        """The error for a request that found no provider to go to."""
        entry = self.pending.pop(agent, request_id)
        if entry is None:
            return None
        return _failure(
            entry, ErrorType.PROVIDER_UNAVAILABLE, f"no provider is connected for agent {agent}"
        )

    def provider_changed(self, agent: str, provider: str | None) -> list[tuple[str, bytes]]:
        """Fail the agent's requests handed to a provider that is gone or replaced."""
        why = "the provider disconnected" if provider is None else "the provider was replaced"
        return [
            _failure(entry, ErrorType.PROVIDER_UNAVAILABLE, f"{why} before answering")
            for entry in self.pending.fail_agent(agent, except_provider=provider)
        ]


def hub_error(
    error_type: ErrorType, why: str, kind: Kind | None, reply_to: str | None
) -> dict[str, Any]:
    """An error the hub itself raises about a frame of ``kind``."""
    channel = kind.channel if kind is not None and 0 < len(kind.channel) <= _ID_MAX else protocol.BRIDGE
    return protocol.error(error_type, why, channel=channel, request=kind, reply_to=reply_to)


def _failure(entry: Pending, error_type: ErrorType, why: str) -> tuple[str, bytes]:
    err = hub_error(error_type, why, entry.kind, entry.request_id)
    return entry.connection_id, orjson.dumps(err)


def _reply_to(envelope: Any) -> str | None:
    """The frame's ``id`` if it has a usable one: errors echo it as ``replyTo``."""
    if isinstance(envelope, dict):
        value = envelope.get("id")
        if isinstance(value, str) and 0 < len(value) <= _ID_MAX:
            return value
    return None
