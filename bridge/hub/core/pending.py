"""Requests in flight on this node, waiting for their provider's answer.

Pure bookkeeping with the clock passed in, so that timeouts are tested
without sleeping. A request is keyed by its agent and ``id``: answers come
back carrying only ``replyTo``, and two agents may well reuse the same ids.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

from bridge.protocol import Kind


@dataclass(slots=True)
class Pending:
    """One request waiting for an answer."""

    agent: str
    request_id: str
    connection_id: str
    kind: Kind
    started: float
    deadline: float
    #: The provider connection it was handed to (``None`` until known).
    provider: str | None = None


@dataclass(slots=True)
class PendingRequests:
    """The table of requests in flight, with a deadline heap for timeouts."""

    _by_key: dict[tuple[str, str], Pending] = field(default_factory=dict)
    _deadlines: list[tuple[float, int, tuple[str, str]]] = field(default_factory=list)
    _counter: int = 0

    def __len__(self) -> int:
        return len(self._by_key)

    def __contains__(self, key: tuple[str, str]) -> bool:
        return key in self._by_key

    def add(self, entry: Pending) -> None:
        key = (entry.agent, entry.request_id)
        self._by_key[key] = entry
        self._counter += 1
        heapq.heappush(self._deadlines, (entry.deadline, self._counter, key))

    def get(self, agent: str, request_id: str) -> Pending | None:
        return self._by_key.get((agent, request_id))

    def pop(self, agent: str, request_id: str) -> Pending | None:
        """Remove and return the request an answer refers to (``None`` if none waits)."""
        return self._by_key.pop((agent, request_id), None)

    def expired(self, now: float) -> list[Pending]:
        """Remove and return every request whose deadline has passed."""
        out: list[Pending] = []
        while self._deadlines and self._deadlines[0][0] <= now:
            deadline, _, key = heapq.heappop(self._deadlines)
            entry = self._by_key.get(key)
            # The key may have been answered, or reused by a later request.
            if entry is not None and entry.deadline == deadline:
                del self._by_key[key]
                out.append(entry)
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
            del self._by_key[key]
        return len(keys)

    def fail_agent(self, agent: str, *, except_provider: str | None = None) -> list[Pending]:
        """Remove the agent's requests handed to a provider other than ``except_provider``.

        Used when the agent's provider goes away or is replaced: those requests
        can no longer be answered, so they fail at once instead of timing out.
        """
        keys = [
            k
            for k, e in self._by_key.items()
            if e.agent == agent and (except_provider is None or e.provider != except_provider)
        ]
        return [self._by_key.pop(k) for k in keys]
