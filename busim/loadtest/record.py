"""A real run's journals, merged into the engine's :class:`~busim.engine.records.RunRecord`.

Every figure of a real run is then computed by :mod:`busim.analysis`, the
same code and the same exactly-once reference as a simulated run's. This
module turns what the processes logged and what the broker reported into the
record's arrays:

- a delivery is a RECEIVED entry; its take, end and outcome are the TAKEN and
  DONE entries of the same instance incarnation and delivery sequence;
- its attempt is its copy's receipt count, and its cause follows from the copy's
  previous delivery: the copy's own cause the first time, a crash cause where
  the previous holder crashed (CRASHING entry, or killed by the supervisor),
  an ack timeout where the holder was alive (AckWait, a claim of an idle entry);
- where it reached the group's queue is the broker's publish confirm for a
  first delivery and the crash that returned it for a redelivery: the broker
  does not tell when it enqueued a copy, so latency is not split into broker
  and queue wait (:func:`record_of` callers report those parts as absent);
- counters are the store's values at the end; losses, dead letters and stuck
  pending entries come from what the run injected, the broker's fates, and
  what never came back after a crash.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from busim.engine.chains import emit, emitting_rows, fields_of, flows_of
from busim.engine.effects import EffectPlan
from busim.engine.keys import key_codes
from busim.engine.outages import Outages
from busim.engine.queries import draw_all_reads
from busim.engine.randomness import RandomStreams
from busim.engine.records import (
    DedupMiss,
    Deliveries,
    DeliveryCause,
    GroupRecord,
    LossReason,
    Messages,
    Outcome,
    RunRecord,
    loss_columns,
)
from busim.loadtest.drivers.base import BrokerFate
from busim.loadtest.emissions import EmissionPlan, is_emitted
from busim.loadtest.faults import crash_counts
from busim.loadtest.journal import NO_INSTANCE, Kind
from busim.loadtest.schedule import Schedule
from busim.scenario.flows import stages
from busim.scenario.schema import Consumer, Scenario


@dataclass(frozen=True)
class Publishing:
    """What the load generator did with each copy of the schedule, in the run's clock."""

    sent_s: np.ndarray  # when it was handed to the broker's client; NaN if it never was (the run stopped)
    confirmed_s: np.ndarray  # when the broker confirmed it; NaN if it did not
    refused: np.ndarray  # the broker refused it (a full queue with reject-publish)


@dataclass(frozen=True)
class GroupOutcome:
    """What one consumer group's processes and store left: its journals and its counters."""

    entries: np.ndarray  # every entry of the group's journals (instances and supervisor), in time order
    counters: list[np.ndarray]  # per counter, the value of each key code
    fates: list[BrokerFate]


def record_of(
    scenario: Scenario,
    schedule: Schedule,
    publishing: Publishing,
    groups: dict[str, GroupOutcome],
    start: float,
    end_s: float,
    drained: bool,
) -> RunRecord:
    """The run's record; ``start`` is the run's clock origin (``time.monotonic()``), ``end_s`` when it ended.

    ``schedule`` is what the run published: for an interrupted run, the whole schedule cut to the copies
    sent (:meth:`~busim.loadtest.schedule.Schedule.cut`), ``publishing`` then covering those copies only.

    Groups are merged stage by stage, as the engine runs them: the messages a stage's consumers emitted are
    appended (by the engine's :func:`~busim.engine.chains.emit`) before the groups that consume them, each
    with its planned message's own fields (:mod:`busim.loadtest.emissions`).
    """
    messages = schedule.messages
    plan = EmissionPlan.of(scenario, schedule.whole)  # the instances' plan: over the whole schedule, if cut
    planned = plan.messages
    in_plan = schedule.scheduled_id  # per message of the record, the plan's message it is
    carried = fields_of(scenario)
    streams = RandomStreams.from_seed(scenario.seed or 0)
    outages = Outages(())
    emissions = _Emissions()
    records: dict[str, GroupRecord] = {}
    for stage in stages(flows_of(scenario)):
        built = []
        for name in stage:
            consumer = scenario.consumer(name)
            merged = _GroupMerge(scenario, consumer, schedule, publishing, groups[name], start, end_s)
            records[name] = merged.record(messages, planned, emissions)
            built.append(merged)
        for merged in built:
            first = len(messages)
            group = records[merged.consumer.name]
            emitted = _planned_emissions(scenario, plan, group, in_plan)
            own = [plan.own_fields(scenario, entry.event, ids) for entry, ids in zip(merged.consumer.emits, emitted)]
            messages = emit(scenario, group, messages, streams, outages, carried, own)
            in_plan = np.concatenate([in_plan, *emitted])
            emissions.learn(merged, group, first)
    ordered = tuple(records[consumer.name] for consumer in scenario.consumers)
    reads = draw_all_reads(scenario, ordered, streams)
    return RunRecord(
        scenario=scenario, messages=messages, groups=ordered, sim_time_s=end_s, drained=drained, reads=reads
    )


