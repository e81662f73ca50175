"""The provider registry in Redis: who holds each agent's provider, and routing to it.

``P:provider:{agent}`` holds ``"{node_id} {connection_id}"`` and expires
``provider_ttl`` after its holder's last refresh. Every change that others
must hear of is one Lua script that changes the entry *and* publishes on the
agent's channel, so no node can see one without the other:

* **claim**: take the entry over and announce ``PROVIDER_UP`` (positioned and
  kept in the agent's history, like every announcement here:
  :mod:`bridge.brokers.redis.history`); or, as a
  refresh (heartbeat, re-claim after an outage), only extend our own entry or
  re-create a missing one, and answer the holder when another connection
  took over meanwhile. A re-claim also writes the provider's retained frames
  back in the same step (:mod:`bridge.brokers.redis.retained`).
* **release**: compare-and-delete, and announce ``PROVIDER_DOWN``.
* **route**: read the holder and publish the request on its node's channel.

A node that no longer listens on its channel (``PUBLISH`` reaches nobody, or
``PUBSUB NUMSUB`` counts nobody) is dead: :meth:`ProviderRegistry.ghosts`
finds its entries, which a release then drops and announces.

This module only talks to Redis; which providers this node holds, and what
to do when Redis fails, is the broker's business.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import redis.asyncio as aioredis

from bridge.brokers.base import ProviderLocation, Publication, PublicationType
from bridge.brokers.redis.codec import decode_holder, encode_head, encode_holder
from bridge.brokers.redis.history import RedisHistory
from bridge.brokers.redis.keys import RedisKeys
from bridge.brokers.redis.retained import RETAINED_LUA, write_args

# KEYS[1]: the provider entry, KEYS[2], KEYS[3]: the agent's position hash and
# stream; ARGV[1]: "{node_id} {connection_id}"; ARGV[2]: TTL in ms; ARGV[3]:
# "1" to take over from whoever holds it (a provider that just connected),
# else a refresh; ARGV[4], ARGV[5], ARGV[6]: the agent's channel, the
# PROVIDER_UP's header (no position, no bracket) and a candidate epoch. With
# KEYS[4] (the retained hash), ARGV[7] is its TTL and ARGV[8..] the (op, slot,
# frame) triples to write back once the claim holds. The PROVIDER_UP is
# positioned and kept in the history (``append``), and its connection id
# noted as the last one announced (field ``p`` of the position hash).
# Returns 1 when it announced, 0 when it only extended, or the other holder.
_CLAIM: Final = """
local current = redis.call('GET', KEYS[1])
if ARGV[3] ~= '1' and current and current ~= ARGV[1] then
  return current
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if #KEYS > 3 then
  apply(KEYS[4], ARGV[7], 8)
end
if ARGV[3] == '1' or not current then
  append(KEYS[2], KEYS[3], ARGV[4], ARGV[5], '', ARGV[6])
  redis.call('HSET', KEYS[2], 'p', connection_of(ARGV[1]))
  return 1
end
return 0
"""

# Compare-and-delete: forget the provider only if it is still ARGV[1], and
# announce its departure (positioned, in the history: KEYS[2], KEYS[3] as for
# a claim; ARGV[2..4]: channel, header, candidate epoch). An entry that is
# already gone (expired, or dropped as a ghost) is announced too, so apps never
# keep a stale "connected", but once only: when the last provider announced
# (field ``p``) is this one, or unknown (the position hash was lost). So the
# nodes that each notice a dead node's provider put one PROVIDER_DOWN in the
# history, not one each. One that another connection holds is left alone
# (that one was announced).
_RELEASE: Final = """
local current = redis.call('GET', KEYS[1])
local conn = connection_of(ARGV[1])
if current == ARGV[1] then
  redis.call('DEL', KEYS[1])
elseif current then
  return 0
else
  local announced = redis.call('HGET', KEYS[2], 'p')
  if announced and announced ~= conn then
    return 0
  end
end
append(KEYS[2], KEYS[3], ARGV[2], ARGV[3], '', ARGV[4])
redis.call('HSET', KEYS[2], 'p', '')
if current then
  return 1
end
return 0
"""

# The connection id of a provider entry "{node_id} {connection_id}".
_CONNECTION_OF: Final = """
local function connection_of(holder)
  return string.sub(holder, string.find(holder, ' ', 1, true) + 1)
