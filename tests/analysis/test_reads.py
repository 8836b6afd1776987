"""Stale reads of a consumer's read model, against hand-worked cases and queueing theory.

With one key, no broker latency and Poisson publishing, a read sees a stale
value exactly when a message is in the system (published, its processing not
yet completed). Reads arrive as a Poisson process of their own, so by PASTA
the fraction of stale reads is the fraction of time the system is not empty:
rho on an M/M/1 queue, 1 - P0 on an M/M/c queue.

Tolerances, derived from the spread over seeds 0..9 (100 s, 2 s warm-up,
reads at 500/s, service mean 1 ms), not from this test's seed:
- the stale-read fraction's standard deviation was 0.0059 (M/M/1, rho 0.5),
  0.0067 (M/M/1, rho 0.8), 0.0054 (M/M/2) and 0.0048 (M/M/4) at 800/s:
  0.027 is 4 of the largest. Busy periods make nearby reads agree, so the
  spread is about twice that of 50,000 independent reads.
- the runs with 1, 2 and 4 workers share their arrivals, service times and
  reads (common random numbers), so their differences vary far less: the
  standard deviation of the drop from 1 to 2 workers was 0.0026, and from
  2 to 4 workers 0.0009. The tolerances, 0.011 and 0.004, are over 4 of them.
"""

import functools
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import busim
from busim.analysis.latency import LatencySummary
from busim.analysis.reads import stale_reads
from busim.errors import RunTooLargeError, ScenarioError
from tests.conftest import SCENARIOS, consumer, scenario

ONE_KEY = {"Job": {"fields": {"item": {"constant": 1}}}}
COUNTED = {"state": {"seen": {}}, "effects": [{"counter": "seen", "key": "item", "add": 1}]}


# ---------------------------------------------------------------- the rule, on arrays
def test_a_read_is_stale_from_the_oldest_event_not_yet_applied():
    # Key 0: published at 1, 2, 3 s; applied at 5 s, 2.5 s (overtaking the first) and never.
    # Key 1: published at 1 s, applied at 1.5 s.
    key = np.array([0, 0, 0, 1])
    publish_s = np.array([1.0, 2.0, 3.0, 1.0])
    applied_s = np.array([5.0, 2.5, np.inf, 1.5])
    reads = [
        (0, 0.5, math.nan),  # nothing published yet: fresh
        (0, 1.0, math.nan),  # published at the very instant of the read: not before it
        (0, 1.5, 0.5),  # waiting for the first
        (0, 2.75, 1.75),  # the second was applied at 2.5 s, the first still missing since 1 s
        (0, 5.0, 2.0),  # the first was applied at this instant; the third missing since 3 s
        (0, 9.0, 6.0),  # the third never comes
        (1, 1.25, 0.25),
        (1, 1.5, math.nan),  # applied at this instant: fresh
        (2, 4.0, math.nan),  # a key nobody writes
    ]
    read_key, read_s, expected = (np.array(column) for column in zip(*reads))
    ages_s = stale_reads(key, publish_s, applied_s, read_key, read_s).oldest_s
    np.testing.assert_array_equal(ages_s, expected)


def definition(key, publish_s, applied_s, read_key, read_s, which=np.min):
    """The rule read by read: the oldest (or, with ``np.max``, newest) write of the key published before the
    read and applied after it."""
    ages_s = []
    for k, t in zip(read_key, read_s):
        missing = (key == k) & (publish_s < t) & (applied_s > t)
        ages_s.append(t - which(publish_s[missing]) if missing.any() else math.nan)
    return np.array(ages_s)


# Times on a coarse grid, so that reads, publishes and applications often fall on the same instant.
instants = st.integers(0, 12).map(float)
writes = st.lists(
    st.tuples(st.integers(0, 3), instants, st.one_of(instants, st.just(math.inf))), min_size=0, max_size=30
)
reads = st.lists(st.tuples(st.integers(0, 4), instants), min_size=0, max_size=30)


