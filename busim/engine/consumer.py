"""A consumer group: its queue at the broker, its workers, acks and redeliveries.

The group's ``instances x concurrency`` workers compete for one FIFO queue.
The queue is the merge of two sorted sources: the broker's first attempts,
drawn up front as arrays, and a heap of redeliveries made during the run. It
is never materialised: a worker that becomes free takes the earliest copy
that has arrived. SimPy events exist only for processing completions, for
waking idle workers at the next arrival, for redelivery timers, and for
restarts, never one process per message.

At-least-once: the broker waits for an ack. The ack timer of a delivery runs
from the moment a worker takes it; a delivery lost in transit is redelivered
``ack_timeout`` after it was sent. A message is acked by the first processing
of any of its copies that is not followed by a crash. After
``max_deliveries`` attempts without an ack it is dead-lettered.

At-most-once: nothing is redelivered; a lost attempt, or a delivery aborted by
a crash, is lost for the group.
"""

from __future__ import annotations

import math
from array import array
from heapq import heappop, heappush

import numpy as np
import simpy

from busim.engine.broker import BrokerLink
from busim.engine.effects import EffectPlan
from busim.engine.randomness import RandomStreams
from busim.engine.records import Deliveries, DeliveryCause, GroupRecord, LossReason, Outcome, Selection
from busim.engine.sampling import duration_sampler
from busim.scenario.schema import Consumer

_NEVER = 1 << 62
_INFINITY = math.inf
# Plain ints for the hot path: an enum member lookup costs more than the work it labels.
_PROCESSING, _APPLIED, _REJECTED, _SKIPPED, _ABORTED = (int(o) for o in Outcome)


