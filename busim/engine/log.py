"""The growing record of one consumer group, frozen into a :class:`GroupRecord` at the end.

Both kinds of group (a queue with competing consumers, a partitioned log)
append one row per delivery here; columns are compact typed arrays, so a
row costs a few dozen bytes rather than a Python object. The columns are
allocated ahead, a quarter more each time they fill (doubling, they would
hold up to twice the rows written until the run ends), with the times not
yet reached and the outcome already in place: a row is written item by
item, which costs less than appending to every column. A group computed over arrays
(:mod:`busim.engine.servers`) writes no rows: it hands its arrays to
:meth:`DeliveryLog.freeze` as the record's columns.
"""

from __future__ import annotations

import math
from array import array
from typing import TYPE_CHECKING

import numpy as np

from busim.engine.records import Deliveries, GroupRecord, LossReason, Selection, loss_columns
from busim.words import counted

if TYPE_CHECKING:
    from busim.engine.failures import FailurePlan
    from busim.engine.handler import Handler

_PROCESSING = 0
_UNSET = math.inf  # a time not yet reached: taking, or the end of processing
# A group that makes this many deliveries per message (beyond a floor for small runs) is in a loop
# that would never end: every delivery crashing its instance, say, with an instant restart.
MAX_DELIVERIES_PER_MESSAGE = 100
DELIVERIES_FLOOR = 10_000
FIRST_ROWS = 4096  # rows allocated at first; more as they fill
# Each column, and the value a row has until it is written. Messages, attempts and instances fit in 32 bits:
# a run's messages are bounded far below 2^31 by memory (busim.api.MAX_MESSAGES), and so are the rows.
_COLUMNS = {
    "message": ("i", 0),
    "attempt": ("i", 0),
    "cause": ("b", 0),
    "instance": ("i", 0),
    "arrival_s": ("d", 0.0),
    "receive_s": ("d", 0.0),
    "take_s": ("d", _UNSET),  # inf until processing starts
    "done_s": ("d", _UNSET),  # inf until processing ends
    "outcome": ("b", _PROCESSING),
}


class TooManyDeliveries(Exception):
    """A group's log reached its :func:`delivery_limit`: the run stops there."""

    def __init__(self, log: DeliveryLog, now: float) -> None:
        super().__init__(f"{counted(len(log), 'delivery')} for {counted(log.messages, 'message')} at {now:g} s")
        self.log = log
        self.now = now


def delivery_limit(messages: int) -> int:
    """The most deliveries a group of ``messages`` messages may make."""
    return MAX_DELIVERIES_PER_MESSAGE * messages + DELIVERIES_FLOOR


