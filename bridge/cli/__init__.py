"""``connect-bridge``: the command line."""

from bridge.cli.main import main

__all__ = ["main"]
