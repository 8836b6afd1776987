"""A consumer group's events: its messages counted once per event, with what the run and the reference did.

When an upstream consumer processes a message twice it emits twice: two
messages, one event (see :mod:`busim.analysis.chains`). Everything that
judges a group against exactly-once processing counts events, not messages:
how often each event's effects were applied, whether it was refused, what
the exactly-once reference did with it, when it was first processed. The
summary and the stories of single messages both read these arrays, so that a
story's anomalies are the summary's figures message by message.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from busim.analysis.consistency import reference_acceptance
from busim.engine.effects import EffectPlan
from busim.engine.records import (
    APPLIED_OUTCOMES,
    PROCESSED_OUTCOMES,
    Deliveries,
    DeliveryCause,
    GroupRecord,
    Outcome,
    RunRecord,
)


@dataclass(frozen=True)
class GroupEvents:
    """Per group-local message (arrays over the group's messages), and per delivery row where said.

    An event is addressed by its first message: ``twin_of[i]`` is the first
    message standing for message ``i``'s event (``i`` itself unless a twin),
    and the per-event arrays are indexed by that first message.
    """

    plan: EffectPlan
    deliveries: Deliveries  # the group's
    twin_of: np.ndarray
    applications: np.ndarray  # per event: how many times its effects were applied (by any of its messages)
    rejected: np.ndarray  # per event: refused by a floor and never applied
    accepted_by_reference: np.ndarray  # per event: applied exactly once in publish order, it would be accepted
    reference_state: list[list[int]]
    first_rows: np.ndarray  # rows of each message's first completed processing, in order of message
    event_first_rows: np.ndarray  # rows of each event's first completed processing (by any of its messages)
    # Rows that applied an event's effects again after an earlier application, in time order: when
    # each repeat landed (which copy was the extra one is ``extra_rows``).
    repeat_rows: np.ndarray
    # Rows that applied an event's effects beyond its original application, in time order: every
    # application but the original's (see :func:`original_rows`), whichever copy finished first. As
    # many as ``repeat_rows``; they differ where a redelivery finished before the original.
    extra_rows: np.ndarray
    extra_by_twin: np.ndarray  # per extra row: the original application of a twin, not an extra copy of its message

    @cached_property
    def first_done_s(self) -> np.ndarray:
        """Per message: when its first processing ended (NaN: never). Made when first asked for: the
        summary needs it only for consumers on a chain."""
        first_done_s = np.full(self.twin_of.size, np.nan)
        first_done_s[self.deliveries.message[self.first_rows]] = self.deliveries.done_s[self.first_rows]
        return first_done_s

    @property
    def twin(self) -> np.ndarray:
        """Messages that are twins: another message stands for their event."""
        return self.twin_of != np.arange(self.twin_of.size)

    @property
    def wrongly_rejected(self) -> np.ndarray:
        return self.rejected & self.accepted_by_reference

    @property
    def wrongly_accepted(self) -> np.ndarray:
        return (self.applications > 0) & ~self.accepted_by_reference

    @classmethod
    def of(cls, record: RunRecord, group: GroupRecord, logical: np.ndarray | None) -> GroupEvents:
        """``logical`` gives, per message id of the run, the first message standing for its event (None: itself)."""
        deliveries = group.deliveries
        count = group.message_ids.size
        twin_of = twins(group, logical)
        if (twin_of == np.arange(count)).all() and _one_delivery_each(deliveries.message, count):
            return cls._single_copies(group, twin_of)
        return cls._any_copies(group, twin_of)

    @classmethod
    def _any_copies(cls, group: GroupRecord, twin_of: np.ndarray) -> GroupEvents:
        """:meth:`of` for any group: ``twin_of`` is its messages' first messages standing for their events."""
        deliveries = group.deliveries
        count = twin_of.size
        twin = twin_of != np.arange(count)
        applied_rows = np.flatnonzero(np.isin(deliveries.outcome, APPLIED_OUTCOMES))
        applications = np.bincount(twin_of[deliveries.message[applied_rows]], minlength=count).astype(np.int32)
        rejected = np.zeros(count, bool)
        rejected[twin_of[deliveries.message[deliveries.outcome == Outcome.REJECTED]]] = True
        rejected &= (applications == 0) & ~twin

        first_rows = first_processing(deliveries)
        earliest = first_rows[np.argsort(deliveries.done_s[first_rows], kind="stable")]
        event_first_rows = np.sort(earliest[~repeated(twin_of[deliveries.message[earliest]])])

        # Applications in time order: a repeat applies an event applied before.
        applied = applied_rows[np.argsort(deliveries.done_s[applied_rows], kind="stable")]
        repeat = repeated(twin_of[deliveries.message[applied]])
        # Extras, by why they exist rather than by when they landed: each message's original application
        # (its broker's first attempt) is no extra, even when a redelivery finished first. Of an event's
        # messages, the one standing for it is the original; another's original application is a twin's.
        originals = original_rows(deliveries, applied_rows)
        own = deliveries.message[originals]
        event = twin_of[own]
        by_event = np.lexsort((own, own != event, event))
        twin_originals = originals[by_event][repeated(event[by_event])]
        extra = ~np.isin(applied, originals) | np.isin(applied, twin_originals)
        return cls._made(
            group,
            twin_of,
            applications,
            rejected,
            first_rows,
            event_first_rows,
            repeat_rows=applied[repeat],
            extra_rows=applied[extra],
            extra_by_twin=np.isin(applied[extra], twin_originals),
        )

    @classmethod
    def _single_copies(cls, group: GroupRecord, twin_of: np.ndarray) -> GroupEvents:
        """:meth:`of` where no message has a twin or a second delivery: nothing repeats, nothing is extra.

        Each event is its one message, its first processing its only one: what
        :meth:`of` computes with sorts and set operations, here directly.
        """
        deliveries = group.deliveries
        count = twin_of.size
        applications = np.zeros(count, np.int32)
        applications[deliveries.message[np.isin(deliveries.outcome, APPLIED_OUTCOMES)]] = 1
        rejected = np.zeros(count, bool)
        rejected[deliveries.message[deliveries.outcome == Outcome.REJECTED]] = True  # and so never applied
        processed_rows = np.flatnonzero(np.isin(deliveries.outcome, PROCESSED_OUTCOMES))
        processed = deliveries.message[processed_rows]
        in_order = bool((processed[1:] > processed[:-1]).all())  # as one server on a FIFO queue leaves them
        first_rows = processed_rows if in_order else processed_rows[np.argsort(processed, kind="stable")]
        del processed
        none = np.empty(0, np.int64)
        return cls._made(
            group, twin_of, applications, rejected, first_rows, processed_rows, none, none, np.empty(0, bool)
        )

    @classmethod
    def _made(
        cls,
        group: GroupRecord,
        twin_of: np.ndarray,
        applications: np.ndarray,
        rejected: np.ndarray,
        first_rows: np.ndarray,
        event_first_rows: np.ndarray,
        repeat_rows: np.ndarray,
        extra_rows: np.ndarray,
        extra_by_twin: np.ndarray,
    ) -> GroupEvents:
        """The events from what either way of finding them found; the exactly-once reference (each event's
        own message replayed once, in publish order) follows alike."""
        count = twin_of.size
        events = np.flatnonzero(twin_of == np.arange(count))  # the messages standing for their events
        accepted_by_reference, reference_state = reference_acceptance(group.plan, count, events)
        del events
        return cls(
            plan=group.plan,
            deliveries=group.deliveries,
            twin_of=twin_of,
            applications=applications,
            rejected=rejected,
            accepted_by_reference=accepted_by_reference,
            reference_state=reference_state,
            first_rows=first_rows,
            event_first_rows=event_first_rows,
            repeat_rows=repeat_rows,
            extra_rows=extra_rows,
            extra_by_twin=extra_by_twin,
        )


def twins(group: GroupRecord, logical: np.ndarray | None) -> np.ndarray:
    """Per group-local message, the first message standing for its event (see :func:`logical_ids`)."""
    if logical is None:
        return np.arange(group.message_ids.size, dtype=np.int32)
    return group.selection.local(logical[group.message_ids]).astype(np.int32)  # messages are far below 2^31


def _one_delivery_each(message: np.ndarray, count: int) -> bool:
    """Whether no message of ``count`` appears twice in ``message``."""
    seen = np.zeros(count, bool)
    seen[message] = True
    return int(np.count_nonzero(seen)) == message.size


# How the original copy of a message ranks among copies of the same attempt: the broker's own first
# copy, then a resend (producer retry, outbox relay), then a copy the broker duplicated.
_COPY_RANK = np.ones(max(DeliveryCause) + 1, np.int8)  # a byte a row where every delivery is ranked
_COPY_RANK[DeliveryCause.FIRST] = 0
_COPY_RANK[DeliveryCause.BROKER_DUPLICATE] = 2
_COPY_RANK[DeliveryCause.INJECTED_DUPLICATE] = 2


def original_rows(deliveries: Deliveries, rows: np.ndarray) -> np.ndarray:
    """Of ``rows``, each message's original delivery, in order of message.

    The original is the broker's first attempt at the message: the lowest
    attempt among ``rows``, at that attempt its own copy before a resend and
    a resend before a broker duplicate, then the copy received first. Every
    other row of the message is an extra copy, there for its own delivery
    cause, whichever copy finished first: a redelivery after an ack timeout
    that overtakes the slow original is the extra one.
    """
    messages = deliveries.message[rows]
    if (messages[1:] > messages[:-1]).all():
        return rows  # one row a message, in order of message already (one server on a FIFO queue)
    if messages.size and _one_delivery_each(messages, int(messages.max()) + 1):
        return rows[np.argsort(messages, kind="stable")]  # one row a message: each is its message's original
    del messages
    rank = _COPY_RANK[deliveries.cause[rows]]
    ranked = rows[np.lexsort((rows, rank, deliveries.attempt[rows], deliveries.message[rows]))]
    message = deliveries.message[ranked]
    return ranked[np.r_[True, message[1:] != message[:-1]]] if ranked.size else ranked


def first_processing(deliveries: Deliveries) -> np.ndarray:
    """Rows of each message's first completed processing, in order of message."""
    rows = np.flatnonzero(np.isin(deliveries.outcome, PROCESSED_OUTCOMES))
    rows = rows[np.lexsort((deliveries.done_s[rows], deliveries.message[rows]))]
    if rows.size == 0:
        return rows
    message = deliveries.message[rows]
    return rows[np.r_[True, message[1:] != message[:-1]]]


def repeated(values: np.ndarray) -> np.ndarray:
    """Which entries repeat a value seen earlier in ``values`` (every occurrence but the first)."""
    repeat = np.ones(values.size, bool)
    if values.size:
        order = np.argsort(values, kind="stable")
        ordered = values[order]
        repeat[order[np.r_[True, ordered[1:] != ordered[:-1]]]] = False
    return repeat
