"""The WebSocket server: sockets in, frames to the node, frames out.

This is the only module that knows about ``websockets``. It owns what is
about a socket rather than about routing: the Hello deadline, frame size,
binary frames, the per-connection rate limit, slow consumers, origins,
shutdown, and the HTTP endpoints on the same port.
"""

from __future__ import annotations

import asyncio
from http import HTTPStatus
from types import TracebackType
from typing import Any, Self

import orjson
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from bridge.brokers import Broker
from bridge.hub import events, http, wire
from bridge.hub.config import HubConfig, make_broker, make_ssl_context
from bridge.hub.core.router import Joined, Limits, Peer, Router
from bridge.hub.metrics import CONTENT_TYPE, Metrics
from bridge.hub.node import Node
from bridge.protocol import CloseCode
from bridge.protocol import asyncapi
from bridge.protocol.catalog import Catalog


#: Seconds a client dropped as too slow has to read up to its close frame.
SLOW_CLIENT_GRACE = 2.0


class SocketTransport:
    """A :class:`bridge.node.Transport` over one ``websockets`` connection.

    ``send`` writes into the connection's buffer without awaiting, the way
    ``websockets.broadcast`` does, so one slow client never holds up a
    fan-out; the frames of one loop turn leave in one write (:class:`wire.Outbox`,
    shared by the server's connections). Text frames carry no per-connection
    state on the server side, which is what lets it write pre-serialized frames
    to the transport. A client whose unsent bytes pass ``max_buffer`` is too
    slow to keep: it is closed with 4008 and told to reconnect.
    """

    __slots__ = (
        "base_buffer", "closing", "closing_task", "connection", "connection_id", "max_buffer", "metrics", "outbox",
        "peer", "remote", "replay_left",
    )

    def __init__(self, connection: ServerConnection, max_buffer: int, metrics: Metrics, outbox: wire.Outbox) -> None:
        self.connection = connection
        self.outbox = outbox
        self.max_buffer = max_buffer
        #: ``max_buffer`` as configured; ``max_buffer`` is above it while a replay drains (:meth:`allow`).
        self.base_buffer = max_buffer
        #: Bytes of the replay :meth:`allow` was told of that are still to be written.
        self.replay_left = 0
        self.metrics = metrics
        self.closing = False
        self.closing_task: asyncio.Task[None] | None = None
        #: For the log lines about this connection (bridge.hub.events): its id, address and, once joined, who.
        self.connection_id = ""
        self.remote = _address(connection)
        self.peer: Peer | None = None

    def send(self, data: bytes) -> None:
        if self.max_buffer != self.base_buffer:
            self._allowance(len(data))
        if self.closing or self.outbox.write_text(self.connection, data, self.max_buffer):
            return
        self.drop_slow()

    def send_batch(self, payloads: list[bytes]) -> None:
        if self.max_buffer != self.base_buffer:
            self._allowance(sum(map(len, payloads)))
        if self.closing or self.outbox.write_texts(self.connection, payloads, self.max_buffer):
            return
        self.drop_slow()

    def allow(self, extra: int) -> None:
        """Let ``extra`` more bytes wait unsent without the client counting as slow.

        For a join's replay (a recovery may replay the whole history at
        once): its size is bounded by the history, not by the client's pace.
        The allowance ends once the backlog is back under the budget.
        """
        self.max_buffer = self.base_buffer + extra
        self.replay_left = extra
        connection = self.connection
        if isinstance(connection, wire.BudgetedConnection):
            connection.send_budget = max(connection.send_budget, self.max_buffer)

    def _allowance(self, size: int) -> None:
        """Count a frame against the replay; once it is written and has drained, back to the budget."""
        if self.replay_left > 0:
            self.replay_left -= size
        elif self.outbox.unsent(self.connection) <= self.base_buffer:
            self.max_buffer = self.base_buffer
            connection = self.connection
            if isinstance(connection, wire.BudgetedConnection):
                connection.send_budget = self.base_buffer

    def drop_slow(self) -> None:
        """Too much unsent: queue a 4008 close behind it, and cut the socket if it stays stuck."""
        if self.closing:
            return
        self.metrics.disconnected("too_slow")
        events.closed(self.connection_id, self.remote, self.peer, CloseCode.TOO_SLOW,
                      f"too slow to read: more than {self.max_buffer} bytes unsent", "too_slow")
        self.closing = True
        connection = self.connection
        self.outbox.flush(connection)  # the close frame goes behind what is queued
        wire.queue_close(connection, CloseCode.TOO_SLOW, "too slow; reconnect")
        asyncio.get_running_loop().call_later(SLOW_CLIENT_GRACE, wire.abort, connection)

    def close(self, code: int, reason: str, cause: str | None = None) -> None:
        if self.closing:
            return
        self.closing = True
        if self.peer is not None:  # a refused Hello is told by HubServer._hello, with why
            events.closed(self.connection_id, self.remote, self.peer, code, reason, cause)
        self.outbox.flush(self.connection)  # the close frame goes behind what is queued
        self.closing_task = asyncio.get_running_loop().create_task(self.connection.close(code, reason))

    async def wait_closed(self) -> None:
        """Let a close the hub asked for finish before the handler returns.

        When a handler returns, ``websockets`` closes with 1000; waiting here
        keeps the code the hub chose (1008, 4001, ...).
        """
        if self.closing_task is not None:
            await self.closing_task


