"""What the core decides: one family of output records, carried out by the node.

Every decision of the sans-I/O core (:class:`bridge.hub.core.router.Router`)
is a list of these. The node (:class:`bridge.hub.node.Node`) carries them out
in order; it reads nothing of the core's state. Connections are named by
their connection id, agents by their login name.

They are plain slotted classes, not frozen ones: several are made per frame,
and a frozen dataclass's ``__init__`` costs several times more.
"""

from __future__ import annotations

from dataclasses import dataclass

from bridge.hub.core.positions import At
from bridge.protocol import CloseCode
from bridge.protocol.retention import RetainDecision

# --- to this node's connections --------------------------------------------------


@dataclass(slots=True)
class Send:
    """Queue ``data`` as one text frame to one connection."""

    connection_id: str
    data: bytes
    #: Set when ``data`` is an error (counted in the metrics by type).
    error_type: str | None = None


@dataclass(slots=True)
class Close:
    """Close a connection, after what is already queued to it."""

    connection_id: str
    code: CloseCode
    reason: str
    #: Why, as a metrics label (``flooding``, ``binary_frame``), when it is counted.
    cause: str | None = None


@dataclass(slots=True)
class Deliver:
    """Send ``data`` to every connection attached to ``agent`` on this node (but ``skip``)."""

    agent: str
    data: bytes
    #: A connection that gets its own copy instead (the requester of an answer).
    skip: str | None = None


@dataclass(slots=True)
class Watch:
    """Send ``data`` (an agent's frame with its ``agent`` key) to every supervisor following
    ``agent`` on this node, by name or as one of every agent (but ``skip``)."""

    agent: str
    data: bytes
    skip: str | None = None


@dataclass(slots=True)
class Attach:
    """From now on, ``Deliver`` for ``agent`` reaches this connection (its replay is sent).

    ``watch``: a supervisor, reached by ``Watch`` instead (``agent`` is ``"*"``
    for a supervisor of every agent).
    """

    connection_id: str
    agent: str
    watch: bool = False


@dataclass(slots=True)
class Detach:
    """``Deliver`` (``Watch`` when ``watch``) for ``agent`` no longer reaches this connection."""

    connection_id: str
    agent: str
    watch: bool = False


@dataclass(slots=True)
class Deadline:
    """A deadline was set (a request's, a token's): wake the timer if it comes sooner."""


# --- to the broker -----------------------------------------------------------------


@dataclass(slots=True)
class Follow:
    """This node now has a client of ``agent``: subscribe to its publications.

    ``"*"``: a supervisor of every agent is here: every agent's publications.
    """

    agent: str


@dataclass(slots=True)
class Unfollow:
    """This node has no client of ``agent`` left."""

    agent: str


@dataclass(slots=True)
class Greet:
    """Once every agent of the connection is followed, read their state and call ``Router.greet``.

    The order is what makes a join lose nothing: subscribed first, then the
    provider registry and the agent's state read, then the replay sent and
    the connection attached, with live events that arrived meanwhile held by
    the core and sent right after the replay (those the replay holds dropped).

    The state read per agent: for an agent in ``recover``, its history after
    that position (``Broker.history``), and if that cannot recover, as for
    the others: the top position (``Broker.position``), then the retained
    frames, in that order (a frame retained after the top is left to the
    live path).
    """

    connection_id: str
    agents: tuple[str, ...]
    #: The positions the connection asked to recover from, by agent (``None``: it asked nothing).
    recover: dict[str, At] | None = None


@dataclass(slots=True)
class Publish:
    """Publish an event on the agent's channel; keep or drop its retained slot first if ``retain``."""

    agent: str
    data: bytes
    reply_to: str | None
    retain: RetainDecision | None


@dataclass(slots=True)
class Forget:
    """Drop these retained slots of the agent (kinds whose schema resets them when a provider joins)."""

    agent: str
    slots: tuple[str, ...]


@dataclass(slots=True)
class Forward:
    """Hand a request to the agent's provider, wherever it is; then call ``Router.forwarded``."""

    agent: str
    request_id: str
    data: bytes


@dataclass(slots=True)
class Answer:
    """Publish a provider's error on the agent's channel, for the requester of ``reply_to`` only."""

    agent: str
    reply_to: str
    data: bytes


@dataclass(slots=True)
class Claim:
    """Register ``connection_id`` (on this node) as the agent's provider and announce it."""

    agent: str
    connection_id: str


@dataclass(slots=True)
class Release:
    """Forget the agent's provider if it is still ``connection_id``, and announce it."""

    agent: str
    connection_id: str


Output = Send | Close | Deliver | Watch | Attach | Detach | Deadline | Follow | Unfollow | Greet | Publish | Forget | Forward | Answer | Claim | Release
