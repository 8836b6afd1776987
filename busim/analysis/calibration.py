"""How far a simulation is from a real run: each figure of the run against where one simulated run falls.

A real run is one run. Its figures are set beside replications of the same
scenario that publish the very same messages (the run's seed drives the
publishers) while the broker's and the consumers' draws vary. The question
is not where the simulated *mean* lies (a narrow interval that one run
misses often, however good the model) but where *one* simulated run falls:
the 95 % prediction interval of the replications,

    mean ± t(0.975, n - 1) · s · √(1 + 1/n),

clipped at 0 (counts and durations are never negative), and widened to
every value a replication gave (a small count such as a drift of 2 or 3 is
no normal variable: a value some simulated run produced is one a run
produces). A real figure inside it is *within*; outside, *above* or
*below*, with its gap relative to the simulated mean. Figures are named as
results.json names them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from busim.analysis.intervals import CONFIDENCE, Interval, mean_interval, t_quantile
from busim.analysis.summary import ConsumerSummary, Summary

COUNT_FIGURES = (
    "delivered",
    "redelivered",
    "duplicate_deliveries",
    "duplicate_effects",
    "lost",
    "dead_lettered",
    "out_of_order",
    "crashes",
)
LATENCY_PARTS = ("end_to_end", "processing")
LATENCY_STATISTICS = ("p50", "p90", "p99", "p999")

Verdict = Literal["within", "above", "below", "not measured"]


@dataclass(frozen=True)
class FigureCheck:
    """One figure of one consumer: the real run's value against the simulated runs'."""

    consumer: str
    figure: str  # as results.json names it under the consumer: "redelivered", "latency_s.end_to_end.p99"
    unit: Literal["count", "s"]
    simulated: Interval  # the simulated mean and its 95 % confidence interval
    one_run_low: float  # where 95 % of single simulated runs fall (the prediction interval)
    one_run_high: float
    real: float | None  # None where the real run did not measure it (no sample)

    @property
    def verdict(self) -> Verdict:
        if self.real is None or math.isnan(self.simulated.mean):
            return "not measured"
        if self.real > self.one_run_high:
            return "above"
        if self.real < self.one_run_low:
            return "below"
        return "within"

    @property
    def gap(self) -> float | None:
        """(real - simulated mean) / simulated mean; None where either is missing or the mean is 0."""
        if self.real is None or not self.simulated.mean:
            return None
        return (self.real - self.simulated.mean) / self.simulated.mean


@dataclass(frozen=True)
class LatencyCurves:
    """A consumer's end-to-end latency distribution, real and simulated, as (percentile, seconds) pairs."""

    real: tuple[tuple[float, float], ...]
    simulated: tuple[tuple[float, float], ...]  # at each percentile, the mean over the replications


@dataclass(frozen=True)
class Calibration:
    """Every figure of a real run against replications of its scenario."""

    replications: int
    checks: tuple[FigureCheck, ...]
    curves: dict[str, LatencyCurves]  # by consumer

    def outside(self) -> tuple[FigureCheck, ...]:
        """The checks whose real value lies outside where one simulated run falls."""
        return tuple(check for check in self.checks if check.verdict in ("above", "below"))


def calibrate(real: Summary, simulated: Sequence[Summary]) -> Calibration:
    """Check each count and latency figure of each consumer of ``real`` against ``simulated`` runs."""
    if not simulated:
        raise ValueError("calibration needs at least one simulated run")
    checks: list[FigureCheck] = []
    curves: dict[str, LatencyCurves] = {}
    for name, consumer in real.consumers.items():
        runs = [summary.consumers[name] for summary in simulated]
        for figure in consumer_figures(consumer):
            values = [figure_value(run, figure) for run in runs]
            checks.append(_check(name, figure, [v for v in values if v is not None], figure_value(consumer, figure)))
        curves[name] = LatencyCurves(
            consumer.latency_quantiles_s, _mean_curve([run.latency_quantiles_s for run in runs])
        )
    return Calibration(len(simulated), tuple(checks), curves)


def consumer_figures(consumer: ConsumerSummary) -> list[str]:
    """The figures calibrated for a consumer, in the order they are shown."""
    drift = [f"state.{counter}.abs_drift" for counter in consumer.state]
    latency = [f"latency_s.{part}.{stat}" for part in LATENCY_PARTS for stat in LATENCY_STATISTICS]
    return [*COUNT_FIGURES, *drift, *latency]


def figure_value(consumer: ConsumerSummary, figure: str) -> float | None:
    """A consumer's figure by its results.json name; None where the run has no sample of it."""
    match figure.split("."):
        case ["state", counter, "abs_drift"]:
            return float(consumer.state[counter].abs_drift)
        case ["latency_s", part, statistic]:
            value = getattr(getattr(consumer.latency_s, part), statistic)
            return None if value is None else float(value)
        case [count] if count in COUNT_FIGURES:
            return float(getattr(consumer, count))
    raise ValueError(f"not a calibrated figure: {figure!r}")


def unit_of(figure: str) -> Literal["count", "s"]:
    return "s" if figure.startswith("latency_s.") else "count"


def _check(consumer: str, figure: str, values: list[float], real: float | None) -> FigureCheck:
    simulated = mean_interval(values) if values else Interval(math.nan, math.nan, math.nan, 0)
    low, high = one_run_interval(values)
    return FigureCheck(consumer, figure, unit_of(figure), simulated, low, high, real)


def one_run_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Where one more run's value falls with probability ``confidence``: the Student t prediction interval,
    clipped at 0 and widened to the values given. With one value, that value (no spread is known); with none,
    NaN."""
    sample = np.asarray(values, dtype=float)
    if sample.size == 0:
        return math.nan, math.nan
    mean = float(sample.mean())
    if sample.size == 1:
        return mean, mean
    spread = t_quantile(0.5 + confidence / 2, sample.size - 1) * float(sample.std(ddof=1))
    half = spread * math.sqrt(1 + 1 / sample.size)
    return max(0.0, min(mean - half, float(sample.min()))), max(mean + half, float(sample.max()))


def _mean_curve(curves: list[tuple[tuple[float, float], ...]]) -> tuple[tuple[float, float], ...]:
    """At each percentile the runs share, the mean of their latencies."""
    curves = [curve for curve in curves if curve]
    if not curves:
        return ()
    percentiles = [percentile for percentile, _ in curves[0]]
    if any([percentile for percentile, _ in curve] != percentiles for curve in curves):
        raise ValueError("simulated runs report their latency at different percentiles")
    latencies = np.array([[latency for _, latency in curve] for curve in curves])
    return tuple(zip(percentiles, (float(value) for value in latencies.mean(axis=0)), strict=True))