def _planned_emissions(
    scenario: Scenario, plan: EmissionPlan, group: GroupRecord, in_plan: np.ndarray
) -> list[np.ndarray]:
    """Per ``emits`` entry of ``group``'s consumer, the planned message of each message it emitted, in the order
    :func:`~busim.engine.chains.emit` appends them; ``in_plan`` gives each message of the record its plan's."""
    emitter = next(index for index, c in enumerate(scenario.consumers) if c.name == group.name)
    deliveries = group.deliveries
    found = []
    for index, entry in enumerate(scenario.consumers[emitter].emits):
        rows = emitting_rows(group, entry.when)
        found.append(plan.emitted(scenario, emitter, index, in_plan[group.message_ids[deliveries.message[rows]]]))
    return found


def copy_locals(schedule: Schedule, messages: Messages, consumer: Consumer) -> np.ndarray:
    """Per copy of the schedule, the group-local index of its message in ``consumer``'s group, or -1."""
    selection = messages.select(list(dict.fromkeys(consumer.subscribes)))
    local = np.full(len(messages), -1, np.int64)
    local[selection.ids] = np.arange(selection.ids.size)
    return local[schedule.copy_message]


@dataclass
class _Emissions:
    """Emitted copies of the stages merged so far: each one's message in the record, and its publishing."""

    message_of: dict[int, int] = field(default_factory=dict)  # emitted copy -> its message
    # (copy, when published, refused: None where its emitter died before the broker confirmed it)
    sent: list[tuple[int, float, bool | None]] = field(default_factory=list)
    # Messages whose emitter was killed after the processing that emitted them, before it published them.
    unpublished: list[tuple[int, float]] = field(default_factory=list)  # (message, when its processing ended)

    def learn(self, merged: _GroupMerge, group: GroupRecord, first: int) -> None:
        """The messages ``group``'s consumer emitted, numbered from ``first`` as :func:`emit` appended them."""
        next_id = first
        for index, entry in enumerate(merged.consumer.emits):
            rows = emitting_rows(group, entry.when)
            id_of_row = dict(zip(rows.tolist(), range(next_id, next_id + rows.size)))
            next_id += rows.size
            published = set()
            for copy, row, emitted_entry, at_s, refused in merged.emitted:
                if emitted_entry == index and row in id_of_row:
                    self.message_of[copy] = id_of_row[row]
                    self.sent.append((copy, at_s, refused))
                    published.add(row)
            done_s = group.deliveries.done_s
            self.unpublished += [(id_of_row[row], float(done_s[row])) for row in rows.tolist() if row not in published]


class _GroupMerge:
    """One group's journals and store, merged into its record once the messages it receives are known."""

    def __init__(
        self,
        scenario: Scenario,
        consumer: Consumer,
        schedule: Schedule,
        publishing: Publishing,
        outcome: GroupOutcome,
        start: float,
        end_s: float,
    ) -> None:
        self.scenario, self.consumer, self.schedule, self.publishing = scenario, consumer, schedule, publishing
        self.outcome, self.start, self.end_s = outcome, start, end_s
        # (copy, its emitting row, entry, when, refused: None where its emitter died before the broker confirmed it)
        self.emitted: list[tuple[int, int, int, float, bool | None]] = []

    def record(self, messages: Messages, planned: Messages, emissions: _Emissions) -> GroupRecord:
        group, key_of = _group_record(self, messages, planned, emissions)
        entries = self.outcome.entries
        confirmed = entries[entries["kind"] == Kind.EMITTED]
        refused = dict(zip(confirmed["copy"].tolist(), confirmed["flag"].astype(bool).tolist()))
        for entry in entries[entries["kind"] == Kind.EMITTING]:
            row = key_of.get((int(entry["instance"]), int(entry["incarnation"]), int(entry["seq"])))
            if row is not None:
                copy = int(entry["copy"])
                at_s = float(entry["t"]) - self.start
                self.emitted.append((copy, row, int(entry["attempt"]), at_s, refused.get(copy)))
        return group


