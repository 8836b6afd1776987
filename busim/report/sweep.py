"""A sweep's report: its figures at every point of the grid, as sweep.json, sweep.csv, sweep.md, charts and a table.

The views are built here once: for the console, one table with a row per
point, a column per varied key and one per figure (the mean and its 95 %
interval, on one line: as an interval, a figure that cannot be negative
never seems to reach below 0); for sweep.md, a table per figure. sweep.json keeps every number as a number; sweep.csv is
:meth:`~busim.planning.sweep.Sweep.rows`, one row per point and figure.
Nothing here computes a figure: each is the sweep's mean and interval, formatted.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.text import Text

from busim.analysis.intervals import CONFIDENCE, Interval
from busim.planning.figures import Figure
from busim.planning.sweep import Sweep, SweepPoint
from busim.report.console import show, view_tables
from busim.report.run_report import ShownChart, write_pages
from busim.report.tables import Cell, Column, Row, TableView, text_cell
from busim.report.templating import render
from busim.report.views import count_text, intervaltext_cell
from busim.results import json_text
from busim.scenario.units import ABSENT, format_duration
from busim.scenario.variants import axis_labels
from busim.words import counted

SWEEP_FILE = "sweep.json"
SWEEP_CSV = "sweep.csv"
SWEEP_MARKDOWN = "sweep.md"
SWEEP_SCHEMA = "busim.sweep/1"


def finite(value: float | None) -> float | None:
    """A number as JSON holds it: None where there is none, or it is NaN or infinite (JSON has neither)."""
    # + 0.0 turns -0.0 (a margin of nothing, negated) into 0.0.
    return value + 0.0 if value is not None and math.isfinite(value) else None


def figure_text(value: float, duration: bool) -> str:
    """A figure's value as a table shows it: a duration in its unit (``412ms``), a count to one decimal."""
    return format_duration(value) if duration else count_text(value)


def interval_spread(interval: Interval) -> float | None:
    """The half-width of the 95 % interval, from its high end (its low end may have been raised to 0, for a
    count); None with too few runs for an interval."""
    if interval.replications < 2 or not math.isfinite(interval.high):
        return None
    return interval.high - interval.mean


# ---------------------------------------------------------------- sweep.json and sweep.csv
def _interval_record(interval: Interval | None) -> dict[str, Any]:
    if interval is None:
        return {"mean": None, "low": None, "high": None, "runs_with_value": 0}
    spread = interval_spread(interval) is not None
    return {
        "mean": finite(interval.mean),
        "low": finite(interval.low) if spread else None,
        "high": finite(interval.high) if spread else None,
        "runs_with_value": interval.replications,
    }


def _point_record(sweep: Sweep, point: SweepPoint) -> dict[str, Any]:
    return {
        "name": point.name,
        "values": {axis.key: value.label for axis, value in zip(sweep.axes, point.values)},
        "numbers": {axis.key: finite(value.number) for axis, value in zip(sweep.axes, point.values)},
        "left_out": list(point.left_out),
        "runs": point.outcome.runs,
        "figures": {figure.label: _interval_record(point.figure(figure)) for figure in sweep.figures},
    }


def sweep_document(sweep: Sweep) -> dict[str, Any]:
    """sweep.json as plain JSON data (schema ``busim.sweep/1``): what ran, then each point's figures, each a mean
    with its 95 % interval (null where the runs give none), then how long it took and on which versions."""
    return {
        "schema": SWEEP_SCHEMA,
        "scenario": sweep.scenario,
        "file": sweep.file,
        "seed": sweep.seed,
        "replications": sweep.replications,
        "overrides": list(sweep.overrides),
        "axes": [
            {
                "key": axis.key,
                "values": [
                    {"text": value.text, "label": value.label, "number": finite(value.number)} for value in axis.values
                ],
            }
            for axis in sweep.axes
        ],
        "figures": [
            {"consumer": figure.consumer, "name": figure.name, "duration": figure.duration} for figure in sweep.figures
        ],
        "points": [_point_record(sweep, point) for point in sweep.points],
        "run": dataclasses.asdict(sweep.run),
    }


def sweep_json(sweep: Sweep) -> str:
    """sweep.json as text: stable key order, so that identical sweeps give identical files.

    Raises:
        ValueError: a number is not finite (none is: :func:`finite` turns those to null).
    """
    return json_text(sweep_document(sweep))


def sweep_csv(sweep: Sweep) -> str:
    """sweep.csv as text: a header, then a row per point and figure (:meth:`Sweep.rows`), an empty cell where a
    figure has no value."""
    rows = sweep.rows()
    header = list(rows[0]) if rows else ["point", *(axis.key for axis in sweep.axes), "consumer", "figure", "unit"]
    stream = io.StringIO()
    writer = csv.DictWriter(stream, fieldnames=header, lineterminator="\n")  # None is written as an empty cell
    writer.writeheader()
    writer.writerows(rows)
    return stream.getvalue()


