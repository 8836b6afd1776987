"""The merge of a real run's journals into the engine's record, on journals written by hand: exact answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from busim.engine.records import DeliveryCause, Outcome
from busim.loadtest.journal import Journal, Kind, read_journals
from busim.loadtest.record import GroupOutcome, Publishing, record_of
from busim.loadtest.schedule import Schedule
from tests.conftest import consumer, scenario

START = 1000.0  # the run's clock origin, in time.monotonic() seconds


def _three_jobs():
    # Three Job messages at 0.1, 0.2 and 0.3 s (uniform, 10/s for 0.3 s), one instance, one worker, crashing.
    counting = consumer(
        crash={"after_messages": 1, "restart_after": "1s"},
        state={"done": {}},
        effects=[{"counter": "done", "key": "item", "add": 1}],
    )
    return scenario([counting], duration=0.3)


def _journal(folder: Path, name: str, instance: int = 0, incarnation: int = 0) -> Journal:
    return Journal(folder / name, instance, incarnation)


def test_a_crash_after_processing_sends_the_processed_and_the_prefetched_back_with_their_causes(tmp_path: Path):
    jobs = _three_jobs()
    schedule = Schedule.of(jobs)
    assert len(schedule) == 3
    first = _journal(tmp_path, "g0.i0.n0.journal")
    first.log(Kind.READY, START - 1)
    for seq, copy in enumerate((0, 1, 2), 1):  # all three held at once: a prefetch
        first.log(Kind.RECEIVED, START + 0.1 + 0.001 * seq, seq, copy)
    first.log(Kind.TAKEN, START + 0.102, 1, 0)
    first.log(Kind.DONE, START + 0.105, 1, 0, outcome=Outcome.APPLIED)
    first.log(Kind.CRASHING, START + 0.105, 1, 0)  # killed itself: its 1st processing, before the ack
    supervisor = _journal(tmp_path, "g0.supervisor.journal")
    supervisor.log(Kind.KILLED, START + 0.106, 0, flag=0)
    second = _journal(tmp_path, "g0.i0.n1.journal", incarnation=1)
    second.log(Kind.READY, START + 1.5)
    for seq, copy in enumerate((0, 1, 2), 1):
        second.log(Kind.RECEIVED, START + 1.5 + 0.01 * seq, seq, copy, flag=1)
        second.log(Kind.TAKEN, START + 1.6 + 0.01 * seq, seq, copy)
        second.log(Kind.DONE, START + 1.605 + 0.01 * seq, seq, copy, outcome=Outcome.APPLIED)
        second.log(Kind.ACKED, START + 1.606 + 0.01 * seq, seq, copy)
    for journal in (first, supervisor, second):
        journal.close()
    publishing = Publishing(
        sent_s=schedule.copy_due_s + 0.0005, confirmed_s=schedule.copy_due_s + 0.001, refused=np.zeros(3, bool)
    )
    keys, codes = np.unique(schedule.messages.fields["Job"]["item"], return_inverse=True)
    applied = np.bincount(np.r_[codes, codes[0]], minlength=keys.size)  # the first message's effect twice
    counters = [applied.astype(np.int64)]
    outcome = GroupOutcome(read_journals(tmp_path, "g0.*journal"), counters, [])
    record = record_of(jobs, schedule, publishing, {"worker": outcome}, START, 1.7, True)
    group = record.groups[0]
    deliveries = group.deliveries
    assert deliveries.message.tolist() == [0, 1, 2, 0, 1, 2]
    assert deliveries.attempt.tolist() == [1, 1, 1, 2, 2, 2]
    assert deliveries.cause.tolist() == [
        DeliveryCause.FIRST,
        DeliveryCause.FIRST,
        DeliveryCause.FIRST,
        DeliveryCause.CRASH_BEFORE_ACK,  # processed, not acked
        DeliveryCause.PREFETCHED,  # received, never started
        DeliveryCause.PREFETCHED,
    ]
    assert deliveries.outcome.tolist() == [Outcome.APPLIED, Outcome.ABORTED, Outcome.ABORTED] + [Outcome.APPLIED] * 3
    assert deliveries.crashed.tolist() == [True, False, False, False, False, False]
    np.testing.assert_allclose(deliveries.done_s[1:3], [0.105, 0.105])  # aborted at the crash
    np.testing.assert_allclose(deliveries.arrival_s[3:], [0.105] * 3)  # back in the queue at the crash
    np.testing.assert_allclose(group.crash_s, [0.105])
    np.testing.assert_allclose(group.recovery_s, [1.5 - 0.105])  # until the next incarnation attached
    assert group.missed_crash_s.size == 0  # the scheduled crash (after 1 message) happened
    assert group.counters["done"].values.sum() == 4  # three messages, one applied twice
    assert group.counters["done"].values.tolist() == applied.tolist()


def test_a_redelivery_after_an_ack_timeout_keeps_its_cause_when_the_slow_holder_is_killed_later(tmp_path: Path):
    jobs = scenario([consumer(instances=2, crash={"at": "2s", "instance": 0})], duration=0.1)
    schedule = Schedule.of(jobs)
    assert len(schedule) == 1
    slow = _journal(tmp_path, "g0.i0.n0.journal")
    slow.log(Kind.READY, START - 1)
    slow.log(Kind.RECEIVED, START + 0.1, 1, 0)
    slow.log(Kind.TAKEN, START + 0.1, 1, 0)  # still processing when the ack wait runs out
    other = _journal(tmp_path, "g0.i1.n0.journal", instance=1)
    other.log(Kind.READY, START - 1)
    other.log(Kind.RECEIVED, START + 1.1, 1, 0, attempt=2, flag=1)
    other.log(Kind.TAKEN, START + 1.1, 1, 0)
    other.log(Kind.DONE, START + 1.2, 1, 0, outcome=Outcome.APPLIED)
    other.log(Kind.ACKED, START + 1.2, 1, 0)
    supervisor = _journal(tmp_path, "g0.supervisor.journal")
    supervisor.log(Kind.KILLED, START + 2.0, 0, flag=0)  # crash.at: the slow instance, whatever it holds
    for journal in (slow, other, supervisor):
        journal.close()
    publishing = Publishing(schedule.copy_due_s, schedule.copy_due_s, np.zeros(1, bool))
    outcome = GroupOutcome(read_journals(tmp_path, "g0.*journal"), [], [])
    group = record_of(jobs, schedule, publishing, {"worker": outcome}, START, 2.5, True).groups[0]
    deliveries = group.deliveries
    assert deliveries.cause.tolist() == [DeliveryCause.FIRST, DeliveryCause.ACK_TIMEOUT]
    assert deliveries.outcome.tolist() == [Outcome.ABORTED, Outcome.APPLIED]
    np.testing.assert_allclose(deliveries.done_s, [2.0, 1.2])
    np.testing.assert_allclose(group.crash_s, [2.0])
    assert group.crash_instance.tolist() == [0]
    assert group.recovery_s.tolist() == [0.5]  # no later incarnation attached before the run ended at 2.5 s


def test_a_redelivery_whose_first_delivery_the_killed_instance_never_logged_counts_by_the_brokers_flag(
    tmp_path: Path,
):
    jobs = _three_jobs()
    schedule = Schedule.of(jobs)
    first = _journal(tmp_path, "g0.i0.n0.journal")
    first.log(Kind.READY, START - 1)
    first.log(Kind.RECEIVED, START + 0.101, 1, 0)
    first.log(Kind.TAKEN, START + 0.101, 1, 0)
    first.log(Kind.DONE, START + 0.105, 1, 0, outcome=Outcome.APPLIED)
    first.log(Kind.CRASHING, START + 0.105, 1, 0)  # copy 1 was on its way to it: the broker counts it delivered
    second = _journal(tmp_path, "g0.i0.n1.journal", incarnation=1)
    second.log(Kind.READY, START + 1.5)
    for seq, copy in enumerate((0, 1, 2), 1):
        second.log(Kind.RECEIVED, START + 1.5 + 0.01 * seq, seq, copy, flag=int(copy < 2))
        second.log(Kind.DONE, START + 1.6 + 0.01 * seq, seq, copy, outcome=Outcome.APPLIED)
        second.log(Kind.ACKED, START + 1.6 + 0.01 * seq, seq, copy)
    for journal in (first, second):
        journal.close()
    publishing = Publishing(schedule.copy_due_s, schedule.copy_due_s, np.zeros(3, bool))
    keys = np.unique(schedule.messages.fields["Job"]["item"])
    outcome = GroupOutcome(read_journals(tmp_path, "g0.*journal"), [np.zeros(keys.size, np.int64)], [])
    deliveries = record_of(jobs, schedule, publishing, {"worker": outcome}, START, 1.7, True).groups[0].deliveries
    assert deliveries.message.tolist() == [0, 0, 1, 2]
    assert deliveries.attempt.tolist() == [1, 2, 2, 1]
    assert deliveries.cause.tolist() == [
        DeliveryCause.FIRST,
        DeliveryCause.CRASH_BEFORE_ACK,
        DeliveryCause.PREFETCHED,  # never seen before its redelivery: the broker's flag says it was one
        DeliveryCause.FIRST,
    ]
