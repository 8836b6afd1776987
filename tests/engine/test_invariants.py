"""Properties every run must have, checked on random small scenarios (Hypothesis).

Hand-worked and statistical tests pin known answers; these catch what no one
thought to work out: a stalled queue, a message counted twice, a delivery
taken during an outage, a latency whose parts do not add up.
"""

import json

import numpy as np
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import busim
from busim.engine.records import Outcome
from busim.report.files import results_json
from tests.conftest import scenario

durations_ms = st.sampled_from([0, 1, 5, 20, 100])


@st.composite
def time_distribution(draw):
    mean_ms = draw(durations_ms)
    kind = draw(st.sampled_from(["constant", "exponential", "uniform", "lognormal"]))
    if mean_ms == 0 or kind == "constant":
        return f"{mean_ms}ms"
    if kind == "exponential":
        return {"exponential": {"mean": f"{mean_ms}ms"}}
    if kind == "uniform":
        return {"uniform": {"low": "0ms", "high": f"{2 * mean_ms}ms"}}
    return {"lognormal": {"median": f"{mean_ms}ms", "sigma": 0.8}}


@st.composite
def crashes(draw, instances: int, probabilities: list[float]):
    """No crash, crashes by chance, scheduled ones (at times, after counts, on a fixed or a random
    instance), or both; scheduled times lie 1 s apart, longer than any restart drawn."""
    kind = draw(st.sampled_from(["none", "chance", "at", "after", "mixed"]))
    if kind == "none":
        return None
    crash: dict = {"restart_after": draw(st.sampled_from([0, 0.005, 0.05]))}
    if kind in ("chance", "mixed"):
        crash["probability"] = draw(st.sampled_from(probabilities))
    if kind in ("at", "mixed"):
        crash["at"] = draw(st.lists(st.sampled_from([0.5, 1.5, 2.5, 3.5]), min_size=1, max_size=3, unique=True))
    if kind in ("after", "mixed"):
        crash["after_messages"] = sorted(draw(st.lists(st.sampled_from([1, 5, 20, 100]), min_size=1, unique=True)))
    if kind != "chance":
        crash["instance"] = draw(st.sampled_from([*range(instances), "random"]))
    return crash


@st.composite
def scenarios(draw):
    outages = []
    if draw(st.booleans()):
        start = draw(st.sampled_from([0.5, 1.0, 2.5]))
        outages.append({"at": start, "duration": draw(st.sampled_from([0.1, 0.5, 1.0]))})
    instances = draw(st.integers(1, 3))
    worker = {
        "name": "worker",
        "subscribes": ["Job"],
        "instances": instances,
        "concurrency": draw(st.integers(1, 3)),
        "processing_time": draw(time_distribution()),
        "idempotency": draw(st.sampled_from(["none", "dedup"])),
        "crash": draw(crashes(instances, [0.01, 0.1, 0.5])),
        "state": {"count": {"initial": 0}},
        "effects": [{"counter": "count", "key": "item", "add": 1}],
    }
    return scenario(
        seed=draw(st.integers(0, 2**32)),
        duration=4,
        drain_timeout=draw(st.sampled_from([1, 600])),
        publishers=[
            {
                "name": "source",
                "event": "Job",
                "arrivals": draw(st.sampled_from(["poisson", "uniform"])),
                "rate": draw(st.sampled_from([5, 50, 200])),
            }
        ],
        broker={
            "delivery": draw(st.sampled_from(["at-least-once", "at-most-once"])),
            "latency": draw(time_distribution()),
            "duplication": draw(st.sampled_from([0, 0.05, 0.5])),
            "loss": draw(st.sampled_from([0, 0.05, 0.5])),
            "ack_timeout": draw(st.sampled_from([0.05, 0.5, 30])),
            "max_deliveries": draw(st.sampled_from([None, 1, 3])),
            "outages": outages,
        },
        consumers=[worker],
    )


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
# Found by this test: with zero latency and processing, a wake-up a hair early made work finish before it began.
@example(
    scenario(
        seed=3,
        duration=4,
        drain_timeout=1,
        publishers=[{"name": "source", "event": "Job", "arrivals": "poisson", "rate": 50}],
        broker={"ack_timeout": 0.05},
        consumers=[
            {
                "name": "worker",
                "subscribes": ["Job"],
                "state": {"count": {}},
                "effects": [{"counter": "count", "key": "item", "add": 1}],
            }
        ],
    )
)
def test_every_run_keeps_its_books(subject):
    result = busim.simulate(subject)
    check_books(subject, result)
    record, worker = result.record, result.summary.consumers["worker"]
    deliveries = record.groups[0].deliveries
    for outage in subject.broker.outages:
        assert not np.any((deliveries.arrival_s >= outage.at) & (deliveries.arrival_s < outage.end_s))
    applied = deliveries.message[deliveries.outcome == Outcome.APPLIED]
    assert worker.duplicate_effects == applied.size - np.unique(applied).size
    # At-least-once without a delivery limit loses nothing.
    if record.drained and subject.broker.delivery == "at-least-once" and subject.broker.max_deliveries == "unlimited":
        assert worker.processed == worker.subscribed
    if subject.drain_timeout == 600 and subject.broker.delivery == "at-least-once" and subject.broker.ack_timeout < 1:
        # Ten minutes is ample for four seconds of traffic and sub-second timeouts. (With 30 s timeouts
        # and loss and crashes of 0.5 each, an attempt succeeds with probability 1/4: one of 200
        # messages needing more than 20 attempts is likely.)
        assert record.drained


