"""A consumer group that nothing disturbs, computed as a queue of servers rather than stepped through events.

Where a group's instances never crash, the broker never goes down, nothing
limits the queue, no delivery is lost in transit and processing changes no
shared state, the group is a first-come-first-served queue with identical
servers, and each copy's times follow from the copies ahead of it: it is
received when it has arrived and an instance has room, taken by the first
free worker, done when its processing time is up. That is the recursion of
Lindley (one server) and of Kiefer and Wolfowitz (many), a loop of a few
arithmetic steps per copy instead of several SimPy events.

It is exact, not an approximation: the times are the very sums the general
engine (:mod:`busim.engine.consumer`) computes, the processing times the very
draws it would make (in order of start, block by block), and instances take
turns as they do there. Only the time-outs of an at-least-once broker could
make the two part: a copy still unacknowledged when its timer runs out comes
back. The recursion computes the times first and checks them; if any copy
would have outlived its timer, :func:`serve_fifo` answers None and the group
runs on the general engine.
"""

from __future__ import annotations

import math
from collections import deque
from heapq import heappop, heappush

import numpy as np

from busim.engine.broker import FirstAttempts
from busim.engine.effects import EffectPlan
from busim.engine.handler import Handler
from busim.engine.log import DeliveryLog
from busim.engine.randomness import RandomStreams
from busim.engine.records import GroupRecord, LossReason, Outcome, Selection
from busim.engine.rules import DeliveryRules
from busim.scenario.schema import Consumer

_APPLIED = int(Outcome.APPLIED)


def fifo_applies(
    consumer: Consumer, rules: DeliveryRules, plan: EffectPlan, first: FirstAttempts, outage_free: bool
) -> bool:
    """Whether ``consumer``'s group is a plain first-come-first-served queue of servers under ``rules``.

    ``outage_free``: no broker outage starts before the run's horizon.
    """
    hold = _hold(consumer, rules)
    return (
        outage_free
        and consumer.crash is None
        and consumer.idempotency != "dedup"
        and not plan.has_effects
        and rules.ordering in ("queue", "none")  # one queue; message groups and partitions keep other orders
        and rules.capacity is None
        and math.isinf(rules.throughput_per_s)
        and not _batched(rules)
        and first.lost.size == 0
        and (consumer.instances == 1 or hold <= consumer.concurrency)  # else instances buffer side by side
    )


def _batched(rules: DeliveryRules) -> bool:
    """Whether workers read in batches of their own (see :class:`busim.engine.consumer.ConsumerGroup`)."""
    return (rules.batch_per_worker or 1) > 1 and rules.prefetch_per_instance is None


def _hold(consumer: Consumer, rules: DeliveryRules) -> int:
    """How many unacknowledged deliveries an instance holds."""
    return rules.prefetch_per_instance or (rules.batch_per_worker or 1) * consumer.concurrency


class ServedGroup:
    """A consumer group whose deliveries were computed in one pass; it offers what the run asks of a group."""

    def __init__(
        self, consumer: Consumer, selection: Selection, handler: Handler, log: DeliveryLog, unserved: list
    ) -> None:
        self.consumer = consumer
        self.log = log
        self._selection = selection
        self._handler = handler
        self._unserved = unserved
        self._work_left = bool(unserved) or bool(np.isinf(np.frombuffer(log.done_s, np.float64)).any())

    def start(self) -> None:
        """Nothing to start: every delivery is already known."""

    def pause(self, _event: object = None) -> None:
        raise AssertionError("a served group has no outages")

    resume = pause

    def has_work_left(self) -> bool:
        """Whether a copy was still queued, or a delivery in processing, at the horizon."""
        return self._work_left

    def publish_failed(self, message: int, publish_s: float, reason: LossReason) -> None:
        self.log.lose(message, publish_s, reason)

    def record(self, end_s: float, key_codes: np.ndarray) -> GroupRecord:
        return self.log.freeze(self.consumer.name, self._selection, self._unserved, end_s, self._handler, key_codes)


