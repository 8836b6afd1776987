"""Event chains: emitted events, their causal links, per-hop and end-to-end latency, and duplicates downstream."""

from __future__ import annotations

import numpy as np
import pytest

import busim
from busim.errors import ScenarioError
from busim.scenario import load_scenario
from busim.scenario.schema import Scenario
from tests.conftest import ROOT

ORDERS = 100
STOCK = 90


def pipeline(inventory: dict | None = None, broker: dict | None = None, **changes) -> Scenario:
    """Orders 100 ms apart through inventory, payment and shipping; 1 ms broker latency, 2 ms per processing."""
    stock = {"counter": "stock", "key": "sku", "add": -1, "floor": 0}
    data = {
        "name": "pipeline",
        "seed": 3,
        "duration": 10,
        "events": {
            "OrderPlaced": {
                "key": "sku",
                "fields": {"order_id": {"sequence": {}}, "sku": {"constant": 1}},
            },
            "StockReserved": {"key": "order_id", "fields": {"reservation": {"constant": "r"}}},
            "OutOfStock": {},
            "PaymentCaptured": {"key": "order_id"},
        },
        "publishers": [{"name": "order", "event": "OrderPlaced", "arrivals": "uniform", "rate": 10}],
        "broker": {"latency": "1ms", **(broker or {})},
        "consumers": [
            {
                "name": "inventory",
                "subscribes": ["OrderPlaced"],
                "processing_time": "2ms",
                "state": {"stock": {"initial": STOCK}},
                "effects": [stock],
                "emits": [{"event": "StockReserved", "when": "accepted"}, {"event": "OutOfStock", "when": "rejected"}],
                **(inventory or {}),
            },
            {
                "name": "payment",
                "subscribes": ["StockReserved"],
                "processing_time": "2ms",
                "state": {"charged": {}},
                "effects": [{"counter": "charged", "key": "order_id", "add": 1}],
                "emits": [{"event": "PaymentCaptured"}],
            },
            {"name": "shipping", "subscribes": ["PaymentCaptured"], "processing_time": "2ms"},
            {"name": "apology", "subscribes": ["OutOfStock"], "processing_time": "2ms"},
        ],
        **changes,
    }
    return Scenario.model_validate(data)


def test_each_processing_emits_one_message_linked_to_its_cause_with_its_fields():
    result = busim.simulate(pipeline())
    messages = result.record.messages
    reserved = messages.members["StockReserved"]
    inventory = result.summary.consumers["inventory"]
    assert inventory.emitted == {"StockReserved": ORDERS - inventory.rejected, "OutOfStock": inventory.rejected}
    assert inventory.rejected == ORDERS - STOCK
    # Emitted when the processing ended, caused by the order, carrying its fields plus its own.
    causes = messages.cause[reserved]
    assert np.all(messages.event[causes] == messages.event_names.index("OrderPlaced"))
    assert np.allclose(messages.publish_s[reserved], messages.publish_s[causes] + 0.003)
    order_ids = messages.fields["OrderPlaced"]["order_id"][np.searchsorted(messages.members["OrderPlaced"], causes)]
    assert messages.fields["StockReserved"]["order_id"].tolist() == order_ids.tolist()
    assert set(messages.fields["StockReserved"]["reservation"].tolist()) == {"r"}
    # Each capture's cause is a reservation, whose cause is the order.
    assert messages.cause[messages.cause[messages.members["PaymentCaptured"]]].tolist() == causes.tolist()


def test_latency_adds_up_hop_by_hop_along_each_chain():
    summary = busim.simulate(pipeline()).summary
    assert list(summary.chains) == [
        "OrderPlaced > inventory > StockReserved > payment > PaymentCaptured > shipping",
        "OrderPlaced > inventory > OutOfStock > apology",
    ]
    shipped, apologised = summary.chains.values()
    assert (shipped.published, shipped.completed, shipped.duplicate_completions) == (ORDERS, STOCK, 0)
    assert (apologised.published, apologised.completed) == (ORDERS, 10)
    # Nothing waits: each hop is 1 ms in the broker and 2 ms of processing.
    assert [hop.latency_s.max for hop in shipped.hops] == pytest.approx([0.003] * 3)
    assert (shipped.latency_s.p50, shipped.latency_s.max) == pytest.approx((0.009, 0.009))
    assert apologised.latency_s.max == pytest.approx(0.006)
    assert [(hop.event, hop.consumer, hop.messages) for hop in shipped.hops] == [
        ("OrderPlaced", "inventory", 100),
        ("StockReserved", "payment", STOCK),
        ("PaymentCaptured", "shipping", STOCK),
    ]


