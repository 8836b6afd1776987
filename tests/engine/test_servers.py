"""The fast path for undisturbed groups (busim.engine.servers) against the general engine.

Where a group qualifies, the run computes it as a queue of servers; forced
onto the general engine, the same seed must give the very same deliveries:
every column of every delivery, bit for bit, and the same copies unserved.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import busim
import busim.engine.simulation as simulation
from busim.engine.clock import Clock
from busim.engine.outages import Outages
from busim.engine.publishing import publish
from busim.engine.randomness import RandomStreams
from busim.engine.records import RunRecord
from busim.engine.rules import DeliveryRules
from busim.engine.sampling import BLOCK_SIZE, duration_sampler, first_durations
from busim.engine.servers import ServedGroup
from busim.scenario.schema import ExponentialTime, NormalTime, Scenario
from tests.conftest import SCENARIOS, consumer, scenario

FLASH_SALE = busim.load(SCENARIOS / "flash-sale.yaml")
COLUMNS = ("message", "attempt", "cause", "instance", "arrival_s", "receive_s", "take_s", "done_s", "outcome")


def flow(
    broker: dict[str, Any] | None = None, messages: int = 4000, drain_timeout: float = 600, **fields: Any
) -> Scenario:
    """Poisson jobs at 800/s to one consumer (exponential 1 ms processing unless told otherwise)."""
    return scenario(
        [consumer(**({"processing_time": {"exponential": {"mean": "1ms"}}} | fields))],
        duration=1.05 * messages / 800,
        drain_timeout=drain_timeout,
        publishers=[{"name": "source", "event": "Job", "rate": 800, "count": messages}],
        broker={"latency": {"exponential": {"mean": "2ms"}}, **(broker or {})},
    )


def general(target: Scenario, seed: int) -> RunRecord:
    """The run of ``target`` with every group on the general engine."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(simulation, "fifo_applies", lambda *_: False)
        return simulation.run(target, seed)


def served(target: Scenario) -> bool:
    """Whether the run computes ``target``'s one group as a queue of servers."""
    streams = RandomStreams.from_seed(target.seed or 0)
    outages = Outages(target.broker.outages)
    messages = publish(target, streams, outages, DeliveryRules.of(target.broker).dedup_window_s)
    group, _ = simulation._build_group(Clock(), target, target.consumers[0], messages, streams, outages)
    return isinstance(group, ServedGroup)


def mean(duration: str) -> dict[str, Any]:
    return {"exponential": {"mean": duration}}


SERVED = {
    "one server": flow(),
    "one server at overload": flow(processing_time=mean("1.5ms")),
    "three instances": flow(instances=3, processing_time=mean("3ms")),
    "two instances of three workers": flow(
        instances=2, concurrency=3, processing_time={"uniform": {"low": "1ms", "high": "9ms"}}
    ),
    "prefetch 250, two workers": flow({"preset": "rabbitmq"}, concurrency=2, processing_time=mean("2.4ms")),
    "prefetch 250, constant processing": flow({"preset": "rabbitmq"}, processing_time="1.2ms"),
    "prefetch 1 of four workers, two instances": flow(
        {"preset": "rabbitmq", "prefetch": 1}, instances=2, concurrency=4
    ),
    "instances with prefetch buffers": flow({"preset": "rabbitmq"}, instances=3, processing_time=mean("3ms")),
    "instances with prefetch buffers, two workers each": flow(
        {"preset": "rabbitmq", "prefetch": 5}, instances=2, concurrency=2, processing_time=mean("4ms")
    ),
    "instances sharing max_ack_pending": flow({"preset": "nats-jetstream"}, instances=4, processing_time=mean("4.5ms")),
    "unordered, broker duplicates": flow({"preset": "sqs-standard", "duplication": 0.05}, instances=2),
    "redis streams": flow({"preset": "redis-streams"}, instances=2, concurrency=2, processing_time=mean("4ms")),
    "cut at the horizon": flow({"preset": "rabbitmq"}, drain_timeout=1, concurrency=2, processing_time=mean("5ms")),
    "cut at the horizon, three instances": flow(drain_timeout=0.5, instances=3, processing_time=mean("5ms")),
    "instances with prefetch buffers, cut at the horizon": flow(
        {"preset": "rabbitmq"}, drain_timeout=1, instances=2, processing_time=mean("4ms")
    ),
    "constant arrivals and processing": scenario([consumer(processing_time="100ms")], broker={"latency": "0s"}),
    "effects with a floor, three instances": flow(
        {"preset": "rabbitmq", "duplication": 0.02},
        instances=3,
        processing_time=mean("3ms"),
        state={"stock": {"initial": 300}},
        effects=[{"counter": "stock", "key": "item", "add": -1, "floor": 0}],
    ),
    "a dedup store with a time to live, duplicates to two instances": flow(
        {"preset": "sqs-standard", "duplication": 0.1, "latency": mean("20ms")},
        instances=2,
        idempotency="dedup",
        dedup={"ttl": "10ms", "durable": False},
        state={"total": {"initial": 0}},
        effects=[{"counter": "total", "key": "item", "add": 1}],
    ),
    "duplicates done at the same time, effects with a floor": scenario(
        [
            consumer(
                processing_time="50ms",
                concurrency=2,
                state={"stock": {"initial": 25}},
                effects=[{"counter": "stock", "key": "item", "add": -1, "floor": 0}],
            )
        ],
        broker={"latency": "0s", "duplication": 0.5},
    ),
    "the flash sale without crashes or outage": FLASH_SALE.model_copy(
        update={
            "consumers": [FLASH_SALE.consumers[0].model_copy(update={"crash": None})],
            "broker": FLASH_SALE.broker.model_copy(update={"outages": []}),
        }
    ),
}


