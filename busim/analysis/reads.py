"""Stale reads: what a consumer's read model returned while events were still on their way.

A read at time t of key k of the queried counter is *stale* when some
message whose effect changes key k of that counter was published before t
and had not been applied by t: its first completed processing (applied,
rejected or skipped) ends after t, or never happens (lost, dead-lettered
unprocessed, in flight at the end). The read's *staleness age* is t minus
the publish time of the oldest such message: the value it returned had been
out of date since then, and stays so until that message is applied, however
many later ones have been.

Everything here is vectorised over the reads: no Python loop per read.
"""

from __future__ import annotations

from dataclasses import dataclass
from heapq import heappop, heappush

import numpy as np

from busim.analysis.latency import LatencySummary
from busim.engine.effects import encode_keys
from busim.engine.records import GroupRecord, RunRecord


@dataclass(frozen=True)
class ReadStaleness:
    """How many reads of a consumer's read model were stale, and by how long (in seconds)."""

    reads: int  # reads at or after the warm-up
    stale_reads: int
    stale_read_fraction: float | None  # None without reads
    staleness_age_s: LatencySummary  # over the stale reads
    # Why each stale read was stale: the oldest event it missed was applied later ("not_yet_applied"),
    # or never ("never_applied": lost, dead-lettered or still in flight when the run stopped).
    by_reason: dict[str, int]
    # Over the stale reads: how long before the read the newest event it missed had been published.
    newest_missing_age_s: LatencySummary


@dataclass(frozen=True)
class StaleAges:
    """Per read (NaN for a fresh read): how long its value had been out of date, and related times in seconds."""

    oldest_s: np.ndarray  # since the publish of the oldest write it missed: how long the value was out of date
    newest_s: np.ndarray  # since the publish of the newest write it missed
    oldest_applied_s: np.ndarray  # when that oldest missed write was applied (inf: never)


def stale_reads(
    write_key: np.ndarray,
    write_publish_s: np.ndarray,
    write_applied_s: np.ndarray,
    read_key: np.ndarray,
    read_s: np.ndarray,
) -> StaleAges:
    """Which reads were stale, and by how long.

    A write is one message's change to one key: ``write_key`` (a code >= 0),
    when the message was published, and when it was applied (``inf`` for
    never). A read of key ``read_key[i]`` at ``read_s[i]`` is stale when a
    write of that key published before it was applied after it.

    Oldest: within a key, in order of publishing, the running maximum of the
    applied times is non-decreasing: a read at t is stale exactly when it
    exceeds t at the last write published before t, and the oldest missing
    write is where it first exceeds t. Both are found by one binary search
    per read, over composite codes (key, rank of time) that keep the keys
    apart and every comparison of times exact.

    Newest: key by key, reads in time order, the writes published before a
    read go on a heap by publish time, newest on top; a write applied by
    then stays applied for every later read, so it leaves the heap for good,
    and what remains on top is the newest write the read missed.
    """
    order = np.lexsort((write_publish_s, write_key))
    key = write_key[order].astype(np.int64)
    publish_s = write_publish_s[order]
    read_key = read_key.astype(np.int64)

    # End of the writes published before each read: before the first (key, publish) >= (k, t).
    publish_rank, read_publish_rank, width = _ranks(publish_s, read_s)
    published_before = np.searchsorted(key * width + publish_rank, read_key * width + read_publish_rank, side="left")

    # First write whose running maximum of applied times exceeds t: after every (key, max) <= (k, t).
    # key * width dominates the rank, so the running maximum restarts with each key.
    applied_rank, read_applied_rank, width = _ranks(write_applied_s[order], read_s)
    running = np.maximum.accumulate(key * width + applied_rank)
    oldest_missing = np.searchsorted(running, read_key * width + read_applied_rank, side="right")

    stale = oldest_missing < published_before
    oldest_s = np.full(read_s.size, np.nan)
    oldest_s[stale] = read_s[stale] - publish_s[oldest_missing[stale]]
    oldest_applied_s = np.full(read_s.size, np.nan)
    oldest_applied_s[stale] = write_applied_s[order][oldest_missing[stale]]
    return StaleAges(
        oldest_s=oldest_s,
        newest_s=_newest_missing(key, publish_s, write_applied_s[order], read_key, read_s),
        oldest_applied_s=oldest_applied_s,
    )


