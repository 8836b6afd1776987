"""Interleavings that once lost a message, stalled a run or mislabelled a delivery.

Each scenario was found by a fuzzer or a review; the seeds are the ones that
showed the fault. Each test states the rule that the fault broke.
"""

import numpy as np
import pytest

import busim
from busim.engine.records import DeliveryCause
from tests.conftest import consumer, scenario

POISSON = [{"name": "source", "event": "Job", "arrivals": "poisson", "rate": 10}]


def completes(result):
    worker = result.summary.consumers["worker"]
    return result.record.drained and worker.processed == worker.subscribed


@pytest.mark.parametrize(
    ("seed", "broker", "workers"),
    [
        # A member crashed while dropped for a slow poll, and never counted as live again.
        (
            1,
            {"partitions": 1, "commit": "per-message", "max_poll_interval": 0.2, "session_timeout": 0.2},
            {"instances": 1},
        ),
        # A member crashed finishing a record of a partition a rebalance had moved; the record was skipped.
        (
            913740,
            {"partitions": 8, "commit": "per-message", "session_timeout": 0.2},
            {"instances": 3, "concurrency": 2},
        ),
        # A dropped member crashed and cleared the mark of the member now reading its old partition.
        (
            803488,
            {
                "partitions": 3,
                "commit": "per-batch",
                "session_timeout": 0,
                "max_poll_interval": 0.05,
                "max_poll_records": 1,
            },
            {"instances": 3},
        ),
    ],
)
def test_kafka_never_skips_a_record_through_crashes_rebalances_and_slow_polls(seed, broker, workers):
    result = busim.simulate(
        scenario(
            seed=seed,
            duration=3,
            drain_timeout=300,
            publishers=POISSON,
            broker={"preset": "kafka", "latency": "1ms", **broker},
            consumers=[
                consumer(
                    processing_time={"exponential": {"mean": "40ms"}},
                    crash={"probability": 0.3, "restart_after": 0.5},
                    **workers,
                )
            ],
        )
    )
    assert completes(result)


def test_kafka_at_most_once_never_delivers_a_record_twice():
    # Commits before processing once moved the offset back (6 -> 5) when a batch committed what it processed.
    result = busim.simulate(
        scenario(
            seed=572889,
            duration=3,
            publishers=POISSON,
            broker={"preset": "kafka", "delivery": "at-most-once", "partitions": 4, "commit": "per-batch"},
            consumers=[
                consumer(
                    concurrency=3,
                    processing_time={"exponential": {"mean": "40ms"}},
                    crash={"probability": 0.3, "restart_after": 0.5},
                )
            ],
        )
    )
    assert not (result.record.groups[0].deliveries.attempt > 1).any()


def test_kafka_per_message_commits_still_poll_every_max_poll_records():
    # 10 ms records, 10 per poll, 1 s allowed between polls: no member is ever dropped.
    result = busim.simulate(
        scenario(
            duration=1,
            publishers=[{"name": "source", "event": "Job", "arrivals": "uniform", "rate": 500}],
            broker={"preset": "kafka", "partitions": 1, "latency": 0, "commit": "per-message", "max_poll_records": 10},
            consumers=[consumer(processing_time="10ms")],
        )
    )
    assert result.summary.consumers["worker"].redelivered == 0


def test_an_sqs_fifo_group_is_released_when_its_stale_copy_crashes():
    one_key = {"Job": {"key": "item", "fields": {"item": {"constant": 1}}}}
    result = busim.simulate(
        scenario(
            seed=1,
            duration=2,
            events=one_key,
            broker={"preset": "sqs-fifo", "latency": 0, "visibility_timeout": "1s"},
            consumers=[
                consumer(
                    instances=2,
                    processing_time={"uniform": {"low": 0.5, "high": 1.5}},
                    crash={"probability": 0.3, "restart_after": 0},
                )
            ],
        )
    )
    assert completes(result)


