"""The capacity search: the smallest (or largest) value of a key that meets every objective.

The search assumes what capacity questions take for granted: more of the key
only helps (``min``: consumer instances, prefetch), or only hurts (``max``:
the publish rate). It probes the starting value, then doubles or halves it
until one probe meets the objectives and another does not (bracketing), then
halves the gap between them (bisection) until it is one whole number, or
within the tolerance, wide. Each probe replicates the scenario on the same
seeds (common random numbers), adding replications while an objective's
interval straddles its bound, up to a limit; a probe still undecided then
counts as not meeting, so the answer errs on the safe side.

Nothing here runs a simulation: :func:`search` is given ``measure(value,
replications)``, which the API backs with the simulator.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from busim.errors import BusimError, RunTooLargeError
from busim.planning.slo import Check, Objective, Verdict, overall
from busim.results import Replications, Result

Goal = Literal["min", "max"]
DEFAULT_TOLERANCE = 0.01  # of the answer, for a key that is not a whole number
MAX_STEPS = 40  # doublings or halvings while bracketing: 2^40 is beyond any scenario


@dataclass(frozen=True)
class SearchSpace:
    """Where to look: ``key`` from ``start``, within ``[lowest, highest]``, in whole numbers or not."""

    key: str
    goal: Goal  # min: the smallest value that meets the objectives; max: the largest
    start: float
    integer: bool
    lowest: float
    highest: float
    tolerance: float = DEFAULT_TOLERANCE  # relative: the bracket's width against the answer, to stop bisecting


@dataclass(frozen=True)
class Probe:
    """One value tried, its runs and how they fared against the objectives."""

    value: float
    outcome: Result | Replications
    checks: tuple[Check, ...]
    verdict: Verdict  # UNDECIDED: still straddling a bound after the most replications allowed
    phase: Literal["bracket", "bisect"]

    @property
    def meets(self) -> bool:
        return self.verdict is Verdict.MEETS

    @property
    def replications(self) -> int:
        return self.outcome.runs


@dataclass(frozen=True)
class CapacityAnswer:
    """What the search found: ``answer`` (None when no value tried meets the objectives), every probe in
    the order tried, and notes on what limited the search."""

    space: SearchSpace
    objectives: tuple[Objective, ...]
    probes: tuple[Probe, ...]
    answer: float | None  # an int where the key takes whole numbers, as every probe's value is
    notes: tuple[str, ...]

    @property
    def answer_probe(self) -> Probe | None:
        return next((probe for probe in self.probes if probe.value == self.answer), None)

    @property
    def nearest_failing(self) -> Probe | None:
        """The probe that did not meet the objectives nearest the answer, on the other side of it: the knee."""
        if self.answer is None:
            return None
        beyond = [
            probe
            for probe in self.probes
            if not probe.meets
            and (probe.value < self.answer if self.space.goal == "min" else probe.value > self.answer)
        ]
        return min(beyond, key=lambda probe: abs(probe.value - self.answer), default=None)  # type: ignore[operator]


Measure = Callable[[float, int], Result | Replications]


class RunLimitReached(BusimError):
    """A probe would take the search past the runs it may make; raised by a measure, ends the search."""


def search(
    space: SearchSpace,
    objectives: list[Objective],
    measure: Measure,
    replications: int,
    max_replications: int,
    on_probe: Callable[[Probe], None] | None = None,
) -> CapacityAnswer:
    """Find the value of ``space.key`` that answers the question ``space.goal`` asks.

    ``measure(value, n)`` gives ``n`` replications of the scenario with the
    key at ``value`` (the first ``n`` of one sequence of seeds: the runs it
    gave for fewer are the first of these). ``on_probe`` is called with each
    probe as it is decided.
    """
    probes: dict[float, Probe] = {}
    notes: list[str] = []

    def probe(value: float, phase: Literal["bracket", "bisect"]) -> bool:
        if value in probes:
            return probes[value].meets
        count = replications
        while True:
            outcome = measure(value, count)
            checks = tuple(objective.check(outcome) for objective in objectives)
            verdict = overall(list(checks))
            if verdict is not Verdict.UNDECIDED or count >= max_replications:
                break
            count = min(2 * count, max_replications)
        probes[value] = Probe(value, outcome, checks, verdict, phase)
        if on_probe is not None:
            on_probe(probes[value])
        return verdict is Verdict.MEETS

    toward_meeting, toward_failing = (_grow, _shrink) if space.goal == "min" else (_shrink, _grow)
    start = _within(space, space.start)
    meeting: float | None = None
    try:
        if probe(start, "bracket"):
            meeting, failing = _bracket(space, start, toward_failing, probe, want=False)
            if failing is None:
                notes.append(f"{_shown(space, meeting)}, the end of the range searched, meets every objective")
        else:
            failing, meeting = _bracket(space, start, toward_meeting, probe, want=True)
            if meeting is None:
                notes.append(
                    f"no value up to {_shown(space, failing)}, the end of the range searched, meets every objective"
                )
        if meeting is not None and failing is not None:
            while not _close(space, meeting, failing):
                middle = _middle(space, meeting, failing)
                if probe(middle, "bisect"):
                    meeting = middle
                else:
                    failing = middle
    except RunTooLargeError as error:
        notes.append(f"the search stopped where a run would be too large: {error}")
        found = [value for value, tried in probes.items() if tried.meets]
        meeting = (min if space.goal == "min" else max)(found, default=None)
    except RunLimitReached as error:
        notes.append(f"the search stopped: {error}")
        found = [value for value, tried in probes.items() if tried.meets]
        meeting = (min if space.goal == "min" else max)(found, default=None)
    tried = tuple(probes.values())
    if any(probe.verdict is Verdict.UNDECIDED for probe in tried):
        notes.append(
            f"{_count(sum(p.verdict is Verdict.UNDECIDED for p in tried))} still straddled a bound after "
            f"{max_replications} replications and counted as not meeting it"
        )
    return CapacityAnswer(space, tuple(objectives), tried, meeting, tuple(notes))


def _bracket(
    space: SearchSpace,
    start: float,
    step: Callable[[SearchSpace, float], float],
    probe: Callable[[float, Literal["bracket", "bisect"]], bool],
    want: bool,
) -> tuple[float, float | None]:
    """Step from ``start`` until a probe meets the objectives (``want``) or fails them (not ``want``).

    Returns the last value probed before that one and that one; None for it at the range's end.
    """
    value = start
    for _ in range(MAX_STEPS):
        following = step(space, value)
        if following == value:
            break
        if probe(following, "bracket") == want:
            return value, following
        value = following
    return value, None


def _grow(space: SearchSpace, value: float) -> float:
    grown = value * 2 if value > 0 else (1.0 if space.integer else space.tolerance)
    return _within(space, grown)


def _shrink(space: SearchSpace, value: float) -> float:
    return _within(space, math.floor(value / 2) if space.integer else value / 2)


def _within(space: SearchSpace, value: float) -> float:
    value = min(max(value, space.lowest), space.highest)
    return round(value) if space.integer else value  # an int: a count of instances has no 8.0


def _close(space: SearchSpace, meeting: float, failing: float) -> bool:
    if space.integer:
        return abs(meeting - failing) <= 1
    return abs(meeting - failing) <= space.tolerance * max(abs(meeting), abs(failing))


def _middle(space: SearchSpace, one: float, other: float) -> float:
    if space.integer:
        return math.floor((one + other) / 2)
    return (one + other) / 2


def _shown(space: SearchSpace, value: float) -> str:
    return f"{space.key}={value:.0f}" if space.integer else f"{space.key}={value:.4g}"


def _count(probes: int) -> str:
    return "1 probe" if probes == 1 else f"{probes} probes"
