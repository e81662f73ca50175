"""The Python client: :class:`BridgeClient` and its errors (see docs/client.md).

It imports nothing of the hub: only :mod:`bridge.protocol` and ``websockets``.
"""

from bridge.client.client import *  # noqa: F403
from bridge.client.client import __all__ as _client_all

__all__ = list(_client_all)
