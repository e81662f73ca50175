"""Agent streams kept in this process: each agent's position and bounded history.

:class:`AgentStreams` is what the memory broker keeps to position
publications and answer :meth:`bridge.brokers.base.Broker.history`. Per
agent it holds an epoch (random, made when the stream is), the top offset,
and the last ``history_size`` positioned publications, none older than
``history_ttl`` seconds. At most ``limit`` streams are kept: past it, the
stream written least recently is dropped, and the agent gets a new epoch
when it is written again, so a position from the dropped stream never
recovers across what was lost.

The frames kept are also bounded in bytes, across every agent
(``max_bytes``): a provider may send frames up to the hub's frame limit,
and 10,000 agents times 1,000 such frames would be far more than a node
has. Past the budget the oldest entries of the stream written least
recently go first; a position among them then gets ``recovered: false``.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from itertools import islice

from bridge.brokers.base import HistoryRead, Position, Publication

#: Random bytes in an epoch (``secrets.token_urlsafe``: 11 characters).
EPOCH_BYTES = 8
#: Bytes of frames kept in all histories of a node, by default: 1,000 events of 650 bytes
#: (a SetAgentState) for about 400 agents (benchmarks/bench_recovery.py: 912 KiB per agent).
DEFAULT_MAX_BYTES = 256 * 1024 * 1024


def new_epoch() -> str:
    """A fresh random epoch: never equal to one this or another process made before."""
    return secrets.token_urlsafe(EPOCH_BYTES)


class _Stream:
    """One agent's stream: its epoch, its top offset and its recent publications."""

    __slots__ = ("entries", "epoch", "top")

    def __init__(self, history_size: int) -> None:
        self.epoch = new_epoch()
        self.top = 0
        #: (time written, publication with its position), oldest first; offsets consecutive.
        self.entries: deque[tuple[float, Publication]] = deque(maxlen=history_size)


class AgentStreams:
    """Positions and bounded history for every agent this process publishes on."""

    __slots__ = ("_bytes", "_clock", "_limit", "_max_bytes", "_size", "_streams", "_ttl")

    def __init__(
        self,
        history_size: int,
        history_ttl: float,
        *,
        limit: int,
        max_bytes: int = DEFAULT_MAX_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if history_size < 0 or history_ttl <= 0:
            raise ValueError("history_size must be 0 or more and history_ttl positive")
        self._size = history_size
        self._ttl = history_ttl
        self._limit = limit
        self._max_bytes = max_bytes
        #: Bytes of frames in every stream's entries (against ``max_bytes``).
        self._bytes = 0
        self._clock = clock
        #: agent -> stream, the least recently written first.
        self._streams: OrderedDict[str, _Stream] = OrderedDict()

    def __len__(self) -> int:
        return len(self._streams)

    def __contains__(self, agent: str) -> bool:
        return agent in self._streams

    def agents(self) -> list[str]:
        """The agents with a stream, the least recently written first (a new list)."""
        return list(self._streams)

    def append(self, agent: str, publication: Publication) -> Position:
        """Give ``publication`` the agent's next position, keep it in the history, return the position.

        With a history, the publication's ``data`` becomes an equal copy of exactly its size.
        """
        stream = self._streams.get(agent)
        if stream is None:
            stream = self._create(agent)
        else:
            self._streams.move_to_end(agent)
        stream.top += 1
        position = publication.position = Position(stream.epoch, stream.top)
        if self._size:
            now = self._clock()
            entries = stream.entries
            if entries and entries[0][0] <= now - self._ttl:
                self._trim(entries, now)
            # The publication itself is kept, with its data replaced by an equal copy of exactly
            # the frame's size: bytes that orjson.dumps made keep its whole working buffer
            # (8 KiB for a 640-byte frame), which a history of 1,000 per agent would hold for
            # its lifetime (benchmarks/bench_recovery.py: 4.2 MiB per agent). Nothing changes
            # a publication once the broker has positioned it.
            data = publication.data = bytes(memoryview(publication.data))
            if len(entries) == entries.maxlen:
                self._bytes -= len(entries[0][1].data)  # the oldest, pushed out by this one
            entries.append((now, publication))
            self._bytes += len(data)
            if self._bytes > self._max_bytes:
                self._shed()
        return position

    def top(self, agent: str) -> Position:
        """The agent's last position (offset 0 in a new epoch for an agent with no stream yet)."""
        stream = self._streams.get(agent)
        if stream is None:
            stream = self._create(agent)
        return Position(stream.epoch, stream.top)

    def read(self, agent: str, after: Position) -> HistoryRead:
        """Every publication after ``after`` if the history still holds them all (see ``Broker.history``)."""
        stream = self._streams.get(agent)
        if stream is None:
            stream = self._create(agent)
        top = Position(stream.epoch, stream.top)
        refused = HistoryRead(False, top, [])
        if not self._size or after.epoch != stream.epoch or not 0 <= after.offset <= stream.top:
            return refused
        if after.offset == stream.top:
            return HistoryRead(True, top, [])
        entries = stream.entries
        self._trim(entries, self._clock())
        if not entries:
            return refused
        first = stream.top - len(entries) + 1
        if after.offset < first - 1:
            return refused
        return HistoryRead(True, top, [publication for _, publication in islice(entries, after.offset - first + 1, None)])

    def drop(self, agent: str) -> None:
        """Forget the agent's stream: its next publication starts a new epoch at offset 1."""
        stream = self._streams.pop(agent, None)
        if stream is not None:
            self._forget(stream)

    @property
    def bytes_kept(self) -> int:
        """Bytes of frames in every agent's history (at most ``max_bytes`` after each append)."""
        return self._bytes

    def _create(self, agent: str) -> _Stream:
        stream = self._streams[agent] = _Stream(self._size)
        while len(self._streams) > self._limit:
            _, dropped = self._streams.popitem(last=False)
            self._forget(dropped)
        return stream

    def _forget(self, stream: _Stream) -> None:
        self._bytes -= sum(len(publication.data) for _, publication in stream.entries)
        stream.entries.clear()

    def _shed(self) -> None:
        """Drop the oldest entries of the least recently written streams until the budget holds.

        The stream just written is the most recent, so it loses entries only
        when it alone is over the budget. A stream left empty keeps its epoch
        and top (its positions are still known, only its history is gone) and
        moves to the back, so that the next shedding does not walk past it.
        """
        emptied: list[str] = []
        for agent, stream in self._streams.items():
            entries = stream.entries
            while entries and self._bytes > self._max_bytes:
                self._bytes -= len(entries.popleft()[1].data)
            if not entries:
                emptied.append(agent)
            if self._bytes <= self._max_bytes:
                break
        for agent in emptied:
            self._streams.move_to_end(agent)

    def _trim(self, entries: deque[tuple[float, Publication]], now: float) -> None:
        """Drop the entries older than the TTL (from the oldest: they are in time order)."""
        oldest = now - self._ttl
        while entries and entries[0][0] <= oldest:
            self._bytes -= len(entries.popleft()[1].data)
