"""RabbitMQ: one exchange per run, one queue per consumer group, and a dead-letter queue beside each.

Presets ``rabbitmq`` (a classic queue) and ``rabbitmq-quorum`` (a quorum
queue), on RabbitMQ 3.10 or later. The run's direct exchange routes each copy
by its event's name to the queue of every group that subscribes to it. Every
group queue dead-letters into the run's dead-letter exchange, which routes to
that group's dead-letter queue; after the run :meth:`RabbitMQDriver.fates`
reads those queues to tell which copies the broker dropped (``maxlen``) or
gave up on (``delivery_limit``, ``rejected``).

Publishing writes a whole batch as one stream of frames and then awaits the
publisher confirms together: publishing copy by copy through the client's
own ``publish``, even with the calls gathered, reaches 3,000-6,000 copies a
second on two cores; a batch of 1,000 written at once, 14,000-17,000
(``benchmarks/rabbitmq_publish.py``). To do so it uses aiormq's channel
(its lock, delivery tags and write queue, and its confirm frames, which
:class:`_Confirms` settles per batch), as aiormq 7 has them.

A consumer instance holds a plain connection, not a self-healing one: when
it dies or loses its connection, the broker requeues its unacknowledged
deliveries, which is what a run sets out to observe; its process is
restarted by the supervisor rather than reconnected behind the worker's back.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import math
import struct
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aio_pika
import aiormq
import numpy as np
import pamqp.frame
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractRobustConnection
from aiormq import spec
from aiormq.abc import ChannelFrame, DeliveredMessage
from pamqp.body import ContentBody
from pamqp.constants import FRAME_BODY, FRAME_END
from pamqp.header import ContentHeader

from busim.loadtest.drivers import amqp_frames
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
from busim.scenario.presets import defaults_of
from busim.scenario.schema import Broker, Scenario
from busim.scenario.units import parse_duration

QUORUM = "rabbitmq-quorum"
MAX_PREFETCH = 65_535  # basic.qos carries the prefetch count in 16 bits
RECEIVE_WAIT_S = 1.0  # receive() returns empty-handed after this long, so that the instance sees the clock
FATES_WAIT_S = 10.0  # fates() gives up on a dead-letter message the broker counted but does not send
CLOSE_TIMEOUT_S = 5.0
TRANSIENT, PERSISTENT = 1, 2  # AMQP delivery modes
# A basic.ack frame, as pamqp marshals it: method frame (1), channel, size 13, class 60 method 80, the
# delivery tag, multiple 0, frame end. Packed directly: pamqp's marshalling cost as much as the write.
_BASIC_ACK = struct.Struct(">BHIHHQBB")
_END = bytes([FRAME_END])
# The broker's word in x-death -> BrokerFate.kind; any other reason is a dead letter.
DROPPED_REASONS = frozenset({"maxlen"})


def _limit(value: int | str | None) -> int | None:
    return value if isinstance(value, int) else None


def dead_letter_exchange(names: RunNames) -> str:
    """The run's dead-letter exchange: every group queue dead-letters into it."""
    return f"{names.prefix}.dead-letters"


def queue_arguments(broker: Broker, dead_letters: str, dead_letter_exchange_name: str) -> dict[str, Any]:
    """The ``x-`` arguments of a group queue for ``broker``; those at the server's own default are left out.

    ``dead_letters`` is the group's dead-letter queue, used as the routing key
    into the run's dead-letter exchange.
    """
    arguments: dict[str, Any] = {
        "x-dead-letter-exchange": dead_letter_exchange_name,
        "x-dead-letter-routing-key": dead_letters,
    }
    if broker.preset == QUORUM:
        arguments["x-queue-type"] = "quorum"
        # RabbitMQ 3.10 sets no delivery limit unless asked; 4.0's default of 20 is the preset's.
        if (limit := _limit(broker.delivery_limit)) is not None:
            arguments["x-delivery-limit"] = limit
    if (capacity := _limit(broker.capacity)) is not None:
        arguments["x-max-length"] = capacity
    if broker.overflow not in (None, "drop-head"):
        arguments["x-overflow"] = broker.overflow
    return arguments


