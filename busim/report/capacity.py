"""A capacity search's report: the answer in one sentence, the probes, the margins and the notes.

The views are built here once for the console, capacity.md and
capacity.json: the answer first (or why there is none), then every probe
by value with each objective's mean and 95 % interval (coloured by whether
it meets the objective), the margin each objective keeps at the answer,
and the notes of the search. While the search runs, a transient spinner
counts the runs and prints a line per probe as it is decided.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.text import Text

from busim.analysis.intervals import CONFIDENCE
from busim.planning.capacity import CapacityAnswer, Probe
from busim.planning.slo import Check, Objective, Verdict
from busim.report.console import show, view_tables
from busim.report.run_report import ShownChart, write_pages
from busim.report.settings import format_rate
from busim.report.sweep import figure_text, finite
from busim.report.tables import Cell, Column, Row, TableView, Tone, text_cell
from busim.report.templating import render
from busim.results import json_text
from busim.scenario.units import ABSENT, format_duration
from busim.words import counted

CAPACITY_FILE = "capacity.json"
CAPACITY_MARKDOWN = "capacity.md"
CAPACITY_SCHEMA = "busim.capacity/1"

_TONES: dict[Verdict, Tone] = {Verdict.MEETS: "good", Verdict.FAILS: "bad", Verdict.UNDECIDED: "quiet"}
# How a check's interval stands against its bound, by the objective's operator: where it meets it, and not.
_FAILING_OPERATOR = {"<": ">=", "<=": ">", ">": "<=", ">=": "<", "==": "!="}
_MOST_DIGITS = 12  # past this a float's digits are noise
_UNITS = ((1e-6, "µs"), (1e-3, "ms"), (1.0, "s"))


def value_text(answer: CapacityAnswer, value: float) -> str:
    """A value of the searched key as a user writes it: a whole number (``8``), a rate (``812/s``), a number."""
    if answer.space.integer:
        return f"{value:,.0f}"
    if answer.space.key.rsplit(".", 1)[-1] == "rate":
        return f"{format_rate(value)}/s"
    return f"{value:.4g}"


def short_key(key: str) -> str:
    """The last part of a key, as a table heads it and a probe's line names it: ``instances``."""
    return key.rsplit(".", 1)[-1].strip("[]") or key


def _goal_words(answer: CapacityAnswer) -> str:
    return "smallest" if answer.space.goal == "min" else "largest"


def answer_sentence(answer: CapacityAnswer) -> str:
    """``consumers.inventory.instances = 8: the smallest value that meets every objective``; or that no value
    tried does, between which values."""
    key = answer.space.key
    if answer.answer is not None:
        return (
            f"{key} = {value_text(answer, answer.answer)}: the {_goal_words(answer)} value that meets every objective"
        )
    values = [probe.value for probe in answer.probes]
    if not values:
        return f"{key}: no value was tried"
    tried = f"{value_text(answer, min(values))} to {value_text(answer, max(values))}"
    return f"{key}: no value tried ({counted(len(values), 'probe')}, {tried}) meets every objective"


def check_text(check: Check) -> str:
    """A check as a line reads it: ``inventory.p99 = 3.2s [3.0s, 3.4s] > 2s``; the operator says how the
    interval stands against the bound, and ``straddles`` where it reaches either side of it (undecided)."""
    objective = check.objective
    operator = {
        Verdict.MEETS: objective.op,
        Verdict.FAILS: _FAILING_OPERATOR[objective.op],
        Verdict.UNDECIDED: "straddles",
    }[check.verdict]
    return f"{objective.figure.label} = {checked_text(check)} {operator} {objective.bound_text}"


def checked_text(check: Check) -> str:
    """A check's mean with its 95 % interval (``255ms [246ms, 265ms]``), each number to as many significant
    digits as it takes to differ from the bound where it does: 49.96 against ``< 50`` never reads 50.0."""
    interval = check.interval
    if interval is None or math.isnan(interval.mean):
        return ABSENT
    duration = check.objective.figure.duration
    bound = check.objective.bound
    mean = beside_text(interval.mean, bound, duration)
    if interval.replications < 2 or interval.low == interval.high:
        return mean
    # Every figure bounded is a count or a duration: an interval reaching below 0 is shown from 0.
    low, high = (beside_text(end, bound, duration) for end in (max(interval.low, 0.0), interval.high))
    return f"{mean} [{low}, {high}]"


def beside_text(value: float, other: float, duration: bool) -> str:
    """``value`` as a table shows it (:func:`~busim.report.sweep.figure_text`), with as many significant digits
    as it takes not to print equal to ``other`` (a bound, or 0 for a margin) where it is not."""
    if value == other or _digits_text(value, duration, None) != _digits_text(other, duration, None):
        return figure_text(value, duration)
    for digits in range(4, _MOST_DIGITS + 1):
        shown = _digits_text(value, duration, digits)
        if shown != _digits_text(other, duration, digits):
            return shown
    return shown


