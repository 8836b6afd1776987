"""Every message's story: what happened to it, moment by moment, and where it departs from exactly-once.

A :class:`Story` follows one message from its publisher through each
consumer group that subscribes to its event: every copy delivered, who
processed it and how that ended, crashes, losses and dead letters, in time
order, followed by the anomalies the message shows per consumer. The
anomalies are the summary's figures taken message by message, so the
messages with an anomaly in a consumer are exactly the ones its figure
counts (``duplicate_effect`` counts messages, where ``duplicate_effects``
counts the applications beyond the first).

Everything here is pure numpy over a :class:`RunRecord`.
"""

from __future__ import annotations

import enum
from collections.abc import Collection
from dataclasses import dataclass

import numpy as np

from busim.analysis.chains import logical_ids
from busim.analysis.consistency import out_of_order_messages
from busim.analysis.events import GroupEvents
from busim.engine.records import (
    FAILED_OUTCOMES,
    DedupMiss,
    DeliveryCause,
    GroupRecord,
    LossReason,
    Outcome,
    RunRecord,
)

# Every anomaly a message can show in a consumer, in the order reports list them.
ANOMALY_KINDS = (
    "duplicate_effect",
    "lost",
    "dead_lettered",
    "stuck_pending",
    "wrongly_rejected",
    "wrongly_accepted",
    "out_of_order",
    "failed",
)

# How `with_anomaly` lists the messages with each kind, worst first; ties, and kinds where every case is
# as bad as another, go in publish order (message id). Said in --anomaly's help and in the docs.
ANOMALY_ORDER = {
    "duplicate_effect": "most applications first",
    "lost": "in publish order",
    "dead_lettered": "never processed first",
    "stuck_pending": "never processed first",
    "wrongly_rejected": "in publish order",
    "wrongly_accepted": "in publish order",
    "out_of_order": "longest overtaken first, timed from the later message's processing to its own",
    "failed": "most failed attempts first",
}


class What(enum.StrEnum):
    """What happened to a message at one moment."""

    PUBLISHED = "published"  # its publisher published it
    ACCEPTED = "accepted"  # the broker accepted it late: it was down when the message was published
    PUBLISH_FAILED = "publish_failed"  # the broker was down for longer than the publisher kept retrying
    PUBLISHER_CRASHED = "publisher_crashed"  # the publisher crashed after committing, before publishing: no outbox
    RELAYED_LATE = "relayed_late"  # the publisher crashed before the outbox relay's send; sent after the restart
    RELAYED = "relayed"  # the publisher crashed after the relay's send; the relay sent it again after the restart
    EMITTED = "emitted"  # a consumer processing it emitted a follow-up message (``other``)
    RESENT = "resent"  # the publisher sent it again after a lost publish ack, and the broker kept the copy
    RESEND_DROPPED = "resend_dropped"  # the same, but the broker dropped the copy inside its dedup window
    ARRIVED = "arrived"  # a copy reached the group's queue
    RECEIVED = "received"  # an instance received the copy, which left the broker's queue
    STARTED = "started"  # a worker started processing the copy
    APPLIED = "applied"  # processing ended and applied the effects
    REJECTED = "rejected"  # processing ended, and a floor refused the change
    SKIPPED = "skipped"  # processing ended without effects: an idempotent consumer had processed it before
    ABORTED = "aborted"  # the instance crashed while processing the copy
    ABANDONED = "abandoned"  # the instance crashed holding the copy, before processing it
    KILLED = "killed"  # a deploy killed the instance holding the copy, processing it or not
    CRASHED = "crashed"  # the instance crashed right after processing the copy, before its ack
    UNCOMMITTED = "uncommitted"  # the instance that processed the copy crashed before committing its offset
    LOST = "lost"  # the group will never process it
    DEAD_LETTERED = "dead_lettered"  # moved to the dead-letter queue after the delivery limit
    LEFT_PENDING = "left_pending"  # left unacknowledged, with nothing to deliver it again (Redis without a claimer)
    FAILED = "failed"  # processing raised before its effects: nothing was applied
    FAILED_AFTER_EFFECTS = "failed_after_effects"  # processing raised after writing its effects without a transaction
    RETRIED = "retried"  # the worker started processing the copy again after a failed attempt (the consumer's retry)
    STILL_FAILING = "still_failing"  # a poison message still going round when the run ended


