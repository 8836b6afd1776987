"""Time busim on every broker preset: a keyed flow of 200k messages to four instances.

Each preset runs its own delivery rules (prefetch buffers, message groups,
partitions and offsets), so the cost per message differs; this reports
simulated messages per wall-clock second for each, best of ``--repeat``.
The p99 column is the simulated end-to-end latency: on Kafka it includes the
45 s session-timeout stalls that follow the run's few crashes.

    python benchmarks/presets.py [--messages 200000] [--repeat 2] [--preset kafka] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time

import busim
from busim.scenario.presets import PRESET_NAMES
from busim.scenario.schema import Scenario

RATE_PER_S = 2000.0


def keyed_flow(preset: str, messages: int) -> Scenario:
    """Poisson orders over 1,000 products at 2,000/s; four instances at utilisation 0.5, a few crashes."""
    return Scenario.model_validate(
        {
            "name": f"{preset}-benchmark",
            "seed": 1,
            "duration": 1.05 * messages / RATE_PER_S,
            "events": {"Order": {"key": "product", "fields": {"product": {"uniform_int": {"low": 1, "high": 1000}}}}},
            "publishers": [{"name": "orders", "event": "Order", "rate": RATE_PER_S, "count": messages}],
            "broker": {"preset": preset, **({"throughput": "unlimited"} if preset == "sqs-fifo" else {})},
            "consumers": [
                {
                    "name": "inventory",
                    "subscribes": ["Order"],
                    "instances": 4,
                    "processing_time": {"exponential": {"mean": "1ms"}},
                    "crash": {"probability": 0.00002, "restart_after": "1s"},
                }
            ],
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=2, help="runs to time per preset; the best is reported")
    parser.add_argument("--preset", choices=PRESET_NAMES, action="append", help="only these presets")
    parser.add_argument("--profile", action="store_true", help="print the 20 costliest functions of one run each")
    options = parser.parse_args()
    print(f"{'preset':<16} {'messages/s':>12} {'deliveries':>11} {'p99 latency':>12}")
    for preset in options.preset or PRESET_NAMES:
        scenario = keyed_flow(preset, options.messages)
        if options.profile:
            profiler = cProfile.Profile()
            profiler.runcall(busim.simulate, scenario)
            pstats.Stats(profiler).sort_stats("tottime").print_stats(20)
            continue
        best_s = float("inf")
        for _ in range(options.repeat):
            started = time.perf_counter()
            result = busim.simulate(scenario)
            best_s = min(best_s, time.perf_counter() - started)
        inventory = result.summary.consumers["inventory"]
        published = len(result.record.messages)
        p99_ms = inventory.latency_s.end_to_end.p99 * 1e3
        print(f"{preset:<16} {published / best_s:>12,.0f} {inventory.delivered:>11,} {p99_ms:>10.1f}ms")


if __name__ == "__main__":
    main()
