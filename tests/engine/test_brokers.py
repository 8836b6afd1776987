"""Each broker preset's characteristic behaviour, with answers worked out from its rules.

The base scenario (tests.conftest) publishes 100 Job messages evenly at
10/s, message k at k/10 s, keyed by ``item`` in 1..5. Latency is set to 0
wherever a count or a time is checked exactly.
"""

import numpy as np
import pytest

import busim
from busim.engine.keys import partition_of
from busim.engine.randomness import RandomStreams
from busim.engine.records import DeliveryCause, Outcome
from busim.scenario.presets import PRESET_NAMES
from tests.conftest import consumer, scenario

COUNT = 100
COUNTER = {"state": {"done": {}}, "effects": [{"counter": "done", "key": "item", "add": 1}]}


def worker_of(result):
    return result.summary.consumers["worker"]


def deliveries_of(result):
    return result.record.groups[0].deliveries


def always_crashing(broker, **fields):
    """Every processing crashes after its effects, before the ack; the instance restarts at once."""
    return busim.simulate(
        scenario(broker=broker, consumers=[consumer(crash={"probability": 1.0, "restart_after": 0}, **fields)])
    )


# ---------------------------------------------------------------- ordering
def keyed(count_per_s=200, duration=20):
    """Many messages over 50 keys, so that reordering has a chance to show."""
    return {
        "duration": duration,
        "events": {"Job": {"key": "item", "fields": {"item": {"uniform_int": {"low": 1, "high": 50}}}}},
        "publishers": [{"name": "source", "event": "Job", "rate": count_per_s}],
    }


def test_kafka_keeps_per_key_order_with_one_member_per_partition():
    broker = {"preset": "kafka", "partitions": 4, "latency": {"exponential": {"mean": "5ms"}}}
    workers = consumer(instances=4, processing_time={"exponential": {"mean": "3ms"}})
    result = busim.simulate(scenario(broker=broker, consumers=[workers], **keyed()))
    assert worker_of(result).out_of_order == 0
    # The same load on one queue with competing consumers reorders messages of a key.
    ideal = busim.simulate(
        scenario(broker={"latency": {"exponential": {"mean": "5ms"}}}, consumers=[workers], **keyed())
    )
    assert worker_of(ideal).out_of_order > 0


def test_kafka_leaves_members_beyond_the_partition_count_idle():
    broker = {"preset": "kafka", "partitions": 2, "latency": 0}
    result = busim.simulate(scenario(broker=broker, consumers=[consumer(instances=5)], **keyed()))
    assert np.unique(deliveries_of(result).instance).tolist() == [0, 1]


def test_a_key_always_goes_to_the_same_partition():
    from busim.engine.keys import stable_partition

    assert [stable_partition(key, 12) for key in (1, 2, "sku-1")] == [stable_partition(k, 12) for k in (1, 2, "sku-1")]
    spread = np.bincount([stable_partition(key, 4) for key in range(4000)], minlength=4)
    assert spread.min() > 900  # 1000 each on average; 900 is more than 3 standard deviations (27) away


def test_sqs_standard_delivers_out_of_order_and_with_duplicates():
    broker = {"preset": "sqs-standard", "duplication": 0.01}
    result = busim.simulate(scenario(broker=broker, consumers=[consumer()], **keyed()))
    worker = worker_of(result)
    assert worker.out_of_order > 0  # one worker: only the broker can reorder
    assert worker.by_reason["duplicate_deliveries"]["broker_duplicate"] > 0
    in_order = busim.simulate(scenario(broker={"preset": "rabbitmq"}, consumers=[consumer()], **keyed()))
    assert worker_of(in_order).out_of_order == 0


# ---------------------------------------------------------------- Kafka offsets
# A seed whose consumer crash stream first fires on the 40th processing, then not for 150 more:
# more than the 100 processings left after the crash, replays included.
CRASH_ON_40TH = 9154


def test_the_crash_seed_crashes_on_the_40th_processing_only():
    rng = RandomStreams.from_seed(CRASH_ON_40TH).generator("consumer", "worker", "crash")
    assert rng.geometric(1 / 40) == 40
    assert rng.geometric(1 / 40) > 150


