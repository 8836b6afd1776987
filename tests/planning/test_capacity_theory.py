"""The capacity search against queueing theory, where it has the answer.

M/M/c (Poisson arrivals at lambda = 100/s, exponential service of mean 50 ms,
so an offered load of a = 5): the mean wait in the queue is
Wq = C(c, a) / (c mu - lambda), with C the Erlang C probability of waiting:
29.4 ms for c = 6, 8.10 ms for c = 7, 2.79 ms for c = 8. The smallest c with
Wq under 5 ms is 8. Over seeds 0..9 (five 6,000-message runs a probe) the
search answered 8 every time; the 95 % interval at c = 7 never reached below
5.7 ms, and at c = 8 never above 4.0 ms.

M/M/1 (service rate mu = 1000/s): the time in the system is exponential with
rate mu - lambda, so its p99 is ln(100) / (mu - lambda), under 9 ms up to
lambda* = mu - ln(100) / 9 ms = 488.3/s. A probe meets the bound only when
the whole interval of its mean p99 does, so the answer lies below lambda* by
about the interval's half-width: over seeds 0..11 (four to eight 5,000-message
runs a probe) it was 0.87 to 0.97 of lambda* (mean 0.92, sd 0.035). The test
asks for 0.80 (3.4 sd below that mean) to 1.03 (above lambda* only by the
search's tolerance of 3 %).
"""

import math

import pytest
import yaml

from busim.planning.runner import capacity
from tests.engine.test_queueing import erlang_c

pytestmark = pytest.mark.xdist_group("capacity-theory")


def queue_file(folder, rate_per_s: float, servers: int, service_mean_s: float, duration_s: float) -> str:
    """A scenario file of one queue: Poisson publishing, no broker latency, exponential service."""
    document = {
        "name": "queue",
        "seed": 11,
        "duration": duration_s,
        "warmup": 1,
        "drain_timeout": 60,
        "events": {"Job": {}},
        "publishers": [{"name": "source", "event": "Job", "arrivals": "poisson", "rate": rate_per_s}],
        "broker": {"latency": 0},
        "consumers": [
            {
                "name": "server",
                "subscribes": ["Job"],
                "instances": servers,
                "processing_time": {"exponential": {"mean": service_mean_s}},
            }
        ],
    }
    path = folder / "queue.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return str(path)


def test_the_fewest_servers_for_a_mean_wait_is_the_erlang_c_answer(tmp_path):
    rate, service_mean_s, bound_s = 100.0, 0.05, 0.005
    load = rate * service_mean_s
    waits = {c: erlang_c(c, load) / (c / service_mean_s - rate) for c in range(6, 10)}
    expected = min(c for c, wait in waits.items() if wait < bound_s)
    assert expected == 8
    path = queue_file(tmp_path, rate, 4, service_mean_s, 60)
    answer = capacity(
        path,
        "consumers.server.instances",
        "min",
        ["server.latency_s.queue_wait.mean < 5ms"],
        replications=5,
        max_replications=20,
        seed=0,
    )
    assert answer.answer == expected
    assert [(probe.value, probe.meets) for probe in answer.probes] == [(4, False), (8, True), (6, False), (7, False)]
    assert answer.nearest_failing.value == 7


def test_the_highest_rate_under_a_p99_bound_is_the_m_m_1_answer(tmp_path):
    service_rate, bound_s = 1000.0, 0.009
    highest_rate = service_rate - math.log(100) / bound_s
    path = queue_file(tmp_path, 400, 1, 1 / service_rate, 10)
    answer = capacity(
        path,
        "publishers.source.rate",
        "max",
        ["server.p99 < 9ms"],
        lowest=100,
        highest=1000,
        tolerance=0.03,
        replications=4,
        max_replications=8,
        seed=0,
    )
    assert 0.80 * highest_rate < answer.answer < 1.03 * highest_rate
    assert answer.nearest_failing.value > answer.answer
    # Every probe at or above twice the bound's rate fails, every one well below it meets.
    assert all(not probe.meets for probe in answer.probes if probe.value >= 600)
    assert all(probe.meets for probe in answer.probes if probe.value <= 400)