@dataclass
class _ConfirmBatch:
    """The confirms one publish call waits for: delivery tags ``first`` to ``first + size - 1``."""

    first: int
    settled: asyncio.Future[None]  # done when every tag is confirmed; rejected by aiormq if the channel closes
    confirmed: np.ndarray  # per tag, acked or nacked
    refused: np.ndarray  # per tag, nacked
    unsettled: int

    def settle(self, upto: int, start: int, refused: bool) -> None:
        """Settle the tags from ``start`` to ``upto`` (inclusive) that are in this batch."""
        low, high = max(start, self.first) - self.first, min(upto, self.first + self.confirmed.size - 1) - self.first
        if high < low:
            return
        span = self.confirmed[low : high + 1]
        fresh = ~span
        newly = int(np.count_nonzero(fresh))
        if not newly:
            return
        if refused:
            self.refused[low : high + 1] |= fresh
        span[:] = True
        self.unsettled -= newly
        if not self.unsettled and not self.settled.done():
            self.settled.set_result(None)


class _Confirms:
    """A publishing channel's confirms, settled per batch rather than per copy.

    aiormq keeps a future per delivery tag and settles a ``multiple`` ack
    with a callback per tag: at 10,000 copies a second, more work than
    everything else the generator does. Here the channel's confirm frames
    come to :meth:`_on_frame` instead, which settles whole ranges of tags in
    numpy and resolves one future per publish call.
    """

    def __init__(self, channel: aiormq.abc.AbstractChannel) -> None:
        self.channel = channel
        self._batches: list[_ConfirmBatch] = []  # in the order of their tags
        channel._on_confirm_frame = self._on_frame  # type: ignore[attr-defined,method-assign]

    def expect(self, first: int, size: int) -> _ConfirmBatch:
        batch = _ConfirmBatch(
            first, self.channel.create_future(), np.zeros(size, dtype=bool), np.zeros(size, dtype=bool), size
        )
        self._batches.append(batch)
        return batch

    def forget(self, batch: _ConfirmBatch) -> None:
        with contextlib.suppress(ValueError):
            self._batches.remove(batch)
        if not batch.settled.done():
            batch.settled.cancel()

    async def _on_frame(self, frame: spec.Basic.Ack | spec.Basic.Nack) -> None:
        tag = frame.delivery_tag
        start = 0 if frame.multiple else tag
        refused = isinstance(frame, spec.Basic.Nack)
        for batch in self._batches:
            if batch.first > tag:
                break
            batch.settle(tag, start, refused)


def _since(start_s: float) -> Callable[[], float]:
    return lambda: time.monotonic() - start_s