def _digits_text(value: float, duration: bool, digits: int | None) -> str:
    """``value`` to ``digits`` significant digits, in the unit :func:`format_duration` would choose for a
    duration; where ``digits`` is None, as an interval's end reads: a duration to 3 digits, a count to 0.1."""
    if digits is None:
        return format_duration(value) if duration else f"{value:,.1f}"
    if not duration:
        return f"{value:,.{digits}g}"
    scale, unit = next(((scale, unit) for scale, unit in _UNITS if abs(value) < scale * 1000), (1.0, "s"))
    return f"{value / scale:.{digits}g}{unit}"


def probe_line(probe: Probe, key: str) -> str:
    """``instances=4  fails  inventory.p99 = 3.2s [3.0s, 3.4s] > 2s  (5 runs)``."""
    integer = float(probe.value).is_integer() and abs(probe.value) < 1e15
    value = f"{probe.value:.0f}" if integer else f"{probe.value:.4g}"
    checks = "; ".join(check_text(check) for check in probe.checks)
    return f"{short_key(key)}={value}  {probe.verdict.value}  {checks}  ({counted(probe.replications, 'run')})"


# ---------------------------------------------------------------- capacity.json
def _margin(check: Check) -> dict[str, Any]:
    margin = check.margin
    bound = check.objective.bound
    fraction = None if margin is None or bound == 0 else margin / abs(bound)
    return {"objective": check.objective.label, "margin": finite(margin), "fraction_of_bound": finite(fraction)}


def _objective_record(objective: Objective) -> dict[str, Any]:
    return {
        "text": objective.text,
        "label": objective.label,
        "consumer": objective.figure.consumer,
        "figure": objective.figure.name,
        "op": objective.op,
        "bound": objective.bound,
    }


def _check_record(check: Check) -> dict[str, Any]:
    interval = check.interval
    two = interval is not None and interval.replications > 1
    return {
        "objective": check.objective.label,
        "mean": None if interval is None else finite(interval.mean),
        "low": finite(interval.low) if two and interval is not None else None,
        "high": finite(interval.high) if two and interval is not None else None,
        "verdict": check.verdict.value,
    }


def _seed(answer: CapacityAnswer) -> int | None:
    """The root seed every probe's runs were spawned from: the scenario's as run."""
    return answer.probes[0].outcome.scenario.seed if answer.probes else None


def capacity_document(answer: CapacityAnswer) -> dict[str, Any]:
    """capacity.json as plain JSON data (schema ``busim.capacity/1``): the question, the answer (null where none
    was found), the margin of each objective at it, the nearest value that fails, every probe in the order
    tried, and the notes. Durations in seconds."""
    at_answer = answer.answer_probe
    nearest = answer.nearest_failing
    space = answer.space
    return {
        "schema": CAPACITY_SCHEMA,
        "key": space.key,
        "goal": space.goal,
        "search": {
            "start": space.start,
            "lowest": space.lowest,
            "highest": space.highest,
            "integer": space.integer,
            "tolerance": space.tolerance,
        },
        "objectives": [_objective_record(objective) for objective in answer.objectives],
        "answer": finite(answer.answer),
        "margins": [] if at_answer is None else [_margin(check) for check in at_answer.checks],
        "nearest_failing": None if nearest is None else nearest.value,
        "probes": [
            {
                "value": probe.value,
                "phase": probe.phase,
                "replications": probe.replications,
                "verdict": probe.verdict.value,
                "checks": [_check_record(check) for check in probe.checks],
            }
            for probe in answer.probes
        ],
        "notes": list(answer.notes),
        "seed": _seed(answer),
    }


def capacity_json(answer: CapacityAnswer) -> str:
    """capacity.json as text: stable key order, so that identical searches give identical files."""
    return json_text(capacity_document(answer))


# ---------------------------------------------------------------- views
@dataclass(frozen=True)
class CapacityViews:
    """Everything a capacity search shows, in the order its report reads it."""

    answer: str  # the answer in one sentence
    found: bool
    probes: TableView  # a row per probe, by value
    margins: tuple[str, ...]  # per objective, how far the answer keeps from its bound
    nearest: str  # the nearest value that fails, and why
    notes: tuple[str, ...]


def _check_cell(check: Check) -> Cell:
    if check.interval is None or math.isnan(check.interval.mean):
        return Cell(ABSENT, None, "bad")
    return Cell(checked_text(check), check.interval.mean, _TONES[check.verdict])


def _probes_table(answer: CapacityAnswer) -> TableView:
    consumers = {objective.figure.consumer for objective in answer.objectives}
    # With one consumer the title names it, and the columns keep to the figures: narrower, they fit a console.
    only = consumers.pop() if len(consumers) == 1 else ""
    columns = (
        Column("runs"),
        *(
            Column(objective.label.removeprefix(f"{only}.") if only else objective.label)
            for objective in answer.objectives
        ),
        Column("verdict", right=False),
    )
    rows = []
    for probe in sorted(answer.probes, key=lambda probe: probe.value):
        verdict = probe.verdict.value + (", the answer" if probe.value == answer.answer else "")
        cells = (
            text_cell(str(probe.replications)),
            *(_check_cell(check) for check in probe.checks),
            Cell(verdict, probe.verdict.value, _TONES[probe.verdict]),
        )
        rows.append(Row(value_text(answer, probe.value), cells))
    of = f"{only}'s " if only else ""
    title = f"Each probe: {of}means [{CONFIDENCE:.0%} confidence interval]"
    return TableView(title, columns, tuple(rows), label=short_key(answer.space.key))


