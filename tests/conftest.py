"""Fixtures: hubs started in-process on a free loopback port."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bridge.config import HubConfig
from bridge.server import HubServer

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
