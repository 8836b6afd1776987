"""Sweeps and capacity searches, run: scenarios loaded per point, simulated by the workers at hand.

Every point of a sweep and every probe of a search runs on the same seeds
(common random numbers), so that differences between points come from the
points. The runs of a sweep go to the workers as one batch; a search runs
probe after probe, each probe's replications in parallel.
"""

from __future__ import annotations

import math
import re
import time
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from busim.api import (
    MAX_MESSAGES,
    affordable_workers,
    checked_scenario,
    expected_group_messages,
    fresh_seed,
    memory_needed_bytes,
    replication_seeds,
    replications_of,
)
from busim.errors import BusimError, OverrideError
from busim.planning.capacity import (
    DEFAULT_TOLERANCE,
    CapacityAnswer,
    Goal,
    Probe,
    RunLimitReached,
    SearchSpace,
    search,
)
from busim.planning.figures import DEFAULT_FIGURES, figures_of
from busim.planning.slo import objectives_of
from busim.planning.sweep import Sweep, SweepPoint
from busim.results import Replications, Result, RunMetadata, Source
from busim.scenario import Scenario, load_scenario
from busim.scenario.ranges import Axis, parse_axis
from busim.scenario.schema import ConstantTime, RateStep, TaggedModel, did_you_mean
from busim.scenario.variants import Variant, grid
from busim.workers import RunDone, Simulation, Workers, as_workers

DEFAULT_SWEEP_REPLICATIONS = 5
DEFAULT_PROBE_REPLICATIONS = 5
DEFAULT_MAX_PROBE_REPLICATIONS = 40
FIND = "--find"


@dataclass(frozen=True)
class SweepPlan:
    """The points of a sweep, loaded and checked, before anything runs."""

    file: str
    axes: tuple[Axis, ...]
    overrides: tuple[str, ...]
    variants: tuple[Variant, ...]

    @property
    def scenario(self) -> Scenario:
        """The first point's scenario: what every point shares."""
        return self.variants[0].loaded.scenario

    @property
    def largest_run_messages(self) -> float:
        """The messages the consumer groups of the largest point's run handle."""
        return max(expected_group_messages(variant.loaded.scenario) for variant in self.variants)


def plan_sweep(path: str | Path, vary: Sequence[str], overrides: Sequence[str] = ()) -> SweepPlan:
    """Every point of the grid of ``vary`` (``KEY=RANGE`` or ``KEY=V1,V2``) of the scenario file ``path``.

    Raises:
        BusimError: a --vary or --set is invalid, or a point's scenario is.
    """
    axes = [parse_axis(spec) for spec in vary]
    if not axes:
        raise OverrideError("a sweep varies at least one key: give --vary KEY=RANGE, such as instances=1..8")
    variants = grid(Path(path), axes, list(overrides))
    return SweepPlan(str(path), tuple(axes), tuple(overrides), tuple(variants))


