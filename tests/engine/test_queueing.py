"""The engine against queueing theory.

With Poisson publishing and a constant broker latency, the consumer queue
sees the Poisson stream shifted in time (a FIFO queue keeps order, and equal
delays never block one another), so the end-to-end mean is the latency plus
the M/M/c sojourn time: latency + C(c, a) / (c mu - lambda) + 1 / mu, with C
the Erlang C probability of waiting.

Tolerances, derived from the spread over seeds (not from this test's seed):
- mean latency, 6 %: over seeds 0..7 at 200k messages and utilisation 0.8,
  the relative standard deviation of the mean was 2.3 % for M/M/1 and 1.8 %
  for M/M/4 (queue waits are strongly correlated, so the error shrinks
  slowly). At 400k messages it is about 1.65 % and 1.3 %: 6 % is more than
  3.5 standard deviations.
- probability of waiting, 0.02 absolute: over seeds 0..5 at 400k messages its
  standard deviation was 0.003 (M/M/1) and 0.004 (M/M/4): 5 sd.
- M/M/1 time in the queue and in service is exponential with rate mu - lambda:
  the relative standard deviation of its p50, p90 and p99 over seeds 0..5 was
  1.4 %, 1.7 % and 3.7 %; the tolerances are 4 sd (7 %, 7 %, 15 %).
"""

import functools
import math

import numpy as np
import pytest

import busim
from busim.analysis.intervals import mean_interval
from tests.conftest import scenario

RATE_PER_S = 800
LATENCY_S = 0.001
DURATION_S = 500
WARMUP_S = 10
TOLERANCE = 0.06


def erlang_c(servers: int, offered_load: float) -> float:
    """Probability that an arrival waits in an M/M/c queue with offered load a = lambda / mu."""
    top = offered_load**servers / math.factorial(servers) * servers / (servers - offered_load)
    bottom = sum(offered_load**k / math.factorial(k) for k in range(servers)) + top
    return top / bottom


# The tests of one queue read its one run: in one process (--dist loadgroup), it is simulated once.
MM1_RUN = pytest.mark.xdist_group("queueing-mm1")
MM4_RUN = pytest.mark.xdist_group("queueing-mm4")
QUEUES = [pytest.param(1, 0.001, id="M/M/1", marks=MM1_RUN), pytest.param(4, 0.004, id="M/M/4", marks=MM4_RUN)]


@functools.cache
def simulated(servers: int, service_mean_s: float):
    """One run per queue, shared by the tests below (each takes a few seconds)."""
    return busim.simulate(mmc_scenario(servers, service_mean_s))


def mmc_scenario(servers: int, service_mean_s: float):
    return scenario(
        seed=2024,
        duration=DURATION_S,
        warmup=WARMUP_S,
        publishers=[{"name": "source", "event": "Job", "arrivals": "poisson", "rate": RATE_PER_S}],
        broker={"latency": LATENCY_S},
        consumers=[
            {
                "name": "server",
                "subscribes": ["Job"],
                "instances": servers,
                "processing_time": {"exponential": {"mean": service_mean_s}},
            }
        ],
    )


@pytest.mark.parametrize(("servers", "service_mean_s"), QUEUES)
def test_mean_latency_matches_erlang_c_at_utilisation_0_8(servers, service_mean_s):
    service_rate = 1 / service_mean_s
    offered_load = RATE_PER_S / service_rate
    assert offered_load / servers == pytest.approx(0.8)
    analytic_s = LATENCY_S + erlang_c(servers, offered_load) / (servers * service_rate - RATE_PER_S) + service_mean_s
    result = simulated(servers, service_mean_s)
    latency = result.summary.consumers["server"].latency_s
    assert latency.end_to_end.count > 390_000
    assert latency.end_to_end.mean == pytest.approx(analytic_s, rel=TOLERANCE)
    # The parts add up, and each part has its own known mean.
    assert latency.broker.mean == pytest.approx(LATENCY_S, rel=1e-9)
    assert latency.processing.mean == pytest.approx(service_mean_s, rel=0.01)


