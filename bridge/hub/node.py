"""A hub node: the node's connections, grouped by agent, wired to the router and the broker.

The node carries out what the router decides. It leaves reading frames to
the router (it only peeks into one on rare error paths) and never touches a
socket: connections reach it as
:class:`Transport` objects, whose ``send`` never blocks (a transport that
cannot keep up drops its client, see :mod:`bridge.server`).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from bridge import protocol
from bridge.brokers import Broker, Publication, PublicationType
from bridge.hub.core.router import Answer, Close, Forward, Output, Peer, Publish, Reply, Router, hub_error
from bridge.protocol import PROTOCOL_VERSION, PROVIDER_STATUS, REPLACED, WELCOME, CloseCode, ErrorType, Role

log = logging.getLogger("bridge.node")


class Transport(Protocol):
    """One client connection, as the node sees it."""

    def send(self, data: bytes) -> None:
        """Queue ``data`` as one text frame; never blocks."""

    def close(self, code: int, reason: str) -> None:
        """Close the connection (after what is already queued)."""


@dataclass(slots=True)
class Room:
    """This node's connections of one agent."""

    apps: dict[str, Transport] = field(default_factory=dict)
    provider_id: str | None = None
    provider: Transport | None = None
    #: Apps still being greeted: live events wait here until their replay is sent.
    joining: dict[str, list[bytes]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.apps) + len(self.joining) + (self.provider is not None)


class Observer(Protocol):
    """Receives the node's countable happenings (metrics)."""

    def frame_out(self, kind: str, count: int) -> None: ...
    def error_sent(self, error_type: str) -> None: ...
    def request_done(self, seconds: float) -> None: ...


class _NoObserver:
    def frame_out(self, kind: str, count: int) -> None:
        pass

    def error_sent(self, error_type: str) -> None:
        pass

    def request_done(self, seconds: float) -> None:
        pass


