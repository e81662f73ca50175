"""The name of a message kind: ``channel/topic/subtopic``."""

from __future__ import annotations

from typing import NamedTuple


class Kind(NamedTuple):
    """The name of a message kind: ``channel/topic/subtopic``."""

    channel: str
    topic: str
    subtopic: str

    def __str__(self) -> str:
        return f"{self.channel}/{self.topic}/{self.subtopic}"

    @classmethod
    def parse(cls, text: str) -> Kind:
        """``"Amazon/Agent/SetNotReady"`` -> ``Kind("Amazon", "Agent", "SetNotReady")``."""
        parts = text.split("/")
        if len(parts) != 3 or not all(parts):
            raise ValueError(f"a kind is channel/topic/subtopic, not {text!r}")
        return cls(*parts)

    def as_dict(self) -> dict[str, str]:
        return {"channel": self.channel, "topic": self.topic, "subtopic": self.subtopic}
