"""Real runs of a chain: a consumer emits events that another consumes, as a simulation of it does."""

from __future__ import annotations

import secrets

import numpy as np
import pytest

import busim
from busim.engine.records import Outcome, RunRecord
from busim.loadtest.emissions import EmissionPlan
from busim.loadtest.schedule import Schedule
from busim.scenario.schema import Scenario
from tests.loadtest.runs import left_behind

CHAIN = {
    "name": "chain",
    "seed": 9,
    "duration": 2,
    "drain_timeout": 20,
    "events": {
        "OrderPlaced": {
            "key": "sku",
            "fields": {
                "order_id": {"sequence": {"start": 1}},
                "sku": {"uniform_int": {"low": 1, "high": 5}},
                "quantity": {"uniform_int": {"low": 1, "high": 3}},
                "amount": {"uniform_int": {"low": 10, "high": 200}},
            },
        },
        # Carries the order's fields, and numbers reservations of its own (a field no effect uses).
        "StockReserved": {"key": "order_id", "fields": {"reservation": {"sequence": {"start": 1}}}},
        "OutOfStock": {"key": "order_id"},
    },
    "publishers": [{"name": "order", "event": "OrderPlaced", "arrivals": "uniform", "rate": 100}],
    "broker": {"preset": "redis-streams"},
    "consumers": [
        {
            "name": "inventory",
            "subscribes": ["OrderPlaced"],
            "processing_time": "2ms",
            "state": {"stock": {"initial": 40}},
            "effects": [{"counter": "stock", "key": "sku", "add": "-quantity", "floor": 0}],
            "emits": [{"event": "StockReserved", "when": "accepted"}, {"event": "OutOfStock", "when": "rejected"}],
        },
        {
            "name": "payment",
            "subscribes": ["StockReserved"],
            "instances": 2,
            "processing_time": "3ms",
            "state": {"charged": {}},
            "effects": [{"counter": "charged", "key": "order_id", "add": "amount"}],
        },
    ],
}


def test_a_chain_runs_for_real_with_the_outcomes_its_simulation_has(redis_url):
    # One inventory instance takes the orders in publish order, so its floor refuses the same orders as in
    # the simulation; payment charges exactly the orders inventory reserved, from the fields they carry.
    scenario = Scenario.model_validate(CHAIN | {"name": f"chain-{redis_url[-1]}-{id(CHAIN) % 10_000}"})
    real = busim.load_test(scenario, redis_url)
    assert left_behind(real.real.run_id, scenario) == []
    simulated = busim.simulate(scenario)
    for name in ("inventory", "payment"):
        ran, modelled = real.summary.consumers[name], simulated.summary.consumers[name]
        assert (ran.subscribed, ran.processed, ran.rejected) == (
            modelled.subscribed,
            modelled.processed,
            modelled.rejected,
        )
        assert ran.duplicate_effects == 0 and ran.lost == 0
    assert real.messages.emitted == simulated.messages.emitted == 200
    assert real.summary.consumers["payment"].subscribed == 98
    assert real.summary.consumers["payment"].state["charged"].abs_drift == 0
    assert real.summary.consumers["inventory"].state["stock"].abs_drift == 0
    assert real.drained and real.consistent
    messages = real.record.messages
    reservations = messages.fields["StockReserved"]["reservation"]
    # Numbered as planned, one number per order whether or not it was reserved, not as emitted: each
    # reservation has its order's number, with gaps where an order was refused.
    order_ids = messages.fields["OrderPlaced"]["order_id"][messages.cause[messages.members["StockReserved"]]]
    assert reservations.tolist() == order_ids.tolist()
    assert reservations.tolist() != list(range(1, 99))


