"""A real run publishes the simulation's own schedule: same seed, same messages at the same times."""

from __future__ import annotations

import numpy as np

import busim
from busim.engine.records import DeliveryCause, LossReason
from busim.loadtest.schedule import Schedule
from tests.conftest import SCENARIOS


def test_the_schedule_is_the_simulations_messages_under_the_same_seed():
    scenario = busim.load(SCENARIOS / "flash-sale.yaml", ["broker.outages=[]"])
    simulated = busim.simulate(scenario).record.messages
    schedule = Schedule.of(scenario)
    np.testing.assert_array_equal(schedule.messages.publish_s, simulated.publish_s)
    np.testing.assert_array_equal(
        schedule.messages.fields["OrderPlaced"]["productId"], simulated.fields["OrderPlaced"]["productId"]
    )
    # One copy per message, in due order, each at its publish time.
    assert len(schedule) == len(simulated) == 52_365
    np.testing.assert_array_equal(schedule.copy_message, np.arange(len(simulated)))
    np.testing.assert_array_equal(schedule.copy_due_s, simulated.publish_s)


def test_injected_duplicates_and_losses_are_drawn_under_the_seed_and_labelled():
    scenario = busim.load(
        SCENARIOS / "flash-sale.yaml", ["broker.outages=[]", "broker.duplication=0.01", "broker.loss=0.02"]
    )
    schedule = Schedule.of(scenario)
    again = Schedule.of(scenario)
    np.testing.assert_array_equal(schedule.copy_message, again.copy_message)
    messages = len(schedule.messages)
    twins = np.count_nonzero(schedule.copy_cause == DeliveryCause.INJECTED_DUPLICATE)
    lost = np.count_nonzero(schedule.unsent_reason == LossReason.INJECTED_LOSS)
    # Binomial counts: within 4 standard deviations of their means (52,365 x 0.01 and x 0.02).
    assert abs(twins - 0.01 * 0.98 * messages) < 4 * np.sqrt(0.01 * messages)
    assert abs(lost - 0.02 * messages) < 4 * np.sqrt(0.02 * messages)
    assert len(schedule) == messages - lost + twins
    assert (twins, lost, len(schedule)) == (486, 1013, 51_838)  # exact under the flash sale's seed
    assert np.all(np.diff(schedule.copy_due_s) >= 0)  # in due order
    # A lost message is never sent; a duplicated one twice, at the same time.
    assert not np.isin(schedule.unsent, schedule.copy_message).any()
    duplicated = schedule.copy_message[schedule.copy_cause == DeliveryCause.INJECTED_DUPLICATE]
    assert np.all(np.bincount(schedule.copy_message)[duplicated] == 2)


def test_an_interrupted_runs_part_of_the_schedule_holds_what_its_sent_copies_published():
    scenario = busim.load(
        SCENARIOS / "flash-sale.yaml",
        ["broker.outages=[]", "broker.duplication=0.01", "broker.loss=0.02", "broker.publish_ack_loss=0.01"],
    )
    whole = Schedule.of(scenario)
    sent = len(whole) // 3
    part = whole.cut(sent)
    ids = part.scheduled_id
    # The messages of the sent copies, and those the run left unsent on purpose that fell due before it stopped.
    stopped_s = whole.copy_due_s[sent]
    unsent_before = whole.unsent[whole.messages.publish_s[whole.unsent] < stopped_s]
    np.testing.assert_array_equal(ids, np.union1d(whole.copy_message[:sent], unsent_before))
    assert len(part) == sent and len(part.messages) == ids.size < len(whole.messages)
    np.testing.assert_array_equal(ids[part.copy_message], whole.copy_message[:sent])
    np.testing.assert_array_equal(part.copy_cause, whole.copy_cause[:sent])
    np.testing.assert_array_equal(ids[part.unsent], unsent_before)
    assert np.count_nonzero(part.unsent_reason == LossReason.INJECTED_LOSS) > 0
    np.testing.assert_array_equal(part.messages.publish_s, whole.messages.publish_s[ids])
    for event, members in whole.messages.members.items():
        kept = np.isin(members, ids)
        np.testing.assert_array_equal(ids[part.messages.members[event]], members[kept])
        for name, values in whole.messages.fields[event].items():
            np.testing.assert_array_equal(part.messages.fields[event][name], values[kept])
    # Only the resends that went out: each a sent copy caused by a lost publish ack.
    resent = np.isin(whole.copy_cause[:sent], (DeliveryCause.PRODUCER_RETRY, DeliveryCause.OUTBOX_RELAY))
    assert 0 < part.messages.resend_message.size == np.count_nonzero(resent)
    np.testing.assert_array_equal(part.copy_resend >= 0, resent)
    np.testing.assert_array_equal(
        ids[part.messages.resend_message[part.copy_resend[resent]]], whole.copy_message[:sent][resent]
    )
    assert part.whole is whole.messages and whole.cut(len(whole)) is whole


def test_a_cut_keeps_each_messages_schedule_id_where_outbox_relays_fall_due_after_the_stop():
    scenario = busim.load(
        SCENARIOS / "order-pipeline.yaml",
        ["publishers.order.outbox=true", "publishers.order.crash.probability=0.01", "broker.loss=0.02"],
    )
    whole = Schedule.of(scenario)
    sent = len(whole) // 3
    part = whole.cut(sent)
    count = len(part.messages)
    # A prefix of the schedule's messages: each keeps its id, as the workers and the broker's payloads know it.
    np.testing.assert_array_equal(part.scheduled_id, np.arange(count))
    np.testing.assert_array_equal(part.copy_message, whole.copy_message[:sent])
    np.testing.assert_array_equal(part.messages.publish_s, whole.messages.publish_s[:count])
    stopped_s = whole.copy_due_s[sent]
    assert count == np.count_nonzero(whole.messages.publish_s < stopped_s)
    # Messages whose publisher crashed before sending them, published before the stop by the outbox relay
    # due after it: not yet published, not lost.
    went_out = np.zeros(count, dtype=bool)
    went_out[whole.copy_message[:sent]] = True
    crashed = whole.messages.publisher_crashed[:count] & ~whole.messages.failed[:count]
    lost = np.isin(np.arange(count), whole.unsent)  # by the injected loss
    pending = np.flatnonzero(crashed & ~went_out & ~lost)
    assert np.all(whole.messages.accept_s[pending] > stopped_s)
    np.testing.assert_array_equal(part.unpublished, pending)
    np.testing.assert_array_equal(part.unsent, whole.unsent[whole.unsent < count])
    assert not np.isin(part.unpublished, part.unsent).any()
    accounted = np.union1d(np.flatnonzero(went_out), np.union1d(part.unsent, pending))
    np.testing.assert_array_equal(accounted, np.arange(count))
    assert (count, part.unpublished.size, part.unsent.size) == (15_183, 7, 313)  # exact under the seed
