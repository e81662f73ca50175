"""The client-side commands of ``connect-bridge``: send, listen, virtual-agent, demo.

``bridge.cli`` registers them into the ``connect-bridge`` group. Each is a thin
shell around :class:`bridge.client.BridgeClient` or
:class:`bridge.virtual_agent.VirtualAgent`.

Exit status of ``send`` (and of ``listen`` and ``virtual-agent`` when they stop
on an error):

== =========================================================================
0  the request was answered (``send``); stopped normally (the others)
1  the provider or hub refused the request (AGENT_STATE_NOT_FOUND,
   UPDATE_AGENT_STATE_FAILED, MUTE_FAILED, RATE_LIMITED, any other error)
2  usage error (bad option or argument; a --url that is not ws:// or wss://,
   an empty --agent or --token, a --timeout not above 0)
3  the hub cannot be reached (a --url answering plain HTTP is "not a WebSocket
   endpoint"), or the connection was lost or taken over; ``demo``: its port
   cannot be bound
4  not authenticated or forbidden (NOT_AUTHENTICATED, FORBIDDEN)
5  the agent's provider is not connected (PROVIDER_UNAVAILABLE)
6  no answer in time (REQUEST_TIMEOUT from the hub, or ``--timeout``)
7  the hub rejected the message itself (INVALID_JSON, INVALID_ENVELOPE,
   UNKNOWN_MESSAGE, SCHEMA_VIOLATION)
== =========================================================================
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import shutil
import signal
import sys
import time
import tomllib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Final, NamedTuple, TypeVar

import click
import orjson
from websockets.exceptions import InvalidStatus

from bridge.cli.describe import (
    EVENT_WORDS,
    describe_call,
    describe_quick_connect,
    format_duration,
    parse_time,
)
from bridge.cli.joining import agents_option, joining, require_target, supervisor_option
from bridge.cli.loops import LoopFactory, loop_factory, run_on
from bridge.cli.options import config_option
from bridge.cli.urls import cannot_listen, check_url, not_blank, websocket_hint
from bridge.client import (
    BridgeClient,
    BridgeError,
    ConnectFailed,
    ConnectionLost,
    ConnectionState,
    Forbidden,
    InvalidRequest,
    NotAuthenticated,
    Position,
    ProviderUnavailable,
    RequestTimeout,
    agent_of,
)
from bridge.hub.config import DEFAULTS, HubConfig, LoopChoice
from bridge.hub.http import WS_PATH, streams_warning
from bridge.protocol import Kind
from bridge.sim.agent_model import DEFAULT_STATES, V1_REQUESTS, AgentModel, AgentState, states_from_config
from bridge.sim.contacts import (
    CALL_ERRORS,
    COMMAND_CALL_TIMERS,
    DEFAULT_CALLER,
    DEFAULT_QUICK_CONNECTS,
    CallTimers,
    QuickConnect,
    is_e164,
)

#: The hub ``serve`` starts with no options.
DEFAULT_URL: Final = f"ws://{DEFAULTS.host}:{DEFAULTS.port}{WS_PATH}"
#: ``send`` waits a little longer than the hub's default request timeout, so that
#: the hub's REQUEST_TIMEOUT (exit status 6, with its message) normally comes first.
SEND_TIMEOUT: Final = DEFAULTS.request_timeout + 5.0

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_CONNECTION: Final = 3
EXIT_AUTH: Final = 4
EXIT_NO_PROVIDER: Final = 5
EXIT_TIMEOUT: Final = 6
EXIT_INVALID: Final = 7

#: The v1 requests by the name ``send`` takes.
REQUESTS: Final[dict[str, Kind]] = {kind.subtopic: kind for kind in V1_REQUESTS}

F = TypeVar("F", bound=Callable[..., Any])


def exit_code(exc: BridgeError) -> int:
    """The documented exit status for an error (see the module docstring)."""
    if isinstance(exc, ConnectionLost):
        return EXIT_CONNECTION
    if isinstance(exc, (NotAuthenticated, Forbidden)):
        return EXIT_AUTH
    if isinstance(exc, ProviderUnavailable):
        return EXIT_NO_PROVIDER
    if isinstance(exc, RequestTimeout):
        return EXIT_TIMEOUT
    if isinstance(exc, InvalidRequest):
        return EXIT_INVALID
    return EXIT_FAILED


def report(exc: BridgeError, url: str | None = None) -> None:
    """The error for a person on stderr: its ``msg`` and ``errorType``, then the technical cause.

    A ``url`` that answered with plain HTTP (a web page, a 404) is no hub: that is said
    in one line, with the hub's path as a guess, instead of the whole response.
    """
    status = _http_status(exc)
    if url is not None and status is not None:
        guess = websocket_hint(url)
        hint = f"; did you mean {guess}?" if guess != url else ""
        click.echo(f"error: {url} is not a WebSocket endpoint (HTTP {status}){hint} [{exc.error_type}]", err=True)
        return
    click.echo(f"error: {exc.msg} [{exc.error_type}]", err=True)
    if exc.error_message:
        click.echo(f"  {exc.error_message}", err=True)


def _http_status(exc: BridgeError) -> int | None:
    """The HTTP status a failed connect got instead of a WebSocket handshake, if that is what failed."""
    cause = exc.__cause__
    if isinstance(exc, ConnectFailed) and isinstance(cause, InvalidStatus):
        return int(cause.response.status_code)
    return None


# ----- shared options --------------------------------------------------------------------


def connection_options(func: F) -> F:
    """``--url``, ``--token``, ``--agent`` and ``--source``, shared by every command here."""
    options = [
        click.option(
            "--url",
            envvar="BRIDGE_URL",
            show_envvar=True,
            default=DEFAULT_URL,
            show_default=True,
            callback=check_url,
            help="The hub's WebSocket URL (ws:// or wss://, path /ws).",
        ),
        click.option(
            "--token",
            envvar="BRIDGE_TOKEN",
            show_envvar=True,
            callback=not_blank,
            help="A token for a secured hub; see `connect-bridge token`.",
        ),
        click.option(
            "--agent",
            callback=not_blank,
            help="The agent to join on an open (demo) hub, instead of a token; as a supervisor "
            "(a supervisor token, or --supervisor), the agent to act for.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


class Credentials(NamedTuple):
    """Exactly one of the two is set."""

    token: str | None
    agent: str | None


def credentials(ctx: click.Context, token: str | None, agent: str | None) -> Credentials:
    """A token (secured hub) or an agent name (open hub) for :class:`BridgeClient`.

    ``--agent`` wins over a token that only came from the environment, so that
    ``--agent`` works against an open hub with ``BRIDGE_TOKEN`` set.
    """
    if agent is not None and token is not None:
        if ctx.get_parameter_source("token") is click.core.ParameterSource.ENVIRONMENT:
            return Credentials(None, agent)
        raise click.UsageError("give --token (secured hub) or --agent (open hub), not both")
    if agent is not None or token is not None:
        return Credentials(token, agent)
    raise click.UsageError("give --token or set BRIDGE_TOKEN (secured hub), or --agent (open hub)")


def token_agent(token: str) -> str:
    """The agent a token names, for the virtual agent's login name."""
    from bridge.sim.virtual_agent import agent_of_token

    try:
        return agent_of_token(token)
    except ValueError as exc:
        raise click.UsageError(f"--token: {exc}") from exc


