"""What a run found: one model for a run, a replicated run and a comparison of variants.

Every outcome offers the same interface, so that the console, the reports
and the charts read any of them alike:

- ``scenario``, ``source`` and ``run``: what ran, from where, on what;
- ``runs``: 1, or the number of replications;
- ``consumers`` and ``publishers``: their names, in the scenario's order;
- ``figure(consumer, *path)``: one figure as an :class:`Interval` (for one
  run, its value with ``low == mean == high``), or None where it has no value;
- ``consistent``, ``verdict``, ``failures`` and ``passed``: the judgement.

A :class:`Result` is the same whether it was simulated here (``record`` then
holds the raw record of every delivery) or read back from results.json
(:mod:`busim.results.document` writes and reads both).
"""

from __future__ import annotations

import dataclasses
import platform
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import simpy

from busim.analysis.intervals import Interval, mean_interval
from busim.analysis.invariants import COUNTER_MEASURES, InvariantOutcome, bound_text, invariant_names, measure_text
from busim.analysis.real import RealFigures
from busim.analysis.summary import Summary
from busim.engine.records import Stop
from busim.scenario import Scenario
from busim.version import __version__
from busim.words import count_of, counted

if TYPE_CHECKING:
    from busim.engine import RunRecord

Path = tuple[str | int, ...]
INCONSISTENT = "inconsistent with exactly-once processing"


@dataclass(frozen=True)
class Source:
    """Where a scenario came from, for the record."""

    file: str | None = None
    sha256: str | None = None
    overrides: tuple[str, ...] = ()
    variant: str | None = None  # the entry of the file's variants: block that ran, if one
    left_out: tuple[str, ...] = ()  # what of the file the overrides made moot and left out, each said

    def run_name(self, scenario_name: str) -> str:
        """What a run of the scenario ``scenario_name`` goes by: its name, and its variant's if it is one."""
        return f"{scenario_name} (variant {self.variant})" if self.variant else scenario_name


@dataclass(frozen=True)
class RunMetadata:
    """How long a run took, and the versions it ran on."""

    wall_time_s: float = 0.0
    busim_version: str = __version__
    python_version: str = platform.python_version()
    numpy_version: str = np.__version__
    simpy_version: str = simpy.__version__

    @classmethod
    def took(cls, wall_time_s: float) -> RunMetadata:
        return cls(wall_time_s=round(wall_time_s, 3))


@dataclass(frozen=True)
class MessageCounts:
    published: int  # by the publishers
    emitted: int  # by consumers, as they processed what they received


class _Outcome:
    """What every outcome offers; see the module's docstring."""

    scenario: Scenario
    source: Source
    run: RunMetadata

    @property
    def runs(self) -> int:
        return 1

    @property
    def consumers(self) -> tuple[str, ...]:
        return tuple(consumer.name for consumer in self.scenario.consumers)

    @property
    def publishers(self) -> tuple[str, ...]:
        return tuple(publisher.name for publisher in self.scenario.publishers)

    @property
    def wall_time_s(self) -> float:
        return self.run.wall_time_s

    def figure(self, consumer: str, *path: str | int) -> Interval | None:
        raise NotImplementedError

    @property
    def violations(self) -> tuple[str, ...]:
        """Every departure from exactly-once processing, in words."""
        raise NotImplementedError

    @property
    def invariant_failures(self) -> tuple[str, ...]:
        """Each bound of the scenario's invariants that failed, in words."""
        raise NotImplementedError

    @property
    def consistent(self) -> bool:
        """Exactly-once processing held: no drift, duplicate effect, loss, ... in any run."""
        return not self.violations

    @property
    def failures(self) -> tuple[str, ...]:
        """What fails the run, as ``busim run --fail-on-violation`` judges it, each in a sentence.

        A scenario with invariants says what is acceptable: its failed bounds.
        Without, any departure from exactly-once processing.
        """
        if self.scenario.invariants:
            return tuple(f"invariant {failure}" for failure in self.invariant_failures)
        return self.departures

    @property
    def departures(self) -> tuple[str, ...]:
        """The departures from exactly-once processing, each in a sentence of its own."""
        raise NotImplementedError

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        """The results.json document, as plain JSON data (see docs/results.md)."""
        from busim.results.document import document  # the document is written from this model

        return document(self)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Result(_Outcome):
    """One run: its summary, how it ran, and, when simulated in this process, its raw record."""

    scenario: Scenario  # as run, with its seed
    summary: Summary
    sim_time_s: float
    drained: bool
    messages: MessageCounts
    stopped: Stop | None = None  # a delivery loop stopped the run early
    source: Source = Source()
    run: RunMetadata = RunMetadata()
    record: RunRecord | None = field(default=None, repr=False, compare=False)
    real: RealFigures | None = None  # a run against a real broker: what only it has

    @property
    def mode(self) -> str:
        """``simulated``, or ``real`` for a run against a real broker."""
        return "simulated" if self.real is None else "real"

    def figure(self, consumer: str, *path: str | int) -> Interval | None:
        """``figure("inventory", "latency_s", "end_to_end", "p99")``; None where the run has no value."""
        value = _at(self.summary.consumers.get(consumer), path)
        return None if value is None else Interval(float(value), float(value), float(value), 1)

    @property
    def violations(self) -> tuple[str, ...]:
        return self.summary.violations

    @property
    def invariant_failures(self) -> tuple[str, ...]:
        return tuple(
            f"{outcome.name}: {bound_text(outcome)} (measured {measure_text(outcome.measured, outcome.metric)})"
            for outcome in self.summary.invariants
            if not outcome.passed
        )

    @property
    def departures(self) -> tuple[str, ...]:
        return tuple(f"{INCONSISTENT}: {violation}" for violation in self.violations)

    @property
    def verdict(self) -> str:
        """The run in a few words: ``consistent``, ``inconsistent (3 violations); 1 of 2 invariants hold``."""
        count = len(self.violations)
        words = f"inconsistent ({counted(count, 'violation')})" if count else "consistent"
        words = _with_invariants(words, (self.summary,))
        behind = self.real.generator.verdict() if self.real is not None else None
        notes = [note for lifecycle in self.summary.lifecycle.values() for note in lifecycle.notes]
        return "; ".join([words, *([behind] if behind else []), *notes])


