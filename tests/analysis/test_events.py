"""A group's events: where nothing is delivered twice and nothing has a twin, the direct answer is the general one."""

import dataclasses

import numpy as np
import pytest

import busim
from busim.analysis.chains import logical_ids
from busim.analysis.events import GroupEvents, original_rows, twins
from busim.engine.records import DeliveryCause
from tests.conftest import consumer, scenario

EFFECTS = {
    "state": {"stock": {"initial": 10}},  # about 20 orders a key: the floor refuses the later ones
    "effects": [{"counter": "stock", "key": "item", "add": -1, "floor": 0}],
}


def events_both_ways(result: busim.Result) -> tuple[GroupEvents, GroupEvents]:
    """The group's events as :meth:`GroupEvents.of` finds them, and as its general computation does."""
    record = result.record
    group = record.groups[0]
    logical = logical_ids(record.messages)
    return GroupEvents.of(record, group, logical), GroupEvents._any_copies(group, twins(group, logical))


@pytest.mark.parametrize(
    "given",
    [
        {},  # one server, every message processed once
        {
            "instances": 3,
            "concurrency": 2,
            "processing_time": {"exponential": {"mean": "40ms"}},
        },  # overload: a queue left
        # SQS standard queues do not keep order: copies arrive, and are received, out of order.
        {
            "instances": 2,
            "broker": {"preset": "sqs-standard", "duplication": 0, "latency": {"exponential": {"mean": "300ms"}}},
        },
        {"idempotency": "dedup", **EFFECTS},
        EFFECTS,
    ],
    ids=["one-server", "left-queued", "reordered", "dedup", "floor"],
)
@pytest.mark.parametrize("seed", [1, 2])
def test_single_deliveries_give_the_general_answer(given, seed):
    changes = dict(given)
    broker = changes.pop("broker", {})
    run = scenario(consumers=[consumer(**{"processing_time": "5ms", **changes})], broker=broker)
    result = busim.simulate(run, seed=seed)
    deliveries = result.record.groups[0].deliveries
    assert np.unique(deliveries.message).size == len(deliveries) > 0  # the shape the direct answer is for
    direct, general = events_both_ways(result)
    if "effects" in changes:
        assert direct.rejected.any() and direct.applications.any()
    if "broker" in given:
        assert (np.diff(deliveries.message) < 0).any()  # rows not in order of message
    for field in dataclasses.fields(GroupEvents):
        mine, theirs = getattr(direct, field.name), getattr(general, field.name)
        if isinstance(mine, np.ndarray):
            assert mine.dtype == theirs.dtype, field.name
            np.testing.assert_array_equal(mine, theirs, err_msg=field.name)
        else:
            assert mine == theirs, field.name


def test_a_second_delivery_takes_the_general_way():
    crashing = scenario(consumers=[consumer(instances=2, crash={"probability": 0.05, "restart_after": "1s"})])
    result = busim.simulate(crashing, seed=1)
    deliveries = result.record.groups[0].deliveries
    assert np.unique(deliveries.message).size < len(deliveries)  # crashes before the ack redeliver
    direct, general = events_both_ways(result)
    np.testing.assert_array_equal(direct.extra_rows, general.extra_rows)
    assert direct.extra_rows.size > 0


@pytest.mark.parametrize("crashing", [False, True], ids=["one-delivery-each", "redelivered"])
def test_each_message_s_original_is_its_lowest_attempt_then_its_own_copy_then_the_first_received(crashing):
    worker = consumer(instances=2, crash={"probability": 0.05, "restart_after": "1s"} if crashing else None)
    # SQS standard queues keep no order: copies are received out of order of message.
    latency = {"exponential": {"mean": "300ms"}}
    broker = {"preset": "sqs-standard", "duplication": 0.1 if crashing else 0.0, "latency": latency}
    deliveries = busim.simulate(scenario(consumers=[worker], broker=broker), seed=3).record.groups[0].deliveries
    rows = np.arange(len(deliveries))
    rank = {int(DeliveryCause.FIRST): 0, int(DeliveryCause.BROKER_DUPLICATE): 2}
    best: dict[int, tuple] = {}
    for row in rows.tolist():
        key = (int(deliveries.attempt[row]), rank.get(int(deliveries.cause[row]), 1), row)
        message = int(deliveries.message[row])
        best[message] = min(best.get(message, key), key)
    expected = [best[message][2] for message in sorted(best)]
    assert original_rows(deliveries, rows).tolist() == expected
    assert (len(expected) < len(deliveries)) == crashing
