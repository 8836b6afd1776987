"""A consumer group that nothing disturbs, computed as a queue of servers rather than stepped through events.

Where a group's instances never crash, the broker never goes down, nothing
limits the queue, no delivery is lost in transit and processing reads no
shared state before it ends, each copy's times follow from the copies ahead
of it: it is received when it has arrived and an instance has room, taken by
the first free worker of its instance, done when its processing time is up.
With one instance that is the recursion of Lindley (one worker) or of Kiefer
and Wolfowitz (several), a loop of a few arithmetic steps per copy instead of
several SimPy events; with several, a loop over arrivals and completions in
time order. What processing does when it ends (a dedup check, effects applied
in one step) cannot change those times, so the handler then finishes the
deliveries in the order they were done.

It is exact, not an approximation: the times are the very sums the general
engine (:mod:`busim.engine.consumer`) computes, the processing times the very
draws it would make (in order of start, block by block), and instances take
turns and fill their prefetch buffers as they do there. Two things could make
the two part, and both are checked rather than assumed: a copy still
unacknowledged when its ack timer runs out comes back (the recursion computes
the times, then checks them against the timers), and with several instances a
copy that arrives at the very moment a delivery is done goes to an instance
that depends on the order of simultaneous events. Where either happens,
:func:`serve_fifo` answers None and the group runs on the general engine.
"""

from __future__ import annotations

import math
from collections import deque
from heapq import heappop, heappush, heapreplace

import numpy as np

from busim.engine.broker import FirstAttempts
from busim.engine.effects import EffectPlan
from busim.engine.handler import Handler
from busim.engine.log import DeliveryLog
from busim.engine.randomness import RandomStreams
from busim.engine.records import Deliveries, GroupRecord, LossReason, Outcome, Selection, constant
from busim.engine.rules import DeliveryRules
from busim.engine.sampling import first_durations
from busim.scenario.schema import Consumer

_APPLIED = int(Outcome.APPLIED)
CHUNK = 1 << 16  # copies the recursion reads as lists at a time


def fifo_applies(
    consumer: Consumer, rules: DeliveryRules, plan: EffectPlan, first: FirstAttempts, outage_free: bool
) -> bool:
    """Whether ``consumer``'s group is a plain first-come-first-served queue of servers under ``rules``.

    ``outage_free``: no broker outage starts before the run's horizon, and no broker slowdown is set.
    """
    return (
        outage_free
        and consumer.crash is None
        and not consumer.deploys  # instances that stop and start are the general engine's
        and consumer.autoscale is None
        and consumer.failures is None  # a failed attempt holds its worker, and comes back
        and not consumer.slowdowns
        # Effects applied in one step when processing ends depend only on the order of completions; reads at the
        # start of processing (read-modify-write, optimistic) interleave with other starts, and a conflict
        # makes an optimistic worker process again.
        and (not plan.has_effects or consumer.effects_isolation == "atomic")
        and rules.ordering in ("queue", "none")  # one queue; message groups and partitions keep other orders
        and rules.capacity is None
        and math.isinf(rules.throughput_per_s)
        and not rules.reads_in_batches
        and first.lost.size == 0
    )


class ServedGroup:
    """A consumer group whose deliveries were computed in one pass; it offers what the run asks of a group."""

    def __init__(
        self,
        consumer: Consumer,
        selection: Selection,
        handler: Handler,
        deliveries: Deliveries,
        unserved_s: np.ndarray,
        unserved: np.ndarray,
        end_s: float,
    ) -> None:
        self.consumer = consumer
        self.log = DeliveryLog(selection.ids.size)  # for what befalls messages outside the deliveries
        self.end_s = end_s  # its last receipt, start or completion by the horizon
        self._selection = selection
        self._handler = handler
        self._deliveries = deliveries
        self._unserved_s = unserved_s  # arrival times of the copies not received by the horizon
        self._unserved = unserved  # and their messages
        self._work_left = unserved.size > 0 or bool(np.isnan(deliveries.done_s).any())

    def start(self) -> None:
        """Nothing to start: every delivery is already known."""

    def pause(self, _value: object = None) -> None:
        raise AssertionError("a served group has no outages")

    resume = pause

    def has_work_left(self) -> bool:
        """Whether a copy was still queued, or a delivery in processing, at the horizon."""
        return self._work_left

    def publish_failed(self, message: int, publish_s: float, reason: LossReason) -> None:
        self.log.lose(message, publish_s, reason)

    def record(self, end_s: float, key_codes: np.ndarray) -> GroupRecord:
        return self.log.freeze(
            self.consumer.name,
            self._selection,
            self._unserved_s,
            self._unserved,
            end_s,
            self._handler,
            key_codes,
            deliveries=self._deliveries,
        )


