"""The Python client of the bus: apps and providers without WebSocket code.

Apps::

    async with BridgeClient(url, token=token, source="myapp") as bus:
        state = await bus.wait_for("Amazon/Agent/SetAgentState")
        answer = await bus.request("Amazon/Agent/SetNotReady", {"ReasonCodeId": "Break"})
        async for event in bus.events("Amazon/Agent/SetAgentState"):
            ...

Providers (``role="provider"``) read :meth:`BridgeClient.requests` and answer
with :meth:`BridgeClient.publish` or :meth:`BridgeClient.send_error`.

Supervisors (``role="supervisor"``, protocol 1.2) follow many agents on one
connection: ``BridgeClient(url, role="supervisor", token=...)``, or on an open
hub ``agents=["*"]`` (and ``control=True``). Every event they receive carries
its agent (``event["agent"]``, or :func:`agent_of`); :meth:`BridgeClient.last`,
:meth:`BridgeClient.events` and :meth:`BridgeClient.wait_for` take ``agent=``,
and with control ``request(kind, data, agent="agent7")`` acts for that agent.

Tokens: give a function as ``token`` and the client calls it before every
connection, and again before the current token expires, sending the fresh
one on the open connection (``Bridge/Session/Refresh``): a long-lived
connection outlives any one token. With a plain string, the hub closes the
connection when the token expires (4003) and the client stops with
:class:`NotAuthenticated`.

The client says ``Hello`` on every connection, reconnects by itself with
exponential backoff and full jitter when the connection drops, and keeps the
latest event of each kind received on the current connection (the hub
replays the retained state after each ``Hello``). Requests in flight when the
connection drops fail with :class:`ConnectionLost`; they are not resent,
because the client cannot know whether the provider already carried them out.

Apps and supervisors lose no event across a reconnect when the hub still has
them: the client remembers the last position (``epoch``, ``offset``) it saw
per agent (:attr:`BridgeClient.positions`) and asks the hub, in the next
``Hello``, for every event after it. The hub replays them (``recovered:
true``) before the live ones, and the streams get them like any event;
:attr:`BridgeClient.recovered` says whether it could. When it could not, the
retained state comes instead, as on a first connection.

The browser client (``static/js/lib/client.js``) has the same names and
meanings; docs/client.md has the table of the two.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
import ssl as ssl_module
import time
import uuid
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from enum import StrEnum
from typing import Any, Final, Generic, Self, TypeVar, overload

import jwt
import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from bridge.client.positions import Position, PositionBook
from bridge.protocol import (
    HELLO,
    PROVIDER_STATUS,
    REFRESH,
    REFRESHED,
    REPLACED,
    WELCOME,
    CloseCode,
    ErrorType,
    Kind,
    Role,
    dumps,
    error,
    event,
    is_error_kind,
    kind_of,
    request,
)
from bridge.protocol.tokens import check_scope

__all__ = [
    "AgentStateNotFound",
    "BridgeClient",
    "BridgeError",
    "CallFailed",
    "CallNotFound",
    "ClientClosed",
    "ConnectFailed",
    "ConnectionLost",
    "ConnectionState",
    "DuplicateRequestId",
    "Envelope",
    "Forbidden",
    "InvalidRequest",
    "MuteFailed",
    "NotAuthenticated",
    "Position",
    "ProviderUnavailable",
    "RateLimited",
    "Replaced",
    "RequestFailed",
    "RequestTimeout",
    "Stream",
    "TokenSource",
    "UpdateAgentStateFailed",
    "agent_of",
    "backoff_delay",
    "error_from_envelope",
]

log = logging.getLogger("bridge.client")

#: One envelope, as parsed JSON.
Envelope = dict[str, Any]

#: Client-side error types: these never travel on the wire.
CONNECTION_LOST: Final = "CONNECTION_LOST"
CONNECT_FAILED: Final = "CONNECT_FAILED"
CLIENT_CLOSED: Final = "CLIENT_CLOSED"
REPLACED_TYPE: Final = "REPLACED"


# ----- errors ----------------------------------------------------------------------------


class BridgeError(Exception):
    """Any failure the bus reports, on the wire or in the client.

    ``error_type`` is the stable code (``errorType``); ``error_message`` the
    technical cause; ``msg`` a sentence fit to show a person; ``request`` the
    kind of the failed request when known; ``envelope`` the error envelope as
    received (``None`` for errors raised by the client itself).
    """

    def __init__(
        self,
        error_type: str,
        error_message: str,
        msg: str,
        *,
        request: Kind | None = None,
        envelope: Envelope | None = None,
    ) -> None:
        super().__init__(f"{error_type}: {error_message}")
        self.error_type = error_type
        self.error_message = error_message
        self.msg = msg
        self.request = request
        self.envelope = envelope

    @property
    def agent(self) -> str | None:
        """The agent an error to a supervisor is about (its ``agent`` key), else None."""
        return agent_of(self.envelope) if self.envelope is not None else None


class RequestFailed(BridgeError):
    """The hub or the provider answered a frame with an error envelope."""


class InvalidRequest(RequestFailed):
    """INVALID_JSON, INVALID_ENVELOPE, UNKNOWN_MESSAGE or SCHEMA_VIOLATION."""


class NotAuthenticated(RequestFailed):
    """NOT_AUTHENTICATED: bad or missing Hello, token or role. The hub closes the connection."""


class Forbidden(RequestFailed):
    """FORBIDDEN: a kind this role may not send; for a supervisor, a request
    without control, without ``agent``, or for an agent outside its scope."""


class ProviderUnavailable(RequestFailed):
    """PROVIDER_UNAVAILABLE: the agent's provider (Streams page) is not connected."""


class RateLimited(RequestFailed):
    """RATE_LIMITED: too many frames."""


class DuplicateRequestId(RequestFailed):
    """DUPLICATE_REQUEST_ID: the id is already in flight for this agent."""


class AgentStateNotFound(RequestFailed):
    """AGENT_STATE_NOT_FOUND: no agent state has that name."""


class UpdateAgentStateFailed(RequestFailed):
    """UPDATE_AGENT_STATE_FAILED: Amazon Connect refused the change."""


class MuteFailed(RequestFailed):
    """MUTE_FAILED: mute needs an active softphone call."""


class CallFailed(RequestFailed):
    """Connect refused a call request: ANSWER_CALL_FAILED, HOLD_CALL_FAILED,
    TRANSFER_CALL_FAILED and the other call errors of docs/calls.md."""


