"""From a run's raw record to the figures a user reads: counts, latency, consistency.

Every function here is pure numpy over the record's arrays; nothing is
printed, rendered or written.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from busim.analysis.consistency import (
    CounterConsistency,
    compare_counter,
    out_of_order,
    reference_acceptance,
)
from busim.analysis.latency import LatencyBreakdown, LatencySummary
from busim.analysis.reads import read_staleness
from busim.analysis.series import Series, backlog_steps, group_series
from busim.engine.effects import EffectPlan
from busim.engine.keys import key_codes
from busim.engine.records import (
    PROCESSED_OUTCOMES,
    Deliveries,
    DeliveryCause,
    GroupRecord,
    LossReason,
    Outcome,
    RunRecord,
)


@dataclass(frozen=True)
class PublisherSummary:
    published: int
    delayed_by_outage: int  # published while the broker was down, accepted when it came back
    max_publish_delay_s: float
    failed: int  # the broker was down for longer than the publisher kept retrying
    resent: int  # publishes sent again after a lost publish acknowledgement
    deduplicated: int  # resends the broker dropped inside its deduplication window


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
    rejected: int
    wrongly_rejected: int
    wrongly_accepted: int
    out_of_order: int
    in_flight_at_end: int
    max_backlog: int
    idle_instances: int  # instances that received no delivery (on Kafka: members beyond the partitions)
    busiest_instance_share: float  # the share of deliveries the busiest instance received
    rejected_publishes: int
    crashes: int
    crash_times_s: tuple[float, ...]
    by_reason: dict[str, dict[str, int]]
    latency_s: LatencyBreakdown
    state: dict[str, CounterConsistency]
    series: Series  # figures per time window, for charts
    latency_quantiles_s: tuple[tuple[float, float], ...]  # (percentile, end-to-end latency), for the CDF
    # Reads of the read model (queries), at or after the warm-up: 0 and None without queries.
    reads: int
    stale_reads: int
    stale_read_fraction: float | None
    staleness_age_s: LatencySummary | None


@dataclass(frozen=True)
class Summary:
    publishers: dict[str, PublisherSummary]
    consumers: dict[str, ConsumerSummary]
    violations: tuple[str, ...]  # every departure from exactly-once, in words

    @property
    def consistent(self) -> bool:
        return not self.violations


def summarize(record: RunRecord) -> Summary:
    """Compute the summary of a run."""
    scenario = record.scenario
    messages = record.messages
    publishers = {}
    delay_s = messages.accept_s - messages.publish_s
    resend_publisher = messages.publisher[messages.resend_message]
    for index, publisher in enumerate(scenario.publishers):
        mine = messages.publisher == index
        accepted = mine & ~messages.failed
        resends = resend_publisher == index
        publishers[publisher.name] = PublisherSummary(
            published=int(np.count_nonzero(mine)),
            delayed_by_outage=int(np.count_nonzero(delay_s[accepted] > 0)),
            max_publish_delay_s=float(delay_s[accepted].max()) if accepted.any() else 0.0,
            failed=int(np.count_nonzero(mine & messages.failed)),
            resent=int(np.count_nonzero(resends)),
            deduplicated=int(np.count_nonzero(resends & ~messages.resend_kept)),
        )
    consumers = {group.name: _consumer_summary(record, group) for group in record.groups}
    violations = _violations(consumers)
    if not record.drained:
        violations = (
            "the run stopped at duration + drain_timeout before the bus drained, "
            "so later redeliveries and duplicates are not counted",
            *violations,
        )
    return Summary(publishers=publishers, consumers=consumers, violations=violations)


def _cause_counts(causes: np.ndarray, names: type[DeliveryCause] | type[LossReason]) -> dict[str, int]:
    counts = np.bincount(causes.astype(np.int64), minlength=len(names))
    return {member.name.lower(): int(counts[member]) for member in names if counts[member]}


def _consumer_summary(record: RunRecord, group: GroupRecord) -> ConsumerSummary:
    scenario = record.scenario
    consumer = scenario.consumer(group.name)
    deliveries = group.deliveries
    count = group.message_ids.size
    fates = group.fates()

    applied_count = np.bincount(deliveries.message[deliveries.outcome == Outcome.APPLIED], minlength=count)
    rejected = np.zeros(count, bool)
    rejected[deliveries.message[deliveries.outcome == Outcome.REJECTED]] = True
    rejected &= applied_count == 0
    delivered_messages = int(np.count_nonzero(np.bincount(deliveries.message, minlength=count)))

    # The exactly-once reference, with the same effect rules as the run.
    plan = EffectPlan(consumer, record.messages.common_fields(group.selection))
    accepted_by_reference, reference_state = reference_acceptance(plan, count)
    expected = plan.snapshot(reference_state)
    state = {name: compare_counter(expected[name], group.counters[name]) for name in plan.counter_names}

    first_rows = first_processing(deliveries)
    duplicates = deliveries.cause[_duplicate_rows(deliveries.message)].copy()
    # A first attempt that repeats a message was overtaken by its own broker duplicate.
    duplicates[duplicates == DeliveryCause.FIRST] = DeliveryCause.BROKER_DUPLICATE
    redelivered = deliveries.attempt > 1
    per_instance = np.bincount(deliveries.instance, minlength=consumer.instances)
    _, first_loss = np.unique(group.lost_message, return_index=True)
    lost_reasons = group.lost_reason[first_loss][fates.lost[group.lost_message[first_loss]]]
    _, first_dead = np.unique(group.dead_letter_message, return_index=True)
    dead_causes = group.dead_letter_cause[first_dead]
    staleness = read_staleness(record, group, first_rows)
    return ConsumerSummary(
        subscribed=count,
        delivered=len(deliveries),
        processed=int(fates.processed.sum()),
        duplicate_deliveries=len(deliveries) - delivered_messages,
        duplicate_effects=int(np.maximum(applied_count - 1, 0).sum()),
        redelivered=int(redelivered.sum()),
        lost=int(fates.lost.sum()),
        dead_lettered=int(fates.dead_lettered.sum()),
        rejected=int(rejected.sum()),
        wrongly_rejected=int(np.count_nonzero(rejected & accepted_by_reference)),
        wrongly_accepted=int(np.count_nonzero((applied_count > 0) & ~accepted_by_reference)),
        out_of_order=out_of_order(
            key_codes(record.scenario, record.messages, group.selection)[0],
            deliveries.message[first_rows],
            deliveries.done_s[first_rows],
        ),
        in_flight_at_end=int(fates.in_flight.sum()),
        max_backlog=_max_backlog(group),
        idle_instances=int(np.count_nonzero(per_instance == 0)),
        busiest_instance_share=float(per_instance.max() / len(deliveries)) if len(deliveries) else 0.0,
        rejected_publishes=group.rejected_publishes,
        crashes=int(group.crash_s.size),
        crash_times_s=tuple(float(t) for t in group.crash_s),
        by_reason={
            "duplicate_deliveries": _cause_counts(duplicates, DeliveryCause),
            "redelivered": _cause_counts(deliveries.cause[redelivered], DeliveryCause),
            "lost": _cause_counts(lost_reasons, LossReason),
            "dead_lettered": _cause_counts(dead_causes, DeliveryCause),
            "in_flight_at_end": _in_flight_reasons(group, fates.in_flight),
        },
        latency_s=_latency(record, group, first_rows),
        state=state,
        series=group_series(record, group, first_rows),
        latency_quantiles_s=_latency_quantiles(record, group, first_rows),
        reads=staleness.reads if staleness else 0,
        stale_reads=staleness.stale_reads if staleness else 0,
        stale_read_fraction=staleness.stale_read_fraction if staleness else None,
        staleness_age_s=staleness.staleness_age_s if staleness else None,
    )


def _in_flight_reasons(group: GroupRecord, in_flight: np.ndarray) -> dict[str, int]:
    """Where the messages still in flight were when the run stopped, most advanced place first."""
    deliveries = group.deliveries
    unfinished = deliveries.outcome == Outcome.PROCESSING
    places = (
        ("processing", deliveries.message[unfinished & ~np.isnan(deliveries.take_s)]),
        ("prefetched", deliveries.message[unfinished & np.isnan(deliveries.take_s)]),
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


def first_processing(deliveries: Deliveries) -> np.ndarray:
    """Rows of each message's first completed processing, in order of message."""
    rows = np.flatnonzero(np.isin(deliveries.outcome, PROCESSED_OUTCOMES))
    rows = rows[np.lexsort((deliveries.done_s[rows], deliveries.message[rows]))]
    if rows.size == 0:
        return rows
    message = deliveries.message[rows]
    return rows[np.r_[True, message[1:] != message[:-1]]]


