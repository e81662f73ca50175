"""The one place the hub reaches into ``websockets`` internals, for the speed of fan-out.

``websockets`` serializes a frame per connection and per ``send``. A hub
fanning one event out to N apps would serialize it N times and await N
writes; instead, the hub serializes the frame once and writes the same bytes
into each connection's transport without awaiting, as ``websockets.broadcast``
does, and the frames one connection gets in one turn of the event loop in one
write (:class:`Outbox`). That relies on details of ``websockets.asyncio.connection.Connection``
that are not public API:

* ``connection.protocol`` (the sans-I/O protocol: ``state``, ``extensions``,
  ``send_text``, ``send_close``) and ``connection.send_data()`` (flushes what
  the protocol produced to the transport);
* ``connection.transport`` (the asyncio transport: ``write``,
  ``get_write_buffer_size``, ``abort``), written to by :class:`Outbox`, which
  coalesces the frames of one loop turn into one write per connection;
* that a server's unmasked text frame without extensions is the same bytes
  for every connection (no per-connection state in the frame);
* ``Connection.data_received`` (websockets answers pings from there, without
  going through anything of ours), extended by :class:`BudgetedConnection`
  and installed with ``serve(create_connection=...)``;
* ``Connection.connection_lost_waiter``, the future that resolves when the
  socket is gone (:func:`lost`), which tells when a plain HTTP response has
  left the hub's memory;
* for the memory of an idle connection (issue 15: each of these is kept per
  connection for its whole life): ``Connection.drain_waiters`` and the
  assembler's ``recv_messages.frames.queue`` (deques, replaced by lists),
  ``Connection.logger`` and ``protocol.logger`` (one shared logger instead of
  an adapter per connection), and ``connection.request``/``response``, whose
  headers the server clears once the handshake is over.

``tests/test_wire.py`` checks each of these against the installed release, and
``pyproject.toml`` bounds the ``websockets`` versions it was checked with. A
release that changes them fails that test loudly instead of corrupting frames.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Any, Final

from websockets.asyncio.server import ServerConnection
from websockets.frames import Frame
from websockets.protocol import State

#: The ``websockets`` major versions this module was checked with (see pyproject.toml).
CHECKED_MAJORS: Final = range(14, 18)


class FrameCache:
    """The wire form of the payload being fanned out, built once for all its recipients.

    The payload object is held, so its identity cannot be reused by another
    payload while its frame is cached.
    """

    __slots__ = ("frame", "payload")

    def __init__(self) -> None:
        self.payload = b""
        self.frame = text_frame(b"")

    def text(self, payload: bytes) -> bytes:
        if payload is not self.payload:
            self.frame = text_frame(payload)
            self.payload = payload
        return self.frame


def text_frame(payload: bytes) -> bytes:
    """A server's final, unmasked text frame without extensions (RFC 6455, 5.2).

    The header is two bytes, then the length in 2 or 8 more past 125 bytes.
    Written here rather than through ``websockets.frames.Frame.serialize``,
    which checks and builds an object per frame: this runs once per event and
    per answer. ``tests/test_wire.py`` checks it byte for byte against the library.
    """
    size = len(payload)
    if size < 126:
        return bytes((0x81, size)) + payload
    if size < 65536:
        return b"\x81\x7e" + size.to_bytes(2, "big") + payload
    return b"\x81\x7f" + size.to_bytes(8, "big") + payload


_frames = FrameCache()


class BatchCache:
    """The wire form of a list of payloads fanned out together: their frames, joined once for all recipients.

    The list is held, so its identity cannot be reused while its bytes are cached.
    """

    __slots__ = ("joined", "payloads")

    def __init__(self) -> None:
        self.payloads: list[bytes] = []
        self.joined = b""

    def frames(self, payloads: list[bytes]) -> bytes:
        if payloads is not self.payloads:
            self.joined = b"".join([text_frame(payload) for payload in payloads])
            self.payloads = payloads
        return self.joined


_batches = BatchCache()


_OPEN: Final = State.OPEN

_LOGGER: Final = logging.getLogger("websockets.server")

#: Unsent bytes a connection may have before it has said Hello: what the hub
#: sends then (a Welcome and its replay, or a refusal) is far smaller.
PRE_HELLO_BUDGET: Final = 64 * 1024


class FrameQueue(list[Frame]):
    """A connection's unread frames: a list with the two deque methods websockets calls on it.

    websockets queues them in a deque, and an empty deque holds a 64-slot
    block (760 bytes per idle connection); an empty list holds 56. The queue
    never passes ``max_queue`` frames (32), so taking from the front of a list
    costs nothing that matters.
    """

    __slots__ = ()

    def popleft(self) -> Frame:
        return self.pop(0)

    def extendleft(self, frames: Iterable[Frame]) -> None:
        for frame in frames:
            self.insert(0, frame)


class BudgetedConnection(ServerConnection):
    """A server connection dropped when its unsent bytes pass its budget, whatever filled them.

    The hub's own frames are checked as they are written (:func:`write_text`).
    What ``websockets`` writes by itself is not: above all the pong for every
    ping, so a client that pings and never reads would grow the hub's memory
    without bound. This checks after every read, which is when such writes
    happen. The budget is :data:`PRE_HELLO_BUDGET` until the server raises it
    for a joined client; ``over_budget`` is told once the budget is passed.
    """

    # Slots, not instance attributes: two more keys in a ServerConnection's
    # __dict__ would cost each idle connection about 1.3 KiB (the instance
    # dicts stop sharing their keys).
    __slots__ = ("over_budget", "send_budget")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # One logger for every connection: websockets wraps its logger per
        # connection (a LoggerAdapter, a dict and a weakref proxy, ~0.3 KiB)
        # only to name the connection in its own debug lines.
        self.protocol.logger = self.logger = _LOGGER
        self.send_budget: int = PRE_HELLO_BUDGET
        self.over_budget: Callable[[], None] | None = None
        # A list for websockets' deque of drain waiters: an empty deque holds a
        # 64-slot block (760 bytes per connection), an empty list 56 bytes.
        # websockets only appends, removes and iterates it, while writing is paused.
        self.drain_waiters = []  # type: ignore[assignment]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.recv_messages.frames.queue = FrameQueue()  # type: ignore[assignment]  # see FrameQueue

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        unsent = self.transport.get_write_buffer_size()
        if unsent > self.send_budget and self.over_budget is not None:
            self.over_budget()  # a close queued behind what is buffered, the socket cut after a grace
            if unsent > 2 * self.send_budget:
                # Still sending while never reading (a ping flood): no grace.
                self.transport.abort()


class Outbox:
    """Text frames written without awaiting, coalesced: one transport write per connection per loop turn.

    Written one ``transport.write`` each, frames cost a system call each: a
    fan-out that reads a burst of events from its provider in one turn of the
    event loop made one call per event and per app. Queued here instead, the
    frames a connection gets during one turn leave together when the turn ends
    (:meth:`flush_all`, scheduled with ``call_soon`` by the first frame queued):
    still one WebSocket frame per envelope, in the order queued, in one write.

    Control frames ``websockets`` writes by itself (pongs) may go ahead of
    queued frames, which WebSocket allows; whoever closes a connection calls
    :meth:`flush` first, so a close frame never goes ahead of them. Frames
    still queued when the connection stopped being open (the client closed)
    are dropped: nothing may follow a close frame.

    A connection costs nothing here until it is sent to: its state lives only
    for the turn in which it has frames, as two dictionary entries: the bytes
    queued (the first frame as it is, then a ``bytearray``) and the
    transport's backlog when the turn began. Neither is an object the cyclic
    garbage collector tracks, on purpose: one tracked object per recipient
    and turn, alive until the flush, was promoted by every collection that
    ran meanwhile, and at a thousand apps that made full collections (tens of
    milliseconds) come every few seconds even at 20 events/s.
    """

    __slots__ = ("_backlog", "_queued")

    def __init__(self) -> None:
        #: Per connection with frames this turn: the bytes to write.
        self._queued: dict[ServerConnection, bytes | bytearray] = {}
        #: The transport's unsent bytes when the turn's first frame was queued: nothing of
        #: ours is written to it until the flush, so it is read once per turn, not per frame.
        self._backlog: dict[ServerConnection, int] = {}

    def write_text(self, connection: ServerConnection, data: bytes, max_buffer: int) -> bool:
        """Queue one text frame; ``False`` (and nothing queued) past ``max_buffer`` unsent bytes.

        Pre-serialized unless an extension must see the frame: a compressing
        connection writes through its protocol at once (its frames are its
        own, and are never queued here). A connection that is no longer open
        takes nothing and counts as written. One call per recipient of a
        fan-out: keep it lean.
        """
        return self._queue(connection, _frames.text(data), max_buffer, data)

    def write_texts(self, connection: ServerConnection, payloads: list[bytes], max_buffer: int) -> bool:
        """Queue each payload as its own text frame, in order; as :meth:`write_text` for the budget.

        For a batch fanned out to many connections (:meth:`bridge.hub.node.Node` batches
        the events of one turn): the frames are built and joined once per batch
        (:class:`BatchCache`), so each recipient costs one queue step, not one per frame.
        """
        return self._queue(connection, _batches.frames(payloads), max_buffer, payloads)

    def _queue(self, connection: ServerConnection, frames: bytes, max_buffer: int,
               payloads: bytes | list[bytes]) -> bool:
        """Queue ``frames`` (the wire form of ``payloads``: one payload or a batch) for the turn's end."""
        protocol = connection.protocol
        if protocol.state is not _OPEN:
            return True
        queued = self._queued.get(connection)
        if queued is not None:  # the turn's second write or later: uncompressed, its backlog known
            if self._backlog[connection] + len(queued) > max_buffer:
                return False
            if type(queued) is bytes:
                queued = self._queued[connection] = bytearray(queued)
            queued += frames
            return True
        backlog = connection.transport.get_write_buffer_size()
        if backlog > max_buffer:
            return False
        if protocol.extensions:  # compression: each connection compresses its own frames
            for payload in [payloads] if isinstance(payloads, bytes) else payloads:
                protocol.send_text(payload)
            connection.send_data()
            return True
        if not self._queued:
            asyncio.get_running_loop().call_soon(self.flush_all)
        self._queued[connection] = frames
        self._backlog[connection] = backlog
        return True

    def unsent(self, connection: ServerConnection) -> int:
        """Bytes written to the connection and not yet sent, queued ones included."""
        queued = self._queued.get(connection)
        return connection.transport.get_write_buffer_size() + (len(queued) if queued is not None else 0)

    def flush(self, connection: ServerConnection) -> None:
        """Write the connection's queued frames now (before a close frame, which must come last)."""
        queued = self._queued.pop(connection, None)
        if queued is not None:
            del self._backlog[connection]
            _write(connection, queued)

    def flush_all(self) -> None:
        """The end of a loop turn: every connection's queued frames, one write each."""
        queued, self._queued = self._queued, {}
        self._backlog = {}
        for connection, data in queued.items():
            _write(connection, data)


def _write(connection: ServerConnection, data: bytes | bytearray) -> None:
    if connection.protocol.state is _OPEN:
        connection.transport.write(data)


def lost(connection: ServerConnection) -> asyncio.Future[None]:
    """A future that resolves once the connection's socket is gone."""
    return connection.connection_lost_waiter


def queue_close(connection: ServerConnection, code: int, reason: str) -> None:
    """Queue a close frame behind what is buffered, without waiting for the peer.

    ``ServerConnection.close`` would wait for the buffer to drain, which a
    client that never reads never lets happen.
    """
    connection.protocol.send_close(code, reason)
    connection.send_data()


def abort(connection: ServerConnection) -> None:
    """Cut the socket at once."""
    connection.transport.abort()