def serve_fifo(
    consumer: Consumer,
    rules: DeliveryRules,
    plan: EffectPlan,
    first: FirstAttempts,
    selection: Selection,
    streams: RandomStreams,
    horizon_s: float,
) -> ServedGroup | None:
    """The group's deliveries until ``horizon_s``, or None where the recursion cannot stand for the engine.

    None where a copy would outlive its ack timer, or where, with several
    instances, a copy arrives at the very moment a delivery is done (which
    instance receives it then depends on the order of simultaneous events).
    Only for a group that :func:`fifo_applies` to.
    """
    handler = Handler(consumer, plan, streams, selection.ids.size)
    copies = first.arrival_s.size
    arrival = first.arrival_s
    # The handler's own sampler stays unused: its stream's first draws, block by block, are these.
    processing = first_durations(
        consumer.processing_time, streams.generator("consumer", consumer.name, "processing"), copies
    )
    hold = rules.held_per_instance(consumer.concurrency)
    if consumer.instances == 1:
        receive, take, done = _one_instance(arrival, processing, min(hold, consumer.concurrency), hold)
        instance = np.zeros(copies, np.int32)
        started: np.ndarray | None = None  # its workers start copies in the order they arrived
    else:
        served = _instances(arrival.tolist(), processing.tolist(), consumer.instances, consumer.concurrency, hold)
        if served is None:
            return None
        receive, take, done, instance, started = served
    del processing
    if rules.at_least_once and rules.ack_timeout_s is not None and not _acked_in_time(receive, take, done, rules):
        return None
    # Copies are received in the order they arrived: those received by the horizon come first.
    count = int(np.searchsorted(receive, horizon_s, side="right"))
    finished = done[:count] <= horizon_s
    outcome = np.where(finished, np.int8(_APPLIED), np.int8(Outcome.PROCESSING))
    if plan.has_effects or consumer.idempotency == "dedup":
        _handle(handler, first.message, instance, done, started, np.flatnonzero(finished), outcome)
    end_s = max(
        np.max(receive[:count], initial=0.0), np.max(take[:count], initial=0.0, where=take[:count] <= horizon_s)
    )
    end_s = max(end_s, np.max(done[:count], initial=0.0, where=finished))
    # The record's columns are the recursion's arrays, cut at the horizon: no copy of a run's worth of times.
    take_s = take[:count]
    if (take_s > horizon_s).any():
        take_s = np.where(take_s <= horizon_s, take_s, math.nan)  # a new array: ``receive`` may be ``take``
    done_s = done[:count]
    done_s[~finished] = math.nan
    deliveries = Deliveries(
        message=first.message[:count],
        attempt=constant(1, count, np.int32),
        cause=first.cause[:count],
        instance=instance[:count],
        arrival_s=arrival[:count],
        receive_s=receive[:count],
        take_s=take_s,
        done_s=done_s,
        outcome=outcome,
        crashed=np.zeros(count, bool),
    )
    return ServedGroup(consumer, selection, handler, deliveries, arrival[count:], first.message[count:], float(end_s))


def _handle(
    handler: Handler,
    message: np.ndarray,
    instance: np.ndarray,
    done: np.ndarray,
    started: np.ndarray | None,
    finished: np.ndarray,
    outcome: np.ndarray,
) -> None:
    """Let ``handler`` finish the ``finished`` deliveries in the order they were done, and note each outcome.

    Deliveries done at the same time finish in the order they started, as
    their completions were scheduled in the general engine (``started``:
    the order of start of each; None: the order of the deliveries).
    """
    order = finished[np.lexsort((finished if started is None else started[finished], done[finished]))]
    for delivery, of_message, by, at_s in zip(
        order.tolist(), message[order].tolist(), instance[order].tolist(), done[order].tolist()
    ):
        outcome[delivery] = handler.handle(delivery, of_message, by, at_s)