def sweep(
    plan: SweepPlan | str | Path,
    vary: Sequence[str] = (),
    overrides: Sequence[str] = (),
    replications: int = DEFAULT_SWEEP_REPLICATIONS,
    seed: int | None = None,
    figures: Sequence[str] = DEFAULT_FIGURES,
    workers: int | Workers | None = 1,
    cluster: str | None = None,
    on_run: RunDone | None = None,
    max_messages: int = MAX_MESSAGES,
    max_memory_bytes: float | None = None,
) -> Sweep:
    """Run every point of a sweep on the same ``replications`` seeds, spawned from ``seed`` (else the
    scenario's, else a fresh one).

    ``plan`` is a :class:`SweepPlan`, or a scenario file whose grid ``vary`` and ``overrides`` give (see
    :func:`plan_sweep`); ``overrides`` apply to every point (a key that applies to one preset only, to
    the points of that preset). ``figures`` are the ones the sweep reports (see
    :mod:`busim.planning.figures`). The runs are made by ``workers`` processes (None: one per core) or on
    the Dask cluster at ``cluster``, with the same results either way.

    Raises:
        BusimError: a --vary, --set or figure is invalid, a point's scenario is, or a run would be too large.
    """
    if not isinstance(plan, SweepPlan):
        plan = plan_sweep(plan, vary, overrides)
    chosen = figures_of(list(figures), plan.scenario, "--figure")
    if seed is None:
        seed = plan.scenario.seed if plan.scenario.seed is not None else fresh_seed()
    seeds = replication_seeds(seed, replications) if replications > 1 else (seed,)
    checked = [checked_scenario(variant.loaded, max_messages, max_memory_bytes) for variant in plan.variants]
    simulations = [Simulation(scenario, run_seed, source) for scenario, source in checked for run_seed in seeds]
    largest = max((scenario for scenario, _ in checked), key=memory_needed_bytes)
    started = time.perf_counter()
    with as_workers(
        affordable_workers(workers, largest, max_memory_bytes, len(simulations)), cluster, len(simulations)
    ) as pool:
        results = pool.run(simulations, on_run)
    count = len(seeds)
    points = tuple(
        SweepPoint(
            name=variant.name,
            values=variant.values,
            left_out=variant.left_out,
            outcome=_outcome(scenario, source, seed, seeds, results[index * count : (index + 1) * count]),
        )
        for index, (variant, (scenario, source)) in enumerate(zip(plan.variants, checked))
    )
    return Sweep(
        file=plan.file,
        scenario=plan.scenario.name,
        axes=plan.axes,
        whole_numbers=tuple(_takes_whole_numbers(plan.scenario, axis.key) for axis in plan.axes),
        overrides=plan.overrides,
        figures=tuple(chosen),
        seed=seed,
        replications=count,
        points=points,
        run=RunMetadata.took(time.perf_counter() - started),
    )


def _outcome(
    scenario: Scenario, source: Source, seed: int, seeds: Sequence[int], results: Sequence[Result]
) -> Result | Replications:
    if len(seeds) == 1:
        return results[0]
    return replications_of(scenario, seed, seeds, results, source, sum(result.run.wall_time_s for result in results))


# ---------------------------------------------------------------- capacity
@dataclass(frozen=True)
class KeyValue:
    """What a key holds in the scenario, as a capacity search varies it."""

    value: float | None  # None: the scenario leaves it unset
    integer: bool
    schedule: tuple[RateStep, ...] = ()  # a publisher's rate schedule, varied through its peak rate

    def assignment(self, key: str, value: float) -> str:
        """``KEY=TEXT`` setting the key to ``value`` (for a schedule: every step scaled to that peak)."""
        if self.schedule:
            peak = max(step.rate for step in self.schedule)
            steps = ", ".join(f"{{at: {step.at!r}, rate: {step.rate * value / peak!r}}}" for step in self.schedule)
            return f"{key}=[{steps}]"
        return f"{key}={int(value)}" if self.integer else f"{key}={value!r}"


