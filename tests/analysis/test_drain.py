"""Drain time: the rate offered to a group, and how long its backlog took to return to its level before the peak.

The runs are deterministic: uniform arrivals, a constant broker latency of
1/64 s and a constant processing time, all exact in binary, so each drain
time is worked out by hand.
"""

import dataclasses

import numpy as np
import pytest

import busim
from busim.analysis.drain import RateSchedule, drain_time_s, feeding_publishers, offered_rate
from busim.analysis.intervals import mean_interval
from busim.analysis.invariants import InvariantOutcome
from tests.conftest import consumer, scenario

# Rate 4/s until 2 s, a peak of 16/s until 4 s, 4/s again until publishing stops at 10 s.
FLASH_SALE = [{"at": 0, "rate": 4}, {"at": 2, "rate": 16}, {"at": 4, "rate": 4}]


def uniform(rate, name="source", event="Job", **fields):
    return {"name": name, "event": event, "arrivals": "uniform", "rate": rate, **fields}


def overloaded(**changes):
    """80 messages at 8/s for 10 s, to one worker that takes 3/16 s each: the queue grows until publishing stops."""
    return scenario(
        publishers=[uniform(8)],
        broker={"latency": 1 / 64},
        consumers=[consumer(processing_time=3 / 16)],
        **changes,
    )


def worker(result):
    return result.summary.consumers["worker"]


def test_a_constant_rate_drains_when_the_worker_receives_the_last_copy_after_publishing_stops():
    # The worker is busy from the first arrival, at 1/64 s, and receives message k at 1/64 + 3/16 k:
    # the last, k = 79, at 14.828125 s, 4.828125 s after publishing stopped at 10 s.
    assert worker(busim.simulate(overloaded())).drain_s == 4.828125


def test_a_flash_sale_drains_from_the_end_of_its_peak_back_to_the_empty_queue_it_began_with():
    # The 8 messages before the peak find the worker idle (1/8 s each, 1/4 s apart): the peak begins at 2 s
    # with no backlog. The 32 of the peak arrive at 2 + 1/64 + j/16 and keep the worker busy, which receives
    # the n-th message from then on at 2 + 1/64 + n/8. After the peak (at 4 s) message i arrives at
    # 4 + 1/64 + i/4 and is received at 6 + 1/64 + i/8: the backlog falls by one every 1/4 s and is empty when
    # i = 15 is received, at 7.890625 s. (At 7.765625 s, i = 14 is received as i = 15 arrives: not empty.)
    result = busim.simulate(
        scenario(
            publishers=[uniform(FLASH_SALE)],
            broker={"latency": 1 / 64},
            consumers=[consumer(processing_time=1 / 8)],
        )
    )
    assert worker(result).drain_s == 3.890625
    assert worker(result).max_backlog == 16


def test_a_run_stopped_with_copies_still_queued_never_drains():
    result = busim.simulate(overloaded(drain_timeout="1s"))
    assert (result.drained, result.record.sim_time_s) == (False, 11.0)
    assert worker(result).drain_s is None
    assert result.figure("worker", "drain_s") is None


def test_a_worker_that_keeps_up_has_drained_when_publishing_stops():
    assert worker(busim.simulate(scenario(consumers=[consumer(processing_time="50ms")]))).drain_s == 0.0


def test_the_drain_time_is_an_invariant_metric_in_seconds():
    bounded = overloaded(
        invariants=[
            {"name": "drains-in-5s", "consumer": "worker", "max": {"drain_time": "5s"}},
            {"name": "drains-in-4s", "consumer": "worker", "max": {"drain_time": "4s"}},
        ]
    )
    assert busim.simulate(bounded).summary.invariants == (
        InvariantOutcome("drains-in-5s", "worker", "drain_time", "max", 5.0, 4.828125, True),
        InvariantOutcome("drains-in-4s", "worker", "drain_time", "max", 4.0, 4.828125, False),
    )
    never = busim.simulate(bounded.model_copy(update={"drain_timeout": 1.0})).summary.invariants
    assert [(outcome.measured, outcome.passed) for outcome in never] == [(None, False), (None, False)]


