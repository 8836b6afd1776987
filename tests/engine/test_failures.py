"""Processing failures, retries, give-ups and slowdowns, against answers known in advance.

Constant latencies and processing times make every time in these runs a sum
that the test can write down; where chance decides (transient failures) the
bound is derived in the test.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

import busim
from busim.engine.records import DeliveryCause, GroupRecord, Outcome, RunRecord
from busim.engine.simulation import run
from busim.scenario.schema import Invariant, Scenario
from tests.conftest import SCENARIOS, consumer, scenario
from tests.engine.test_servers import served

PROCESSING_S = 0.010
LATENCY_S = 0.001


def one_message(broker: dict[str, Any], drain_timeout: float = 60, **fields: Any) -> Scenario:
    """One Job at time 0 to one consumer of 10 ms processing, over a broker of 1 ms latency."""
    return scenario(
        [consumer(processing_time=PROCESSING_S, **fields)],
        duration=1,
        drain_timeout=drain_timeout,
        publishers=[{"name": "source", "event": "Job", "arrivals": "uniform", "rate": 1, "count": 1}],
        broker={"latency": LATENCY_S, **broker},
    )


def group_of(target: Scenario, seed: int = 1) -> tuple[RunRecord, GroupRecord]:
    record = run(target, seed)
    return record, record.groups[0]


def broker_rows(group: GroupRecord) -> np.ndarray:
    """The rows of the broker's deliveries (not the consumer's own retries)."""
    return np.flatnonzero(
        ~np.isin(group.deliveries.cause, (DeliveryCause.RETRY, DeliveryCause.RETRY_AFTER_PARTIAL_EFFECT))
    )


def test_transient_failures_give_up_on_about_n_p_to_the_retries_plus_one():
    """Each attempt fails with p = 0.3, independently; with r = 2 retries a delivery is given up when all
    r + 1 = 3 attempts fail, with probability q = p^3 = 0.027. Over N = 20,000 messages the give-ups are
    binomial (N, q): mean Nq = 540, sd sqrt(Nq(1 - q)) = 22.9. Five sd either side (430 to 650) holds but for
    a chance below 1e-6 (normal tail; the binomial's is as thin this far from 0).
    """
    count, p, retries = 20_000, 0.3, 2
    target = scenario(
        [consumer(failures={"probability": p}, retry={"attempts": retries}, on_give_up="ack")],
        duration=count / 1000,
        publishers=[{"name": "source", "event": "Job", "arrivals": "uniform", "rate": 1000, "count": count}],
    )
    result = busim.simulate(target, seed=7)
    worker = result.summary.consumers["worker"]
    failures = worker.failures
    q = p ** (retries + 1)
    mean, sd = count * q, math.sqrt(count * q * (1 - q))
    assert abs(failures.given_up - mean) < 5 * sd
    # Given up with ack: each is lost, and none was applied.
    assert worker.lost == failures.given_up
    assert worker.by_reason["lost"] == {"given_up": failures.given_up}
    assert worker.processed == count - failures.given_up
    # Failed attempts: N(p + p^2 + p^3) = 8,340 on average; every failure but the give-ups is retried.
    assert failures.retries == failures.failed_attempts - failures.given_up
    assert failures.attempts == count + failures.retries
    assert worker.delivered == count and worker.duplicate_deliveries == 0 and worker.redelivered == 0


def test_a_poison_message_on_a_classic_queue_loops_until_the_run_ends():
    """nack on RabbitMQ classic requeues at the head: with no delivery limit the message goes round, each
    round 1 ms of latency and two 10 ms attempts (one retry), until duration + drain_timeout."""
    target = one_message({"preset": "rabbitmq"}, drain_timeout=1, failures={"poison": 1.0}, retry={"attempts": 1})
    record, group = group_of(target)
    rows = broker_rows(group)
    attempts = group.deliveries.attempt[rows]
    assert attempts.tolist() == list(range(1, rows.size + 1))
    # Round k is received at 1 ms + (k - 1) x 21 ms; the last one received by the end at 2 s is the 96th.
    assert rows.size == math.floor((2 - LATENCY_S) / (2 * PROCESSING_S + LATENCY_S)) + 1 == 96
    assert group.deliveries.receive_s[rows] == pytest.approx(LATENCY_S + np.arange(96) * 0.021)
    assert not record.drained and record.stopped is None
    assert group.dead_letter_message.size == 0 and group.lost_message.size == 0
    result = busim.simulate(target, seed=1)
    assert result.summary.consumers["worker"].failures.poison_in_flight == 1
    assert result.summary.violations[-1] == (
        "worker: 1 poison message failed on every attempt and was still going round when the run ended: "
        "a classic queue requeues a nacked message without limit (a quorum queue's delivery_limit "
        "dead-letters it); give on_give_up: dead_letter or a delivery limit"
    )


@pytest.mark.parametrize(
    ("failures", "reason"), [({"poison": 1.0}, "poison"), ({"probability": 1.0}, "delivery_limit")]
)
def test_a_quorum_queue_dead_letters_after_its_delivery_limit(failures, reason):
    """delivery_limit 20 (the preset's): 21 deliveries, each of 3 attempts (two retries), then dead-lettered."""
    target = one_message({"preset": "rabbitmq-quorum"}, failures=failures, retry={"attempts": 2})
    result = busim.simulate(target, seed=1)
    worker = result.summary.consumers["worker"]
    assert (worker.delivered, worker.failures.attempts, worker.failures.failed_attempts) == (21, 63, 63)
    assert worker.failures.given_up == 21
    assert worker.dead_lettered == 1
    assert worker.by_reason["dead_lettered"] == {reason: 1}
    assert worker.by_reason["redelivered"] == {"processing_failed": 20}
    assert result.drained


def test_sqs_redelivers_a_failed_message_when_its_visibility_timeout_runs_out():
    """A nack on SQS is no delete: the message comes back 5 s (visibility_timeout) after it was received,
    plus 1 ms of latency, and counts toward max_receive_count 3: when the third receive's timeout runs out,
    the queue moves it to the dead-letter queue instead of a fourth."""
    broker = {"preset": "sqs-standard", "duplication": 0, "visibility_timeout": "5s", "max_receive_count": 3}
    _, group = group_of(one_message(broker, failures={"probability": 1.0}))
    received_s = group.deliveries.receive_s
    assert received_s.tolist() == pytest.approx([0.001, 5.002, 10.003])
    assert group.dead_letter_s.tolist() == pytest.approx([15.003])
    assert group.dead_letter_cause.tolist() == [DeliveryCause.DELIVERY_LIMIT]


def test_jetstream_redelivers_a_nak_after_each_delay_of_its_backoff_list():
    """nak after the n-th delivery: redelivered after backoff[n - 1] (the last for later ones), + 1 ms."""
    broker = {"preset": "nats-jetstream", "backoff": ["1s", "5s", "30s"], "max_deliver": 5}
    _, group = group_of(one_message(broker, drain_timeout=100, failures={"probability": 1.0}))
    received_s = group.deliveries.receive_s
    gaps_s = np.diff(received_s)
    assert gaps_s.tolist() == pytest.approx([delay + PROCESSING_S + LATENCY_S for delay in (1, 5, 30, 30)])
    assert group.dead_letter_cause.tolist() == [DeliveryCause.DELIVERY_LIMIT]


def test_redis_leaves_a_failed_message_pending_without_a_claimer():
    _, group = group_of(one_message({"preset": "redis-streams"}, failures={"probability": 1.0}))
    assert len(group.deliveries) == 1
    assert group.stuck_pending_cause.tolist() == [DeliveryCause.PROCESSING_FAILED]


def kafka(**fields: Any) -> Scenario:
    """Keyless Jobs at 20/s for 10 s, round robin over 4 partitions, one member each; 10 ms processing."""
    return scenario(
        [consumer(processing_time=PROCESSING_S, instances=4, **fields)],
        events={"Job": {}},
        duration=10,
        publishers=[{"name": "source", "event": "Job", "arrivals": "uniform", "rate": 20}],
        broker={"preset": "kafka", "latency": LATENCY_S, "partitions": 4},
    )


def test_kafka_blocking_retry_stalls_that_partition_and_no_other():
    """A poison record retried in place (4 retries, 200 ms apart) holds its partition for 5 attempts of
    10 ms and 4 waits of 200 ms: 850 ms, then it is dead-lettered. The other partitions run as without it."""
    retry = {"attempts": 4, "backoff": {"constant": "200ms"}}
    failing = kafka(failures={"poison": 0.01}, retry=retry, on_give_up="dead_letter")
    seed = 12  # poisons messages 43 and 150, in partitions 3 and 2
    result = busim.simulate(failing, seed=seed)
    _, group = group_of(failing, seed)
    poison = group.failures.poison
    poisoned = set((group.message_ids[poison] % 4).tolist())
    assert poison.size == 2 and len(poisoned) == 2
    stall_s = 5 * PROCESSING_S + 4 * 0.2
    figures = result.summary.consumers["worker"].failures
    assert figures.stall_by_partition_s == pytest.approx({str(p): stall_s for p in sorted(poisoned)})
    assert figures.max_stall_s == pytest.approx(stall_s)
    # 20 records a second over 4 partitions: 5 a second each, so 850 ms holds up the next 4 of the partition.
    assert figures.held_up == 2 * 4
    assert result.summary.consumers["worker"].by_reason["dead_lettered"] == {"poison": 2}

    _, clean = group_of(kafka(), seed)
    partition = group.message_ids[group.deliveries.message] % 4
    clean_partition = clean.message_ids[clean.deliveries.message] % 4
    for other in set(range(4)) - poisoned:
        mine = group.deliveries.done_s[partition == other]
        assert mine.tolist() == clean.deliveries.done_s[clean_partition == other].tolist()
    deliveries = group.deliveries
    for message in group.message_ids[poison].tolist():
        # The 4 records behind it, 200 ms apart, wait for the stall: each is done 10 ms after the one before,
        # 860 ms after the poison record arrived; later ones find the partition free again.
        rows = broker_rows(group)
        rows = rows[(partition[rows] == message % 4) & (group.message_ids[deliveries.message[rows]] > message)]
        waited_s = deliveries.done_s[rows] - deliveries.arrival_s[rows]
        assert waited_s[:5].tolist() == pytest.approx([0.66, 0.47, 0.28, 0.09, PROCESSING_S])
        assert waited_s[4:] == pytest.approx(np.full(waited_s.size - 4, PROCESSING_S))


def test_a_slowdown_multiplies_the_processing_of_deliveries_started_in_its_window():
    target = scenario([consumer(processing_time=PROCESSING_S, slowdowns=[{"from": "2s", "to": "4s", "factor": 5}])])
    _, group = group_of(target)
    deliveries = group.deliveries
    took_s = deliveries.done_s - deliveries.take_s
    inside = (deliveries.take_s >= 2) & (deliveries.take_s < 4)
    assert inside.sum() == 20
    assert took_s[inside] == pytest.approx(np.full(20, 5 * PROCESSING_S), abs=1e-12)
    assert took_s[~inside] == pytest.approx(np.full(80, PROCESSING_S), abs=1e-12)
    assert busim.simulate(target, seed=1).summary.consumers["worker"].failures.slowed == 20


def test_a_broker_slowdown_multiplies_the_latency_of_what_is_sent_in_its_window():
    target = scenario(broker={"latency": LATENCY_S, "slowdowns": [{"from": "2s", "to": "4s", "factor": 3}]})
    record, group = group_of(target)
    publish_s = record.messages.publish_s[group.message_ids[group.deliveries.message]]
    latency_s = group.deliveries.arrival_s - publish_s
    inside = (publish_s >= 2) & (publish_s < 4)
    assert latency_s[inside] == pytest.approx(np.full(20, 3 * LATENCY_S), abs=1e-12)
    assert latency_s[~inside] == pytest.approx(np.full(80, LATENCY_S), abs=1e-12)


def counting(**fields: Any) -> Scenario:
    """Jobs that each add 1 to their item's count; one worker, failing half its attempts, retrying until it
    succeeds."""
    return scenario(
        [
            consumer(
                processing_time=PROCESSING_S,
                failures={"probability": 0.5, **fields.pop("failures", {})},
                retry={"attempts": "unlimited"},
                state={"count": {"initial": 0}},
                effects=[{"counter": "count", "key": "item", "add": 1}],
                **fields,
            )
        ]
    )


def test_a_failed_attempt_before_the_commit_applies_nothing():
    worker = busim.simulate(counting(), seed=2).summary.consumers["worker"]
    assert worker.failures.failed_attempts > 0
    assert worker.duplicate_effects == 0
    assert all(not consistency.abs_drift for consistency in worker.state.values())


def test_a_failure_after_a_non_atomic_effect_applies_it_again_on_the_retry():
    """With read-modify-write the effects are written, without a transaction, before a failure at the end
    of processing (after: 1): every failed attempt leaves its effect, and its retry applies it again."""
    worker = busim.simulate(counting(effects_isolation="read-modify-write"), seed=2).summary.consumers["worker"]
    failed = worker.failures.failed_attempts
    assert failed > 0
    assert worker.duplicate_effects == failed
    assert worker.by_reason["duplicate_effects"] == {"retry_after_partial_effect": failed}
    assert sum(consistency.abs_drift for consistency in worker.state.values()) == failed
    # A failure half way through comes before the write: nothing doubles.
    halfway = busim.simulate(counting(effects_isolation="read-modify-write", failures={"after": 0.5}), seed=2)
    assert halfway.summary.consumers["worker"].duplicate_effects == 0


def test_failures_and_slowdowns_keep_a_group_off_the_fast_path():
    assert served(scenario())
    assert not served(scenario([consumer(failures={"probability": 0.1})]))
    assert not served(scenario([consumer(slowdowns=[{"from": "1s", "to": "2s", "factor": 2}])]))
    assert not served(scenario(broker={"slowdowns": [{"from": "1s", "to": "2s", "factor": 2}]}))


def test_failed_attempts_are_rows_with_their_outcome():
    _, group = group_of(one_message({"preset": "rabbitmq-quorum", "delivery_limit": 1}, failures={"poison": 1.0}))
    assert group.deliveries.outcome.tolist() == [Outcome.FAILED, Outcome.FAILED]


def test_kafka_retry_topics_read_a_failed_record_after_each_delay_then_dead_letter_it():
    """The record goes on after its delays (1 s, then 5 s), each read failing 10 ms later, then to the
    dead-letter topic; its own partition goes on at once."""
    target = one_message(
        {"preset": "kafka", "kafka_retry": "retry_topic", "retry_topic": {"delays": ["1s", "5s"]}},
        failures={"poison": 1.0},
    )
    _, group = group_of(target)
    deliveries = group.deliveries
    assert deliveries.cause.tolist() == [DeliveryCause.FIRST] + [DeliveryCause.PROCESSING_FAILED] * 2
    assert deliveries.take_s.tolist() == pytest.approx([0.001, 1.011, 6.021])
    assert group.dead_letter_s.tolist() == pytest.approx([6.031])
    assert group.dead_letter_cause.tolist() == [DeliveryCause.POISON]
    assert group.failures.stall_start_s.tolist() == pytest.approx([0.001])
    assert group.failures.stall_end_s.tolist() == pytest.approx([0.011])


def test_the_visibility_timeout_runs_on_while_the_worker_backs_off():
    """A retry 8 s after a failed attempt outlasts the 5 s visibility timeout: SQS delivers the message again
    5 s after it was received, while the first worker still waits to retry it."""
    broker = {"preset": "sqs-standard", "duplication": 0, "visibility_timeout": "5s"}
    target = one_message(
        broker, instances=2, failures={"poison": 1.0}, retry={"attempts": 1, "backoff": {"constant": "8s"}}
    )
    _, group = group_of(target)
    rows = broker_rows(group)
    assert group.deliveries.receive_s[rows][:2].tolist() == pytest.approx([0.001, 5.002])
    assert group.deliveries.cause[rows][1] == DeliveryCause.ACK_TIMEOUT


def test_a_seed_gives_the_same_failures_retries_and_backoffs_every_time():
    target = busim.load(SCENARIOS / "poison-payment.yaml")
    first, second = run(target, 5).groups[0], run(target, 5).groups[0]
    for column in ("message", "attempt", "cause", "take_s", "done_s", "outcome"):
        assert np.array_equal(getattr(first.deliveries, column), getattr(second.deliveries, column), equal_nan=True)
    assert np.array_equal(first.failures.poison, second.failures.poison)
    other = run(target, 6).groups[0]
    assert not np.array_equal(first.failures.poison, other.failures.poison)


def test_an_invariant_bounds_the_give_ups_and_the_poison_still_going_round():
    target = busim.load(SCENARIOS / "poison-payment.yaml").model_copy(
        update={
            "invariants": [
                Invariant.model_validate(
                    {"name": "no-loop", "consumer": "payment", "max": {"poison_in_flight": 0, "given_up": 1000}}
                )
            ]
        }
    )
    outcomes = busim.simulate(target).summary.invariants
    assert [(outcome.metric, outcome.measured, outcome.passed) for outcome in outcomes] == [
        ("given_up", 859, True),
        ("poison_in_flight", 3, False),
    ]


def test_a_crash_while_the_worker_waits_to_retry_brings_the_message_back_as_in_flight():
    # The attempt fails at 11 ms and the worker waits 10 s to retry; the instance crashes at 3 s, holding the
    # message as one it processes, not one prefetched and never started. Its stall ends with the crash.
    target = one_message(
        {"preset": "rabbitmq"},
        failures={"poison": 1.0},
        retry={"attempts": 5, "backoff": {"constant": "10s"}},
        on_give_up="drop",
        crash={"at": ["3s"], "restart_after": "1s"},
    )
    result = busim.simulate(target)
    worker = result.summary.consumers["worker"]
    assert worker.by_reason["redelivered"] == {"crash_in_flight": 1}
    stalls = result.record.groups[0].failures
    assert stalls.stall_start_s[0] == pytest.approx(LATENCY_S, abs=1e-12)
    assert stalls.stall_end_s[0] == 3.0


@pytest.mark.parametrize("fault", ["outage", "crash"])
def test_kafka_retry_topics_are_read_only_while_the_broker_is_up_and_by_instances_that_serve(fault):
    # Poison records go round retry topics 1 s apart; from 2 s to 7 s the broker is down, or instance 1 is.
    broker = {"preset": "kafka", "partitions": 2, "kafka_retry": "retry_topic", "retry_topic": {"delays": ["1s", "1s"]}}
    worker = {"instances": 2, "processing_time": "50ms", "failures": {"poison": 0.1}, "on_give_up": "dead_letter"}
    if fault == "outage":
        broker["outages"] = [{"at": "2s", "duration": "5s"}]
    else:
        worker["crash"] = {"at": ["2s"], "instance": 1, "restart_after": "5s"}
    target = scenario([consumer(**worker)], duration=10, broker=broker)
    deliveries = run(target, 1).groups[0].deliveries
    retried = deliveries.cause == DeliveryCause.PROCESSING_FAILED
    assert retried.sum() > 0
    down = (deliveries.receive_s >= 2) & (deliveries.receive_s < 7)
    if fault == "outage":
        assert not (retried & down).any()
        assert (retried & (deliveries.receive_s == 7)).any()  # what came due meanwhile is read when it is back
    else:
        assert not (retried & down & (deliveries.instance == 1)).any()
        assert (retried & down & (deliveries.instance == 0)).any()
