"""Every Redis name the broker uses: one key-space per prefix.

Everything lives under one prefix ``P`` (:attr:`RedisSettings.prefix`), so
several deployments can share a Redis and never see each other:

==========================  =======  ==================================================
name                        kind     holds
==========================  =======  ==================================================
``P:agent:{agent}``         channel  the agent's publications; a node subscribes only
                                     while it follows the agent
``P:node:{node_id}``        channel  requests for the providers that node holds
``P:provider:{agent}``      string   ``"{node_id} {connection_id}"``; expires
                                     ``provider_ttl`` after its holder's last heartbeat
``P:retained:{agent}``      hash     the agent's retained frames, one per slot (layout
                                     in :mod:`bridge.brokers.redis.retained`); the whole
                                     hash expires ``retained_ttl`` after its last write
``P:position:{agent}``      hash     the agent's stream position: ``e`` its epoch, ``o``
                                     its last offset, ``p`` the last provider announced
                                     (layout in :mod:`bridge.brokers.redis.history`);
                                     expires like the retained hash, never sooner than
                                     the history
``P:stream:{agent}``        stream   the agent's recent positioned publications (its
                                     history), bounded by ``history_size`` and
                                     ``history_ttl``; expires ``history_ttl`` after its
                                     last entry
==========================  =======  ==================================================
"""

from __future__ import annotations


class RedisKeys:
    """The names of one prefix's keys and channels."""

    __slots__ = ("_agent", "_node", "prefix")

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self._agent = f"{prefix}:agent:".encode()
        self._node = f"{prefix}:node:".encode()

    def agent_channel(self, agent: str) -> bytes:
        return self._agent + agent.encode()

    def every_agent_pattern(self) -> bytes:
        """The pattern of every agent's channel (the prefix's glob characters escaped)."""
        return f"{_escape(self.prefix)}:agent:*".encode()

    def provider_pattern(self) -> str:
        return f"{_escape(self.prefix)}:provider:*"

    def retained_pattern(self) -> str:
        return f"{_escape(self.prefix)}:retained:*"

    def agent_of(self, channel: bytes) -> str | None:
        """The agent whose channel this is, or ``None`` for another channel."""
        return channel[len(self._agent) :].decode() if channel.startswith(self._agent) else None

    @property
    def node_channels(self) -> bytes:
        """What every node channel starts with (a script appends the node id)."""
        return self._node

    def node_channel(self, node_id: str) -> bytes:
        return self._node + node_id.encode()

    def provider(self, agent: str) -> str:
        return f"{self.prefix}:provider:{agent}"

    def retained(self, agent: str) -> str:
        return f"{self.prefix}:retained:{agent}"

    def position(self, agent: str) -> str:
        return f"{self.prefix}:position:{agent}"

    def stream(self, agent: str) -> str:
        return f"{self.prefix}:stream:{agent}"


def _escape(text: str) -> str:
    """``text`` with Redis glob characters escaped, for a pattern that matches it literally."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
