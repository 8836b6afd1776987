"""Time busim on an event chain: orders through inventory, payment and shipping.

Each order is processed by three consumer groups, two of which emit the
next event, so a run handles three messages per order. This reports
simulated messages (published and emitted) per wall-clock second, best of
``--repeat``, for the chain as it is and with the consistency patterns that
cost work per message: a dedup store with a capacity, optimistic and
read-modify-write isolation, and reads of a read model.

    python benchmarks/chains.py [--orders 100000] [--repeat 2] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time

import busim
from busim.scenario.schema import Scenario

RATE_PER_S = 1000.0

VARIANTS = {
    "as is": {},
    "dedup with capacity": {"idempotency": "dedup", "dedup": {"capacity": 10_000}},
    "optimistic": {"effects_isolation": "optimistic", "concurrency": 4},
    "read-modify-write": {"effects_isolation": "read-modify-write", "concurrency": 4},
    "reads at 1000/s": {"queries": {"rate": "1000/s", "counter": "stock"}},
}


def pipeline(orders: int, inventory: dict) -> Scenario:
    """Poisson orders over 1,000 products; three hops, each at utilisation about 0.5."""
    return Scenario.model_validate(
        {
            "name": "chain-benchmark",
            "seed": 1,
            "duration": 1.05 * orders / RATE_PER_S,
            "events": {
                "OrderPlaced": {
                    "key": "product",
                    "fields": {"order": {"sequence": {}}, "product": {"uniform_int": {"low": 1, "high": 1000}}},
                },
                "StockReserved": {"key": "order"},
                "PaymentCaptured": {"key": "order"},
            },
            "publishers": [{"name": "orders", "event": "OrderPlaced", "rate": RATE_PER_S, "count": orders}],
            "broker": {"preset": "rabbitmq"},
            "consumers": [
                {
                    "name": "inventory",
                    "subscribes": ["OrderPlaced"],
                    "instances": 2,
                    "processing_time": {"exponential": {"mean": "1ms"}},
                    "crash": {"probability": 0.0001, "restart_after": "1s"},
                    "state": {"stock": {"initial": 1_000_000}},
                    "effects": [{"counter": "stock", "key": "product", "add": -1, "floor": 0}],
                    "emits": [{"event": "StockReserved"}],
                    **inventory,
                },
                {
                    "name": "payment",
                    "subscribes": ["StockReserved"],
                    "instances": 2,
                    "processing_time": {"exponential": {"mean": "1ms"}},
                    "emits": [{"event": "PaymentCaptured"}],
                },
                {"name": "shipping", "subscribes": ["PaymentCaptured"], "processing_time": "0.5ms"},
            ],
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=2, help="runs to time per variant; the best is reported")
    parser.add_argument("--profile", action="store_true", help="print the 20 costliest functions of one run each")
    options = parser.parse_args()
    print(f"{'variant':<22} {'messages/s':>12} {'messages':>10} {'chain p99':>10}")
    for name, inventory in VARIANTS.items():
        scenario = pipeline(options.orders, inventory)
        if options.profile:
            profiler = cProfile.Profile()
            profiler.runcall(busim.simulate, scenario)
            pstats.Stats(profiler).sort_stats("tottime").print_stats(20)
        best_s = float("inf")
        for _ in range(options.repeat):
            started = time.perf_counter()
            result = busim.simulate(scenario)
            best_s = min(best_s, time.perf_counter() - started)
        messages = len(result.record.messages)
        (chain,) = result.summary.chains.values()
        print(f"{name:<22} {messages / best_s:>12,.0f} {messages:>10,} {chain.latency_s.p99 * 1000:>8.1f}ms")


if __name__ == "__main__":
    main()
