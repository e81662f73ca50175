"""The broker over Redis: several hub nodes, one bus.

:class:`RedisBroker` keeps the :class:`~bridge.broker.Broker` contract across
processes with redis-py's asyncio client. Everything lives under one prefix
``P`` (``--redis-prefix``), so several deployments can share a Redis:

==========================  =======  ==================================================
name                        kind     holds
==========================  =======  ==================================================
``P:agent:{agent}``         channel  the agent's publications; a node subscribes only
                                     while it has clients of that agent
``P:node:{node_id}``        channel  requests for the providers that node holds
``P:provider:{agent}``      key      ``"{node_id} {connection_id}"``; expires unless
                                     the holder's heartbeat refreshes it
``P:retained:{agent}``      key      the agent's last ``SetAgentState`` frame;
                                     expires ``retained_ttl`` after its last write
==========================  =======  ==================================================

A message on a channel is a small JSON array header, a newline, then the
frame's bytes exactly as the node handed them over (a frame may contain
newlines; the header never does, so the first one splits them):

* publication: ``[type, reply_to, connection_id]`` + ``\\n`` + frame;
* request: ``[agent, request_id]`` + ``\\n`` + frame.

Writes: a publication or retained-state write from the node is queued and
the call returns at once; one writer task sends everything queued in one
non-transactional pipeline per round trip, in the order it was queued. Every
other command that publishes on an agent's channel (provider claims and
releases, dead-node cleanup) or carries a request first waits until the
queue has been sent, so what a node puts on the bus keeps the order in which
the node asked for it. A node that outruns Redis waits once the queue holds
``max_queued_writes`` writes or ``max_queued_bytes`` bytes (backpressure).

Failures:

* **Redis outage.** The node keeps serving what it can alone: publications
  are delivered to its own clients, requests reach a provider it holds, and
  retained state it wrote is replayed from memory; a queued batch whose
  pipeline fails is delivered the same way. ``healthy`` turns false
  (``/healthz`` says ``degraded``), a supervisor reconnects with capped
  exponential backoff, then resubscribes every followed agent, drops provider
  entries released meanwhile, and asks the node to re-claim its providers
  (:meth:`BrokerHandler.on_resync`), which also re-writes their retained state.
* **Node crash.** A provider entry lives ``provider_ttl`` seconds unless its
  node's heartbeat refreshes it. Before that, a request to a node that no
  longer listens on its channel (``PUBLISH`` reaches nobody) fails at once
  with ``PROVIDER_UNAVAILABLE`` and the stale entry is dropped and announced.

Settings come from the constructor; a setting left ``None`` is read from the
environment (``BRIDGE_REDIS_HEARTBEAT``, ``BRIDGE_REDIS_PROVIDER_TTL``,
``BRIDGE_REDIS_RETAINED_TTL``, ``BRIDGE_REDIS_RECONNECT_MAX``,
``BRIDGE_REDIS_TIMEOUT``, all in seconds), else its default (docs/scaling.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import uuid
from collections import deque
from typing import Any, Final, TypeAlias

import orjson
import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from bridge.brokers import Broker, BrokerHandler, ProviderLocation, Publication, PublicationType

log = logging.getLogger("bridge.redis")

#: What a lost, slow or misconfigured backend raises (TimeoutError is an OSError).
_BACKEND_ERRORS: Final = (RedisError, OSError)

DEFAULT_HEARTBEAT: Final = 2.0
DEFAULT_PROVIDER_TTL: Final = 6.0
DEFAULT_RETAINED_TTL: Final = 86400.0
DEFAULT_RECONNECT_MAX: Final = 5.0
DEFAULT_TIMEOUT: Final = 2.0
#: First reconnect delay; it doubles per failed attempt up to ``reconnect_max``.
RECONNECT_MIN: Final = 0.1
#: Backpressure: past this many queued writes, or bytes, a publishing call
#: waits until the queue has been sent (see :meth:`RedisBroker.publish`).
MAX_QUEUED_WRITES: Final = 4096
MAX_QUEUED_BYTES: Final = 8 * 1024 * 1024

#: One queued write: (is retained state, agent, payload). The payload is the
#: encoded publication, or the retained frame itself.
_Write: TypeAlias = tuple[bool, str, bytes]

# Make ARGV[1] ("{node_id} {connection_id}") the agent's provider and announce
# it on the agent's channel, in one step so no request can slip between the two.
# ARGV[3] == "1" takes over whoever holds it (a provider that just connected).
# Otherwise this is a refresh (heartbeat, resync): it only extends our own
# entry or re-creates a missing one, and answers the holder's value when
# another connection took over meanwhile. With KEYS[2], a resync also writes
# back the retained state (ARGV[6], TTL ARGV[7] ms, 0 = none) in the same step,
# so whoever hears the announcement finds the state with it.
# Returns 1 when it announced, 0 when it only extended, or the other holder.
_CLAIM: Final = """
local current = redis.call('GET', KEYS[1])
if ARGV[3] ~= '1' and current and current ~= ARGV[1] then
  return current
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if #KEYS > 1 then
  if ARGV[7] ~= '0' then
    redis.call('SET', KEYS[2], ARGV[6], 'PX', ARGV[7])
  else
    redis.call('SET', KEYS[2], ARGV[6])
  end
