"""Latency statistics: exact percentiles over every sample, in seconds."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PERCENTILES = (50, 90, 95, 99, 99.9)


@dataclass(frozen=True)
class LatencySummary:
    """Count, mean, percentiles and maximum of a set of durations in seconds.

    With no samples, every statistic is None.
    """

    count: int
    mean: float | None
    p50: float | None
    p90: float | None
    p95: float | None
    p99: float | None
    p999: float | None
    max: float | None

    @classmethod
    def of(cls, samples_s: np.ndarray, spent: bool = False) -> LatencySummary:
        """The statistics of ``samples_s``; ``spent``: the caller has no further use for them, so the
        percentiles reorder them in place rather than in a copy as large."""
        if samples_s.size == 0:
            return cls(0, None, None, None, None, None, None, None)
        mean, highest = float(samples_s.mean()), float(samples_s.max())  # before any reordering
        p50, p90, p95, p99, p999 = (float(q) for q in np.percentile(samples_s, PERCENTILES, overwrite_input=spent))
        return cls(count=int(samples_s.size), mean=mean, p50=p50, p90=p90, p95=p95, p99=p99, p999=p999, max=highest)


@dataclass(frozen=True)
class LatencyBreakdown:
    """End-to-end latency (publish to first completed processing) and its parts.

    ``broker`` runs from publish to arrival in the group's queue (including
    outage delays and redeliveries of lost attempts), ``queue_wait`` from
    arrival to a worker taking it, ``processing`` from take to completion.
    """

    end_to_end: LatencySummary
    broker: LatencySummary
    queue_wait: LatencySummary
    processing: LatencySummary
