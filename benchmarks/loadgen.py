"""How fast the load generator and its consumers go, end to end, against the local brokers.

For each broker, a no-op consumer scenario (no effects, ``processing_time``
0; 2 instances of 32 workers each) runs at ``--rate`` copies a second for
``--seconds`` through :func:`busim.load_test`, and the benchmark prints the
end-to-end rate achieved (messages processed over the publishing window),
the generator's lag (p50/p99/max: how late copies went out against their
due times), the end-to-end latency from the actual send (p50/p99), and
whether the run drained within ``--drain`` seconds after the window.

The broker keys are those a throughput-minded user would set:

- Redis Streams: ``batch_size: 100`` (one XREADGROUP fetches up to 100 entries);
- RabbitMQ: ``prefetch: 500`` per consumer channel;
- NATS JetStream: ``max_ack_pending: 10000`` (the default 1,000 is shared by every instance).

``--find-ceiling`` raises the rate through ``--rates`` until a run does not
hold: the generator's p99 lag exceeds 5 ms, the consumers do not drain
within ``--drain`` seconds, or the end-to-end p99 latency exceeds
``--max-latency`` (the consumers falling behind); it reports the highest
rate that held. Each rate runs ``--repeat`` times, and holds if most runs do
(the machine is shared: a burst of other work can fail one run).

    python benchmarks/loadgen.py [--broker redis|rabbitmq|nats|all] [--rate 10000] [--seconds 10] [--repeat 1]
    python benchmarks/loadgen.py --find-ceiling [--broker all] [--rates 2000,5000,7500,10000,12500,15000,20000]
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from dataclasses import dataclass

import numpy as np

import busim
from busim.analysis.real import BEHIND_LAG_S
from busim.results import Result
from busim.scenario.schema import Scenario

BROKERS = {
    "redis": ("redis://127.0.0.1:6379/0", "redis-streams", {"batch_size": 100}),
    "rabbitmq": ("amqp://guest:guest@127.0.0.1:5672/", "rabbitmq", {"prefetch": 500}),
    "nats": ("nats://127.0.0.1:4222", "nats-jetstream", {"max_ack_pending": 10_000}),
}
INSTANCES = 2
CONCURRENCY = 32


@dataclass(frozen=True)
class Measure:
    broker: str
    rate_per_s: float
    achieved_per_s: float
    lag_p50_ms: float
    lag_p99_ms: float
    lag_max_ms: float
    latency_p50_ms: float
    latency_p99_ms: float
    drained: bool
    drain_tail_s: float  # from the window's end to the last processing
    load: float  # the machine's 1-minute load average before the run
    generator_cpu_s: float  # CPU time of this process (the generator and the run) during the run
    consumers_cpu_s: float  # CPU time of the consumer instances' processes

    def held(self, max_latency_ms: float) -> bool:
        return (
            self.drained
            and self.lag_p99_ms <= BEHIND_LAG_S * 1e3
            and self.latency_p99_ms <= max_latency_ms
            and self.achieved_per_s >= 0.95 * self.rate_per_s
        )

    def line(self) -> str:
        return (
            f"{self.broker:8} rate {self.rate_per_s:8,.0f}/s  achieved {self.achieved_per_s:8,.0f}/s  "
            f"lag p50/p99/max {self.lag_p50_ms:6.2f}/{self.lag_p99_ms:6.2f}/{self.lag_max_ms:7.1f} ms  "
            f"e2e p50/p99 {self.latency_p50_ms:7.1f}/{self.latency_p99_ms:7.1f} ms  "
            f"drained {'yes' if self.drained else 'NO '} (+{self.drain_tail_s:.1f} s)  load {self.load:.1f}  "
            f"cpu generator/consumers {self.generator_cpu_s:.1f}/{self.consumers_cpu_s:.1f} s"
        )


def scenario(broker: str, rate_per_s: float, seconds: float, drain_s: float) -> Scenario:
    _, preset, keys = BROKERS[broker]
    return Scenario.model_validate(
        {
            "name": f"loadgen-{broker}",
            "seed": 1,
            "duration": seconds,
            "drain_timeout": drain_s,
            "events": {"Job": {}},
            "publishers": [{"name": "source", "event": "Job", "rate": rate_per_s}],
            "broker": {"preset": preset, **keys},
            "consumers": [
                {
                    "name": "noop",
                    "subscribes": ["Job"],
                    "instances": INSTANCES,
                    "concurrency": CONCURRENCY,
                    "processing_time": 0.0,
                }
            ],
        }
    )


def _ms(value: float | None) -> float:
    return float("nan") if value is None else value * 1e3


def measure(broker: str, rate_per_s: float, seconds: float, drain_s: float) -> Measure:
    url = BROKERS[broker][0]
    load = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    result: Result = busim.load_test(scenario(broker, rate_per_s, seconds, drain_s), url)
    after = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = [a.ru_utime + a.ru_stime - b.ru_utime - b.ru_stime for a, b in zip(after, before, strict=True)]
    assert result.record is not None and result.real is not None
    group = result.record.groups[0]
    done_s = group.deliveries.done_s
    done_s = done_s[~np.isnan(done_s)]
    processed = result.summary.consumers["noop"].processed
    lag = result.real.generator.lag_s
    latency = result.real.latency_from_send_s["noop"]
    return Measure(
        broker=broker,
        rate_per_s=rate_per_s,
        achieved_per_s=processed / seconds,
        lag_p50_ms=_ms(lag.p50),
        lag_p99_ms=_ms(lag.p99),
        lag_max_ms=_ms(lag.max),
        latency_p50_ms=_ms(latency.p50),
        latency_p99_ms=_ms(latency.p99),
        drained=result.drained,
        drain_tail_s=max(0.0, float(done_s.max()) - seconds) if done_s.size else float("nan"),
        load=load,
        generator_cpu_s=cpu_s[0],
        consumers_cpu_s=cpu_s[1],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", choices=[*BROKERS, "all"], default="all")
    parser.add_argument("--rate", type=float, default=10_000.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--drain", type=float, default=5.0, help="seconds after the window to drain in")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--find-ceiling", action="store_true")
    parser.add_argument("--rates", default="2000,5000,7500,10000,12500,15000,20000")
    parser.add_argument("--max-latency", type=float, default=500.0, help="ms of end-to-end p99 that still holds")
    args = parser.parse_args()
    brokers = list(BROKERS) if args.broker == "all" else [args.broker]
    for broker in brokers:
        if not args.find_ceiling:
            for _ in range(args.repeat):
                print(measure(broker, args.rate, args.seconds, args.drain).line(), flush=True)
            continue
        ceiling = None
        for rate in (float(word) for word in args.rates.split(",")):
            runs = [measure(broker, rate, args.seconds, args.drain) for _ in range(args.repeat)]
            for run in runs:
                print(run.line(), flush=True)
            # The machine is shared: a run can miss because of someone else's burst. A rate holds in most runs.
            if 2 * sum(run.held(args.max_latency) for run in runs) <= len(runs):
                break
            ceiling = rate
            time.sleep(1.0)
        print(f"{broker}: ceiling {'none' if ceiling is None else f'{ceiling:,.0f}/s'}", flush=True)


if __name__ == "__main__":
    main()