class CallNotFound(CallFailed):
    """CALL_NOT_FOUND: no such contact or connection, or no ``data`` while the
    agent has no live contact or more than one."""


#: The call-control error types (docs/calls.md), each raised as :class:`CallFailed`.
CALL_FAILURES: Final = (
    ErrorType.ANSWER_CALL_FAILED,
    ErrorType.REJECT_CALL_FAILED,
    ErrorType.HOLD_CALL_FAILED,
    ErrorType.RESUME_CALL_FAILED,
    ErrorType.DISCONNECT_CALL_FAILED,
    ErrorType.MAKE_CALL_FAILED,
    ErrorType.SEND_DTMF_FAILED,
    ErrorType.CLEAR_CONTACT_FAILED,
    ErrorType.CONSULT_CALL_FAILED,
    ErrorType.CONFERENCE_CALL_FAILED,
    ErrorType.SWAP_CALL_FAILED,
    ErrorType.TRANSFER_CALL_FAILED,
    ErrorType.GET_QUICK_CONNECTS_FAILED,
)


class RequestTimeout(BridgeError, TimeoutError):
    """No answer in time: the hub's REQUEST_TIMEOUT, or the client's own timeout.

    ``local`` is true when the client gave up before the hub said anything.
    """

    def __init__(
        self,
        error_type: str,
        error_message: str,
        msg: str,
        *,
        request: Kind | None = None,
        envelope: Envelope | None = None,
        local: bool = False,
    ) -> None:
        super().__init__(error_type, error_message, msg, request=request, envelope=envelope)
        self.local = local


class ConnectionLost(BridgeError, ConnectionError):
    """There is no connection to use: it dropped while a request was in flight,
    or the client is reconnecting. The request may or may not have been carried out."""


class ConnectFailed(ConnectionLost):
    """The first connection could not be made (hub unreachable, handshake refused)."""


class ClientClosed(ConnectionLost):
    """The client was closed (by :meth:`BridgeClient.close`)."""


class Replaced(ConnectionLost):
    """A newer provider for the same agent took over (close code 4001); no reconnect."""


_ERROR_CLASSES: Final[dict[str, type[BridgeError]]] = {
    ErrorType.INVALID_JSON: InvalidRequest,
    ErrorType.INVALID_ENVELOPE: InvalidRequest,
    ErrorType.UNKNOWN_MESSAGE: InvalidRequest,
    ErrorType.SCHEMA_VIOLATION: InvalidRequest,
    ErrorType.NOT_AUTHENTICATED: NotAuthenticated,
    ErrorType.FORBIDDEN: Forbidden,
    ErrorType.PROVIDER_UNAVAILABLE: ProviderUnavailable,
    ErrorType.REQUEST_TIMEOUT: RequestTimeout,
    ErrorType.RATE_LIMITED: RateLimited,
    ErrorType.DUPLICATE_REQUEST_ID: DuplicateRequestId,
    ErrorType.AGENT_STATE_NOT_FOUND: AgentStateNotFound,
    ErrorType.UPDATE_AGENT_STATE_FAILED: UpdateAgentStateFailed,
    ErrorType.MUTE_FAILED: MuteFailed,
    ErrorType.CALL_NOT_FOUND: CallNotFound,
    **dict.fromkeys(CALL_FAILURES, CallFailed),
}


def error_from_envelope(envelope: Envelope) -> BridgeError:
    """The exception for an error envelope: the class of its ``errorType``,
    :class:`RequestFailed` for types this client does not know."""
    data = envelope.get("data")
    data = data if isinstance(data, dict) else {}
    error_type = str(data.get("errorType", "UNKNOWN"))
    error_message = str(data.get("errorMessage", ""))
    msg = str(data.get("msg", "The request failed."))
    requested = kind_of(data.get("request"))
    cls = _ERROR_CLASSES.get(error_type, RequestFailed)
    return cls(error_type, error_message, msg, request=requested, envelope=envelope)


# ----- connection state and streams --------------------------------------------------------


class ConnectionState(StrEnum):
    """Where the client's connection stands (the browser client has the same names)."""

    #: :meth:`BridgeClient.start` not called yet: the initial state.
    IDLE = "idle"
    #: The first connection is being made (retries included, with ``retry_first_connect``).
    CONNECTING = "connecting"
    #: Connected and ``Hello`` accepted: requests can be sent.
    OPEN = "open"
    #: The connection dropped; a new one is being made after a backoff delay.
    RECONNECTING = "reconnecting"
    #: Closed for good (by :meth:`BridgeClient.close` or a fatal error); see ``close_error``.
    CLOSED = "closed"


T = TypeVar("T")
_END: Final = object()


class Stream(Generic[T]):
    """An async iterator over items the client delivers (events, requests or errors).

    It buffers at most ``maxsize`` items; when a consumer falls that far
    behind, the oldest are dropped and counted in :attr:`dropped`, so a slow
    consumer never makes the client's memory grow without bound. Iteration
    ends when the client closes; if it closed because of an error (for
    instance a refused token on reconnect), that error is raised.
    Use ``async with`` or :meth:`close` to stop receiving early.
    """

    def __init__(
        self, accepts: Callable[[T], bool], maxsize: int, on_close: Callable[[Stream[T]], None]
    ) -> None:
        self._accepts = accepts
        self._items: deque[object] = deque()
        self._maxsize = maxsize
        self._ready = asyncio.Event()
        self._on_close = on_close
        self._closed = False
        self._error: BaseException | None = None
        #: Items dropped because the consumer fell more than ``maxsize`` behind.
        self.dropped = 0

    def _offer(self, item: T) -> None:
        if self._closed or not self._accepts(item):
            return
        if len(self._items) >= self._maxsize:
            self._items.popleft()
            self.dropped += 1
        self._items.append(item)
        self._ready.set()

    def _finish(self, error: BaseException | None) -> None:
        if self._closed:
            return
        self._closed = True
        self._error = error
        self._items.append(_END)
        self._ready.set()

    def close(self) -> None:
        """Stop receiving; items already buffered are still yielded."""
        if not self._closed:
            self._finish(None)
            self._on_close(self)

    def __aiter__(self) -> Stream[T]:
        return self

    async def __anext__(self) -> T:
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        item = self._items.popleft()
        if item is _END:
            self._items.appendleft(_END)  # stay finished for later calls
            if self._error is not None:
                raise self._error
            raise StopAsyncIteration
        return item  # type: ignore[return-value]

    async def get(self, timeout: float | None = None) -> T:
        """The next item; :class:`TimeoutError` after ``timeout`` seconds."""
        async with asyncio.timeout(timeout):
            return await self.__anext__()

    async def __aenter__(self) -> Stream[T]:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


