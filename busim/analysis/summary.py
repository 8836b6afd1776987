"""From a run's raw record to the figures a user reads: counts, latency, consistency.

Every function here is pure numpy over the record's arrays; nothing is
printed, rendered or written.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from busim.analysis.chains import ChainSummary, chain_paths, logical_ids, summarize_chains
from busim.analysis.consistency import (
    CounterConsistency,
    compare_counter,
    overtaken,
)
from busim.analysis.drain import drain_time_s, offered_rate
from busim.analysis.events import GroupEvents, original_rows
from busim.analysis.failures import FailureSummary, broker_deliveries, failure_violations, summarize_failures
from busim.analysis.invariants import InvariantOutcome, check_invariants
from busim.analysis.latency import LatencyBreakdown, LatencySummary
from busim.analysis.lifecycle import LifecycleSummary, summarize_lifecycle
from busim.analysis.reads import read_staleness
from busim.analysis.series import Series, backlog_steps, group_series, window_backlog
from busim.engine.broker import running_max_by_segment
from busim.engine.records import (
    DedupMiss,
    DeliveryCause,
    GroupRecord,
    LossReason,
    Outcome,
    RunRecord,
)
from busim.words import counted


@dataclass(frozen=True)
class PublisherSummary:
    published: int
    delayed_by_outage: int  # published while the broker was down, accepted when it came back
    max_publish_delay_s: float
    failed: int  # the broker was down for longer than the publisher kept retrying
    resent: int  # publishes sent again after a lost publish acknowledgement
    deduplicated: int  # resends the broker dropped inside its deduplication window
    crashed: int  # publishes during which the publisher crashed, after committing its own state
    lost_to_crash: int  # of those, events never published: no outbox
    relayed_twice: int  # of those, events the outbox relay published again after the restart


@dataclass(frozen=True)
class ConsumerSummary:
    """What happened to one consumer group's messages; see docs/results.md."""

    subscribed: int
    delivered: int
    processed: int
    duplicate_deliveries: int
    duplicate_effects: int
    redelivered: int
    lost: int
    dead_lettered: int
    stuck_pending: int  # left unacknowledged with no claimer to deliver them again (Redis), processed or not
    stuck_pending_unprocessed: int  # of those, never processed: a departure from exactly-once until claimed
    stuck_pending_age_s: LatencySummary  # how long each had been idle when the run ended
    rejected: int
    wrongly_rejected: int
    wrongly_accepted: int
    out_of_order: int
    in_flight_at_end: int
    max_backlog: int
    drain_s: float | None  # from the last rate step until the backlog was back at its level before the peak
    idle_instances: int  # instances that received no delivery (on Kafka: members beyond the partitions)
    busiest_instance_share: float  # the share of deliveries the busiest instance received
    rejected_publishes: int
    crashes: int
    crash_times_s: tuple[float, ...]
    crash_instances: tuple[int, ...]  # per crash, in the order of crash_times_s: the instance that crashed
    missed_crashes: int  # scheduled crashes that did not happen (by_reason.missed_crashes says why)
    by_reason: dict[str, dict[str, int]]
    latency_s: LatencyBreakdown
    state: dict[str, CounterConsistency]
    series: Series  # figures per time window, for charts
    latency_quantiles_s: tuple[tuple[float, float], ...]  # (percentile, end-to-end latency), for the CDF
    emitted: dict[str, int]  # messages emitted, by event
    oversold: int  # units the accepted changes took counters below their floors, over keys and counters
    lost_updates: int  # read-modify-write: writes that overwrote a change made since their read
    optimistic_retries: int  # optimistic: processings done again after a version conflict
    recovery_s: LatencySummary  # per crash: restart plus replay until the instance serves again
    recovery_times_s: tuple[float, ...]  # per crash, in the order of crash_times_s
    replayed_events: tuple[int, ...]  # per crash: events an event-sourced consumer replayed
    # Reads of the read model (queries), at or after the warm-up: 0 and None without queries.
    reads: int
    stale_reads: int
    stale_read_fraction: float | None
    staleness_age_s: LatencySummary | None
    newest_missing_age_s: LatencySummary | None  # over the stale reads: since the newest missed event's publish
    failures: FailureSummary | None = None  # where the consumer has failures or slowdowns