def kafka_crash_once(commit, **broker):
    """One partition, one member, one crash after the 40th record (message 39, done at 3.9 s)."""
    return busim.simulate(
        scenario(
            broker={"preset": "kafka", "partitions": 1, "latency": 0, "commit": commit, **broker},
            consumers=[consumer(crash={"probability": 1 / 40, "restart_after": 1}, **COUNTER)],
            seed=CRASH_ON_40TH,
        )
    )


def test_kafka_redelivers_the_uncommitted_tail_after_a_crash():
    # Auto-commit every 5 s: at the crash (3.9 s) nothing is committed yet, so records 0..38 come
    # again as offset rewinds, 39 as the crash before its commit, after the 45 s session timeout.
    result = kafka_crash_once("auto")
    worker = worker_of(result)
    deliveries = deliveries_of(result)
    assert worker.crashes == 1
    assert worker.by_reason["redelivered"] == {"offset_rewind": 39, "crash_before_ack": 1}
    assert worker.duplicate_effects == 40
    replayed = deliveries.attempt > 1
    assert deliveries.take_s[replayed].min() == pytest.approx(3.9 + 45)
    assert deliveries.message[replayed].tolist() == list(range(40))  # in partition order


def test_kafka_committing_after_each_record_redelivers_only_the_crashed_one():
    worker = worker_of(kafka_crash_once("per-message"))
    assert worker.by_reason["redelivered"] == {"crash_before_ack": 1}
    assert worker.duplicate_effects == 1


def test_kafka_auto_commit_bounds_the_rewind_by_its_interval():
    # The last commit before the crash, at 3 s, covers records 0..29 (30 is published at 3 s, after
    # the tick): 30..38 rewind, 39 crashed.
    worker = worker_of(kafka_crash_once("auto", auto_commit_interval="1s"))
    assert worker.by_reason["redelivered"] == {"offset_rewind": 9, "crash_before_ack": 1}


def test_kafka_session_timeout_pauses_a_crashed_members_partitions():
    result = kafka_crash_once("per-message", session_timeout="10s")
    deliveries = deliveries_of(result)
    assert deliveries.take_s[deliveries.attempt > 1].min() == pytest.approx(3.9 + 10)


# ---------------------------------------------------------------- redelivery mechanisms
def test_a_consumer_slower_than_the_sqs_visibility_timeout_processes_a_message_twice():
    # Received at 0 s and visible again at 1 s, when the other instance receives it: processed twice.
    # (With one instance the copy would wait until the first processing deleted it at 1.5 s, and go.)
    result = busim.simulate(
        scenario(
            publishers=[{"name": "source", "event": "Job", "rate": 1, "count": 1, "arrivals": "uniform"}],
            broker={"preset": "sqs-standard", "latency": 0, "duplication": 0, "visibility_timeout": "1s"},
            consumers=[consumer(instances=2, processing_time="1.5s", **COUNTER)],
        )
    )
    worker = worker_of(result)
    assert worker.delivered == 2
    assert worker.duplicate_effects == 1
    assert worker.by_reason["redelivered"] == {"ack_timeout": 1}
    assert deliveries_of(result).take_s.tolist() == [0.0, 1.0]


def test_rabbitmq_requeues_at_once_when_a_crashed_consumer_channel_closes():
    result = always_crashing({"preset": "rabbitmq-quorum", "latency": 0, "delivery_limit": 2})
    deliveries = deliveries_of(result)
    # Each redelivery is taken the moment its predecessor crashed, not after a timeout.
    again = deliveries.attempt > 1
    assert np.all(deliveries.take_s[again] == deliveries.done_s[np.flatnonzero(again) - 1])


def test_rabbitmq_quorum_dead_letters_after_its_delivery_limit():
    # delivery-limit 20: a message returned 20 times is delivered 21 times, then dead-lettered.
    worker = worker_of(always_crashing({"preset": "rabbitmq-quorum", "latency": 0}))
    assert worker.delivered == 21 * COUNT
    assert worker.dead_lettered == COUNT
    assert worker.by_reason["dead_lettered"] == {"crash_before_ack": COUNT}


def test_sqs_moves_a_message_to_the_dead_letter_queue_after_max_receive_count():
    broker = {"preset": "sqs-standard", "latency": 0, "duplication": 0, "max_receive_count": 3, "visibility_timeout": 1}
    worker = worker_of(always_crashing(broker))
    assert worker.delivered == 3 * COUNT
    assert worker.dead_lettered == COUNT


