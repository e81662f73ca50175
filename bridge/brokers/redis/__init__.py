"""The Redis broker: several hub nodes, one bus (see :mod:`bridge.brokers.redis.broker`)."""

from bridge.brokers.redis.broker import RedisBroker

__all__ = ["RedisBroker"]
