"""Scenarios for real runs: small, seconds long, named so that what a run leaves behind can be looked for."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator
from typing import Any

from busim.loadtest.drivers.base import Consumption, Driver
from busim.scenario.schema import Scenario


@contextlib.asynccontextmanager
async def attached(driver: Driver, group: str, instance: int = 0) -> AsyncIterator[Consumption]:
    """An instance's consumption, started; closed (handing back what it did not ack) however the body ends."""
    consumption = driver.consumption(group, instance)
    await consumption.start()
    try:
        yield consumption
    finally:
        await consumption.close()


def real_scenario(preset: str, consumer: dict[str, Any] | None = None, **changes: Any) -> Scenario:
    """Orders published at 100/s for 2 s (seed 3), one inventory consumer taking stock with a floor."""
    base: dict[str, Any] = {
        "name": f"test-{secrets.token_hex(3)}",
        "seed": 3,
        "duration": 2,
        "drain_timeout": 20,
        "events": {
            "OrderPlaced": {
                "key": "productId",
                "fields": {
                    "productId": {"uniform_int": {"low": 1, "high": 4}},
                    "quantity": {"uniform_int": {"low": 1, "high": 3}},
                },
            }
        },
        "publishers": [{"name": "orders", "event": "OrderPlaced", "arrivals": "uniform", "rate": 100}],
        "broker": {"preset": preset},
        "consumers": [
            {
                "name": "inventory",
                "subscribes": ["OrderPlaced"],
                "instances": 2,
                "processing_time": "1ms",
                "state": {"stock": {"initial": 10_000}},
                "effects": [{"counter": "stock", "key": "productId", "add": "-quantity", "floor": 0}],
                **(consumer or {}),
            }
        ],
    }
    return Scenario.model_validate(base | changes)


def left_behind(run_id: str, scenario: Scenario) -> list[str]:
    """Whatever a real run named ``run_id`` left on the local services: Redis keys, RabbitMQ queues and
    exchanges, JetStream streams, PostgreSQL tables. Empty once the run cleaned up."""
    import asyncio
    import subprocess

    import nats
    import psycopg
    import redis

    from busim.loadtest.drivers.nats import resource_name
    from busim.loadtest.stores.postgres import table_names

    found: list[str] = []
    client = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    try:
        found += [key.decode() for key in client.scan_iter(match=f"{run_id}*")]
    finally:
        client.close()
    for what in ("queues", "exchanges"):
        listed = subprocess.run(
            ["rabbitmqctl", "-q", f"list_{what}", "name"], capture_output=True, text=True, timeout=30, check=True
        )
        found += [name for name in listed.stdout.split() if name.startswith(run_id)]

    async def streams() -> list[str]:
        connection = await nats.connect("nats://127.0.0.1:4222")
        try:
            names = await connection.jetstream().streams_info()
            return [info.config.name for info in names if info.config.name.startswith(resource_name(run_id))]
        finally:
            await connection.close()

    found += asyncio.run(streams())
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres") as connection:
        for consumer in scenario.consumers:
            names = table_names(run_id, consumer.name)
            for table in (names.state, names.dedup):
                if connection.execute("select to_regclass(%s)", (table,)).fetchone()[0] is not None:
                    found.append(table)
    return found
