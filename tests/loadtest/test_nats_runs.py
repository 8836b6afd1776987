"""Real runs against NATS JetStream: AckWait redeliveries and MaxDeliver, as the broker does them."""

from __future__ import annotations

import numpy as np

import busim
from busim.engine.records import DeliveryCause
from tests.loadtest.runs import left_behind, real_scenario


def test_processing_longer_than_ack_wait_is_redelivered_every_ack_wait_until_max_deliver(nats_url):
    # Ten messages, each processed for 3.5 s against a 1 s AckWait: JetStream delivers each at 0, 1 and 2 s
    # after its first delivery, then gives up on it at 3 s (MaxDeliver 3): dead-lettered, though processed.
    consumer = {"instances": 1, "concurrency": 40, "processing_time": "3.5s"}
    broker = {"preset": "nats-jetstream", "ack_wait": "1s", "max_deliver": 3}
    publishers = [{"name": "orders", "event": "OrderPlaced", "arrivals": "uniform", "rate": 5}]
    scenario = real_scenario("nats-jetstream", consumer, broker=broker, publishers=publishers)
    result = busim.load_test(scenario, nats_url)
    assert left_behind(result.real.run_id, scenario) == []
    record = result.record
    assert record is not None
    deliveries = record.groups[0].deliveries
    assert np.bincount(deliveries.message).tolist() == [3] * 10
    assert set(deliveries.cause[deliveries.attempt > 1].tolist()) == {DeliveryCause.ACK_TIMEOUT}
    for message in range(10):
        receive_s = np.sort(deliveries.receive_s[deliveries.message == message])
        gaps = np.diff(receive_s)
        assert np.all((gaps > 0.95) & (gaps < 1.6)), gaps  # AckWait apart, plus a fetch's wake-up on a busy machine
    inventory = result.summary.consumers["inventory"]
    assert (inventory.redelivered, inventory.dead_lettered, inventory.duplicate_effects) == (20, 10, 20)
    dead = record.groups[0]
    first_s = np.array([deliveries.receive_s[deliveries.message == m].min() for m in dead.dead_letter_message])
    assert np.all((dead.dead_letter_s - first_s > 2.9) & (dead.dead_letter_s - first_s < 4.0))
