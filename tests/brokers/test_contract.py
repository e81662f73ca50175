"""The broker contract (bridge/brokers/base.py), one suite for every broker.

Each test runs for every broker kind (tests/brokers/conftest.py); those marked
``several_nodes`` need nodes that share a backplane and run for the brokers
that have one. The two brokers pass the same tests.
"""

from __future__ import annotations

import asyncio

import pytest

from bridge.brokers import (
    Broker,
    HistoryRead,
    Position,
    ProviderLocation,
    Publication,
    PublicationType,
    RetainChange,
    RetainedFrame,
)

from .conftest import Cluster
from .recorder import bare

SEVERAL_NODES = pytest.mark.several_nodes

#: A frame with what a codec could trip on: newlines, non-ASCII, bytes that are not UTF-8.
AWKWARD = b'{"channel": "Amazon",\n "message": "\xc3\xa9"}\n\x00\xff'
STATE = "Amazon/Agent/SetAgentState"
CALL = "Amazon/InboundCall/InboundCallStateChange#contact-1"
OTHER_CALL = "Amazon/InboundCall/InboundCallStateChange#contact-2"


def event(data: bytes, reply_to: str | None = None) -> Publication:
    return Publication(PublicationType.EVENT, data, reply_to)


def up(connection_id: str) -> Publication:
    return Publication(PublicationType.PROVIDER_UP, connection_id=connection_id)


def down(connection_id: str) -> Publication:
    return Publication(PublicationType.PROVIDER_DOWN, connection_id=connection_id)


# --- health --------------------------------------------------------------------------------


async def test_a_started_broker_with_its_backplane_is_healthy(cluster: Cluster) -> None:
    node = await cluster.node()
    assert node.broker.healthy
    assert False not in node.seen.health  # reported healthy, if at all


# --- publications ----------------------------------------------------------------------------


async def test_own_publications_come_back_in_order_and_untouched(cluster: Cluster) -> None:
    node = await cluster.node()
    await node.broker.follow("a1")
    sent = [event(b"%d" % i) for i in range(50)]
    sent += [event(AWKWARD, "req-1"), Publication(PublicationType.ERROR, AWKWARD, "req-2"), up("c-1"), down("c-1")]
    for publication in sent:
        await node.broker.publish("a1", publication)
    await node.seen.until_count("a1", len(sent))
    assert node.seen.bare("a1") == bare(sent)


async def test_publications_reach_only_the_agents_followed(cluster: Cluster) -> None:
    node = await cluster.node()
    await node.broker.follow("a1")
    await node.broker.publish("a2", event(b"not followed"))
    await node.broker.publish("a1", event(b"followed"))
    await cluster.settle()
    assert node.seen.events("a1") == [b"followed"]
    assert node.seen.of("a2") == []


async def test_follow_and_unfollow_are_idempotent_and_unfollow_stops_delivery(cluster: Cluster) -> None:
    node = await cluster.node()
    await node.broker.follow("a1")
    await node.broker.follow("a1")  # no second subscription: no second delivery
    await node.broker.publish("a1", event(b"1"))
    await cluster.settle()
    assert node.seen.events("a1") == [b"1"]
    await node.broker.unfollow("a1")  # one unfollow ends it (no reference counting)
    await node.broker.unfollow("a1")
    await node.broker.publish("a1", event(b"2"))
    await cluster.settle()
    assert node.seen.events("a1") == [b"1"]
    await node.broker.follow("a1")  # and following again resumes it
    await node.broker.publish("a1", event(b"3"))
    await cluster.settle()
    assert node.seen.events("a1") == [b"1", b"3"]


async def test_concurrent_follows_all_return_subscribed(cluster: Cluster) -> None:
    node = await cluster.node()
    peer = await cluster.peer(node)
    await asyncio.gather(*(node.broker.follow("a1") for _ in range(5)))
    await peer.broker.publish("a1", event(b"after"))
    await node.seen.until(lambda: node.seen.events("a1") == [b"after"])
    await cluster.settle()
    assert node.seen.events("a1") == [b"after"]


