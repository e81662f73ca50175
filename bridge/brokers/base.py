"""The broker: how hub nodes share agents, and the contract every broker keeps.

A node keeps its own connections; the broker carries what must reach
connections of the same agent on *any* node. It knows six things:

* **publications** on an agent's channel (events, errors for a requester,
  provider arrivals and departures), delivered to every node that *follows*
  the agent, the publishing node included;
* the agent's **retained frames**, one per *slot* (a kind, or a kind and a key),
  each with the position of the publication that set it;
* the agent's **stream**: a :class:`Position` (epoch, offset) for every
  event and provider change, and a bounded **history** of them to recover from;
* the **provider registry**: which node and connection hold an agent's
  provider;
* **requests**, delivered to the node that holds the agent's provider;
* its own **health**.

:class:`bridge.brokers.memory.MemoryBroker` serves a single process and is the default;
:class:`bridge.brokers.redis.RedisBroker` spreads the same contract over Redis.
``tests/brokers`` holds one suite that every broker must pass.

The contract in short (each method below says what it adds):

* **At most once live.** A publication reaches each node that follows its agent
  when the backplane carries it, once, or not at all: nothing is redelivered,
  and a backplane outage loses what other nodes published meanwhile.
* **Positioned, with a bounded history.** Every ``EVENT``, ``PROVIDER_UP``
  and ``PROVIDER_DOWN`` gets the agent's next :class:`Position` (offset + 1
  in the agent's epoch) when it is published, and is kept in the agent's
  history (at most ``history_size`` entries, none older than ``history_ttl``
  seconds), so a node can read what a client missed (:meth:`Broker.history`).
  Offsets of one agent are gap-free within an epoch; when a broker cannot
  vouch for that (its history was lost, or it delivered a publication without
  the backplane) the agent gets a new epoch, so no old position recovers
  across the hole.
* **Ordered per agent.** What one node does on one agent (publications,
  retained writes, claims, releases, requests) reaches the backplane in the
  order the node called the methods, and every node sees one agent's
  publications in one order, the same for all of them (while the backplane
  is up: what a cut-off node delivers to itself, the others never see).
* **Atomic where a race would show.** A provider's registration and its
  ``PROVIDER_UP`` are one step; so are a release's compare-and-delete and its
  ``PROVIDER_DOWN``; so is a request's lookup and its delivery.
* **Follow is in effect when it returns**, for every caller; follow and
  unfollow are idempotent (no reference counting).
* **Retained frames** are one per slot, in the order the slots were first
  set, readable by their own writer at once, each with its publication's position.
* **An outage degrades, never fails.** No method raises because the backplane
  is gone: the node is served alone (its own publications, requests to its
  own providers, its providers' retained frames), ``healthy`` is false, and
  when the backplane is back the broker resubscribes, then asks the node to
  re-claim its providers (:meth:`BrokerHandler.on_resync`).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from enum import StrEnum
from typing import Final, Protocol


#: What :meth:`Broker.send_request` returns when the request may or may not have been delivered.
UNCONFIRMED: Final = ""
#: Most agents :meth:`Broker.known_agents` returns (what one supervisor's join may read),
#: and most agent streams (positions and history) a memory broker keeps.
MAX_KNOWN_AGENTS: Final = 10_000
#: Default :attr:`history_size`: most publications kept per agent for recovery.
DEFAULT_HISTORY_SIZE: Final = 1000
#: Default :attr:`history_ttl`: seconds a publication stays in its agent's history.
DEFAULT_HISTORY_TTL: Final = 600.0


class PublicationType(StrEnum):
    EVENT = "event"  # to every app of the agent; positioned
    ERROR = "error"  # to the requester of ``reply_to`` only; never positioned
    PROVIDER_UP = "up"  # ``connection_id`` is now the agent's provider; positioned
    PROVIDER_DOWN = "down"  # ``connection_id`` left and nobody replaced it; positioned


#: The publication types that get a position and enter the history.
POSITIONED: Final = frozenset({PublicationType.EVENT, PublicationType.PROVIDER_UP, PublicationType.PROVIDER_DOWN})


@dataclass(frozen=True, slots=True)
class Position:
    """Where a publication stands in its agent's stream.

    ``epoch`` names the stream (1 to 64 URL-safe characters, random): it
    changes whenever the broker loses the stream's continuity (a memory
    broker restarted or dropped the stream, Redis flushed, a publication
    delivered without the backplane), so positions of different epochs are
    never comparable. ``offset`` counts the agent's positioned publications
    in the epoch: the first is 1, each next one is one more. Offset 0 is the
    top of a stream nothing was published on yet.
    """

    epoch: str
    offset: int


@dataclass(slots=True)
class Publication:
    """One message on an agent's channel (made per event: slotted, not frozen, for speed).

    ``position`` is set by the broker, never by the publisher: on delivery
    (and in :meth:`Broker.history`) every ``EVENT``, ``PROVIDER_UP`` and
    ``PROVIDER_DOWN`` carries the agent's position assigned to it; ``ERROR``
    carries ``None``, and so does a publication the broker delivered to its
    own node only because the backplane was down (it is in no history).
    """

    type: PublicationType
    data: bytes = b""
    reply_to: str | None = None
    connection_id: str | None = None
    position: Position | None = None


@dataclass(frozen=True, slots=True)
class RetainChange:
    """What a publication does to one of the agent's retained slots (see :meth:`Broker.publish`)."""

    #: The slot: a kind, or a kind and a key (see :meth:`Broker.set_retained`).
    slot: str
    #: True: the publication's data becomes the slot's frame; False: the slot is dropped.
    keep: bool


