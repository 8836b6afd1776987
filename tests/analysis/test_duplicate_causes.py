"""A duplicate is blamed on why the extra copy existed, whichever copy finished first.

When processing outlasts the ack wait, the broker redelivers, and the
redelivery can finish before the slow original. The original is still the
broker's first attempt and the redelivery the extra one: its duplicate effect
is an ack timeout, never a broker duplicate.
"""

from collections import Counter

import numpy as np
import pytest

import busim
from busim.analysis.chains import logical_ids
from busim.analysis.events import GroupEvents
from busim.analysis.stories import Stories
from busim.engine.records import DeliveryCause, Outcome, RunRecord
from tests.conftest import ROOT, consumer, scenario

SLOW_PAST_ACK_WAIT = ROOT / "tests" / "data" / "slow-past-ack-wait.yaml"
SLOW = {"lognormal": {"median": "300ms", "sigma": 1}}  # about 1 in 9 processings take over 1 s


def overtaken_originals(record: RunRecord) -> list[int]:
    """Messages whose first attempt applied its effects after another copy of the message had: the first group's."""
    group = record.groups[0]
    deliveries = group.deliveries
    found = []
    for message in np.unique(deliveries.message).tolist():
        applied = np.flatnonzero((deliveries.message == message) & (deliveries.outcome == Outcome.APPLIED))
        original = applied[(deliveries.attempt[applied] == 1) & (deliveries.cause[applied] == DeliveryCause.FIRST)]
        if original.size and deliveries.done_s[original[0]] > deliveries.done_s[applied].min():
            found.append(int(group.message_ids[message]))
    return found


@pytest.mark.parametrize(
    "broker",
    [
        {"preset": "nats-jetstream", "ack_wait": "1s", "duplication": 0},
        # The preset duplicates 1 in 10,000 by default: switched off, so that every duplicate is a timeout.
        {"preset": "sqs-standard", "visibility_timeout": "1s", "duplication": 0},
    ],
    ids=["nats-ack-wait", "sqs-visibility-timeout"],
)
def test_without_broker_duplication_every_duplicate_is_an_ack_timeout(broker):
    result = busim.simulate(scenario(broker=broker, consumers=[consumer(instances=20, processing_time=SLOW)]))
    worker = result.summary.consumers["worker"]
    # The case at issue happens: redeliveries that finished before their slow original.
    assert overtaken_originals(result.record)
    # No duplication, no crash, no loss: the ack or visibility timeout is the only fault there is.
    assert worker.by_reason["redelivered"] == {"ack_timeout": worker.redelivered}
    assert worker.by_reason["duplicate_deliveries"] == {"ack_timeout": worker.duplicate_deliveries}
    assert worker.by_reason["duplicate_effects"] == {"ack_timeout": worker.duplicate_effects}
    assert worker.duplicate_effects > 0


def test_real_broker_duplicates_are_still_broker_duplicates():
    # No timeout to outlast: every extra copy is one the broker made, including those processed first.
    result = busim.simulate(
        scenario(
            seed=2,
            broker={"duplication": 0.2},
            consumers=[consumer(instances=4, processing_time={"exponential": {"mean": "50ms"}})],
        )
    )
    worker = result.summary.consumers["worker"]
    assert overtaken_originals(result.record)
    assert worker.by_reason["duplicate_deliveries"] == {"broker_duplicate": worker.duplicate_deliveries}
    assert worker.by_reason["duplicate_effects"] == {"broker_duplicate": worker.duplicate_effects}
    assert worker.duplicate_effects > 0


def test_with_both_faults_the_reasons_add_up_and_the_stories_name_the_same_ones():
    result = busim.simulate(
        scenario(
            seed=3,
            broker={"preset": "nats-jetstream", "ack_wait": "1s", "duplication": 0.1},
            consumers=[consumer(instances=20, processing_time=SLOW)],
        )
    )
    worker = result.summary.consumers["worker"]
    effects, deliveries = worker.by_reason["duplicate_effects"], worker.by_reason["duplicate_deliveries"]
    assert set(effects) == set(deliveries) == {"ack_timeout", "broker_duplicate"}
    assert sum(effects.values()) == worker.duplicate_effects
    assert sum(deliveries.values()) == worker.duplicate_deliveries
    stories = Stories(result.record)
    told = Counter(
        cause.name.lower()
        for message in stories.with_anomaly("duplicate_effect").tolist()
        for anomaly in stories.story(message).anomalies
        if anomaly.kind == "duplicate_effect"
        for cause in anomaly.causes
    )
    assert told == effects


def test_the_story_of_a_message_whose_redelivery_finished_first_names_the_ack_wait():
    result = busim.simulate(busim.load(SLOW_PAST_ACK_WAIT))
    stories = Stories(result.record)
    overtaken = overtaken_originals(result.record)
    assert overtaken
    deliveries = result.record.groups[0].deliveries
    for message in overtaken:
        (anomaly,) = [anomaly for anomaly in stories.story(message).anomalies if anomaly.kind == "duplicate_effect"]
        assert anomaly.causes == (DeliveryCause.ACK_TIMEOUT,) * (anomaly.applications - 1)
        # It showed when the effects were applied the second time: when the slow original ended.
        applied = np.flatnonzero((deliveries.message == message) & (deliveries.outcome == Outcome.APPLIED))
        assert anomaly.time_s == np.sort(deliveries.done_s[applied])[1]


def test_a_repeat_lands_with_the_original_while_the_extra_is_the_redelivery():
    # What a wrongly rejected message's cause is timed by (when a key had taken an effect twice) and what a
    # duplicate effect is blamed on (the extra copy) are different rows when the redelivery finished first.
    result = busim.simulate(busim.load(SLOW_PAST_ACK_WAIT))
    group = result.record.groups[0]
    events = GroupEvents.of(result.record, group, logical_ids(result.record.messages))
    deliveries = group.deliveries
    overtaken = group.selection.local(np.array(overtaken_originals(result.record)))
    overtaken = overtaken[events.applications[overtaken] == 2]  # one repeat each: the original and its redelivery
    assert overtaken.size
    landed_last = events.repeat_rows[np.isin(deliveries.message[events.repeat_rows], overtaken)]
    extra = events.extra_rows[np.isin(deliveries.message[events.extra_rows], overtaken)]
    assert landed_last.size == extra.size == overtaken.size
    assert np.all(deliveries.cause[landed_last] == DeliveryCause.FIRST)
    assert np.all(deliveries.cause[extra] == DeliveryCause.ACK_TIMEOUT)
    assert np.all(deliveries.done_s[extra] < deliveries.done_s[landed_last])
    assert events.repeat_rows.size == events.extra_rows.size == result.summary.consumers["worker"].duplicate_effects
