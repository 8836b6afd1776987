"""Real runs against Redis Streams: known answers from the broker's own semantics."""

from __future__ import annotations

import numpy as np

import busim
from busim.engine.records import DeliveryCause
from tests.loadtest.runs import left_behind, real_scenario


def test_entries_a_crashed_consumer_held_are_claimed_after_claim_min_idle(redis_url):
    consumer = {
        "instances": 2,
        "crash": {"after_messages": [20], "instance": 0, "restart_after": "0.5s"},
    }
    broker = {"preset": "redis-streams", "batch_size": 5, "claim_interval": "0.25s", "claim_min_idle": "1s"}
    scenario = real_scenario("redis-streams", consumer, broker=broker)
    result = busim.load_test(scenario, redis_url)
    assert left_behind(result.real.run_id, scenario) == []
    record = result.record
    assert record is not None
    group = record.groups[0]
    deliveries = group.deliveries
    assert group.crash_s.size == 1
    redelivered = np.flatnonzero(deliveries.attempt > 1)
    # What the crashed instance held: the 20th processed, not acked, and what it had read with it.
    assert 1 <= redelivered.size <= 5
    assert DeliveryCause.CRASH_BEFORE_ACK in deliveries.cause[redelivered]
    # Claimed only once idle for claim_min_idle since the crashed instance read them (not since its crash).
    for row in redelivered.tolist():
        earlier = np.flatnonzero((deliveries.message == deliveries.message[row]) & (deliveries.attempt == 1))
        assert deliveries.receive_s[row] - deliveries.receive_s[earlier[0]] >= 1.0 - 0.01
    inventory = result.summary.consumers["inventory"]
    assert inventory.duplicate_effects == 1  # the 20th, applied again after the claim
    assert inventory.stuck_pending == 0 and inventory.lost == 0


def test_without_a_claimer_what_the_crashed_consumer_held_stays_pending(redis_url):
    consumer = {"instances": 2, "crash": {"after_messages": [20], "instance": 0, "restart_after": "0.5s"}}
    broker = {"preset": "redis-streams", "batch_size": 5}
    scenario = real_scenario("redis-streams", consumer, broker=broker, drain_timeout=3)
    result = busim.load_test(scenario, redis_url)
    assert left_behind(result.real.run_id, scenario) == []
    inventory = result.summary.consumers["inventory"]
    assert 1 <= inventory.stuck_pending <= 5
    assert inventory.redelivered == 0
    assert inventory.stuck_pending_unprocessed == inventory.stuck_pending - 1  # the 20th was processed


def test_concurrent_read_modify_write_workers_lose_updates_and_the_run_counts_each(redis_url):
    # Four workers on one key, each reading when it starts and writing read + 1 when it ends, 30 ms later: with
    # an order every 10 ms, about three are at work at any moment.
    consumer = {
        "instances": 1,
        "concurrency": 4,
        "processing_time": "30ms",
        "effects_isolation": "read-modify-write",
        "state": {"stock": {"initial": 0}},
        "effects": [{"counter": "stock", "key": "productId", "add": 1}],
    }
    events = {"OrderPlaced": {"fields": {"productId": {"constant": 1}}}}
    scenario = real_scenario("redis-streams", consumer, events=events)
    result = busim.load_test(scenario, redis_url)
    assert left_behind(result.real.run_id, scenario) == []
    inventory = result.summary.consumers["inventory"]
    stock = inventory.state["stock"]
    assert inventory.processed == 200 and stock.expected_total == 200
    # Writes that landed on a value changed since their read, each counted once, and the changes they lost.
    assert 0 < result.record.groups[0].lost_updates <= inventory.processed
    assert stock.abs_drift == 200 - stock.actual_total > 0
    assert inventory.state["stock"].keys_diverged == 1