def _group_record(
    merge: _GroupMerge, messages: Messages, planned: Messages, emissions: _Emissions
) -> tuple[GroupRecord, dict[tuple[int, int, int], int]]:
    """``merge``'s group record over ``messages``, and each delivery's row by (instance, incarnation, sequence)."""
    scenario, consumer, schedule, publishing = merge.scenario, merge.consumer, merge.schedule, merge.publishing
    outcome, start, end_s = merge.outcome, merge.start, merge.end_s
    selection = messages.select(list(dict.fromkeys(consumer.subscribes)))
    plan = EffectPlan(consumer, messages.common_fields(selection))
    codes = key_codes(scenario, messages, selection)[0]
    scheduled_local = copy_locals(schedule, messages, consumer)
    emitted_ids = np.array(list(emissions.message_of.values()), dtype=np.int64)
    in_group = np.isin(emitted_ids, selection.ids)
    emitted_local = dict(
        zip(
            np.array(list(emissions.message_of), dtype=np.int64)[in_group].tolist(),
            selection.local(emitted_ids[in_group]).tolist(),
        )
    )

    def local_of(copy: int) -> int:
        """The group-local message of a copy, published or emitted; -1 where its message is not the group's."""
        if is_emitted(copy):
            return emitted_local.get(copy, -1)
        return int(scheduled_local[copy])

    entries = outcome.entries
    kind = entries["kind"]
    t_s = entries["t"] - start

    # Supervisor entries: starts, kills, missed crashes (instance in seq, incarnation in flag).
    killed = kind == Kind.KILLED
    killed_at = {
        (int(i), int(n)): float(t) for i, n, t in zip(entries["seq"][killed], entries["flag"][killed], t_s[killed])
    }
    crashing = kind == Kind.CRASHING
    crashing_seq = {
        (int(i), int(n)): (int(q), float(t))
        for i, n, q, t in zip(
            entries["instance"][crashing], entries["incarnation"][crashing], entries["seq"][crashing], t_s[crashing]
        )
    }
    # An instance that crashed itself is also seen dead by the supervisor a moment later: the crash is the earlier.
    crash_at = {**killed_at, **{key: t for key, (_, t) in crashing_seq.items()}}
    ready = kind == Kind.READY
    ready_at = {
        (int(i), int(n)): float(t)
        for i, n, t in zip(entries["instance"][ready], entries["incarnation"][ready], t_s[ready])
    }

    # Deliveries: one row per RECEIVED entry, in receipt order.
    received = np.flatnonzero(kind == Kind.RECEIVED)
    rows = received.size
    key_of = {
        (int(i), int(n), int(q)): row
        for row, (i, n, q) in enumerate(
            zip(entries["instance"][received], entries["incarnation"][received], entries["seq"][received])
        )
    }
    take_s = np.full(rows, np.nan)
    done_s = np.full(rows, np.nan)
    acked = np.zeros(rows, dtype=bool)
    settled = np.zeros(rows, dtype=bool)  # acked, or its ack refused (the broker had settled it already)
    result = np.full(rows, Outcome.PROCESSING, dtype=np.int8)
    for step in (Kind.TAKEN, Kind.DONE, Kind.ACKED, Kind.ACK_REFUSED):
        where = np.flatnonzero(kind == step)
        at = [
            key_of.get((int(i), int(n), int(q)), -1)
            for i, n, q in zip(entries["instance"][where], entries["incarnation"][where], entries["seq"][where])
        ]
        at_rows = np.array(at, dtype=np.int64)
        known = at_rows >= 0
        if step == Kind.TAKEN:
            take_s[at_rows[known]] = t_s[where][known]
        elif step == Kind.DONE:
            done_s[at_rows[known]] = t_s[where][known]
            result[at_rows[known]] = entries["outcome"][where][known]
        elif step == Kind.ACKED:
            acked[at_rows[known]] = True
        else:
            settled[at_rows[known]] = True
    settled |= acked
    copy = entries["copy"][received].astype(np.int64)
    message = np.array([local_of(c) for c in copy.tolist()], dtype=np.int64)
    instance = entries["instance"][received].astype(np.int64)
    incarnation = entries["incarnation"][received].astype(np.int64)
    receive_s = t_s[received]
    told_attempt = entries["attempt"][received].astype(np.int64)  # the broker's delivery count; 0 where untold
    told_again = entries["flag"][received] > 0  # the broker's redelivered flag

    crashed_row = np.zeros(rows, dtype=bool)
    for (i, n), (q, _) in crashing_seq.items():
        row = key_of.get((i, n, q))
        if row is not None:
            crashed_row[row] = True
    # A crashed incarnation's rows: unfinished ones aborted at the crash; finished, unacked ones crashed before the ack.
    row_crash_s = np.array([crash_at.get((int(i), int(n)), np.nan) for i, n in zip(instance, incarnation)])
    in_crash = ~np.isnan(row_crash_s)
    aborted = in_crash & np.isnan(done_s)
    result[aborted] = Outcome.ABORTED
    done_s[aborted] = row_crash_s[aborted]
    crashed_row |= in_crash & ~aborted & ~settled

    # Attempts and causes, copy by copy in receipt order.
    attempt = np.zeros(rows, dtype=np.int64)
    cause = np.zeros(rows, dtype=np.int8)
    arrival_s = np.zeros(rows)
    previous: dict[int, int] = {}
    ack_timeout_s = _ack_timeout_s(scenario)
    emitted_at = {copy: at_s for copy, at_s, _ in emissions.sent}
    crash_times = np.sort(np.array(list(crash_at.values()), dtype=float))
    for row in range(rows):
        c = int(copy[row])
        before = previous.get(c)
        previous[c] = row
        if before is None and (told_again[row] or told_attempt[row] > 1):
            # The broker delivered it before, to an instance killed before it logged the delivery (the broker
            # had it on the way when the instance died): a redelivery all the same.
            attempt[row] = max(2, told_attempt[row])
            crash_s = _last_before(crash_times, receive_s[row])
            cause[row] = DeliveryCause.PREFETCHED if not math.isnan(crash_s) else DeliveryCause.ACK_TIMEOUT
            arrival_s[row] = crash_s if not math.isnan(crash_s) else receive_s[row]
            continue
        if before is None:
            attempt[row] = max(1, told_attempt[row])
            if is_emitted(c):
                cause[row] = DeliveryCause.FIRST
                arrival_s[row] = emitted_at.get(c, receive_s[row])
                continue
            cause[row] = schedule.copy_cause[c]
            confirmed = publishing.confirmed_s[c]
            arrival_s[row] = confirmed if not math.isnan(confirmed) else publishing.sent_s[c]
            continue
        # The broker's count where it tells: it also counts deliveries to an instance killed before it logged them.
        attempt[row] = max(attempt[before] + 1, told_attempt[row])
        if in_crash[before] and row_crash_s[before] <= receive_s[row]:  # its holder died before it came back
            cause[row] = _crash_cause(take_s[before], result[before], crashed_row[before])
            arrival_s[row] = row_crash_s[before]
        else:
            cause[row] = DeliveryCause.ACK_TIMEOUT
            arrival_s[row] = min(receive_s[row], receive_s[before] + ack_timeout_s)
    arrival_s = np.minimum(arrival_s, receive_s)

    # Copies never received: still queued, dropped by the broker, or refused at publishing.
    mine = np.flatnonzero(scheduled_local >= 0)
    seen = np.zeros(len(schedule), dtype=bool)
    seen[copy[copy < len(schedule)]] = True
    dropped_copies = {fate.copy for fate in outcome.fates if fate.kind == "dropped"}
    local_of_id = dict(zip(selection.ids.tolist(), range(selection.ids.size)))
    lost: list[tuple[int, float, int]] = [
        (local_of_id[global_id], float(messages.publish_s[global_id]), int(reason))
        for global_id, reason in zip(schedule.unsent.tolist(), schedule.unsent_reason.tolist())
        if global_id in local_of_id
    ]
    unserved_s, unserved_message = [], []
    refused = 0
    received = set(copy.tolist())
    for c, at_s, was_refused in emissions.sent:
        local_message = local_of(c)
        if local_message < 0 or c in received:
            continue
        if was_refused is None:  # its emitter died publishing it, and the broker never delivered it
            lost.append((local_message, at_s, int(LossReason.PUBLISHER_CRASH)))
        elif was_refused:
            refused += 1
            lost.append((local_message, at_s, int(LossReason.OVERFLOW_REJECTED)))
        elif c in dropped_copies:
            lost.append((local_message, at_s, int(LossReason.OVERFLOW_DROPPED)))
        else:
            unserved_s.append(at_s)
            unserved_message.append(local_message)
    for c in mine[~seen[mine]].tolist():
        local_message = int(scheduled_local[c])
        if publishing.refused[c]:
            refused += 1
            lost.append((local_message, float(publishing.sent_s[c]), int(LossReason.OVERFLOW_REJECTED)))
        elif c in dropped_copies:
            confirmed_s = publishing.confirmed_s[c]
            at_s = confirmed_s if not math.isnan(confirmed_s) else publishing.sent_s[c]
            lost.append((local_message, float(at_s), int(LossReason.OVERFLOW_DROPPED)))
        elif not math.isnan(publishing.sent_s[c]):
            confirmed_s = publishing.confirmed_s[c]
            unserved_s.append(float(confirmed_s if not math.isnan(confirmed_s) else publishing.sent_s[c]))
            unserved_message.append(local_message)
    for emitted, at_s in emissions.unpublished:  # its emitter was killed before it published it
        if emitted in local_of_id:
            lost.append((local_of_id[emitted], at_s, int(LossReason.PUBLISHER_CRASH)))
    if scenario.broker.delivery == "at-most-once":
        for row in np.flatnonzero(aborted).tolist():
            lost.append((int(message[row]), float(done_s[row]), int(LossReason.CRASH_IN_FLIGHT)))

    fates = outcome.fates + _exhausted(scenario, consumer.name, copy, acked, receive_s, outcome.fates)
    dead = _dead_letters(fates, local_of, copy, in_crash, take_s, result, crashed_row, receive_s, end_s)
    stuck = _stuck_pending(
        scenario, message, in_crash, settled, row_crash_s, receive_s, take_s, result, crashed_row, previous
    )

    crash_keys = sorted(crash_at, key=crash_at.get)
    recovery_s = [ready_at.get((i, n + 1), end_s) - crash_at[(i, n)] for i, n in crash_keys]
    missed = _missed_crashes(scenario, consumer, entries, kind, t_s, result, instance)
    applied_rows = np.flatnonzero(result == Outcome.APPLIED)
    committed = None
    if consumer.effects_isolation == "read-modify-write" and plan.has_effects:
        ledger = plan.new_state()
        for row in applied_rows[np.argsort(done_s[applied_rows], kind="stable")].tolist():
            plan.add(ledger, int(message[row]))
        committed = ledger
    stored = _by_final_codes(consumer, planned, plan, outcome.counters)
    counters = plan.snapshot(stored, committed)
    misses = _dedup_misses(consumer, message, result, done_s, instance, crashed_row)
    deliveries = Deliveries(
        message=message,
        attempt=attempt,
        cause=cause,
        instance=instance,
        arrival_s=arrival_s,
        receive_s=receive_s,
        take_s=take_s,
        done_s=done_s,
        outcome=result,
        crashed=crashed_row,
    )
    lost_rows = np.array(lost, dtype=float).reshape(-1, 3)
    group = GroupRecord(
        name=consumer.name,
        selection=selection,
        deliveries=deliveries,
        unserved_arrival_s=np.sort(np.array(unserved_s, dtype=float)),
        unserved_message=np.array(unserved_message, dtype=np.int64),
        **loss_columns(lost_rows, dead, stuck),
        crash_s=np.array([crash_at[key] for key in crash_keys], dtype=float),
        crash_instance=np.array([i for i, _ in crash_keys], dtype=np.int64),
        missed_crash_s=missed[:, 0],
        missed_crash_instance=missed[:, 1].astype(np.int64),
        missed_crash_after=missed[:, 2].astype(np.int64),
        rejected_publishes=refused,
        counters=counters,
        recovery_s=np.array(recovery_s, dtype=float),
        replayed=np.zeros(len(recovery_s), dtype=np.int64),
        dedup_miss_delivery=misses[:, 0],
        dedup_miss_reason=misses[:, 1].astype(np.int8),
        lost_updates=int(np.count_nonzero(kind == Kind.LOST_UPDATE)),
        optimistic_retries=int(np.count_nonzero(kind == Kind.RETRIED)),
        plan=plan,
        key_codes=codes,
    )
    return group, key_of


