"""Deterministic scenarios whose every count and time can be worked out by hand.

The base scenario publishes 100 Job messages evenly at 10/s: message k at
k/10 s. With constant latency and processing times nothing is random, so
each assertion is an exact consequence of the model's rules.
"""

import numpy as np
import pytest

import busim
from busim.engine.records import DeliveryCause, Outcome
from tests.conftest import consumer, scenario

COUNT = 100


def summary_of(result):
    return result.summary.consumers["worker"]


def test_an_overloaded_single_worker_queues_every_message_behind_the_last():
    # Times exact in binary: arrival k at k/8 + 1/64 s, service 3/16 s > 1/8 s gaps,
    # so message k finishes at 1/64 + 3/16 (k + 1) and the queue grows until publishing stops.
    result = busim.simulate(
        scenario(
            publishers=[{"name": "source", "event": "Job", "arrivals": "uniform", "rate": 8}],
            broker={"latency": 1 / 64},
            consumers=[consumer(processing_time=3 / 16)],
        )
    )
    worker = summary_of(result)
    k = np.arange(80)
    expected = 1 / 64 + 3 / 16 * (k + 1) - k / 8
    assert worker.latency_s.end_to_end.count == 80
    assert worker.latency_s.end_to_end.mean == pytest.approx(expected.mean(), rel=1e-12)
    assert worker.latency_s.end_to_end.max == pytest.approx(expected.max(), rel=1e-12)
    assert worker.latency_s.broker.max == 1 / 64
    assert worker.latency_s.processing.mean == pytest.approx(3 / 16, rel=1e-12)
    # When the last message arrives (9.890625 s), 53 have been taken (k <= 52): 80 - 53 wait.
    assert worker.max_backlog == 27
    assert result.record.sim_time_s == 1 / 64 + 3 / 16 * 80


def test_a_fast_worker_never_queues():
    result = busim.simulate(scenario(broker={"latency": "5ms"}, consumers=[consumer(processing_time="50ms")]))
    latency = summary_of(result).latency_s
    assert latency.end_to_end.max == pytest.approx(0.055)
    assert latency.queue_wait.max == 0
    assert summary_of(result).max_backlog == 0


def test_an_outage_delays_publishing_without_losing_anything():
    # Messages published at 2.0 .. 2.9 s are accepted when the broker returns at 3 s.
    result = busim.simulate(scenario(broker={"outages": [{"at": "2s", "duration": "1s"}]}))
    publisher = result.summary.publishers["source"]
    assert publisher.published == COUNT
    assert publisher.delayed_by_outage == 10
    assert publisher.max_publish_delay_s == pytest.approx(1.0)
    worker = summary_of(result)
    assert (worker.processed, worker.lost, worker.in_flight_at_end) == (COUNT, 0, 0)
    assert worker.latency_s.end_to_end.max == pytest.approx(1.0)


def test_deliveries_due_in_an_outage_wait_for_its_end():
    # 500 ms latency: messages published at 1.6 .. 2.0 s would land inside [2.1, 3.1) and land at 3.1 s;
    # the 10 published inside it (2.1 .. 3.0 s) are accepted at 3.1 s and land at 3.6 s,
    # with the one published at 3.1 s.
    result = busim.simulate(scenario(broker={"latency": "500ms", "outages": [{"at": "2.1s", "duration": "1s"}]}))
    deliveries = result.record.groups[0].deliveries
    assert not np.any((deliveries.arrival_s >= 2.1) & (deliveries.arrival_s < 3.1))
    assert np.count_nonzero(deliveries.arrival_s == 3.1) == 5
    assert np.count_nonzero(deliveries.arrival_s == 3.6) == 11


def always_crashing(idempotency):
    """Every processing crashes after its effects; the broker gives each message 3 attempts."""
    return busim.simulate(
        scenario(
            broker={"ack_timeout": "1s", "max_deliveries": 3},
            consumers=[
                consumer(
                    crash={"probability": 1.0, "restart_after": 0},
                    idempotency=idempotency,
                    state={"done": {}},
                    effects=[{"counter": "done", "key": "item", "add": 1}],
                )
            ],
        )
    )


