"""An instance's own processed ids, in its process's memory (``dedup.durable: false``).

This is what a non-durable store really is: the ids live in the consumer
process, so a SIGKILL forgets them and the group's other instances never see
them. ``ttl`` forgets an id that many seconds after it was recorded;
``capacity`` evicts the least recently seen id, as
:class:`busim.engine.dedup.DedupStore` does.
"""

from __future__ import annotations

import time
from collections import OrderedDict

from busim.scenario.schema import Dedup


class MemoryIds:
    """Processed message ids with the monotonic time each was recorded, in order of last use."""

    def __init__(self, dedup: Dedup) -> None:
        self._ttl_s = dedup.ttl
        self._capacity = dedup.capacity if isinstance(dedup.capacity, int) else None
        self._recorded_at_s: OrderedDict[int, float] = OrderedDict()

    def seen(self, message: int) -> bool:
        """Whether ``message`` was recorded and is still held (a hit counts as a use)."""
        recorded_at_s = self._recorded_at_s.get(message)
        if recorded_at_s is None:
            return False
        if self._ttl_s and time.monotonic() - recorded_at_s > self._ttl_s:
            del self._recorded_at_s[message]
            return False
        if self._capacity is not None:
            self._recorded_at_s.move_to_end(message)
        return True

    def record(self, message: int) -> None:
        self._recorded_at_s[message] = time.monotonic()
        if self._capacity is not None:
            self._recorded_at_s.move_to_end(message)
            if len(self._recorded_at_s) > self._capacity:
                self._recorded_at_s.popitem(last=False)
