"""Signed tokens (JWT, HS256) that say which agent a client speaks for, and as what.

Claims: ``sub`` is the agent's login name (the Streams username), ``role`` is
``app`` or ``provider``, ``exp`` the expiry, ``iat`` the issue time. A
``supervisor`` token (protocol 1.2) names the supervisor in ``sub`` and adds
``agents`` (a non-empty list of agent names, or exactly ``["*"]`` for every
agent) and ``control`` (whether it may send requests; absent means false).

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
#: The scope that means every agent of the hub.
EVERY_AGENT: Final = "*"
#: Most agents a supervisor's scope may name (a bound on what one token makes the hub follow).
MAX_SCOPE: Final = 5000


class TokenError(Exception):
    """A token that must be refused; the message says why, for the operator's logs."""


@dataclass(frozen=True, slots=True)
class Claims:
    #: The agent (app, provider) or the supervisor's own name (``sub``).
    agent: str
    role: Role
    expires_at: float
    #: A supervisor's scope: agent names, or ``("*",)``; ``()`` for other roles.
    agents: tuple[str, ...] = ()
    #: Whether a supervisor may send requests.
    control: bool = False


def issue_token(
    secret: str,
    *,
    agent: str,
    role: Role | str,
    ttl: float = 3600.0,
    agents: list[str] | None = None,
    control: bool = False,
) -> str:
    """Sign a token for ``agent`` acting as ``role``, valid for ``ttl`` seconds.

    For a supervisor, ``agent`` is its own name and ``agents`` its scope.
    """
    if not agent:
        raise ValueError("agent must not be empty")
    role = Role(role)
    now = int(time.time())
    payload: dict[str, Any] = {"sub": agent, "role": str(role), "iat": now, "exp": now + int(ttl)}
    if role is Role.SUPERVISOR:
        payload["agents"] = check_scope(agents, ValueError)
        if control:
            payload["control"] = True
    elif agents is not None or control:
        raise ValueError("agents and control are for supervisor tokens only")
    return jwt.encode(payload, secret, algorithm=ALGORITHM)


def check_scope(agents: Any, error: type[Exception]) -> list[str]:
    """A supervisor's scope as a list, or ``error`` saying what is wrong with it."""
    if not isinstance(agents, list) or not agents:
        raise error("a supervisor's agents must be a non-empty list of agent names, or [\"*\"]")
    if len(agents) > MAX_SCOPE:
        raise error(f"a supervisor's agents may name at most {MAX_SCOPE} agents")
    for name in agents:
        if not isinstance(name, str) or not 0 < len(name) <= MAX_AGENT:
            raise error(f"a supervisor's agents must be names of 1 to {MAX_AGENT} characters, not {_short(name)}")
    if EVERY_AGENT in agents and len(agents) > 1:
        raise error('"*" (every agent) is never mixed with names')
    return list(dict.fromkeys(agents))


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
    if not isinstance(role, str) or role not in Role.__members__.values():
        raise TokenError(f"token role {_short(role)} is not 'app', 'provider' or 'supervisor'")
    expires_at = _expiry(payload["exp"])
    if role != Role.SUPERVISOR:
        return Claims(agent=agent, role=Role(role), expires_at=expires_at)
    if "agents" not in payload:
        raise TokenError("a supervisor token lacks the 'agents' claim")
    scope = tuple(check_scope(payload["agents"], TokenError))
    control = payload.get("control", False)
    if not isinstance(control, bool):
        raise TokenError(f"token 'control' must be true or false, not {_short(control)}")
    return Claims(agent=agent, role=Role.SUPERVISOR, expires_at=expires_at, agents=scope, control=control)


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