def test_every_crash_before_ack_redelivers_until_the_delivery_limit():
    # 3 deliveries, 3 effects, then the dead-letter queue.
    worker = summary_of(always_crashing("none"))
    assert worker.delivered == 3 * COUNT
    assert worker.redelivered == 2 * COUNT
    assert worker.duplicate_deliveries == 2 * COUNT
    assert worker.duplicate_effects == 2 * COUNT
    assert worker.dead_lettered == COUNT
    assert worker.crashes == 3 * COUNT
    assert worker.by_reason["redelivered"] == {"crash_before_ack": 2 * COUNT}
    assert worker.state["done"].actual_total - worker.state["done"].expected_total == 2 * COUNT


def test_an_idempotent_consumer_absorbs_every_crash_redelivery():
    result = always_crashing("dedup")
    worker = summary_of(result)
    assert worker.duplicate_deliveries == 2 * COUNT
    assert worker.duplicate_effects == 0
    assert worker.state["done"].abs_drift == 0
    outcomes = np.bincount(result.record.groups[0].deliveries.outcome, minlength=5)
    assert outcomes[Outcome.SKIPPED] == 2 * COUNT


def test_a_short_dedup_ttl_forgets_ids_before_the_redelivery():
    # The redelivery comes 1 s after the first processing; a 0.5 s memory has forgotten the id.
    crash = {"probability": 1.0, "restart_after": 0}
    result = busim.simulate(
        scenario(
            broker={"ack_timeout": "1s", "max_deliveries": 2},
            consumers=[consumer(crash=crash, idempotency="dedup", dedup={"ttl": "500ms"})],
        )
    )
    assert summary_of(result).duplicate_effects == COUNT


def test_every_attempt_duplicated_doubles_deliveries_and_effects():
    result = busim.simulate(scenario(broker={"duplication": 1.0}))
    worker = summary_of(result)
    assert (worker.delivered, worker.duplicate_deliveries, worker.duplicate_effects) == (2 * COUNT, COUNT, COUNT)
    assert worker.by_reason["duplicate_deliveries"] == {"broker_duplicate": COUNT}


def test_at_most_once_loses_every_lost_attempt():
    result = busim.simulate(scenario(broker={"delivery": "at-most-once", "loss": 1.0}))
    worker = summary_of(result)
    assert (worker.delivered, worker.processed, worker.lost, worker.in_flight_at_end) == (0, 0, COUNT, 0)
    assert worker.by_reason["lost"] == {"transit_loss": COUNT}


def test_at_least_once_dead_letters_what_it_can_never_deliver():
    result = busim.simulate(scenario(broker={"loss": 1.0, "ack_timeout": "1s", "max_deliveries": 4}))
    worker = summary_of(result)
    assert (worker.delivered, worker.lost, worker.dead_lettered) == (0, 0, COUNT)
    # The fourth attempt is sent at 3 s after publishing and dead-lettered when its ack is 1 s overdue.
    assert result.record.sim_time_s == pytest.approx(9.9 + 4.0)


def test_a_consumer_slower_than_the_ack_timeout_is_redelivered_while_it_works():
    # 1.5 s processing, 1 s ack timeout, one message: redelivered at 1 s, processed twice.
    result = busim.simulate(
        scenario(
            publishers=[{"name": "source", "event": "Job", "rate": 1, "count": 1}],
            broker={"ack_timeout": "1s"},
            consumers=[consumer(instances=2, processing_time="1.5s")],
        )
    )
    worker = summary_of(result)
    assert (worker.delivered, worker.duplicate_effects) == (2, 1)
    assert worker.by_reason["redelivered"] == {"ack_timeout": 1}


