"""Connection and request ids: unique across nodes, cheap to make."""

from __future__ import annotations

import secrets


def new_connection_id() -> str:
    return "c-" + secrets.token_hex(6)


def new_request_id() -> str:
    """Unique across nodes and unguessable: another app of the agent cannot claim it first,
    and ids reveal nothing of other agents' traffic (as a counter would)."""
    return "h-" + secrets.token_urlsafe(12)
