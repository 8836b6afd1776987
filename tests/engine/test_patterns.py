"""The patterns of consistent services, each with an answer known in advance.

Isolation of concurrent writers, idempotency that can fail, the
transactional outbox and event-sourced recovery: each test sets up the
situation the pattern is for and checks the exact outcome.
"""

from __future__ import annotations

import numpy as np
import pytest

import busim
from tests.conftest import consumer, scenario

ORDERS = 200
STOCK = 100


def hot_key_sale(isolation: str, concurrency: int) -> busim.Result:
    """200 orders of one product, 1 ms apart; each takes exactly 10 ms to process; 100 in stock."""
    return busim.simulate(
        scenario(
            events={"Order": {"fields": {"sku": {"constant": 1}}}},
            publishers=[{"name": "shop", "event": "Order", "arrivals": "uniform", "rate": "1000/s", "count": ORDERS}],
            consumers=[
                {
                    "name": "inventory",
                    "subscribes": ["Order"],
                    "concurrency": concurrency,
                    "processing_time": "10ms",
                    "effects_isolation": isolation,
                    "state": {"stock": {"initial": STOCK}},
                    "effects": [{"counter": "stock", "key": "sku", "add": -1, "floor": 0}],
                }
            ],
        )
    )


@pytest.mark.parametrize("isolation", ["atomic", "read-modify-write", "optimistic"])
def test_one_worker_sells_exactly_the_stock_whatever_the_isolation(isolation):
    inventory = hot_key_sale(isolation, 1).summary.consumers["inventory"]
    assert (inventory.rejected, inventory.oversold, inventory.lost_updates, inventory.optimistic_retries) == (
        ORDERS - STOCK,
        0,
        0,
        0,
    )


