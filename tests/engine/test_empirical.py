"""Empirical durations: a uniform draw read through measured percentiles, linear between them.

Over a segment from percentile ``p_i`` to ``p_j`` with durations ``a`` to
``b`` a draw is ``a + (b - a) t`` with ``t`` uniform on [0, 1], which holds
probability ``w = (p_j - p_i) / 100``. So the mean is the sum of
``w (a + b) / 2`` and the second moment the sum of ``w (a² + ab + b²) / 3``.
"""

import math
from itertools import pairwise

import numpy as np
import pytest

import busim
from busim.engine.sampling import sample_durations
from busim.scenario.schema import EmpiricalTime
from tests.conftest import consumer, scenario

MEASURED = {"p0": "0.2ms", "p50": "0.9ms", "p90": "1.6ms", "p99": "4ms", "p99.9": "7ms", "p100": "11ms"}
Z = 4.0  # standard errors an estimate may stray: 6e-5 of a normal's mass lies beyond


def segments(distribution: EmpiricalTime) -> list[tuple[float, float, float]]:
    """(probability, shortest, longest) of each segment between two given percentiles."""
    points = sorted(distribution.points.items())
    return [((p_high - p_low) / 100, low_s, high_s) for (p_low, low_s), (p_high, high_s) in pairwise(points)]


def exact_mean_s(distribution: EmpiricalTime) -> float:
    return sum(w * (a + b) / 2 for w, a, b in segments(distribution))


def exact_variance_s2(distribution: EmpiricalTime) -> float:
    second_moment = sum(w * (a * a + a * b + b * b) / 3 for w, a, b in segments(distribution))
    return second_moment - exact_mean_s(distribution) ** 2


def test_a_seed_gives_the_draws_read_through_the_percentiles():
    empirical = EmpiricalTime.model_validate(
        {"kind": "empirical", "p0": "1ms", "p25": "2ms", "p50": "2ms", "p100": "6ms"}
    )
    # default_rng(42).random(6), each read by hand in its segment: 0-25 from 1 to 2 ms, 25-50 the atom at
    # 2 ms, 50-100 from 2 to 6 ms. The hand's arithmetic may round differently in the last bit.
    u = [
        0.7739560485559633,
        0.4388784397520523,
        0.8585979199113825,
        0.6973680290593639,
        0.09417734788764953,
        0.9756223516367559,
    ]
    expected_s = [
        0.002 + 0.004 * (u[0] * 100 - 50) / 50,
        0.002,
        0.002 + 0.004 * (u[2] * 100 - 50) / 50,
        0.002 + 0.004 * (u[3] * 100 - 50) / 50,
        0.001 + 0.001 * (u[4] * 100) / 25,
        0.002 + 0.004 * (u[5] * 100 - 50) / 50,
    ]
    draws_s = sample_durations(empirical, np.random.default_rng(42), 6)
    assert draws_s.tolist() == pytest.approx(expected_s, rel=1e-12, abs=0)
    assert draws_s[1] == 0.002  # exactly the atom
    assert draws_s[4] == pytest.approx(0.0013767093915505982, rel=1e-15)


def test_the_draws_stay_between_p0_and_p100_and_their_mean_is_the_exact_mean():
    empirical = EmpiricalTime.model_validate({"kind": "empirical", **MEASURED})
    draws_s = sample_durations(empirical, np.random.default_rng(9), 100_000)
    assert draws_s.min() >= 0.0002
    assert draws_s.max() <= 0.011
    # The exact mean is 0.275 + 0.5 + 0.252 + 0.0495 + 0.009 = 1.0855 ms; the sample mean's standard error
    # is the standard deviation over sqrt(n).
    assert exact_mean_s(empirical) == pytest.approx(0.0010855, rel=1e-12)
    standard_error_s = math.sqrt(exact_variance_s2(empirical) / draws_s.size)
    assert abs(draws_s.mean() - exact_mean_s(empirical)) <= Z * standard_error_s


def test_an_atom_is_drawn_with_the_probability_between_its_percentiles():
    empirical = EmpiricalTime.model_validate({"kind": "empirical", "p0": "0ms", "p30": "0ms", "p100": "5ms"})
    draws_s = sample_durations(empirical, np.random.default_rng(4), 100_000)
    # Binomial: the fraction at 0 has standard deviation sqrt(p (1 - p) / n), p = 0.3.
    at_zero = np.mean(draws_s == 0)
    assert abs(at_zero - 0.3) <= Z * math.sqrt(0.3 * 0.7 / draws_s.size)


def test_a_simulated_broker_latency_has_the_measured_percentiles():
    """SQS standard queues keep no order, so each message's broker latency is its own draw.

    The sample p-quantile of n draws has standard error sqrt(p (1 - p) / n) / f, with f the density at
    the quantile: here 1 / f is the slope of the duration in the probability, which at a given
    percentile differs on either side of it, so the steeper side's is taken.
    """
    empirical = EmpiricalTime.model_validate({"kind": "empirical", **MEASURED})
    broker = {"preset": "sqs-standard", "duplication": 0, "latency": {"empirical": MEASURED}}
    result = busim.simulate(
        scenario(
            duration=400,
            publishers=[{"name": "source", "event": "Job", "arrivals": "uniform", "rate": 100}],
            broker=broker,
            consumers=[consumer(processing_time="0s")],
        )
    )
    broker_s = result.summary.consumers["worker"].latency_s.broker
    assert broker_s.count == 40_000
    points = sorted(empirical.points.items())
    for index, (field, percentile) in enumerate([("p50", 50), ("p90", 90), ("p99", 99), ("p999", 99.9)], start=1):
        assert points[index][0] == percentile
        (p_low, low_s), (p, measured_s), (p_high, high_s) = points[index - 1 : index + 2]
        steepest_s = max((measured_s - low_s) / (p - p_low), (high_s - measured_s) / (p_high - p)) * 100
        q = p / 100
        standard_error_s = math.sqrt(q * (1 - q) / broker_s.count) * steepest_s
        assert abs(getattr(broker_s, field) - measured_s) <= Z * standard_error_s, (field, getattr(broker_s, field))
