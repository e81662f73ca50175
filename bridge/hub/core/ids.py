"""Connection and request ids: unique across nodes, cheap to make."""

from __future__ import annotations

import itertools
import secrets

_request_prefix = "h-" + secrets.token_hex(4) + "-"
_request_counter = itertools.count(1)


def new_connection_id() -> str:
    return "c-" + secrets.token_hex(6)


def new_request_id() -> str:
    """Unique across nodes (a random prefix per process) and cheap (a counter)."""
    return f"{_request_prefix}{next(_request_counter)}"
