"""Signed tokens (JWT, HS256) that say which agent a client speaks for, and as what.

Claims: ``sub`` is the agent's login name (the Streams username), ``role`` is
``app`` or ``provider``, ``exp`` the expiry, ``iat`` the issue time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import jwt

from bridge.protocol import Role

ALGORITHM = "HS256"


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
    agent, role = payload["sub"], payload["role"]
    if not isinstance(agent, str) or not agent or len(agent) > 64:
        raise TokenError("token 'sub' must name an agent (1 to 64 characters)")
    if role not in (Role.APP, Role.PROVIDER):
        raise TokenError(f"token role {role!r} is neither 'app' nor 'provider'")
    return Claims(agent=agent, role=Role(role), expires_at=float(payload["exp"]))
