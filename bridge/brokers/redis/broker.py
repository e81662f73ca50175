"""The broker over Redis: several hub nodes, one bus.

:class:`RedisBroker` keeps the :class:`~bridge.brokers.base.Broker` contract
across processes. This module holds what this node knows and does (which
agents it follows, which providers it holds, how it degrades and recovers);
each Redis concern is a module of its own:

* :mod:`~bridge.brokers.redis.keys`: every key and channel name;
* :mod:`~bridge.brokers.redis.codec`: publications, requests and registry
  entries as bytes;
* :mod:`~bridge.brokers.redis.client`: the command and subscription clients;
* :mod:`~bridge.brokers.redis.subscriptions`: the subscription connection,
  its confirmations and its reader;
* :mod:`~bridge.brokers.redis.registry`: the provider registry (Lua scripts
  to claim, release and route; dead nodes);
* :mod:`~bridge.brokers.redis.retained`: retained frames by slot;
* :mod:`~bridge.brokers.redis.history`: positions and history (Redis streams);
* :mod:`bridge.brokers.write_queue` (not Redis-specific): the ordered write
  queue with backpressure and local fallback.

**Writes.** A publication or retained write is queued and the call returns
at once; the queue's writer sends everything queued in one non-transactional
pipeline per round trip, in call order. A positioned publication is one
``EVALSHA`` of the publish script, which assigns its position, keeps it in
the agent's history, applies its retained change and publishes it. Every other command that publishes
on an agent's channel (claims, releases, dead-node cleanup), routes a request
or reads retained frames first waits until the queue is sent, so what a node
puts on the bus keeps the order in which the node asked for it, and the node
reads its own writes. The queue holds at most ``writes.max_items`` writes or
``writes.max_bytes`` bytes before a publishing call waits (backpressure).

**Redis outage.** The node keeps serving what it can alone: publications are
delivered to its own handler (a queued batch whose pipeline fails too),
requests reach a provider it holds, and the retained frames of the agents
whose provider it holds are served from a local copy. A publication delivered
without Redis has no position and is in no history: the broker remembers its
agent and, once Redis is back and before it turns healthy, gives that agent
a new epoch, so no position from before recovers across what Redis never
saw. ``healthy`` turns false,
a supervisor reconnects with capped exponential backoff and jitter, resubscribes
every followed agent, drops the provider entries released meanwhile, turns
healthy, and asks the node to re-claim its providers
(:meth:`~bridge.brokers.base.BrokerHandler.on_resync`); a re-claim writes the
local copy of their retained frames back in the same step.

**Node crash.** A provider entry lives ``provider_ttl`` unless its node's
heartbeat refreshes it. Before that, a request to a node that no longer
listens (``PUBLISH`` reaches nobody) fails at once, and the heartbeat of every
node following the agent finds such entries: they are dropped and announced.

Settings come from :class:`~bridge.brokers.redis.settings.RedisSettings`; the
broker reads no environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from typing import Final, TypeAlias

import redis.asyncio as aioredis

from bridge.brokers.base import (
    MAX_KNOWN_AGENTS,
    UNCONFIRMED,
    Broker,
    BrokerHandler,
    HistoryRead,
    Position,
    ProviderLocation,
    Publication,
    PublicationType,
    RetainChange,
    RetainedFrame,
)
from bridge.brokers.redis.client import BACKEND_ERRORS, command_client, subscription_client
from bridge.brokers.redis.codec import decode_publication, decode_request, encode_head, encode_request
from bridge.brokers.redis.history import RedisHistory
from bridge.brokers.redis.keys import RedisKeys
from bridge.brokers.redis.registry import HERE, ProviderRegistry
from bridge.brokers.redis.retained import DROP, SET, RedisRetained
from bridge.brokers.redis.settings import DEFAULT_SETTINGS, RedisSettings
from bridge.brokers.redis.subscriptions import Subscriptions
from bridge.brokers.retained import RetainedCopy
from bridge.brokers.write_queue import WriteQueue

log = logging.getLogger("bridge.redis")

#: First reconnect delay; it doubles per failed attempt up to ``reconnect_max``.
RECONNECT_MIN: Final = 0.1
#: The queued-write operations: a publication (with its retained change, if
#: any), and a retained write made without publishing.
PUBLISH: Final = "publish"
RETAIN: Final = "retain"
#: Own publications remembered as delivered locally but maybe also on the bus (oldest forgotten first).
MAX_ECHOES: Final = 10_000
#: What a queued publication counts for in the queue's byte bound, besides its frame.
OVERHEAD: Final = 64
#: The node named in the release of an entry that expired (it matches no entry).
GONE: Final = "?"

#: One queued write: (operation, agent, publication, retain, slot, frame, seq).
#: A publication: (PUBLISH, agent, the publication, ``""`` / SET / DROP, its
#: slot, ``b""``, its number). A retained write: (RETAIN, agent, ``None``, SET
#: or DROP, slot, the frame or ``b""``, 0).
Write: TypeAlias = tuple[str, str, Publication | None, str, str, bytes, int]


class RedisBroker(Broker):
    """The :class:`Broker` contract over Redis pub/sub and keys (see the module docstring).

    ``url`` is any redis-py URL: ``redis://[[user]:password@]host[:port][/db]``,
    ``rediss://`` for TLS, ``unix://``. Nothing connects before :meth:`start`.
    """

    def __init__(self, url: str, *, settings: RedisSettings = DEFAULT_SETTINGS, node_id: str | None = None) -> None:
        self.node_id = node_id or uuid.uuid4().hex[:16]
        if " " in self.node_id:
            raise ValueError("a node id may not contain spaces (the registry splits on one)")
        self.settings = settings
        self.keys = RedisKeys(settings.prefix)
        self.redis: aioredis.Redis = command_client(url, settings, self.node_id)
        self._subscriber: aioredis.Redis = subscription_client(url, settings, self.node_id)
        self._retained = RedisRetained(self.redis, self.keys, settings.retained_ttl)
        self._history = RedisHistory(self.redis, self.keys, settings, self._retained.ttl)
        self._registry = ProviderRegistry(
            self.redis, self.keys, self.node_id, settings.provider_ttl, self._retained.ttl, self._history
        )
        self._node_channel = self.keys.node_channel(self.node_id)
        #: Publications and retained writes on their way to Redis.
        self.writes: WriteQueue[Write] = WriteQueue(self._send, self._fall_back, name="bridge-redis-writer")

        self._handler: BrokerHandler | None = None
        self._closing = False
        self._healthy = False
        self._reported = False
        self._needs_resync = False
        self._broken = asyncio.Event()
        self._broken_reason = ""
        #: The subscription connection of the current epoch.
        self._subscriptions: Subscriptions | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._beater: asyncio.Task[None] | None = None

        #: Agents this node follows; whether it follows every agent (a supervisor of all is here).
        self._followed: set[str] = set()
        self._all = False
        #: Providers on this node, by agent: what the heartbeat keeps alive.
        self._held: dict[str, str] = {}
        #: Held agents whose claim never reached Redis (made while degraded).
        self._unsynced: set[str] = set()
        #: Releases made while degraded, to compare-and-delete once Redis is back.
        self._unreleased: dict[str, str] = {}
        #: Retained frames of held agents: served while degraded, written back on re-claim.
        self._copy = RetainedCopy()
        #: Providers on other nodes this node heard arrive, by agent (the heartbeat checks
        #: they still exist: a dead node's entry may expire without a word).
        self._remote: dict[str, str] = {}

        #: This node's publications, numbered: what lets it know its own on the bus.
        self._seq = 0
        #: Numbers of the publications in the batch being sent, and those of them
        #: that came back on the bus meanwhile (the reply may come later than they do).
        self._in_flight: set[int] = set()
        self._arrived: set[int] = set()
        #: Publications of a batch whose reply never came, delivered here by the
        #: fallback: Redis may still carry them, and this node must not deliver them twice.
        self._echoes: dict[int, None] = {}

        #: Agents with a positioned publication delivered here without Redis (none
        #: of its history): each gets a new epoch when Redis is back (see _rotate).
        self._unpositioned: set[str] = set()
        #: The last position heard per agent (most recent last): what position()
        #: answers while Redis is away.
        self._tops: dict[str, Position] = {}
        #: The epoch position() names for an agent this node heard nothing of while
        #: Redis is away: no stream has it, so no position in it ever recovers.
        self._nowhere = self._history.candidate()

    @property
    def healthy(self) -> bool:
        """Whether Redis is reachable and this node is subscribed to everything it follows."""
        return self._healthy

    @property
    def pending_writes(self) -> int:
        """Publications and retained writes queued or in flight to Redis."""
        return self.writes.pending

    # --- lifecycle --------------------------------------------------------------------

    async def start(self, handler: BrokerHandler) -> None:
        self._handler = handler
        first_attempt = asyncio.Event()
        self.writes.start()
        self._supervisor = asyncio.create_task(self._supervise(first_attempt), name="bridge-redis")
        self._beater = asyncio.create_task(self._beat(), name="bridge-redis-heartbeat")
        await first_attempt.wait()

    async def close(self) -> None:
        # Queued writes first, with their own bound (the releases below must
        # follow them, and should not spend their time waiting for them).
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._flush_bound()):
                await self.flush()
        if self._healthy and self._held:
            with contextlib.suppress(*BACKEND_ERRORS):
                async with asyncio.timeout(self.settings.timeout):
                    for agent, connection_id in list(self._held.items()):
                        await self._registry.release(agent, connection_id)
        self._closing = True
        await self.writes.stop(self._flush_bound(), self.settings.timeout)
        tasks = [t for t in (self._beater, self._supervisor) if t is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            # Bounded: a loop whose cancellation a library swallowed still
            # stops at its next turn (see _stopping), but close never hangs.
            _, late = await asyncio.wait(tasks, timeout=self.settings.heartbeat + self.settings.timeout)
            if late:
                log.warning("Redis broker tasks still running at close: %s", late)
        self._beater = self._supervisor = None
        self._handler = None
        await self.redis.aclose()
        await self._subscriber.aclose()

    async def flush(self) -> None:
        await self.writes.flush()

    def _flush_bound(self) -> float:
        # A batch takes at most one timed-out attempt and one timed-out retry,
        # after which the broker is degraded and the rest is delivered locally.
        return 2 * self.settings.timeout + 1

    # --- following agents ----------------------------------------------------------------

    async def follow(self, agent: str) -> None:
        self._followed.add(agent)
        subscriptions = self._subscriptions
        if not self._healthy or subscriptions is None:
            return  # the supervisor subscribes every followed agent before turning healthy
        try:
            await subscriptions.subscribe([self.keys.agent_channel(agent)])
        except BACKEND_ERRORS as exc:
            self._mark_broken(f"subscribing to {agent}: {exc!r}")

    async def unfollow(self, agent: str) -> None:
        self._followed.discard(agent)
        subscriptions = self._subscriptions
        if not self._healthy or subscriptions is None:
            return  # the next epoch subscribes only what is followed then
        try:
            await subscriptions.unsubscribe([self.keys.agent_channel(agent)])
        except BACKEND_ERRORS as exc:
            self._mark_broken(f"unsubscribing from {agent}: {exc!r}")

    async def follow_all(self) -> None:
        self._all = True
        subscriptions = self._subscriptions
        if not self._healthy or subscriptions is None:
            return  # the supervisor subscribes the pattern before turning healthy
        try:
            await subscriptions.follow_pattern(self.keys.every_agent_pattern())
        except BACKEND_ERRORS as exc:
            self._mark_broken(f"subscribing to every agent: {exc!r}")

    async def unfollow_all(self) -> None:
        self._all = False
        subscriptions = self._subscriptions
        if not self._healthy or subscriptions is None:
            return
        try:
            await subscriptions.unfollow_pattern()
        except BACKEND_ERRORS as exc:
            self._mark_broken(f"unsubscribing from every agent: {exc!r}")

    async def known_agents(self) -> list[str]:
        known: dict[str, None] = dict.fromkeys(self._held)
        if self._healthy:
            try:
                for pattern, key_of in (
                    (self.keys.provider_pattern(), self.keys.provider),
                    (self.keys.retained_pattern(), self.keys.retained),
                ):
                    start = len(key_of(""))
                    async for key in self.redis.scan_iter(match=pattern, count=1000):
                        known[(key.decode() if isinstance(key, bytes) else key)[start:]] = None
                        if len(known) >= MAX_KNOWN_AGENTS:
                            return list(known)
            except BACKEND_ERRORS as exc:
                self._mark_broken(f"listing the agents: {exc!r}")
        return list(known)[:MAX_KNOWN_AGENTS]

    # --- publications and retained frames ---------------------------------------------------

    async def publish(self, agent: str, publication: Publication, retain: RetainChange | None = None) -> None:
        if retain is not None:
            self._copy_retain(agent, publication.data, retain)
        # Queued while something is: behind it, even when degraded (the writer
        # then hands it all to this node's handler, in order).
        if self.writes.running and (self._healthy or self.writes.pending):
            self._seq += 1
            op, slot = ("", "") if retain is None else (SET if retain.keep else DROP, retain.slot)
            await self._put((PUBLISH, agent, publication, op, slot, b"", self._seq), len(publication.data) + OVERHEAD)
            return
        self._deliver_unpositioned(agent, publication)

    def _copy_retain(self, agent: str, data: bytes, retain: RetainChange) -> None:
        """Keep the local copy of a held agent's frames in step (what is served and written back in an outage)."""
        if retain.keep:
            if agent in self._held:
                self._copy.set(agent, retain.slot, data)
        else:
            queued = self._healthy and self.writes.running
            if agent in self._held or not queued:
                # Not queued: Redis is away, so the drop is owed; the provider's claim
                # (made next, when a joining provider resets its calls) writes it back.
                self._copy.drop(agent, retain.slot, queued=queued)

    async def set_retained(self, agent: str, slot: str, data: bytes) -> None:
        if agent in self._held:
            self._copy.set(agent, slot, data)
        # While degraded nothing is queued: the local copy has it, and the re-claim writes it back.
        if self._healthy and self.writes.running:
            await self._put((RETAIN, agent, None, SET, slot, data, 0), len(slot) + len(data))

    async def drop_retained(self, agent: str, slot: str) -> None:
        queued = self._healthy and self.writes.running
        if agent in self._held or not queued:
            # Not queued: Redis is away, so the drop is owed; the provider's claim
            # (made next, when a joining provider resets its calls) writes it back.
            self._copy.drop(agent, slot, queued=queued)
        if queued:
            await self._put((RETAIN, agent, None, DROP, slot, b"", 0), len(slot))

    async def _put(self, write: Write, size: int) -> None:
        if self.writes.put(write, size):  # full: wait until it is sent (backpressure)
            await self.writes.flush()

    async def get_retained(self, agent: str) -> list[RetainedFrame]:
        if self._healthy:
            await self.writes.flush()  # read this node's own writes
        if self._healthy:
            try:
                return await self._retained.read(agent)
            except BACKEND_ERRORS as exc:
                self._mark_broken(f"reading retained frames: {exc!r}")
        # Served alone: no position (this node cannot vouch for any while Redis is away).
        return [RetainedFrame(frame, None) for frame in self._copy.frames(agent)]

    # --- positions and history ----------------------------------------------------------

    async def history(self, agent: str, after: Position) -> HistoryRead:
        if self._healthy:
            await self.writes.flush()  # read this node's own writes
        if self._healthy:
            try:
                return await self._history.read(agent, after)
            except BACKEND_ERRORS as exc:
                self._mark_broken(f"reading the history: {exc!r}")
        return HistoryRead(False, self._last_known(agent), [])

    async def position(self, agent: str) -> Position:
        if self._healthy:
            await self.writes.flush()
        if self._healthy:
            try:
                return await self._history.position(agent)
            except BACKEND_ERRORS as exc:
                self._mark_broken(f"reading a position: {exc!r}")
        return self._last_known(agent)

    def _last_known(self, agent: str) -> Position:
        """The last position this node heard for the agent, or offset 0 of an epoch no stream has."""
        return self._tops.get(agent) or Position(self._nowhere, 0)

    def _heard(self, agent: str, position: Position) -> None:
        tops = self._tops
        tops.pop(agent, None)  # most recent last: the oldest is forgotten first
        tops[agent] = position
        if len(tops) > MAX_KNOWN_AGENTS:
            del tops[next(iter(tops))]

    async def _rotate(self) -> None:
        """Give a new epoch to every agent published here without Redis (Redis is back).

        Their streams have a hole Redis never saw (what this node delivered
        alone), so no position from before may recover across it. Repeated
        until none is left: a publication the writer hands to the fallback
        meanwhile adds its agent again.
        """
        while self._unpositioned:
            agents, self._unpositioned = self._unpositioned, set()
            try:
                await self._history.rotate(agents)
            except BaseException:
                self._unpositioned |= agents
                raise
            log.info("new epoch for %d agents published without Redis", len(agents))

    # --- the provider registry and requests -----------------------------------------------

    async def claim_provider(self, agent: str, connection_id: str) -> None:
        # The announcement follows what this node published before it, here and on the bus.
        await self.writes.flush()
        reclaim = self._held.get(agent) == connection_id  # the node's resync
        refresh = reclaim and agent not in self._unsynced
        self._held[agent] = connection_id
        self._unreleased.pop(agent, None)
        if self._healthy:
            # A re-claim writes back what was set while Redis was away, or lost with it.
            write_back = self._copy.write_back(agent) if reclaim else []
            try:
                holder = await self._registry.claim(agent, connection_id, force=not refresh, write_back=write_back)
            except BACKEND_ERRORS as exc:
                self._mark_broken(f"claiming a provider: {exc!r}")
            else:
                self._unsynced.discard(agent)
                if holder is not None:
                    self._replaced_elsewhere(agent, connection_id, holder)
                elif write_back:
                    self._copy.written_back(agent)
                return
        if not refresh:
            # Redis never heard of this claim: make it win when Redis is back.
            self._unsynced.add(agent)
        if not reclaim:  # a re-claim was announced here the first time
            self._deliver_unpositioned(agent, Publication(PublicationType.PROVIDER_UP, connection_id=connection_id))

    async def release_provider(self, agent: str, connection_id: str) -> bool:
        await self.writes.flush()  # the provider's last events go before its departure
        held = self._held.get(agent) == connection_id
        if held:
            del self._held[agent]
            self._unsynced.discard(agent)
            self._copy.forget(agent)
        if self._healthy:
            try:
                return await self._registry.release(agent, connection_id)
            except BACKEND_ERRORS as exc:
                self._mark_broken(f"releasing a provider: {exc!r}")
        if held:
            self._unreleased[agent] = connection_id
            self._deliver_unpositioned(agent, Publication(PublicationType.PROVIDER_DOWN, connection_id=connection_id))
        return held

    async def provider(self, agent: str) -> ProviderLocation | None:
        if self._healthy:
            try:
                location = await self._registry.lookup(agent)
                if location is not None and location.node_id != self.node_id:
                    self._watch_remote(agent, location.connection_id)  # what a joiner is told
                return location
            except BACKEND_ERRORS as exc:
                self._mark_broken(f"looking up a provider: {exc!r}")
        connection_id = self._held.get(agent)
        return None if connection_id is None else ProviderLocation(self.node_id, connection_id)

    async def send_request(self, agent: str, request_id: str, data: bytes) -> str | None:
        # Nothing this node sends overtakes what it queued before: a request
        # leaves after the node's earlier publications. Free when nothing is
        # queued (a node serving only apps); otherwise about one round trip.
        await self.writes.flush()
        unsure = False
        if self._healthy:
            try:
                routed = await self._registry.route(agent, encode_request(agent, request_id, data))
            except BACKEND_ERRORS as exc:
                self._mark_broken(f"routing a request: {exc!r}")
                # Redis may have routed it all the same (a reply that came late).
                unsure = True
            else:
                if routed is None:
                    return None
                location, receivers = routed
                if receivers == HERE:
                    self._on_request(agent, request_id, data)
                elif receivers == 0:
                    # The holder's node does not listen any more (it died, or lost
                    # Redis): fail now instead of waiting for a ghost, and tell everyone.
                    await self._drop_ghost(agent, location)
                    return None
                return location.connection_id
        connection_id = self._held.get(agent)
        if connection_id is None:
            return UNCONFIRMED if unsure else None
        # Ours: handed over here (the node drops a second delivery of the same request).
        self._on_request(agent, request_id, data)
        return connection_id

    async def _drop_ghost(self, agent: str, location: ProviderLocation) -> None:
        log.info(
            "provider %s of agent %s is gone with its node %s; dropping its entry",
            location.connection_id, agent, location.node_id,
        )
        try:
            await self.writes.flush()  # PROVIDER_DOWN goes after this node's queued publications
            await self._registry.release(agent, location.connection_id, location.node_id)
        except BACKEND_ERRORS as exc:
            self._mark_broken(f"dropping a dead node's provider: {exc!r}")

    def _replaced_elsewhere(self, agent: str, connection_id: str, holder: ProviderLocation) -> None:
        """Another connection holds the agent: drop ours, and let the node close it."""
        log.info("provider %s of agent %s was replaced by %s", connection_id, agent, holder)
        if self._held.get(agent) == connection_id:
            del self._held[agent]
            self._copy.forget(agent)
        self._deliver_locally(agent, Publication(PublicationType.PROVIDER_UP, connection_id=holder.connection_id))

    # --- delivery to the node ---------------------------------------------------------

    def _deliver_locally(self, agent: str, publication: Publication) -> None:
        if self._handler is not None and (self._all or agent in self._followed):
            self._handler.on_publication(agent, publication)

    def _deliver_unpositioned(self, agent: str, publication: Publication) -> None:
        """Deliver here what Redis never positioned (an outage); its agent's epoch must change."""
        publication.position = None
        if publication.type is not PublicationType.ERROR:
            self._unpositioned.add(agent)
        self._deliver_locally(agent, publication)

    def _on_request(self, agent: str, request_id: str, data: bytes) -> None:
        if self._handler is not None:
            self._handler.on_request(agent, request_id, data)

    def _on_message(self, channel: bytes, payload: bytes, via_pattern: bool) -> None:
        """One message from the subscription connection."""
        handler = self._handler
        if handler is None:
            return
        if channel == self._node_channel:
            if not via_pattern:
                handler.on_request(*decode_request(payload))
            return
        agent = self.keys.agent_of(channel)
        subscriptions = self._subscriptions
        if subscriptions is not None and subscriptions.patterned:
            wanted = via_pattern  # every agent's, once: the pattern's copy
        else:
            wanted = not via_pattern and agent in self._followed  # not one unfollowed meanwhile
        if agent is not None and wanted:
            publication, node_id, seq = decode_publication(payload)
            if publication.position is not None:
                self._heard(agent, publication.position)
            if publication.type is not PublicationType.EVENT:  # (events, the bulk, say nothing of providers)
                self._note_provider(agent, publication)
            if seq and node_id == self.node_id:
                if seq in self._in_flight:
                    self._arrived.add(seq)  # on the bus: the fallback must not deliver it again
                elif self._echoes.pop(seq, 0) is None:
                    return  # delivered here already, when its batch's reply did not come
            handler.on_publication(agent, publication)

    def _note_provider(self, agent: str, publication: Publication) -> None:
        """Keep :attr:`_remote` in step with the arrivals and departures the bus announces."""
        connection_id = publication.connection_id
        if publication.type is PublicationType.PROVIDER_UP and connection_id is not None:
            self._watch_remote(agent, connection_id)
        elif publication.type is PublicationType.PROVIDER_DOWN and self._remote.get(agent) == connection_id:
            del self._remote[agent]

    def _watch_remote(self, agent: str, connection_id: str) -> None:
        """The agent's provider is ``connection_id``: watch it at each heartbeat unless this node holds it."""
        self._remote.pop(agent, None)  # most recent last: the oldest is forgotten first
        if self._held.get(agent) == connection_id:
            return
        self._remote[agent] = connection_id
        if len(self._remote) > MAX_KNOWN_AGENTS:
            del self._remote[next(iter(self._remote))]

    # --- the write queue's two ends ------------------------------------------------------------

    async def _send(self, batch: list[Write]) -> list[Write]:
        """One round trip; return what did not reach Redis (the queue hands it to _fall_back)."""
        if not self._healthy:
            return batch
        self._in_flight = {write[6] for write in batch if write[0] == PUBLISH}
        self._arrived = set()
        node_id, history, keys = self.node_id, self._history, self.keys
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for _, agent, publication, retain, slot, frame, seq in batch:
                    if publication is None:
                        self._retained.queue(pipe, agent, retain, slot, frame)
                    elif publication.type is PublicationType.ERROR:  # never positioned, never retained
                        head = encode_head(publication, node_id, seq)
                        pipe.publish(keys.agent_channel(agent), head + b"]\n" + publication.data)
                    else:
                        head = encode_head(publication, node_id, seq)
                        history.queue_publish(pipe, agent, head, publication.data, retain, slot)
                results = await pipe.execute(raise_on_error=False)
        except BACKEND_ERRORS as exc:
            self._mark_broken(f"writing {len(batch)} queued commands: {exc!r}")
            log.warning("a batch of %d Redis writes failed (%r); delivering it locally", len(batch), exc)
            return self._unconfirmed(batch)
        finally:
            self._in_flight = set()
        # Only a command Redis refused (an error reply) missed the bus; the
        # rest of the batch went through and comes back subscribed.
        failed = [write for write, result in zip(batch, results, strict=True) if isinstance(result, Exception)]
        if failed:
            first = next(result for result in results if isinstance(result, Exception))
            self._mark_broken(f"Redis refused {len(failed)} queued writes: {first!r}")
        return failed

    def _unconfirmed(self, batch: list[Write]) -> list[Write]:
        """A batch whose reply never came: what the fallback must still deliver here.

        Redis may have carried any of it (a reply that comes late, not a lost
        command). Publications already back on the bus were delivered; the
        others are delivered by the fallback and remembered, so that if Redis
        carries them after all this node passes them on once only.
        """
        arrived = self._arrived
        out: list[Write] = []
        for write in batch:
            seq = write[6]
            if write[0] == PUBLISH:
                if seq in arrived:
                    continue
                self._echoes[seq] = None
                if len(self._echoes) > MAX_ECHOES:
                    del self._echoes[next(iter(self._echoes))]
            out.append(write)
        return out

    def _fall_back(self, writes: list[Write]) -> None:
        """Writes that missed Redis: publications to this node's handler, in order."""
        for _, agent, publication, retain, slot, _, _ in writes:
            if publication is not None:
                try:
                    self._deliver_unpositioned(agent, publication)
                except Exception:
                    log.exception("dropped a publication for %s", agent)
            if retain == DROP and agent in self._held:
                # A set needs nothing (the local copy has it since it was made);
                # a drop must reach Redis with the write-back.
                self._copy.drop_failed(agent, slot)

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
                try:
                    reader = await self._connect()
                except Exception as exc:  # whatever it was, the node must keep serving
                    await self._discard()
                    self._set_health(False)
                    first_attempt.set()
                    if not isinstance(exc, BACKEND_ERRORS):
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
                await self._discard()
                self._set_health(False)
                log.warning("lost Redis (%s); serving locally, reconnecting", why)
        finally:
            await self._discard()
            self._healthy = False
            first_attempt.set()

    def _backoff(self, failures: int) -> float:
        # Jitter keeps a fleet of nodes from reconnecting in lockstep.
        delay: float = min(self.settings.reconnect_max, RECONNECT_MIN * 2.0**failures)
        return delay * random.uniform(0.5, 1.0)

    async def _connect(self) -> asyncio.Task[None]:
        """Start an epoch: subscribe this node's channel and every followed agent; return the reader."""
        await self.redis.ping()
        await self._retained.load()
        await self._history.load()
        subscriptions = self._subscriptions = Subscriptions(
            self._subscriber,
            self._on_message,
            timeout=self.settings.timeout,
            heartbeat=self.settings.heartbeat,
            silence=self.settings.provider_ttl,
            stopping=self._stopping,
        )
        wanted = set(self._followed)
        await subscriptions.open([self._node_channel, *map(self.keys.agent_channel, wanted)])
        # Agents followed or left while we waited (follow() does not subscribe
        # while degraded): settle before declaring health.
        while True:
            added, gone = self._followed - wanted, wanted - self._followed
            if not added and not gone:
                break
            wanted = set(self._followed)
            await subscriptions.unsubscribe(map(self.keys.agent_channel, gone))
            await subscriptions.subscribe(map(self.keys.agent_channel, added))
        if self._all:  # a supervisor of every agent is here (follow_all does not subscribe while degraded)
            await subscriptions.follow_pattern(self.keys.every_agent_pattern())
        # Last, and the caller turns healthy with no await after it: no
        # publication delivered without Redis escapes its agent's new epoch.
        await self._rotate()
        assert subscriptions.reader is not None
        return subscriptions.reader

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

    async def _discard(self) -> None:
        """End the current epoch (its follow() callers return; the next epoch subscribes what they wanted)."""
        subscriptions, self._subscriptions = self._subscriptions, None
        if subscriptions is not None:
            await subscriptions.close()

    async def _resync(self) -> None:
        """Redis is back: undo releases it missed, then have the node re-claim its providers."""
        for agent, connection_id in list(self._unreleased.items()):
            if self._unreleased.get(agent) != connection_id:
                continue
            if agent not in self._held:  # a newer local provider's claim overwrites it anyway
                try:
                    await self.writes.flush()
                    await self._registry.release(agent, connection_id)
                except BACKEND_ERRORS as exc:
                    self._mark_broken(f"resync: {exc!r}")
                    return
            self._unreleased.pop(agent, None)
        if self._handler is not None:
            self._handler.on_resync()

    async def _beat(self) -> None:
        """Every ``heartbeat``: refresh this node's providers, and look for dead nodes' ones."""
        while not self._stopping():
            await asyncio.sleep(self.settings.heartbeat)
            if not self._healthy or self._stopping():
                continue
            try:
                await self._refresh_held()
                await self._sweep_ghosts()
            except BACKEND_ERRORS as exc:
                self._mark_broken(f"heartbeat: {exc!r}")
            except Exception:
                log.exception("heartbeat failed")

    async def _refresh_held(self) -> None:
        """Extend our entries; notice takeovers we missed and re-create entries that were lost."""
        await self.writes.flush()  # a re-created entry is announced after what is queued
        # Claims not yet in Redis are the resync's to make (they must win).
        held = [(a, c) for a, c in self._held.items() if a not in self._unsynced]
        if not held:
            await self.redis.ping()  # still notice an outage while holding nothing
            return
        for agent, connection_id, holder in await self._registry.refresh(held):
            if self._held.get(agent) == connection_id:
                self._replaced_elsewhere(agent, connection_id, holder)

    async def _sweep_ghosts(self) -> None:
        """Drop the entries of followed agents whose holder node no longer listens.

        A SIGKILLed node announces nothing, and its entries would only expire
        silently: this tells the apps here within a heartbeat, and fails their
        requests in flight to it at once instead of at their timeout.
        """
        remote = [agent for agent in {*self._followed, *self._remote} if agent not in self._held]
        for agent, location in await self._registry.ghosts(remote):
            await self._drop_ghost(agent, location)
        # An entry that expired with its node announced nothing: announce it
        # (positioned and in the history; once, whichever node sees it first).
        vacant = await self._registry.vacant([agent for agent in self._remote if agent not in self._held])
        if vacant:
            await self.writes.flush()
        for agent in vacant:
            connection_id = self._remote.pop(agent, None)
            if connection_id is not None:
                log.info("provider %s of agent %s is gone (its entry expired)", connection_id, agent)
                await self._registry.release(agent, connection_id, GONE)