def columns(rows, dtypes):
    """Rows of tuples as one array per column, empty arrays of the right types for no rows."""
    return [np.array([row[index] for row in rows], dtype=dtype) for index, dtype in enumerate(dtypes)]


def test_the_newest_missing_age_on_the_worked_example():
    # The writes of the example above.
    key = np.array([0, 0, 0, 1])
    publish_s = np.array([1.0, 2.0, 3.0, 1.0])
    applied_s = np.array([5.0, 2.5, np.inf, 1.5])
    read_key = np.array([0, 0, 0, 0, 0, 1])
    read_s = np.array([0.5, 1.5, 2.25, 2.75, 5.0, 1.25])
    # 1.5 s: misses the 1 s write; 2.25 s: the 2 s one is newest; 2.75 s: the 2 s one is applied, so 1 s;
    # 5 s: only the 3 s write is missing.
    expected = np.array([math.nan, 0.5, 0.25, 1.75, 2.0, 0.25])
    np.testing.assert_array_equal(stale_reads(key, publish_s, applied_s, read_key, read_s).newest_s, expected)


@given(writes, reads)
def test_ages_follow_the_rule_read_by_read(write_rows, read_rows):
    key, publish_s, applied_s = columns(write_rows, (np.int64, float, float))
    read_key, read_s = columns(read_rows, (np.int64, float))
    ages = stale_reads(key, publish_s, applied_s, read_key, read_s)
    np.testing.assert_array_equal(ages.oldest_s, definition(key, publish_s, applied_s, read_key, read_s))
    np.testing.assert_array_equal(ages.newest_s, definition(key, publish_s, applied_s, read_key, read_s, np.max))


# ---------------------------------------------------------------- a run worked out by hand
def crash_and_loss(warmup_s: float = 0.0):
    """Key 1: Jobs at 0, 1/8 and 2/8 s; key 2: one Audit at 5 s. Each processing takes 1 s on one
    instance with two workers, and crashes the instance after its effects (at-most-once, back after 0.5 s):

    - job 0 runs 0 to 1 s and is applied; its crash loses job 1, in processing since 1/8 s;
    - job 2 waits for the restart at 1.5 s and is applied at 2.5 s;
    - the audit runs 5 to 6 s and is applied.
    """
    return busim.simulate(
        scenario(
            seed=7,
            warmup=warmup_s,
            events={"Job": {"fields": {"item": {"constant": 1}}}, "Audit": {"fields": {"item": {"constant": 2}}}},
            publishers=[
                {"name": "jobs", "event": "Job", "arrivals": "uniform", "rate": 8, "count": 3},
                {"name": "audits", "event": "Audit", "arrivals": "uniform", "rate": [{"at": 5, "rate": 8}], "count": 1},
            ],
            broker={"delivery": "at-most-once"},
            consumers=[
                consumer(
                    subscribes=["Job", "Audit"],
                    concurrency=2,
                    processing_time="1s",
                    crash={"probability": 1.0, "restart_after": 0.5},
                    queries={"rate": 20, "counter": "seen"},
                    **COUNTED,
                )
            ],
        )
    )


def hand_worked_ages(read_s, read_key):
    """Key 1: job 0 is missing until 1 s, then job 1 (published at 1/8 s) forever. Key 2: the audit, 5 to 6 s."""
    key_1 = np.where(read_s < 1, read_s, read_s - 1 / 8)
    key_2 = np.where((read_s > 5) & (read_s < 6), read_s - 5, np.nan)
    return np.where(read_key == 1, key_1, key_2)