@dataclass(frozen=True, slots=True)
class RetainedFrame:
    """One retained frame and the position of the publication that set it.

    ``position`` is ``None`` for a frame set without a positioned
    publication (:meth:`Broker.set_retained`, or a publication delivered
    while the backplane was down).
    """

    data: bytes
    position: Position | None


@dataclass(frozen=True, slots=True)
class HistoryRead:
    """The answer of :meth:`Broker.history`: can the asker recover, and with what.

    ``recovered`` is true when every positioned publication after the asked
    position is still known and in the same epoch: ``publications`` are then
    all of them, in order, each with its ``position`` set (``EVENT`` with
    ``data`` and ``reply_to`` as published; ``PROVIDER_UP`` / ``PROVIDER_DOWN``
    with ``connection_id``), possibly none (the asker missed nothing). When
    false, ``publications`` is empty and the asker must start again from
    the retained state. ``top`` is the agent's last position either way
    (offset 0 in the current epoch when nothing was published yet).
    """

    recovered: bool
    top: Position
    publications: list[Publication]


@dataclass(frozen=True, slots=True)
class ProviderLocation:
    node_id: str
    connection_id: str


class BrokerHandler(Protocol):
    """What a node exposes to its broker.

    The broker calls these on the event loop, from its own tasks or, for
    a delivery it makes locally, from the task of the call that causes it;
    never after :meth:`Broker.close` has returned. They must not block: a
    slow handler holds up every later delivery.
    """

    def on_publication(self, agent: str, publication: Publication) -> None:
        """A publication for an agent this node follows (see :meth:`Broker.publish`)."""

    def on_request(self, agent: str, request_id: str, data: bytes) -> None:
        """A request for an agent whose provider the registry places on this node.

        The provider may have left since: the node answers for it then.
        """

    def on_broker_health(self, healthy: bool) -> None:
        """:attr:`Broker.healthy` changed (a broker whose backplane cannot fail never calls it)."""

    def on_resync(self) -> None:
        """The backplane is back after an outage: re-claim this node's providers.

        Called once subscriptions are restored and :attr:`Broker.healthy` is
        true again. The node answers with :meth:`Broker.claim_provider` for
        each provider it still holds, which also writes their retained
        frames back.
        """


