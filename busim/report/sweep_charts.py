"""Charts of a sweep for a slide: each figure against the varied keys, its mean with its 95 % interval.

In the style of :mod:`busim.report.charts` (1280 x 720 pixels, the Okabe-Ito
palette, legends beside the axes). One axis: a chart per figure, a line per
consumer with its interval as a band, on a log axis where the values grow
geometrically (``1..64:x2``); a list of words (``kafka,rabbitmq``) is
categorical, each mean a dot with error bars. Two axes: a heat map per
figure and consumer, values written in the cells where they fit. More
axes: a chart per figure and consumer, a line per combination of the
others against the first.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.axis import XAxis, YAxis
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import LogFormatter, NullFormatter

from busim.analysis.intervals import CONFIDENCE
from busim.planning.figures import Figure as PlannedFigure
from busim.planning.sweep import Sweep, SweepPoint
from busim.report.calibration import figure_label
from busim.report.charts import Chart, _figure, _legend, _overrides_note, _plain, _style, _titled, _written
from busim.report.sweep import figure_text
from busim.scenario.ranges import Axis
from busim.words import counted

_GEOMETRIC_RATIO = 2  # values multiplied by at least this at each step read best on a log axis
_ANNOTATED_CELLS = 64  # heat map cells that leave room for their value written in them
_DURATION_UNITS = ((1e-6, "µs"), (1e-3, "ms"), (1.0, "s"))  # the unit a duration axis reads in, by its largest value
_SHORT_VALUE = 16  # characters of a --set value a chart's title repeats; longer ones are named by their key
_CATEGORY_SPREAD = 0.3  # of the gap between two words: where the consumers' dots for one word spread


def geometric(numbers: Sequence[float | None]) -> bool:
    """Whether ``numbers`` grow by one constant ratio of at least 2 (``1, 2, 4, 8``): a log axis spaces them evenly."""
    if len(numbers) < 3 or any(number is None or number <= 0 for number in numbers):
        return False
    ratios = [later / earlier for earlier, later in itertools.pairwise(numbers)]  # type: ignore[operator]
    return ratios[0] >= _GEOMETRIC_RATIO and all(math.isclose(ratio, ratios[0], rel_tol=1e-6) for ratio in ratios)


def duration_unit(values_s: Sequence[float]) -> tuple[float, str]:
    """The unit a duration axis reads in, by its largest value: seconds per unit and its symbol (``ms``)."""
    largest = max((abs(value) for value in values_s if math.isfinite(value)), default=0.0)
    for scale, unit in reversed(_DURATION_UNITS):
        if largest >= scale:
            return scale, unit
    return _DURATION_UNITS[0]


def figure_name(figure: PlannedFigure) -> str:
    """A figure as a chart names it: ``end-to-end p99``, ``duplicate effects``, ``drain time`` (``drain_s``:
    the axis label adds its unit)."""
    if len(figure.path) == 1 and figure.path[0].endswith("_s"):
        words = figure.path[0].removesuffix("_s").replace("_", " ")
        return words if " " in words else f"{words} time"
    return figure_label(".".join(figure.path))


class _PlainLogFormatter(LogFormatter):
    """A log axis's labels as plain numbers (6,000, not 6×10³), minor ones where the axis spans few decades;
    only whole numbers where ``whole``."""

    def __init__(self, whole: bool, minor: bool) -> None:
        super().__init__(labelOnlyBase=False, minor_thresholds=(2, 0.5) if minor else (0, 0))
        self._whole = whole

    def _num_to_string(self, x: float, vmin: float, vmax: float) -> str:
        if self._whole and not float(x).is_integer():
            return ""
        return f"{x:,g}"


def plain_log_ticks(axis: XAxis | YAxis, whole: bool) -> None:
    """Label a log ``axis`` in plain numbers, major and minor ticks alike; whole numbers only where ``whole``
    (a count of instances has no 1.5)."""
    axis.set_major_formatter(_PlainLogFormatter(whole, minor=False))
    axis.set_minor_formatter(_PlainLogFormatter(whole, minor=True))


def _means(sweep: Sweep, points: Sequence[SweepPoint], figure: PlannedFigure) -> np.ndarray:
    """Each point's mean, low and high (rows), NaN where there is none."""
    rows = []
    for point in points:
        interval = point.figure(figure)
        if interval is None:
            rows.append((math.nan, math.nan, math.nan))
        elif interval.replications < 2:
            rows.append((interval.mean, interval.mean, interval.mean))
        else:
            rows.append((interval.mean, interval.low, interval.high))
    return np.array(rows, dtype=float).reshape(-1, 3).T