def check_books(subject, result):
    """What every run must satisfy, whatever its broker."""
    record, worker = result.record, result.summary.consumers["worker"]
    group = record.groups[0]
    deliveries = group.deliveries
    fates = group.fates()

    # Every message ends in exactly one place.
    dead_only = fates.dead_lettered & ~fates.processed
    stuck_only = fates.stuck_pending & ~fates.processed
    places = fates.processed.sum() + fates.lost.sum() + dead_only.sum() + stuck_only.sum() + fates.in_flight.sum()
    assert places == worker.subscribed
    assert not (fates.lost & fates.dead_lettered).any()
    assert not (fates.stuck_pending & (fates.lost | fates.dead_lettered)).any()

    # Causal order: arrival, receipt, start, end; nothing received while the broker is down.
    assert np.all(deliveries.receive_s >= deliveries.arrival_s)
    started = ~np.isnan(deliveries.take_s)
    assert np.all(deliveries.take_s[started] >= deliveries.receive_s[started])
    finished = ~np.isnan(deliveries.done_s)
    assert np.all(deliveries.done_s[finished & started] >= deliveries.take_s[finished & started])
    for outage in subject.broker.outages:
        assert not np.any((deliveries.receive_s >= outage.at) & (deliveries.receive_s < outage.end_s))

    # The latency parts add up to the whole.
    latency = worker.latency_s
    if latency.end_to_end.count:
        parts = latency.broker.mean + latency.queue_wait.mean + latency.processing.mean
        assert abs(latency.end_to_end.mean - parts) <= 1e-9 * max(1.0, latency.end_to_end.mean)

    # Counts agree with each other and with the record.
    assert worker.delivered == len(deliveries)
    for figure in ("lost", "redelivered", "duplicate_deliveries", "dead_lettered", "stuck_pending", "in_flight_at_end"):
        assert sum(worker.by_reason[figure].values()) == getattr(worker, figure), figure
    if record.drained:
        assert worker.in_flight_at_end == 0
    if subject.consumers[0].idempotency == "dedup":
        assert worker.duplicate_effects == 0

    # A crashed instance receives and starts nothing until it is back; every crash has its recovery; a
    # scheduled crash happens or is counted missed.
    group = record.groups[0]
    assert group.crash_s.size == group.recovery_s.size
    for crash_s, instance, recovery_s in zip(group.crash_s, group.crash_instance, group.recovery_s):
        mine = deliveries.instance == instance
        for times_s in (deliveries.receive_s[mine], deliveries.take_s[mine]):
            assert not np.any((times_s > crash_s) & (times_s < crash_s + recovery_s))
    crash = subject.consumers[0].crash
    if crash is not None and crash.probability == 0:
        scheduled = len(crash.at) + len(crash.after_messages)
        assert worker.crashes + worker.missed_crashes == scheduled

    # No instance ever processes more deliveries at once than it has workers.
    concurrency = subject.consumers[0].concurrency
    for instance in np.unique(deliveries.instance):
        mine = (deliveries.instance == instance) & started
        ends = np.where(np.isnan(deliveries.done_s[mine]), np.inf, deliveries.done_s[mine])
        times = np.concatenate([deliveries.take_s[mine], ends])
        steps = np.concatenate([np.ones(mine.sum()), -np.ones(mine.sum())])
        order = np.lexsort((steps, times))  # at equal times an end comes before a start
        assert np.cumsum(steps[order]).max(initial=0) <= concurrency

    # The results document is valid JSON, without NaN, and the run repeats exactly.
    json.loads(results_json(result))
    assert busim.simulate(subject).summary == result.summary


