"""Autoscaling: a scaler that reaches the instance count queueing theory gives, after the delays it is given.

Arrivals are evenly spaced and processing times constant, so the load a
count of instances carries is exact: ``lambda x S`` workers busy, a
utilisation of ``lambda x S / n`` on ``n`` of them (D/D/n, no queue while
``n`` suffices).
"""

import math

import numpy as np
import pytest

import busim
from tests.conftest import consumer, scenario

PROCESSING_S = 0.1
LOW_RATE, HIGH_RATE = 20, 100  # per second: 2 and 10 workers busy
STEP_UP_S, STEP_DOWN_S = 32.0, 150.0
INTERVAL_S, DELAY_S, COOLDOWN_S = 5.0, 10.0, 30.0


def scaled(metric, target, broker=None, start=4, most=32, **changes):
    rates = [{"at": 0, "rate": LOW_RATE}, {"at": STEP_UP_S, "rate": HIGH_RATE}, {"at": STEP_DOWN_S, "rate": LOW_RATE}]
    autoscale = {
        "min": 2,
        "max": most,
        "metric": metric,
        "target": target,
        "interval": INTERVAL_S,
        "scale_up_delay": DELAY_S,
        "cooldown": COOLDOWN_S,
    }
    return busim.simulate(
        scenario(
            [consumer(instances=start, processing_time=PROCESSING_S, autoscale=autoscale)],
            duration=300,
            broker=broker or {"preset": "rabbitmq", "latency": 0, "prefetch": 1},
            publishers=[{"name": "source", "event": "Job", "arrivals": "uniform", "rate": rates}],
            **changes,
        )
    )


def test_a_utilisation_scaler_reaches_the_count_that_holds_its_target_and_comes_back_down():
    target = 0.5
    result = scaled("utilisation", target)
    group = result.record.groups[0]
    lifecycle = group.lifecycle
    holds = {rate: math.ceil(rate * PROCESSING_S / target) for rate in (LOW_RATE, HIGH_RATE)}
    assert holds == {LOW_RATE: 4, HIGH_RATE: 20}
    # Before the step the 4 instances are busy half the time: nothing changes. The first look's window lacks
    # the half of a job that started before it (the job started at 4.95 s works on into the next window).
    before = lifecycle.look_s < STEP_UP_S
    assert lifecycle.look_metric[before][0] == pytest.approx((100 - 0.5) * PROCESSING_S / (4 * INTERVAL_S), abs=1e-9)
    assert lifecycle.look_metric[before][1:] == pytest.approx(0.5, abs=1e-9)
    # The first look after the step (at 35 s) asks for more; they serve a scale_up_delay later.
    first_look_s = math.ceil(STEP_UP_S / INTERVAL_S) * INTERVAL_S
    assert lifecycle.change_s[0] == first_look_s
    deliveries = group.deliveries
    added = deliveries.instance >= 4
    assert deliveries.receive_s[added].min() >= first_look_s + DELAY_S
    assert np.any(deliveries.receive_s[added] < first_look_s + DELAY_S + INTERVAL_S)
    # A saturated group reads a utilisation near 1 and overshoots while it works off the backlog; it then
    # settles on the 20 that hold 0.5, no sooner than a cooldown after its last change, and keeps them.
    high = (lifecycle.change_s > first_look_s) & (lifecycle.change_s < STEP_DOWN_S)
    settled_s, settled = lifecycle.change_s[high][-1], lifecycle.change_asked[high][-1]
    assert settled == holds[HIGH_RATE]
    assert settled_s >= lifecycle.change_s[high][-2] + COOLDOWN_S
    steady = (lifecycle.look_s > settled_s + INTERVAL_S) & (lifecycle.look_s < STEP_DOWN_S)
    assert lifecycle.look_metric[steady] == pytest.approx(HIGH_RATE * PROCESSING_S / settled, abs=1e-9)
    assert set(lifecycle.look_desired[steady].tolist()) == {holds[HIGH_RATE]}
    # When the load drops, the first look after it (the last change was more than a cooldown before) reads
    # the low rate's 99.5 jobs in its window, 9.95 worker-seconds, and the 0.45 the high rate's last jobs
    # (started 149.91 s to 149.99 s) worked on past 150 s: 10.4 of the 20 instances' 100, which asks for
    # ceil(20 x 0.104 / 0.5) = 5. A cooldown later it comes to the 4 that hold the low rate, and stays.
    down_s = STEP_DOWN_S + INTERVAL_S  # the look at 150 s reads the interval before the drop
    after = np.flatnonzero(lifecycle.look_s == down_s)[0]
    assert lifecycle.look_metric[after] == pytest.approx(10.4 / 100, abs=1e-9)
    assert lifecycle.change_s[-2:].tolist() == [down_s, down_s + COOLDOWN_S]
    assert lifecycle.change_asked[-2:].tolist() == [5, holds[LOW_RATE]]
    figures = result.summary.lifecycle["worker"]
    assert figures.peak_instances == lifecycle.change_asked.max()
    assert figures.scale_changes == lifecycle.change_s.size
    # The cost: the instances provisioned, integrated over the run.
    times_s = np.append(figures.instances_s, result.sim_time_s)
    assert figures.instance_seconds == pytest.approx(np.dot(figures.instances, np.diff(times_s)))


