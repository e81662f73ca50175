"""A hub node: carries out the core's decisions with this node's sockets and its broker.

The node owns I/O and nothing else: the transports of this node's
connections, which of them each agent's events are delivered to, and the
order of its broker subscriptions. Every decision (who joins, what is
replayed, where a frame goes, what is retained, which request failed) comes
from :class:`bridge.hub.core.router.Router` as a list of
:mod:`bridge.hub.core.outputs`; the node reads none of the router's state.
Connections reach it as :class:`Transport` objects, whose ``send`` never
blocks (a transport that cannot keep up drops its client, see
:mod:`bridge.hub.server`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, Protocol

from bridge.brokers import Broker, Position, Publication, PublicationType, RetainChange
from bridge.hub.core.outputs import (
    Answer,
    Attach,
    Claim,
    Close,
    Deadline,
    Deliver,
    Detach,
    Follow,
    Forget,
    Forward,
    Greet,
    Output,
    Publish,
    Release,
    Send,
    Unfollow,
    Watch,
)
from bridge.hub.core.positions import Missed
from bridge.hub.core.router import Joined, Peer, ProviderPublication, Refused, Router, Snapshot
from bridge.protocol import PROTOCOL_VERSION
from bridge.protocol.tokens import EVERY_AGENT

log = logging.getLogger("bridge.node")

#: Decisions carried out at once, without awaiting anything (dispatched by exact type: the hot path).
_IMMEDIATE: frozenset[type] = frozenset({Send, Deliver, Watch, Close, Attach, Detach})
_SUBSCRIPTION_CHANGES: frozenset[type] = frozenset({Follow, Unfollow})


class Transport(Protocol):
    """One client connection, as the node sees it."""

    def send(self, data: bytes) -> None:
        """Queue ``data`` as one text frame; never blocks."""

    def send_batch(self, payloads: list[bytes]) -> None:
        """Queue each payload as its own text frame, in order; never blocks. The list is shared
        by every recipient of the batch and must not be changed."""

    def close(self, code: int, reason: str, cause: str | None = None) -> None:
        """Close the connection (after what is already queued); ``cause``: its metrics label, if counted."""

    def allow(self, extra: int) -> None:
        """Let ``extra`` more bytes queue without the client counting as too slow (a join's replay)."""


class Observer(Protocol):
    """Receives the node's countable happenings (metrics)."""

    def frame_out(self, kind: str, count: int) -> None: ...
    def error_sent(self, error_type: str) -> None: ...
    def disconnected(self, reason: str) -> None: ...


class _NoObserver:
    def frame_out(self, kind: str, count: int) -> None:
        pass

    def error_sent(self, error_type: str) -> None:
        pass

    def disconnected(self, reason: str) -> None:
        pass


class Node:
    """One hub process's share of the bus."""

    def __init__(self, router: Router, broker: Broker, observer: Observer | None = None) -> None:
        self.router = router
        self.broker = broker
        self.observer: Observer = observer or _NoObserver()
        #: Every local connection, joined or not, by connection id.
        self.transports: dict[str, Transport] = {}
        #: The connections attached to each agent: where ``Deliver`` goes.
        self.groups: dict[str, dict[str, Transport]] = {}
        #: The supervisors attached to each agent by name, and those of every agent: where ``Watch`` goes.
        self.watchers: dict[str, dict[str, Transport]] = {}
        self.everyone: dict[str, Transport] = {}
        #: Per agent, the last follow/unfollow sent to the broker: each waits for
        #: the one before, so the broker sees them in the order they were decided.
        self._subscriptions: dict[str, asyncio.Task[None]] = {}
        self._timer: asyncio.Task[None] | None = None
        self._timer_wake = asyncio.Event()
        #: The deadline the timer waits for (``None``: it waits for a request).
        self._timer_target: float | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        #: This loop turn's events, by agent, not yet handed to the agent's connections (see _batch).
        self._batched: dict[str, list[bytes]] = {}
        self.broker_healthy = True

    # --- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        await self.broker.start(self)
        self._timer = asyncio.create_task(self._expire_requests(), name="bridge-timeouts")

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            await asyncio.gather(self._timer, return_exceptions=True)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.broker.close()

    def stats(self) -> dict[str, Any]:
        return {
            "status": "ok" if self.broker_healthy else "degraded",
            "protocol": PROTOCOL_VERSION,
            "node": self.broker.node_id,
            **self.router.stats(),
        }

    # --- connections -------------------------------------------------------------

    def connect(self, transport: Transport) -> str:
        """A socket opened: name it, so the router's decisions can address it."""
        connection_id = self.router.new_connection_id()
        self.transports[connection_id] = transport
        return connection_id

    async def hello(self, connection_id: str, frame: str | bytes) -> Joined | Refused:
        """The connection's first frame: joined (and greeted) or refused (the refusal, for the log)."""
        result = self.router.hello(connection_id, frame)
        await self.run(result.outputs)
        return result

    async def receive(self, peer: Peer, frame: str | bytes) -> None:
        """Route one frame from a joined connection."""
        await self.run(self.router.receive(peer, frame))

    async def disconnect(self, connection_id: str) -> None:
        """A socket closed, for whatever reason."""
        self.transports.pop(connection_id, None)
        await self.run(self.router.leave(connection_id))

    # --- carrying out ---------------------------------------------------------------

    async def run(self, outputs: list[Output]) -> None:
        """Carry out decisions in order.

        Subscription changes are handed to the broker before anything is
        awaited, in the order the router made them: a follow decided after an
        unfollow of the same agent must reach the broker after it.
        """
        single = len(outputs) == 1
        if not single:
            for output in outputs:
                if type(output) in _SUBSCRIPTION_CHANGES:
                    self._subscribe(output)  # type: ignore[arg-type]
        for output in outputs:
            kind = type(output)
            if kind in _IMMEDIATE:
                # A write or a group change: after the batched events. (The broker's
                # steps need not wait: what they deliver comes back through _run_now.)
                if self._batched:
                    self._flush_batches()
                self._do(output)  # type: ignore[arg-type]
            elif kind is Publish:
                event: Publish = output  # type: ignore[assignment]
                retain = None if event.retain is None else RetainChange(event.retain.slot, event.retain.keep)
                await self.broker.publish(
                    event.agent, Publication(PublicationType.EVENT, event.data, event.reply_to), retain
                )
            elif kind is Forward:
                request: Forward = output  # type: ignore[assignment]
                self._deadline_added()
                provider = await self.broker.send_request(request.agent, request.request_id, request.data)
                failures = self.router.forwarded(request.agent, request.request_id, provider)
                if failures:
                    await self.run(failures)
            elif kind is Deadline:
                self._deadline_added()
            elif kind is Forget:
                assert isinstance(output, Forget)
                for slot in output.slots:
                    await self.broker.drop_retained(output.agent, slot)
            elif kind in _SUBSCRIPTION_CHANGES:
                if single:  # else handed over above, before anything was awaited
                    self._subscribe(output)  # type: ignore[arg-type]
            elif kind is Answer:
                assert isinstance(output, Answer)
                await self.broker.publish(
                    output.agent, Publication(PublicationType.ERROR, output.data, output.reply_to)
                )
            elif kind is Greet:
                assert isinstance(output, Greet)
                await self._greet(output)
            elif kind is Claim:
                assert isinstance(output, Claim)
                await self.broker.claim_provider(output.agent, output.connection_id)
            elif kind is Release:
                assert isinstance(output, Release)
                await self.broker.release_provider(output.agent, output.connection_id)

    def _do(self, output: Send | Deliver | Watch | Close | Attach | Detach) -> None:
        """Carry out a decision that needs no waiting: a socket write, a close, a group change."""
        kind = type(output)
        if kind is Deliver:
            assert isinstance(output, Deliver)
            self._deliver(output.agent, output.data, output.skip)
        elif kind is Watch:
            assert isinstance(output, Watch)
            self._watch(output.agent, output.data, output.skip)
        elif kind is Send:
            assert isinstance(output, Send)
            self._send(output)
        elif kind is Close:
            assert isinstance(output, Close)
            transport = self.transports.get(output.connection_id)
            if transport is not None:
                if output.cause is not None:
                    self.observer.disconnected(output.cause)
                transport.close(output.code, output.reason, output.cause)
        elif kind is Attach:
            assert isinstance(output, Attach)
            transport = self.transports.get(output.connection_id)
            if transport is not None:
                self._group_of(output.agent, output.watch)[output.connection_id] = transport
        else:
            assert isinstance(output, Detach)
            groups = self.watchers if output.watch else self.groups
            group = self.everyone if output.watch and output.agent == EVERY_AGENT else groups.get(output.agent)
            if group is not None:
                group.pop(output.connection_id, None)
                if not group and group is not self.everyone:
                    del groups[output.agent]

    def _send(self, output: Send) -> None:
        transport = self.transports.get(output.connection_id)
        if transport is not None:
            transport.send(output.data)
            if output.error_type is not None:
                self.observer.error_sent(output.error_type)

    def _group_of(self, agent: str, watch: bool) -> dict[str, Transport]:
        if not watch:
            return self.groups.setdefault(agent, {})
        return self.everyone if agent == EVERY_AGENT else self.watchers.setdefault(agent, {})

    def _deliver(self, agent: str, data: bytes, skip: str | None = None) -> None:
        group = self.groups.get(agent)
        if group is None:
            return
        if skip is None:
            for transport in group.values():
                transport.send(data)
        else:
            for connection_id, transport in group.items():
                if connection_id != skip:
                    transport.send(data)
        self.observer.frame_out("event", len(group) - (skip in group))

    def _watch(self, agent: str, data: bytes, skip: str | None) -> None:
        sent = 0
        for group in (self.watchers.get(agent), self.everyone):
            if not group:
                continue
            for connection_id, transport in group.items():
                if connection_id != skip:
                    transport.send(data)
                    sent += 1
        if sent:
            self.observer.frame_out("event", sent)

    def _subscribe(self, change: Follow | Unfollow) -> None:
        agent = change.agent
        before = self._subscriptions.get(agent)
        if agent == EVERY_AGENT:
            step = self.broker.follow_all() if isinstance(change, Follow) else self.broker.unfollow_all()
        else:
            step = self.broker.follow(agent) if isinstance(change, Follow) else self.broker.unfollow(agent)
        task = asyncio.create_task(self._after(before, step), name=f"bridge-subscription-{agent}")
        self._subscriptions[agent] = task
        task.add_done_callback(lambda done: self._subscribed(agent, done))

    @staticmethod
    async def _after(before: asyncio.Task[None] | None, step: Coroutine[Any, Any, None]) -> None:
        if before is not None:
            await asyncio.gather(before, return_exceptions=True)
        await step

    def _subscribed(self, agent: str, task: asyncio.Task[None]) -> None:
        if self._subscriptions.get(agent) is task:
            del self._subscriptions[agent]
        if not task.cancelled() and task.exception() is not None:
            log.error("subscription change for %s failed", agent, exc_info=task.exception())

    async def _greet(self, greet: Greet) -> None:
        """Wait for the connection's subscriptions, read its agents' state, then let the router greet it.

        Per agent (the order of :class:`~bridge.hub.core.outputs.Greet`): the
        provider, then the history after the position asked, if any; when
        that does not recover (or nothing was asked), the top position and
        then the retained frames.
        """
        for agent in greet.agents:
            pending = self._subscriptions.get(agent)
            if pending is not None:
                await asyncio.gather(pending, return_exceptions=True)
        snapshots: dict[str, Snapshot] = {}
        recover = greet.recover or {}
        agents: list[str] | tuple[str, ...] = greet.agents
        if agents == (EVERY_AGENT,):
            known = await self.broker.known_agents()
            agents = list(dict.fromkeys([*known, *recover]))
        for agent in agents:
            provider = await self.broker.provider(agent)
            provider_id = provider.connection_id if provider is not None else None
            asked = recover.get(agent)
            recovered: bool | None = None
            if asked is not None:
                read = await self.broker.history(agent, Position(asked.epoch, asked.offset))
                recovered = read.recovered
                if recovered:
                    missed = [
                        Missed(p.position, p.data if p.type is PublicationType.EVENT else None,
                               p.type is PublicationType.PROVIDER_UP)
                        for p in read.publications
                        if p.position is not None
                    ]
                    snapshots[agent] = Snapshot(provider is not None, [], provider_id, read.top, True, missed)
                    continue
            top = await self.broker.position(agent)
            retained = await self.broker.get_retained(agent)
            snapshots[agent] = Snapshot(provider is not None, retained, provider_id, top, recovered)
        # The router's answer is carried out without awaiting in between (Send
        # and Attach never await), so no live event slips between replay and attach.
        outputs = self.router.greet(greet.connection_id, snapshots)
        # The replay is written at once, bounded by the history, not by the
        # client's pace: it does not count against its slow-client budget.
        transport = self.transports.get(greet.connection_id)
        if transport is not None:
            replay = sum(len(o.data) for o in outputs if type(o) is Send and o.connection_id == greet.connection_id)
            transport.allow(replay)
        await self.run(outputs)

    # --- the broker's side (BrokerHandler) -----------------------------------------

    def on_publication(self, agent: str, publication: Publication) -> None:
        kind = publication.type
        if kind is PublicationType.EVENT:
            outputs = self.router.event(agent, publication.data, publication.reply_to, publication.position)
        elif kind is PublicationType.ERROR:
            if publication.reply_to is None:
                return
            outputs = self.router.error(agent, publication.reply_to, publication.data)
        elif publication.connection_id is not None:
            up = kind is PublicationType.PROVIDER_UP
            outputs = self.router.provider_changed(
                agent, ProviderPublication(publication.connection_id, up, publication.position)
            )
        else:
            return
        self._run_now(outputs)

    def on_request(self, agent: str, request_id: str, data: bytes) -> None:
        self._run_now(self.router.request(agent, request_id, data))

    def on_broker_health(self, healthy: bool) -> None:
        self.broker_healthy = healthy

    def on_resync(self) -> None:
        """The broker's backend is back: re-register this node's providers."""
        self._run_now(self.router.resync())

    def _run_now(self, outputs: list[Output]) -> None:
        """Carry out decisions from a synchronous callback: inline when nothing needs awaiting.

        The shapes of the hot paths are carried out without the dispatch:
        an event (one ``Deliver``), a request handed to this node's provider
        (one ``Send``), and an answer (``Deliver`` to the others, then
        ``Send`` to its requester).
        """
        count = len(outputs)
        if count == 1:
            output = outputs[0]
            if type(output) is Deliver and output.skip is None:  # an event from the broker: the fan-out path
                self._batch(output.agent, output.data)
                return
        if self._batched:  # whatever comes next reaches each connection after the batched events
            self._flush_batches()
        if count == 1:
            if type(output) is Deliver:
                self._deliver(output.agent, output.data, output.skip)
                return
            if type(output) is Send:
                self._send(output)
                return
        elif count == 2:
            first, second = outputs
            if type(first) is Deliver and type(second) is Send:
                self._deliver(first.agent, first.data, first.skip)
                self._send(second)
                return
        for output in outputs:
            if type(output) not in _IMMEDIATE:
                self._spawn(self.run(outputs))
                return
        for output in outputs:
            self._do(output)  # type: ignore[arg-type]

    def _batch(self, agent: str, data: bytes) -> None:
        """Deliver an event at the end of this loop turn, with the agent's other events of the turn.

        A provider's burst is read in one turn. Delivered one by one, each event
        cost one step per app; batched, each app gets the turn's events in one
        step (:meth:`Transport.send_batch`: frames built and joined once for all).
        Order is kept by one rule: before any other decision is carried out
        (a ``Send``, an ``Attach``, a ``Close``...), the batches are handed out
        (:meth:`_flush_batches`), so nothing overtakes an event and a group's
        members cannot change while a batch waits.
        """
        batched = self._batched
        payloads = batched.get(agent)
        if payloads is None:
            if not batched:
                asyncio.get_running_loop().call_soon(self._flush_batches)
            batched[agent] = [data]
        else:
            payloads.append(data)

    def _flush_batches(self) -> None:
        """Hand the batched events to their agents' connections: one call per connection and agent."""
        batched = self._batched
        if not batched:
            return
        self._batched = {}
        for agent, payloads in batched.items():
            group = self.groups.get(agent)
            if not group:
                continue
            if len(payloads) == 1:
                data = payloads[0]
                for transport in group.values():
                    transport.send(data)
            else:
                for transport in group.values():
                    transport.send_batch(payloads)
            self.observer.frame_out("event", len(group) * len(payloads))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- request timeouts ------------------------------------------------------------

    def _deadline_added(self) -> None:
        """A request went in flight: wake the timer only if its deadline comes first."""
        target = self._timer_target
        if target is None:
            self._timer_wake.set()
            return
        deadline = self.router.next_deadline()
        if deadline is not None and deadline < target:
            self._timer_wake.set()

    async def _expire_requests(self) -> None:
        while True:
            deadline = self.router.next_deadline()
            self._timer_target = deadline
            self._timer_wake.clear()
            if deadline is None:
                await self._timer_wake.wait()
                continue
            delay = deadline - self.router.clock()
            if delay > 0:
                # Woken early only by a request whose deadline comes sooner (a kind's own timeout).
                try:
                    async with asyncio.timeout(delay):
                        await self._timer_wake.wait()
                except TimeoutError:
                    pass
                continue
            await self.run(self.router.timeouts())
