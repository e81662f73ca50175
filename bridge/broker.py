"""The broker: how hub nodes share agents.

A node keeps its own connections; the broker carries what must reach
connections of the same agent on *any* node. It knows five things:

* **publications** on an agent's channel (events, errors for a requester,
  provider arrivals and departures), delivered to every node that *follows*
  the agent, the publishing node included;
* the agent's **retained state** (its last ``SetAgentState``);
* the **provider registry**: which node and connection hold an agent's
  provider;
* **requests**, delivered to the node that holds the agent's provider;
* its own **health**.

:class:`MemoryBroker` serves a single process and is the default;
:class:`bridge.redis_broker.RedisBroker` spreads the same contract over Redis.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


class PublicationType(StrEnum):
    EVENT = "event"  # to every app of the agent
    ERROR = "error"  # to the requester of ``reply_to`` only
    PROVIDER_UP = "up"  # ``connection_id`` is now the agent's provider
    PROVIDER_DOWN = "down"  # ``connection_id`` left and nobody replaced it


@dataclass(slots=True)
class Publication:
    """One message on an agent's channel (made per event: slotted, not frozen, for speed)."""

    type: PublicationType
    data: bytes = b""
    reply_to: str | None = None
    connection_id: str | None = None


@dataclass(frozen=True, slots=True)
class ProviderLocation:
    node_id: str
    connection_id: str


class BrokerHandler(Protocol):
    """What a node exposes to its broker."""

    def on_publication(self, agent: str, publication: Publication) -> None:
        """A publication for an agent this node follows."""

    def on_request(self, agent: str, request_id: str, data: bytes) -> None:
        """A request for an agent whose provider this node holds."""

    def on_broker_health(self, healthy: bool) -> None:
        """The broker lost or regained its backend."""

    def on_resync(self) -> None:
        """The backend came back after an outage: re-announce local providers."""


class Broker(abc.ABC):
    """The contract every broker keeps (see the module docstring)."""

    node_id: str

    @property
    def healthy(self) -> bool:
        return True

    @abc.abstractmethod
    async def start(self, handler: BrokerHandler) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def follow(self, agent: str) -> None:
        """Start delivering the agent's publications to this node."""

    @abc.abstractmethod
    async def unfollow(self, agent: str) -> None:
        """Stop delivering them (the node has no client of that agent left)."""

    @abc.abstractmethod
    async def publish(self, agent: str, publication: Publication) -> None: ...

    @abc.abstractmethod
    async def set_retained(self, agent: str, data: bytes) -> None: ...

    @abc.abstractmethod
    async def get_retained(self, agent: str) -> bytes | None: ...

    @abc.abstractmethod
    async def claim_provider(self, agent: str, connection_id: str) -> None:
        """Make ``connection_id`` (on this node) the agent's provider and announce it.

        Publishes ``PROVIDER_UP``; the node holding an older provider closes it.
        """

    @abc.abstractmethod
    async def release_provider(self, agent: str, connection_id: str) -> bool:
        """Forget the provider if it is still ``connection_id``; announce ``PROVIDER_DOWN``.

        Returns whether it was still registered (a replaced provider is not).
        """

    @abc.abstractmethod
    async def provider(self, agent: str) -> ProviderLocation | None: ...

    @abc.abstractmethod
    async def send_request(self, agent: str, request_id: str, data: bytes) -> str | None:
        """Deliver a request to the node holding the agent's provider.

        Returns the provider's connection id, or ``None`` when there is none.
        """


class MemoryBroker(Broker):
    """Everything in this process: one node, no backend that can fail."""

    def __init__(self, node_id: str = "local") -> None:
        self.node_id = node_id
        self._handler: BrokerHandler | None = None
        self._followed: set[str] = set()
        self._retained: dict[str, bytes] = {}
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
        # or a hub serving many short-lived agents would grow without bound.
        self._retained.pop(agent, None)

    async def publish(self, agent: str, publication: Publication) -> None:
        if self._handler is not None and agent in self._followed:
            self._handler.on_publication(agent, publication)

    async def set_retained(self, agent: str, data: bytes) -> None:
        self._retained[agent] = data

    async def get_retained(self, agent: str) -> bytes | None:
        return self._retained.get(agent)

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