class RabbitMQDriver(Driver):
    """A scenario's broker as queues, exchanges and dead-letter queues on RabbitMQ."""

    schemes = ("amqp", "amqps")
    presets = ("rabbitmq", QUORUM)
    title = "RabbitMQ"
    # Copies survive a broker restart, as the durable queues do. On a classic queue this costs publish rate
    # (measured: 18,000 rather than 21,000 copies/s in batches of 1,000; 11,700 rather than 22,000 in batches
    # of 100), which stays above 10,000 copies/s; a quorum queue stores every copy whatever its mode.
    delivery_mode = PERSISTENT

    def __init__(self, url: str, scenario: Scenario, names: RunNames, clock: Callable[[], float] | None = None) -> None:
        """``clock``: the run's clock, seconds since its start; by default, since this driver was made.

        It places the broker's dead-lettering times (wall-clock seconds) on the run's clock.
        """
        super().__init__(url, scenario, names)
        self.clock = clock or _since(time.monotonic())
        self._connection: AbstractRobustConnection | None = None
        self._publishing: AbstractChannel | None = None
        # Per event, the publish method and content header frames, ready marshalled for one channel.
        self._heads: dict[str, bytes] = {}
        self._confirms: _Confirms | None = None  # the publishing channel's

    @classmethod
    def refusals(cls, scenario: Scenario) -> list[Refusal]:
        broker = scenario.broker
        refused = []
        server_timeout_s = parse_duration(defaults_of(broker.preset)["consumer_timeout"])
        if broker.consumer_timeout is not None and broker.consumer_timeout != server_timeout_s:
            refused.append(
                Refusal(
                    "broker.consumer_timeout",
                    f"RabbitMQ 3.10 sets consumer_timeout only for the whole server, in rabbitmq.conf, not per "
                    f"queue; leave it at the server's {server_timeout_s / 60:g}m, or simulate it instead",
                )
            )
        prefetch = _limit(broker.prefetch)
        if prefetch is not None and prefetch > MAX_PREFETCH:
            refused.append(
                Refusal(
                    "broker.prefetch",
                    f"AMQP carries a prefetch of at most {MAX_PREFETCH:,} (got {prefetch:,}); "
                    "set it lower or to unlimited",
                )
            )
        if prefetch is not None and broker.delivery == "at-most-once":
            refused.append(
                Refusal(
                    "broker.prefetch",
                    "a prefetch limits only unacknowledged deliveries, and without acks (delivery: at-most-once) "
                    "RabbitMQ sends a consumer everything at once; set prefetch to unlimited",
                )
            )
        return refused

    # The run's side.

    async def connect(self) -> None:
        amqp_frames.install()
        # Self-healing: after a broker restart the next batch publishes on a new channel.
        self._connection = await aio_pika.connect_robust(
            self.url, client_properties={"connection_name": f"{self.names.prefix} publisher"}
        )
        self._publishing = await self._connection.channel(publisher_confirms=True)

    @contextlib.asynccontextmanager
    async def _admin(self) -> AsyncIterator[AbstractChannel]:
        """A channel of its own connection, for declaring and deleting.

        The publishing connection re-declares after a reconnect whatever was
        declared through it; declaring elsewhere keeps teardown final.
        """
        connection = await aio_pika.connect(
            self.url, client_properties={"connection_name": f"{self.names.prefix} admin"}
        )
        try:
            yield await connection.channel(publisher_confirms=False)
        finally:
            await asyncio.wait_for(connection.close(), CLOSE_TIMEOUT_S)

    def _groups(self) -> list[tuple[str, list[str]]]:
        return [(consumer.name, list(consumer.subscribes)) for consumer in self.scenario.consumers]

    async def setup(self) -> None:
        broker = self.scenario.broker
        dead_letter_exchange_name = dead_letter_exchange(self.names)
        async with self._admin() as channel:
            dead_letter_router = await channel.declare_exchange(
                dead_letter_exchange_name, aio_pika.ExchangeType.DIRECT, durable=True
            )
            router = await channel.declare_exchange(self.names.prefix, aio_pika.ExchangeType.DIRECT, durable=True)
            for group, events in self._groups():
                dead_letters_name = self.names.dead_letters(group)
                dead_letters = await channel.declare_queue(dead_letters_name, durable=True)
                await dead_letters.bind(dead_letter_router, routing_key=dead_letters_name)
                queue = await channel.declare_queue(
                    self.names.queue(group),
                    durable=True,
                    arguments=queue_arguments(broker, dead_letters_name, dead_letter_exchange_name),
                )
                for event in events:
                    await queue.bind(router, routing_key=event)

    async def publish(self, batch: Sequence[Outgoing]) -> list[bool]:
        """Publish ``batch`` as one write, then await its confirms together.

        A copy the broker nacks (a full queue under ``reject-publish``) is
        ``False``. Where an event goes to several groups, one full queue is
        enough for the nack. Several calls may run at once: each holds the
        channel only while it writes.

        Raises the client's error when the channel or connection closes
        before every confirm arrived.
        """
        if self._publishing is None:
            raise RuntimeError("connect() first")
        if not batch:
            return []
        channel = await self._publishing.get_underlay_channel()
        async with channel.lock:  # the delivery tags must follow the order of the frames
            if self._confirms is None or self._confirms.channel is not channel:
                self._confirms = _Confirms(channel)  # a new channel, after a reconnection
                self._heads = {}
            number = channel.number
            frames = []
            for outgoing in batch:
                frames += (self._head(outgoing.event, number), encode_copy(outgoing.copy, outgoing.planned), _END)
            waiting = self._confirms.expect(channel.delivery_tag + 1, len(batch))
            channel.delivery_tag += len(batch)
            await channel.write_queue.put(ChannelFrame(payload=b"".join(frames), should_close=False))
        try:
            await waiting.settled
        finally:
            self._confirms.forget(waiting)
        return (~waiting.refused).tolist()

    def _head(self, event: str, channel_number: int) -> bytes:
        """A copy's frames up to its body: the publish method, the content header and the body frame's
        header, the same for every copy of ``event``. The body and the frame end follow."""
        head = self._heads.get(event)
        if head is None:
            method = aiormq.spec.Basic.Publish(exchange=self.names.prefix, routing_key=event)
            body_size = len(encode_copy(0))
            properties = aiormq.spec.Basic.Properties(delivery_mode=self.delivery_mode)
            head = (
                pamqp.frame.marshal(method, channel_number)
                + pamqp.frame.marshal(ContentHeader(0, body_size, properties), channel_number)
                + amqp_frames.FRAME_HEAD.pack(FRAME_BODY, channel_number, body_size)
            )
            self._heads[event] = head
        return head

    async def pending(self, group: str) -> int:
        """Copies ready in the group's queue (what consumers hold unacked, the run's journals count)."""
        if self._publishing is None:
            raise RuntimeError("connect() first")
        channel = await self._publishing.get_underlay_channel()
        declared = await channel.queue_declare(self.names.queue(group), passive=True)
        return int(declared.message_count or 0)

    async def fates(self) -> list[BrokerFate]:
        """Consume every group's dead-letter queue; each copy's fate from the x-death the broker wrote.

        The broker stamps x-death to the second, in wall-clock time: ``at_s``
        is that second placed on the run's clock.
        """
        fates = []
        run_minus_wall_s = self.clock() - time.time()
        async with self._admin() as channel:
            for group, _ in self._groups():
                for message in await _drain(channel, self.names.dead_letters(group)):
                    fates.append(_fate(group, message, run_minus_wall_s))
        return fates

    async def teardown(self) -> None:
        """Delete the run's queues and exchanges, each by its own name; a missing one is no error."""
        groups = [group for group, _ in self._groups()]
        queues = [self.names.queue(group) for group in groups] + [self.names.dead_letters(group) for group in groups]
        exchanges = [self.names.prefix, dead_letter_exchange(self.names)]
        if not all(name.startswith(self.names.prefix) for name in queues + exchanges):
            raise RuntimeError(f"every name the run deletes must start with its name {self.names.prefix}")
        async with self._admin() as channel:
            for name in queues:
                await channel.queue_delete(name)  # deleting a queue that is not there succeeds
            for name in exchanges:
                await channel.exchange_delete(name)

    async def close(self) -> None:
        connection, self._connection, self._publishing = self._connection, None, None
        if connection is not None:
            await asyncio.wait_for(connection.close(), CLOSE_TIMEOUT_S)

    def consumption(self, group: str, instance: int) -> RabbitMQConsumption:
        broker = self.scenario.broker
        return RabbitMQConsumption(
            self.url,
            queue=self.names.queue(group),
            prefetch_count=_limit(broker.prefetch) or 0,
            acks=broker.delivery == "at-least-once",
            counts_deliveries=broker.preset == QUORUM,
            name=f"{self.names.prefix} {group} {instance}",
        )


