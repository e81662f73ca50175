"""Brokers: how hub nodes share agents. The contract is :class:`bridge.brokers.base.Broker`.

:class:`MemoryBroker` (one process) is the default; :mod:`bridge.brokers.redis`
spreads the same contract over Redis and is imported only when asked for.
:mod:`bridge.brokers.write_queue` and :mod:`bridge.brokers.retained` are the
parts of a broker that know no backplane, for the next one to reuse.
"""

from bridge.brokers.base import (
    Broker,
    BrokerHandler,
    HistoryRead,
    Position,
    ProviderLocation,
    Publication,
    PublicationType,
    RetainChange,
    RetainedFrame,
)
from bridge.brokers.memory import MemoryBroker

__all__ = [
    "Broker",
    "BrokerHandler",
    "HistoryRead",
    "MemoryBroker",
    "Position",
    "ProviderLocation",
    "Publication",
    "PublicationType",
    "RetainChange",
    "RetainedFrame",
]
