"""The RabbitMQ driver against the local server: queues and their arguments, routing, prefetch, dead letters.

Every test makes its own run name and deletes what it created, also when it
fails; each one is bounded by :data:`TIMEOUT_S`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

import aio_pika
import aiormq
import pytest
from aio_pika.abc import AbstractChannel

from busim.loadtest.drivers.base import Delivery, Outgoing, RunNames
from busim.loadtest.drivers.rabbitmq import (
    ConsumptionLostError,
    RabbitMQConsumption,
    RabbitMQDriver,
    dead_letter_exchange,
)
from busim.scenario.schema import Scenario
from tests.conftest import ROOT, consumer, scenario
from tests.loadtest.runs import attached

TIMEOUT_S = 30.0


def run(body: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(body, TIMEOUT_S))


def rabbit_scenario(groups: tuple[str, ...] = ("worker",), **broker: Any) -> Scenario:
    return scenario(consumers=[consumer(name=group) for group in groups], broker={"preset": "rabbitmq", **broker})


def run_names() -> RunNames:
    return RunNames(f"busim-test-{uuid.uuid4().hex[:12]}")


@contextlib.asynccontextmanager
async def running(url: str, a_scenario: Scenario) -> AsyncIterator[RabbitMQDriver]:
    """A driver, connected and set up; torn down and closed however the body ends."""
    driver = RabbitMQDriver(url, a_scenario, run_names())
    try:
        await driver.connect()
        await driver.setup()
        yield driver
    finally:
        await driver.teardown()
        await driver.close()


async def passive(url: str, declare: Callable[[AbstractChannel], Awaitable[Any]]) -> Any | None:
    """What a passive ``declare`` returns, or None when the queue or exchange does not exist."""
    connection = await aio_pika.connect(url)
    try:
        return await declare(await connection.channel())
    except aiormq.exceptions.ChannelNotFoundEntity:
        return None
    finally:
        await connection.close()


async def exists(url: str, queue: str) -> bool:
    return await passive(url, lambda channel: channel.declare_queue(queue, passive=True)) is not None


async def waiting(url: str, queue: str) -> int:
    """How many messages ``queue`` holds, ready for delivery."""
    declared = await passive(url, lambda channel: channel.declare_queue(queue, passive=True))
    return declared.declaration_result.message_count


async def run_queues(url: str, names: RunNames, groups: tuple[str, ...]) -> list[str]:
    """The run's queues that still exist."""
    every = [names.queue(group) for group in groups] + [names.dead_letters(group) for group in groups]
    return [queue for queue in every if await exists(url, queue)]


async def run_exchanges(url: str, names: RunNames) -> list[str]:
    """The run's exchanges that still exist."""
    every = (names.prefix, dead_letter_exchange(names))
    return [
        exchange
        for exchange in every
        if await passive(url, lambda channel, exchange=exchange: channel.declare_exchange(exchange, passive=True))
        is not None
    ]


async def receive_all(consumption: RabbitMQConsumption, count: int, settle_s: float = 0.0) -> list[Delivery]:
    """Deliveries until ``count`` arrived, then any more within ``settle_s``."""
    deliveries: list[Delivery] = []
    while len(deliveries) < count:
        deliveries += await consumption.receive(free=1)
    if settle_s:
        await asyncio.sleep(settle_s)
        consumption.receive_wait_s = 0.1
        deliveries += await consumption.receive(free=1)
    return deliveries


async def nothing_more(consumption: RabbitMQConsumption) -> bool:
    """Whether nothing more arrives within a fifth of a second."""
    consumption.receive_wait_s = 0.2
    return await consumption.receive(free=1) == []