def _unit(sweep: Sweep, figures: Sequence[PlannedFigure]) -> tuple[float, str]:
    """The scale and label suffix of ``figures``' values: a duration's unit chosen from the values, none for a count."""
    if not figures[0].duration:
        return 1.0, ""
    values = [value for figure in figures for value in _means(sweep, sweep.points, figure).ravel()]
    scale, unit = duration_unit(values)
    return scale, f" ({unit})"


def _notes(sweep: Sweep, intervals: bool = True) -> list[str]:
    """What each point shows (its interval where the chart draws it; a heat map shows means only) and the
    --set keys, on one line."""
    runs = counted(sweep.replications, "replication")
    if intervals:
        interval = f", with its {CONFIDENCE:.0%} interval" if sweep.replications > 1 else ""
        means = f"each point: the mean of {runs} on the same seeds{interval}"
    else:
        interval = f" (sweep.md has its {CONFIDENCE:.0%} interval)" if sweep.replications > 1 else ""
        means = f"each cell: the mean of {runs} on the same seeds{interval}"
    overrides = short_overrides(sweep.overrides)
    return ["; ".join(part for part in (means, overrides) if part)]


def short_overrides(overrides: Sequence[str]) -> str:
    """``with duration=20s, publishers.orders.rate set``: each --set key, with its value where that is short (a
    rate schedule would fill the title; sweep.md has it whole)."""
    shown = []
    for override in overrides:
        key, _, value = override.partition("=")
        shown.append(override if len(value) <= _SHORT_VALUE else f"{key} set")
    return _overrides_note(shown)


def _key_axis(ax: Axes, axis: Axis) -> np.ndarray:
    """Lay the x axis out for ``axis``'s values: at their numbers (log where geometric), or one word after
    another; return each value's position."""
    numbers = [value.number for value in axis.values]
    labels = [_plain(value.label) for value in axis.values]
    if all(number is not None for number in numbers):
        positions = np.array(numbers, dtype=float)
        if geometric(numbers):
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.margins(x=0.04)  # the first and last points clear of the axes' edges
    else:
        positions = np.arange(len(labels), dtype=float)
        ax.set_xlim(-0.5, len(labels) - 0.5)
    ax.set_xticks(positions, labels=labels)
    ax.set_xlabel(_plain(axis.key))
    return positions


def _line(
    ax: Axes, x: np.ndarray, means: np.ndarray, index: int, numeric: bool, count: int, scale: float
) -> Line2D | None:
    """One series: a line with its interval as a band, or (on words) dots with error bars."""
    colour, dash = _style(index)
    mean, low, high = means / scale
    if numeric:
        (line,) = ax.plot(x, mean, color=colour, linestyle=dash, marker="o", markersize=4, linewidth=1.8)
        ax.fill_between(x, low, high, color=colour, alpha=0.2, linewidth=0)
        return line
    offset = (index - (count - 1) / 2) * _CATEGORY_SPREAD / max(count - 1, 1) if count > 1 else 0.0
    errors = np.nan_to_num(np.vstack([mean - low, high - mean]))
    ax.errorbar(x + offset, mean, yerr=errors, fmt="o", color=colour, capsize=4, markersize=5)
    return Line2D([], [], color=colour, marker="o", linestyle="")


def _against_first_axis(
    sweep: Sweep, figures: Sequence[PlannedFigure], series: Sequence[tuple[str, list[SweepPoint]]]
) -> Figure:
    """``figures`` against the first axis, a series per (name, points) and figure; a legend where several."""
    axis = sweep.axes[0]
    several = len(figures) * len(series) > 1
    chart, (ax,), key = _figure(legend=several)
    x_of = dict(zip((value.label for value in axis.values), _key_axis(ax, axis)))
    numeric = all(value.number is not None for value in axis.values)
    scale, unit = _unit(sweep, figures)
    handles, labels = [], []
    for figure in figures:
        for name, points in series:
            x = np.array([x_of[point.values[0].label] for point in points])
            handle = _line(
                ax, x, _means(sweep, points, figure), len(handles), numeric, len(figures) * len(series), scale
            )
            handles.append(handle)
            labels.append(" ".join(part for part in (figure.consumer if len(figures) > 1 else "", name) if part))
    ax.set_ylabel(_plain(figure_name(figures[0]) + unit))
    ax.set_ylim(bottom=min(0.0, ax.get_ylim()[0]))
    if key is not None:
        _legend(key, handles, labels, "consumer" if len(series) == 1 else None)
    return chart