async def _drain(channel: AbstractChannel, name: str) -> list[AbstractIncomingMessage]:
    """Every message in queue ``name``, acknowledged; until the broker counts none left."""
    messages: list[AbstractIncomingMessage] = []
    while True:
        queue = await channel.declare_queue(name, passive=True)
        waiting = queue.declaration_result.message_count or 0
        if not waiting:
            return messages
        async with queue.iterator() as incoming:
            for _ in range(waiting):
                message = await asyncio.wait_for(incoming.__anext__(), FATES_WAIT_S)
                messages.append(message)
            await messages[-1].ack(multiple=True)


def _fate(group: str, message: AbstractIncomingMessage, run_minus_wall_s: float) -> BrokerFate:
    deaths = (message.headers or {}).get("x-death") or [{}]
    death = deaths[0]  # the latest; a copy dies once here, as dead-letter queues do not dead-letter
    reason = str(death.get("reason", "unknown"))
    when = death.get("time")
    at_s = when.timestamp() + run_minus_wall_s if isinstance(when, datetime) else math.nan
    kind = "dropped" if reason in DROPPED_REASONS else "dead_letter"
    return BrokerFate(group=group, copy=decode_copy(message.body), kind=kind, reason=reason, at_s=at_s)


class AckFrames:
    """The ``basic.ack`` frames that acknowledge a channel's deliveries as their processings end.

    A run of deliveries whose processings have all ended, from the oldest
    one unacknowledged on, is acknowledged by one ``multiple`` ack of its
    last tag that is still outstanding; any other delivery by an ack of its
    own tag. The broker is told of exactly the deliveries whose processing
    ended, when it ended, never of one still being processed: what changes
    is the number of frames the consumer writes and the broker reads (with
    no-op processing, about one per write instead of one per message).
    """

    def __init__(self) -> None:
        self._unacked: collections.deque[int] = collections.deque()  # delivered tags, oldest first
        self._acked_alone: set[int] = set()  # acked by their own tags, still behind an unacknowledged one

    def delivered(self, tag: int) -> None:
        """The broker delivered ``tag`` on the channel (tags rise with every delivery)."""
        self._unacked.append(tag)

    def frames(self, tags: list[int], channel: int) -> bytes:
        """The frames that acknowledge ``tags`` (delivered, not yet acknowledged) on ``channel``."""
        ending = set(tags)
        unacked, acked_alone = self._unacked, self._acked_alone
        upto = 0  # the multiple ack's tag: the newest delivery of ``tags`` that a run from the oldest reaches
        while unacked and (unacked[0] in ending or unacked[0] in acked_alone):
            tag = unacked.popleft()
            if tag in ending:
                upto = tag
            else:
                acked_alone.discard(tag)
        alone = [tag for tag in tags if tag > upto]
        acked_alone.update(alone)
        frames = [_BASIC_ACK.pack(1, channel, 13, 60, 80, tag, 0, FRAME_END) for tag in alone]
        if upto:
            frames.append(_BASIC_ACK.pack(1, channel, 13, 60, 80, upto, 1, FRAME_END))
        return b"".join(frames)