@pytest.mark.parametrize("name", SERVED)
@pytest.mark.parametrize("seed", [0, 7])
def test_served_groups_make_the_very_deliveries_of_the_general_engine(name: str, seed: int) -> None:
    target = SERVED[name]
    assert served(target.model_copy(update={"seed": seed}))
    fast, slow = simulation.run(target, seed), general(target, seed)
    fast_group, slow_group = fast.groups[0], slow.groups[0]
    for column in COLUMNS:
        np.testing.assert_array_equal(
            getattr(fast_group.deliveries, column), getattr(slow_group.deliveries, column), column
        )
    assert np.array_equal(fast_group.unserved_arrival_s, slow_group.unserved_arrival_s)
    assert sorted(fast_group.unserved_message) == sorted(slow_group.unserved_message)
    assert (fast.drained, fast.sim_time_s) == (slow.drained, slow.sim_time_s)
    for counter, state in slow_group.counters.items():
        assert np.array_equal(fast_group.counters[counter].values, state.values), counter
    assert np.array_equal(fast_group.dedup_miss_delivery, slow_group.dedup_miss_delivery)
    assert np.array_equal(fast_group.dedup_miss_reason, slow_group.dedup_miss_reason)


def test_a_cut_run_leaves_the_same_work_undone() -> None:
    fast = simulation.run(SERVED["cut at the horizon"], 1)
    deliveries = fast.groups[0].deliveries
    assert not fast.drained
    held = np.isnan(deliveries.done_s)
    assert held.sum() == 250  # an instance's prefetch of 250 is full at the horizon...
    assert np.count_nonzero(held & ~np.isnan(deliveries.take_s)) == 2  # ...two in processing, 248 waiting
    assert deliveries.message.size + fast.groups[0].unserved_message.size == 4000


DISTURBED = {
    "crashes": flow(crash={"probability": 0.01, "restart_after": "1s"}),
    "effects read before they are written": flow(
        state={"total": {"initial": 0}},
        effects=[{"counter": "total", "key": "item", "add": 1}],
        effects_isolation="read-modify-write",
    ),
    "optimistic effects": flow(
        state={"total": {"initial": 0}},
        effects=[{"counter": "total", "key": "item", "add": 1}],
        effects_isolation="optimistic",
    ),
    "an outage": flow({"outages": [{"at": "1s", "duration": "1s"}]}),
    "a queue length limit": flow({"preset": "rabbitmq", "capacity": 100}),
    "a throughput limit": flow({"throughput": "500/s"}),
    "loss in transit": flow({"loss": 0.01}),
    "partitions": flow({"preset": "kafka"}),
    "message groups": flow({"preset": "sqs-fifo", "throughput": "unlimited"}),
    "batched reads": flow({"preset": "sqs-standard", "batch_size": 10}),
}


@pytest.mark.parametrize("name", DISTURBED)
def test_groups_with_anything_that_disturbs_the_queue_run_on_the_general_engine(name: str) -> None:
    assert not served(DISTURBED[name])


def test_a_copy_arriving_just_as_a_delivery_is_done_leaves_instances_to_the_general_engine() -> None:
    """Jobs every 100 ms, each processed in 100 ms by one of two instances: which instance receives the next
    job depends on the order of simultaneous events, which only the general engine knows."""
    constant = scenario([consumer(processing_time="100ms", instances=2)], broker={"latency": "0s"})
    assert not served(constant)
    one_instance = constant.consumers[0].model_copy(update={"instances": 1})
    assert served(constant.model_copy(update={"consumers": [one_instance]}))


def test_a_group_whose_deliveries_outlive_their_ack_timer_runs_on_the_general_engine() -> None:
    """SQS with a 3 ms visibility timeout, two instances of 1 ms mean processing: one delivery in twenty
    outlives it, and the other instance, mostly idle, receives the copy that comes back."""
    target = flow({"preset": "sqs-standard", "visibility_timeout": "3ms"}, instances=2)
    assert not served(target)
    record = simulation.run(target, 1)
    assert (record.groups[0].deliveries.attempt > 1).any()
    assert np.array_equal(
        record.groups[0].deliveries.done_s, general(target, 1).groups[0].deliveries.done_s, equal_nan=True
    )


@pytest.mark.parametrize(
    "distribution",
    [ExponentialTime(kind="exponential", mean=1.0), NormalTime(kind="normal", mean=0.5, sd=1.0)],
    ids=["exponential", "normal truncated at 0"],
)
def test_durations_drawn_at_once_are_those_a_sampler_hands_out_one_at_a_time(distribution) -> None:
    one_at_a_time = duration_sampler(distribution, np.random.default_rng(3))
    at_once = first_durations(distribution, np.random.default_rng(3), 3 * BLOCK_SIZE + 5)
    assert at_once.tolist() == [one_at_a_time() for _ in range(3 * BLOCK_SIZE + 5)]
