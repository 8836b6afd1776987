"""NATS JetStream: one work-queue stream and one durable pull consumer per consumer group.

Each consumer group gets its own stream, holding the subjects
``<run>.<group>.<event>`` of the events it subscribes to, and one durable
pull consumer that all its instances share. A copy is published once per
group that subscribes to its event. One stream per group, rather than one
per run with a filtered consumer per group, because it is what the
scenario's broker means: each group its own queue. A group subscribing to
some but not all of several events needs no multiple filter subjects (which
server 2.9 lacks); the queue's length (``capacity``) and its overflow are
the group's own; and work-queue retention removes a message once its group
acked it, so that ``capacity`` counts what the group has not consumed
rather than everything ever published.

The scenario's keys map to JetStream's settings:

- ``ack_wait``, ``max_deliver`` (unlimited: -1), ``max_ack_pending``: the consumer's.
- ``capacity``: the stream's ``max_msgs``; ``overflow`` drop-head discards
  the oldest (``discard: old``), reject-publish refuses the publish
  (``discard: new``), and :meth:`NatsDriver.publish` reports the copy as
  not accepted.
- ``dedup_window``: the stream's ``duplicate_window``; copies carry the
  message's number as ``Nats-Msg-Id``, so that a resend of the same message
  within the window is dropped by the broker. A window of 0 sends no id
  (JetStream would read 0 as its default of two minutes).

A message that exhausts ``max_deliver`` stays in the stream, unacked;
JetStream announces it with a ``MAX_DELIVERIES`` advisory carrying its
stream sequence, which the run's side maps back to the copy. JetStream
sends that advisory when it would deliver the message again, so only while
some instance is fetching: a message whose last attempt times out after
the consumers stopped is not reported. Messages dropped by ``drop-head``
are not reported either (JetStream announces no such drop): they are the
copies never delivered.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    RetentionPolicy,
    StreamConfig,
)

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
from busim.scenario.schema import Broker, Scenario

PRESET = "nats-jetstream"
# How long a batch may wait for the broker's publish acks before its unconfirmed copies count as refused.
PUBLISH_CONFIRM_TIMEOUT_S = 10.0
# How long receive() waits for a delivery before handing back an empty list.
FETCH_TIMEOUT_S = 1.0
REMEMBERED_DELIVERIES = 100_000  # deliveries an instance remembers, to hand none out twice
# How long an ack waits for the broker's confirmation.
ACK_TIMEOUT_S = 1.0
NO_RESPONDERS = "503"
MAX_DELIVERIES_ADVISORY = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES"

# Stream and consumer names may not hold '.', '*', '>', whitespace or path separators; keep to the safe few.
_UNSAFE_IN_NAME = re.compile(r"[^A-Za-z0-9_-]")


def resource_name(word: str) -> str:
    """``word`` made a valid stream or consumer name: every character but letters, digits, - and _ becomes _."""
    return _UNSAFE_IN_NAME.sub("_", word)


@dataclass(frozen=True)
class GroupQueue:
    """A consumer group's stream, its consumer and its subjects."""

    group: str
    stream: str
    consumer: str
    subjects: dict[str, str]  # event -> subject


def group_queues(scenario: Scenario, names: RunNames) -> dict[str, GroupQueue]:
    """Each consumer group's stream, consumer and subjects, by group name, in the scenario's order."""
    prefix = resource_name(names.prefix)
    return {
        consumer.name: GroupQueue(
            group=consumer.name,
            stream=f"{prefix}_{resource_name(consumer.name)}",
            consumer=resource_name(consumer.name),
            subjects={event: f"{names.queue(consumer.name)}.{event}" for event in dict.fromkeys(consumer.subscribes)},
        )
        for consumer in scenario.consumers
    }


def _limit(value: int | str | None) -> int:
    """A scenario limit as JetStream writes it: unlimited is -1."""
    return -1 if value is None or value == "unlimited" else int(value)


def stream_config(queue: GroupQueue, broker: Broker) -> StreamConfig:
    return StreamConfig(
        name=queue.stream,
        subjects=list(queue.subjects.values()),
        retention=RetentionPolicy.WORK_QUEUE,
        max_msgs=_limit(broker.capacity),
        discard=DiscardPolicy.NEW if broker.overflow == "reject-publish" else DiscardPolicy.OLD,
        # 0 would mean JetStream's default of two minutes; without a message id nothing is deduplicated anyway.
        duplicate_window=broker.dedup_window or 0,
    )


