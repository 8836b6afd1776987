"""A consumer's processing failures in figures: attempts, retries, give-ups, stalls and what retries cost.

Pure numpy over a group's deliveries: every attempt is a delivery row, the
consumer's own retries with cause ``retry`` (or ``retry_after_partial_effect``),
a failed attempt with outcome ``failed`` (or ``failed_after_effects``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from busim.analysis.latency import LatencySummary
from busim.engine.records import FAILED_OUTCOMES, DeliveryCause, GroupRecord, Outcome, RunRecord
from busim.scenario.schema import Scenario
from busim.words import counted

RETRY_CAUSES = (DeliveryCause.RETRY, DeliveryCause.RETRY_AFTER_PARTIAL_EFFECT)


@dataclass(frozen=True)
class FailureSummary:
    """What failing cost one consumer group; see docs/results.md."""

    attempts: int  # processing attempts: deliveries processed, and the consumer's own retries
    failed_attempts: int
    retries: int  # the consumer's own retries of a failed attempt (not redeliveries by the broker)
    given_up: int  # deliveries whose every attempt failed (nacked, dead-lettered, dropped or acked)
    poison_messages: int  # messages that fail on every attempt
    stalls: int  # deliveries that failed and held their worker (Kafka: their partition) while retrying
    stall_s: float  # the time they held it, summed
    max_stall_s: float
    stall_by_partition_s: dict[str, float]  # Kafka: per partition, the time a failing record held it up
    held_up: int  # Kafka: records that waited behind a failing record of their partition
    # Per message processed after a failed attempt: from the start of its first failed attempt to the start
    # of the attempt that succeeded (retries, backoffs and redeliveries).
    retry_delay_s: LatencySummary
    slowed: int  # processings that started inside a slowdown window of the consumer
    poison_in_flight: int  # poison messages neither dead-lettered nor given up when the run ended: still looping


def summarize_failures(
    record: RunRecord, group: GroupRecord, first_rows: np.ndarray, in_flight: np.ndarray
) -> FailureSummary | None:
    """The failure figures of ``group``, or None where its consumer neither fails nor slows down.

    ``first_rows`` are the rows of each message's first completed processing; ``in_flight`` which messages
    were still on their way when the run ended.
    """
    failures = group.failures
    if failures is None:
        return None
    deliveries = group.deliveries
    started = ~np.isnan(deliveries.take_s) & (deliveries.outcome != Outcome.PROCESSING)
    failed = np.isin(deliveries.outcome, FAILED_OUTCOMES)
    retry = np.isin(deliveries.cause, RETRY_CAUSES)
    # The first failed attempt of each message, and the attempt that succeeded: what failing delayed it.
    first_failed_s = np.full(group.message_ids.size, np.inf)
    np.minimum.at(first_failed_s, deliveries.message[failed], deliveries.take_s[failed])
    succeeded_s = deliveries.take_s[first_rows]
    since_s = first_failed_s[deliveries.message[first_rows]]
    delayed = since_s < succeeded_s
    duration_s = failures.stall_end_s - failures.stall_start_s
    partitions = failures.stall_partition
    by_partition = {
        str(partition): float(duration_s[partitions == partition].sum()) for partition in np.unique(partitions)
    }
    windows = record.scenario.consumer(group.name).slowdowns or ()
    take_s = deliveries.take_s[started]
    slowed = sum(int(np.count_nonzero((take_s >= window.start) & (take_s < window.to))) for window in windows)
    return FailureSummary(
        attempts=int(np.count_nonzero(started)),
        failed_attempts=int(np.count_nonzero(failed)),
        retries=int(np.count_nonzero(retry)),
        given_up=int(np.count_nonzero(failed)) - int(np.count_nonzero(retry)),
        poison_messages=int(failures.poison.size),
        stalls=int(duration_s.size),
        stall_s=float(duration_s.sum()),
        max_stall_s=float(duration_s.max()) if duration_s.size else 0.0,
        stall_by_partition_s=by_partition if (partitions >= 0).any() else {},
        held_up=int(failures.stall_held_up.sum()),
        retry_delay_s=LatencySummary.of(succeeded_s[delayed] - since_s[delayed]),
        slowed=slowed,
        poison_in_flight=int(np.count_nonzero(in_flight[failures.poison])),
    )


# Why a poison message can go round for ever, by preset.
_ENDLESS = {
    "ideal": "the queue requeues a nacked message without limit (set broker.max_deliveries)",
    "rabbitmq": "a classic queue requeues a nacked message without limit (a quorum queue's delivery_limit "
    "dead-letters it)",
    "nats-jetstream": "JetStream redelivers a nak'ed message without limit (set broker.max_deliver)",
    "sqs-standard": "the queue has no redrive policy (set broker.max_receive_count)",
    "sqs-fifo": "the queue has no redrive policy (set broker.max_receive_count)",
    "sns-sqs": "the queue has no redrive policy (set broker.max_receive_count)",
}


def failure_violations(scenario: Scenario, figures: dict[str, FailureSummary | None]) -> tuple[str, ...]:
    """Poison messages still going round when the run ended, and why nothing stopped them."""
    found = []
    for name, summary in figures.items():
        looping = summary.poison_in_flight if summary is not None else 0
        if not looping:
            continue
        preset = scenario.broker.preset
        why = _ENDLESS.get(preset, "nothing dead-letters them")
        action = scenario.consumer(name).on_give_up or "nack"
        if action != "nack" or preset in ("kafka", "redis-streams"):
            why = "their retries had not run out"
        found.append(
            f"{name}: {counted(looping, 'poison message', 'poison messages')} failed on every attempt and "
            f"{'was' if looping == 1 else 'were'} still going round when the run ended: {why}; "
            "give on_give_up: dead_letter or a delivery limit"
        )
    return tuple(found)


def broker_deliveries(group: GroupRecord) -> np.ndarray:
    """Which delivery rows the broker made: every row but the consumer's own retries."""
    return ~np.isin(group.deliveries.cause, RETRY_CAUSES)
