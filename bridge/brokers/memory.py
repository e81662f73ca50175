"""The in-memory broker: one hub process, nothing shared, nothing that can fail.

It keeps the :class:`~bridge.brokers.base.Broker` contract trivially: every
call takes effect before it returns (nothing is queued, ``flush`` has nothing
to wait for), publications are delivered synchronously in call order, and
it is always healthy. Retained frames live until the node has no client of
the agent left (:meth:`MemoryBroker.unfollow`).

Positions and history (:mod:`bridge.brokers.streams`) outlive that: an
agent nobody follows keeps its stream for ``history_ttl`` seconds, so the
app that was its only client can reconnect and recover. Streams are kept
for at most :data:`~bridge.brokers.base.MAX_KNOWN_AGENTS` agents (the least
recently written dropped first); every epoch is random, so a restarted
process never recovers a position given by the one before.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from itertools import islice

from bridge.brokers.base import (
    DEFAULT_HISTORY_SIZE,
    DEFAULT_HISTORY_TTL,
    MAX_KNOWN_AGENTS,
    POSITIONED,
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
from bridge.brokers.retained import RetainedFrames
from bridge.brokers.streams import DEFAULT_MAX_BYTES, AgentStreams


class MemoryBroker(Broker):
    """Everything in this process: one node, no backend that can fail.

    ``history_size`` (0 or more; 0 disables recovery) and ``history_ttl``
    (seconds, positive) bound each agent's history, whichever is smaller;
    ``history_max_bytes`` bounds the frames kept in all of them together;
    ``clock`` (monotonic seconds) is there for tests.
    """

    def __init__(
        self,
        node_id: str = "local",
        *,
        history_size: int = DEFAULT_HISTORY_SIZE,
        history_ttl: float = DEFAULT_HISTORY_TTL,
        history_max_bytes: int = DEFAULT_MAX_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.node_id = node_id
        self._handler: BrokerHandler | None = None
        self._followed: set[str] = set()
        #: A supervisor of every agent is here: every agent is followed.
        self._all = False
        #: A slot set by a publication keeps the publication itself (its data and position):
        #: the frozen RetainedFrame is made when the slots are read, at a join, not per event.
        self._retained: RetainedFrames[RetainedFrame | Publication] = RetainedFrames()
        self._providers: dict[str, str] = {}
        self._streams = AgentStreams(
            history_size, history_ttl, limit=MAX_KNOWN_AGENTS, max_bytes=history_max_bytes, clock=clock
        )
        self._ttl = history_ttl
        self._clock = clock
        #: Agents nobody here follows and no provider holds -> when that began (oldest first).
        self._orphans: dict[str, float] = {}

    async def start(self, handler: BrokerHandler) -> None:
        self._handler = handler

    async def close(self) -> None:
        self._handler = None

    async def follow(self, agent: str) -> None:
        self._followed.add(agent)
        self._orphans.pop(agent, None)

    async def unfollow(self, agent: str) -> None:
        self._followed.discard(agent)
        # Nobody of this agent is left anywhere: its retained state goes too,
        # or a hub serving many short-lived agents would grow without bound
        # (unless a supervisor of every agent is here: it follows them all).
        # Its stream stays for the history's TTL, for a client to recover.
        if not self._all and agent not in self._providers:
            self._retained.forget(agent)
            self._orphaned(agent)
        self._expire()

    async def follow_all(self) -> None:
        self._all = True
        self._orphans.clear()

    async def unfollow_all(self) -> None:
        self._all = False
        for agent in self._retained.agents():
            if agent not in self._followed and agent not in self._providers:
                self._retained.forget(agent)
        for agent in self._streams.agents():
            if agent not in self._followed and agent not in self._providers and agent not in self._orphans:
                self._orphaned(agent)
        self._expire()

    def _orphaned(self, agent: str) -> None:
        """Nobody here follows ``agent`` any more: its stream expires ``history_ttl`` from now."""
        self._orphans.pop(agent, None)
        self._orphans[agent] = self._clock()

    def _expire(self) -> None:
        """Drop the streams of agents nobody has followed for ``history_ttl`` (oldest first)."""
        oldest = self._clock() - self._ttl
        orphans = self._orphans
        while orphans:
            agent, since = next(iter(orphans.items()))
            if since > oldest:
                break
            del orphans[agent]
            if not self._all and agent not in self._followed and agent not in self._providers:
                self._streams.drop(agent)

    async def known_agents(self) -> list[str]:
        known = dict.fromkeys(self._providers)
        known.update(dict.fromkeys(self._retained.agents()))
        return list(islice(known, MAX_KNOWN_AGENTS))

    async def publish(self, agent: str, publication: Publication, retain: RetainChange | None = None) -> None:
        if publication.type in POSITIONED:
            self._streams.append(agent, publication)
        if retain is not None:
            if retain.keep:
                self._retained.set(agent, retain.slot, publication)
            else:
                self._retained.drop(agent, retain.slot)
        if self._handler is not None and (self._all or agent in self._followed):
            self._handler.on_publication(agent, publication)

    async def history(self, agent: str, after: Position) -> HistoryRead:
        return self._streams.read(agent, after)

    async def position(self, agent: str) -> Position:
        return self._streams.top(agent)

    async def set_retained(self, agent: str, slot: str, data: bytes) -> None:
        self._retained.set(agent, slot, RetainedFrame(data, None))

    async def drop_retained(self, agent: str, slot: str) -> None:
        self._retained.drop(agent, slot)

    async def get_retained(self, agent: str) -> list[RetainedFrame]:
        return [
            frame if type(frame) is RetainedFrame else RetainedFrame(frame.data, frame.position)
            for frame in self._retained.frames(agent)
        ]

    async def claim_provider(self, agent: str, connection_id: str) -> None:
        self._providers[agent] = connection_id
        self._orphans.pop(agent, None)
        await self.publish(agent, Publication(PublicationType.PROVIDER_UP, connection_id=connection_id))

    async def release_provider(self, agent: str, connection_id: str) -> bool:
        if self._providers.get(agent) != connection_id:
            return False
        del self._providers[agent]
        await self.publish(agent, Publication(PublicationType.PROVIDER_DOWN, connection_id=connection_id))
        if not self._all and agent not in self._followed:
            self._orphaned(agent)
        return True

    async def provider(self, agent: str) -> ProviderLocation | None:
        connection_id = self._providers.get(agent)
        return None if connection_id is None else ProviderLocation(self.node_id, connection_id)

    async def send_request(self, agent: str, request_id: str, data: bytes) -> str | None:
        connection_id = self._providers.get(agent)
        if connection_id is None or self._handler is None:
            return None
        self._handler.on_request(agent, request_id, data)
        return connection_id