def _measured(record: RunRecord, group: GroupRecord, first_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The first-processing rows of messages published after the warm-up, and their publish times."""
    deliveries = group.deliveries
    publish_s = record.messages.publish_s[group.message_ids[deliveries.message[first_rows]]]
    measured = publish_s >= record.scenario.warmup
    return first_rows[measured], publish_s[measured]


def _latency(record: RunRecord, group: GroupRecord, first_rows: np.ndarray) -> LatencyBreakdown:
    """Latency of each message's first completed processing, for messages published after the warm-up."""
    deliveries = group.deliveries
    rows, publish_s = _measured(record, group, first_rows)
    arrival_s, take_s, done_s = deliveries.arrival_s[rows], deliveries.take_s[rows], deliveries.done_s[rows]
    return LatencyBreakdown(
        end_to_end=LatencySummary.of(done_s - publish_s),
        broker=LatencySummary.of(arrival_s - publish_s),
        queue_wait=LatencySummary.of(take_s - arrival_s),
        processing=LatencySummary.of(done_s - take_s),
    )


# The percentiles kept for drawing the latency distribution again from results.json.
QUANTILE_GRID = (0.0, 0.1, 0.5, *range(1, 100), 99.5, 99.9, 99.99, 100.0)


def _latency_quantiles(
    record: RunRecord, group: GroupRecord, first_rows: np.ndarray
) -> tuple[tuple[float, float], ...]:
    rows, publish_s = _measured(record, group, first_rows)
    latency_s = group.deliveries.done_s[rows] - publish_s
    if latency_s.size == 0:
        return ()
    return tuple(zip(map(float, QUANTILE_GRID), map(float, np.percentile(latency_s, QUANTILE_GRID))))


def _duplicate_rows(message: np.ndarray) -> np.ndarray:
    """Rows of deliveries that repeat a message delivered before (every row but its first)."""
    repeated = np.ones(message.size, bool)
    if message.size:
        order = np.argsort(message, kind="stable")
        ordered = message[order]
        repeated[order[np.r_[True, ordered[1:] != ordered[:-1]]]] = False
    return repeated


def _max_backlog(group: GroupRecord) -> int:
    """The most copies waiting in the group's queue at any moment (until an instance received them)."""
    _, level = backlog_steps(group)
    return int(level.max()) if level.size else 0


# Each figure that departs from exactly-once, with how to say one and many of it.
_VIOLATIONS = (
    ("duplicate_effects", "duplicate effect", "duplicate effects"),
    ("lost", "message lost", "messages lost"),
    ("dead_lettered", "message dead-lettered", "messages dead-lettered"),
    ("wrongly_rejected", "message wrongly rejected", "messages wrongly rejected"),
    ("wrongly_accepted", "message wrongly accepted", "messages wrongly accepted"),
    (
        "in_flight_at_end",
        "message never processed before the run stopped",
        "messages never processed before the run stopped",
    ),
)


def _counted(value: int, one: str, many: str) -> str:
    return f"{value:,} {one if value == 1 else many}"


def _violations(consumers: dict[str, ConsumerSummary]) -> tuple[str, ...]:
    found = []
    for name, consumer in consumers.items():
        for figure, one, many in _VIOLATIONS:
            value = getattr(consumer, figure)
            if value:
                found.append(f"{name}: {_counted(value, one, many)}")
        for counter, consistency in consumer.state.items():
            if consistency.abs_drift:
                keys = _counted(consistency.keys_diverged, "key", "keys")
                found.append(f"{name}: {counter} drifts by {consistency.abs_drift:,} over {keys}")
    return tuple(found)