def consumer_config(queue: GroupQueue, broker: Broker) -> ConsumerConfig:
    return ConsumerConfig(
        durable_name=queue.consumer,
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=broker.ack_wait,
        max_deliver=_limit(broker.max_deliver),
        max_ack_pending=_limit(broker.max_ack_pending),
    )


class PublishAcks:
    """JetStream's publish acks, awaited together: each publish names a reply subject of its own.

    nats-py's ``publish_async`` would do the same, but leaves its future
    unresolved when the stream answers with an error (a full stream with
    ``discard: new``), and waits for room among 4,000 in-flight publishes.
    """

    def __init__(self, connection: Client, inbox: str) -> None:
        self._connection = connection
        self._inbox = inbox
        self._waiting: dict[str, asyncio.Future[int | None]] = {}
        self._count = 0
        self._subscription: Subscription | None = None

    @classmethod
    async def listen(cls, connection: Client) -> PublishAcks:
        acks = cls(connection, connection.new_inbox())
        # No limit on acks waiting for the callback (0): a large batch's acks must not be dropped as a slow consumer's.
        acks._subscription = await connection.subscribe(
            f"{acks._inbox}.*", cb=acks._answered, pending_msgs_limit=0, pending_bytes_limit=0
        )
        return acks

    async def publish(self, subject: str, body: bytes, headers: dict[str, str] | None) -> asyncio.Future[int | None]:
        """Publish; the future gives the stream sequence, or None where the stream refused the message."""
        self._count += 1
        token = str(self._count)
        future: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self._waiting[token] = future
        await self._connection.publish(subject, body, reply=f"{self._inbox}.{token}", headers=headers)
        return future

    async def _answered(self, message: Msg) -> None:
        future = self._waiting.pop(message.subject.rpartition(".")[2], None)
        if future is None or future.done():
            return
        if message.headers and message.headers.get("Status") == NO_RESPONDERS:  # no stream takes the subject
            future.set_result(None)
            return
        answer = json.loads(message.data)
        future.set_result(None if "error" in answer else int(answer["seq"]))

    def forget(self, futures: Iterable[asyncio.Future[int | None]]) -> None:
        """Stop waiting for the acks of these publishes that have not come (in time)."""
        late = [future for future in futures if not future.done()]
        for future in late:
            future.cancel()
        if late:
            self._waiting = {token: future for token, future in self._waiting.items() if not future.done()}

    async def close(self) -> None:
        if self._subscription is not None:
            with contextlib.suppress(nats.errors.Error):
                await self._subscription.unsubscribe()
            self._subscription = None
        for future in self._waiting.values():
            future.cancel()
        self._waiting.clear()


def _since(start_s: float) -> Callable[[], float]:
    return lambda: time.monotonic() - start_s


