"""The bare baselines the hub is measured against: plain ``websockets``, nothing else.

``broadcast``  -- every text frame from the provider goes to every app with
                  ``websockets.broadcast``: no parsing, no validation, no agents.
``forwarder``  -- parses every frame with orjson (no validation): an app's
                  request goes to the provider, a provider's event goes to every app
                  (as the hub does: events reach all apps of the agent).
``idle``       -- holds connections after their Hello and does nothing else
                  (the memory baseline; same as ``broadcast`` minus the traffic).
``idle-defaults`` -- ``idle`` with every ``websockets`` default, permessage-deflate
                  included (negotiated when the client offers it, as browsers do).

Clients send the same Hello as to the hub; the first frame tells the role
(the baseline only looks for ``"provider"`` in it) and is answered with one
small "welcome" frame, so the load generator needs no special case.

Server settings match the hub's where they matter for speed: no compression,
``max_queue=32``, the hub's frame size limit. Run:
``python benchmarks/baseline_servers.py broadcast --port 9000``.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

import orjson
from websockets.asyncio.server import ServerConnection, broadcast, serve

WELCOME = '{"welcome":true}'


class Bare:
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.apps: set[ServerConnection] = set()
        self.provider: ServerConnection | None = None

    async def handler(self, ws: ServerConnection) -> None:
        first = await ws.recv()
        is_provider = '"provider"' in first if isinstance(first, str) else b'"provider"' in first
        await ws.send(WELCOME)
        if not is_provider:
            self.apps.add(ws)
            try:
                if self.kind == "forwarder":
                    await self._app_requests(ws)
                else:
                    await ws.wait_closed()
            finally:
                self.apps.discard(ws)
            return
        self.provider = ws
        try:
            if self.kind == "forwarder":
                await self._provider_events(ws)
            else:
                async for message in ws:
                    broadcast(self.apps, message)
        finally:
            if self.provider is ws:
                self.provider = None

    async def _app_requests(self, ws: ServerConnection) -> None:
        async for message in ws:
            envelope = orjson.loads(message)  # parsed, never validated
            if isinstance(envelope, dict) and self.provider is not None:
                broadcast([self.provider], message)

    async def _provider_events(self, ws: ServerConnection) -> None:
        async for message in ws:
            envelope = orjson.loads(message)
            if isinstance(envelope, dict):
                broadcast(self.apps, message)


async def main(kind: str, host: str, port: int) -> None:
    bare = Bare(kind)
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