_ENDINGS = {
    Outcome.APPLIED: What.APPLIED,
    Outcome.REJECTED: What.REJECTED,
    Outcome.SKIPPED: What.SKIPPED,
    Outcome.FAILED: What.FAILED,
    Outcome.FAILED_AFTER_EFFECTS: What.FAILED_AFTER_EFFECTS,
}
_RETRIES = (DeliveryCause.RETRY, DeliveryCause.RETRY_AFTER_PARTIAL_EFFECT)


@dataclass(frozen=True)
class Happening:
    """One moment of a message's life."""

    time_s: float
    service: str  # the publisher, or the consumer group
    instance: int | None  # the group's instance involved, if one was
    what: What
    cause: DeliveryCause | LossReason | None = None  # why a copy was delivered, lost, dead-lettered or left pending
    attempt: int | None = None  # the broker's delivery attempt of the copy (1 = first)
    other: int | None = None  # EMITTED: the message emitted
    other_event: str | None = None  # EMITTED: its event


@dataclass(frozen=True)
class Anomaly:
    """One way a message departs from exactly-once processing in one consumer."""

    kind: str  # one of ANOMALY_KINDS
    consumer: str
    time_s: float  # when it showed: the second application, the loss, the dead letter, the rejection, the processing
    # duplicate_effect: why each extra copy that applied the effects was delivered (every copy but the
    # original, the broker's first attempt, whichever finished first), in time order; lost: the reason;
    # dead_lettered: why the attempt the delivery limit refused to repeat went unacknowledged;
    # stuck_pending: why it was left unacknowledged.
    causes: tuple[DeliveryCause | LossReason, ...] = ()
    applications: int = 0  # duplicate_effect: how many times the effects were applied
    # dead_lettered: the highest attempt delivered before (0: none reached the group); failed: the failed attempts
    attempts: int = 0
    processed: bool = False  # dead_lettered, stuck_pending: whether a processing had completed before
    idle_since_s: float | None = None  # stuck_pending: its last delivery, from which its idle time counts
    overtaken_by: int | None = None  # out_of_order: the later-published message of its key processed first
    overtaken_s: float | None = None  # out_of_order: when that message was first processed
    # duplicate_effect: twins (messages emitted twice upstream for this event) whose processing applied it
    # again, and why an idempotent consumer's store let each repeat through.
    twins: tuple[int, ...] = ()
    dedup_missed: tuple[DedupMiss, ...] = ()


@dataclass(frozen=True)
class Story:
    """The life of one message, in time order, and its anomalies per consumer."""

    message: int  # its id: its index in publish order (emitted messages come after the published ones)
    event: str
    publisher: str  # the publisher, or for an emitted message the consumer that emitted it
    fields: tuple[tuple[str, object], ...]  # its payload, in the event's order of fields
    published_s: float
    happenings: tuple[Happening, ...]
    anomalies: tuple[Anomaly, ...]
    caused_by: int | None = None  # an emitted message: the message whose processing emitted it


