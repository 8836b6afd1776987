"""Scenarios for real runs: small, seconds long, named so that what a run leaves behind can be looked for."""

from __future__ import annotations

import secrets
from typing import Any

from busim.scenario.schema import Scenario


def real_scenario(preset: str, consumer: dict[str, Any] | None = None, **changes: Any) -> Scenario:
    """Orders published at 100/s for 2 s (seed 3), one inventory consumer taking stock with a floor."""
    base: dict[str, Any] = {
        "name": f"test-{secrets.token_hex(3)}",
        "seed": 3,
        "duration": 2,
        "drain_timeout": 20,
        "events": {
            "OrderPlaced": {
                "key": "productId",
                "fields": {
                    "productId": {"uniform_int": {"low": 1, "high": 4}},
                    "quantity": {"uniform_int": {"low": 1, "high": 3}},
                },
            }
        },
        "publishers": [{"name": "orders", "event": "OrderPlaced", "arrivals": "uniform", "rate": 100}],
        "broker": {"preset": preset},
        "consumers": [
            {
                "name": "inventory",
                "subscribes": ["OrderPlaced"],
                "instances": 2,
                "processing_time": "1ms",
                "state": {"stock": {"initial": 10_000}},
                "effects": [{"counter": "stock", "key": "productId", "add": "-quantity", "floor": 0}],
                **(consumer or {}),
            }
        ],
    }
    return Scenario.model_validate(base | changes)
