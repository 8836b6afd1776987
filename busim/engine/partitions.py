"""A consumer group on a partitioned log (Kafka): partition assignment, offsets, rewinds.

Every worker of the group (``instances x concurrency``) is a member of the
consumer group and owns whole partitions, assigned by range at the start; a
member without a partition stays idle. A member processes the records of its
partitions one at a time, the earliest arrival first, so order holds within
each partition.

Nothing is acknowledged message by message: the group commits, per
partition, the offset up to which it has processed, every
``auto_commit_interval`` (``commit: auto``), after each record
(``per-message``) or after each batch of ``max_poll_records`` or when the
member runs out of records (``per-batch``).

When an instance crashes, its members' partitions stop and are rewound to
their committed offsets, so the processed but uncommitted tail of each is
delivered again. The coordinator notices when the session timeout expires
and rebalances: every partition is assigned again by range over the live
members. A member that comes back joins with another rebalance, which waits
for any crashed member's session to expire first. A partition that moves
between live members carries on where it was: its old owner finishes the
record in hand and commits on revocation.

A record whose processing fails (:mod:`busim.engine.failures`) is retried
in place, holding up its partition (``kafka_retry: blocking``); when no
retry is left it is dead-lettered, dropped or skipped, or forwarded to retry
topics read after their delays by a consumer of their own, which holds up no
partition (``kafka_retry: retry_topic``).

Calls on the clock (:mod:`busim.engine.clock`): one per processing
completion, wake-ups of idle members, the commit ticks, one per crash for
the session timeout and the restart, and one per retry and retry-topic read.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right

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
_PROCESSING, _ABORTED = int(Outcome.PROCESSING), int(Outcome.ABORTED)
_FAILED = int(Outcome.FAILED)
_ORPHANED = -1


def range_assignment(partitions: int, members: int) -> list[list[int]]:
    """Kafka's range assignor: consecutive partitions, the first members taking one extra."""
    share, extra = divmod(partitions, members)
    owned, start = [], 0
    for member in range(members):
        size = share + (member < extra)
        owned.append(list(range(start, start + size)))
        start += size
    return owned