end
"""

# Hand a request to the node holding the agent's provider, in one round trip.
# Returns nil (no provider), {holder, -1} (this node holds it: deliver here)
# or {holder, n}: n nodes got it, 0 meaning the holder no longer listens.
_ROUTE: Final = """
local holder = redis.call('GET', KEYS[1])
if not holder then return false end
local node = string.match(holder, '^(%S+) ')
if not node then return false end
if node == ARGV[2] then return {holder, -1} end
return {holder, redis.call('PUBLISH', ARGV[1] .. node, ARGV[3])}
"""

#: A route's receiver count meaning "this node holds the provider".
HERE: Final = -1


class ProviderRegistry:
    """The registry commands of one node (see the module docstring). They raise what Redis raises."""

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: RedisKeys,
        node_id: str,
        provider_ttl: float,
        retained_ttl: str,
        history: RedisHistory,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._node_id = node_id
        self._ttl_ms = int(provider_ttl * 1000)
        self._retained_ttl = retained_ttl
        self._history = history
        self._claim = redis.register_script(RETAINED_LUA + history.lua + _CONNECTION_OF + _CLAIM)
        self._release = redis.register_script(history.lua + _CONNECTION_OF + _RELEASE)
        self._route = redis.register_script(_ROUTE)

    def _claim_call(self, agent: str, connection_id: str, *, force: bool) -> tuple[list[str], list[str | bytes | int]]:
        up = Publication(PublicationType.PROVIDER_UP, connection_id=connection_id)
        keys = [self._keys.provider(agent), self._keys.position(agent), self._keys.stream(agent)]
        args: list[str | bytes | int] = [
            encode_holder(self._node_id, connection_id),
            self._ttl_ms,
            "1" if force else "0",
            self._keys.agent_channel(agent),
            encode_head(up, self._node_id, 0),
            self._history.candidate(),
        ]
        return keys, args

    async def claim(
        self,
        agent: str,
        connection_id: str,
        *,
        force: bool,
        write_back: Sequence[tuple[str, bytes | None]] = (),
    ) -> ProviderLocation | None:
        """Register ``connection_id`` on this node; announce it unless it only extended its entry.

        ``force`` takes over from any holder; without it this is a refresh,
        which returns the other holder that keeps the entry, if any (and then
        writes nothing). ``write_back`` is (slot, frame or ``None`` to drop)
        pairs for the agent's retained hash, written once the claim holds.
        Returns ``None`` when the entry is ours.
        """
        keys, args = self._claim_call(agent, connection_id, force=force)
        if write_back:
            keys.append(self._keys.retained(agent))
            args += [self._retained_ttl, *write_args(write_back)]
        result = await self._claim(keys=keys, args=args)
        return decode_holder(result) if isinstance(result, bytes) else None

    async def refresh(self, held: Sequence[tuple[str, str]]) -> list[tuple[str, str, ProviderLocation]]:
        """Refresh many (agent, connection id) entries in one round trip.

        Returns those another connection took over, with the new holder.
        """
        async with self._redis.pipeline(transaction=False) as pipe:
            for agent, connection_id in held:
                keys, args = self._claim_call(agent, connection_id, force=False)
                await self._claim(keys=keys, args=args, client=pipe)
            results = await pipe.execute()
        lost: list[tuple[str, str, ProviderLocation]] = []
        for (agent, connection_id), result in zip(held, results, strict=True):
            holder = decode_holder(result) if isinstance(result, bytes) else None
            if holder is not None:
                lost.append((agent, connection_id, holder))
        return lost

    async def release(self, agent: str, connection_id: str, node_id: str | None = None) -> bool:
        """Compare-and-delete the entry of ``connection_id`` (on ``node_id``, this node by default).

        Announces ``PROVIDER_DOWN`` unless another connection holds the agent;
        returns whether the entry was still there to delete.
        """
        down = Publication(PublicationType.PROVIDER_DOWN, connection_id=connection_id)
        released = await self._release(
            keys=[self._keys.provider(agent), self._keys.position(agent), self._keys.stream(agent)],
            args=[
                encode_holder(node_id or self._node_id, connection_id),
                self._keys.agent_channel(agent),
                encode_head(down, self._node_id, 0),
                self._history.candidate(),
            ],
        )
        return bool(released == 1)

    async def route(self, agent: str, request: bytes) -> tuple[ProviderLocation, int] | None:
        """Publish an encoded request to the holder's node.

        Returns ``None`` when there is no provider, else its location and how
        many nodes got the request: :data:`HERE` when this node holds it (not
        published: deliver it here), 0 when the holder's node no longer listens.
        """
        routed = await self._route(
            keys=[self._keys.provider(agent)],
            args=[self._keys.node_channels, self._node_id, request],
        )
        if routed is None:
            return None
        holder, receivers = routed
        location = decode_holder(holder)
        return None if location is None else (location, int(receivers))

    async def lookup(self, agent: str) -> ProviderLocation | None:
        return decode_holder(await self._redis.get(self._keys.provider(agent)))

    async def vacant(self, agents: Sequence[str]) -> list[str]:
        """Those of ``agents`` that have no provider entry (one expired with its dead node, say)."""
        if not agents:
            return []
        holders = await self._redis.mget([self._keys.provider(agent) for agent in agents])
        return [agent for agent, holder in zip(agents, holders, strict=True) if decode_holder(holder) is None]

    async def ghosts(self, agents: Sequence[str]) -> list[tuple[str, ProviderLocation]]:
        """The entries among ``agents``' whose holder is another node that no longer listens."""
        if not agents:
            return []
        holders = await self._redis.mget([self._keys.provider(agent) for agent in agents])
        by_node: dict[str, list[tuple[str, ProviderLocation]]] = {}
        for agent, holder in zip(agents, holders, strict=True):
            location = decode_holder(holder)
            if location is not None and location.node_id != self._node_id:
                by_node.setdefault(location.node_id, []).append((agent, location))
        if not by_node:
            return []
        listeners = await self._redis.pubsub_numsub(*(self._keys.node_channel(n) for n in by_node))
        return [
            entry
            for node_id, (_, count) in zip(by_node, listeners, strict=True)
            if count == 0
            for entry in by_node[node_id]
        ]
