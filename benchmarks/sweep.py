"""Time a sweep on one worker process and on several: how much faster do more cores make it?

A 16-point sweep of the flash sale (instances 1..8 x two presets), 4
replications a point: 64 runs of about 14,000 messages each. Every
configuration runs the same work and must give the same figures; the
speed-up is one worker's wall time over N workers', best of ``--repeat``
(process start-up included: it is part of what a user waits for).

    python benchmarks/sweep.py [--workers 1,2] [--replications 4] [--repeat 2]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from busim.planning.runner import plan_sweep, sweep

FLASH_SALE = Path(__file__).resolve().parent.parent / "scenarios" / "flash-sale.yaml"
SHORT_SALE = [
    "duration=60s",
    "publishers.order-service.rate=[{at: 0s, rate: 50/s}, {at: 10s, rate: 700/s}, {at: 25s, rate: 100/s}]",
    "broker.outages=[{at: 20s, duration: 5s}]",
]
GRID = ["consumers.inventory.instances=1..8", "broker.preset=rabbitmq,kafka"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,2", help="worker counts to time, comma-separated")
    parser.add_argument("--replications", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=2)
    arguments = parser.parse_args()
    plan = plan_sweep(FLASH_SALE, GRID, SHORT_SALE)
    runs = len(plan.variants) * arguments.replications
    print(f"{len(plan.variants)} points x {arguments.replications} replications = {runs} runs")
    timings: dict[int, float] = {}
    figures = None
    for count in (int(word) for word in arguments.workers.split(",")):
        best = float("inf")
        for _ in range(arguments.repeat):
            started = time.perf_counter()
            result = sweep(plan, replications=arguments.replications, seed=1, workers=count)
            best = min(best, time.perf_counter() - started)
            rows = result.rows()
            if figures is None:
                figures = rows
            elif rows != figures:
                raise SystemExit(f"{count} workers gave other figures than the first configuration")
        timings[count] = best
        print(f"{count} worker{'s' if count > 1 else ''}: {best:6.1f} s  ({runs / best:5.1f} runs/s)", flush=True)
    first = next(iter(timings))
    for count, seconds in timings.items():
        if count != first:
            print(f"speed-up with {count} workers: {timings[first] / seconds:.2f}x")


if __name__ == "__main__":
    main()
