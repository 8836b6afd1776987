"""A consumer group on a queue: competing consumers, prefetch, acks and redeliveries.

The group's instances compete for one queue at the broker (RabbitMQ, SQS,
NATS JetStream pull consumers, Redis consumer groups, the ideal broker).
Copies reach the queue from two sorted sources: the broker's first attempts,
drawn up front as arrays, and a heap of redeliveries made during the run.
Copies are admitted to the queue in arrival order only when the group looks
at it, which is exact because nothing leaves the queue in between: that is
where a full queue drops its oldest copy or refuses a publish.

An instance receives copies while it holds fewer unacknowledged ones than its
prefetch allows (one per worker by default), round robin among the instances
with room; its workers process what it holds in order of receipt. Where
workers read in batches (SQS ``ReceiveMessage``, Redis ``XREADGROUP COUNT``),
each worker reads for itself: a read takes up to ``batch_size`` copies at
once, whatever has arrived, and the worker works through them before it
reads again. On SQS FIFO the queue is split by message group, and a group
with a message in flight delivers nothing more until that message is acked
or comes back.

An unacknowledged delivery comes back by the broker's own mechanism:
``ack_timeout_s`` after it was received (ack timeout, consumer_timeout,
visibility timeout, AckWait), at a claimer's pass (Redis XAUTOCLAIM), or at
once when a crashed instance's channel closes (RabbitMQ). A timer runs from
receipt, also while a delivery waits in its instance's prefetch buffer; one
wake-up per instance watches those. An ack that arrives late still deletes a
message that has not been received again (except on RabbitMQ, whose channel
closed). After ``max_deliveries`` attempts a message is dead-lettered.

A consumer whose processing fails (:mod:`busim.engine.failures`) retries
in place: each retry is a delivery row of its own that takes the place of
the failed one, and when none is left the consumer nacks the delivery (the
broker's rule brings it back), dead-letters it, or drops it.

Calls on the clock (:mod:`busim.engine.clock`) exist only for processing
completions, for waking the group at the next arrival, for redelivery timers,
for restarts and for the consumer's retries; never a SimPy process or event
per message.
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_right
from collections import deque
from heapq import heappop, heappush

import numpy as np

from busim.engine.broker import BrokerLink, FirstAttempts
from busim.engine.clock import Clock
from busim.engine.effects import EffectPlan
from busim.engine.failures import FailurePlan
from busim.engine.handler import RETRY, Handler
from busim.engine.lifecycle import lifecycle_of, with_lifecycle
from busim.engine.log import DeliveryLog
from busim.engine.randomness import RandomStreams
from busim.engine.records import DeliveryCause, GroupRecord, LossReason, Outcome, Selection
from busim.engine.rules import DeliveryRules
from busim.scenario.schema import Consumer

_NEVER = 1 << 62
_INFINITY = math.inf
# Plain ints for the hot path: an enum member lookup costs more than the work it labels.
_PROCESSING, _ABORTED = int(Outcome.PROCESSING), int(Outcome.ABORTED)
_BROKER_DUPLICATE = int(DeliveryCause.BROKER_DUPLICATE)
_PROCESSING_FAILED = int(DeliveryCause.PROCESSING_FAILED)

# A copy waiting in the queue: (arrival_s, message, attempt, cause).
Copy = tuple[float, int, int, int]
# Copies as arrays: their arrival times and their messages.
Columns = tuple[np.ndarray, np.ndarray]


class _Queue:
    """One FIFO queue of copies; a requeued copy goes back to its place, ahead of later messages.

    First attempts admitted one after another are kept as a run ``[start, end)``
    of indices into the broker's first attempts rather than as a tuple each: a
    queue that consumers far behind let grow to millions of copies then costs a
    few runs, not some 140 bytes per copy.

    ``fifo`` and ``requeued`` are open to :class:`ConsumerGroup`'s hot path:
    while ``requeued`` is empty and the head of ``fifo`` is a copy, taking is
    popping it.
    """

    grouped = False

    def __init__(self, first: FirstAttempts) -> None:
        self._first = first
        self._first_arrival, self._first_message, self._first_cause = _views(first)
        self.fifo: deque[Copy | list[int]] = deque()  # copies, and runs of first attempts
        self.requeued: list[tuple[int, Copy]] = []  # a heap by message: publish order
        self._beyond_entries = 0  # copies in runs beyond the first of each

    def __len__(self) -> int:
        return len(self.fifo) + self._beyond_entries + len(self.requeued)

    def __bool__(self) -> bool:
        return bool(self.fifo) or bool(self.requeued)

    def push(self, copy: Copy, front: bool) -> None:
        if front:
            heappush(self.requeued, (copy[1], copy))
        else:
            self.fifo.append(copy)

    def push_firsts(self, start: int, end: int) -> None:
        """Queue the broker's first attempts ``start`` to ``end`` (excluded), at the back."""
        fifo = self.fifo
        if fifo:
            tail = fifo[-1]
            if type(tail) is list and tail[1] == start:
                tail[1] = end
                self._beyond_entries += end - start
                return
        fifo.append([start, end])
        self._beyond_entries += end - start - 1

    def take(self) -> Copy:
        if self.requeued:
            return heappop(self.requeued)[1]
        fifo = self.fifo
        head = fifo[0]
        if type(head) is tuple:
            return fifo.popleft()
        index = head[0]
        if index + 1 == head[1]:
            fifo.popleft()
        else:
            head[0] = index + 1
            self._beyond_entries -= 1
        return (self._first_arrival[index], self._first_message[index], 1, self._first_cause[index])

    def unserved(self) -> list[Columns]:
        """The arrival times and messages of the copies queued, in parts: requeued ones first, then the rest
        in order (a run of first attempts as views of the broker's arrays, to be copied once, by the caller)."""
        parts = [_columns([copy for _, copy in self.requeued])]
        singles: list[Copy] = []
        for entry in self.fifo:
            if type(entry) is tuple:
                singles.append(entry)
                continue
            start, end = entry
            parts += [_columns(singles), (self._first.arrival_s[start:end], self._first.message[start:end])]
            singles = []
        return [*parts, _columns(singles)]

    def oldest_s(self) -> float:
        """When the oldest copy queued arrived (inf: none)."""
        oldest_s = min((copy[0] for _, copy in self.requeued), default=_INFINITY)
        if self.fifo:
            head = self.fifo[0]
            oldest_s = min(oldest_s, head[0] if type(head) is tuple else self._first_arrival[head[0]])
        return oldest_s

    def hold(self, message: int, delivery: int) -> None:
        """Nothing to hold: a queue without message groups never blocks."""

    def discard(self, message: int) -> None:
        """Nothing to unblock after a taken copy is thrown away."""

    def release(self, message: int, delivery: int = -1) -> None:
        """Nothing to release."""