def one_slow_instance(metric, target, most, scale_up_delay, duration):
    """One instance of one second a job for ten jobs a second, which a scaler looks at every 3.33 s (never at
    an arrival or a completion) and never scales down (a cooldown of 10 minutes)."""
    autoscale = {
        "min": 1,
        "max": most,
        "metric": metric,
        "target": target,
        "interval": "3.33s",
        "scale_up_delay": scale_up_delay,
        "cooldown": "10m",
    }
    return busim.simulate(
        scenario(
            [consumer(processing_time="1s", autoscale=autoscale)],
            duration=duration,
            broker={"preset": "rabbitmq", "latency": 0, "prefetch": 1},
        )
    )


def test_a_backlog_scaler_asks_for_the_backlog_over_its_target_exactly():
    # At each look the backlog (arrived, not acked) over 20 per instance gives the count, up to max.
    target = 20
    result = one_slow_instance("backlog_per_instance", target, most=8, scale_up_delay="2s", duration=30)
    group = result.record.groups[0]
    lifecycle, deliveries = group.lifecycle, group.deliveries
    asked = 1
    for look_s, metric, desired in zip(lifecycle.look_s, lifecycle.look_metric, lifecycle.look_desired):
        if look_s > 30:
            break
        arrived = np.count_nonzero(deliveries.arrival_s <= look_s) + np.count_nonzero(
            group.unserved_arrival_s <= look_s
        )
        backlog = arrived - np.count_nonzero(deliveries.done_s <= look_s)
        assert metric == backlog / asked
        assert desired == min(max(math.ceil(backlog / target), 1), 8)
        asked = max(asked, desired)  # a cooldown of 10 minutes: no scale-down within the run
    assert lifecycle.change_asked.tolist()[-1] == 8


def scaled_beyond_the_partitions():
    """Kafka with 6 partitions, a scaler up to 12 instances; keys from a sequence, so records spread evenly."""
    broker = {"preset": "kafka", "latency": 0, "partitions": 6, "commit": "per-message"}
    events = {"Job": {"key": "item", "fields": {"item": {"sequence": {"start": 1}}}}}
    return scaled("utilisation", 0.5, broker=broker, start=2, most=12, events=events)


def test_on_kafka_a_scaler_beyond_the_partitions_adds_idle_members_and_each_change_is_a_rebalance():
    result = scaled_beyond_the_partitions()
    lifecycle = result.record.groups[0].lifecycle
    figures = result.summary.lifecycle["worker"]
    # Each instance that joins or leaves is a rebalance: the rises and falls of the instances provisioned.
    steps = np.diff(np.array(lifecycle.instances))
    assert figures.rebalances == lifecycle.rebalance_s.size == np.abs(steps).sum()
    # Members beyond the 6 partitions own none: their instances never receive a record.
    assert figures.peak_instances > 6
    assert figures.partitions == 6
    assert figures.idle_members_at_peak == figures.peak_instances - 6
    # The range assignor gives the 6 partitions to the lowest numbered members: the others idle throughout.
    assert result.record.groups[0].deliveries.instance.max() == 5
    # The 10 workers the high rate needs are more than the partitions: the backlog drains only once it drops.
    assert figures.backlog_peak_s == pytest.approx(STEP_DOWN_S, abs=0.1)
    note = (
        f"worker: {figures.peak_instances} members at the peak for 6 partitions: "
        f"{figures.idle_members_at_peak} owned none and added nothing"
    )
    assert figures.notes == (note,)
    assert result.verdict == f"consistent; {note}"


