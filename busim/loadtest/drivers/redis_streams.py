"""Redis Streams: a stream per event, a consumer group per scenario consumer, XAUTOCLAIM as the claimer.

Each event is a stream (``<run>.<event>``); each scenario consumer is a
consumer group on the streams of the events it subscribes to, so that every
group reads every message of its events, and the instances of a group compete
for them. An instance reads with ``XREADGROUP ... COUNT batch_size`` when its
workers have worked through what it read, and acks each entry with ``XACK``
once processed. Each incarnation of an instance is a consumer of its own name:
a restarted instance does not read the entries its predecessor left pending
(the simulation leaves that out too); only a claimer takes them over.

With ``claim_interval``, every instance runs ``XAUTOCLAIM`` every
``claim_interval`` for entries idle at least ``claim_min_idle``. With
``capacity``, ``XADD ... MAXLEN = capacity`` trims the oldest entries: those
never delivered are dropped, as the broker's own trimming does (the stream is
per event, so the limit applies to each event's stream).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Sequence
from typing import Any

import redis.asyncio as redis
from redis.exceptions import ResponseError

from busim.loadtest.drivers.base import (
    AckPipeline,
    BrokerFate,
    Consumption,
    Delivery,
    Driver,
    Outgoing,
    Refusal,
    RunNames,
    decode_copy,
    decode_planned,
    encode_copy,
)
from busim.scenario.schema import Scenario

_BLOCK_MS = 1000  # how long a read waits for entries before the instance looks at the clock
_CLAIM_COUNT = 100  # entries one XAUTOCLAIM call takes at most

# A batch of copies as one command: ARGV[1] the MAXLEN ('' for none), then per copy its stream's index in
# KEYS and its body. One reply for the batch instead of one per entry: the client's reply parsing, not
# the server, limited the publish rate. The script runs atomically, a batch at a time, entries in order.
_XADD_BATCH_LUA = """
local maxlen = ARGV[1]
for i = 2, #ARGV, 2 do
  local stream = KEYS[tonumber(ARGV[i])]
  if maxlen == '' then
    redis.call('XADD', stream, '*', 'c', ARGV[i + 1])
  else
    redis.call('XADD', stream, 'MAXLEN', maxlen, '*', 'c', ARGV[i + 1])
  end
end
return #ARGV / 2
"""


class RedisStreamsDriver(Driver):
    schemes = ("redis", "rediss")
    presets = ("redis-streams",)
    title = "Redis Streams"

    def __init__(self, url: str, scenario: Scenario, names: RunNames) -> None:
        super().__init__(url, scenario, names)
        self._client: redis.Redis | None = None
        capacity = scenario.broker.capacity
        self._maxlen = capacity if isinstance(capacity, int) else None

    @classmethod
    def refusals(cls, scenario: Scenario) -> list[Refusal]:
        broker = scenario.broker
        found = []
        if broker.delivery == "at-most-once":
            found.append(
                Refusal(
                    "broker.delivery",
                    "at-most-once is not built for Redis Streams (it would read with NOACK); use at-least-once",
                )
            )
        if isinstance(broker.capacity, int):
            found.append(
                Refusal(
                    "broker.capacity",
                    "XADD MAXLEN trims a stream whatever its groups have read, and Redis does not say which entries "
                    "it trimmed: a real run could not tell them lost; simulate it instead",
                )
            )
        return found

    def _streams(self, group: str) -> list[str]:
        consumer = self.scenario.consumer(group)
        return [self.names.event(event) for event in dict.fromkeys(consumer.subscribes)]

    async def connect(self) -> None:
        self._client = redis.Redis.from_url(self.url)
        await self._client.ping()
        self._xadd_batch = self._client.register_script(_XADD_BATCH_LUA)
        events = list(self.scenario.events)
        self._streams_of_events = [self.names.event(event) for event in events]
        self._stream_index = {event: str(index + 1) for index, event in enumerate(events)}

    @property
    def client(self) -> redis.Redis:
        assert self._client is not None, "connect() first"
        return self._client

    async def setup(self) -> None:
        for consumer in self.scenario.consumers:
            for stream in self._streams(consumer.name):
                await self.client.xgroup_create(stream, consumer.name, id="0", mkstream=True)

    async def publish(self, batch: Sequence[Outgoing]) -> list[bool]:
        """XADD each copy to its event's stream, the whole batch in one script (exact MAXLEN trimming)."""
        if not batch:
            return []
        arguments: list[str | bytes] = ["" if self._maxlen is None else str(self._maxlen)]
        index = self._stream_index
        for outgoing in batch:
            arguments.append(index[outgoing.event])
            arguments.append(encode_copy(outgoing.copy, outgoing.planned))
        await self._xadd_batch(keys=self._streams_of_events, args=arguments)
        return [True] * len(batch)

    async def pending(self, group: str) -> int:
        """Entries the group has yet to read (lag) and, with a claimer, those read and not acked: a claim will
        deliver them again. Without a claimer, what a dead consumer left pending stays there for good, and
        what a live one holds, the run's journals count."""
        claims = isinstance(self.scenario.broker.claim_interval, float)
        total = 0
        for stream in self._streams(group):
            for info in await self.client.xinfo_groups(stream):
                if _text(info["name"]) == group:
                    total += int(info.get("lag") or 0) + (int(info["pending"]) if claims else 0)
        return total

    async def fates(self) -> list[BrokerFate]:
        return []  # Redis dead-letters nothing, and does not say which entries MAXLEN trimmed

    async def teardown(self) -> None:
        client = self._client or redis.Redis.from_url(self.url)
        try:
            keys = [self.names.event(event) for event in self.scenario.events]
            await client.delete(*keys)
        finally:
            if self._client is None:
                await client.aclose()

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def consumption(self, group: str, instance: int) -> Consumption:
        return _StreamConsumption(self.url, self.scenario, group, self._streams(group), f"{instance}-{os.getpid()}")


