"""``busim sweep`` and ``busim capacity``: parse options, call the planning core, render, write.

Registered on the app of :mod:`busim.cli`, whose helpers (errors, output
folders, interruption) they share.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from busim.cli import (
    EXIT_VIOLATION,
    MAX_RUNS,
    Cluster,
    Console,
    MaxMemory,
    MaxRuns,
    WorkerCount,
    _check_runs,
    _claim,
    _deliver,
    _fail,
    _interruptible,
    _OptionError,
    _told,
    _whole_number,
    app,
    batch_workers,
    tell_left_out,
)
from busim.errors import BusimError
from busim.planning.capacity import DEFAULT_TOLERANCE, Goal
from busim.planning.figures import DEFAULT_FIGURES, figures_of
from busim.planning.runner import (
    DEFAULT_MAX_PROBE_REPLICATIONS,
    DEFAULT_PROBE_REPLICATIONS,
    DEFAULT_SWEEP_REPLICATIONS,
    as_number,
    capacity,
    plan_sweep,
    search_space,
    sweep,
)
from busim.planning.slo import objectives_of
from busim.report.console import count_progress
from busim.scenario import load_scenario
from busim.scenario.schema import MAX_REPLICATIONS
from busim.words import counted

Overrides = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        metavar="KEY=VALUE",
        help="Override a scenario key at every point (a key of one broker preset: at the points of that "
        "preset). Repeatable.",
    ),
]
Seed = Annotated[
    int | None,
    typer.Option("--seed", help="The root seed every point's runs share.", parser=_whole_number(0), metavar="N"),
]
Out = Annotated[Path | None, typer.Option("--out", help="Output folder.", metavar="DIR", show_default=False)]
Charts = Annotated[bool, typer.Option("--charts/--no-charts", help="Write the charts (PNG and SVG).")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors.")]


def _fraction(text: str | float) -> float:
    """A tolerance as people write it: ``1%`` or ``0.01`` (the default comes as a number)."""
    if isinstance(text, float):
        return text
    written = text.strip()
    try:
        value = float(written[:-1]) / 100 if written.endswith("%") else float(written)
    except ValueError:
        raise _OptionError(f"expected a fraction such as 1% or 0.01 (got {text!r})") from None
    if not 0 < value < 1:
        raise _OptionError(f"must lie strictly between 0 and 100% (got {text})")
    return value


@app.command(name="sweep")
def sweep_command(
    file: Annotated[Path, typer.Argument(help="The scenario file (YAML).", show_default=False, metavar="FILE")],
    vary: Annotated[
        list[str],
        typer.Option(
            "--vary",
            metavar="KEY=RANGE",
            help="A key and its values: 1..64 (every integer), 1..64:x2 (doubling), 100/s..5000/s:10 (10 evenly "
            "spaced), 0..100:+10 (a step), or a list V1,V2. Several make a grid.",
            show_default=False,
        ),
    ],
    overrides: Overrides = None,
    replications: Annotated[
        int,
        typer.Option(
            "--replications",
            help="Runs per point, on the same seeds at every point; every figure is a mean with its 95% interval.",
            parser=_whole_number(1, MAX_REPLICATIONS),
            metavar="N",
        ),
    ] = DEFAULT_SWEEP_REPLICATIONS,
    figures: Annotated[
        list[str] | None,
        typer.Option(
            "--figure",
            metavar="NAME",
            help="A figure to report, as results.json names it: p99, inventory.max_backlog, "
            "latency_s.queue_wait.mean, ... Repeatable (default: p99, duplicate_effects, max_backlog, lost).",
            show_default=False,
        ),
    ] = None,
    seed: Seed = None,
    workers: WorkerCount = None,
    cluster: Cluster = None,
    out: Out = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print sweep.json to stdout and nothing else.")] = False,
    charts: Charts = True,
    quiet: Quiet = False,
    max_memory: MaxMemory = None,
    max_runs: MaxRuns = MAX_RUNS,
) -> None:
    """Run a scenario at every point of a grid of key values, and chart each figure against them.

    Every point runs the same seeds (common random numbers), so that differences come from the points;
    each figure is a mean over the runs with its 95% confidence interval. Writes sweep.csv (one row per
    point and figure), sweep.json, sweep.md and the charts.
    """
    console = Console()
    try:
        plan = plan_sweep(file, vary, overrides or [])
        points = len(plan.variants)
        _check_runs(
            points * replications,
            max_runs,
            plan.largest_run_messages,
            f"{counted(points, 'point')} x {counted(replications, 'replication')}",
        )
        figures_of(figures or DEFAULT_FIGURES, plan.scenario, "--figure")  # refused before anything runs
        output = _claim(out, Path("runs") / f"sweep-{plan.scenario.name}", f"busim sweep {file}", [file])
    except BusimError as error:
        _fail(error)
    show = not (quiet or as_json)
    if not quiet:
        tell_left_out([(f"point {variant.name}", variant.loaded.left_out) for variant in plan.variants])
    from busim.report.sweep import render_sweep, sweep_json, write_sweep  # matplotlib loads only here

    with _interruptible(output):
        scenarios = [variant.loaded.scenario for variant in plan.variants]
        with (
            _told(output),
            batch_workers(workers, cluster, scenarios, points * replications, max_memory) as pool,
            count_progress(console, "sweeping", points * replications, show and console.is_terminal) as bar,
        ):
            result = sweep(
                plan,
                replications=replications,
                seed=seed,
                figures=figures or DEFAULT_FIGURES,
                workers=pool,
                on_run=bar.run_done if bar else None,
                max_memory_bytes=max_memory,
            )
        text = sweep_json(result)
        _deliver(
            console,
            output,
            out is None,
            text,
            lambda staging: write_sweep(result, staging, text, charts),
            lambda: render_sweep(console, result),
            as_json,
            show,
        )


@app.command(name="capacity")
def capacity_command(
    file: Annotated[Path, typer.Argument(help="The scenario file (YAML).", show_default=False, metavar="FILE")],
    find: Annotated[
        str,
        typer.Option(
            "--find",
            metavar="KEY",
            help="The key to search, as --set writes it: consumers.inventory.instances, publishers.orders.rate "
            "(a rate schedule is searched through its peak, every step scaled with it).",
            show_default=False,
        ),
    ],
    slos: Annotated[
        list[str],
        typer.Option(
            "--slo",
            metavar="EXPR",
            help="An objective every answer must meet, FIGURE OP VALUE: 'inventory.p99 < 200ms', 'lost == 0', "
            "'inventory.max_backlog < 10000', 'drain_s < 60s'. Repeatable.",
            show_default=False,
        ),
    ],
    smallest: Annotated[
        bool, typer.Option("--min", help="Find the smallest value that meets every objective (more helps).")
    ] = False,
    largest: Annotated[
        bool, typer.Option("--max", help="Find the largest value that meets every objective (more hurts).")
    ] = False,
    overrides: Overrides = None,
    start: Annotated[
        str | None,
        typer.Option(
            "--start",
            metavar="VALUE",
            help="The value to start from (default: the scenario's).",
            show_default=False,
        ),
    ] = None,
    between: Annotated[
        str | None,
        typer.Option(
            "--between",
            metavar="LOW..HIGH",
            help="Search only within these values (default: from 1, or a millionth of the start, to a million "
            "times the start).",
            show_default=False,
        ),
    ] = None,
    tolerance: Annotated[
        float,
        typer.Option(
            "--tolerance",
            help="For a key that is not a whole number: stop when the answer is known to within this fraction.",
            parser=_fraction,
            metavar="FRACTION",
        ),
    ] = DEFAULT_TOLERANCE,
    replications: Annotated[
        int,
        typer.Option(
            "--replications",
            help="Runs per probe at first, on the same seeds at every probe.",
            parser=_whole_number(1, MAX_REPLICATIONS),
            metavar="N",
        ),
    ] = DEFAULT_PROBE_REPLICATIONS,
    max_replications: Annotated[
        int,
        typer.Option(
            "--max-replications",
            help="Runs a probe may take while an objective's interval straddles its bound; still undecided "
            "then, the probe counts as not meeting it.",
            parser=_whole_number(1, MAX_REPLICATIONS),
            metavar="N",
        ),
    ] = DEFAULT_MAX_PROBE_REPLICATIONS,
    seed: Seed = None,
    workers: WorkerCount = None,
    cluster: Cluster = None,
    out: Out = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print capacity.json to stdout and nothing else.")] = False,
    charts: Charts = True,
    quiet: Quiet = False,
    max_memory: MaxMemory = None,
    max_runs: MaxRuns = MAX_RUNS,
) -> None:
    """Find the smallest (--min) or largest (--max) value of a key that meets every objective.

    Brackets the answer by doubling or halving from the start, then bisects, replicating each probe on
    the same seeds; a probe meets an objective only when the whole 95% interval of its figure does.
    Prints the answer, the probes and the margin; writes capacity.json, capacity.md and a chart. Exits
    with code 1 when no value tried meets every objective.
    """
    console = Console()
    try:
        goal = _goal(smallest, largest)
        if max_replications < replications:
            raise BusimError(
                f"--max-replications {max_replications} is below --replications {replications}; "
                "a probe starts with --replications runs and adds more up to --max-replications"
            )
        lowest, highest = _bounds(between)
        first = as_number(start, "--start") if start is not None else None
        loaded = load_scenario(file, overrides or [])
        scenario = loaded.scenario
        objectives_of(slos, scenario)  # refused before anything runs, as the key is
        search_space(scenario, find, goal, first, lowest, highest, tolerance)
        output = _claim(out, Path("runs") / f"capacity-{scenario.name}", f"busim capacity {file}", [file])
    except BusimError as error:
        _fail(error)
    show = not (quiet or as_json)
    if not quiet:
        tell_left_out([(None, loaded.left_out)])
    from busim.report.capacity import capacity_json, capacity_progress, render_capacity, write_capacity

    with _interruptible(output):
        with (
            _told(output),
            batch_workers(workers, cluster, [scenario], max_replications, max_memory) as pool,
            capacity_progress(console, show and console.is_terminal) as progress,
        ):
            answer = capacity(
                file,
                find,
                goal,
                slos,
                overrides or [],
                start=first,
                lowest=lowest,
                highest=highest,
                tolerance=tolerance,
                replications=replications,
                max_replications=max_replications,
                seed=seed,
                workers=pool,
                on_probe=progress.probed if progress else None,
                on_run=progress.run_done if progress else None,
                max_memory_bytes=max_memory,
                max_runs=max_runs,
            )
        text = capacity_json(answer)
        _deliver(
            console,
            output,
            out is None,
            text,
            lambda staging: write_capacity(answer, staging, text, charts),
            lambda: render_capacity(console, answer),
            as_json,
            show,
        )
    if answer.answer is None:
        raise typer.Exit(EXIT_VIOLATION)  # for CI: no value meets the objectives


def _goal(smallest: bool, largest: bool) -> Goal:
    if smallest == largest:
        raise BusimError(
            "give --min (the smallest value that meets every objective, for a key where more helps, such as "
            "instances) or --max (the largest, where more hurts, such as a rate)"
        )
    return "min" if smallest else "max"


def _bounds(between: str | None) -> tuple[float | None, float | None]:
    """``--between LOW..HIGH`` as two numbers, or none."""
    if between is None:
        return None, None
    low, dots, high = between.partition("..")
    if not dots or not low.strip() or not high.strip():
        raise BusimError(f"--between {between}: expected LOW..HIGH, such as 1..64 or 100/s..5000/s")
    lowest, highest = as_number(low, f"--between {between}:"), as_number(high, f"--between {between}:")
    if not lowest < highest:
        raise BusimError(f"--between {between}: the range must go up ({low.strip()} is not below {high.strip()})")
    return lowest, highest
