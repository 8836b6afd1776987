"""Deploys and autoscaling: a consumer group's instances stopping and starting on a schedule or on demand.

A :class:`Lifecycle` decides *when* an instance stops and starts; the group
(a queue's :class:`~busim.engine.consumer.ConsumerGroup` or a partitioned
log's :class:`~busim.engine.partitions.PartitionedGroup`) decides *how*,
through the few calls of :class:`Instances`.

A deploy stops instances in batches: ``rolling`` takes ``max_unavailable``
of those serving when each batch starts, ``all_at_once`` all of them. Each
instance of a batch drains (graceful: it receives nothing more and works
off what it holds; kill: it is gone at once, as in a crash, and the broker's
own mechanism brings back what it held), is down for ``restart_time`` once
drained, and serves again; the next batch starts when the whole batch is
back.

The scaler works as a Kubernetes HPA over an external metric (KEDA): every
``interval`` it computes ``desired = ceil(instances x metric / target)``,
clamped to ``[min, max]``, where ``instances`` counts the instances it has
asked for. Instances it adds serve ``scale_up_delay`` later; instances it
removes (the highest numbered) drain gracefully; it removes none within
``cooldown`` of its last change. No tolerance band: any difference acts.

Calls on the clock: one per deploy, per batch, per instance restart and per
scaler look; nothing per message.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np

from busim.engine.clock import Clock
from busim.engine.records import GroupRecord
from busim.scenario.schema import Autoscale, Consumer, Deploy

# What the lifecycle knows of each instance.
SERVING, DRAINING, RESTARTING, STARTING, REMOVING, OFF = range(6)


class Instances(Protocol):
    """What a consumer group offers its lifecycle."""

    def stop(self, instance: int, kill: bool) -> None:
        """Stop ``instance``; call :meth:`Lifecycle.stopped` once it holds nothing (at once for a kill)."""

    def serve(self, instance: int) -> None:
        """``instance`` serves (again), holding nothing."""

    def load(self, now: float) -> tuple[int, float]:
        """The copies waiting or held unacknowledged at ``now``, and when the oldest waiting one arrived (inf: none)."""


@dataclass(frozen=True)
class LifecycleRecord:
    """What a group's deploys and scaler did."""

    # One row per instance a deploy took down: which deploy, which instance, when it stopped receiving,
    # when it had drained, and when it served again (NaN: not by the end of the run).
    deploy: np.ndarray
    deploy_instance: np.ndarray
    deploy_stop_s: np.ndarray
    deploy_drained_s: np.ndarray
    deploy_back_s: np.ndarray
    # The instances provisioned (asked for and not yet drained away, whether serving, starting or
    # draining) after each change, from (0, instances).
    instances_s: np.ndarray
    instances: np.ndarray
    # Every look of the scaler: when, the metric it read, and the count it wanted; and every change it
    # made: when, and the count it asked for from then on.
    look_s: np.ndarray
    look_metric: np.ndarray
    look_desired: np.ndarray
    change_s: np.ndarray
    change_asked: np.ndarray
    rebalance_s: np.ndarray  # a partitioned log: every rebalance of the group (crashes' included)


