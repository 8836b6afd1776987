"""Journals: entries read back as logged, across the file's growth, after a SIGKILL, and never a torn one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from busim.loadtest import journal
from busim.loadtest.journal import ENTRY, Journal, Kind, entries_of, read_journals
from busim.loadtest.runner import _Tail


def logged(path: Path, count: int, instance: int = 3, incarnation: int = 2) -> list[tuple]:
    """Log ``count`` distinct entries (every field varied) to ``path``; what each should read back as."""
    expected = []
    log = Journal(path, instance, incarnation)
    for index in range(count):
        kind = Kind.RECEIVED if index % 2 else Kind.DONE
        fields = (index, 2**40 + index, index % 7, index % 4, index % 3, 0.5 + index)
        seq, copy, attempt, outcome, flag, t = fields
        log.log(kind, t, seq, copy, attempt, outcome=outcome, flag=flag)
        expected.append((kind, outcome, instance, incarnation, flag, seq, copy, attempt, t))
    return expected, log


def as_tuples(entries: np.ndarray) -> list[tuple]:
    return [tuple(entry.item()) for entry in entries]


@pytest.mark.parametrize("growth_entries", [128, 129 * 32])
def test_entries_read_back_as_logged_across_the_growth_of_the_file(tmp_path, monkeypatch, growth_entries):
    # 128 entries fill a page exactly; 129 * 32 starts every later map inside a page of the file.
    monkeypatch.setattr(journal, "JOURNAL_GROWTH", growth_entries * ENTRY.itemsize)
    path = tmp_path / "a.journal"
    expected, log = logged(path, 10 * growth_entries + 5)
    assert as_tuples(entries_of(path.read_bytes())) == expected  # while open: zeros follow the entries
    log.close()
    assert path.stat().st_size == len(expected) * ENTRY.itemsize  # closing cut the zeros off
    assert as_tuples(read_journals(tmp_path)) == expected


def test_a_reopened_journal_appends_after_its_entries(tmp_path):
    path = tmp_path / "a.journal"
    first, log = logged(path, 3)
    log.close()
    reopened = Journal(path, 3, 2)
    reopened.log(Kind.ACKED, 9.0, 1, 2)
    reopened.close()
    assert as_tuples(entries_of(path.read_bytes())) == [*first, (Kind.ACKED, 0, 3, 2, 0, 1, 2, 0, 9.0)]


def test_a_process_killed_right_after_logging_leaves_every_entry(tmp_path):
    path = tmp_path / "killed.journal"
    program = (
        "import os, signal, sys\n"
        "from busim.loadtest.journal import Journal, Kind\n"
        "log = Journal(sys.argv[1])\n"
        "for seq in range(40_000):\n"
        "    log.log(Kind.TAKEN, float(seq), seq, seq)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    killed = subprocess.run([sys.executable, "-c", program, str(path)], timeout=60)
    assert killed.returncode == -9
    entries = entries_of(path.read_bytes())
    assert path.stat().st_size > entries.nbytes  # the file was never cut: zeros follow
    assert entries.size == 40_000
    assert np.array_equal(entries["seq"], np.arange(40_000)) and np.array_equal(entries["t"], np.arange(40_000.0))


def test_an_entry_whose_kind_was_not_stored_is_not_read(tmp_path):
    path = tmp_path / "torn.journal"
    expected, log = logged(path, 2)
    log.close()
    whole = path.read_bytes()
    torn = bytearray(whole[ENTRY.itemsize :])  # the second entry, all but its kind stored
    torn[0] = 0
    assert as_tuples(entries_of(whole[: ENTRY.itemsize] + bytes(torn) + whole[:5])) == expected[:1]


def test_the_live_figures_read_each_entry_once_as_journals_grow(tmp_path):
    tail = _Tail(tmp_path)
    log = Journal(tmp_path / "g0.i1.n0.journal", 1, 0)
    received = done = redelivered = 0
    for step in range(6):
        for seq in range(1000 * step + 1):  # up to twice what the live figures read at a time
            log.log(Kind.RECEIVED, 1.0, seq, seq, flag=seq % 2)
            received += 1
            redelivered += seq % 2
            if seq % 3:
                log.log(Kind.DONE, 2.0, seq, seq)
                log.log(Kind.ACKED, 2.0, seq, seq)
                done += 1
        tail.read()
        assert (tail.received, tail.done, tail.holding[0, 1, 0]) == (received, done, received - done)
    assert tail.redeliveries == redelivered
