"""Positions and history in Redis: each agent's stream, assigned and read atomically by Lua.

Two keys per agent (names in :mod:`bridge.brokers.redis.keys`):

* ``P:position:{agent}``, a hash: ``e`` the agent's epoch, ``o`` its last
  offset, ``p`` the connection id of the last provider announced (``""``
  after its departure: see :mod:`bridge.brokers.redis.registry`). The epoch
  is made when the hash has none (from a candidate the node sends with every
  call: unique, never reused), so a Redis that lost the hash (flushed,
  restarted without persistence, expired) gives the agent a new epoch, and
  no position from before recovers. It expires ``retained_ttl`` after its
  last write (never: ``retained_ttl`` 0), but never sooner than
  ``history_ttl``: the retained frames' positions and the history both name
  its epoch. Reading a position creates it too (the epoch a joining client is
  told must be the one the agent's first publication gets).
* ``P:stream:{agent}``, a Redis stream: one entry per positioned publication,
  field ``m`` holding the publication exactly as it went out on the channel
  (header with its position, newline, frame). ``XADD`` trims it to about
  ``history_size`` entries (``MAXLEN ~``) and, every 64th offset, ``XTRIM
  MINID ~`` drops entries older than ``history_ttl`` (stream ids are
  millisecond times); both are approximate, for speed (whole nodes of the
  stream go at once), so a read applies the exact bounds itself. The
  stream expires ``history_ttl`` after its last entry (then every entry is
  too old to recover from anyway).

Every positioned publication is one script (:data:`PUBLISH_BODY`, and the
registry's claim and release scripts, which call the same ``append``): take
the next offset, append to the stream, apply the retained change with the
position, and ``PUBLISH`` the payload with the position spliced into its
header. Redis runs a script alone, so the order of offsets is the order of
delivery on every node, and nothing is seen half done.

Reads (:meth:`RedisHistory.read`) are one script too: the epoch and top, and
when the asker can recover, every entry after its offset, checked against
the exact bounds: the asked epoch is current, the offset is not above the top,
at most ``history_size`` entries are missing, all of them still in the stream,
and the oldest of them younger than ``history_ttl``.

:meth:`RedisHistory.rotate` gives agents a new epoch (the broker's answer to
publications it delivered without Redis): the offsets go on from the stored
counter, the stream of the old epoch is deleted.
"""

from __future__ import annotations

import itertools
import math
import secrets
from collections.abc import Iterable
from typing import Final

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline

from bridge.brokers.base import HistoryRead, Position, Publication
from bridge.brokers.redis.codec import decode_publication
from bridge.brokers.redis.keys import RedisKeys
from bridge.brokers.redis.retained import RETAINED_LUA
from bridge.brokers.redis.settings import RedisSettings

# The Lua functions every positioned write and read uses. @SIZE@, @TTL@ (the
# history's TTL in ms), @STREAM_TTL@ and @POSITION_TTL@ (ms; "0": none) are
# the broker's settings, written into the script text when it is made.
#
# epoch_of(pkey, skey, candidate): the agent's epoch, made from candidate when
# the position hash is missing (a stream left by a lost epoch is deleted).
# append(pkey, skey, channel, head, frame, candidate): give the next position,
# keep the publication in the stream, publish it; returns epoch, offset.
HISTORY_LUA: Final = """
local SIZE = @SIZE@
local TTL = @TTL@
local TRIM_EVERY = 64
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function epoch_of(pkey, skey, candidate)
  local epoch = redis.call('HGET', pkey, 'e')
  if epoch then
    return epoch
  end
  redis.call('HSET', pkey, 'e', candidate)
  redis.call('DEL', skey)
  if '@POSITION_TTL@' ~= '0' then
    redis.call('PEXPIRE', pkey, '@POSITION_TTL@')
  end
  return candidate
end
local function append(pkey, skey, channel, head, frame, candidate)
  local epoch = epoch_of(pkey, skey, candidate)
  local offset = redis.call('HINCRBY', pkey, 'o', 1)
  if '@POSITION_TTL@' ~= '0' then
    redis.call('PEXPIRE', pkey, '@POSITION_TTL@')
  end
  local payload = head .. ',"' .. epoch .. '",' .. offset .. ']\\n' .. frame
  if SIZE > 0 then
    redis.call('XADD', skey, 'MAXLEN', '~', SIZE, '*', 'm', payload)
    if offset % TRIM_EVERY == 0 then
      redis.call('XTRIM', skey, 'MINID', '~', now_ms() - TTL)
    end
    redis.call('PEXPIRE', skey, '@STREAM_TTL@')
  end
  redis.call('PUBLISH', channel, payload)
  return epoch, offset
end
"""

