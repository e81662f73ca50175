"""Fixtures: hubs started in-process on a free loopback port."""

from __future__ import annotations

import importlib
import os
from collections.abc import AsyncIterator, Iterator

import pytest

from bridge.hub.config import HubConfig
from bridge.hub.server import HubServer
from bridge.sim.virtual_agent import VirtualAgent

from .helpers import FAST
from .redis_helpers import drop_prefix, require_redis, unique_prefix

SECRET = "test-secret-for-connect-bridge-tests"


@pytest.fixture
async def open_hub() -> AsyncIterator[HubServer]:
    """A hub in open (demo) mode: Hello names the agent."""
    async with HubServer(HubConfig(port=0, open_mode=True, request_timeout=1.0, hello_timeout=1.0)) as hub:
        yield hub


@pytest.fixture
async def secure_hub() -> AsyncIterator[HubServer]:
    """A hub that requires tokens signed with ``SECRET``."""
    async with HubServer(HubConfig(port=0, secret=SECRET, request_timeout=1.0, hello_timeout=1.0)) as hub:
        yield hub


@pytest.fixture
async def hub() -> AsyncIterator[HubServer]:
    """An open hub with the default request timeout shortened to 5 s (client-side tests)."""
    async with HubServer(HubConfig(host="127.0.0.1", port=0, open_mode=True, request_timeout=5.0)) as server:
        yield server


@pytest.fixture
async def va(hub: HubServer) -> AsyncIterator[VirtualAgent]:
    """A virtual agent as agent1's provider on ``hub``."""
    async with VirtualAgent(hub.url, agent="agent1", **FAST) as agent:
        yield agent


@pytest.fixture(scope="module")
def redis_url() -> str:
    """The test Redis (fails under CI=true, skips elsewhere, when none answers)."""
    return require_redis()


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of this test's own, deleted afterwards."""
    name = unique_prefix()
    yield name
    drop_prefix(name)


@pytest.fixture
def no_bridge_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ``BRIDGE_*`` variable of the machine's: a test of ``serve``'s settings sets exactly those it means to."""
    for name in [name for name in os.environ if name.startswith("BRIDGE_")]:
        monkeypatch.delenv(name)


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[HubConfig]:
    """The configs ``connect-bridge serve`` would have run (in-process, with click's runner); nothing listens."""
    configs: list[HubConfig] = []

    async def run_hub(config: HubConfig, *, ready_message: bool = True) -> int:
        configs.append(config)
        return 0

    monkeypatch.setattr(importlib.import_module("bridge.cli.main"), "run_hub", run_hub)
    return configs
