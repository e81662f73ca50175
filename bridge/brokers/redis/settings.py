"""The Redis broker's settings and their defaults: the one place they are spelled.

``bridge.hub.config.HubConfig`` takes its Redis defaults from here, and the
command line and the ``BRIDGE_REDIS_*`` environment variables are derived
from that configuration; the broker itself reads no environment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from bridge.brokers.base import DEFAULT_HISTORY_SIZE, DEFAULT_HISTORY_TTL

DEFAULT_PREFIX: Final = "connect-bridge"
DEFAULT_HEARTBEAT: Final = 2.0
DEFAULT_PROVIDER_TTL: Final = 6.0
DEFAULT_RETAINED_TTL: Final = 86400.0
DEFAULT_RECONNECT_MAX: Final = 5.0
DEFAULT_TIMEOUT: Final = 2.0


@dataclass(frozen=True, slots=True)
class RedisSettings:
    """How one node uses Redis. Durations are in seconds."""

    #: Prefix of every key and channel, so several deployments can share one Redis.
    prefix: str = DEFAULT_PREFIX
    #: Seconds between this node's heartbeats (provider entries refreshed, dead nodes looked for).
    heartbeat: float = DEFAULT_HEARTBEAT
    #: Seconds a provider entry outlives its node's last heartbeat.
    provider_ttl: float = DEFAULT_PROVIDER_TTL
    #: Seconds retained frames outlive their last write (0: forever).
    retained_ttl: float = DEFAULT_RETAINED_TTL
    #: Longest wait between reconnection attempts during an outage.
    reconnect_max: float = DEFAULT_RECONNECT_MAX
    #: Connect and command timeout.
    timeout: float = DEFAULT_TIMEOUT
    #: Most publications kept per agent for recovery (0: no history, recovery always refused).
    history_size: int = DEFAULT_HISTORY_SIZE
    #: Seconds a publication stays in its agent's history (whichever bound is smaller wins).
    history_ttl: float = DEFAULT_HISTORY_TTL

    def __post_init__(self) -> None:
        if self.heartbeat <= 0 or self.timeout <= 0:
            raise ValueError("the Redis heartbeat and timeout must be positive")
        if self.provider_ttl <= self.heartbeat:
            raise ValueError(
                f"provider_ttl ({self.provider_ttl:g} s) must exceed the heartbeat "
                f"({self.heartbeat:g} s), or live providers would expire between beats"
            )
        if self.retained_ttl < 0 or self.reconnect_max <= 0:
            raise ValueError("the retained TTL must be 0 or more and reconnect_max positive")
        if self.history_size < 0 or self.history_ttl <= 0:
            raise ValueError("history_size must be 0 or more and history_ttl positive")


#: Every default: what a broker built without settings uses.
DEFAULT_SETTINGS: Final = RedisSettings()
