"""What a run leaves behind: immutable records of numpy arrays.

The engine writes these; :mod:`busim.analysis` reads them. A message id is
its index in :class:`Messages`: the published messages in publish order,
then the emitted ones, appended stage by stage. Inside a consumer group a
message is addressed by its group-local index, an index into
``GroupRecord.message_ids``, which lists the group's messages in publish
order (an emitted message is published when the processing that emitted it
ends).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from busim.scenario.schema import Scenario

if TYPE_CHECKING:
    from busim.engine.effects import EffectPlan  # which builds on the records
    from busim.engine.lifecycle import LifecycleRecord  # likewise


class Outcome(enum.IntEnum):
    """How the processing of one delivery ended."""

    PROCESSING = 0  # still being processed when the run stopped
    APPLIED = 1  # the effects were applied
    REJECTED = 2  # a guarded effect refused the change; nothing was applied
    SKIPPED = 3  # an idempotent consumer had processed this message already
    ABORTED = 4  # the instance crashed while this delivery was being processed
    FAILED = 5  # the processing raised (consumers[].failures) before its effects: nothing was applied
    FAILED_AFTER_EFFECTS = 6  # the processing raised after writing its effects without a transaction


APPLIED_OUTCOMES = (Outcome.APPLIED, Outcome.FAILED_AFTER_EFFECTS)  # the effects were written
FAILED_OUTCOMES = (Outcome.FAILED, Outcome.FAILED_AFTER_EFFECTS)


PROCESSED_OUTCOMES = (Outcome.APPLIED, Outcome.REJECTED, Outcome.SKIPPED)


class DeliveryCause(enum.IntEnum):
    """Why a delivery happened."""

    FIRST = 0  # the broker's first attempt
    BROKER_DUPLICATE = 1  # the second copy of a duplicated attempt
    TRANSIT_LOSS = 2  # redelivered: an earlier attempt was lost in transit
    CRASH_BEFORE_ACK = 3  # redelivered: the consumer crashed after its effects, before the ack
    ACK_TIMEOUT = 4  # redelivered: a slow consumer outlasted the ack or visibility timeout
    CRASH_IN_FLIGHT = 5  # redelivered: the instance crashed while processing it
    PRODUCER_RETRY = 6  # a publisher resent it after a lost publish ack, and the broker kept both
    DEDUP_WINDOW_EXPIRED = 7  # a publisher's resend reached the broker after its dedup window
    PREFETCHED = 8  # redelivered: the instance crashed holding it unprocessed (prefetch, batch)
    OFFSET_REWIND = 9  # redelivered: processed but its offset not committed when the instance crashed
    REBALANCE = 10  # redelivered: its partition moved after a member outlasted max_poll_interval
    OUTBOX_RELAY = 11  # published again from the outbox after its publisher crashed around the first publish
    INJECTED_DUPLICATE = 12  # a real run's publisher published it twice, as broker.duplication asks
    DEPLOY = 13  # redelivered: a deploy killed the instance holding it (drain: kill)
    PROCESSING_FAILED = 14  # redelivered: its processing failed and the consumer gave up and nacked it
    RETRY = 15  # the consumer's own retry of a failed attempt (not a delivery by the broker)
    RETRY_AFTER_PARTIAL_EFFECT = 16  # ... of a failed attempt that had written its effects without a transaction
    # Why a message was dead-lettered after its processing failed (dead letters only, never a delivery's cause).
    POISON = 17  # it fails on every attempt (consumers[].failures.poison)
    RETRIES_EXHAUSTED = 18  # its attempts all failed, and the consumer dead-lettered it (on_give_up: dead_letter)
    DELIVERY_LIMIT = 19  # nacked until the broker's delivery limit


class DedupMiss(enum.IntEnum):
    """Why an idempotent consumer's store did not know a message it had processed before."""

    TTL_EXPIRED = 0  # the id was older than dedup.ttl
    EVICTED = 1  # the store was full (dedup.capacity) and evicted the id as the least recently seen
    STORE_LOST = 2  # the instance kept the id in memory (durable: false) and crashed
    OTHER_INSTANCE = 3  # another instance processed it, and in-memory stores are not shared
    NOT_RECORDED = 4  # the instance crashed after the effects, before recording the id (atomic_with_effects: false)