def _newest_missing(
    key: np.ndarray, publish_s: np.ndarray, applied_s: np.ndarray, read_key: np.ndarray, read_s: np.ndarray
) -> np.ndarray:
    """The newest-missed age of each read, from writes sorted by key and publish time (see :func:`stale_reads`)."""
    ages_s = np.full(read_s.size, np.nan)
    keys, published, applied = key.tolist(), publish_s.tolist(), applied_s.tolist()
    read_order = np.lexsort((read_s, read_key))
    position, current, heap = 0, None, []
    for read, read_of, at_s in zip(read_order.tolist(), read_key[read_order].tolist(), read_s[read_order].tolist()):
        if read_of != current:
            current, heap = read_of, []
            while position < len(keys) and keys[position] < read_of:
                position += 1
        while position < len(keys) and keys[position] == read_of and published[position] < at_s:
            heappush(heap, (-published[position], applied[position]))
            position += 1
        while heap and heap[0][1] <= at_s:
            heappop(heap)
        if heap:
            ages_s[read] = at_s + heap[0][0]
    return ages_s


def _ranks(times_s: np.ndarray, read_s: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Dense ranks of ``times_s`` and ``read_s`` among both together, and how many distinct times there are."""
    distinct, inverse = np.unique(np.concatenate([times_s, read_s]), return_inverse=True)
    inverse = inverse.astype(np.int64)
    return inverse[: times_s.size], inverse[times_s.size :], max(int(distinct.size), 1)


def read_staleness(record: RunRecord, group: GroupRecord, first_rows: np.ndarray) -> ReadStaleness | None:
    """The stale reads of ``group``'s read model, or None when its consumer has no queries.

    ``first_rows`` are the rows of each message's first completed processing
    (:func:`busim.analysis.summary.first_processing`). Reads before the
    warm-up are left out, as messages published before it are left out of
    latency.
    """
    reads = record.reads.get(group.name)
    consumer = record.scenario.consumer(group.name)
    if reads is None or consumer.queries is None:
        return None
    counter = consumer.queries.counter
    fields = record.messages.common_fields(group.selection)
    # One column of keys per effect on the counter, coded together as the counter's keys are.
    _, key_columns = encode_keys([fields[effect.key] for effect in consumer.effects if effect.counter == counter])

    count = group.message_ids.size
    deliveries = group.deliveries
    applied_s = np.full(count, np.inf)
    applied_s[deliveries.message[first_rows]] = deliveries.done_s[first_rows]
    publish_s = record.messages.publish_s[group.message_ids]

    counted = reads.at_s >= record.scenario.warmup
    read_s = reads.at_s[counted]
    read_key = np.stack(key_columns)[reads.effect[counted], reads.message[counted]]
    ages = stale_reads(
        np.concatenate(key_columns),
        np.tile(publish_s, len(key_columns)),
        np.tile(applied_s, len(key_columns)),
        read_key,
        read_s,
    )
    ages_s = ages.oldest_s
    stale = ~np.isnan(ages_s)
    stale_ages_s = ages_s[stale]
    never = int(np.count_nonzero(np.isinf(ages.oldest_applied_s[stale])))
    reasons = {"not_yet_applied": int(stale_ages_s.size) - never, "never_applied": never}
    return ReadStaleness(
        reads=int(read_s.size),
        stale_reads=int(stale_ages_s.size),
        stale_read_fraction=stale_ages_s.size / read_s.size if read_s.size else None,
        staleness_age_s=LatencySummary.of(stale_ages_s),
        by_reason={reason: count for reason, count in reasons.items() if count},
        newest_missing_age_s=LatencySummary.of(ages.newest_s[stale]),
    )
