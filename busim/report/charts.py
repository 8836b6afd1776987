"""Charts of a run or a comparison for a slide: matplotlib figures built with the object-oriented API.

Each run chart takes a :class:`~busim.results.Result` (simulated, or read back
from a run's folder), each comparison chart a :class:`~busim.results.Comparison`,
and returns a ``matplotlib.figure.Figure`` of 1280 x 720 pixels; nothing here
shows a window or touches pyplot's global state. :func:`write_charts` and
:func:`write_comparison_charts` save them as PNG and SVG.

On a slide every text must stay legible whatever the number of consumers or
variants: a chart of several consumers draws one panel each (or a table when
bars would not fit), legends sit beside the axes, values are labelled, and
curves or bars that coincide are named rather than hidden under each other.
Each chart's title says which overrides produced it.
Colours are the Okabe-Ito palette, which colour-blind readers tell apart.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import rc_context
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LinearSegmentedColormap
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.text import Text
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from busim.analysis.intervals import Interval
from busim.analysis.series import Series
from busim.report.slowdown_marks import shade_slowdowns, slowdown_key
from busim.report.views import reason_label
from busim.results import Comparison, Replications, Result
from busim.scenario import Scenario
from busim.scenario.units import format_duration
from busim.words import counted

PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
OUTAGE_COLOUR = "#999999"
CRASH_COLOUR = PALETTE[-1]  # the same in every consumer's panel: a crash is not a series
FORMATS = ("png", "svg")
_SIZE = (10.24, 5.76)  # inches: 1280 x 720 pixels at _DPI, a 16:9 slide
_DPI = 125
_SMALL_PT = 8  # the smallest text: 14 pixels tall at _DPI
_TITLE_PT = 11
_TITLE_CHARACTERS = 110  # a title line at _TITLE_PT that fits the slide's width
_PANEL_TITLE_PT = 9
_LEGEND_LINES = 28  # legend lines at _SMALL_PT that fit the slide's height, before a second column
_LINE_STYLES = ("-", "--", ":", "-.")  # past eight series the colours repeat, with another dash
_GROUPED_BARS = 4  # consumers whose bars share a row and still leave room for a label each
_TABLE_ROWS = 28  # rows of a table that fit the slide at _SMALL_PT
_MAX_COUNTER_PANELS = 9  # counters that drifted, one panel each; the rest are named
_SHADES = LinearSegmentedColormap.from_list("departures", ["#FFFFFF", PALETTE[3]])


@dataclass(frozen=True)
class Chart:
    """A chart as written: its name (the stem of its files), the title it states, and its files."""

    name: str
    title: str
    paths: tuple[Path, ...]

    def path(self, suffix: str) -> Path:
        """The chart's file in one format (``"png"`` or ``"svg"``)."""
        return next(path for path in self.paths if path.suffix == f".{suffix}")


def _plain(text: object) -> str:
    """Text as matplotlib shows it as written: between two $ it would read mathematical notation, and fail on
    what is not (a variant named after a price, a key with a backslash)."""
    return str(text).replace("$", r"\$")


def _wrapped(text: str, width: int, break_on_hyphens: bool = True) -> str:
    """``text`` in lines of at most ``width`` characters, keeping the line breaks it has."""
    return "\n".join(
        textwrap.fill(line, max(width, 8), break_on_hyphens=break_on_hyphens) or line for line in text.split("\n")
    )


