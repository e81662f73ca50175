"""A provider that behaves like a logged-in Amazon Connect agent, with no AWS account.

:class:`VirtualAgent` connects to the hub as the agent's provider through
:class:`bridge.client.BridgeClient`, carries out every v1 request with an
:class:`bridge.agent_model.AgentModel`, and publishes ``SetAgentState`` when it
connects (and reconnects) and on every change. It can go on simulated calls,
by hand (:meth:`VirtualAgent.start_call`) or on a schedule.

It exists so that the hub can be tried (``connect-bridge demo``), tested and
benchmarked without Amazon Connect; the rules it follows live in the model.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any, Self

import jwt

from bridge.client import (
    BridgeClient,
    BridgeError,
    ConnectionLost,
    ConnectionState,
    Envelope,
    TokenSource,
)
from bridge.protocol import Role, kind_of
from bridge.sim.agent_model import SET_AGENT_STATE, AgentModel, Answer, StateType

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

    ``call_every``: when set, a call starts that many seconds after the agent
    became free *and routable* (Connect routes calls only to available
    agents) and lasts ``call_length`` seconds. Extra keyword arguments go to
    :class:`BridgeClient` (backoff, timeouts).
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
        call_length: float = 30.0,
        **client_options: Any,
    ) -> None:
        if model is None:
            if agent is None and not isinstance(token, str):
                raise ValueError("name the agent (agent=...), give a token string, or give a model")
            model = AgentModel(agent if agent is not None else agent_of_token(str(token)))
        self.model = model
        self.call_every = call_every
        self.call_length = call_length
        self.client = BridgeClient(
            url, token=token, agent=agent, role=Role.PROVIDER, source=source, **client_options
        )
        #: Requests answered so far (events and errors).
        self.handled = 0
        # Model changes and the event that reports them go out together, in order.
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
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
        if self.call_every is not None:
            self._spawn(self._call_schedule())

    async def close(self) -> None:
        """Stop serving and disconnect."""
        self._remove_listener()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.client.close()

    async def wait_closed(self) -> None:
        """Return when the client has closed for good (for instance replaced by another
        provider); raises its ``close_error`` if it closed on an error."""
        await self.client.wait_for_state(ConnectionState.CLOSED)
        if self.client.close_error is not None:
            raise self.client.close_error

    # ----- calls ---------------------------------------------------------------------

    async def start_call(self) -> bool:
        """Go on a simulated call (state Busy) and publish it. False if not possible now."""
        async with self._lock:
            if not self.model.start_call():
                return False
            await self._publish_state()
        log.info("%s: on a call", self.model.login_name)
        return True

    async def end_call(self) -> bool:
        """End the call, apply any queued state, and publish it. False if not on a call."""
        async with self._lock:
            if not self.model.end_call():
                return False
            await self._publish_state()
        log.info("%s: call ended, now %s", self.model.login_name, self.model.state.name)
        return True

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
        async with self._lock:
            await self._publish_state()

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
        async with self._lock:
            outcome = self.model.handle(kind, data if isinstance(data, dict) else None)
            try:
                if isinstance(outcome, Answer):
                    await self.client.publish(
                        outcome.kind,
                        outcome.message,
                        reply_to=reply_to if isinstance(reply_to, str) else None,
                    )
                else:
                    await self.client.send_error(
                        incoming, outcome.error_type, outcome.error_message, msg=outcome.msg
                    )
            except ConnectionLost:
                log.info("%s: could not answer %s: not connected", self.model.login_name, kind)
                return
        self.handled += 1
        answer = (
            outcome.message.get("event", kind.subtopic)
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
            if await self.start_call():
                await asyncio.sleep(self.call_length)
                await self.end_call()