def test_nats_redelivers_after_ack_wait_up_to_max_deliver():
    result = always_crashing(
        {"preset": "nats-jetstream", "latency": 0, "ack_wait": "2s", "max_deliver": 4, "max_ack_pending": 1}
    )
    worker = worker_of(result)
    deliveries = deliveries_of(result)
    assert worker.delivered == 4 * COUNT
    assert worker.dead_lettered == COUNT
    first = deliveries.message == 0
    assert deliveries.take_s[first].tolist() == [0.0, 2.0, 4.0, 6.0]


def test_redis_streams_never_redelivers_without_a_claimer():
    result = always_crashing({"preset": "redis-streams", "latency": 0}, **COUNTER)
    worker = worker_of(result)
    assert worker.delivered == COUNT
    assert worker.redelivered == 0
    assert worker.crashes == COUNT
    # Processed, then left pending forever: nothing lost, but nothing acked either.
    assert worker.processed == COUNT


def test_redis_streams_claimer_takes_over_idle_pending_entries_on_its_pass():
    broker = {"preset": "redis-streams", "latency": 0, "claim_interval": "4s", "claim_min_idle": "3s"}
    result = busim.simulate(
        scenario(
            broker=broker,
            consumers=[consumer(crash={"probability": 1.0, "restart_after": 0}, idempotency="dedup")],
            publishers=[{"name": "source", "event": "Job", "rate": 1, "count": 2, "arrivals": "uniform"}],
            drain_timeout=20,
        )
    )
    deliveries = deliveries_of(result)
    # Message 0 received at 0 s is idle 3 s at 3 s, claimed at the next pass, 4 s; then 8 s, ...
    assert deliveries.take_s[deliveries.message == 0][:3].tolist() == [0.0, 4.0, 8.0]


def test_a_crashed_redis_consumer_leaves_what_it_held_pending_not_lost():
    result = busim.simulate(
        scenario(
            broker={"preset": "redis-streams", "latency": 0},
            consumers=[
                consumer(
                    concurrency=2, processing_time={"uniform": {"low": 0.1, "high": 0.3}}, crash={"probability": 0.2}
                )
            ],
        )
    )
    worker, group = worker_of(result), result.record.groups[0]
    # Each crash leaves the entry it had processed (not acked) and what the other worker held pending.
    assert worker.lost == 0
    assert worker.by_reason["stuck_pending"]["crash_before_ack"] == worker.crashes == 18
    assert worker.stuck_pending == sum(worker.by_reason["stuck_pending"].values()) == 36
    assert worker.stuck_pending_unprocessed == worker.by_reason["stuck_pending"]["crash_in_flight"] == 18
    assert worker.processed + worker.stuck_pending_unprocessed == COUNT
    # Each has been idle since its delivery, until the run ended.
    since_s = {
        int(message): float(receive_s)
        for message, receive_s in zip(group.deliveries.message, group.deliveries.receive_s)
    }
    ages_s = [result.record.sim_time_s - since_s[int(m)] for m in group.stuck_pending_message]
    assert worker.stuck_pending_age_s.max == pytest.approx(max(ages_s))
    assert "worker: 18 messages never processed, stuck pending: they wait for a claim" in result.summary.violations[0]


def test_each_redis_worker_reads_its_own_batch_and_works_through_it():
    # One message every 0.1 s to two workers of one instance, 260 ms each, XREADGROUP COUNT 10. A worker
    # reads whatever has arrived when it has nothing left, and nothing is read while both are busy:
    # worker A reads [0] at 0 s, B [1] at 0.1 s, A [2] at 0.26 s, B [3] at 0.36 s, A [4, 5] at 0.52 s,
    # B [6] at 0.62 s, B [7, 8] at 0.88 s (while A still has 5 to do), A [9] at 1.04 s.
    result = busim.simulate(
        scenario(
            publishers=[{"name": "source", "event": "Job", "arrivals": "uniform", "rate": 10, "count": 10}],
            broker={"preset": "redis-streams", "latency": 0, "batch_size": 10},
            consumers=[consumer(concurrency=2, processing_time="260ms")],
        )
    )
    deliveries = deliveries_of(result)
    assert deliveries.message.tolist() == list(range(10))
    assert deliveries.receive_s == pytest.approx([0, 0.1, 0.26, 0.36, 0.52, 0.52, 0.62, 0.88, 0.88, 1.04])
    assert deliveries.take_s == pytest.approx([0, 0.1, 0.26, 0.36, 0.52, 0.78, 0.62, 0.88, 1.14, 1.04])


