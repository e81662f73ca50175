"""Helpers for the tests against the real Redis server (tests/test_redis.py).

* :func:`require_redis`: the Redis URL, or a skip (off CI) / failure (CI=true).
* :class:`HubProcess`: one ``connect-bridge serve --redis`` node in its own process.
* :class:`TcpProxy`: a loopback TCP proxy in front of Redis that a test can cut
  and restore, so the shared server itself keeps running.
* :class:`Client`: a raw ``websockets`` client speaking the wire protocol.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import orjson
import redis
from websockets.asyncio.client import ClientConnection, connect

from .helpers import prerequisite_missing

REDIS_URL = os.environ.get("BRIDGE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
#: The contract's sample envelopes: ../shared/protocol/samples beside the checkout.
SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "protocol" / "samples"


def require_redis() -> str:
    """The test Redis URL if a server answers there; else skip, or fail under CI=true."""
    try:
        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
        client.ping()
        client.close()
    except redis.RedisError as exc:
        prerequisite_missing(f"no Redis server at {REDIS_URL} ({exc}); start one or set BRIDGE_TEST_REDIS_URL")
    return REDIS_URL


def unique_prefix() -> str:
    return f"cb-test-{uuid.uuid4().hex[:10]}"


def drop_prefix(prefix: str) -> None:
    """Delete this test's keys (never anything outside its unique prefix)."""
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1, socket_timeout=2)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=500))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def sample(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SAMPLES / name).read_text())
    return data


def _cli() -> list[str]:
    script = Path(sys.executable).with_name("connect-bridge")
    return [str(script)] if script.exists() else [sys.executable, "-m", "bridge"]


#: Fast settings for test nodes (read by the hub's configuration from the environment).
FAST_REDIS_ENV = {
    "BRIDGE_REDIS_HEARTBEAT": "0.5",
    "BRIDGE_REDIS_PROVIDER_TTL": "2.5",
    "BRIDGE_REDIS_RECONNECT_MAX": "0.5",
    "BRIDGE_REDIS_TIMEOUT": "1",
}


