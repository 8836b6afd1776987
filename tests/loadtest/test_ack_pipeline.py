"""AckPipeline: acks handed over together go out in one write, each sender released once its write is done."""

from __future__ import annotations

import asyncio

import pamqp.frame
import pytest
from aiormq import spec

from busim.loadtest.drivers.base import AckPipeline
from busim.loadtest.drivers.rabbitmq import _BASIC_ACK

TIMEOUT_S = 5.0


def test_acks_handed_over_during_a_write_go_out_together_in_the_next() -> None:
    writes: list[list[int]] = []

    async def body() -> None:
        release = asyncio.Event()

        async def write(items: list[int]) -> None:
            writes.append(list(items))
            if len(writes) == 1:
                await release.wait()  # the first write is slow: the next acks wait for it

        pipeline: AckPipeline[int] = AckPipeline(write)
        first = asyncio.create_task(pipeline.send(1))
        await asyncio.sleep(0.01)
        later = [asyncio.create_task(pipeline.send(item)) for item in (2, 3, 4)]
        await asyncio.sleep(0.01)
        assert writes == [[1]] and not first.done() and not any(task.done() for task in later)
        release.set()
        await asyncio.gather(first, *later)

    asyncio.run(asyncio.wait_for(body(), TIMEOUT_S))
    assert writes == [[1], [2, 3, 4]]


def test_a_failed_write_raises_in_every_sender_of_its_batch_and_the_next_batch_still_goes() -> None:
    async def body() -> None:
        written: list[list[str]] = []

        async def write(items: list[str]) -> None:
            written.append(items)
            if "bad" in items:
                raise ConnectionError("the channel closed")

        pipeline: AckPipeline[str] = AckPipeline(write)
        results = await asyncio.gather(pipeline.send("bad"), pipeline.send("also"), return_exceptions=True)
        assert [type(result) for result in results] == [ConnectionError, ConnectionError]
        await pipeline.send("fine")
        assert written == [["bad", "also"], ["fine"]]

    asyncio.run(asyncio.wait_for(body(), TIMEOUT_S))


@pytest.mark.parametrize("channel, tag", [(1, 1), (7, 123_456_789), (65_535, 2**63 - 1)])
def test_a_packed_ack_frame_is_the_frame_pamqp_marshals(channel: int, tag: int) -> None:
    expected = pamqp.frame.marshal(spec.Basic.Ack(delivery_tag=tag, multiple=False), channel)
    assert _BASIC_ACK.pack(1, channel, 13, 60, 80, tag, 0, 0xCE) == expected