@dataclass(frozen=True)
class _GroupFacts:
    """What one group did with each of its messages, as arrays over group-local indices."""

    group: GroupRecord
    events: GroupEvents  # the group's messages counted once per event, as the summary counts them
    rows_by_message: np.ndarray  # delivery rows, grouped by message, each message's in the order received
    first_row: np.ndarray  # where each message's rows start in rows_by_message (one more entry at the end)
    lost: np.ndarray
    loss_row: np.ndarray  # the first loss record of each message (-1: none)
    dead_lettered: np.ndarray
    dead_letter_row: np.ndarray
    stuck_pending: np.ndarray
    stuck_pending_row: np.ndarray
    processed: np.ndarray
    overtaken_by: np.ndarray  # out of order, per event: the event that overtook it (-1: in order)
    failed_attempts: np.ndarray  # per message: attempts whose processing failed (consumers[].failures)

    @property
    def twin_of(self) -> np.ndarray:
        return self.events.twin_of

    @property
    def applications(self) -> np.ndarray:
        return self.events.applications

    @property
    def first_done_s(self) -> np.ndarray:
        return self.events.first_done_s

    @classmethod
    def of(cls, record: RunRecord, group: GroupRecord, logical: np.ndarray | None) -> _GroupFacts:
        deliveries = group.deliveries
        count = group.message_ids.size
        events = GroupEvents.of(record, group, logical)
        rows_by_message = np.argsort(deliveries.message, kind="stable")
        first_row = np.searchsorted(deliveries.message[rows_by_message], np.arange(count + 1))
        fates = group.fates()
        rows = events.event_first_rows
        late, overtaking = out_of_order_messages(
            group.key_codes,
            events.twin_of[deliveries.message[rows]],
            deliveries.done_s[rows],
        )
        overtaken_by = np.full(count, -1, np.int64)
        overtaken_by[late] = overtaking
        return cls(
            group=group,
            events=events,
            rows_by_message=rows_by_message,
            first_row=first_row,
            lost=fates.lost,
            loss_row=_first_record(group.lost_message, count),
            dead_lettered=fates.dead_lettered,
            dead_letter_row=_first_record(group.dead_letter_message, count),
            stuck_pending=fates.stuck_pending,
            stuck_pending_row=_first_record(group.stuck_pending_message, count),
            processed=fates.processed,
            overtaken_by=overtaken_by,
            failed_attempts=np.bincount(
                deliveries.message[np.isin(deliveries.outcome, FAILED_OUTCOMES)], minlength=count
            ),
        )

    def local(self, message: int) -> int | None:
        """The group-local index of a message, or None when the group does not subscribe to it."""
        found = np.flatnonzero(self.group.message_ids == message)
        return int(found[0]) if found.size else None

    def rows(self, local: int) -> np.ndarray:
        """A message's delivery rows, in the order its copies were received."""
        return self.rows_by_message[self.first_row[local] : self.first_row[local + 1]]

    def mask(self, kind: str) -> np.ndarray:
        """Which messages show ``kind``."""
        if kind == "duplicate_effect":
            return self.applications > 1
        if kind == "out_of_order":
            return self.overtaken_by >= 0
        if kind == "failed":
            return self.failed_attempts > 0
        masks = {
            "lost": self.lost,
            "dead_lettered": self.dead_lettered,
            "stuck_pending": self.stuck_pending,
            "wrongly_rejected": self.events.wrongly_rejected,
            "wrongly_accepted": self.events.wrongly_accepted,
        }
        return masks[kind]

    def severity(self, kind: str) -> np.ndarray:
        """How bad ``kind`` is for each message, by :data:`ANOMALY_ORDER`, to list the worst first: higher is worse."""
        if kind == "duplicate_effect":
            return self.applications.astype(np.float64)
        if kind == "failed":
            return self.failed_attempts.astype(np.float64)
        if kind in ("dead_lettered", "stuck_pending"):
            return (~self.processed).astype(np.float64)  # never processed is worse than processed, then parked
        if kind == "out_of_order":
            late = np.flatnonzero(self.overtaken_by >= 0)
            overtaken_s = np.zeros(self.applications.size)
            overtaken_s[late] = self.first_done_s[late] - self.first_done_s[self.overtaken_by[late]]
            return overtaken_s
        return np.zeros(self.applications.size)


def _first_record(messages: np.ndarray, count: int) -> np.ndarray:
    """For each message, its first row in a list of per-message records (-1 where it has none)."""
    first = np.full(count, -1, np.int64)
    unique, index = np.unique(messages, return_index=True)
    first[unique] = index
    return first


