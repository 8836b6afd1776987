"""The merge of a real run's journals into the engine's record, on journals written by hand: exact answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from busim.analysis.real import copies_sent, generator_figures
from busim.analysis.summary import summarize
from busim.engine.records import DeliveryCause, Outcome
from busim.loadtest.emissions import EmissionPlan, emitted_copy
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


def test_emitted_messages_take_their_planned_fields_not_fresh_ones(tmp_path: Path):
    # The worker processes job 2, then 0, then 1, then 0 again (its ack timed out): four emitted Done messages.
    # A simulation would number them 1, 2, 3, 4 and draw four marks afresh; in a real run each carries the
    # stamp and mark planned for its cause, which the audit's store applied: 3, 1, 2, then 1 again.
    events = {
        "Job": {"key": "item", "fields": {"item": {"uniform_int": {"low": 1, "high": 5}}}},
        "Done": {
            "fields": {
                "stamp": {"sequence": {"start": 1}},
                "mark": {"uniform_int": {"low": 1, "high": 1_000_000}},
            }
        },
    }
    audit = {
        "name": "audit",
        "subscribes": ["Done"],
        "state": {"seen": {}},
        "effects": [{"counter": "seen", "key": "stamp", "add": 1}],
    }
    jobs = scenario([consumer(emits=[{"event": "Done"}]), audit], duration=0.3, events=events)
    schedule = Schedule.of(jobs)
    assert len(schedule) == 3
    worker = _journal(tmp_path, "g0.i0.n0.journal")
    worker.log(Kind.READY, START - 1)
    emitted = [emitted_copy(0, 0, 0, counter) for counter in range(4)]
    for seq, (copy, attempt) in enumerate([(2, 1), (0, 1), (1, 1), (0, 2)], 1):
        at = START + 0.4 + 0.1 * seq
        worker.log(Kind.RECEIVED, at, seq, copy, attempt, flag=int(attempt > 1))
        worker.log(Kind.TAKEN, at, seq, copy)
        worker.log(Kind.DONE, at + 0.01, seq, copy, outcome=Outcome.APPLIED)
        worker.log(Kind.EMITTING, at + 0.01, seq, emitted[seq - 1], 0)
        worker.log(Kind.EMITTED, at + 0.02, seq, emitted[seq - 1], 0)
        if seq != 2:  # job 0's first processing is never acked: the broker delivers it again
            worker.log(Kind.ACKED, at + 0.02, seq, copy)
    reader = _journal(tmp_path, "g1.i0.n0.journal")
    reader.log(Kind.READY, START - 1)
    for seq, copy in enumerate(emitted, 1):
        at = START + 0.45 + 0.1 * seq
        reader.log(Kind.RECEIVED, at, seq, copy)
        reader.log(Kind.TAKEN, at, seq, copy)
        reader.log(Kind.DONE, at + 0.01, seq, copy, outcome=Outcome.APPLIED)
        reader.log(Kind.ACKED, at + 0.01, seq, copy)
    for journal in (worker, reader):
        journal.close()
    publishing = Publishing(schedule.copy_due_s, schedule.copy_due_s, np.zeros(3, bool))
    groups = {
        "worker": GroupOutcome(read_journals(tmp_path, "g0.*journal"), [], []),
        # The store's counter by the plan's keys (stamps 1, 2, 3): stamp 1 seen twice.
        "audit": GroupOutcome(read_journals(tmp_path, "g1.*journal"), [np.array([2, 1, 1], np.int64)], []),
    }
    record = record_of(jobs, schedule, publishing, groups, START, 1.5, True)
    messages = record.messages
    done = messages.members["Done"]
    assert messages.cause[done].tolist() == [2, 0, 1, 0]
    assert messages.fields["Done"]["stamp"].tolist() == [3, 1, 2, 1]
    planned_marks = EmissionPlan.of(jobs, schedule.messages).messages.fields["Done"]["mark"]  # one per job
    assert messages.fields["Done"]["mark"].tolist() == planned_marks[[2, 0, 1, 0]].tolist()
    audit_record = record.groups[1]
    assert audit_record.counters["seen"].values.tolist() == [2, 1, 1]
    summary = summarize(record).consumers["audit"]
    assert summary.duplicate_effects == 1  # the twin of job 0's Done, with the same stamp
    assert summary.by_reason["duplicate_effects"] == {"upstream_duplicate": 1}
    assert summary.state["seen"].abs_drift == 1


def test_an_interrupted_runs_record_holds_only_the_messages_it_sent_and_the_reference_counts_only_those(
    tmp_path: Path,
):
    counting = consumer(state={"done": {}}, effects=[{"counter": "done", "key": "item", "add": 1}])
    jobs = scenario([counting], duration=0.3)
    whole = Schedule.of(jobs)
    assert len(whole) == 3
    sent = whole.cut(2)  # stopped after two of the three copies
    journal = _journal(tmp_path, "g0.i0.n0.journal")
    journal.log(Kind.READY, START - 1)
    for seq, copy in enumerate((0, 1), 1):
        journal.log(Kind.RECEIVED, START + 0.1 * seq + 0.001, seq, copy)
        journal.log(Kind.TAKEN, START + 0.1 * seq + 0.002, seq, copy)
        journal.log(Kind.DONE, START + 0.1 * seq + 0.003, seq, copy, outcome=Outcome.APPLIED)
        journal.log(Kind.ACKED, START + 0.1 * seq + 0.004, seq, copy)
    journal.close()
    publishing = Publishing(sent.copy_due_s + 0.0005, sent.copy_due_s + 0.001, np.zeros(2, bool))
    items = whole.messages.fields["Job"]["item"]
    keys, codes = np.unique(items, return_inverse=True)
    counters = [np.bincount(codes[:2], minlength=keys.size).astype(np.int64)]  # the store: two jobs applied
    outcome = GroupOutcome(read_journals(tmp_path, "g0.*journal"), counters, [])
    record = record_of(jobs, sent, publishing, {"worker": outcome}, START, 0.5, True)
    assert len(record.messages) == 2
    summary = summarize(record)
    assert [publisher.published for publisher in summary.publishers.values()] == [2]
    worker = summary.consumers["worker"]
    assert worker.subscribed == worker.processed == 2
    assert worker.lost == worker.in_flight_at_end == 0
    assert worker.state["done"].expected_total == worker.state["done"].actual_total == 2
    assert worker.state["done"].abs_drift == 0
    assert summary.violations == ()


def test_the_copies_a_record_holds_are_counted_as_the_run_cut_them_where_a_send_never_started():
    sent_s = np.array([0.1, np.nan, 0.3, np.nan])  # the second copy's send was cancelled before it started
    figures = generator_figures(np.array([0.1, 0.2, 0.3, 0.4]), sent_s, np.zeros(4, bool), 0.0)
    assert (figures.sent, figures.recorded, copies_sent(sent_s)) == (2, 3, 3)
