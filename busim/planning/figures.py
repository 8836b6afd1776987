"""The figures a sweep charts and a capacity search bounds, named as results.json names them.

A figure is written ``[CONSUMER.]NAME``: ``inventory.p99``, ``lost``,
``inventory.latency_s.queue_wait.mean``, ``state.stock.abs_drift``. Without
a consumer it stands for every consumer of the scenario, each on its own.
NAME is a path below a consumer in results.json, an invariant's metric
(``latency_p99``, ``lost_fraction``), or a short name for the end-to-end
latency: ``p50``, ``p90``, ``p95``, ``p99``, ``p999``, ``mean``, ``max``.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from busim.analysis.consistency import CounterConsistency
from busim.analysis.intervals import Interval, mean_interval
from busim.analysis.invariants import METRICS
from busim.analysis.latency import LatencyBreakdown, LatencySummary
from busim.analysis.summary import ConsumerSummary
from busim.errors import BusimError
from busim.results import Replications, Result
from busim.results.model import signed_figure
from busim.scenario import Scenario
from busim.scenario.schema import INVARIANT_METRICS, Consumer, did_you_mean

LATENCY_STATISTICS = ("mean", "p50", "p90", "p95", "p99", "p999", "max")
# What a sweep charts unless told otherwise.
DEFAULT_FIGURES = ("p99", "duplicate_effects", "max_backlog", "lost")


@dataclass(frozen=True)
class Figure:
    """One figure of one consumer: ``name`` as written, the ``path`` below the consumer in results.json
    (or an invariant's metric, read as the invariants read it)."""

    consumer: str
    name: str
    path: tuple[str, ...]
    duration: bool  # in seconds

    @property
    def label(self) -> str:
        """``inventory.p99``: the consumer and the figure as written."""
        return f"{self.consumer}.{self.name}"

    def value(self, summary: ConsumerSummary | None) -> float | None:
        """The figure in one run's summary of the consumer; None where the run has no value."""
        if summary is None:
            return None
        if len(self.path) == 1 and self.path[0] in METRICS:
            value = METRICS[self.path[0]](summary)
        else:
            value = summary
            for key in self.path:
                value = value.get(key) if isinstance(value, dict) else getattr(value, key, None)
                if value is None:
                    return None
        if isinstance(value, bool):
            return float(value)
        return float(value) if isinstance(value, int | float) else None

    def values(self, outcome: Result | Replications) -> np.ndarray:
        """The figure in each run of ``outcome``, NaN where a run has no value."""
        results = outcome.results if isinstance(outcome, Replications) else (outcome,)
        found = (self.value(result.summary.consumers.get(self.consumer)) for result in results)
        return np.array([math.nan if value is None else value for value in found], dtype=float)

    def interval(self, outcome: Result | Replications) -> Interval | None:
        """The mean over the runs that have a value, with its 95 % interval; None where none has."""
        values = self.values(outcome)
        values = values[~np.isnan(values)]
        if not values.size:
            return None
        interval = mean_interval(values)
        if values.size > 1 and not signed_figure(self.path) and interval.low < 0:
            interval = dataclasses.replace(interval, low=0.0)
        return interval


def _numeric(annotation: object) -> bool:
    return annotation in (int, float, "int", "float", "float | None", "int | None") or annotation in (
        int | None,
        float | None,
    )


def _paths(model: type, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], bool]:
    """Every numeric figure below ``model`` (a summary dataclass): its path and whether it is a duration."""
    hints = typing.get_type_hints(model)
    paths: dict[tuple[str, ...], bool] = {}
    for field in dataclasses.fields(model):
        hint = hints[field.name]
        path = (*prefix, field.name)
        if _numeric(hint):
            paths[path] = any(part.endswith("_s") for part in path)
        elif hint is LatencySummary or hint == LatencySummary | None:
            paths.update({(*path, statistic): True for statistic in LATENCY_STATISTICS})
            paths[(*path, "count")] = False
        elif hint is LatencyBreakdown:
            paths.update(_paths(LatencyBreakdown, path))
    return paths


_CONSUMER_PATHS = _paths(ConsumerSummary)
_COUNTER_FIGURES = tuple(
    field.name
    for field in dataclasses.fields(CounterConsistency)
    if _numeric(typing.get_type_hints(CounterConsistency)[field.name])
)
_SHORT = {statistic: ("latency_s", "end_to_end", statistic) for statistic in LATENCY_STATISTICS}


def known_names(scenario: Scenario) -> list[str]:
    """Every figure name a consumer of ``scenario`` has, short names first."""
    counters = sorted({counter for consumer in scenario.consumers for counter in _counters(consumer)})
    names = [
        *_SHORT,
        *INVARIANT_METRICS,
        *(".".join(path) for path in _CONSUMER_PATHS),
        *(f"state.{counter}.{figure}" for counter in counters for figure in _COUNTER_FIGURES),
    ]
    return list(dict.fromkeys(names))


def _counters(consumer: Consumer) -> list[str]:
    return [effect.counter for effect in consumer.effects]


def parse_figure(text: str, scenario: Scenario, flag: str) -> list[Figure]:
    """The figures ``text`` names: one, or one per consumer of ``scenario`` without a consumer named.

    Raises:
        BusimError: naming the flag, the figure or consumer is unknown.
    """
    written = text.strip()
    consumers = [consumer.name for consumer in scenario.consumers]
    first, dot, rest = written.partition(".")
    if dot and first in consumers:
        chosen, name = [first], rest
    else:
        chosen, name = consumers, written
    path, duration = _resolve(name, scenario)
    if path is None and dot and first not in consumers and _resolve(rest, scenario)[0] is not None:
        raise BusimError(
            f"{flag} {text}: no consumer {first!r}{did_you_mean(first, consumers) or ''} "
            f"(consumers: {', '.join(consumers)})"
        )
    if path is None:
        where = "" if dot and first in consumers else f", of any consumer ({', '.join(consumers)})"
        raise BusimError(
            f"{flag} {text}: no figure {name!r}{where}; figures go by their names in results.json "
            f"(docs/capacity.md#figures){did_you_mean(name, known_names(scenario))}"
        )
    return [Figure(consumer, name, path, duration) for consumer in chosen]


def _resolve(name: str, scenario: Scenario) -> tuple[tuple[str, ...] | None, bool]:
    """The path of the figure ``name`` and whether it is a duration; no path when there is no such figure."""
    if name in _SHORT:
        return _SHORT[name], True
    if name in INVARIANT_METRICS:
        return (name,), INVARIANT_METRICS[name] == "duration"
    path = tuple(name.split("."))
    if path in _CONSUMER_PATHS:
        return path, _CONSUMER_PATHS[path]
    if len(path) == 3 and path[0] == "state" and path[2] in _COUNTER_FIGURES:
        counters = {counter for consumer in scenario.consumers for counter in _counters(consumer)}
        if path[1] in counters:
            return path, False
    return None, False


def figures_of(texts: Sequence[str], scenario: Scenario, flag: str) -> list[Figure]:
    """Every figure ``texts`` name, each once, in their order.

    Raises:
        BusimError: one of them names no figure.
    """
    found: dict[tuple[str, tuple[str, ...]], Figure] = {}
    for text in texts:
        for figure in parse_figure(text, scenario, flag):
            found.setdefault((figure.consumer, figure.path), figure)
    return list(found.values())
