"""Invariants checked against runs whose figures are known exactly.

The base scenario publishes 100 Job messages evenly at 10/s. Here every Job
carries item 7, so a counter keyed by item has one key, and a consumer that
takes 1 from a stock of 250 per message ends at 150 when each message is
applied exactly once.
"""

import json

import pytest

import busim
from busim.analysis.invariants import METRICS, InvariantOutcome, failed_invariants, invariant_names
from busim.report.files import results_json
from busim.scenario.schema import INVARIANT_METRICS
from tests.conftest import consumer, scenario

ONE_ITEM = {"Job": {"key": "item", "fields": {"item": {"constant": 7}}}}
STOCK = {"state": {"stock": {"initial": 250}}, "effects": [{"counter": "stock", "key": "item", "add": -1}]}
# Every processing crashes after its effects, and the broker delivers each message 3 times:
# a naive consumer applies each message 3 times, 200 duplicate effects in all.
ALWAYS_CRASHING = {"broker": {"ack_timeout": "1s", "max_deliveries": 3}}
CRASH = {"crash": {"probability": 1.0, "restart_after": 0}}


def outcomes_of(invariants, consumers=None, **changes):
    built = scenario(consumers or [consumer(**STOCK)], events=ONE_ITEM, invariants=invariants, **changes)
    return busim.simulate(built).summary.invariants


def test_the_metric_table_measures_every_metric_the_format_accepts():
    assert list(METRICS) == list(INVARIANT_METRICS)


def test_a_counter_minimum_holds_when_every_message_is_applied_once():
    outcomes = outcomes_of([{"name": "no-oversell", "counter": "stock", "min": 0, "max": 250}])
    assert outcomes == (
        InvariantOutcome("no-oversell", "worker.stock", "lowest", "min", 0, 150, True),
        InvariantOutcome("no-oversell", "worker.stock", "highest", "max", 250, 150, True),
    )


def test_a_counter_minimum_fails_when_duplicates_take_the_stock_below_it():
    # 300 applications of -1 to 250.
    outcomes = outcomes_of(
        [{"name": "no-oversell", "counter": "stock", "min": 0}], [consumer(**STOCK, **CRASH)], **ALWAYS_CRASHING
    )
    assert outcomes == (InvariantOutcome("no-oversell", "worker.stock", "lowest", "min", 0, -50, False),)


@pytest.mark.parametrize(
    ("idempotency", "measured", "passed"), [("none", 200, False), ("dedup", 0, True)], ids=["naive", "idempotent"]
)
def test_duplicate_effects_at_most_0_fails_on_a_naive_consumer_that_crashes(idempotency, measured, passed):
    outcomes = outcomes_of(
        [{"name": "exactly-once-effects", "consumer": "worker", "max": {"duplicate_effects": 0}}],
        [consumer(**STOCK, **CRASH, idempotency=idempotency)],
        **ALWAYS_CRASHING,
    )
    assert outcomes == (
        InvariantOutcome("exactly-once-effects", "worker", "duplicate_effects", "max", 0, measured, passed),
    )


def test_a_latency_limit_in_ms_is_checked_in_seconds_against_the_exact_p99():
    # Published every 1/8 s, processed in 1/16 s by an idle worker: every latency is exactly 62.5 ms.
    constant = {
        "publishers": [{"name": "source", "event": "Job", "arrivals": "uniform", "rate": 8}],
        "consumers": [consumer(processing_time="62.5ms")],
    }
    outcomes = outcomes_of(
        [
            {"name": "on-the-limit", "consumer": "worker", "max": {"latency_p99": "62.5ms"}},
            {"name": "fast-enough", "consumer": "worker", "max": {"latency_p99": "62ms"}},
            {"name": "not-too-fast", "consumer": "worker", "min": {"latency_p50": "100ms"}},
        ],
        **constant,
    )
    assert outcomes == (
        InvariantOutcome("on-the-limit", "worker", "latency_p99", "max", 0.0625, 0.0625, True),
        InvariantOutcome("fast-enough", "worker", "latency_p99", "max", 0.062, 0.0625, False),
        InvariantOutcome("not-too-fast", "worker", "latency_p50", "min", 0.1, 0.0625, False),
    )
    assert failed_invariants(outcomes) == ("fast-enough", "not-too-fast")
    assert invariant_names(outcomes) == ("on-the-limit", "fast-enough", "not-too-fast")


def test_a_figure_without_a_value_fails_its_bound_and_fractions_are_of_the_messages_subscribed():
    # Every message lost in transit under at-most-once: no latency to measure.
    outcomes = outcomes_of(
        [
            {
                "name": "kept",
                "consumer": "worker",
                "max": {"lost_fraction": 0.5, "latency_p99": "1s"},
                "min": {"lost": 1},
            }
        ],
        broker={"delivery": "at-most-once", "loss": 1.0},
    )
    assert outcomes == (
        InvariantOutcome("kept", "worker", "lost", "min", 1, 100, True),
        InvariantOutcome("kept", "worker", "latency_p99", "max", 1.0, None, False),
        InvariantOutcome("kept", "worker", "lost_fraction", "max", 0.5, 1.0, False),
    )


def test_a_counter_is_read_from_the_one_consumer_that_keeps_it():
    consumers = [consumer(name="audit"), consumer(**STOCK, name="inventory")]
    outcomes = outcomes_of([{"name": "stocked", "counter": "stock", "max": 100}], consumers)
    assert outcomes == (InvariantOutcome("stocked", "inventory.stock", "highest", "max", 100, 150, False),)


def test_results_json_lists_every_bound_checked():
    built = scenario(
        [consumer(**STOCK)],
        events=ONE_ITEM,
        invariants=[{"name": "exactly-once-effects", "consumer": "worker", "max": {"duplicate_effects": 0}}],
    )
    document = json.loads(results_json(busim.simulate(built)))
    assert document["invariants"] == [
        {
            "name": "exactly-once-effects",
            "subject": "worker",
            "metric": "duplicate_effects",
            "bound": "max",
            "limit": 0,
            "measured": 0,
            "passed": True,
        }
    ]
    assert document["consumers"]["worker"]["state"]["stock"]["lowest"] == 150
    assert document["consumers"]["worker"]["state"]["stock"]["highest"] == 150


def test_a_scenario_without_invariants_checks_none():
    result = busim.simulate(scenario())
    assert result.summary.invariants == ()
    assert result.to_dict()["invariants"] == []


def test_replications_count_the_replications_where_each_bound_held():
    faulty = scenario(
        broker={"latency": {"exponential": {"mean": "5ms"}}, "duplication": 0.05},
        consumers=[consumer(processing_time={"exponential": {"mean": "20ms"}}, crash={"probability": 0.02})],
        invariants=[{"name": "few-duplicates", "consumer": "worker", "max": {"duplicate_effects": 5}}],
    )
    replications = busim.replicate(faulty, replications=4, seed=7)
    measured = [result.summary.consumers["worker"].duplicate_effects for result in replications.results]
    assert measured == [3, 7, 4, 7]
    assert [summary.invariants[0].passed for summary in replications.summaries] == [True, False, True, False]
    (bound,) = replications.to_dict()["invariants"]
    interval = replications.invariant(0)
    assert bound == {
        "name": "few-duplicates",
        "subject": "worker",
        "metric": "duplicate_effects",
        "bound": "max",
        "limit": 5,
        "passed": 2,
        "replications": 4,
        "measured": {"mean": 5.25, "low": interval.low, "high": interval.high},
    }
    assert interval.low < 5.25 < interval.high