def _by_final_codes(
    consumer: Consumer, planned: Messages, plan: EffectPlan, stored: list[np.ndarray]
) -> list[list[int]]:
    """The store's counters, kept by the key codes of the run's plan of messages, by the record's key codes.

    The two differ only where the group receives emitted messages: the plan holds every message that could
    have been emitted, the record those that were. Keys no emitted message touched kept their initial value.
    """
    selection = planned.select(list(dict.fromkeys(consumer.subscribes)))
    planned_keys = EffectPlan(consumer, planned.common_fields(selection)).keys
    values = []
    for ours, theirs, column, initial in zip(plan.keys, planned_keys, stored, plan.initial):
        if ours == theirs:
            values.append(column.tolist())
            continue
        position = {(type(key) is bool, key): index for index, key in enumerate(theirs)}
        row = [initial] * len(ours)
        for index, key in enumerate(ours):
            found = position.get((type(key) is bool, key))
            if found is not None:
                row[index] = int(column[found])
        values.append(row)
    return values


def _exhausted(
    scenario: Scenario, group: str, copy: np.ndarray, acked: np.ndarray, receive_s: np.ndarray, told: list[BrokerFate]
) -> list[BrokerFate]:
    """JetStream: copies delivered ``max_deliver`` times and never acked, that the broker had not yet announced.

    JetStream announces a copy's last delivery only when it would deliver it again, so one whose last
    attempt ran out after the consumers stopped is found here, dead-lettered an ``ack_wait`` after it.
    """
    limit = scenario.broker.max_deliver
    if scenario.broker.preset != "nats-jetstream" or not isinstance(limit, int) or not copy.size:
        return []
    announced = {fate.copy for fate in told if fate.kind == "dead_letter"}
    copies, where, counts = np.unique(copy, return_inverse=True, return_counts=True)
    ever_acked = np.bincount(where, weights=acked.astype(float), minlength=copies.size) > 0
    wait_s = _ack_timeout_s(scenario)
    found = []
    for index in np.flatnonzero((counts >= limit) & ~ever_acked).tolist():
        c = int(copies[index])
        if c not in announced:
            last = float(receive_s[where == index].max())
            found.append(BrokerFate(group, c, "dead_letter", "max_deliver", last + wait_s))
    return found


