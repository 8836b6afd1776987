"""Time the engine against hand-written baselines, every scenario, and a scaled flash sale.

Four measurements, each figure from a fresh process so that its peak
resident memory is its own:

    python benchmarks/engine.py mm1 [--messages 1000000] [--repeat 3] [--baseline DIR]
    python benchmarks/engine.py memory
    python benchmarks/engine.py scenarios [--repeat 3]
    python benchmarks/engine.py flash-sale [--messages 10000000]
    python benchmarks/engine.py profile [--messages 1000000]

``mm1`` times, side by side in one run, three ways of simulating the same
1M-message M/M/1 queue (Poisson arrivals at 800/s, a constant 1 ms broker
latency, exponential 1 ms service):

- ``busim``: :func:`busim.simulate`, with the engine's whole record and the
  analysis of every figure;
- ``simpy``: a hand-written SimPy loop with callbacks only, three events per
  message (published, delivered, processed) and no bookkeeping beyond the
  completion times;
- ``heap``: the same loop on a plain ``heapq`` event list, without SimPy.

Both hand-written loops draw their times up front with numpy, as busim does.
With ``--baseline DIR`` (a checkout of another busim version), its
``simulate`` is timed too, in the same run, as ``busim at DIR``.
``memory`` gives busim's peak on that queue at 1M to 8M messages, beside
the process with busim loaded and nothing run.
``scenarios`` times :func:`busim.simulate` on every file in scenarios/ (best
of ``--repeat``); ``flash-sale`` scales scenarios/flash-sale.yaml's rates so
that it publishes about ``--messages`` messages, and times one run.
``profile`` prints the 25 costliest functions of busim's M/M/1 run, in this
process.
"""

from __future__ import annotations