def _one_instance(
    arrival: np.ndarray, processing: np.ndarray, workers: int, hold: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Receive, take and done times of the copies to one instance of ``workers`` workers holding ``hold``.

    Its workers take copies in the order they arrived. It receives a copy
    once the copy has arrived and it holds fewer than ``hold``: once the
    delivery ``hold`` places ahead is done. Copies are done no earlier than
    they are taken, so the earliest completions are those of the copies ahead.

    The recursion runs over lists, which Python reads faster than arrays, a
    chunk of copies at a time, so that the lists stay small.
    """
    take = np.empty(arrival.size)
    done = np.empty(arrival.size)
    free_s = [-math.inf] * workers  # a heap: when each worker is free
    for start in range(0, arrival.size, CHUNK):
        chunk = slice(start, start + CHUNK)
        if workers == 1:
            done[chunk] = _one_server(arrival[chunk].tolist(), processing[chunk].tolist(), free_s)
        else:
            take[chunk], done[chunk] = _workers(arrival[chunk].tolist(), processing[chunk].tolist(), free_s)
    if workers == 1:
        # Taken when it arrived or when the copy ahead was done: a maximum, exact in floating point.
        take[:1] = arrival[:1]
        np.maximum(arrival[1:], done[:-1], out=take[1:])
    if hold <= workers:
        return take, take, done
    receive = arrival.copy()
    if hold < arrival.size:
        receive[hold:] = np.maximum(receive[hold:], np.sort(done)[: arrival.size - hold])
    return receive, take, done


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


def _one_server(arrival_s: list[float], processing_s: list[float], free_s: list[float]) -> list[float]:
    """Lindley's recursion: each copy is done its processing time after it arrived or after the copy ahead
    was done, whichever is later. ``free_s`` holds when the server is free, and is left so."""
    done_s: list[float] = []
    append = done_s.append
    done = free_s[0]
    for arrival, processing in zip(arrival_s, processing_s):
        done = (arrival if arrival > done else done) + processing
        append(done)
    free_s[0] = done
    return done_s


def _workers(arrival_s: list[float], processing_s: list[float], free_s: list[float]) -> tuple[list[float], list[float]]:
    """Kiefer and Wolfowitz's recursion: each copy is taken when it arrives or when a worker is first free.

    ``free_s`` is a heap of when each worker is free, and is left so.
    """
    take_s: list[float] = []
    done_s: list[float] = []
    for arrival, processing in zip(arrival_s, processing_s):
        take = arrival if arrival > free_s[0] else free_s[0]
        done = take + processing
        heapreplace(free_s, done)
        take_s.append(take)
        done_s.append(done)
    return take_s, done_s


def _instances(
    arrival_s: list[float], processing_s: list[float], instances: int, workers: int, hold: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """Receive, take and done times, the receiving instance and the order of start of copies to several
    instances.

    Arrivals and completions are taken in time order, as the general engine
    does: a copy goes to the first instance with room in turn, and an instance
    that still has room after receiving goes to the back of the line; one that
    is full leaves it until one of its deliveries is done. An instance starts
    what it received in order, as its workers come free; copies that find
    every instance full wait in the queue. Processing times are drawn in order
    of start. None where a copy arrives just as a delivery is done.
    """
    copies = len(arrival_s)
    receive_s = [math.inf] * copies
    take_s = [math.inf] * copies
    done_s = [math.inf] * copies
    receiver = [0] * copies
    start_order = [0] * copies
    held = [0] * instances
    idle = [workers] * instances
    buffers: list[deque[int]] = [deque() for _ in range(instances)]
    line = deque(range(instances))  # instances with room, in turn
    in_line = [True] * instances
    queue: deque[int] = deque()  # copies that found every instance full
    busy: list[tuple[float, int, int, int]] = []  # (done_s, start order, instance, copy) in processing
    draws = iter(processing_s)
    started = 0

    def start(copy: int, instance: int, now: float) -> None:
        """A free worker of ``instance`` takes ``copy`` at ``now``: its processing time is the next draw."""
        nonlocal started
        idle[instance] -= 1
        take_s[copy] = now
        done_s[copy] = done = now + next(draws)
        heappush(busy, (done, started, instance, copy))
        start_order[copy] = started
        started += 1

    arrived = 0
    while arrived < copies or busy:
        if arrived < copies and (not busy or arrival_s[arrived] < busy[0][0]):
            now = arrival_s[arrived]
            queue.append(arrived)
            arrived += 1
        elif arrived < copies and arrival_s[arrived] == busy[0][0]:
            return None
        else:
            now, _, instance, _ = heappop(busy)
            held[instance] -= 1
            idle[instance] += 1
            if not in_line[instance]:
                in_line[instance] = True
                line.append(instance)
            if buffers[instance]:
                start(buffers[instance].popleft(), instance, now)
        while line and queue:
            copy = queue.popleft()
            instance = line[0]
            receive_s[copy] = now
            receiver[copy] = instance
            held[instance] += 1
            if held[instance] < hold:
                line.rotate(-1)
            else:
                line.popleft()
                in_line[instance] = False
            if idle[instance]:
                start(copy, instance, now)
            else:
                buffers[instance].append(copy)
    return (
        np.array(receive_s),
        np.array(take_s),
        np.array(done_s),
        np.array(receiver, np.int64),
        np.array(start_order, np.int64),
    )