# KEYS[1]: position hash, KEYS[2]: stream, KEYS[3]: retained hash. ARGV[1]:
# the agent's channel, ARGV[2]: the header without position and bracket,
# ARGV[3]: the frame, ARGV[4]: candidate epoch, ARGV[5]: "", "set" or "drop"
# (the retained change), ARGV[6]: its slot. @RETAINED_TTL@: ms, "0" for none.
PUBLISH_BODY: Final = """
local epoch, offset = append(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], ARGV[4])
if ARGV[5] == 'set' then
  retain(KEYS[3], ARGV[6], ARGV[3], offset .. ' ' .. epoch)
  keep_for(KEYS[3], '@RETAINED_TTL@')
elseif ARGV[5] == 'drop' then
  unretain(KEYS[3], ARGV[6])
  keep_for(KEYS[3], '@RETAINED_TTL@')
end
return offset
"""

# KEYS[1]: position hash, KEYS[2]: stream. ARGV[1]: candidate epoch, ARGV[2]:
# the asked epoch ("": the position only), ARGV[3]: the asked offset.
# Returns {epoch, top}, plus 1 and the payloads after the offset (oldest
# first) when the asker can recover.
READ_BODY: Final = """
local epoch = epoch_of(KEYS[1], KEYS[2], ARGV[1])
local top = tonumber(redis.call('HGET', KEYS[1], 'o') or '0')
if ARGV[2] == '' or ARGV[2] ~= epoch or SIZE == 0 then
  return {epoch, top}
end
local after = tonumber(ARGV[3])
if after == nil or after < 0 or after > top then
  return {epoch, top}
end
if after == top then
  return {epoch, top, 1}
end
local missed = top - after
if missed > SIZE then
  return {epoch, top}
end
local entries = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', missed)
if #entries < missed then
  return {epoch, top}
end
local oldest = tonumber(string.match(entries[missed][1], '^(%d+)'))
if oldest <= now_ms() - TTL then
  return {epoch, top}
end
local out = {epoch, top, 1}
for i = missed, 1, -1 do
  out[#out + 1] = entries[i][2][2]
end
return out
"""

# KEYS[1]: position hash, KEYS[2]: stream; ARGV[1]: the new epoch.
ROTATE_BODY: Final = """
redis.call('HSET', KEYS[1], 'e', ARGV[1])
redis.call('DEL', KEYS[2])
if '@POSITION_TTL@' ~= '0' then
  redis.call('PEXPIRE', KEYS[1], '@POSITION_TTL@')
end
return 1
"""


def _ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


def position_ttl(settings: RedisSettings) -> str:
    """The position hash's TTL in ms (``"0"``: none): the retained TTL, never below the history's."""
    if settings.retained_ttl == 0:
        return "0"
    return str(max(_ms(settings.retained_ttl), _ms(settings.history_ttl)))


def history_lua(settings: RedisSettings) -> str:
    """:data:`HISTORY_LUA` with the settings written in (the prelude of every script that positions)."""
    return (
        HISTORY_LUA.replace("@SIZE@", str(settings.history_size))
        .replace("@TTL@", str(_ms(settings.history_ttl)))
        .replace("@STREAM_TTL@", str(_ms(settings.history_ttl)))
        .replace("@POSITION_TTL@", position_ttl(settings))
    )