def key_value(scenario: Scenario, key: str) -> KeyValue:
    """What ``key`` (as --set writes it) holds in ``scenario``; for a key left unset, whether it takes whole
    numbers.

    Raises:
        OverrideError: naming --find, the key is not in the scenario's format or holds no number.
    """
    node: Any = scenario
    parts = [bracketed or dotted for bracketed, dotted in re.findall(r"\[([^\]]+)\]|([^.\[\]]+)", key)]
    for depth, part in enumerate(parts):
        if isinstance(node, list | tuple):
            names = [str(getattr(entry, "name", index)) for index, entry in enumerate(node)]
            found = next((e for i, e in enumerate(node) if part in (str(i), getattr(e, "name", None))), _MISSING)
        elif isinstance(node, BaseModel):
            names = list(type(node).model_fields)
            field = type(node).model_fields.get(part)
            found = getattr(node, part) if field is not None else _MISSING
            if found is None:  # unset: whether it takes whole numbers is the type of the key below it
                annotation = field.annotation  # type: ignore[union-attr]
                for below, name in enumerate(parts[depth + 1 :], start=depth + 1):
                    models = [kind for kind in _kinds(annotation) if _is_model(kind)]
                    fields = {field: model.model_fields[field] for model in models for field in model.model_fields}
                    if name not in fields:
                        where = f" in {'.'.join(parts[:below])}"
                        raise OverrideError(
                            f"{FIND} {key}: the scenario has no key {name!r}{where}{did_you_mean(name, list(fields))}"
                        )
                    annotation = fields[name].annotation
                return KeyValue(None, integer=_whole(annotation))
        else:
            names, found = [], _MISSING
        if found is _MISSING:
            where = f" in {'.'.join(parts[:depth])}" if depth else ""
            raise OverrideError(f"{FIND} {key}: the scenario has no key {part!r}{where}{did_you_mean(part, names)}")
        node = found
    if isinstance(node, int) and not isinstance(node, bool):
        return KeyValue(float(node), integer=True)
    if isinstance(node, float):
        return KeyValue(node, integer=False)
    if isinstance(node, list) and node and all(isinstance(step, RateStep) for step in node):
        steps = tuple(node)
        return KeyValue(max(step.rate for step in steps), integer=False, schedule=steps if len(steps) > 1 else ())
    if isinstance(node, ConstantTime):
        return KeyValue(node.value, integer=False)
    if isinstance(node, TaggedModel):
        raise OverrideError(
            f"{FIND} {key}: holds a {node.kind} distribution, not a number; search a constant duration "
            f"(--set {key}=40ms) or another key"
        )
    shown = repr(node) if isinstance(node, str | bool) else f"a {type(node).__name__.lower()}"
    raise OverrideError(
        f"{FIND} {key}: holds {shown}, not a number; search a key that holds a number, "
        "such as consumers.NAME.instances or publishers.NAME.rate"
    )


def _takes_whole_numbers(scenario: Scenario, key: str) -> bool:
    """Whether ``key`` holds a whole number in ``scenario`` (instances), not a decimal, a duration or a word."""
    try:
        return key_value(scenario, key).integer
    except OverrideError:  # a word (a preset) or a distribution
        return False


def _is_model(kind: Any) -> bool:
    return isinstance(kind, type) and issubclass(kind, BaseModel)


def _kinds(annotation: Any) -> list[Any]:
    """The types an annotation allows: itself, or the members of its union or Annotated, recursively."""
    arguments = typing.get_args(annotation)
    if not arguments:
        return [annotation]
    return [kind for argument in arguments for kind in _kinds(argument)]


def _whole(annotation: Any) -> bool:
    """Whether a field of this type takes whole numbers (``int``, ``Annotated[int, ...] | None``)."""
    if annotation is int:
        return True
    return any(_whole(argument) for argument in typing.get_args(annotation) if argument is not type(None))


def search_space(
    scenario: Scenario,
    key: str,
    goal: Goal,
    start: float | None = None,
    lowest: float | None = None,
    highest: float | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
) -> tuple[KeyValue, SearchSpace]:
    """What ``key`` holds in ``scenario`` and where to search it (see :func:`capacity`).

    Raises:
        OverrideError: the key holds no number, or is unset and no ``start`` is given.
    """
    held = key_value(scenario, key)
    first = start if start is not None else held.value
    if first is None:
        raise OverrideError(f"{FIND} {key}: the scenario leaves it unset; give the value to start from with --start")
    if first <= 0 and not held.integer:
        raise OverrideError(f"{FIND} {key}: the search starts from {first:g}; give a positive --start")
    if held.integer and first != int(first):
        raise OverrideError(f"{FIND} {key}: takes whole numbers; give a whole --start (got {first:g})")
    space = SearchSpace(
        key=key,
        goal=goal,
        start=first,
        integer=held.integer,
        lowest=lowest if lowest is not None else (1.0 if held.integer else first / 2**20),
        highest=highest if highest is not None else max(first, 1.0) * 2**20,
        tolerance=tolerance,
    )
    return held, space


