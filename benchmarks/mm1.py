"""Time busim on a 1-million-message M/M/1 scenario.

Reports simulated messages per wall-clock second (engine and analysis, as
``busim.simulate`` does them) and the peak resident memory of the process.

    python benchmarks/mm1.py [--messages 1000000] [--repeat 3] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import resource
import time

import busim
from busim.scenario.schema import Scenario

RATE_PER_S = 800.0


def mm1(messages: int) -> Scenario:
    """Poisson arrivals at 800/s, a constant 1 ms broker latency, one worker at utilisation 0.8.

    A constant latency keeps the arrivals at the queue Poisson (in an ordered
    queue, random ones would hold each other up), so theory gives the mean.
    """
    return Scenario.model_validate(
        {
            "name": "mm1-benchmark",
            "seed": 1,
            "duration": 1.05 * messages / RATE_PER_S,  # long enough for `count` to cap it
            "events": {"Job": {}},
            "publishers": [{"name": "source", "event": "Job", "rate": RATE_PER_S, "count": messages}],
            "broker": {"latency": "1ms"},
            "consumers": [
                {"name": "server", "subscribes": ["Job"], "processing_time": {"exponential": {"mean": "1ms"}}}
            ],
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs to time; the best is reported")
    parser.add_argument("--profile", action="store_true", help="print the 20 costliest functions of one run")
    options = parser.parse_args()
    scenario = mm1(options.messages)
    if options.profile:
        profiler = cProfile.Profile()
        profiler.runcall(busim.simulate, scenario)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(20)
        return
    best_s = float("inf")
    for _ in range(options.repeat):
        started = time.perf_counter()
        result = busim.simulate(scenario)
        best_s = min(best_s, time.perf_counter() - started)
    published = len(result.record.messages)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    latency = result.summary.consumers["server"].latency_s.end_to_end
    print(f"messages:          {published:,}")
    print(f"best wall time:    {best_s:.2f} s (of {options.repeat})")
    print(f"throughput:        {published / best_s:,.0f} simulated messages per second")
    print(f"peak memory (RSS): {peak_mib:,.0f} MiB")
    print(f"mean latency:      {latency.mean * 1e3:.3f} ms (M/M/1 theory: 6.000 ms)")


if __name__ == "__main__":
    main()