class Broker(abc.ABC):
    """The contract every broker keeps, method by method (summary in the module docstring).

    "The backplane" is what the nodes share (Redis); a broker with no
    backplane (memory) is one node that is always healthy. Every method
    may be called concurrently from several tasks of the node.
    """

    node_id: str

    @property
    def healthy(self) -> bool:
        """Whether the backplane is reachable and every followed agent is subscribed.

        False from the first failed command or lost subscription until the
        broker has reconnected and resubscribed; each change is reported to
        :meth:`BrokerHandler.on_broker_health`. While false, the node is
        served alone (see each method), and other nodes neither hear it nor
        are heard.
        """
        return True

    @abc.abstractmethod
    async def start(self, handler: BrokerHandler) -> None:
        """Connect and start delivering to ``handler``.

        Returns once the first connection attempt has succeeded or failed; an
        unreachable backplane does not raise: the broker starts degraded and
        keeps trying.
        """

    @abc.abstractmethod
    async def close(self) -> None:
        """Send what is queued, forget this node's providers, disconnect; all within a bound.

        Queued writes go out first (or, the backplane failing, to this
        node's handler), then this node's providers are released (best
        effort: a lost backplane lets their entries expire instead). After
        it returns the handler is never called again, and publications
        made on this broker go nowhere.
        """

    async def flush(self) -> None:  # noqa: B027 (a no-op is the right default)
        """Wait until everything this node published or retained so far has reached the backplane.

        Or, the backplane failing, has been delivered to this node's handler
        instead. A broker that sends nothing ahead of time has nothing to wait for.
        """

    @abc.abstractmethod
    async def follow(self, agent: str) -> None:
        """Start delivering the agent's publications to this node's handler.

        When it returns, the subscription is in effect: every publication on
        the agent that reaches the backplane afterwards, from any node, is
        delivered to this node. So a node that follows, then reads
        :meth:`provider` and :meth:`get_retained` (or :meth:`history`, or
        :meth:`position`), misses nothing in between.
        This holds for every caller: a second or concurrent ``follow`` of the
        same agent waits as well until the subscription is confirmed.

        Idempotent, with no reference counting: following a followed agent
        adds nothing, and one :meth:`unfollow` ends it. While the backplane
        is down it returns at once; the agent is subscribed on reconnection,
        before :attr:`healthy` turns true.
        """

    @abc.abstractmethod
    async def unfollow(self, agent: str) -> None:
        """Stop delivering the agent's publications (the node has no client of it left).

        When it returns nothing more of the agent reaches the handler, not
        even a publication already on its way. Idempotent. A broker that
        keeps retained frames per node (memory) forgets the agent's here.
        """

    @abc.abstractmethod
    async def follow_all(self) -> None:
        """Deliver every agent's publications to this node (a supervisor of every agent is here).

        Like :meth:`follow` for every agent at once, those that appear later
        included: in effect when it returns, idempotent, and a publication is
        delivered once even for an agent also followed by name. While it
        lasts, a broker that keeps retained frames per node keeps every
        agent's (as if followed).
        """

    @abc.abstractmethod
    async def unfollow_all(self) -> None:
        """End :meth:`follow_all`: only the agents followed by name are delivered again."""

    @abc.abstractmethod
    async def known_agents(self) -> list[str]:
        """The agents the bus knows now (a provider registered, or retained frames), at most :data:`MAX_KNOWN_AGENTS`.

        What a supervisor of every agent is replayed when it joins.
        """

    @abc.abstractmethod
    async def publish(self, agent: str, publication: Publication, retain: RetainChange | None = None) -> None:
        """Deliver ``publication`` to every node that follows ``agent``, this one included.

        At most once per node; ``data`` arrives byte for byte. The broker may
        send it later (it returns once the publication is queued, and waits
        only when its queue is full), but never out of order: see the module
        docstring. The broker owns the object once called (it sets its
        ``position`` and may keep it in its history): the caller must not
        change or reuse it.

        An ``EVENT`` (and the ``PROVIDER_UP`` / ``PROVIDER_DOWN`` of
        :meth:`claim_provider` / :meth:`release_provider`) gets the agent's
        next position; an ``ERROR`` gets none. Assigning the position,
        appending the publication to the agent's history, applying
        ``retain`` (the slot's frame becomes ``data``, stored *with* the
        position, or the slot is dropped) and delivering are one atomic step:
        every node sees the agent's publications in offset order, and a node
        that follows the agent and then reads :meth:`get_retained`,
        :meth:`position` or :meth:`history` gets each publication either in
        what it read or delivered after it (never both missing; a reader
        drops a delivered one whose offset it already has).

        While the backplane is down it is delivered to this node's handler
        only, with ``position`` ``None``, after anything this node queued
        before, and other nodes never get it; ``retain`` is applied to this
        node's copy (see :meth:`set_retained`). The agent's stream is then
        broken for recovery: once the backplane is back the broker gives the
        agent a new epoch, so no position from before the outage recovers
        across it. Never raises for a backplane failure.
        """

    @abc.abstractmethod
    async def history(self, agent: str, after: Position) -> HistoryRead:
        """The agent's positioned publications after ``after``, if they can all be read.

        ``recovered`` is false, and nothing is returned, when ``after.epoch``
        is not the agent's current epoch, when ``after.offset`` is above the
        current top (a position this stream never gave), when the history no
        longer holds every publication after it (``after.offset`` is below
        the oldest kept offset minus one: trimmed by ``history_size`` or
        ``history_ttl``), when the history is disabled (``history_size`` 0),
        or while the backplane is down. ``after`` equal to the top recovers
        with nothing to replay. Read your writes: includes this node's
        publications made before the call. Never raises for a backplane failure.
        """

    @abc.abstractmethod
    async def position(self, agent: str) -> Position:
        """The agent's current top: the position of its last positioned publication.

        Offset 0, in the epoch its first publication will get, when nothing
        was published on the agent yet (or its stream was dropped). Read your
        writes, like :meth:`history`. While the backplane is down: the last
        position this node knows (the epoch will change on reconnection, see
        :meth:`publish`). Never raises for a backplane failure.
        """

    @abc.abstractmethod
    async def set_retained(self, agent: str, slot: str, data: bytes) -> None:
        """Keep ``data`` as the agent's retained frame in ``slot``, without a position.

        For a caller that sets a slot without publishing; a publication
        that sets a slot passes :class:`RetainChange` to :meth:`publish`
        instead, which stores the frame with its position. It replaces the slot's last frame.

        A slot is a non-empty string: a kind (``Amazon/Agent/SetAgentState``),
        or a kind and a key (``Amazon/InboundCall/InboundCallStateChange#<contact id>``),
        as the kind's schema declares (``x-bridge.retain``). A replaced slot
        keeps its place in the order.

        Nothing is published. The write is ordered with this node's
        publications (see :meth:`publish`), so a node that follows the agent
        and then reads the retained frames gets a frame written before a
        later publication. This node reads it at once (:meth:`get_retained`),
        other nodes once it is sent.

        Lifetime (the same for frames set through :meth:`publish`): in memory, until the node has no client of the agent left
        (:meth:`unfollow`); in Redis, ``retained_ttl`` after the agent's last
        retained write (set or drop), whoever made it. While the backplane is
        down, the frames of agents whose provider this node holds are kept
        here, and written back when the provider is re-claimed.
        """

    @abc.abstractmethod
    async def drop_retained(self, agent: str, slot: str) -> None:
        """Forget the agent's retained frame in ``slot``, if any; ordered like :meth:`set_retained`.

        A slot set again later counts as new: it goes last in the order.
        """

    @abc.abstractmethod
    async def get_retained(self, agent: str) -> list[RetainedFrame]:
        """The agent's retained frames, one per slot, in the order the slots were first set.

        Each with the position of the publication that set it (``None`` for
        :meth:`set_retained` and for frames set while the backplane was down).

        Includes this node's own writes made before the call (read your
        writes). While the backplane is down: the frames this node set for an
        agent whose provider it holds, since that provider's claim; nothing
        for other agents.
        """

    @abc.abstractmethod
    async def claim_provider(self, agent: str, connection_id: str) -> None:
        """Make ``connection_id`` (on this node) the agent's provider and announce it.

        The registration and the ``PROVIDER_UP`` publication are one atomic
        step, ordered after this node's earlier publications; the
        ``PROVIDER_UP`` is positioned and kept in the history like an event. It takes over
        from any holder, on any node: that node hears the ``PROVIDER_UP`` (it
        follows the agent, having its provider) and closes its older provider.

        A re-claim of the same connection (the node's answer to
        :meth:`BrokerHandler.on_resync`) refreshes the entry and writes back
        the retained frames kept during the outage, but takes over from
        nobody: if a newer provider was registered elsewhere meanwhile, the
        node is told by a ``PROVIDER_UP`` naming it, and nothing is written.
        While the backplane is down the claim is known to this node only,
        announced to it alone, and made on reconnection.
        """

    @abc.abstractmethod
    async def release_provider(self, agent: str, connection_id: str) -> bool:
        """Forget the provider if the registry still names ``connection_id``; announce ``PROVIDER_DOWN``.

        Compare-and-delete and announcement are one atomic step, ordered after
        this node's earlier publications (the ``PROVIDER_DOWN`` is positioned
        and kept in the history like an event), so a replaced provider's departure
        never erases or contradicts its successor. Returns whether it was still
        registered; a replaced provider is not, and nothing is published for it.
        An entry the registry lost meanwhile (Redis: expired, or dropped as a
        dead node's) is announced as gone all the same, and returns False.
        While the backplane is down the release is announced to this node
        only, and made (compare-and-delete) on reconnection.
        """

    @abc.abstractmethod
    async def provider(self, agent: str) -> ProviderLocation | None:
        """Where the registry places the agent's provider, or ``None``.

        While the backplane is down, only a provider on this node is known.
        """

    @abc.abstractmethod
    async def send_request(self, agent: str, request_id: str, data: bytes) -> str | None:
        """Deliver a request to the node holding the agent's provider (its :meth:`BrokerHandler.on_request`).

        Returns the connection id it was routed to, ``None`` when there is
        no provider (then nothing is delivered), or :data:`UNCONFIRMED` when
        the backplane may or may not have delivered it (its reply came too
        late): the requester then waits for the answer or the deadline, since
        failing it at once would be wrong if the provider carries it out.
        Looking up the holder and
        delivering to its node are one step, at most once, ordered after this
        node's earlier publications. A holder whose node no longer listens
        (it died) counts as none: the broker drops its entry and announces
        ``PROVIDER_DOWN``. While the backplane is down only a provider on this
        node is reached.
        """