class ConsumerGroup:
    """One entry of ``consumers``: every message of its events reaches it."""

    def __init__(
        self,
        env: simpy.Environment,
        consumer: Consumer,
        link: BrokerLink,
        plan: EffectPlan,
        accept_s: np.ndarray,
        selection: Selection,
        streams: RandomStreams,
    ) -> None:
        """``accept_s`` holds when the broker accepted each of the ``selection``'s messages."""
        broker = link.broker
        self.consumer = consumer
        self._selection = selection
        self._env = env
        self._link = link
        self._plan = plan
        self._state = plan.new_state()
        self._has_effects = bool(consumer.effects)
        self._at_least_once = broker.delivery == "at-least-once"
        self._ack_timeout_s = broker.ack_timeout
        self._max_deliveries = broker.max_deliveries or _NEVER
        self._processing_time = duration_sampler(
            consumer.processing_time, streams.generator("consumer", consumer.name, "processing")
        )
        self._crash_rng = streams.generator("consumer", consumer.name, "crash")
        self._crash_probability = consumer.crash.probability if consumer.crash else 0.0
        self._until_crash = self._next_crash()
        self._dedup_ttl_s = consumer.dedup_ttl
        count = selection.ids.size
        self._dedup_at: list[float] | None = [-1.0] * count if consumer.idempotency == "dedup" else None

        # Workers: slot s belongs to instance s // concurrency.
        self._concurrency = consumer.concurrency
        workers = consumer.workers
        self._slot_delivery = [-1] * workers  # the delivery a slot is processing, -1 when free
        self._busy = 0  # slots processing a delivery
        self._idle = list(range(workers - 1, -1, -1))  # a stack: slot 0 is taken first
        self._paused = False
        self._wake_at = _INFINITY

        # The queue: first attempts (sorted arrays as lists) and a heap of redeliveries.
        first = link.first_attempts(accept_s)
        self._first_arrival = first.arrival_s.tolist()
        self._first_message = first.message.tolist()
        self._first_cause = first.cause.tolist()
        self._cursor = 0
        self._redeliveries: list[tuple[float, int, int, int, int]] = []
        self._sequence = 0

        # Per message: the broker's attempt count, and whether it is settled (acked or dead-lettered).
        self._attempts = [1] * count
        self._settled = bytearray(count)
        self._restart_s = consumer.crash.restart_after if consumer.crash else 0.0

        # One row per delivery taken, appended as the run goes.
        self._d_message = array("q")
        self._d_attempt = array("l")
        self._d_cause = array("b")
        self._d_slot = array("l")
        self._d_arrival = array("d")
        self._d_take = array("d")
        self._d_done = array("d")
        self._d_outcome = array("b")
        # Rare, so kept apart from the columns, by delivery index.
        self._crashed: set[int] = set()
        # Deliveries processed past the ack timeout, whose redelivery is already scheduled, by the
        # cause it will be labelled with (a crash that aborts one of them changes the cause).
        self._timed: dict[int, int] = {}

        self._lost: list[tuple[int, float, int]] = []
        self._dead_letters: list[tuple[int, float]] = []
        self._crashes: list[tuple[float, int]] = []

        if self._at_least_once:
            for message, sent_s in zip(first.lost.tolist(), first.lost_s.tolist()):
                self._timer(sent_s + self._ack_timeout_s, message, 1, DeliveryCause.TRANSIT_LOSS)
        else:
            for message, sent_s in zip(first.lost.tolist(), first.lost_s.tolist()):
                self._lose(message, sent_s, LossReason.TRANSIT_LOSS)

    # ------------------------------------------------------------ the queue
    def start(self) -> None:
        """Let the workers take their first messages."""
        self._dispatch(self._env.now)

    def pause(self, _event: simpy.Event | None = None) -> None:
        """The broker is down: workers take nothing until :meth:`resume`."""
        self._paused = True

    def resume(self, _event: simpy.Event | None = None) -> None:
        self._paused = False
        self._dispatch(self._env.now)

    def _dispatch(self, now: float) -> None:
        """Hand arrived copies to free workers, oldest arrival first."""
        if self._paused:
            return
        idle = self._idle
        first_arrival = self._first_arrival
        heap = self._redeliveries
        while idle:
            cursor = self._cursor
            next_first = first_arrival[cursor] if cursor < len(first_arrival) else _INFINITY
            next_redelivery = heap[0][0] if heap else _INFINITY
            if next_first <= next_redelivery:
                if next_first > now:
                    break
                self._cursor = cursor + 1
                self._take(idle.pop(), self._first_message[cursor], 1, self._first_cause[cursor], next_first, now)
            else:
                if next_redelivery > now:
                    break
                _, _, message, attempt, cause = heappop(heap)
                self._take(idle.pop(), message, attempt, cause, next_redelivery, now)
        else:
            return
        # Free workers and nothing arrived yet: wake up at the next arrival.
        next_arrival = min(next_first, next_redelivery)
        if next_arrival < self._wake_at:
            self._wake_at = next_arrival
            self._env.timeout(next_arrival - now, next_arrival).callbacks.append(self._on_wake)

    def _on_wake(self, event: simpy.Event) -> None:
        # The clock reaches `now + (arrival - now)`, which rounding can leave a hair short of
        # the arrival; dispatch as of the arrival itself so that the wake-up is never wasted.
        arrival_s = event.value
        if arrival_s >= self._wake_at:
            self._wake_at = _INFINITY
        self._dispatch(max(self._env.now, arrival_s))

    # ------------------------------------------------------------ processing
    def _take(self, slot: int, message: int, attempt: int, cause: int, arrival_s: float, now: float) -> None:
        delivery = len(self._d_message)
        self._d_message.append(message)
        self._d_attempt.append(attempt)
        self._d_cause.append(cause)
        self._d_slot.append(slot)
        self._d_arrival.append(arrival_s)
        self._d_take.append(now)
        self._d_done.append(_INFINITY)
        self._d_outcome.append(_PROCESSING)
        self._slot_delivery[slot] = delivery
        self._busy += 1
        processing_s = self._processing_time()
        if self._at_least_once and processing_s > self._ack_timeout_s:
            self._timed[delivery] = DeliveryCause.ACK_TIMEOUT
            self._timer(now + self._ack_timeout_s, message, attempt, DeliveryCause.ACK_TIMEOUT, delivery)
        # `now` can be a hair later than the clock (see _on_wake): finish `processing_s` after `now`.
        self._env.timeout(now - self._env.now + processing_s, delivery).callbacks.append(self._on_done)

    def _on_done(self, event: simpy.Event) -> None:
        delivery = event.value
        slot = self._d_slot[delivery]
        if self._slot_delivery[slot] != delivery:
            return  # aborted by a crash of its instance
        now = self._env.now
        message = self._d_message[delivery]
        self._d_done[delivery] = now
        outcome = _APPLIED
        dedup_at = self._dedup_at
        if dedup_at is not None:
            # The id is checked and recorded in the same transaction as the effects.
            seen_s = dedup_at[message]
            if seen_s >= 0 and (self._dedup_ttl_s == 0 or now - seen_s <= self._dedup_ttl_s):
                outcome = _SKIPPED
            else:
                dedup_at[message] = now
        if outcome == _APPLIED and self._has_effects and not self._plan.apply(self._state, message):
            outcome = _REJECTED
        self._d_outcome[delivery] = outcome
        self._until_crash -= 1
        if self._until_crash == 0:
            self._until_crash = self._next_crash()
            self._crash(slot, delivery, now)
            return
        self._settled[message] = 1
        self._slot_delivery[slot] = -1
        self._busy -= 1
        self._idle.append(slot)
        self._dispatch(now)

    # ------------------------------------------------------------ crashes
    def _next_crash(self) -> int:
        """How many processings until the next crash (the crashing one included)."""
        if self._crash_probability == 0:
            return _NEVER
        return int(self._crash_rng.geometric(self._crash_probability))

    def _crash(self, slot: int, delivery: int, now: float) -> None:
        """The instance of ``slot`` crashes after processing ``delivery``, before acking it."""
        instance = slot // self._concurrency
        self._crashes.append((now, instance))
        self._crashed.add(delivery)
        if not self._at_least_once:
            self._settled[self._d_message[delivery]] = 1  # applied, and never to be redelivered
        elif delivery not in self._timed:
            self._timer(
                self._d_take[delivery] + self._ack_timeout_s,
                self._d_message[delivery],
                self._d_attempt[delivery],
                DeliveryCause.CRASH_BEFORE_ACK,
            )
        first_slot = instance * self._concurrency
        for other in range(first_slot, first_slot + self._concurrency):
            aborted = self._slot_delivery[other]
            self._slot_delivery[other] = -1
            if aborted >= 0:
                self._busy -= 1
            if aborted < 0 or other == slot:
                continue
            self._d_outcome[aborted] = _ABORTED
            self._d_done[aborted] = now
            message = self._d_message[aborted]
            if not self._at_least_once:
                self._lose(message, now, LossReason.CRASH_IN_FLIGHT)
            elif aborted in self._timed:
                self._timed[aborted] = DeliveryCause.CRASH_IN_FLIGHT
            else:
                due_s = max(now, self._d_take[aborted] + self._ack_timeout_s)
                self._timer(due_s, message, self._d_attempt[aborted], DeliveryCause.CRASH_IN_FLIGHT)
        self._idle = [s for s in self._idle if s // self._concurrency != instance]
        self._env.timeout(self._restart_s, instance).callbacks.append(self._on_restart)

    def _on_restart(self, event: simpy.Event) -> None:
        first_slot = event.value * self._concurrency
        self._idle.extend(range(first_slot + self._concurrency - 1, first_slot - 1, -1))
        self._dispatch(self._env.now)

    def _lose(self, message: int, now: float, reason: LossReason) -> None:
        self._lost.append((message, now, reason))
        self._settled[message] = 1

    # ------------------------------------------------------------ redelivery
    def _timer(self, due_s: float, message: int, attempt: int, cause: int, delivery: int = -1) -> None:
        """Check at ``due_s`` whether ``attempt`` of ``message`` was acked; redeliver if not."""
        self._env.timeout(max(due_s - self._env.now, 0.0), (message, attempt, cause, delivery)).callbacks.append(
            self._on_timer
        )

    def _on_timer(self, event: simpy.Event) -> None:
        message, attempt, cause, delivery = event.value
        cause = self._timed.get(delivery, cause)
        if self._settled[message] or self._attempts[message] != attempt:
            return  # acked, dead-lettered, or already redelivered by an earlier timer
        now = self._env.now
        if attempt >= self._max_deliveries:
            self._settled[message] = 1
            self._dead_letters.append((message, now))
            return
        attempt += 1
        self._attempts[message] = attempt
        link = self._link
        sent_s = link.outages.defer_one(now)
        if link.lost():
            self._timer(sent_s + self._ack_timeout_s, message, attempt, DeliveryCause.TRANSIT_LOSS)
            return
        self._enqueue(link.arrival(sent_s), message, attempt, cause)
        if link.duplicated():
            self._enqueue(link.arrival(sent_s), message, attempt, DeliveryCause.BROKER_DUPLICATE)
        self._dispatch(now)

    def _enqueue(self, arrival_s: float, message: int, attempt: int, cause: int) -> None:
        self._sequence += 1
        heappush(self._redeliveries, (arrival_s, self._sequence, message, attempt, cause))

    # ------------------------------------------------------------ the record
    def has_work_left(self) -> bool:
        """Whether a message is unsettled, a copy is queued or in transit, or a worker is busy."""
        return (
            self._cursor < len(self._first_arrival)
            or bool(self._redeliveries)
            or self._busy > 0
            or self._settled.find(0) >= 0
        )

    def record(self, end_s: float) -> GroupRecord:
        """Freeze what happened into arrays; copies still queued count as unserved."""
        crashed = np.zeros(len(self._d_message), dtype=bool)
        crashed[list(self._crashed)] = True
        done_s = np.frombuffer(self._d_done, dtype=np.float64).copy()
        done_s[np.isinf(done_s)] = np.nan
        deliveries = Deliveries(
            message=np.frombuffer(self._d_message, dtype=np.int64).copy(),
            attempt=np.array(self._d_attempt, dtype=np.int64),
            cause=np.frombuffer(self._d_cause, dtype=np.int8).copy(),
            instance=np.array(self._d_slot, dtype=np.int64) // self._concurrency,
            arrival_s=np.frombuffer(self._d_arrival, dtype=np.float64).copy(),
            take_s=np.frombuffer(self._d_take, dtype=np.float64).copy(),
            done_s=done_s,
            outcome=np.frombuffer(self._d_outcome, dtype=np.int8).copy(),
            crashed=crashed,
        )
        unserved = np.array(self._first_arrival[self._cursor :] + [entry[0] for entry in self._redeliveries])
        lost = np.array(self._lost, dtype=float).reshape(-1, 3)
        dead = np.array(self._dead_letters, dtype=float).reshape(-1, 2)
        crashes = np.array(self._crashes, dtype=float).reshape(-1, 2)
        return GroupRecord(
            name=self.consumer.name,
            selection=self._selection,
            deliveries=deliveries,
            unserved_arrival_s=np.sort(unserved[unserved <= end_s]),
            lost_message=lost[:, 0].astype(np.int64),
            lost_s=lost[:, 1],
            lost_reason=lost[:, 2].astype(np.int8),
            dead_letter_message=dead[:, 0].astype(np.int64),
            dead_letter_s=dead[:, 1],
            crash_s=crashes[:, 0],
            crash_instance=crashes[:, 1].astype(np.int64),
            counters=self._plan.snapshot(self._state),
        )