@SEVERAL_NODES
async def test_publications_reach_every_following_node_and_no_other(cluster: Cluster) -> None:
    sender, follower, bystander = await cluster.node(), await cluster.node(), await cluster.node()
    await follower.broker.follow("a1")
    await bystander.broker.follow("a2")
    for i in range(50):
        await sender.broker.publish("a1", event(b"%d" % i))
    await follower.seen.until_count("a1", 50)
    await cluster.settle()
    assert follower.seen.events("a1") == [b"%d" % i for i in range(50)]
    assert sender.seen.of("a1") == []  # the sender does not follow a1
    assert bystander.seen.of("a1") == []


@SEVERAL_NODES
async def test_follow_is_in_effect_when_it_returns(cluster: Cluster) -> None:
    """Publish from another node the moment follow returns: never missed."""
    sender, follower = await cluster.node(), await cluster.node()
    agents = [f"f{i}" for i in range(20)]
    for agent in agents:
        await follower.broker.follow(agent)
        await sender.broker.publish(agent, event(agent.encode()))
    await follower.seen.until(lambda: all(follower.seen.of(a) for a in agents))


@SEVERAL_NODES
async def test_a_second_concurrent_follow_waits_for_the_subscription(cluster: Cluster) -> None:
    sender, follower = await cluster.node(), await cluster.node()
    for i in range(10):
        agent = f"c{i}"
        first = asyncio.create_task(follower.broker.follow(agent))
        await asyncio.sleep(0)  # the first caller has sent its SUBSCRIBE and waits
        await follower.broker.follow(agent)
        await sender.broker.publish(agent, event(b"x"))
        await first
    await follower.seen.until(lambda: all(follower.seen.events(f"c{i}") == [b"x"] for i in range(10)))


@SEVERAL_NODES
async def test_every_node_sees_one_order_of_an_agents_publications(cluster: Cluster) -> None:
    a, b, c = await cluster.node(), await cluster.node(), await cluster.node()
    for node in (a, b, c):
        await node.broker.follow("a1")

    async def stream(name: bytes, sender: Broker) -> None:
        for i in range(100):
            await sender.publish("a1", event(name + b"%d" % i))
            if i % 10 == 0:
                await asyncio.sleep(0)

    await asyncio.gather(stream(b"a", a.broker), stream(b"b", b.broker))
    for node in (a, b, c):
        await node.seen.until_count("a1", 200)
    orders = [node.seen.events("a1") for node in (a, b, c)]
    assert orders[0] == orders[1] == orders[2]
    for name in (b"a", b"b"):  # and each sender's own order within it
        assert [e for e in orders[0] if e.startswith(name)] == [name + b"%d" % i for i in range(100)]


# --- retained frames ---------------------------------------------------------------------------


def unpositioned(*frames: bytes) -> list[RetainedFrame]:
    """Retained frames as set by ``set_retained``: without a position."""
    return [RetainedFrame(data, None) for data in frames]