@pytest.mark.parametrize("warmup_s", [0.0, 2.0])
def test_a_lost_message_leaves_every_later_read_of_its_key_stale(warmup_s):
    result = crash_and_loss(warmup_s)
    group = result.record.groups[0]
    deliveries = group.deliveries
    # The run went as worked out above.
    np.testing.assert_array_equal(result.record.messages.publish_s[group.message_ids], [0, 1 / 8, 2 / 8, 5])
    np.testing.assert_array_equal(deliveries.message, [0, 1, 2, 3])
    np.testing.assert_array_equal(deliveries.done_s[[0, 2, 3]], [1, 2.5, 6])
    np.testing.assert_array_equal(group.lost_message, [1])

    reads = result.record.reads["worker"]
    counted = reads.at_s >= warmup_s
    read_s = reads.at_s[counted]
    expected = hand_worked_ages(read_s, np.array([1, 1, 1, 2])[reads.message[counted]])
    worker = result.summary.consumers["worker"]
    stale = expected[~np.isnan(expected)]
    assert (worker.reads, worker.stale_reads) == (read_s.size, stale.size)
    assert worker.stale_read_fraction == stale.size / read_s.size
    assert worker.staleness_age_s == LatencySummary.of(stale)
    # Under this seed, of 196 reads (20/s over 10 s) 148 read key 1, every one stale, and 3 of the 48 of key 2
    # came between 5 and 6 s; 157 came after the 2 s warm-up.
    assert (worker.reads, worker.stale_reads) == ((196, 151) if warmup_s == 0 else (157, 120))
    # Reads of key 1 from 1 s on miss the lost message, which is never applied; the others miss a message
    # applied later (message 0, applied at 1 s; message 3, published at 5 s and applied at 6 s).
    key = np.array([1, 1, 1, 2])[reads.message[counted]]
    never = int(np.count_nonzero(~np.isnan(expected) & (key == 1) & (read_s >= 1)))
    assert worker.by_reason["stale_reads"] == {"not_yet_applied": stale.size - never, "never_applied": never}
    assert never > 0


# ---------------------------------------------------------------- queueing theory
DURATION_S = 100
WARMUP_S = 2
READS_PER_S = 500
SERVICE_MEAN_S = 0.001


@functools.cache
def stale_fraction(rate_per_s: float, workers: int) -> float:
    """The stale-read fraction of an M/M/c queue on one key (one instance with ``workers`` workers)."""
    result = busim.simulate(
        scenario(
            seed=2024,
            duration=DURATION_S,
            warmup=WARMUP_S,
            events=ONE_KEY,
            publishers=[{"name": "source", "event": "Job", "arrivals": "poisson", "rate": rate_per_s}],
            consumers=[
                consumer(
                    concurrency=workers,
                    processing_time={"exponential": {"mean": SERVICE_MEAN_S}},
                    queries={"rate": READS_PER_S, "counter": "seen"},
                    **COUNTED,
                )
            ],
        )
    )
    worker = result.summary.consumers["worker"]
    assert worker.reads == pytest.approx(READS_PER_S * (DURATION_S - WARMUP_S), rel=0.02)
    return worker.stale_read_fraction


def not_empty(workers: int, offered_load: float) -> float:
    """1 - P0: the probability that an M/M/c queue with offered load a = lambda / mu holds a message."""
    waiting = offered_load**workers / math.factorial(workers) / (1 - offered_load / workers)
    return 1 - 1 / (sum(offered_load**k / math.factorial(k) for k in range(workers)) + waiting)


@pytest.mark.parametrize("rho", [0.5, 0.8])
def test_on_an_mm1_queue_the_stale_read_fraction_is_the_utilisation(rho):
    assert not_empty(1, rho) == pytest.approx(rho)
    assert stale_fraction(rho / SERVICE_MEAN_S, 1) == pytest.approx(rho, abs=0.027)


def test_on_an_mmc_queue_more_workers_leave_fewer_reads_stale_as_erlang_predicts():
    fractions = [stale_fraction(800, workers) for workers in (1, 2, 4)]
    theory = [not_empty(workers, 0.8) for workers in (1, 2, 4)]
    assert theory == pytest.approx([0.8, 0.5714, 0.5509], abs=1e-4)
    assert fractions[0] > fractions[1] > fractions[2]
    assert fractions == pytest.approx(theory, abs=0.027)
    assert fractions[0] - fractions[1] == pytest.approx(theory[0] - theory[1], abs=0.011)
    assert fractions[1] - fractions[2] == pytest.approx(theory[1] - theory[2], abs=0.004)