def run_async(main: Awaitable[int], *, factory: LoopFactory | None = None) -> None:
    """Run ``main`` until it returns an exit status, or until SIGINT/SIGTERM (status 0).

    ``factory`` makes the event loop (``demo --loop``); asyncio's own without it.
    """

    async def guarded() -> int:
        task = asyncio.ensure_future(main)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        try:
            return await task
        except asyncio.CancelledError:
            return EXIT_OK
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    sys.exit(run_on(factory, guarded()))


def write_line(stream: IO[str], text: str) -> None:
    """One line, flushed at once: ``listen | jq`` must see each event as it comes."""
    stream.write(text + "\n")
    stream.flush()


# ----- send ------------------------------------------------------------------------------


def request_kind(name: str) -> Kind:
    """``SetNotReady`` (any case) or a full ``channel/topic/subtopic`` for other kinds."""
    if "/" in name:
        try:
            return Kind.parse(name)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="REQUEST") from exc
    for known, kind in REQUESTS.items():
        if known.lower() == name.lower():
            return kind
    raise click.BadParameter(
        f"{name!r} is not one of {', '.join(REQUESTS)} (or give channel/topic/subtopic)",
        param_hint="REQUEST",
    )


def request_data(kind: Kind, reason: str | None, data_json: str | None) -> dict[str, Any] | None:
    """The request's ``data`` from ``--reason`` or ``--data``."""
    if reason is not None and data_json is not None:
        raise click.UsageError("give --reason or --data, not both")
    if data_json is not None:
        try:
            data = orjson.loads(data_json)
        except orjson.JSONDecodeError as exc:
            raise click.BadParameter(f"not JSON: {exc}", param_hint="--data") from exc
        if not isinstance(data, dict):
            raise click.BadParameter("must be a JSON object", param_hint="--data")
        return data
    if kind.subtopic == "SetNotReady" and reason is None:
        raise click.UsageError("SetNotReady needs --reason (a not-routable state, e.g. Break)")
    if reason is not None:
        if kind.subtopic not in ("SetNotReady", "SetReady"):
            raise click.UsageError(
                f"--reason applies to SetNotReady and SetReady, not {kind.subtopic}"
            )
        return {"ReasonCodeId": reason}
    return None


@click.command("send")
@click.argument("request_name", metavar="REQUEST")
@click.option(
    "--reason",
    help="The agent state to set (ReasonCodeId): SetNotReady needs one, SetReady may take one.",
)
@click.option("--data", "data_json", help="The request's data as a JSON object (for other kinds).")
@click.option(
    "--timeout",
    default=SEND_TIMEOUT,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help=f"Seconds to wait for the answer (the hub's own limit is {DEFAULTS.request_timeout:g} by default).",
)
@click.option("--pretty", is_flag=True, help="Indent the answering event.")
@click.option(
    "--source", default="connect-bridge-cli", show_default=True, help="This app's name on the bus."
)
@supervisor_option
@connection_options
@click.pass_context
def send(
    ctx: click.Context,
    request_name: str,
    reason: str | None,
    data_json: str | None,
    timeout: float,
    pretty: bool,
    source: str,
    supervisor: bool,
    url: str,
    token: str | None,
    agent: str | None,
) -> None:
    """Send one request and print the event that answers it.

    REQUEST is one of SetNotReady, SetReady, Logout, Mute, Unmute, GetStates,
    StateSync, or channel/topic/subtopic. On an error, its msg and errorType go
    to stderr and the exit status says which kind of failure it was (see
    docs/client.md).

    With a supervisor token (or --supervisor on an open hub), --agent names
    the agent to send for; the token must grant control.

    \b
      connect-bridge send SetNotReady --reason Break --agent agent1
      connect-bridge send GetStates --agent agent1 | jq '.message.states'
      connect-bridge send SetNotReady --reason Break --agent agent7 --token "$SUPERVISOR_TOKEN"
    """
    kind = request_kind(request_name)
    data = request_data(kind, reason, data_json)
    who = joining(ctx, token, agent, supervisor=supervisor, control=True)
    require_target(who)

    async def main() -> int:
        try:
            async with who.client(url, source=source, request_timeout=timeout) as bus:
                answer = await bus.request(*kind, data, timeout=timeout, agent=who.target)
        except BridgeError as exc:
            report(exc, url)
            return exit_code(exc)
        option = orjson.OPT_INDENT_2 if pretty else 0
        write_line(sys.stdout, orjson.dumps(answer, option=option).decode())
        return EXIT_OK

    run_async(main())