def _last_before(times_s: np.ndarray, at_s: float) -> float:
    """The latest of the sorted ``times_s`` at or before ``at_s``; NaN where there is none."""
    index = int(np.searchsorted(times_s, at_s, side="right")) - 1
    return float(times_s[index]) if index >= 0 else math.nan


def _ack_timeout_s(scenario: Scenario) -> float:
    """How long the broker waits for an ack before it delivers again, where it does; infinity elsewhere."""
    broker = scenario.broker
    for value in (broker.ack_wait, broker.claim_min_idle, broker.consumer_timeout, broker.ack_timeout):
        if value is not None:
            return float(value)
    return math.inf


def _crash_cause(take_s: float, result: int, crashed: bool) -> int:
    if crashed or result in (Outcome.APPLIED, Outcome.REJECTED, Outcome.SKIPPED):
        return DeliveryCause.CRASH_BEFORE_ACK
    return DeliveryCause.PREFETCHED if math.isnan(take_s) else DeliveryCause.CRASH_IN_FLIGHT


def _dead_letters(
    fates: list[BrokerFate],
    local_of: Callable[[int], int],
    copy: np.ndarray,
    in_crash: np.ndarray,
    take_s: np.ndarray,
    result: np.ndarray,
    crashed: np.ndarray,
    receive_s: np.ndarray,
    end_s: float,
) -> np.ndarray:
    """``(message, at_s, cause of the refused redelivery)`` per dead-lettered copy."""
    found = []
    for fate in fates:
        if fate.kind != "dead_letter" or local_of(fate.copy) < 0:
            continue
        rows = np.flatnonzero(copy == fate.copy)
        if rows.size:
            last = rows[-1]
            why = (
                _crash_cause(take_s[last], result[last], crashed[last]) if in_crash[last] else DeliveryCause.ACK_TIMEOUT
            )
            at_s = fate.at_s if not math.isnan(fate.at_s) else float(receive_s[last])
        else:
            why, at_s = DeliveryCause.FIRST, (fate.at_s if not math.isnan(fate.at_s) else end_s)
        found.append((local_of(fate.copy), at_s, int(why)))
    return np.array(found, dtype=float).reshape(-1, 3)


