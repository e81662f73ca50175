"""What a supervisor follows (protocol 1.2), and how its frames name their agent.

A supervisor follows agents by name, or every agent (``["*"]``). Frames to
it are the frames an app of the agent gets, with one more top-level key,
``agent``, first; its requests carry the same key naming their target, which
the hub takes off before it validates and forwards them (the provider sees
an ordinary request).
"""

from __future__ import annotations

from typing import Any, Final

import orjson

from bridge.protocol.tokens import EVERY_AGENT

__all__ = ["EVERY_AGENT", "covers", "tagged", "untag"]

_AGENT_KEY: Final = b'{"agent":'


def covers(agents: tuple[str, ...], agent: str) -> bool:
    """Whether a scope of ``agents`` (names, or ``("*",)``) includes ``agent``."""
    return agents == (EVERY_AGENT,) or agent in agents


def tagged(agent: str, data: bytes) -> bytes:
    """``data`` (a JSON object written by the hub) with ``"agent"`` as its first key.

    Made once per frame, whatever the number of supervisors: the bytes are
    spliced, not parsed (the hub writes every frame it forwards, so it is a
    compact object).
    """
    if data[:1] != b"{":  # not written by this hub (an older node?): the slow way
        envelope = orjson.loads(data)
        return orjson.dumps({"agent": agent, **envelope}) if isinstance(envelope, dict) else data
    rest = data[1:]
    return _AGENT_KEY + orjson.dumps(agent) + (b"," + rest if rest[:1] != b"}" else rest)


def untag(envelope: Any) -> tuple[str | None, bool]:
    """Take ``agent`` off a supervisor's envelope: (the name, or ``None``; whether it was there)."""
    if not isinstance(envelope, dict) or "agent" not in envelope:
        return None, False
    agent = envelope.pop("agent")
    return (agent if isinstance(agent, str) and 0 < len(agent) <= 64 else None), True
