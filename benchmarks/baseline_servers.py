"""The bare baselines the hub is measured against: plain ``websockets``, nothing else.

``broadcast``  -- every text frame from the provider goes to every app with
                  ``websockets.broadcast``: no parsing, no validation, no agents.
``forwarder``  -- pairs each app with its own agent's provider, as the hub does:
                  an app's request is parsed with orjson (no validation), given a
                  request id of the forwarder's own and sent to the provider of the
                  app's agent; the provider's answer is parsed to read its
                  ``replyTo``, and its bytes go back to the requester with the
                  requester's own id swapped in (to the agent's other apps as they
                  are). A frame that answers nothing goes to every app of the agent.
``idle``       -- holds connections after their Hello and does nothing else
                  (the memory baseline; same as ``broadcast`` minus the traffic).
``idle-defaults`` -- ``idle`` with every ``websockets`` default, permessage-deflate
                  included (negotiated when the client offers it, as browsers do).

Clients send the same Hello as to the hub and get one small "welcome" frame
for it, so the load generator needs no special case. The ``forwarder`` reads
the Hello with orjson (``data.role`` and ``data.agent``, as an open hub does);
the others only look for ``"provider"`` in it (one provider, every app its
listener).

Server settings match the hub's where they matter for speed: no compression,
``max_queue=32``, the hub's frame size limit. Run:
``python benchmarks/baseline_servers.py forwarder --port 9000``.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

import orjson
from websockets.asyncio.server import ServerConnection, broadcast, serve

WELCOME = '{"welcome":true}'


class Bare:
    """``broadcast``, ``idle`` and ``idle-defaults``: one provider, every other connection an app."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.apps: set[ServerConnection] = set()

    async def handler(self, ws: ServerConnection) -> None:
        first = await ws.recv()
        is_provider = '"provider"' in first if isinstance(first, str) else b'"provider"' in first
        await ws.send(WELCOME)
        if not is_provider:
            self.apps.add(ws)
            try:
                await ws.wait_closed()
            finally:
                self.apps.discard(ws)
            return
        async for message in ws:
            broadcast(self.apps, message)


class _Agent:
    """One agent's connections, as the forwarder pairs them."""

    __slots__ = ("apps", "provider")

    def __init__(self) -> None:
        self.apps: set[ServerConnection] = set()
        self.provider: ServerConnection | None = None


class Forwarder:
    """``forwarder``: each app's requests to its own agent's provider, answers back to the requester.

    The least a hub must do on a round trip, without validation or limits:
    read the request (orjson), put an id of its own on it so that answers
    come back to the right requester whatever ids apps choose, write it anew
    (what was read, and only that) to the agent's provider; read the answer
    (orjson) to find its requester, and send it the answer's bytes with its
    own id back in ``replyTo``. The agent's other apps get the bytes as they
    are (the protocol's rule: an answer is an event for all of the agent's apps).
    """

    def __init__(self) -> None:
        self.agents: dict[str, _Agent] = {}
        #: The forwarder's request id -> (requester, the requester's own id).
        self.pending: dict[str, tuple[ServerConnection, str]] = {}
        self.counter = 0

    async def handler(self, ws: ServerConnection) -> None:
        hello = orjson.loads(await ws.recv())
        data = hello.get("data") if isinstance(hello, dict) else None
        if not isinstance(data, dict) or not isinstance(data.get("agent"), str):
            await ws.close(1008, "Hello names no agent")
            return
        name = data["agent"]
        agent = self.agents.get(name)
        if agent is None:
            agent = self.agents[name] = _Agent()
        await ws.send(WELCOME)
        try:
            if data.get("role") == "provider":
                agent.provider = ws
                await self._answers(ws, agent)
            else:
                agent.apps.add(ws)
                await self._requests(ws, agent)
        finally:
            if agent.provider is ws:
                agent.provider = None
            agent.apps.discard(ws)
            if agent.provider is None and not agent.apps:
                del self.agents[name]

    async def _requests(self, ws: ServerConnection, agent: _Agent) -> None:
        pending = self.pending
        async for message in ws:
            envelope = orjson.loads(message)  # parsed, never validated
            provider = agent.provider
            if not isinstance(envelope, dict) or provider is None:
                continue
            self.counter += 1
            request_id = f"f-{self.counter}"
            own = envelope.get("id")
            pending[request_id] = (ws, own if isinstance(own, str) else request_id)
            envelope["id"] = request_id
            broadcast((provider,), orjson.dumps(envelope), text=True)

    async def _answers(self, ws: ServerConnection, agent: _Agent) -> None:
        pending = self.pending
        async for message in ws:
            envelope = orjson.loads(message)
            if not isinstance(envelope, dict):
                continue
            reply_to = envelope.get("replyTo")
            waiting = pending.pop(reply_to, None) if isinstance(reply_to, str) else None
            if waiting is None:
                broadcast(agent.apps, message)
                continue
            requester, own = waiting
            others = [app for app in agent.apps if app is not requester]
            if others:
                broadcast(others, message)
            if own != reply_to:
                assert isinstance(message, str)
                # The forwarder's ids need no escaping; the requester's may.
                message = message.replace(f'"replyTo":"{reply_to}"', '"replyTo":' + orjson.dumps(own).decode(), 1)
            broadcast((requester,), message)


async def main(kind: str, host: str, port: int) -> None:
    bare = Forwarder() if kind == "forwarder" else Bare(kind)
    stop: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def on_signal() -> None:
        if not stop.done():
            stop.set_result(None)

    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, on_signal)
    if kind == "idle-defaults":
        async with serve(bare.handler, host, port):
            await stop
        return
    async with serve(bare.handler, host, port, compression=None, max_queue=32, max_size=64 * 1024,
                     close_timeout=2):
        await stop


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=["broadcast", "forwarder", "idle", "idle-defaults"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    asyncio.run(main(args.kind, args.host, args.port))