end
if ARGV[3] == '1' or not current then
  redis.call('PUBLISH', ARGV[4], ARGV[5])
  return 1
end
return 0
"""

# Compare-and-delete: forget the provider only if it is still ARGV[1], and
# announce its departure. An entry that is already gone (expired, or dropped
# as a ghost) is announced too, so apps never keep a stale "connected"; one
# that another connection holds is left alone (that one was announced).
_RELEASE: Final = """
local current = redis.call('GET', KEYS[1])
if current == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', ARGV[2], ARGV[3])
  return 1
end
if not current then
  redis.call('PUBLISH', ARGV[2], ARGV[3])
end
return 0
"""

# Hand a request to the node holding the agent's provider, in one round trip.
# Returns nil (no provider), {holder, -1} (this node holds it: deliver here)
# or {holder, n}: n nodes got it, 0 meaning the holder no longer listens.
_ROUTE: Final = """
local holder = redis.call('GET', KEYS[1])
if not holder then return false end
local node = string.match(holder, '^(%S+) ')
if not node then return false end
if node == ARGV[2] then return {holder, -1} end
return {holder, redis.call('PUBLISH', ARGV[1] .. node, ARGV[3])}
"""


def encode_publication(publication: Publication) -> bytes:
    """Header, newline, the frame untouched."""
    head = [publication.type.value, publication.reply_to, publication.connection_id]
    return orjson.dumps(head) + b"\n" + publication.data


def decode_publication(payload: bytes) -> Publication:
    head, _, data = payload.partition(b"\n")
    kind, reply_to, connection_id = orjson.loads(head)
    return Publication(PublicationType(kind), data, reply_to, connection_id)


def encode_request(agent: str, request_id: str, data: bytes) -> bytes:
    return orjson.dumps([agent, request_id]) + b"\n" + data


def decode_request(payload: bytes) -> tuple[str, str, bytes]:
    head, _, data = payload.partition(b"\n")
    agent, request_id = orjson.loads(head)
    return str(agent), str(request_id), data


def _location(holder: bytes | None) -> ProviderLocation | None:
    if not holder:
        return None
    node_id, _, connection_id = holder.decode().partition(" ")
    return ProviderLocation(node_id, connection_id) if connection_id else None


def _as_bytes(value: bytes | str | None) -> bytes | None:
    # Replies are bytes (no decode_responses); the union is redis-py's typing.
    return value.encode() if isinstance(value, str) else value


def _setting(value: float | None, env: str, default: float) -> float:
    if value is not None:
        return float(value)
    text = os.environ.get(env)
    if not text:
        return default
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{env} must be a number of seconds, not {text!r}") from None


class RedisBroker(Broker):
    """The :class:`Broker` contract over Redis pub/sub and keys (see the module docstring).

    ``url`` is any redis-py URL: ``redis://[[user]:password@]host[:port][/db]``,
    ``rediss://`` for TLS, ``unix://``. Nothing connects before :meth:`start`.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "connect-bridge",
        node_id: str | None = None,
        heartbeat: float | None = None,
        provider_ttl: float | None = None,
        retained_ttl: float | None = None,
        reconnect_max: float | None = None,
        timeout: float | None = None,
    ) -> None:
        self.node_id = node_id or uuid.uuid4().hex[:16]
        if " " in self.node_id:
            raise ValueError("a node id may not contain spaces (the registry splits on one)")
        self.prefix = prefix
        self.heartbeat = _setting(heartbeat, "BRIDGE_REDIS_HEARTBEAT", DEFAULT_HEARTBEAT)
        self.provider_ttl = _setting(provider_ttl, "BRIDGE_REDIS_PROVIDER_TTL", DEFAULT_PROVIDER_TTL)
        self.retained_ttl = _setting(retained_ttl, "BRIDGE_REDIS_RETAINED_TTL", DEFAULT_RETAINED_TTL)
        self.reconnect_max = _setting(reconnect_max, "BRIDGE_REDIS_RECONNECT_MAX", DEFAULT_RECONNECT_MAX)
        self.timeout = _setting(timeout, "BRIDGE_REDIS_TIMEOUT", DEFAULT_TIMEOUT)
        if self.heartbeat <= 0 or self.timeout <= 0:
            raise ValueError("the Redis heartbeat and timeout must be positive")
        if self.provider_ttl <= self.heartbeat:
            raise ValueError(
                f"provider_ttl ({self.provider_ttl:g} s) must exceed the heartbeat "
                f"({self.heartbeat:g} s), or live providers would expire between beats"
            )
        common: dict[str, Any] = {
            "socket_timeout": self.timeout,
            "socket_connect_timeout": self.timeout,
            "client_name": f"connect-bridge-{self.node_id}",
        }
        if not url.startswith("unix:"):  # a Unix socket takes no TCP options
            common["socket_keepalive"] = True
        #: Commands. One immediate retry heals a pooled connection that went
        #: stale while Redis was away; more would only delay the local fallback.
        self.redis: aioredis.Redis = aioredis.from_url(url, retry=Retry(NoBackoff(), 1), **common)
        # Subscriptions get their own client with no retry: redis-py would
        # otherwise reconnect and resubscribe silently, and the messages lost
        # in the gap would never be resynchronized.
        self._subscriber: aioredis.Redis = aioredis.from_url(url, retry=Retry(NoBackoff(), 0), **common)
        self._claim_script = self.redis.register_script(_CLAIM)
        self._release_script = self.redis.register_script(_RELEASE)
        self._route_script = self.redis.register_script(_ROUTE)
        self._agent_prefix = f"{prefix}:agent:".encode()
        self._node_channel = f"{prefix}:node:{self.node_id}".encode()

        self._handler: BrokerHandler | None = None
        self._closing = False
        self._healthy = False
        self._reported = False
        self._needs_resync = False
        self._broken = asyncio.Event()
        self._broken_reason = ""
        self._pubsub: PubSub | None = None
        #: One waiter per SUBSCRIBE sent, per channel, in order: Redis confirms in order.
        self._confirmations: dict[bytes, deque[asyncio.Future[None]]] = {}
        self._supervisor: asyncio.Task[None] | None = None
        #: Reads the subscription connection of the current epoch.
        self._reader: asyncio.Task[None] | None = None
        self._beater: asyncio.Task[None] | None = None

        #: Writes not yet taken by the writer, in call order.
        self._outbox: list[_Write] = []
        #: Payload bytes in ``_outbox`` (for the backpressure bound).
        self._outbox_bytes = 0
        #: Writes ever queued, and of those the ones the writer is done with
        #: (sent, or delivered locally after a failure): a drain waits for the
        #: second to reach the first as it was when the drain began.
        self._queued = 0
        self._written = 0
        #: Drains waiting, as (``_queued`` to reach, waiter), in call order.
        self._drains: deque[tuple[int, asyncio.Future[None]]] = deque()
        #: Set when something is queued (or at close) to wake the writer.
        self._wake = asyncio.Event()
        #: Sends the queued writes; runs from start() until close().
        self._writer: asyncio.Task[None] | None = None
        self.max_queued_writes: int = MAX_QUEUED_WRITES
        self.max_queued_bytes: int = MAX_QUEUED_BYTES

        #: Agents this node has clients of.
        self._followed: set[str] = set()
        #: Providers on this node, by agent: what the heartbeat keeps alive.
        self._held: dict[str, str] = {}
        #: Held agents whose claim never reached Redis (made while degraded).
        self._unsynced: set[str] = set()
        #: Releases made while degraded, to compare-and-delete once Redis is back.
        self._unreleased: dict[str, str] = {}
        #: Last retained frame of each held agent: served while degraded, re-written on resync.
        self._retained_local: dict[str, bytes] = {}

    # --- names ----------------------------------------------------------------------

    def agent_channel(self, agent: str) -> bytes:
        return self._agent_prefix + agent.encode()

    def node_channel(self, node_id: str) -> bytes:
        return f"{self.prefix}:node:{node_id}".encode()

    def provider_key(self, agent: str) -> str:
        return f"{self.prefix}:provider:{agent}"

    def retained_key(self, agent: str) -> str:
        return f"{self.prefix}:retained:{agent}"

    @property
    def healthy(self) -> bool:
        """Whether Redis is reachable and this node is subscribed to everything it follows."""
        return self._healthy

    @property
    def pending_writes(self) -> int:
        """Publications and retained writes queued or in flight to Redis."""
        return self._queued - self._written

    # --- lifecycle --------------------------------------------------------------------

    async def start(self, handler: BrokerHandler) -> None:
        """Connect and subscribe; if Redis is unreachable, start degraded and keep trying.

        Returns once the first attempt has succeeded or failed, so a node that
        starts with Redis up serves its first client already subscribed.
        """
        self._handler = handler
        first_attempt = asyncio.Event()
        self._writer = asyncio.create_task(self._write(), name="bridge-redis-writer")
        self._supervisor = asyncio.create_task(self._supervise(first_attempt), name="bridge-redis")
        self._beater = asyncio.create_task(self._beat(), name="bridge-redis-heartbeat")
        await first_attempt.wait()

    async def close(self) -> None:
        """Send what is queued and forget this node's providers in Redis (best effort), then disconnect."""
        # Queued writes first, with their own bound (the releases below must
        # follow them, and should not spend their time waiting for them).
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._flush_bound()):
                await self.flush()
        if self._healthy and self._held:
            with contextlib.suppress(*_BACKEND_ERRORS):
                async with asyncio.timeout(self.timeout):
                    for agent, connection_id in list(self._held.items()):
                        await self._release_in_redis(agent, connection_id)
        self._closing = True
        await self._stop_writer()
        tasks = [t for t in (self._beater, self._supervisor) if t is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            # Bounded: a loop whose cancellation a library swallowed still
            # stops at its next turn (see _stopping), but close never hangs.
            _, late = await asyncio.wait(tasks, timeout=self.heartbeat + self.timeout)
            if late:
                log.warning("Redis broker tasks still running at close: %s", late)
        self._beater = self._supervisor = None
        self._handler = None
        await self.redis.aclose()
        await self._subscriber.aclose()

    # --- following agents ----------------------------------------------------------------

    async def follow(self, agent: str) -> None:
        """Subscribe to the agent's channel and wait until Redis confirms it.

        Waiting matters: the node reads the retained state right after, and a
        publication made between the two must not be missed.
        """
        self._followed.add(agent)
        pubsub = self._pubsub
        if not self._healthy or pubsub is None:
            return  # the supervisor subscribes every followed agent when Redis is back
        try:
            waiters = await self._subscribe(pubsub, [self.agent_channel(agent)])
            async with asyncio.timeout(self.timeout):
                await asyncio.gather(*waiters)
        except _BACKEND_ERRORS as exc:
            self._mark_broken(f"subscribing to {agent}: {exc!r}")

    async def unfollow(self, agent: str) -> None:
        self._followed.discard(agent)
        pubsub = self._pubsub
        if not self._healthy or pubsub is None:
            return  # the next epoch resubscribes only what is followed then
        try:
            await pubsub.unsubscribe(self.agent_channel(agent))
        except _BACKEND_ERRORS as exc:
            self._mark_broken(f"unsubscribing from {agent}: {exc!r}")

    # --- publications and retained state ---------------------------------------------------

    async def publish(self, agent: str, publication: Publication) -> None:
        """Queue the publication for the writer; return without waiting for Redis.

        It comes back to this node through its own subscription. While Redis is
        away it goes to this node's clients directly, behind anything still
        queued (the writer hands that over locally too), so order holds.
        Waits only when the queue is full (backpressure).
        """
        if self._writer is not None and (self._healthy or self._queued != self._written):
            # Encoded now: the frame is copied into the payload, so the caller may reuse the object.
            payload = encode_publication(publication)
            if self._enqueue((False, agent, payload), len(payload)):
                await self.flush()
            return
        self._deliver_locally(agent, publication)

    async def set_retained(self, agent: str, data: bytes) -> None:
        """Queue the write (kept in memory too for a held agent); waits only when the queue is full."""
        if agent in self._held:
            self._retained_local[agent] = data
        if self._healthy and self._writer is not None and self._enqueue((True, agent, data), len(data)):
            await self.flush()

    def _enqueue(self, write: _Write, size: int) -> bool:
        """Queue one write for the writer; return whether the caller must now wait (backpressure).

        Past the bound, Redis (or the link to it) is slower than this node's
        clients: the caller (for a provider, the reading of its next frame)
        waits until the queue is sent, as every write did before writes were
        queued. A Redis that stops answering times out, which turns the broker
        degraded and frees the callers (their writes are delivered locally).
        """
        self._outbox.append(write)
        self._queued += 1
        self._outbox_bytes += size
        self._wake.set()
        return len(self._outbox) >= self.max_queued_writes or self._outbox_bytes >= self.max_queued_bytes

    async def get_retained(self, agent: str) -> bytes | None:
        if self._healthy:
            await self.flush()  # read this node's own writes
        if self._healthy:
            try:
                return _as_bytes(await self.redis.get(self.retained_key(agent)))
            except _BACKEND_ERRORS as exc:
                self._mark_broken(f"reading retained state: {exc!r}")
        return self._retained_local.get(agent)

    def _retained_px(self) -> int | None:
        return int(self.retained_ttl * 1000) if self.retained_ttl > 0 else None

    # --- the provider registry and requests -----------------------------------------------

    async def claim_provider(self, agent: str, connection_id: str) -> None:
        """Register ``connection_id`` and announce it.

        A new provider takes over whoever holds the agent. A provider this node
        already registered (the node re-claims after an outage) only refreshes
        its entry: if another connection took over meanwhile, ours is the stale
        one, and the node is told so as if that takeover had reached it.
        """
        # The announcement follows what this node published before it, here and on the bus.
        await self.flush()
        reclaim = self._held.get(agent) == connection_id  # the node's resync
        refresh = reclaim and agent not in self._unsynced
        self._held[agent] = connection_id
        self._unreleased.pop(agent, None)
        up = Publication(PublicationType.PROVIDER_UP, connection_id=connection_id)
        if self._healthy:
            keys = [self.provider_key(agent)]
            args = self._claim_args(agent, connection_id, up, force=not refresh)
            retained = self._retained_local.get(agent) if reclaim else None
            if retained is not None:
                # Written while Redis was away, or lost with it: ours is the latest.
                keys.append(self.retained_key(agent))
                args += [retained, self._retained_px() or 0]
            try:
                result = await self._claim_script(keys=keys, args=args)
            except _BACKEND_ERRORS as exc:
                self._mark_broken(f"claiming a provider: {exc!r}")
            else:
                self._unsynced.discard(agent)
                if isinstance(result, bytes):
                    self._replaced_elsewhere(agent, connection_id, result)
                return
        if not refresh:
            # Redis never heard of this claim: make it win when Redis is back.
            self._unsynced.add(agent)
        if not reclaim:  # a re-claim was announced here the first time
            self._deliver_locally(agent, up)

    async def release_provider(self, agent: str, connection_id: str) -> bool:
        await self.flush()  # the provider's last events go before its departure
        held = self._held.get(agent) == connection_id
        if held:
            del self._held[agent]
            self._unsynced.discard(agent)
            self._retained_local.pop(agent, None)
        if self._healthy:
            try:
                return await self._release_in_redis(agent, connection_id)
            except _BACKEND_ERRORS as exc:
                self._mark_broken(f"releasing a provider: {exc!r}")
        if held:
            self._unreleased[agent] = connection_id
            self._deliver_locally(
                agent, Publication(PublicationType.PROVIDER_DOWN, connection_id=connection_id)
            )
        return held

    async def provider(self, agent: str) -> ProviderLocation | None:
        if self._healthy:
            try:
                return _location(_as_bytes(await self.redis.get(self.provider_key(agent))))
            except _BACKEND_ERRORS as exc:
                self._mark_broken(f"looking up a provider: {exc!r}")
        connection_id = self._held.get(agent)
        return None if connection_id is None else ProviderLocation(self.node_id, connection_id)

    async def send_request(self, agent: str, request_id: str, data: bytes) -> str | None:
        # Nothing this node sends overtakes what it queued before: a request
        # leaves after the node's earlier publications. Free when nothing is
        # queued (a node serving only apps); otherwise about one round trip.
        await self.flush()
        if self._healthy:
            try:
                routed = await self._route_script(
                    keys=[self.provider_key(agent)],
                    args=[self.node_channel(""), self.node_id, encode_request(agent, request_id, data)],
                )
            except _BACKEND_ERRORS as exc:
                self._mark_broken(f"routing a request: {exc!r}")
            else:
                if routed is None:
                    return None
                holder, receivers = routed
                location = _location(holder)
                if location is None:
                    return None
                if receivers == -1:
                    self._on_request(agent, request_id, data)
                elif receivers == 0:
                    # The holder's node does not listen any more (it died, or lost
                    # Redis): fail now instead of waiting for a ghost, and tell everyone.
                    await self._drop_ghost(agent, location)
                    return None
                return location.connection_id
        connection_id = self._held.get(agent)
        if connection_id is None:
            return None
        self._on_request(agent, request_id, data)
        return connection_id

    def _claim_args(self, agent: str, connection_id: str, up: Publication, *, force: bool) -> list[Any]:
        return [
            f"{self.node_id} {connection_id}",
            int(self.provider_ttl * 1000),
            "1" if force else "0",
            self.agent_channel(agent),
            encode_publication(up),
        ]

    async def _release_in_redis(self, agent: str, connection_id: str, node_id: str | None = None) -> bool:
        await self.flush()  # PROVIDER_DOWN goes after this node's queued publications
        down = Publication(PublicationType.PROVIDER_DOWN, connection_id=connection_id)
        released = await self._release_script(
            keys=[self.provider_key(agent)],
            args=[
                f"{node_id or self.node_id} {connection_id}",
                self.agent_channel(agent),
                encode_publication(down),
            ],
        )
        return bool(released == 1)

    async def _drop_ghost(self, agent: str, location: ProviderLocation) -> None:
        log.info(
            "provider %s of agent %s is gone with its node %s; dropping its entry",
            location.connection_id, agent, location.node_id,
        )
        try:
            await self._release_in_redis(agent, location.connection_id, location.node_id)
        except _BACKEND_ERRORS as exc:
            self._mark_broken(f"dropping a dead node's provider: {exc!r}")

    def _replaced_elsewhere(self, agent: str, connection_id: str, holder: bytes) -> None:
        """Another connection holds the agent: drop ours, and let the node close it."""
        location = _location(holder)
        log.info("provider %s of agent %s was replaced by %s", connection_id, agent, location)
        if self._held.get(agent) == connection_id:
            del self._held[agent]
            self._retained_local.pop(agent, None)
        if location is not None:
            up = Publication(PublicationType.PROVIDER_UP, connection_id=location.connection_id)
            self._deliver_locally(agent, up)

    # --- delivery to the node ---------------------------------------------------------

    def _deliver_locally(self, agent: str, publication: Publication) -> None:
        if self._handler is not None and agent in self._followed:
            self._handler.on_publication(agent, publication)

    def _on_request(self, agent: str, request_id: str, data: bytes) -> None:
        if self._handler is not None:
            self._handler.on_request(agent, request_id, data)

    def _dispatch(self, message: dict[str, Any]) -> None:
        """One message from the subscription connection."""
        kind = message["type"]
        channel: bytes = message["channel"]
        if kind == "subscribe":
            waiters = self._confirmations.get(channel)
            if waiters:
                waiter = waiters.popleft()
                if not waiters:
                    del self._confirmations[channel]
                if not waiter.done():
                    waiter.set_result(None)
            return
        if kind != "message" or self._handler is None:
            return
        payload: bytes = message["data"]
        # A bad payload or a failing handler costs that message, never the reader.
        try:
            if channel == self._node_channel:
                agent, request_id, data = decode_request(payload)
                self._handler.on_request(agent, request_id, data)
            elif channel.startswith(self._agent_prefix):
                agent = channel[len(self._agent_prefix) :].decode()
                if agent in self._followed:
                    self._handler.on_publication(agent, decode_publication(payload))
        except Exception:
            log.exception("dropped a message on %r", channel)

    # --- the writer -------------------------------------------------------------------------

    async def flush(self) -> None:
        """Wait until every write queued so far is sent (or, Redis failing, delivered locally)."""
        if self._written >= self._queued:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._drains.append((self._queued, waiter))
        await waiter

    def _wake_drains(self) -> None:
        drains = self._drains
        while drains and drains[0][0] <= self._written:
            _, waiter = drains.popleft()
            if not waiter.done():
                waiter.set_result(None)

    async def _write(self) -> None:
        """Send the queued writes in order: everything queued in one pipeline per round trip.

        Ends at close once the queue is empty, or when cancelled. Its own
        loop does not use :meth:`_stopping`: it must keep sending while the
        broker closes.
        """
        task = asyncio.current_task()
        assert task is not None
        try:
            while task.cancelling() == 0:
                if not self._outbox:
                    if self._closing:
                        return
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                batch, self._outbox, self._outbox_bytes = self._outbox, [], 0
                try:
                    await self._send(batch)
                finally:
                    self._written += len(batch)
                    self._wake_drains()
        finally:
            # Cancelled at close: what is left never reaches Redis. This
            # node's clients still get it, and nobody waits for it in vain.
            leftover, self._outbox, self._outbox_bytes = self._outbox, [], 0
            if leftover:
                log.warning("%d queued Redis writes not sent at close; delivered locally", len(leftover))
                self._deliver_batch_locally(leftover)
            self._written = self._queued
            self._wake_drains()
            if self._writer is task:
                self._writer = None

    async def _send(self, batch: list[_Write]) -> None:
        """One round trip; if it fails, the broker degrades and this node delivers the batch itself."""
        if self._healthy:
            failed: list[_Write] = batch
            try:
                px = self._retained_px()
                async with self.redis.pipeline(transaction=False) as pipe:
                    for retain, agent, payload in batch:
                        if retain:
                            pipe.set(self.retained_key(agent), payload, px=px)
                        else:
                            pipe.publish(self._agent_prefix + agent.encode(), payload)
                    results = await pipe.execute(raise_on_error=False)
            except _BACKEND_ERRORS as exc:
                self._mark_broken(f"writing {len(batch)} queued commands: {exc!r}")
                log.warning("a batch of %d Redis writes failed (%r); delivering it locally", len(batch), exc)
            except Exception:  # a bug must not cost this node's clients their events
                log.exception("unexpected failure writing to Redis")
            else:
                # Only a command Redis refused (an error reply) missed the bus;
                # the rest of the batch went through and comes back subscribed.
                errors = [(w, r) for w, r in zip(batch, results, strict=True) if isinstance(r, Exception)]
                if not errors:
                    return
                self._mark_broken(f"Redis refused a queued write: {errors[0][1]!r}")
                failed = [write for write, _ in errors]
            batch = failed
        # Retained writes need nothing here: a held agent's state is in
        # _retained_local since set_retained, and the resync writes it back.
        self._deliver_batch_locally(batch)

    def _deliver_batch_locally(self, batch: list[_Write]) -> None:
        for retain, agent, payload in batch:
            if retain:
                continue
            try:
                self._deliver_locally(agent, decode_publication(payload))
            except Exception:
                log.exception("dropped a publication for %s", agent)

    def _flush_bound(self) -> float:
        # A batch takes at most one timed-out attempt and one timed-out retry,
        # after which the broker is degraded and the rest is delivered locally.
        return 2 * self.timeout + 1

    async def _stop_writer(self) -> None:
        """Let the writer send what is queued, within a bounded wait, then stop it."""
        writer = self._writer
        if writer is None:
            return
        self._wake.set()
        _, late = await asyncio.wait([writer], timeout=self._flush_bound())
        if late:
            log.warning("Redis writes still queued at close (%d): giving up on them", self.pending_writes)
            writer.cancel()
            # Bounded again: redis-py may swallow the cancellation (see _stopping);
            # the writer then ends at its next turn.
            _, late = await asyncio.wait([writer], timeout=self.timeout)
            if late:
                log.warning("the Redis writer is still running at close")
        if writer.done() and not writer.cancelled() and writer.exception() is not None:
            log.error("the Redis writer failed", exc_info=writer.exception())
        self._writer = None

    # --- health, reconnection, resync -------------------------------------------------------

    def _set_health(self, healthy: bool) -> None:
        if not healthy:
            self._needs_resync = True
        if self._reported and self._healthy == healthy:
            return
        self._healthy = healthy
        self._reported = True
        if self._handler is not None:
            self._handler.on_broker_health(healthy)

    def _mark_broken(self, reason: str) -> None:
        """A command failed: stop using Redis now, and let the supervisor reconnect."""
        if not self._healthy:
            return
        self._broken_reason = reason
        self._set_health(False)
        self._broken.set()

    def _stopping(self) -> bool:
        """Whether this broker's own loops should end.

        Cancellation alone is not enough: redis-py was seen (under CPU load)
        to swallow a ``CancelledError`` that hit a command in flight, leaving
        the task flagged ``cancelling()`` but running. Loops check this at
        every turn, so such a task still ends.
        """
        task = asyncio.current_task()
        return self._closing or (task is not None and task.cancelling() > 0)

    async def _supervise(self, first_attempt: asyncio.Event) -> None:
        failures = 0
        try:
            while not self._stopping():
                self._broken.clear()
                pubsub = self._subscriber.pubsub()
                self._pubsub = pubsub
                try:
                    reader = await self._connect(pubsub)
                except Exception as exc:  # whatever it was, the node must keep serving
                    await self._discard(pubsub)
                    self._set_health(False)
                    first_attempt.set()
                    if not isinstance(exc, _BACKEND_ERRORS):
                        log.exception("unexpected failure while connecting to Redis")
                    level = logging.WARNING if failures == 0 else logging.DEBUG
                    log.log(level, "Redis unreachable (%r); serving locally, retrying", exc)
                    await asyncio.sleep(self._backoff(failures))
                    failures += 1
                    continue
                if self._needs_resync:
                    log.warning("Redis is back after %d failed attempts: resynchronizing", failures)
                failures = 0
                resync, self._needs_resync = self._needs_resync, False
                self._set_health(True)
                first_attempt.set()
                try:
                    if resync:
                        await self._resync()
                    why = await self._until_broken(reader)
                except Exception as exc:  # a bug must not leave a "healthy" node unsubscribed
                    log.exception("unexpected failure in the Redis supervisor")
                    why = repr(exc)
                await self._discard(pubsub)
                self._set_health(False)
                log.warning("lost Redis (%s); serving locally, reconnecting", why)
        finally:
            if self._pubsub is not None:
                await self._discard(self._pubsub)
            self._healthy = False
            first_attempt.set()

    def _backoff(self, failures: int) -> float:
        # Jitter keeps a fleet of nodes from reconnecting in lockstep.
        delay: float = min(self.reconnect_max, RECONNECT_MIN * 2.0**failures)
        return delay * random.uniform(0.5, 1.0)

    async def _connect(self, pubsub: PubSub) -> asyncio.Task[None]:
        """Subscribe to this node's channel and every followed agent; return the reader."""
        await self.redis.ping()
        wanted = set(self._followed)
        waiters = await self._subscribe(
            pubsub, [self._node_channel, *(self.agent_channel(a) for a in wanted)]
        )
        reader = self._reader = asyncio.create_task(self._read(pubsub), name="bridge-redis-reader")
        try:
            while True:
                await self._confirmed(waiters, reader)
                # Agents followed or left while we waited (follow() does not
                # subscribe while degraded): settle before declaring health.
                added, gone = self._followed - wanted, wanted - self._followed
                if not added and not gone:
                    return reader
                wanted = set(self._followed)
                waiters = await self._subscribe(pubsub, [self.agent_channel(a) for a in added])
                if gone:
                    await pubsub.unsubscribe(*(self.agent_channel(a) for a in gone))
        except BaseException:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            self._reader = None
            raise

    async def _subscribe(self, pubsub: PubSub, channels: list[bytes]) -> list[asyncio.Future[None]]:
        loop = asyncio.get_running_loop()
        waiters: list[asyncio.Future[None]] = []
        for channel in channels:
            waiter: asyncio.Future[None] = loop.create_future()
            self._confirmations.setdefault(channel, deque()).append(waiter)
            waiters.append(waiter)
        if channels:
            await pubsub.subscribe(*channels)
        return waiters

    async def _confirmed(self, waiters: list[asyncio.Future[None]], reader: asyncio.Task[None]) -> None:
        if not waiters:
            return
        confirmed: asyncio.Future[Any] = asyncio.gather(*waiters)
        try:
            async with asyncio.timeout(self.timeout):
                await asyncio.wait([confirmed, reader], return_when=asyncio.FIRST_COMPLETED)
        except TimeoutError:
            raise RedisConnectionError("Redis did not confirm the subscriptions in time") from None
        finally:
            if not confirmed.done():
                confirmed.cancel()
        if not confirmed.done() or confirmed.cancelled():
            if reader.done() and not reader.cancelled() and reader.exception() is not None:
                raise reader.exception()  # type: ignore[misc]
            raise RedisConnectionError("the subscription connection stopped")

    async def _read(self, pubsub: PubSub) -> None:
        """Dispatch messages until the connection fails; ping it when idle."""
        loop = asyncio.get_running_loop()
        last_heard = loop.time()
        while not self._stopping():
            message = await pubsub.get_message(timeout=self.heartbeat)
            now = loop.time()
            if message is not None:
                last_heard = now
                self._dispatch(message)
            elif now - last_heard >= self.provider_ttl:
                raise RedisConnectionError("Redis stopped answering pings")
            elif now - last_heard >= self.heartbeat:
                # A silent connection may be half-open (no RST ever came): a
                # pong proves it alive, its absence ends the epoch above.
                await pubsub.ping()

    async def _until_broken(self, reader: asyncio.Task[None]) -> str:
        broken = asyncio.create_task(self._broken.wait())
        try:
            await asyncio.wait({reader, broken}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            broken.cancel()
        if reader.done():
            exc = None if reader.cancelled() else reader.exception()
            return repr(exc) if exc is not None else "the subscription reader stopped"
        return self._broken_reason

    async def _discard(self, pubsub: PubSub) -> None:
        """End an epoch: stop its reader, wake its waiters, close its connection."""
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)  # also retrieves its error
        # Wake follow() calls still waiting: the next epoch subscribes what they wanted.
        for waiters in self._confirmations.values():
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)
        self._confirmations.clear()
        if self._pubsub is pubsub:
            self._pubsub = None
        with contextlib.suppress(*_BACKEND_ERRORS):
            await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _resync(self) -> None:
        """Redis is back: undo releases it missed, then have the node re-claim its providers."""
        for agent, connection_id in list(self._unreleased.items()):
            if self._unreleased.get(agent) != connection_id:
                continue
            if agent not in self._held:  # a newer local provider's claim overwrites it anyway
                try:
                    await self._release_in_redis(agent, connection_id)
                except _BACKEND_ERRORS as exc:
                    self._mark_broken(f"resync: {exc!r}")
                    return
            self._unreleased.pop(agent, None)
        if self._handler is not None:
            self._handler.on_resync()

    async def _beat(self) -> None:
        """Every ``heartbeat``: refresh this node's providers, and look for dead nodes' ones."""
        while not self._stopping():
            await asyncio.sleep(self.heartbeat)
            if not self._healthy or self._stopping():
                continue
            try:
                await self._refresh_held()
                await self._sweep_ghosts()
            except _BACKEND_ERRORS as exc:
                self._mark_broken(f"heartbeat: {exc!r}")
            except Exception:
                log.exception("heartbeat failed")

    async def _refresh_held(self) -> None:
        """Extend our entries; notice takeovers we missed and re-create entries that were lost."""
        await self.flush()  # a re-created entry is announced after what is queued
        # Claims not yet in Redis are the resync's to make (they must win).
        held = [(a, c) for a, c in self._held.items() if a not in self._unsynced]
        if not held:
            await self.redis.ping()  # still notice an outage while holding nothing
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for agent, connection_id in held:
                up = Publication(PublicationType.PROVIDER_UP, connection_id=connection_id)
                await self._claim_script(
                    keys=[self.provider_key(agent)],
                    args=self._claim_args(agent, connection_id, up, force=False),
                    client=pipe,
                )
            results = await pipe.execute()
        for (agent, connection_id), result in zip(held, results, strict=True):
            if isinstance(result, bytes) and self._held.get(agent) == connection_id:
                self._replaced_elsewhere(agent, connection_id, result)

    async def _sweep_ghosts(self) -> None:
        """Drop the entries of followed agents whose holder node no longer listens.

        A SIGKILLed node announces nothing, and its entries would only expire
        silently: this tells the apps here within a heartbeat, and fails their
        requests in flight to it at once instead of at their timeout.
        """
        remote = [agent for agent in self._followed if agent not in self._held]
        if not remote:
            return
        holders = await self.redis.mget([self.provider_key(agent) for agent in remote])
        by_node: dict[str, list[tuple[str, ProviderLocation]]] = {}
        for agent, holder in zip(remote, holders, strict=True):
            location = _location(_as_bytes(holder))
            if location is not None and location.node_id != self.node_id:
                by_node.setdefault(location.node_id, []).append((agent, location))
        if not by_node:
            return
        listeners = await self.redis.pubsub_numsub(*(self.node_channel(n) for n in by_node))
        for node_id, (_, count) in zip(by_node, listeners, strict=True):
            if count == 0:
                for agent, location in by_node[node_id]:
                    await self._drop_ghost(agent, location)