@dataclass(frozen=True)
class Summary:
    publishers: dict[str, PublisherSummary]
    consumers: dict[str, ConsumerSummary]
    violations: tuple[str, ...]  # every departure from exactly-once, in words
    chains: dict[str, ChainSummary]  # by name, for scenarios whose consumers emit events
    invariants: tuple[InvariantOutcome, ...] = ()  # every bound of the scenario's invariants, checked
    lifecycle: dict[str, LifecycleSummary] = field(default_factory=dict)  # consumers with deploys or a scaler

    @property
    def consistent(self) -> bool:
        return not self.violations


def summarize(record: RunRecord) -> Summary:
    """Compute the summary of a run."""
    scenario = record.scenario
    logical = logical_ids(record.messages)
    consumers = {}
    on_chains = {consumer for path in chain_paths(scenario) for _, consumer in path}
    first_done_s = {}  # when each message was first processed, for the consumers on a chain
    for group in record.groups:
        consumers[group.name], done_s = _consumer_summary(record, group, logical, group.name in on_chains)
        if done_s is not None:
            first_done_s[group.name] = done_s
    violations = _violations(consumers)
    violations += failure_violations(scenario, {name: consumer.failures for name, consumer in consumers.items()})
    if not record.drained:
        violations = (stop_sentence(record), *violations)
    return Summary(
        publishers=_publisher_summaries(record),
        consumers=consumers,
        violations=violations,
        chains=summarize_chains(record, first_done_s),
        invariants=check_invariants(scenario.invariants, consumers),
        lifecycle={
            group.name: summarize_lifecycle(record, group) for group in record.groups if group.lifecycle is not None
        },
    )


def _publisher_summaries(record: RunRecord) -> dict[str, PublisherSummary]:
    """Per publisher, what it published and what became of it (arrays over every message, freed on return)."""
    messages = record.messages
    publishers = {}
    delay_s = messages.accept_s - messages.publish_s
    resend_publisher = messages.publisher[messages.resend_message]
    relayed = messages.resend_relayed
    for index, publisher in enumerate(record.scenario.publishers):
        mine = messages.publisher == index
        accepted = mine & ~messages.failed & ~messages.publisher_crashed  # crashes delay by their restart
        resends = resend_publisher == index
        publishers[publisher.name] = PublisherSummary(
            published=int(np.count_nonzero(mine)),
            delayed_by_outage=int(np.count_nonzero(delay_s[accepted] > 0)),
            max_publish_delay_s=float(delay_s[accepted].max()) if accepted.any() else 0.0,
            failed=int(np.count_nonzero(mine & messages.failed & ~messages.publisher_crashed)),
            resent=int(np.count_nonzero(resends & ~relayed)),
            deduplicated=int(np.count_nonzero(resends & ~relayed & ~messages.resend_kept)),
            crashed=int(np.count_nonzero(mine & messages.publisher_crashed)),
            lost_to_crash=int(np.count_nonzero(mine & messages.publisher_crashed & messages.failed)),
            relayed_twice=int(np.count_nonzero(resends & relayed)),
        )
    return publishers


def stop_sentence(record: RunRecord) -> str:
    """Why a run that did not drain stopped, and what its figures leave out."""
    stop = record.stopped
    if stop is None:
        return (
            "the run stopped at duration + drain_timeout before the bus drained, "
            "so later redeliveries and duplicates are not counted"
        )
    return (
        f"the run stopped at {stop.at_s:.3f} s: {stop.consumer} had made {stop.deliveries:,} deliveries of its "
        f"{counted(stop.messages, 'message')}, a delivery loop that would not end "
        "(each delivery crashing its instance, or coming back at once); the figures cover the run until then"
    )


def _cause_counts(
    causes: np.ndarray, names: type[DeliveryCause] | type[LossReason] | type[DedupMiss]
) -> dict[str, int]:
    counts = np.bincount(causes.astype(np.int64), minlength=len(names))
    return {member.name.lower(): int(counts[member]) for member in names if counts[member]}


