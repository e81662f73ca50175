"""A :class:`~bridge.brokers.base.BrokerHandler` that writes down what it is told, and can wait for it."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Iterable

from bridge.brokers import Publication, PublicationType


class Recorder:
    """Everything a broker delivered to its node, in order."""

    def __init__(self) -> None:
        self.publications: list[tuple[str, Publication]] = []
        self.requests: list[tuple[str, str, bytes]] = []
        self.health: list[bool] = []
        self.resyncs = 0
        self._changed = asyncio.Event()

    def on_publication(self, agent: str, publication: Publication) -> None:
        self.publications.append((agent, publication))
        self._changed.set()

    def on_request(self, agent: str, request_id: str, data: bytes) -> None:
        self.requests.append((agent, request_id, data))
        self._changed.set()

    def on_broker_health(self, healthy: bool) -> None:
        self.health.append(healthy)
        self._changed.set()

    def on_resync(self) -> None:
        self.resyncs += 1
        self._changed.set()

    def of(self, agent: str) -> list[Publication]:
        """The publications delivered for ``agent``, in order."""
        return [publication for name, publication in self.publications if name == agent]

    def bare(self, agent: str) -> list[Publication]:
        """The publications delivered for ``agent``, in order, without their positions (see :func:`bare`)."""
        return bare(self.of(agent))

    def events(self, agent: str) -> list[bytes]:
        """The data of the agent's EVENT publications, in order."""
        return [p.data for p in self.of(agent) if p.type is PublicationType.EVENT]

    async def until_count(self, agent: str, count: int, timeout: float = 5.0) -> None:
        """Wait until at least ``count`` publications were delivered for ``agent``."""
        await self.until(lambda: len(self.of(agent)) >= count, timeout)

    async def until(self, check: Callable[[], object], timeout: float = 5.0) -> None:
        """Wait until ``check()`` is truthy; it is checked again at each delivery."""
        async with asyncio.timeout(timeout):
            while not check():
                self._changed.clear()
                await self._changed.wait()


def bare(publications: Iterable[Publication]) -> list[Publication]:
    """Copies of ``publications`` without positions: to compare what was published with what came."""
    return [dataclasses.replace(publication, position=None) for publication in publications]
