"""Connection and request ids: unique across nodes, unguessable, cheap to make."""

from __future__ import annotations

import base64
import secrets
from typing import Final

#: Random bytes per request id (16 URL-safe characters).
_ID_BYTES: Final = 12
#: Characters of one request id's random part: base64 of a multiple of 3 bytes has no padding.
_ID_CHARS: Final = _ID_BYTES * 4 // 3
#: Ids drawn per call to the system's random source: one request costs no system call.
_POOL_IDS: Final = 512

#: The pool's random bytes already in base64 (each 12-byte group encodes to its own 16
#: characters, since 12 is a multiple of 3), so a request id is one slice, not one encoding.
_pool = ""
_offset = 0


def new_connection_id() -> str:
    return "c-" + secrets.token_hex(6)


def new_request_id() -> str:
    """Unique across nodes and unguessable: another app of the agent cannot claim it first,
    and ids reveal nothing of other agents' traffic (as a counter would)."""
    global _pool, _offset
    if _offset + _ID_CHARS > len(_pool):
        _pool, _offset = base64.urlsafe_b64encode(secrets.token_bytes(_ID_BYTES * _POOL_IDS)).decode(), 0
    start = _offset
    _offset = start + _ID_CHARS
    return "h-" + _pool[start:_offset]