# A chain of three stages whose emitted events declare fields of their own that their consumers key and add by:
# each payment is numbered and charged a fee as it is taken, each receipt numbered as it is sent.
PAYMENTS = {
    "name": "payments",
    "seed": 5,
    "duration": 1,
    "drain_timeout": 20,
    "events": {
        "OrderPlaced": {
            "key": "customer",
            "fields": {
                "customer": {"uniform_int": {"low": 1, "high": 2}},
                "amount": {"uniform_int": {"low": 10, "high": 200}},
            },
        },
        "PaymentTaken": {
            "key": "payment_no",
            "fields": {
                "payment_no": {"sequence": {"start": 1001}},
                "fee": {"uniform_int": {"low": 1, "high": 1_000_000}},
            },
        },
        "ReceiptSent": {"key": "receipt_no", "fields": {"receipt_no": {"sequence": {"start": 1}}}},
    },
    "publishers": [{"name": "orders", "event": "OrderPlaced", "arrivals": "uniform", "rate": 100}],
    "consumers": [
        {
            # One instance takes the orders in publish order: its floor refuses the same orders in every run,
            # so payments are taken for some orders only.
            "name": "payment",
            "subscribes": ["OrderPlaced"],
            "processing_time": "1ms",
            "state": {"credit": {"initial": 3000}},
            "effects": [{"counter": "credit", "key": "customer", "add": "-amount", "floor": 0}],
            "emits": [{"event": "PaymentTaken"}],
        },
        {
            "name": "ledger",
            "subscribes": ["PaymentTaken"],
            "processing_time": "1ms",
            "state": {"fees": {}},
            "effects": [{"counter": "fees", "key": "payment_no", "add": "fee"}],
            "emits": [{"event": "ReceiptSent"}],
        },
        {
            "name": "archive",
            "subscribes": ["ReceiptSent"],
            "state": {"receipts": {}, "paid": {}},
            "effects": [
                {"counter": "receipts", "key": "receipt_no", "add": 1},
                {"counter": "paid", "key": "payment_no", "add": "fee"},  # carried from the payment
            ],
        },
    ],
}
# The payment instance is killed after its 10th processing, after its effects and its emission and before its ack.
_CRASHING = {"crash": {"after_messages": [10], "instance": 0, "restart_after": "0.5s"}}
_PRESETS = [("redis-streams", "redis_url"), ("rabbitmq", "amqp_url"), ("nats-jetstream", "nats_url")]


def _payments(preset: str, **consumers: dict) -> Scenario:
    """:data:`PAYMENTS` on ``preset``, named for one run, each named consumer updated with its keys."""
    data = PAYMENTS | {"name": f"payments-{secrets.token_hex(3)}", "broker": {"preset": preset}}
    data["consumers"] = [consumer | consumers.get(consumer["name"], {}) for consumer in PAYMENTS["consumers"]]
    return Scenario.model_validate(data)


def _assert_fields_as_planned(record: RunRecord) -> None:
    """Every emitted message's own fields are those the run's plan drew for its cause, and its carried fields
    its cause's.

    The plan numbers and draws one PaymentTaken per order and one ReceiptSent per planned PaymentTaken, so
    order ``i``'s payment is number ``1001 + i`` and its receipt number ``1 + i``.
    """
    messages = record.messages
    planned = EmissionPlan.of(record.scenario, Schedule.of(record.scenario).messages).messages
    payments, receipts = messages.members["PaymentTaken"], messages.members["ReceiptSent"]
    order_of_payment = messages.cause[payments]
    order_of_receipt = messages.cause[messages.cause[receipts]]
    ran = {
        "payment_no": messages.fields["PaymentTaken"]["payment_no"],
        "fee": messages.fields["PaymentTaken"]["fee"],
        "receipt_no": messages.fields["ReceiptSent"]["receipt_no"],
        "receipt_fee": messages.fields["ReceiptSent"]["fee"],  # carried from the payment
    }
    expected = {
        "payment_no": 1001 + order_of_payment,
        "fee": planned.fields["PaymentTaken"]["fee"][order_of_payment],
        "receipt_no": 1 + order_of_receipt,
        "receipt_fee": planned.fields["PaymentTaken"]["fee"][order_of_receipt],
    }
    for name, values in ran.items():
        assert values.tolist() == expected[name].tolist(), name


@pytest.mark.parametrize(("preset", "service"), _PRESETS)
def test_emitted_events_fields_of_their_own_are_their_planned_ones_and_their_effects_exact(
    preset: str, service: str, request
):
    scenario = _payments(preset)
    real = busim.load_test(scenario, request.getfixturevalue(service))
    assert left_behind(real.real.run_id, scenario) == []
    record = real.record
    _assert_fields_as_planned(record)
    payments = record.messages.members["PaymentTaken"].size
    assert 0 < payments < real.messages.published  # the floor refused some orders: numbers have gaps
    assert real.messages.emitted == 2 * payments
    simulated = busim.simulate(scenario)
    for name in ("payment", "ledger", "archive"):
        ran_summary, modelled = real.summary.consumers[name], simulated.summary.consumers[name]
        assert (ran_summary.subscribed, ran_summary.processed, ran_summary.rejected) == (
            modelled.subscribed,
            modelled.processed,
            modelled.rejected,
        )
        assert ran_summary.duplicate_effects == 0 and ran_summary.lost == 0
        for counter in ran_summary.state.values():
            assert counter.abs_drift == 0
    fees = int(record.messages.fields["PaymentTaken"]["fee"].sum())
    assert real.summary.consumers["ledger"].state["fees"].actual_total == fees  # as the store holds them
    assert real.drained and real.consistent