class RedisHistory:
    """Positions and history of one prefix (see the module docstring). Methods raise what Redis raises."""

    def __init__(self, redis: aioredis.Redis, keys: RedisKeys, settings: RedisSettings, retained_ttl: str) -> None:
        self._redis = redis
        self._keys = keys
        self.size = settings.history_size
        #: The Lua functions, for the registry's scripts (claim and release append too).
        self.lua = history_lua(settings)
        self.publish_script = RETAINED_LUA + self.lua + PUBLISH_BODY.replace("@RETAINED_TTL@", retained_ttl)
        self._publish = redis.register_script(self.publish_script)
        self._read = redis.register_script(self.lua + READ_BODY)
        self._rotate = redis.register_script(self.lua + ROTATE_BODY.replace("@POSITION_TTL@", position_ttl(settings)))
        #: Candidate epochs: a random base of this broker and a count, so none is ever sent twice.
        self._base = secrets.token_urlsafe(6)
        self._count = itertools.count(1)

    def candidate(self) -> str:
        """A new epoch for an agent whose position hash turns out to be missing (used only then)."""
        return f"{self._base}{next(self._count):x}"

    async def load(self) -> None:
        """Load the publish script, so a pipeline can call it by its hash (see :meth:`queue_publish`)."""
        await self._redis.script_load(self.publish_script)

    def queue_publish(self, pipe: Pipeline, agent: str, head: bytes, frame: bytes, retain: str, slot: str) -> None:
        """Add one positioned publication to ``pipe``: ``retain`` is ``""``, ``"set"`` or ``"drop"`` of ``slot``.

        By hash (``EVALSHA``), like the retained writes (:meth:`RedisRetained.queue
        <bridge.brokers.redis.retained.RedisRetained.queue>`): a Redis that lost
        its scripts refuses it, and the broker reconnects, loads and resyncs.
        """
        keys = self._keys
        pipe.evalsha(
            self._publish.sha, 3, keys.position(agent), keys.stream(agent), keys.retained(agent),
            keys.agent_channel(agent), head, frame, self.candidate(), retain, slot,
        )

    async def read(self, agent: str, after: Position) -> HistoryRead:
        """What :meth:`bridge.brokers.base.Broker.history` answers, from Redis."""
        reply = await self._call_read(agent, after.epoch, after.offset)
        top = Position(reply[0].decode(), int(reply[1]))
        refused = HistoryRead(False, top, [])
        if len(reply) < 3 or not after.epoch:
            return refused
        publications: list[Publication] = []
        expected = after.offset
        for payload in reply[3:]:
            publication = decode_publication(payload)[0]
            expected += 1
            # Belt and braces: consecutive offsets of this epoch, or nothing.
            if publication.position != Position(top.epoch, expected):
                return refused
            publications.append(publication)
        if expected != top.offset:
            return refused
        return HistoryRead(True, top, publications)

    async def position(self, agent: str) -> Position:
        """The agent's top (offset 0 in a new epoch when it has no stream yet)."""
        reply = await self._call_read(agent, "", 0)
        return Position(reply[0].decode(), int(reply[1]))

    async def _call_read(self, agent: str, epoch: str, offset: int) -> list[bytes]:
        reply: list[bytes] = await self._read(
            keys=[self._keys.position(agent), self._keys.stream(agent)],
            args=[self.candidate(), epoch, offset],
        )
        return reply

    async def rotate(self, agents: Iterable[str]) -> None:
        """Give each agent a new epoch (offsets go on) and drop its old stream; one round trip."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for agent in agents:
                await self._rotate(
                    keys=[self._keys.position(agent), self._keys.stream(agent)],
                    args=[self.candidate()],
                    client=pipe,
                )
            await pipe.execute()
