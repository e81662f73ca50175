"""An ordered write-behind queue: what a broker sends to its backplane, in call order.

A broker that must not wait for its backplane on every publication puts
its writes here and returns; one writer task takes everything queued so far
as one *batch*, hands it to ``send`` (one round trip, say), then takes the
next. Nothing here knows the backplane:

* ``send(batch)`` sends a batch in order and returns the writes that did not
  reach the backplane (an empty list when all did); raising counts as none.
* ``fallback(writes)`` gets those writes, in order, so the broker can serve
  them locally (deliver publications to its own handler, say).

What the queue guarantees:

* **Order.** Writes are sent, or handed to the fallback, in the order they
  were put, one batch after the other; a batch's failed writes are handed
  to the fallback before the next batch is sent.
* **Flush.** :meth:`WriteQueue.flush` returns once every write put before the
  call is done (sent, or handed to the fallback), so a command sent
  outside the queue after a flush follows them.
* **Bounds.** :meth:`WriteQueue.put` says when the queue holds ``max_items``
  writes or ``max_bytes`` bytes; the caller then flushes (backpressure).
* **Nothing is lost in silence.** At :meth:`WriteQueue.stop` the queue is sent
  within a bound; what is still queued then goes to the fallback, and no
  flush waits in vain. (A batch the writer is cancelled on mid-send may or
  may not have reached the backplane: it goes to neither, so that nothing
  is delivered twice.)
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Final, Generic, TypeVar

log = logging.getLogger("bridge.brokers.write_queue")

W = TypeVar("W")

#: Default bounds: past this many queued writes, or bytes, callers wait.
MAX_ITEMS: Final = 4096
MAX_BYTES: Final = 8 * 1024 * 1024


class WriteQueue(Generic[W]):
    """Writes of type ``W`` waiting for the backplane (see the module docstring)."""

    def __init__(
        self,
        send: Callable[[list[W]], Awaitable[list[W]]],
        fallback: Callable[[list[W]], None],
        *,
        max_items: int = MAX_ITEMS,
        max_bytes: int = MAX_BYTES,
        name: str = "write-queue",
    ) -> None:
        self._send = send
        self._fallback = fallback
        #: Bounds, read at every put (a test or an operator may change them).
        self.max_items = max_items
        self.max_bytes = max_bytes
        self._name = name
        #: Writes not yet taken by the writer, in call order, and their size in bytes.
        self._items: list[W] = []
        self._bytes = 0
        #: Writes ever put, and of those the ones the writer is done with: a
        #: flush waits for the second to reach the first as it was when it began.
        self._put = 0
        self._done = 0
        #: Flushes waiting, as (count of writes to be done, waiter), in call order.
        self._flushes: deque[tuple[int, asyncio.Future[None]]] = deque()
        #: Set when something is put (or at stop) to wake the writer.
        self._wake = asyncio.Event()
        self._stopping = False
        self._writer: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        """Whether a writer takes what is put (from :meth:`start` until :meth:`stop`)."""
        return self._writer is not None

    @property
    def pending(self) -> int:
        """Writes put and not yet done: queued, or in the batch being sent."""
        return self._put - self._done

    def start(self) -> None:
        if self._writer is None:
            self._stopping = False
            self._writer = asyncio.create_task(self._write(), name=self._name)

    def put(self, write: W, size: int) -> bool:
        """Queue one write of ``size`` bytes; return whether the queue is now full.

        When it is, the caller should ``await flush()`` before it goes on:
        the backplane (or the link to it) is slower than the caller.
        """
        self._items.append(write)
        self._put += 1
        self._bytes += size
        self._wake.set()
        return len(self._items) >= self.max_items or self._bytes >= self.max_bytes

    async def flush(self) -> None:
        """Wait until every write put so far is done (sent, or handed to the fallback)."""
        if self._done >= self._put:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._flushes.append((self._put, waiter))
        await waiter

    async def stop(self, drain_timeout: float, cancel_timeout: float) -> None:
        """Send what is queued within ``drain_timeout`` seconds, then stop the writer.

        A writer still busy then is cancelled (what it held goes to the
        fallback) and given ``cancel_timeout`` more seconds: a library that
        swallows the cancellation only delays its end to its next turn.
        """
        writer = self._writer
        if writer is None:
            return
        self._stopping = True
        self._wake.set()
        _, late = await asyncio.wait([writer], timeout=drain_timeout)
        if late:
            log.warning("%s: %d writes still queued at stop; giving up on them", self._name, self.pending)
            writer.cancel()
            _, late = await asyncio.wait([writer], timeout=cancel_timeout)
            if late:
                log.warning("%s: the writer is still running at stop", self._name)
        if writer.done() and not writer.cancelled() and writer.exception() is not None:
            log.error("%s: the writer failed", self._name, exc_info=writer.exception())
        self._writer = None

    def _wake_flushes(self) -> None:
        flushes = self._flushes
        while flushes and flushes[0][0] <= self._done:
            _, waiter = flushes.popleft()
            if not waiter.done():
                waiter.set_result(None)

    def _hand_over(self, writes: list[W]) -> None:
        try:
            self._fallback(writes)
        except Exception:  # the fallback's failure must not stop the writer
            log.exception("%s: the local fallback failed on %d writes", self._name, len(writes))

    async def _write(self) -> None:
        """Send batches in order until stopped with an empty queue, or cancelled."""
        task = asyncio.current_task()
        assert task is not None
        try:
            # Checks cancelling(): a library may swallow a CancelledError that
            # hit a command in flight, leaving the task flagged but running.
            while task.cancelling() == 0:
                if not self._items:
                    if self._stopping:
                        return
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                batch, self._items, self._bytes = self._items, [], 0
                try:
                    try:
                        failed = await self._send(batch)
                    except Exception:  # a bug must not cost the node its writes
                        log.exception("%s: sending a batch of %d writes failed", self._name, len(batch))
                        failed = batch
                    if failed:
                        self._hand_over(failed)
                finally:
                    self._done += len(batch)
                    self._wake_flushes()
        finally:
            leftover, self._items, self._bytes = self._items, [], 0
            if leftover:
                log.warning("%s: %d queued writes not sent at stop; handed to the fallback",
                            self._name, len(leftover))
                self._hand_over(leftover)
            self._done = self._put
            self._wake_flushes()
            if self._writer is task:
                self._writer = None
