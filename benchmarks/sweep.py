"""Time a sweep on one worker process and on several: how much faster do more cores make it?

A 16-point sweep of the flash sale (instances 1..8 x two presets), 4
replications a point: 64 runs of about 14,500 messages each. Every
configuration runs the same work and must give the same figures; the
speed-up is one worker's wall time over N workers', best of ``--repeat``
rounds (process start-up included: it is part of what a user waits for).

    python benchmarks/sweep.py [--workers 1,2] [--replications 4] [--repeat 3]
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
    parser.add_argument("--workers", default="1,2", help="worker counts to time, comma-separated (1 among them)")
    parser.add_argument("--replications", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    arguments = parser.parse_args()
    counts = [int(word) for word in arguments.workers.split(",")]
    if 1 not in counts:
        raise SystemExit("--workers must include 1, the configuration the others are compared with")
    plan = plan_sweep(FLASH_SALE, GRID, SHORT_SALE)
    runs = len(plan.variants) * arguments.replications
    print(f"{len(plan.variants)} points x {arguments.replications} replications = {runs} runs")
    timings = {count: float("inf") for count in counts}
    figures = None
    # Round after round, each configuration once a round: a machine shared with other work slows them alike.
    for _ in range(arguments.repeat):
        for count in counts:
            started = time.perf_counter()
            result = sweep(plan, replications=arguments.replications, seed=1, workers=count)
            timings[count] = min(timings[count], time.perf_counter() - started)
            rows = result.rows()
            if figures is None:
                figures = rows
            elif rows != figures:
                raise SystemExit(f"{count} workers gave other figures than the first configuration")
    for count, seconds in timings.items():
        speed_up = "" if count == 1 else f"  speed-up {timings[1] / seconds:.2f}x"
        print(f"{count} worker{'s' if count > 1 else ''}: {seconds:6.1f} s  ({runs / seconds:5.1f} runs/s){speed_up}")


if __name__ == "__main__":
    main()