class _GroupedQueue:
    """A queue split by message group: one message of a group in flight at a time (SQS FIFO)."""

    grouped = True

    def __init__(self, group_of: list[int]) -> None:
        self._group_of = group_of
        self._queues: dict[int, deque[Copy]] = {}
        self._ready: deque[int] = deque()  # groups with a visible message and none in flight
        self._listed: set[int] = set()
        self._blocked: set[int] = set()
        self._holder: dict[int, tuple[int, int]] = {}  # group -> the (message, delivery) in flight
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def __bool__(self) -> bool:
        return bool(self._ready)

    def unserved(self) -> list[Columns]:
        """The arrival times and messages of the copies queued, group by group."""
        return [_columns([copy for queue in self._queues.values() for copy in queue])]

    def oldest_s(self) -> float:
        """When the oldest copy queued arrived (inf: none)."""
        return min((queue[0][0] for queue in self._queues.values() if queue), default=_INFINITY)

    def push(self, copy: Copy, front: bool) -> None:
        group = self._group_of[copy[1]]
        queue = self._queues.get(group)
        if queue is None:
            queue = self._queues[group] = deque()
        if front:
            queue.appendleft(copy)
            holder = self._holder.get(group)
            if holder is not None and holder[0] == copy[1]:
                # The message that held its group is back: visible again, first of its group.
                del self._holder[group]
                self._blocked.discard(group)
        else:
            queue.append(copy)
        self._size += 1
        self._list(group)

    def take(self) -> Copy:
        group = self._ready.popleft()
        self._listed.discard(group)
        self._blocked.add(group)
        self._size -= 1
        return self._queues[group].popleft()

    def hold(self, message: int, delivery: int) -> None:
        """``delivery`` of ``message`` holds its group until it is acked or the message comes back."""
        self._holder[self._group_of[message]] = (message, delivery)

    def discard(self, message: int) -> None:
        """A copy just taken is thrown away: its group is free again, unless another message holds it."""
        group = self._group_of[message]
        holder = self._holder.get(group)
        if holder is not None and holder[0] != message:
            return
        self._holder.pop(group, None)
        self._blocked.discard(group)
        self._list(group)

    def release(self, message: int, delivery: int = -1) -> None:
        """Unblock the group if ``message`` (in ``delivery``, or in any delivery) holds it."""
        group = self._group_of[message]
        holder = self._holder.get(group)
        if holder is None or holder[0] != message or (delivery >= 0 and holder[1] != delivery):
            return  # a stale copy's ack does not release a later one's hold
        del self._holder[group]
        self._blocked.discard(group)
        self._list(group)

    def _list(self, group: int) -> None:
        if group not in self._blocked and group not in self._listed and self._queues.get(group):
            self._ready.append(group)
            self._listed.add(group)


def _views(first: FirstAttempts) -> tuple[memoryview, memoryview, memoryview]:
    """The broker's first attempts read in place: arrival times, messages, causes.

    A memoryview hands out Python numbers as a list does, at a few bytes per
    element rather than a list's 30 or more.
    """
    return memoryview(first.arrival_s), memoryview(first.message), memoryview(first.cause)


def _columns(copies: list[Copy] | list[tuple[float, int]]) -> Columns:
    """The arrival times and messages of ``copies``, as arrays."""
    return np.array([copy[0] for copy in copies], np.float64), np.array([copy[1] for copy in copies], np.int32)