def test_read_modify_write_with_four_workers_on_one_key_oversells():
    # The four workers run in lockstep rounds: in each, all four read the value the previous round
    # left, accept, and write that value minus one. So every order is accepted (200 units sold from
    # 100), the stock only falls by one per round (50 rounds: 100 -> 50), and every write but the
    # very first lands on a value changed since its read.
    result = hot_key_sale("read-modify-write", 4)
    inventory = result.summary.consumers["inventory"]
    stock = result.record.groups[0].counters["stock"]
    assert inventory.rejected == 0
    assert stock.values.tolist() == [STOCK - ORDERS // 4]
    assert stock.balance.tolist() == [STOCK - ORDERS]
    assert inventory.oversold == ORDERS - STOCK
    assert inventory.lost_updates == ORDERS - 1
    assert inventory.state["stock"].abs_drift == ORDERS // 4
    assert "inventory: 100 units oversold past a floor" in result.summary.violations


def test_optimistic_writes_with_four_workers_never_oversell_and_pay_in_retries_and_latency():
    # The worker that commits first takes the next order at once and commits first again, so the
    # other three conflict in every one of the 100 rounds that sell stock (3 x 100 retries); once
    # the stock is gone, refusals write nothing and conflict with nobody.
    optimistic = hot_key_sale("optimistic", 4).summary.consumers["inventory"]
    atomic = hot_key_sale("atomic", 4).summary.consumers["inventory"]
    assert (optimistic.rejected, optimistic.oversold, optimistic.lost_updates) == (ORDERS - STOCK, 0, 0)
    assert optimistic.optimistic_retries == 3 * STOCK
    assert optimistic.state["stock"].abs_drift == 0
    assert atomic.optimistic_retries == 0
    assert optimistic.latency_s.end_to_end.p99 > 3 * atomic.latency_s.end_to_end.p99


def dedup_under_crashes(dedup: dict, instances: int = 1, **broker) -> busim.Result:
    """100 jobs a second for 60 s; 2 % of processings crash before the ack, which comes back after 2 s."""
    return busim.simulate(
        scenario(
            duration=60,
            publishers=[{"name": "source", "event": "Job", "arrivals": "uniform", "rate": "100/s"}],
            broker={"ack_timeout": "2s", **broker},
            consumers=[
                consumer(
                    instances=instances,
                    crash={"probability": 0.02, "restart_after": 0},
                    idempotency="dedup",
                    dedup=dedup,
                    state={"done": {}},
                    effects=[{"counter": "done", "key": "item", "add": 1}],
                )
            ],
        )
    )


def test_a_dedup_store_smaller_than_the_redelivery_distance_lets_duplicates_through():
    # A redelivery comes 2 s after the crash: 200 newer ids have been recorded by then (fewer near
    # the end of publishing). 250 ids keep it; 50 evict it unless the crash is in the last 0.5 s.
    roomy = dedup_under_crashes({"capacity": 250}).summary.consumers["worker"]
    result = dedup_under_crashes({"capacity": 50})
    small = result.summary.consumers["worker"]
    assert roomy.crashes == small.crashes == 128
    assert roomy.duplicate_effects == 0
    evicting = int(np.count_nonzero(result.record.groups[0].crash_s < 60 - 50 / 100))
    assert small.duplicate_effects == evicting == 126
    assert small.by_reason["duplicate_effects"] == {"crash_before_ack": evicting}
    assert small.by_reason["dedup_missed"] == {"evicted": evicting}


def test_an_in_memory_store_forgets_what_a_crashed_instance_processed():
    durable = dedup_under_crashes({}).summary.consumers["worker"]
    in_memory = dedup_under_crashes({"durable": False}).summary.consumers["worker"]
    assert durable.duplicate_effects == 0
    assert in_memory.duplicate_effects == in_memory.crashes == 128
    assert in_memory.by_reason["dedup_missed"] == {"store_lost": 128}


def test_in_memory_stores_are_not_shared_between_instances():
    # Every message is delivered twice; round robin sends the two copies to the two instances.
    shared = dedup_under_crashes({}, instances=2, duplication=1.0).summary.consumers["worker"]
    apart = busim.simulate(
        scenario(
            broker={"duplication": 1.0},
            consumers=[
                consumer(
                    instances=2,
                    idempotency="dedup",
                    dedup={"durable": False},
                    state={"done": {}},
                    effects=[{"counter": "done", "key": "item", "add": 1}],
                )
            ],
        )
    ).summary.consumers["worker"]
    assert shared.by_reason["dedup_missed"] == {}
    assert apart.duplicate_effects == 100
    assert apart.by_reason["dedup_missed"] == {"other_instance": 100}


def test_an_id_recorded_after_the_effects_is_lost_with_a_crash_between_them():
    separate = dedup_under_crashes({"atomic_with_effects": False}).summary.consumers["worker"]
    assert separate.duplicate_effects == separate.crashes == 128
    assert separate.by_reason["dedup_missed"] == {"not_recorded": 128}


def outbox_run(outbox: bool, idempotency: str = "none") -> busim.Result:
    """1,000 orders; the order service crashes around 10 % of its publishes."""
    return busim.simulate(
        scenario(
            duration=100,
            publishers=[
                {
                    "name": "source",
                    "event": "Job",
                    "arrivals": "uniform",
                    "rate": 10,
                    "crash": {"probability": 0.1, "restart_after": "3s"},
                    "outbox": outbox,
                }
            ],
            consumers=[
                consumer(
                    idempotency=idempotency, state={"done": {}}, effects=[{"counter": "done", "key": "item", "add": 1}]
                )
            ],
        )
    )


def test_without_an_outbox_a_publisher_crash_loses_the_event_for_good():
    result = outbox_run(outbox=False)
    source = result.summary.publishers["source"]
    worker = result.summary.consumers["worker"]
    assert source.published == 1000
    assert source.crashed == source.lost_to_crash == 100
    assert source.relayed_twice == 0
    assert worker.lost == 100
    assert worker.by_reason["lost"] == {"publisher_crash": 100}
    assert worker.state["done"].actual_total == worker.state["done"].expected_total - 100


def test_with_an_outbox_every_event_arrives_late_or_twice_and_dedup_absorbs_the_twice():
    # The same crashes as without an outbox (the same stream): none is lost. A crash after the
    # relay's send makes it send again after the restart; one before it, only later.
    result = outbox_run(outbox=True)
    source = result.summary.publishers["source"]
    naive = result.summary.consumers["worker"]
    assert source.crashed == 100
    assert source.lost_to_crash == 0
    assert naive.lost == 0
    assert naive.duplicate_effects == source.relayed_twice == 52
    assert naive.by_reason["duplicate_effects"] == {"outbox_relay": 52}
    idempotent = outbox_run(outbox=True, idempotency="dedup").summary.consumers["worker"]
    assert (idempotent.lost, idempotent.duplicate_effects, idempotent.state["done"].abs_drift) == (0, 0, 0)
    # The other 48 wait for the restart.
    assert naive.latency_s.end_to_end.max == pytest.approx(3)
    assert source.delayed_by_outage == 0


def recovering(snapshot_every: int) -> busim.Result:
    """An event-sourced consumer that crashes after 1 % of processings, restarts in 1 s and replays 100 a second."""
    return busim.simulate(
        scenario(
            duration=100,
            consumers=[
                consumer(
                    crash={"probability": 0.01, "restart_after": "1s"},
                    snapshot_every=snapshot_every,
                    replay_rate="100/s",
                    state={"done": {}},
                    effects=[{"counter": "done", "key": "item", "add": 1}],
                )
            ],
        )
    )


@pytest.mark.parametrize("snapshot_every", [10, 100, 1000])
def test_recovery_replays_the_events_since_the_last_snapshot(snapshot_every):
    result = recovering(snapshot_every)
    worker = result.summary.consumers["worker"]
    deliveries = result.record.groups[0].deliveries
    processed = np.flatnonzero(np.isin(deliveries.outcome, (1, 2)))  # applied or rejected: replayable events
    processed = processed[np.argsort(deliveries.done_s[processed], kind="stable")]
    crashed_at = np.flatnonzero(deliveries.crashed[processed])  # each crash's position among the events
    expected = (crashed_at + 1) % snapshot_every
    assert worker.crashes == crashed_at.size > 5
    assert worker.replayed_events == tuple(expected.tolist())
    assert worker.recovery_times_s == pytest.approx(tuple(1 + expected / 100))


def test_recovery_grows_with_the_snapshot_interval():
    means = [recovering(every).summary.consumers["worker"].recovery_s.mean for every in (10, 100, 1000)]
    assert means[0] < means[1] < means[2]
