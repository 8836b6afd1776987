"""Journals: what each process of a real run logs, one fixed-size binary entry per happening.

Every consumer process appends to its own file through a shared memory map
(:class:`Journal`), so that an entry is in the kernel's hands before the
next step of the work: a SIGKILL loses nothing that was logged. After the run the
journals are read back as numpy structured arrays and merged into the
engine's record (:mod:`busim.loadtest.record`).

Times are ``time.monotonic()`` as each process read it: the machine's clock,
shared by every process of the run. The merge subtracts the run's start.
"""

from __future__ import annotations

import enum
import mmap
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


_AFTER_KIND = struct.Struct("<BHHHIqid")  # the layout of ENTRY after its first field, the kind
JOURNAL_GROWTH = 32_768 * ENTRY.itemsize  # the file grows by this much (1 MiB) whenever its map is full


class Journal:
    """An append-only journal file, written through a shared memory map: no system call per entry.

    A stored entry is in the file's pages, which belong to the kernel and
    outlive the process, however it dies: SIGKILL loses nothing logged. The
    file grows a megabyte at a time, so that a killed process leaves zeros
    after its last entry; each entry's kind, never zero, is stored last, so
    that the entries are those before the first zero kind
    (:func:`entries_of`). :meth:`close` cuts the zeros off.
    """

    def __init__(self, path: Path, instance: int = 0, incarnation: int = 0) -> None:
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        self._instance = instance
        self._incarnation = incarnation
        self._end = len(entries_of(os.pread(self._fd, os.fstat(self._fd).st_size, 0))) * ENTRY.itemsize
        self._map: mmap.mmap | None = None
        self._mapped_from = self._at = self._end  # the map's first byte in the file; the next entry's

    def log(
        self, kind: Kind, t: float, seq: int = 0, copy: int = -1, attempt: int = 0, outcome: int = 0, flag: int = 0
    ) -> None:
        if self._map is None or self._at - self._mapped_from == len(self._map):
            self._grow()
        assert self._map is not None
        at = self._at - self._mapped_from
        _AFTER_KIND.pack_into(
            self._map, at + 1, outcome, self._instance, self._incarnation, flag, seq, copy, attempt, t
        )
        self._map[at] = kind  # last: an entry whose kind is stored is whole
        self._at += ENTRY.itemsize

    def log_all(self, kind: Kind, t: float, rows: list[tuple[int, int, int, int]]) -> None:
        """One entry of ``kind`` at ``t`` per (seq, copy, attempt, flag) row."""
        log = self.log
        for seq, copy, attempt, flag in rows:
            log(kind, t, seq, copy, attempt, flag=flag)

    def _grow(self) -> None:
        """Map the next stretch of the file, past every entry logged, enlarging the file to hold it."""
        self._unmap()
        os.ftruncate(self._fd, self._at + JOURNAL_GROWTH)
        # A map starts at a multiple of the allocation granularity; the entries before ``_at`` stay as they are.
        self._mapped_from = self._at - self._at % mmap.ALLOCATIONGRANULARITY
        self._map = mmap.mmap(self._fd, self._at + JOURNAL_GROWTH - self._mapped_from, offset=self._mapped_from)

    def _unmap(self) -> None:
        if self._map is not None:
            self._map.close()
            self._map = None

    def close(self) -> None:
        """Cut the file after its last entry and close it."""
        self._unmap()
        os.ftruncate(self._fd, self._at)
        os.close(self._fd)


def entries_of(data: bytes) -> np.ndarray:
    """The entries at the start of a journal file's ``data``: those before the first zero kind, or a torn end."""
    entries = np.frombuffer(data, dtype=ENTRY, count=len(data) // ENTRY.itemsize)
    unwritten = np.flatnonzero(entries["kind"] == 0)
    return entries[: unwritten[0]] if unwritten.size else entries


def read_journals(folder: Path, pattern: str = "*.journal") -> np.ndarray:
    """Every entry of the journal files in ``folder`` that match ``pattern``, in time order (ties in file order)."""
    parts = []
    for path in sorted(folder.glob(pattern)):
        parts.append(entries_of(path.read_bytes()))
    entries = np.concatenate(parts) if parts else np.empty(0, dtype=ENTRY)
    return entries[np.argsort(entries["t"], kind="stable")]
