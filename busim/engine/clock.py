"""The simulation clock: SimPy's environment, with callbacks due at given times.

SimPy schedules an event a delay after now. The engine mostly knows *when*
something happens (a completion at its start plus its processing time, a
wake-up at the next arrival), and in floating point ``now + (at - now)`` is
not always ``at``: a wake-up could land a hair short of the arrival it waits
for, and a completion a hair off ``start + processing``. :meth:`Clock.call_at`
schedules at the time itself, so that every time in the record is the sum
that defines it, the same sum that :mod:`busim.engine.servers` computes over
arrays.

The engine makes one or more such calls per message and needs nothing of an
event but its callback and a value: a call is scheduled as the pair itself,
in SimPy's own queue and order (time, priority, then order of scheduling),
and :meth:`Clock.step` calls it without making an event. SimPy's events (the
end of :meth:`~simpy.core.Environment.run`, say) are stepped as SimPy steps
them.
"""

from __future__ import annotations

from collections.abc import Callable
from heapq import heappop, heappush
from typing import Any

import simpy
from simpy.events import NORMAL

Callback = Callable[[Any], None]


class Clock(simpy.Environment):
    """A SimPy environment whose callbacks can be due at an absolute time."""

    def call_at(self, at_s: float, callback: Callback, value: Any = None) -> None:
        """Call ``callback(value)`` at ``at_s`` (not before now)."""
        heappush(self._queue, (at_s, NORMAL, next(self._eid), (callback, value)))

    def step(self) -> None:
        """Process the next event: a call scheduled by :meth:`call_at`, or one of SimPy's events."""
        queue = self._queue
        if queue and type(queue[0][3]) is tuple:
            self._now, _, _, (callback, value) = heappop(queue)
            callback(value)
        else:
            super().step()
