"""Time the NATS JetStream driver's publishing against the local server (127.0.0.1:4222).

Publishes ``--messages`` copies in batches of ``--batch`` with
:meth:`NatsDriver.publish`, as the load generator does, each batch awaited
before the next, and reports copies confirmed per second, best of
``--repeat``. ``--groups`` consumer groups subscribe to the event, so each
copy goes to that many streams; ``--dedup`` sets a dedup window, so each
publish carries a ``Nats-Msg-Id`` header. The run's streams are deleted
afterwards.

    python benchmarks/nats_publish.py [--messages 50000] [--batch 500] [--groups 1] [--dedup] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import time

from busim.loadtest.drivers.base import Outgoing, RunNames
from busim.loadtest.drivers.nats import NatsDriver
from busim.scenario.schema import Scenario

URL = "nats://127.0.0.1:4222"


def scenario(groups: int, dedup: bool) -> Scenario:
    return Scenario.model_validate(
        {
            "name": "nats-publish-benchmark",
            "duration": 60.0,
            "events": {"Job": {}},
            "publishers": [{"name": "source", "event": "Job", "rate": 1000.0}],
            "broker": {"preset": "nats-jetstream", "dedup_window": "2m" if dedup else "0s"},
            "consumers": [{"name": f"group{index}", "subscribes": ["Job"]} for index in range(groups)],
        }
    )


async def publish_rate_per_s(messages: int, batch_size: int, groups: int, dedup: bool) -> float:
    """Copies confirmed per second over one run of its own."""
    names = RunNames(f"busim-nats-publish-benchmark-{secrets.token_hex(4)}")
    driver = NatsDriver(URL, scenario(groups, dedup), names)
    await driver.connect()
    try:
        await driver.setup()
        batches = [
            [Outgoing(copy=copy, event="Job", message=copy) for copy in range(start, min(start + batch_size, messages))]
            for start in range(0, messages, batch_size)
        ]
        start_s = time.perf_counter()
        for batch in batches:
            accepted = await driver.publish(batch)
            if not all(accepted):
                raise RuntimeError(f"the broker refused {accepted.count(False)} copies")
        return messages / (time.perf_counter() - start_s)
    finally:
        await driver.teardown()
        await driver.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--groups", type=int, default=1)
    parser.add_argument("--dedup", action="store_true")
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args()
    rates = [
        asyncio.run(publish_rate_per_s(options.messages, options.batch, options.groups, options.dedup))
        for _ in range(options.repeat)
    ]
    print(
        f"{options.messages:,} copies in batches of {options.batch}, {options.groups} group(s), "
        f"dedup {'on' if options.dedup else 'off'}: {max(rates):,.0f} copies/s (best of {options.repeat})"
    )


if __name__ == "__main__":
    main()