class Stories:
    """The stories of one run's messages.

    Builds, once per consumer group, which messages show each anomaly; each
    story is then told from the record's arrays.
    """

    def __init__(self, record: RunRecord) -> None:
        self.record = record
        logical = logical_ids(record.messages)
        self._facts = {group.name: _GroupFacts.of(record, group, logical) for group in record.groups}

    @property
    def consumers(self) -> tuple[str, ...]:
        """The consumer groups, in scenario order."""
        return tuple(self._facts)

    def counts(self) -> dict[str, dict[str, int]]:
        """How many messages show each anomaly, per consumer: ``{consumer: {kind: messages}}``."""
        return {
            name: {kind: int(np.count_nonzero(facts.mask(kind))) for kind in ANOMALY_KINDS}
            for name, facts in self._facts.items()
        }

    def with_anomaly(self, kind: str, consumer: str | None = None) -> np.ndarray:
        """Ids of the messages that show ``kind`` in ``consumer`` (in any consumer if None), worst first.

        In the order :data:`ANOMALY_ORDER` says: duplicate_effect the messages
        applied most often first; dead_lettered and stuck_pending those never
        processed first; out_of_order those overtaken longest first; ties, and
        the other kinds, go by message id. A message shown in several consumers
        counts once, at its worst.

        Raises:
            ValueError: ``kind`` is not one of :data:`ANOMALY_KINDS`, or ``consumer`` is unknown.
        """
        self._check(kind=kind, consumers=None if consumer is None else [consumer])
        names = self.consumers if consumer is None else (consumer,)
        ids, severity = [np.empty(0, np.int64)], [np.empty(0)]
        for name in names:
            facts = self._facts[name]
            shown = facts.mask(kind)
            ids.append(facts.group.message_ids[shown])
            severity.append(facts.severity(kind)[shown])
        merged_ids, merged_severity = np.concatenate(ids), np.concatenate(severity)
        order = np.lexsort((merged_ids, -merged_severity))
        merged_ids = merged_ids[order]
        _, first = np.unique(merged_ids, return_index=True)  # each message at its worst: its first place
        return merged_ids[np.sort(first)]

    def story(self, message: int, consumers: Collection[str] | None = None) -> Story:
        """The story of message ``message``, in the consumers named (every consumer if None).

        Raises:
            ValueError: no message has that id, or a consumer is unknown.
        """
        messages = self.record.messages
        if not 0 <= message < len(messages):
            raise ValueError(f"no message {message}: the run published messages 0 to {len(messages) - 1}")
        self._check(consumers=consumers)
        scenario = self.record.scenario
        event = messages.event_names[messages.event[message]]
        emitted = messages.emitter[message] >= 0
        if emitted:
            publisher = scenario.consumers[messages.emitter[message]].name
        else:
            publisher = scenario.publishers[messages.publisher[message]].name
        position = int(np.searchsorted(messages.members[event], message))
        fields = tuple((name, _plain(values[position])) for name, values in messages.fields[event].items())
        published_s = float(messages.publish_s[message])
        happenings = [Happening(published_s, publisher, None, What.PUBLISHED)]
        if messages.failed[message]:
            what = What.PUBLISHER_CRASHED if messages.publisher_crashed[message] else What.PUBLISH_FAILED
            happenings.append(Happening(published_s, publisher, None, what))
        elif messages.accept_s[message] > published_s:
            what = What.RELAYED_LATE if messages.publisher_crashed[message] else What.ACCEPTED
            happenings.append(Happening(float(messages.accept_s[message]), publisher, None, what))
        for resend in np.flatnonzero(messages.resend_message == message):
            if messages.resend_relayed[resend]:
                what = What.RELAYED if messages.resend_kept[resend] else What.RESEND_DROPPED
            else:
                what = What.RESENT if messages.resend_kept[resend] else What.RESEND_DROPPED
            happenings.append(Happening(float(messages.resend_accept_s[resend]), publisher, None, what))
        anomalies: list[Anomaly] = []
        for name, facts in self._facts.items():
            if consumers is not None and name not in consumers:
                continue
            local = facts.local(message)
            if local is not None:
                happenings += _group_happenings(facts, local)
                anomalies += _anomalies(facts, local)
        # After the processings: at equal times, the processing that emitted comes first.
        for child in np.flatnonzero(messages.cause == message).tolist():
            emitter = scenario.consumers[messages.emitter[child]].name
            if consumers is None or emitter in consumers:
                happening = Happening(
                    float(messages.publish_s[child]),
                    emitter,
                    None,
                    What.EMITTED,
                    other=child,
                    other_event=messages.event_names[messages.event[child]],
                )
                happenings.append(happening)
        return Story(
            message=message,
            event=event,
            publisher=publisher,
            fields=fields,
            published_s=published_s,
            # A stable sort: at equal times, cause stays before consequence, as listed.
            happenings=tuple(sorted(happenings, key=lambda happening: happening.time_s)),
            anomalies=tuple(anomalies),
            caused_by=int(messages.cause[message]) if emitted else None,
        )

    def _check(self, kind: str | None = None, consumers: Collection[str] | None = None) -> None:
        if kind is not None and kind not in ANOMALY_KINDS:
            raise ValueError(f"unknown anomaly {kind!r} (anomalies: {', '.join(ANOMALY_KINDS)})")
        unknown = [name for name in consumers or () if name not in self._facts]
        if unknown:
            raise ValueError(f"unknown consumer {unknown[0]!r} (consumers: {', '.join(self._facts)})")