class NatsDriver(Driver):
    """NATS JetStream, as one run uses it: a stream and a durable pull consumer per consumer group."""

    schemes = ("nats",)
    presets = (PRESET,)
    title = "NATS JetStream"

    def __init__(self, url: str, scenario: Scenario, names: RunNames, clock: Callable[[], float] | None = None) -> None:
        """``clock``: the run's clock, seconds since its start; by default, since this driver was made."""
        super().__init__(url, scenario, names)
        self.clock = clock or _since(time.monotonic())
        self.queues = group_queues(scenario, names)
        self._groups_of_event: dict[str, list[GroupQueue]] = {}
        for queue in self.queues.values():
            for event in queue.subjects:
                self._groups_of_event.setdefault(event, []).append(queue)
        self._deduplicated = bool(scenario.broker.dedup_window)
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._advisories: list[Subscription] = []
        self._acks: PublishAcks | None = None
        self._copy_at: dict[str, dict[int, int]] = {group: {} for group in self.queues}  # stream sequence -> copy
        self._dead_letters: list[tuple[str, int, float]] = []  # group, stream sequence, when

    @classmethod
    def refusals(cls, scenario: Scenario) -> list[Refusal]:
        """What JetStream cannot realise: another preset, or group names that collide once made stream names.

        Every key of the nats-jetstream preset maps to a setting; event and
        group names are valid subject tokens by the scenario's own rules.
        """
        refused = []
        if scenario.broker.preset != PRESET:
            refused.append(
                Refusal("broker.preset", f"a NATS broker realises preset {PRESET}; set broker.preset: {PRESET}")
            )
        seen: dict[str, str] = {}
        for index, consumer in enumerate(scenario.consumers):
            name = resource_name(consumer.name)
            if name in seen:
                refused.append(
                    Refusal(
                        f"consumers[{index}].name",
                        f"{consumer.name!r} and {seen[name]!r} both make the JetStream name {name!r} "
                        "(':' becomes '_'); rename one",
                    )
                )
            seen.setdefault(name, consumer.name)
        return refused

    async def connect(self) -> None:
        self._nc = await nats.connect(self.url, name=f"{self.names.prefix}-run")
        self._js = self._nc.jetstream()
        self._acks = await PublishAcks.listen(self._nc)  # publishing needs no setup: a consumer emits on it too

    @property
    def _jetstream(self) -> JetStreamContext:
        if self._js is None:
            raise RuntimeError("connect() first")
        return self._js

    async def setup(self) -> None:
        """Create each group's stream and consumer, and listen for the consumers' max-deliveries advisories."""
        js = self._jetstream
        broker = self.scenario.broker
        for queue in self.queues.values():
            subscription = await self._nc.subscribe(
                f"{MAX_DELIVERIES_ADVISORY}.{queue.stream}.{queue.consumer}", cb=self._dead_lettered(queue.group)
            )
            self._advisories.append(subscription)
            await js.add_stream(stream_config(queue, broker))
            await js.add_consumer(queue.stream, consumer_config(queue, broker))
        await self._nc.flush()

    def _dead_lettered(self, group: str) -> Callable[[Msg], Awaitable[None]]:
        async def note(message: Msg) -> None:
            advisory = json.loads(message.data)
            self._dead_letters.append((group, int(advisory["stream_seq"]), self.clock()))

        return note

    async def publish(self, batch: Sequence[Outgoing]) -> list[bool]:
        """Publish each copy to the stream of every group subscribing to its event, then await every ack.

        A copy is accepted when every such stream took it (or recognised it as
        a duplicate within the dedup window); a full stream with ``discard:
        new`` refuses it, and so does an ack that does not come within
        :data:`PUBLISH_CONFIRM_TIMEOUT_S`.
        """
        if self._acks is None:
            raise RuntimeError("connect() first")
        sent: list[tuple[int, GroupQueue, asyncio.Future[int | None]]] = []
        for index, outgoing in enumerate(batch):
            body = encode_copy(outgoing.copy, outgoing.planned)
            headers = {"Nats-Msg-Id": str(outgoing.message)} if self._deduplicated else None
            for queue in self._groups_of_event.get(outgoing.event, ()):
                sent.append((index, queue, await self._acks.publish(queue.subjects[outgoing.event], body, headers)))
        if sent:
            await asyncio.wait([future for _, _, future in sent], timeout=PUBLISH_CONFIRM_TIMEOUT_S)
        accepted = [True] * len(batch)
        for index, queue, future in sent:
            sequence = future.result() if future.done() else None
            if sequence is None:
                accepted[index] = False
            else:
                self._copy_at[queue.group].setdefault(sequence, batch[index].copy)
        self._acks.forget(future for _, _, future in sent)
        return accepted

    async def pending(self, group: str) -> int:
        """Messages the group's consumer has yet to deliver, and those delivered and awaiting an ack."""
        queue = self.queues[group]
        info = await self._jetstream.consumer_info(queue.stream, queue.consumer)
        return int(info.num_pending or 0) + int(info.num_ack_pending or 0)

    async def fates(self) -> list[BrokerFate]:
        """The copies JetStream announced as having exhausted ``max_deliver``."""
        if self._nc is not None and self._nc.is_connected:
            await self._nc.flush()
        fates = []
        for group, sequence, at_s in self._dead_letters:
            copy = self._copy_at[group].get(sequence)
            if copy is not None:
                fates.append(BrokerFate(group, copy, "dead_letter", "max_deliver", at_s))
        return fates

    async def teardown(self) -> None:
        """Delete each group's consumer and stream; those never created, or already deleted, are skipped."""
        for subscription in self._advisories:
            with contextlib.suppress(nats.errors.Error):
                await subscription.unsubscribe()
        self._advisories.clear()
        if self._acks is not None:
            await self._acks.close()
            self._acks = None
        if self._js is None:
            return
        prefix = resource_name(self.names.prefix)
        for queue in self.queues.values():
            if not queue.stream.startswith(prefix):  # never the case; a guard against deleting another run's stream
                raise RuntimeError(f"stream {queue.stream} does not carry the run's name {prefix}")
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await self._js.delete_consumer(queue.stream, queue.consumer)
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await self._js.delete_stream(queue.stream)

    async def close(self) -> None:
        if self._nc is not None and not self._nc.is_closed:
            await self._nc.close()
        self._nc = None
        self._js = None

    def consumption(self, group: str, instance: int) -> NatsConsumption:
        queue = self.queues[group]
        return NatsConsumption(self.url, queue.stream, queue.consumer, name=f"{self.names.prefix}-{group}-{instance}")


