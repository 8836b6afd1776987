"""Broker outages: windows in which the broker accepts and delivers nothing."""

from __future__ import annotations

import bisect

import numpy as np

from busim.scenario.schema import Outage


class Outages:
    """Non-overlapping outage windows; moves times that fall inside one to its end."""

    def __init__(self, outages: list[Outage]) -> None:
        self.starts_s: list[float] = []
        self.ends_s: list[float] = []
        for outage in sorted(outages, key=lambda outage: outage.at):
            if self.ends_s and outage.at <= self.ends_s[-1]:
                self.ends_s[-1] = max(self.ends_s[-1], outage.end_s)  # back to back: one window
            else:
                self.starts_s.append(outage.at)
                self.ends_s.append(outage.end_s)
        self._starts = np.array(self.starts_s)
        self._ends = np.array(self.ends_s)

    def defer(self, times_s: np.ndarray) -> np.ndarray:
        """Times in an outage ``[start, end)`` become its end; others stay. Always a new array."""
        if not self.starts_s:
            return times_s.copy()
        window = np.searchsorted(self._starts, times_s, side="right")  # one past the outage that may hold it
        inside = window > 0
        window -= inside
        end_s = self._ends[window]
        del window
        inside &= times_s < end_s
        return np.where(inside, end_s, times_s)

    def defer_one(self, time_s: float) -> float:
        """:meth:`defer` for one time."""
        window = bisect.bisect_right(self.starts_s, time_s) - 1
        if window >= 0 and time_s < self.ends_s[window]:
            return self.ends_s[window]
        return time_s