class Lifecycle:
    """One group's deploys and scaler, scheduled on ``env``."""

    def __init__(self, env: Clock, consumer: Consumer) -> None:
        self._env = env
        self._deploys = consumer.deploys
        self._scaler: Autoscale | None = consumer.autoscale
        self._group: Instances | None = None
        self.state = [SERVING if instance < consumer.instances else OFF for instance in range(consumer.most_instances)]
        self._asked = consumer.instances  # the instances the scaler has asked for
        self._last_change_s = -math.inf
        self._deploy_rows: list[list[float]] = []  # [deploy, instance, stop, drained, back]
        self._row_of: dict[int, int] = {}  # instance in a deploy -> its row
        self._batch_left = 0
        self._queue: list[int] = []  # instances of the current deploy still to take down
        self._deploy_index = -1  # the deploy under way (-1: none)
        self._due: list[int] = []  # deploys whose time came while another was under way, in order
        self.deploys_left = len(self._deploys)  # deploys not yet over: the run lasts until they are
        self._instances_s: list[float] = [0.0]
        self._instances: list[int] = [consumer.instances]
        self._provisioned = consumer.instances
        self._looks: list[tuple[float, float, int]] = []
        self._changes: list[tuple[float, int]] = []
        self.rebalance_s: list[float] = []
        # Utilisation: the attempts that may still be working since the last look, as (start, end) times, and
        # the serving worker-seconds since then.
        self._concurrency = consumer.concurrency
        self._serving = consumer.instances
        self._serving_since_s = 0.0
        self._serving_worker_s = 0.0
        self._working: list[tuple[float, float]] = []
        self._looked_s = 0.0

    @property
    def meters_work(self) -> bool:
        """Whether the group must count the processing work it starts (:meth:`count_work`)."""
        return self._scaler is not None and self._scaler.metric == "utilisation"

    def start(self, group: Instances) -> None:
        """Schedule the deploys and the scaler's first look."""
        self._group = group
        now = self._env.now
        for index, deploy in enumerate(self._deploys):
            self._env.call_at(now + deploy.at, self._on_deploy, index)
        if self._scaler is not None:
            self._env.call_at(now + self._scaler.interval, self._on_look)

    def restarts(self, instance: int) -> bool:
        """Whether a crashed ``instance`` comes back when its restart is due (not if it is deployed or removed)."""
        return self.state[instance] == SERVING

    # ------------------------------------------------------------ deploys
    def _on_deploy(self, index: int) -> None:
        """Start deploy ``index``, or, while another is under way (its drains took longer), once that ends."""
        if self._deploy_index >= 0:
            self._due.append(index)
            return
        self._deploy_index = index
        self._queue = [instance for instance, state in enumerate(self.state) if state == SERVING]
        self._next_batch()

    def _next_batch(self) -> None:
        deploy: Deploy = self._deploys[self._deploy_index]
        size = deploy.batch(len(self.state))
        batch = []
        while self._queue and len(batch) < size:
            instance = self._queue.pop(0)
            if self.state[instance] == SERVING:  # the scaler may have removed it meanwhile
                batch.append(instance)
        if not batch:
            self.deploys_left -= 1
            self._deploy_index = -1
            if self._due:
                self._on_deploy(self._due.pop(0))
            return
        self._batch_left = len(batch)
        now = self._env.now
        for instance in batch:
            self.state[instance] = DRAINING
            self._serving_changes(-1)
            self._row_of[instance] = len(self._deploy_rows)
            self._deploy_rows.append([self._deploy_index, instance, now, math.nan, math.nan])
        assert self._group is not None
        for instance in batch:
            self._group.stop(instance, deploy.drain == "kill")

    def stopped(self, instance: int) -> None:
        """``instance`` holds nothing more: down for its deploy's restart, or gone (scaled in)."""
        now = self._env.now
        if self.state[instance] == REMOVING:
            self.state[instance] = OFF
            self._provision(-1)
            return
        self.state[instance] = RESTARTING
        self._deploy_rows[self._row_of[instance]][3] = now
        restart_s = self._deploys[self._deploy_index].restart_time
        self._env.call_at(now + restart_s, self._on_restarted, instance)

    def _on_restarted(self, instance: int) -> None:
        self.state[instance] = SERVING
        self._serving_changes(1)
        self._deploy_rows[self._row_of.pop(instance)][4] = self._env.now
        assert self._group is not None
        self._group.serve(instance)
        self._batch_left -= 1
        if self._batch_left == 0:
            self._next_batch()

    # ------------------------------------------------------------ the scaler
    def _on_look(self, _value: None = None) -> None:
        scaler = self._scaler
        assert scaler is not None and self._group is not None
        now = self._env.now
        metric = self._metric(scaler, now)
        # A hair below: a metric at its target exactly, give or take a rounding, asks for no change.
        desired = min(max(math.ceil(self._asked * metric / scaler.target - 1e-9), scaler.min), scaler.max)
        self._looks.append((now, metric, desired))
        if desired > self._asked:
            self._add(desired - self._asked, now + scaler.scale_up_delay)
        elif desired < self._asked and now >= self._last_change_s + scaler.cooldown:
            self._remove(self._asked - desired)
        self._env.call_at(now + scaler.interval, self._on_look)

    def _metric(self, scaler: Autoscale, now: float) -> float:
        assert self._group is not None
        if scaler.metric == "utilisation":
            self._serving_changes(0)
            capacity_s, self._serving_worker_s = self._serving_worker_s, 0.0
            used_s = self._busy_s(self._looked_s, now)
            self._looked_s = now
            return used_s / capacity_s if capacity_s > 0 else 0.0
        backlog, oldest_s = self._group.load(now)
        if scaler.metric == "lag_s":
            return now - oldest_s if oldest_s <= now else 0.0
        return backlog / self._asked

    def _add(self, count: int, serving_s: float) -> None:
        """Start ``count`` instances (fewer if those removed are still draining), serving at ``serving_s``."""
        added = 0
        for instance, state in enumerate(self.state):
            if added == count:
                break
            if state == OFF:
                self.state[instance] = STARTING
                self._provision(1)
                self._env.call_at(serving_s, self._on_started, instance)
                added += 1
        if added:
            self._asked += added
            self._changed()

    def _on_started(self, instance: int) -> None:
        self.state[instance] = SERVING
        self._serving_changes(1)
        assert self._group is not None
        self._group.serve(instance)

    def _remove(self, count: int) -> None:
        """Drain the ``count`` highest numbered serving instances (fewer if a deploy has the others down)."""
        assert self._group is not None
        removed = []
        for instance in range(len(self.state) - 1, -1, -1):
            if len(removed) == count:
                break
            if self.state[instance] == SERVING:
                self.state[instance] = REMOVING
                self._serving_changes(-1)
                removed.append(instance)
        if removed:
            self._asked -= len(removed)
            self._changed()
        for instance in removed:
            self._group.stop(instance, False)

    def _changed(self) -> None:
        self._last_change_s = self._env.now
        self._changes.append((self._env.now, self._asked))

    # ------------------------------------------------------------ what it cost
    def _provision(self, change: int) -> None:
        self._provisioned += change
        self._instances_s.append(self._env.now)
        self._instances.append(self._provisioned)

    def _serving_changes(self, change: int) -> None:
        """Add the serving worker-seconds until now, then change the count of instances serving."""
        now = self._env.now
        self._serving_worker_s += self._serving * self._concurrency * (now - self._serving_since_s)
        self._serving_since_s = now
        self._serving += change

    def count_work(self, processing_s: float) -> None:
        """A worker starts ``processing_s`` of work now (as long as it takes, slowed or cut short by a failure),
        for the utilisation metric. An attempt a crash or a kill cuts shorter still counts to its end."""
        now = self._env.now
        self._working.append((now, now + processing_s))

    def _busy_s(self, since_s: float, now: float) -> float:
        """The worker-seconds of processing between ``since_s`` and ``now``; attempts that end by ``now`` are
        then forgotten."""
        busy_s = 0.0
        working = []
        for start_s, end_s in self._working:
            busy_s += max(0.0, min(end_s, now) - max(start_s, since_s))
            if end_s > now:
                working.append((start_s, end_s))
        self._working = working
        return busy_s

    def record(self) -> LifecycleRecord:
        rows = np.array(self._deploy_rows, dtype=float).reshape(-1, 5)
        looks = np.array(self._looks, dtype=float).reshape(-1, 3)
        changes = np.array(self._changes, dtype=float).reshape(-1, 2)
        return LifecycleRecord(
            deploy=rows[:, 0].astype(np.int64),
            deploy_instance=rows[:, 1].astype(np.int64),
            deploy_stop_s=rows[:, 2],
            deploy_drained_s=rows[:, 3],
            deploy_back_s=rows[:, 4],
            instances_s=np.array(self._instances_s),
            instances=np.array(self._instances, dtype=np.int64),
            look_s=looks[:, 0],
            look_metric=looks[:, 1],
            look_desired=looks[:, 2].astype(np.int64),
            change_s=changes[:, 0],
            change_asked=changes[:, 1].astype(np.int64),
            rebalance_s=np.array(self.rebalance_s, dtype=float),
        )


def lifecycle_of(env: Clock, consumer: Consumer) -> Lifecycle | None:
    """The lifecycle of ``consumer``'s group, or None where it has neither deploys nor a scaler."""
    if not consumer.deploys and consumer.autoscale is None:
        return None
    return Lifecycle(env, consumer)


def with_lifecycle(record: GroupRecord, lifecycle: Lifecycle | None) -> GroupRecord:
    """``record`` with what ``lifecycle`` did, if the group has one."""
    return record if lifecycle is None else replace(record, lifecycle=lifecycle.record())