class LossReason(enum.IntEnum):
    """Why a message never reached a group."""

    TRANSIT_LOSS = 0  # an attempt lost in transit, with nothing to redeliver it
    CRASH_IN_FLIGHT = 1  # at-most-once: the instance crashed while holding it
    OVERFLOW_DROPPED = 2  # the queue was full and dropped its oldest message (drop-head)
    OVERFLOW_REJECTED = 3  # the queue was full and refused it until the publisher gave up (reject-publish)
    PUBLISH_FAILED = 4  # the broker was down for longer than the publisher kept retrying
    PUBLISHER_CRASH = 5  # its publisher crashed after committing its state and before publishing (no outbox)
    INJECTED_LOSS = 6  # a real run's publisher left it unpublished, as broker.loss asks
    GIVEN_UP = 7  # its processing failed, and the consumer gave up and dropped or acked it (on_give_up)


@dataclass(frozen=True)
class Messages:
    """Every message: the published ones in publish order, then those consumers emitted."""

    publish_s: np.ndarray  # when its publisher published it
    accept_s: np.ndarray  # when the broker accepted it (later if an outage was on; NaN if never)
    failed: np.ndarray  # the broker was down for longer than the publisher kept retrying
    publisher: np.ndarray  # index into scenario.publishers
    event: np.ndarray  # index into event_names
    event_names: tuple[str, ...]
    fields: dict[str, dict[str, np.ndarray]]  # event -> field -> values, aligned with members[event]
    members: dict[str, np.ndarray]  # event -> ids of its messages, ascending
    # Resends after a lost publish ack, one row each: which message, when the broker got it, and
    # whether the broker kept it (no deduplication, or its dedup window had passed).
    resend_message: np.ndarray
    resend_accept_s: np.ndarray
    resend_kept: np.ndarray
    resend_relayed: np.ndarray  # the resend is the outbox relay's, after its publisher crashed
    publisher_crashed: np.ndarray  # its publisher crashed after committing, before the event was safely out
    # Emitted messages (appended after the published ones): the message whose processing emitted
    # each, and the index of the consumer that emitted it; -1 for messages a publisher published.
    cause: np.ndarray
    emitter: np.ndarray

    def __len__(self) -> int:
        return len(self.publish_s)

    def select(self, events: list[str]) -> Selection:
        """The messages of ``events``, in publish order (ties by id)."""
        members = joined([self.members[event] for event in events])
        publish_s = self.publish_s[members]
        if (publish_s[1:] >= publish_s[:-1]).all() and (members[1:] > members[:-1]).all():
            # In publish order already (one event's published messages): share the arrays, copy nothing.
            return Selection(ids=members, events=tuple(events), order=None)
        del publish_s
        order = np.lexsort((members, self.publish_s[members]))
        return Selection(ids=members[order], events=tuple(events), order=order)

    def common_fields(self, selection: Selection) -> dict[str, np.ndarray]:
        """The payload fields that all of the selection's events carry, aligned with it."""
        common = set.intersection(*(set(self.fields[event]) for event in selection.events))
        return {
            name: selection.align([self.fields[event][name] for event in selection.events]) for name in sorted(common)
        }


@dataclass(frozen=True)
class Selection:
    """Some events' messages in publish order: ``ids[i]`` is group-local message ``i``."""

    ids: np.ndarray
    events: tuple[str, ...]
    order: np.ndarray | None  # from the events' members, concatenated, to publish order; None: theirs already

    def local(self, ids: np.ndarray) -> np.ndarray:
        """The group-local indices of messages ``ids``, which must be in the selection."""
        if self.ids.size < 2 or (self.ids[1:] > self.ids[:-1]).all():
            return np.searchsorted(self.ids, ids)  # ascending (no emitted messages): no sort to keep
        sorter = np.argsort(self.ids, kind="stable")
        return sorter[np.searchsorted(self.ids, ids, sorter=sorter)]

    def align(self, per_event: list[np.ndarray]) -> np.ndarray:
        """Concatenate one array per event (aligned with its members) into publish order.

        Where that is the order of one event's array, the array itself is returned, not a copy.
        """
        return self.in_order(joined(per_event))

    def in_order(self, values: np.ndarray) -> np.ndarray:
        """``values``, aligned with the events' members concatenated, in publish order."""
        return values if self.order is None else values[self.order]


def constant(value: int, size: int, dtype: type) -> np.ndarray:
    """A column of ``size`` rows that all hold ``value``: the one value broadcast, read-only as the record is,
    rather than ``size`` copies of it."""
    return np.broadcast_to(np.array(value, dtype), (size,))


