"""The hub: the sans-I/O core (:mod:`bridge.hub.core`) and the I/O around it.

:class:`HubServer` runs one node: WebSocket server, HTTP endpoints, metrics,
the node that carries out the core's decisions, and a broker.
"""

from bridge.hub.config import HubConfig
from bridge.hub.server import HubServer

__all__ = ["HubConfig", "HubServer"]
