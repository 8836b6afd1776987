"""A consumer group's counters and processed ids on Redis, each commit one Lua script.

Keys (``{group}`` is a hash tag: in a cluster every key of a group lives on
one node, as a multi-key script needs; and since names cannot hold braces,
no group's keys can be taken for another's):

- ``<prefix>:{<group>}:state:<counter>``: a hash, field ``<key code>`` = the
  value, field ``v<key code>`` = how many writes the value has had (its
  version; only read-modify-write and optimistic consumers keep it);
- ``<prefix>:{<group>}:dedup``: the set of processed ids (``dedup.ttl: 0``), or
- ``<prefix>:{<group>}:dedup:<message>``: one key per processed id, expiring
  ``ttl`` after it was recorded.

Each commit runs one script, so that the dedup check, the floor check and
the writes are one step on the server and one round trip for the worker.
``atomic`` reads, checks and adds there (the floor check in Lua's doubles:
exact up to 2^53; the additions with HINCRBY: exact to 2^63).
``read-modify-write`` and ``optimistic`` read in :meth:`RedisStore.begin`
and compute the values to write in Python, exactly; the script compares the
versions read with the current ones, to count a lost update exactly or to
refuse an optimistic write. In-memory dedup (``durable: false``) stays in
the instance's process (:class:`~busim.loadtest.stores.memory.MemoryIds`).
"""

from __future__ import annotations

import numpy as np
import redis.asyncio as redis

from busim.engine.records import Outcome
from busim.loadtest.stores.base import Commit, EffectTable, Store, StoreAdmin
from busim.loadtest.stores.memory import MemoryIds
from busim.loadtest.stores.slots import message_writes, written_values
from busim.scenario.schema import Consumer

_CONNECT_TIMEOUT_S = 5.0
_COMMAND_TIMEOUT_S = 30.0
_FIELDS_PER_COMMAND = 10_000  # fields per HSET or HMGET when creating and reading whole counters
_SCAN_COUNT = 1_000

_APPLIED, _REJECTED, _SKIPPED = int(Outcome.APPLIED), int(Outcome.REJECTED), int(Outcome.SKIPPED)

# What both commit scripts share: ARGV[1] the dedup mode ('' none, 's' a member of the set KEYS[1],
# 'k' the key KEYS[1]), ARGV[2] the member, ARGV[3] the ttl in milliseconds, ARGV[4] '1' to record
# the id with the effects (also when a floor refuses them, as the engine does).
_DEDUP_LUA = """
local mode = ARGV[1]
local function seen()
  if mode == 's' then return redis.call('SISMEMBER', KEYS[1], ARGV[2]) == 1 end
  if mode == 'k' then return redis.call('EXISTS', KEYS[1]) == 1 end
  return false
end
local function record()
  if ARGV[4] ~= '1' then return end
  if mode == 's' then redis.call('SADD', KEYS[1], ARGV[2]) end
  if mode == 'k' then redis.call('SET', KEYS[1], '1', 'PX', ARGV[3]) end
end
if seen() then return {3, 0} end
"""

# atomic: ARGV[5] the number of slots, then each slot's field (its hash is KEYS[1 + slot]),
# then each effect's slot, change and floor ('' for none). Returns {outcome, 0}.
_ATOMIC_LUA = (
    _DEDUP_LUA
    + """
local slots = tonumber(ARGV[5])
local values = {}
for s = 1, slots do
  local value = redis.call('HGET', KEYS[1 + s], ARGV[5 + s])
  if not value then
    return redis.error_reply('counter ' .. KEYS[1 + s] .. ' has no key ' .. ARGV[5 + s] .. ': create the store first')
  end
  values[s] = tonumber(value)
end
local first = 6 + slots
for e = first, #ARGV, 3 do
  local s = tonumber(ARGV[e])
  local change = tonumber(ARGV[e + 1])
  local value = values[s] + change
  if ARGV[e + 2] ~= '' and change < 0 and value < tonumber(ARGV[e + 2]) then
    record()
    return {2, 0}
  end
  values[s] = value
end
for e = first, #ARGV, 3 do
  local s = tonumber(ARGV[e])
  redis.call('HINCRBY', KEYS[1 + s], ARGV[5 + s], ARGV[e + 1])
end
record()
return {1, 0}
"""
)