# ---------------------------------------------------------------- views
@dataclass(frozen=True)
class SweepViews:
    """Everything a sweep shows, in the order its report reads it."""

    title: str  # "<scenario>: <figures> by <keys>"
    facts: tuple[str, ...]  # the file, the seed, the runs, the overrides
    key: str  # what a figure's cell holds in the console's table
    intervals: str  # what it holds in sweep.md's tables
    points: TableView  # a row per point: each key's value, then every figure as mean [low, high]
    figures: tuple[TableView, ...]  # a table per figure: a row per point, the mean and its interval
    left_out: tuple[str, ...]  # per --set key some points left out, which
    same: tuple[str, ...]  # per point whose figures are another's, which


def _key_columns(sweep: Sweep) -> tuple[list[str], list[Column]]:
    """The name of each axis as a table heads it (the last parts of its key) and the columns past the first."""
    names = axis_labels([axis.key for axis in sweep.axes])
    numeric = [all(value.number is not None for value in axis.values) for axis in sweep.axes]
    return names, [Column(name, right=right) for name, right in zip(names[1:], numeric[1:])]


def _key_cells(point: SweepPoint) -> tuple[str, tuple[Cell, ...]]:
    """A point's value on the first axis (the row's label), and its values on the others."""
    labels = [value.label for value in point.values]
    return labels[0], tuple(text_cell(label) for label in labels[1:])


def _figure_heading(figure: Figure, consumers: int) -> str:
    return figure.label if consumers > 1 else figure.name


def _interval_cell(interval: Interval | None, duration: bool) -> Cell:
    if interval is None or not math.isfinite(interval.mean):
        return Cell(ABSENT)
    if duration:
        return Cell(intervaltext_cell(interval, duration), interval.mean)
    return Cell(_count_interval_text(interval), interval.mean)


def _count_interval_text(interval: Interval) -> str:
    """A count's mean and 95 % interval, short enough to stay on one line: whole counts past 10
    (``582 [0, 1,370]``), one decimal below (``2.5 [0, 8.9]``)."""
    shown = [_count_text(interval.mean)]
    if interval_spread(interval) and interval.low != interval.high:
        shown.append(f"[{_count_text(max(interval.low, 0.0))}, {_count_text(interval.high)}]")
    return " ".join(shown)


def _count_text(count: float) -> str:
    return f"{count:,.0f}" if abs(count) >= 10 else count_text(count)


def _consumers(sweep: Sweep) -> int:
    return len({figure.consumer for figure in sweep.figures})


def _points_table(sweep: Sweep) -> TableView:
    names, keys = _key_columns(sweep)
    consumers = _consumers(sweep)
    columns = (*keys, *(Column(_figure_heading(figure, consumers)) for figure in sweep.figures))
    rows = []
    for point in sweep.points:
        label, cells = _key_cells(point)
        figures = tuple(_interval_cell(point.figure(figure), figure.duration) for figure in sweep.figures)
        rows.append(Row(label, (*cells, *figures)))
    only = sweep.figures[0].consumer if consumers == 1 and sweep.figures else ""
    title = f"{only}: figures at each point" if only else "Figures at each point"
    return TableView(title, columns, tuple(rows), label=names[0])


def _figure_tables(sweep: Sweep) -> tuple[TableView, ...]:
    names, keys = _key_columns(sweep)
    tables = []
    for figure in sweep.figures:
        rows = []
        for point in sweep.points:
            label, cells = _key_cells(point)
            runs = point.outcome.runs
            interval = point.figure(figure)
            with_value = 0 if interval is None else interval.replications
            shown = str(runs) if with_value == runs else f"{with_value} of {runs}"
            rows.append(Row(label, (*cells, _interval_cell(interval, figure.duration), text_cell(shown))))
        columns = (*keys, Column("mean [95 % interval]"), Column("runs with a value"))
        tables.append(TableView(figure.label, columns, tuple(rows), label=names[0]))
    return tuple(tables)


def left_out_lines(sweep: Sweep) -> tuple[str, ...]:
    """``--set broker.partitions=4 left out at preset=rabbitmq: not a key of its preset``, once per --set or
    --vary key some points left out, naming them by the axis values that decide it where one axis does."""
    leaving: dict[str, list[SweepPoint]] = {}
    for point in sweep.points:
        for assignment in point.left_out:
            # A --set once for its value; a --vary once for its key, whichever of its values a point left out.
            shown = assignment.partition("=")[0] if assignment.startswith("--vary ") else assignment
            points = leaving.setdefault(shown, [])
            if point not in points:
                points.append(point)
    return tuple(
        f"{assignment} left out at {_where(sweep, points)}: not a key of its preset"
        for assignment, points in leaving.items()
    )


