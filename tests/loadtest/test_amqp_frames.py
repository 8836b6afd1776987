"""AMQP frames read in bulk come out as aiormq's own receiver gives them; acks coalesce without acking too much."""

from __future__ import annotations

import asyncio
import struct

import numpy as np
import pamqp.frame
import pytest
from aiormq.connection import FrameReceiver
from aiormq.exceptions import AMQPConnectionError, InvalidFrameError, ProtocolSyntaxError
from pamqp import commands
from pamqp.body import ContentBody
from pamqp.header import ContentHeader
from pamqp.heartbeat import Heartbeat

from busim.loadtest.drivers.amqp_frames import BulkFrameReceiver
from busim.loadtest.drivers.rabbitmq import AckFrames


def a_stream() -> bytes:
    """Deliveries as a classic and a quorum queue send them, confirms, a heartbeat and a channel close."""
    rng = np.random.default_rng(5)
    frames = []
    for tag in range(1, 301):
        channel = 1 + tag % 2
        deliver = commands.Basic.Deliver(
            consumer_tag=f"ctag{channel}.é", delivery_tag=tag * 2**33, redelivered=bool(tag % 3 == 0),
            exchange="busim-run" if tag % 5 else "", routing_key=f"Order{'Placé' * (tag % 4)}",
        )  # fmt: skip
        size = int(rng.integers(1, 300))
        headers = {"x-delivery-count": tag % 4} if tag % 2 else None
        properties = commands.Basic.Properties(delivery_mode=2, headers=headers)
        frames += [(deliver, channel), (ContentHeader(0, size, properties), channel)]
        frames.append((ContentBody(rng.bytes(size)), channel))
        if tag % 50 == 0:
            frames += [(Heartbeat(), 0), (commands.Basic.Ack(delivery_tag=tag, multiple=True), 3)]
    frames.append((commands.Channel.Close(406, "PRECONDITION_FAILED", 60, 80), 1))
    return b"".join(pamqp.frame.marshal(frame, channel) for frame, channel in frames)


async def frames_read(receiver_class: type[FrameReceiver], data: bytes, chunks: list[int]) -> list[tuple]:
    """Every frame ``receiver_class`` reads from ``data`` fed in chunks of these sizes, as (weight, channel,
    class, the frame marshalled again)."""
    reader = asyncio.StreamReader()
    start = 0
    for size in chunks:
        reader.feed_data(data[start : start + size])
        start += size
    reader.feed_data(data[start:])
    reader.feed_eof()
    receiver = receiver_class(reader)
    read = []
    with pytest.raises(StopAsyncIteration):
        while True:
            weight, channel, frame = await receiver.get_frame()
            read.append((weight, channel, type(frame), pamqp.frame.marshal(frame, channel)))
    return read


@pytest.mark.parametrize("largest_chunk", [1, 7, 8, 100, 5000])
def test_bulk_reading_gives_the_frames_aiormq_gives(largest_chunk):
    data = a_stream()
    chunks = np.random.default_rng(largest_chunk).integers(1, largest_chunk + 1, size=len(data)).tolist()
    expected = asyncio.run(frames_read(FrameReceiver, data, []))
    assert len(expected) == 6 * 2 + 3 * 300 + 1
    assert asyncio.run(frames_read(BulkFrameReceiver, data, chunks)) == expected


def test_a_delivery_read_in_bulk_keeps_its_fields():
    frame = commands.Basic.Deliver("ctag", 2**40 + 7, True, "busim-x", "OrderPlaced")

    async def read() -> tuple:
        reader = asyncio.StreamReader()
        reader.feed_data(pamqp.frame.marshal(frame, 4))
        return await BulkFrameReceiver(reader).get_frame()

    weight, channel, deliver = asyncio.run(read())
    assert (weight, channel) == (len(pamqp.frame.marshal(frame, 4)), 4)
    fields = (deliver.consumer_tag, deliver.delivery_tag, deliver.redelivered, deliver.exchange, deliver.routing_key)
    assert fields == ("ctag", 2**40 + 7, True, "busim-x", "OrderPlaced")


@pytest.mark.parametrize(
    ("data", "error", "message"),
    [
        (b"AMQP\x00\x00\x09\x01", ProtocolSyntaxError, "Unexpected AMQP protocol header"),
        (pamqp.frame.marshal(Heartbeat(), 0)[:5], AMQPConnectionError, "closed with 5 bytes of a frame unread"),
        (pamqp.frame.marshal(Heartbeat(), 0)[:-1] + b"\x00", AMQPConnectionError, "does not end with the frame end"),
        (struct.pack(">BHIHH", 1, 0, 4, 999, 1) + b"\xce", InvalidFrameError, "Unknown method index"),
    ],
)
@pytest.mark.parametrize("first_chunk", [1, 3, 100])
def test_bulk_reading_refuses_what_is_not_amqp(data, error, message, first_chunk):
    async def read() -> None:
        reader = asyncio.StreamReader()
        receiver = BulkFrameReceiver(reader)
        reader.feed_data(data[:first_chunk])
        asyncio.get_running_loop().call_later(0.01, reader.feed_data, data[first_chunk:])
        asyncio.get_running_loop().call_later(0.02, reader.feed_eof)
        await receiver.get_frame()

    with pytest.raises(error, match=message):
        asyncio.run(read())


_ACK = struct.Struct(">BHIHHQBB")


class Broker:
    """A channel's unacknowledged deliveries as RabbitMQ keeps them: an ack must name an outstanding tag;
    ``multiple`` acks every outstanding one up to it."""

    def __init__(self) -> None:
        self.outstanding: list[int] = []

    def read(self, data: bytes) -> set[int]:
        acked = set()
        for start in range(0, len(data), _ACK.size):
            _, _, size, class_id, method_id, tag, multiple, end = _ACK.unpack_from(data, start)
            assert (size, class_id, method_id, end) == (13, 60, 80, 0xCE)
            assert tag in self.outstanding, f"unknown delivery tag {tag}"
            these = [t for t in self.outstanding if t <= tag] if multiple else [tag]
            acked.update(these)
            self.outstanding = [t for t in self.outstanding if t not in these]
        return acked


@pytest.mark.parametrize("seed", range(20))
def test_coalesced_acks_ack_exactly_the_deliveries_whose_processing_ended(seed):
    rng = np.random.default_rng(seed)
    frames, broker = AckFrames(), Broker()
    delivered, ended = 0, []
    for _ in range(200):
        for _ in range(int(rng.integers(0, 6))):
            delivered += 1
            frames.delivered(delivered)
            broker.outstanding.append(delivered)
        pending = sorted(set(broker.outstanding) - set(ended))
        now = [tag for tag in pending if rng.random() < 0.4]
        rng.shuffle(now)
        ended += now
        if now:
            assert broker.read(frames.frames(now, 1)) == set(now)
    assert sorted(broker.outstanding) == sorted(set(range(1, delivered + 1)) - set(ended))


def test_deliveries_ending_in_order_take_one_ack_per_write():
    frames, broker = AckFrames(), Broker()
    for tag in range(1, 101):
        frames.delivered(tag)
        broker.outstanding.append(tag)
    data = frames.frames([3, 1, 2], 7)
    assert len(data) == _ACK.size and broker.read(data) == {1, 2, 3}
    data = frames.frames([5, 6], 7)
    assert len(data) == 2 * _ACK.size and broker.read(data) == {5, 6}  # 4 is still being processed
    data = frames.frames([4, 7], 7)
    assert _ACK.unpack(data)[5:7] == (7, 1) and broker.read(data) == {4, 7}  # one ack, past 5 and 6