def _twins(record: RunRecord, event: str) -> list[tuple[int, int]]:
    """Pairs of ``event``'s messages emitted for the same cause: a processing and its duplicate."""
    messages = record.messages
    members = messages.members[event]
    first: dict[int, int] = {}
    pairs = []
    for message, cause in zip(members.tolist(), messages.cause[members].tolist()):
        if cause in first:
            pairs.append((first[cause], message))
        first.setdefault(cause, message)
    return pairs


def _value(record: RunRecord, event: str, name: str, message: int) -> int:
    """Field ``name`` of ``message``, a message of ``event``."""
    members = record.messages.members[event]
    return int(record.messages.fields[event][name][np.searchsorted(members, message)])


def test_a_duplicate_processing_emits_the_same_fields_and_a_naive_consumer_applies_them_twice(amqp_url):
    # The killed instance's 10th order comes back and is processed again: it emits a second payment with the
    # number and fee of the first, which the naive ledger adds to the same key again, and whose receipt (a
    # second one, with the first's number) the archive counts again.
    scenario = _payments("rabbitmq", payment=_CRASHING)
    real = busim.load_test(scenario, amqp_url)
    assert left_behind(real.real.run_id, scenario) == []
    record = real.record
    _assert_fields_as_planned(record)
    [(original, twin)] = _twins(record, "PaymentTaken")
    for name in ("payment_no", "fee"):
        assert _value(record, "PaymentTaken", name, twin) == _value(record, "PaymentTaken", name, original)
    fee = _value(record, "PaymentTaken", "fee", original)
    # The ledger processed each payment once, the twin too: each emitted a receipt, the twin's with the number
    # of the original's (both are the receipt planned for the same payment).
    receipts = record.messages.members["ReceiptSent"]
    [first, second] = [receipts[record.messages.cause[receipts] == payment][0] for payment in (original, twin)]
    assert _value(record, "ReceiptSent", "receipt_no", second) == _value(record, "ReceiptSent", "receipt_no", first)
    payment, ledger, archive = (real.summary.consumers[name] for name in ("payment", "ledger", "archive"))
    assert payment.crashes == 1 and payment.duplicate_effects == 1
    assert ledger.duplicate_effects == 1 and ledger.by_reason["duplicate_effects"] == {"upstream_duplicate": 1}
    assert ledger.state["fees"].abs_drift == fee  # the twin's fee, on the original's payment number
    assert archive.duplicate_effects == 1 and archive.by_reason["duplicate_effects"] == {"upstream_duplicate": 1}
    assert (archive.state["receipts"].abs_drift, archive.state["paid"].abs_drift) == (1, fee)
    assert real.drained and not real.consistent
    # A simulation numbers and draws the twin afresh: its effects land on a payment number of its own.
    simulated = busim.simulate(scenario).record
    [(original, twin)] = _twins(simulated, "PaymentTaken")
    assert _value(simulated, "PaymentTaken", "payment_no", twin) != _value(
        simulated, "PaymentTaken", "payment_no", original
    )


def test_an_idempotent_consumer_recognises_a_duplicate_emission_as_the_message_it_processed(amqp_url):
    # As above, but the ledger records processed ids with its effects in one PostgreSQL transaction: the
    # second payment is the first's planned message, so the ledger skips it and emits no second receipt.
    scenario = _payments("rabbitmq", payment=_CRASHING, ledger={"idempotency": "dedup"})
    real = busim.load_test(scenario, amqp_url)
    assert left_behind(real.real.run_id, scenario) == []
    assert real.real.stores["ledger"] == "postgres"
    record = real.record
    _assert_fields_as_planned(record)
    [(_, twin)] = _twins(record, "PaymentTaken")
    ledger_record = record.groups[1]
    twin_rows = ledger_record.deliveries.message == ledger_record.selection.local(np.array([twin]))[0]
    assert ledger_record.deliveries.outcome[twin_rows].tolist() == [Outcome.SKIPPED]
    assert record.messages.members["ReceiptSent"].size == record.messages.members["PaymentTaken"].size - 1
    ledger, archive = real.summary.consumers["ledger"], real.summary.consumers["archive"]
    assert ledger.duplicate_effects == 0 and ledger.state["fees"].abs_drift == 0
    assert archive.duplicate_effects == 0
    assert archive.state["receipts"].abs_drift == archive.state["paid"].abs_drift == 0
