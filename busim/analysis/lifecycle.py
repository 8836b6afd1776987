"""What deploys and a scaler did to a group: deploy windows, delays, instances over time, and their cost.

Pure numpy over the group's :class:`~busim.engine.lifecycle.LifecycleRecord`
and its deliveries; nothing is printed or rendered.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from busim.engine.records import Deliveries, DeliveryCause, GroupRecord, RunRecord
from busim.engine.rules import DeliveryRules
from busim.words import counted


@dataclass(frozen=True)
class DeployWindow:
    """One deploy: from its first instance stopping until its last one served again."""

    start_s: float
    end_s: float | None  # None: an instance was still down when the run ended
    instances: int  # the instances it took down


@dataclass(frozen=True)
class LifecycleSummary:
    """A group's deploys and scaling; see docs/results.md."""

    deploys: tuple[DeployWindow, ...]
    delayed_by_deploys: int  # messages that waited in the queue at some moment of a deploy window
    redelivered_by_deploys: int  # deliveries that came again because a deploy killed their instance
    instances_s: tuple[float, ...]  # when the instances provisioned changed (from 0)...
    instances: tuple[int, ...]  # ... and how many there were from then on
    peak_instances: int
    instance_seconds: float  # the instances provisioned, integrated over the run: the cost
    scale_changes: int  # changes the scaler made
    rebalances: int | None  # a partitioned log (Kafka): rebalances of the group, every cause included
    partitions: int | None  # a partitioned log: the most members that can own a partition
    idle_members_at_peak: int  # a partitioned log: members beyond the partitions, with none to own, at the peak
    backlog_peak_s: float | None  # when the backlog was at its highest (None: never a backlog)
    backlog_drain_s: float | None  # from the peak until the backlog was empty (None: never, by the end)
    notes: tuple[str, ...]  # what the verdict adds


def summarize_lifecycle(record: RunRecord, group: GroupRecord) -> LifecycleSummary | None:
    """The figures of ``group``'s deploys and scaler (None without either)."""
    lifecycle = group.lifecycle
    if lifecycle is None:
        return None
    scenario = record.scenario
    consumer = scenario.consumer(group.name)
    deploys = _windows(lifecycle.deploy, lifecycle.deploy_stop_s, lifecycle.deploy_back_s)
    end_s = record.sim_time_s
    # Several changes at one moment (a scaler adding three instances) are one step.
    last = np.append(lifecycle.instances_s[1:] != lifecycle.instances_s[:-1], True)
    times_s, counts = lifecycle.instances_s[last], lifecycle.instances[last]
    within = times_s <= end_s
    spans_s = np.diff(np.append(times_s[within], end_s))
    peak = int(counts.max())
    partitioned = DeliveryRules.of(scenario.broker).ordering == "partition"
    partitions = (scenario.broker.partitions or 1) if partitioned else None
    idle_members = max(peak * consumer.concurrency - partitions, 0) if partitions is not None else 0
    notes = []
    if idle_members:
        notes.append(
            f"{group.name}: {counted(peak * consumer.concurrency, 'member')} at the peak for "
            f"{counted(partitions, 'partition')}: {idle_members} owned none and added nothing"
        )
    peak_s, drain_s = _drain_after_peak(*_waiting_steps(group))
    return LifecycleSummary(
        deploys=deploys,
        delayed_by_deploys=_delayed(group, deploys, end_s),
        redelivered_by_deploys=int(np.count_nonzero(group.deliveries.cause == DeliveryCause.DEPLOY)),
        instances_s=tuple(float(t) for t in times_s),
        instances=tuple(int(n) for n in counts),
        peak_instances=peak,
        instance_seconds=float(np.dot(counts[within], spans_s)),
        scale_changes=int(lifecycle.change_s.size),
        rebalances=int(lifecycle.rebalance_s.size) if partitions is not None else None,
        partitions=partitions,
        idle_members_at_peak=idle_members,
        backlog_peak_s=peak_s,
        backlog_drain_s=drain_s,
        notes=tuple(notes),
    )


def _windows(deploy: np.ndarray, stop_s: np.ndarray, back_s: np.ndarray) -> tuple[DeployWindow, ...]:
    windows = []
    for index in np.unique(deploy).tolist():
        mine = deploy == index
        back = back_s[mine]
        end_s = None if np.isnan(back).any() else float(back.max())
        windows.append(DeployWindow(float(stop_s[mine].min()), end_s, int(np.count_nonzero(mine))))
    return tuple(windows)


def _delayed(group: GroupRecord, windows: tuple[DeployWindow, ...], end_s: float) -> int:
    """Messages with a copy that waited for a worker (in the queue or a prefetch buffer) at some moment of
    a deploy window."""
    deliveries = group.deliveries
    taken_s = _taken_s(deliveries)
    taken_s = np.where(np.isnan(taken_s), end_s, taken_s)
    waited = taken_s > deliveries.arrival_s
    delayed = np.zeros(group.message_ids.size, bool)
    for window in windows:
        until_s = end_s if window.end_s is None else window.end_s
        overlaps = waited & (deliveries.arrival_s < until_s) & (taken_s > window.start_s)
        delayed[deliveries.message[overlaps]] = True
    return int(np.count_nonzero(delayed))


def _taken_s(deliveries: Deliveries) -> np.ndarray:
    """When each delivery stopped waiting for a worker: taken, or aborted unstarted (NaN: neither yet)."""
    return np.where(np.isnan(deliveries.take_s), deliveries.done_s, deliveries.take_s)


def _waiting_steps(group: GroupRecord) -> tuple[np.ndarray, np.ndarray]:
    """When the copies waiting for a worker changed, and how many waited after each change.

    A copy waits from its arrival in the queue until a worker takes it,
    whether it waits in the queue or in an instance's prefetch buffer: the
    backlog a scaler has to work off. A prefetched copy its instance never
    started (a crash, a kill) stops waiting there when it is aborted, and
    waits again as the copy that comes back.
    """
    deliveries = group.deliveries
    left_s = _taken_s(deliveries)
    left_s = left_s[~np.isnan(left_s)]
    times_s = np.concatenate([deliveries.arrival_s, group.unserved_arrival_s, left_s])
    steps = np.concatenate(
        [np.ones(len(deliveries) + group.unserved_arrival_s.size, np.int64), -np.ones(left_s.size, np.int64)]
    )
    order = np.lexsort((-steps, times_s))  # at one moment, arrivals before the copies taken
    return times_s[order], np.cumsum(steps[order])


def _drain_after_peak(times_s: np.ndarray, level: np.ndarray) -> tuple[float | None, float | None]:
    """When the backlog peaked, and how long it then took to be empty (None: it never was, by the end)."""
    if not level.size or level.max() == 0:
        return None, None
    peak = int(np.argmax(level))
    empty = np.flatnonzero(level[peak:] == 0)
    peak_s = float(times_s[peak])
    if not empty.size:
        return peak_s, None
    drained_s = float(times_s[peak + empty[0]]) - peak_s
    return peak_s, drained_s if math.isfinite(drained_s) else None