# ----- listen ----------------------------------------------------------------------------


def describe_state(envelope: dict[str, Any] | None, now: datetime) -> str:
    """``Break (not_routable) · 1:23 in state · muted: no`` from a SetAgentState event."""
    if envelope is None:
        return "state unknown"
    message = envelope.get("message") or {}
    data = message.get("data") or {}
    since = parse_time(data.get("stateChangeTime"))
    in_state = format_duration((now - since).total_seconds()) if since else "?"
    muted = "yes" if data.get("muted") else "no"
    queued = data.get("nextState")
    next_state = f" · next: {queued.get('name')}" if isinstance(queued, dict) else ""
    return (
        f"{message.get('event', '?')} ({data.get('type', '?')}) · {in_state} in state · muted: {muted}{next_state}"
    )


def describe_event(envelope: dict[str, Any], now: datetime) -> str:
    """One readable line for an event (the ``--pretty`` log)."""
    kind = envelope.get("subtopic", "?")
    topic = envelope.get("topic")
    message = envelope.get("message")
    tags = "".join(
        [
            " (retained)" if envelope.get("retained") else "",
            " (recovered)" if envelope.get("recovered") else "",
            f" ← {str(envelope['replyTo'])[:8]}" if "replyTo" in envelope else "",
        ]
    )
    position = Position.of(envelope)
    at = f" @{position}" if position is not None else ""  # what --since takes, after the '@'
    if topic == "InboundCall" and isinstance(message, dict):
        body = describe_call_message(kind, message, now)
    elif kind == "SetAgentState":
        body = describe_state(envelope, now)
    elif kind == "ProviderStatus" and isinstance(message, dict):
        body = "provider " + ("connected" if message.get("connected") else "gone")
    elif kind == "GetStates" and isinstance(message, dict):
        body = ", ".join(f"{s.get('label')} ({s.get('type')})" for s in message.get("states", []))
    elif kind == "StateSync" and isinstance(message, dict):
        agent_state = message.get("agentState") or {}
        body = f"{message.get('loginState')}, {agent_state.get('name')} ({agent_state.get('type')})"
    else:
        body = orjson.dumps(message).decode()
    return f"{now.astimezone().strftime('%H:%M:%S')}{at}  {kind}{tags}: {body}"


def describe_call_message(kind: str, message: dict[str, Any], now: datetime) -> str:
    """The ``InboundCall`` events: one contact, the live ones, or the quick connects."""
    if kind == "InboundCallStateChange" and isinstance(message.get("call"), dict):
        return describe_call(message["call"], now)
    if kind == "StateSync" and isinstance(message.get("calls"), list):
        calls = [describe_call(c, now) for c in message["calls"] if isinstance(c, dict)]
        return f"{len(calls)} live call(s)" + "".join(f"\n    {line}" for line in calls)
    if kind == "GetQuickConnects" and isinstance(message.get("endpoints"), list):
        return "quick connects: " + "; ".join(
            describe_quick_connect(e) for e in message["endpoints"] if isinstance(e, dict)
        )
    return orjson.dumps(message).decode()


class PrettyView:
    """The ``listen --pretty`` screen: a log of events and, on a terminal, a status
    line (agent, state, time in state, muted, provider, live calls) redrawn every second."""

    def __init__(self, out: IO[str], bus: BridgeClient, live: bool) -> None:
        self.out = out
        self.bus = bus
        self.live = live
        #: The live calls by contact id, from the call events seen (gone at Dropped).
        self.calls: dict[str, dict[str, Any]] = {}

    def status(self, now: datetime) -> str:
        provider = {True: "up", False: "down", None: "?"}[self.bus.provider_connected]
        connection = "" if self.bus.state is ConnectionState.OPEN else f" · {self.bus.state}"
        state = describe_state(self.bus.last("Amazon/Agent/SetAgentState"), now)
        calls = "".join(
            f" · {str(call.get('id'))[:8]} {EVENT_WORDS.get(str(call.get('event')), call.get('event'))}"
            for call in self.calls.values()
        )
        return f"{self.bus.agent} ▸ {state} · provider: {provider}{calls}{connection}"

    def event(self, envelope: dict[str, Any]) -> None:
        message = envelope.get("message")
        call = message.get("call") if isinstance(message, dict) else None
        if envelope.get("subtopic") == "InboundCallStateChange" and isinstance(call, dict):
            if call.get("event") == "Dropped":
                self.calls.pop(str(call.get("id")), None)
            else:
                self.calls[str(call.get("id"))] = call
        self.line(describe_event(envelope, datetime.now(UTC)))

    def note(self, text: str) -> None:
        """A connection note: above the status line on a terminal, else on stderr."""
        if self.live:
            self.line(text)
        else:
            click.echo(text, err=True)

    def line(self, text: str) -> None:
        if self.live:
            self.out.write("\r\x1b[K")  # clear the status line, print above it
        self.out.write(text + "\n")
        self.redraw()

    def redraw(self) -> None:
        if self.live:
            self.out.write("\r\x1b[K" + self.status(datetime.now(UTC)))
        self.out.flush()

    async def tick(self) -> None:
        while True:
            await asyncio.sleep(1)
            self.redraw()


