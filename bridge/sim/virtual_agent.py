"""A provider that behaves like a logged-in Amazon Connect agent, with no AWS account.

:class:`VirtualAgent` connects to the hub as the agent's provider through
:class:`bridge.client.BridgeClient`, carries out every request of the
``Agent`` topic with an :class:`bridge.sim.agent_model.AgentModel` and of the
``InboundCall`` topic with a :class:`bridge.sim.contacts.Switchboard`, and
publishes ``SetAgentState`` and one ``InboundCallStateChange`` per live
contact when it connects (and reconnects), then every change. Calls ring by
hand (:meth:`VirtualAgent.ring`, SIGUSR1 in the command) or on a schedule;
the simulated parties answer, hang up and miss calls on timers.

With ``reclaim`` it takes the agent back when it was replaced: a page that
connected as the same agent's provider (close 4001) is watched as an app, and
when that provider goes away the virtual agent connects again as provider.
The demo turns this on, so that no page it links can break it for good.

It exists so that the hub can be tried (``connect-bridge demo``), tested and
benchmarked without Amazon Connect; the rules it follows live in the model.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine, Iterable, Mapping
from typing import Any, Self

import jwt

from bridge.client import (
    BridgeClient,
    BridgeError,
    ConnectionLost,
    ConnectionState,
    Envelope,
    Replaced,
    TokenSource,
)
from bridge.protocol import PROVIDER_STATUS, Role, kind_of
from bridge.sim.agent_model import SET_AGENT_STATE, AgentModel, Answer, Failure, StateType
from bridge.sim.contacts import (
    CALL_REQUESTS,
    DEFAULT_CALLER,
    DEFAULT_QUICK_CONNECTS,
    QuickConnect,
    Switchboard,
    Timer,
)

log = logging.getLogger("bridge.virtual_agent")


def agent_of_token(token: str) -> str:
    """The agent a token names (its ``sub``), read without checking the signature:
    only the hub can check it, and it will. Raises :class:`ValueError`."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError as exc:
        raise ValueError(f"not a token: {exc}") from exc
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise ValueError("the token names no agent (no 'sub' claim)")
    return sub