def test_a_late_ack_of_a_stale_sqs_fifo_copy_does_not_let_the_next_message_overtake():
    # A message's first copy outlives the 1 s visibility timeout and is acked while its second copy is
    # in flight: the next message waits for that second copy to end or to become visible again.
    one_key = {"Job": {"key": "item", "fields": {"item": {"constant": 1}}}}
    result = busim.simulate(
        scenario(
            duration=0.5,
            events=one_key,
            broker={"preset": "sqs-fifo", "latency": 0, "visibility_timeout": "1s"},
            consumers=[consumer(instances=2, processing_time={"uniform": {"low": 0.5, "high": 1.5}})],
        )
    )
    deliveries = result.record.groups[0].deliveries
    assert (deliveries.attempt == 2).sum() >= 3  # the case arises
    for message in range(1, 5):
        latest = np.flatnonzero(deliveries.message == message - 1)[-1]
        released_s = min(deliveries.done_s[latest], deliveries.receive_s[latest] + 1)
        assert deliveries.receive_s[deliveries.message == message].min() >= released_s - 1e-9


def test_a_full_queue_refusing_a_broker_duplicate_does_not_lose_the_message():
    result = busim.simulate(
        scenario(
            seed=2,
            publishers=[{"name": "source", "event": "Job", "arrivals": "uniform", "rate": 10, "retries": 0}],
            broker={"duplication": 0.5, "capacity": 1, "overflow": "reject-publish"},
            consumers=[consumer(processing_time="150ms")],
        )
    )
    group = result.record.groups[0]
    fates = group.fates()
    worker = result.summary.consumers["worker"]
    assert not np.isin(group.lost_message, np.flatnonzero(fates.processed)).any()
    assert worker.rejected_publishes == worker.lost  # every refusal here is a first publish, given up at once


def test_reject_publish_never_drops_a_message_the_broker_puts_back():
    result = busim.simulate(
        scenario(
            publishers=[{"name": "source", "event": "Job", "arrivals": "uniform", "rate": 20}],
            broker={"preset": "rabbitmq", "latency": 0, "prefetch": 5, "capacity": 3, "overflow": "reject-publish"},
            consumers=[consumer(processing_time="100ms", crash={"probability": 0.2, "restart_after": 0})],
        )
    )
    assert "overflow_dropped" not in result.summary.consumers["worker"].by_reason["lost"]
    assert completes(result)


def test_a_buffered_sqs_message_is_visible_again_one_timeout_after_receipt():
    # Ten messages arrive at 0, 0.01, ... 0.09 s; instance 0 reads message 0 alone at 0 s and
    # instance 1 message 1 at 0.01 s, 400 ms each. At 0.4 s instance 0 reads the other eight in one
    # batch and processes message k from 0.4 (k - 2) s. The five still waiting in its buffer 1 s
    # after that receipt (k >= 5) are visible again at 1.4 s, and idle instance 1 reads them in one
    # batch. (Message 4, in processing, times out too, but its late delete at 1.6 s removes it
    # before instance 1, busy with its batch until 3.4 s, reads again.)
    result = busim.simulate(
        scenario(
            duration=0.1,
            publishers=[{"name": "source", "event": "Job", "arrivals": "uniform", "rate": 100}],
            broker={
                "preset": "sqs-standard",
                "latency": 0,
                "duplication": 0,
                "visibility_timeout": 1,
                "batch_size": 10,
            },
            consumers=[consumer(instances=2, processing_time="400ms")],
        )
    )
    deliveries = result.record.groups[0].deliveries
    first = deliveries.attempt == 1
    assert deliveries.receive_s[first] == pytest.approx([0, 0.01, *[0.4] * 8])
    again = deliveries.attempt == 2
    assert deliveries.message[again].tolist() == list(range(5, 10))
    assert deliveries.arrival_s[again] == pytest.approx([1.4] * 5)
    assert deliveries.receive_s[again] == pytest.approx([1.4] * 5)
    assert deliveries.instance[again].tolist() == [1] * 5
    assert set(deliveries.cause[again].tolist()) == {DeliveryCause.ACK_TIMEOUT}


def test_redis_brings_back_a_lost_attempt_only_on_the_claimers_passes():
    result = busim.simulate(
        scenario(
            duration=2,
            broker={"preset": "redis-streams", "latency": 0, "loss": 0.5, "claim_interval": 1, "claim_min_idle": 0.3},
        )
    )
    deliveries = result.record.groups[0].deliveries
    again = deliveries.attempt > 1
    assert again.any()
    assert np.all(deliveries.arrival_s[again] == np.round(deliveries.arrival_s[again]))


