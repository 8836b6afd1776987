"""A consumer group's figures per time window: what the charts over time draw.

Windows are of equal length, a round number of seconds (1, 2 or 5 times a
power of ten) that cuts the run into about :data:`WINDOWS` of them, from 0
to the end of the run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from busim.engine.records import GroupRecord, RunRecord

WINDOWS = 120


@dataclass(frozen=True)
class Series:
    """Per window of ``window_s`` seconds, the ``i``-th starting at ``i * window_s``."""

    window_s: float
    published: tuple[int, ...]  # the group's messages published in the window
    processed: tuple[int, ...]  # first completed processings that ended in the window
    backlog: tuple[int, ...]  # copies waiting at the broker when the window ended
    latency_p50_s: tuple[float | None, ...]  # end-to-end, of the messages published in the window
    latency_p99_s: tuple[float | None, ...]


def window_length_s(end_s: float) -> float:
    """A round window length that cuts ``[0, end_s]`` into about :data:`WINDOWS` windows."""
    if end_s <= 0:
        return 1.0
    raw = end_s / WINDOWS
    power = 10.0 ** math.floor(math.log10(raw))
    return next(step * power for step in (1, 2, 5, 10) if step * power >= raw)


def _windows(record: RunRecord) -> tuple[float, np.ndarray]:
    """The windows' length and their edges, from 0 to past the end of the run."""
    window_s = window_length_s(record.sim_time_s)
    count = max(1, math.ceil(record.sim_time_s / window_s))
    return window_s, np.arange(count + 1) * window_s


def window_backlog(record: RunRecord, backlog: tuple[np.ndarray, np.ndarray]) -> tuple[int, ...]:
    """Copies waiting at the broker as each window ends, from :func:`backlog_steps`."""
    return tuple(int(v) for v in backlog_at(*backlog, _windows(record)[1][1:]))


def group_series(record: RunRecord, group: GroupRecord, first_rows: np.ndarray, backlog: tuple[int, ...]) -> Series:
    """The figures of ``group`` per window; ``first_rows`` are its messages' first completed processings,
    ``backlog`` its :func:`window_backlog` (taken apart, so that the steps need not outlive it)."""
    window_s, edges = _windows(record)
    count = edges.size - 1
    deliveries = group.deliveries
    published = np.histogram(record.messages.publish_s[group.message_ids], bins=edges)[0]
    first_publish_s = record.messages.publish_s[group.message_ids[deliveries.message[first_rows]]]
    latency_s = deliveries.done_s.take(first_rows)  # their completions, then (in place) their latencies
    processed = np.histogram(latency_s, bins=edges)[0]
    latency_s -= first_publish_s
    # The rows go by message, that is in publish order: each window's latencies are a slice, found by
    # the whole windows from 0 to each publish, ascending; the last window takes any later ones too.
    whole_windows = np.floor_divide(first_publish_s, window_s, out=first_publish_s)
    bounds = np.searchsorted(whole_windows, np.arange(count + 1))
    bounds[-1] = whole_windows.size
    del first_publish_s, whole_windows
    p50: list[float | None] = [None] * count
    p99: list[float | None] = [None] * count
    for index in range(count):
        values = latency_s[bounds[index] : bounds[index + 1]]
        if values.size:
            p50[index], p99[index] = (float(v) for v in np.percentile(values, [50, 99]))
    return Series(
        window_s=window_s,
        published=tuple(int(v) for v in published),
        processed=tuple(int(v) for v in processed),
        backlog=backlog,
        latency_p50_s=tuple(p50),
        latency_p99_s=tuple(p99),
    )


def backlog_steps(group: GroupRecord) -> tuple[np.ndarray, np.ndarray]:
    """When the group's queue at the broker changed, and how many copies waited after each change."""
    deliveries = group.deliveries
    # Receipts and arrivals of the copies delivered are sorted apart; the copies left unserved, sorted
    # already, are merged into the arrivals, and the receipts into them all: a run that ends with a long
    # queue sorts only what it delivered, and its last merge places the receipts alone, not every change so
    # far. At equal times a receipt comes before an arrival, and an arrival delivered before one left unserved.
    arrival_s = _ascending(deliveries.arrival_s)
    if group.unserved_arrival_s.size:
        arrival_s = _merged(arrival_s, np.int8(1), group.unserved_arrival_s)[0]
    times, step = _merged(_ascending(deliveries.receive_s), np.int8(-1), arrival_s)
    return times, _levels(step)


def _ascending(times_s: np.ndarray) -> np.ndarray:
    """``times_s`` sorted: the array itself where it is already, as one server on a FIFO queue leaves them."""
    return times_s if (times_s[1:] >= times_s[:-1]).all() else np.sort(times_s)


def _merged(first_s: np.ndarray, first_step: np.ndarray | np.int8, then_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two sorted runs of changes merged in time order, ``first_s`` ahead of ``then_s`` at equal times:
    the times, and the step of each change (``first_step`` for ``first_s``, +1 for an arrival of ``then_s``).

    Each change is placed by a search rather than the two sorted again together."""
    slot = np.searchsorted(then_s, first_s, side="left")
    slot += np.arange(first_s.size)
    times = np.empty(first_s.size + then_s.size)
    times[slot] = first_s
    then = np.ones(times.size, bool)
    then[slot] = False
    np.place(times, then, then_s)  # unlike times[mask] = ..., without an index per change
    step = then.view(np.int8)  # +1 where an arrival of ``then_s`` went
    step[slot] = first_step
    return times, step


def _levels(step: np.ndarray) -> np.ndarray:
    """Copies waiting after each of ``step`` (+1 an arrival, -1 a receipt), never below none."""
    level = np.cumsum(step, dtype=np.int32)  # copies are bounded far below 2^31
    return np.maximum(level, 0, out=level)


def backlog_at(change_s: np.ndarray, level: np.ndarray, times_s: np.ndarray) -> np.ndarray:
    """Copies waiting at the broker at each of ``times_s``, from :func:`backlog_steps`."""
    if change_s.size == 0:
        return np.zeros(times_s.size, dtype=np.int64)
    index = np.searchsorted(change_s, times_s, side="right") - 1
    return np.where(index >= 0, level[np.maximum(index, 0)], 0)
