"""The subscription connection of one *epoch*: from a connect to the loss of Redis.

A :class:`Subscriptions` owns one redis-py ``PubSub`` connection, a reader
task that dispatches its messages, and the confirmations Redis sends for
each ``SUBSCRIBE``. It never reconnects: when its connection fails the
reader ends with the error, the broker discards the epoch and starts a new
one, which subscribes everything anew.

* **Confirmed subscriptions.** :meth:`Subscriptions.subscribe` returns once
  Redis has confirmed every channel, so a publication made afterwards is
  delivered. A channel already subscribed, or being subscribed, in this
  epoch is not subscribed twice: every caller waits for the one
  confirmation. Redis confirms in order, so one queue of waiters per
  channel matches each confirmation to its ``SUBSCRIBE`` even when the
  channel is unsubscribed and subscribed again in between.
* **Liveness.** A watcher task looks at the connection every
  ``heartbeat``: one that said nothing since its last look is pinged, and
  one silent for ``silence`` seconds counts as lost (a half-open TCP
  connection never says so itself), which ends the reader with an error.
* **Dispatch.** Every message goes to ``on_message(channel, payload,
  via_pattern)`` in the order Redis sent it; a callback that raises costs
  that message only.
* **A lean read path.** The reader reads the connection's replies itself
  (``Connection.read_response``) instead of through ``PubSub.get_message``,
  which adds to every message a retry wrapper, a health check, a timer, a
  dict, and, with RESP3, the text of the whole message built for a debug
  log line; the connection speaks RESP2 (:mod:`bridge.brokers.redis.client`),
  where a publication is a plain array. The reader awaits no timer: the
  watcher is what notices silence. Publications go straight to
  ``on_message``; every other reply (confirmations, pongs) still goes
  through redis-py's ``handle_message``, which keeps its record of the
  channels. Messages already buffered are dispatched one after another
  without a turn of the event loop in between (as ``get_message`` did).
* **One pattern.** :meth:`Subscriptions.follow_pattern` subscribes a
  pattern (every agent's channel, for a supervisor of every agent). From
  Redis's confirmation on, :attr:`Subscriptions.patterned` is true: a
  publication on a channel also subscribed by name then arrives twice (a
  message, then a pattern message), and the broker takes the pattern's
  copy only. The flag flips in the order of the connection's stream, so no
  publication is taken twice or lost at the switch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from bridge.brokers.redis.client import BACKEND_ERRORS

log = logging.getLogger("bridge.redis")


class Subscriptions:
    """One epoch's subscription connection (see the module docstring)."""

    def __init__(
        self,
        client: aioredis.Redis,
        on_message: Callable[[bytes, bytes, bool], None],
        *,
        timeout: float,
        heartbeat: float,
        silence: float,
        stopping: Callable[[], bool] = lambda: False,
    ) -> None:
        self._pubsub = client.pubsub()
        self._on_message = on_message
        self._timeout = timeout
        self._heartbeat = heartbeat
        self._silence = silence
        self._stopping = stopping
        #: Per channel, one waiter per SUBSCRIBE sent and not yet confirmed, in order.
        self._confirmations: dict[bytes, deque[asyncio.Future[None]]] = {}
        #: The channels subscribed (or being subscribed) in this epoch, with
        #: the waiter of their SUBSCRIBE: done once confirmed.
        self._channels: dict[bytes, asyncio.Future[None]] = {}
        #: Reads the connection; started by :meth:`open`, with the watcher that checks it is alive.
        self.reader: asyncio.Task[None] | None = None
        self._watcher: asyncio.Task[None] | None = None
        #: Replies read so far (what the watcher looks at), and why the watcher ended the reader.
        self._received = 0
        self._failure: Exception | None = None
        self._closed = False
        #: Waiters for PSUBSCRIBE confirmations, in order; whether a pattern is in effect.
        self._pattern_confirmations: deque[asyncio.Future[None]] = deque()
        self._pattern: bytes | None = None
        self._pattern_waiter: asyncio.Future[None] | None = None
        self.patterned = False

    async def open(self, channels: Iterable[bytes]) -> None:
        """Subscribe to ``channels``, start the reader, and wait until Redis confirms them."""
        waiters = await self._send_subscribe(channels)
        self.reader = asyncio.create_task(self._read(), name="bridge-redis-reader")
        self._watcher = asyncio.create_task(self._watch(), name="bridge-redis-watcher")
        await self._confirmed(waiters)

    async def subscribe(self, channels: Iterable[bytes]) -> None:
        """Subscribe (unless this epoch already did) and wait until Redis has confirmed each channel.

        Raises a Redis error when the connection fails or Redis does not
        confirm within the timeout. Returns early only if the epoch is
        closed meanwhile (its broker is degraded then).
        """
        await self._confirmed(await self._send_subscribe(channels))

    async def unsubscribe(self, channels: Iterable[bytes]) -> None:
        """Unsubscribe (no waiting: the broker drops what still comes for them)."""
        gone = [channel for channel in channels if self._channels.pop(channel, None) is not None]
        if gone:
            await self._pubsub.unsubscribe(*gone)

    async def follow_pattern(self, pattern: bytes) -> None:
        """Subscribe ``pattern`` (once per epoch) and wait until Redis confirms it."""
        if self._pattern is None:
            if self._closed:
                raise RedisConnectionError("the subscription connection is closed")
            self._pattern = pattern
            waiter = asyncio.get_running_loop().create_future()
            self._pattern_confirmations.append(waiter)
            self._pattern_waiter = waiter
            await self._pubsub.psubscribe(pattern)
        assert self._pattern_waiter is not None
        await self._confirmed([self._pattern_waiter])

    async def unfollow_pattern(self) -> None:
        """Unsubscribe the pattern (no waiting: :attr:`patterned` turns false at Redis's confirmation)."""
        pattern, self._pattern = self._pattern, None
        if pattern is not None:
            await self._pubsub.punsubscribe(pattern)

    async def close(self) -> None:
        """End the epoch: stop the reader, free every waiter, close the connection."""
        self._closed = True
        reader, self.reader = self.reader, None
        watcher, self._watcher = self._watcher, None
        tasks = [task for task in (reader, watcher) if task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)  # also retrieves the reader's error
        for waiters in [*self._confirmations.values(), self._pattern_confirmations]:
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)
        self._confirmations.clear()
        self._pattern_confirmations.clear()
        self._channels.clear()
        with contextlib.suppress(*BACKEND_ERRORS):
            await self._pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _send_subscribe(self, channels: Iterable[bytes]) -> list[asyncio.Future[None]]:
        """Send one SUBSCRIBE for the channels not subscribed yet; return every channel's waiter."""
        loop = asyncio.get_running_loop()
        waiters: list[asyncio.Future[None]] = []
        new: list[bytes] = []
        for channel in channels:
            waiter = self._channels.get(channel)
            if waiter is None:
                # Registered before the command is sent, and in sending order.
                waiter = self._channels[channel] = loop.create_future()
                self._confirmations.setdefault(channel, deque()).append(waiter)
                new.append(channel)
            waiters.append(waiter)
        if new:
            if self._closed:
                raise RedisConnectionError("the subscription connection is closed")
            await self._pubsub.subscribe(*new)
        return waiters

    async def _confirmed(self, waiters: list[asyncio.Future[None]]) -> None:
        pending = [waiter for waiter in waiters if not waiter.done()]
        if not pending:
            return
        # Shielded: a caller that gives up must not cancel a waiter others share.
        confirmed: asyncio.Future[Any] = asyncio.gather(*(asyncio.shield(w) for w in pending))
        watched: list[asyncio.Future[Any]] = [confirmed]
        if self.reader is not None:
            watched.append(self.reader)
        try:
            async with asyncio.timeout(self._timeout):
                await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
        except TimeoutError:
            raise RedisConnectionError("Redis did not confirm the subscriptions in time") from None
        finally:
            if not confirmed.done():
                confirmed.cancel()
        if confirmed.done() and not confirmed.cancelled():
            return
        reader = self.reader
        if reader is not None and reader.done() and not reader.cancelled() and reader.exception() is not None:
            raise reader.exception()  # type: ignore[misc]
        raise RedisConnectionError("the subscription connection stopped")

    async def _read(self) -> None:
        """Dispatch replies, in order, until the connection fails or the watcher ends the epoch."""
        connection = self._pubsub.connection
        if connection is None:  # open() subscribes before it starts the reader: never here
            raise RedisConnectionError("the subscription connection is closed")
        try:
            while not self._stopping():
                # No timeout (math.inf): the watcher notices a silent connection.
                # disconnect_on_error and push_request as get_message reads.
                response = await connection.read_response(
                    timeout=math.inf, disconnect_on_error=False, push_request=True
                )
                self._received += 1
                kind = response[0] if isinstance(response, list) else None
                if kind == b"message":
                    self._deliver(response[1], response[2], False)
                elif kind == b"pmessage":
                    self._deliver(response[2], response[3], True)
                else:
                    message = await self._pubsub.handle_message(response)
                    if message is not None:
                        self._dispatch(message)
        except asyncio.CancelledError:
            failure = self._failure
            if failure is None:
                raise
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()  # the cancellation was the watcher's way to end the read
            raise failure from None
        finally:
            if self._watcher is not None:
                self._watcher.cancel()

    async def _watch(self) -> None:
        """Every ``heartbeat``: ping a connection that said nothing since the last look; end a silent one.

        A pong counts as a reply. ``silence`` seconds without any ends the
        reader with an error (the epoch is over); so does a ping that fails.
        """
        loop = asyncio.get_running_loop()
        seen, last_heard = self._received, loop.time()
        while not self._stopping():
            await asyncio.sleep(self._heartbeat)
            now = loop.time()
            if self._received != seen:
                seen, last_heard = self._received, now
                continue
            if now - last_heard >= self._silence:
                self._end_reader(RedisConnectionError("Redis stopped answering pings"))
                return
            # A silent connection may be half-open (no RST ever came): a pong
            # proves it alive, its absence ends the epoch above.
            try:
                await self._pubsub.ping()
            except BACKEND_ERRORS as exc:
                self._end_reader(exc)
                return

    def _end_reader(self, failure: Exception) -> None:
        """Make the reader end with ``failure`` (the broker sees it as the epoch's end)."""
        reader = self.reader
        if reader is not None and not reader.done():
            self._failure = failure
            reader.cancel()

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        channel: bytes = message["channel"]
        if kind == "subscribe":
            waiters = self._confirmations.get(channel)
            if waiters:
                waiter = waiters.popleft()
                if not waiters:
                    del self._confirmations[channel]
                if not waiter.done():
                    waiter.set_result(None)
            return
        if kind == "psubscribe":
            self.patterned = True
            if self._pattern_confirmations:
                waiter = self._pattern_confirmations.popleft()
                if not waiter.done():
                    waiter.set_result(None)
            return
        if kind == "punsubscribe":
            self.patterned = False  # a pattern followed again since turns it back on at its own confirmation
            return
        if kind in ("message", "pmessage"):
            self._deliver(channel, message["data"], kind == "pmessage")

    def _deliver(self, channel: bytes, payload: bytes, via_pattern: bool) -> None:
        try:
            self._on_message(channel, payload, via_pattern)
        except Exception:  # a bad payload or a failing handler costs that message, never the reader
            log.exception("dropped a message on %r", channel)
