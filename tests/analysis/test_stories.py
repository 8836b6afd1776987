"""Every message's story, checked against hand-worked runs and against the summary's counts."""

import numpy as np
import pytest

import busim
from busim.analysis.stories import Anomaly, Happening, Stories, What
from busim.engine.records import DeliveryCause, LossReason, Outcome
from tests.conftest import FLASH_SALE_RUNS, ROOT, consumer, scenario, simulated

DATA = ROOT / "tests" / "data"
CRASH_BEFORE_ACK = DATA / "crash-before-ack.yaml"
CRASH_AND_LOSS = DATA / "crash-and-loss.yaml"


def crashing_before_every_ack():
    """Four messages, at 0, 0.25, 0.5 and 0.75 s; every processing crashes after its effects, before its ack.

    Times are exact in binary: 1/64 s latency, 1/16 s processing, a 1 s ack
    timeout, and two attempts before the dead-letter queue.
    """
    return busim.simulate(busim.load(CRASH_BEFORE_ACK))


def crashing_and_losing():
    """100 messages; 30% of attempts lost in transit, 40% of processings crash before the ack, 3 attempts each."""
    return busim.simulate(busim.load(CRASH_AND_LOSS))


def test_a_story_follows_each_crash_before_ack_to_the_dead_letter_queue():
    # Message 1, published at 0.25 s: attempt 1 lands 1/64 s later and crashes after 1/16 s; the ack timeout
    # brings attempt 2 back 1 s after attempt 1 was received, which crashes too; 1 s later the limit of
    # 2 attempts sends it to the dead-letter queue.
    story = Stories(crashing_before_every_ack().record).story(1)
    assert (story.message, story.event, story.publisher, story.fields, story.published_s) == (
        1,
        "Job",
        "source",
        (("orderId", 2),),
        0.25,
    )
    first, second = 0.25 + 1 / 64, 0.25 + 1 + 2 / 64
    assert story.happenings == (
        Happening(0.25, "source", None, What.PUBLISHED),
        Happening(first, "worker", None, What.ARRIVED, DeliveryCause.FIRST, 1),
        Happening(first, "worker", 0, What.RECEIVED, attempt=1),
        Happening(first, "worker", 0, What.STARTED, attempt=1),
        Happening(first + 1 / 16, "worker", 0, What.APPLIED, attempt=1),
        Happening(first + 1 / 16, "worker", 0, What.CRASHED, attempt=1),
        Happening(second, "worker", None, What.ARRIVED, DeliveryCause.CRASH_BEFORE_ACK, 2),
        Happening(second, "worker", 0, What.RECEIVED, attempt=2),
        Happening(second, "worker", 0, What.STARTED, attempt=2),
        Happening(second + 1 / 16, "worker", 0, What.APPLIED, attempt=2),
        Happening(second + 1 / 16, "worker", 0, What.CRASHED, attempt=2),
        Happening(second + 1, "worker", None, What.DEAD_LETTERED, DeliveryCause.CRASH_BEFORE_ACK),
    )
    assert story.anomalies == (
        Anomaly(
            "duplicate_effect", "worker", second + 1 / 16, causes=(DeliveryCause.CRASH_BEFORE_ACK,), applications=2
        ),
        Anomaly(
            "dead_lettered",
            "worker",
            second + 1,
            causes=(DeliveryCause.CRASH_BEFORE_ACK,),
            attempts=2,
            processed=True,
        ),
    )


@FLASH_SALE_RUNS  # the worker that simulates the flash sale for test_charts
def test_the_messages_with_an_anomaly_are_the_ones_the_summary_counts():
    result = simulated("flash-sale.yaml")
    stories = Stories(result.record)
    inventory = result.summary.consumers["inventory"]
    assert stories.counts() == {
        "inventory": {
            # 8 messages applied twice each: the summary's 8 applications beyond the first.
            "duplicate_effect": inventory.duplicate_effects,
            "lost": inventory.lost,
            "dead_lettered": inventory.dead_lettered,
            "stuck_pending": inventory.stuck_pending,
            "wrongly_rejected": inventory.wrongly_rejected,
            "wrongly_accepted": inventory.wrongly_accepted,
            "out_of_order": inventory.out_of_order,
            "failed": 0,  # its processing never fails
        }
    }
    assert stories.counts()["inventory"]["wrongly_rejected"] == 22
    assert stories.with_anomaly("duplicate_effect").tolist() == [80, 7452, 7656, 11954, 19176, 31531, 33760, 40520]
    story = stories.story(80)
    assert [anomaly.causes for anomaly in story.anomalies] == [(DeliveryCause.CRASH_BEFORE_ACK,)]


def test_the_worst_come_first():
    result = crashing_and_losing()
    stories = Stories(result.record)
    group = result.record.groups[0]
    deliveries = group.deliveries
    applications = np.bincount(deliveries.message[deliveries.outcome == Outcome.APPLIED], minlength=100)
    listed = stories.with_anomaly("duplicate_effect")
    # Most applications first, then by id: 4 messages applied 3 times, then the 27 applied twice.
    assert listed.tolist() == sorted(np.flatnonzero(applications > 1).tolist(), key=lambda m: (-applications[m], m))
    assert listed[:5].tolist() == [8, 16, 20, 26, 0]
    # Dead-lettered without ever being processed comes before dead-lettered after processing.
    dead = stories.with_anomaly("dead_lettered", "worker")
    assert dead[:3].tolist() == [69, 80, 0]
    assert group.fates().processed[dead].tolist() == [False, False] + [True] * 18


