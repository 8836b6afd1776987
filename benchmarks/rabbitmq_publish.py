"""Time the RabbitMQ driver's publishing: confirmed copies per wall-clock second.

Publishes ``--copies`` copies in batches of ``--batch`` through
:meth:`RabbitMQDriver.publish`, with ``--in-flight`` batches awaiting their
confirms at once, into a run of its own (deleted afterwards), and reports
the rate for each batch size. Nothing consumes: the queue is purged between
batch sizes, so that a growing backlog does not slow the next one. Needs a
RabbitMQ server.

    python benchmarks/rabbitmq_publish.py [--url amqp://guest:guest@127.0.0.1:5672/]
        [--copies 50000] [--batch 100 --batch 1000] [--in-flight 1]
        [--preset rabbitmq|rabbitmq-quorum] [--transient]
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid

import aio_pika

from busim.loadtest.drivers.base import Outgoing, RunNames
from busim.loadtest.drivers.rabbitmq import TRANSIENT, RabbitMQDriver
from busim.scenario.schema import Scenario

URL = "amqp://guest:guest@127.0.0.1:5672/"


def one_queue(preset: str) -> Scenario:
    return Scenario.model_validate(
        {
            "name": "publish-benchmark",
            "duration": 1,
            "events": {"Job": {}},
            "publishers": [{"name": "source", "event": "Job", "rate": 1}],
            "broker": {"preset": preset},
            "consumers": [{"name": "worker", "subscribes": ["Job"]}],
        }
    )


async def rate_per_s(driver: RabbitMQDriver, copies: int, batch: int, in_flight: int) -> float:
    """Confirmed copies per second, publishing ``copies`` in batches of ``batch``."""
    batches = [
        [Outgoing(copy=copy, message=copy, event="Job") for copy in range(start, min(copies, start + batch))]
        for start in range(0, copies, batch)
    ]
    pending: set[asyncio.Task[list[bool]]] = set()
    started = time.perf_counter()
    for outgoing in batches:
        if len(pending) >= in_flight:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                assert all(task.result())
        pending.add(asyncio.ensure_future(driver.publish(outgoing)))
    for accepted in await asyncio.gather(*pending):
        assert all(accepted)
    return copies / (time.perf_counter() - started)


async def purge(url: str, queue: str) -> None:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        await (await channel.get_queue(queue)).purge()


async def benchmark(options: argparse.Namespace) -> None:
    names = RunNames(f"busim-publish-benchmark-{uuid.uuid4().hex[:8]}")
    driver = RabbitMQDriver(options.url, one_queue(options.preset), names)
    if options.transient:
        driver.delivery_mode = TRANSIENT
    await driver.connect()
    try:
        await driver.setup()
        mode = "transient" if options.transient else "persistent"
        for batch in options.batch or [100, 1000]:
            rate = await rate_per_s(driver, options.copies, batch, options.in_flight)
            await purge(options.url, names.queue("worker"))
            print(f"{options.preset}, {mode}, batch {batch:,}, {options.in_flight} in flight: {rate:,.0f} copies/s")
    finally:
        await driver.teardown()
        await driver.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=URL)
    parser.add_argument("--copies", type=int, default=50_000)
    parser.add_argument("--batch", type=int, action="append", help="copies per publish call; repeatable")
    parser.add_argument("--in-flight", type=int, default=1, help="publish calls awaiting their confirms at once")
    parser.add_argument("--preset", choices=RabbitMQDriver.presets, default="rabbitmq")
    parser.add_argument("--transient", action="store_true", help="publish non-persistent copies, for comparison")
    asyncio.run(benchmark(parser.parse_args()))


if __name__ == "__main__":
    main()