def margin_text(check: Check) -> str:
    """``inventory.p99 < 2s: 342ms to spare (17 % of the bound)``; or how far it falls short."""
    margin = check.margin
    label = check.objective.label
    if margin is None:
        return f"{label}: no value"
    duration = check.objective.figure.duration
    words = "to spare" if margin >= 0 else "short"
    bound = check.objective.bound
    share = f" ({_percent(abs(margin) / abs(bound))} of the bound)" if bound else ""
    return f"{label}: {beside_text(abs(margin), 0.0, duration)} {words}{share}"


def _nearest_text(answer: CapacityAnswer) -> str:
    nearest = answer.nearest_failing
    if nearest is None:
        return ""
    checks = "; ".join(check_text(check) for check in nearest.checks if check.verdict is not Verdict.MEETS)
    return f"The nearest value that does not meet them, {value_text(answer, nearest.value)}: {checks}"


def capacity_views(answer: CapacityAnswer) -> CapacityViews:
    """The sentences and table of a capacity search, built once for the console and capacity.md."""
    at_answer = answer.answer_probe
    return CapacityViews(
        answer=answer_sentence(answer),
        found=answer.answer is not None,
        probes=_probes_table(answer),
        margins=() if at_answer is None else tuple(margin_text(check) for check in at_answer.checks),
        nearest=_nearest_text(answer),
        notes=answer.notes,
    )


def capacity_markdown(answer: CapacityAnswer, charts: Sequence[ShownChart] = ()) -> str:
    """capacity.md: the answer, the probes by value, the margins, the notes and the chart; every text escaped."""
    return render("capacity.md.j2", views=capacity_views(answer), charts=charts)


def render_capacity(console: Console, answer: CapacityAnswer) -> None:
    """Print the answer plainly, then the probes by value, the margin at the answer and the notes."""
    views = capacity_views(answer)
    show(console, Text(views.answer, style="bold green" if views.found else "bold red"))
    show(console, *view_tables(console, views.probes))
    if views.margins:
        show(console, Text("Margin at the answer:", style="bold"), *(Text(f"  {line}") for line in views.margins))
    if views.nearest:
        show(console, Text(views.nearest))
    for note in views.notes:
        show(console, Text(f"Note: {note}", style="yellow"))


def write_capacity(answer: CapacityAnswer, folder: Path, text: str, charts: bool) -> None:
    """Write capacity.json (``text``, as :func:`capacity_json` made it), capacity.md and, unless ``charts`` is
    false, the chart (PNG and SVG) into ``folder``.

    Raises:
        OutputError: the folder cannot be written.
    """
    from busim.report.capacity_charts import write_capacity_charts  # matplotlib loads only for the charts

    write_pages(
        folder,
        lambda: write_capacity_charts(answer, folder) if charts else [],
        "the search",
        lambda shown: ((CAPACITY_FILE, text), (CAPACITY_MARKDOWN, capacity_markdown(answer, shown))),
    )


# ---------------------------------------------------------------- progress
class CapacityProgress:
    """The callbacks of a search's spinner: one per finished run, one per decided probe."""

    def __init__(self, progress: Progress, task: TaskID) -> None:
        self._progress = progress
        self._task = task

    def run_done(self, done: int, total: int) -> None:
        """``done`` runs finished of ``total`` (0: not known in advance, as in a search)."""
        runs = counted(done, "run") if total == 0 else f"{done} of {counted(total, 'run')}"
        self._progress.update(self._task, runs=runs)

    def probed(self, probe: Probe) -> None:
        """Print the decided probe's line above the spinner."""
        # The search hands over the probe alone: its key is the last assignment its scenario was loaded with.
        assignments = probe.outcome.source.overrides
        key = assignments[-1].partition("=")[0] if assignments else "value"
        self._progress.console.print(Text(probe_line(probe, key), style=_LINE_STYLES[probe.verdict]))


_LINE_STYLES = {Verdict.MEETS: "green", Verdict.FAILS: "red", Verdict.UNDECIDED: "yellow"}


@contextmanager
def capacity_progress(console: Console, enabled: bool) -> Iterator[CapacityProgress | None]:
    """A transient spinner with the runs done and the time taken while a search runs; None when not ``enabled``."""
    if not enabled:
        yield None
        return
    progress = Progress(
        SpinnerColumn(),
        TextColumn("searching", style="bold"),
        TextColumn("{task.fields[runs]}", markup=False),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
    task = progress.add_task("searching", total=None, runs=counted(0, "run"), start=True)
    with progress:
        yield CapacityProgress(progress, task)


def _percent(fraction: float) -> str:
    """``17%``, ``0.5%``: two significant digits below 10 %, so that a small margin does not read as none."""
    return f"{fraction:.0%}" if fraction >= 0.1 or fraction == 0 else f"{fraction * 100:.2g}%"
