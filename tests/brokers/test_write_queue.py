"""The backplane-agnostic parts a broker builds on: the ordered write queue and the retained copy."""

from __future__ import annotations

import asyncio

from bridge.brokers.retained import RetainedCopy
from bridge.brokers.write_queue import WriteQueue


class Backplane:
    """A fake backplane: records batches; refuses the writes it is told to; can hang."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.refuse: set[int] = set()
        self.raises = False
        self.gate = asyncio.Event()
        self.gate.set()
        self.local: list[int] = []

    async def send(self, batch: list[int]) -> list[int]:
        await self.gate.wait()
        if self.raises:
            raise RuntimeError("a bug in send")
        self.batches.append(batch)
        return [write for write in batch if write in self.refuse]

    def fallback(self, writes: list[int]) -> None:
        self.local.extend(writes)


def queue_for(backplane: Backplane, max_items: int = 4096, max_bytes: int = 1 << 20) -> WriteQueue[int]:
    queue: WriteQueue[int] = WriteQueue(backplane.send, backplane.fallback, max_items=max_items, max_bytes=max_bytes)
    queue.start()
    return queue


async def test_writes_go_out_in_order_batched_and_flush_waits_for_them() -> None:
    backplane = Backplane()
    queue = queue_for(backplane)
    backplane.gate.clear()  # the first batch hangs: later writes pile up behind it
    queue.put(0, 1)
    await asyncio.sleep(0)
    for write in range(1, 100):
        assert not queue.put(write, 1)
    assert queue.pending == 100
    backplane.gate.set()
    await queue.flush()
    assert queue.pending == 0
    assert [w for batch in backplane.batches for w in batch] == list(range(100))
    assert len(backplane.batches) == 2  # one batch per round trip, not one per write
    await queue.stop(1, 1)


async def test_failed_writes_go_to_the_fallback_in_order_before_the_next_batch() -> None:
    backplane = Backplane()
    queue = queue_for(backplane)
    backplane.refuse = {1, 3}
    for write in range(5):
        queue.put(write, 1)
    await queue.flush()
    assert backplane.local == [1, 3]
    backplane.raises = True  # a send that raises counts as nothing sent
    queue.put(5, 1)
    queue.put(6, 1)
    await queue.flush()
    assert backplane.local == [1, 3, 5, 6]
    await queue.stop(1, 1)


async def test_put_says_when_the_queue_is_full() -> None:
    backplane = Backplane()
    queue = queue_for(backplane, max_items=3, max_bytes=100)
    backplane.gate.clear()
    assert not queue.put(1, 10)
    assert not queue.put(2, 10)
    assert queue.put(3, 10)  # three items
    backplane.gate.set()
    await queue.flush()
    backplane.gate.clear()
    assert queue.put(4, 100)  # a hundred bytes
    backplane.gate.set()
    await queue.stop(1, 1)


async def test_stop_sends_what_is_queued_or_hands_it_over_within_its_bound() -> None:
    backplane = Backplane()
    queue = queue_for(backplane)
    for write in range(3):
        queue.put(write, 1)
    await queue.stop(1, 1)
    assert [w for batch in backplane.batches for w in batch] == [0, 1, 2]
    assert not queue.running

    hung = Backplane()
    queue = queue_for(hung)
    hung.gate.clear()  # the backplane never answers
    queue.put(0, 1)
    await asyncio.sleep(0)  # the writer holds [0] in a send that never ends
    queue.put(1, 1)
    waiting = asyncio.create_task(queue.flush())
    await queue.stop(0.05, 1)
    await asyncio.wait_for(waiting, 1)  # no flush waits in vain
    assert hung.local == [1]  # what was still queued; the batch in flight goes nowhere twice
    assert queue.pending == 0 and not queue.running


def test_the_retained_copy_owes_drops_that_missed_the_backplane() -> None:
    copy = RetainedCopy()
    copy.set("a", "s1", b"1")
    copy.set("a", "s2", b"2")
    copy.drop("a", "s1", queued=True)  # on its way: owed nothing
    assert copy.write_back("a") == [("s2", b"2")]
    copy.drop("a", "s2", queued=False)  # made while the backplane was away
    copy.drop_failed("a", "s3")  # queued, but its batch failed
    copy.set("a", "s2", b"2 again")
    assert copy.frames("a") == [b"2 again"]
    assert copy.write_back("a") == [("s2", None), ("s3", None), ("s2", b"2 again")]
    copy.written_back("a")
    assert copy.write_back("a") == [("s2", b"2 again")]
    copy.forget("a")
    assert copy.write_back("a") == [] and copy.frames("a") == []