def _stuck_pending(
    scenario: Scenario,
    message: np.ndarray,
    in_crash: np.ndarray,
    acked: np.ndarray,
    crash_s: np.ndarray,
    receive_s: np.ndarray,
    take_s: np.ndarray,
    result: np.ndarray,
    crashed: np.ndarray,
    last_row: dict[int, int],
) -> np.ndarray:
    """Redis: entries a crashed instance held, never acked, and never delivered again (nothing claimed them)."""
    if scenario.broker.preset != "redis-streams":
        return np.empty((0, 4))
    found, seen = [], set()
    for row in sorted(last_row.values()):
        if in_crash[row] and not acked[row] and int(message[row]) not in seen:
            seen.add(int(message[row]))
            why = _crash_cause(take_s[row], result[row], crashed[row])
            found.append((int(message[row]), float(crash_s[row]), float(receive_s[row]), int(why)))
    return np.array(found, dtype=float).reshape(-1, 4)


def _missed_crashes(
    scenario: Scenario,
    consumer: Consumer,
    entries: np.ndarray,
    kind: np.ndarray,
    t_s: np.ndarray,
    result: np.ndarray,
    instance: np.ndarray,
) -> np.ndarray:
    """``(time or NaN, instance, count or -1)`` per scheduled crash that did not happen.

    A crash at a time that found its instance down is in the supervisor's journal; a crash after a count
    of processings that the instance never reached is found by counting its processings.
    """
    missed = kind == Kind.MISSED_CRASH
    found: list[tuple[float, int, int]] = [
        (float(t), -1 if i == NO_INSTANCE else int(i), -1) for t, i in zip(t_s[missed], entries["seq"][missed])
    ]
    crash = consumer.crash
    if crash is not None and crash.after_messages:
        finished = np.isin(result, (Outcome.APPLIED, Outcome.REJECTED, Outcome.SKIPPED))
        reached = np.bincount(instance[finished], minlength=consumer.instances)
        streams = RandomStreams.from_seed(scenario.seed or 0)
        for index in range(consumer.instances):
            for count in sorted(crash_counts(consumer, streams, index)):
                if reached[index] < count:
                    found.append((math.nan, index, count))
    return np.array(found, dtype=float).reshape(-1, 3)