async def test_retained_frames_by_slot(cluster: Cluster) -> None:
    """Set, replace, drop, set again: one frame per slot, in first-set order, read at once."""
    broker = (await cluster.node()).broker
    assert await broker.get_retained("a1") == []
    await broker.set_retained("a1", STATE, b"state 1")
    await broker.set_retained("a1", CALL, b"call 1")
    await broker.set_retained("a1", OTHER_CALL, AWKWARD)
    await broker.set_retained("a2", STATE, b"other agent")
    # This node's own writes, just made (a broker may still have them queued).
    assert await broker.get_retained("a1") == unpositioned(b"state 1", b"call 1", AWKWARD)
    await broker.set_retained("a1", STATE, b"state 2")  # replaced: keeps its place
    assert await broker.get_retained("a1") == unpositioned(b"state 2", b"call 1", AWKWARD)
    await broker.drop_retained("a1", CALL)
    await broker.drop_retained("a1", "Amazon/Nothing/Here")  # an unknown slot: nothing happens
    assert await broker.get_retained("a1") == unpositioned(b"state 2", AWKWARD)
    await broker.set_retained("a1", CALL, b"call 2")  # dropped, then set again: last
    assert await broker.get_retained("a1") == unpositioned(b"state 2", AWKWARD, b"call 2")
    for slot in (STATE, CALL, OTHER_CALL):
        await broker.drop_retained("a1", slot)
    assert await broker.get_retained("a1") == []
    assert await broker.get_retained("a2") == unpositioned(b"other agent")
    await broker.set_retained("a1", CALL, b"call 3")  # an emptied agent starts afresh
    assert await broker.get_retained("a1") == unpositioned(b"call 3")


async def test_retained_frames_are_not_publications(cluster: Cluster) -> None:
    node = await cluster.node()
    await node.broker.follow("a1")
    await node.broker.set_retained("a1", STATE, b"state")
    await node.broker.drop_retained("a1", STATE)
    await cluster.settle()
    assert node.seen.of("a1") == []


@SEVERAL_NODES
async def test_retained_frames_are_shared_by_the_nodes(cluster: Cluster) -> None:
    writer, reader = await cluster.node(), await cluster.node()
    await writer.broker.set_retained("a1", STATE, b"state")
    await writer.broker.set_retained("a1", CALL, b"call")
    await writer.broker.flush()
    assert await reader.broker.get_retained("a1") == unpositioned(b"state", b"call")
    await reader.broker.set_retained("a1", STATE, b"state from the reader")
    await reader.broker.drop_retained("a1", CALL)
    await reader.broker.flush()
    assert await writer.broker.get_retained("a1") == unpositioned(b"state from the reader")


async def test_a_follower_misses_neither_the_retained_frame_nor_the_events_after_it(cluster: Cluster) -> None:
    """Follow, then read the retained frames, while another node streams set-then-publish:
    every event after the frame read is delivered."""
    writer = await cluster.node()
    reader = await cluster.peer(writer)
    count = 300

    async def stream() -> None:
        for i in range(count):
            await writer.broker.set_retained("a1", STATE, b"%d" % i)
            await writer.broker.publish("a1", event(b"%d" % i))
            if i % 20 == 0:
                await asyncio.sleep(0.001)

    streaming = asyncio.create_task(stream())
    await asyncio.sleep(0.01)
    await reader.broker.follow("a1")
    retained = await reader.broker.get_retained("a1")
    await streaming
    read = int(retained[0].data) if retained else -1
    await reader.seen.until(lambda: reader.seen.events("a1")[-1:] == [b"%d" % (count - 1)])
    got = {int(data) for data in reader.seen.events("a1")}
    assert set(range(read + 1, count)) <= got


# --- the provider registry and requests ----------------------------------------------------------


async def test_a_claim_registers_and_announces(cluster: Cluster) -> None:
    node = await cluster.node()
    await node.broker.follow("a1")
    assert await node.broker.provider("a1") is None
    await node.broker.claim_provider("a1", "c-1")
    assert await node.broker.provider("a1") == ProviderLocation(node.id, "c-1")
    await node.seen.until(lambda: node.seen.bare("a1") == [up("c-1")])


async def test_a_newer_claim_replaces_the_older_and_the_older_holder_hears_it(cluster: Cluster) -> None:
    older = await cluster.node()
    newer = await cluster.peer(older)
    await older.broker.follow("a1")
    await older.broker.claim_provider("a1", "c-old")
    await newer.broker.follow("a1")
    await newer.broker.claim_provider("a1", "c-new")
    assert await older.broker.provider("a1") == ProviderLocation(newer.id, "c-new")
    await older.seen.until(lambda: up("c-new") in older.seen.bare("a1"))
    assert [p for p in older.seen.bare("a1") if p.type is PublicationType.PROVIDER_UP][-2:] == [up("c-old"), up("c-new")]