def _consumer_summary(
    record: RunRecord, group: GroupRecord, logical: np.ndarray | None, on_chain: bool
) -> tuple[ConsumerSummary, np.ndarray | None]:
    """The group's figures; and, for a consumer ``on_chain``, when each of its messages was first processed
    (NaN if never), for the chains' figures."""
    scenario = record.scenario
    consumer = scenario.consumer(group.name)
    deliveries = group.deliveries
    count = group.message_ids.size
    fates = group.fates()

    # The backlog's steps are as long as the copies queued: their figures are taken, then they go,
    # before anything else as long is made.
    backlog_s, backlog = steps = backlog_steps(group)
    max_backlog = int(backlog.max()) if backlog.size else 0
    drain_s = drain_time_s(backlog_s, backlog, offered_rate(scenario, group.name))
    backlog_by_window = window_backlog(record, steps)
    del backlog_s, backlog, steps

    # Events, not messages: twins (messages emitted twice upstream for one event) count as one.
    events = GroupEvents.of(record, group, logical)
    delivered = np.zeros(count, bool)  # a byte per message, not a count's eight
    delivered[deliveries.message] = True
    delivered_messages = int(np.count_nonzero(delivered))
    del delivered

    # The exactly-once reference, with the same effect rules as the run, applies each event once.
    plan = events.plan
    expected = plan.snapshot(events.reference_state)
    state = {name: compare_counter(expected[name], group.counters[name]) for name in plan.counter_names}

    first_rows = events.first_rows
    delivered_count, duplicates, redelivered, redelivered_causes = _delivery_counts(group)
    per_instance = np.bincount(deliveries.instance, minlength=consumer.instances)
    _, first_loss = np.unique(group.lost_message, return_index=True)
    lost_reasons = group.lost_reason[first_loss][fates.lost[group.lost_message[first_loss]]]
    _, first_dead = np.unique(group.dead_letter_message, return_index=True)
    stuck_pending_age_s = record.sim_time_s - group.stuck_pending_since_s
    dead_causes = group.dead_letter_cause[first_dead]
    event_names = record.messages.event_names
    oversold = sum(counter.oversold for counter in group.counters.values())
    out_of_order_causes = _out_of_order_causes(record, group, events)
    emitted_here = record.messages.event[record.messages.emitter == scenario.consumers.index(consumer)]
    emitted = np.bincount(emitted_here, minlength=len(event_names))
    staleness = read_staleness(record, group, first_rows)
    series = group_series(record, group, first_rows, backlog_by_window)
    latency, latency_quantiles = _latency(record, group, first_rows)
    summary = ConsumerSummary(
        subscribed=count,
        delivered=delivered_count,
        processed=int(fates.processed.sum()),
        duplicate_deliveries=delivered_count - delivered_messages,
        duplicate_effects=int(np.maximum(events.applications - 1, 0).sum()),
        redelivered=redelivered,
        lost=int(fates.lost.sum()),
        dead_lettered=int(fates.dead_lettered.sum()),
        stuck_pending=int(fates.stuck_pending.sum()),
        stuck_pending_unprocessed=int((fates.stuck_pending & ~fates.processed).sum()),
        stuck_pending_age_s=LatencySummary.of(stuck_pending_age_s),
        rejected=int(events.rejected.sum()),
        wrongly_rejected=int(events.wrongly_rejected.sum()),
        wrongly_accepted=int(events.wrongly_accepted.sum()),
        out_of_order=sum(out_of_order_causes.values()),
        in_flight_at_end=int(fates.in_flight.sum()),
        max_backlog=max_backlog,
        drain_s=drain_s,
        idle_instances=int(np.count_nonzero(per_instance == 0)),
        busiest_instance_share=float(per_instance.max() / len(deliveries)) if len(deliveries) else 0.0,
        rejected_publishes=group.rejected_publishes,
        crashes=int(group.crash_s.size),
        crash_times_s=tuple(float(t) for t in group.crash_s),
        crash_instances=tuple(int(instance) for instance in group.crash_instance),
        missed_crashes=int(group.missed_crash_s.size),
        by_reason={
            "duplicate_deliveries": duplicates,
            "duplicate_effects": _duplicate_effect_causes(group, events),
            "dedup_missed": _dedup_misses(group, events),
            "redelivered": redelivered_causes,
            "lost": _cause_counts(lost_reasons, LossReason),
            "dead_lettered": _cause_counts(dead_causes, DeliveryCause),
            "stuck_pending": _cause_counts(group.stuck_pending_cause, DeliveryCause),
            "missed_crashes": _missed_crash_reasons(group),
            "in_flight_at_end": _in_flight_reasons(group, fates.in_flight),
            "out_of_order": out_of_order_causes,
            "wrongly_rejected": _rejection_causes(group, events),
            "oversold": {"read_modify_write": oversold} if oversold else {},
            "stale_reads": staleness.by_reason if staleness else {},
        },
        latency_s=latency,
        state=state,
        series=series,
        latency_quantiles_s=latency_quantiles,
        emitted={event: int(n) for event, n in zip(event_names, emitted) if n},
        oversold=oversold,
        lost_updates=group.lost_updates,
        optimistic_retries=group.optimistic_retries,
        recovery_s=LatencySummary.of(group.recovery_s),
        recovery_times_s=tuple(float(t) for t in group.recovery_s),
        replayed_events=tuple(int(n) for n in group.replayed),
        reads=staleness.reads if staleness else 0,
        stale_reads=staleness.stale_reads if staleness else 0,
        stale_read_fraction=staleness.stale_read_fraction if staleness else None,
        staleness_age_s=staleness.staleness_age_s if staleness else None,
        newest_missing_age_s=staleness.newest_missing_age_s if staleness else None,
        failures=summarize_failures(record, group, first_rows, fates.in_flight),
    )
    return summary, events.first_done_s if on_chain else None