class Node:
    """One hub process's share of the bus."""

    def __init__(self, router: Router, broker: Broker, observer: Observer | None = None) -> None:
        self.router = router
        self.broker = broker
        self.observer: Observer = observer or _NoObserver()
        self.rooms: dict[str, Room] = {}
        #: Every joined local connection, for answers that name a connection id.
        self.transports: dict[str, Transport] = {}
        self._timer: asyncio.Task[None] | None = None
        self._timer_wake = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self.broker_healthy = True

    # --- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        await self.broker.start(self)
        self._timer = asyncio.create_task(self._expire_requests(), name="bridge-timeouts")

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            await asyncio.gather(self._timer, return_exceptions=True)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.broker.close()

    def stats(self) -> dict[str, Any]:
        apps = sum(len(room.apps) + len(room.joining) for room in self.rooms.values())
        providers = sum(room.provider is not None for room in self.rooms.values())
        return {
            "status": "ok" if self.broker_healthy else "degraded",
            "protocol": PROTOCOL_VERSION,
            "node": self.broker.node_id,
            "connections": {"app": apps, "provider": providers},
            "agents": len(self.rooms),
            "providers": providers,
            "pendingRequests": len(self.router.pending),
            "validations": self.router.validations,
            "validationSeconds": self.router.validation_seconds,
        }

    # --- connections -------------------------------------------------------------

    def connections_of(self, agent: str) -> int:
        room = self.rooms.get(agent)
        return 0 if room is None else len(room)

    async def join(self, peer: Peer, transport: Transport) -> None:
        """Greet a connection that passed ``Hello`` and start routing to it."""
        self.transports[peer.connection_id] = transport
        room = self.rooms.get(peer.agent)
        if room is None:
            room = self.rooms[peer.agent] = Room()
            await self.broker.follow(peer.agent)
        if peer.role is Role.PROVIDER:
            self._replace_provider(room, peer.connection_id)
            room.provider_id, room.provider = peer.connection_id, transport
            transport.send(self._welcome(peer, provider_connected=True))
            # Other nodes replace their own older provider when this is announced.
            await self.broker.claim_provider(peer.agent, peer.connection_id)
            return
        room.joining[peer.connection_id] = []
        provider = await self.broker.provider(peer.agent)
        retained = await self.broker.get_retained(peer.agent)
        transport.send(self._welcome(peer, provider_connected=provider is not None))
        status = protocol.event(PROVIDER_STATUS, {"connected": provider is not None}, retained=True)
        transport.send(orjson.dumps(status))
        if retained is not None:
            transport.send(as_retained(retained))
        held = room.joining.pop(peer.connection_id, None)
        if held is None:  # the client left while being greeted
            return
        for data in held:
            transport.send(data)
        room.apps[peer.connection_id] = transport

    async def leave(self, peer: Peer) -> None:
        """Forget a connection that closed, for whatever reason."""
        self.router.pending.drop_connection(peer.connection_id)
        self.transports.pop(peer.connection_id, None)
        room = self.rooms.get(peer.agent)
        if room is None:
            return
        room.apps.pop(peer.connection_id, None)
        room.joining.pop(peer.connection_id, None)
        if room.provider_id == peer.connection_id:
            room.provider_id = room.provider = None
            await self.broker.release_provider(peer.agent, peer.connection_id)
        if not len(room) and self.rooms.get(peer.agent) is room:
            del self.rooms[peer.agent]
            await self.broker.unfollow(peer.agent)

    def _welcome(self, peer: Peer, *, provider_connected: bool) -> bytes:
        message = {
            "agent": peer.agent,
            "role": str(peer.role),
            "connectionId": peer.connection_id,
            "providerConnected": provider_connected,
        }
        return orjson.dumps(protocol.event(WELCOME, message))

    # --- frames from local clients -----------------------------------------------

    async def receive(self, peer: Peer, transport: Transport, frame: str | bytes) -> None:
        """Route one frame from a joined connection."""
        for output in self.router.receive(peer, frame):
            await self.execute(output, transport)

    async def execute(self, output: Output, transport: Transport) -> None:
        """Carry out one routing decision; ``transport`` is the sender's."""
        if isinstance(output, Publish):
            if output.retain:
                await self.broker.set_retained(output.agent, output.data)
            await self.broker.publish(
                output.agent, Publication(PublicationType.EVENT, output.data, output.reply_to)
            )
        elif isinstance(output, Forward):
            self._timer_wake.set()
            provider = await self.broker.send_request(output.agent, output.request_id, output.data)
            if provider is None:
                failure = self.router.provider_unavailable(output.agent, output.request_id)
                if failure is not None:
                    self._send_error(transport, failure[1], ErrorType.PROVIDER_UNAVAILABLE)
            else:
                entry = self.router.pending.get(output.agent, output.request_id)
                if entry is not None:
                    entry.provider = provider
        elif isinstance(output, Reply):
            transport.send(output.data)
            if output.error_type is not None:
                self.observer.error_sent(output.error_type)
        elif isinstance(output, Answer):
            await self.broker.publish(
                output.agent, Publication(PublicationType.ERROR, output.data, output.reply_to)
            )
        elif isinstance(output, Close):
            transport.close(output.code, output.reason)

    def _send_error(self, transport: Transport, data: bytes, error_type: str) -> None:
        transport.send(data)
        self.observer.error_sent(error_type)

    # --- the broker's side (BrokerHandler) -----------------------------------------

    def on_publication(self, agent: str, publication: Publication) -> None:
        room = self.rooms.get(agent)
        if publication.type is PublicationType.EVENT:
            if publication.reply_to is not None:
                entry = self.router.pending.pop(agent, publication.reply_to)
                if entry is not None:
                    self.observer.request_done(self.router.clock() - entry.started)
            if room is not None:
                self._to_apps(room, publication.data)
        elif publication.type is PublicationType.ERROR:
            assert publication.reply_to is not None
            entry = self.router.pending.pop(agent, publication.reply_to)
            if entry is None:
                log.debug("dropped an error for %s/%s: nobody waits", agent, publication.reply_to)
                return
            transport = self.transports.get(entry.connection_id)
            if transport is not None:
                self._send_error(transport, publication.data, _error_type(publication.data))
        elif publication.type is PublicationType.PROVIDER_UP:
            self._provider_changed(agent, room, publication.connection_id)
        elif publication.type is PublicationType.PROVIDER_DOWN:
            self._provider_changed(agent, room, None)

    def _provider_changed(self, agent: str, room: Room | None, provider: str | None) -> None:
        for connection_id, data in self.router.provider_changed(agent, provider):
            self._send_to(connection_id, data, ErrorType.PROVIDER_UNAVAILABLE)
        if room is None:
            return
        if provider is not None:
            self._replace_provider(room, provider)
        status = protocol.event(PROVIDER_STATUS, {"connected": provider is not None})
        self._to_apps(room, orjson.dumps(status))

    def _replace_provider(self, room: Room, newer: str) -> None:
        """Tell this node's provider of the agent, if older than ``newer``, and close it."""
        if room.provider is None or room.provider_id == newer:
            return
        replaced = protocol.event(REPLACED, {"connectionId": newer})
        room.provider.send(orjson.dumps(replaced))
        room.provider.close(CloseCode.REPLACED, "replaced by a newer provider")
        room.provider_id = room.provider = None

    def _to_apps(self, room: Room, data: bytes) -> None:
        for transport in room.apps.values():
            transport.send(data)
        for held in room.joining.values():
            held.append(data)
        self.observer.frame_out("event", len(room.apps))

    def on_request(self, agent: str, request_id: str, data: bytes) -> None:
        room = self.rooms.get(agent)
        if room is not None and room.provider is not None:
            room.provider.send(data)
            return
        # The registry pointed here but the provider just left: say so to the requester.
        kind = protocol.kind_of(orjson.loads(data))
        err = hub_error(ErrorType.PROVIDER_UNAVAILABLE, "the provider just disconnected", kind, request_id)
        self._spawn(
            self.broker.publish(agent, Publication(PublicationType.ERROR, orjson.dumps(err), request_id))
        )

    def on_broker_health(self, healthy: bool) -> None:
        self.broker_healthy = healthy

    def on_resync(self) -> None:
        """The broker's backend is back: re-register this node's providers."""
        for agent, room in self.rooms.items():
            if room.provider_id is not None:
                self._spawn(self.broker.claim_provider(agent, room.provider_id))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- request timeouts ------------------------------------------------------------

    async def _expire_requests(self) -> None:
        while True:
            deadline = self.router.pending.next_deadline()
            if deadline is None:
                self._timer_wake.clear()
                await self._timer_wake.wait()
                continue
            delay = deadline - self.router.clock()
            if delay > 0:
                await asyncio.sleep(delay)
            for connection_id, data in self.router.timeouts():
                self._send_to(connection_id, data, ErrorType.REQUEST_TIMEOUT)

    def _send_to(self, connection_id: str, data: bytes, error_type: str) -> None:
        transport = self.transports.get(connection_id)
        if transport is not None:
            self._send_error(transport, data, error_type)


def as_retained(data: bytes) -> bytes:
    """A stored event, replayed to a client that just joined: marked, and answering nothing."""
    event = orjson.loads(data)
    event.pop("replyTo", None)
    event["retained"] = True
    return orjson.dumps(event)


def _error_type(data: bytes) -> str:
    try:
        return str(orjson.loads(data)["data"]["errorType"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return "UNKNOWN"