@dataclass(frozen=True)
class Replications(_Outcome):
    """Independent runs of one scenario, each with a seed spawned from one root seed."""

    scenario: Scenario  # as run, with the root seed and the number of replications
    seeds: tuple[int, ...]  # each replication's seed
    results: tuple[Result, ...]  # each replication, in the order of seeds
    source: Source = Source()
    run: RunMetadata = RunMetadata()

    @property
    def runs(self) -> int:
        return len(self.results)

    @property
    def mode(self) -> str:
        """``simulated``: a run against a real broker runs once."""
        return "simulated"

    @property
    def summaries(self) -> tuple[Summary, ...]:
        return tuple(result.summary for result in self.results)

    def figure(self, consumer: str, *path: str | int) -> Interval | None:
        """The mean of a figure over the replications with its confidence interval; None where none has a value.

        A figure that cannot be negative (every one but a counter's values)
        has its interval start at 0 at the lowest. A replication without a
        value (no sample) is left out, and the interval says how many it is of.
        """
        values = [
            float(value)
            for result in self.results
            if (value := _at(result.summary.consumers.get(consumer), path)) is not None
        ]
        if not values:
            return None
        return _clamped(mean_interval(values), signed=signed_figure(path))

    def invariant(self, index: int) -> Interval | None:
        """The measured value of the ``index``-th bound checked, over the replications that measured it."""
        values = [
            float(outcome.measured)
            for summary in self.summaries
            if (outcome := summary.invariants[index]).measured is not None
        ]
        if not values:
            return None
        metric = self.summaries[0].invariants[index].metric
        return _clamped(mean_interval(values), signed=metric in COUNTER_MEASURES.values())

    def invariant_passes(self, index: int) -> int:
        """In how many replications the ``index``-th bound held."""
        return sum(summary.invariants[index].passed for summary in self.summaries)

    @property
    def invariants(self) -> tuple[InvariantOutcome, ...]:
        """The bounds checked (the first replication's outcomes; each replication checks the same bounds)."""
        return self.summaries[0].invariants

    @property
    def inconsistent_runs(self) -> int:
        return sum(not summary.consistent for summary in self.summaries)

    @property
    def violations(self) -> tuple[str, ...]:
        departed = self.inconsistent_runs
        return (f"in {count_of(departed, self.runs, 'replication')}",) if departed else ()

    @property
    def invariant_failures(self) -> tuple[str, ...]:
        failures = []
        for index, outcome in enumerate(self.invariants):
            failed = self.runs - self.invariant_passes(index)
            if failed:
                failures.append(
                    f"{outcome.name}: {bound_text(outcome)} (failed in {count_of(failed, self.runs, 'replication')})"
                )
        return tuple(failures)

    @property
    def departures(self) -> tuple[str, ...]:
        return tuple(f"{INCONSISTENT} {violation}" for violation in self.violations)

    @property
    def verdict(self) -> str:
        held = self.runs - self.inconsistent_runs
        return _with_invariants(f"consistent in {count_of(held, self.runs, 'replication')}", self.summaries)


