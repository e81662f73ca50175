"""What the memory broker adds to the contract: retained frames live as long as the node follows."""

from __future__ import annotations

from bridge.brokers import MemoryBroker

from .recorder import Recorder


async def test_retained_frames_go_with_the_last_client_of_the_agent() -> None:
    broker = MemoryBroker()
    await broker.start(Recorder())
    await broker.follow("a1")
    await broker.set_retained("a1", "Amazon/Agent/SetAgentState", b"state")
    await broker.unfollow("a1")
    assert await broker.get_retained("a1") == []
    await broker.close()