class SupervisorView(PrettyView):
    """``listen --pretty`` for a supervisor: each line names its agent, and the status
    line counts the agents in scope by state, on a call, and with the provider down."""

    def __init__(self, out: IO[str], bus: BridgeClient, live: bool) -> None:
        super().__init__(out, bus, live)
        #: The live calls by (agent, contact id), from the call events seen (gone at Dropped).
        self.agent_calls: dict[tuple[str, str], dict[str, Any]] = {}

    def status(self, now: datetime) -> str:
        states: dict[str, int] = {}
        down = 0
        for agent in self.bus.seen_agents:
            state = self.bus.last("Amazon/Agent/SetAgentState", agent=agent)
            data = (state or {}).get("message", {}).get("data")
            name = str(data.get("state", "unknown")) if isinstance(data, dict) else "unknown"
            states[name] = states.get(name, 0) + 1
            provider = self.bus.last("Bridge/Session/ProviderStatus", agent=agent)
            if provider is not None and not (provider.get("message") or {}).get("connected"):
                down += 1
        on_call = len({agent for agent, _ in self.agent_calls})
        parts = [f"{len(self.bus.seen_agents)} agents", *(f"{name} {n}" for name, n in sorted(states.items()))]
        parts += [f"on a call {on_call}", f"provider down {down}"]
        connection = "" if self.bus.state is ConnectionState.OPEN else f" · {self.bus.state}"
        return f"{self.bus.supervisor or 'supervisor'} ▸ {' · '.join(parts)}{connection}"

    def event(self, envelope: dict[str, Any]) -> None:
        agent = str(envelope.get("agent", "?"))
        message = envelope.get("message")
        call = message.get("call") if isinstance(message, dict) else None
        if envelope.get("subtopic") == "InboundCallStateChange" and isinstance(call, dict):
            key = (agent, str(call.get("id")))
            if call.get("event") == "Dropped":
                self.agent_calls.pop(key, None)
            else:
                self.agent_calls[key] = call
        when, _, rest = describe_event(envelope, datetime.now(UTC)).partition("  ")
        self.line(f"{when}  {agent}  {rest}")


def shown_answers(kinds: tuple[str, ...], answers: bool) -> Callable[[dict[str, Any]], bool]:
    """Whether ``listen`` prints an event: all but other apps' answers to questions.

    An event with ``replyTo`` answers some app's request and reaches every app of
    the agent. When its kind is retained (``x-bridge.retain``: SetAgentState, the
    call events) it is news about the agent and printed like any event; otherwise
    (GetStates, StateSync...) it only answers whoever asked, and ``listen``, which
    asks nothing, prints it only with ``--answers`` or when ``--kind`` names it.
    """
    if answers:
        return lambda envelope: True
    from bridge.protocol.catalog import Catalog

    wanted = {spec.label for spec in Catalog.load() if spec.retain is not None} | set(kinds)

    def shown(envelope: dict[str, Any]) -> bool:
        if "replyTo" not in envelope:
            return True
        label = f"{envelope.get('channel')}/{envelope.get('topic')}/{envelope.get('subtopic')}"
        return label in wanted

    return shown


#: Seconds without a frame after which ``listen --since`` takes the hub's replay of missed
#: events as finished and says how many there were (the first live event says it sooner).
RECOVERY_QUIET: Final = 1.0


def since_positions(
    texts: tuple[str, ...], supervising: bool, scope: tuple[str, ...] | None
) -> Position | dict[str, Position] | None:
    """``--since``: one ``EPOCH:OFFSET`` for an app; ``AGENT=EPOCH:OFFSET`` (repeatable) for a
    supervisor, each agent within an open hub's ``--agents``. Bad text is a usage error."""
    if not texts:
        return None

    def position(text: str) -> Position:
        try:
            return Position.parse(text)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--since") from exc

    if not supervising:
        if len(texts) > 1 or "=" in texts[0]:
            raise click.BadParameter(
                "an app gives one EPOCH:OFFSET (AGENT=EPOCH:OFFSET, repeatable, is for a supervisor)",
                param_hint="--since",
            )
        return position(texts[0])
    positions: dict[str, Position] = {}
    for text in texts:
        agent, equals, rest = text.partition("=")
        agent = agent.strip()
        if not equals or not agent:
            raise click.BadParameter(f"{text!r}: a supervisor gives AGENT=EPOCH:OFFSET", param_hint="--since")
        if agent in positions:
            raise click.BadParameter(f"{agent} is given twice", param_hint="--since")
        if scope is not None and "*" not in scope and agent not in scope:
            raise click.BadParameter(f"{agent} is not one of --agents", param_hint="--since")
        positions[agent] = position(rest)
    return positions


class RecoveryNote:
    """What ``listen --since`` says on stderr about its first connection, one line per
    position asked: ``recovered N events from EPOCH:OFFSET`` once the replay of missed
    events is over (the first live event, a quiet second, or the end of ``listen``), or at
    once ``could not recover from EPOCH:OFFSET (...): showing the current state``."""

    def __init__(self, asked: Position | dict[str, Position], recovered: bool | dict[str, bool] | None) -> None:
        # None: an app's one agent; else each agent a supervisor asked for.
        positions: dict[str | None, Position] = {}
        if isinstance(asked, Position):
            positions[None] = asked
        else:
            positions.update(asked)
        answers: dict[str | None, bool] = (
            {None: recovered is True} if not isinstance(recovered, dict)
            else {agent: recovered.get(agent, False) is True for agent in positions if agent is not None}
        )
        self.counts: dict[str | None, int] = {}
        self.waiting: dict[str | None, Position] = {}
        for agent, position in positions.items():
            if answers.get(agent):
                self.counts[agent] = 0
                self.waiting[agent] = position
            else:
                self.say(agent, f"could not recover from {position} (history too old or the hub restarted): "
                         "showing the current state")

    @property
    def pending(self) -> bool:
        return bool(self.waiting)

    def event(self, envelope: dict[str, Any], supervising: bool) -> None:
        """Count a recovered event; the first other one ends the replay."""
        if not self.waiting:
            return
        if envelope.get("recovered") is True:
            agent = agent_of(envelope) if supervising else None
            if agent in self.counts:
                self.counts[agent] += 1
            return
        self.finish()

    def finish(self) -> None:
        waiting, self.waiting = self.waiting, {}
        for agent, position in waiting.items():
            n = self.counts[agent]
            self.say(agent, f"recovered {n} event{'' if n == 1 else 's'} from {position}")

    @staticmethod
    def say(agent: str | None, text: str) -> None:
        click.echo(text if agent is None else f"{agent}: {text}", err=True)


