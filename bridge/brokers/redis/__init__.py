"""The Redis broker: several hub nodes, one bus (see :mod:`bridge.brokers.redis.broker`).

``RedisBroker`` is imported on first use, so that reading the Redis settings
(:mod:`bridge.brokers.redis.settings`) does not load redis-py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bridge.brokers.redis.broker import RedisBroker

__all__ = ["RedisBroker"]


def __getattr__(name: str) -> Any:
    if name == "RedisBroker":
        from bridge.brokers.redis.broker import RedisBroker

        return RedisBroker
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