def _style(index: int) -> tuple[str, str]:
    """The colour and dash of the ``index``-th series."""
    return PALETTE[index % len(PALETTE)], _LINE_STYLES[index // len(PALETTE) % len(_LINE_STYLES)]


def _plain_axes(ax: Axes) -> None:
    ax.grid(True, alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)
    # Minor ticks too: matplotlib sizes their labels apart, and a log axis of few decades labels them.
    ax.tick_params(which="both", labelsize=_SMALL_PT)
    ax.xaxis.label.set_size(_PANEL_TITLE_PT)
    ax.yaxis.label.set_size(_PANEL_TITLE_PT)


def _new_figure() -> Figure:
    figure = Figure(figsize=_SIZE, dpi=_DPI, layout="constrained")
    FigureCanvasAgg(figure)  # a renderer, to measure labels before saving
    return figure


def _areas(figure: Figure, legend: bool) -> tuple[Any, Axes | None]:
    """Where a chart's axes go and, where it has a legend, the legend's place beside them: a column of its
    own as tall as the figure, as wide as the legend (a legend beside one panel would stretch its row)."""
    if not legend:
        return figure.add_gridspec(1, 1)[0, 0], None
    outer = figure.add_gridspec(1, 2, width_ratios=(1, 0.001))
    key = figure.add_subplot(outer[0, 1])
    key.set_axis_off()
    return outer[0, 0], key


def _figure(rows: int = 1, legend: bool = False) -> tuple[Figure, list[Axes], Axes | None]:
    figure = _new_figure()
    area, key = _areas(figure, legend)
    axes = area.subgridspec(rows, 1).subplots(sharex=True, squeeze=False)[:, 0].tolist()
    for ax in axes:
        _plain_axes(ax)
    return figure, axes, key


def _columns(count: int) -> int:
    """Panels per row for ``count`` panels: as many rows as columns, give or take one, on a wide slide."""
    return count if count <= 3 else 2 if count == 4 else math.ceil(math.sqrt(count))


def _panels(
    figure: Figure, count: int, sharex: bool = False, sharey: bool = False, legend: bool = False
) -> tuple[list[Axes], Axes | None]:
    """``count`` axes in a grid, and the legend's place; each panel at the foot of its column keeps its x
    tick labels."""
    columns = _columns(count)
    area, key = _areas(figure, legend)
    grid = area.subgridspec(math.ceil(count / columns), columns).subplots(squeeze=False, sharex=sharex, sharey=sharey)
    cells = grid.ravel().tolist()
    for ax in cells[count:]:
        ax.set_visible(False)
    axes = cells[:count]
    for index, ax in enumerate(axes):
        _plain_axes(ax)
        if index + columns >= count:
            ax.xaxis.set_tick_params(labelbottom=True)
    return axes, key


def _titled(figure: Figure, title: str, notes: Sequence[str] = ()) -> Figure:
    """Give ``figure`` its title and, under it, what produced it; the figure's label holds both on one line,
    for a caption."""
    lines = [title, *(note for note in notes if note)]
    # Overrides break between assignments, not inside a value such as sqs-standard.
    wrapped = (_wrapped(_plain(line), _TITLE_CHARACTERS, break_on_hyphens=False) for line in lines)
    figure.suptitle("\n".join(wrapped), fontsize=_TITLE_PT)
    figure.set_label(" — ".join(lines))
    _fit_panel_titles(figure)
    return figure


def _panel_title(ax: Axes, text: str) -> None:
    """A panel's title; :func:`_titled` wraps it to its panel's width once the layout is known."""
    ax.set_title(_plain(text), fontsize=_PANEL_TITLE_PT)


def _fit_panel_titles(figure: Figure) -> None:
    """Wrap each panel's title to the width of its axes, which the layout only knows once drawn."""
    if not any(ax.get_title() for ax in figure.axes):
        return
    # The layout alone places the axes: drawing the figure for it as well would lay it out and then draw
    # every artist, only for the caller's save to do both again.
    figure.get_layout_engine().execute(figure)
    renderer = figure.canvas.get_renderer()
    for ax in figure.axes:
        title = ax.title
        if not ax.get_visible() or not title.get_text():
            continue
        width_px = title.get_window_extent(renderer).width
        room_px = ax.get_window_extent(renderer).width
        if width_px > room_px:
            characters = max(len(line) for line in title.get_text().split("\n"))
            title.set_text(_wrapped(title.get_text(), int(characters * room_px / width_px * 0.92)))


def _legend(key: Axes, handles: list, labels: list[str], title: str | None = None) -> None:
    """A legend in its place beside the axes (see :func:`_areas`), never on the data, in as many columns
    as its lines need."""
    labels = [_wrapped(_plain(label), 36) for label in labels]
    lines = sum(label.count("\n") + 1 for label in labels) + (1 if title else 0)
    key.legend(
        handles,
        labels,
        loc="upper left",
        bbox_to_anchor=(0.0, 1.0),
        ncols=math.ceil(lines / _LEGEND_LINES),
        fontsize=_SMALL_PT,
        title=_plain(title) if title else None,
        title_fontsize=_SMALL_PT,
        alignment="left",
        frameon=False,
    )


def _duration_axis(ax: Axes, which: str, low_s: float, high_s: float) -> None:
    """A log axis of durations labelled as people read them (1ms, 10ms, 1s), with labels between the
    decades where the data span fewer than two: a log axis with two labels says nothing."""
    (ax.set_xscale if which == "x" else ax.set_yscale)("log")
    axis = ax.xaxis if which == "x" else ax.yaxis
    axis.set_major_formatter(FuncFormatter(lambda value, _: format_duration(value)))
    span = high_s / low_s if low_s > 0 else math.inf
    if span < 100:
        axis.set_minor_locator(LogLocator(subs=(2.0, 5.0) if span < 10 else (3.0,)))
        axis.set_minor_formatter(FuncFormatter(lambda value, _: format_duration(value)))
    else:
        axis.set_minor_formatter(NullFormatter())


Closeness = Callable[[np.ndarray, np.ndarray], bool]
_CLOSE_PERCENT = 2


def _close_in_scale(first: np.ndarray, second: np.ndarray) -> bool:
    """Whether two series differ nowhere by more than _CLOSE_PERCENT of their largest value."""
    largest = max(np.nanmax(np.abs(first), initial=0), np.nanmax(np.abs(second), initial=0))
    return bool(np.nanmax(np.abs(first - second), initial=0) <= largest * _CLOSE_PERCENT / 100)


def _close_in_ratio(first: np.ndarray, second: np.ndarray) -> bool:
    """Whether two series of durations differ nowhere by more than _CLOSE_PERCENT of either, as a log
    axis shows them."""
    return bool(np.all(np.abs(np.log(first) - np.log(second)) <= np.log1p(_CLOSE_PERCENT / 100)))


def _twins(
    series: Sequence[np.ndarray | None], names: Sequence[str], close: Closeness | None = None
) -> list[tuple[str, bool] | None]:
    """For each series, the first earlier one it equals, else the first it is ``close`` to, as (its name,
    whether equal); None where it stands apart. A line or bar on top of another is announced, not hidden."""
    found: list[tuple[str, bool] | None] = []
    for index, values in enumerate(series):
        earlier = [
            (names[other], series[other])
            for other in range(index)
            if values is not None and series[other] is not None and series[other].shape == values.shape
        ]
        equal = next(
            (name for name, other in earlier if np.array_equal(other, values, equal_nan=values.dtype.kind == "f")),
            None,
        )
        near = next((name for name, other in earlier if close and close(other, values)), None)
        found.append((equal, True) if equal else (near, False) if near else None)
    return found


def _twin_note(twin: tuple[str, bool] | None) -> str:
    if twin is None:
        return ""
    name, equal = twin
    return f" (same as {name})" if equal else f" (within {_CLOSE_PERCENT} % of {name})"


def _overrides_note(overrides: Sequence[str]) -> str:
    return "with " + ", ".join(overrides) if overrides else ""


def _run_notes(result: Result) -> list[str]:
    """What produced a run beyond its scenario file: the overrides it was given."""
    return [_overrides_note(result.source.overrides)]


def _quantiles(points: Sequence[tuple[float, float]]) -> np.ndarray:
    """A latency distribution as rows of (percentile, seconds)."""
    return np.array(points, dtype=float).reshape(-1, 2)


def _latencies(points: np.ndarray) -> np.ndarray | None:
    """A distribution's latencies, as its curve on a log axis draws them; None without messages."""
    return np.maximum(points[:, 1], 1e-6) if points.size else None  # a log axis has no 0


_PERCENTILES = (("p50", 50), ("p99", 99), ("p99.9", 99.9))


def latency_cdf(result: Result) -> Figure:
    """The distribution of end-to-end latency per consumer, on a log time axis; its p50, p99 and p99.9 are
    dots on the curve and figures in the legend."""
    figure, (ax,), key = _figure(legend=True)
    consumers = result.summary.consumers
    distributions = [_quantiles(consumer.latency_quantiles_s) for consumer in consumers.values()]
    handles, labels, latencies_s = [], [], [1e-6]
    same = _twins([_latencies(points) for points in distributions], list(consumers), _close_in_ratio)
    for index, ((name, consumer), points, twin) in enumerate(zip(consumers.items(), distributions, same)):
        colour, style = _style(index)
        latency_s = np.maximum(points[:, 1], 1e-6)  # a log axis has no 0
        (line,) = ax.plot(latency_s, points[:, 0] / 100, color=colour, linestyle=style, linewidth=2)
        end_to_end = consumer.latency_s.end_to_end
        values = (end_to_end.p50, end_to_end.p99, end_to_end.p999)
        shown = [(label, value, percentile) for (label, percentile), value in zip(_PERCENTILES, values) if value]
        for _, value, percentile in shown:
            ax.plot(max(value, 1e-6), percentile / 100, "o", color=colour, markersize=5)
        figures = " · ".join(f"{label} {format_duration(value)}" for label, value, _ in shown) or "no message"
        handles.append(line)
        labels.append(name + _twin_note(twin) + "\n" + figures)
        latencies_s += latency_s.tolist()
    _duration_axis(ax, "x", min(latencies_s), max(latencies_s))
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("end-to-end latency (log scale)")
    ax.set_ylabel("fraction of messages")
    _legend(key, handles, labels, "dots: p50, p99, p99.9")
    return _titled(
        figure, f"{result.scenario.name}: end-to-end latency, publish to first processing", _run_notes(result)
    )


def _shade_outages(ax: Axes, scenario: Scenario, consumer: str | None = None) -> None:
    """Shade the broker's outages, and the slowdowns (of the broker, and of ``consumer``, or of all)."""
    for outage in scenario.broker.outages:
        ax.axvspan(outage.at, outage.end_s, color=OUTAGE_COLOUR, alpha=0.25)
    shade_slowdowns(ax, scenario, consumer)


def _shade_deploys(ax: Axes, result: Result, consumer: str, colour: str) -> None:
    """Shade ``consumer``'s deploy windows, until the run's end for one that had not ended."""
    lifecycle = result.summary.lifecycle.get(consumer)
    for window in lifecycle.deploys if lifecycle is not None else ():
        end_s = window.end_s if window.end_s is not None else result.sim_time_s
        ax.axvspan(window.start_s, end_s, color=colour, alpha=0.12, hatch="//", linewidth=0)


def instances_over_time(result: Result) -> Figure | None:
    """Instances provisioned over time beside the backlog and the latency, for consumers that deploy or
    scale; None where none does."""
    scaled = result.summary.lifecycle
    if not scaled:
        return None
    figure, (top, middle, bottom), key = _figure(rows=3, legend=True)
    handles, labels = [], []
    latencies_s: list[float] = []
    for index, (name, lifecycle) in enumerate(scaled.items()):
        colour, style = _style(index)
        series = result.summary.consumers[name].series
        starts = _window_starts(series)
        times_s = np.append(lifecycle.instances_s, result.sim_time_s)
        counts = np.append(lifecycle.instances, lifecycle.instances[-1])
        handles += top.step(times_s, counts, where="post", color=colour, linestyle=style, linewidth=1.8)
        middle.step(starts, series.backlog, where="post", color=colour, linestyle=style, linewidth=1.8)
        p99 = _values(series.latency_p99_s)
        bottom.plot(starts, p99, color=colour, linestyle=style, linewidth=1.8)
        latencies_s += [value for value in p99 if value > 0]
        for ax in (top, middle, bottom):
            _shade_deploys(ax, result, name, colour)
        figures = [
            f"peak {lifecycle.peak_instances:,} instances",
            f"{lifecycle.instance_seconds:,.0f} instance-seconds",
        ]
        if lifecycle.backlog_drain_s is not None:
            figures.append(f"backlog drained {format_duration(lifecycle.backlog_drain_s)} after its peak")
        labels.append("\n".join([name, *figures]))
    for ax in (top, middle, bottom):
        _shade_outages(ax, result.scenario)  # a slow database or broker is what a scaler often answers
    top.set_ylabel("instances")
    top.yaxis.set_major_locator(MaxNLocator(integer=True))
    middle.set_ylabel("copies queued\nat the broker")
    middle.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}"))
    if latencies_s:
        _duration_axis(bottom, "y", min(latencies_s), max(latencies_s))
    bottom.set_ylabel("p99 latency" + (" (log)" if latencies_s else ""))
    bottom.set_xlabel("time (seconds); latency by publish time")
    has_deploys = any(lifecycle.deploys for lifecycle in scaled.values())
    # Shaded in each consumer's colour: one consumer's deploys are keyed in it, several in grey.
    deploy_colour = _style(0)[0] if len(scaled) == 1 else PALETTE[-1]
    deploy_handles = [Patch(color=deploy_colour, alpha=0.12, hatch="//")] if has_deploys else []
    shade_handles, shade_labels = _outage_key(result.scenario)
    _legend(
        key,
        handles + deploy_handles + shade_handles,
        labels + (["a deploy"] if has_deploys else []) + shade_labels,
    )
    return _titled(figure, f"{result.scenario.name}: instances, backlog and latency over time", _run_notes(result))


