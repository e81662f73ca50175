"""The hub: the sans-I/O core (:mod:`bridge.hub.core`) and the I/O around it.

:class:`HubServer` (:mod:`bridge.hub.server`) runs one node: WebSocket
server, HTTP endpoints, metrics, the node that carries out the core's
decisions, and a broker. Nothing is imported here, so that importing the
core loads no I/O library.
"""