def reconnect_note(bus: BridgeClient) -> str:
    """What a reconnect recovered, for the ``# open`` note (empty when it asked nothing)."""
    recovered = bus.recovered
    if recovered is None or bus.connections < 2:
        return ""
    if isinstance(recovered, dict):
        done = sum(recovered.values())
        return f" (recovered the missed events of {done} of {len(recovered)} agents; the others: current state)"
    if recovered:
        return " (recovered the missed events)"
    return " (could not recover the missed events: showing the current state)"


@click.command("listen")
@click.option(
    "--kind",
    "kinds",
    multiple=True,
    help="Only events of this kind, e.g. Amazon/Agent/SetAgentState (repeatable).",
)
@click.option("--pretty", is_flag=True, help="A readable live view instead of JSON lines.")
@click.option("--count", type=click.IntRange(min=1), help="Stop after this many events.")
@click.option("--duration", type=click.FloatRange(min=0), help="Stop after this many seconds.")
@click.option("--quiet", "-q", is_flag=True, help="No connection notes on stderr.")
@click.option(
    "--answers",
    is_flag=True,
    help="Also print answers to other apps' questions (GetStates, StateSync, quick connects...), "
    "which every app of the agent receives; hidden unless --kind names their kind.",
)
@click.option(
    "--source",
    default="connect-bridge-listen",
    show_default=True,
    help="This app's name on the bus.",
)
@click.option(
    "--since",
    "since_texts",
    multiple=True,
    metavar="EPOCH:OFFSET",
    help="Start after this position (an event's epoch and offset): first every later event the hub "
    "still has (\"recovered\": true), then the live ones. A supervisor gives AGENT=EPOCH:OFFSET "
    "(repeatable).",
)
@supervisor_option
@agents_option
@connection_options
@click.pass_context
def listen(
    ctx: click.Context,
    kinds: tuple[str, ...],
    pretty: bool,
    count: int | None,
    duration: float | None,
    quiet: bool,
    answers: bool,
    source: str,
    since_texts: tuple[str, ...],
    supervisor: bool,
    agents_text: str | None,
    url: str,
    token: str | None,
    agent: str | None,
) -> None:
    """Print the agent's events as they come: one JSON object per line (jq-ready).

    The retained state is printed first (marked "retained": true). Reconnects by
    itself when the hub restarts, and then prints the events it missed first
    (marked "recovered": true) when the hub still has them; connection notes go
    to stderr. Each event carries its position, "epoch" and "offset": give it
    to --since EPOCH:OFFSET to start from there another time.

    The hub sends every app of an agent the answer to any app's request. Those
    that change the agent (SetAgentState, call events) are printed; those that
    only answer a question (GetStates, StateSync, GetQuickConnects, a
    deployment's own kinds) are hidden unless --answers or --kind asks for them.

    As a supervisor (a supervisor token, or --supervisor --agents on an open
    hub) it prints the events of every agent in scope, each with its "agent";
    --agent then shows only that agent.

    \b
      connect-bridge listen --agent agent1 | jq -c '.message.data.state'
      connect-bridge listen --agent agent1 --pretty
      connect-bridge listen --supervisor --agents '*' | jq -c '[.agent, .subtopic]'
      connect-bridge listen --token "$SUPERVISOR_TOKEN" --pretty
      connect-bridge listen --agent agent1 --since k3v9Xq2bT0c:12
    """
    for name in kinds:
        try:
            Kind.parse(name)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--kind") from exc
    who = joining(ctx, token, agent, supervisor=supervisor, agents_text=agents_text)
    since = since_positions(since_texts, who.supervising, who.agents)
    shown = shown_answers(kinds, answers)
    wanted_kinds = frozenset(str(Kind.parse(name)) for name in kinds)

    def wanted(envelope: dict[str, Any]) -> bool:
        """--kind and a supervisor's --agent (the stream takes every event, to count the recovered)."""
        label = f"{envelope.get('channel')}/{envelope.get('topic')}/{envelope.get('subtopic')}"
        return (not wanted_kinds or label in wanted_kinds) and (
            who.target is None or agent_of(envelope) == who.target
        )

    async def main() -> int:
        bus = who.client(url, source=source, recover=since)
        view_class = SupervisorView if who.supervising else PrettyView
        view = view_class(sys.stdout, bus, live=sys.stdout.isatty()) if pretty else None

        def note(state: ConnectionState) -> None:
            if quiet:
                return
            text = f"# {state}: {url}" + (reconnect_note(bus) if state is ConnectionState.OPEN else "")
            if view is not None:
                view.note(text)
            else:
                click.echo(text, err=True)

        bus.add_state_listener(note)
        try:
            await bus.start()
        except BridgeError as exc:
            report(exc, url)
            return exit_code(exc)
        recovery = RecoveryNote(since, bus.recovered) if since is not None else None
        ticker = asyncio.create_task(view.tick()) if view is not None and view.live else None
        seen = 0
        try:
            async with asyncio.timeout(duration), bus.events() as events:
                while True:
                    if recovery is not None and recovery.pending:
                        try:
                            envelope = await events.get(RECOVERY_QUIET)
                        except TimeoutError:  # the replay is over: nothing came for a while
                            recovery.finish()
                            continue
                        recovery.event(envelope, who.supervising)
                    else:
                        envelope = await anext(events)
                    if not wanted(envelope) or not shown(envelope):
                        continue
                    if view is not None:
                        view.event(envelope)
                    else:
                        write_line(sys.stdout, orjson.dumps(envelope).decode())
                    seen += 1
                    if count is not None and seen >= count:
                        break
        except (TimeoutError, StopAsyncIteration):
            pass  # --duration ran out, or the client closed for good without an error
        except BridgeError as exc:
            report(exc)
            return exit_code(exc)
        finally:
            if recovery is not None:
                recovery.finish()
            if ticker is not None:
                ticker.cancel()
            await bus.close()
            if view is not None and view.live:
                sys.stdout.write("\n")
        return EXIT_OK

    run_async(main())