def stable_order(keys: tuple[np.ndarray, ...]) -> np.ndarray | slice:
    """``np.lexsort(keys)`` (the last key primary, ties kept in order); where the rows are in that order
    already, all of them as they are: a slice, so that indexing with it copies nothing."""
    in_order = np.ones(max(keys[0].size - 1, 0), bool)  # each row and the next, by the keys seen so far
    for key in keys:  # from the last-priority key to the primary one
        earlier, later = key[:-1], key[1:]
        in_order &= earlier == later
        in_order |= earlier < later
    return slice(None) if in_order.all() else np.lexsort(keys)


def joined(arrays: list[np.ndarray]) -> np.ndarray:
    """The arrays concatenated; a single one as it is, not copied."""
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)


@dataclass(frozen=True)
class Deliveries:
    """One row per delivery handed to a worker, in the order they were taken."""

    message: np.ndarray  # group-local message index
    attempt: np.ndarray  # the broker's delivery attempt (1 = first)
    cause: np.ndarray  # DeliveryCause
    instance: np.ndarray  # the instance that processed it
    arrival_s: np.ndarray  # when it reached the group's queue
    receive_s: np.ndarray  # when its instance received it, leaving the broker's queue
    take_s: np.ndarray  # when a worker started processing it (NaN if none did)
    done_s: np.ndarray  # when its processing ended (NaN while still processing)
    outcome: np.ndarray  # Outcome
    crashed: np.ndarray  # the instance crashed right after processing it, before the ack

    def __len__(self) -> int:
        return len(self.message)


@dataclass(frozen=True)
class CounterState:
    """A keyed counter at the end of a run: one value per key seen."""

    keys: tuple[object, ...]
    values: np.ndarray
    initial: int
    floor: int | None = None  # the highest floor an effect on this counter sets
    # What the initial value and every accepted change add up to, per key, where lost updates made
    # it differ from ``values`` (read-modify-write); None where the two are the same.
    committed: np.ndarray | None = None

    @property
    def balance(self) -> np.ndarray:
        """Per key, the initial value plus every change the consumer accepted."""
        return self.values if self.committed is None else self.committed

    @property
    def oversold(self) -> int:
        """How far the accepted changes took the keys below the floor, summed over keys.

        Only changes a floor could not hold back count: those accepted on a
        stale read (read-modify-write), where ``committed`` is kept.
        """
        if self.floor is None or self.committed is None:
            return 0
        return int(np.maximum(self.floor - self.balance, 0).sum())


@dataclass(frozen=True)
class Fates:
    """How each of a group's messages ended, as boolean masks over group-local indices."""

    processed: np.ndarray  # processing completed at least once
    lost: np.ndarray  # never processed, and lost (at-most-once)
    dead_lettered: np.ndarray  # moved to the dead-letter queue (possibly after processing)
    stuck_pending: np.ndarray  # left unacknowledged with nothing to redeliver it (possibly after processing)

    @property
    def in_flight(self) -> np.ndarray:
        """Neither processed, lost, dead-lettered nor stuck pending: still on its way somewhere."""
        return ~(self.processed | self.lost | self.dead_lettered | self.stuck_pending)


@dataclass(frozen=True)
class FailureRecord:
    """A group's processing failures beyond its deliveries' rows: its poison messages, and the stalls.

    A stall is a delivery that failed and held its worker (on Kafka, its
    partition) from its first failed attempt to its last attempt.
    """

    poison: np.ndarray  # group-local indices of the messages that fail on every attempt
    stall_partition: np.ndarray  # -1 on a queue
    stall_start_s: np.ndarray
    stall_end_s: np.ndarray
    stall_held_up: np.ndarray  # Kafka: records of the partition that arrived behind it while it stalled