# read-modify-write and optimistic: ARGV[5] '1' if optimistic, ARGV[6] '1' if a floor refused the
# values computed from the read, ARGV[7] the number of slots, then per slot its field, the version
# read and the value to write. Returns {outcome or -1 (retry), 1 if a version changed since the read}.
_READ_FIRST_LUA = (
    _DEDUP_LUA
    + """
local slots = tonumber(ARGV[7])
local changed = 0
for s = 1, slots do
  local version = redis.call('HGET', KEYS[1 + s], 'v' .. ARGV[5 + 3 * s]) or '0'
  if version ~= ARGV[6 + 3 * s] then
    changed = 1
    break
  end
end
if changed == 1 and ARGV[5] == '1' then return {-1, 1} end
record()
if ARGV[6] == '1' then return {2, changed} end
for s = 1, slots do
  local field = ARGV[5 + 3 * s]
  redis.call('HSET', KEYS[1 + s], field, ARGV[7 + 3 * s])
  redis.call('HINCRBY', KEYS[1 + s], 'v' .. field, 1)
end
return {1, changed}
"""
)

# KEYS[s] slot s's hash, ARGV[s] its field: each slot's value and version, flat.
_READ_LUA = """
local read = {}
for s = 1, #KEYS do
  local both = redis.call('HMGET', KEYS[s], ARGV[s], 'v' .. ARGV[s])
  if not both[1] then
    return redis.error_reply('counter ' .. KEYS[s] .. ' has no key ' .. ARGV[s] .. ': create the store first')
  end
  read[2 * s - 1] = both[1]
  read[2 * s] = both[2] or '0'
end
return read
"""


def group_key(prefix: str, group: str) -> str:
    """What every key of ``group`` in the run ``prefix`` starts with."""
    return f"{prefix}:{{{group}}}"


def counter_key(prefix: str, group: str, counter: str) -> str:
    return f"{group_key(prefix, group)}:state:{counter}"


def _connect(url: str) -> redis.Redis:
    return redis.from_url(url, socket_connect_timeout=_CONNECT_TIMEOUT_S, socket_timeout=_COMMAND_TIMEOUT_S)


class RedisStore(Store):
    """One instance's view of its group's counters and processed ids on Redis."""

    def __init__(self, url: str, consumer: Consumer, table: EffectTable, prefix: str, group: str) -> None:
        self.url = url
        self.table = table
        self.lost_updates = 0
        self._keys = [counter_key(prefix, group, counter) for counter in table.counters]
        self._dedup_key = f"{group_key(prefix, group)}:dedup"
        dedup = consumer.dedup if consumer.idempotency == "dedup" else None
        self._shared_ids = dedup is not None and dedup.durable  # in Redis, for every instance
        self._memory = MemoryIds(dedup) if dedup is not None and not dedup.durable else None
        self._ttl_ms = max(1, round(dedup.ttl * 1000)) if dedup is not None and dedup.ttl else 0
        self._records_with_effects = dedup is None or dedup.atomic_with_effects
        self._unrecorded: set[int] = set()  # processed, their ids waiting for record()
        isolation = consumer.effects_isolation
        self._reads_first = isolation != "atomic"
        self._optimistic = isolation == "optimistic"
        self._client: redis.Redis | None = None

    async def connect(self) -> None:
        if not (self.table.effects or self._shared_ids):
            return  # nothing to store: commits need no round trip
        self._client = client = _connect(self.url)
        await client.ping()
        self._atomic = client.register_script(_ATOMIC_LUA)
        self._read_first = client.register_script(_READ_FIRST_LUA)
        self._read = client.register_script(_READ_LUA)

    async def begin(self, message: int) -> object:
        """Read-modify-write and optimistic: the value and version of each slot the message writes."""
        if not self._reads_first or not self.table.effects:
            return None
        writes = message_writes(self.table, message)
        keys = [self._keys[counter] for counter, _ in writes.slots]
        read = await self._read(keys=keys, args=[key_code for _, key_code in writes.slots])
        return writes, [int(value) for value in read[0::2]], [int(version) for version in read[1::2]]

    async def commit(self, message: int, begun: object) -> Commit:
        memory = self._memory
        if memory is not None and memory.seen(message):
            return Commit(_SKIPPED)
        lost = False
        if self._client is None:
            outcome = _APPLIED
        elif self._reads_first and self.table.effects:
            outcome, lost = await self._commit_read(message, begun)
        else:
            outcome = await self._commit_atomic(message)
        if outcome in (_APPLIED, _REJECTED):
            if memory is not None and self._records_with_effects:
                memory.record(message)
            elif not self._records_with_effects:
                self._unrecorded.add(message)
        return Commit(outcome, lost)

    def _dedup_args(self, message: int) -> tuple[list[str], list[object]]:
        """The dedup key and the scripts' first four arguments."""
        if not self._shared_ids:
            return [self._dedup_key], ["", "", 0, 0]
        record = int(self._records_with_effects)
        if self._ttl_ms:
            return [f"{self._dedup_key}:{message}"], ["k", "", self._ttl_ms, record]
        return [self._dedup_key], ["s", message, 0, record]

    async def _commit_atomic(self, message: int) -> int:
        writes = message_writes(self.table, message)
        keys, args = self._dedup_args(message)
        keys += [self._keys[counter] for counter, _ in writes.slots]
        args.append(len(writes.slots))
        args += [key_code for _, key_code in writes.slots]
        for slot, change, floor in writes.effects:
            args += [slot + 1, change, "" if floor is None else floor]
        outcome, _ = await self._atomic(keys=keys, args=args)
        return int(outcome)

    async def _commit_read(self, message: int, begun: object) -> tuple[int, bool]:
        if begun is None:
            raise ValueError(f"message {message}: commit without begin on a read-modify-write or optimistic store")
        writes, values, versions = begun  # type: ignore[misc]
        written = written_values(writes, values)
        keys, args = self._dedup_args(message)
        keys += [self._keys[counter] for counter, _ in writes.slots]
        args += [int(self._optimistic), int(written is None), len(writes.slots)]
        for (_, key_code), version, value in zip(writes.slots, versions, written or values):
            args += [key_code, version, value]
        outcome, changed = await self._read_first(keys=keys, args=args)
        lost = bool(outcome == _APPLIED and changed and not self._optimistic)
        self.lost_updates += lost
        return int(outcome), lost  # RETRY (-1) included

    async def record(self, message: int) -> None:
        if message not in self._unrecorded:
            return  # skipped, or recorded with its effects
        self._unrecorded.discard(message)
        if self._memory is not None:
            self._memory.record(message)
        elif self._client is not None:
            if self._ttl_ms:
                await self._client.set(f"{self._dedup_key}:{message}", 1, px=self._ttl_ms)
            else:
                await self._client.sadd(self._dedup_key, message)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


