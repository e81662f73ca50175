"""The two Redis clients of a node, made from one URL, and what a failing Redis raises.

* **Commands** (:func:`command_client`) retry once at once: that heals a
  pooled connection that went stale while Redis was away; more would only
  delay the broker's local fallback.
* **Subscriptions** (:func:`subscription_client`) never retry: redis-py would
  reconnect and resubscribe silently, and the messages lost in the gap would
  never be resynchronized. The broker reconnects itself, and resyncs. They
  speak RESP2 (redis-py 8 defaults to RESP3): a publication is then a plain
  array, which the reader takes as it comes, where RESP3 makes it a push
  message that redis-py turns into text for a debug log line, per message
  (:mod:`bridge.brokers.redis.subscriptions`). A ``protocol`` in the URL wins.

redis-py parses replies with ``hiredis`` (C) when it is installed, which is
a dependency of the project: with its pure-Python parser instead, the
subscription reader took about 20 µs of CPU per message of a burst rather
than about 5 µs (measured on the 2-core test machine).
"""

from __future__ import annotations

from typing import Any, Final

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from bridge.brokers.redis.settings import RedisSettings

#: What a lost, slow or misconfigured Redis raises (TimeoutError is an OSError).
BACKEND_ERRORS: Final = (RedisError, OSError)


def _options(url: str, settings: RedisSettings, node_id: str) -> dict[str, Any]:
    options: dict[str, Any] = {
        "socket_timeout": settings.timeout,
        "socket_connect_timeout": settings.timeout,
        "client_name": f"connect-bridge-{node_id}",
    }
    if not url.startswith("unix:"):  # a Unix socket takes no TCP options
        options["socket_keepalive"] = True
    return options


def command_client(url: str, settings: RedisSettings, node_id: str) -> aioredis.Redis:
    """The client for commands; ``url`` is any redis-py URL (``redis://``, ``rediss://``, ``unix://``)."""
    return aioredis.from_url(url, retry=Retry(NoBackoff(), 1), **_options(url, settings, node_id))


def subscription_client(url: str, settings: RedisSettings, node_id: str) -> aioredis.Redis:
    """The client whose connection carries this node's subscriptions."""
    return aioredis.from_url(url, retry=Retry(NoBackoff(), 0), protocol=2, **_options(url, settings, node_id))
