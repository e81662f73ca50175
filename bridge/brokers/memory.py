"""The in-memory broker: one hub process, nothing shared, nothing that can fail.

It keeps the :class:`~bridge.brokers.base.Broker` contract trivially: every
call takes effect before it returns (nothing is queued, ``flush`` has nothing
to wait for), publications are delivered synchronously in call order, and
it is always healthy. Retained frames live until the node has no client of
the agent left (:meth:`MemoryBroker.unfollow`).
"""

from __future__ import annotations

from itertools import islice

from bridge.brokers.base import (
    MAX_KNOWN_AGENTS,
    Broker,
    BrokerHandler,
    ProviderLocation,
    Publication,
    PublicationType,
)
from bridge.brokers.retained import RetainedFrames


class MemoryBroker(Broker):
    """Everything in this process: one node, no backend that can fail."""

    def __init__(self, node_id: str = "local") -> None:
        self.node_id = node_id
        self._handler: BrokerHandler | None = None
        self._followed: set[str] = set()
        #: A supervisor of every agent is here: every agent is followed.
        self._all = False
        self._retained = RetainedFrames()
        self._providers: dict[str, str] = {}

    async def start(self, handler: BrokerHandler) -> None:
        self._handler = handler

    async def close(self) -> None:
        self._handler = None

    async def follow(self, agent: str) -> None:
        self._followed.add(agent)

    async def unfollow(self, agent: str) -> None:
        self._followed.discard(agent)
        # Nobody of this agent is left anywhere: its retained state goes too,
        # or a hub serving many short-lived agents would grow without bound
        # (unless a supervisor of every agent is here: it follows them all).
        if not self._all and agent not in self._providers:
            self._retained.forget(agent)

    async def follow_all(self) -> None:
        self._all = True

    async def unfollow_all(self) -> None:
        self._all = False
        for agent in self._retained.agents():
            if agent not in self._followed and agent not in self._providers:
                self._retained.forget(agent)

    async def known_agents(self) -> list[str]:
        known = dict.fromkeys(self._providers)
        known.update(dict.fromkeys(self._retained.agents()))
        return list(islice(known, MAX_KNOWN_AGENTS))

    async def publish(self, agent: str, publication: Publication) -> None:
        if self._handler is not None and (self._all or agent in self._followed):
            self._handler.on_publication(agent, publication)

    async def set_retained(self, agent: str, slot: str, data: bytes) -> None:
        self._retained.set(agent, slot, data)

    async def drop_retained(self, agent: str, slot: str) -> None:
        self._retained.drop(agent, slot)

    async def get_retained(self, agent: str) -> list[bytes]:
        return self._retained.frames(agent)

    async def claim_provider(self, agent: str, connection_id: str) -> None:
        self._providers[agent] = connection_id
        await self.publish(agent, Publication(PublicationType.PROVIDER_UP, connection_id=connection_id))

    async def release_provider(self, agent: str, connection_id: str) -> bool:
        if self._providers.get(agent) != connection_id:
            return False
        del self._providers[agent]
        await self.publish(agent, Publication(PublicationType.PROVIDER_DOWN, connection_id=connection_id))
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
