"""Fixtures: hubs started in-process on a free loopback port."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bridge.hub.config import HubConfig
from bridge.hub.server import HubServer
from bridge.sim.virtual_agent import VirtualAgent

from .helpers import FAST

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
