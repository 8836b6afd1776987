"""Broker latency: every copy keeps its own draw, and an ordered scope blocks behind its slowest copy.

Within an ordering scope a copy reaches the queue at
``max(accepted + its own draw, arrival of the copy ahead)``. For Poisson
arrivals at rate ``λ`` and independent draws ``L`` with CDF ``F``, the
delay of a copy behind an infinite past is therefore
``P(D <= x) = F(x) · exp(-λ · E[(L - x)+])``: at low load it is ``F``
itself, and its tail grows with the rate.

Tolerances are binomial: the fraction of ``n`` independent samples at or
below the true ``p``-quantile has standard deviation ``sqrt(p(1-p)/n)``, and
checks allow :data:`Z` of them. Under head-of-line blocking consecutive
delays are correlated, so there the standard deviation comes from the means
of consecutive batches of the run (the batch-means method).
"""

import math

import numpy as np
import pytest

import busim
from busim.engine.keys import key_codes, partition_of
from busim.engine.randomness import RandomStreams
from busim.engine.sampling import sample_durations
from busim.scenario.presets import PRESETS
from busim.scenario.units import parse_duration
from tests.conftest import consumer, scenario

Z = 4.0  # standard deviations a fraction may stray: 6e-5 of a normal's mass lies beyond


def poisson(rate_per_s, duration_s, **changes):
    """Jobs published by a Poisson process, over 50 keys, to one consumer that takes no time."""
    return scenario(
        duration=duration_s,
        events={"Job": {"key": "item", "fields": {"item": {"uniform_int": {"low": 1, "high": 50}}}}},
        publishers=[{"name": "source", "event": "Job", "rate": rate_per_s}],
        **changes,
    )


def broker_latency_s(result):
    """Each message's broker latency (publish to arrival in the queue), in publish order."""
    group = result.record.groups[0]
    deliveries = group.deliveries
    first = deliveries.attempt == 1
    latency_s = np.full(group.message_ids.size, np.nan)
    latency_s[deliveries.message[first]] = (
        deliveries.arrival_s[first] - result.record.messages.publish_s[group.message_ids[deliveries.message[first]]]
    )
    return latency_s


@pytest.mark.parametrize(
    ("preset", "scope"),
    [("rabbitmq", "queue"), ("kafka", "partition"), ("sqs-fifo", "key"), ("sqs-standard", "none")],
)
def test_each_copy_keeps_its_own_draw_and_never_overtakes_the_copy_ahead(preset, scope):
    broker = {"preset": preset, "latency": {"exponential": {"mean": "20ms"}}}
    if preset.startswith("sqs"):
        broker["duplication"] = 0
    result = busim.simulate(poisson(200, 5, broker=broker))
    record, group = result.record, result.record.groups[0]
    # The draws, from the same stream, in publish order: copy i is message i.
    draws_s = sample_durations(
        result.scenario.broker.latency, RandomStreams.from_seed(1).generator("broker", "worker", "latency"), 1000
    )[: group.message_ids.size]
    own_s = record.messages.accept_s[group.message_ids] + draws_s
    scopes = {
        "queue": np.zeros(own_s.size, np.int64),
        "partition": partition_of(record.scenario, record.messages, group.selection, 6),
        "key": key_codes(record.scenario, record.messages, group.selection)[0],
        "none": np.arange(own_s.size),
    }[scope]
    expected_s = own_s.copy()
    ahead_s: dict[int, float] = {}
    for message, scope_of in enumerate(scopes.tolist()):
        expected_s[message] = max(own_s[message], ahead_s.get(scope_of, -math.inf))
        ahead_s[scope_of] = expected_s[message]
    arrival_s = broker_latency_s(result) + record.messages.publish_s[group.message_ids]
    np.testing.assert_allclose(arrival_s, expected_s, rtol=0, atol=1e-12)
    blocked = expected_s > own_s
    assert blocked.any() == (scope != "none")