@dataclass(frozen=True)
class GroupRecord:
    """What happened to one consumer group's messages."""

    name: str
    selection: Selection  # the messages of the events the group subscribes to
    deliveries: Deliveries
    unserved_arrival_s: np.ndarray  # copies that reached the queue but no instance by the end
    unserved_message: np.ndarray  # messages of every copy still queued or on its way at the end
    lost_message: np.ndarray
    lost_s: np.ndarray
    lost_reason: np.ndarray  # LossReason
    dead_letter_message: np.ndarray
    dead_letter_s: np.ndarray
    dead_letter_cause: np.ndarray  # DeliveryCause of the redelivery the limit refused
    # Entries left in a pending-entries list that nothing claims (Redis without a claimer): which
    # message, when it was left there (the crash, the lost attempt), since when it has been idle
    # there (its last delivery), and why it was not acked.
    stuck_pending_message: np.ndarray
    stuck_pending_s: np.ndarray
    stuck_pending_since_s: np.ndarray
    stuck_pending_cause: np.ndarray  # DeliveryCause its redelivery would have had
    crash_s: np.ndarray
    crash_instance: np.ndarray
    # Scheduled crashes that did not happen: at a time that found the instance down (count -1), or
    # after a count the instance never reached (time NaN); instance -1 where it was to be drawn.
    missed_crash_s: np.ndarray
    missed_crash_instance: np.ndarray
    missed_crash_after: np.ndarray
    rejected_publishes: int  # publishes the full queue refused (reject-publish), retried or not
    counters: dict[str, CounterState]
    recovery_s: np.ndarray  # per crash: how long the instance took to serve again (restart plus replay)
    replayed: np.ndarray  # per crash: events an event-sourced consumer replayed to rebuild its state
    dedup_miss_delivery: np.ndarray  # deliveries of messages processed before that the dedup store let through
    dedup_miss_reason: np.ndarray  # DedupMiss, aligned with dedup_miss_delivery
    lost_updates: int  # read-modify-write: writes that overwrote a change made since their read
    optimistic_retries: int  # optimistic: writes refused for a changed version, and processed again
    # How the group's effects applied to its state, and each message's ordering key as a code (keys.key_codes):
    # the analysis replays the one and compares orders by the other, as the engine used them.
    plan: EffectPlan
    key_codes: np.ndarray
    lifecycle: LifecycleRecord | None = None  # what the group's deploys and scaler did, where it has them
    failures: FailureRecord | None = None  # where the consumer has failures or slowdowns

    @property
    def message_ids(self) -> np.ndarray:
        """Global ids of the group's messages; group-local index ``i`` is ``message_ids[i]``."""
        return self.selection.ids

    def fates(self) -> Fates:
        count = self.message_ids.size
        deliveries = self.deliveries
        processed = np.zeros(count, dtype=bool)
        processed[deliveries.message[np.isin(deliveries.outcome, PROCESSED_OUTCOMES)]] = True
        lost = np.zeros(count, dtype=bool)
        lost[self.lost_message] = True
        dead_lettered = np.zeros(count, dtype=bool)
        dead_lettered[self.dead_letter_message] = True
        stuck_pending = np.zeros(count, dtype=bool)
        stuck_pending[self.stuck_pending_message] = True
        # A message left pending is not lost, even where a copy of it was dropped before it was.
        return Fates(
            processed=processed,
            lost=lost & ~processed & ~stuck_pending,
            dead_lettered=dead_lettered,
            stuck_pending=stuck_pending,
        )


@dataclass(frozen=True)
class Reads:
    """The reads of one consumer's read model (its ``queries``), drawn up front, in time order."""

    at_s: np.ndarray  # when each read came, inside the publishing window [0, duration)
    message: np.ndarray  # group-local index of the message whose key it reads
    effect: np.ndarray  # which of the effects on the queried counter gives that key (0 with one effect)

    def __len__(self) -> int:
        return len(self.at_s)


@dataclass(frozen=True)
class Stop:
    """Why a run stopped early: a consumer group in a delivery loop that would never end."""

    consumer: str
    at_s: float
    deliveries: int
    messages: int


def loss_columns(lost: np.ndarray, dead: np.ndarray, stuck: np.ndarray) -> dict[str, np.ndarray]:
    """A :class:`GroupRecord`'s columns of the copies lost, dead-lettered and left pending, from rows of
    (message, time, LossReason), (message, time, DeliveryCause) and (message, time, idle since, DeliveryCause)."""
    return {
        "lost_message": lost[:, 0].astype(np.int64),
        "lost_s": lost[:, 1],
        "lost_reason": lost[:, 2].astype(np.int8),
        "dead_letter_message": dead[:, 0].astype(np.int64),
        "dead_letter_s": dead[:, 1],
        "dead_letter_cause": dead[:, 2].astype(np.int8),
        "stuck_pending_message": stuck[:, 0].astype(np.int64),
        "stuck_pending_s": stuck[:, 1],
        "stuck_pending_since_s": stuck[:, 2],
        "stuck_pending_cause": stuck[:, 3].astype(np.int8),
    }


@dataclass(frozen=True)
class RunRecord:
    """Everything one simulation run produced."""

    scenario: Scenario  # with its seed filled in
    messages: Messages
    groups: tuple[GroupRecord, ...]
    sim_time_s: float
    drained: bool  # False when the run stopped at duration + drain_timeout with work left
    reads: dict[str, Reads] = field(default_factory=dict)  # consumer name -> its reads, for consumers with queries
    stopped: Stop | None = None  # the run stopped early, before the horizon