def test_an_sqs_fifo_group_stays_held_while_its_message_is_on_the_way_back():
    # With broker latency, a message whose visibility timed out travels back for 50 ms; a late delete of
    # its older copy in that time must not let the next message of the group in ahead of it.
    one_key = {"Job": {"key": "item", "fields": {"item": {"constant": 1}}}}
    for seed in range(1, 6):
        result = busim.simulate(
            scenario(
                seed=seed,
                events=one_key,
                broker={
                    "preset": "sqs-fifo",
                    "latency": "50ms",
                    "visibility_timeout": "100ms",
                    "throughput": "unlimited",
                },
                consumers=[consumer(instances=3, processing_time={"exponential": {"mean": "80ms"}})],
            )
        )
        assert result.summary.consumers["worker"].out_of_order == 0


def test_a_late_ack_deletes_a_message_that_came_back_but_was_not_received_again():
    # One instance, 1.5 s processing, 1 s visibility: the copy waits in the queue until the first
    # processing deletes the message at 1.5 s, and is never received. RabbitMQ closes the channel
    # of a consumer past its consumer_timeout, so there the late ack fails and the copy is processed.
    slow = [consumer(processing_time="1.5s")]
    one = [{"name": "source", "event": "Job", "rate": 1, "count": 1, "arrivals": "uniform"}]
    sqs = busim.simulate(
        scenario(
            publishers=one,
            broker={"preset": "sqs-standard", "latency": 0, "duplication": 0, "visibility_timeout": 1},
            consumers=slow,
        )
    )
    assert len(sqs.record.groups[0].deliveries) == 1
    rabbit = busim.simulate(
        scenario(publishers=one, broker={"preset": "rabbitmq", "latency": 0, "consumer_timeout": 1}, consumers=slow)
    )
    assert len(rabbit.record.groups[0].deliveries) == 2


def test_a_message_back_after_its_group_moved_on_waits_its_turn():
    # 100 ms latency, 550 ms processing, 500 ms visibility, messages at 0, 1/3 and 2/3 s, two instances.
    # Message 0 (received 0.1 s) times out at 0.6 s, is deleted late at 0.65 s, which lets message 1 in;
    # its copy arrives at 0.7 s while message 1 holds the group, and must neither be received nor free
    # the group then. So no two messages of the group are ever in flight together.
    one_key = {"Job": {"key": "item", "fields": {"item": {"constant": 1}}}}
    result = busim.simulate(
        scenario(
            events=one_key,
            publishers=[{"name": "source", "event": "Job", "rate": 3, "count": 3, "arrivals": "uniform"}],
            broker={"preset": "sqs-fifo", "latency": "100ms", "visibility_timeout": "500ms"},
            consumers=[consumer(instances=2, processing_time="550ms")],
        )
    )
    deliveries = result.record.groups[0].deliveries
    assert deliveries.message.tolist() == [0, 1, 2]
    assert deliveries.receive_s.tolist() == pytest.approx([0.1, 0.65, 1.2])


def test_a_fifo_group_stays_held_while_its_prefetched_message_times_out_and_its_instance_crashes():
    # Found by fuzzing: a prefetched message timed out, was sent again, and then its instance crashed;
    # the crash's own timer found the message already redelivered and freed the group, letting the next
    # message of the group overtake the copy on its way back.
    result = busim.simulate(
        scenario(
            seed=1262280197,
            duration=3,
            drain_timeout=60,
            events={"Job": {"key": "item", "fields": {"item": {"uniform_int": {"low": 1, "high": 3}}}}},
            publishers=[{"name": "source", "event": "Job", "rate": 10, "publish_timeout": 0.3}],
            broker={
                "preset": "sqs-fifo",
                "latency": {"exponential": {"mean": "50ms"}},
                "visibility_timeout": 0.05,
                "throughput": "unlimited",
                "batch_size": 3,
            },
            consumers=[
                consumer(
                    instances=4,
                    concurrency=3,
                    processing_time={"uniform": {"low": 0, "high": 0.4}},
                    crash={"probability": 0.2, "restart_after": 0.1},
                )
            ],
        )
    )
    assert result.summary.consumers["worker"].out_of_order == 0
