"""Student t quantiles and confidence intervals against published tables and hand-worked means."""

import math

import numpy as np
import pytest

from busim.analysis.intervals import mean_interval, t_cdf, t_quantile


@pytest.mark.parametrize(
    ("probability", "degrees_of_freedom", "quantile"),
    [
        # Two-sided 95 % and 99 % critical values of the t table (e.g. NIST/SEMATECH e-Handbook, 1.3.6.7.2).
        (0.975, 1, 12.706),
        (0.975, 2, 4.303),
        (0.975, 4, 2.776),
        (0.975, 9, 2.262),
        (0.975, 29, 2.045),
        (0.975, 100, 1.984),
        (0.995, 5, 4.032),
        (0.995, 19, 2.861),
    ],
)
def test_t_quantiles_match_the_table(probability, degrees_of_freedom, quantile):
    assert t_quantile(probability, degrees_of_freedom) == pytest.approx(quantile, abs=5e-4)
    assert t_quantile(1 - probability, degrees_of_freedom) == pytest.approx(-quantile, abs=5e-4)


def test_the_t_distribution_is_symmetric_and_tends_to_the_normal():
    assert t_cdf(0.0, 7) == 0.5
    assert t_cdf(1.3, 7) + t_cdf(-1.3, 7) == pytest.approx(1.0, abs=1e-14)
    assert t_quantile(0.975, 100_000) == pytest.approx(1.95996, abs=1e-4)


def test_a_mean_interval_is_the_mean_plus_or_minus_t_times_the_standard_error():
    interval = mean_interval([1.0, 2.0, 3.0, 4.0, 5.0])
    # sd = sqrt(2.5), n = 5, t(0.975, 4) = 2.7764451
    half = 2.7764451 * math.sqrt(2.5) / math.sqrt(5)
    assert interval.mean == 3.0
    assert (interval.low, interval.high) == (pytest.approx(3 - half, rel=1e-7), pytest.approx(3 + half, rel=1e-7))
    assert interval.replications == 5


def test_one_replication_has_no_interval():
    interval = mean_interval(np.array([4.2]))
    assert interval.mean == 4.2 and math.isnan(interval.low) and math.isnan(interval.high)


def test_probabilities_outside_zero_and_one_are_refused():
    with pytest.raises(ValueError, match="between 0 and 1"):
        t_quantile(1.0, 3)