def queue_arguments_listed(prefix: str) -> dict[str, dict[str, Any]]:
    """Queue name -> its arguments, as ``rabbitmqctl`` lists them, for the queues named with ``prefix``."""
    if shutil.which("rabbitmqctl") is None:
        pytest.skip("rabbitmqctl is not on PATH; it lists the queues' arguments")
    listed = subprocess.run(
        ["rabbitmqctl", "-q", "list_queues", "name", "arguments", "--formatter", "json"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=True,
    )
    rows = json.loads(listed.stdout)
    # Each argument is listed as [key, AMQP type, value].
    return {
        row["name"]: {key: value for key, _, value in row["arguments"]}
        for row in rows
        if row["name"].startswith(prefix)
    }


@pytest.mark.parametrize(
    ("preset", "broker", "expected"),
    [
        ("rabbitmq", {}, {}),
        (
            "rabbitmq",
            {"capacity": 100, "overflow": "reject-publish"},
            {"x-max-length": 100, "x-overflow": "reject-publish"},
        ),
        ("rabbitmq-quorum", {}, {"x-queue-type": "quorum", "x-delivery-limit": 20}),
        (
            "rabbitmq-quorum",
            {"delivery_limit": "unlimited", "capacity": 7},
            {"x-queue-type": "quorum", "x-max-length": 7},
        ),
    ],
)
def test_setup_declares_each_group_queue_with_its_arguments_and_teardown_deletes_them(
    amqp_url, preset, broker, expected
):
    groups = ("orders", "audit")
    a_scenario = rabbit_scenario(groups, **broker, preset=preset)
    names = run_names()

    async def body() -> None:
        driver = RabbitMQDriver(amqp_url, a_scenario, names)
        await driver.connect()
        try:
            await driver.setup()
            listed = queue_arguments_listed(names.prefix)
            for group in groups:
                assert listed[names.queue(group)] == {
                    "x-dead-letter-exchange": dead_letter_exchange(names),
                    "x-dead-letter-routing-key": names.dead_letters(group),
                    **expected,
                }
                assert listed[names.dead_letters(group)] == {}
        finally:
            await driver.teardown()
            await driver.teardown()  # twice is no error
            await driver.close()
        assert await run_queues(amqp_url, names, groups) == []
        assert await run_exchanges(amqp_url, names) == []

    run(body())


def test_teardown_deletes_everything_when_the_body_raises_and_after_a_half_done_setup(amqp_url):
    groups = ("first", "second")
    names = run_names()

    async def body() -> None:
        # The second group's queue already exists with other arguments: setup fails halfway.
        connection = await aio_pika.connect(amqp_url)
        async with connection:
            channel = await connection.channel()
            await channel.declare_queue(names.queue("second"), durable=False)
        driver = RabbitMQDriver(amqp_url, rabbit_scenario(groups), names)
        await driver.connect()
        try:
            with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed):
                await driver.setup()
            assert await exists(amqp_url, names.queue("first"))
        finally:
            await driver.teardown()
            await driver.close()
        assert await run_queues(amqp_url, names, groups) == []
        assert await run_exchanges(amqp_url, names) == []

        a_scenario = rabbit_scenario(groups)
        with pytest.raises(RuntimeError, match="the body failed"):
            async with running(amqp_url, a_scenario) as driver:
                names_raised = driver.names
                raise RuntimeError("the body failed")
        assert await run_queues(amqp_url, names_raised, groups) == []
        assert await run_exchanges(amqp_url, names_raised) == []

    run(body())


def test_each_group_receives_every_copy_of_its_events_exactly_once(amqp_url):
    copies = 500
    groups = ("orders", "audit")

    async def body() -> None:
        async with running(amqp_url, rabbit_scenario(groups)) as driver:
            accepted = await driver.publish([Outgoing(copy=copy, message=copy, event="Job") for copy in range(copies)])
            assert accepted == [True] * copies
            for group in groups:
                deliveries: list[Delivery] = []
                async with attached(driver, group) as consumption:
                    while len(deliveries) < copies:  # acking as they come: the prefetch holds fewer
                        received = await consumption.receive(free=1)
                        for delivery in received:
                            await consumption.ack(delivery)
                        deliveries += received
                    assert await nothing_more(consumption)
                assert sorted(delivery.copy for delivery in deliveries) == list(range(copies))
                assert {(delivery.attempt, delivery.redelivered) for delivery in deliveries} == {(0, False)}
                assert await waiting(amqp_url, driver.names.queue(group)) == 0
            assert await driver.fates() == []

    run(body())


def test_prefetch_bounds_the_unacked_deliveries_and_closing_hands_them_to_another_instance(amqp_url):
    async def body() -> None:
        async with running(amqp_url, rabbit_scenario(prefetch=5)) as driver:
            await driver.publish([Outgoing(copy=copy, message=copy, event="Job") for copy in range(20)])
            async with attached(driver, "worker", 0) as holder:
                held = await receive_all(holder, 5, settle_s=0.5)
            assert len(held) == 5
            assert not any(delivery.redelivered for delivery in held)
            async with attached(driver, "worker", 1) as taker:
                taken = await receive_all(taker, 5, settle_s=0.5)
            assert [delivery.copy for delivery in taken] == [delivery.copy for delivery in held]
            assert all(delivery.redelivered for delivery in taken)

    run(body())


HOLDER = """
import asyncio, sys
from busim.loadtest.drivers.rabbitmq import RabbitMQConsumption

async def hold():
    consumption = RabbitMQConsumption(
        sys.argv[1], queue=sys.argv[2], prefetch_count=3, acks=True, counts_deliveries=False, name="holder"
    )
    await consumption.start()
    held = []
    while len(held) < 3:
        held += await consumption.receive(free=1)
    print(*(delivery.copy for delivery in held), flush=True)
    await asyncio.sleep(60)

asyncio.run(hold())
"""


def test_an_instance_killed_holding_deliveries_hands_them_back(amqp_url):
    async def body() -> None:
        async with running(amqp_url, rabbit_scenario(prefetch=3)) as driver:
            await driver.publish([Outgoing(copy=copy, message=copy, event="Job") for copy in range(10)])
            holder = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                HOLDER,
                amqp_url,
                driver.names.queue("worker"),
                stdout=asyncio.subprocess.PIPE,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
            try:
                held = [int(copy) for copy in (await asyncio.wait_for(holder.stdout.readline(), 15)).split()]
            finally:
                holder.kill()  # SIGKILL: no close, no cancel
                await holder.wait()
            assert held == [0, 1, 2]
            async with attached(driver, "worker") as taker:
                taken = await receive_all(taker, 3)
            assert [(delivery.copy, delivery.redelivered) for delivery in taken] == [(0, True), (1, True), (2, True)]

    run(body())


