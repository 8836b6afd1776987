"""Real runs of a chain: a consumer emits events that another consumes, as a simulation of it does."""

from __future__ import annotations

import busim
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