PRESET_KEYS = {
    "ideal": {"ack_timeout": [0.05, 0.5], "max_deliveries": [None, 2], "capacity": [None, 5]},
    "kafka": {
        "partitions": [1, 3, 8],
        "commit": ["auto", "per-message", "per-batch"],
        "session_timeout": [0, 1],
        "max_poll_interval": [0.05, 300],
        "max_poll_records": [1, 500],
    },
    "rabbitmq": {"prefetch": [1, 10, "unlimited"], "capacity": [None, 5], "overflow": ["drop-head", "reject-publish"]},
    "rabbitmq-quorum": {"prefetch": [1, 10], "delivery_limit": [1, 20]},
    "sqs-standard": {"visibility_timeout": [0.05, 1], "batch_size": [1, 10], "max_receive_count": [None, 2]},
    "sqs-fifo": {"visibility_timeout": [0.05, 1], "throughput": ["unlimited", "100/s"], "dedup_window": [0, 300]},
    "sns-sqs": {"visibility_timeout": [0.05, 1], "batch_size": [1, 3]},
    "nats-jetstream": {"ack_wait": [0.05, 1], "max_ack_pending": [1, 1000], "max_deliver": [None, 3]},
    "redis-streams": {
        "claim_interval": ["off", 0.5],
        "claim_min_idle": [0.1, 1],
        "batch_size": [1, 5, 10],
        "capacity": [None, 5],
    },
}