class ConsumerGroup:
    """One entry of ``consumers`` on a queue: every message of its events reaches it."""

    def __init__(
        self,
        env: Clock,
        consumer: Consumer,
        link: BrokerLink,
        rules: DeliveryRules,
        plan: EffectPlan,
        first: FirstAttempts,
        selection: Selection,
        streams: RandomStreams,
        message_group: np.ndarray | None = None,
        republish_s: np.ndarray | None = None,
        republish_limit: np.ndarray | None = None,
    ) -> None:
        """``first`` holds the broker's first attempts to the group.

        ``message_group`` gives each message's group where the queue keeps
        order per group (SQS FIFO); ``republish_s`` and ``republish_limit``
        give, per message, how long its publisher waits before publishing
        again after a refusal and how many times it does (-1: no limit).
        """
        self.consumer = consumer
        self._selection = selection
        self._env = env
        # Bound once: completions and wake-ups are scheduled once or more per delivery.
        self._call_at = env.call_at
        self._done_call = self._on_done
        self._wake_call = self._on_wake
        self._link = link
        self._rules = rules
        self._at_least_once = rules.at_least_once
        self._ack_timeout_s = rules.ack_timeout_s if rules.at_least_once else None
        self._max_deliveries = rules.max_deliveries or _NEVER
        count = selection.ids.size
        self._handler = Handler(consumer, plan, streams, count)
        self._processing_time = self._handler.processing_time

        # Instances: how many unacknowledged deliveries each may hold, and its idle workers. Sized for the
        # most the group ever has; those beyond the starting count are off until a scaler starts them.
        instances, concurrency = consumer.most_instances, consumer.concurrency
        serving = [instance < consumer.instances for instance in range(instances)]
        hold = rules.held_per_instance(concurrency)
        self._hold = hold
        self._concurrency = concurrency
        self._room = [hold] * instances
        # Workers that read in batches keep what they read apart: per worker, the copies of its last
        # read not yet started. A worker reads again once they are done; with batches of one, that is
        # the same as a shared buffer of one copy per worker, which costs less.
        self._batched = rules.reads_in_batches
        self._read_size = (rules.batch_per_worker or 1) if self._batched else 1  # copies one read takes, at most
        self._batches: list[deque[int]] = [deque() for _ in range(instances * concurrency)] if self._batched else []
        self._readers = [list(range(concurrency)) for _ in range(instances)]  # per instance: workers ready to read
        self._worker_of: dict[int, int] = {}  # batched: delivery -> the worker (instance x concurrency + w) holding it
        self._open = deque(range(consumer.instances))  # instances with room (batched: a worker ready to read), in turn
        self._listed = serving
        self._alive = list(serving)
        self._idle_workers = [concurrency] * instances
        self._buffer: dict[int, deque[int]] = {}  # deliveries an instance holds but has not started
        self._watch: dict[int, deque[int]] = {}  # buffered deliveries in order of receipt, so of due time
        self._watch_at = [_INFINITY] * instances  # when an instance's watch wakes up next
        # Deploys and a scaler stop and start instances; a kill brings back what the instance held, as a crash.
        self._lifecycle = lifecycle_of(env, consumer)
        self._stopping: set[int] = set()  # instances draining before they stop
        # The work each attempt takes, counted for a utilisation scaler (None: nothing counts it).
        self._count_work = self._lifecycle.count_work if self._lifecycle and self._lifecycle.meters_work else None
        self._track = consumer.crash is not None or any(deploy.drain == "kill" for deploy in consumer.deploys)
        self._unacked: dict[int, set[int]] = {}  # by instance, only with crashes: what a crash brings back
        self._held = 0  # deliveries received and not yet acked or aborted
        self._crashes_due = 0  # crashes scheduled for a time not yet reached
        self._paused = False
        self._wake_at = _INFINITY
        # The throughput limit spaces reads: by the copies each takes, or by calls where it counts calls (SQS).
        self._interval_s = 1.0 / rules.throughput_per_s
        self._interval_per_read_s = self._interval_s * self._read_size if rules.throughput_counts_calls else None
        self._throttled = self._interval_s > 0  # else reads are never spaced, and their times need no keeping
        self._next_receive_s = -_INFINITY

        # The queue, and the copies on their way to it.
        self._message_group = message_group.tolist() if message_group is not None else None
        self._waiting: _Queue | _GroupedQueue = (
            _GroupedQueue(self._message_group) if self._message_group is not None else _Queue(first)
        )
        self._capacity = rules.capacity or _NEVER
        self._grouped = self._waiting.grouped
        # A plain queue without requeued copies is its deque, taken from directly without a call; where
        # nothing can refuse or drop a copy, first attempts go straight onto it.
        self._fifo = None if self._grouped else self._waiting.fifo
        self._requeued = None if self._grouped else self._waiting.requeued
        self._open_fifo = self._fifo if self._capacity == _NEVER else None
        self._claim_interval_s = rules.claim_interval_s
        # A late ack still deletes a message that came back but was not received again, except where
        # the broker closed the channel it came on (RabbitMQ).
        self._late_ack_cancels = not rules.requeue_on_crash
        self._drop_head = rules.overflow == "drop-head"
        self._republish_s = memoryview(republish_s) if republish_s is not None else None
        self._republish_limit = memoryview(republish_limit) if republish_limit is not None else None
        self._refusals: dict[int, int] = {}
        self._first = first
        self._first_arrival, self._first_message, self._first_cause = _views(first)
        self._first_count = first.arrival_s.size
        self._cursor = 0
        self._redeliveries: list[tuple[float, int, int, int, int, bool]] = []
        self._sequence = 0

        # Per message: the broker's attempt count, and whether it is settled (acked, dead-lettered, lost).
        self._attempts = array("i", [1]) * count  # 32 bits, as the log's attempts: half a list's pointers
        self._settled = bytearray(count)
        self._received = bytearray(count)
        self._pending = bytearray(count)  # left pending for good: whatever befalls a later copy, it stays so

        # One row per delivery received, appended as the run goes.
        self.log = log = DeliveryLog(count)
        self._d_message = log.message
        self._d_attempt = log.attempt
        self._d_instance = log.instance
        self._d_receive = log.receive_s
        self._d_take = log.take_s
        self._d_done = log.done_s
        self._d_outcome = log.outcome
        # Deliveries processed past the ack timeout, whose redelivery is already scheduled, by the
        # cause it will be labelled with (a crash that aborts one of them changes the cause).
        self._timed: dict[int, int] = {}
        self._failures = FailurePlan.of(consumer, link.broker, streams, count)

        for message, sent_s in zip(first.lost.tolist(), first.lost_s.tolist()):
            self._attempt_lost(message, 1, sent_s)

    # ------------------------------------------------------------ the queue
    def start(self) -> None:
        """Let the instances receive their first messages, and schedule the crashes set for given times."""
        for at_s, instance in self._handler.crash_times:
            self._env.call_at(self._env.now + at_s, self._on_scheduled_crash, instance)
        self._crashes_due = len(self._handler.crash_times)
        if self._lifecycle is not None:
            self._lifecycle.start(self)
        self._dispatch(self._env.now)

    def _on_scheduled_crash(self, instance: int) -> None:
        self._crashes_due -= 1
        instance = self._handler.crashing_instance(instance, self._alive, self._env.now)
        if instance is not None:
            now = self._env.now
            self._crash(instance, -1, now)
            self._dispatch(now)

    def pause(self, _value: object = None) -> None:
        """The broker is down: instances receive nothing until :meth:`resume`."""
        self._paused = True

    def resume(self, _value: object = None) -> None:
        self._paused = False
        self._dispatch(self._env.now)

    def _admit(self, now: float) -> None:
        """Move every copy that has arrived by ``now`` into the queue, in order of arrival.

        A first attempt goes ahead of a redelivery arriving at the same time.
        """
        first_arrival = self._first_arrival
        first_count = self._first_count
        heap = self._redeliveries
        fifo = self._open_fifo
        cursor = self._cursor
        while True:
            next_redelivery = heap[0][0] if heap else _INFINITY
            until_s = next_redelivery if next_redelivery < now else now
            if cursor < first_count and first_arrival[cursor] <= until_s:
                if fifo is not None:  # nothing refuses a copy here, so the heap stays as it is meanwhile
                    if cursor + 1 == first_count or first_arrival[cursor + 1] > until_s:
                        # One copy (a wake-up at its arrival): the hot path takes it without a call.
                        fifo.append((first_arrival[cursor], self._first_message[cursor], 1, self._first_cause[cursor]))
                        cursor += 1
                        continue
                    end = bisect_right(first_arrival, until_s, cursor + 2, first_count)
                    self._waiting.push_firsts(cursor, end)
                    cursor = end
                else:  # one at a time: a refused publish may come back ahead of the next
                    self._cursor = cursor + 1
                    self._queue_copy((first_arrival[cursor], self._first_message[cursor], 1, self._first_cause[cursor]))
                    cursor += 1
                continue
            if next_redelivery > now:
                break
            arrival_s, _, message, attempt, cause, front = heappop(heap)
            self._cursor = cursor
            self._queue_copy((arrival_s, message, attempt, cause), front)
        self._cursor = cursor

    def _queue_copy(self, copy: Copy, front: bool = False) -> None:
        """Put an arrived copy in the queue, unless it is full and refuses it (or drops its oldest)."""
        waiting = self._waiting
        if self._capacity != _NEVER and len(waiting) >= self._capacity:
            if self._drop_head:
                self._drop(waiting.take(), copy[0])
            elif copy[3] == _BROKER_DUPLICATE:
                return  # a copy the broker made itself finds no room; the message has its own
            elif copy[2] == 1:
                self._refuse(copy)
                return
            # reject-publish refuses publishes only: a message the broker puts back always gets in.
        waiting.push(copy, front)

    def _drop(self, copy: Copy, now: float) -> None:
        """A full queue drops its oldest copy (drop-head); the message is lost if that was its live copy."""
        _, message, attempt, cause = copy
        if cause != _BROKER_DUPLICATE and attempt == self._attempts[message]:
            self._lose(message, now, LossReason.OVERFLOW_DROPPED)

    def _refuse(self, copy: Copy) -> None:
        """A full queue refuses a publish: its publisher publishes again later, or gives up."""
        arrival_s, message, attempt, cause = copy
        self.log.rejected_publishes += 1
        refusals = self._refusals.get(message, 0) + 1
        self._refusals[message] = refusals
        limit = self._republish_limit[message] if self._republish_limit is not None else 0
        if 0 <= limit < refusals:
            if not self._received[message]:  # else a copy that got in stands for the message
                self._lose(message, arrival_s, LossReason.OVERFLOW_REJECTED)
            return
        assert self._republish_s is not None
        self._enqueue(self._link.arrival(arrival_s + self._republish_s[message]), message, attempt, cause, False)

    def _dispatch(self, now: float) -> None:
        """Hand queued copies to instances with room, oldest first."""
        if self._paused:
            return
        cursor = self._cursor
        heap = self._redeliveries
        if (cursor < self._first_count and self._first_arrival[cursor] <= now) or (heap and heap[0][0] <= now):
            self._admit(now)
        open_instances = self._open
        if not open_instances:
            return
        waiting = self._waiting
        # A plain queue is its deque and its heap of requeued copies, both tested without a call.
        fifo, requeued, grouped = self._fifo, self._requeued, self._grouped
        read_size = self._read_size
        batched = self._batched
        late_ack_cancels = self._late_ack_cancels
        settled = self._settled
        while fifo or requeued or (grouped and waiting):
            if self._next_receive_s > now:
                self._wake(self._next_receive_s, now)
                return
            instance = open_instances[0]
            worker = instance * self._concurrency + self._readers[instance][-1] if batched else -1
            taken = 0
            while True:  # one read: up to read_size copies
                copy = fifo.popleft() if fifo and not requeued and type(fifo[0]) is tuple else waiting.take()
                if late_ack_cancels and copy[2] > 1 and settled[copy[1]]:
                    # Acked late, after its timeout but before this copy was received: the broker deleted it.
                    waiting.discard(copy[1])
                else:
                    self._receive(instance, copy, now, worker, taken == 0)
                    taken += 1
                if taken == read_size or not (fifo or requeued or (grouped and waiting)):
                    break
            if not taken:
                continue
            if self._throttled:
                interval_s = self._interval_per_read_s
                self._next_receive_s = max(self._next_receive_s, now) + (
                    interval_s if interval_s is not None else taken * self._interval_s
                )
            if batched:
                readers = self._readers[instance]
                readers.pop()
                still_open = bool(readers)
            else:
                still_open = self._room[instance] > 0
            if still_open:
                open_instances.rotate(-1)
            else:
                open_instances.popleft()
                self._listed[instance] = False
                if not open_instances:
                    return
        # Room and nothing queued: wake up at the next arrival.
        cursor = self._cursor
        next_first = self._first_arrival[cursor] if cursor < self._first_count else _INFINITY
        if heap and heap[0][0] < next_first:
            next_first = heap[0][0]
        self._wake(next_first, now)

    def _wake(self, at_s: float, now: float) -> None:
        if at_s < self._wake_at:
            self._wake_at = at_s
            self._call_at(at_s, self._wake_call, at_s)

    def _on_wake(self, at_s: float) -> None:
        if at_s >= self._wake_at:
            self._wake_at = _INFINITY
        self._dispatch(at_s)

    # ------------------------------------------------------------ processing
    def _receive(self, instance: int, copy: Copy, now: float, worker: int, first: bool) -> None:
        """``instance`` receives ``copy``; batched, ``worker`` read it, the ``first`` of its read."""
        arrival_s, message, attempt, cause = copy
        # A worker reads when it has nothing left to do, so the first copy of a read starts at once.
        starts = first if worker >= 0 else self._idle_workers[instance] > 0
        delivery = self.log.append(message, attempt, cause, instance, arrival_s, now, now if starts else _INFINITY)
        self._received[message] = 1
        if self._grouped:
            self._waiting.hold(message, delivery)
        self._held += 1
        self._room[instance] -= 1
        if self._track:
            unacked = self._unacked.get(instance)
            if unacked is None:
                unacked = self._unacked[instance] = set()
            unacked.add(delivery)
        if worker >= 0:
            self._worker_of[delivery] = worker
        if starts:
            self._idle_workers[instance] -= 1
            self._process(delivery, now)
            return
        if worker >= 0:
            self._batches[worker].append(delivery)
        else:
            buffer = self._buffer.get(instance)
            if buffer is None:
                buffer = self._buffer[instance] = deque()
            buffer.append(delivery)
        if self._ack_timeout_s is not None:
            # Its timer runs from receipt, while it waits in the instance's buffer too. Buffers are
            # in order of receipt, so one wake-up per instance, at the oldest due, watches them all.
            watch = self._watch.get(instance)
            if watch is None:
                watch = self._watch[instance] = deque()
            watch.append(delivery)
            if self._watch_at[instance] == _INFINITY:
                due_s = self._due(now)
                self._watch_at[instance] = due_s
                self._env.call_at(due_s, self._on_watch, instance)

    def _process(self, delivery: int, now: float) -> None:
        """A worker processes ``delivery`` from ``now``: its handler reads, and its timers are checked."""
        handler = self._handler
        if handler.reads_first:
            handler.begin(delivery, self._d_message[delivery])
        processing_s = self._processing_time()
        failures = self._failures
        if failures is not None:
            processing_s = failures.attempt_s(delivery, self._d_message[delivery], processing_s, now)
        if self._count_work is not None:
            self._count_work(processing_s)
        done_s = now + processing_s
        ack_timeout_s = self._ack_timeout_s
        # Without a claimer, a delivery done within its timeout of receipt needs no look at its timer.
        if (
            ack_timeout_s is not None
            and (self._claim_interval_s is not None or done_s > self._d_receive[delivery] + ack_timeout_s)
            and delivery not in self._timed
        ):
            self._time_out_before(delivery, done_s)
        self._call_at(done_s, self._done_call, delivery)

    def _time_out_before(self, delivery: int, end_s: float) -> None:
        """Set ``delivery``'s ack timer if its worker holds it, unacked, past its timeout (until ``end_s``)."""
        message, attempt = self._d_message[delivery], self._d_attempt[delivery]
        if attempt == self._attempts[message]:  # else a later copy is out, with its own timer
            due_s = self._due(self._d_receive[delivery])
            if end_s > due_s:
                self._timed[delivery] = DeliveryCause.ACK_TIMEOUT
                self._timer(due_s, message, attempt, DeliveryCause.ACK_TIMEOUT, delivery)

    def _on_watch(self, instance: int) -> None:
        """Bring back the buffered deliveries of an instance whose timers ran out before they started."""
        self._watch_at[instance] = _INFINITY
        watch = self._watch.get(instance)
        now = self._env.now
        expired = False
        while watch:
            delivery = watch[0]
            if self._d_take[delivery] < _INFINITY or self._d_outcome[delivery] != _PROCESSING:
                watch.popleft()  # started (its own timer, if any, was set then) or aborted by a crash
                continue
            due_s = self._due(self._d_receive[delivery])
            if due_s > now:
                self._watch_at[instance] = due_s
                self._env.call_at(due_s, self._on_watch, instance)
                break
            watch.popleft()
            self._timed[delivery] = DeliveryCause.ACK_TIMEOUT
            message, attempt = self._d_message[delivery], self._d_attempt[delivery]
            expired |= self._expire(message, attempt, DeliveryCause.ACK_TIMEOUT, delivery)
        if expired:
            # Once for all that came back at this moment, so that a batch read finds them together.
            self._dispatch(now)

    def _due(self, receive_s: float) -> float:
        """When an unacked delivery received at ``receive_s`` comes back."""
        due_s = receive_s + self._ack_timeout_s
        interval_s = self._claim_interval_s
        if interval_s is not None:
            due_s = math.ceil(due_s / interval_s) * interval_s  # the claimer's next pass
        return due_s

    def _on_done(self, delivery: int) -> None:
        outcomes = self._d_outcome
        if outcomes[delivery] != _PROCESSING:
            return  # aborted by a crash of its instance
        now = self._env.now
        failures = self._failures
        if failures is not None and delivery in failures.failing:
            self._failed(delivery, now)
            return
        message = self._d_message[delivery]
        self._d_done[delivery] = now
        instance = self._d_instance[delivery]
        handler = self._handler
        outcome = handler.handle(delivery, message, instance, now)
        if outcome == RETRY:
            self._d_done[delivery] = _INFINITY  # an optimistic write met a conflict: the worker starts over
            self._process(delivery, now)
            return
        outcomes[delivery] = outcome
        if handler.may_crash and handler.crashes(instance):
            self._crash(instance, delivery, now)
            self._dispatch(now)
            return
        if failures is not None and delivery in failures.stall_start_s:
            failures.stall_ends(delivery, now)  # it had failed before: its worker was held until now
        self._settled[message] = 1
        if self._grouped:
            self._waiting.release(message, delivery)
        self._free(delivery, instance, now)

    def _free(self, delivery: int, instance: int, now: float) -> None:
        """The worker is done with ``delivery`` (acked, or handed back): it goes on with the next one."""
        self._held -= 1
        if self._track:
            self._unacked[instance].discard(delivery)  # received, so its set exists
        self._room[instance] += 1
        if self._stopping and instance in self._stopping and self._room[instance] == self._hold:
            self._stopped(instance)
        # The worker goes on with the next delivery of its read (batched) or of its instance's buffer.
        following = -1
        if self._batched:
            worker = self._worker_of.pop(delivery)
            batch = self._batches[worker]
            if batch:
                following = batch.popleft()
            else:
                self._readers[instance].append(worker % self._concurrency)
                self._list(instance)
        else:
            if not self._listed[instance]:
                self._list(instance)
            buffer = self._buffer.get(instance)
            if buffer:
                following = buffer.popleft()
        if following >= 0:
            self._d_take[following] = now
            self._process(following, now)
        else:
            self._idle_workers[instance] += 1
        self._dispatch(now)

    def _list(self, instance: int) -> None:
        """Put ``instance`` back among those that receive, if it is not there and it serves."""
        if not self._listed[instance] and self._alive[instance]:
            self._listed[instance] = True
            self._open.append(instance)

    # ------------------------------------------------------------ crashes
    def _crash(self, instance: int, delivery: int, now: float) -> None:
        """``instance`` crashes after processing ``delivery``, before acking it (-1: at a scheduled time).

        Everything it holds comes back: the processed delivery, the ones in
        processing (aborted) and the ones received but not started.
        """
        self.log.crashes.append((now, instance))
        if delivery >= 0:
            self.log.crashed.add(delivery)
        self._abandon(instance, delivery, now)
        recovery_s = self._handler.crash(instance, after_processing=delivery >= 0)
        self._env.call_at(self._env.now + recovery_s, self._on_restart, instance)

    def _abandon(self, instance: int, delivery: int, now: float, label: int = -1) -> None:
        """``instance`` is gone after processing ``delivery`` (-1: at a given time): what it holds comes back,
        labelled ``label`` (-1: by what it was doing, as a crash labels it)."""
        self._alive[instance] = False
        if self._listed[instance]:
            self._listed[instance] = False
            self._open.remove(instance)
        self._buffer.pop(instance, None)
        if self._batched:
            self._readers[instance] = []
            first_worker = instance * self._concurrency
            for batch in self._batches[first_worker : first_worker + self._concurrency]:
                batch.clear()
        self._watch.pop(instance, None)
        self._watch_at[instance] = _INFINITY
        held = sorted(self._unacked.pop(instance, ()))
        self._held -= len(held)
        failures = self._failures
        for other in held:
            self._worker_of.pop(other, None)
            message = self._d_message[other]
            if other == delivery:
                cause = DeliveryCause.CRASH_BEFORE_ACK
            else:
                # A worker waiting out the backoff before its retry holds the message as one processing it.
                retrying = failures is not None and other in failures.retried and self._d_take[other] == _INFINITY
                started = self._d_take[other] < _INFINITY or retrying
                cause = DeliveryCause.CRASH_IN_FLIGHT if started else DeliveryCause.PREFETCHED
                if failures is not None and other in failures.stall_start_s:
                    failures.stall_ends(other, now)  # it had failed before: the instance's end ends its stall
                if label >= 0:
                    cause = label
                self._d_outcome[other] = _ABORTED
                self._d_done[other] = now
                self._handler.abort(other)
            if not self._at_least_once:
                if other == delivery:
                    self._settled[message] = 1  # applied, and never to be redelivered
                else:
                    self._lose(message, now, LossReason.CRASH_IN_FLIGHT)
                self._waiting.release(message, other)
            elif self._rules.requeue_on_crash:
                # The channel closes with the process: the broker requeues at once.
                self._redeliver(message, self._d_attempt[other], cause, now)
            elif other in self._timed:
                self._timed[other] = cause
            elif self._ack_timeout_s is not None:
                due_s = self._due(self._d_receive[other])
                self._timer(max(now, due_s), message, self._d_attempt[other], cause, other)
            else:
                self._leave_pending(message, now, self._d_receive[other], cause)

    def _on_restart(self, instance: int) -> None:
        if instance in self._stopping:
            self._stopped(instance)  # a deploy or the scaler stopped it while it was down
        elif self._lifecycle is None or self._lifecycle.restarts(instance):
            self.serve(instance)

    # ------------------------------------------------------------ deploys and scaling
    def stop(self, instance: int, kill: bool) -> None:
        """Stop ``instance``: at once (``kill``, as a crash), or once it has worked off what it holds.

        A graceful stop cancels the instance's subscription, so it receives
        nothing more, and lets it finish and ack what it received: what sits
        in its prefetch buffer (or the rest of its batch) is processed, not
        returned, on every broker. A crashed instance stops when its restart
        is due.
        """
        assert self._lifecycle is not None
        now = self._env.now
        if kill and self._alive[instance]:
            self._abandon(instance, -1, now, DeliveryCause.DEPLOY)
            self._handler.restart(instance)
            self._lifecycle.stopped(instance)
            self._dispatch(now)
            return
        down = not self._alive[instance]
        self._alive[instance] = False
        if self._listed[instance]:
            self._listed[instance] = False
            self._open.remove(instance)
        if self._batched:
            self._readers[instance] = []
        self._stopping.add(instance)
        if not down and self._room[instance] == self._hold:
            self._stopped(instance)

    def _stopped(self, instance: int) -> None:
        self._stopping.discard(instance)
        self._handler.restart(instance)
        assert self._lifecycle is not None
        self._lifecycle.stopped(instance)

    def serve(self, instance: int) -> None:
        self._alive[instance] = True
        self._room[instance] = self._hold
        self._idle_workers[instance] = self._concurrency
        self._readers[instance] = list(range(self._concurrency))
        self._list(instance)
        self._dispatch(self._env.now)

    def load(self, now: float) -> tuple[int, float]:
        """The copies waiting or held unacknowledged at ``now``, and when the oldest waiting one arrived."""
        self._admit(now)
        return len(self._waiting) + self._held, self._waiting.oldest_s()

    # ------------------------------------------------------------ processing failures
    def _failed(self, delivery: int, now: float) -> None:
        """An attempt at ``delivery`` failed at ``now``: the worker retries it in place, or gives up."""
        failures = self._failures
        assert failures is not None
        message, instance = self._d_message[delivery], self._d_instance[delivery]
        partial = failures.attempt_failed(self._handler, self.log, delivery, instance, now)
        retry = failures.retry(self.log, delivery, partial, now)
        if retry is not None:
            row, take_s = retry
            self._hand_over(delivery, row, message, instance)
            if self._ack_timeout_s is not None and row not in self._timed:
                self._time_out_before(row, take_s)  # the broker's timer runs on while the worker backs off
            self._env.call_at(take_s, self._on_retry, row)
            return
        failures.stall_ends(delivery, now)
        self._give_up(delivery, message, instance, now)

    def _hand_over(self, delivery: int, retry: int, message: int, instance: int) -> None:
        """The worker's retry ``retry`` takes the place of ``delivery`` in everything that tracks it."""
        if self._track:
            unacked = self._unacked[instance]
            unacked.discard(delivery)
            unacked.add(retry)
        if self._batched:
            self._worker_of[retry] = self._worker_of.pop(delivery)
        if self._grouped:
            self._waiting.hold(message, retry)
        if delivery in self._timed:
            self._timed[retry] = self._timed.pop(delivery)

    def _on_retry(self, retry: int) -> None:
        if self._d_outcome[retry] == _PROCESSING:  # else aborted by a crash of its instance
            now = self._env.now
            self._d_take[retry] = now
            self._process(retry, now)

    def _give_up(self, delivery: int, message: int, instance: int, now: float) -> None:
        """Every attempt at ``delivery`` failed: nack it, dead-letter it, or drop it."""
        failures = self._failures
        assert failures is not None
        action = failures.action
        if action == "nack" and self._at_least_once:
            self._nack(delivery, message, now)
        else:
            self._settled[message] = 1
            if action == "dead_letter":
                self.log.dead_letters.append((message, now, failures.dead_letter_cause(message, limit=False)))
            else:
                self.log.lose(message, now, LossReason.GIVEN_UP)
            if self._grouped:
                self._waiting.release(message, delivery)
        self._free(delivery, instance, now)

    def _nack(self, delivery: int, message: int, now: float) -> None:
        """Hand ``delivery`` back to the broker, which delivers it again by its own rule."""
        failures = self._failures
        assert failures is not None
        attempt = self._d_attempt[delivery]
        if failures.nack == "requeue":
            self._redeliver(message, attempt, _PROCESSING_FAILED, now)
        elif failures.nack == "delay":
            self._timer(now + failures.nak_delay_s(attempt), message, attempt, _PROCESSING_FAILED, delivery)
        elif delivery in self._timed:
            self._timed[delivery] = _PROCESSING_FAILED  # its timer is set already
        elif self._ack_timeout_s is not None:
            due_s = self._due(self._d_receive[delivery])
            self._timer(max(now, due_s), message, attempt, _PROCESSING_FAILED, delivery)
        else:
            self._leave_pending(message, now, self._d_receive[delivery], _PROCESSING_FAILED)

    def publish_failed(self, message: int, publish_s: float, reason: LossReason) -> None:
        """``message`` never reached the broker: its publisher gave up during an outage, or crashed."""
        self._lose(message, publish_s, reason)

    def _lose(self, message: int, now: float, reason: LossReason) -> None:
        if self._pending[message]:
            return  # an entry of it stays pending: a copy dropped or refused later does not lose it
        self.log.lose(message, now, reason)
        self._settled[message] = 1
        self._waiting.release(message)

    def _leave_pending(self, message: int, now: float, since_s: float, cause: int) -> None:
        """``message`` stays unacknowledged from ``now``, idle since ``since_s``, and nothing will deliver it again.

        Not lost: a Redis entry stays in the group's pending-entries list, where
        ``XPENDING`` shows it and ``XCLAIM`` can take it over, but without a
        claimer nothing does.
        """
        if not self._pending[message]:  # one entry per message, however many of its copies were held
            self._pending[message] = 1
            self.log.stuck_pending.append((message, now, since_s, cause))
        self._settled[message] = 1
        self._waiting.release(message)

    # ------------------------------------------------------------ redelivery
    def _attempt_lost(self, message: int, attempt: int, sent_s: float) -> None:
        """An attempt lost in transit: the ack timer brings it back, if there is one.

        Without one, at least once, the broker still counts it delivered and
        waits for its ack (Redis without a claimer): it stays pending.
        """
        if self._ack_timeout_s is not None:
            self._timer(self._due(sent_s), message, attempt, DeliveryCause.TRANSIT_LOSS)
        elif self._at_least_once:
            self._leave_pending(message, sent_s, sent_s, DeliveryCause.TRANSIT_LOSS)
        else:
            self._lose(message, sent_s, LossReason.TRANSIT_LOSS)

    def _timer(self, due_s: float, message: int, attempt: int, cause: int, delivery: int = -1) -> None:
        """Check at ``due_s`` whether ``attempt`` of ``message`` was acked; redeliver if not."""
        self._env.call_at(max(due_s, self._env.now), self._on_timer, (message, attempt, cause, delivery))

    def _on_timer(self, timer: tuple[int, int, int, int]) -> None:
        if self._expire(*timer):
            self._dispatch(self._env.now)

    def _expire(self, message: int, attempt: int, cause: int, delivery: int) -> bool:
        """``attempt`` of ``message`` (in ``delivery``, or -1) went unacked for its timeout.

        Returns whether the queue changed, so that the caller dispatches.
        """
        cause = self._timed.pop(delivery, cause)
        if self._settled[message] or self._attempts[message] != attempt:
            # Acked, dead-lettered, or already redelivered. A settled message's delivery lets go of its group;
            # one already redelivered keeps it until the new copy is back.
            if self._message_group is not None and self._settled[message]:
                self._waiting.release(message, delivery)
                return True
            return False
        self._redeliver(message, attempt, cause, self._env.now)
        return True

    def _redeliver(self, message: int, attempt: int, cause: int, now: float) -> None:
        """Send ``message`` again after ``attempt`` went unacknowledged, or dead-letter it."""
        if self._attempts[message] != attempt or self._settled[message]:
            return
        if attempt >= self._max_deliveries:
            self._settled[message] = 1
            if cause == _PROCESSING_FAILED and self._failures is not None:
                cause = self._failures.dead_letter_cause(message, limit=True)
            self.log.dead_letters.append((message, now, cause))
            self._waiting.release(message)
            return
        attempt += 1
        self._attempts[message] = attempt
        link = self._link
        sent_s = link.outages.defer_one(now)
        if link.lost():
            self._attempt_lost(message, attempt, sent_s)
            return
        # A requeued message goes back to the head of its queue (RabbitMQ) or of its message group (SQS FIFO).
        front = self._rules.requeue_on_crash or self._message_group is not None
        self._enqueue(link.arrival(sent_s), message, attempt, cause, front)
        if link.duplicated():
            self._enqueue(link.arrival(sent_s), message, attempt, DeliveryCause.BROKER_DUPLICATE, False)

    def _enqueue(self, arrival_s: float, message: int, attempt: int, cause: int, front: bool) -> None:
        self._sequence += 1
        heappush(self._redeliveries, (arrival_s, self._sequence, message, attempt, cause, front))

    # ------------------------------------------------------------ the record
    def has_work_left(self) -> bool:
        """Whether a message is unsettled, a copy is queued or in transit, an instance holds one, or a
        scheduled crash is still to come."""
        return (
            self._cursor < self._first_count
            or bool(self._redeliveries)
            or bool(self._waiting)
            or self._held > 0
            or self._settled.find(0) >= 0
            or self._crashes_due > 0
            or (self._lifecycle is not None and self._lifecycle.deploys_left > 0)
        )

    def record(self, end_s: float, key_codes: np.ndarray) -> GroupRecord:
        """Freeze what happened into arrays; copies still queued count as unserved."""
        cursor = self._cursor
        parts = [
            (self._first.arrival_s[cursor:], self._first.message[cursor:]),
            _columns([(entry[0], entry[2]) for entry in self._redeliveries]),
            *self._waiting.unserved(),
        ]
        unserved_s = np.concatenate([arrival_s for arrival_s, _ in parts])
        unserved = np.concatenate([message for _, message in parts])
        del parts
        record = self.log.freeze(
            self.consumer.name, self._selection, unserved_s, unserved, end_s, self._handler, key_codes, self._failures
        )
        return with_lifecycle(record, self._lifecycle)
