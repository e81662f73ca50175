"""The hub's sans-I/O core: every decision about sessions, routing, retention and refusals.

Nothing here does I/O or imports asyncio, websockets or redis: frames and
broker events go in, output records come out (:mod:`bridge.hub.core.outputs`),
and :class:`bridge.hub.node.Node` carries them out.
"""
