"""Invariants: the bounds a scenario declares acceptable, checked against a run's summary.

An invariant bounds every key of a counter (its lowest value against ``min``,
its highest against ``max``) or figures of a consumer (duplicate effects,
latency p99, ...). Each bound checked gives one :class:`InvariantOutcome`. A
figure with no value (no latency when nothing was processed) fails its bound:
nothing in the run shows that it holds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import TYPE_CHECKING, Literal

from busim.scenario.schema import INVARIANT_METRICS, Invariant
from busim.scenario.units import format_duration

if TYPE_CHECKING:  # the summary imports this module to check a run's invariants
    from busim.analysis.summary import ConsumerSummary

MetricReader = Callable[["ConsumerSummary"], float | None]


def _fraction_of_subscribed(figure: str) -> MetricReader:
    """A count of messages as a fraction of the messages subscribed; None when none were."""

    def read(consumer: ConsumerSummary) -> float | None:
        return getattr(consumer, figure) / consumer.subscribed if consumer.subscribed else None

    return read


# How each metric an invariant can bound is read from a consumer's summary. The
# scenario format lists the same metrics with their units (INVARIANT_METRICS in
# busim.scenario.schema); durations are in seconds.
METRICS: dict[str, MetricReader] = {
    "duplicate_effects": attrgetter("duplicate_effects"),
    "duplicate_deliveries": attrgetter("duplicate_deliveries"),
    "redelivered": attrgetter("redelivered"),
    "lost": attrgetter("lost"),
    "dead_lettered": attrgetter("dead_lettered"),
    "stuck_pending": attrgetter("stuck_pending"),
    "rejected": attrgetter("rejected"),
    "wrongly_rejected": attrgetter("wrongly_rejected"),
    "wrongly_accepted": attrgetter("wrongly_accepted"),
    "out_of_order": attrgetter("out_of_order"),
    "in_flight_at_end": attrgetter("in_flight_at_end"),
    "crashes": attrgetter("crashes"),
    "max_backlog": attrgetter("max_backlog"),
    "drain_time": attrgetter("drain_s"),
    "processed": attrgetter("processed"),
    "latency_p50": attrgetter("latency_s.end_to_end.p50"),
    "latency_p90": attrgetter("latency_s.end_to_end.p90"),
    "latency_p95": attrgetter("latency_s.end_to_end.p95"),
    "latency_p99": attrgetter("latency_s.end_to_end.p99"),
    "latency_p999": attrgetter("latency_s.end_to_end.p999"),
    "latency_max": attrgetter("latency_s.end_to_end.max"),
    "latency_mean": attrgetter("latency_s.end_to_end.mean"),
    "duplicate_effect_fraction": _fraction_of_subscribed("duplicate_effects"),
    "lost_fraction": _fraction_of_subscribed("lost"),
    "oversold": attrgetter("oversold"),
    "lost_updates": attrgetter("lost_updates"),
    "optimistic_retries": attrgetter("optimistic_retries"),
    "recovery_max": lambda consumer: consumer.recovery_s.max if consumer.recovery_s.count else 0.0,
    "stale_read_fraction": attrgetter("stale_read_fraction"),
    "given_up": lambda consumer: consumer.failures.given_up if consumer.failures else 0,
    "poison_in_flight": lambda consumer: consumer.failures.poison_in_flight if consumer.failures else 0,
}

# What a counter invariant measures for each bound: every key is at least min
# when the lowest is, and at most max when the highest is.
COUNTER_MEASURES = {"min": "lowest", "max": "highest"}


@dataclass(frozen=True)
class InvariantOutcome:
    """One bound of an invariant, checked against a run.

    ``subject`` is the consumer (``inventory``) or its counter
    (``inventory.stock``); ``metric`` is the figure bounded, for a counter
    ``lowest`` or ``highest`` over its keys. Durations are in seconds;
    ``measured`` is None when the run has no value for the figure, and the
    bound then fails.
    """

    name: str
    subject: str
    metric: str
    bound: Literal["max", "min"]
    limit: float
    measured: float | None
    passed: bool


def check_invariants(
    invariants: Sequence[Invariant], consumers: Mapping[str, ConsumerSummary]
) -> tuple[InvariantOutcome, ...]:
    """Check every bound of every invariant against the consumers' summaries, in declaration order.

    A counter without a named consumer is the one consumer that keeps it, as
    the scenario's cross-checks ensure.
    """
    outcomes = []
    for invariant in invariants:
        for bound in ("min", "max"):
            limits = getattr(invariant, bound)
            if limits is None:
                continue
            if invariant.counter is not None:
                keeper = invariant.consumer or next(
                    name for name, consumer in consumers.items() if invariant.counter in consumer.state
                )
                metric = COUNTER_MEASURES[bound]
                measured = getattr(consumers[keeper].state[invariant.counter], metric)
                subject = f"{keeper}.{invariant.counter}"
                outcomes.append(_outcome(invariant.name, subject, metric, bound, limits, measured))
                continue
            consumer = consumers[invariant.consumer]
            for metric, limit in limits.items():
                measured = METRICS[metric](consumer)
                outcomes.append(_outcome(invariant.name, invariant.consumer, metric, bound, limit, measured))
    return tuple(outcomes)


def _outcome(
    name: str, subject: str, metric: str, bound: Literal["max", "min"], limit: float, measured: float | None
) -> InvariantOutcome:
    # A figure the run has no value for shows nothing about the bound: it fails.
    passed = measured is not None and (measured <= limit if bound == "max" else measured >= limit)
    return InvariantOutcome(name, subject, metric, bound, limit, measured, passed)


def failed_invariants(outcomes: Sequence[InvariantOutcome]) -> tuple[str, ...]:
    """The names of the invariants with a bound that failed, in declaration order."""
    return tuple(dict.fromkeys(outcome.name for outcome in outcomes if not outcome.passed))


def invariant_names(outcomes: Sequence[InvariantOutcome]) -> tuple[str, ...]:
    """The names of the invariants checked, in declaration order."""
    return tuple(dict.fromkeys(outcome.name for outcome in outcomes))


# ---------------------------------------------------------------- in words
NOT_MEASURED = "n/a"


def measure_text(value: float | None, metric: str) -> str:
    """A limit or a measured value of ``metric`` in its unit: ``250ms``, ``1.5%``, ``1,204``."""
    if value is None:
        return NOT_MEASURED
    unit = INVARIANT_METRICS.get(metric, "count")  # a counter's lowest and highest are counts
    if unit == "duration":
        return format_duration(value)
    if unit == "fraction":
        return f"{value * 100:.3g}%"
    if isinstance(value, int) or value.is_integer():
        return f"{int(value):,}"
    return f"{value:,.2f}".rstrip("0").rstrip(".")  # a mean over replications, or a limit between whole numbers


def bound_text(outcome: InvariantOutcome) -> str:
    """What a bound checks, in words: ``inventory latency p99 <= 250ms``, ``lowest inventory stock >= 0``."""
    sign = "<=" if outcome.bound == "max" else ">="
    limit = measure_text(outcome.limit, outcome.metric)
    if outcome.metric in COUNTER_MEASURES.values():
        consumer, counter = outcome.subject.split(".", 1)
        return f"{outcome.metric} {consumer} {counter} {sign} {limit}"
    label = outcome.metric.replace("p999", "p99.9").replace("_", " ")
    return f"{outcome.subject} {label} {sign} {limit}"
