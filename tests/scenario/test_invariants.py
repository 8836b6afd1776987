"""Invariants in the scenario format: what they hold, how they resolve, and what is refused.

Every mistake together, at its line, is in tests/data/bad/invariants.yaml.
"""

import pytest

import busim
from busim.errors import ScenarioError
from busim.report.files import resolved_scenario_yaml
from busim.scenario import load_scenario
from busim.scenario.loader import parse_yaml, validate
from busim.scenario.schema import INVARIANT_METRICS
from tests.conftest import ROOT, consumer, scenario

INVARIANTS = ROOT / "tests" / "data" / "invariants.yaml"


def test_limits_are_held_in_seconds_and_counts_as_written():
    (no_oversell, few_duplicates, fast_enough) = load_scenario(INVARIANTS).scenario.invariants
    assert (no_oversell.counter, no_oversell.min, no_oversell.max) == ("stock", 0, None)
    assert few_duplicates.max.items() == [("duplicate_effects", 10)]
    assert fast_enough.max.items() == [("latency_p99", 0.25), ("lost_fraction", 0)]


def test_the_resolved_scenario_writes_only_the_bounds_given_and_loads_back_the_same():
    scenario_ = load_scenario(INVARIANTS).scenario
    text = resolved_scenario_yaml(scenario_)
    assert "- name: fast-enough\n  consumer: inventory\n  max:\n    latency_p99: 0.25\n    lost_fraction: 0\n" in text
    assert validate(parse_yaml(text, "resolved.yaml")) == scenario_


def test_an_override_addresses_an_invariant_by_name():
    scenario_ = load_scenario(INVARIANTS, ["invariants.fast-enough.max.latency_p99=100ms"]).scenario
    assert scenario_.invariants[2].max.items() == [("latency_p99", 0.1), ("lost_fraction", 0)]


def test_an_unknown_metric_without_a_near_miss_lists_the_metrics():
    with pytest.raises(ScenarioError) as error:
        load_scenario(INVARIANTS, ["invariants.few-duplicates.max.speed=1"])
    assert str(error.value) == (
        "--set invariants.few-duplicates.max.speed=1: invariants[1].max.speed: unknown metric 'speed' "
        f"(metrics: {', '.join(INVARIANT_METRICS)})"
    )


def test_a_count_limit_takes_no_unit_and_a_counter_bound_fits_in_64_bits():
    too_low = f"invariants.no-oversell.min={-(2**63) - 1}"
    with pytest.raises(ScenarioError) as error:
        load_scenario(INVARIANTS, ["invariants.few-duplicates.max.duplicate_effects=10ms", too_low])
    assert [str(problem) for problem in error.value.problems] == [
        f"--set {too_low}: invariants[0].min: integers must lie within ±2^63 (got -9223372036854775809)",
        "--set invariants.few-duplicates.max.duplicate_effects=10ms: invariants[1].max.duplicate_effects: "
        "expected a number >= 0 (got '10ms')",
    ]


def test_a_scenario_built_in_code_is_cross_checked_before_it_runs():
    built = scenario(
        [consumer(state={"stock": {}})],
        invariants=[{"name": "kept", "counter": "stok", "consumer": "worker", "min": 0}],
    )
    with pytest.raises(ScenarioError) as error:
        busim.simulate(built)
    assert str(error.value) == (
        "<scenario>: invariants[0].counter: counter 'stok' is not declared in worker's state; "
        "did you mean 'stock'? (declared: stock)"
    )