def _window_starts(series: Series) -> np.ndarray:
    return np.arange(len(series.published)) * series.window_s


def _values(items: Sequence[float | None]) -> np.ndarray:
    return np.array([np.nan if value is None else value for value in items], dtype=float)


def _outage_key(scenario: Scenario) -> tuple[list, list[str]]:
    """The legend's entries for the shaded outages and slowdowns, where there are any."""
    slowdown_handles, slowdown_labels = slowdown_key(scenario)
    if not scenario.broker.outages:
        return slowdown_handles, slowdown_labels
    return [Patch(color=OUTAGE_COLOUR, alpha=0.25), *slowdown_handles], ["broker outage", *slowdown_labels]


def latency_over_time(result: Result) -> Figure:
    """p50 and p99 latency of the messages published in each window, one panel per consumer, with
    outages and the consumer's crashes marked."""
    consumers = result.summary.consumers
    figure = _new_figure()
    axes, key = _panels(figure, len(consumers), sharex=True, sharey=True, legend=True)
    window_s, latencies_s = 0.0, []
    for index, (ax, (name, consumer)) in enumerate(zip(axes, consumers.items())):
        colour, _ = _style(index)
        series = consumer.series
        window_s = series.window_s
        starts = _window_starts(series)
        _shade_outages(ax, result.scenario, name)
        for crash_s in consumer.crash_times_s:
            ax.axvline(crash_s, color=CRASH_COLOUR, alpha=0.35, linewidth=0.8)
        _shade_deploys(ax, result, name, colour)
        p99, p50 = _values(series.latency_p99_s), _values(series.latency_p50_s)
        ax.plot(starts, p99, color=colour, linewidth=1.8)
        ax.plot(starts, p50, color=colour, linewidth=1.3, linestyle="--")
        latencies_s += [value for value in np.concatenate([p99, p50]) if value > 0]
        crashes = len(consumer.crash_times_s)
        _panel_title(ax, name + (f": {crashes:,} crash{'es' if crashes > 1 else ''}" if crashes else ""))
    if latencies_s:
        _duration_axis(axes[0], "y", min(latencies_s), max(latencies_s))
    figure.supxlabel("publish time (seconds)", fontsize=_PANEL_TITLE_PT)
    figure.supylabel("end-to-end latency" + (" (log scale)" if latencies_s else ""), fontsize=_PANEL_TITLE_PT)
    outage_handles, outage_labels = _outage_key(result.scenario)
    # One consumer's lines are keyed in its colour; several consumers' in black, for their dashes alone.
    line_colour = _style(0)[0] if len(consumers) == 1 else PALETTE[-1]
    crashed = any(consumer.crash_times_s for consumer in consumers.values())
    _legend(
        key,
        [
            Line2D([], [], color=line_colour, linewidth=1.8),
            Line2D([], [], color=line_colour, linewidth=1.3, linestyle="--"),
            *([Line2D([], [], color=CRASH_COLOUR, alpha=0.35, linewidth=0.8)] if crashed else []),
            *outage_handles,
        ],
        ["p99", "p50", *(["an instance crashed"] if crashed else []), *outage_labels],
    )
    return _titled(
        figure,
        f"{result.scenario.name}: latency over time (per {format_duration(window_s)} window)",
        _run_notes(result),
    )