class HubProcess:
    """``connect-bridge serve --open --redis URL`` on a free loopback port."""

    def __init__(
        self,
        redis_url: str,
        prefix: str,
        log_path: Path,
        *,
        request_timeout: float = 2.0,
        env: dict[str, str] | None = None,
    ) -> None:
        self.log_path = log_path
        command = [
            *_cli(), "-v", "serve", "--open", "--port", "0",
            "--redis", redis_url, "--redis-prefix", prefix,
            "--request-timeout", str(request_timeout),
        ]
        environment = {**os.environ, **FAST_REDIS_ENV, **(env or {})}
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            command, stdout=self._log, stderr=subprocess.STDOUT, env=environment,
            stdin=subprocess.DEVNULL,
        )
        self.port = 0

    def wait_ready(self, timeout: float = 15.0) -> HubProcess:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(rb"listening on ws://[^:]+:(\d+)/ws", self.log_path.read_bytes())
            if found:
                self.port = int(found.group(1))
                return self
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"hub did not start; its log:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def _get(self, path: str) -> bytes:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as response:
            body: bytes = response.read()
            return body

    def healthz(self) -> dict[str, Any]:
        stats: dict[str, Any] = orjson.loads(self._get("/healthz"))
        return stats

    def metrics(self) -> str:
        return self._get("/metrics").decode()

    async def ahealthz(self) -> dict[str, Any]:
        return await asyncio.to_thread(self.healthz)

    async def ametrics(self) -> str:
        return await asyncio.to_thread(self.metrics)

    def kill(self) -> None:
        """SIGKILL: no goodbye, no release of anything in Redis."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(5)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._log.close()


def start_hubs(count: int, redis_url: str, prefix: str, log_dir: Path, **kwargs: Any) -> list[HubProcess]:
    """Start ``count`` nodes at once (they boot in parallel) and wait for each."""
    hubs = [HubProcess(redis_url, prefix, log_dir / f"hub-{i}-{uuid.uuid4().hex[:6]}.log", **kwargs)
            for i in range(count)]
    try:
        return [hub.wait_ready() for hub in hubs]
    except BaseException:
        for hub in hubs:
            hub.stop()
        raise


class TcpProxy:
    """A loopback TCP proxy in its own thread and event loop.

    :meth:`cut` resets every proxied connection and refuses new ones until
    :meth:`restore`: to Redis's clients it looks like the network to Redis
    went away, while the server itself (shared with other tests) keeps running.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._open = True
        self._pairs: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tcp-proxy", daemon=True)
        self._server: asyncio.Server | None = None
        self._flowing: asyncio.Event  # made in the proxy's own loop, by _start

    def start(self) -> TcpProxy:
        self._thread.start()
        self.port = self._call(self._start())
        return self

    def cut(self) -> None:
        self._call(self._cut())

    def restore(self) -> None:
        self._open = True

    def stall(self) -> None:
        """Keep every connection open but let nothing through: a Redis that stopped answering."""
        self._call(self._stall())

    def resume(self) -> None:
        """Drop the stalled connections (their replies are owed to clients that gave up) and let
        new ones pass."""
        self._call(self._resume())

    def close(self) -> None:
        self._call(self._close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def _call(self, coro: Any) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(5)

    async def _start(self) -> int:
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def _stall(self) -> None:
        self._flowing.clear()

    async def _resume(self) -> None:
        await self._cut()
        self._open = True
        self._flowing.set()

    async def _cut(self) -> None:
        self._open = False
        for writer in list(self._pairs):
            writer.transport.abort()
        self._pairs.clear()

    async def _close(self) -> None:
        await self._cut()
        if self._server is not None:
            self._server.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self._open:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._pairs.update((writer, up_writer))
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                await self._flowing.wait()
                if writer.transport.is_closing():
                    break
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._pairs.discard(writer)
            writer.transport.abort()


class Client:
    """One WebSocket client that passed Hello (open mode: Hello names the agent)."""

    def __init__(self, ws: ClientConnection, welcome: dict[str, Any]) -> None:
        self.ws = ws
        self.welcome = welcome
        self.connection_id: str = welcome["message"]["connectionId"]

    @classmethod
    async def join(cls, url: str, role: str, agent: str, source: str = "redis-test") -> Client:
        ws = await connect(url, open_timeout=5, close_timeout=1)
        hello = {"channel": "Bridge", "topic": "Session", "subtopic": "Hello", "source": source,
                 "data": {"role": role, "agent": agent}}
        await ws.send(orjson.dumps(hello).decode())
        welcome = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
        assert welcome["subtopic"] == "Welcome", welcome
        return cls(ws, welcome)

    async def send(self, envelope: dict[str, Any]) -> None:
        await self.ws.send(orjson.dumps(envelope).decode())

    async def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        frame: dict[str, Any] = orjson.loads(await asyncio.wait_for(self.ws.recv(), timeout))
        return frame

    async def recv_until(
        self, matches: Callable[[dict[str, Any]], bool], timeout: float = 5.0
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The first frame that ``matches``, and the frames skipped before it."""
        skipped: list[dict[str, Any]] = []
        async with asyncio.timeout(timeout):
            while True:
                frame = await self.recv(timeout)
                if matches(frame):
                    return frame, skipped
                skipped.append(frame)

    async def close(self) -> None:
        await self.ws.close()

    @property
    def open(self) -> bool:
        return self.ws.close_code is None


def is_kind(subtopic: str, **fields: Any) -> Callable[[dict[str, Any]], bool]:
    def matches(frame: dict[str, Any]) -> bool:
        return frame.get("subtopic") == subtopic and all(frame.get(k) == v for k, v in fields.items())

    return matches


def is_error(error_type: str | None = None, reply_to: str | None = None) -> Callable[[dict[str, Any]], bool]:
    def matches(frame: dict[str, Any]) -> bool:
        if frame.get("subtopic") != "ApiError":
            return False
        if error_type is not None and frame["data"]["errorType"] != error_type:
            return False
        return reply_to is None or frame.get("replyTo") == reply_to

    return matches


def answer_for(request: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """The seed SetAgentState event, answering ``request``."""
    event = sample("seed-SetAgentState.event.json")
    event["replyTo"] = request["id"]
    event.update(extra)
    return event


async def serve_provider(provider: Client, answered: list[str] | None = None) -> None:
    """Answer every request the provider receives with the seed SetAgentState (until closed)."""
    from websockets.exceptions import ConnectionClosed

    try:
        while True:
            frame = orjson.loads(await provider.ws.recv())
            if "id" in frame and frame.get("channel") == "Amazon":
                await provider.send(answer_for(frame))
                if answered is not None:
                    answered.append(frame["id"])
    except ConnectionClosed:
        return