def declared_quantiles():
    for name, preset in PRESETS.items():
        latency = preset.defaults["latency"].value
        if isinstance(latency, dict) and "quantiles" in latency:
            yield name, {float(p[1:]): parse_duration(value) for p, value in latency["quantiles"].items()}


@pytest.mark.parametrize(("preset", "quantiles"), list(declared_quantiles()))
def test_at_one_percent_of_capacity_broker_latency_has_the_declared_quantiles(preset, quantiles):
    # One instance processing for 10 ms serves 100/s; the publishers send 1/s.
    broker = {"preset": preset}
    if "duplication" in PRESETS[preset].defaults:
        broker["duplication"] = 0
    result = busim.simulate(poisson(1, 20_000, broker=broker, consumers=[consumer(processing_time="10ms")]))
    latency_s = broker_latency_s(result)
    for percentile, declared_s in quantiles.items():
        p = percentile / 100
        below = np.mean(latency_s <= declared_s)
        assert abs(below - p) <= Z * math.sqrt(p * (1 - p) / latency_s.size), (percentile, below)


def fraction_and_deviation(below: np.ndarray, batches: int = 50) -> tuple[float, float]:
    """The fraction of True in ``below``, and its standard deviation from the means of consecutive batches."""
    means = np.array([batch.mean() for batch in np.array_split(below, batches)])
    return float(below.mean()), float(means.std(ddof=1) / math.sqrt(batches))


def blocked_quantile_s(p: float, rate_per_s: float, mean_s: float) -> float:
    """The p-quantile of the delay behind an infinite Poisson past, for exponential draws, by bisection.

    ``E[(L - x)+] = mean · exp(-x / mean)`` for an exponential ``L``.
    """
    low, high = 0.0, 100 * mean_s
    for _ in range(200):
        x = (low + high) / 2
        below = (1 - math.exp(-x / mean_s)) * math.exp(-rate_per_s * mean_s * math.exp(-x / mean_s))
        low, high = (x, high) if below < p else (low, x)
    return (low + high) / 2


def test_under_load_an_ordered_queue_blocks_behind_slow_copies_as_theory_says():
    rate_per_s, mean_s = 20_000, 0.001
    broker = {"latency": {"exponential": {"mean": "1ms"}}}
    result = busim.simulate(poisson(rate_per_s, 5, broker=broker))
    group = result.record.groups[0]
    settled = result.record.messages.publish_s[group.message_ids] >= 0.1  # behind a past of 2,000 copies
    latency_s = broker_latency_s(result)[settled]
    for p in (0.5, 0.9, 0.99, 0.999):
        x_s = blocked_quantile_s(p, rate_per_s, mean_s)
        below, deviation = fraction_and_deviation(latency_s <= x_s)
        assert abs(below - p) <= Z * deviation, (p, below, deviation)
    # Each copy's own draw has a median of 0.69 ms; behind a queue at 20 msg/ms the median is 3.7 ms.
    assert np.median(latency_s) == pytest.approx(blocked_quantile_s(0.5, rate_per_s, mean_s), rel=0.02)


def quantile_interval_s(samples_s: np.ndarray, p: float) -> tuple[float, float]:
    """A distribution-free interval for the p-quantile: order statistics Z binomial deviations apart."""
    ordered = np.sort(samples_s)
    spread = Z * math.sqrt(ordered.size * p * (1 - p))
    low = max(math.floor(ordered.size * p - spread), 0)
    high = min(math.ceil(ordered.size * p + spread), ordered.size - 1)
    return float(ordered[low]), float(ordered[high])


def test_broker_latency_tails_never_shrink_as_the_rate_rises():
    tails = {}
    for rate_per_s, duration_s in ((20, 2_000), (20_000, 5)):
        result = busim.simulate(poisson(rate_per_s, duration_s, broker={"preset": "nats-jetstream"}))
        tails[rate_per_s] = broker_latency_s(result)
    for p in (0.99, 0.999):
        _, slow_upper_s = quantile_interval_s(tails[20], p)
        assert np.quantile(tails[20_000], p) > slow_upper_s, p
