"""Signed tokens (JWT, HS256) that say which agent a client speaks for, and as what.

Claims: ``sub`` is the agent's login name (the Streams username), ``role`` is
``app`` or ``provider``, ``exp`` the expiry, ``iat`` the issue time.

Whatever a signed token holds, :func:`verify_token` either returns its claims
or raises :class:`TokenError`: a claim of the wrong type or out of range
(``exp`` as a string, ``exp = 10**400``, ``sub`` not a string) is a refused
token, never another exception.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Final

import jwt

from bridge.protocol import Role

ALGORITHM = "HS256"
#: Longest agent name a token may carry (``sub``), as the protocol's names.
MAX_AGENT: Final = 64
#: Latest expiry a token may state: 9999-12-31T23:59:59Z, in seconds since the epoch.
MAX_EXP: Final = 253_402_300_799


class TokenError(Exception):
    """A token that must be refused; the message says why, for the operator's logs."""


@dataclass(frozen=True, slots=True)
class Claims:
    agent: str
    role: Role
    expires_at: float


def issue_token(secret: str, *, agent: str, role: Role | str, ttl: float = 3600.0) -> str:
    """Sign a token for ``agent`` acting as ``role``, valid for ``ttl`` seconds."""
    if not agent:
        raise ValueError("agent must not be empty")
    now = int(time.time())
    payload = {"sub": agent, "role": str(Role(role)), "iat": now, "exp": now + int(ttl)}
    return jwt.encode(payload, secret, algorithm=ALGORITHM)


def verify_token(secret: str, token: str, *, leeway: float = 0.0) -> Claims:
    """Check signature, expiry and claims; raise :class:`TokenError` when any is wrong."""
    try:
        payload = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            leeway=leeway,
            options={"require": ["sub", "exp", "role"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise TokenError("token expired") from exc
    except jwt.InvalidSignatureError as exc:
        raise TokenError("token signature does not match this hub's secret") from exc
    except jwt.MissingRequiredClaimError as exc:
        raise TokenError(f"token lacks the {exc.claim!r} claim") from exc
    except jwt.InvalidTokenError as exc:
        raise TokenError(f"token is not valid: {exc}") from exc
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        # PyJWT wraps what it expects; a claim it does not may still surface as these.
        raise TokenError(f"token is not valid: {type(exc).__name__}") from exc
    agent, role = payload["sub"], payload["role"]
    if not isinstance(agent, str) or not agent or len(agent) > MAX_AGENT:
        raise TokenError(f"token 'sub' must name an agent (1 to {MAX_AGENT} characters)")
    if not isinstance(role, str) or role not in (Role.APP, Role.PROVIDER):
        raise TokenError(f"token role {_short(role)} is neither 'app' nor 'provider'")
    return Claims(agent=agent, role=Role(role), expires_at=_expiry(payload["exp"]))


def _expiry(exp: Any) -> float:
    """``exp`` as seconds since the epoch; a string, a boolean or an absurd number is refused."""
    if isinstance(exp, bool) or not isinstance(exp, (int, float)) or not 0 <= exp <= MAX_EXP:
        raise TokenError(f"token 'exp' must be a number of seconds, at most {MAX_EXP}; it is {_short(exp)}")
    return float(exp)


def _short(value: Any) -> str:
    """``repr(value)``, cut: a claim's value goes to the operator's logs, not all of it."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return "a number too large" if value > 0 else "a number too small"
    try:
        text = repr(value)
    except (ValueError, RecursionError):
        return f"a {type(value).__name__}"
    return text if len(text) <= 40 else text[:39] + "…"