async def test_a_release_announces_the_departure_unless_replaced(cluster: Cluster) -> None:
    older = await cluster.node()
    newer = await cluster.peer(older)
    await older.broker.follow("a1")
    await older.broker.claim_provider("a1", "c-old")
    await newer.broker.claim_provider("a1", "c-new")
    # The replaced provider's late release neither erases nor contradicts its successor.
    assert await older.broker.release_provider("a1", "c-old") is False
    assert await older.broker.provider("a1") == ProviderLocation(newer.id, "c-new")
    assert await newer.broker.release_provider("a1", "c-new") is True
    assert await older.broker.provider("a1") is None
    await older.seen.until(lambda: down("c-new") in older.seen.bare("a1"))
    await cluster.settle()
    assert down("c-old") not in older.seen.bare("a1")
    assert older.seen.bare("a1")[-1] == down("c-new")


async def test_claims_and_releases_keep_their_place_among_publications(cluster: Cluster) -> None:
    node = await cluster.node()
    watcher = await cluster.peer(node)
    await watcher.broker.follow("a1")
    await node.broker.publish("a1", event(b"before"))
    await node.broker.claim_provider("a1", "c-1")
    await node.broker.publish("a1", event(b"during"))
    await node.broker.release_provider("a1", "c-1")
    await watcher.seen.until_count("a1", 4)
    assert watcher.seen.bare("a1") == [event(b"before"), up("c-1"), event(b"during"), down("c-1")]


async def test_a_request_reaches_the_holder_and_names_its_connection(cluster: Cluster) -> None:
    holder = await cluster.node()
    asker = await cluster.peer(holder)
    assert await asker.broker.send_request("a1", "r-0", b"{}") is None  # no provider: nothing delivered
    await holder.broker.follow("a1")
    await holder.broker.claim_provider("a1", "c-1")
    assert await asker.broker.send_request("a1", "r-1", AWKWARD) == "c-1"
    await holder.seen.until(lambda: holder.seen.requests == [("a1", "r-1", AWKWARD)])
    await holder.broker.release_provider("a1", "c-1")
    assert await asker.broker.send_request("a1", "r-2", b"{}") is None
    await cluster.settle()
    assert holder.seen.requests == [("a1", "r-1", AWKWARD)]
    if asker is not holder:
        assert asker.seen.requests == []


# --- every agent (a supervisor of all) ------------------------------------------------------------


async def test_following_every_agent_delivers_each_publication_once(cluster: Cluster) -> None:
    node = await cluster.node()
    peer = await cluster.peer(node)
    await node.broker.follow("named")  # also followed by name: still once
    await node.broker.follow_all()
    await node.broker.follow_all()  # idempotent
    for agent in ("named", "later-1", "later-2"):
        await peer.broker.publish(agent, event(agent.encode()))
    await node.seen.until(lambda: all(node.seen.of(a) for a in ("named", "later-1", "later-2")))
    await cluster.settle()
    assert [node.seen.events(a) for a in ("named", "later-1", "later-2")] == [[b"named"], [b"later-1"], [b"later-2"]]
    # Ended, only the agents followed by name are delivered again (and still once).
    await node.broker.unfollow_all()
    await peer.broker.publish("named", event(b"again"))
    await peer.broker.publish("later-1", event(b"not any more"))
    await node.seen.until(lambda: node.seen.events("named") == [b"named", b"again"])
    await cluster.settle()
    assert node.seen.events("later-1") == [b"later-1"]