@pytest.mark.parametrize("loss", ["channel closed by the broker", "queue deleted"])
def test_receive_raises_once_the_broker_took_the_deliveries_back(amqp_url, loss):
    async def body() -> None:
        async with running(amqp_url, rabbit_scenario(prefetch=2)) as driver:
            await driver.publish([Outgoing(copy=copy, message=copy, event="Job") for copy in range(5)])
            async with attached(driver, "worker") as consumption:
                await receive_all(consumption, 2)
                if loss == "queue deleted":
                    await driver.teardown()
                    expected: type[Exception] = ConsumptionLostError
                else:  # an ack the broker does not know closes the channel
                    await (await consumption.channel.get_underlay_channel()).basic_ack(delivery_tag=999)
                    expected = aiormq.exceptions.ChannelPreconditionFailed
                for _ in range(2):  # and it keeps raising
                    with pytest.raises(expected):
                        await consumption.receive(free=1)

    run(body())


def test_a_quorum_queue_dead_letters_a_copy_returned_more_than_its_delivery_limit(amqp_url):
    a_scenario = rabbit_scenario(preset="rabbitmq-quorum", delivery_limit=2)

    async def body() -> None:
        async with running(amqp_url, a_scenario) as driver:
            assert await driver.publish([Outgoing(copy=7, message=7, event="Job")]) == [True]
            attempts = []
            async with attached(driver, "worker") as consumption:
                for _ in range(3):
                    (delivery,) = await receive_all(consumption, 1)
                    attempts.append((delivery.attempt, delivery.redelivered))
                    message = delivery.token  # returned: counts as a delivery
                    await message.channel.basic_nack(message.delivery.delivery_tag, requeue=True)
                assert await nothing_more(consumption)
            assert attempts == [(1, False), (2, True), (3, True)]
            (fate,) = await driver.fates()
            assert (fate.group, fate.copy, fate.kind, fate.reason) == ("worker", 7, "dead_letter", "delivery_limit")
            assert -2.0 <= fate.at_s <= driver.clock() + 1.0  # the broker stamps the second
            assert await driver.fates() == []  # read once

    run(body())


def test_drop_head_dead_letters_the_oldest_copies_beyond_capacity(amqp_url):
    async def body() -> None:
        async with running(amqp_url, rabbit_scenario(capacity=3)) as driver:
            assert (
                await driver.publish([Outgoing(copy=copy, message=copy, event="Job") for copy in range(5)])
                == [True] * 5
            )
            assert await waiting(amqp_url, driver.names.queue("worker")) == 3
            fates = await driver.fates()
            assert sorted((fate.copy, fate.kind, fate.reason) for fate in fates) == [
                (0, "dropped", "maxlen"),
                (1, "dropped", "maxlen"),
            ]
            assert all(math.isfinite(fate.at_s) for fate in fates)

    run(body())


def test_reject_publish_nacks_the_copies_beyond_capacity(amqp_url):
    async def body() -> None:
        async with running(amqp_url, rabbit_scenario(capacity=3, overflow="reject-publish")) as driver:
            assert (
                await driver.publish([Outgoing(copy=copy, message=copy, event="Job") for copy in range(5)])
                == [True] * 3 + [False] * 2
            )
            assert await waiting(amqp_url, driver.names.queue("worker")) == 3
            assert await driver.fates() == []

    run(body())


def test_at_most_once_consumes_without_acks(amqp_url):
    async def body() -> None:
        async with running(amqp_url, rabbit_scenario(delivery="at-most-once", prefetch="unlimited")) as driver:
            await driver.publish([Outgoing(copy=copy, message=copy, event="Job") for copy in range(10)])
            async with attached(driver, "worker") as consumption:
                deliveries = await receive_all(consumption, 10)
                await consumption.ack(deliveries[0])  # nothing to acknowledge
            assert await waiting(amqp_url, driver.names.queue("worker")) == 0  # closing returned nothing

    run(body())


def test_refusals_name_the_keys_the_server_cannot_take():
    assert RabbitMQDriver.refusals(rabbit_scenario()) == []
    assert RabbitMQDriver.refusals(rabbit_scenario(preset="rabbitmq-quorum", consumer_timeout="30m")) == []
    (timeout,) = RabbitMQDriver.refusals(rabbit_scenario(consumer_timeout="10m"))
    assert timeout.path == "broker.consumer_timeout"
    assert "rabbitmq.conf" in timeout.reason
    (prefetch,) = RabbitMQDriver.refusals(rabbit_scenario(prefetch=100_000))
    assert prefetch.path == "broker.prefetch"
    (no_acks,) = RabbitMQDriver.refusals(rabbit_scenario(delivery="at-most-once"))
    assert no_acks.path == "broker.prefetch"
    assert RabbitMQDriver.refusals(rabbit_scenario(delivery="at-most-once", prefetch="unlimited")) == []
