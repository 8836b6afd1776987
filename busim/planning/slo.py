"""Service-level objectives: bounds on figures that a point of a capacity search meets or not.

An objective is written ``FIGURE OP VALUE``: ``inventory.p99 < 200ms``,
``lost == 0``, ``inventory.max_backlog < 10000``, ``drain_s < 60s``. OP is
one of ``<``, ``<=``, ``>``, ``>=``, ``==``; a duration's VALUE takes the
scenario's units (``200ms``), others are numbers. A figure without a consumer
bounds every consumer's (see :mod:`busim.planning.figures`).

Replicated runs meet an inequality when the whole 95 % interval of the
figure's mean lies on its side of the bound, and fail it when the whole
interval lies on the other; an interval that straddles the bound leaves the
point undecided (more replications may decide it). ``==`` holds only where
every run gives exactly the value: ``lost == 0`` is broken by one lost
message in one run. A run without a value (no latency where nothing was
processed) fails, as an invariant does. With a single run, its value decides.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

import numpy as np

from busim.analysis.intervals import Interval
from busim.errors import BusimError
from busim.planning.figures import Figure, parse_figure
from busim.results import Replications, Result
from busim.scenario import Scenario
from busim.scenario.units import DURATION_HINT, format_duration, parse_duration

_COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "==": operator.eq,
    "<": operator.lt,
    ">": operator.gt,
}
_EXPRESSION = re.compile(r"^\s*(?P<figure>[^<>=!\s]+)\s*(?P<op><=|>=|==|<|>)\s*(?P<bound>\S.*?)\s*$")


class Verdict(Enum):
    MEETS = "meets"
    FAILS = "fails"
    UNDECIDED = "undecided"  # the interval straddles the bound


@dataclass(frozen=True)
class Objective:
    """``figure op bound`` for one consumer's figure, as written in ``text``."""

    text: str
    figure: Figure
    op: str
    bound: float  # seconds for a duration

    @property
    def bound_text(self) -> str:
        return format_duration(self.bound) if self.figure.duration else f"{self.bound:g}"

    @property
    def label(self) -> str:
        """``inventory.p99 < 200ms``, with the consumer named."""
        return f"{self.figure.label} {self.op} {self.bound_text}"

    def check(self, outcome: Result | Replications) -> Check:
        """Whether the runs of ``outcome`` meet the objective, fail it, or leave it undecided."""
        values = self.figure.values(outcome)
        interval = self.figure.interval(outcome)
        holds = _COMPARISONS[self.op]
        if np.isnan(values).any():
            verdict = Verdict.FAILS
        elif self.op == "==" or values.size == 1:
            verdict = Verdict.MEETS if all(holds(value, self.bound) for value in values) else Verdict.FAILS
        else:
            assert interval is not None
            ends = (interval.low, interval.high)
            if all(holds(end, self.bound) for end in ends):
                verdict = Verdict.MEETS
            elif not any(holds(end, self.bound) for end in ends):
                verdict = Verdict.FAILS
            else:
                verdict = Verdict.UNDECIDED
        return Check(self, interval, verdict)


@dataclass(frozen=True)
class Check:
    """One objective against one point's runs."""

    objective: Objective
    interval: Interval | None  # the figure's mean over the runs with a value, with its 95 % interval
    verdict: Verdict

    @property
    def margin(self) -> float | None:
        """How far the interval's end nearer the bound lies from it, on the side that meets it (positive)
        or the other (negative); in the figure's unit. None without a value."""
        if self.interval is None or math.isnan(self.interval.mean):
            return None
        low = self.interval.low if not math.isnan(self.interval.low) else self.interval.mean
        high = self.interval.high if not math.isnan(self.interval.high) else self.interval.mean
        bound = self.objective.bound
        if self.objective.op in ("<", "<="):
            return bound - high
        if self.objective.op in (">", ">="):
            return low - bound
        return -max(abs(low - bound), abs(high - bound))


def parse_objective(text: str, scenario: Scenario, flag: str = "--slo") -> list[Objective]:
    """The objectives ``text`` states: one per consumer where the figure names none.

    Raises:
        BusimError: naming the flag, the text is not ``FIGURE OP VALUE``, the figure is unknown, or the
            value is not a number (a duration, for a duration).
    """
    match = _EXPRESSION.match(text)
    if match is None:
        raise BusimError(
            f"{flag} {text}: expected FIGURE OP VALUE with OP one of < <= > >= ==, "
            "such as 'inventory.p99 < 200ms' or 'lost == 0'"
        )
    figures = parse_figure(match["figure"], scenario, flag)
    bound = _bound(match["bound"], figures[0].duration, text, flag)
    return [Objective(text.strip(), figure, match["op"], bound) for figure in figures]


def _bound(written: str, duration: bool, text: str, flag: str) -> float:
    if duration:
        try:
            seconds = parse_duration(written)
        except ValueError:
            raise BusimError(f"{flag} {text}: {written!r} is not a duration; {DURATION_HINT}") from None
        if seconds and _bare_number(written):  # 250 means 250 s in a scenario, and rarely what an objective means
            raise BusimError(
                f"{flag} {text}: give the duration with its unit, such as {written}ms or {written}s "
                "(a bare number would be seconds)"
            )
        return seconds
    try:
        value = float(written.replace("_", ""))
    except ValueError:
        raise BusimError(f"{flag} {text}: {written!r} is not a number") from None
    if not math.isfinite(value):
        raise BusimError(f"{flag} {text}: the bound must be a finite number (got {written})")
    return value


def _bare_number(written: str) -> bool:
    try:
        float(written)
    except ValueError:
        return False
    return True


def objectives_of(texts: list[str], scenario: Scenario, flag: str = "--slo") -> list[Objective]:
    """Every objective ``texts`` state, in order.

    Raises:
        BusimError: one of them is malformed (see :func:`parse_objective`).
    """
    return [objective for text in texts for objective in parse_objective(text, scenario, flag)]


def overall(checks: list[Check]) -> Verdict:
    """A point meets its objectives when it meets every one, fails when it fails one, else is undecided."""
    verdicts = {check.verdict for check in checks}
    if Verdict.FAILS in verdicts:
        return Verdict.FAILS
    return Verdict.UNDECIDED if Verdict.UNDECIDED in verdicts else Verdict.MEETS