def test_a_crash_aborts_the_other_deliveries_in_flight_on_that_instance():
    # At-most-once, 4 messages in flight on one instance; the first to finish crashes and the other 3 are lost.
    result = busim.simulate(
        scenario(
            publishers=[{"name": "source", "event": "Job", "arrivals": "uniform", "rate": 1000, "count": 4}],
            broker={"delivery": "at-most-once"},
            consumers=[consumer(concurrency=4, processing_time="1s", crash={"probability": 1.0})],
        )
    )
    worker = summary_of(result)
    assert (worker.processed, worker.lost, worker.crashes) == (1, 3, 1)
    assert worker.by_reason["lost"] == {"crash_in_flight": 3}


def test_a_floor_rejects_what_would_take_a_counter_below_it():
    # One key, 30 units of stock, 100 orders of 1: 30 accepted, 70 rejected.
    result = busim.simulate(
        scenario(
            events={"Job": {"key": "item", "fields": {"item": {"constant": 7}, "quantity": {"constant": 1}}}},
            consumers=[
                consumer(
                    state={"stock": {"initial": 30}},
                    effects=[{"counter": "stock", "key": "item", "add": "-quantity", "floor": 0}],
                )
            ],
        )
    )
    worker = summary_of(result)
    assert (worker.rejected, worker.wrongly_rejected, worker.wrongly_accepted) == (70, 0, 0)
    stock = worker.state["stock"]
    assert (stock.expected_total, stock.actual_total, stock.keys) == (0, 0, 1)
    assert result.summary.consistent


def test_the_run_stops_at_the_drain_timeout_and_reports_what_is_left():
    # 100 messages of 1 s each on one worker cannot drain in 10 s + 5 s.
    result = busim.simulate(scenario(drain_timeout="5s", consumers=[consumer(processing_time="1s")]))
    worker = summary_of(result)
    assert not result.record.drained
    assert result.record.sim_time_s == 15
    assert worker.processed == 15  # the 15th finishes exactly at the horizon, which is still simulated
    assert worker.in_flight_at_end == COUNT - worker.processed
    assert result.summary.violations == (
        "the run stopped at duration + drain_timeout before the bus drained, "
        "so later redeliveries and duplicates are not counted",
        "worker: 85 messages never processed before the run stopped",
    )


def test_a_run_cut_off_while_reprocessing_a_message_has_not_drained():
    # Processed from 0 s to 5 s; its ack was due at 2 s, so the other instance takes a redelivery at 2 s,
    # which would finish at 7 s, after the 6.5 s horizon. Every message was processed once, but the
    # duplicate is still at work.
    result = busim.simulate(
        scenario(
            duration=1,
            drain_timeout=5.5,
            publishers=[{"name": "source", "event": "Job", "arrivals": "uniform", "rate": 1}],
            broker={"ack_timeout": "2s"},
            consumers=[consumer(instances=2, processing_time="5s")],
        )
    )
    assert summary_of(result).in_flight_at_end == 0
    assert not result.record.drained
    assert result.record.sim_time_s == 6.5
    assert not result.summary.consistent


def test_back_to_back_outages_keep_the_workers_paused_throughout():
    result = busim.simulate(
        scenario(
            duration=0.2,
            publishers=[{"name": "source", "event": "Job", "arrivals": "uniform", "rate": 10}],
            broker={"outages": [{"at": 0.2, "duration": 0.8}, {"at": 1, "duration": 1}]},
            consumers=[consumer(processing_time=0.5)],
        )
    )
    np.testing.assert_array_equal(result.record.groups[0].deliveries.take_s, [0.0, 2.0])


def test_a_wake_up_that_rounding_brings_early_still_serves_the_queue():
    # Arrivals every 5 s plus 1 ms latency: the clock lands a hair before some arrivals, and the
    # idle worker must still take them (this stalled the group after its first message once).
    result = busim.simulate(
        scenario(
            duration=300,
            publishers=[{"name": "source", "event": "Job", "arrivals": "uniform", "rate": 0.2, "count": 50}],
            broker={"latency": "1ms"},
            consumers=[consumer(processing_time="128ms")],
        )
    )
    worker = summary_of(result)
    assert (worker.processed, worker.in_flight_at_end) == (50, 0)
    assert worker.latency_s.end_to_end.max == pytest.approx(0.129)