# ---------------------------------------------------------------- prefetch
def test_prefetched_messages_come_back_after_a_crash():
    def redelivered(prefetch):
        result = busim.simulate(
            scenario(
                broker={"preset": "rabbitmq", "latency": 0, "prefetch": prefetch},
                consumers=[consumer(processing_time="0.5s", crash={"probability": 0.05, "restart_after": 0})],
            )
        )
        return worker_of(result).by_reason["redelivered"]

    assert "prefetched" not in redelivered(1)
    assert redelivered(50)["prefetched"] > 0


def test_an_sqs_worker_works_through_its_batch_before_it_reads_again():
    # Message k arrives at 0.9 + k/10 s. The worker's first read, at 0.9 s, finds message 0 alone;
    # its next, when that is done at 1.9 s, takes the nine that arrived meanwhile, and it processes
    # message k from 0.9 + k to 1.9 + k s. The visibility timers run from receipt: messages 6..9 are
    # visible again at 6.9 s, but the worker reads next at 10.9 s, by when their late deletes have
    # removed them, so nothing is received twice.
    result = busim.simulate(
        scenario(
            publishers=[{"name": "source", "event": "Job", "rate": 10, "count": 10, "arrivals": "uniform"}],
            broker={
                "preset": "sqs-standard",
                "latency": 0.9,
                "duplication": 0,
                "batch_size": 10,
                "visibility_timeout": 5,
            },
            consumers=[consumer(processing_time="1s")],
        )
    )
    deliveries = deliveries_of(result)
    assert deliveries.receive_s == pytest.approx([0.9, *[1.9] * 9])
    assert deliveries.take_s == pytest.approx(0.9 + np.arange(10))
    assert worker_of(result).duplicate_deliveries == 0


# ---------------------------------------------------------------- capacity and throughput
def test_a_full_queue_drops_its_oldest_message_with_drop_head():
    # One message per 0.1 s, served one per second, room for 5: of the 100, the worker takes
    # the first at 0 s, one per second after; the others are pushed out by newer arrivals.
    result = busim.simulate(
        scenario(
            broker={"preset": "rabbitmq", "latency": 0, "capacity": 5, "prefetch": 1},
            consumers=[consumer(processing_time="1s")],
        )
    )
    worker = worker_of(result)
    assert worker.processed == 15  # taken at 0, 1, ..., 9 s, plus the 5 left when publishing ends
    assert worker.lost == 85
    assert worker.by_reason["lost"] == {"overflow_dropped": 85}
    assert worker.max_backlog == 5


def test_a_full_queue_refuses_publishes_with_reject_publish():
    broker = {"preset": "rabbitmq", "latency": 0, "capacity": 5, "prefetch": 1, "overflow": "reject-publish"}
    gives_up = [{"name": "source", "event": "Job", "arrivals": "uniform", "rate": 10, "retries": 0}]
    result = busim.simulate(scenario(broker=broker, consumers=[consumer(processing_time="1s")], publishers=gives_up))
    worker = worker_of(result)
    # The queue keeps its oldest 5: the first one taken at 0 s is replaced, then one in 10 gets in.
    assert worker.processed == 15
    assert worker.by_reason["lost"] == {"overflow_rejected": 85}
    retrying = [{**gives_up[0], "retries": "unlimited", "publish_timeout": "2s"}]
    result = busim.simulate(scenario(broker=broker, consumers=[consumer(processing_time="1s")], publishers=retrying))
    assert worker_of(result).processed == COUNT
    assert worker_of(result).rejected_publishes > 85


def test_throughput_spaces_the_receives_from_a_queue():
    result = busim.simulate(scenario(broker={"latency": 0, "throughput": "5/s"}, consumers=[consumer(instances=4)]))
    take_s = deliveries_of(result).take_s
    assert np.diff(take_s) == pytest.approx(np.full(COUNT - 1, 0.2))