_MISSING = object()


def capacity(
    path: str | Path,
    key: str,
    goal: Goal,
    slos: Sequence[str],
    overrides: Sequence[str] = (),
    start: float | None = None,
    lowest: float | None = None,
    highest: float | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    replications: int = DEFAULT_PROBE_REPLICATIONS,
    max_replications: int = DEFAULT_MAX_PROBE_REPLICATIONS,
    seed: int | None = None,
    workers: int | Workers | None = 1,
    cluster: str | None = None,
    on_probe: Callable[[Probe], None] | None = None,
    on_run: RunDone | None = None,
    max_messages: int = MAX_MESSAGES,
    max_memory_bytes: float | None = None,
    max_runs: int | None = None,
) -> CapacityAnswer:
    """The smallest (``goal="min"``) or largest (``"max"``) value of ``key`` that meets every objective
    in ``slos`` (``inventory.p99 < 200ms``), by bracketing then bisection (see :mod:`busim.planning.capacity`).

    The search starts at ``start``, else the key's value in the scenario, and stays within
    ``[lowest, highest]`` (default: from 1, or a millionth of the start, to a million times the start).
    It stops, with what it found and a note, before it would make more than ``max_runs`` runs.
    A publisher's rate schedule is searched through its peak rate, every step scaled with it.

    Raises:
        BusimError: the file, a --set, the key or an objective is invalid.
    """
    path = Path(path)
    base = load_scenario(path, list(overrides))
    objectives = objectives_of(list(slos), base.scenario)
    if not objectives:
        raise BusimError("a capacity search needs at least one objective: --slo 'inventory.p99 < 200ms'")
    held, space = search_space(base.scenario, key, goal, start, lowest, highest, tolerance)
    if seed is None:
        seed = base.scenario.seed if base.scenario.seed is not None else fresh_seed()
    all_seeds = replication_seeds(seed, max_replications) if max_replications > 1 else (seed,)
    runs: dict[float, list[Result]] = {}
    scenarios: dict[float, tuple[Scenario, Source]] = {}
    done = [0]

    def ran(_done: int, _total: int) -> None:
        done[0] += 1
        if on_run is not None:
            on_run(done[0], 0)

    with as_workers(
        affordable_workers(workers, base.scenario, max_memory_bytes, max_replications), cluster, max_replications
    ) as pool:

        def measure(value: float, count: int) -> Result | Replications:
            if value not in scenarios:
                loaded = load_scenario(path, list(overrides), ((held.assignment(key, value), FIND),))
                scenarios[value] = checked_scenario(loaded, max_messages, max_memory_bytes)
            scenario, source = scenarios[value]
            made = runs.setdefault(value, [])
            seeds = all_seeds[:count]
            wanted = count - len(made)
            if max_runs is not None and done[0] + wanted > max_runs:
                raise RunLimitReached(
                    f"{wanted} more runs at {held.assignment(key, value).partition('=')[2]} would pass the limit "
                    f"of {max_runs:,} runs (raise it with --max-runs)"
                )
            made.extend(pool.run([Simulation(scenario, s, source) for s in seeds[len(made) :]], ran))
            if count == 1:
                return made[0]
            return replications_of(scenario, seed, seeds, made[:count], source, 0.0)

        return search(space, objectives, measure, replications, max_replications, on_probe)


def as_number(text: str, flag: str) -> float:
    """A number given on the command line, in the key's units (``5000/s`` or ``200ms`` read as 5000 and 0.2).

    Raises:
        BusimError: naming the flag, the text is no number.
    """
    from busim.scenario.units import parse_duration, parse_rate

    for parse in (float, parse_rate, parse_duration):
        try:
            value = parse(text)
        except ValueError:
            continue
        if math.isfinite(value):
            return value
    raise BusimError(f"{flag} {text}: expected a number, such as 8, 5000/s or 200ms")