def test_replications_average_the_drain_time_over_the_replications_that_drained():
    replications = busim.replicate(overloaded(), replications=3, seed=3)
    assert [worker(result).drain_s for result in replications.results] == [4.828125] * 3  # nothing random here

    def drained_in(result, drain_s):
        consumers = {"worker": dataclasses.replace(worker(result), drain_s=drain_s)}
        return dataclasses.replace(result, summary=dataclasses.replace(result.summary, consumers=consumers))

    first, second, third = replications.results
    mixed = dataclasses.replace(replications, results=(first, drained_in(second, None), drained_in(third, 2.828125)))
    interval = mean_interval([4.828125, 2.828125])  # the replication that never drained is left out
    assert mixed.figure("worker", "drain_s") == dataclasses.replace(interval, low=0.0)  # a time is never < 0
    assert interval.replications == 2


def test_the_rate_is_summed_over_the_publishers_upstream_and_a_count_stops_one_early():
    # "direct" stops after its 10 messages, due by 3.5 s; "upstream" reaches the worker through "relay".
    built = scenario(
        events={"Job": {}, "Order": {}},
        publishers=[
            uniform([{"at": 1, "rate": 4}], name="direct", count=10),
            uniform([{"at": 0, "rate": 2}, {"at": 5, "rate": 6}], name="upstream", event="Order"),
            uniform(100, name="elsewhere", event="Order"),
        ],
        consumers=[
            consumer(),
            consumer(name="relay", subscribes=["Order"], emits=[{"event": "Job"}]),
            consumer(name="other", subscribes=["Order"]),
        ],
    )
    assert [publisher.name for publisher in feeding_publishers(built, "worker")] == [
        "direct",
        "upstream",
        "elsewhere",
    ]
    schedule = offered_rate(built.model_copy(update={"publishers": built.publishers[:2]}), "worker")
    assert schedule.step_s.tolist() == [0.0, 1.0, 3.5, 5.0]
    assert schedule.rate_per_s.tolist() == [2.0, 6.0, 2.0, 6.0]
    assert schedule.stop_s == 10.0


def test_a_group_no_publisher_feeds_has_a_rate_of_0_that_stops_at_once():
    built = scenario(
        consumers=[consumer(), consumer(name="idle", subscribes=["Other"])], events={"Job": {}, "Other": {}}
    )
    schedule = offered_rate(built, "idle")
    assert (schedule.step_s.tolist(), schedule.rate_per_s.tolist(), schedule.stop_s) == ([0.0], [0.0], 0.0)


PEAK_AT_2 = RateSchedule(step_s=np.array([0.0, 2.0, 4.0]), rate_per_s=np.array([4.0, 16.0, 4.0]), stop_s=10.0)


@pytest.mark.parametrize(
    ("change_s", "level", "expected"),
    [
        # 3 copies wait when the peak begins; 5 at its end; back to 3 at 6.5 s.
        ([1.0, 2.0, 3.0, 4.5, 6.5, 7.0], [3, 4, 5, 4, 3, 0], 2.5),
        # Already back at 3 when the peak ends.
        ([1.0, 2.0, 3.0], [3, 5, 3], 0.0),
        # Never back to 3 before the run ends.
        ([1.0, 2.0, 3.0, 5.0], [3, 5, 6, 4], None),
        # The level at 2 s is the one before the peak's own arrivals.
        ([2.0, 2.0, 5.0, 6.0], [1, 2, 1, 0], 2.0),
    ],
)
def test_the_drain_time_counts_from_the_last_rate_step_to_the_level_before_the_peak(change_s, level, expected):
    assert drain_time_s(np.array(change_s), np.array(level), PEAK_AT_2) == expected


def test_with_the_peak_last_the_drain_time_counts_from_when_publishing_stops():
    rising = RateSchedule(step_s=np.array([0.0, 2.0]), rate_per_s=np.array([4.0, 16.0]), stop_s=10.0)
    assert drain_time_s(np.array([1.0, 3.0, 11.0, 12.0]), np.array([1, 2, 1, 0]), rising) == 1.0