class HubServer:
    """A running hub node: ``async with HubServer(config) as hub: ...``."""

    def __init__(self, config: HubConfig, *, catalog: Catalog | None = None, broker: Broker | None = None) -> None:
        self.config = config
        self.catalog = catalog if catalog is not None else Catalog.load(config.schema_dirs)
        self.metrics = Metrics(lambda: self.node.stats())
        self.router = Router(
            self.catalog,
            secret=config.secret,
            open_mode=config.open_mode,
            token_leeway=config.token_leeway,
            request_timeout=config.request_timeout,
            limits=Limits(
                rate=config.rate_limit,
                burst=config.rate_burst,
                flood_close_after=config.flood_close_after,
                connections_per_agent=config.max_connections_per_agent,
            ),
            on_frame=self.metrics.frame_in,
            on_request_done=self.metrics.request_done,
        )
        self.broker = broker if broker is not None else _make_broker(config)
        self.node = Node(self.router, self.broker, self.metrics)
        #: TLS from the certificate and key, or None (ws:// and http://); TLSFileError when unusable.
        self.ssl_context = make_ssl_context(config)
        self.static_dir = config.static_dir or http.builtin_static_dir()
        self.streams_dir = config.streams_dir or http.default_streams_dir()
        #: The names the hub answers under (the ``Host`` check against DNS rebinding).
        self.public_names = http.public_names(config.public_hosts, config.host)
        #: The files served over HTTP, cached, with the cap on unread responses.
        self.site = http.Site(
            http.SiteSettings(
                static_dir=self.static_dir,
                streams_dir=self.streams_dir,
                allow_origins=config.allow_origins,
                max_unread=config.max_unread_file_bytes,
                max_unread_per_address=config.max_unread_file_bytes_per_address,
                open_mode=config.open_mode,
            )
        )
        #: ``/asyncapi.json``: the API of this hub's catalog (bridge.protocol.asyncapi).
        self.asyncapi = http.HostedDocument(lambda host: orjson.dumps(
            asyncapi.document(self.catalog, host=host, protocol="wss" if config.tls else "ws")))
        #: The frames written to this server's connections in the current loop turn (one write each at its end).
        self.outbox = wire.Outbox()
        self._server: Server | None = None
        self._handlers: set[asyncio.Task[Any]] = set()
        #: Connections that have not said Hello yet, by remote address (bounded: see _admit).
        self._pending_hellos: dict[str, int] = {}
        self._pending_total = 0

    # --- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        await self.node.start()
        self._server = await serve(
            self._handle,
            self.config.host,
            self.config.port,
            process_request=self._process_request,
            process_response=self._process_response,
            max_size=self.config.max_frame_size,
            compression="deflate" if self.config.compression else None,
            close_timeout=2,
            # Incoming frames queue little: the rate limit is checked as they are read.
            max_queue=32,
            server_header="connect-bridge",
            create_connection=wire.BudgetedConnection,
            ssl=self.ssl_context,
        )

    async def close(self) -> None:
        """Stop accepting, close every client with 1001 (going away), stop the node."""
        if self._server is not None:
            self._server.close(close_connections=True)
            await self._server.wait_closed()
        await self.node.close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def serve_forever(self) -> None:
        assert self._server is not None
        await self._server.serve_forever()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        """The WebSocket URL: ``wss://`` when the hub serves TLS, else ``ws://``."""
        return f"{'wss' if self.config.tls else 'ws'}://{self.config.host}:{self.port}{http.WS_PATH}"

    @property
    def http_url(self) -> str:
        """The pages' base URL: ``https://`` when the hub serves TLS, else ``http://``."""
        return f"{'https' if self.config.tls else 'http'}://{self.config.host}:{self.port}"

    # --- HTTP ------------------------------------------------------------------

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        address = _address(connection)
        path = _path(request)
        repeated = http.repeated_header(request)
        if repeated is not None:
            return _refused(address, path, HTTPStatus.BAD_REQUEST, f"more than one {repeated} header")
        config = self.config
        # Against DNS rebinding: the hub answers only under its own names (docs/protocol.md, Transport).
        if not http.host_allowed(request, self.public_names):
            return _refused(address, path, HTTPStatus.MISDIRECTED_REQUEST, "unknown Host (see --public-host)",
                            host=request.headers.get("Host"))
        if path == http.WS_PATH:
            if not self._admit(address):
                return http.text(HTTPStatus.SERVICE_UNAVAILABLE, "too many connections waiting to say Hello; retry\n")
            if not http.origin_allowed(request, config.allow_origins):
                return _refused(address, path, HTTPStatus.FORBIDDEN, "origin not allowed (see --allow-origin)",
                                origin=request.headers.get("Origin"))
            return None
        if path in ("/healthz", "/metrics"):
            if not config.metrics_public and not http.is_loopback(address):
                return _refused(address, path, HTTPStatus.FORBIDDEN, "only from loopback unless --metrics-public")
            if path == "/healthz":
                return http.response(HTTPStatus.OK, orjson.dumps(self.node.stats()), "application/json")
            return http.response(HTTPStatus.OK, self.metrics.render(), CONTENT_TYPE)
        # /asyncapi.json: this hub's kinds (--schemas included), under the Host asked for.
        document = self.asyncapi.get(request) if path == http.ASYNCAPI_PATH else None
        return self.site.serve(request, path, address, wire.lost(connection), document)

    def _process_response(self, connection: ServerConnection, request: Request, response: Response) -> None:
        """Count every error response (ours and the library's); log a handshake ``websockets`` itself
        refused (not a WebSocket request: 426, 400, 405)."""
        if response.status_code >= HTTPStatus.BAD_REQUEST:
            self.metrics.http_error(response.status_code)
        problem = connection.protocol.handshake_exc
        if problem is not None and response.status_code != HTTPStatus.SWITCHING_PROTOCOLS:
            events.http_refused(_address(connection), _path(request), response.status_code,
                                f"not a WebSocket handshake: {problem}")

    # --- one connection ----------------------------------------------------------

    def _admit(self, address: str) -> bool:
        """Whether one more connection from ``address`` may wait for its Hello (in total and from it).

        Connections that never say Hello cost a descriptor each until their
        deadline: these caps keep a crowd of them from starving real clients.
        """
        if (
            self._pending_total >= self.config.max_pending_hellos
            or self._pending_hellos.get(address, 0) >= self.config.max_pending_hellos_per_address
        ):
            self.metrics.disconnected("too_many_pending_hellos")
            events.http_refused(address, http.WS_PATH, HTTPStatus.SERVICE_UNAVAILABLE,
                                f"too many connections waiting to say Hello ({self._pending_total} in all, "
                                f"{self._pending_hellos.get(address, 0)} from this address)")
            return False
        return True

    def _waiting(self, connection: ServerConnection, delta: int) -> None:
        address = _address(connection)
        count = self._pending_hellos.get(address, 0) + delta
        if count > 0:
            self._pending_hellos[address] = count
        else:
            self._pending_hellos.pop(address, None)
        self._pending_total += delta

    async def _handle(self, connection: ServerConnection) -> None:
        # The handshake is over and the hub never reads its headers again;
        # websockets keeps the request's and the response's for the life of
        # the connection (~3.4 KiB per idle app, measured). The objects stay:
        # websockets tells the handshake from later frames by ``request``.
        for message in (connection.request, connection.response):
            if message is not None:
                message.headers.clear()
        transport = SocketTransport(connection, self.config.max_send_buffer, self.metrics, self.outbox)
        if isinstance(connection, wire.BudgetedConnection):  # pongs and the like, before and after Hello
            connection.over_budget = transport.drop_slow
        connection_id = transport.connection_id = self.node.connect(transport)
        try:
            self._waiting(connection, +1)
            try:
                peer = await self._hello(connection, connection_id)
            finally:
                self._waiting(connection, -1)
            if peer is not None:
                if isinstance(connection, wire.BudgetedConnection):
                    connection.send_budget = transport.max_buffer  # the budget, or more while a replay drains
                transport.peer = peer
                events.joined(connection_id, transport.remote, peer)
                await self._serve(connection, transport, peer)
        except ConnectionClosed:
            pass
        finally:
            await self.node.disconnect(connection_id)
            await transport.wait_closed()

    async def _hello(self, connection: ServerConnection, connection_id: str) -> Peer | None:
        """Wait for Hello; the router joins the client or refuses it."""
        try:
            async with asyncio.timeout(self.config.hello_timeout):
                frame = await connection.recv()
        except TimeoutError:
            refusal = self.router.no_hello(connection_id, self.config.hello_timeout).outputs
        else:
            if not isinstance(frame, bytes):
                result = await self.node.hello(connection_id, frame)
                if isinstance(result, Joined):
                    return result.peer
                events.hello_refused(connection_id, _address(connection), frame, result.outputs)
                return None
            refusal = self.router.binary_frame(connection_id, joined=False)
        events.hello_refused(connection_id, _address(connection), None, refusal)
        await self.node.run(refusal)
        return None

    async def _serve(self, connection: ServerConnection, transport: SocketTransport, peer: Peer) -> None:
        # recv() in a loop rather than ``async for``: the connection's async
        # iterator is one more generator and frame kept by every idle connection.
        # A close ends both alike (ConnectionClosed, caught in _handle).
        while True:
            frame = await connection.recv()
            if isinstance(frame, bytes):
                await self.node.run(self.router.binary_frame(peer.connection_id))
            else:
                await self.node.receive(peer, frame)
            if transport.closing:  # the router closed it (flooding, binary frame) or it was too slow
                return


_make_broker = make_broker  # moved to bridge.hub.config


def _path(request: Request) -> str:
    """The request's path without its query string."""
    return request.path.split("?", 1)[0]


def _refused(address: str, path: str, status: HTTPStatus, reason: str, **details: str | None) -> Response:
    """An HTTP refusal: its log line (bridge.hub.events), and the response saying ``reason``."""
    events.http_refused(address, path, status, reason, **details)
    return http.text(status, reason + "\n")


def _address(connection: ServerConnection) -> str:
    """The remote IP address (without the port), or ``"?"`` when the socket has none."""
    remote = connection.remote_address
    return str(remote[0]) if isinstance(remote, tuple) and remote else "?"