def _dedup_misses(
    consumer: Consumer,
    message: np.ndarray,
    result: np.ndarray,
    done_s: np.ndarray,
    instance: np.ndarray,
    crashed: np.ndarray,
) -> np.ndarray:
    """``(delivery, DedupMiss)`` for each processing of a message processed before that the dedup store let through."""
    dedup = consumer.dedup if consumer.idempotency == "dedup" else None
    if dedup is None:
        return np.empty((0, 2), dtype=np.int64)
    processed = np.flatnonzero(np.isin(result, (Outcome.APPLIED, Outcome.REJECTED)))
    processed = processed[np.argsort(done_s[processed], kind="stable")]
    last: dict[int, int] = {}
    found = []
    for row in processed.tolist():
        m = int(message[row])
        before = last.get(m)
        last[m] = row
        if before is None:
            continue
        if not dedup.atomic_with_effects and crashed[before]:
            reason = DedupMiss.NOT_RECORDED
        elif dedup.ttl and done_s[row] - done_s[before] > dedup.ttl:
            reason = DedupMiss.TTL_EXPIRED
        elif not dedup.durable and instance[row] != instance[before]:
            reason = DedupMiss.OTHER_INSTANCE
        elif not dedup.durable:
            reason = DedupMiss.STORE_LOST
        else:
            reason = DedupMiss.EVICTED
        found.append((row, int(reason)))
    return np.array(found, dtype=np.int64).reshape(-1, 2)
