"""Readable one-line descriptions of calls, for ``listen --pretty`` and ``connect-bridge call``."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any


def parse_time(text: Any) -> datetime | None:
    """Read an ISO-8601 UTC timestamp as the protocol writes it, or None."""
    if not isinstance(text, str):
        return None
    with contextlib.suppress(ValueError):
        return datetime.fromisoformat(text)
    return None


def format_duration(seconds: float) -> str:
    """``83`` -> ``1:23``; ``3723`` -> ``1:02:03``."""
    whole = max(0, int(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


#: How each ``event`` reads to a person.
EVENT_WORDS = {
    "connecting": "ringing",
    "connected": "connected",
    "hold": "customer on hold",
    "missed": "missed",
    "Rejected": "rejected",
    "ACW": "after-call work",
    "Dropped": "ended",
}


def describe_call(call: Mapping[str, Any], now: datetime) -> str:
    """``call 9b1f3a52 inbound ringing · +15555550123 → +18005550199 · queue Billing · 0:04 ·
    CustomerId=C-20411 Reason=billing · answer, reject``: one contact, from its ``Call`` object."""
    variables = call.get("CallVariables") or {}
    call_type = str(call.get("CallType", "?"))
    event = str(call.get("event", "?"))
    words = EVENT_WORDS.get(event, event)
    if event == "connecting" and call_type == "outbound":
        words = "dialing"
    parts = [f"call {str(call.get('id', '?'))[:8]} {call_type} {words}"]
    ani, dnis = variables.get("ANI"), variables.get("DNIS")
    if ani or dnis:
        parts.append(f"{ani or '?'} → {dnis or '?'}")
    others = [
        f"{c.get('type')} {c.get('phoneNumber') or '-'} {c.get('status')}"
        for c in (call.get("connections") or [])[2:]
        if isinstance(c, dict)
    ]
    if others:
        parts.append("with " + ", ".join(others))
    queue = call.get("queue")
    if isinstance(queue, dict) and queue.get("name"):
        parts.append(f"queue {queue['name']}")
    since = parse_time(call.get("since"))
    if since is not None:
        parts.append(format_duration((now - since).total_seconds()))
    attributes = " ".join(f"{k}={v}" for k, v in variables.items() if k not in ("ANI", "DNIS"))
    if attributes:
        parts.append(attributes)
    buttons = (call.get("ButtonStates") or {}).get("items") or {}
    enabled = [name for name, state in buttons.items() if state == "Enable"]
    if enabled:
        parts.append(", ".join(enabled))
    return " · ".join(parts)


def describe_quick_connect(endpoint: Mapping[str, Any]) -> str:
    """``Front desk (phone_number +18005550111) arn:…``."""
    number = f" {endpoint['phoneNumber']}" if endpoint.get("phoneNumber") else ""
    return f"{endpoint.get('name')} ({endpoint.get('type')}{number}) {endpoint.get('endpointARN')}"
