"""Positions in an agent's event stream, and what a client remembers of them to recover.

The hub gives every event it delivers for an agent two top-level keys:
``offset`` (grows by one per event of that agent) and ``epoch`` (names the
agent's stream; it changes when the hub loses its history). A client that
remembers the last position it saw per agent can ask, in its next ``Hello``,
for every event after it (``data.recover``); the hub then replays them with
``recovered: true`` and says in ``Welcome.message.recovered`` whether it could
(docs/protocol.md has the wire format and the delivery guarantee).

:class:`Position` is one position; :class:`PositionBook` is the per-agent memory
a client keeps and the rules it follows. The book does no I/O, so the Python
client uses it as it is and its rules are tested without a hub.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

import orjson

from bridge.protocol.tokens import EVERY_AGENT, MAX_SCOPE

__all__ = ["Position"]

log = logging.getLogger("bridge.client")

#: The longest epoch the hub sends (schemas/defs.json).
MAX_EPOCH: Final = 64
#: Bytes of ``recover`` entries a supervisor's Hello may carry. The hub closes a
#: connection whose frame is over its ``max_frame_size`` (64 KiB by default), and the
#: Hello also carries the token; agents left out get the retained state instead.
RECOVER_BUDGET: Final = 48 * 1024


@dataclass(frozen=True, slots=True)
class Position:
    """Where an event stands in its agent's stream: the stream's ``epoch`` and the event's ``offset``.

    ``str(position)`` is ``EPOCH:OFFSET``, the form ``connect-bridge listen --since`` takes.
    """

    epoch: str
    offset: int

    def __post_init__(self) -> None:
        if not isinstance(self.epoch, str) or not 1 <= len(self.epoch) <= MAX_EPOCH:
            raise ValueError(f"an epoch is a string of 1 to {MAX_EPOCH} characters, not {self.epoch!r}")
        if not isinstance(self.offset, int) or isinstance(self.offset, bool) or self.offset < 0:
            raise ValueError(f"an offset is an integer >= 0, not {self.offset!r}")

    def __str__(self) -> str:
        return f"{self.epoch}:{self.offset}"

    @classmethod
    def parse(cls, text: str) -> Position:
        """``EPOCH:OFFSET`` (as printed by ``str()``) -> the position; :class:`ValueError` says what is wrong."""
        epoch, colon, offset = text.strip().rpartition(":")
        if not colon or not epoch:
            raise ValueError(f"{text!r} is not EPOCH:OFFSET (e.g. k3v9Xq2bT0c:12)")
        if not offset.isascii() or not offset.isdigit():
            raise ValueError(f"{text!r}: the offset {offset!r} is not a whole number >= 0")
        return cls(epoch, int(offset))

    @classmethod
    def of(cls, envelope: Mapping[str, Any]) -> Position | None:
        """The position a frame carries (its top-level ``epoch`` and ``offset``), or None
        when it carries none (errors, Welcome, an event delivered while the hub's
        backplane was down) or a malformed one."""
        epoch = envelope.get("epoch")
        offset = envelope.get("offset")
        if (
            not isinstance(epoch, str)
            or not isinstance(offset, int)
            or isinstance(offset, bool)
            or offset < 0
            or not 1 <= len(epoch) <= MAX_EPOCH
        ):
            return None
        return cls(epoch, offset)

    def wire(self) -> dict[str, Any]:
        """The ``{"epoch", "offset"}`` object of ``Hello.data.recover``."""
        return {"epoch": self.epoch, "offset": self.offset}


class PositionBook:
    """The last position a client saw per agent, and the recovery rules that go with it.

    * Every event that carries a position moves its agent's entry: to the
      highest offset seen in the entry's epoch, and a new epoch replaces the
      entry. A retained replay (``retained: true``) never lowers an entry and
      only starts one (an older frame's epoch does not replace a newer one's).
    * A live or recovered event whose offset is not above the entry's, in the
      same epoch, was delivered already: :meth:`admit` says to drop it, and
      :attr:`duplicates` counts it (the hub should never send one; this is a
      guard).
    * After each ``Welcome``, only the agents the hub recovered keep their entry:
      for the others the hub sends the retained state, whose positions start
      the entries again (and a stale offset must not make the guard drop that
      state).
    """

    def __init__(self) -> None:
        # Insertion order is the order of the last update: the most recent last.
        self._by_agent: dict[str, Position] = {}
        #: Events dropped because their position had been delivered already.
        self.duplicates = 0

    @property
    def view(self) -> Mapping[str, Position]:
        """A read-only, live view: agent -> the last position seen."""
        return MappingProxyType(self._by_agent)

    def get(self, agent: str) -> Position | None:
        return self._by_agent.get(agent)

    def set(self, agent: str, position: Position) -> None:
        self._by_agent.pop(agent, None)
        self._by_agent[agent] = position

    def admit(self, agent: str, envelope: Mapping[str, Any]) -> bool:
        """Note the event's position for ``agent``; False when it must be dropped as a duplicate."""
        position = Position.of(envelope)
        if position is None:
            return True
        known = self._by_agent.get(agent)
        if envelope.get("retained") is True:
            if known is None or (known.epoch == position.epoch and position.offset > known.offset):
                self.set(agent, position)
            return True
        if known is not None and known.epoch == position.epoch and position.offset <= known.offset:
            self.duplicates += 1
            log.debug(
                "dropped an event of %s at %s: %s was seen already (%d duplicates so far)",
                agent, position, known, self.duplicates,
            )
            return False
        self.set(agent, position)
        return True

    def keep_only(self, recovered: Mapping[str, Position]) -> None:
        """After a Welcome: the recovered agents keep (at least) the position they asked
        from; every other entry is forgotten."""
        kept: dict[str, Position] = {}
        for agent, asked in recovered.items():
            mine = self._by_agent.get(agent)
            same = mine is not None and mine.epoch == asked.epoch and mine.offset >= asked.offset
            kept[agent] = mine if same and mine is not None else asked
        self._by_agent = kept

    def supervisor_recover(self, scope: tuple[str, ...], budget: int = RECOVER_BUDGET) -> dict[str, Position]:
        """What a supervisor asks to recover: its agents with a position, in ``scope`` (all
        for ``("*",)`` or an unknown scope ``()``), the most recently updated first, at most
        :data:`~bridge.protocol.tokens.MAX_SCOPE` of them and ``budget`` bytes of JSON."""
        wanted = None if not scope or EVERY_AGENT in scope else frozenset(scope)
        asked: dict[str, Position] = {}
        used = 0
        for agent in reversed(self._by_agent):
            if wanted is not None and agent not in wanted:
                continue
            position = self._by_agent[agent]
            used += len(orjson.dumps({agent: position.wire()}))
            if used > budget or len(asked) >= MAX_SCOPE:
                break
            asked[agent] = position
        return asked
