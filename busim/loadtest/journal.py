"""Journals: what each process of a real run logs, one fixed-size binary entry per happening.

Every consumer process appends to its own file with one ``write`` per entry
(``O_APPEND``), or per batch of entries of one step (the deliveries of one
receive), so that an entry is in the kernel's hands before the next step of
the work: a SIGKILL loses nothing that was logged. After the run the
journals are read back as numpy structured arrays and merged into the
engine's record (:mod:`busim.loadtest.record`).

Times are ``time.monotonic()`` as each process read it: the machine's clock,
shared by every process of the run. The merge subtracts the run's start.
"""

from __future__ import annotations

import enum
import os
import struct
from pathlib import Path

import numpy as np

# kind, outcome, instance, incarnation, flag, delivery sequence, copy, broker attempt, time
ENTRY = np.dtype(
    [
        ("kind", "u1"),
        ("outcome", "u1"),
        ("instance", "<u2"),
        ("incarnation", "<u2"),
        ("flag", "<u2"),
        ("seq", "<u4"),
        ("copy", "<i8"),
        ("attempt", "<i4"),
        ("t", "<f8"),
    ]
)


class Kind(enum.IntEnum):
    """What an entry records."""

    READY = 1  # the instance's consumer is attached to the broker and takes deliveries
    RECEIVED = 2  # a delivery reached the instance (flag: the broker's redelivered flag)
    TAKEN = 3  # a worker started processing it
    DONE = 4  # processing ended (outcome: busim.engine.records.Outcome)
    ACKED = 5  # the ack was handed to the broker's client
    CRASHING = 6  # the instance kills itself now, after this delivery's effects and before its ack
    RETRIED = 7  # an optimistic write met a changed version: the delivery is processed again
    LOST_UPDATE = 8  # a read-modify-write overwrote a change made since its read
    STARTED = 9  # the supervisor started the instance's process
    KILLED = 10  # the supervisor killed the instance's process (SIGKILL), or found it dead
    MISSED_CRASH = 12  # a crash scheduled at a time found its instance down
    ACK_REFUSED = 13  # the broker refused the ack (JetStream: the message was acked by another delivery)
    EMITTED = 14  # the broker confirmed an emitted copy (copy: its number; flag 1: the broker refused it)
    EMITTING = 15  # the processing publishes an emitted copy now (copy: its number; attempt: the emits entry)


# Supervisor entries carry the instance in ``seq`` and the incarnation in ``flag``; a missed crash whose
# instance was to be drawn, with none alive, carries NO_INSTANCE.
NO_INSTANCE = 2**32 - 1


_PACK = struct.Struct("<BBHHHIqid")  # the layout of ENTRY


class Journal:
    """An append-only journal file; each :meth:`log` is one ``write`` system call."""

    def __init__(self, path: Path, instance: int = 0, incarnation: int = 0) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._instance = instance
        self._incarnation = incarnation

    def log(
        self, kind: Kind, t: float, seq: int = 0, copy: int = -1, attempt: int = 0, outcome: int = 0, flag: int = 0
    ) -> None:
        os.write(self._fd, _PACK.pack(kind, outcome, self._instance, self._incarnation, flag, seq, copy, attempt, t))

    def log_all(self, kind: Kind, t: float, rows: list[tuple[int, int, int, int]]) -> None:
        """One entry of ``kind`` at ``t`` per (seq, copy, attempt, flag) row, in one ``write``."""
        pack, instance, incarnation = _PACK.pack, self._instance, self._incarnation
        data = b"".join(
            [pack(kind, 0, instance, incarnation, flag, seq, copy, attempt, t) for seq, copy, attempt, flag in rows]
        )
        os.write(self._fd, data)

    def close(self) -> None:
        os.close(self._fd)


def read_journals(folder: Path, pattern: str = "*.journal") -> np.ndarray:
    """Every entry of the journal files in ``folder`` that match ``pattern``, in time order (ties in file order)."""
    parts = []
    for path in sorted(folder.glob(pattern)):
        data = path.read_bytes()
        whole = len(data) - len(data) % ENTRY.itemsize  # a torn last entry cannot happen with one write, but be safe
        parts.append(np.frombuffer(data[:whole], dtype=ENTRY))
    entries = np.concatenate(parts) if parts else np.empty(0, dtype=ENTRY)
    return entries[np.argsort(entries["t"], kind="stable")]