# ----- virtual-agent ---------------------------------------------------------------------


def _attributes(ctx: click.Context, param: click.Parameter, value: str | None) -> dict[str, str] | None:
    """``--call-attributes``: a JSON object whose values are strings (contact attributes)."""
    if value is None:
        return None
    try:
        parsed = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON: {exc}") from exc
    if not isinstance(parsed, dict) or not all(isinstance(v, str) for v in parsed.values()):
        raise click.BadParameter('must be a JSON object of strings, e.g. {"CustomerId": "C-1"}')
    return parsed


def _caller(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if not is_e164(value):
        raise click.BadParameter(f"{value!r} is not an E.164 number such as +15555550123")
    return value


def _quick_connects(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> tuple[QuickConnect, ...]:
    try:
        return tuple(QuickConnect.parse(text) for text in value) if value else DEFAULT_QUICK_CONNECTS
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


def call_options(timers: CallTimers = COMMAND_CALL_TIMERS) -> Callable[[F], F]:
    """The simulated calls' options (virtual-agent and demo), with the defaults both share.

    The command receives them as keyword arguments named as :class:`VirtualAgent`'s;
    0 turns a timer off.
    """

    def seconds(name: str, default: float | None, what: str) -> Callable[[F], F]:
        shown = "off" if default is None else f"{default:g}"
        return click.option(
            name,
            default=default,
            type=click.FloatRange(min=0),
            callback=lambda ctx, param, value: value or None,
            help=f"{what} (seconds; 0: never; default: {shown}).",
        )

    options = [
        seconds("--call-every", timers.call_every,
                "Ring an inbound call this often while the agent is free and routable"),
        seconds("--call-length", timers.call_length, "The customer of an answered call hangs up after this long"),
        seconds("--ring-timeout", timers.ring_timeout, "A ringing call nobody answers is missed after this long"),
        click.option(
            "--answer-delay",
            default=timers.answer_delay,
            show_default=True,
            type=click.FloatRange(min=0),
            help="Seconds before a dialed customer or a consulted party picks up (0: at once).",
        ),
        seconds("--acw-timeout", timers.acw_timeout, "After-call work nobody clears ends after this long"),
        click.option(
            "--caller",
            default=DEFAULT_CALLER,
            show_default=True,
            callback=_caller,
            help="The customer's number (E.164) on the calls that ring.",
        ),
        click.option(
            "--call-attributes",
            metavar="JSON",
            callback=_attributes,
            help='Contact attributes of the calls that ring, e.g. \'{"CustomerId": "C-20411"}\'.',
        ),
        click.option(
            "--quick-connect",
            "quick_connects",
            multiple=True,
            metavar="NAME=TARGET",
            callback=_quick_connects,
            help="A quick connect, TARGET an E.164 number, queue or agent (repeatable; replaces "
            "the defaults: Billing queue=queue, Front desk=+18005550111, Supervisor=agent).",
        ),
        click.option(
            "--fail",
            multiple=True,
            metavar="CALL_KIND",
            type=click.Choice(list(CALL_ERRORS)),
            help="Refuse every request of this call kind with its error type, e.g. Hold "
            "(HOLD_CALL_FAILED) (repeatable).",
        ),
    ]

    def decorate(func: F) -> F:
        for option in reversed(options):
            func = option(func)
        return func

    return decorate



def load_states(path: Path) -> tuple[AgentState, ...]:
    """Agent states from a ``.json`` or ``.toml`` file (see :func:`states_from_config`)."""
    try:
        raw = path.read_bytes()
        value = tomllib.loads(raw.decode()) if path.suffix.lower() == ".toml" else orjson.loads(raw)
        return states_from_config(value, str(path))
    except (OSError, ValueError, UnicodeDecodeError) as exc:  # JSON and TOML errors are ValueErrors
        raise click.BadParameter(str(exc), param_hint="--states-file") from exc


def build_model(
    agent: str,
    states: tuple[str, ...],
    states_file: Path | None,
    initial_state: str | None,
    name: str | None,
    fail_updates: bool,
) -> AgentModel:
    """The agent model from the command's options; usage errors name the option."""
    if states and states_file is not None:
        raise click.UsageError("give --state or --states-file, not both")
    chosen: tuple[AgentState, ...] = DEFAULT_STATES
    if states_file is not None:
        chosen = load_states(states_file)
    elif states:
        try:
            chosen = tuple(AgentState.parse(text) for text in states)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--state") from exc
    try:
        return AgentModel(
            agent, states=chosen, initial_state=initial_state, name=name, fail_updates=fail_updates
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc


@click.command("virtual-agent")
@click.option(
    "--state",
    "states",
    multiple=True,
    metavar="NAME=TYPE",
    help="An agent state, e.g. Break=not_routable (repeatable; replaces the defaults: "
    "Available=routable, Break, Lunch, Training =not_routable, Offline=offline).",
)
@click.option(
    "--states-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help='States from a JSON or TOML file: {"states": [{"name": "Break", "type": "not_routable"}]}.',
)
@click.option("--initial-state", help="The state to start in (default: the first routable one).")
@click.option(
    "--name", help="The agent's display name (default: from the login, agent1 -> Agent 1)."
)
@click.option(
    "--fail-updates", is_flag=True, help="Refuse every state change with UPDATE_AGENT_STATE_FAILED."
)
@click.option("--on-call", is_flag=True, help="Start on an answered inbound call.")
@call_options()
@click.option("--quiet", "-q", is_flag=True, help="Do not log each request on stderr.")
@click.option(
    "--source", default="virtual-agent", show_default=True, help="This provider's name on the bus."
)
@connection_options
@click.pass_context
def virtual_agent(
    ctx: click.Context,
    /,
    states: tuple[str, ...],
    states_file: Path | None,
    initial_state: str | None,
    name: str | None,
    fail_updates: bool,
    on_call: bool,
    quiet: bool,
    source: str,
    url: str,
    token: str | None,
    agent: str | None,
    **calling: Any,
) -> None:
    """Act as a logged-in Amazon Connect agent: the provider for one agent, no AWS needed.

    Answers every request (agent states and calls), publishes SetAgentState
    and its live calls on connect and every change, and reconnects when the
    hub restarts. Send it SIGUSR1 to ring an inbound call (from --caller,
    with --call-attributes); docs/calls.md describes the simulated calls.

    \b
      connect-bridge virtual-agent --agent agent1
      connect-bridge virtual-agent --token "$PROVIDER_TOKEN" --call-every 60 --call-length 20
      kill -USR1 <pid>    # rings
    """
    from bridge.sim.virtual_agent import VirtualAgent

    who = credentials(ctx, token, agent)
    login = who.agent if who.agent is not None else token_agent(who.token or "")
    model = build_model(login, states, states_file, initial_state, name, fail_updates)

    async def main() -> int:
        va = VirtualAgent(
            url,
            model=model,
            source=source,
            retry_first_connect=True,
            token=who.token,
            agent=who.agent,
            **calling,
        )
        if on_call:
            va.calls.start_answered(va.caller, va.call_attributes)  # published once connected
        if not quiet:
            _log_virtual_agent(va, url)
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, AttributeError):  # no SIGUSR1 on Windows
            loop.add_signal_handler(signal.SIGUSR1, lambda: asyncio.ensure_future(va.ring()))
        await va.start()
        try:
            await va.wait_closed()
        except BridgeError as exc:
            report(exc)
            return exit_code(exc)
        finally:
            await va.close()
        return EXIT_OK

    run_async(main())


def _log_virtual_agent(va: Any, url: str) -> None:
    """Say on stderr what the virtual agent is doing, for a person watching it."""
    import logging

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    logger = logging.getLogger("bridge.virtual_agent")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False

    def note(state: ConnectionState) -> None:
        click.echo(f"{time.strftime('%H:%M:%S')} {va.model.login_name}: {state} ({url})", err=True)

    va.client.add_state_listener(note)


# ----- demo ------------------------------------------------------------------------------


#: Agents in the demo by default: enough for a wallboard to show a floor.
DEMO_AGENTS: Final = 8
#: Seconds between the state changes the demo's floor makes by itself.
DEMO_FLOOR_EVERY: Final = 10.0
#: The wallboard's query: every agent, with the actions (the open hub grants control).
WALLBOARD_QUERY: Final = "agents=*&control=1"


@click.command("demo")
@config_option("port", envvar=None, help="Port on 127.0.0.1 (0 picks a free one).")
@click.option(
    "--agents",
    default=DEMO_AGENTS,
    show_default=True,
    type=click.IntRange(1, 100),
    help="How many virtual agents (agent1, agent2, ...).",
)
@click.option(
    "--floor-every",
    default=DEMO_FLOOR_EVERY,
    show_default=True,
    type=click.FloatRange(min=0),
    callback=lambda ctx, param, value: value or None,
    help="Seconds between state changes of agent3 and up, made by a supervisor over the bus (0: never).",
)
@call_options()
@config_option("streams_dir", help="Folder with connect-streams-min.js, for the CCP pages (default: "
               "./node_modules/amazon-connect-streams/release, then the folder connect-bridge fetch-streams fills).")
@config_option("loop", envvar=None, help="Event loop to run the demo on, as serve --loop: uvloop, asyncio's own, "
               "or auto (uvloop when installed).")
def demo(port: int, agents: int, floor_every: float | None, streams_dir: Path | None, loop: LoopChoice,
         **calling: Any) -> None:
    """Run a complete local bus: an open hub on loopback, virtual agents, and the pages.

    Nothing needs Amazon Connect: the agents are simulated, and a call rings
    for each of them every --call-every seconds while it is Available (0:
    never). agent1 and agent2 start Available and are yours to drive; from
    agent3 on they start on a break, on a call, at lunch..., and every
    --floor-every seconds one of them changes state, so the wallboard shows a
    floor at work. Ctrl-C stops it.
    """
    factory = loop_factory(loop)  # before the coroutine: uvloop missing is one line, nothing left unawaited
    run_async(run_demo(port, agents, sys.stdout, floor_every=floor_every, streams_dir=streams_dir, **calling),
              factory=factory)


async def run_demo(port: int, agents: int, out: IO[str], *, floor_every: float | None = None,
                   streams_dir: Path | None = None, **calling: Any) -> int:
    """The demo: hub plus agents until cancelled, then a clean shutdown."""
    from bridge.cli.floor import Floor
    from bridge.hub.server import HubServer

    hub = HubServer(HubConfig(host="127.0.0.1", port=port, open_mode=True, streams_dir=streams_dir))
    try:
        await hub.start()
    except OSError as exc:
        click.echo(cannot_listen("127.0.0.1", port, exc), err=True)
        return EXIT_CONNECTION
    missing = streams_warning(hub.streams_dir)
    if missing is not None:
        click.echo(missing, err=True)
    floor = Floor(hub.url, agents, floor_every=floor_every, **calling)
    try:
        await floor.start()
        _print_demo(hub.port, hub.http_url, hub.url, agents, _has_pages(hub.static_dir), out, calling.get("call_every"),
                    wallboard=_has_page(hub.static_dir, "wallboard.html"), program=runnable_program())
        await asyncio.Event().wait()  # until Ctrl-C cancels us
        return EXIT_OK  # pragma: no cover - unreachable
    finally:
        await floor.close()
        await hub.close()
        write_line(out, "demo stopped")


def _has_pages(static_dir: Path | None) -> bool:
    return _has_page(static_dir, "widget.html")


def _has_page(static_dir: Path | None, name: str) -> bool:
    return static_dir is not None and (static_dir / name).is_file()


def runnable_program(argv0: str | None = None, executable: str | None = None) -> str:
    """How to run this program again, typed in the current directory, as a shell word or two.

    ``connect-bridge`` when that name on PATH is this very program; otherwise the
    path it was started with (``.venv/bin/connect-bridge`` after ``make demo``,
    relative when under the current directory), so that the commands the demo
    prints run as printed without activating the virtualenv. Started as
    ``python -m bridge``, the ``connect-bridge`` script beside that Python if
    there is one, else ``python -m bridge`` with that Python.
    """
    program = Path(sys.argv[0] if argv0 is None else argv0)
    python = Path(sys.executable if executable is None else executable)
    if program.suffix == ".py":  # python -m bridge, or a module of it
        script = python.parent / "connect-bridge"
        if not script.is_file():
            return f"{_as_typed(python)} -m bridge"
        program = script
    elif not program.is_file():
        return "connect-bridge"  # no path to give: the name it was started by, presumably on PATH
    on_path = shutil.which(program.name)
    if program.name == "connect-bridge" and on_path is not None and _same_file(Path(on_path), program):
        return "connect-bridge"
    return _as_typed(program)


def _same_file(one: Path, other: Path) -> bool:
    try:
        return one.samefile(other)
    except OSError:
        return False


def _as_typed(path: Path) -> str:
    """``path`` as a shell word: relative to the current directory when under it, else absolute."""
    absolute = Path(os.path.abspath(path))  # not resolve(): a virtualenv's links must stay as they are
    try:
        relative = absolute.relative_to(Path.cwd())
    except ValueError:
        return shlex.quote(str(absolute))
    typed = str(relative)
    return shlex.quote(typed if os.sep in typed else f".{os.sep}{typed}")


def _print_demo(
    port: int,
    http_url: str,
    ws_url: str,
    agents: int,
    pages: bool,
    out: IO[str],
    call_every: float | None = None,
    *,
    wallboard: bool = False,
    program: str = "connect-bridge",
) -> None:
    """The demo's banner: where the hub is, the pages to open (the landing page first,
    pointed at the first agent no virtual agent simulates), and commands that run
    as printed (``program``: see :func:`runnable_program`)."""
    from bridge.cli.floor import STEADY

    agent_list = ", ".join(f"agent{n}" for n in range(1, agents + 1))
    free_agent = f"agent{agents + 1}"
    floor = (f"agent1, agent2 start Available and off call; agent{STEADY + 1} and up on a break, a call, lunch... "
             "and change state now and then" if agents > STEADY else "logged in, Available, off call")
    lines = [
        "connect-bridge demo: an OPEN hub (no tokens) on loopback only",
        f"  hub        {ws_url}",
        f"  health     {http_url}/healthz",
        f"  agents     {agent_list} (virtual: {floor})",
        f"  calls      {f'one rings for each Available agent every {call_every:g} s' if call_every else 'off'}",
        f"  takeover   a CCP page opened as {'agent1' if agents == 1 else f'agent1..agent{agents}'} replaces "
        "its virtual agent until it closes",
        "",
    ]
    if pages:
        pages_to_open = [
            (f"{http_url}/?agent={free_agent}", "the landing page: every page, explained"),
            *([(f"{http_url}/wallboard.html?{WALLBOARD_QUERY}", "the wallboard: every agent, live, with actions")]
              if wallboard else []),
            (f"{http_url}/widget.html?agent=agent1", "agent1's widget (its provider is virtual)"),
            (
                f"{http_url}/ccp.html?emulate=1&agent={free_agent}",
                f"an emulated CCP: {free_agent}'s provider",
            ),
            (
                f"{http_url}/widget.html?agent={free_agent}",
                f"{free_agent}'s widget, following that CCP",
            ),
        ]
        width = max(len(page) for page, _ in pages_to_open)
        lines += ["Open in a browser:"]
        lines += [f"  {page.ljust(width)}  {what}" for page, what in pages_to_open]
        lines += [""]
    url_option = "" if port == DEFAULTS.port else f" --url {ws_url}"
    cb = program
    lines += [
        "Then, in another terminal (in this directory):",
        f"  {cb} listen --agent agent1{url_option}",
        f"  {cb} send SetNotReady --reason Break --agent agent1{url_option}",
        f"  {cb} send SetReady --agent agent1{url_option}",
        f"  {cb} call answer --agent agent1{url_option}     # when a call rings",
        f"  {cb} call dial +15555550100 --agent agent1{url_option}",
        f"  {cb} listen --supervisor --agents '*'{url_option}     # every agent, one JSON line per event",
        f"  {cb} send SetNotReady --reason Break --supervisor --agent agent2{url_option}",
        "",
        "Ctrl-C stops the demo.",
    ]
    for line in lines:
        write_line(out, line)


@click.group()
def apps_main() -> None:
    """These commands alone, for running them without ``bridge.cli`` (``python -m bridge.cli.apps``)."""


for _command in (send, listen, virtual_agent, demo):
    apps_main.add_command(_command)


if __name__ == "__main__":  # pragma: no cover
    apps_main()
