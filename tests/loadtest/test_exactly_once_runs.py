"""Without faults, a real run on any broker processes every message exactly once and leaves nothing behind."""

from __future__ import annotations

import pytest

import busim
from tests.loadtest.runs import left_behind, real_scenario


@pytest.mark.parametrize(
    ("preset", "service"),
    [
        ("redis-streams", "redis_url"),
        ("rabbitmq", "amqp_url"),
        ("rabbitmq-quorum", "amqp_url"),
        ("nats-jetstream", "nats_url"),
    ],
)
def test_without_faults_every_message_is_processed_exactly_once(preset: str, service: str, request):
    scenario = real_scenario(preset)
    result = busim.load_test(scenario, request.getfixturevalue(service))
    assert left_behind(result.real.run_id, scenario) == []
    assert result.mode == "real"
    assert result.messages.published == 200  # uniform arrivals, 100/s for 2 s
    inventory = result.summary.consumers["inventory"]
    assert (inventory.subscribed, inventory.processed, inventory.delivered) == (200, 200, 200)
    assert (inventory.duplicate_effects, inventory.lost, inventory.redelivered, inventory.dead_lettered) == (0, 0, 0, 0)
    assert inventory.state["stock"].abs_drift == 0
    assert result.consistent and result.drained
    assert inventory.latency_s.broker.count == 0  # not observed on a real broker: absent, not invented