@dataclass(frozen=True)
class Comparison:
    """Variants of a scenario run on the same seeds (common random numbers)."""

    names: tuple[str, ...]
    outcomes: tuple[Result | Replications, ...]  # one per variant, in order
    seed: int  # the seed the variants simulated for the comparison share
    # Per variant: the folder of the finished run it was read from, or None where simulated for the comparison.
    # A finished run keeps its own seed and replications.
    folders: tuple[str | None, ...] = ()

    def outcome(self, name: str) -> Result | Replications:
        return self.outcomes[self.names.index(name)]

    def folder(self, name: str) -> str | None:
        """The folder of the finished run that the variant ``name`` was read from, or None."""
        return self.folders[self.names.index(name)] if self.folders else None

    def label(self, name: str) -> str:
        """The variant ``name`` as a header shows it. Beside a finished run or a real one, with its mode, and
        with its number of runs where they differ: ``rabbit-real (real, 1 run)``, ``flash-sale (simulated)``; an
        interrupted real run is marked partial: ``rabbit-real (real, partial)``.
        Variants all simulated for the comparison go by their names alone."""
        outcome = self.outcome(name)
        if not self.folders and all(other.mode == "simulated" for other in self.outcomes):
            return name
        runs = ""
        if len({other.runs for other in self.outcomes}) > 1:
            runs = ", 1 run" if outcome.runs == 1 else f", {counted(outcome.runs, 'replication')}"
        if isinstance(outcome, Result) and outcome.real is not None and outcome.real.partial:
            runs += ", partial"  # interrupted: its figures cover only the part of the schedule it sent
        return f"{name} ({outcome.mode}{runs})"

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.label(name) for name in self.names)

    @property
    def replicated(self) -> bool:
        """Whether some variant is replicated, and so shows means with intervals."""
        return self.runs > 1

    def overrides(self, name: str) -> tuple[str, ...]:
        """What the variant ``name`` changes: its ``KEY=VALUE`` overrides."""
        return self.outcome(name).source.overrides

    @property
    def consumers(self) -> tuple[str, ...]:
        """The consumers every variant has, in the first variant's order."""
        first, *others = self.outcomes
        return tuple(name for name in first.consumers if all(name in other.consumers for other in others))

    @property
    def runs(self) -> int:
        """The most runs a variant has: 1, or its replications."""
        return max(outcome.runs for outcome in self.outcomes)

    def to_dict(self) -> dict[str, Any]:
        """The compare.json document, as plain JSON data (see docs/results.md)."""
        from busim.results.document import comparison_document

        return comparison_document(self)


Outcome = Result | Replications


# ---------------------------------------------------------------- helpers
# A counter's values, balances and keys (an event's field) can be below 0; every other figure of a run
# counts or times something.
_SIGNED_FIGURES = ("expected_total", "actual_total", "lowest", "highest", "expected", "actual", "key")


def signed_figure(path: Path) -> bool:
    """Whether the figure at ``path`` (below a consumer, or from the top of results.json) can be below 0."""
    return "state" in path[:-1] and path[-1] in _SIGNED_FIGURES  # consumers.<name>.state.<counter>...


def _at(value: Any, path: Path) -> Any:
    """The figure at ``path`` below a summary (its attributes, a dict's keys, a tuple's items), or None."""
    for key in path:
        if value is None:  # a summary with no samples (staleness without queries), or no such consumer
            return None
        if isinstance(value, dict):
            value = value.get(key)
        elif isinstance(value, tuple | list) and isinstance(key, int):
            value = value[key] if -len(value) <= key < len(value) else None
        elif dataclasses.is_dataclass(value) and isinstance(key, str):
            value = getattr(value, key, None)
        else:
            return None
    if isinstance(value, bool):
        return int(value)
    return value if isinstance(value, int | float) else None


def _clamped(interval: Interval, signed: bool) -> Interval:
    """A figure that is never negative has no interval below 0."""
    if signed or not interval.low < 0:
        return interval
    return dataclasses.replace(interval, low=0.0)


def _with_invariants(words: str, summaries: tuple[Summary, ...]) -> str:
    """``words`` with how the run fared against its invariants, if it has any."""
    names = invariant_names(summaries[0].invariants)
    if not names:
        return words
    failed = list(
        dict.fromkeys(outcome.name for summary in summaries for outcome in summary.invariants if not outcome.passed)
    )
    if len(summaries) > 1:
        held = sum(all(outcome.passed for outcome in summary.invariants) for summary in summaries)
        words += f"; invariants hold in {count_of(held, len(summaries), 'replication')}"
    else:
        words += (
            f"; {count_of(len(names) - len(failed), len(names), 'invariant')} {'holds' if len(names) == 1 else 'hold'}"
        )
    return words + (f"; fails {', '.join(failed)}" if failed else "")