import argparse
import cProfile
import heapq
import json
import os
import pstats
import resource
import subprocess
import sys
import time
from collections import deque
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RATE_PER_S = 800.0
LATENCY_S = 0.001
SERVICE_MEAN_S = 0.001


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def mm1_draws(messages: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    publish_s = np.cumsum(rng.exponential(1 / RATE_PER_S, messages))
    service_s = rng.exponential(SERVICE_MEAN_S, messages)
    return publish_s, service_s


def simpy_loop(messages: int) -> float:
    """M/M/1 with SimPy callbacks: returns the mean end-to-end latency in seconds."""
    import simpy

    publish_s, service_s = mm1_draws(messages)
    publish = publish_s.tolist()
    service = service_s.tolist()
    done_s = np.empty(messages)
    env = simpy.Environment()
    waiting: deque[int] = deque()
    busy = [False]

    def start(message: int) -> None:
        busy[0] = True
        env.timeout(service[message], message).callbacks.append(processed)

    def processed(event: simpy.Event) -> None:
        done_s[event.value] = env.now
        if waiting:
            start(waiting.popleft())
        else:
            busy[0] = False

    def delivered(event: simpy.Event) -> None:
        if busy[0]:
            waiting.append(event.value)
        else:
            start(event.value)

    def published(event: simpy.Event) -> None:
        message = event.value
        env.timeout(LATENCY_S, message).callbacks.append(delivered)
        if message + 1 < messages:  # one publication pending at a time
            env.timeout(publish[message + 1] - env.now, message + 1).callbacks.append(published)

    env.timeout(publish[0], 0).callbacks.append(published)
    env.run()
    return float(np.mean(done_s - publish_s))


def heap_loop(messages: int) -> float:
    """M/M/1 on a plain heap of (time, kind, message): returns the mean end-to-end latency in seconds."""
    publish_s, service_s = mm1_draws(messages)
    service = service_s.tolist()
    done_s = np.empty(messages)
    published, delivered, processed = 0, 1, 2
    publish = publish_s.tolist()
    events = [(publish[0], published, 0)]
    waiting: deque[int] = deque()
    busy = False
    while events:
        now, kind, message = heapq.heappop(events)
        if kind == published:
            heapq.heappush(events, (now + LATENCY_S, delivered, message))
            if message + 1 < messages:  # one publication pending at a time
                heapq.heappush(events, (publish[message + 1], published, message + 1))
        elif kind == delivered:
            if busy:
                waiting.append(message)
            else:
                busy = True
                heapq.heappush(events, (now + service[message], processed, message))
        else:
            done_s[message] = now
            if waiting:
                following = waiting.popleft()
                heapq.heappush(events, (now + service[following], processed, following))
            else:
                busy = False
    return float(np.mean(done_s - publish_s))


def mm1_scenario(messages: int):
    """The M/M/1 queue as a busim scenario; a constant broker latency keeps the arrivals at the queue
    Poisson (in an ordered queue, random ones would hold each other up), so theory gives the mean."""
    from busim.scenario.schema import Scenario

    return Scenario.model_validate(
        {
            "name": "mm1-benchmark",
            "seed": 1,
            "duration": 1.05 * messages / RATE_PER_S,  # long enough for `count` to cap it
            "events": {"Job": {}},
            "publishers": [{"name": "source", "event": "Job", "rate": RATE_PER_S, "count": messages}],
            "broker": {"latency": LATENCY_S},
            "consumers": [
                {
                    "name": "server",
                    "subscribes": ["Job"],
                    "processing_time": {"exponential": {"mean": SERVICE_MEAN_S}},
                }
            ],
        }
    )


def busim_mm1(messages: int) -> float:
    import busim

    result = busim.simulate(mm1_scenario(messages), max_memory_bytes=float("inf"))
    return result.summary.consumers["server"].latency_s.end_to_end.mean


MM1 = {"busim": busim_mm1, "simpy": simpy_loop, "heap": heap_loop}


def scaled_flash_sale(messages: int):
    """scenarios/flash-sale.yaml with every rate scaled so that it publishes about ``messages`` messages."""
    import busim
    from busim.api import expected_group_messages

    scenario = busim.load(ROOT / "scenarios" / "flash-sale.yaml")
    factor = messages / expected_group_messages(scenario)
    publisher = scenario.publishers[0]
    steps = [step.model_copy(update={"rate": step.rate * factor}) for step in publisher.rate]
    return scenario.model_copy(update={"publishers": [publisher.model_copy(update={"rate": steps})]})


def measure(kind: str, name: str, messages: int, repeat: int) -> dict:
    """One measurement, in this process: best wall time of ``repeat`` runs, and this process's peak memory."""
    import busim

    best_s = float("inf")
    if kind == "import":  # the process itself, with busim loaded: what every run's peak starts from
        return {"name": name, "messages": 0, "best_s": 0.0, "peak_mib": peak_mib(), "figure": 0.0}
    for _ in range(repeat):
        if kind == "mm1":
            started = time.perf_counter()
            figure = MM1[name](messages)
            best_s = min(best_s, time.perf_counter() - started)
            count = messages
        else:
            scenario = scaled_flash_sale(messages) if kind == "flash-sale" else busim.load(name)
            started = time.perf_counter()
            result = busim.simulate(scenario, max_memory_bytes=float("inf"), max_messages=10**9)
            best_s = min(best_s, time.perf_counter() - started)
            count = result.messages.published + result.messages.emitted
            figure = result.summary.consumers[scenario.consumers[0].name].latency_s.end_to_end.p99
    return {"name": name, "messages": count, "best_s": best_s, "peak_mib": peak_mib(), "figure": figure}


def in_fresh_process(kind: str, name: str, messages: int, repeat: int, busim_at: str | None = None) -> dict:
    """:func:`measure` in a process of its own; with ``busim_at``, importing busim from that directory."""
    command = [sys.executable, __file__, "one", kind, name, "--messages", str(messages), "--repeat", str(repeat)]
    environment = {**os.environ, "PYTHONPATH": busim_at} if busim_at else None
    output = subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT, env=environment).stdout
    return json.loads(output.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["mm1", "memory", "scenarios", "flash-sale", "profile", "one"])
    parser.add_argument("args", nargs="*", help=argparse.SUPPRESS)
    parser.add_argument("--messages", type=int)
    parser.add_argument("--repeat", type=int, default=3, help="runs to time; the best is reported")
    parser.add_argument("--baseline", help="mm1: also time busim as checked out in this directory")
    options = parser.parse_args()
    if options.what == "one":
        kind, name = options.args
        print(json.dumps(measure(kind, name, options.messages or 0, options.repeat)))
        return
    if options.what == "profile":
        import busim

        profiler = cProfile.Profile()
        scenario = mm1_scenario(options.messages or 1_000_000)
        profiler.runcall(busim.simulate, scenario, max_memory_bytes=float("inf"))
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
        return
    if options.what == "mm1":
        messages = options.messages or 1_000_000
        rows = [in_fresh_process("mm1", name, messages, options.repeat) for name in MM1]
        simpy_rate = messages / rows[1]["best_s"]
        if options.baseline:
            baseline = in_fresh_process("mm1", "busim", messages, options.repeat, str(Path(options.baseline).resolve()))
            rows.insert(1, {**baseline, "name": f"busim at {options.baseline}"})
        print(f"M/M/1, {messages:,} messages, best of {options.repeat} (mean latency; theory 6.000 ms)\n")
        print("| | msgs/s | peak RSS | vs SimPy | mean latency |")
        print("|---|---|---|---|---|")
        for row in rows:
            rate = messages / row["best_s"]
            print(
                f"| {row['name']} | {rate:,.0f} | {row['peak_mib']:,.0f} MiB | {rate / simpy_rate:.2f}x "
                f"| {row['figure'] * 1e3:.3f} ms |"
            )
        return
    if options.what == "memory":
        base_mib = in_fresh_process("import", "busim", 0, 1)["peak_mib"]
        print(f"busim's M/M/1 run, one fresh process each; {base_mib:.0f} MiB with busim loaded and nothing run\n")
        print("| messages | peak RSS | per million | per million above the process itself |")
        print("|---|---|---|---|")
        for millions in (1, 2, 4, 8):
            row = in_fresh_process("mm1", "busim", millions * 1_000_000, 1)
            print(
                f"| {millions}M | {row['peak_mib']:,.0f} MiB | {row['peak_mib'] / millions:.0f} MiB "
                f"| {(row['peak_mib'] - base_mib) / millions:.0f} MiB |"
            )
        return
    if options.what == "flash-sale":
        messages = options.messages or 10_000_000
        row = in_fresh_process("flash-sale", "flash-sale", messages, 1)
        print(f"flash sale scaled to {row['messages']:,} messages")
        print(f"wall time: {row['best_s']:.1f} s, peak RSS {row['peak_mib']:,.0f} MiB")
        per_million_mib = row["peak_mib"] / row["messages"] * 1e6
        print(f"{row['messages'] / row['best_s']:,.0f} messages/s, {per_million_mib:.0f} MiB per million")
        return
    print(f"every scenario, best of {options.repeat}\n")
    print("| scenario | messages | wall time | msgs/s | peak RSS |")
    print("|---|---|---|---|---|")
    for path in sorted((ROOT / "scenarios").glob("*.yaml")):
        row = in_fresh_process("scenario", str(path), 0, options.repeat)
        print(
            f"| {path.stem} | {row['messages']:,} | {row['best_s']:.2f} s | {row['messages'] / row['best_s']:,.0f} "
            f"| {row['peak_mib']:,.0f} MiB |"
        )


if __name__ == "__main__":
    main()