class DeliveryLog:
    """Deliveries, losses, dead letters and crashes of one group, as they happen."""

    def __init__(self, messages: int) -> None:
        self.messages = messages
        self.limit = delivery_limit(messages)
        self.message = array("i")
        self.attempt = array("i")
        self.cause = array("b")
        self.instance = array("i")
        self.arrival_s = array("d")
        self.receive_s = array("d")
        self.take_s = array("d")  # inf until processing starts
        self.done_s = array("d")  # inf until processing ends
        self.outcome = array("b")
        self._rows = 0  # rows written; the columns hold _capacity
        self._capacity = 0
        self.crashed: set[int] = set()  # rare, so kept apart from the columns
        self.lost: list[tuple[int, float, int]] = []
        self.dead_letters: list[tuple[int, float, int]] = []
        self.stuck_pending: list[tuple[int, float, float, int]] = []  # (message, left at, idle since, cause)
        self.crashes: list[tuple[float, int]] = []
        self.rejected_publishes = 0

    def __len__(self) -> int:
        return self._rows

    def _make_room(self, rows: int, now: float) -> None:
        """Allocate rows until ``rows`` more fit, a quarter more at a time (up to the limit: there the run stops)."""
        needed = self._rows + rows
        if needed > self.limit:
            raise TooManyDeliveries(self, now)
        capacity = min(max(needed, self._capacity + self._capacity // 4, FIRST_ROWS), self.limit)
        for name, (_, unset) in _COLUMNS.items():
            getattr(self, name).extend(array(_COLUMNS[name][0], [unset]) * (capacity - self._capacity))
        self._capacity = capacity

    def append(
        self,
        message: int,
        attempt: int,
        cause: int,
        instance: int,
        arrival_s: float,
        now: float,
        take_s: float = _UNSET,
    ) -> int:
        """A delivery received at ``now``, taken by a worker at ``take_s`` (inf: not yet); returns its row."""
        row = self._rows
        if row == self._capacity:
            self._make_room(1, now)
        self._rows = row + 1
        self.message[row] = message
        self.attempt[row] = attempt
        self.cause[row] = cause
        self.instance[row] = instance
        self.arrival_s[row] = arrival_s
        self.receive_s[row] = now
        if take_s != _UNSET:
            self.take_s[row] = take_s
        return row

    def lose(self, message: int, now: float, reason: LossReason) -> None:
        self.lost.append((message, now, int(reason)))

    def freeze(
        self,
        name: str,
        selection: Selection,
        unserved_s: np.ndarray,
        unserved: np.ndarray,
        end_s: float,
        handler: Handler,
        key_codes: np.ndarray,
        failures: FailurePlan | None = None,
        deliveries: Deliveries | None = None,
    ) -> GroupRecord:
        """The group's record; ``unserved_s`` and ``unserved`` are the arrival times and messages of the copies
        still queued or on their way at ``end_s`` (``unserved_s`` is sorted in place).

        ``deliveries``: the group's deliveries, computed as arrays elsewhere, where the log wrote no row.
        """
        if deliveries is None:
            deliveries = self._deliveries()
        else:
            assert not self._rows, "deliveries given to a log that has its own"
        lost = np.array(self.lost, dtype=float).reshape(-1, 3)
        dead = np.array(self.dead_letters, dtype=float).reshape(-1, 3)
        stuck = np.array(self.stuck_pending, dtype=float).reshape(-1, 4)
        crashes = np.array(self.crashes, dtype=float).reshape(-1, 2)
        missed = handler.missed_crashes()
        recoveries = np.array(handler.recoveries, dtype=float).reshape(-1, 2)
        misses = np.array(sorted(handler.dedup_misses.items()), dtype=np.int64).reshape(-1, 2)
        return GroupRecord(
            name=name,
            selection=selection,
            deliveries=deliveries,
            unserved_arrival_s=_sorted_until(unserved_s, end_s),
            unserved_message=unserved.astype(np.int32, copy=False),
            **loss_columns(lost, dead, stuck),
            crash_s=crashes[:, 0],
            crash_instance=crashes[:, 1].astype(np.int64),
            missed_crash_s=np.array([at_s for at_s, _, _ in missed], dtype=np.float64),
            missed_crash_instance=np.array([instance for _, instance, _ in missed], dtype=np.int64),
            missed_crash_after=np.array([count for _, _, count in missed], dtype=np.int64),
            rejected_publishes=self.rejected_publishes,
            counters=handler.counters(),
            recovery_s=recoveries[:, 0],
            replayed=recoveries[:, 1].astype(np.int64),
            dedup_miss_delivery=misses[:, 0],
            dedup_miss_reason=misses[:, 1].astype(np.int8),
            lost_updates=handler.lost_updates,
            optimistic_retries=handler.optimistic_retries,
            plan=handler.plan,
            key_codes=key_codes,
            failures=failures.record() if failures is not None else None,
        )

    def _deliveries(self) -> Deliveries:
        """The rows written, as the record's columns: the log's own memory, not copies (it grows no more)."""
        for column in _COLUMNS:
            del getattr(self, column)[self._rows :]  # the rows allocated ahead and never written
        self._capacity = self._rows
        crashed = np.zeros(len(self), dtype=bool)
        crashed[list(self.crashed)] = True
        take_s = _shared(self.take_s, np.float64)
        take_s[np.isinf(take_s)] = np.nan
        done_s = _shared(self.done_s, np.float64)
        done_s[np.isinf(done_s)] = np.nan
        return Deliveries(
            message=_shared(self.message, np.int32),
            attempt=_shared(self.attempt, np.int32),
            cause=_shared(self.cause, np.int8),
            instance=_shared(self.instance, np.int32),
            arrival_s=_shared(self.arrival_s, np.float64),
            receive_s=_shared(self.receive_s, np.float64),
            take_s=take_s,
            done_s=done_s,
            outcome=_shared(self.outcome, np.int8),
            crashed=crashed,
        )


def _shared(column: array, dtype: type[np.generic]) -> np.ndarray:
    """``column`` as a numpy array of ``dtype`` on the same memory where the item sizes agree (a copy elsewhere)."""
    kind = "f" if column.typecode == "d" else "i"
    return np.frombuffer(column, dtype=f"{kind}{column.itemsize}").astype(dtype, copy=False)


def _sorted_until(times_s: np.ndarray, end_s: float) -> np.ndarray:
    """``times_s`` up to ``end_s``, sorted: ``times_s`` itself, sorted in place, where none is later."""
    until = times_s <= end_s
    kept = times_s if until.all() else times_s[until]
    kept.sort()
    return kept