def agent_of(envelope: Envelope) -> str | None:
    """The agent a frame received by a supervisor is about (its top-level ``agent``).

    Apps and providers receive frames without it: None.
    """
    agent = envelope.get("agent")
    return agent if isinstance(agent, str) else None


def _agent_filter(agent: str | Iterable[str] | None) -> frozenset[str] | None:
    """``agent=`` of :meth:`BridgeClient.events`: one name, several, or None (every agent)."""
    if agent is None:
        return None
    return frozenset([agent] if isinstance(agent, str) else agent)


def _kind_name(kind: str | Kind) -> str:
    return str(kind) if isinstance(kind, Kind) else str(Kind.parse(kind))


def _request_arguments(
    kind: str | Kind, args: tuple[Any, ...]
) -> tuple[Kind, dict[str, Any] | None]:
    """``(kind, data?)`` or ``(channel, topic, subtopic, data?)`` -> the kind and the data."""
    if isinstance(kind, str) and "/" not in kind:
        if len(args) not in (2, 3) or not all(isinstance(part, str) for part in args[:2]):
            raise TypeError("request(kind, data=None) or request(channel, topic, subtopic, data=None)")
        kind, args = Kind(kind, args[0], args[1]), args[2:]
    if len(args) > 1:
        raise TypeError("request(kind, data=None) takes one data argument")
    name = kind if isinstance(kind, Kind) else Kind.parse(kind)
    data = args[0] if args else None
    if data is not None and not isinstance(data, dict):
        raise TypeError(f"a request's data is a dict, not {type(data).__name__}")
    return name, data


def _check_credentials(
    role: Role, token: object, agent: str | None, agents: Iterable[str] | None, control: bool
) -> tuple[str, ...]:
    """Refuse a combination the hub would refuse anyway; returns a supervisor's asked scope."""
    if role is not Role.SUPERVISOR:
        if agents is not None or control:
            raise ValueError("agents and control are for role='supervisor'")
        if (token is None) == (agent is None):
            raise ValueError("give exactly one of token (secured hub) or agent (open hub)")
        return ()
    if agent is not None:
        raise ValueError("a supervisor gives agents=[...] (open hub) or token=..., not agent")
    if (token is None) == (agents is None):
        raise ValueError("a supervisor gives exactly one of token (secured hub) or agents (open hub)")
    if agents is None:
        if control:
            raise ValueError("with a token, control comes from the token's claims")
        return ()
    if isinstance(agents, str):
        raise ValueError('agents is a list of names, e.g. ["agent1"] or ["*"], not a string')
    return tuple(check_scope(list(agents), ValueError))


def _check_recover(
    role: Role, recover: Position | Mapping[str, Position] | None
) -> Position | dict[str, Position] | None:
    """``recover=``: a :class:`Position` for an app, agent -> :class:`Position` for a supervisor."""
    if recover is None:
        return None
    if role is Role.PROVIDER:
        raise ValueError("a provider recovers nothing: recover= is for apps and supervisors")
    if role is Role.APP:
        if not isinstance(recover, Position):
            raise ValueError("an app's recover= is a Position, e.g. Position.parse('k3v9Xq2bT0c:12')")
        return recover
    if isinstance(recover, Position) or not isinstance(recover, Mapping):
        raise ValueError("a supervisor's recover= maps agent names to Positions")
    for name, position in recover.items():
        if not isinstance(name, str) or not name or not isinstance(position, Position):
            raise ValueError("a supervisor's recover= maps agent names to Positions")
    return dict(recover)


def backoff_delay(
    attempt: int,
    initial: float = 0.5,
    maximum: float = 30.0,
    rng: random.Random | None = None,
) -> float:
    """The delay before reconnect attempt ``attempt`` (from 0), "full jitter":
    uniform in ``[0, min(maximum, initial * 2**attempt))`` seconds. The browser
    client's ``backoffDelay`` is the same formula with the same defaults, in ms."""
    ceiling = min(maximum, initial * 2.0 ** min(attempt, 30))
    draw = rng.random() if rng is not None else random.random()
    return draw * ceiling


StateListener = Callable[["ConnectionState"], None]
TokenSource = str | Callable[[], str] | Callable[[], Awaitable[str]]

#: Share of a token's remaining life after which the client presents a fresh one.
REFRESH_AT: Final = 0.8
#: Seconds between attempts when a refresh fails (the token function, or the hub refused it).
REFRESH_RETRY: Final = 5.0