async def test_the_known_agents_are_those_with_a_provider_or_retained_frames(cluster: Cluster) -> None:
    node = await cluster.node()
    await node.broker.follow("k-state")
    await node.broker.set_retained("k-state", STATE, b"s")
    await node.broker.claim_provider("k-provider", "c-1")
    await node.broker.follow("k-nothing")
    await node.broker.flush()
    known = await node.broker.known_agents()
    assert {"k-state", "k-provider"} <= set(known)
    assert "k-nothing" not in known


# --- positions and history ---------------------------------------------------------------------


def offsets(publications: list[Publication]) -> list[int | None]:
    return [p.position.offset if p.position is not None else None for p in publications]


async def test_positions_grow_by_one_per_agent_across_publications_claims_and_releases(cluster: Cluster) -> None:
    node = await cluster.node()
    await node.broker.follow("a1")
    await node.broker.follow("a2")
    start = await node.broker.position("a1")
    assert start.offset == 0  # nothing yet: offset 0, in the epoch the first publication gets
    await node.broker.publish("a1", event(b"1"))
    await node.broker.claim_provider("a1", "c-1")
    await node.broker.publish("a2", event(b"other agent"))
    await node.broker.publish("a1", Publication(PublicationType.ERROR, b"to one requester", "req-1"))
    await node.broker.publish("a1", event(b"2"))
    await node.broker.release_provider("a1", "c-1")
    await node.seen.until_count("a1", 5)
    seen = node.seen.of("a1")
    assert [p.type for p in seen] == [PublicationType.EVENT, PublicationType.PROVIDER_UP, PublicationType.ERROR,
                                      PublicationType.EVENT, PublicationType.PROVIDER_DOWN]
    assert offsets(seen) == [1, 2, None, 3, 4]  # an error to one requester has no place in the stream
    assert {p.position.epoch for p in seen if p.position is not None} == {start.epoch}
    assert await node.broker.position("a1") == seen[-1].position
    await node.seen.until_count("a2", 1)
    assert offsets(node.seen.of("a2")) == [1]  # each agent counts its own


async def test_a_retained_frame_carries_the_position_of_its_publication(cluster: Cluster) -> None:
    node = await cluster.node()
    await node.broker.follow("a1")
    await node.broker.publish("a1", event(b"state 1"), RetainChange(STATE, keep=True))
    await node.broker.publish("a1", event(b"call"), RetainChange(CALL, keep=True))
    await node.broker.publish("a1", event(b"state 2"), RetainChange(STATE, keep=True))
    await node.seen.until_count("a1", 3)
    first, call, second = (p.position for p in node.seen.of("a1"))
    # Read your writes: the frames with their positions, replaced in place.
    assert await node.broker.get_retained("a1") == [RetainedFrame(b"state 2", second), RetainedFrame(b"call", call)]
    await node.broker.publish("a1", event(b"call ended"), RetainChange(CALL, keep=False))
    assert await node.broker.get_retained("a1") == [RetainedFrame(b"state 2", second)]
    assert first is not None and second is not None and second.offset == first.offset + 2


async def test_history_after_a_position_is_exactly_what_followed_in_order(cluster: Cluster) -> None:
    node = await cluster.node()
    await node.broker.follow("a1")
    for i in range(5):
        await node.broker.publish("a1", event(b"%d" % i))
    middle = await node.broker.position("a1")
    await node.broker.claim_provider("a1", "c-1")
    for i in range(5, 10):
        await node.broker.publish("a1", event(b"%d" % i, f"req-{i}"))
    await node.broker.publish("a1", Publication(PublicationType.ERROR, b"not in the stream", "req-x"))
    await node.broker.release_provider("a1", "c-1")
    top = await node.broker.position("a1")
    read = await node.broker.history("a1", middle)
    assert read.recovered and read.top == top
    assert bare(read.publications) == [up("c-1"), *(event(b"%d" % i, f"req-{i}") for i in range(5, 10)), down("c-1")]
    assert offsets(read.publications) == list(range(middle.offset + 1, top.offset + 1))
    # The history is what was delivered, position for position.
    await node.seen.until_count("a1", 13)
    delivered = [p for p in node.seen.of("a1") if p.position is not None]
    assert read.publications == delivered[-len(read.publications):]
    everything = await node.broker.history("a1", Position(top.epoch, 0))
    assert everything.recovered and offsets(everything.publications) == list(range(1, top.offset + 1))
    assert await node.broker.history("a1", top) == HistoryRead(True, top, [])  # nothing missed