def test_sqs_fifo_serves_one_message_of_a_group_at_a_time():
    # Two workers, one key: the second worker never gets a message while the first holds one.
    one_key = {"Job": {"key": "item", "fields": {"item": {"constant": 1}}}}
    result = busim.simulate(
        scenario(
            events=one_key,
            broker={"preset": "sqs-fifo", "latency": 0, "throughput": "unlimited"},
            consumers=[consumer(instances=2, processing_time="0.3s")],
        )
    )
    deliveries = deliveries_of(result)
    assert np.all(deliveries.take_s[1:] >= deliveries.done_s[:-1])
    assert worker_of(result).out_of_order == 0


def test_sqs_fifo_blocks_a_group_after_a_crash_until_the_visibility_timeout():
    one_key = {"Job": {"key": "item", "fields": {"item": {"constant": 1}}}}
    result = busim.simulate(
        scenario(
            events=one_key,
            publishers=[{"name": "source", "event": "Job", "rate": 10, "count": 3, "arrivals": "uniform"}],
            broker={"preset": "sqs-fifo", "latency": 0, "visibility_timeout": "10s"},
            consumers=[consumer(instances=2, crash={"probability": 1.0, "restart_after": 0}, idempotency="dedup")],
        )
    )
    deliveries = deliveries_of(result)
    # Message 0 crashes at 0 s; nothing of its group moves until it is visible again at 10 s.
    assert deliveries.message[:3].tolist() == [0, 0, 0]
    assert deliveries.take_s[:3].tolist() == [0.0, 10.0, 20.0]


# ---------------------------------------------------------------- producer retries and dedup windows
def resent(broker, publish_timeout, **publisher):
    """Every publish ack lost once: each message is published again after ``publish_timeout``."""
    publishers = [
        {
            "name": "source",
            "event": "Job",
            "arrivals": "uniform",
            "rate": 10,
            "retries": 1,
            "publish_timeout": publish_timeout,
            **publisher,
        }
    ]
    return busim.simulate(
        scenario(
            broker={"latency": 0, "publish_ack_loss": 1.0, **broker},
            publishers=publishers,
            consumers=[consumer(**COUNTER)],
        )
    )


def test_sqs_fifo_drops_a_resend_inside_its_five_minute_window_but_not_after():
    inside = resent({"preset": "sqs-fifo", "throughput": "unlimited"}, "1m")
    assert inside.summary.publishers["source"].deduplicated == COUNT
    assert worker_of(inside).duplicate_effects == 0
    after = resent({"preset": "sqs-fifo", "throughput": "unlimited"}, "301s")
    assert after.summary.publishers["source"].deduplicated == 0
    assert worker_of(after).duplicate_effects == COUNT
    assert worker_of(after).by_reason["duplicate_deliveries"] == {"dedup_window_expired": COUNT}


def test_a_broker_without_deduplication_keeps_every_producer_retry():
    result = resent({"preset": "rabbitmq"}, "1s")
    assert worker_of(result).by_reason["duplicate_deliveries"] == {"producer_retry": COUNT}


def test_kafkas_idempotent_producer_removes_retry_duplicates_only():
    assert worker_of(resent({"preset": "kafka"}, "1m")).duplicate_effects == 0
    assert worker_of(resent({"preset": "kafka", "idempotent_producer": False}, "1m")).duplicate_effects == COUNT


def test_nats_duplicate_window_is_two_minutes():
    assert worker_of(resent({"preset": "nats-jetstream"}, "119s")).duplicate_effects == 0
    assert worker_of(resent({"preset": "nats-jetstream"}, "121s")).duplicate_effects == COUNT


def test_a_publisher_gives_up_when_the_outage_outlasts_its_retries():
    # Outage 2..5 s; retries 2 x 0.5 s cover a publish made from 4.0 s on: 2.0 .. 3.9 s fail (20).
    publishers = [
        {"name": "source", "event": "Job", "arrivals": "uniform", "rate": 10, "retries": 2, "publish_timeout": "0.5s"}
    ]
    result = busim.simulate(scenario(broker={"outages": [{"at": 2, "duration": 3}]}, publishers=publishers))
    assert result.summary.publishers["source"].failed == 20
    assert worker_of(result).by_reason["lost"] == {"publish_failed": 20}
    assert worker_of(result).processed == 80


