"""Small helpers for tests that talk to a real hub over real sockets."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import orjson
import pytest
import websockets
from websockets.asyncio.client import ClientConnection

T = TypeVar("T")

#: Clients reconnect quickly in tests: the behaviour, not the delay, is under test.
FAST: dict[str, Any] = {"backoff_initial": 0.02, "backoff_max": 0.1}

#: The contract's sample envelopes: ../shared/protocol/samples beside the checkout.
SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "protocol" / "samples"


def sample(name: str) -> dict[str, Any]:
    return orjson.loads((SAMPLES / name).read_bytes())


def sample_text(name: str) -> str:
    return (SAMPLES / name).read_text()


def hello(role: str, *, agent: str | None = None, token: str | None = None, source: str = "test") -> str:
    data: dict[str, Any] = {"role": role}
    if agent is not None:
        data["agent"] = agent
    if token is not None:
        data["token"] = token
    return orjson.dumps(
        {"channel": "Bridge", "topic": "Session", "subtopic": "Hello", "source": source, "data": data}
    ).decode()


class Client:
    """A raw WebSocket client with JSON helpers and a short default timeout."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    async def send(self, value: Any) -> None:
        await self.ws.send(value if isinstance(value, (str, bytes)) else orjson.dumps(value).decode())

    async def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            return orjson.loads(await self.ws.recv())

    async def recv_kind(self, subtopic: str, timeout: float = 5.0) -> dict[str, Any]:
        """Skip frames until one of ``subtopic`` arrives."""
        async with asyncio.timeout(timeout):
            while True:
                frame = orjson.loads(await self.ws.recv())
                if frame.get("subtopic") == subtopic:
                    return frame

    async def nothing(self, wait: float = 0.3) -> None:
        """Assert that no frame arrives within ``wait`` seconds."""
        try:
            async with asyncio.timeout(wait):
                frame = await self.ws.recv()
        except TimeoutError:
            return
        raise AssertionError(f"unexpected frame: {frame!r}")

    async def closed(self, timeout: float = 5.0) -> int | None:
        """Wait for the hub to close the connection; return the close code."""
        async with asyncio.timeout(timeout):
            try:
                while True:
                    await self.ws.recv()
            except websockets.ConnectionClosed as exc:
                return exc.rcvd.code if exc.rcvd is not None else None

    async def close(self) -> None:
        await self.ws.close()


async def connect(url: str, **kwargs: Any) -> Client:
    return Client(await websockets.connect(url, **kwargs))


async def join(url: str, role: str, agent: str = "agent1", *, token: str | None = None,
               source: str = "test") -> tuple[Client, dict[str, Any]]:
    """Connect and say Hello; return the client and its Welcome."""
    client = await connect(url)
    if token is None:
        await client.send(hello(role, agent=agent, source=source))
    else:
        await client.send(hello(role, token=token, source=source))
    welcome = await client.recv()
    assert welcome["subtopic"] == "Welcome", welcome
    return client, welcome


async def join_app(url: str, agent: str = "agent1", **kwargs: Any) -> Client:
    """An app, past Welcome and its retained replay (ProviderStatus, maybe SetAgentState)."""
    client, _ = await join(url, "app", agent, **kwargs)
    status = await client.recv()
    assert status["subtopic"] == "ProviderStatus" and status["retained"] is True
    return client


def seed_event(reply_to: str | None = None) -> dict[str, Any]:
    event = sample("seed-SetAgentState.event.json")
    if reply_to is not None:
        event["replyTo"] = reply_to
    return event


def free_port() -> int:
    """A loopback port nobody listens on right now (for hubs that must restart on it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def within(awaitable: Awaitable[T], seconds: float = 5.0) -> T:
    """A safety net so that a broken test fails instead of hanging; not a timing assertion."""
    async with asyncio.timeout(seconds):
        return await awaitable


def prerequisite_missing(what: str) -> NoReturn:
    """A prerequisite (Redis, Chromium, the Streams bundle) is missing: fail in CI, skip with the reason elsewhere.

    In CI every test must run: a green run that skipped them would hide it.
    """
    if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
        pytest.fail(f"{what} (required in CI)", pytrace=False)
    pytest.skip(what)


async def eventually(check: Any, timeout: float = 10.0, every: float = 0.1) -> Any:
    """Poll ``check`` (sync or async) until it returns something truthy."""
    async with asyncio.timeout(timeout):
        while True:
            result = check()
            if asyncio.iscoroutine(result):
                result = await result
            if result:
                return result
            await asyncio.sleep(every)
