"""Confidence intervals over independent replications (Student t).

Each replication is one run with its own seed; a metric's replications are
independent draws of it, so its mean has a t-distributed error with
``n - 1`` degrees of freedom. numpy has no t quantile, so the distribution
function is computed here from the regularised incomplete beta function
(a continued fraction) and inverted by bisection.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

CONFIDENCE = 0.95


@dataclass(frozen=True)
class Interval:
    """The mean of a metric over replications and its confidence interval."""

    mean: float
    low: float  # NaN with fewer than two replications
    high: float
    replications: int

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2


def mean_interval(values: np.ndarray | list[float], confidence: float = CONFIDENCE) -> Interval:
    """The mean of ``values`` with its two-sided Student t interval."""
    values = np.asarray(values, dtype=float)
    count = values.size
    mean = float(values.mean()) if count else math.nan
    if count < 2:
        return Interval(mean, math.nan, math.nan, count)
    half = t_quantile(0.5 + confidence / 2, count - 1) * float(values.std(ddof=1)) / math.sqrt(count)
    return Interval(mean, mean - half, mean + half, count)


def t_quantile(probability: float, degrees_of_freedom: int) -> float:
    """The ``probability`` quantile of Student's t distribution (0 < probability < 1)."""
    if not 0 < probability < 1:
        raise ValueError(f"probability must lie strictly between 0 and 1 (got {probability})")
    if probability < 0.5:
        return -t_quantile(1 - probability, degrees_of_freedom)
    low, high = 0.0, 1.0
    while t_cdf(high, degrees_of_freedom) < probability:
        high *= 2
    for _ in range(200):
        middle = (low + high) / 2
        if t_cdf(middle, degrees_of_freedom) < probability:
            low = middle
        else:
            high = middle
        if high - low <= 1e-12 * high:
            break
    return (low + high) / 2


def t_cdf(t: float, degrees_of_freedom: int) -> float:
    """P(T <= t) for Student's t with the given degrees of freedom."""
    x = degrees_of_freedom / (degrees_of_freedom + t * t)
    tail = 0.5 * _incomplete_beta(degrees_of_freedom / 2, 0.5, x)
    return 1 - tail if t > 0 else tail


def _incomplete_beta(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    # The continued fraction converges fast on this side of the mean; use the symmetry on the other.
    if x < (a + 1) / (a + b + 2):
        return front * _beta_fraction(a, b, x) / a
    return 1 - front * _beta_fraction(b, a, 1 - x) / b


def _beta_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of the incomplete beta function, by the modified Lentz method."""
    tiny = 1e-300
    c, d = 1.0, 1 - (a + b) * x / (a + 1)
    d = 1 / (d if abs(d) > tiny else tiny)
    fraction = d
    for m in range(1, 400):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1 + numerator * d
            d = 1 / (d if abs(d) > tiny else tiny)
            c = 1 + numerator / c
            c = c if abs(c) > tiny else tiny
            fraction *= c * d
        if abs(c * d - 1) < 1e-15:
            break
    return fraction
