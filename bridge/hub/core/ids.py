"""Connection and request ids: unique across nodes, unguessable, cheap to make."""

from __future__ import annotations

import base64
import secrets
from typing import Final

#: Random bytes per request id (16 URL-safe characters).
_ID_BYTES: Final = 12
#: Ids drawn per call to the system's random source: one request costs no system call.
_POOL_IDS: Final = 512

_pool = b""
_offset = 0


def new_connection_id() -> str:
    return "c-" + secrets.token_hex(6)


def new_request_id() -> str:
    """Unique across nodes and unguessable: another app of the agent cannot claim it first,
    and ids reveal nothing of other agents' traffic (as a counter would)."""
    global _pool, _offset
    if _offset + _ID_BYTES > len(_pool):
        _pool, _offset = secrets.token_bytes(_ID_BYTES * _POOL_IDS), 0
    chunk = _pool[_offset : _offset + _ID_BYTES]
    _offset += _ID_BYTES
    return "h-" + base64.urlsafe_b64encode(chunk).decode()