def test_a_lag_scaler_reads_the_age_of_the_oldest_copy_waiting():
    # The queue only grows; at each look the oldest copy still waiting is the first no instance has received.
    target_s = 4.0
    result = one_slow_instance("lag_s", target_s, most=3, scale_up_delay="5s", duration=20)
    group = result.record.groups[0]
    lifecycle, deliveries = group.lifecycle, group.deliveries
    arrival_s = np.concatenate([deliveries.arrival_s, group.unserved_arrival_s])
    receive_s = np.concatenate([deliveries.receive_s, np.full(group.unserved_arrival_s.size, np.inf)])
    asked = 1
    for look_s, lag_s, desired in zip(lifecycle.look_s, lifecycle.look_metric, lifecycle.look_desired):
        waiting = (arrival_s <= look_s) & (receive_s > look_s)
        assert lag_s == (look_s - arrival_s[waiting].min() if waiting.any() else 0.0)
        assert desired == min(max(math.ceil(asked * lag_s / target_s - 1e-9), 1), 3)
        asked = max(asked, desired)
    assert lifecycle.change_asked.tolist()[-1] == 3


def test_a_utilisation_scaler_reads_the_work_a_slowdown_adds():
    # From 60 s to 120 s processing takes 3 times as long: the low rate's 2 busy workers become 6, more than
    # the 4 instances that hold the low rate at a target of 0.5 can give.
    slowed = {"from": "60s", "to": "120s", "factor": 3}
    autoscale = {"min": 4, "max": 32, "metric": "utilisation", "target": 0.5}
    autoscale |= {"interval": INTERVAL_S, "scale_up_delay": DELAY_S, "cooldown": COOLDOWN_S}
    result = busim.simulate(
        scenario(
            [consumer(instances=4, processing_time=PROCESSING_S, autoscale=autoscale, slowdowns=[slowed])],
            duration=200,
            broker={"preset": "rabbitmq", "latency": 0, "prefetch": 1},
            publishers=[{"name": "source", "event": "Job", "arrivals": "uniform", "rate": LOW_RATE}],
        )
    )
    lifecycle = result.record.groups[0].lifecycle
    before = (lifecycle.look_s > INTERVAL_S) & (lifecycle.look_s <= 60)  # the first look: see the test above
    assert lifecycle.look_metric[before] == pytest.approx(LOW_RATE * PROCESSING_S / 4, abs=1e-9)
    # The first look inside the window reads more than the target and scales up; saturated while the new
    # instances start, the scaler overshoots, then settles on the 12 that hold 6 busy workers at 0.5, and
    # comes back to 4 once the window has passed.
    first = np.flatnonzero(lifecycle.look_s > 60)[0]
    assert lifecycle.look_metric[first] > 0.5
    assert lifecycle.change_s[0] == lifecycle.look_s[first]
    inside = lifecycle.change_s < 120
    assert lifecycle.change_asked[inside][-1] == math.ceil(LOW_RATE * PROCESSING_S * 3 / 0.5) == 12
    assert lifecycle.change_asked[-1] == 4 and lifecycle.change_s[-1] > 120


def test_a_utilisation_scaler_reads_a_worker_busy_throughout_as_fully_busy_whatever_its_jobs_length():
    # One job every 4 s, each 4 s long: the one worker is never idle, and each 1 s look reads exactly 1, not the
    # 4 s of a job that starts in its window and nothing in the three after. A target of 0.9 asks for 2 instances,
    # which then read 0.5 each and keep the 2: no flapping.
    autoscale = {"min": 1, "max": 10, "metric": "utilisation", "target": 0.9}
    autoscale |= {"interval": "1s", "scale_up_delay": 0, "cooldown": 0}
    result = busim.simulate(
        scenario(
            [consumer(processing_time="4s", autoscale=autoscale)],
            duration=20,
            broker={"preset": "rabbitmq", "latency": 0, "prefetch": 1},
            publishers=[{"name": "source", "event": "Job", "arrivals": "uniform", "rate": 0.25}],
        )
    )
    lifecycle = result.record.groups[0].lifecycle
    assert lifecycle.look_metric[0] == 1.0
    assert lifecycle.change_asked.tolist() == [2]
    assert set(lifecycle.look_desired.tolist()) == {2}