class NatsConsumption(Consumption):
    """An instance's pull subscription to its group's durable consumer.

    Closing leaves what the instance held unacked: JetStream delivers it
    again once its ``ack_wait`` runs out, as after a crash.
    """

    push = False

    def __init__(self, url: str, stream: str, consumer: str, name: str) -> None:
        self.url = url
        self.stream = stream
        self.consumer = consumer
        self.name = name
        self._nc: Client | None = None
        self._subscription: JetStreamContext.PullSubscription | None = None
        # (stream sequence, delivery count) of the deliveries taken lately: a fetch that timed out on the
        # client can leave its message to the next fetch, which then hands out the same delivery again.
        self._taken: set[tuple[int, int]] = set()
        self._taken_order: collections.deque[tuple[int, int]] = collections.deque()
        self._acks: AckPipeline[Msg] = AckPipeline(self._write_acks)

    async def start(self) -> None:
        self._nc = await nats.connect(self.url, name=self.name)
        self._subscription = await self._nc.jetstream().pull_subscribe_bind(durable=self.consumer, stream=self.stream)

    async def receive(self, free: int) -> list[Delivery]:
        """Up to ``free`` deliveries (at least one asked for), or none after :data:`FETCH_TIMEOUT_S`."""
        if self._subscription is None:
            raise RuntimeError("start() first")
        try:
            messages = await self._subscription.fetch(batch=max(1, free), timeout=FETCH_TIMEOUT_S)
        except (TimeoutError, nats.errors.TimeoutError):
            return []
        deliveries = []
        for message in messages:
            attempt = message.metadata.num_delivered
            taken = (message.metadata.sequence.stream, attempt)
            if taken in self._taken:
                continue
            self._taken.add(taken)
            self._taken_order.append(taken)
            if len(self._taken_order) > REMEMBERED_DELIVERIES:
                self._taken.discard(self._taken_order.popleft())
            deliveries.append(
                Delivery(decode_copy(message.data), attempt, attempt > 1, message, decode_planned(message.data))
            )
        return deliveries

    async def ack(self, delivery: Delivery) -> None:
        """Acknowledge, and wait until the server has read the ack, so that an instance killed right after
        loses no ack.

        The acks of the workers that finish together go out in one write,
        followed by a PING: the server answers PONG only after it has read
        everything the connection sent before, so one round trip confirms
        them all (``ack_sync`` would take one round trip, and one inbox
        subscription, per message). A PONG that does not come within
        :data:`ACK_TIMEOUT_S` leaves the acks sent; JetStream takes them if
        they arrive within ``ack_wait``.
        """
        await self._acks.send(delivery.token)  # type: ignore[arg-type]

    async def _write_acks(self, messages: list[Msg]) -> None:
        if self._nc is None:
            raise RuntimeError("start() first")
        for message in messages:
            await message.ack()  # queued in the client, written by the flush below
        with contextlib.suppress(TimeoutError, nats.errors.TimeoutError):
            await self._nc.flush(timeout=ACK_TIMEOUT_S)

    async def close(self) -> None:
        if self._subscription is not None:
            with contextlib.suppress(nats.errors.Error):
                await self._subscription.unsubscribe()
            self._subscription = None
        if self._nc is not None and not self._nc.is_closed:
            await self._nc.close()
        self._nc = None