async def test_history_cannot_recover_an_old_position_another_epoch_or_one_never_given(cluster: Cluster) -> None:
    node = await cluster.node(history_size=5)
    for i in range(12):
        await node.broker.publish("a1", event(b"%d" % i))
    top = await node.broker.position("a1")
    assert top.offset == 12
    # The last 5 are kept (8..12): from 7 on, every one after is there.
    kept = await node.broker.history("a1", Position(top.epoch, 7))
    assert kept.recovered and offsets(kept.publications) == [8, 9, 10, 11, 12]
    assert [p.data for p in kept.publications] == [b"7", b"8", b"9", b"10", b"11"]
    refused = HistoryRead(False, top, [])
    assert await node.broker.history("a1", Position(top.epoch, 6)) == refused  # 7 is gone
    assert await node.broker.history("a1", Position(top.epoch, 0)) == refused
    assert await node.broker.history("a1", Position("another-epoch", 12)) == refused
    assert await node.broker.history("a1", Position(top.epoch, 13)) == refused  # beyond the top


async def test_no_history_means_no_recovery(cluster: Cluster) -> None:
    node = await cluster.node(history_size=0)
    await node.broker.follow("a1")
    await node.broker.publish("a1", event(b"1"))
    await node.seen.until_count("a1", 1)
    top = await node.broker.position("a1")
    assert top.offset == 1 and node.seen.of("a1")[0].position == top  # still positioned
    assert await node.broker.history("a1", top) == HistoryRead(False, top, [])


async def test_a_follower_gets_every_publication_after_the_top_it_read(cluster: Cluster) -> None:
    """The join rule: follow, read the top and the retained frames, while another node streams
    retained events: the frame read is as of the top or later, and every publication after the
    top is delivered."""
    writer = await cluster.node()
    reader = await cluster.peer(writer)
    count = 300

    async def stream() -> None:
        for i in range(count):
            await writer.broker.publish("a1", event(b"%d" % i), RetainChange(STATE, keep=True))
            if i % 20 == 0:
                await asyncio.sleep(0.001)

    streaming = asyncio.create_task(stream())
    await asyncio.sleep(0.01)
    await reader.broker.follow("a1")
    top = await reader.broker.position("a1")
    retained = await reader.broker.get_retained("a1")
    await streaming
    if retained:
        frame = retained[0]
        assert frame.position is not None and frame.position.offset == int(frame.data) + 1
        assert frame.position.offset >= top.offset
    await reader.seen.until(lambda: reader.seen.events("a1")[-1:] == [b"%d" % (count - 1)])
    got = {p.position.offset for p in reader.seen.of("a1") if p.position is not None}
    assert set(range(top.offset + 1, count + 1)) <= got


@SEVERAL_NODES
async def test_every_node_positions_an_agents_publications_alike_and_reads_one_history(cluster: Cluster) -> None:
    a, b, c = await cluster.node(), await cluster.node(), await cluster.node()
    await c.broker.follow("a1")
    for i in range(5):
        await a.broker.publish("a1", event(b"a%d" % i))
        await b.broker.publish("a1", event(b"b%d" % i))
    await b.broker.claim_provider("a1", "c-1")
    await c.seen.until_count("a1", 11)
    seen = c.seen.of("a1")
    assert offsets(seen) == list(range(1, 12))
    top = await a.broker.position("a1")
    assert top == seen[-1].position
    read = await c.broker.history("a1", Position(top.epoch, 3))
    assert read.recovered and read.publications == seen[3:]