def test_a_lost_message_says_why():
    result = busim.simulate(scenario(broker={"delivery": "at-most-once", "loss": 0.2}))
    stories = Stories(result.record)
    lost = stories.with_anomaly("lost")
    assert lost.size == result.summary.consumers["worker"].lost > 0
    story = stories.story(int(lost[0]))
    assert [(anomaly.kind, anomaly.causes) for anomaly in story.anomalies] == [("lost", (LossReason.TRANSIT_LOSS,))]
    assert story.happenings[-1].what == What.LOST


def test_an_out_of_order_message_names_the_later_message_that_overtook_it():
    stories = Stories(crashing_and_losing().record)
    message = int(stories.with_anomaly("out_of_order")[0])
    (anomaly,) = [anomaly for anomaly in stories.story(message).anomalies if anomaly.kind == "out_of_order"]
    overtaking = stories.story(anomaly.overtaken_by)
    # Published after it, with the same key, and processed first.
    assert anomaly.overtaken_by > message
    assert dict(overtaking.fields)["item"] == dict(stories.story(message).fields)["item"]
    assert anomaly.overtaken_s < anomaly.time_s


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda stories: stories.story(4), "no message 4: the run published messages 0 to 3"),
        (
            lambda stories: stories.with_anomaly("late"),
            "unknown anomaly 'late' (anomalies: duplicate_effect, lost, dead_lettered, stuck_pending, "
            "wrongly_rejected, wrongly_accepted, out_of_order, failed)",
        ),
        (lambda stories: stories.story(0, ["billing"]), "unknown consumer 'billing' (consumers: worker)"),
    ],
)
def test_a_bad_question_is_refused(call, message):
    stories = Stories(crashing_before_every_ack().record)
    with pytest.raises(ValueError) as error:
        call(stories)
    assert str(error.value) == message


def test_a_story_can_keep_to_one_consumer_and_a_listing_counts_a_message_once():
    crash = {"probability": 1.0, "restart_after": 0}
    effects = {"state": {"done": {}}, "effects": [{"counter": "done", "key": "item", "add": 1}]}
    result = busim.simulate(
        scenario(
            broker={"ack_timeout": 1, "max_deliveries": 2},
            consumers=[consumer(name="billing", crash=crash, **effects), consumer(name="shipping", **effects)],
        )
    )
    stories = Stories(result.record)
    assert stories.with_anomaly("duplicate_effect").tolist() == list(range(100))
    assert stories.with_anomaly("duplicate_effect", "shipping").tolist() == []
    both = stories.story(7)
    assert {happening.service for happening in both.happenings} == {"source", "billing", "shipping"}
    shipping = stories.story(7, ["shipping"])
    assert {happening.service for happening in shipping.happenings} == {"source", "shipping"}
    assert shipping.anomalies == ()
    assert [anomaly.consumer for anomaly in both.anomalies] == ["billing", "billing"]


def test_a_story_follows_an_event_down_its_chain_and_names_the_twin_a_crash_emitted():
    # A naive inventory crashes after reserving and before its ack: the order comes back, is reserved again
    # and emits a second StockReserved, a twin of the first; payment charges for both.
    from tests.engine.test_chains import pipeline

    result = busim.simulate(
        pipeline(inventory={"crash": {"probability": 0.05, "restart_after": 0}}, broker={"ack_timeout": "1s"})
    )
    stories = Stories(result.record)
    messages = result.record.messages
    charged_twice = stories.with_anomaly("duplicate_effect", "payment")
    repeats = [
        anomaly.applications - 1
        for message in charged_twice.tolist()
        for anomaly in stories.story(message, ["payment"]).anomalies
        if anomaly.kind == "duplicate_effect"
    ]
    assert sum(repeats) == result.summary.consumers["payment"].duplicate_effects > 0
    reservation = int(charged_twice[0])
    order = int(messages.cause[reservation])
    twin = [int(m) for m in np.flatnonzero(messages.cause == order) if m != reservation]
    assert twin
    story = stories.story(reservation)
    assert (story.event, story.publisher, story.caused_by) == ("StockReserved", "inventory", order)
    (anomaly,) = [a for a in story.anomalies if a.kind == "duplicate_effect"]
    assert (anomaly.consumer, anomaly.applications, set(anomaly.twins), anomaly.causes) == (
        "payment",
        1 + len(twin),
        set(twin),
        (),
    )
    upstream = stories.story(order, ["inventory"])
    emitted = [happening.other for happening in upstream.happenings if happening.what == What.EMITTED]
    assert emitted == sorted([reservation, *twin])
    assert [happening.what for happening in upstream.happenings].count(What.CRASHED) == len(twin)
