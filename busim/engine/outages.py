"""Broker outages: windows in which the broker accepts and delivers nothing."""

from __future__ import annotations

import bisect

import numpy as np

from busim.scenario.schema import Outage


class Outages:
    """Non-overlapping outage windows; moves times that fall inside one to its end."""

    def __init__(self, outages: list[Outage]) -> None:
        ordered = sorted(outages, key=lambda outage: outage.at)
        self.starts_s = [outage.at for outage in ordered]
        self.ends_s = [outage.end_s for outage in ordered]
        self._starts = np.array(self.starts_s)
        self._ends = np.array(self.ends_s)

    def defer(self, times_s: np.ndarray) -> np.ndarray:
        """Times in an outage ``[start, end)`` become its end; others stay."""
        if not self.starts_s:
            return times_s
        window = np.searchsorted(self._starts, times_s, side="right") - 1
        inside = (window >= 0) & (times_s < self._ends[np.maximum(window, 0)])
        return np.where(inside, self._ends[np.maximum(window, 0)], times_s)

    def defer_one(self, time_s: float) -> float:
        """:meth:`defer` for one time."""
        window = bisect.bisect_right(self.starts_s, time_s) - 1
        if window >= 0 and time_s < self.ends_s[window]:
            return self.ends_s[window]
        return time_s
