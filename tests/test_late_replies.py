"""A slow backplane: Redis carries out a command, but its reply comes after the client gave up.

The hub then cannot know whether what it sent reached the bus, so it serves
the node alone (delivers its own publications, hands requests to its own
provider) while Redis may still carry the same things. What each side sees
(docs/scaling.md, "When Redis is slow"): every event once, every request
handed to the provider once, no error for a request that was carried out,
and no ``ProviderStatus`` said twice.

The late reply is made exact, not timed: the real command runs, the test
waits until the bus has carried its effect, then the call raises the
timeout that a reply arriving too late gives.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import redis.exceptions

from bridge.brokers.redis import RedisBroker
from bridge.brokers.redis.settings import RedisSettings
from bridge.hub.config import HubConfig
from bridge.hub.server import HubServer

from .helpers import eventually
from .redis_helpers import Client, answer_for, is_kind, require_redis, sample

pytestmark = pytest.mark.redis

#: How long the bus gets to carry a command's effect before its reply "times out".
CARRIED = 0.2


class LateRedisBroker(RedisBroker):
    """A RedisBroker whose replies come too late while ``late`` is set."""

    late = False

    def late_calls(self) -> None:
        """Make the batch writer and request routing run, then time out."""
        real_pipeline = self.redis.pipeline

        def pipeline(*args: Any, **kwargs: Any) -> Any:
            pipe = real_pipeline(*args, **kwargs)
            real_execute = pipe.execute

            async def execute(*a: Any, **k: Any) -> Any:
                result = await real_execute(*a, **k)
                if self.late:
                    await asyncio.sleep(CARRIED)
                    raise redis.exceptions.TimeoutError("Timeout reading from socket (the test's late reply)")
                return result

            pipe.execute = execute
            return pipe

        self.redis.pipeline = pipeline  # type: ignore[method-assign]
        registry = self._registry
        for name in ("route", "claim"):
            setattr(registry, name, self._late(getattr(registry, name)))

    def _late(self, call: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def wrapped(*args: Any, **kwargs: Any) -> Any:
            result = await call(*args, **kwargs)
            if self.late:
                await asyncio.sleep(CARRIED)
                raise redis.exceptions.TimeoutError("Timeout reading from socket (the test's late reply)")
            return result

        return wrapped


def late_broker(prefix: str) -> LateRedisBroker:
    broker = LateRedisBroker(require_redis(), settings=RedisSettings(prefix=prefix))
    broker.late_calls()
    return broker


CONFIG = HubConfig(port=0, open_mode=True, request_timeout=3.0, rate_limit=10_000, rate_burst=10_000)


@pytest.fixture
async def late_hub(prefix: str) -> AsyncIterator[tuple[HubServer, LateRedisBroker]]:
    broker = late_broker(prefix)
    async with HubServer(CONFIG, broker=broker) as hub:
        yield hub, broker


def state(n: int, reply_to: str | None = None) -> dict[str, Any]:
    event = sample("seed-SetAgentState.event.json")
    event["message"]["data"]["name"] = f"state-{n}"
    if reply_to is not None:
        event["replyTo"] = reply_to
    return event


async def frames_for(client: Client, seconds: float) -> list[dict[str, Any]]:
    """Every frame the client receives within ``seconds``."""
    out: list[dict[str, Any]] = []
    try:
        async with asyncio.timeout(seconds):
            while True:
                out.append(await client.recv(seconds))
    except TimeoutError:
        return out


def of(frames: list[dict[str, Any]], subtopic: str) -> list[dict[str, Any]]:
    return [f for f in frames if f.get("subtopic") == subtopic]


async def recovered(hub: HubServer, broker: LateRedisBroker) -> None:
    """Replies on time again, and the node back on Redis (resubscribed, providers re-claimed)."""
    broker.late = False
    await eventually(lambda: hub.node.broker_healthy)
    await asyncio.sleep(0.3)


async def test_events_published_while_replies_are_late_arrive_once(
    late_hub: tuple[HubServer, LateRedisBroker],
) -> None:
    hub, broker = late_hub
    provider = await Client.join(hub.url, "provider", "slow1")
    app = await Client.join(hub.url, "app", "slow1")  # on the provider's node
    assert (await app.recv())["message"] == {"connected": True}
    broker.late = True
    for n in range(5):
        await provider.send(state(n))
    seen = await frames_for(app, 1.5)
    await recovered(hub, broker)
    seen += await frames_for(app, 0.5)
    names = [f["message"]["data"]["name"] for f in of(seen, "SetAgentState")]
    assert names == [f"state-{n}" for n in range(5)]
    # Redis carried them (their replies were only late): each came once, with its position.
    offsets = [f["offset"] for f in of(seen, "SetAgentState")]
    assert offsets == list(range(offsets[0], offsets[0] + 5))
    # The provider never left: the apps are not told that it came again.
    assert of(seen, "ProviderStatus") == []
    await provider.send(state(5))
    assert [f["message"]["data"]["name"] for f in of(await frames_for(app, 0.5), "SetAgentState")] == ["state-5"]


async def test_a_request_routed_while_replies_are_late_is_carried_out_once(
    late_hub: tuple[HubServer, LateRedisBroker],
) -> None:
    hub, broker = late_hub
    provider = await Client.join(hub.url, "provider", "slow2")
    app = await Client.join(hub.url, "app", "slow2")
    await app.recv()
    broker.late = True
    await app.send({**sample("seed-SetNotReady.request.json"), "id": "late-1"})
    request = await provider.recv(5)
    assert request["subtopic"] == "SetNotReady"
    await provider.send(state(1, reply_to=request["id"]))
    seen = await frames_for(app, 1.0)
    await recovered(hub, broker)
    assert of(await frames_for(provider, 0.5), "SetNotReady") == []  # handed over once
    seen += await frames_for(app, 0.5)
    assert [f.get("replyTo") for f in of(seen, "SetAgentState")] == ["late-1"]
    assert of(seen, "ApiError") == []


async def test_a_request_to_another_node_while_replies_are_late_gets_its_answer_not_an_error(
    prefix: str,
) -> None:
    """The routing's reply never came, but Redis did hand the request to the provider's node."""
    broker = late_broker(prefix)
    async with (
        HubServer(CONFIG, broker=broker) as near,
        HubServer(CONFIG, broker=RedisBroker(require_redis(), settings=RedisSettings(prefix=prefix))) as far,
    ):
        provider = await Client.join(far.url, "provider", "slow3")
        app = await Client.join(near.url, "app", "slow3")
        assert (await app.recv())["message"] == {"connected": True}
        broker.late = True
        await app.send({**sample("seed-SetNotReady.request.json"), "id": "late-2"})
        request = await provider.recv(5)
        await recovered(near, broker)
        await provider.send(state(2, reply_to=request["id"]))  # answered after the routing's "timeout"
        seen = await frames_for(app, 1.5)
        assert of(seen, "ApiError") == []
        assert [f.get("replyTo") for f in of(seen, "SetAgentState")] == ["late-2"]
        assert of(await frames_for(provider, 0.3), "SetNotReady") == []


async def test_a_provider_claimed_while_replies_are_late_is_announced_once(
    late_hub: tuple[HubServer, LateRedisBroker],
) -> None:
    hub, broker = late_hub
    app = await Client.join(hub.url, "app", "slow4")
    assert (await app.recv())["message"] == {"connected": False}
    broker.late = True
    provider = await Client.join(hub.url, "provider", "slow4")
    seen = await frames_for(app, 1.0)
    await recovered(hub, broker)  # the claim Redis never confirmed is made again
    seen += await frames_for(app, 1.0)
    assert [f["message"] for f in of(seen, "ProviderStatus")] == [{"connected": True}]
    # And the provider it announced is the one requests reach.
    await app.send({**sample("seed-SetNotReady.request.json"), "id": "after-claim"})
    request = await provider.recv(5)
    await provider.send(answer_for(request))
    _, skipped = await app.recv_until(is_kind("SetAgentState", replyTo="after-claim"))
    assert of(skipped, "ApiError") == []