def serve_fifo(
    consumer: Consumer,
    rules: DeliveryRules,
    plan: EffectPlan,
    first: FirstAttempts,
    selection: Selection,
    streams: RandomStreams,
    horizon_s: float,
) -> ServedGroup | None:
    """The group's deliveries until ``horizon_s``, or None where a copy would outlive its ack timer.

    Only for a group that :func:`fifo_applies` to.
    """
    handler = Handler(consumer, plan, streams, selection.ids.size)
    copies = first.arrival_s.size
    arrival_s = first.arrival_s.tolist()
    processing_s = handler.processing_time.next_many(copies).tolist()
    hold = _hold(consumer, rules)
    workers = min(hold, consumer.concurrency)
    arrival = first.arrival_s
    if consumer.instances == 1 and workers == 1:
        done = np.array(_one_server(arrival_s, processing_s))
        # Taken when it arrived or when the copy ahead was done: a maximum, exact in floating point.
        take = np.maximum(arrival, np.concatenate([[-math.inf], done[:-1]]))
        instance = np.zeros(copies, np.int64)
    else:
        take_s, done_s, instance = _servers(arrival_s, processing_s, consumer.instances, workers)
        take, done = np.array(take_s), np.array(done_s)
    del arrival_s, processing_s
    if hold <= consumer.concurrency:
        receive = take  # an instance receives only what a free worker takes at once
    else:
        # One instance, holding more than its workers take: it receives a copy when the copy has arrived
        # and it holds fewer than `hold`, that is once the delivery `hold` places ahead is done. Copies
        # are done no earlier than they are taken, so the earliest completions are those of the copies
        # ahead of it.
        receive = arrival.copy()
        if hold < copies:
            receive[hold:] = np.maximum(receive[hold:], np.sort(done)[: copies - hold])
    if rules.at_least_once and rules.ack_timeout_s is not None and not _acked_in_time(receive, take, done, rules):
        return None
    received = np.flatnonzero(receive <= horizon_s)
    count = received.size
    log = DeliveryLog(selection.ids.size)
    log.extend(
        message=first.message[:count],
        attempt=np.ones(count, np.int64),
        cause=first.cause[:count],
        instance=instance[:count],
        arrival_s=arrival[:count],
        receive_s=receive[:count],
        take_s=np.where(take[:count] <= horizon_s, take[:count], math.inf),
        done_s=np.where(done[:count] <= horizon_s, done[:count], math.inf),
        outcome=np.where(done[:count] <= horizon_s, _APPLIED, int(Outcome.PROCESSING)),
    )
    unserved = list(zip(first.arrival_s[count:].tolist(), first.message[count:].tolist()))
    return ServedGroup(consumer, selection, handler, log, unserved)


def _acked_in_time(receive: np.ndarray, take: np.ndarray, done: np.ndarray, rules: DeliveryRules) -> bool:
    """Whether every delivery is done by the time its ack timer runs out (when the general engine checks it).

    A delivery whose processing would end after its timer comes back; one
    still waiting in its instance's buffer at that time does too (at the very
    instant, the order of events decides: leave that to the general engine).
    """
    assert rules.ack_timeout_s is not None
    due = receive + rules.ack_timeout_s
    if rules.claim_interval_s is not None:
        due = np.ceil(due / rules.claim_interval_s) * rules.claim_interval_s
    return bool(np.all(done <= due) and np.all((take < due) | (take == receive)))


def _one_server(arrival_s: list[float], processing_s: list[float]) -> list[float]:
    """Lindley's recursion: each copy is done its processing time after it arrived or after the copy ahead
    was done, whichever is later."""
    done_s: list[float] = []
    append = done_s.append
    done = -math.inf
    for arrival, processing in zip(arrival_s, processing_s):
        done = (arrival if arrival > done else done) + processing
        append(done)
    return done_s


def _servers(
    arrival_s: list[float], processing_s: list[float], instances: int, workers: int
) -> tuple[list[float], list[float], np.ndarray]:
    """Kiefer and Wolfowitz's recursion over ``instances`` x ``workers`` servers, with instances taking turns.

    A copy goes to the first instance with room in round-robin order, as in
    the general engine: an instance that still has a free worker after
    receiving goes to the back of the line; one that has none leaves it until
    a delivery of its own is done. Each copy is taken by the first free worker.
    """
    room = [workers] * instances
    line = deque(range(instances))  # instances with room, in turn
    in_line = [True] * instances
    busy: list[tuple[float, int, int]] = []  # (done_s, copy, instance) of deliveries in processing
    take_s: list[float] = []
    done_s: list[float] = []
    taken_by: list[int] = []
    for copy, (arrival, processing) in enumerate(zip(arrival_s, processing_s)):
        while busy and busy[0][0] <= arrival:  # done before it arrives: their instances have room again
            _, _, freed = heappop(busy)
            room[freed] += 1
            if not in_line[freed]:
                in_line[freed] = True
                line.append(freed)
        if line:
            take = arrival
        else:
            take, _, freed = heappop(busy)
            room[freed] += 1
            in_line[freed] = True
            line.append(freed)
        instance = line[0]
        room[instance] -= 1
        if room[instance]:
            line.rotate(-1)
        else:
            line.popleft()
            in_line[instance] = False
        done = take + processing
        heappush(busy, (done, copy, instance))
        take_s.append(take)
        done_s.append(done)
        taken_by.append(instance)
    return take_s, done_s, np.array(taken_by, np.int64)