# ---------------------------------------------------------------- fan-out
def test_sns_fans_out_to_one_queue_per_group_each_with_its_own_redelivery():
    crashing = consumer(name="billing", crash={"probability": 1.0, "restart_after": 0}, idempotency="dedup")
    steady = consumer(name="audit")
    broker = {"preset": "sns-sqs", "latency": 0, "duplication": 0, "visibility_timeout": 1, "max_receive_count": 2}
    result = busim.simulate(scenario(broker=broker, consumers=[crashing, steady]))
    summary = result.summary.consumers
    assert summary["billing"].delivered == 2 * COUNT
    assert summary["billing"].dead_lettered == COUNT
    assert summary["audit"].delivered == COUNT
    assert summary["audit"].redelivered == 0


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_every_preset_runs_the_base_scenario_and_processes_every_message(preset):
    result = busim.simulate(scenario(broker={"preset": preset}))
    worker = worker_of(result)
    assert result.record.drained
    assert worker.processed == COUNT
    assert worker.latency_s.end_to_end.count == COUNT


def test_rabbitmq_requeues_a_crashed_consumers_messages_to_their_places():
    # One consumer holding 10 at a time crashes now and then; what it held goes back ahead of
    # everything published later, in publish order, so one consumer still sees publish order.
    result = busim.simulate(
        scenario(
            broker={"preset": "rabbitmq", "latency": 0, "prefetch": 10},
            consumers=[consumer(processing_time="0.2s", crash={"probability": 0.1, "restart_after": 0})],
        )
    )
    worker = worker_of(result)
    assert worker.by_reason["redelivered"]["prefetched"] > 0
    assert worker.out_of_order == 0
    # What it held but never started was aborted with it.
    deliveries = deliveries_of(result)
    never_started = np.isnan(deliveries.take_s)
    assert never_started.any()
    assert np.all(deliveries.outcome[never_started] == Outcome.ABORTED)


# A seed whose crash stream fires on the 200th processing, then not for 600 more.
CRASH_ON_200TH = 7643


def test_kafka_rebalances_when_a_session_expires_and_when_the_member_comes_back():
    rng = RandomStreams.from_seed(CRASH_ON_200TH).generator("consumer", "worker", "crash")
    assert rng.geometric(1 / 200) == 200 and rng.geometric(1 / 200) > 600
    result = busim.simulate(
        scenario(
            seed=CRASH_ON_200TH,
            duration=60,
            broker={"preset": "kafka", "partitions": 2, "latency": 0, "session_timeout": "5s", "commit": "per-message"},
            consumers=[consumer(instances=2, crash={"probability": 1 / 200, "restart_after": 20})],
        )
    )
    group = result.record.groups[0]
    deliveries = group.deliveries
    # The 200th processing is message 199, published (and processed) at 19.9 s.
    assert group.crash_s.tolist() == [pytest.approx(19.9)]
    crashed = int(group.crash_instance[0])
    survivor = 1 - crashed

    selection = result.record.messages.select(["Job"])
    partition = partition_of(result.record.scenario, result.record.messages, selection, 2)

    def partitions_taken_by(instance, start_s, end_s):
        window = (deliveries.take_s > start_s) & (deliveries.take_s < end_s) & (deliveries.instance == instance)
        return set(partition[deliveries.message[window]].tolist())

    own = partitions_taken_by(survivor, 0, 19.9)
    assert len(own) == 1 and partitions_taken_by(crashed, 0, 19.9) == {0, 1} - own
    # Until the session expires (24.9 s) the crashed member's partition waits; the survivor keeps to its own.
    assert partitions_taken_by(crashed, 19.9, 24.9) == set()
    assert partitions_taken_by(survivor, 19.9, 24.9) == own
    # Then the survivor owns both, until the member is back (39.9 s) and takes its partition again.
    assert partitions_taken_by(crashed, 24.9, 39.9) == set()
    assert partitions_taken_by(survivor, 24.9, 39.9) == {0, 1}
    assert partitions_taken_by(crashed, 39.9, 70) == {0, 1} - own
    assert partitions_taken_by(survivor, 39.9, 70) == own
    assert worker_of(result).processed == 600