@st.composite
def preset_scenarios(draw):
    """A random small scenario on a random preset, with some of its own keys drawn too."""
    preset = draw(st.sampled_from(sorted(PRESET_KEYS)))
    broker = {
        "preset": preset,
        "delivery": draw(st.sampled_from(["at-least-once", "at-most-once"])),
        "latency": draw(time_distribution()),
        "duplication": draw(st.sampled_from([0, 0.05, 0.5])),
        "loss": draw(st.sampled_from([0, 0.05, 0.3])),
        "publish_ack_loss": draw(st.sampled_from([0, 0.1, 0.5])),
    }
    for key, values in PRESET_KEYS[preset].items():
        broker[key] = draw(st.sampled_from(values))
    if draw(st.booleans()):
        broker["outages"] = [{"at": draw(st.sampled_from([0.5, 2.5])), "duration": draw(st.sampled_from([0.1, 1.0]))}]
    instances = draw(st.integers(1, 3))
    worker = {
        "name": "worker",
        "subscribes": ["Job"],
        "instances": instances,
        "concurrency": draw(st.integers(1, 2)),
        "processing_time": draw(time_distribution()),
        "idempotency": draw(st.sampled_from(["none", "dedup"])),
        "crash": draw(crashes(instances, [0.01, 0.1])),
        "state": {"count": {"initial": 0}},
        "effects": [{"counter": "count", "key": "item", "add": 1}],
    }
    publisher = {
        "name": "source",
        "event": "Job",
        "arrivals": draw(st.sampled_from(["poisson", "uniform"])),
        "rate": draw(st.sampled_from([5, 50, 200])),
        "retries": draw(st.sampled_from([0, 2, "unlimited"])),
        "publish_timeout": draw(st.sampled_from([0.1, 1.0])),
    }
    return scenario(
        seed=draw(st.integers(0, 2**32)),
        duration=4,
        drain_timeout=draw(st.sampled_from([1, 120])),
        publishers=[publisher],
        broker=broker,
        consumers=[worker],
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(preset_scenarios())
def test_every_preset_keeps_its_books(subject):
    check_books(subject, busim.simulate(subject))


# Keys that let every message through in the end: timeouts far above processing times, no delivery
# limit, no capacity, publishers that never give up.
PATIENT_KEYS = {
    "ideal": {"ack_timeout": [1, 2]},
    # A long auto-commit interval under frequent crashes rewinds to the start again and again.
    "kafka": {
        "partitions": [1, 3, 8],
        "commit": ["auto", "per-message"],
        "auto_commit_interval": [0.1],
        "session_timeout": [0, 0.2],
    },
    "rabbitmq": {"prefetch": [1, 10, "unlimited"], "consumer_timeout": [1, 1800]},
    "rabbitmq-quorum": {"prefetch": [1, 10], "delivery_limit": ["unlimited"]},
    "sqs-standard": {"visibility_timeout": [1, 2], "batch_size": [1, 10]},
    "sqs-fifo": {"visibility_timeout": [1, 2], "batch_size": [1, 10], "throughput": ["unlimited"]},
    "sns-sqs": {"visibility_timeout": [1, 2], "batch_size": [1, 3]},
    "nats-jetstream": {"ack_wait": [1, 2], "max_ack_pending": [1, 10, 1000]},
    "redis-streams": {"claim_interval": [0.5], "claim_min_idle": [1, 2], "batch_size": [1, 5]},
}


@st.composite
def patient_scenarios(draw):
    """At-least-once scenarios on any preset in which nothing can be given up on."""
    preset = draw(st.sampled_from(sorted(PATIENT_KEYS)))
    broker = {
        "preset": preset,
        "latency": draw(st.sampled_from(["1ms", {"exponential": {"mean": "5ms"}}])),
        "duplication": draw(st.sampled_from([0, 0.1])),
        "publish_ack_loss": draw(st.sampled_from([0, 0.1])),
    }
    for key, values in PATIENT_KEYS[preset].items():
        broker[key] = draw(st.sampled_from(values))
    if draw(st.booleans()):
        broker["outages"] = [{"at": draw(st.sampled_from([0.5, 2.0])), "duration": draw(st.sampled_from([0.2, 1.0]))}]
    crash = None
    if draw(st.booleans()):
        crash = {"probability": draw(st.sampled_from([0.02, 0.1])), "restart_after": draw(st.sampled_from([0, 0.05]))}
    worker = {
        "name": "worker",
        "subscribes": ["Job"],
        "instances": draw(st.integers(1, 3)),
        "concurrency": draw(st.integers(1, 3)),
        "processing_time": draw(st.sampled_from(["10ms", {"exponential": {"mean": "10ms"}}])),
        "idempotency": draw(st.sampled_from(["none", "dedup"])),
        "crash": crash,
    }
    keys = draw(st.sampled_from([1, 3, 20]))
    return scenario(
        seed=draw(st.integers(0, 2**32)),
        duration=3,
        drain_timeout=120,
        events={"Job": {"key": "item", "fields": {"item": {"uniform_int": {"low": 1, "high": keys}}}}},
        publishers=[
            {"name": "source", "event": "Job", "rate": draw(st.sampled_from([10, 50])), "publish_timeout": 0.5}
        ],
        broker=broker,
        consumers=[worker],
    )


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(patient_scenarios())
def test_every_preset_delivers_everything_when_nothing_is_given_up(subject):
    """No message stalls and none is skipped: the run drains with every message processed.

    Redis without a claimer would leave a crashed consumer's entries pending, so the claimer runs here.
    """
    result = busim.simulate(subject)
    worker = result.summary.consumers["worker"]
    assert result.record.drained
    assert worker.processed == worker.subscribed
