"""A sweep: the figures of a scenario at every point of a grid of key values, each a mean with its interval."""

from __future__ import annotations

from dataclasses import dataclass

from busim.analysis.intervals import Interval
from busim.planning.figures import Figure
from busim.results import Replications, Result, RunMetadata
from busim.scenario.ranges import Axis, AxisValue


@dataclass(frozen=True)
class SweepPoint:
    """One point of the grid: the value of each varied key, the --set keys its preset does not take, its runs."""

    name: str
    values: tuple[AxisValue, ...]  # one per axis, in the order of the sweep's axes
    left_out: tuple[str, ...]
    outcome: Result | Replications

    def figure(self, figure: Figure) -> Interval | None:
        """``figure``'s mean over the point's runs, with its 95 % interval; None where no run has a value."""
        return figure.interval(self.outcome)


@dataclass(frozen=True)
class Sweep:
    """Every point of the grid of ``axes``, run on the same seeds spawned from ``seed``."""

    file: str
    scenario: str  # the scenario's name
    axes: tuple[Axis, ...]
    whole_numbers: tuple[bool, ...]  # per axis: whether its key takes whole numbers (instances: 8, not 8.0)
    overrides: tuple[str, ...]
    figures: tuple[Figure, ...]
    seed: int
    replications: int
    points: tuple[SweepPoint, ...]
    run: RunMetadata

    @property
    def runs(self) -> int:
        return len(self.points) * self.replications

    def rows(self) -> list[dict[str, object]]:
        """One row per point and figure, tidy: the point, each key's value (a number in base units: per second,
        seconds, a plain number, in the key's type, an int for a count; a word as written), the consumer, the
        figure, its unit (``s`` for a duration, empty otherwise), its mean and 95 % interval (None where the runs
        have no value or too few for an interval)."""
        rows: list[dict[str, object]] = []
        for index, point in enumerate(self.points):
            # Numbers as they are, for pandas: a label such as 644.4/s is rounded and would read as text.
            keys = {
                axis.key: _number_or_word(value, whole)
                for axis, whole, value in zip(self.axes, self.whole_numbers, point.values, strict=True)
            }
            for figure in self.figures:
                interval = point.figure(figure)
                rows.append(
                    {
                        "point": index,
                        **keys,
                        "consumer": figure.consumer,
                        "figure": figure.name,
                        "unit": "s" if figure.duration else "",
                        "mean": None if interval is None else interval.mean,
                        "low": None if interval is None or interval.replications < 2 else interval.low,
                        "high": None if interval is None or interval.replications < 2 else interval.high,
                        "runs": point.outcome.runs,
                        "runs_with_value": 0 if interval is None else interval.replications,
                    }
                )
        return rows


def _number_or_word(value: AxisValue, whole: bool) -> float | int | str:
    """A key's value as the scenario holds it: its number in base units, an int where the key takes whole
    numbers (``8`` instances) and a float where not (``1.0`` s), or its label where it is a word (``kafka``)."""
    if value.number is None:
        return value.label
    return int(value.number) if whole else float(value.number)