class RedisAdmin(StoreAdmin):
    """The run's side of a group's keys on Redis."""

    def __init__(self, url: str, table: EffectTable, prefix: str, group: str) -> None:
        self.url = url
        self.table = table
        self._group_key = group_key(prefix, group)
        self._keys = [counter_key(prefix, group, counter) for counter in table.counters]

    async def create(self) -> None:
        client = _connect(self.url)
        try:
            for key, initial, count in zip(self._keys, self.table.initial, self.table.key_counts):
                for start in range(0, count, _FIELDS_PER_COMMAND):
                    fields = range(start, min(count, start + _FIELDS_PER_COMMAND))
                    await client.hset(key, mapping=dict.fromkeys(fields, initial))
        finally:
            await client.aclose()

    async def counters(self) -> list[np.ndarray]:
        """Per counter, every key's value by key code (a key never written reads as the initial value)."""
        client = _connect(self.url)
        try:
            result = []
            for key, initial, count in zip(self._keys, self.table.initial, self.table.key_counts):
                values: list[int] = []
                for start in range(0, count, _FIELDS_PER_COMMAND):
                    read = await client.hmget(key, list(range(start, min(count, start + _FIELDS_PER_COMMAND))))
                    values += [initial if value is None else int(value) for value in read]
                try:
                    result.append(np.array(values, dtype=np.int64))
                except OverflowError:
                    result.append(np.array(values, dtype=object))
            return result
        finally:
            await client.aclose()

    async def drop(self) -> None:
        client = _connect(self.url)
        try:
            pattern = _glob_escape(self._group_key) + ":*"
            batch: list[bytes] = []
            async for key in client.scan_iter(match=pattern, count=_SCAN_COUNT):
                batch.append(key)
                if len(batch) >= _SCAN_COUNT:
                    await client.unlink(*batch)
                    batch = []
            if batch:
                await client.unlink(*batch)
        finally:
            await client.aclose()


def _glob_escape(text: str) -> str:
    """``text`` matched literally by a Redis glob pattern."""
    return "".join("\\" + char if char in "\\*?[]" else char for char in text)