class VirtualAgent:
    """A simulated agent desktop: the provider of one agent on the bus.

    Timing, in seconds (``None``: never):

    * ``call_every``: an inbound call rings that often while the agent is
      free *and routable* (Connect routes calls only to available agents),
      from ``caller`` with ``call_attributes``;
    * ``ring_timeout``: a ringing call nobody answers is ``missed`` after it;
    * ``call_length``: the customer of an answered call hangs up after it;
    * ``answer_delay``: a dialed customer (``SetMakeCall``) or a consulted
      party picks up after it;
    * ``acw_timeout``: after-call work nobody clears is cleared after it.

    ``fail``: call request subtopics that Connect refuses with their error
    type (``{"Hold"}``: every Hold fails with HOLD_CALL_FAILED).

    ``reclaim``: when another provider replaces this one (close 4001), watch
    the agent as an app (``ProviderStatus``) and, once that provider has been
    gone for ``reclaim_delay`` seconds, connect as provider again, with the
    same model (state and calls carry on). Without it a replaced virtual agent
    stays closed (:meth:`wait_closed`). With a token, the token must also be
    accepted for the app role; on an open hub the agent's name is enough.

    Extra keyword arguments go to :class:`BridgeClient` (backoff, timeouts).
    """

    def __init__(
        self,
        url: str,
        *,
        agent: str | None = None,
        token: TokenSource | None = None,
        model: AgentModel | None = None,
        source: str = "virtual-agent",
        call_every: float | None = None,
        call_length: float | None = None,
        ring_timeout: float | None = None,
        answer_delay: float | None = 2.0,
        acw_timeout: float | None = None,
        caller: str = DEFAULT_CALLER,
        call_attributes: Mapping[str, str] | None = None,
        quick_connects: Iterable[QuickConnect] = DEFAULT_QUICK_CONNECTS,
        fail: Iterable[str] = (),
        reclaim: bool = False,
        reclaim_delay: float = 1.0,
        **client_options: Any,
    ) -> None:
        if model is None:
            if agent is None and not isinstance(token, str):
                raise ValueError("name the agent (agent=...), give a token string, or give a model")
            model = AgentModel(agent if agent is not None else agent_of_token(str(token)))
        self.model = model
        self.calls = Switchboard(model, quick_connects=quick_connects, fail=fail)
        self.call_every = call_every
        self.call_length = call_length
        self.ring_timeout = ring_timeout
        self.answer_delay = answer_delay
        self.acw_timeout = acw_timeout
        self.caller = caller
        self.call_attributes: dict[str, str] = dict(call_attributes or {})
        self.reclaim = reclaim
        self.reclaim_delay = reclaim_delay
        # Kept to connect again after a replacement (reclaim).
        self._connect_with: dict[str, Any] = {
            "url": url, "token": token, "agent": agent, "source": source, **client_options
        }
        self.client = BridgeClient(role=Role.PROVIDER, **self._connect_with)
        #: Requests answered so far (events and errors).
        self.handled = 0
        #: How many times the agent was taken back after a replacement (reclaim).
        self.reclaimed = 0
        # Model changes and the event that reports them go out together, in order.
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._timers: dict[Timer, asyncio.Task[None]] = {}
        # A test seam: while cleared, call requests wait here after they arrive, as if
        # Connect were slow (so that a customer can hang up while a Hold is in flight).
        self._gate = asyncio.Event()
        self._gate.set()
        #: Call requests waiting at the gate (see :meth:`hold_requests`).
        self.waiting = 0
        self._remove_listener = self.client.add_state_listener(self._on_connection_state)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Connect as provider, publish the current state, and start serving requests.

        Raises what :meth:`BridgeClient.start` raises (with the client's
        ``retry_first_connect=True`` it waits for the hub instead).
        """
        await self.client.start()
        self._spawn(self._serve())
        if self.reclaim:
            self._spawn(self._reclaim_forever())
        if self.call_every is not None:
            self._spawn(self._call_schedule())

    async def close(self) -> None:
        """Stop serving and disconnect."""
        self._remove_listener()
        self._gate.set()
        tasks = [*self._tasks, *self._timers.values()]
        self._timers.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.client.close()

    async def wait_closed(self) -> None:
        """Return when the client has closed for good (for instance replaced by another
        provider); raises its ``close_error`` if it closed on an error. With
        ``reclaim`` this is the current client: a later one replaces it."""
        await self.client.wait_for_state(ConnectionState.CLOSED)
        if self.client.close_error is not None:
            raise self.client.close_error

    # ----- calls ---------------------------------------------------------------------

    async def ring(self, caller: str | None = None, attributes: Mapping[str, str] | None = None) -> str | None:
        """An inbound call rings (from ``caller``, default :attr:`caller`, with ``attributes``,
        default :attr:`call_attributes`); returns its contact id, or None when logged out."""
        async with self._lock:
            events = self.calls.ring(
                caller or self.caller, self.call_attributes if attributes is None else attributes
            )
            if events is None:
                return None
            contact_id = next(reversed(self.calls.contacts))
            await self._publish_all(events)
        log.info("%s: call %s ringing from %s", self.model.login_name, contact_id, caller or self.caller)
        return contact_id

    async def customer_hangs_up(self, contact_id: str | None = None) -> bool:
        """The customer of ``contact_id`` (or of the one live contact) hangs up."""
        async with self._lock:
            events = self.calls.customer_hangs_up(contact_id)
            await self._publish_all(events)
        return bool(events)

    async def third_party_hangs_up(self, contact_id: str | None = None) -> bool:
        """The consulted party of ``contact_id`` (or of the one live contact) hangs up."""
        async with self._lock:
            events = self.calls.third_party_hangs_up(contact_id)
            await self._publish_all(events)
        return bool(events)

    async def start_call(self) -> bool:
        """Go on a simulated call at once: an inbound contact, already answered (state Busy).
        False if not possible now (already on one, or logged out)."""
        async with self._lock:
            if self.model.on_call:
                return False
            events = self.calls.start_answered(self.caller, self.call_attributes)
            if events is None:
                return False
            await self._publish_all(events)
        log.info("%s: on a call", self.model.login_name)
        return True

    async def end_call(self) -> bool:
        """End every contact at once (``Dropped``, no after-call work), apply any queued
        state, and publish it. False if not on a call."""
        async with self._lock:
            if not self.model.on_call:
                return False
            await self._publish_all(self.calls.end_all())
            if self.model.on_call:  # a call state with no contact (AgentModel.start_call)
                self.model.end_call()
                await self._publish_state()
        log.info("%s: call ended, now %s", self.model.login_name, self.model.state.name)
        return True

    def hold_requests(self) -> None:
        """Make call requests wait after they arrive, until :meth:`release_requests` (tests)."""
        self._gate.clear()

    def release_requests(self) -> None:
        self._gate.set()

    async def toggle_call(self) -> bool:
        """Start a call when off one, end it when on one; True when something changed."""
        return await (self.end_call() if self.model.on_call else self.start_call())

    async def set_fail_updates(self, fail: bool) -> None:
        """Make every state change fail with UPDATE_AGENT_STATE_FAILED (or stop doing so)."""
        async with self._lock:
            self.model.fail_updates = fail

    # ----- internals ---------------------------------------------------------------------

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work, name=f"virtual-agent-{self.model.login_name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _publish_all(self, events: list[Answer], reply_to: str | None = None) -> None:
        """Publish ``events`` in order (the first answers ``reply_to``), then set the timers."""
        try:
            for index, answer in enumerate(events):
                await self.client.publish(answer.kind, answer.message, reply_to=reply_to if index == 0 else None)
        except ConnectionLost:
            # Not connected: the current state goes out again when the connection is back.
            log.debug("call events not published: not connected")
        self._sync_timers()

    def _sync_timers(self) -> None:
        """Start the timers the switchboard wants and cancel those it no longer wants."""
        due = self.calls.timers()
        for timer in list(self._timers):
            if timer not in due:
                self._timers.pop(timer).cancel()
        for timer in due - set(self._timers):
            delay = {
                "ring": self.ring_timeout,
                "answer": self.answer_delay,
                "hangup": self.call_length,
                "acw": self.acw_timeout,
            }[timer.purpose]
            if delay is not None:
                task = asyncio.create_task(self._run_timer(timer, delay), name=f"virtual-agent-{timer.purpose}")
                self._timers[timer] = task

    async def _run_timer(self, timer: Timer, delay: float) -> None:
        await asyncio.sleep(delay)
        async with self._lock:
            self._timers.pop(timer, None)
            events = self.calls.timer_fired(timer)
            await self._publish_all(events)
        if events:
            log.info("%s: %s on call %s", self.model.login_name, timer.purpose, timer.contact_id)

    async def _publish_state(self, reply_to: str | None = None) -> None:
        try:
            await self.client.publish(
                SET_AGENT_STATE, self.model.set_agent_state(), reply_to=reply_to
            )
        except ConnectionLost:
            # Not connected: the state goes out again when the connection is back.
            log.debug("state not published: not connected")

    def _on_connection_state(self, state: ConnectionState) -> None:
        if state is ConnectionState.OPEN:
            # Every new connection starts with the current state, which the hub retains.
            self._spawn(self._publish_on_connect())

    async def _publish_on_connect(self) -> None:
        # The hub forgets the agent's retained calls when a provider joins: what is
        # still live is published again at once, after the agent's state (calls.md).
        async with self._lock:
            await self._publish_state()
            await self._publish_all(self.calls.snapshot())

    async def _reclaim_forever(self) -> None:
        """Each time this provider is replaced, wait for the newer one to go, then come back."""
        while True:
            with contextlib.suppress(BridgeError):
                await self.client.wait_for_state(ConnectionState.CLOSED)
            if not isinstance(self.client.close_error, Replaced):
                return  # closed by close() or a fatal error: nothing to take back
            log.info("%s: replaced; taking the agent back when that provider leaves", self.model.login_name)
            try:
                await self._wait_until_provider_gone()
            except BridgeError as exc:
                log.warning("%s: cannot watch the agent to take it back: %s", self.model.login_name, exc)
                return
            client = BridgeClient(role=Role.PROVIDER, **self._connect_with)
            self._remove_listener()
            self._remove_listener = client.add_state_listener(self._on_connection_state)
            self.client = client
            try:
                await client.start()
            except BridgeError as exc:
                log.warning("%s: could not take the agent back: %s", self.model.login_name, exc)
                return
            self.reclaimed += 1
            log.info("%s: provider again", self.model.login_name)
            self._spawn(self._serve())

    async def _wait_until_provider_gone(self) -> None:
        """Watch the agent as an app until no provider has been connected for ``reclaim_delay``
        seconds (a page that reloads comes back within it, and is not replaced)."""
        options = {**self._connect_with, "source": "virtual-agent-reclaim", "retry_first_connect": True}
        watcher = BridgeClient(role=Role.APP, **options)
        statuses = watcher.events(PROVIDER_STATUS)
        try:
            await watcher.start()
            while True:
                while watcher.provider_connected is not False:
                    await statuses.get()
                await asyncio.sleep(self.reclaim_delay)
                if watcher.provider_connected is False:
                    return
        finally:
            await watcher.close()

    async def _serve(self) -> None:
        try:
            async for incoming in self.client.requests():
                await self._answer(incoming)
        except BridgeError as exc:
            log.warning("%s: stopped serving: %s", self.model.login_name, exc)

    async def _answer(self, incoming: Envelope) -> None:
        kind = kind_of(incoming)
        if kind is None:
            return
        data = incoming.get("data")
        reply_to = incoming.get("id")
        answer_to = reply_to if isinstance(reply_to, str) else None
        is_call = kind in CALL_REQUESTS
        if is_call and not self._gate.is_set():
            self.waiting += 1
            try:
                await self._gate.wait()
            finally:
                self.waiting -= 1
        async with self._lock:
            outcome: Answer | list[Answer] | Failure
            if is_call:
                outcome = self.calls.handle(kind, data)
            else:
                outcome = self.model.handle(kind, data if isinstance(data, dict) else None)
            try:
                if isinstance(outcome, list):
                    await self._publish_all(outcome, answer_to)
                elif isinstance(outcome, Answer):
                    await self.client.publish(outcome.kind, outcome.message, reply_to=answer_to)
                else:
                    await self.client.send_error(
                        incoming, outcome.error_type, outcome.error_message, msg=outcome.msg
                    )
            except ConnectionLost:
                log.info("%s: could not answer %s: not connected", self.model.login_name, kind)
                return
        self.handled += 1
        if isinstance(outcome, list):
            outcome = outcome[0]
        answer = (
            _summary(outcome.message, kind.subtopic)
            if isinstance(outcome, Answer)
            else outcome.error_type
        )
        log.info("%s: %s %s -> %s", self.model.login_name, kind.subtopic, data or "", answer)

    async def _call_schedule(self) -> None:
        assert self.call_every is not None
        while True:
            await asyncio.sleep(self.call_every)
            if self.model.on_call or self.model.state.type is not StateType.ROUTABLE:
                continue
            await self.ring()


def _summary(message: dict[str, Any], default: str) -> str:
    """What an answer says, for the log: the agent's state or the call's event."""
    call = message.get("call")
    if isinstance(call, dict):
        return f"call {call.get('event')}"
    return str(message.get("event", default))
