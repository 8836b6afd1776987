"""Per-message columns are held in 32 bits where every value fits, and stay exact where one does not."""

import numpy as np
import pytest

import busim
from busim.engine.sampling import narrowed
from tests.conftest import consumer, scenario

INT32_MAX = np.iinfo(np.int32).max


@pytest.mark.parametrize(
    ("values", "dtype"),
    [
        (np.array([-(2**31), 0, INT32_MAX], np.int64), np.int32),
        (np.array([0, INT32_MAX + 1], np.int64), np.int64),
        (np.array([-(2**31) - 1, 0], np.int64), np.int64),
        (np.array([], np.int64), np.int64),
        (np.array([1.5, 2.5]), np.float64),
    ],
    ids=["fits", "too-high", "too-low", "empty", "floats"],
)
def test_narrowed_keeps_every_value(values, dtype):
    kept = narrowed(values)
    assert kept.dtype == dtype
    np.testing.assert_array_equal(kept, values)


def test_payload_fields_take_32_bits_where_they_fit():
    fields = {"small": {"uniform_int": {"low": 1, "high": 5}}, "big": {"constant": 2**40}}
    run = scenario(events={"Job": {"fields": fields}})
    messages = busim.simulate(run).record.messages
    assert messages.fields["Job"]["small"].dtype == np.int32
    assert messages.fields["Job"]["big"].dtype == np.int64
    assert messages.cause.dtype == np.int32
    deliveries = busim.simulate(run).record.groups[0].deliveries
    assert {deliveries.message.dtype, deliveries.attempt.dtype, deliveries.instance.dtype} == {np.dtype(np.int32)}


@pytest.mark.parametrize("add", [3 * 10**9, "size", "-size"], ids=["constant", "field", "negated-field"])
def test_effects_beyond_32_bits_add_up_exactly(add):
    # 100 messages, each adding 3e9: counters pass 2^31 at once and 2^38 in all.
    fields = {"item": {"constant": 1}, "size": {"constant": 3 * 10**9}}
    worker = consumer(state={"total": {"initial": 0}}, effects=[{"counter": "total", "key": "item", "add": add}])
    result = busim.simulate(scenario(consumers=[worker], events={"Job": {"key": "item", "fields": fields}}))
    state = result.summary.consumers["worker"].state["total"]
    sign = -1 if add == "-size" else 1
    assert state.actual_total == state.expected_total == sign * 100 * 3 * 10**9