def throughput_and_backlog(result: Result) -> Figure:
    """Messages published and processed per second, and the backlog at the broker, per window."""
    figure, (top, bottom), key = _figure(rows=2, legend=True)
    for ax in (top, bottom):
        _shade_outages(ax, result.scenario)
    consumers = result.summary.consumers
    traces = [np.concatenate([consumer.series.processed, consumer.series.backlog]) for consumer in consumers.values()]
    handles, labels = [], []
    same = _twins(traces, list(consumers), _close_in_scale)
    for index, ((name, consumer), twin) in enumerate(zip(consumers.items(), same)):
        colour, style = _style(index)
        series = consumer.series
        starts = _window_starts(series)
        if index == 0:
            published = np.array(series.published) / series.window_s
            handles += top.step(starts, published, where="post", color=PALETTE[-1], linewidth=1.2)
            labels.append("published")
        processed = np.array(series.processed) / series.window_s
        handles += top.step(starts, processed, where="post", color=colour, linestyle=style, linewidth=1.8)
        bottom.step(starts, series.backlog, where="post", color=colour, linestyle=style, linewidth=1.8)
        for ax in (top, bottom):
            _shade_deploys(ax, result, name, colour)
        labels.append(name + _twin_note(twin))
    top.set_ylabel("messages per second")
    bottom.set_ylabel("copies queued\nat the broker")
    bottom.set_xlabel("time (seconds)")
    for ax in (top, bottom):
        ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}"))
    outage_handles, outage_labels = _outage_key(result.scenario)
    _legend(key, handles + outage_handles, labels + outage_labels, "processed and queued")
    return _titled(figure, f"{result.scenario.name}: throughput and backlog", _run_notes(result))


_FUNNEL = (
    ("subscribed", "subscribed"),
    ("delivered", "delivered"),
    ("processed", "processed"),
    ("duplicate deliveries", "duplicate_deliveries"),
    ("duplicate effects", "duplicate_effects"),
    ("redelivered", "redelivered"),
    ("lost", "lost"),
    ("dead-lettered", "dead_lettered"),
)
# Rows of the funnel that only some brokers produce, drawn where a consumer has any.
_FUNNEL_WHEN_SEEN = (("stuck pending", "stuck_pending"),)


