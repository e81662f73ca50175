"""connect-bridge: a WebSocket message bus for Amazon Connect agent desktops."""

__version__ = "0.1.0"