def _delivery_counts(group: GroupRecord) -> tuple[int, dict[str, int], int, dict[str, int]]:
    """The deliveries the broker made (the consumer's own retries are attempts, not deliveries); the extra
    copies among them by cause; the redeliveries, and them by cause. Masks over every delivery, freed on return.

    An extra copy is every delivery but each message's original, by its own cause, whichever copy was
    received first.
    """
    deliveries = group.deliveries
    by_broker = broker_deliveries(group) if group.failures is not None else np.ones(len(deliveries), bool)
    extra = by_broker.copy()
    extra[original_rows(deliveries, np.arange(len(deliveries), dtype=np.int32))] = False  # rows are far below 2^31
    duplicates = _cause_counts(deliveries.cause[extra], DeliveryCause)
    redelivered = (deliveries.attempt > 1) & by_broker
    causes = _cause_counts(deliveries.cause[redelivered], DeliveryCause)
    return int(np.count_nonzero(by_broker)), duplicates, int(redelivered.sum()), causes


def _out_of_order_causes(record: RunRecord, group: GroupRecord, events: GroupEvents) -> dict[str, int]:
    """Events first processed after a later-published event of their key, by why.

    A first processing that was itself a redelivery was late for that
    redelivery's cause; otherwise the message either reached the queue after
    the later one (``broker_reordering``) or was overtaken while workers
    processed in parallel (``parallel_processing``). Twins are one event,
    so a message is never out of order behind its own twin.
    """
    deliveries = group.deliveries
    rows = events.event_first_rows
    codes = group.key_codes
    event = events.twin_of[deliveries.message[rows]]
    late = overtaken(codes, event, deliveries.done_s[rows])
    causes = deliveries.cause[rows[late]]
    counts = _cause_counts(causes[causes != DeliveryCause.FIRST], DeliveryCause)
    first_attempt = late & (deliveries.cause[rows] == DeliveryCause.FIRST)
    arrived_late = overtaken(codes, event, deliveries.arrival_s[rows])
    for reason, mask in (
        ("broker_reordering", first_attempt & arrived_late),
        ("parallel_processing", first_attempt & ~arrived_late),
    ):
        if mask.any():
            counts[reason] = int(mask.sum())
    return counts


