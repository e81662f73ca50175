"""The Python client: :class:`BridgeClient` and its errors, and the call helpers
(:class:`Calls`, see docs/client.md and docs/calls.md).

It imports nothing of the hub: only :mod:`bridge.protocol` and ``websockets``.
"""

from bridge.client.calls import *  # noqa: F403
from bridge.client.calls import __all__ as _calls_all
from bridge.client.client import *  # noqa: F403
from bridge.client.client import __all__ as _client_all

__all__ = [*_client_all, *_calls_all]
