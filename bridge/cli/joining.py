"""Who ``send``, ``listen`` and ``call`` join as: an app of one agent, or a supervisor.

* ``--token`` holding an app token, or ``--agent`` on an open hub: an app of that agent;
* ``--token`` holding a supervisor token (``connect-bridge token --role supervisor``):
  a supervisor, its scope and control from the token, and ``--agent`` names the
  agent to act for (``send``, ``call``) or to show (``listen``);
* ``--supervisor`` on an open hub: a supervisor that asks for ``--agents`` (names
  or ``*``; ``listen`` only) or for the one ``--agent``, with control for ``send``
  and ``call``.

The role of a token is read without checking its signature: only the hub can
check it, and it will.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

import click
import jwt
from click.core import ParameterSource

from bridge.client import BridgeClient
from bridge.protocol import Role
from bridge.protocol.tokens import EVERY_AGENT, check_scope

F = TypeVar("F", bound=Callable[..., Any])


class Joining(NamedTuple):
    """What a command says in its Hello, and for which agent it acts."""

    role: Role
    #: A secured hub's token.
    token: str | None
    #: The agent an app joins on an open hub.
    agent: str | None = None
    #: An open hub's supervisor: the agents it asks for, and whether it asks for control.
    agents: tuple[str, ...] | None = None
    control: bool = False
    #: A supervisor's ``--agent``: the agent to act for, or to show.
    target: str | None = None

    @property
    def supervising(self) -> bool:
        return self.role is Role.SUPERVISOR

    def client(self, url: str, *, source: str, **options: Any) -> BridgeClient:
        """The :class:`BridgeClient` that joins this way."""
        if self.supervising:
            return BridgeClient(url, role=Role.SUPERVISOR, token=self.token, agents=self.agents,
                                control=self.control, source=source, **options)
        return BridgeClient(url, token=self.token, agent=self.agent, source=source, **options)


def supervisor_option(func: F) -> F:
    """``--supervisor``: join an open hub as a supervisor."""
    return click.option(
        "--supervisor",
        is_flag=True,
        help="Join an open hub as a supervisor (with a supervisor token, implied).",
    )(func)


def agents_option(func: F) -> F:
    """``--agents``: an open hub's supervisor scope."""
    return click.option(
        "--agents",
        "agents_text",
        metavar="A,B|'*'",
        help="With --supervisor on an open hub: the agents to follow, comma-separated, or '*' for "
        "every agent (default: --agent, else '*').",
    )(func)


def parse_agents(text: str) -> list[str]:
    """``agent1,agent2`` or ``*`` -> the scope; :class:`click.BadParameter` when the hub would refuse it."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    try:
        return check_scope(names, ValueError)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--agents") from exc


def token_role(token: str) -> str | None:
    """The ``role`` claim of a token, unchecked (the hub checks), or None if unreadable."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False, "verify_exp": False})
    except jwt.PyJWTError:
        return None
    role = claims.get("role")
    return role if isinstance(role, str) else None


def joining(
    ctx: click.Context,
    token: str | None,
    agent: str | None,
    *,
    supervisor: bool = False,
    agents_text: str | None = None,
    control: bool = False,
) -> Joining:
    """How the command joins, from its options (see the module docstring); usage errors say why.

    ``--agent`` wins over an app token that only came from the environment, so
    that ``--agent`` works against an open hub with ``BRIDGE_TOKEN`` set.
    """
    from_env = ctx.get_parameter_source("token") is ParameterSource.ENVIRONMENT
    if token is not None and token_role(token) == Role.SUPERVISOR:
        if agents_text is not None:
            raise click.UsageError("--agents is for an open hub: a supervisor token sets the scope")
        return Joining(Role.SUPERVISOR, token, target=agent)
    if supervisor:
        if token is not None and not from_env:
            raise click.UsageError("--supervisor takes a supervisor token (connect-bridge token --role supervisor), "
                                   "or none on an open hub")
        if agents_text is not None:
            scope = parse_agents(agents_text)
        else:
            scope = [agent] if agent is not None else [EVERY_AGENT]
        return Joining(Role.SUPERVISOR, None, agents=tuple(scope), control=control, target=agent)
    if agents_text is not None:
        raise click.UsageError("--agents is for supervisors: add --supervisor (open hub)")
    if agent is not None and token is not None:
        if from_env:
            return Joining(Role.APP, None, agent=agent)
        raise click.UsageError("give --token (secured hub) or --agent (open hub), not both")
    if agent is not None or token is not None:
        return Joining(Role.APP, token, agent=agent)
    raise click.UsageError("give --token or set BRIDGE_TOKEN (secured hub), or --agent (open hub)")


def require_target(who: Joining) -> None:
    """A supervisor's request needs ``--agent``: say so before connecting."""
    if who.supervising and who.target is None:
        raise click.UsageError("as a supervisor, --agent names the agent to send for")