def _heat_map(sweep: Sweep, figure: PlannedFigure) -> Figure:
    """``figure`` over the grid of the first two axes, a cell per point, its mean written in where cells fit."""
    across, up = sweep.axes[0], sweep.axes[1]
    columns = {value.label: index for index, value in enumerate(across.values)}
    rows = {value.label: index for index, value in enumerate(up.values)}
    grid = np.full((len(rows), len(columns)), np.nan)
    for point in sweep.points:
        interval = point.figure(figure)
        if interval is not None:
            grid[rows[point.values[1].label], columns[point.values[0].label]] = interval.mean
    scale, unit = _unit(sweep, [figure])
    chart, (ax,), _ = _figure()
    found = grid[np.isfinite(grid)] / scale
    # One value everywhere (lost: 0 at every point) gets a scale from 0 to it, or to 1, not -0.1 to 0.1.
    same = found.size > 0 and found.min() == found.max()
    low, high = (min(0.0, found[0]), max(0.0, found[0]) or 1.0) if same else (None, None)
    image = ax.imshow(
        np.ma.masked_invalid(grid / scale), origin="lower", aspect="auto", cmap="viridis", vmin=low, vmax=high
    )
    ax.set_xticks(range(len(columns)), labels=[_plain(label) for label in columns])
    ax.set_yticks(range(len(rows)), labels=[_plain(label) for label in rows])
    ax.set_xlabel(_plain(across.key))
    ax.set_ylabel(_plain(up.key))
    ax.grid(False)
    bar = chart.colorbar(image, ax=ax)
    every = f", {figure_text(found[0] * scale, figure.duration)} at every point" if same else ""
    bar.set_label(_plain(f"{figure.consumer}: {figure_name(figure)}{unit}{every}"))
    if grid.size <= _ANNOTATED_CELLS:
        for (row, column), value in np.ndenumerate(grid):
            if math.isfinite(value):
                # Light text on the dark (low) end of viridis, dark text on the light end.
                colour = "white" if image.norm(value / scale) < 0.5 else "black"
                ax.text(column, row, figure_text(value, figure.duration), ha="center", va="center", color=colour)
    return chart


def _combinations(sweep: Sweep) -> list[tuple[str, list[SweepPoint]]]:
    """The points grouped by their values on every axis but the first, each group named by those values."""
    names = [axis.key.split(".")[-1] for axis in sweep.axes[1:]]
    groups: dict[tuple[str, ...], list[SweepPoint]] = {}
    for point in sweep.points:
        groups.setdefault(tuple(value.label for value in point.values[1:]), []).append(point)
    return [
        (" ".join(f"{name}={label}" for name, label in zip(names, labels)), points) for labels, points in groups.items()
    ]


def safe_name(text: str) -> str:
    """``text`` as part of a file's name on any file system: letters, digits, - and _ only."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-") or "figure"


def sweep_charts(sweep: Sweep) -> dict[str, Figure]:
    """Every chart of the sweep, by the name of its files: ``sweep-<figure>-<consumer>`` (``sweep-p99-inventory``)
    whatever the axes; ``sweep-<figure>`` for one axis and several consumers, a line each on one chart."""
    by_name: dict[str, list[PlannedFigure]] = {}
    for figure in sweep.figures:
        by_name.setdefault(figure.name, []).append(figure)
    drawn: dict[str, Figure] = {}

    def add(name: str, chart: Figure, title: str, notes: list[str]) -> None:
        stem, number = name, 1
        while stem in drawn:  # two names that differ only by characters a file name cannot hold
            number += 1
            stem = f"{name}-{number}"
        drawn[stem] = _titled(chart, title, notes)

    keys = " and ".join(axis.key for axis in sweep.axes)
    for name, figures in by_name.items():
        shown = figure_name(figures[0])
        if len(sweep.axes) == 1 and len(figures) > 1:
            # The consumers on one chart, a line each: named after the figure alone.
            chart = _against_first_axis(sweep, figures, [("", list(sweep.points))])
            title = f"{sweep.scenario}: {shown} of each consumer by {keys}"
            add(f"sweep-{safe_name(name)}", chart, title, _notes(sweep))
            continue
        for figure in figures:
            notes = _notes(sweep)
            if len(sweep.axes) == 2:
                chart = _heat_map(sweep, figure)
                notes = _notes(sweep, intervals=False)
            else:
                chart = _against_first_axis(
                    sweep, [figure], _combinations(sweep) if len(sweep.axes) > 1 else [("", list(sweep.points))]
                )
            title = f"{sweep.scenario}: {shown} of {figure.consumer} by {keys}"
            add(f"sweep-{safe_name(name)}-{safe_name(figure.consumer)}", chart, title, notes)
    return drawn


def write_sweep_charts(sweep: Sweep, folder: Path) -> list[Chart]:
    """Save every chart of the sweep as PNG and SVG in ``folder``; return each chart's files and title."""
    return [_written(chart, folder, name) for name, chart in sweep_charts(sweep).items()]
