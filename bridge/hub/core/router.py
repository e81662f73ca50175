"""The hub's sans-I/O core: sessions, routing, retention and refusals, decided without I/O.

The :class:`Router` is told what happens to one hub node (a connection
opened and said something, the broker delivered a publication or a request,
time passed, a connection closed) and answers with the outputs of
:mod:`bridge.hub.core.outputs`, which :class:`bridge.hub.node.Node` carries
out. It owns every piece of session state: who is connected and as what,
which agents each connection follows (its *subscriptions*), the rooms, the
requests in flight, the rate limits. Tests drive it with plain strings and a
fake clock.

What each message kind does (who may send it, whether and how it is
retained, its request deadline) is read from its schema through the
:class:`~bridge.protocol.catalog.Catalog`, not spelled here.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from time import perf_counter
from typing import Any, Final, NamedTuple

import orjson

from bridge import protocol
from bridge.hub.core.ids import new_connection_id, new_request_id
from bridge.hub.core.limits import TokenBucket
from bridge.hub.core.outputs import (
    Answer,
    Attach,
    Claim,
    Close,
    Deadline,
    Deliver,
    Detach,
    Follow,
    Forget,
    Forward,
    Greet,
    Output,
    Publish,
    Release,
    Send,
    Unfollow,
    Watch,
)
from bridge.hub.core.pending import Pending, PendingRequests
from bridge.hub.core.positions import (
    HUB_KEYS,
    At,
    Held,
    Missed,
    PositionLike,
    RetainedLike,
    is_after,
    positioned,
    unsent,
)
from bridge.hub.core.rooms import Room, Rooms
from bridge.hub.core.scope import covers, tagged, untag
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
)
from bridge.protocol.catalog import Catalog, Verdict
from bridge.protocol.tokens import EVERY_AGENT, TokenError, check_scope, verify_token

_ID_MAX: Final = 64
#: Seconds a provider has to answer a request whose kind declares no deadline of its own.
DEFAULT_REQUEST_TIMEOUT: Final = 10.0
#: Longest ``errorMessage`` the hub sends (what it echoes of a frame is cut there).
MAX_ERROR_MESSAGE: Final = 512
#: Clock leeway in seconds when checking a token's expiry.
DEFAULT_TOKEN_LEEWAY: Final = 0.0
_PROBLEMS: Final = {
    "unknown": ErrorType.UNKNOWN_MESSAGE,
    "forbidden": ErrorType.FORBIDDEN,
    "schema": ErrorType.SCHEMA_VIOLATION,
}


@dataclass(slots=True, eq=False)
class Peer:
    """A joined connection: who it is and which agents it follows."""

    connection_id: str
    role: Role
    source: str
    #: The agents it follows (its subscriptions): one for an app or a provider.
    agents: tuple[str, ...]
    #: Its flood control (``None``: unlimited, as in the core's own tests).
    bucket: TokenBucket | None = field(default=None, repr=False)
    #: A provider's requests delivered by this node, by bus id, with whether it
    #: answered yet: a request is never handed to it twice (a backplane that
    #: replied late may deliver one twice), and its first answer to each never
    #: counts against its rate limit (the hub, not the provider, chose when
    #: those came). ``None`` for an app.
    delivered: dict[str, bool] | None = field(default=None, repr=False)
    #: When its token expires, on the router's clock (``None``: never, an open hub).
    expires: float | None = None
    #: A supervisor: whether it may send requests, and its own name (the token's ``sub``).
    control: bool = False
    name: str = ""
    #: Whether its ``Hello`` asked to recover (its ``Welcome`` says how it went).
    recovering: bool = False

    @property
    def agent(self) -> str:
        """The one agent of an app or a provider."""
        return self.agents[0]


class Joined(NamedTuple):
    peer: Peer
    outputs: list[Output]


class Refused(NamedTuple):
    outputs: list[Output]


class ProviderPublication(NamedTuple):
    """What the broker said about an agent's provider, and its position in the agent's stream."""

    connection_id: str
    up: bool
    position: PositionLike | None = None


@dataclass(frozen=True, slots=True)
class Limits:
    """The per-connection limits the core enforces; ``HubConfig`` takes its defaults from here."""

    #: Sustained frames per second and burst, per connection.
    rate: float = 50.0
    burst: int = 100
    #: Frames refused by the rate limit in a row before the connection is closed (1008).
    flood_close_after: int = 50
    #: Most app connections one agent may have on this node; its provider's place is always kept.
    connections_per_agent: int = 200
    #: Requests remembered per provider (not handed twice; first answers skip its rate limit), oldest forgotten first.
    owed_answers: int = 1024


DEFAULT_LIMITS: Final = Limits()


def _ignore(label: str) -> None:
    pass


def _ignore_done(seconds: float) -> None:
    pass


class Router:
    """Decides, event by event, for one hub node."""

    def __init__(
        self,
        catalog: Catalog,
        *,
        secret: str | None,
        open_mode: bool = False,
        token_leeway: float = DEFAULT_TOKEN_LEEWAY,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        limits: Limits | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        connection_ids: Callable[[], str] = new_connection_id,
        request_ids: Callable[[], str] = new_request_id,
        on_frame: Callable[[str], None] | None = None,
        on_request_done: Callable[[float], None] | None = None,
    ) -> None:
        if not open_mode and not secret:
            raise ValueError("a hub needs a secret unless it runs in open mode")
        self.catalog = catalog
        self.secret = secret
        self.open_mode = open_mode
        self.token_leeway = token_leeway
        self.request_timeout = request_timeout
        self.limits = limits if limits is not None else Limits()
        self.clock = clock
        self.wall_clock = wall_clock
        #: Token expiries as (deadline on ``clock``, connection id), earliest first.
        self._expiries: list[tuple[float, str]] = []
        self.new_connection_id = connection_ids
        self.request_ids = request_ids
        self.pending = PendingRequests()
        self.rooms = Rooms()
        #: Joined connections by id.
        self.peers: dict[str, Peer] = {}
        #: Supervisors of every agent, attached; and those being greeted, with the
        #: live frames (agent, (position, frame)) that arrived meanwhile.
        self.everyone: set[str] = set()
        self.everyone_joining: dict[str, list[tuple[str, Held]]] = {}
        #: Told the kind of every frame received (or why it was refused): metrics.
        self.on_frame = on_frame or _ignore
        #: Told how long each answered request took: metrics.
        self.on_request_done = on_request_done or _ignore_done
        #: Time spent in schema validation, and how many frames it checked.
        self.validation_seconds = 0.0
        self.validations = 0

    # --- joining -------------------------------------------------------------------

    def hello(self, connection_id: str, frame: str | bytes) -> Joined | Refused:
        """Check a connection's first frame (it must be a valid ``Hello``) and admit it.

        Admitted, the connection is in its agents' rooms as *joining*: live
        events for it are held until :meth:`greet` sends its replay.
        """
        try:
            envelope = orjson.loads(frame)
        except orjson.JSONDecodeError as exc:
            return self.refuse(connection_id, f"the first frame must be Hello; it is not JSON: {exc}")
        reply_to = _reply_to(envelope)
        if protocol.kind_of(envelope) != HELLO:
            return self.refuse(connection_id, "the first frame must be Bridge/Session/Hello", reply_to)
        verdict = self.catalog.check(envelope, HELLO, "app")
        if verdict.problem is not None:
            return self.refuse(connection_id, f"bad Hello: {verdict.detail}", reply_to)
        data = envelope["data"]
        role = Role(data["role"])
        recover, why = _recover_of(role, data.get("recover"))
        if why is not None:
            return self.refuse(connection_id, why, reply_to)
        expires: float | None = None
        control = False
        name = envelope["source"]
        if self.open_mode:
            if role is Role.SUPERVISOR:
                scope = data.get("agents")
                if scope is None:
                    return self.refuse(connection_id, "this hub runs in open mode: name the agents in data.agents",
                                       reply_to)
                try:
                    agents = tuple(check_scope(scope, ValueError))
                except ValueError as exc:
                    return self.refuse(connection_id, str(exc), reply_to)
                control = bool(data.get("control", False))
                return self._admit(connection_id, envelope, role, agents, None, control, name, recover)
            agent = data.get("agent")
            if agent is None:
                return self.refuse(connection_id, "this hub runs in open mode: name the agent in data.agent", reply_to)
        else:
            token = data.get("token")
            if token is None or self.secret is None:
                return self.refuse(connection_id, "a token is required (data.token)", reply_to)
            try:
                claims = verify_token(self.secret, token, leeway=self.token_leeway)
            except TokenError as exc:
                return self.refuse(connection_id, str(exc), reply_to)
            if claims.role != role:
                return self.refuse(connection_id, f"the token is for role {claims.role}, not {role}", reply_to)
            agent = claims.agent
            expires = self._deadline_of(claims.expires_at)
            if role is Role.SUPERVISOR:
                return self._admit(
                    connection_id, envelope, role, claims.agents, expires, claims.control, agent, recover
                )
        agents = (agent,)
        if role is not Role.PROVIDER:
            # Apps are capped per agent; the provider's place is never taken by them.
            cap = self.limits.connections_per_agent
            for name in agents:
                if self.rooms.apps(name) >= cap:
                    why = f"agent {name} already has {cap} app connections"
                    return self.refuse(connection_id, why, reply_to, error_type=ErrorType.FORBIDDEN)
        return self._admit(connection_id, envelope, role, agents, expires, control, name, recover)

    def _admit(
        self,
        connection_id: str,
        envelope: dict[str, Any],
        role: Role,
        agents: tuple[str, ...],
        expires: float | None,
        control: bool,
        name: str,
        recover: dict[str, At] | None = None,
    ) -> Joined:
        """Put an accepted connection in its agents' rooms, joining, and ask for its greeting.

        ``recover``: the positions its ``Hello`` asked to recover from, by agent
        (an app's under ``""``: its one agent); a supervisor's agents outside
        its scope are left out (it is told of the others only).
        """
        if recover is not None:
            if role is Role.SUPERVISOR:
                recover = {agent: at for agent, at in recover.items() if covers(agents, agent)}
            else:
                recover = {agents[0]: recover[""]}
        bucket = TokenBucket.full(self.limits.rate, self.limits.burst, self.clock())
        delivered: dict[str, bool] | None = {} if role is Role.PROVIDER else None
        peer = Peer(connection_id, role, envelope["source"], agents, bucket, delivered, expires, control, name)
        peer.recovering = recover is not None
        self.peers[connection_id] = peer
        outputs: list[Output] = []
        if agents == (EVERY_AGENT,):
            if not self.everyone and not self.everyone_joining:
                outputs.append(Follow(EVERY_AGENT))
            self.everyone_joining[connection_id] = []
        for agent in agents if agents != (EVERY_AGENT,) else ():
            room, new = self.rooms.open(agent)
            if new:
                outputs.append(Follow(agent))
            if role is Role.PROVIDER:
                # One provider per agent: the newest takes over at once, so
                # the older one's departure no longer counts as the agent's.
                if room.provider is not None:
                    outputs += self._replaced(room.provider, connection_id)
                room.provider = connection_id
            elif role is Role.SUPERVISOR:
                room.supervisors_joining[connection_id] = []
            else:
                room.joining[connection_id] = []
        outputs.append(Greet(connection_id, agents, recover))
        if expires is not None:
            heapq.heappush(self._expiries, (expires, connection_id))
            outputs.append(Deadline())  # the connection ends with its token
        return Joined(peer, outputs)

    def greet(self, connection_id: str, snapshots: dict[str, Snapshot]) -> list[Output]:
        """Welcome a joining connection: its ``Welcome``, the replay of each agent, then live.

        ``snapshots`` is each agent's provider status and either its history
        after the position the connection asked to recover from, or its top
        position and retained frames, read after the node followed the agent.
        The replay is the history (``recovered``) or the retained state as of
        the top. Live frames held meanwhile follow it, but those at or before
        the replay's last position (they are in it): every event is in the
        replay or delivered after it, once. A held frame without a position
        (or of another epoch) is always sent.
        """
        peer = self.peers.get(connection_id)
        if peer is None:  # it left while being greeted
            return []
        if peer.role is Role.PROVIDER:
            agent = peer.agents[0]  # an app or a provider follows one agent
            room = self.rooms.get(agent)
            if room is None or room.provider != connection_id:
                return []  # replaced while being greeted
            welcome = Send(connection_id, self._welcome(peer, provider_connected=True))
            stale = self._reset_slots(snapshots.get(agent, Snapshot(False, [])).retained)
            if not stale:
                return [welcome, Claim(agent, connection_id)]
            # Forgotten before the Welcome: the provider republishes what is still live
            # (its calls) once welcomed, so nothing that ended meanwhile stays retained.
            return [Forget(agent, stale), welcome, Claim(agent, connection_id)]
        if peer.role is Role.SUPERVISOR:
            return self._greet_supervisor(peer, snapshots)
        first = snapshots.get(peer.agent)
        greeting = self._welcome(
            peer,
            provider_connected=first is not None and first.provider_connected,
            recovered=first.recovered if first is not None else None,
        )
        outputs: list[Output] = [Send(connection_id, greeting)]
        for agent in peer.agents:
            snapshot = snapshots.get(agent, Snapshot(False, []))
            outputs += [Send(connection_id, data) for data in self._snapshot_frames(snapshot)]
            room = self._learn_status(agent, snapshot)
            held = room.joining.pop(connection_id, None) if room is not None else None
            if room is None or held is None:
                continue
            outputs += [Send(connection_id, data) for data in unsent(held, snapshot.top)]
            room.attached.add(connection_id)
            outputs.append(Attach(connection_id, agent))
        return outputs

    def _greet_supervisor(self, peer: Peer, snapshots: dict[str, Snapshot]) -> list[Output]:
        """A supervisor's ``Welcome``, the replay of every agent it follows that the hub knows, then live.

        Frames carry ``agent``. An agent with neither a provider nor retained
        state is not replayed (under ``*`` the node reads only known agents,
        and those it was asked to recover), unless it recovers.
        """
        cid = peer.connection_id
        welcome: dict[str, Any] = {
            "role": str(peer.role),
            "supervisor": peer.name,
            "agents": list(peer.agents),
            "control": peer.control,
            "connectionId": cid,
        }
        recovered = {agent: snapshot.recovered for agent, snapshot in snapshots.items() if snapshot.recovered is not None}
        if recovered or peer.recovering:
            welcome["recovered"] = recovered
        outputs: list[Output] = [Send(cid, orjson.dumps(protocol.event(WELCOME, welcome)))]
        for agent, snapshot in snapshots.items():
            if snapshot.recovered or snapshot.provider_connected or snapshot.retained:
                outputs += [Send(cid, tagged(agent, data)) for data in self._snapshot_frames(snapshot)]
            self._learn_status(agent, snapshot)
        if peer.agents == (EVERY_AGENT,):
            for agent, (position, data) in self.everyone_joining.pop(cid, []):
                known = snapshots.get(agent)
                if is_after(position, known.top if known is not None else None):
                    outputs.append(Send(cid, tagged(agent, data)))
            self.everyone.add(cid)
            outputs.append(Attach(cid, EVERY_AGENT, watch=True))
            return outputs
        for agent in peer.agents:
            room = self.rooms.get(agent)
            held = room.supervisors_joining.pop(cid, None) if room is not None else None
            if room is None or held is None:
                continue
            known = snapshots.get(agent)
            last = known.top if known is not None else None
            outputs += [Send(cid, tagged(agent, data)) for data in unsent(held, last)]
            room.supervisors.add(cid)
            outputs.append(Attach(cid, agent, watch=True))
        return outputs

    def _snapshot_frames(self, snapshot: Snapshot) -> list[bytes]:
        """What a joiner is replayed of one agent (see :class:`Snapshot`).

        Recovered: every missed publication, in order, marked ``recovered``.
        Otherwise: its ``ProviderStatus`` at the top position, then its
        retained frames with their positions, but those set after the top
        (the live path brings them, in order).
        """
        if snapshot.recovered:
            return [self._missed(missed) for missed in snapshot.missed]
        top = snapshot.top
        status = orjson.dumps(protocol.event(PROVIDER_STATUS, {"connected": snapshot.provider_connected}, retained=True))
        retained = [frame for frame in snapshot.retained if not _set_after(frame.position, top)]
        return [positioned(status, top) if top is not None else status, *self._replay(retained)]

    @staticmethod
    def _missed(missed: Missed) -> bytes:
        """One publication from the agent's history as a recovering client gets it."""
        data = missed.data
        if data is None:
            data = orjson.dumps(protocol.event(PROVIDER_STATUS, {"connected": missed.connected}))
        return positioned(data, missed.position, recovered=True)

    def _learn_status(self, agent: str, snapshot: Snapshot) -> Room | None:
        """Take the provider the room's apps are told of from a snapshot, unless publications told it already."""
        room = self.rooms.get(agent)
        if room is not None and not room.status_known and (
            snapshot.provider_id is not None or not snapshot.provider_connected
        ):
            # Publications seen since the room opened are as new as the snapshot, or newer.
            room.status_known = True
            room.provider_seen = snapshot.provider_id
        return room

    def _reset_slots(self, retained: Sequence[RetainedLike]) -> tuple[str, ...]:
        """The slots of these retained frames whose kind resets when a provider joins (``resetOnProviderJoin``)."""
        slots: list[str] = []
        for frame in retained:
            try:
                envelope = orjson.loads(frame.data)
            except orjson.JSONDecodeError:
                continue
            kind = protocol.kind_of(envelope)
            spec = self.catalog.spec(kind, "event") if kind is not None else None
            rule = spec.retain if spec is not None else None
            if rule is not None and rule.reset_on_provider_join:
                decision = rule.decide(envelope)
                if decision is not None:
                    slots.append(decision.slot)
        return tuple(slots)

    def _replay(self, retained: Sequence[RetainedLike]) -> list[bytes]:
        """Retained frames as replayed: marked, answering nothing, with their positions; one-per-kind slots before keyed ones."""
        frames: list[tuple[bool, bytes]] = []
        for frame in retained:
            try:
                envelope = orjson.loads(frame.data)
            except orjson.JSONDecodeError:
                continue  # never written by this hub; nothing a client could use
            kind = protocol.kind_of(envelope)
            spec = self.catalog.spec(kind, "event") if kind is not None else None
            keyed = spec is not None and spec.retain is not None and spec.retain.key is not None
            envelope.pop("replyTo", None)
            envelope["retained"] = True
            position = frame.position
            if position is not None:
                envelope["offset"] = position.offset
                envelope["epoch"] = position.epoch
            try:
                frames.append((keyed, orjson.dumps(envelope)))
            except orjson.JSONEncodeError:
                continue  # nested past what orjson writes: nothing a client could be replayed
        frames.sort(key=lambda item: item[0])  # stable: first-retained order within each group
        return [data for _, data in frames]

    def _welcome(self, peer: Peer, *, provider_connected: bool, recovered: bool | None = None) -> bytes:
        message: dict[str, Any] = {
            "agent": peer.agent,
            "role": str(peer.role),
            "connectionId": peer.connection_id,
            "providerConnected": provider_connected,
        }
        if recovered is not None:
            message["recovered"] = recovered
        return orjson.dumps(protocol.event(WELCOME, message))

    def _replaced(self, older: str, newer: str) -> list[Output]:
        replaced = protocol.event(REPLACED, {"connectionId": newer})
        return [
            Send(older, orjson.dumps(replaced)),
            Close(older, CloseCode.REPLACED, "replaced by a newer provider"),
        ]

    # --- refusals ----------------------------------------------------------------------

    def refuse(
        self,
        connection_id: str,
        why: str,
        reply_to: str | None = None,
        *,
        error_type: ErrorType = ErrorType.NOT_AUTHENTICATED,
    ) -> Refused:
        """Turn a connection away at ``Hello`` (bad Hello or token, none in time, agent full)."""
        err = protocol.error(error_type, why, channel=protocol.BRIDGE, request=HELLO, reply_to=reply_to)
        return Refused([
            Send(connection_id, orjson.dumps(err), error_type),
            Close(connection_id, CloseCode.POLICY_VIOLATION, "Hello refused"),
        ])

    def no_hello(self, connection_id: str, seconds: float) -> Refused:
        return self.refuse(connection_id, f"no Hello within {seconds:g} s")

    def binary_frame(self, connection_id: str, *, joined: bool = True) -> list[Output]:
        """Binary frames are outside the protocol: say so, then close (1008)."""
        if not joined:
            return self.refuse(connection_id, "binary frames are not accepted; send Hello as text").outputs
        why = "binary frames are not accepted; send JSON envelopes as text"
        return [
            self._error(connection_id, ErrorType.INVALID_ENVELOPE, why, None, None),
            Close(connection_id, CloseCode.POLICY_VIOLATION, why, cause="binary_frame"),
        ]

    # --- frames from a joined connection --------------------------------------------------

    def receive(self, peer: Peer, frame: str | bytes) -> list[Output]:
        """Route one frame from a joined connection, after its rate limit.

        An app's frame meets the limit before it is read, so refusing a flood
        stays cheap. A provider's is read first: its answers to requests this
        node delivered to it do not count, since the hub, not the provider,
        chose when those came (a burst after a backplane stall, say).
        """
        bucket = peer.bucket
        delivered = peer.delivered
        if bucket is not None and delivered is None and not bucket.take(self.clock()):
            return self._over_limit(peer, bucket, frame)
        cid = peer.connection_id
        try:
            envelope: Any = orjson.loads(frame)
        except orjson.JSONDecodeError as exc:
            if bucket is not None and delivered is not None and not bucket.take(self.clock()):
                return self._over_limit(peer, bucket, frame)
            return [self._error(cid, ErrorType.INVALID_JSON, f"not JSON: {exc}", None, None)]
        if bucket is not None and delivered is not None:
            answers = envelope.get("replyTo") if isinstance(envelope, dict) else None
            if isinstance(answers, str) and delivered.get(answers) is False:
                delivered[answers] = True  # its first answer: free
            elif not bucket.take(self.clock()):
                return self._over_limit(peer, bucket, frame)
        # The frame's own id (what an error about it answers) is read only on the paths that
        # refuse it: a routed frame never needs it, and nothing changes it before.
        kind = protocol.kind_of(envelope)
        if kind is None:
            why = (
                "an envelope is a JSON object"
                if not isinstance(envelope, dict)
                else "channel, topic and subtopic must all be strings"
            )
            return [self._error(cid, ErrorType.INVALID_ENVELOPE, why, None, _reply_to(envelope))]
        if kind == HELLO:
            return [self._error(cid, ErrorType.FORBIDDEN, "Hello was already accepted", kind, _reply_to(envelope))]
        if peer.role is Role.SUPERVISOR:
            return self._from_supervisor(peer, envelope, kind, _reply_to(envelope))
        verdict = self._check(envelope, kind, peer.role)
        spec = verdict.spec
        if verdict.problem is not None or spec is None:
            problem = _PROBLEMS[verdict.problem or "unknown"]
            return [self._error(cid, problem, verdict.detail, kind, _reply_to(envelope))]
        if kind == REFRESH:
            return self._refresh(peer, envelope["data"]["token"], _reply_to(envelope))
        agent = peer.agents[0]  # an app or a provider follows one agent
        if spec.shape == "request":
            return [self._request(peer, agent, envelope, kind, spec.timeout)]
        # What moves on is what was validated, written anew: a frame with a key
        # twice would otherwise reach apps with a value the schema never saw
        # (orjson keeps the last; another parser may keep the first).
        try:
            data = orjson.dumps(envelope)
        except orjson.JSONEncodeError as exc:  # nested past what orjson writes (a free-form schema)
            why = f"$: cannot be forwarded: {exc}"
            return [self._error(cid, ErrorType.SCHEMA_VIOLATION, why, kind, _reply_to(envelope))]
        answers = envelope.get("replyTo")  # valid per the schema: absent or a short string
        if spec.shape == "event":
            if "offset" in envelope or "epoch" in envelope or "recovered" in envelope:
                why = f"{', '.join(HUB_KEYS)} are set by the hub: send the event without them"
                return [self._error(cid, ErrorType.INVALID_ENVELOPE, why, kind, _reply_to(envelope))]
            retain = spec.retain.decide(envelope) if spec.retain is not None else None
            return [Publish(agent, data, answers, retain)]
        if answers is None:
            # An error that answers nothing cannot reach anyone; it is dropped.
            return []
        return [Answer(agent, answers, data)]

    def _check(self, envelope: dict[str, Any], kind: Kind, sender: Role) -> Verdict:
        """The catalog's verdict on a frame, timed and counted (metrics)."""
        started = perf_counter()
        verdict = self.catalog.check(envelope, kind, sender)
        self.validation_seconds += perf_counter() - started
        self.validations += 1
        self.on_frame(verdict.spec.label if verdict.spec is not None else "refused")
        return verdict

    def _from_supervisor(self, peer: Peer, envelope: dict[str, Any], kind: Kind, reply_to: str | None) -> list[Output]:
        """A supervisor's frame: with ``control``, a request for the agent its ``agent`` key names.

        The key is taken off before validation (the provider sees an
        ordinary request); an error about the frame carries it back.
        """
        cid = peer.connection_id
        agent, named = untag(envelope)
        if agent is not None and not covers(peer.agents, agent):
            why = f"agent {agent} is outside this supervisor's scope"
            return [self._error(cid, ErrorType.FORBIDDEN, why, kind, reply_to, agent)]
        verdict = self._check(envelope, kind, Role.APP)  # it sends what an app sends, for an agent
        spec = verdict.spec
        if verdict.problem is not None or spec is None:
            why = verdict.detail
            if verdict.problem == "forbidden":
                why = f"a supervisor sends only requests: {why}"
            return [self._error(cid, _PROBLEMS[verdict.problem or "unknown"], why, kind, reply_to, agent)]
        if kind == REFRESH:
            return self._refresh(peer, envelope["data"]["token"], reply_to)
        if not peer.control:
            why = "this supervisor may not send requests (its token grants no control)"
            return [self._error(cid, ErrorType.FORBIDDEN, why, kind, reply_to, agent)]
        if agent is None:
            why = "a supervisor's request names its agent in a top-level \"agent\" key" if not named else \
                "\"agent\" must be an agent's login name (1 to 64 characters)"
            return [self._error(cid, ErrorType.FORBIDDEN, why, kind, reply_to)]
        return [self._request(peer, agent, envelope, kind, spec.timeout)]

    def _over_limit(self, peer: Peer, bucket: TokenBucket, frame: str | bytes) -> list[Output]:
        cid = peer.connection_id
        if bucket.refused_in_a_row >= self.limits.flood_close_after:
            return [Close(cid, CloseCode.POLICY_VIOLATION, "flooding", cause="flooding")]
        try:
            reply_to = _reply_to(orjson.loads(frame))
        except orjson.JSONDecodeError:
            reply_to = None
        limit = f"{self.limits.rate:g} frames/s (burst {self.limits.burst})"
        return [self._error(cid, ErrorType.RATE_LIMITED, f"over the limit of {limit}; frame dropped", None, reply_to)]

    def _request(self, peer: Peer, agent: str, envelope: dict[str, Any], kind: Kind, timeout: float | None) -> Output:
        """Forward a request under a bus id of the hub's own; its answer comes back to the requester's id.

        The provider sees the bus id, so no app can pre-claim another's ids,
        and two apps may pick the same ones: only the same connection reusing
        an id of its own still in flight is refused.
        """
        cid = peer.connection_id
        own = envelope.get("id")  # valid per the schema: absent or a short string
        if own is not None and self.pending.in_flight(cid, own):
            why = f"request id {own!r} is already in flight on this connection"
            return self._error(cid, ErrorType.DUPLICATE_REQUEST_ID, why, kind, own)
        request_id = self.request_ids()
        envelope["id"] = request_id
        try:
            data = orjson.dumps(envelope)  # what was validated, and only that
        except orjson.JSONEncodeError as exc:  # nested past what orjson writes (a free-form schema)
            return self._error(cid, ErrorType.SCHEMA_VIOLATION, f"$: cannot be forwarded: {exc}", kind, own)
        now = self.clock()
        seconds = self.request_timeout if timeout is None else timeout
        watch = peer.role is Role.SUPERVISOR
        self.pending.add(Pending(agent, request_id, cid, kind, now, now + seconds, own or request_id, watch=watch))
        return Forward(agent, request_id, data)

    def _refresh(self, peer: Peer, token: str, reply_to: str | None) -> list[Output]:
        """A fresh token on an open connection: same agent and role, and it moves the expiry."""
        cid = peer.connection_id
        if self.open_mode or self.secret is None:
            why = "this hub runs in open mode: its connections have no token to refresh"
            return [self._error(cid, ErrorType.FORBIDDEN, why, REFRESH, reply_to)]
        try:
            claims = verify_token(self.secret, token, leeway=self.token_leeway)
        except TokenError as exc:
            return [self._error(cid, ErrorType.NOT_AUTHENTICATED, f"{exc}; the current token still applies",
                                REFRESH, reply_to)]
        if claims.agent != peer.agent or claims.role != peer.role:
            why = f"the token is for {claims.role} of agent {claims.agent}, not {peer.role} of agent {peer.agent}"
            return [self._error(cid, ErrorType.NOT_AUTHENTICATED, why, REFRESH, reply_to)]
        peer.expires = self._deadline_of(claims.expires_at)
        heapq.heappush(self._expiries, (peer.expires, cid))
        expires_at = datetime.fromtimestamp(claims.expires_at, UTC).isoformat(timespec="milliseconds")
        answer = protocol.event(REFRESHED, {"expiresAt": expires_at.replace("+00:00", "Z")}, reply_to=reply_to)
        return [Send(cid, orjson.dumps(answer)), Deadline()]

    def _deadline_of(self, expires_at: float) -> float:
        """A token's expiry (seconds since the epoch) on this router's clock, leeway included."""
        return self.clock() + (expires_at - self.wall_clock()) + self.token_leeway

    def forwarded(self, agent: str, request_id: str, provider: str | None) -> list[Output]:
        """The broker handed the request to ``provider``, or found none (``None``).

        ``""`` (the broker's ``UNCONFIRMED``): it may or may not have been
        handed over; the request waits for its answer or its deadline.
        """
        if provider is not None:
            entry = self.pending.get(agent, request_id)
            if entry is None:
                return []
            entry.provider = provider
            room = self.rooms.get(agent)
            if room is None or provider not in room.departed:
                return []
            # It reached a provider that left, or was replaced, while the routing was under way.
            self.pending.pop(agent, request_id)
            return [_failure(entry, ErrorType.PROVIDER_UNAVAILABLE, "the provider went away before answering")]
        entry = self.pending.pop(agent, request_id)
        if entry is None:
            return []
        return [_failure(entry, ErrorType.PROVIDER_UNAVAILABLE, f"no provider is connected for agent {agent}")]

    def _error(
        self,
        connection_id: str,
        error_type: ErrorType,
        why: str,
        kind: Kind | None,
        reply_to: str | None,
        agent: str | None = None,
    ) -> Send:
        """A hub error to one connection; ``agent``: it answers a supervisor's frame for that agent."""
        data = orjson.dumps(hub_error(error_type, why, kind, reply_to))
        return Send(connection_id, tagged(agent, data) if agent is not None else data, error_type)

    # --- what the broker delivers -------------------------------------------------------------

    def event(
        self, agent: str, data: bytes, reply_to: str | None, position: PositionLike | None = None
    ) -> list[Output]:
        """An event on the agent's channel: to every app of the agent here, and its supervisors.

        An answer reaches its requester with the requester's own id as
        ``replyTo``; the other apps see the bus id. ``position`` (the broker's,
        ``None`` when it gave none) is spliced into the frame once, for all.
        """
        entry = self.pending.pop(agent, reply_to) if reply_to is not None else None
        room = self.rooms.get(agent)
        watched = self.everyone or self.everyone_joining or (room is not None and room.watched)
        if room is None and not watched:
            return []
        if position is not None:
            data = positioned(data, position)
        requester = None
        own: bytes | None = None
        if entry is not None:
            self.on_request_done(self.clock() - entry.started)
            if entry.reply_to != entry.request_id or entry.watch:
                requester = entry.connection_id
                own = _with_reply_to(data, entry.request_id, entry.reply_to)
        outputs: list[Output] = []
        if room is not None:
            if room.joining or room.supervisors_joining:
                room.hold(position, data)
            if own is not None and requester in room.attached:
                outputs += [Deliver(agent, data, skip=requester), Send(requester, own)]
                requester = None
            else:
                outputs.append(Deliver(agent, data))
        if watched:
            for held in self.everyone_joining.values():
                held.append((agent, (position, data)))
            if own is not None and requester is not None and entry is not None and entry.watch:
                outputs += [Watch(agent, tagged(agent, data), skip=requester), Send(requester, tagged(agent, own))]
            else:
                outputs.append(Watch(agent, tagged(agent, data)))
        return outputs

    def error(self, agent: str, reply_to: str, data: bytes) -> list[Output]:
        """A provider's error on the agent's channel: to its requester, if it waits here."""
        entry = self.pending.pop(agent, reply_to)
        if entry is None:
            return []  # answered already, timed out, or asked on another node
        own = _with_reply_to(data, entry.request_id, entry.reply_to) if entry.reply_to != entry.request_id else data
        own = own if own is not None else data
        return [Send(entry.connection_id, tagged(agent, own) if entry.watch else own, _error_type(data))]

    def provider_changed(self, agent: str, change: ProviderPublication) -> list[Output]:
        """The agent's provider is now ``change.connection_id`` (up), or that one left (down).

        A backplane that replied late, or came back, may say the same twice: an
        arrival of the provider the apps were last told of, or the departure of
        one already gone, changes nothing and is not passed on.
        """
        room = self.rooms.get(agent)
        if room is None:  # no apps here, no requests in flight: maybe supervisors of every agent
            if not (self.everyone or self.everyone_joining):
                return []
            return self._watch(agent, self._status(change.up, change.position), change.position)
        named = change.connection_id
        current = named if change.up else None
        outputs: list[Output] = []
        if current is not None and room.provider is not None and room.provider != current:
            # A newer provider joined on another node: ours is the stale one.
            outputs += self._replaced(room.provider, current)
            room.provider = None
        if room.status_known:
            if change.up and room.provider_seen == named:
                return outputs  # said again (a re-claim, a late reply)
            if not change.up and room.provider_seen != named:
                return outputs  # a provider that was already replaced or gone
        previous = room.provider_seen if room.status_known else None
        room.status_known = True
        room.provider_seen = current
        if previous is not None:
            room.departed.append(previous)
        if not change.up and named not in room.departed:
            room.departed.append(named)
        if current is not None and current in room.departed:
            room.departed.remove(current)  # the same connection again (it re-claimed after an outage)
        why = "the provider was replaced" if change.up else "the provider disconnected"
        outputs += [
            _failure(entry, ErrorType.PROVIDER_UNAVAILABLE, f"{why} before answering")
            for entry in self.pending.fail_agent(agent, set(room.departed))
        ]
        status = self._status(change.up, change.position)
        if room.joining or room.supervisors_joining:
            room.hold(change.position, status)
        outputs.append(Deliver(agent, status))
        return outputs + self._watch(agent, status, change.position)

    @staticmethod
    def _status(connected: bool, position: PositionLike | None) -> bytes:
        status = orjson.dumps(protocol.event(PROVIDER_STATUS, {"connected": connected}))
        return positioned(status, position) if position is not None else status

    def _watch(self, agent: str, data: bytes, position: PositionLike | None) -> list[Output]:
        """``data`` of ``agent`` to its supervisors here (none: nothing), held for those being greeted."""
        room = self.rooms.get(agent)
        if not (self.everyone or self.everyone_joining or (room is not None and room.watched)):
            return []
        for held in self.everyone_joining.values():
            held.append((agent, (position, data)))
        return [Watch(agent, tagged(agent, data))]

    def request(self, agent: str, request_id: str, data: bytes) -> list[Output]:
        """A request for an agent whose provider the registry places on this node."""
        room = self.rooms.get(agent)
        if room is not None and room.provider is not None:
            provider = self.peers.get(room.provider)
            if provider is not None and provider.delivered is not None:
                delivered = provider.delivered
                if request_id in delivered:
                    return []  # handed over already (a backplane that replied late delivers twice)
                delivered[request_id] = False
                if len(delivered) > self.limits.owed_answers:
                    del delivered[next(iter(delivered))]
            return [Send(room.provider, data)]
        # The registry pointed here but the provider just left: say so to the requester.
        try:
            kind = protocol.kind_of(orjson.loads(data))
        except orjson.JSONDecodeError:
            kind = None
        err = hub_error(ErrorType.PROVIDER_UNAVAILABLE, "the provider just disconnected", kind, request_id)
        return [Answer(agent, request_id, orjson.dumps(err))]

    def resync(self) -> list[Output]:
        """The backplane is back: re-register this node's providers."""
        return [Claim(agent, room.provider) for agent, room in self.rooms.items() if room.provider is not None]

    # --- time and departures ----------------------------------------------------------------

    def timeouts(self, now: float | None = None) -> list[Output]:
        """Errors for every request whose provider did not answer in time; closes for expired tokens."""
        now = self.clock() if now is None else now
        outputs: list[Output] = [
            _failure(
                entry,
                ErrorType.REQUEST_TIMEOUT,
                f"the provider did not answer within {entry.deadline - entry.started:g} s",
            )
            for entry in self.pending.expired(now)
        ]
        expiries = self._expiries
        while expiries and expiries[0][0] <= now:
            deadline, cid = heapq.heappop(expiries)
            peer = self.peers.get(cid)
            if peer is None or peer.expires != deadline:
                continue  # gone, or refreshed since
            peer.expires = None
            why = "the token expired; send Bridge/Session/Refresh before it does, or reconnect with a fresh one"
            outputs.append(self._error(cid, ErrorType.NOT_AUTHENTICATED, why, None, None))
            outputs.append(Close(cid, CloseCode.TOKEN_EXPIRED, "token expired", cause="token_expired"))
        return outputs

    def next_deadline(self) -> float | None:
        """The earliest request deadline or token expiry still to come."""
        expiries = self._expiries
        while expiries:
            deadline, cid = expiries[0]
            peer = self.peers.get(cid)
            if peer is not None and peer.expires == deadline:
                break
            heapq.heappop(expiries)  # gone, or refreshed since
        token = expiries[0][0] if expiries else None
        request = self.pending.next_deadline()
        if token is None or (request is not None and request < token):
            return request
        return token

    def leave(self, connection_id: str) -> list[Output]:
        """Forget a connection that closed, for whatever reason."""
        peer = self.peers.pop(connection_id, None)
        if peer is None:
            return []
        self.pending.drop_connection(connection_id)
        outputs: list[Output] = []
        if peer.agents == (EVERY_AGENT,):
            if connection_id in self.everyone:
                self.everyone.discard(connection_id)
                outputs.append(Detach(connection_id, EVERY_AGENT, watch=True))
            self.everyone_joining.pop(connection_id, None)
            if not self.everyone and not self.everyone_joining:
                outputs.append(Unfollow(EVERY_AGENT))
            return outputs
        for agent in peer.agents:
            room = self.rooms.get(agent)
            if room is None:
                continue
            if connection_id in room.attached:
                room.attached.discard(connection_id)
                outputs.append(Detach(connection_id, agent))
            if connection_id in room.supervisors:
                room.supervisors.discard(connection_id)
                outputs.append(Detach(connection_id, agent, watch=True))
            room.joining.pop(connection_id, None)
            room.supervisors_joining.pop(connection_id, None)
            if room.provider == connection_id:
                room.provider = None
                outputs.append(Release(agent, connection_id))
            if self.rooms.close_if_empty(agent):
                outputs.append(Unfollow(agent))
        return outputs

    # --- observation ------------------------------------------------------------------------------

    def _supervisors(self) -> int:
        return sum(peer.role is Role.SUPERVISOR for peer in self.peers.values())

    def stats(self) -> dict[str, Any]:
        rooms = self.rooms.items()
        providers = sum(room.provider is not None for _, room in rooms)
        return {
            "connections": {
                "app": len(self.peers) - providers - (supervisors := self._supervisors()),
                "provider": providers,
                "supervisor": supervisors,
            },
            "agents": len(rooms),
            "providers": providers,
            "pendingRequests": len(self.pending),
            "validations": self.validations,
            "validationSeconds": self.validation_seconds,
        }


class Snapshot(NamedTuple):
    """An agent's state as read from the broker when a connection joins (see :class:`Greet`)."""

    provider_connected: bool
    #: Its retained frames with their positions (empty when it recovered).
    retained: Sequence[RetainedLike]
    #: The provider's connection id, when known.
    provider_id: str | None = None
    #: The agent's top position when read (``None``: unknown; then nothing carries a position).
    top: PositionLike | None = None
    #: Whether it recovered from the position asked; ``None``: nothing was asked.
    recovered: bool | None = None
    #: When it recovered: what the joiner missed, in order.
    missed: Sequence[Missed] = ()


def hub_error(error_type: ErrorType, why: str, kind: Kind | None, reply_to: str | None) -> dict[str, Any]:
    """An error the hub itself raises about a frame of ``kind``.

    What a client sent is echoed only within bounds: names longer than any
    kind's name are left out, and the technical cause is cut at
    ``MAX_ERROR_MESSAGE`` characters, so a huge frame never buys a huge reply.
    """
    if kind is not None and not all(0 < len(name) <= _ID_MAX for name in kind):
        kind = None
    channel = kind.channel if kind is not None else protocol.BRIDGE
    if len(why) > MAX_ERROR_MESSAGE:
        why = why[: MAX_ERROR_MESSAGE - 1] + "…"
    return protocol.error(error_type, why, channel=channel, request=kind, reply_to=reply_to)


def _failure(entry: Pending, error_type: ErrorType, why: str) -> Send:
    data = orjson.dumps(hub_error(error_type, why, entry.kind, entry.reply_to))
    return Send(entry.connection_id, tagged(entry.agent, data) if entry.watch else data, error_type)


def _with_reply_to(data: bytes, bus_id: str, reply_to: str) -> bytes | None:
    """``data`` (an event or error answering ``bus_id``) answering ``reply_to`` instead (``None``: not an envelope).

    Frames the hub forwards are written by the hub, compact, and a bus id is
    unique and needs no escaping: the value is swapped in the bytes, without
    parsing (an answer is on the round trip's path). Anything else is parsed.
    """
    old = b'"replyTo":"' + bus_id.encode() + b'"'
    if data.count(old) == 1:
        return data.replace(old, b'"replyTo":' + orjson.dumps(reply_to))
    try:
        envelope = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(envelope, dict):
        return None
    envelope["replyTo"] = reply_to
    try:
        return orjson.dumps(envelope)
    except orjson.JSONEncodeError:
        return None


def _set_after(position: PositionLike | None, top: PositionLike | None) -> bool:
    """Whether a retained frame at ``position`` was set after the ``top`` its snapshot was read at."""
    return (
        position is not None and top is not None and position.epoch == top.epoch and position.offset > top.offset
    )


def _recover_of(role: Role, value: Any) -> tuple[dict[str, At] | None, str | None]:
    """The positions a ``Hello``'s ``data.recover`` asks for, or why it is refused.

    The schema has checked its shape is one of two: an app gives one position
    (returned under ``""``), a supervisor a map of agent to position.
    """
    if value is None:
        return None, None
    if role is Role.PROVIDER:
        return None, "data.recover is for apps and supervisors: a provider has nothing to recover"
    is_map = all(isinstance(item, dict) for item in value.values())
    if role is Role.SUPERVISOR:
        if not is_map:
            return None, "a supervisor's data.recover maps each agent to {epoch, offset}"
        return {agent: At(item["epoch"], item["offset"]) for agent, item in value.items()}, None
    if is_map:
        return None, "an app's data.recover is one position: {epoch, offset}"
    return {"": At(value["epoch"], value["offset"])}, None


def _reply_to(envelope: Any) -> str | None:
    """The frame's ``id`` if it has a usable one: errors echo it as ``replyTo``."""
    if isinstance(envelope, dict):
        value = envelope.get("id")
        if isinstance(value, str) and 0 < len(value) <= _ID_MAX:
            return value
    return None


def _error_type(data: bytes) -> str:
    """A provider error's ``errorType``, as a metrics label: one of the catalog's, else ``OTHER``.

    A provider may send any UPPER_SNAKE type; a label set it could grow without
    bound would cost the hub memory, so only declared types are counted by name.
    """
    try:
        error_type = orjson.loads(data)["data"]["errorType"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return "OTHER"
    return error_type if isinstance(error_type, str) and error_type in ErrorType.__members__ else "OTHER"
