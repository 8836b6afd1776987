import numpy as np
import pytest

from busim.analysis.consistency import (
    compare_counter,
    out_of_order,
    out_of_order_messages,
    overtaken,
    reference_acceptance,
)
from busim.analysis.latency import LatencySummary
from busim.engine.effects import EffectPlan, encode_keys
from busim.engine.records import CounterState
from busim.scenario.schema import Consumer


def test_out_of_order_counts_messages_overtaken_by_a_later_one_of_the_same_key():
    keys = np.array([0, 0, 0, 1, 1])
    # Key 0: processed in the order 2, 0, 1 -> 0 and 1 were overtaken by 2. Key 1: 3 then 4, in order.
    message = np.array([0, 1, 2, 3, 4])
    processed_s = np.array([2.0, 3.0, 1.0, 1.5, 2.5])
    assert out_of_order(keys, message, processed_s) == 2


def test_out_of_order_ignores_reordering_across_keys():
    keys = np.array([0, 1, 2])
    assert out_of_order(keys, np.array([0, 1, 2]), np.array([3.0, 2.0, 1.0])) == 0


def test_true_and_one_are_different_keys():
    table, codes = encode_keys([np.array([1, True, 1.0, False, 0], dtype=object)])
    assert [type(key) for key in table] == [int, bool, bool, int]
    assert codes[0].tolist() == [0, 1, 0, 2, 3]


def test_keys_of_any_type_get_dense_codes():
    table, codes = encode_keys([np.array(["b", "a"], dtype=object), np.array(["a", "c"], dtype=object)])
    assert table == ("b", "a", "c")
    assert [c.tolist() for c in codes] == [[0, 1], [1, 2]]
    table, codes = encode_keys([np.array([30, 10]), np.array([20, 10])])
    assert table == (10, 20, 30)
    assert [c.tolist() for c in codes] == [[2, 0], [1, 0]]


def plan_for(effects, quantity, product, initial=3):
    consumer = Consumer.model_validate(
        {"name": "inventory", "subscribes": ["E"], "state": {"stock": {"initial": initial}}, "effects": effects}
    )
    return EffectPlan(consumer, {"quantity": np.array(quantity), "product": np.array(product)})


def test_the_reference_applies_each_message_once_in_publish_order():
    plan = plan_for([{"counter": "stock", "key": "product", "add": "-quantity", "floor": 0}], [2, 2, 1], [7, 7, 7])
    accepted, state = reference_acceptance(plan, 3)
    assert accepted.tolist() == [True, False, True]
    assert state == [[0]]


def test_a_floor_does_not_refuse_an_increase():
    plan = plan_for([{"counter": "stock", "key": "product", "add": "quantity", "floor": 10}], [1], [7], initial=0)
    state = plan.new_state()
    assert plan.apply(state, 0)
    assert state == [[1]]


def test_several_effects_apply_all_or_nothing():
    effects = [
        {"counter": "stock", "key": "product", "add": -1},
        {"counter": "stock", "key": "product", "add": "-quantity", "floor": 0},
    ]
    plan = plan_for(effects, [3], [7])
    state = plan.new_state()
    assert not plan.apply(state, 0)  # 3 - 1 - 3 < 0: neither effect applies
    assert state == [[3]]


def test_counter_comparison_reports_totals_and_the_worst_keys():
    expected = CounterState(keys=(1, 2, 3), values=np.array([5, 5, 5]), initial=5)
    actual = CounterState(keys=(1, 2, 3), values=np.array([5, 2, 6]), initial=5)
    consistency = compare_counter(expected, actual)
    assert (consistency.expected_total, consistency.actual_total) == (15, 13)
    assert (consistency.keys_diverged, consistency.abs_drift) == (2, 4)
    assert [(d.key, d.expected, d.actual) for d in consistency.most_drifted] == [(2, 5, 2), (3, 5, 6)]


def test_latency_summary_uses_exact_percentiles():
    summary = LatencySummary.of(np.arange(1, 1001, dtype=float))
    assert (summary.count, summary.mean, summary.max) == (1000, 500.5, 1000.0)
    assert summary.p50 == pytest.approx(500.5)
    assert summary.p999 == pytest.approx(999.001)
    assert LatencySummary.of(np.empty(0)).p99 is None


def test_counters_past_int64_are_kept_exactly():
    plan = plan_for([{"counter": "stock", "key": "product", "add": 2}], [0], [7], initial=2**63 - 1)
    state = plan.new_state()
    plan.apply(state, 0)
    assert plan.snapshot(state)["stock"].values.tolist() == [2**63 + 1]


def test_out_of_order_messages_names_each_late_message_and_the_one_that_overtook_it():
    keys = np.array([0, 0, 0, 1, 1, 1])
    # Key 0: processed 2, 0, 1 -> 0 and 1 overtaken by 2. Key 1: 5, 3, 4 -> 3 and 4 overtaken by 5.
    message = np.array([0, 1, 2, 3, 4, 5])
    processed_s = np.array([2.0, 3.0, 1.0, 2.0, 3.0, 1.0])
    late, overtaking = out_of_order_messages(keys, message, processed_s)
    assert late.tolist() == [0, 1, 3, 4]
    assert overtaking.tolist() == [2, 2, 5, 5]
    assert out_of_order(keys, message, processed_s) == 4


@pytest.mark.parametrize("seed", range(40))
def test_overtaken_is_the_definition_in_order_or_not(seed):
    # A message is overtaken when a later-published one of its key came strictly earlier. Small random
    # cases, a third of them in order (where the answer comes without sorting), checked pair by pair.
    rng = np.random.default_rng(seed)
    size = int(rng.integers(1, 12))
    keys = rng.integers(0, 3, 20)
    message = np.sort(rng.choice(20, size, replace=False))
    at_s = np.sort(rng.integers(0, 6, size)).astype(float)
    if seed % 3:
        order = rng.permutation(size)
        message, at_s = message[order], at_s[rng.permutation(size)]
    expected = [
        any(keys[other] == keys[mine] and other > mine and at_s[j] < at_s[i] for j, other in enumerate(message))
        for i, mine in enumerate(message)
    ]
    assert overtaken(keys, message, at_s).tolist() == expected