def _plain(value: object) -> object:
    """A payload value as a plain Python value."""
    return value.item() if isinstance(value, np.generic) else value


def _group_happenings(facts: _GroupFacts, local: int) -> list[Happening]:
    """What happened to a message in one group: each copy, then its loss, dead letter or stuck entry."""
    group = facts.group
    deliveries = group.deliveries
    name = group.name
    found = []
    previous = -1
    for row in facts.rows(local).tolist():
        instance = int(deliveries.instance[row])
        attempt = int(deliveries.attempt[row])
        cause = DeliveryCause(deliveries.cause[row])
        if cause == DeliveryCause.OFFSET_REWIND and previous >= 0:
            # Processed before, and read again because its instance crashed before the commit: when.
            crashed = _crash_after(group, int(deliveries.instance[previous]), float(deliveries.done_s[previous]))
            if crashed is not None:
                found.append(Happening(crashed, name, int(deliveries.instance[previous]), What.UNCOMMITTED))
        previous = row
        retry = cause in _RETRIES  # the same delivery, processed again by the worker that holds it
        if not retry:
            found.append(Happening(float(deliveries.arrival_s[row]), name, None, What.ARRIVED, cause, attempt))
            found.append(Happening(float(deliveries.receive_s[row]), name, instance, What.RECEIVED, attempt=attempt))
        take_s, done_s = float(deliveries.take_s[row]), float(deliveries.done_s[row])
        if not np.isnan(take_s):
            found.append(Happening(take_s, name, instance, What.RETRIED if retry else What.STARTED, attempt=attempt))
        outcome = Outcome(deliveries.outcome[row])
        if outcome == Outcome.ABORTED:
            what = What.ABANDONED if np.isnan(take_s) else What.ABORTED
            if _killed_by_deploy(group, instance, done_s):
                what = What.KILLED
            found.append(Happening(done_s, name, instance, what, attempt=attempt))
        elif outcome in _ENDINGS:
            found.append(Happening(done_s, name, instance, _ENDINGS[outcome], attempt=attempt))
        if deliveries.crashed[row]:
            found.append(Happening(done_s, name, instance, What.CRASHED, attempt=attempt))
    if facts.lost[local]:
        row = int(facts.loss_row[local])
        found.append(Happening(float(group.lost_s[row]), name, None, What.LOST, LossReason(group.lost_reason[row])))
    if facts.dead_lettered[local]:
        row = int(facts.dead_letter_row[local])
        found.append(
            Happening(
                float(group.dead_letter_s[row]),
                name,
                None,
                What.DEAD_LETTERED,
                DeliveryCause(group.dead_letter_cause[row]),
            )
        )
    if facts.stuck_pending[local]:
        row = int(facts.stuck_pending_row[local])
        cause = DeliveryCause(group.stuck_pending_cause[row])
        found.append(Happening(float(group.stuck_pending_s[row]), name, None, What.LEFT_PENDING, cause))
    poison = group.failures.poison if group.failures is not None else ()
    settled = facts.lost[local] or facts.dead_lettered[local] or facts.stuck_pending[local]
    if local in poison and not settled and not facts.processed[local] and found:
        found.append(Happening(max(happening.time_s for happening in found), name, None, What.STILL_FAILING))
    return found


def _killed_by_deploy(group: GroupRecord, instance: int, at_s: float) -> bool:
    """Whether a deploy killed ``instance`` at ``at_s`` (a kill stops and drains an instance at once)."""
    lifecycle = group.lifecycle
    if lifecycle is None:
        return False
    mine = lifecycle.deploy_instance == instance
    return bool(np.any(mine & (lifecycle.deploy_stop_s == at_s) & (lifecycle.deploy_drained_s == at_s)))


def _crash_after(group: GroupRecord, instance: int, after_s: float) -> float | None:
    """When ``instance`` first crashed at or after ``after_s``, if it did."""
    times = group.crash_s[(group.crash_instance == instance) & (group.crash_s >= after_s)]
    return float(times.min()) if times.size else None