class PartitionedGroup:
    """One entry of ``consumers`` reading a partitioned log with its own committed offsets."""

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
        partition_of: np.ndarray,
    ) -> None:
        """``first`` holds the records as they reach the log; ``partition_of`` each message's partition."""
        self.consumer = consumer
        self._selection = selection
        self._env = env
        self._rules = rules
        self._at_least_once = rules.at_least_once
        count = selection.ids.size
        self._handler = Handler(consumer, plan, streams, count)
        self._processing_time = self._handler.processing_time
        self._settled = bytearray(count)
        self.log = DeliveryLog(count)
        self._failures = FailurePlan.of(consumer, link.broker, streams, count)

        # The log: per partition, its records in order, and the group's offsets into it.
        partition_count = rules.partitions or 1
        record_partition = partition_of[first.message]
        self._log_arrival: list[memoryview] = []  # float64
        self._log_message: list[memoryview] = []  # int32
        self._log_cause: list[memoryview] = []  # int8
        for partition in range(partition_count):
            mine = record_partition == partition
            # Read in place: a memoryview hands out Python numbers at a few bytes each, not a list's 30.
            self._log_arrival.append(memoryview(first.arrival_s[mine]))
            self._log_message.append(memoryview(first.message[mine]))
            self._log_cause.append(memoryview(first.cause[mine]))
        self._reads = [[0] * len(arrivals) for arrivals in self._log_arrival]  # times each record was read
        self._position = [0] * partition_count  # the next record to fetch
        self._processed = [0] * partition_count  # one past the last record processed
        self._committed = [0] * partition_count  # the committed offset
        self._replay_cause: list[dict[int, int]] = [{} for _ in range(partition_count)]
        self._replay_s = [-_INFINITY] * partition_count  # when a rewound partition became readable again
        self._interval_s = 1.0 / rules.throughput_per_s
        self._next_read_s = [-_INFINITY] * partition_count
        for message, sent_s in zip(first.lost.tolist(), first.lost_s.tolist()):
            self._lose(message, sent_s, LossReason.TRANSIT_LOSS)  # offsets move past a record never read

        # Members: one per worker; slot m belongs to instance m // concurrency. Sized for the most instances
        # the group ever has; those beyond the starting count are off until a scaler starts them.
        self._concurrency = consumer.concurrency
        members = consumer.most_instances * consumer.concurrency
        self._owned = range_assignment(partition_count, consumer.workers) + [[]] * (members - consumer.workers)
        self._owner = [_ORPHANED] * partition_count
        for member, owned in enumerate(self._owned):
            for partition in owned:
                self._owner[partition] = member
        self._alive = [member < consumer.workers for member in range(members)]
        self._current = [-1] * members  # the delivery a member is processing
        self._current_partition = [-1] * members  # ... and its partition
        self._batch = [0] * members  # records processed since the member's last poll
        self._poll_s = [0.0] * members  # when the member last polled
        self._expelled = [False] * members  # dropped for outlasting max_poll_interval, still processing
        self._wake_at = [_INFINITY] * members
        self._reader = [-1] * partition_count  # the member processing one of the partition's records
        self._open_sessions = 0  # crashed members the coordinator has not yet dropped
        self._crashes_due = 0  # crashes scheduled for a time not yet reached
        self._paused = False
        self._retry_reads: list[tuple[int, int, int]] = []  # retry-topic reads due while nothing could read them
        self._lifecycle = lifecycle_of(env, consumer)
        self._stopping: set[int] = set()  # instances whose members leave the group once their records are done
        # The work each attempt takes, counted for a utilisation scaler (None: nothing counts it).
        self._count_work = self._lifecycle.count_work if self._lifecycle and self._lifecycle.meters_work else None
        if rules.at_least_once and rules.commit == "auto":
            self._env.call_at(self._env.now + rules.auto_commit_interval_s, self._on_commit_tick)

    # ------------------------------------------------------------ reading
    def start(self) -> None:
        """Let the members read their first records, and schedule the crashes set for given times."""
        for at_s, instance in self._handler.crash_times:
            self._env.call_at(self._env.now + at_s, self._on_scheduled_crash, instance)
        self._crashes_due = len(self._handler.crash_times)
        if self._lifecycle is not None:
            self._lifecycle.start(self)
        for member in range(len(self._owned)):
            self._dispatch(member, self._env.now)

    def _on_scheduled_crash(self, instance: int) -> None:
        self._crashes_due -= 1
        alive = self._alive[:: self._concurrency]  # an instance's members live and die together
        instance = self._handler.crashing_instance(instance, alive, self._env.now)
        if instance is not None:
            self._crash(instance, -1, self._env.now)

    def pause(self, _value: object = None) -> None:
        self._paused = True

    def resume(self, _value: object = None) -> None:
        self._paused = False
        for member in range(len(self._owned)):
            self._dispatch(member, self._env.now)
        self._read_retries()

    def _dispatch(self, member: int, now: float) -> None:
        """Give an idle member the earliest readable record of its partitions."""
        if self._paused or not self._alive[member] or self._current[member] >= 0:
            return
        best, best_s = -1, _INFINITY
        reader, positions, log_arrival = self._reader, self._position, self._log_arrival
        for partition in self._owned[member]:
            if reader[partition] >= 0:
                continue  # moved here by a rebalance while its last owner finishes a record
            position = positions[partition]
            arrivals = log_arrival[partition]
            if position >= len(arrivals):
                continue  # read to its end
            # It can be read once its record has arrived, the partition is readable again, and reads are spaced.
            ready_s = arrivals[position]
            if self._replay_s[partition] > ready_s:
                ready_s = self._replay_s[partition]
            if self._next_read_s[partition] > ready_s:
                ready_s = self._next_read_s[partition]
            if ready_s < best_s:
                best, best_s = partition, ready_s
        if best < 0:
            self._poll_ends(member, now)
            return
        if best_s > now:
            self._poll_ends(member, now)
            if best_s < self._wake_at[member]:
                self._wake_at[member] = best_s
                self._env.call_at(best_s, self._on_wake, (member, best_s))
            return
        self._read(member, best, now)

    def _on_wake(self, wake: tuple[int, float]) -> None:
        member, at_s = wake
        if at_s >= self._wake_at[member]:
            self._wake_at[member] = _INFINITY
        self._dispatch(member, at_s)

    def _read(self, member: int, partition: int, now: float) -> None:
        position = self._position[partition]
        self._position[partition] = position + 1
        self._next_read_s[partition] = max(self._next_read_s[partition], now) + self._interval_s
        message = self._log_message[partition][position]
        cause = self._replay_cause[partition].pop(position, self._log_cause[partition][position])
        # Each record counts its own reads: a duplicate record in the log is a first attempt of its own.
        attempt = self._reads[partition][position] + 1
        self._reads[partition][position] = attempt
        # A record read again arrives when its partition was rewound; a paused partition's wait is queue wait.
        arrival_s = self._log_arrival[partition][position]
        if attempt > 1:
            arrival_s = max(arrival_s, self._replay_s[partition])
        delivery = self.log.append(message, attempt, cause, member // self._concurrency, arrival_s, now, now)
        self._current[member] = delivery
        self._current_partition[member] = partition
        self._reader[partition] = member
        if not self._at_least_once:
            self._commit(partition, position + 1)  # committed before processing: at most once
        if self._handler.reads_first:
            self._handler.begin(delivery, message)
        processing_s = self._attempt_s(delivery, message, now)
        if self._batch[member] == 0:
            self._poll_s[member] = now  # an idle member keeps polling: this record starts a new poll
        deadline_s = self._poll_s[member] + self._rules.max_poll_interval_s
        if now + processing_s > deadline_s:
            self._env.call_at(max(deadline_s, self._env.now), self._on_poll_timeout, (member, delivery))
        self._env.call_at(now + processing_s, self._on_done, (member, partition, position, delivery))

    def _on_done(self, done: tuple[int, int, int, int]) -> None:
        member, partition, position, delivery = done
        if self._current[member] != delivery:
            return  # aborted by a crash of its instance
        now = self._env.now
        log = self.log
        message = log.message[delivery]
        log.done_s[delivery] = now
        failures = self._failures
        if failures is not None and delivery in failures.failing:
            self._failed(done, now)
            return
        outcome = self._handler.handle(delivery, message, member // self._concurrency, now)
        if outcome == RETRY:
            # An optimistic write met a conflict: the member processes the record again.
            log.done_s[delivery] = math.inf
            self._handler.begin(delivery, message)
            processing_s = self._processing_time()
            if self._count_work is not None:
                self._count_work(processing_s)
            self._env.call_at(now + processing_s, self._on_done, done)
            return
        log.outcome[delivery] = outcome
        if failures is not None and delivery in failures.stall_start_s:
            self._stalled(partition, position, delivery, now)
        expelled = self._expelled[member]
        if not expelled and position >= self._processed[partition]:
            self._processed[partition] = position + 1
        if self._handler.may_crash and self._handler.crashes(member // self._concurrency):
            self._crash(member // self._concurrency, delivery, now)
            return
        self._settled[message] = 1
        self._finish(done, now)

    def _finish(self, done: tuple[int, int, int, int], now: float) -> None:
        """The member is done with a record (processed, or given up on): it reads on."""
        member, partition, position, _ = done
        expelled = self._expelled[member]
        if not expelled and position >= self._processed[partition]:
            self._processed[partition] = position + 1
        self._current[member] = -1
        if expelled:
            # Its commit fails; it polls again and rejoins the group.
            self._expelled[member] = False
            self._poll_ends(member, now)
            if self._stopping:
                self._leave_when_done(member // self._concurrency)
            if self._open_sessions == 0:
                self._rebalance()
            return
        if self._reader[partition] == member:
            self._reader[partition] = -1
        self._batch[member] += 1
        if self._owner[partition] != member:
            # Revoked by a rebalance while processing: commit on revocation, and let the new owner read.
            self._commit(partition, self._processed[partition])
            if self._owner[partition] >= 0:
                self._dispatch(self._owner[partition], now)
        else:
            if self._rules.commit == "per-message":
                self._commit(partition, self._processed[partition])
            if self._batch[member] >= self._rules.max_poll_records:
                self._poll_ends(member, now)
        if self._stopping:
            self._leave_when_done(member // self._concurrency)
        self._dispatch(member, now)

    # ------------------------------------------------------------ offsets
    def _commit(self, partition: int, offset: int) -> None:
        """Commit ``offset``; a commit never moves a partition's offset back."""
        if offset > self._committed[partition]:
            self._committed[partition] = offset

    def _poll_ends(self, member: int, now: float) -> None:
        """The member polls again: with ``commit: per-batch`` it commits what it processed."""
        if self._batch[member] and self._rules.commit == "per-batch":
            for partition in self._owned[member]:
                self._commit(partition, self._processed[partition])
        self._batch[member] = 0
        self._poll_s[member] = now

    def _on_commit_tick(self, _value: None) -> None:
        for member, owned in enumerate(self._owned):
            if self._alive[member]:
                for partition in owned:
                    self._commit(partition, self._processed[partition])
        self._env.call_at(self._env.now + self._rules.auto_commit_interval_s, self._on_commit_tick)

    # ------------------------------------------------------------ crashes and rebalancing
    def _crash(self, instance: int, delivery: int, now: float) -> None:
        """``instance`` crashes after processing ``delivery``, before committing its offset (-1: at a
        scheduled time)."""
        log = self.log
        log.crashes.append((now, instance))
        if delivery >= 0:
            log.crashed.add(delivery)
        self._abandon(instance, delivery, now)
        recovery_s = self._handler.crash(instance, after_processing=delivery >= 0)
        self._env.call_at(self._env.now + recovery_s, self._on_restart, instance)

    def _abandon(self, instance: int, delivery: int, now: float, label: int = -1) -> None:
        """``instance`` is gone after processing ``delivery`` (-1: at a given time); its members' partitions
        are rewound, what comes again labelled ``label`` (-1: by what it was doing, as a crash labels it),
        and the coordinator drops the members when their sessions expire."""
        log = self.log
        first_member = instance * self._concurrency
        moved = []  # partitions in hand that a rebalance had already given to another member
        for member in range(first_member, first_member + self._concurrency):
            self._alive[member] = False
            self._expelled[member] = False  # it rejoins as a new member when the instance comes back
            current = self._current[member]
            self._current[member] = -1
            self._batch[member] = 0
            causes = self._crash_causes(current, delivery)
            if label >= 0:
                causes = dict.fromkeys(causes, label)
            in_hand = self._current_partition[member]
            # A member dropped for a slow poll no longer reads its record's partition; another may.
            if current >= 0 and self._reader[in_hand] == member:
                self._reader[in_hand] = -1
                if in_hand not in self._owned[member]:
                    self._rewind(in_hand, DeliveryCause.OFFSET_REWIND if label < 0 else label, causes)
                    moved.append(in_hand)
            if current >= 0 and current != delivery:
                log.outcome[current] = _ABORTED
                log.done_s[current] = now
                self._handler.abort(current)
                if not self._at_least_once:
                    self._lose(log.message[current], now, LossReason.CRASH_IN_FLIGHT)
            for partition in self._owned[member]:
                self._rewind(partition, DeliveryCause.OFFSET_REWIND if label < 0 else label, causes)
                self._owner[partition] = _ORPHANED
            self._owned[member] = []
        if not self._at_least_once and delivery >= 0:
            self._settled[log.message[delivery]] = 1
        self._open_sessions += 1
        self._env.call_at(self._env.now + self._rules.session_timeout_s, self._on_session_expired)
        for partition in moved:
            if self._owner[partition] >= 0:
                self._dispatch(self._owner[partition], now)

    def _crash_causes(self, in_flight: int, crashed: int) -> dict[int, int]:
        """Why the records a crash interrupted come again, by message."""
        causes: dict[int, int] = {self.log.message[crashed]: DeliveryCause.CRASH_BEFORE_ACK} if crashed >= 0 else {}
        if in_flight >= 0 and in_flight != crashed:
            causes[self.log.message[in_flight]] = DeliveryCause.CRASH_IN_FLIGHT
        return causes

    def _rewind(self, partition: int, cause: int, causes: dict[int, int]) -> None:
        """Move the partition's read position back to its committed offset, labelling what comes again."""
        replay = self._replay_cause[partition]
        for position in range(self._committed[partition], self._position[partition]):
            message = self._log_message[partition][position]
            replay[position] = causes.get(message, cause)
        self._position[partition] = self._committed[partition]
        self._processed[partition] = min(self._processed[partition], self._committed[partition])
        self._replay_s[partition] = self._env.now  # what comes again arrives now; a stall after it is queue wait

    def _on_poll_timeout(self, timeout: tuple[int, int]) -> None:
        """A member outlasted max_poll_interval: the coordinator drops it and rebalances.

        Its partitions go back to their committed offsets and to other members
        while it finishes the record in hand, whose commit then fails: what it
        processed since the last commit is processed again.
        """
        member, delivery = timeout
        if self._current[member] != delivery or self._expelled[member]:
            return
        self._expelled[member] = True
        in_hand = self._current_partition[member]
        # The record in hand may belong to a partition an earlier rebalance already gave to another member.
        for partition in self._owned[member]:
            self._rewind(partition, DeliveryCause.REBALANCE, {})
            self._owner[partition] = _ORPHANED
        if self._reader[in_hand] == member:
            self._reader[in_hand] = -1
            if in_hand not in self._owned[member]:
                self._rewind(in_hand, DeliveryCause.REBALANCE, {})
                if self._owner[in_hand] >= 0:
                    self._dispatch(self._owner[in_hand], self._env.now)
        self._owned[member] = []
        if self._open_sessions == 0:  # else the rebalance waits for crashed members to expire
            self._rebalance()

    def _on_session_expired(self, _value: None) -> None:
        """The coordinator drops a crashed member and rebalances the group."""
        self._open_sessions -= 1
        self._rebalance()

    def _on_restart(self, instance: int) -> None:
        if instance in self._stopping:
            self._stopping.discard(instance)  # a deploy or the scaler stopped it while it was down
            assert self._lifecycle is not None
            self._lifecycle.stopped(instance)
        elif self._lifecycle is None or self._lifecycle.restarts(instance):
            self.serve(instance)

    # ------------------------------------------------------------ deploys and scaling
    def stop(self, instance: int, kill: bool) -> None:
        """Stop ``instance``: at once (``kill``, as a crash), or once its members have finished their records.

        A graceful stop closes the consumers: each finishes the record in
        hand, commits its partitions' offsets and leaves the group, which
        rebalances at once (no session timeout to wait for). A killed one is
        dropped when its session expires, as after a crash. A crashed
        instance stops when its restart is due.
        """
        assert self._lifecycle is not None
        first_member = instance * self._concurrency
        members = range(first_member, first_member + self._concurrency)
        if kill and self._alive[first_member]:
            self._abandon(instance, -1, self._env.now, DeliveryCause.DEPLOY)
            self._handler.restart(instance)
            self._lifecycle.stopped(instance)
            return
        down = not self._alive[first_member]
        for member in members:
            self._alive[member] = False
        self._stopping.add(instance)
        if not down:
            self._leave_when_done(instance)

    def _leave_when_done(self, instance: int) -> None:
        """The members of a stopping ``instance`` leave the group once none is processing a record."""
        first_member = instance * self._concurrency
        members = range(first_member, first_member + self._concurrency)
        if instance not in self._stopping or self._alive[first_member]:
            return
        if any(self._current[member] >= 0 for member in members):
            return
        self._stopping.discard(instance)
        for member in members:
            for partition in self._owned[member]:
                self._commit(partition, self._processed[partition])
                self._owner[partition] = _ORPHANED
            self._owned[member] = []
            self._expelled[member] = False
            self._batch[member] = 0
        self._handler.restart(instance)
        assert self._lifecycle is not None
        self._lifecycle.stopped(instance)
        if self._open_sessions == 0:
            self._rebalance()

    def serve(self, instance: int) -> None:
        """The instance's members join again; the rebalance that follows waits for crashed members to expire."""
        first_member = instance * self._concurrency
        for member in range(first_member, first_member + self._concurrency):
            self._alive[member] = True
        if self._open_sessions == 0:
            self._rebalance()
        self._read_retries()

    def _rebalance(self) -> None:
        """Assign every partition again, by range over the live members.

        A partition that changes hands between live members carries on from
        where it was (its old owner commits on revocation); a crashed
        member's partitions were rewound to their committed offsets.
        """
        live = [member for member, alive in enumerate(self._alive) if alive and not self._expelled[member]]
        if not live:
            return
        now = self._env.now
        if self._lifecycle is not None:
            self._lifecycle.rebalance_s.append(now)
        for member in range(len(self._owned)):
            self._owned[member] = []
        for member, owned in zip(live, range_assignment(len(self._owner), len(live))):
            self._owned[member] = owned
            for partition in owned:
                previous = self._owner[partition]
                if previous == _ORPHANED:
                    self._replay_s[partition] = now
                elif previous != member and self._reader[partition] < 0:
                    self._commit(partition, self._processed[partition])
                self._owner[partition] = member
        for member in live:
            if self._current[member] < 0:
                self._poll_ends(member, now)
            self._dispatch(member, now)

    # ------------------------------------------------------------ processing failures
    def _failed(self, done: tuple[int, int, int, int], now: float) -> None:
        """An attempt failed: the member retries in place, holding the partition, or gives up on the record."""
        member, partition, position, delivery = done
        failures = self._failures
        assert failures is not None
        log = self.log
        message = log.message[delivery]
        partial = failures.attempt_failed(self._handler, log, delivery, member // self._concurrency, now)
        retry = failures.retry(log, delivery, partial, now)
        if retry is not None:
            row, take_s = retry
            self._current[member] = row
            self._env.call_at(take_s, self._on_retry, (member, partition, position, row))
            return
        self._stalled(partition, position, delivery, now)
        if failures.retry_topic_delays_s:
            self._to_retry_topic(message, log.attempt[delivery], 0, now)
        else:
            self._settled[message] = 1
            if failures.action == "dead_letter":
                log.dead_letters.append((message, now, failures.dead_letter_cause(message, limit=False)))
            else:
                log.lose(message, now, LossReason.GIVEN_UP)
        self._finish(done, now)

    def _on_retry(self, retry: tuple[int, int, int, int]) -> None:
        member, _, _, delivery = retry
        if self._current[member] != delivery:
            return  # aborted by a crash of its instance
        now = self._env.now
        message = self.log.message[delivery]
        self.log.take_s[delivery] = now
        if self._handler.reads_first:
            self._handler.begin(delivery, message)
        self._env.call_at(now + self._attempt_s(delivery, message, now), self._on_done, retry)

    def _attempt_s(self, delivery: int, message: int, now: float) -> float:
        """How long the attempt at ``delivery`` that starts at ``now`` takes: a draw, slowed and failing as the
        consumer's failures say, and counted for a utilisation scaler."""
        processing_s = self._processing_time()
        if self._failures is not None:
            processing_s = self._failures.attempt_s(delivery, message, processing_s, now)
        if self._count_work is not None:
            self._count_work(processing_s)
        return processing_s

    def _stalled(self, partition: int, position: int, delivery: int, now: float) -> None:
        """The record at ``position``, which had failed before, held its partition until ``now``."""
        behind = bisect_left(self._log_arrival[partition], now, position + 1) - position - 1
        self._failures.stall_ends(delivery, now, partition, max(behind, 0))

    def _to_retry_topic(self, message: int, attempt: int, level: int, now: float) -> None:
        """Forward a failed record to retry topic ``level``, read once its delay is up (after the last: the
        dead-letter topic). The retry topics' consumer holds up no partition of the main topic."""
        failures = self._failures
        assert failures is not None
        delays_s = failures.retry_topic_delays_s
        if level == len(delays_s):
            self._settled[message] = 1
            self.log.dead_letters.append((message, now, failures.dead_letter_cause(message, limit=False)))
            return
        self._env.call_at(now + delays_s[level], self._on_retry_topic, (message, attempt + 1, level))

    def _on_retry_topic(self, read: tuple[int, int, int]) -> None:
        """The retry topic's consumer reads the record and processes it once."""
        message, attempt, level = read
        now = self._env.now
        log, failures = self.log, self._failures
        assert failures is not None
        concurrency = self._concurrency
        serving = [
            instance
            for instance in range(len(self._alive) // concurrency)
            if self._alive[instance * concurrency] and instance not in self._stopping
        ]
        if self._paused or not serving:
            self._retry_reads.append(read)  # read once the broker is back, or an instance serves
            return
        instance = serving[message % len(serving)]
        delivery = log.append(message, attempt, DeliveryCause.PROCESSING_FAILED, instance, now, now, now)
        if self._handler.reads_first:
            self._handler.begin(delivery, message)
        processing_s = failures.attempt_s(delivery, message, self._processing_time(), now)
        self._env.call_at(now + processing_s, self._on_retry_topic_done, (delivery, level))

    def _read_retries(self) -> None:
        """Read the retry-topic records that came due while the broker was down or no instance served."""
        waiting, self._retry_reads = self._retry_reads, []
        for read in waiting:
            self._on_retry_topic(read)

    def _on_retry_topic_done(self, processed: tuple[int, int]) -> None:
        delivery, level = processed
        now = self._env.now
        log, failures, handler = self.log, self._failures, self._handler
        assert failures is not None
        message = log.message[delivery]
        log.done_s[delivery] = now
        if delivery in failures.failing:
            failures.failing.discard(delivery)
            if handler.reads_first:
                handler.abort(delivery)
            log.outcome[delivery] = _FAILED
            self._to_retry_topic(message, log.attempt[delivery], level + 1, now)
            return
        outcome = handler.handle(delivery, message, log.instance[delivery], now)
        log.outcome[delivery] = outcome if outcome >= 0 else _FAILED  # a version conflict: tried again later
        if outcome >= 0:
            self._settled[message] = 1
        else:
            self._to_retry_topic(message, log.attempt[delivery], level + 1, now)

    def _lose(self, message: int, now: float, reason: LossReason) -> None:
        self.log.lose(message, now, reason)
        self._settled[message] = 1

    def publish_failed(self, message: int, publish_s: float, reason: LossReason) -> None:
        """``message`` never reached the broker: its publisher gave up during an outage, or crashed."""
        self._lose(message, publish_s, reason)

    # ------------------------------------------------------------ the record
    def has_work_left(self) -> bool:
        """Whether a record is unread, a member is processing, or a message is unsettled."""
        return (
            any(p < len(log) for p, log in zip(self._position, self._log_arrival))
            or any(current >= 0 for current in self._current)
            or self._settled.find(0) >= 0
            or bool(self._retry_reads)
            or self._crashes_due > 0
            or (self._lifecycle is not None and self._lifecycle.deploys_left > 0)
        )

    def load(self, now: float) -> tuple[int, float]:
        """The records arrived at ``now`` and not yet committed (the group's lag), and when the oldest
        unread one arrived."""
        lag, oldest_s = 0, _INFINITY
        for partition, arrivals in enumerate(self._log_arrival):
            arrived = bisect_right(arrivals, now)
            lag += max(arrived - self._committed[partition], 0)
            position = self._position[partition]
            if position < arrived:
                oldest_s = min(oldest_s, max(arrivals[position], self._replay_s[partition]))
        return lag, oldest_s

    def record(self, end_s: float, key_codes: np.ndarray) -> GroupRecord:
        """Freeze what happened into arrays; records not yet read count as unserved."""
        unread = [
            (np.maximum(arrivals[position:], replay_s), messages[position:])
            for arrivals, messages, position, replay_s in zip(
                self._log_arrival, self._log_message, self._position, self._replay_s
            )
        ]
        unserved_s = np.concatenate([np.empty(0), *(arrival_s for arrival_s, _ in unread)])
        unserved = np.concatenate([np.empty(0, np.int32), *(message for _, message in unread)])
        record = self.log.freeze(
            self.consumer.name, self._selection, unserved_s, unserved, end_s, self._handler, key_codes, self._failures
        )
        return with_lifecycle(record, self._lifecycle)