class ConsumptionLostError(RuntimeError):
    """A consumer instance's channel or consumer is gone; its unacknowledged deliveries went back to the queue."""


class RabbitMQConsumption(Consumption):
    """One instance's consumer on its group's queue, on a channel of its own.

    The broker pushes up to ``prefetch_count`` unacknowledged deliveries
    (0: no limit); they wait here until :meth:`receive` hands them out.
    Deliveries are taken from aiormq's channel as they come (aio-pika's
    message object cost more than the rest of a no-op processing), and the
    acks of the workers that finish together are written at once: see
    :class:`AckFrames`.
    """

    push = True

    def __init__(
        self, url: str, *, queue: str, prefetch_count: int, acks: bool, counts_deliveries: bool, name: str
    ) -> None:
        """``acks``: manual acks (at-least-once), else the broker forgets a copy once sent.

        ``counts_deliveries``: the queue reports ``x-delivery-count`` (quorum queues).
        """
        self.url = url
        self.queue = queue
        self.prefetch_count = prefetch_count
        self.acks = acks
        self.counts_deliveries = counts_deliveries
        self.name = name
        self.receive_wait_s = RECEIVE_WAIT_S
        self._connection: aio_pika.abc.AbstractConnection | None = None
        self.channel: AbstractChannel | None = None
        self._underlay: aiormq.abc.AbstractChannel | None = None
        self._inbox: list[DeliveredMessage] = []
        self._waiting = asyncio.Event()  # set while the inbox holds something, or once the channel is lost
        self._lost: BaseException | None = None
        self._acks: AckPipeline[int] = AckPipeline(self._write_acks)
        self._ack_frames = AckFrames()

    async def start(self) -> None:
        amqp_frames.install()
        self._connection = await aio_pika.connect(self.url, client_properties={"connection_name": self.name})
        self.channel = await self._connection.channel(publisher_confirms=False)
        self.channel.close_callbacks.add(self._closed)
        self._underlay = await self.channel.get_underlay_channel()
        self._underlay.on_consumer_cancel_callbacks.add(self._cancelled)
        await self.channel.set_qos(prefetch_count=self.prefetch_count)
        await self.channel.get_queue(self.queue, ensure=True)  # raises if the queue is not there
        # aiormq would start a task per delivery to call a consumer callback; the channel's reader calls this
        # instead, which reads the delivery's frames and files it in the inbox. The channel has one consumer.
        self._underlay._on_deliver_frame = self._on_deliver_frame  # type: ignore[method-assign]
        await self._underlay.basic_consume(self.queue, self._arrived, no_ack=not self.acks)

    async def _on_deliver_frame(self, frame: spec.Basic.Deliver) -> None:
        channel = self._underlay
        assert channel is not None
        header = await channel._get_frame()
        if not isinstance(header, ContentHeader):
            raise ValueError(f"unexpected frame {header!r} instead of a content header", header)
        body = b""
        while len(body) < header.body_size:
            content = await channel._get_frame()
            if not isinstance(content, ContentBody):
                raise ValueError(f"unexpected frame {content!r} instead of a content body", content)
            body += content.value
        self._arrived(DeliveredMessage(delivery=frame, header=header, body=body, channel=channel))

    def _arrived(self, message: DeliveredMessage) -> None:
        if self.acks:
            self._ack_frames.delivered(message.delivery.delivery_tag)
        self._inbox.append(message)
        self._waiting.set()

    def _closed(self, _: object, reason: BaseException | None = None) -> None:
        """The channel closed: by :meth:`close`, or by the broker (a consumer timeout, an unknown delivery tag)."""
        self._lost = reason or ConsumptionLostError(f"{self.name}: the channel to {self.queue} closed")
        self._waiting.set()

    def _cancelled(self, _: object) -> None:
        """The broker cancelled the consumer: its queue was deleted."""
        self._lost = ConsumptionLostError(f"{self.name}: the broker cancelled the consumer of {self.queue}")
        self._waiting.set()

    async def receive(self, free: int) -> list[Delivery]:
        """Every delivery waiting (the broker's prefetch bounds them), whatever ``free`` is.

        Raises the broker's reason (or :class:`ConsumptionLostError`) once the
        channel has closed or the consumer was cancelled: what waits here then
        is void, as the broker has taken back every unacknowledged delivery.
        """
        if self._connection is None:
            raise RuntimeError("start() first")
        if self._lost is None and not self._inbox:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._waiting.wait(), self.receive_wait_s)
        if self._lost is not None:
            raise self._lost
        deliveries = [self._delivery(message) for message in self._inbox]
        self._inbox.clear()
        self._waiting.clear()
        return deliveries

    def _delivery(self, message: DeliveredMessage) -> Delivery:
        attempt = 0  # a classic queue only says whether a copy was delivered before
        if self.counts_deliveries:
            attempt = int((message.header.properties.headers or {}).get("x-delivery-count", 0)) + 1
        return Delivery(
            copy=decode_copy(message.body),
            attempt=attempt,
            redelivered=bool(message.delivery.redelivered) or attempt > 1,
            token=message,
            planned=decode_planned(message.body),
        )

    async def ack(self, delivery: Delivery) -> None:
        """Ack ``delivery`` by its own tag; returns once the frame is written to the connection's socket."""
        if self.acks:
            message: DeliveredMessage = delivery.token  # type: ignore[assignment]
            await self._acks.send(message.delivery.delivery_tag)

    async def _write_acks(self, tags: list[int]) -> None:
        channel = self._underlay
        if channel is None or channel.is_closed or self._lost is not None:
            raise self._lost or aiormq.exceptions.ChannelInvalidStateError(f"{self.name}: the channel is closed")
        written = channel.create_future()  # set by the connection's writer once the frames are on the socket
        payload = self._ack_frames.frames(tags, channel.number)
        await channel.write_queue.put(ChannelFrame(payload=payload, should_close=False, drain_future=written))
        await written

    async def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            await asyncio.wait_for(connection.close(), CLOSE_TIMEOUT_S)
