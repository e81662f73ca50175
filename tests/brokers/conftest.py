"""The brokers under contract, and nodes of each (``cluster`` fixture).

Every test that uses ``cluster`` runs once per broker in :data:`KITS`. A
test marked ``several_nodes`` needs distinct nodes that share a backplane,
and runs only for the brokers that have one. The Redis cases use the real
server (tests/redis_helpers.py): a unique key prefix per test, deleted
afterwards; without a server they are skipped, or fail under ``CI=true``.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest

from bridge.brokers import Broker, MemoryBroker, Publication, PublicationType
from bridge.brokers.base import DEFAULT_HISTORY_SIZE
from bridge.brokers.redis import RedisBroker
from bridge.brokers.redis.settings import RedisSettings

from ..redis_helpers import drop_prefix, require_redis, unique_prefix
from .recorder import Recorder


@dataclass
class Node:
    """One started broker and what it delivered."""

    broker: Broker
    seen: Recorder

    @property
    def id(self) -> str:
        return self.broker.node_id


class Kit:
    """How to make the nodes of one broker kind for one test."""

    several_nodes = False
    marks: tuple[pytest.MarkDecorator, ...] = ()

    def setup(self) -> None:
        """Before the first node (may skip or fail the test)."""

    def make(self, node_id: str, history_size: int = DEFAULT_HISTORY_SIZE) -> Broker:
        raise NotImplementedError

    def teardown(self) -> None:
        """After the last node closed."""


class MemoryKit(Kit):
    def make(self, node_id: str, history_size: int = DEFAULT_HISTORY_SIZE) -> Broker:
        return MemoryBroker(node_id, history_size=history_size)


class RedisKit(Kit):
    several_nodes = True
    marks = (pytest.mark.redis,)

    def setup(self) -> None:
        self.url = require_redis()
        self.prefix = unique_prefix()

    def make(self, node_id: str, history_size: int = DEFAULT_HISTORY_SIZE) -> Broker:
        settings = RedisSettings(
            prefix=self.prefix, heartbeat=0.5, provider_ttl=2.5, reconnect_max=0.5, timeout=1, history_size=history_size
        )
        return RedisBroker(self.url, settings=settings, node_id=node_id)

    def teardown(self) -> None:
        drop_prefix(self.prefix)


KITS: dict[str, Callable[[], Kit]] = {"memory": MemoryKit, "redis": RedisKit}


@dataclass
class Cluster:
    """The nodes of one test, all of one broker kind."""

    kind: str
    kit: Kit
    nodes: list[Node] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=itertools.count)

    async def node(self, history_size: int = DEFAULT_HISTORY_SIZE) -> Node:
        """A new started node (for a one-node broker: one broker more, sharing nothing)."""
        node = Node(self.kit.make(f"{self.kind}-{next(self._ids)}", history_size), Recorder())
        await node.broker.start(node.seen)
        self.nodes.append(node)
        return node

    async def peer(self, node: Node) -> Node:
        """Another node on the same backplane, or ``node`` itself for a one-node broker."""
        return await self.node() if self.kit.several_nodes else node

    async def settle(self) -> None:
        """Wait until everything published so far has been delivered wherever it will be.

        Each node flushes; then each publishes a marker on an agent of its
        own and waits for it to come back. The backplane delivers one node's
        subscriptions in one order, so what was due before a marker came first.
        """
        for node in self.nodes:
            await node.broker.flush()
        for node in self.nodes:
            agent = f"~settle-{node.id}"
            await node.broker.follow(agent)
            count = len(node.seen.of(agent))
            await node.broker.publish(agent, Publication(PublicationType.EVENT, b"settled"))
            await node.seen.until_count(agent, count + 1)

    async def close(self) -> None:
        for node in reversed(self.nodes):
            await node.broker.close()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "several_nodes: needs nodes sharing a backplane (not the memory broker)")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "broker_kind" not in metafunc.fixturenames:
        return
    several = metafunc.definition.get_closest_marker("several_nodes") is not None
    kinds = [
        pytest.param(kind, marks=kit.marks, id=kind)
        for kind, kit in ((kind, make()) for kind, make in KITS.items())
        if kit.several_nodes or not several
    ]
    metafunc.parametrize("broker_kind", kinds)


@pytest.fixture
async def cluster(broker_kind: str) -> AsyncIterator[Cluster]:
    kit = KITS[broker_kind]()
    kit.setup()
    nodes = Cluster(broker_kind, kit)
    try:
        yield nodes
    finally:
        try:
            await nodes.close()
        finally:
            kit.teardown()
