"""Positions in the core: what an agent's frames carry, and what a joiner is owed.

The broker gives every event and provider change of an agent a position
(epoch, offset). The core only reads positions: it takes them as anything
with ``epoch`` and ``offset`` (:class:`PositionLike`; the broker's own
:class:`bridge.brokers.base.Position` is one, and so is :class:`At`, the
core's), so it needs nothing of the broker.

On the wire a position is two top-level keys appended to the frame,
``"offset":12,"epoch":"k3v9…"``: spliced into the bytes the hub wrote (a
compact JSON object ending in ``}``), once per frame, whatever the number of
receivers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol

import orjson

#: The keys only the hub may set on an agent's frame (a provider sending one is refused).
HUB_KEYS = ("offset", "epoch", "recovered")


class PositionLike(Protocol):
    """A position in an agent's stream (see :class:`bridge.brokers.base.Position`)."""

    @property
    def epoch(self) -> str: ...

    @property
    def offset(self) -> int: ...


class At(NamedTuple):
    """A position the core makes itself (from a client's ``Hello``)."""

    epoch: str
    offset: int


class RetainedLike(Protocol):
    """A retained frame and the position of the publication that set it (``None``: unknown)."""

    @property
    def data(self) -> bytes: ...

    @property
    def position(self) -> PositionLike | None: ...


class Kept(NamedTuple):
    """A retained frame as the core's callers may build one (tests, mostly)."""

    data: bytes
    position: PositionLike | None = None


class Missed(NamedTuple):
    """One publication a recovering client missed, read from the agent's history.

    ``data`` is an event's frame as published; ``None`` for a provider change,
    then ``connected`` says whether the provider arrived (true) or left.
    """

    position: PositionLike
    data: bytes | None
    connected: bool = False


#: A live frame held for a joiner, with its position (``None``: delivered without one).
Held = tuple[PositionLike | None, bytes]


def positioned(data: bytes, position: PositionLike, *, recovered: bool = False) -> bytes:
    """``data`` (a JSON object the hub wrote) with ``offset`` and ``epoch`` appended (and ``recovered``).

    The bytes are spliced before the final ``}`` with one formatting step
    (on the path of every event); an epoch that would need escaping (never
    one a broker makes: they are URL-safe) or a frame the hub did not write
    (not a compact object) takes the slow way, parsed and written anew.
    """
    epoch = position.epoch
    if data[-1:] == b"}" and data[:1] == b"{" and len(data) > 2 and _plain(epoch):
        if recovered:
            return b'%b,"recovered":true,"offset":%d,"epoch":"%b"}' % (data[:-1], position.offset, epoch.encode())
        return b'%b,"offset":%d,"epoch":"%b"}' % (data[:-1], position.offset, epoch.encode())
    envelope = orjson.loads(data)
    if not isinstance(envelope, dict):
        return data
    if recovered:
        envelope["recovered"] = True
    envelope["offset"] = position.offset
    envelope["epoch"] = epoch
    return orjson.dumps(envelope)


def _plain(epoch: str) -> bool:
    """Whether ``epoch`` goes into JSON as it is (printable ASCII, no quote, no backslash)."""
    return epoch.isascii() and epoch.isprintable() and '"' not in epoch and "\\" not in epoch


def is_after(position: PositionLike | None, last: PositionLike | None) -> bool:
    """Whether a held frame at ``position`` is new to a joiner whose replay ended at ``last``.

    A frame without a position, or of another epoch than the replay's, is
    always sent: the hub cannot tell it was replayed, and sending it twice
    is better than losing it.
    """
    if position is None or last is None or position.epoch != last.epoch:
        return True
    return position.offset > last.offset


def unsent(held: Sequence[Held], last: PositionLike | None) -> list[bytes]:
    """The held frames a joiner has not had yet, in the order they came."""
    return [data for position, data in held if is_after(position, last)]
