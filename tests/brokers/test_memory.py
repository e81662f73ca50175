"""What the memory broker adds to the contract.

Retained frames live as long as the node follows the agent; an agent's
stream (positions and history) outlives that by the history's TTL, so the
app that was its only client can come back and recover; the history is
bounded in time as well as in size; streams are bounded in number.
"""

from __future__ import annotations

from bridge.brokers import (
    HistoryRead,
    MemoryBroker,
    Position,
    Publication,
    PublicationType,
    RetainChange,
    RetainedFrame,
)
from bridge.brokers.streams import AgentStreams

from .recorder import Recorder


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def event(data: bytes) -> Publication:
    return Publication(PublicationType.EVENT, data)


async def test_retained_frames_go_with_the_last_client_of_the_agent() -> None:
    broker = MemoryBroker()
    await broker.start(Recorder())
    await broker.follow("a1")
    await broker.set_retained("a1", "Amazon/Agent/SetAgentState", b"state")
    await broker.unfollow("a1")
    assert await broker.get_retained("a1") == []
    await broker.close()


async def test_the_history_keeps_nothing_older_than_its_ttl() -> None:
    clock = Clock()
    broker = MemoryBroker(history_size=100, history_ttl=60, clock=clock)
    await broker.start(Recorder())
    await broker.follow("a1")
    await broker.publish("a1", event(b"old"))
    clock.now += 30
    await broker.publish("a1", event(b"newer"))
    start = Position((await broker.position("a1")).epoch, 0)
    clock.now += 31  # "old" is 61 s old, "newer" 31 s
    top = await broker.position("a1")
    assert await broker.history("a1", start) == HistoryRead(False, top, [])
    read = await broker.history("a1", Position(top.epoch, 1))
    assert read.recovered and [p.data for p in read.publications] == [b"newer"]
    clock.now += 30
    assert not (await broker.history("a1", Position(top.epoch, 1))).recovered
    assert await broker.history("a1", top) == HistoryRead(True, top, [])  # nothing was missed


async def test_an_unfollowed_agent_keeps_its_stream_for_the_ttl_then_starts_a_new_epoch() -> None:
    clock = Clock()
    broker = MemoryBroker(history_size=100, history_ttl=60, clock=clock)
    await broker.start(Recorder())
    await broker.follow("a1")
    await broker.publish("a1", event(b"1"))
    await broker.publish("a1", event(b"2"))
    seen = Position((await broker.position("a1")).epoch, 1)
    await broker.unfollow("a1")  # its only app dropped
    clock.now += 59
    await broker.unfollow("other")  # (streams are looked after on the way)
    await broker.follow("a1")  # it is back in time
    read = await broker.history("a1", seen)
    assert read.recovered and [p.data for p in read.publications] == [b"2"]
    await broker.unfollow("a1")
    clock.now += 61
    await broker.unfollow("other")
    top = await broker.position("a1")
    assert top.epoch != seen.epoch and top.offset == 0  # forgotten: a new stream
    assert not (await broker.history("a1", seen)).recovered


async def test_an_agent_with_a_provider_keeps_its_stream_while_nobody_follows_it() -> None:
    clock = Clock()
    broker = MemoryBroker(history_size=100, history_ttl=60, clock=clock)
    await broker.start(Recorder())
    await broker.claim_provider("a1", "c-1")
    await broker.follow("a1")
    await broker.unfollow("a1")
    clock.now += 120
    await broker.unfollow("other")
    top = await broker.position("a1")
    assert top.offset == 1  # the PROVIDER_UP, in the same stream


async def test_a_restarted_node_never_recovers_a_position_of_the_one_before() -> None:
    before, after = MemoryBroker(), MemoryBroker()
    for broker in (before, after):
        await broker.start(Recorder())
        await broker.publish("a1", event(b"1"))
    seen = await before.position("a1")
    assert seen.offset == 1 and (await after.position("a1")).offset == 1
    assert not (await after.history("a1", seen)).recovered


def test_streams_are_bounded_in_number_least_recently_written_first() -> None:
    streams = AgentStreams(10, 60, limit=3)
    for agent in ("a1", "a2", "a3"):
        streams.append(agent, event(agent.encode()))
    first = streams.top("a1")
    streams.append("a1", event(b"again"))  # a1 is now the most recently written
    streams.append("a4", event(b"one too many"))
    assert len(streams) == 3 and "a2" not in streams and "a1" in streams
    assert streams.top("a1") == Position(first.epoch, 2)
    assert streams.top("a2").offset == 0  # a new stream (and a3, the oldest now, made room)
    assert "a3" not in streams


def test_histories_are_bounded_in_bytes_the_least_recently_written_losing_first() -> None:
    # A provider may send frames up to the hub's frame limit: what all histories keep has a budget.
    streams = AgentStreams(100, 60, limit=10, max_bytes=10_000)
    quiet = streams.top("quiet")
    for _ in range(5):
        streams.append("quiet", event(b"q" * 1000))
    for _ in range(20):
        streams.append("busy", event(b"b" * 1000))
    assert streams.bytes_kept <= 10_000
    # The quiet agent wrote least recently: its history went first, and says so rather than leave a gap.
    assert not streams.read("quiet", quiet).recovered
    assert streams.top("quiet") == Position(quiet.epoch, 5)  # its positions are still known
    recent = streams.read("busy", Position(streams.top("busy").epoch, 15))
    assert recent.recovered and [p.position.offset for p in recent.publications if p.position] == [16, 17, 18, 19, 20]
    assert not streams.read("busy", Position(streams.top("busy").epoch, 5)).recovered  # shed to fit


def test_the_byte_count_follows_every_way_an_entry_leaves() -> None:
    clock = [0.0]
    streams = AgentStreams(3, 10, limit=2, max_bytes=1_000_000, clock=lambda: clock[0])
    for _ in range(5):  # two pushed out by the size bound
        streams.append("a1", event(b"x" * 100))
    assert streams.bytes_kept == 300
    streams.append("a2", event(b"y" * 50))
    streams.append("a3", event(b"z" * 10))  # a1 dropped by the stream limit
    assert streams.bytes_kept == 60
    clock[0] = 11  # past the TTL: trimmed when a2 is written next
    streams.append("a2", event(b"y" * 50))
    assert streams.bytes_kept == 60
    streams.drop("a2")
    assert streams.bytes_kept == 10


async def test_a_published_retained_frame_reads_back_as_a_retained_frame_with_its_position() -> None:
    broker = MemoryBroker()
    await broker.start(Recorder())
    await broker.follow("a1")
    await broker.publish("a1", Publication(PublicationType.EVENT, b"xxxxx"), RetainChange("slot", keep=True))
    await broker.set_retained("a1", "other", b"set")
    top = await broker.position("a1")
    assert await broker.get_retained("a1") == [RetainedFrame(b"xxxxx", top), RetainedFrame(b"set", None)]
    [kept] = (await broker.history("a1", Position(top.epoch, 0))).publications
    assert kept == Publication(PublicationType.EVENT, b"xxxxx", position=top)
    await broker.close()
