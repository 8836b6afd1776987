"""Crashes at given times or after given counts, and what a crash leaves behind a batch read.

A scheduled crash acts as one by probability: what the instance holds comes
back by the broker's rules (RabbitMQ requeues at once; Kafka rewinds to the
committed offset; Redis without a claimer keeps it pending). A crash at a
time hits the instance whatever it is doing, so nothing was processed and
left unacked; a crash after a count comes right after that processing,
before its ack.
"""

import math

import numpy as np
import pytest

import busim
from busim.engine.records import Outcome
from tests.conftest import consumer, scenario


def worker_of(result):
    return result.summary.consumers["worker"]


def instance_1_crashing_at_30s():
    """Ten jobs a second for two instances of one job a second each: both always hold five (one in
    processing, four prefetched). Instance 1 crashes at 30 s, and is back at 35 s."""
    return busim.simulate(
        scenario(
            duration=60,
            broker={"preset": "rabbitmq", "latency": 0, "prefetch": 5},
            consumers=[consumer(instances=2, processing_time="1s", crash={"at": "30s", "instance": 1})],
        )
    )


def test_a_crash_at_a_time_brings_back_what_the_instance_held():
    # RabbitMQ requeues the five at once, and the instance receives nothing until it is back.
    result = instance_1_crashing_at_30s()
    worker, deliveries = worker_of(result), result.record.groups[0].deliveries
    assert worker.crash_times_s == (30.0,)
    assert result.record.groups[0].crash_instance.tolist() == [1]
    assert worker.by_reason["redelivered"] == {"crash_in_flight": 1, "prefetched": 4}
    assert worker.duplicate_effects == 0
    received_by_1 = deliveries.receive_s[deliveries.instance == 1]
    assert not np.any((received_by_1 > 30) & (received_by_1 < 35))
    assert np.any(received_by_1 == 35)


def test_a_crash_at_a_time_on_kafka_rewinds_the_record_in_hand():
    # One partition, owned by instance 0 (instance 1 idles), one record every 0.1 s processed in 0.5 s
    # and committed after each: at 5 s the record in hand is aborted, and once the session expires,
    # 1 s later, the rebalance gives the partition to instance 1, which reads that record again.
    result = busim.simulate(
        scenario(
            broker={"preset": "kafka", "latency": 0, "partitions": 1, "commit": "per-message", "session_timeout": "1s"},
            consumers=[consumer(instances=2, processing_time="500ms", crash={"at": [5], "restart_after": "10s"})],
        )
    )
    worker, deliveries = worker_of(result), result.record.groups[0].deliveries
    assert worker.crash_times_s == (5.0,)
    assert worker.by_reason["redelivered"] == {"crash_in_flight": 1}
    again = deliveries.attempt == 2
    assert deliveries.take_s[again].tolist() == [6.0]
    assert deliveries.instance[again].tolist() == [1]
    assert worker.duplicate_effects == 0


def test_a_crash_after_a_count_on_kafka_comes_before_the_commit():
    # Committed after each record: the 10th record's effects are applied, its commit is not, and the
    # instance that comes back reads it again, which applies it a second time.
    result = busim.simulate(
        scenario(
            broker={"preset": "kafka", "latency": 0, "partitions": 1, "commit": "per-message"},
            consumers=[
                consumer(
                    crash={"after_messages": 10, "restart_after": "1s"},
                    state={"done": {}},
                    effects=[{"counter": "done", "key": "item", "add": 1}],
                )
            ],
        )
    )
    worker, deliveries = worker_of(result), result.record.groups[0].deliveries
    assert worker.crashes == 1
    assert worker.crash_times_s == (pytest.approx(0.9),)  # the 10th record, published at 0.9 s
    assert worker.by_reason["redelivered"] == {"crash_before_ack": 1}
    assert worker.by_reason["duplicate_effects"] == {"crash_before_ack": 1}
    assert deliveries.message[deliveries.attempt == 2].tolist() == [9]


