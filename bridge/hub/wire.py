"""The one place the hub reaches into ``websockets`` internals, for the speed of fan-out.

``websockets`` serializes a frame per connection and per ``send``. A hub
fanning one event out to N apps would serialize it N times and await N
writes; instead, the hub serializes the frame once and writes the same bytes
into each connection's transport without awaiting, as ``websockets.broadcast``
does. That relies on details of ``websockets.asyncio.connection.Connection``
that are not public API:

* ``connection.protocol`` (the sans-I/O protocol: ``state``, ``extensions``,
  ``send_text``, ``send_close``) and ``connection.send_data()`` (flushes what
  the protocol produced to the transport);
* ``connection.transport`` (the asyncio transport: ``write``,
  ``get_write_buffer_size``, ``abort``);
* that a server's unmasked text frame without extensions is the same bytes
  for every connection (no per-connection state in the frame).

``tests/test_wire.py`` checks each of these against the installed release, and
``pyproject.toml`` bounds the ``websockets`` versions it was checked with. A
release that changes them fails that test loudly instead of corrupting frames.
"""

from __future__ import annotations

from typing import Final

from websockets.asyncio.server import ServerConnection
from websockets.frames import Frame, Opcode
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
        self.frame = Frame(Opcode.TEXT, b"").serialize(mask=False, extensions=[])

    def text(self, payload: bytes) -> bytes:
        if payload is not self.payload:
            self.frame = Frame(Opcode.TEXT, payload).serialize(mask=False, extensions=[])
            self.payload = payload
        return self.frame


_frames = FrameCache()


_OPEN: Final = State.OPEN


def write_text(connection: ServerConnection, data: bytes, max_buffer: int) -> bool:
    """Queue one text frame without awaiting; ``False`` (and nothing written) past ``max_buffer``.

    Pre-serialized unless an extension must see the frame. A connection that
    is no longer open takes nothing and counts as written. One call per
    recipient of a fan-out: keep it lean.
    """
    protocol = connection.protocol
    if protocol.state is not _OPEN:
        return True
    transport = connection.transport
    if transport.get_write_buffer_size() > max_buffer:
        return False
    if protocol.extensions:  # compression: each connection compresses its own frames
        protocol.send_text(data)
        connection.send_data()
    else:
        transport.write(_frames.text(data))
    return True


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