def waits_and_sojourns(result):
    """Per delivery, for messages published after the warm-up: time waiting, and waiting plus service."""
    group = result.record.groups[0]
    deliveries = group.deliveries
    published_s = result.record.messages.publish_s[group.message_ids[deliveries.message]]
    measured = published_s >= WARMUP_S
    wait_s = (deliveries.take_s - deliveries.arrival_s)[measured]
    sojourn_s = (deliveries.done_s - deliveries.arrival_s)[measured]
    return wait_s, sojourn_s


@pytest.mark.parametrize(("servers", "service_mean_s"), QUEUES)
def test_the_probability_of_waiting_is_erlang_c(servers, service_mean_s):
    offered_load = RATE_PER_S * service_mean_s
    wait_s, _ = waits_and_sojourns(simulated(servers, service_mean_s))
    assert np.mean(wait_s > 0) == pytest.approx(erlang_c(servers, offered_load), abs=0.02)


@MM1_RUN
def test_mm1_time_in_queue_and_service_is_exponential():
    _, sojourn_s = waits_and_sojourns(simulated(1, 0.001))
    rate = 1 / 0.001 - RATE_PER_S
    for percentile, tolerance in ((50, 0.07), (90, 0.07), (99, 0.15)):
        analytic_s = -math.log(1 - percentile / 100) / rate
        assert np.percentile(sojourn_s, percentile) == pytest.approx(analytic_s, rel=tolerance)


def mm1k_loss_fraction(overflow: str) -> tuple[float, dict[str, int]]:
    """An M/M/1/K queue: room for 4 waiting plus 1 in service, utilisation 0.8, 400k messages."""
    result = busim.simulate(
        scenario(
            seed=2024,
            duration=1000,
            publishers=[{"name": "source", "event": "Job", "arrivals": "poisson", "rate": 400, "retries": 0}],
            broker={"capacity": 4, "overflow": overflow},
            consumers=[{"name": "server", "subscribes": ["Job"], "processing_time": {"exponential": {"mean": 0.002}}}],
        )
    )
    server = result.summary.consumers["server"]
    return server.lost / server.subscribed, server.by_reason["lost"]


@pytest.mark.parametrize("overflow", ["reject-publish", "drop-head"])
def test_a_full_queue_loses_the_mm1k_blocking_probability(overflow):
    """An arrival finds the system full with probability (1 - rho) rho^K / (1 - rho^(K+1)) (PASTA).

    Refusing the arrival (reject-publish, no retries) and dropping the oldest (drop-head) lose one
    message per such arrival alike. Tolerance: over seeds 0..7 at 100k messages the loss fraction's
    standard deviation was 0.0027; at 400k about 0.0014, and 0.0055 is 4 of them.
    """
    rho, k = 0.8, 5
    expected = (1 - rho) * rho**k / (1 - rho ** (k + 1))
    fraction, reasons = mm1k_loss_fraction(overflow)
    assert fraction == pytest.approx(expected, abs=0.0055)
    assert set(reasons) == {"overflow_rejected" if overflow == "reject-publish" else "overflow_dropped"}


def test_replications_bracket_the_mm1_mean_latency_and_narrow_as_they_grow():
    """Forty M/M/1 replications (24k messages each, 2 s warm-up); the first ten are a replication set of their own.

    The analytic mean is 1 ms of broker latency plus 1 / (mu - lambda) = 5 ms. Over root seeds 0..19 the
    95 % interval covered 6 ms in 20 of 20 cases with 10 replications and with 40, and the half-width
    with 40 was 0.33 to 0.76 of that with 10 (expected about 0.56: sqrt(10/40) x t(0.975, 39) / t(0.975, 9)).
    """
    replications = busim.replicate(
        scenario(
            seed=2024,
            duration=30,
            warmup=2,
            publishers=[{"name": "source", "event": "Job", "arrivals": "poisson", "rate": RATE_PER_S}],
            broker={"latency": LATENCY_S},
            consumers=[{"name": "server", "subscribes": ["Job"], "processing_time": {"exponential": {"mean": 0.001}}}],
        ),
        replications=40,
    )
    means = [result.summary.consumers["server"].latency_s.end_to_end.mean for result in replications.results]
    ten, forty = (
        mean_interval(means[:10]),
        replications.figure("server", "latency_s", "end_to_end", "mean"),
    )
    for interval in (ten, forty):
        assert interval.low < 0.006 < interval.high
    assert forty.half_width < 0.8 * ten.half_width
