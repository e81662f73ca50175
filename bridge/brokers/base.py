"""The broker: how hub nodes share agents.

A node keeps its own connections; the broker carries what must reach
connections of the same agent on *any* node. It knows five things:

* **publications** on an agent's channel (events, errors for a requester,
  provider arrivals and departures), delivered to every node that *follows*
  the agent, the publishing node included;
* the agent's **retained frames**, one per *slot* (a kind, or a kind and a key);
* the **provider registry**: which node and connection hold an agent's
  provider;
* **requests**, delivered to the node that holds the agent's provider;
* its own **health**.

:class:`bridge.brokers.memory.MemoryBroker` serves a single process and is the default;
:class:`bridge.brokers.redis.RedisBroker` spreads the same contract over Redis.
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
    async def set_retained(self, agent: str, slot: str, data: bytes) -> None:
        """Keep ``data`` as the agent's retained frame in ``slot``, replacing the slot's last one.

        A slot is a kind (``Amazon/Agent/SetAgentState``), or a kind and a key
        (``Amazon/InboundCall/InboundCallStateChange#<contact id>``), as the
        kind's schema declares (``x-bridge.retain``).
        """

    @abc.abstractmethod
    async def drop_retained(self, agent: str, slot: str) -> None:
        """Forget the agent's retained frame in ``slot`` (if any)."""

    @abc.abstractmethod
    async def get_retained(self, agent: str) -> list[bytes]:
        """The agent's retained frames, one per slot, in the order the slots were first set."""

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