def test_the_story_of_a_message_tells_the_scheduled_crash_that_aborted_it():
    from busim.analysis.stories import Stories, What

    result = instance_1_crashing_at_30s()
    deliveries = result.record.groups[0].deliveries
    (aborted,) = deliveries.message[(deliveries.outcome == Outcome.ABORTED) & ~np.isnan(deliveries.take_s)].tolist()
    happenings = Stories(result.record).story(aborted).happenings
    assert (30.0, 1, What.ABORTED) in [(h.time_s, h.instance, h.what) for h in happenings]


def test_random_crashes_draw_a_live_instance_for_each_from_the_seed():
    crash = {"at": [f"{t}s" for t in range(1, 10)], "instance": "random", "restart_after": 0}
    subject = scenario(consumers=[consumer(instances=3, crash=crash)])
    result = busim.simulate(subject)
    instances = result.record.groups[0].crash_instance.tolist()
    assert len(instances) == 9 and set(instances) == {0, 1, 2}
    assert worker_of(result).crash_instances == tuple(instances)
    assert busim.simulate(subject).record.groups[0].crash_instance.tolist() == instances
    other = busim.simulate(subject.model_copy(update={"seed": 2})).record.groups[0].crash_instance.tolist()
    assert other != instances


# ---------------------------------------------------------------- a batch read, and what a crash leaves pending
BATCH = 10


def burst(**crash):
    """100 jobs that reach a Redis stream at once (published during an outage), read in batches of ten
    by one consumer that crashes as told; no claimer, so what it held stays pending."""
    return busim.simulate(
        scenario(
            publishers=[{"name": "source", "event": "Job", "arrivals": "uniform", "rate": 200, "count": 100}],
            broker={
                "preset": "redis-streams",
                "latency": 0,
                "batch_size": BATCH,
                "outages": [{"at": 0, "duration": "1s"}],
            },
            consumers=[consumer(processing_time="10ms", crash={"restart_after": 0, **crash})],
        )
    )


@pytest.mark.parametrize(("position", "pending"), [(1, 10), (5, 6), (10, 1)])
def test_a_crash_at_the_jth_entry_of_a_batch_leaves_the_rest_of_it_pending(position, pending):
    # As measured on Redis 7: XREADGROUP COUNT 10, a crash after the 1st, 5th and 10th entry left
    # 10, 6 and 1 entries in the pending-entries list.
    worker = worker_of(burst(after_messages=position))
    assert worker.crashes == 1
    assert worker.stuck_pending == pending
    assert worker.by_reason["stuck_pending"] == {"crash_before_ack": 1} | (
        {"prefetched": pending - 1} if pending > 1 else {}
    )
    assert worker.lost == 0
    assert worker.processed == 100 - (pending - 1)


def test_crashes_at_every_position_of_a_batch_leave_n_plus_one_over_two_pending_on_average():
    # The batch after a crash starts afresh: crashing at positions 1, 2, ..., 10 of successive batches
    # means after the 1st, 1+2 = 3rd, 3+3 = 6th, ... processed message.
    counts = np.cumsum(np.arange(1, BATCH + 1)).tolist()
    worker = worker_of(burst(after_messages=counts))
    assert worker.crashes == BATCH
    assert worker.stuck_pending / worker.crashes == (BATCH + 1) / 2


def test_crashes_by_chance_leave_about_n_plus_one_over_two_pending_each():
    # A backlog keeps every batch full. With crash probability p per processing, and a fresh batch
    # after each crash, the crash falls on position k of its batch with probability proportional to
    # (1-p)^(k-1), k = 1..10, leaving 11 - k pending: mean and spread follow from that.
    p = 0.01
    result = busim.simulate(
        scenario(
            duration=15,
            publishers=[{"name": "source", "event": "Job", "rate": 2000}],
            broker={"preset": "redis-streams", "latency": 0, "batch_size": BATCH},
            consumers=[consumer(processing_time="1ms", crash={"probability": p, "restart_after": 0})],
        )
    )
    worker = worker_of(result)
    weights = (1 - p) ** np.arange(BATCH)
    left = BATCH - np.arange(BATCH)
    mean = float((weights * left).sum() / weights.sum())
    sd = math.sqrt(float((weights * (left - mean) ** 2).sum() / weights.sum()))
    assert worker.crashes > 200
    per_crash = worker.stuck_pending / worker.crashes
    assert abs(per_crash - mean) <= 4 * sd / math.sqrt(worker.crashes)
    assert abs(mean - (BATCH + 1) / 2) < 0.1


