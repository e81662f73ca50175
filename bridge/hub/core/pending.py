"""Requests in flight on this node, waiting for their provider's answer.

Pure bookkeeping with the clock passed in, so that timeouts are tested
without sleeping. A request has two ids:

* its **bus id** (``request_id``), which the hub makes for every request and
  the provider sees: answers come back carrying it as ``replyTo``. It is
  unguessable and unique, so no client can pre-claim another's;
* its **requester's id** (``reply_to``), the ``id`` the app chose (or the bus
  id when it chose none): what the requester's answer and errors carry.

So two apps may use the same ids, and ids are a per-connection matter: a
connection may not reuse one of its own while that request is in flight.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

from bridge.protocol import Kind


@dataclass(slots=True)
class Pending:
    """One request waiting for an answer."""

    agent: str
    #: The bus id: what the provider sees as ``id`` and answers as ``replyTo``.
    request_id: str
    connection_id: str
    kind: Kind
    started: float
    deadline: float
    #: The requester's own id for it: what its answer carries as ``replyTo``.
    reply_to: str = ""
    #: The provider connection it was handed to (``None`` until known).
    provider: str | None = None
    #: The requester is a supervisor: what answers it names the agent.
    watch: bool = False

    def __post_init__(self) -> None:
        if not self.reply_to:
            self.reply_to = self.request_id


@dataclass(slots=True)
class PendingRequests:
    """The table of requests in flight, with a deadline heap for timeouts."""

    _by_key: dict[tuple[str, str], Pending] = field(default_factory=dict)
    #: (connection, requester's id) -> bus key: a connection's ids in flight.
    _by_requester: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)
    _deadlines: list[tuple[float, int, tuple[str, str]]] = field(default_factory=list)
    _counter: int = 0

    def __len__(self) -> int:
        return len(self._by_key)

    def __contains__(self, key: tuple[str, str]) -> bool:
        return key in self._by_key

    def in_flight(self, connection_id: str, reply_to: str) -> bool:
        """Whether ``connection_id`` already waits for an answer to its request ``reply_to``."""
        return (connection_id, reply_to) in self._by_requester

    def add(self, entry: Pending) -> None:
        key = (entry.agent, entry.request_id)
        self._by_key[key] = entry
        self._by_requester[(entry.connection_id, entry.reply_to)] = key
        self._counter += 1
        heapq.heappush(self._deadlines, (entry.deadline, self._counter, key))

    def get(self, agent: str, request_id: str) -> Pending | None:
        return self._by_key.get((agent, request_id))

    def pop(self, agent: str, request_id: str) -> Pending | None:
        """Remove and return the request an answer refers to (``None`` if none waits)."""
        entry = self._by_key.pop((agent, request_id), None)
        if entry is not None:
            self._by_requester.pop((entry.connection_id, entry.reply_to), None)
        return entry

    def expired(self, now: float) -> list[Pending]:
        """Remove and return every request whose deadline has passed."""
        out: list[Pending] = []
        while self._deadlines and self._deadlines[0][0] <= now:
            deadline, _, key = heapq.heappop(self._deadlines)
            entry = self._by_key.get(key)
            # The key may have been answered (bus ids are never reused).
            if entry is not None and entry.deadline == deadline:
                out.append(entry)
                self.pop(*key)
        return out

    def next_deadline(self) -> float | None:
        """When the earliest request still waiting times out."""
        while self._deadlines and self._by_key.get(self._deadlines[0][2]) is None:
            heapq.heappop(self._deadlines)
        return self._deadlines[0][0] if self._deadlines else None

    def drop_connection(self, connection_id: str) -> int:
        """Forget a requester that left; a late answer is then simply discarded."""
        keys = [k for k, e in self._by_key.items() if e.connection_id == connection_id]
        for key in keys:
            self.pop(*key)
        return len(keys)

    def fail_agent(self, agent: str, gone: frozenset[str] | set[str]) -> list[Pending]:
        """Remove the agent's requests handed to a provider that is ``gone``.

        Used when the agent's provider goes away or is replaced: those requests
        can no longer be answered, so they fail at once instead of timing out.
        A request whose provider is not known yet (its routing still under
        way) stays: :meth:`Router.forwarded` settles it when the routing ends.
        """
        keys = [k for k, e in self._by_key.items() if e.agent == agent and e.provider in gone]
        return [entry for key in keys if (entry := self.pop(*key)) is not None]