def _anomalies(facts: _GroupFacts, local: int) -> list[Anomaly]:
    """The anomalies one message shows in one group, in the order of :data:`ANOMALY_KINDS`."""
    group = facts.group
    deliveries = group.deliveries
    name = group.name
    found = []
    rows = facts.rows(local)
    event = int(facts.twin_of[local])  # the first message standing for this event
    if facts.applications[event] > 1:
        # Every application of this event: by this message, or by a twin emitted upstream.
        copies = np.flatnonzero(facts.twin_of == event)
        every = np.concatenate([facts.rows(int(copy)) for copy in copies])
        applied = every[deliveries.outcome[every] == Outcome.APPLIED]
        applied = applied[np.argsort(deliveries.done_s[applied], kind="stable")]
        repeats = applied[1:]  # when each repeat landed: the store let the later copy through
        # The extra copies, by why they exist, whichever finished first (as in the summary): a twin's
        # original application is named among the twins, every other extra by its delivery cause.
        events = facts.events
        mine = events.twin_of[deliveries.message[events.extra_rows]] == event
        extras = events.extra_rows[mine & ~events.extra_by_twin]
        causes = tuple(DeliveryCause(cause) for cause in deliveries.cause[extras])
        missed = dict(zip(group.dedup_miss_delivery.tolist(), group.dedup_miss_reason.tolist()))
        found.append(
            Anomaly(
                "duplicate_effect",
                name,
                float(deliveries.done_s[applied[1]]),
                causes=causes,
                applications=int(applied.size),
                twins=tuple(
                    int(group.message_ids[copy])
                    for copy in dict.fromkeys(deliveries.message[applied].tolist())
                    if copy != local
                ),
                dedup_missed=tuple(DedupMiss(missed[row]) for row in repeats.tolist() if row in missed),
            )
        )
    if facts.lost[local]:
        row = int(facts.loss_row[local])
        found.append(Anomaly("lost", name, float(group.lost_s[row]), causes=(LossReason(group.lost_reason[row]),)))
    if facts.dead_lettered[local]:
        row = int(facts.dead_letter_row[local])
        found.append(
            Anomaly(
                "dead_lettered",
                name,
                float(group.dead_letter_s[row]),
                causes=(DeliveryCause(group.dead_letter_cause[row]),),
                attempts=int(deliveries.attempt[rows].max()) if rows.size else 0,
                processed=bool(facts.processed[local]),
            )
        )
    if facts.stuck_pending[local]:
        row = int(facts.stuck_pending_row[local])
        found.append(
            Anomaly(
                "stuck_pending",
                name,
                float(group.stuck_pending_s[row]),
                causes=(DeliveryCause(group.stuck_pending_cause[row]),),
                processed=bool(facts.processed[local]),
                idle_since_s=float(group.stuck_pending_since_s[row]),
            )
        )
    if facts.events.wrongly_rejected[event]:
        every = np.concatenate([facts.rows(int(copy)) for copy in np.flatnonzero(facts.twin_of == event)])
        rejected = every[deliveries.outcome[every] == Outcome.REJECTED]
        found.append(Anomaly("wrongly_rejected", name, float(np.min(deliveries.done_s[rejected]))))
    if facts.events.wrongly_accepted[event]:
        every = np.concatenate([facts.rows(int(copy)) for copy in np.flatnonzero(facts.twin_of == event)])
        applied = every[deliveries.outcome[every] == Outcome.APPLIED]
        found.append(Anomaly("wrongly_accepted", name, float(np.min(deliveries.done_s[applied]))))
    overtaking = int(facts.overtaken_by[event])
    if overtaking >= 0:
        found.append(
            Anomaly(
                "out_of_order",
                name,
                float(facts.first_done_s[local]),
                overtaken_by=int(group.message_ids[overtaking]),
                overtaken_s=float(facts.first_done_s[overtaking]),
            )
        )
    if facts.failed_attempts[local]:
        failed = rows[np.isin(deliveries.outcome[rows], FAILED_OUTCOMES)]
        poison = group.failures is not None and bool(np.isin(local, group.failures.poison))
        found.append(
            Anomaly(
                "failed",
                name,
                float(np.min(deliveries.done_s[failed])),  # its first failure
                causes=(DeliveryCause.POISON,) if poison else (),
                attempts=int(facts.failed_attempts[local]),
                processed=bool(facts.processed[local]),
            )
        )
    return found
