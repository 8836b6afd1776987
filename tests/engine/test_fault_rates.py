"""Fault rates match their configuration, within binomial tolerances.

Each count below is a sum of independent Bernoulli trials, so its standard
deviation is sqrt(n p (1 - p)). The tolerance is 4 standard deviations: a
fresh seed would fail about once in 16,000 runs; the fixed seeds here pass.
"""

import math

import numpy as np
import pytest

import busim
from busim.engine.records import DeliveryCause
from tests.conftest import consumer, scenario

RATE_PER_S = 2000
DURATION_S = 50  # 100k messages


def within_binomial(observed: int, trials: int, p: float) -> bool:
    return abs(observed - trials * p) <= 4 * math.sqrt(trials * p * (1 - p))


def faulty(**broker):
    return scenario(
        seed=11,
        duration=DURATION_S,
        publishers=[{"name": "source", "event": "Job", "arrivals": "poisson", "rate": RATE_PER_S}],
        broker={"ack_timeout": "2s", **broker},
        consumers=[consumer(instances=4, processing_time={"exponential": {"mean": "1ms"}})],
    )


def test_duplication_adds_copies_at_its_rate():
    result = busim.simulate(faulty(duplication=0.01))
    worker = result.summary.consumers["worker"]
    attempts = worker.subscribed
    assert within_binomial(worker.duplicate_deliveries, attempts, 0.01)
    assert worker.duplicate_effects == worker.duplicate_deliveries


def test_at_least_once_redelivers_every_lost_attempt_and_loses_nothing():
    p = 0.02
    result = busim.simulate(faulty(loss=p))
    worker = result.summary.consumers["worker"]
    deliveries = result.record.groups[0].deliveries
    # The delivery of attempt k means attempts 1..k-1 were lost, so the lost attempts are sum(k - 1).
    # Per message that is a geometric count of failures: in all, negative binomial with
    # mean n p / (1 - p) and variance n p / (1 - p)^2.
    lost_attempts = int((deliveries.attempt - 1).sum())
    n = worker.subscribed
    assert abs(lost_attempts - n * p / (1 - p)) <= 4 * math.sqrt(n * p) / (1 - p)
    assert np.all(deliveries.cause[deliveries.attempt > 1] == DeliveryCause.TRANSIT_LOSS)
    assert worker.delivered == n  # one delivery per message: no duplication configured
    assert (worker.lost, worker.dead_lettered, worker.in_flight_at_end) == (0, 0, 0)
    assert worker.processed == n


def test_at_most_once_loses_loss_times_deliveries():
    result = busim.simulate(faulty(delivery="at-most-once", loss=0.02))
    worker = result.summary.consumers["worker"]
    assert within_binomial(worker.lost, worker.subscribed, 0.02)
    assert worker.processed + worker.lost == worker.subscribed
    assert worker.redelivered == 0


def test_every_crash_before_ack_becomes_one_duplicate_effect():
    crash = {"probability": 0.002, "restart_after": "100ms"}
    result = busim.simulate(
        scenario(
            seed=5,
            duration=DURATION_S,
            publishers=[{"name": "source", "event": "Job", "arrivals": "poisson", "rate": RATE_PER_S}],
            broker={"ack_timeout": "1s"},
            consumers=[consumer(instances=8, processing_time={"exponential": {"mean": "1ms"}}, crash=crash)],
        )
    )
    worker = result.summary.consumers["worker"]
    assert within_binomial(worker.crashes, worker.delivered, 0.002)
    # Concurrency 1: a crash aborts nothing else, and its message is redelivered once and applied again.
    assert worker.by_reason["redelivered"] == {"crash_before_ack": worker.crashes}
    assert worker.duplicate_effects == worker.crashes
    assert (worker.lost, worker.in_flight_at_end) == (0, 0)


@pytest.mark.parametrize("idempotency", ["none", "dedup"])
def test_at_least_once_with_a_high_delivery_limit_loses_nothing_despite_every_fault(idempotency):
    result = busim.simulate(
        scenario(
            seed=9,
            duration=DURATION_S,
            publishers=[{"name": "source", "event": "Job", "arrivals": "poisson", "rate": RATE_PER_S}],
            broker={
                "ack_timeout": "1s",
                "max_deliveries": 50,
                "loss": 0.05,
                "duplication": 0.05,
                "outages": [{"at": "10s", "duration": "5s"}, {"at": "30s", "duration": "2s"}],
            },
            consumers=[
                consumer(
                    instances=4,
                    concurrency=2,
                    processing_time={"exponential": {"mean": "1ms"}},
                    crash={"probability": 0.005, "restart_after": "200ms"},
                    idempotency=idempotency,
                    state={"seen": {}},
                    effects=[{"counter": "seen", "key": "item", "add": 1}],
                )
            ],
        )
    )
    worker = result.summary.consumers["worker"]
    assert (worker.lost, worker.dead_lettered, worker.in_flight_at_end) == (0, 0, 0)
    assert worker.processed == worker.subscribed
    if idempotency == "dedup":
        assert worker.duplicate_effects == 0
        assert worker.state["seen"].abs_drift == 0
        assert result.summary.consistent
    else:
        assert worker.duplicate_effects > 0
        assert worker.state["seen"].abs_drift == worker.duplicate_effects
