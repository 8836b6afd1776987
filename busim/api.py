"""The Python API: load a scenario, simulate it, read or save the result.

    >>> import busim
    >>> scenario = busim.load("scenarios/flash-sale.yaml")
    >>> result = busim.simulate(scenario)
    >>> result.summary.consumers["inventory"].latency_s.end_to_end.p99
    >>> result.figure("inventory", "latency_s", "end_to_end", "p99").mean

The command line is a thin layer over these functions.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from busim.analysis import summarize
from busim.engine import run as run_engine
from busim.engine.arrivals import expected_count
from busim.engine.chains import flows_of
from busim.engine.records import RunRecord
from busim.engine.simulation import ProgressCallback
from busim.errors import BusimError, Problem, RunFolderError, RunTooLargeError, ScenarioError
from busim.results import (
    REPLICATIONS_SCHEMA,
    Comparison,
    MessageCounts,
    Replications,
    Result,
    RunMetadata,
    Source,
    parse_json,
)
from busim.results.calibration import CalibrationRun
from busim.scenario import LoadedScenario, Scenario, load_scenario
from busim.scenario.flows import stages
from busim.scenario.loader import format_path
from busim.scenario.references import reference_problems
from busim.scenario.schema import MAX_REPLICATIONS
from busim.scenario.variants import Variant, load_variants
from busim.workers import Simulation, Workers, as_workers, cores

# A run keeps a record of every delivery: up to about 0.4 GB per million messages a consumer group handles.
# 10,000 messages a second for an hour is 36 million; a run that large still needs the memory to be there
# (see check_size).
MAX_MESSAGES = 40_000_000
# Peak memory per message a consumer group handles, measured above the process's own (benchmarks/README.md),
# every scenario scaled to 1M messages: 155 bytes on the M/M/1 queue, 200 on the flash sale (155 at 4M, most
# still queued at the end), 250 on event-sourced recovery (crashes and replays), 270 with an idempotent
# consumer's store, 325 on checkout (a key per message, far behind), 365 on the order pipeline's chains at
# 400,000 (220 at 1.4M); 400 leaves a margin of 9 % over the largest. And the process itself, with numpy,
# SimPy and matplotlib loaded.
BYTES_PER_MESSAGE = 400
BASE_BYTES = 150e6
# Below this many messages in all, a batch of runs is made in this process even where more cores are free:
# starting worker processes (about 1.5 s of CPU) would cost more than they save.
PARALLEL_MESSAGES = 100_000


@dataclass(frozen=True)
class FinishedRun:
    """A run that has already run, compared as it ran rather than simulated again: read back from its folder
    (``folder``), or a result at hand."""

    name: str
    outcome: Result | Replications
    folder: str | None = None


def finished_run(folder: str | Path, name: str | None = None) -> FinishedRun:
    """The run (or replications) in ``folder``, as ``busim run`` wrote it, to compare; named ``name``, else
    after the folder. A scenario's folder of runs (``runs/flash-sale``) gives its newest.

    Raises:
        busim.errors.BusimError: the folder holds no run busim wrote, or its results depart from their schema.
    """
    from busim.report.folder import read_finished_run
    from busim.report.output import resolve_run_folder

    given = Path(folder)
    path = resolve_run_folder(given)
    _, outcome = read_finished_run(path, "busim compare")
    return FinishedRun(name or given.name or path.resolve().name, outcome, str(path))


ScenarioOrRun = Scenario | LoadedScenario | Result | Replications | str | Path
Comparable = Variant | FinishedRun | ScenarioOrRun | tuple[str, ScenarioOrRun]


def compare(
    variants: Sequence[Comparable],
    seed: int | None = None,
    replications: int | None = None,
    on_run: Callable[[int, int], None] | None = None,
    max_messages: int = MAX_MESSAGES,
    max_memory_bytes: float | None = None,
    on_progress: ProgressCallback | None = None,
    workers: int | Workers | None = 1,
    cluster: str | None = None,
) -> Comparison:
    """Run each variant on the same seed, or the same replication seeds, and set finished runs beside them.

    A variant is a :class:`Variant` or ``(name, scenario)`` to simulate; or a
    finished run to compare as it ran, never simulated again: a run's folder
    (a path), a :class:`Result` or :class:`Replications`, ``(name, either)``,
    or a :class:`FinishedRun`. A folder is named after itself, a result after
    its scenario.

    Raises:
        BusimError: the variants share no consumer, so there is nothing to compare; a folder holds no run;
            ``seed`` or ``replications`` is given, but every variant is a finished run.

    Common random numbers: every variant draws its publishing, latencies and
    faults from streams named after the same components, so differences come
    from the variants rather than from the noise. The seed is ``seed``, else
    the first simulated variant's, else a fresh one. With ``replications``
    (default: the first simulated variant's ``replications``) above 1, each
    simulated variant is replicated; a finished run shows what it holds.
    ``on_run(done, total)`` is called after each run (every replication of
    every simulated variant), and ``on_progress`` with each run's simulated time
    (when the runs are made in this process, one after another). The runs
    are made by ``workers`` or on ``cluster``, as :func:`replicate` makes its
    own, with the same results.
    """
    entries = _named([_entry(variant) for variant in variants])
    if not entries:
        raise ValueError("compare needs at least one variant")
    check_comparable([(name, _scenario_of(target)) for name, target, _ in entries])
    simulated = [(name, target) for name, target, _ in entries if isinstance(target, Scenario | LoadedScenario)]
    if not simulated and (seed is not None or replications is not None):
        raise BusimError(
            "a seed and replications apply to the scenarios a comparison simulates; every variant here is a "
            "finished run, compared as it ran"
        )
    first_scenario = _scenario_of(simulated[0][1] if simulated else entries[0][1])
    if seed is None:
        seed = first_scenario.seed if first_scenario.seed is not None else fresh_seed()
    count = replications if replications is not None else first_scenario.replications
    batch = [(name, *checked_scenario(target, max_messages, max_memory_bytes)) for name, target in simulated]
    runs = _run_batch(batch, seed, count, on_run, on_progress, max_memory_bytes, workers, cluster)
    made = {name: outcome for (name, _, _), outcome in zip(batch, runs)}
    outcomes = [target if isinstance(target, Result | Replications) else made[name] for name, target, _ in entries]
    folders = tuple(folder for _, _, folder in entries)
    return Comparison(
        names=tuple(name for name, _, _ in entries),
        outcomes=tuple(outcomes),
        seed=seed,
        folders=folders if any(folder is not None for folder in folders) else (),
    )


_Entry = tuple[str, Scenario | LoadedScenario | Result | Replications, str | None]


def _run_batch(
    batch: list[tuple[str, Scenario, Source]],
    seed: int,
    count: int,
    on_run: Callable[[int, int], None] | None,
    on_progress: ProgressCallback | None,
    max_memory_bytes: float | None,
    workers: int | Workers | None,
    cluster: str | None,
) -> list[Result | Replications]:
    """Each ``(name, scenario, source)`` of ``batch`` run once on ``seed``, or replicated ``count`` times on the
    seeds spawned from it: every scenario on the same seeds, all of the runs in one batch of work."""
    seeds = replication_seeds(seed, count) if count > 1 else (seed,)
    simulations = [Simulation(scenario, run_seed, source) for _, scenario, source in batch for run_seed in seeds]
    if not simulations:
        return []
    if count == 1 and workers == 1 and cluster is None:  # in this process: each single run keeps its record
        results = []
        for done, simulation in enumerate(simulations, start=1):
            results.append(simulate_checked(simulation.scenario, simulation.source, seed, on_progress))
            if on_run is not None:
                on_run(done, len(simulations))
        return results
    largest = max((scenario for _, scenario, _ in batch), key=memory_needed_bytes)
    with as_workers(
        affordable_workers(workers, largest, max_memory_bytes, len(simulations)), cluster, len(simulations)
    ) as pool:
        results = pool.run(simulations, on_run)
    if count == 1:
        return results
    chunks = [results[index * count : (index + 1) * count] for index in range(len(batch))]
    return [  # each variant took the time of its own runs
        replications_of(scenario, seed, seeds, chunk, source, sum(result.run.wall_time_s for result in chunk))
        for (_, scenario, source), chunk in zip(batch, chunks)
    ]


def _entry(variant: Comparable) -> _Entry:
    """A variant as ``(name, what to simulate or the finished run, the folder it was read from)``."""
    if isinstance(variant, Variant):
        return variant.name, variant.loaded, None
    if isinstance(variant, FinishedRun):
        return variant.name, variant.outcome, variant.folder
    if isinstance(variant, str | Path):
        return _entry(finished_run(variant))
    if isinstance(variant, Result | Replications):
        return variant.source.run_name(variant.scenario.name), variant, None
    name, target = variant
    if isinstance(target, str | Path):
        return _entry(finished_run(target, name))
    return name, target, None


def _named(entries: list[_Entry]) -> list[_Entry]:
    """The entries, a finished run named like another variant going by its folder instead."""
    names = [name for name, _, _ in entries]
    return [
        (folder if folder is not None and names.count(name) > 1 else name, target, folder)
        for name, target, folder in entries
    ]


def check_names(variants: Sequence[Comparable]) -> None:
    """Check that the variants of a comparison go by a name each, as :func:`compare` names them.

    Raises:
        BusimError: two share a name.
    """
    names = [name for name, _, _ in _named([_entry(variant) for variant in variants])]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise BusimError(f"variants named more than once: {', '.join(twice)}; give each a different name")


def _scenario_of(target: Scenario | LoadedScenario | Result | Replications) -> Scenario:
    if isinstance(target, LoadedScenario):
        return target.scenario
    return target if isinstance(target, Scenario) else target.scenario


def check_comparable(variants: list[tuple[str, Scenario]]) -> None:
    """Check that the ``(name, scenario)`` variants have a consumer in common, whose figures can be compared.

    Raises:
        BusimError: they share none.
    """
    shared = set.intersection(*({consumer.name for consumer in scenario.consumers} for _, scenario in variants))
    if not shared:
        kept = "; ".join(f"{name}: {', '.join(c.name for c in scenario.consumers)}" for name, scenario in variants)
        raise BusimError(f"the variants share no consumer to compare ({kept})")


def run(
    scenario: Scenario | LoadedScenario,
    replications: int | None = None,
    seed: int | None = None,
    on_run: Callable[[int, int], None] | None = None,
    on_progress: ProgressCallback | None = None,
    max_messages: int = MAX_MESSAGES,
    max_memory_bytes: float | None = None,
    workers: int | Workers | None = 1,
    cluster: str | None = None,
) -> Result | Replications:
    """Simulate a scenario once, or replicate it when ``replications`` (default: its own) is above 1.

    As ``busim run`` does; see :func:`simulate` and :func:`replicate` (which alone uses ``workers`` and
    ``cluster``: a single run is made here, record and all).
    """
    loaded = scenario.scenario if isinstance(scenario, LoadedScenario) else scenario
    count = replications if replications is not None else loaded.replications
    if count > 1:
        return replicate(
            scenario,
            count,
            seed,
            on_run,
            max_messages,
            max_memory_bytes,
            on_progress,
            workers=workers,
            cluster=cluster,
        )
    result = simulate(scenario, seed, on_progress, max_messages, max_memory_bytes)
    if on_run is not None:
        on_run(1, 1)
    return result


def replication_seeds(root_seed: int, count: int) -> tuple[int, ...]:
    """``count`` independent seeds spawned from ``root_seed`` (numpy's SeedSequence.spawn)."""
    children = np.random.SeedSequence(root_seed).spawn(count)
    return tuple(int(child.generate_state(1, np.uint64)[0] >> np.uint64(1)) for child in children)


def replicate(
    scenario: Scenario | LoadedScenario,
    replications: int | None = None,
    seed: int | None = None,
    on_replication: Callable[[int, int], None] | None = None,
    max_messages: int = MAX_MESSAGES,
    max_memory_bytes: float | None = None,
    on_progress: ProgressCallback | None = None,
    publishing_seed: int | None = None,
    workers: int | Workers | None = 1,
    cluster: str | None = None,
) -> Replications:
    """Run ``scenario`` ``replications`` times (default: its ``replications`` key), on independent seeds.

    The seeds are spawned from ``seed``, else the scenario's, else a fresh
    one; the same root seed gives the same replications, and so the same
    intervals. ``on_replication(done, total)`` is called after each run, and
    ``on_progress`` with each run's simulated time (only when the runs are
    made in this process, one after another). With ``publishing_seed``, every
    replication publishes the same messages, those of that seed (see
    :func:`simulate`).

    The runs are made by ``workers`` processes on this machine (None: one
    per core), or on the Dask cluster whose scheduler is at ``cluster``; the
    results are the same either way. A replication's :class:`Result` keeps
    its figures, not its record: ``simulate(scenario, seed)`` with its seed
    from ``seeds`` gives the record again.

    Raises:
        RunTooLargeError: one run would handle more than ``max_messages`` messages.
        BusimError: the cluster cannot be used.
    """
    scenario, source = checked_scenario(scenario, max_messages, max_memory_bytes)
    count = replications if replications is not None else scenario.replications
    if not 1 <= count <= MAX_REPLICATIONS:
        raise ValueError(f"replications must be 1 to {MAX_REPLICATIONS:,} (got {count})")
    if seed is None:
        seed = scenario.seed if scenario.seed is not None else fresh_seed()
    started = time.perf_counter()
    seeds = replication_seeds(seed, count)
    simulations = [Simulation(scenario, replication_seed, source, publishing_seed) for replication_seed in seeds]
    if on_progress is not None and workers == 1 and cluster is None:
        results = []
        for done, simulation in enumerate(simulations, start=1):
            run = simulate_checked(scenario, source, simulation.seed, on_progress, publishing_seed)
            results.append(replace(run, record=None))
            if on_replication is not None:
                on_replication(done, count)
    else:
        with as_workers(affordable_workers(workers, scenario, max_memory_bytes, count), cluster, count) as pool:
            results = pool.run(simulations, on_replication)
    return replications_of(scenario, seed, seeds, results, source, time.perf_counter() - started)


def replications_of(
    scenario: Scenario,
    seed: int,
    seeds: Sequence[int],
    results: Sequence[Result],
    source: Source,
    wall_time_s: float,
) -> Replications:
    """The replications of ``scenario`` on ``seeds`` (spawned from ``seed``), whose runs gave ``results``."""
    return Replications(
        scenario=scenario.model_copy(update={"seed": seed, "replications": len(results)}),
        seeds=tuple(seeds),
        results=tuple(results),
        source=source,
        run=RunMetadata.took(wall_time_s),
    )


def affordable_workers(
    workers: int | Workers | None, scenario: Scenario, max_memory_bytes: float | None, runs: int
) -> int | Workers:
    """``workers``, as a count no larger than the runs of ``scenario`` that fit in memory side by side.

    ``None`` (one per core) is one where ``runs`` such runs are too little work to gain from more: starting
    worker processes costs about as much as simulating :data:`PARALLEL_MESSAGES` messages.
    """
    if not isinstance(workers, int) and workers is not None:
        return workers
    if workers is None and runs * expected_group_messages(scenario) < PARALLEL_MESSAGES:
        return 1
    wanted = cores() if workers is None else workers
    budget = max_memory_bytes if max_memory_bytes is not None else available_memory_bytes()
    if budget is None:
        return wanted
    return max(1, min(wanted, int(budget // memory_needed_bytes(scenario))))


def checked_scenario(
    scenario: Scenario | LoadedScenario, max_messages: int, max_memory_bytes: float | None
) -> tuple[Scenario, Source]:
    """The scenario to run and where it came from, checked as a file would be and for size.

    Raises:
        ScenarioError: a scenario built in code breaks a cross-reference.
        RunTooLargeError: a run would handle more than ``max_messages`` messages.
    """
    if isinstance(scenario, LoadedScenario):
        source = Source(scenario.file, scenario.sha256, scenario.overrides, scenario.variant, scenario.left_out)
        loaded = scenario.scenario
    else:
        check_references(scenario)
        source, loaded = Source(), scenario
    check_size(loaded, max_messages, max_memory_bytes)
    return loaded, source


def variants(
    path: str | Path, vary: list[str] | tuple[str, ...] = (), overrides: list[str] | tuple[str, ...] = ()
) -> list[Variant]:
    """The variants of one scenario file: the grid of ``vary`` (``KEY=V1,V2``) or its ``variants:`` block.

    Raises:
        busim.errors.BusimError: the file, a --vary or a variant is invalid, or there is nothing to vary.
    """
    return load_variants([Path(path)], list(vary), list(overrides))


def read(folder: str | Path) -> Result | Comparison:
    """A run's or a comparison's output folder, read back and checked: the same ``Result`` (without its
    ``record``) or ``Comparison`` the run gave. A scenario's folder of runs (``runs/flash-sale``) reads its newest.

    Raises:
        busim.errors.BusimError: the folder holds no results busim wrote, or they depart from their schema.
    """
    from busim.report.folder import is_comparison_folder, read_comparison_folder, read_run_folder
    from busim.report.output import resolve_run_folder

    path = resolve_run_folder(Path(folder))
    if is_comparison_folder(path):
        return read_comparison_folder(path)
    return read_run_folder(path, "busim.read").result


def load(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Scenario:
    """Read and validate a scenario file; ``overrides`` are ``KEY=VALUE`` strings.

    An override of the broker preset, ``duration`` or ``drain_timeout`` leaves
    out the file's keys and times it makes moot; what it leaves out is named
    in ``busim.scenario.load_scenario(path, overrides).left_out``, and for
    each of :func:`variants` in ``variant.loaded.left_out``.

    Raises:
        busim.errors.BusimError: the file is missing or the scenario invalid.
    """
    return load_scenario(path, overrides).scenario


def fresh_seed() -> int:
    """A seed from the operating system's entropy, for scenarios that name none."""
    return int(np.random.SeedSequence().entropy % (1 << 63))


def expected_group_messages(scenario: Scenario) -> float:
    """The mean number of messages the consumer groups handle together (a message counts once per group).

    An emitting consumer is counted as emitting one message of each event it
    emits per message it receives, in the order the chains run.
    """
    per_event = {event: 0.0 for event in scenario.events}
    for publisher in scenario.publishers:
        per_event[publisher.event] += expected_count(publisher, scenario.duration)
    for names in stages(flows_of(scenario)):
        for name in names:
            consumer = scenario.consumer(name)
            received = sum(per_event[event] for event in set(consumer.subscribes))
            for event in {emit.event for emit in consumer.emits}:
                per_event[event] += received
    return sum(per_event[event] for consumer in scenario.consumers for event in set(consumer.subscribes))


def check_references(scenario: Scenario) -> None:
    """Check what relates the parts of a scenario built in code, as loading checks a file.

    Raises:
        ScenarioError: with every broken reference.
    """
    problems = reference_problems(scenario.model_dump())
    if problems:
        raise ScenarioError(
            [Problem("<scenario>", None, None, format_path(path), message) for path, message in problems]
        )


def check_size(scenario: Scenario, max_messages: int = MAX_MESSAGES, max_memory_bytes: float | None = None) -> None:
    """Refuse a run that would not fit in memory, before it starts.

    The memory a run needs is estimated from the messages its consumer
    groups handle (:data:`BYTES_PER_MESSAGE` each, on top of
    :data:`BASE_BYTES`) and compared with ``max_memory_bytes``, or else with
    the memory the machine has available.

    Raises:
        RunTooLargeError: the consumer groups would handle more than ``max_messages`` messages, their
            read models would serve more than ``max_messages`` reads, or the run would need more memory
            than it may have.
    """
    expected = expected_group_messages(scenario)
    if expected > max_messages:
        raise RunTooLargeError(
            f"{scenario.name} would have its consumer groups handle about {expected:,.0f} messages, more than the "
            f"limit of {max_messages:,}, and need about {_gib(memory_needed_bytes(scenario))} of memory; shorten "
            "duration, lower the rates, set publishers[].count, or raise the limit with --max-messages"
        )
    reads = sum(consumer.queries.rate * scenario.duration for consumer in scenario.consumers if consumer.queries)
    if reads > max_messages:
        raise RunTooLargeError(
            f"{scenario.name} would have its consumers serve about {reads:,.0f} reads, more than the limit of "
            f"{max_messages:,}; lower consumers[].queries.rate, shorten duration, or raise the limit with "
            "--max-messages"
        )
    needed = memory_needed_bytes(scenario)
    budget = max_memory_bytes if max_memory_bytes is not None else available_memory_bytes()
    if budget is not None and needed > budget:
        allowed = (
            f"the limit of {_gib(budget)} (--max-memory)"
            if max_memory_bytes is not None
            else f"the {_gib(budget)} this machine has available"
        )
        raise RunTooLargeError(
            f"{scenario.name} would need about {_gib(needed)} of memory for the {expected:,.0f} messages its "
            f"consumer groups handle, more than {allowed}; shorten duration, lower the rates, set "
            "publishers[].count, or allow more with --max-memory"
        )


def memory_needed_bytes(scenario: Scenario) -> float:
    """About how much memory a run of ``scenario`` needs at its peak, in bytes."""
    reads = sum(consumer.queries.rate * scenario.duration for consumer in scenario.consumers if consumer.queries)
    return BASE_BYTES + BYTES_PER_MESSAGE * (expected_group_messages(scenario) + reads)


def available_memory_bytes() -> float | None:
    """The memory the machine can give a new run without swapping (Linux: MemAvailable), or None if unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return float(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (OSError, ValueError, AttributeError):
        return None


def _gib(amount: float) -> str:
    return f"{amount / 2**30:,.2f} GiB"


def simulate(
    scenario: Scenario | LoadedScenario,
    seed: int | None = None,
    on_progress: ProgressCallback | None = None,
    max_messages: int = MAX_MESSAGES,
    max_memory_bytes: float | None = None,
    publishing_seed: int | None = None,
) -> Result:
    """Simulate a scenario and summarise the run.

    The seed is ``seed`` if given, else the scenario's, else a fresh one; the
    result's scenario records it, so that the run can be repeated exactly.
    With ``publishing_seed``, the publishers draw their arrival times and
    payloads from that seed instead: the messages of the run with that seed
    (a real run's), while the broker and the consumers draw from ``seed``.

    Raises:
        RunTooLargeError: the run would handle more than ``max_messages`` messages (see :func:`check_size`).
    """
    scenario, source = checked_scenario(scenario, max_messages, max_memory_bytes)
    if seed is None:
        seed = scenario.seed if scenario.seed is not None else fresh_seed()
    return simulate_checked(scenario, source, seed, on_progress, publishing_seed)


def simulate_checked(
    scenario: Scenario,
    source: Source | None,
    seed: int,
    on_progress: ProgressCallback | None = None,
    publishing_seed: int | None = None,
) -> Result:
    """:func:`simulate` for a scenario already checked (its references and its size) and a seed chosen."""
    started = time.perf_counter()
    record = run_engine(scenario, seed, on_progress, publishing_seed)
    summary = summarize(record)
    return Result(
        scenario=record.scenario,
        summary=summary,
        sim_time_s=record.sim_time_s,
        drained=record.drained,
        messages=MessageCounts(
            published=int(np.count_nonzero(record.messages.emitter < 0)),
            emitted=int(np.count_nonzero(record.messages.emitter >= 0)),
        ),
        stopped=record.stopped,
        source=source if source is not None else Source(),
        run=RunMetadata.took(time.perf_counter() - started),
        record=record,
    )


DEFAULT_CALIBRATION_REPLICATIONS = 20


def calibrate(
    run: str | Path | Result,
    replications: int = DEFAULT_CALIBRATION_REPLICATIONS,
    on_run: Callable[[int, int], None] | None = None,
) -> CalibrationRun:
    """A real run's figures against replications of its scenario, as declared and as fitted to the run.

    ``run`` is a real run's folder (``busim run FILE --broker URL --out DIR``)
    or the :class:`Result` of :func:`busim.load_test`.

    Every replication publishes the messages the real run published (its
    seed drives the publishers) while the broker's and the consumers' draws
    vary. The scenario is then fitted to the run (:func:`busim.analysis.fitting.fit_to_run`:
    the broker's latency and each consumer's per-message cost as measured)
    and replicated again. ``on_run(done, total)`` is called after each of the
    ``2 * replications`` runs.

    Raises:
        RunFolderError: the folder is not a real run's (``busim run FILE --broker URL``), lacks its record, or
            holds an interrupted run (its results partial: it covers only part of the schedule).
        ValueError: ``run`` is a Result of a simulation, has no record, or is partial.
    """
    from busim.analysis.calibration import calibrate as check_against
    from busim.analysis.fitting import fit_to_run

    if not 2 <= replications <= MAX_REPLICATIONS:
        raise ValueError(f"replications must be 2 to {MAX_REPLICATIONS:,} (got {replications})")
    if isinstance(run, Result):
        if run.real is None or run.record is None:
            raise ValueError("calibrate needs the Result of a real run (busim.load_test), with its record")
        if run.real.partial:
            raise ValueError(f"calibrate was given {_interrupted(run)}")
        path, real, record = None, run, run.record
    else:
        path, real, record = read_real_run(Path(run))
    scenario = real.scenario
    publishing_seed = scenario.seed if scenario.seed is not None else 0
    seeds = replication_seeds(publishing_seed, replications)
    total = 2 * replications

    def replicated(candidate: Scenario, offset: int) -> list[Result]:
        results = []
        for done, seed in enumerate(seeds, start=offset + 1):
            results.append(simulate(candidate, seed=seed, publishing_seed=publishing_seed))
            if on_run is not None:
                on_run(done, total)
        return results

    declared = check_against(real.summary, [result.summary for result in replicated(scenario, 0)])
    fitted = fit_to_run(scenario, record)
    after_fit = check_against(real.summary, [result.summary for result in replicated(fitted.scenario, replications)])
    return CalibrationRun(path, real, seeds, declared, fitted, after_fit)


def read_real_run(folder: Path) -> tuple[Path, Result, RunRecord]:
    """A real run's folder (resolved, as ``runs/NAME`` gives its newest), its result and its record.

    Raises:
        RunFolderError: the folder holds a simulated run, an interrupted one (partial), or no record.
    """
    from busim.loadtest.archive import RECORD_FILE, read_record
    from busim.report.files import RESULTS_FILE
    from busim.report.folder import read_run_folder
    from busim.report.output import resolve_run_folder

    path = resolve_run_folder(folder)
    needs = "calibrate sets a real run (busim run FILE --broker URL) beside the simulation of its scenario"
    results = path / RESULTS_FILE
    if results.is_file() and _schema_of(results) == REPLICATIONS_SCHEMA:
        raise RunFolderError(f"{path}: holds replications of a simulation; {needs}")
    real = read_run_folder(path, "calibrate").result
    if real.real is None:
        raise RunFolderError(f"{path}: holds a simulated run; {needs}")
    if not (path / RECORD_FILE).is_file():
        raise RunFolderError(f"{path}: no {RECORD_FILE} here; calibrate fits the scenario to the real run's record")
    if real.real.partial:
        raise RunFolderError(f"{path}: holds {_interrupted(real)}")
    return path, real, read_record(path, real.scenario)


def _interrupted(real: Result) -> str:
    """Why calibrate refuses an interrupted real run: its figures cover a part of the schedule the simulation
    publishes whole, so every count would fall short of the simulation's for no fault of the model."""
    assert real.real is not None
    generator = real.real.generator
    return (
        f"an interrupted run (partial: it sent {generator.sent:,} of its schedule's {generator.copies:,} copies); "
        "calibrate sets a run beside simulations of its whole schedule, so it needs a run that finished: "
        "run the scenario again to the end (with a shorter --set duration=... if it takes too long)"
    )


def _schema_of(results: Path) -> object:
    """The schema a results.json names; None where it cannot be read (reading it then says why)."""
    try:
        return parse_json(results.read_text(encoding="utf-8"), str(results)).get("schema")
    except (OSError, UnicodeDecodeError, BusimError):
        return None
