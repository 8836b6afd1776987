"""Drain time: how long a group's backlog took, after the offered rate last changed, to fall back to its level
before the peak.

The rate offered to a group is the publishers' schedule (``publishers[].rate``),
summed over the publishers whose events reach the group: directly, or through
consumers upstream that emit events the group subscribes to. What those
consumers emit is not counted as a rate of its own: their schedule is their
publishers'. The *peak* is the step of highest total rate (the first, if
several are as high); the *last rate step* is the last change of the total
rate before publishing stops, or, when the peak is the last step, the moment
publishing stops and the rate falls to 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from busim.scenario.schema import Publisher, Scenario


@dataclass(frozen=True)
class RateSchedule:
    """The total rate offered to a group: ``rate_per_s[i]`` from ``step_s[i]`` until the next step or ``stop_s``.

    Steps ascend from 0 and each changes the rate; from ``stop_s`` on, when
    the last publisher stops, the rate is 0.
    """

    step_s: np.ndarray
    rate_per_s: np.ndarray
    stop_s: float


def feeding_publishers(scenario: Scenario, consumer: str) -> list[Publisher]:
    """The publishers whose events reach ``consumer``'s group, directly or through emitting consumers upstream."""
    events = set(scenario.consumer(consumer).subscribes)
    while True:
        upstream = {
            event
            for other in scenario.consumers
            if any(emit.event in events for emit in other.emits)
            for event in other.subscribes
        }
        if upstream <= events:
            break
        events |= upstream
    return [publisher for publisher in scenario.publishers if publisher.event in events]


def offered_rate(scenario: Scenario, consumer: str) -> RateSchedule:
    """The total rate the publishers offer to ``consumer``'s group, in messages per second.

    A publisher publishes from its first step until the scenario's
    ``duration``, or until its ``count`` messages are due, if that is
    earlier. With no publisher feeding the group the schedule is a rate of 0
    from 0, stopping at 0.
    """
    schedules = [_schedule(publisher, scenario.duration) for publisher in feeding_publishers(scenario, consumer)]
    if not schedules:
        return RateSchedule(step_s=np.zeros(1), rate_per_s=np.zeros(1), stop_s=0.0)
    stop_s = max(stop for _, _, stop in schedules)
    edges = np.unique(np.concatenate([[0.0], *(np.append(starts, stop) for starts, _, stop in schedules)]))
    edges = edges[edges < stop_s]
    total = np.zeros(edges.size)
    for starts, rates, stop in schedules:
        step = np.searchsorted(starts, edges, side="right") - 1
        total += np.where((step >= 0) & (edges < stop), rates[np.maximum(step, 0)], 0.0)
    changed = np.concatenate([[True], np.diff(total) != 0])
    return RateSchedule(step_s=edges[changed], rate_per_s=total[changed], stop_s=float(stop_s))


def _schedule(publisher: Publisher, duration_s: float) -> tuple[np.ndarray, np.ndarray, float]:
    """A publisher's steps that start inside the run, their rates, and when it stops publishing (seconds)."""
    starts = np.array([step.at for step in publisher.rate if step.at < duration_s])
    rates = np.array([step.rate for step in publisher.rate if step.at < duration_s])
    if starts.size == 0:
        return np.zeros(1), np.zeros(1), 0.0
    ends = np.append(starts[1:], duration_s)
    due = np.concatenate([[0.0], np.cumsum(rates * (ends - starts))])  # messages due by each step's start
    if publisher.count is None or publisher.count >= due[-1]:
        return starts, rates, duration_s
    # The count falls inside a step of positive rate, where the messages due grow strictly.
    step = int(np.searchsorted(due, publisher.count, side="left")) - 1
    return starts, rates, float(starts[step] + (publisher.count - due[step]) / rates[step])


def drain_time_s(change_s: np.ndarray, level: np.ndarray, schedule: RateSchedule) -> float | None:
    """Seconds from the last rate step until the backlog was first at or below its level before the peak.

    ``change_s`` and ``level`` are the backlog's steps (see
    :func:`busim.analysis.series.backlog_steps`): when it changed, and the
    copies waiting after each change. The level before the peak is the
    backlog just before the peak's step began; a level counts as it stands
    after every change at its moment. 0 if the backlog is already there at
    the last rate step; None if it never gets there before the run ends.
    """
    peak = int(np.argmax(schedule.rate_per_s))
    peak_s = schedule.step_s[peak]
    last_s = schedule.step_s[-1] if peak < schedule.step_s.size - 1 else schedule.stop_s
    before = int(np.searchsorted(change_s, peak_s, side="left")) - 1
    pre_peak = level[before] if before >= 0 else 0
    at_last = int(np.searchsorted(change_s, last_s, side="right")) - 1
    if (level[at_last] if at_last >= 0 else 0) <= pre_peak:
        return 0.0
    # Only the level after the last change at each moment counts: a receive and an arrival at the same
    # instant leave the queue as it was, not empty for no time.
    settled = np.append(change_s[1:] != change_s[:-1], True)
    drained = np.flatnonzero((level <= pre_peak)[at_last + 1 :] & settled[at_last + 1 :])
    if drained.size == 0:
        return None
    return float(change_s[at_last + 1 + drained[0]] - last_s)