def test_a_duplicate_processed_by_a_naive_consumer_travels_down_the_chain():
    # Every attempt is duplicated. Inventory applies each order twice, so the 90 in stock go to the
    # first 45 orders, each emitting two reservations for one event (twins). Payment gets each
    # reservation twice from the broker: four charges per order, one of them legitimate.
    summary = busim.simulate(pipeline(broker={"duplication": 1.0})).summary
    inventory, payment = summary.consumers["inventory"], summary.consumers["payment"]
    reserved = STOCK // 2
    assert inventory.duplicate_effects == reserved
    assert inventory.wrongly_rejected == STOCK - reserved
    assert inventory.emitted == {"StockReserved": 2 * reserved, "OutOfStock": 2 * (ORDERS - reserved)}
    assert payment.subscribed == 2 * reserved
    assert payment.duplicate_effects == 3 * reserved
    # Per order: the first twin's first copy is the event; each twin's second copy is a broker duplicate,
    # and the second twin's first copy is the upstream duplicate.
    assert payment.by_reason["duplicate_effects"] == {"broker_duplicate": 2 * reserved, "upstream_duplicate": reserved}
    assert payment.state["charged"].abs_drift == 3 * reserved
    shipped = summary.chains["OrderPlaced > inventory > StockReserved > payment > PaymentCaptured > shipping"]
    assert [hop.duplicates for hop in shipped.hops] == [0, reserved, 3 * reserved]
    assert (shipped.completed, shipped.duplicate_completions) == (reserved, 3 * reserved)


def test_an_idempotent_consumer_stops_duplicates_at_its_door():
    summary = busim.simulate(pipeline(inventory={"idempotency": "dedup"}, broker={"duplication": 1.0})).summary
    assert summary.consumers["inventory"].duplicate_effects == 0
    assert summary.consumers["inventory"].emitted == {"StockReserved": STOCK, "OutOfStock": ORDERS - STOCK}
    assert summary.consumers["payment"].by_reason["duplicate_effects"] == {"broker_duplicate": STOCK}


def refusals(path, text: str) -> list[str]:
    """The problems loading ``text`` from ``path`` reports, each as printed without its file."""
    path.write_text(text)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    return [str(problem).removeprefix(f"{path}:") for problem in caught.value.problems]


def minimal(events: str, consumers: str) -> str:
    """A scenario with these events and consumers, publishing A once a second."""
    return f"name: chains\nduration: 10s\nevents: {events}\npublishers: [{{name: p, event: A, rate: 1/s}}]\n" + (
        f"consumers:\n{consumers}"
    )


def test_emitted_events_must_be_declared_and_chains_must_not_loop(tmp_path):
    text = minimal(
        "{A: {}, B: {}}",
        "  - {name: one, subscribes: [A], emits: [{event: B}]}\n"
        "  - {name: two, subscribes: [B], emits: [{event: A}, {event: Bee}]}\n",
    )
    assert refusals(tmp_path / "loop.yaml", text) == [
        "6:41: consumers[0].emits: event chains loop: one emits B to two, two emits A to one, without end; "
        "drop one of these emits",
        "7:62: consumers[1].emits[1].event: event 'Bee' is not declared under events (declared: A, B)",
    ]


def test_a_misspelt_emitted_event_is_the_only_error_however_far_its_fields_were_to_be_carried(tmp_path):
    text = (ROOT / "scenarios" / "order-pipeline.yaml").read_text()
    typo = text.replace("- {event: StockReserved, when: accepted}", "- {event: StockReserverd, when: accepted}")
    (only,) = refusals(tmp_path / "typo.yaml", typo)
    assert only.startswith("49:17: consumers[0].emits[0].event: event 'StockReserverd' is not declared")


def test_an_event_that_nothing_publishes_or_emits_is_refused_and_one_entry_per_emitted_event(tmp_path):
    text = minimal(
        "{A: {}, B: {}, C: {}}",
        "  - {name: one, subscribes: [A], emits: [{event: B}, {event: B, when: rejected}]}\n"
        "  - {name: two, subscribes: [B, C]}\n",
    )
    assert refusals(tmp_path / "orphan.yaml", text) == [
        "6:62: consumers[0].emits[1].event: B is emitted by an earlier entry too; one entry per event "
        "(when: always emits it after every processing)",
        "7:33: consumers[1].subscribes[1]: nothing produces C: no publisher publishes it and no consumer emits it",
    ]


def test_a_keyless_event_never_emitted_leaves_its_partitioned_consumer_idle():
    # Stock never runs out, so nothing is refused and no OutOfStock is emitted: on Kafka, its consumer's
    # partitions are placed over no message at all.
    data = {
        "name": "never",
        "seed": 1,
        "duration": 5,
        "events": {"OrderPlaced": {"key": "sku", "fields": {"sku": {"uniform_int": {"low": 1, "high": 3}}}},
                   "OutOfStock": {}},
        "publishers": [{"name": "orders", "event": "OrderPlaced", "rate": 10}],
        "broker": {"preset": "kafka"},
        "consumers": [
            {
                "name": "inventory",
                "subscribes": ["OrderPlaced"],
                "state": {"stock": {"initial": 1000}},
                "effects": [{"counter": "stock", "key": "sku", "add": -1, "floor": 0}],
                "emits": [{"event": "OutOfStock", "when": "rejected"}],
            },
            {"name": "apologies", "subscribes": ["OutOfStock"]},
        ],
    }  # fmt: skip
    result = busim.simulate(Scenario.model_validate(data))
    assert result.summary.consumers["inventory"].rejected == 0
    assert result.summary.consumers["apologies"].delivered == 0 and result.messages.emitted == 0