def token_expiry(token: str) -> float | None:
    """The ``exp`` of a token, read without checking it (the hub does), or ``None``."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False, "verify_exp": False})
    except jwt.PyJWTError:
        return None
    exp = claims.get("exp")
    return float(exp) if isinstance(exp, (int, float)) and not isinstance(exp, bool) else None


def refresh_delay(expires_at: float, now: float) -> float:
    """Seconds to wait before refreshing a token that expires at ``expires_at``."""
    return max(0.0, (expires_at - now) * REFRESH_AT)


# ----- the client ---------------------------------------------------------------------------


class BridgeClient:
    """One connection to the hub: for one agent, as an app or the agent's provider;
    or for many agents, as a supervisor.

    Give either ``token`` (a secured hub; a string, or a function returning a
    fresh one, called before every connection) or ``agent`` (an open demo hub).
    A supervisor on an open hub gives ``agents`` (names, or ``["*"]`` for every
    agent) and ``control`` instead of ``agent``; with a token, both come from it.

    Timing parameters are in seconds. Backoff before reconnect attempt ``n``
    (from 0) is a uniform random delay in ``[0, min(backoff_max,
    backoff_initial * 2**n))`` ("full jitter", so that a hub restart is not met
    by every client at the same instant); ``n`` goes back to 0 once a
    connection has stayed up for ``stable_after``.
    """

    def __init__(
        self,
        url: str,
        *,
        token: TokenSource | None = None,
        agent: str | None = None,
        role: Role | str = Role.APP,
        source: str = "python-client",
        request_timeout: float = 15.0,
        connect_timeout: float = 10.0,
        reconnect: bool = True,
        retry_first_connect: bool = False,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        stable_after: float = 10.0,
        max_queue: int = 10_000,
        max_frame_size: int = 64 * 1024,
        agents: Iterable[str] | None = None,
        control: bool = False,
        ssl: ssl_module.SSLContext | None = None,
        recover: Position | Mapping[str, Position] | None = None,
    ) -> None:
        """``request_timeout`` is the client's own limit per request; keep it
        above the hub's (10 s by default) so that the hub's REQUEST_TIMEOUT,
        which names the cause, normally arrives first.

        ``retry_first_connect``: when false (the default) entering the client
        fails at once with :class:`ConnectFailed` if the hub cannot be reached;
        when true it keeps trying with backoff, as after a drop (for
        long-running providers started before the hub).

        ``agents`` and ``control`` (supervisors on an open hub): the agents to
        follow, or ``["*"]``, and whether to ask for control (sending requests
        for them). The hub grants what an open hub's supervisor asks.

        ``ssl``: the TLS context for a ``wss://`` URL, e.g.
        ``ssl.create_default_context(cafile="ca.pem")`` for a hub whose
        certificate a private CA signed. Without it a ``wss://`` URL is checked
        against the system's CAs (or the file named by ``SSL_CERT_FILE``).

        ``recover``: a position to start from on the first connection (for
        instance one kept from an earlier run): the hub replays every event
        after it, when it still has them. An app gives a :class:`Position`; a
        supervisor a mapping agent -> :class:`Position`. Providers recover
        nothing (they receive requests, not events).
        """
        if ssl is not None and not url.lower().startswith("wss:"):
            raise ValueError("ssl is for a wss:// URL")
        self.role = Role(role)
        scope = _check_credentials(self.role, token, agent, agents, control)
        start = _check_recover(self.role, recover)
        if not 1 <= len(source) <= 64:
            raise ValueError("source must be 1 to 64 characters")
        self.url = url
        self.source = source
        self.request_timeout = request_timeout
        self.connect_timeout = connect_timeout
        self.reconnect = reconnect
        self.retry_first_connect = retry_first_connect
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.stable_after = stable_after
        self.max_queue = max_queue
        self.max_frame_size = max_frame_size
        self.ssl = ssl
        self._token = token
        self._agent_name = agent
        self._scope = scope
        self._control = control

        self._state = ConnectionState.IDLE
        self._closing = False
        self._ws: ClientConnection | None = None
        self._runner: asyncio.Task[None] | None = None
        self._pending: dict[str, tuple[asyncio.Future[Envelope], Kind]] = {}
        self._last: dict[str, Envelope] = {}
        # A supervisor's latest event per (kind, agent), and the agents heard of, in order.
        self._last_by_agent: dict[tuple[str, str], Envelope] = {}
        self._seen: dict[str, None] = {}
        self._listeners: list[StateListener] = []
        self._state_waiters: list[
            tuple[frozenset[ConnectionState], asyncio.Future[ConnectionState]]
        ] = []
        self._event_streams: weakref.WeakSet[Stream[Envelope]] = weakref.WeakSet()
        self._error_streams: weakref.WeakSet[Stream[BridgeError]] = weakref.WeakSet()
        # Requests reach a provider whether or not anyone iterates yet: one queue, kept.
        self._requests: Stream[Envelope] = Stream(lambda _: True, max_queue, lambda _: None)
        self._rng = random.Random()
        # The last position seen per agent (apps: their agent's), and an app's starting
        # position until a Welcome has answered it (the agent of a token is not known before).
        self._book = PositionBook()
        self._start: Position | None = None
        if isinstance(start, Position):
            self._start = start
        elif start is not None:
            for name, position in start.items():
                self._book.set(name, position)
        # What the Hello of the connection being made asked to recover (None: nothing).
        self._asked: dict[str, Position] | None = None

        #: The last ``Welcome`` message: ``{agent, role, connectionId, providerConnected}``;
        #: a supervisor's: ``{role, supervisor, agents, control, connectionId}``.
        self.welcome: dict[str, Any] | None = None
        #: Whether the agent's provider is connected, from Welcome and ProviderStatus
        #: (always None for a supervisor: see ``last(PROVIDER_STATUS, agent=...)``).
        self.provider_connected: bool | None = None
        #: Why the client closed for good, when it was not :meth:`close`.
        self.close_error: BridgeError | None = None
        #: How many connections have been made (1 after the first, +1 per reconnect).
        self.connections = 0
        #: When the token of the current connection expires (seconds since the epoch), if known.
        self.token_expires_at: float | None = None
        #: Whether the current (or last) connection recovered the events missed: None when
        #: its Hello asked for no recovery (no position known yet); for an app a bool; for
        #: a supervisor ``{agent: bool}`` for each agent it asked for.
        self.recovered: bool | dict[str, bool] | None = None

    # ----- lifecycle -------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Connect and complete ``Hello``, then keep the connection up in the background.

        Raises :class:`ConnectFailed`, or the hub's error (for instance
        :class:`NotAuthenticated`), when the first connection fails and
        ``retry_first_connect`` is false.
        """
        if self._state is not ConnectionState.IDLE:
            raise RuntimeError("a BridgeClient starts once; make a new one")
        self._set_state(ConnectionState.CONNECTING)
        first: ClientConnection | None = None
        if not self.retry_first_connect:
            try:
                first = await self._open()
            except BaseException as exc:
                self._closing = True
                self._set_state(ConnectionState.CLOSED)
                if isinstance(exc, BridgeError):
                    self.close_error = exc
                self._end_streams(self.close_error)
                raise
        if first is not None:
            self._mark_open(first)
        self._runner = asyncio.create_task(self._run(first), name=f"bridge-client-{self.source}")

    async def close(self) -> None:
        """Close the connection and stop reconnecting. Safe to call twice.

        Requests in flight fail with :class:`ClientClosed`; streams end.
        """
        self._closing = True
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
        ws, self._ws = self._ws, None
        if ws is not None:
            await ws.close()
        self._fail_pending(
            ClientClosed(CLIENT_CLOSED, "the client was closed", "The connection was closed.")
        )
        self._set_state(ConnectionState.CLOSED)
        self._end_streams(self.close_error)

    # ----- state -------------------------------------------------------------------------

    @property
    def state(self) -> ConnectionState:
        """The connection's state now."""
        return self._state

    @property
    def agent(self) -> str | None:
        """The agent this client joined (from ``Welcome``), or the one it asked for;
        None for a supervisor (see :attr:`supervisor` and :attr:`scope`)."""
        if self.welcome is not None and "agent" in self.welcome:
            return str(self.welcome["agent"])
        return self._agent_name

    @property
    def supervisor(self) -> str | None:
        """A supervisor's own name as the hub granted it (the token's ``sub``, or on an
        open hub this client's ``source``); None for other roles."""
        if self.role is not Role.SUPERVISOR:
            return None
        if self.welcome is not None and "supervisor" in self.welcome:
            return str(self.welcome["supervisor"])
        return None

    @property
    def scope(self) -> tuple[str, ...]:
        """A supervisor's agents as granted in ``Welcome`` (``("*",)`` for every agent),
        or as asked for before it; ``()`` for other roles."""
        if self.welcome is not None and isinstance(self.welcome.get("agents"), list):
            return tuple(str(name) for name in self.welcome["agents"])
        return self._scope

    @property
    def control(self) -> bool:
        """Whether this supervisor may send requests (from ``Welcome``, else as asked)."""
        if self.welcome is not None and "control" in self.welcome:
            return bool(self.welcome["control"])
        return self._control

    @property
    def seen_agents(self) -> tuple[str, ...]:
        """The agents a supervisor received events of on the current connection (retained
        replays included), in the order first heard of."""
        return tuple(self._seen)

    @property
    def positions(self) -> Mapping[str, Position]:
        """The last position seen per agent (read-only, kept up to date): what the next
        reconnect asks to recover from. An app's has its one agent; a provider's stays empty."""
        return self._book.view

    @property
    def duplicates_dropped(self) -> int:
        """Events dropped because their position had been delivered already (a guard:
        the hub should never send one)."""
        return self._book.duplicates

    @property
    def connection_id(self) -> str | None:
        """The hub's id for the current (or last) connection."""
        return None if self.welcome is None else str(self.welcome["connectionId"])

    def add_state_listener(self, listener: StateListener) -> Callable[[], None]:
        """Call ``listener(state)`` on every change of :attr:`state`; returns a function
        that removes it. Listeners run synchronously inside the client: keep them short
        and start a task for anything that awaits."""
        self._listeners.append(listener)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._listeners.remove(listener)

        return remove

    async def wait_for_state(
        self, *states: ConnectionState, timeout: float | None = None
    ) -> ConnectionState:
        """Wait until :attr:`state` is one of ``states``; returns it.

        Every change is seen, however brief: a waiter for ``open`` is woken by
        a connection that drops again at once.

        Raises :class:`TimeoutError` after ``timeout`` seconds, and
        ``close_error`` (or :class:`ClientClosed`) if the client closes first
        while waiting for another state.
        """
        reached = self._state
        if reached not in states and reached is not ConnectionState.CLOSED:
            entry = (frozenset(states), asyncio.get_running_loop().create_future())
            self._state_waiters.append(entry)
            try:
                async with asyncio.timeout(timeout):
                    reached = await entry[1]
            finally:
                self._state_waiters.remove(entry)
        if reached not in states:
            raise self.close_error or ClientClosed(
                CLIENT_CLOSED, "the client is closed", "The connection was closed."
            )
        return reached

    def _set_state(self, state: ConnectionState) -> None:
        if state is self._state:
            return
        self._state = state
        for wanted, waiter in self._state_waiters:
            if not waiter.done() and (state in wanted or state is ConnectionState.CLOSED):
                waiter.set_result(state)
        for listener in list(self._listeners):
            try:
                listener(state)
            except Exception:  # a listener's bug must not break the connection
                log.exception("connection state listener failed")

    # ----- apps: requests and events ---------------------------------------------------

    @overload
    async def request(
        self,
        kind: str | Kind,
        data: dict[str, Any] | None = None,
        /,
        *,
        timeout: float | None = None,
        agent: str | None = None,
    ) -> Envelope: ...

    @overload
    async def request(
        self,
        channel: str,
        topic: str,
        subtopic: str,
        data: dict[str, Any] | None = None,
        /,
        *,
        timeout: float | None = None,
        agent: str | None = None,
    ) -> Envelope: ...

    async def request(
        self, kind: str | Kind, *args: Any, timeout: float | None = None, agent: str | None = None
    ) -> Envelope:
        """Send a request and return the event that answers it (its ``replyTo`` is our id).

        ``bus.request("Amazon/Agent/SetNotReady", {"ReasonCodeId": "Break"})``;
        the older ``bus.request("Amazon", "Agent", "SetNotReady", data)`` works too.

        Raises the error's exception (a :class:`RequestFailed` subclass chosen
        by ``errorType``), :class:`RequestTimeout` when neither an answer nor an
        error arrives within ``timeout`` (default ``request_timeout``),
        :class:`ConnectionLost` when there is no connection or it drops first,
        or :class:`ClientClosed` (or ``close_error``) once the client is closed.

        ``agent`` (supervisors with control): the agent the request is for; the
        answer carries it too. The hub refuses a supervisor's request with
        :class:`Forbidden` without control, without ``agent``, or for an agent
        outside the scope; other roles cannot name one (:class:`ValueError`).
        """
        name, data = _request_arguments(kind, args)
        return await self._request(name, data, timeout, agent)

    async def request_any(
        self, kind: str | Kind, data: Any = None, *, timeout: float | None = None, agent: str | None = None
    ) -> Envelope:
        """:meth:`request` for data of any JSON type the kind's schema takes (``None``: no data).

        The call family's ``data`` is often a string (a connection id, a phone
        number, DTMF digits), which :meth:`request` refuses so that its
        ``(channel, topic, subtopic)`` form stays unambiguous. Same answers and errors.
        """
        name = kind if isinstance(kind, Kind) else Kind.parse(kind)
        return await self._request(name, data, timeout, agent)

    async def _request(
        self, kind: Kind, data: Any, timeout: float | None, agent: str | None = None
    ) -> Envelope:
        if agent is not None and self.role is not Role.SUPERVISOR:
            raise ValueError("agent= names the target of a supervisor's request; this client joined one agent")
        request_id = uuid.uuid4().hex
        ws = self._require_open()
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Envelope] = loop.create_future()
        self._pending[request_id] = (answer, kind)
        limit = self.request_timeout if timeout is None else timeout
        try:
            envelope = request(kind, self.source, data, id=request_id)
            if agent is not None:
                envelope["agent"] = agent
            await self._send_on(ws, envelope)
            async with asyncio.timeout(limit):
                return await answer
        except TimeoutError as exc:
            if isinstance(exc, RequestTimeout):
                raise
            raise RequestTimeout(
                ErrorType.REQUEST_TIMEOUT,
                f"no answer to {kind} within {limit:g} s (client-side timeout)",
                "The agent's softphone did not answer in time.",
                request=kind,
                local=True,
            ) from None
        finally:
            self._pending.pop(request_id, None)

    def events(
        self, *kinds: str | Kind, current: bool = False, agent: str | Iterable[str] | None = None
    ) -> Stream[Envelope]:
        """Events from now on, of the given kinds (``"Amazon/Agent/SetAgentState"``), or all.

        With ``current``, the stream starts with the last event already
        received of each of those kinds (see :meth:`last`), so that "the state,
        then every change" needs no second call and cannot miss one in between.
        A supervisor's ``current`` gives the last of each kind for each agent.

        ``agent`` (supervisors): only events of that agent, or of those agents.

        ``Bridge/Session`` events (``ProviderStatus``) are included; the
        ``Welcome`` of each connection is not (see :attr:`welcome`). Retained
        replays after a reconnect come through with ``retained: true``; the
        events a reconnect recovered, in order and before the live ones, with
        ``recovered: true``.
        """
        wanted = frozenset(_kind_name(k) for k in kinds)
        agents = _agent_filter(agent)

        def accepts(envelope: Envelope) -> bool:
            return (not wanted or str(kind_of(envelope)) in wanted) and (
                agents is None or agent_of(envelope) in agents
            )

        stream: Stream[Envelope] = Stream(accepts, self.max_queue, self._event_streams.discard)
        if current:
            known = self._last_by_agent.values() if self.role is Role.SUPERVISOR else self._last.values()
            for envelope in known:
                stream._offer(envelope)
        self._event_streams.add(stream)
        if self._state is ConnectionState.CLOSED:
            stream._finish(self.close_error)
        return stream

    def errors(self) -> Stream[BridgeError]:
        """Errors that answer no pending request (for instance the hub refusing an
        event a provider sent, which carries no id)."""
        stream: Stream[BridgeError] = Stream(
            lambda _: True, self.max_queue, self._error_streams.discard
        )
        self._error_streams.add(stream)
        return stream

    def last(self, kind: str | Kind, *, agent: str | None = None) -> Envelope | None:
        """The latest event of ``kind`` received on the current connection, or None.

        Retained replays count (the hub sends them right after ``Welcome``);
        ``Welcome``, errors and requests are not events. What the previous
        connection saw is forgotten when a new one opens, except for an agent
        whose events that connection recovered (:attr:`recovered`): no state
        is replayed for it, so what was seen stays current.

        A supervisor keeps the latest per agent: ``last(kind, agent="agent7")``;
        without ``agent``, the latest of ``kind`` of any agent."""
        if agent is not None:
            return self._last_by_agent.get((_kind_name(kind), agent))
        return self._last.get(_kind_name(kind))

    async def wait_for(
        self,
        kind: str | Kind,
        predicate: Callable[[Envelope], bool] | None = None,
        *,
        timeout: float | None = None,
        current: bool = True,
        agent: str | None = None,
    ) -> Envelope:
        """The first event of ``kind`` for which ``predicate`` holds.

        With ``current`` (default) the last one already received counts too,
        so ``await bus.wait_for("Amazon/Agent/SetAgentState")`` returns the
        retained state whether or not it has arrived yet.
        ``agent`` (supervisors): an event of that agent.
        Raises :class:`TimeoutError` after ``timeout`` seconds.
        """
        check = predicate or (lambda _: True)
        async with asyncio.timeout(timeout), self.events(kind, agent=agent) as stream:
            seen = self.last(kind, agent=agent)
            if current and seen is not None and check(seen):
                return seen
            async for envelope in stream:
                if check(envelope):
                    return envelope
        raise self.close_error or ClientClosed(
            CLIENT_CLOSED, "the client is closed", "The connection was closed."
        )

    # ----- providers ---------------------------------------------------------------------

    def requests(self) -> Stream[Envelope]:
        """Requests routed to this provider, buffered from the moment the client started.

        There is one such stream per client; answer each request with
        :meth:`publish` (``reply_to=request["id"]``) or :meth:`send_error`.
        """
        if self.role is not Role.PROVIDER:
            raise RuntimeError("only a provider receives requests")
        return self._requests

    async def publish(self, kind: str | Kind, message: Any, *, reply_to: str | None = None) -> None:
        """Send an event (providers). Raises :class:`ConnectionLost` when not connected."""
        name = kind if isinstance(kind, Kind) else Kind.parse(kind)
        await self.send(event(name, message, reply_to=reply_to))

    async def send_error(
        self,
        to: Envelope,
        error_type: ErrorType | str,
        error_message: str,
        *,
        msg: str | None = None,
    ) -> None:
        """Answer the request envelope ``to`` with an error (providers).

        The error's channel, ``request`` and ``replyTo`` come from ``to``;
        ``msg`` defaults to the protocol's sentence for ``error_type``.
        """
        failed = kind_of(to)
        reply_to = to.get("id")
        await self.send(
            error(
                error_type,
                error_message,
                msg=msg,
                channel=failed.channel if failed else "Bridge",
                request=failed,
                reply_to=reply_to if isinstance(reply_to, str) else None,
            )
        )

    async def send(self, envelope: Envelope) -> None:
        """Send one envelope as it is. Raises :class:`ConnectionLost` when not connected."""
        await self._send_on(self._require_open(), envelope)

    # ----- internals: connecting -------------------------------------------------------

    def _require_open(self) -> ClientConnection:
        ws = self._ws
        if ws is None or self._state is not ConnectionState.OPEN:
            if self._state is ConnectionState.CLOSED:
                raise self.close_error or ClientClosed(
                    CLIENT_CLOSED, "the client is closed", "The connection was closed."
                )
            if self._state is ConnectionState.IDLE:
                raise ConnectionLost(
                    CONNECTION_LOST,
                    f"not connected to {self.url}: the client is not started",
                    "Not connected to the bridge.",
                )
            raise ConnectionLost(
                CONNECTION_LOST,
                f"not connected to {self.url} ({self._state})",
                "The connection to the bridge is down; retrying.",
            )
        return ws

    async def _send_on(self, ws: ClientConnection, envelope: Envelope) -> None:
        try:
            # Text frames only (the protocol); orjson's bytes go out without re-encoding.
            await ws.send(dumps(envelope), text=True)
        except ConnectionClosed as exc:
            raise ConnectionLost(
                CONNECTION_LOST,
                f"connection closed while sending: {exc}",
                "The connection to the bridge was lost.",
            ) from exc

    async def _fresh_token(self) -> str:
        token = self._token
        assert token is not None
        if callable(token):
            try:
                produced = token()
                token = await produced if inspect.isawaitable(produced) else produced
            except Exception as exc:  # the caller's backend may be down: try again later
                raise ConnectFailed(
                    CONNECT_FAILED,
                    f"the token function failed: {exc!r}",
                    "No token to connect to the bridge with.",
                ) from exc
        return token

    async def _hello_data(self) -> dict[str, Any]:
        data = await self._credentials()
        self._asked = self._to_recover()
        if self._asked is not None:
            if self.role is Role.SUPERVISOR:
                data["recover"] = {name: position.wire() for name, position in self._asked.items()}
            else:
                data["recover"] = next(iter(self._asked.values())).wire()
        return data

    async def _credentials(self) -> dict[str, Any]:
        if self._agent_name is not None:
            return {"role": str(self.role), "agent": self._agent_name}
        if self._scope:  # an open hub's supervisor asks for its scope (and control)
            asked: dict[str, Any] = {"role": str(self.role), "agents": list(self._scope)}
            return {**asked, "control": True} if self._control else asked
        token = await self._fresh_token()
        self.token_expires_at = token_expiry(token)
        return {"role": str(self.role), "token": token}

    def _to_recover(self) -> dict[str, Position] | None:
        """The positions this Hello asks to recover from, or None (nothing to ask).

        An app asks from its agent's last position (its key is "" while the agent
        of its token is not known yet); a supervisor from each agent's it has,
        within its scope and the size a Hello may have."""
        if self.role is Role.PROVIDER:
            return None
        if self.role is Role.SUPERVISOR:
            return self._book.supervisor_recover(self.scope) or None
        agent = self.agent
        position = (self._book.get(agent) if agent is not None else None) or self._start
        return None if position is None else {agent or "": position}

    async def _refresh_tokens(self) -> None:
        """Present a fresh token before the current one expires, for as long as the connection lives."""
        while (expires_at := self.token_expires_at) is not None:
            await asyncio.sleep(refresh_delay(expires_at, time.time()))
            try:
                token = await self._fresh_token()
                fresh = token_expiry(token)
                if fresh is None or fresh <= expires_at:
                    raise ConnectFailed(CONNECT_FAILED, "the token function gave no later expiry",
                                        "No fresh token for the bridge.")
                await self._request(REFRESH, {"token": token}, None)
            except BridgeError as exc:
                log.warning("refreshing the token failed (%s); retrying", exc.error_message)
                left = expires_at - time.time()
                if left <= 0:
                    return  # the hub closes the connection (4003); the reconnect gets a fresh token
                await asyncio.sleep(min(REFRESH_RETRY, left / 2))
                continue
            self.token_expires_at = fresh

    async def _open(self) -> ClientConnection:
        """Connect and complete Hello; returns the open connection.

        Raises :class:`ConnectFailed` for network and handshake failures and
        the hub's own error (usually :class:`NotAuthenticated`) for a refused Hello.
        """
        # The token first: a token function may take its time (or wait on purpose),
        # and no socket should sit open meanwhile against the hub's Hello deadline.
        hello = request(HELLO, self.source, await self._hello_data(), id=uuid.uuid4().hex)
        # websockets makes a default context for wss:// itself, and refuses ssl=None there.
        tls: dict[str, Any] = {} if self.ssl is None else {"ssl": self.ssl}
        try:
            async with asyncio.timeout(self.connect_timeout):
                ws = await connect(
                    self.url,
                    max_size=self.max_frame_size,
                    open_timeout=None,  # the enclosing timeout covers connect and Hello
                    compression=None,
                    **tls,
                )
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
            hint = ""
            if isinstance(exc, ssl_module.SSLCertVerificationError):
                # The usual cause: a hub whose certificate a private CA signed (docs/deployment.md).
                hint = " (a certificate from a private CA: pass ssl=... or set SSL_CERT_FILE to the CA's PEM file)"
            raise ConnectFailed(
                CONNECT_FAILED,
                f"cannot connect to {self.url}: {exc!r}{hint}",
                "The bridge cannot be reached.",
            ) from exc
        try:
            async with asyncio.timeout(self.connect_timeout):
                await ws.send(dumps(hello), text=True)
                while True:
                    envelope = orjson.loads(await ws.recv(decode=False))
                    kind = kind_of(envelope)
                    if kind == WELCOME:
                        self.welcome = dict(envelope["message"])
                        if self.role is not Role.SUPERVISOR:  # a supervisor has one per agent
                            self.provider_connected = bool(self.welcome.get("providerConnected"))
                        return ws
                    if kind is not None and is_error_kind(kind):
                        raise error_from_envelope(envelope)
                    log.warning("ignoring %s before Welcome", kind)
        except BaseException as exc:
            await ws.close()
            if isinstance(exc, BridgeError):
                raise
            if isinstance(exc, (ConnectionClosed, TimeoutError, OSError, orjson.JSONDecodeError)):
                raise ConnectFailed(
                    CONNECT_FAILED,
                    f"Hello to {self.url} failed: {exc!r}",
                    "The bridge did not accept the connection.",
                ) from exc
            raise

    def _is_fatal(self, exc: BridgeError) -> bool:
        """Errors that another attempt cannot cure."""
        if isinstance(exc, Replaced):
            return True
        # A refused token stays refused unless the caller can make a fresh one.
        return isinstance(exc, NotAuthenticated) and not callable(self._token)

    def _backoff(self, attempt: int) -> float:
        return backoff_delay(attempt, self.backoff_initial, self.backoff_max, self._rng)

    def _mark_open(self, ws: ClientConnection) -> None:
        self._ws = ws
        kept = self._recovery_answered()
        if not kept:
            self._last.clear()  # last() is per connection; the retained replays come next
        else:
            # Recovered agents get the events they missed and no replay of their state:
            # what the last connection saw of them stays current. The others start afresh.
            self._last = {
                name: envelope for name, envelope in self._last.items()
                if self.role is not Role.SUPERVISOR or agent_of(envelope) in kept
            }
        self._last_by_agent = {key: envelope for key, envelope in self._last_by_agent.items() if key[1] in kept}
        self._seen = {agent: None for agent in self._seen if agent in kept}
        self.connections += 1
        self._set_state(ConnectionState.OPEN)

    def _recovery_answered(self) -> frozenset[str]:
        """Read ``Welcome.recovered`` for what this connection's Hello asked; returns the agents
        recovered (an app's: ``{""}`` when it was), whose positions and last events stay."""
        asked, self._asked = self._asked, None
        self._start = None  # asked, or superseded by a position seen since
        answer = (self.welcome or {}).get("recovered")
        if asked is None:
            self.recovered = None
            self._book.keep_only({})
            return frozenset()
        if self.role is Role.SUPERVISOR:
            answers = answer if isinstance(answer, dict) else {}
            self.recovered = {name: answers.get(name) is True for name in asked}
            kept = {name: position for name, position in asked.items() if self.recovered[name]}
            self._book.keep_only(kept)
            return frozenset(kept)
        self.recovered = answer is True
        agent = self.agent or ""
        self._book.keep_only({agent: next(iter(asked.values()))} if self.recovered else {})
        return frozenset({""}) if self.recovered else frozenset()

    async def _run(self, ws: ClientConnection | None) -> None:
        """Keep a connection up until closed: read, and on a drop back off and reconnect.

        ``ws`` is the connection :meth:`start` already opened, or None when the
        first connection is to be made here (``retry_first_connect``).
        """
        attempt = 0
        while not self._closing:
            if ws is None:
                try:
                    ws = await self._open()
                except BridgeError as exc:
                    if self._is_fatal(exc):
                        self.close_error = exc
                        break
                    log.info("connecting to %s failed (%s); retrying", self.url, exc.error_message)
                    await asyncio.sleep(self._backoff(attempt))
                    attempt += 1
                    continue
                self._mark_open(ws)
            opened_at = asyncio.get_running_loop().time()
            refresher = (
                asyncio.create_task(self._refresh_tokens(), name="bridge-token-refresh")
                if callable(self._token)
                else None
            )
            try:
                lost = await self._read(ws)
            finally:
                if refresher is not None:
                    refresher.cancel()
            # No await between here and _fail_pending: a request sees either the
            # open connection or none, never a half-closed one.
            self._ws = None
            ws = None
            self._fail_pending(lost)
            if self._is_fatal(lost) or not self.reconnect:
                self.close_error = lost
                break
            log.info("connection to %s lost (%s); reconnecting", self.url, lost.error_message)
            self._set_state(ConnectionState.RECONNECTING)
            if asyncio.get_running_loop().time() - opened_at >= self.stable_after:
                attempt = 0
            await asyncio.sleep(self._backoff(attempt))
            attempt += 1
        self._closing = True
        self._set_state(ConnectionState.CLOSED)
        self._end_streams(self.close_error)

    async def _read(self, ws: ClientConnection) -> ConnectionLost:
        """Dispatch frames until the connection ends; says how it ended."""
        try:
            while True:
                frame = await ws.recv(decode=False)
                try:
                    envelope = orjson.loads(frame)
                except orjson.JSONDecodeError:
                    log.warning("ignoring a frame that is not JSON")
                    continue
                try:
                    self._dispatch(envelope)
                except Exception:  # one odd frame must not end the connection
                    log.exception("could not dispatch a frame")
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd is not None else None
            reason = exc.rcvd.reason if exc.rcvd is not None else ""
            if code == CloseCode.REPLACED:
                return Replaced(
                    REPLACED_TYPE,
                    f"replaced by a newer provider for {self.agent} (close {code})",
                    "Another provider took over for this agent.",
                )
            return ConnectionLost(
                CONNECTION_LOST,
                f"connection to {self.url} closed (code {code}{': ' + reason if reason else ''})",
                "The connection to the bridge was lost.",
            )

    def _dispatch(self, envelope: Any) -> None:
        kind = kind_of(envelope)
        if kind is None:
            log.warning("ignoring a frame that is not an envelope")
            return
        reply_to = envelope.get("replyTo")
        if is_error_kind(kind):
            failure = error_from_envelope(envelope)
            pending = self._pending.get(reply_to) if isinstance(reply_to, str) else None
            if pending is not None and not pending[0].done():
                if failure.request is None:
                    failure.request = pending[1]
                pending[0].set_exception(failure)
            else:
                log.warning("error from the hub: %s", failure)
                for errors in list(self._error_streams):
                    errors._offer(failure)
            return
        if "message" not in envelope:
            if self.role is Role.PROVIDER:
                self._requests._offer(envelope)
            else:
                log.warning("ignoring request %s sent to an app", kind)
            return
        if kind == WELCOME:
            return
        if kind == REFRESHED:  # session control, not an event of the agent
            pending = self._pending.get(reply_to) if isinstance(reply_to, str) else None
            if pending is not None and not pending[0].done():
                pending[0].set_result(envelope)
            return
        agent = agent_of(envelope)
        if "offset" in envelope and self.role is not Role.PROVIDER and not self._book.admit(
            agent or self.agent or "", envelope
        ):
            return  # delivered already (the position guard)
        if agent is not None:
            self._last_by_agent[(str(kind), agent)] = envelope
            self._seen[agent] = None
        elif kind == PROVIDER_STATUS and isinstance(envelope["message"], dict):
            self.provider_connected = bool(envelope["message"].get("connected"))
        if kind == REPLACED:
            log.warning("replaced by a newer provider for %s", self.agent)
        name = str(kind)
        self._last[name] = envelope
        if isinstance(reply_to, str):
            pending = self._pending.get(reply_to)
            if pending is not None and not pending[0].done():
                pending[0].set_result(envelope)
        for stream in list(self._event_streams):
            stream._offer(envelope)

    def _fail_pending(self, exc: BridgeError) -> None:
        for answer, kind in list(self._pending.values()):
            if not answer.done():
                answer.set_exception(
                    type(exc)(
                        exc.error_type,
                        f"{exc.error_message}; {kind} was in flight",
                        exc.msg,
                        request=kind,
                    )
                )
        self._pending.clear()

    def _end_streams(self, error: BaseException | None) -> None:
        streams: Iterable[Stream[Any]] = [
            *self._event_streams,
            *self._error_streams,
            self._requests,
        ]
        for stream in streams:
            stream._finish(error)