def delivery_funnel(result: Result) -> Figure:
    """From published to processed, and what went astray, by reason where known: bars per consumer, or a
    table of the figures when there are more consumers than bars that fit a row."""
    consumers = result.summary.consumers
    funnel = _FUNNEL + tuple(
        (label, key)
        for label, key in _FUNNEL_WHEN_SEEN
        if any(getattr(consumer, key) for consumer in consumers.values())
    )
    if len(consumers) > _GROUPED_BARS:
        figure = _new_figure()
        ax = figure.subplots()
        values = np.array(
            [[getattr(consumer, key) for consumer in consumers.values()] for _, key in funnel], dtype=float
        )
        cells = [[f"{value:,.0f}" for value in row] for row in values]
        _table(ax, [label for label, _ in funnel], list(consumers), values, cells)
        return _titled(
            figure,
            f"{result.scenario.name}: delivery funnel",
            [*_run_notes(result), "the reasons are in the report's results table"],
        )
    figure, (ax,), place = _figure(legend=True)
    height = 0.8 / len(consumers)
    positions = np.arange(len(funnel))
    preset = result.scenario.broker.preset
    largest = max(1, *(getattr(consumer, key) for _, key in funnel for consumer in consumers.values()))
    labels: list[Text] = []
    for offset, (name, consumer) in enumerate(consumers.items()):
        values = [getattr(consumer, key) for _, key in funnel]
        y = positions + offset * height
        ax.barh(y, values, height=height, color=_style(offset)[0], label=name)
        for value, row, (_, key) in zip(values, y, funnel):
            reasons = consumer.by_reason.get(key) or {}
            why = ", ".join(f"{count:,} {_plain(reason_label(reason, preset))}" for reason, count in reasons.items())
            text = f"{value:,}" + (f"  ({why})" if why else "")
            labels.append(ax.annotate(text, (value, row), xytext=(4, 0), textcoords="offset points", va="center"))
            labels[-1].set_fontsize(_SMALL_PT)
    ax.set_yticks(positions + height * (len(consumers) - 1) / 2, [label for label, _ in funnel])
    ax.invert_yaxis()
    ax.set_xlabel("messages or deliveries")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}"))
    ax.set_xlim(0, largest * 1.05)
    _legend(place, *ax.get_legend_handles_labels())
    _titled(figure, f"{result.scenario.name}: delivery funnel", _run_notes(result))
    _room_for(ax, labels)
    return figure


def _room_for(ax: Axes, labels: list[Text]) -> None:
    """Widen the x range until each label beside a bar ends inside the axes: labels keep their size in
    pixels while the bars shrink."""
    figure = ax.get_figure()
    for _ in range(4):
        figure.get_layout_engine().execute(figure)  # as in _fit_panel_titles: the layout, not a drawing
        renderer = figure.canvas.get_renderer()
        box = ax.get_window_extent(renderer)
        low, high = ax.get_xlim()
        needed = high
        for label in labels:
            extent = label.get_window_extent(renderer)
            bar_end_px = extent.x0 - box.x0
            label_px = extent.x1 - extent.x0 + 8
            if extent.x1 > box.x1 and box.width > label_px and bar_end_px > 0:
                value = low + (high - low) * bar_end_px / box.width
                needed = max(needed, low + (value - low) * box.width / (box.width - label_px))
        if needed <= high:
            return
        ax.set_xlim(low, needed)