def _rejection_causes(group: GroupRecord, events: GroupEvents) -> dict[str, int]:
    """Why each wrongly rejected event found its counter too low, checked in this order.

    ``duplicate_effects``: an effect on one of its keys had been applied
    twice before the rejection; ``out_of_order``: a later-published event
    had taken from one of its keys first; ``upstream``: neither, so the
    difference came from what the consumer was sent (messages lost
    upstream) or from concurrent writers.
    """
    wrongly_rejected = np.flatnonzero(events.wrongly_rejected)
    if wrongly_rejected.size == 0:
        return {}
    twin_of, deliveries = events.twin_of, group.deliveries
    slot_count, slot_codes = events.plan.slot_codes()
    rejected_s = np.full(twin_of.size, np.inf)
    rows = np.flatnonzero(deliveries.outcome == Outcome.REJECTED)
    np.minimum.at(rejected_s, twin_of[deliveries.message[rows]], deliveries.done_s[rows])
    at_s = rejected_s[wrongly_rejected]
    # When each slot first took an effect a second time. By time, not by which copy was the extra one:
    # the slot had taken the effect twice once the later of the two landed.
    repeats = events.repeat_rows
    repeat_s = np.full(slot_count, np.inf)
    for codes in slot_codes:
        np.minimum.at(repeat_s, codes[deliveries.message[repeats]], deliveries.done_s[repeats])
    duplicated = np.zeros(wrongly_rejected.size, bool)
    for codes in slot_codes:
        duplicated |= repeat_s[codes[wrongly_rejected]] < at_s
    # Every application's writes, and before each rejection the latest-published event that wrote its slots.
    applied = np.flatnonzero(deliveries.outcome == Outcome.APPLIED)
    written_s, writer = deliveries.done_s[applied], twin_of[deliveries.message[applied]]
    queries = wrongly_rejected.size
    slot = np.concatenate(
        [codes[deliveries.message[applied]] for codes in slot_codes] + [codes[wrongly_rejected] for codes in slot_codes]
    )
    effects = len(slot_codes)
    time_s = np.concatenate([np.tile(written_s, effects), np.tile(at_s, effects)])
    is_write = np.r_[np.ones(written_s.size * effects, bool), np.zeros(queries * effects, bool)]
    value = np.concatenate([np.tile(writer, effects), np.full(queries * effects, -1)])
    # At equal times a rejection comes first: only writes strictly before it count.
    order = np.lexsort((is_write, time_s, slot))
    latest_writer = np.empty(order.size, np.int64)
    latest_writer[order] = running_max_by_segment(value[order], slot[order])
    overtaken = np.zeros(queries, bool)
    query_of = np.tile(np.arange(queries), effects)
    np.logical_or.at(overtaken, query_of, latest_writer[~is_write] > np.tile(wrongly_rejected, effects))
    reason = np.where(duplicated, 0, np.where(overtaken, 1, 2))
    reasons, first, counts = np.unique(reason, return_index=True, return_counts=True)
    names = ("duplicate_effects", "out_of_order", "upstream")
    return {names[reasons[i]]: int(counts[i]) for i in np.argsort(first)}  # in the order the events meet them


# A duplicate effect by a twin: the upstream consumer processed its cause twice and emitted twice.
UPSTREAM_DUPLICATE = "upstream_duplicate"


def _duplicate_effect_causes(group: GroupRecord, events: GroupEvents) -> dict[str, int]:
    """Why each duplicate effect happened: the cause of the extra delivery, or a twin emitted upstream.

    The extra delivery is every application but the original's, whichever
    finished first (see :func:`busim.analysis.events.original_rows`).
    """
    by_twin = events.extra_by_twin
    counts = _cause_counts(group.deliveries.cause[events.extra_rows[~by_twin]], DeliveryCause)
    if by_twin.any():
        counts[UPSTREAM_DUPLICATE] = int(by_twin.sum())
    return counts


def _missed_crash_reasons(group: GroupRecord) -> dict[str, int]:
    """Why scheduled crashes did not happen: their instance was down then, or never processed that many."""
    reasons = {
        "instance_down": int(np.count_nonzero(group.missed_crash_after < 0)),
        "count_not_reached": int(np.count_nonzero(group.missed_crash_after >= 0)),
    }
    return {reason: count for reason, count in reasons.items() if count}


def _dedup_misses(group: GroupRecord, events: GroupEvents) -> dict[str, int]:
    """Of the duplicate effects, those an idempotent consumer's store let through, by why it did."""
    # The store lets through the copy processed later, which is the original when a redelivery finished
    # first: so this goes by when each repeat landed (repeat_rows), not by which copy was the extra one.
    missed = np.isin(group.dedup_miss_delivery, events.repeat_rows)
    return _cause_counts(group.dedup_miss_reason[missed], DedupMiss)


def _in_flight_reasons(group: GroupRecord, in_flight: np.ndarray) -> dict[str, int]:
    """Where the messages still in flight were when the run stopped, most advanced place first."""
    deliveries = group.deliveries
    unfinished = deliveries.outcome == Outcome.PROCESSING
    waiting = unfinished & np.isnan(deliveries.take_s)
    retrying = waiting & ~broker_deliveries(group) if group.failures is not None else np.zeros_like(waiting)
    places = (
        ("processing", deliveries.message[unfinished & ~np.isnan(deliveries.take_s)]),
        ("retrying", deliveries.message[retrying]),  # a worker waits out its backoff before it retries
        ("prefetched", deliveries.message[waiting & ~retrying]),
        ("queued_or_in_transit", group.unserved_message),
    )
    left = in_flight.copy()
    counts = {}
    for place, messages in places:
        here = np.zeros_like(left)
        here[messages] = True
        here &= left
        left &= ~here
        counts[place] = int(here.sum())
    counts["awaiting_redelivery"] = int(left.sum())
    return {place: count for place, count in counts.items() if count}