# ---------------------------------------------------------------- crashes that cannot happen, and late ones
def test_a_scheduled_crash_that_cannot_happen_is_counted_with_why():
    # Ten jobs a second, one instance: its 20th processing (at 1.9 s) crashes it for 5 s, so the crash
    # set for 3 s finds it down; and it never processes a millionth message.
    result = busim.simulate(
        scenario(consumers=[consumer(crash={"after_messages": [20, 1_000_000], "at": "3s", "restart_after": "5s"})])
    )
    worker = worker_of(result)
    assert worker.crash_times_s == (pytest.approx(1.9),)
    assert worker.missed_crashes == 2
    assert worker.by_reason["missed_crashes"] == {"instance_down": 1, "count_not_reached": 1}


def test_a_crash_scheduled_after_the_bus_drained_still_happens_and_the_run_lasts_until_it():
    subject = scenario(drain_timeout="100s", consumers=[consumer(crash={"at": ["50s", "110s"]})])
    result = busim.simulate(subject)
    # The last at duration + drain_timeout: events due at that instant still happen.
    assert worker_of(result).crash_times_s == (50.0, 110.0)
    assert result.record.sim_time_s == 110.0


def test_the_story_of_a_rewound_kafka_record_tells_the_crash_before_the_commit():
    from busim.analysis.stories import Stories, What

    # Committed every 5 s: at 3 s instance 0 crashes with everything since 0 s uncommitted, and after the
    # 1 s session timeout instance 1 reads it all again.
    result = busim.simulate(
        scenario(
            broker={"preset": "kafka", "latency": 0, "partitions": 1, "session_timeout": "1s"},
            consumers=[consumer(instances=2, crash={"at": "3s", "restart_after": "10s"})],
        )
    )
    assert worker_of(result).by_reason["redelivered"] == {"offset_rewind": 30}
    happenings = [(h.time_s, h.instance, h.what) for h in Stories(result.record).story(5).happenings]
    assert (3.0, 0, What.UNCOMMITTED) in happenings
    assert happenings.index((3.0, 0, What.UNCOMMITTED)) < happenings.index((4.0, None, What.ARRIVED))


# ---------------------------------------------------------------- a delivery loop
def test_a_delivery_loop_stops_the_run_with_a_verdict_that_says_so():
    # Every processing crashes its instance, which comes back at once, and RabbitMQ requeues at once:
    # the same message is delivered for ever. The run stops at 100 deliveries per message plus 10,000.
    result = busim.simulate(
        scenario(broker={"preset": "rabbitmq"}, consumers=[consumer(crash={"probability": 1.0, "restart_after": 0})])
    )
    stop = result.record.stopped
    assert (stop.consumer, stop.deliveries, stop.messages) == ("worker", 100 * 100 + 10_000, 100)
    assert len(result.record.groups[0].deliveries) == stop.deliveries
    assert not result.record.drained and result.record.sim_time_s == stop.at_s
    assert result.summary.violations[0] == (
        f"the run stopped at {stop.at_s:.3f} s: worker had made 20,000 deliveries of its 100 messages, a delivery "
        "loop that would not end (each delivery crashing its instance, or coming back at once); the figures cover "
        "the run until then"
    )
    document = result.to_dict()["stopped"]
    assert document == {"consumer": "worker", "at_s": stop.at_s, "deliveries": 20_000, "messages": 100}
