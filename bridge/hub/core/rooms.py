"""Who on this node follows which agent: the core's rooms.

A room holds one agent's connections on this node by id: the apps attached
(they receive its events), the supervisors attached (they receive them with
the agent named), the apps and supervisors still joining (their live events
are held until their replay is sent) and the agent's provider, if it is here.
A connection is in one room per agent it follows: one for an app or a
provider, many for a supervisor (none for a supervisor of every agent: the
router keeps those apart).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Final

from bridge.hub.core.positions import Held, PositionLike

#: Departed providers a room remembers (to settle requests whose routing was under way).
DEPARTED_REMEMBERED: Final = 16


@dataclass(slots=True)
class Room:
    """This node's connections of one agent."""

    attached: set[str] = field(default_factory=set)
    #: Connections being greeted, with the live frames that arrived meanwhile (and their positions).
    joining: dict[str, list[Held]] = field(default_factory=dict)
    #: Supervisors following the agent by name, attached.
    supervisors: set[str] = field(default_factory=set)
    #: Supervisors being greeted, with the live frames that arrived meanwhile (and their positions).
    supervisors_joining: dict[str, list[Held]] = field(default_factory=dict)
    #: The agent's provider, when it is connected to this node.
    provider: str | None = None
    #: Whether ``provider_seen`` is known (from a publication, or the first joiner's snapshot).
    status_known: bool = False
    #: The provider the apps here were last told of, wherever it is (``None``: none connected).
    provider_seen: str | None = None
    #: Providers of the agent that left or were replaced, newest last: a request
    #: routed to one of them is answered by nobody.
    departed: deque[str] = field(default_factory=lambda: deque(maxlen=DEPARTED_REMEMBERED))

    def __len__(self) -> int:
        return (
            len(self.attached)
            + len(self.joining)
            + len(self.supervisors)
            + len(self.supervisors_joining)
            + (self.provider is not None)
        )

    @property
    def watched(self) -> bool:
        """Whether a supervisor follows the agent here by name."""
        return bool(self.supervisors or self.supervisors_joining)

    def hold(self, position: PositionLike | None, data: bytes) -> None:
        """Keep a live frame for every connection still joining (sent after its replay, unless in it)."""
        item = (position, data)
        for held in self.joining.values():
            held.append(item)
        for held in self.supervisors_joining.values():
            held.append(item)


class Rooms:
    """Rooms by agent. A room exists while it holds a connection."""

    def __init__(self) -> None:
        self._by_agent: dict[str, Room] = {}

    def __len__(self) -> int:
        return len(self._by_agent)

    def get(self, agent: str) -> Room | None:
        return self._by_agent.get(agent)

    def open(self, agent: str) -> tuple[Room, bool]:
        """The agent's room, and whether it was just made (then the node must follow the agent)."""
        room = self._by_agent.get(agent)
        if room is not None:
            return room, False
        room = self._by_agent[agent] = Room()
        return room, True

    def close_if_empty(self, agent: str) -> bool:
        """Remove the agent's room if it holds nobody; return whether it did."""
        room = self._by_agent.get(agent)
        if room is None or len(room):
            return False
        del self._by_agent[agent]
        return True

    def items(self) -> list[tuple[str, Room]]:
        return list(self._by_agent.items())

    def apps(self, agent: str) -> int:
        """The agent's app connections on this node, joined or joining."""
        room = self._by_agent.get(agent)
        return 0 if room is None else len(room.attached) + len(room.joining)