# ---------------------------------------------------------------- determinism and independence
def queried(queries=None):
    return scenario(
        publishers=[{"name": "source", "event": "Job", "arrivals": "poisson", "rate": 50}],
        broker={"latency": {"exponential": {"mean": "20ms"}}, "duplication": 0.05},
        consumers=[
            consumer(processing_time={"exponential": {"mean": "15ms"}}, queries=queries, **COUNTED),
            consumer(name="other", processing_time={"exponential": {"mean": "5ms"}}, crash={"probability": 0.05}),
        ],
    )


def test_the_same_seed_gives_the_same_reads():
    subject = queried({"rate": 100, "counter": "seen"})
    first, second = busim.simulate(subject), busim.simulate(subject)
    mine, again = first.record.reads["worker"], second.record.reads["worker"]
    assert len(mine) > 0
    np.testing.assert_array_equal(mine.at_s, again.at_s)
    np.testing.assert_array_equal(mine.message, again.message)
    assert first.summary.consumers["worker"] == second.summary.consumers["worker"]
    other_seed = busim.simulate(subject, seed=2).record.reads["worker"]
    assert not np.array_equal(mine.at_s[:10], other_seed.at_s[:10])


def test_queries_leave_every_other_draw_and_figure_as_it_was():
    without, with_reads = busim.simulate(queried()), busim.simulate(queried({"rate": 100, "counter": "seen"}))
    assert without.record.reads == {}
    np.testing.assert_array_equal(without.record.messages.publish_s, with_reads.record.messages.publish_s)
    for before, after in zip(without.record.groups, with_reads.record.groups):
        for name in ("message", "attempt", "cause", "arrival_s", "take_s", "done_s", "outcome"):
            np.testing.assert_array_equal(getattr(before.deliveries, name), getattr(after.deliveries, name))
    plain, read = without.summary.consumers["worker"], with_reads.summary.consumers["worker"]
    assert (plain.reads, plain.stale_reads, plain.stale_read_fraction, plain.staleness_age_s) == (0, 0, None, None)
    assert read.reads > 0
    no_reads = ("reads", "stale_reads", "stale_read_fraction", "staleness_age_s", "newest_missing_age_s", "by_reason")
    assert {k: v for k, v in vars(plain).items() if k not in no_reads} == {
        k: v for k, v in vars(read).items() if k not in no_reads
    }
    assert plain.by_reason == {**read.by_reason, "stale_reads": {}}
    assert read.by_reason["stale_reads"] == {"not_yet_applied": read.stale_reads}
    assert without.summary.consumers["other"] == with_reads.summary.consumers["other"]


# ---------------------------------------------------------------- bad input
def test_an_override_naming_an_unknown_counter_is_reported_as_the_override():
    assignment = "consumers.inventory.queries={rate: 200/s, counter: stok}"
    with pytest.raises(ScenarioError) as error:
        busim.load(SCENARIOS / "flash-sale.yaml", [assignment])
    assert str(error.value) == (
        f"--set {assignment}: consumers[0].queries.counter: counter 'stok' is not declared in this consumer's "
        "state; did you mean 'stock'? (declared: stock)"
    )


def test_a_run_with_more_reads_than_the_limit_is_refused_before_it_starts():
    subject = scenario(consumers=[consumer(queries={"rate": "1000/s", "counter": "seen"}, **COUNTED)])
    with pytest.raises(RunTooLargeError) as error:
        busim.simulate(subject, max_messages=5_000)
    assert str(error.value) == (
        "test would have its consumers serve about 10,000 reads, more than the limit of 5,000; lower "
        "consumers[].queries.rate, shorten duration, or raise the limit with --max-messages"
    )
