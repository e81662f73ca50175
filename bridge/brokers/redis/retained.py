"""Retained frames in Redis: one hash per agent, one frame per slot, in first-set order.

``P:retained:{agent}`` is a hash:

==============  ===================================================================
field           value
==============  ===================================================================
``s:{slot}``    the slot's frame, byte for byte
``o:{slot}``    the slot's rank: the order in which the slots were first set
``p:{slot}``    ``"{offset} {epoch}"``: the position of the publication that set the
                frame (absent for a frame set without one: ``set_retained``, a
                write-back after an outage)
``n``           the last rank given (a slot's rank is ``HINCRBY n 1`` when it is new)
==============  ===================================================================

Setting a slot that exists replaces its frame and keeps its rank; dropping
one removes both its fields (the hash goes when no slot is left), so a slot
set again later ranks last. Every write, set or drop, restarts the hash's
TTL (``retained_ttl``; ``0`` keeps it forever). A write is one Lua script,
so a reader never sees a frame without its rank.

:data:`RETAINED_LUA` defines the Lua functions: the queued writes use them
through :data:`WRITE_SCRIPT`, and the registry's claim script uses them to
write a re-claimed provider's frames back in the same step as its claim, and
the publish script (:mod:`bridge.brokers.redis.history`) to set or drop a
slot in the same step as the publication that does it, with its position.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, cast

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline

from bridge.brokers.base import Position, RetainedFrame
from bridge.brokers.redis.keys import RedisKeys

#: The operations of a retained write, as the scripts spell them.
SET: Final = "set"
DROP: Final = "drop"

# retain(key, slot, frame, position) sets a slot (position: "{offset} {epoch}",
# or false for none); unretain(key, slot) drops one; keep_for(key, ttl) restarts
# the hash's TTL (ms, "0": none). apply(key, ttl, first): ARGV[first],
# ARGV[first+1], ... are (op, slot, frame) triples, applied in order ("set" or
# "drop"; a drop's frame is empty; no position), then the TTL is restarted.
RETAINED_LUA: Final = """
local function retain(key, slot, frame, position)
  local rank = 'o:' .. slot
  if redis.call('HEXISTS', key, rank) == 0 then
    redis.call('HSET', key, rank, redis.call('HINCRBY', key, 'n', 1))
  end
  if position then
    redis.call('HSET', key, 's:' .. slot, frame, 'p:' .. slot, position)
  else
    redis.call('HSET', key, 's:' .. slot, frame)
    redis.call('HDEL', key, 'p:' .. slot)
  end
end
local function unretain(key, slot)
  redis.call('HDEL', key, 's:' .. slot, 'o:' .. slot, 'p:' .. slot)
  if redis.call('HLEN', key) <= 1 then
    redis.call('DEL', key)
  end
end
local function keep_for(key, ttl)
  if ttl == '0' then
    redis.call('PERSIST', key)
  else
    redis.call('PEXPIRE', key, ttl)
  end
end
local function apply(key, ttl, first)
  for i = first, #ARGV, 3 do
    if ARGV[i] == 'set' then
      retain(key, ARGV[i + 1], ARGV[i + 2], false)
    else
      unretain(key, ARGV[i + 1])
    end
  end
  keep_for(key, ttl)
end
"""

#: KEYS[1]: the agent's retained hash; ARGV[1]: TTL in ms; ARGV[2..]: (op, slot, frame) triples.
WRITE_SCRIPT: Final = RETAINED_LUA + "apply(KEYS[1], ARGV[1], 2)\n"


def ttl_arg(retained_ttl: float) -> str:
    """The scripts' TTL argument: milliseconds, ``"0"`` for none."""
    return str(int(retained_ttl * 1000)) if retained_ttl > 0 else "0"


def write_args(writes: Sequence[tuple[str, bytes | None]]) -> list[str | bytes]:
    """(op, slot, frame) triples for ``apply``: a frame sets its slot, ``None`` drops it."""
    args: list[str | bytes] = []
    for slot, frame in writes:
        args += [SET, slot, frame] if frame is not None else [DROP, slot, b""]
    return args


def decode_frames(fields: dict[bytes, bytes], epoch: str | None = None) -> list[RetainedFrame]:
    """The frames of an ``HGETALL`` of a retained hash, in rank order, with their positions.

    A position in another epoch than ``epoch`` (the agent's current one) is
    dropped: it names a stream that no longer exists (Redis lost it, or the
    broker gave the agent a new epoch after an outage), and a client must
    never hold a position of a dead epoch next to live ones.
    """
    ranked: list[tuple[int, RetainedFrame]] = []
    for field, value in fields.items():
        if field.startswith(b"s:"):
            slot = field[2:]
            rank = fields.get(b"o:" + slot)
            ranked.append((int(rank) if rank is not None else 0, RetainedFrame(value, _position(fields.get(b"p:" + slot), epoch))))
    ranked.sort(key=lambda pair: pair[0])
    return [frame for _, frame in ranked]


def encode_position(position: Position) -> str:
    """A position as the retained hash keeps it."""
    return f"{position.offset} {position.epoch}"


def _position(text: bytes | None, epoch: str | None) -> Position | None:
    if not text:
        return None
    offset, _, stored = text.decode().partition(" ")
    return Position(stored, int(offset)) if stored and stored == epoch else None


class RedisRetained:
    """Reads and writes of the retained hashes of one prefix."""

    def __init__(self, redis: aioredis.Redis, keys: RedisKeys, retained_ttl: float) -> None:
        self._redis = redis
        self._keys = keys
        self.ttl = ttl_arg(retained_ttl)
        self._script = redis.register_script(WRITE_SCRIPT)

    async def load(self) -> None:
        """Load the write script, so a pipeline can call it by its hash (see :meth:`queue`)."""
        await self._redis.script_load(WRITE_SCRIPT)

    def queue(self, pipe: Pipeline, agent: str, op: str, slot: str, frame: bytes) -> None:
        """Add one write to ``pipe``.

        By hash (``EVALSHA``): redis-py would check a registered script with
        an extra round trip per pipeline. :meth:`load` ran when the broker
        connected; a Redis that lost its scripts since refuses the write,
        which the broker treats as an outage (it reconnects, loads, resyncs).
        """
        pipe.evalsha(self._script.sha, 1, self._keys.retained(agent), self.ttl, op, slot, frame)

    async def read(self, agent: str) -> list[RetainedFrame]:
        """The agent's frames; positions only in the agent's current epoch (one round trip)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(self._keys.retained(agent))
            pipe.hget(self._keys.position(agent), "e")
            fields, epoch = await pipe.execute()
        # No decode_responses: all bytes.
        return decode_frames(cast("dict[bytes, bytes]", fields), epoch.decode() if epoch else None)