def _where(sweep: Sweep, points: Sequence[SweepPoint]) -> str:
    """The points ``points`` by the values of the one axis that alone picks them out (``preset=rabbitmq``), or
    each by its name where no axis does."""
    names = axis_labels([axis.key for axis in sweep.axes])
    chosen = {id(point) for point in points}
    for index, name in enumerate(names):
        values = {point.values[index].label for point in points}
        if all((id(point) in chosen) == (point.values[index].label in values) for point in sweep.points):
            ordered = [value.label for value in sweep.axes[index].values if value.label in values]
            return ", ".join(f"{name}={label}" for label in ordered)
    return "; ".join(point.name for point in points)


def same_lines(sweep: Sweep) -> tuple[str, ...]:
    """``instances=16 preset=kafka: same as instances=8 preset=kafka``, for each point whose figures (every
    mean and interval) are an earlier point's, as ``busim compare`` notes variants that give the same figures."""
    first: dict[tuple[object, ...], str] = {}
    lines = []
    for point in sweep.points:
        intervals = tuple(point.figure(figure) for figure in sweep.figures)
        figures = tuple(None if i is None else (i.mean, i.low, i.high, i.replications) for i in intervals)
        # NaN never equals itself: compare their text, so that two single runs without an interval match.
        found = tuple(repr(figure) for figure in figures)
        if found in first:
            lines.append(f"{point.name}: same as {first[found]}")
        else:
            first[found] = point.name
    return tuple(lines)


def sweep_views(sweep: Sweep) -> SweepViews:
    """The tables and sentences of a sweep, built once for the console and sweep.md."""
    names = {figure.name: None for figure in sweep.figures}
    facts = [
        f"scenario file {sweep.file}, seed {sweep.seed}",
        f"{counted(len(sweep.points), 'point')} x {counted(sweep.replications, 'replication')} "
        f"on the same seeds, {counted(sweep.runs, 'run')} in {sweep.run.wall_time_s:,.1f}s",
    ]
    if sweep.overrides:
        facts.append("every point with " + ", ".join(f"--set {override}" for override in sweep.overrides))
    return SweepViews(
        title=f"{sweep.scenario}: {', '.join(names)} by {' and '.join(axis.key for axis in sweep.axes)}",
        facts=tuple(facts),
        key=f"each figure: the mean of the runs [its {CONFIDENCE:.0%} confidence interval]",
        intervals=f"Each figure: the mean of the point's runs [its {CONFIDENCE:.0%} confidence interval].",
        points=_points_table(sweep),
        figures=_figure_tables(sweep),
        left_out=left_out_lines(sweep),
        same=same_lines(sweep),
    )


def sweep_markdown(sweep: Sweep, charts: Sequence[ShownChart] = ()) -> str:
    """sweep.md: what ran, then a table per figure (a row per point, the mean and its 95 % interval), the
    charts; every text escaped (:mod:`busim.report.markdown`)."""
    return render("sweep.md.j2", views=sweep_views(sweep), charts=charts)


def write_sweep(sweep: Sweep, folder: Path, text: str, charts: bool) -> None:
    """Write sweep.json (``text``, as :func:`sweep_json` made it), sweep.csv, sweep.md and, unless ``charts`` is
    false, the charts (PNG and SVG) into ``folder``.

    Raises:
        OutputError: the folder cannot be written.
    """
    from busim.report.sweep_charts import write_sweep_charts  # matplotlib loads only for the charts

    write_pages(
        folder,
        lambda: write_sweep_charts(sweep, folder) if charts else [],
        "the sweep",
        lambda shown: (
            (SWEEP_FILE, text),
            (SWEEP_CSV, sweep_csv(sweep)),
            (SWEEP_MARKDOWN, sweep_markdown(sweep, shown)),
        ),
    )


def render_sweep(console: Console, sweep: Sweep) -> None:
    """Print the sweep's table (a row per point, split into continued tables where the console is too
    narrow), the points that gave another's figures and a line per --set key some points left out."""
    views = sweep_views(sweep)
    show(console, Text(views.title, style="bold"), Text(" · ".join(views.facts), style="dim"))
    show(console, *view_tables(console, views.points))
    show(console, Text(views.key, style="dim"))
    for line in views.same:
        show(console, Text(line))
    for line in views.left_out:
        show(console, Text(line, style="yellow"))
