"""Retained frames kept in this process: per agent, one frame per slot, in first-set order.

:class:`RetainedFrames` is all the memory broker keeps. :class:`RetainedCopy`
is what a broker with a backplane keeps of the agents whose provider its
node holds, to serve them while the backplane is down and write them back
when it returns. Order follows :meth:`bridge.brokers.base.Broker.get_retained`:
a replaced slot keeps its place, a dropped slot set again goes last.
"""

from __future__ import annotations

from typing import Generic, TypeVar

#: What is kept per slot: the frame's bytes, or the frame and its position.
Frame = TypeVar("Frame")


class RetainedFrames(Generic[Frame]):
    """Retained frames by agent and slot (a frame is whatever the broker keeps per slot)."""

    __slots__ = ("_agents",)

    def __init__(self) -> None:
        #: agent -> slot -> frame; a dict keeps the order in which slots were first set.
        self._agents: dict[str, dict[str, Frame]] = {}

    def set(self, agent: str, slot: str, data: Frame) -> None:
        slots = self._agents.get(agent)
        if slots is None:
            slots = self._agents[agent] = {}
        slots[slot] = data

    def drop(self, agent: str, slot: str) -> None:
        slots = self._agents.get(agent)
        if slots is not None and slots.pop(slot, None) is not None and not slots:
            del self._agents[agent]

    def frames(self, agent: str) -> list[Frame]:
        """The agent's frames in slot order (a new list)."""
        return list(self._agents.get(agent, {}).values())

    def slots(self, agent: str) -> list[tuple[str, Frame]]:
        """The agent's (slot, frame) pairs in slot order (a new list)."""
        return list(self._agents.get(agent, {}).items())

    def forget(self, agent: str) -> None:
        """Forget every slot of the agent."""
        self._agents.pop(agent, None)

    def agents(self) -> list[str]:
        """The agents with retained frames (a new list)."""
        return list(self._agents)


class RetainedCopy:
    """A node's copy of the retained frames of the agents whose provider it holds.

    The broker records here every retained write it makes for such an agent,
    whether or not the backplane is reachable. The copy answers
    :meth:`~bridge.brokers.base.Broker.get_retained` while the backplane is
    down, and :meth:`write_back` is what a re-claim writes to the backplane:
    the drops that did not reach it, then every frame the node set.
    """

    __slots__ = ("_drops", "_frames")

    def __init__(self) -> None:
        self._frames: RetainedFrames[bytes] = RetainedFrames()
        #: agent -> slots whose drop has not reached the backplane (a dict as an ordered set).
        self._drops: dict[str, dict[str, None]] = {}

    def set(self, agent: str, slot: str, data: bytes) -> None:
        self._frames.set(agent, slot, data)

    def drop(self, agent: str, slot: str, *, queued: bool) -> None:
        """Forget the slot; ``queued``: its drop was queued for the backplane (else it is owed)."""
        self._frames.drop(agent, slot)
        if not queued:
            self.drop_failed(agent, slot)

    def drop_failed(self, agent: str, slot: str) -> None:
        """A queued drop did not reach the backplane: the write-back owes it."""
        self._drops.setdefault(agent, {})[slot] = None

    def frames(self, agent: str) -> list[bytes]:
        return self._frames.frames(agent)

    def write_back(self, agent: str) -> list[tuple[str, bytes | None]]:
        """The agent's writes to replay, in order: (slot, ``None``) drops, then (slot, frame) sets.

        Owed drops go first, so a slot dropped and set again while the
        backplane was away ends last in the order, as it would have.
        """
        drops: list[tuple[str, bytes | None]] = [(slot, None) for slot in self._drops.get(agent, ())]
        return drops + list(self._frames.slots(agent))

    def written_back(self, agent: str) -> None:
        """The write-back reached the backplane: no drop is owed any more."""
        self._drops.pop(agent, None)

    def forget(self, agent: str) -> None:
        self._frames.forget(agent)
        self._drops.pop(agent, None)