class _StreamConsumption(Consumption):
    push = False

    def __init__(self, url: str, scenario: Scenario, group: str, streams: list[str], name: str) -> None:
        self._url = url
        self._group = group
        self._streams = streams
        self._name = name
        broker = scenario.broker
        self._count = broker.batch_size or 1
        interval = broker.claim_interval
        self._claim_interval_s = interval if isinstance(interval, float) else None
        self._claim_min_idle_ms = round((broker.claim_min_idle or 0.0) * 1000)
        self._claimed: asyncio.Queue[Delivery] = asyncio.Queue()
        self._client: redis.Redis | None = None
        self._claimer: asyncio.Task[None] | None = None
        self._acks: AckPipeline[tuple[str, bytes]] = AckPipeline(self._xack)

    async def start(self) -> None:
        self._client = redis.Redis.from_url(self._url)
        for stream in self._streams:
            # Create the consumer now, so that it exists (with nothing pending) before its first read.
            await self._client.xgroup_createconsumer(stream, self._group, self._name)
        if self._claim_interval_s is not None:
            self._claimer = asyncio.create_task(self._claim_loop(self._claim_interval_s))

    async def receive(self, free: int) -> list[Delivery]:
        assert self._client is not None
        if not self._claimed.empty():
            return [self._claimed.get_nowait() for _ in range(self._claimed.qsize())]
        reply = await self._client.xreadgroup(
            self._group, self._name, {stream: ">" for stream in self._streams}, count=self._count, block=_BLOCK_MS
        )
        deliveries = [
            Delivery(decode_copy(fields[b"c"]), 1, False, (stream, entry), decode_planned(fields[b"c"]))
            for stream, entries in reply or []
            for entry, fields in entries
            if fields  # an entry trimmed after it was read comes back empty
        ]
        if not deliveries and not self._claimed.empty():
            return [self._claimed.get_nowait() for _ in range(self._claimed.qsize())]
        return deliveries

    async def _claim_loop(self, interval_s: float) -> None:
        assert self._client is not None
        while True:
            await asyncio.sleep(interval_s)
            for stream in self._streams:
                cursor: Any = "0-0"
                while True:
                    cursor, entries, *_ = await self._client.xautoclaim(
                        stream, self._group, self._name, self._claim_min_idle_ms, cursor, count=_CLAIM_COUNT
                    )
                    for entry, fields in entries:
                        if fields:
                            self._claimed.put_nowait(
                                Delivery(
                                    decode_copy(fields[b"c"]), 0, True, (stream, entry), decode_planned(fields[b"c"])
                                )
                            )
                    if _text(cursor) == "0-0":
                        break

    async def ack(self, delivery: Delivery) -> None:
        """XACK the entry, in one command with the entries other workers acked meanwhile."""
        await self._acks.send(delivery.token)  # type: ignore[arg-type]

    async def _xack(self, tokens: list[tuple[str, bytes]]) -> None:
        assert self._client is not None
        entries: dict[str, list[bytes]] = {}
        for stream, entry in tokens:
            entries.setdefault(stream, []).append(entry)
        if len(entries) == 1:
            [(stream, ids)] = entries.items()
            await self._client.xack(stream, self._group, *ids)
            return
        pipe = self._client.pipeline(transaction=False)
        for stream, ids in entries.items():
            pipe.xack(stream, self._group, *ids)
        await pipe.execute()

    async def close(self) -> None:
        if self._claimer is not None:
            self._claimer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._claimer
        if self._client is not None:
            with contextlib.suppress(ResponseError, ConnectionError, OSError):
                await self._client.aclose()
            self._client = None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