def _table(ax: Axes, rows: list[str], columns: list[str], values: np.ndarray, cells: list[list[str]]) -> None:
    """A table drawn in ``ax``: a row per figure, a column per consumer or variant, each cell its value,
    shaded by its size against the largest in its row, so that rows of thousands and of a few read alike."""
    largest = np.nanmax(np.abs(values), axis=1, keepdims=True, initial=0)
    shade = np.divide(np.abs(values), largest, out=np.zeros_like(values, dtype=float), where=largest > 0)
    ax.imshow(shade, cmap=_SHADES, vmin=0, vmax=1, aspect="auto", interpolation="nearest")
    for row, texts in enumerate(cells):
        for column, text in enumerate(texts):
            strong = shade[row, column] > 0.55
            faint = not values[row, column]
            colour = "white" if strong else "#999999" if faint else "black"
            ax.text(column, row, text, ha="center", va="center", fontsize=_SMALL_PT, color=colour)
    width = max(8, 100 // max(len(columns), 1))
    ax.set_xticks(range(len(columns)), [_wrapped(_plain(column), width) for column in columns])
    ax.set_yticks(range(len(rows)), [_wrapped(_plain(row), 44) for row in rows])
    ax.xaxis.tick_top()
    ax.tick_params(length=0, labelsize=_SMALL_PT)
    ax.set_xticks(np.arange(len(columns) + 1) - 0.5, minor=True)
    ax.set_yticks(np.arange(len(rows) + 1) - 0.5, minor=True)
    ax.grid(which="minor", color="#DDDDDD", linewidth=1)
    ax.tick_params(which="minor", length=0)
    ax.spines[:].set_visible(False)


def consistency(result: Result) -> Figure | None:
    """Expected against actual state for the keys that drift most, one panel per counter that drifted;
    None when no consumer keeps state."""
    counters = [
        (name, counter, state)
        for name, consumer in result.summary.consumers.items()
        for counter, state in consumer.state.items()
    ]
    if not counters:
        return None
    drifted = [item for item in counters if item[2].most_drifted]
    steady = [f"{name} {counter}" for name, counter, state in counters if not state.most_drifted]
    shown = sorted(drifted, key=lambda item: -item[2].abs_drift)[:_MAX_COUNTER_PANELS]
    shown.sort(key=drifted.index)  # in the scenario's order
    notes = _run_notes(result)
    if len(drifted) > len(shown):
        hidden = [f"{name} {counter}" for name, counter, state in drifted if (name, counter, state) not in shown]
        notes.append(f"the {len(shown)} counters that drift most; also drifted: {', '.join(hidden)}")
    if steady and drifted:
        notes.append(f"no key drifted: {', '.join(steady)}")
    figure = _new_figure()
    title = f"{result.scenario.name}: state against an exactly-once reference, most drifted keys"
    if not drifted:
        ax = figure.subplots()
        ax.set_axis_off()
        ax.text(0.5, 0.5, _wrapped(_plain(f"no key drifted: {', '.join(steady)}"), 80), ha="center", va="center")
        return _titled(figure, title, notes)
    axes, _ = _panels(figure, len(shown))
    keys_per_panel = max(3, 10 // math.ceil(len(shown) / _columns(len(shown))) + 2)
    drifts: list[float] = []
    for ax, (name, counter, state) in zip(axes, shown):
        ax.grid(False)
        ax.grid(True, axis="x", alpha=0.3)
        items = state.most_drifted[:keys_per_panel]
        drift = [float(item.actual) - float(item.expected) for item in items]  # may pass int64's range
        drifts += drift
        positions = np.arange(len(items))
        ax.barh(positions, drift, 0.6, color=[PALETTE[3] if value < 0 else PALETTE[0] for value in drift])
        ax.axvline(0, color=PALETTE[-1], linewidth=0.8)
        ax.set_yticks(
            positions,
            [f"{_plain(_short(item.key))}: {item.expected:,} → {item.actual:,}" for item in items],
        )
        ax.invert_yaxis()
        ax.xaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:+,.0f}" if value else "0"))
        ax.set_xlabel("actual − exactly-once", fontsize=_SMALL_PT)
        _panel_title(
            ax,
            f"{name} {counter}: drift {state.abs_drift:,} over {counted(state.keys_diverged, 'key')}"
            + (f" (top {len(items)})" if state.keys_diverged > len(items) else ""),
        )
    # Keyed as drawn: a side no key shown drifted to has no entry.
    sides = [(PALETTE[3], "below exactly-once", min(drifts) < 0), (PALETTE[0], "above exactly-once", max(drifts) > 0)]
    figure.legend(
        handles=[Patch(color=colour) for colour, _, drawn in sides if drawn],
        labels=[label for _, label, drawn in sides if drawn],
        loc="outside lower center",
        ncols=2,
        fontsize=_SMALL_PT,
        frameon=False,
    )
    figure.supylabel("key: expected → actual", fontsize=_PANEL_TITLE_PT)
    return _titled(figure, title, notes)


def _short(key: object, characters: int = 18) -> str:
    text = str(key)
    return text if len(text) <= characters else text[: characters - 1] + "…"


def chain_latency(result: Result) -> Figure | None:
    """Latency of each hop of each event chain, and from publish to the chain's end; None without chains.

    Bars are medians and whiskers run to the p99, on a log axis: a chain's
    hops differ by orders of magnitude. Medians do not add up along a chain,
    so the end-to-end figures are drawn from the messages themselves.
    """
    chains = result.summary.chains
    if not chains:
        return None
    figure = _new_figure()
    axes = figure.subplots(len(chains), 1, squeeze=False)[:, 0]
    latencies_s = [
        value
        for chain in chains.values()
        for latency in [chain.latency_s, *(hop.latency_s for hop in chain.hops)]
        if latency.count
        for value in (latency.p50, latency.p99)
        if value is not None and value > 0
    ]
    for ax, chain in zip(axes, chains.values()):
        _plain_axes(ax)
        ax.grid(False)
        ax.grid(True, axis="x", alpha=0.3)
        rows = [(f"{hop.event} > {hop.consumer}", hop.latency_s) for hop in chain.hops]
        rows.append(("publish to the end", chain.latency_s))
        positions = np.arange(len(rows))
        for position, (_, latency) in zip(positions, rows):
            if not latency.count:
                continue
            colour = PALETTE[3] if position == len(rows) - 1 else PALETTE[0]
            ax.barh(position, latency.p50, 0.6, color=colour)
            ax.plot([latency.p50, latency.p99], [position, position], color=PALETTE[-1], linewidth=1)
            ax.plot(latency.p99, position, "|", color=PALETTE[-1], markersize=12)
        ax.set_yticks(
            positions,
            [
                _plain(label)
                + (
                    f"\np50 {format_duration(latency.p50)} · p99 {format_duration(latency.p99)}"
                    if latency.count
                    else "\nno message"
                )
                for label, latency in rows
            ],
        )
        ax.invert_yaxis()
        if latencies_s:
            _duration_axis(ax, "x", min(latencies_s), max(latencies_s))
            ax.set_xlim(min(latencies_s) / 2, max(latencies_s) * 2)
        _panel_title(
            ax,
            f"{' > '.join(hop.consumer for hop in chain.hops)}: {chain.completed:,} of "
            f"{chain.published:,} reached the end",
        )
    axes[-1].set_xlabel("latency (log scale)")
    figure.legend(
        handles=[
            Patch(color=PALETTE[0]),
            Patch(color=PALETTE[3]),
            Line2D([], [], color=PALETTE[-1], linewidth=1, marker="|", markersize=12),
        ],
        labels=["p50 of a hop", "p50 from publish to the end", "whisker to the p99"],
        loc="outside lower center",
        ncols=3,
        fontsize=_SMALL_PT,
        frameon=False,
    )
    return _titled(figure, f"{result.scenario.name}: latency along each event chain", _run_notes(result))


CHARTS = {
    "latency-cdf": latency_cdf,
    "latency-over-time": latency_over_time,
    "throughput-backlog": throughput_and_backlog,
    "delivery-funnel": delivery_funnel,
    "consistency": consistency,
    "chain-latency": chain_latency,
}


# Charts of consumers whose instances stop and start (deploys, autoscale): drawn only for runs that have them.
LIFECYCLE_CHARTS = {"instances": instances_over_time}


def draw_charts(result: Result) -> dict[str, Figure]:
    """Every chart that applies to the run, by name."""
    figures = {name: chart(result) for name, chart in (CHARTS | LIFECYCLE_CHARTS).items()}
    return {name: figure for name, figure in figures.items() if figure is not None}


def write_charts(result: Result, folder: Path) -> list[Chart]:
    """Save every chart that applies as PNG and SVG in ``folder``; return each chart's files and title."""
    return [_written(figure, folder, name) for name, figure in draw_charts(result).items()]


def _written(figure: Figure, folder: Path, name: str) -> Chart:
    return Chart(name, figure_title(figure), tuple(save_figure(figure, folder, name)))


def save_figure(figure: Figure, folder: Path, name: str, formats: Sequence[str] = FORMATS) -> list[Path]:
    """Save ``figure`` as ``name`` in each of ``formats`` (every one unless told); an SVG carries the figure's
    title."""
    paths = []
    # A fixed salt and no date: the same run gives byte-identical files.
    with rc_context({"svg.hashsalt": "busim"}):
        for suffix in formats:
            path = folder / f"{name}.{suffix}"
            metadata = {"Title": figure_title(figure), "Date": None} if suffix == "svg" else {"Software": "busim"}
            figure.savefig(path, metadata=metadata)
            paths.append(path)
    return paths


def figure_title(figure: Figure) -> str:
    """The title a figure states, on one line: with what produced it, as the figure's label holds it."""
    return figure.get_label() or figure.get_suptitle() or figure.axes[0].get_title()


def _variant_notes(comparison: Comparison) -> list[str]:
    """What set the variants apart (each one's overrides), and the overrides they all had."""
    overrides = [list(outcome.source.overrides) for outcome in comparison.outcomes]
    shared = [override for override in overrides[0] if all(override in others for others in overrides[1:])]
    own = [[override for override in each if override not in shared] for each in overrides]
    notes = []
    if all(_named_after(name, changes) for name, changes in zip(comparison.names, own)):
        # a grid of --vary values, each variant named after what it sets: instances=8 preset=kafka
        keys = dict.fromkeys(change.partition("=")[0] for changes in own for change in changes)
        notes.append("variants by " + " / ".join(keys))
    elif any(own):
        notes.append(
            "variants: "
            + "; ".join(
                f"{name}: {', '.join(changes) or 'no override'}" for name, changes in zip(comparison.names, own)
            )
        )
    if shared:
        notes.append("every variant " + _overrides_note(shared))
    return notes


def _named_after(name: str, changes: list[str]) -> bool:
    """Whether a variant's name spells out its ``changes`` as --vary names it, each key by its last parts."""
    parts = name.split(" ")
    if not changes or len(parts) != len(changes):
        return False
    for part, change in zip(parts, changes):
        short, _, value = part.partition("=")
        key, _, set_to = change.partition("=")
        if value != set_to or not (key == short or key.endswith(f".{short}")):
            return False
    return True


def _chart_consumers(comparison: Comparison, consumer: str | None) -> list[str]:
    return [consumer] if consumer else list(comparison.consumers)


def comparison_latency_cdf(comparison: Comparison, consumer: str | None = None) -> Figure:
    """End-to-end latency distributions under each variant, overlaid, one panel per consumer (single runs
    only); a variant whose curve equals another's is named in the panel's title."""
    if not all(isinstance(outcome, Result) for outcome in comparison.outcomes):
        raise ValueError("latency distributions need single runs; compare without replications")
    names = list(comparison.labels)  # each with its mode beside a finished or a real run
    consumers = _chart_consumers(comparison, consumer)
    # Panels name coinciding variants; where names would not fit a panel, by their number in the legend.
    numbered = len(consumers) > 3 and sum(len(name) for name in names) > 3 * len(names)
    numbered = numbered or sum(len(name) for name in names) > 60
    keys = [str(index + 1) for index in range(len(names))] if numbered else names
    figure = _new_figure()
    axes, key = _panels(figure, len(consumers), sharex=True, sharey=True, legend=True)
    styles = [(PALETTE[index % len(PALETTE)], _LINE_STYLES[index % len(_LINE_STYLES)]) for index in range(len(names))]
    handles: list = [Line2D([], [], color=colour, linestyle=style, linewidth=1.8) for colour, style in styles]
    latencies_s = [1e-6]
    for ax, name in zip(axes, consumers):
        distributions = [
            _quantiles(outcome.summary.consumers[name].latency_quantiles_s)  # type: ignore[union-attr]
            for outcome in comparison.outcomes
        ]
        # Dashes differ too: a curve on top of another leaves it showing between its dashes.
        latencies_s += distributions_panel(ax, name, distributions, styles, keys)
    distributions_axes(figure, axes, latencies_s)
    labels = [f"{key}  {name}" for key, name in zip(keys, names)] if numbered else names
    _legend(key, handles, labels, "variant")
    return _titled(figure, f"{_scenario_name(comparison)}: latency by variant", _variant_notes(comparison))


def distributions_panel(
    ax: Axes,
    title: str,
    distributions: list[np.ndarray],
    styles: Sequence[tuple[str, str]],
    names: list[str],
    all_same: str = "the same under every variant",
) -> list[float]:
    """Latency distributions (rows of percentile, seconds) overlaid on one panel, each in its (colour, dash),
    those that coincide named in the panel's title (``all_same`` where all do); return the latencies drawn,
    for the shared time axis."""
    drawn: list[float] = []
    for (colour, style), points in zip(styles, distributions):
        latency_s = _latencies(points)
        if latency_s is not None:
            ax.plot(latency_s, points[:, 0] / 100, color=colour, linestyle=style, linewidth=1.8)
            drawn += latency_s.tolist()
    ax.set_ylim(0, 1.02)
    twins = _twins([_latencies(points) for points in distributions], names, _close_in_ratio)
    _panel_title(ax, title + _sameness(names, twins, all_same))
    return drawn


def distributions_axes(figure: Figure, axes: list[Axes], latencies_s: list[float]) -> None:
    """The shared log time axis of panels of end-to-end latency distributions, and both axes' labels."""
    _duration_axis(axes[0], "x", min(latencies_s), max(latencies_s))
    figure.supxlabel("end-to-end latency, publish to first processing (log scale)", fontsize=_PANEL_TITLE_PT)
    figure.supylabel("fraction of messages", fontsize=_PANEL_TITLE_PT)


def _sameness(names: list[str], twins: list[tuple[str, bool] | None], all_same: str) -> str:
    """What a panel's title says of the variants whose curves equal, or nearly, an earlier one's: a line
    per group, ``a = b ≈ c``; ``all_same`` where every one equals the first."""
    if len(names) > 1 and all(twin and twin[1] for twin in twins[1:]):
        return f": {all_same}"
    groups: dict[str, str] = {}
    for name, twin in zip(names, twins):
        if twin:
            groups[twin[0]] = groups.get(twin[0], twin[0]) + (" = " if twin[1] else " ≈ ") + name
    near = any(twin and not twin[1] for twin in twins)
    # Variants known by their number take a line together, to leave the panel its height.
    between = "; " if all(name.isdigit() for name in names) else "\n"
    return ("\n" + between.join(groups.values()) if groups else "") + (
        f"\n(≈: within {_CLOSE_PERCENT} %)" if near else ""
    )


_ANOMALIES = (
    ("duplicate effects", ("duplicate_effects",)),
    ("lost", ("lost",)),
    ("dead-lettered", ("dead_lettered",)),
    ("wrongly rejected", ("wrongly_rejected",)),
    ("wrongly accepted", ("wrongly_accepted",)),
    ("stuck pending", ("stuck_pending",)),  # only some brokers produce these
)


def comparison_anomalies(comparison: Comparison, consumer: str | None = None) -> Figure:
    """Each consumer's departures from exactly-once under each variant, as a table shaded by size (means
    with their 95 % confidence intervals when the variants were replicated).

    A row for each departure some variant shows; a consumer with none says so in one row. A variant
    whose figures all equal an earlier one's says which.
    """
    names = list(comparison.labels)  # each with its mode beside a finished or a real run
    rows: list[str] = []
    means: list[list[float]] = []
    cells: list[list[str]] = []
    for name in _chart_consumers(comparison, consumer):
        counters = dict.fromkeys(
            counter for outcome in comparison.outcomes for counter in outcome.scenario.consumer(name).state
        )
        anomalies = [*_ANOMALIES, *((f"{counter} drift", ("state", counter, "abs_drift")) for counter in counters)]
        found = 0
        for label, path in anomalies:
            figures = [_comparison_figure(outcome, name, path) for outcome in comparison.outcomes]
            row = [0.0 if figure is None else figure.mean for figure in figures]
            if not any(row):
                continue
            found += 1
            texts = [_figure_text(figure) for figure in figures]
            equal = len(names) > 1 and len(set(texts)) == 1  # as the reader sees them: means and intervals
            rows.append(f"{name}: {label}" + (" (all equal)" if equal else ""))
            means.append(row)
            cells.append(texts)
        if not found:
            rows.append(f"{name}: none")
            means.append([0.0] * len(names))
            cells.append(["0"] * len(names))
    hidden = len(rows) - _TABLE_ROWS
    values = np.array(means, dtype=float)
    notes = _variant_notes(comparison)
    if hidden > 0:
        # Keep the rows with the largest figures: the headline of each consumer comes first.
        kept = sorted(np.argsort(-np.nanmax(values, axis=1), kind="stable")[:_TABLE_ROWS])
        rows, cells, values = [rows[i] for i in kept], [cells[i] for i in kept], values[kept]
        notes.append(f"{hidden} smaller rows left out (see compare.md)")
    texts = np.array(cells)
    same = _twins([texts[:, index] for index in range(len(names))], names)
    columns = [name + (f"\n= {twin[0]}" if twin else "") for name, twin in zip(names, same)]
    if len(names) > 1 and all(twin for twin in same[1:]):
        notes.append("every variant gives the same figures")
    figure = _new_figure()
    _table(figure.subplots(), rows, columns, values, cells)
    return _titled(
        figure,
        f"{_scenario_name(comparison)}: departures from exactly-once by variant"
        + (" (means and 95 % intervals)" if comparison.runs > 1 else ""),
        notes,
    )


def _figure_text(figure: Interval | None) -> str:
    if figure is None:
        return "—"
    if figure.replications < 2:
        return f"{figure.mean:,.0f}" if figure.mean == int(figure.mean) else f"{figure.mean:,.1f}"
    # The t interval is the mean plus or minus its half-width; its low end may have been raised to 0 (a count),
    # so the half-width is measured from the high end.
    return f"{figure.mean:,.1f}\n± {figure.high - figure.mean:,.1f}"


def _comparison_figure(outcome: Result | Replications, consumer: str, path: tuple[str, ...]) -> Interval | None:
    return outcome.figure(consumer, *path)


def _scenario_name(comparison: Comparison) -> str:
    outcome = comparison.outcomes[0]
    return outcome.scenario.name


COMPARISON_CHARTS = {"compare-latency-cdf": comparison_latency_cdf, "compare-anomalies": comparison_anomalies}


def write_comparison_charts(comparison: Comparison, folder: Path) -> list[Chart]:
    """Save the comparison charts that apply as PNG and SVG in ``folder``; return each chart's files and
    title."""
    written = []
    for name, chart in COMPARISON_CHARTS.items():
        if chart is comparison_latency_cdf and not all(isinstance(o, Result) for o in comparison.outcomes):
            continue  # replications keep figures, not every delivery
        written.append(_written(chart(comparison), folder, name))
    return written
