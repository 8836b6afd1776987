"""The simulation clock: SimPy's environment, with callbacks due at given times.

SimPy schedules an event a delay after now. The engine mostly knows *when*
something happens (a completion at its start plus its processing time, a
wake-up at the next arrival), and in floating point ``now + (at - now)`` is
not always ``at``: a wake-up could land a hair short of the arrival it waits
for, and a completion a hair off ``start + processing``. :meth:`Clock.call_at`
schedules at the time itself, so that every time in the record is the sum
that defines it, the same sum that :mod:`busim.engine.servers` computes over
arrays.
"""

from __future__ import annotations

from collections.abc import Callable
from heapq import heappush
from typing import Any

import simpy
from simpy.events import NORMAL, Event

Callback = Callable[[Event], None]
_new_event = object.__new__


class _Call(Event):
    """An event made already triggered, whose value is a plain slot.

    The engine makes one or more per message and reads each one's value once:
    the slot spares SimPy's ``value`` property, which checks for a pending event.
    """

    __slots__ = ("value",)


class Clock(simpy.Environment):
    """A SimPy environment whose callbacks can be due at an absolute time."""

    def call_at(self, at_s: float, callback: Callback, value: Any = None) -> None:
        """Call ``callback`` at ``at_s`` (not before now) with an event whose value is ``value``."""
        # Event.__init__ inlined, and the event triggered: SimPy only reads _ok and the callbacks.
        event = _new_event(_Call)
        event.env = self
        event.callbacks = [callback]
        event._ok = True
        event._value = event.value = value
        heappush(self._queue, (at_s, NORMAL, next(self._eid), event))