def slow_kafka_record(processing_time):
    """One record, two members, and max.poll.interval of 2 s."""
    return busim.simulate(
        scenario(
            publishers=[{"name": "source", "event": "Job", "rate": 1, "count": 1, "arrivals": "uniform"}],
            broker={"preset": "kafka", "partitions": 1, "latency": 0, "commit": "per-message", "max_poll_interval": 2},
            consumers=[consumer(instances=2, processing_time=processing_time, **COUNTER)],
            drain_timeout=9,
        )
    )


def test_a_kafka_member_slower_than_max_poll_interval_is_expelled_and_its_record_processed_again():
    # 3 s per record against 2 s: at 2 s the first member is dropped and the record goes to the other,
    # whose own deadline passes at 4 s, and so on: a record that never fits loops between members.
    result = slow_kafka_record("3s")
    deliveries = deliveries_of(result)
    assert deliveries.take_s.tolist()[:4] == [0.0, 2.0, 4.0, 6.0]
    assert deliveries.instance.tolist()[:4] == [0, 1, 0, 1]
    assert set(deliveries.cause[1:].tolist()) == {DeliveryCause.REBALANCE}
    assert worker_of(result).duplicate_effects > 0
    assert not result.record.drained
    in_time = slow_kafka_record("1.9s")
    assert len(deliveries_of(in_time)) == 1


def test_a_duplicate_record_in_a_kafka_log_is_a_duplicate_not_a_redelivery():
    result = resent({"preset": "kafka", "idempotent_producer": False}, "1s")
    worker = worker_of(result)
    assert worker.by_reason["duplicate_deliveries"] == {"producer_retry": COUNT}
    assert worker.redelivered == 0


def test_a_scenario_built_in_code_gets_the_checks_a_file_gets():
    from busim.errors import ScenarioError

    endless = scenario(broker={"publish_ack_loss": 1.0})
    with pytest.raises(ScenarioError) as error:
        busim.simulate(endless)
    assert str(error.value) == (
        "<scenario>: broker.publish_ack_loss: with every publish ack lost, source would resend forever; "
        "give publishers[].retries a number or lower publish_ack_loss"
    )


def test_sqs_throughput_counts_receive_calls_of_up_to_a_batch_each():
    # 300 calls per second, each of up to 10 messages: the first call, at 0 s, finds one message of the
    # burst (one every 0.1 ms); the next ten, 1/300 s apart, take ten each.
    burst = [{"name": "source", "event": "Job", "arrivals": "uniform", "rate": 10_000, "count": 100}]
    result = busim.simulate(
        scenario(
            publishers=burst,
            broker={"preset": "sqs-fifo", "latency": 0, "batch_size": 10},
            events={"Job": {"key": "item", "fields": {"item": {"sequence": {}}}}},
            consumers=[consumer(instances=100)],
        )
    )
    read_s, per_read = np.unique(deliveries_of(result).receive_s, return_counts=True)
    assert read_s == pytest.approx(np.arange(11) / 300)
    assert per_read.tolist() == [1, *[10] * 9, 9]


def test_rabbitmq_redelivers_a_delivery_unacked_after_consumer_timeout():
    result = busim.simulate(
        scenario(
            publishers=[{"name": "source", "event": "Job", "rate": 1, "count": 1, "arrivals": "uniform"}],
            broker={"preset": "rabbitmq", "latency": 0, "consumer_timeout": "1s"},
            consumers=[consumer(instances=2, processing_time="1.5s", **COUNTER)],
        )
    )
    deliveries = deliveries_of(result)
    assert deliveries.take_s.tolist() == [0.0, 1.0]
    assert deliveries.instance.tolist() == [0, 1]
    assert worker_of(result).by_reason["redelivered"] == {"ack_timeout": 1}


def test_kafkas_idempotent_producer_leaves_other_duplicates_alone():
    result = busim.simulate(scenario(broker={"preset": "kafka", "duplication": 0.2}, consumers=[consumer(**COUNTER)]))
    worker = worker_of(result)
    # 100 messages, each duplicated with probability 0.2: 20 expected, 0 has probability 0.8^100.
    assert worker.by_reason["duplicate_deliveries"]["broker_duplicate"] > 0
    assert worker.duplicate_effects == worker.by_reason["duplicate_deliveries"]["broker_duplicate"]