def _measured(record: RunRecord, group: GroupRecord, first_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The first-processing rows of messages published after the warm-up, and their publish times."""
    deliveries = group.deliveries
    publish_s = record.messages.publish_s[group.message_ids[deliveries.message[first_rows]]]
    measured = publish_s >= record.scenario.warmup
    if measured.all():  # no warm-up, or nothing published in it: no copies as long as the run
        return first_rows, publish_s
    return first_rows[measured], publish_s[measured]


def _latency(
    record: RunRecord, group: GroupRecord, first_rows: np.ndarray
) -> tuple[LatencyBreakdown, tuple[tuple[float, float], ...]]:
    """Latency of each message's first completed processing, for messages published after the warm-up;
    and the end-to-end latency's percentiles on :data:`QUANTILE_GRID`, for drawing its distribution."""
    deliveries = group.deliveries
    rows, publish_s = _measured(record, group, first_rows)
    # Each part is taken into one buffer, which its summary then reorders: two columns of a run's
    # worth of times at a time, not one per part. The rows are in range: mode="clip" spares the
    # whole-column buffer that np.take's default ("raise") fills before writing to ``out``.
    latency_s = deliveries.done_s.take(rows)
    latency_s -= publish_s
    end_to_end = LatencySummary.of(latency_s, spent=True)
    quantiles = _quantiles(latency_s)  # percentiles do not depend on the order the summary left
    np.take(deliveries.arrival_s, rows, out=latency_s, mode="clip")
    latency_s -= publish_s
    broker = LatencySummary.of(latency_s, spent=True)
    del publish_s
    take_s = deliveries.take_s.take(rows)
    np.take(deliveries.arrival_s, rows, out=latency_s, mode="clip")
    np.subtract(take_s, latency_s, out=latency_s)
    queue_wait = LatencySummary.of(latency_s, spent=True)
    np.take(deliveries.done_s, rows, out=latency_s, mode="clip")
    latency_s -= take_s
    processing = LatencySummary.of(latency_s, spent=True)
    breakdown = LatencyBreakdown(end_to_end=end_to_end, broker=broker, queue_wait=queue_wait, processing=processing)
    return breakdown, quantiles


# The percentiles kept for drawing the latency distribution again from results.json.
QUANTILE_GRID = (0.0, 0.1, 0.5, *range(1, 100), 99.5, 99.9, 99.99, 100.0)


def _quantiles(latency_s: np.ndarray) -> tuple[tuple[float, float], ...]:
    """(percentile, latency) on :data:`QUANTILE_GRID`; ``latency_s`` is reordered in place."""
    if latency_s.size == 0:
        return ()
    percentiles = np.percentile(latency_s, QUANTILE_GRID, overwrite_input=True)
    return tuple(zip(map(float, QUANTILE_GRID), map(float, percentiles)))


# Each figure that departs from exactly-once, with how to say one and many of it.
_VIOLATIONS = (
    ("duplicate_effects", "duplicate effect", "duplicate effects"),
    ("lost", "message lost", "messages lost"),
    ("dead_lettered", "message dead-lettered", "messages dead-lettered"),
    ("wrongly_rejected", "message wrongly rejected", "messages wrongly rejected"),
    ("wrongly_accepted", "message wrongly accepted", "messages wrongly accepted"),
    ("oversold", "unit oversold past a floor", "units oversold past a floor"),
    ("lost_updates", "update lost to a concurrent write", "updates lost to concurrent writes"),
    (
        "in_flight_at_end",
        "message never processed before the run stopped",
        "messages never processed before the run stopped",
    ),
)


def _violations(consumers: dict[str, ConsumerSummary]) -> tuple[str, ...]:
    found = []
    for name, consumer in consumers.items():
        for figure, one, many in _VIOLATIONS:
            value = getattr(consumer, figure)
            if value:
                found.append(f"{name}: {counted(value, one, many)}")
        stuck = consumer.stuck_pending_unprocessed
        if stuck:
            waits = "it waits" if stuck == 1 else "they wait"
            found.append(
                f"{name}: {counted(stuck, 'message', 'messages')} never processed, stuck pending: "
                f"{waits} for a claim (XCLAIM, or a claim_interval)"
            )
        for counter, consistency in consumer.state.items():
            if consistency.abs_drift:
                keys = counted(consistency.keys_diverged, "key", "keys")
                found.append(f"{name}: {counter} drifts by {consistency.abs_drift:,} over {keys}")
    return tuple(found)