def test_every_redelivery_names_what_happened_to_the_delivery_before_it():
    # Mixed slow and fast processing with frequent crashes: each redelivery's cause must match
    # the fate of the message's previous attempt.
    result = busim.simulate(
        scenario(
            seed=3,
            publishers=[{"name": "source", "event": "Job", "arrivals": "poisson", "rate": 20}],
            broker={"ack_timeout": "1s"},
            consumers=[
                consumer(
                    concurrency=8,
                    processing_time={"uniform": {"low": "200ms", "high": "3s"}},
                    crash={"probability": 0.2, "restart_after": "100ms"},
                )
            ],
        )
    )
    deliveries = result.record.groups[0].deliveries
    previous = {}
    causes_seen = set()
    for row in range(len(deliveries)):
        message, attempt = int(deliveries.message[row]), int(deliveries.attempt[row])
        previous.setdefault((message, attempt), row)
        cause = DeliveryCause(deliveries.cause[row])
        if attempt == 1 or cause == DeliveryCause.BROKER_DUPLICATE:
            continue
        causes_seen.add(cause)
        before = previous[(message, attempt - 1)]
        timer_s = deliveries.take_s[before] + 1.0
        if cause == DeliveryCause.ACK_TIMEOUT:
            assert not deliveries.done_s[before] < timer_s  # still processing when the ack was due
        elif cause == DeliveryCause.CRASH_IN_FLIGHT:
            assert deliveries.outcome[before] == Outcome.ABORTED
        elif cause == DeliveryCause.CRASH_BEFORE_ACK:
            assert deliveries.crashed[before]
    assert causes_seen == {DeliveryCause.ACK_TIMEOUT, DeliveryCause.CRASH_IN_FLIGHT, DeliveryCause.CRASH_BEFORE_ACK}


KEYED = {"key": "k", "fields": {"k": {"uniform_int": {"low": 1, "high": 3}}}}


@pytest.mark.parametrize(
    "events", [{"A": {}, "B": {}}, {"A": {}, "B": {}, "C": KEYED, "D": KEYED}], ids=["unkeyed", "mixed"]
)
def test_out_of_order_counts_within_each_ordering_scope_only(events):
    # Random latency reorders messages; a brute-force count per scope must match, and the scopes are
    # each unkeyed event on its own, and each key value across keyed events.
    result = busim.simulate(
        scenario(
            seed=4,
            events=events,
            publishers=[{"name": name.lower(), "event": name, "rate": 30} for name in events],
            broker={"latency": {"exponential": {"mean": "30ms"}}},
            consumers=[
                consumer(subscribes=list(events), instances=3, processing_time={"exponential": {"mean": "5ms"}})
            ],
        )
    )
    record = result.record
    group = record.groups[0]
    deliveries = group.deliveries
    first_done = {}
    for message, done_s in zip(deliveries.message.tolist(), deliveries.done_s.tolist()):
        first_done[message] = min(done_s, first_done.get(message, done_s))
    event_of = record.messages.event[group.message_ids]
    names = record.messages.event_names
    scope = {}
    for event_name in events:
        ids = np.flatnonzero(np.array([names[e] for e in event_of]) == event_name)
        key = events[event_name].get("key")
        values = record.messages.fields[event_name]["k"] if key else [None] * ids.size
        for local, value in zip(ids.tolist(), list(values)):
            scope[local] = ("key", value) if key else ("event", event_name)
    expected = sum(
        any(scope[later] == scope[m] and first_done[later] < first_done[m] for later in range(m + 1, len(scope)))
        for m in range(len(scope))
    )
    assert expected > 0
    assert summary_of(result).out_of_order == expected
