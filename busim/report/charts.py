"""Charts of a run for a slide: matplotlib figures built with the object-oriented API.

Each function takes a :class:`~busim.api.Result` and returns a
``matplotlib.figure.Figure``; nothing here shows a window or touches
pyplot's global state. :func:`write_charts` saves them as PNG and SVG.
Colours are the Okabe-Ito palette, which colour-blind readers tell apart.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from busim.analysis.intervals import Interval
from busim.analysis.summary import first_processing
from busim.api import Comparison, Replications, Result
from busim.engine.records import GroupRecord, RunRecord
from busim.report.console import format_duration, reason_label

PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
OUTAGE_COLOUR = "#999999"
FORMATS = ("png", "svg")
_SIZE = (10, 5.6)  # inches: 16:9, for a slide


def _figure(rows: int = 1) -> tuple[Figure, list]:
    figure = Figure(figsize=_SIZE, dpi=150, layout="constrained")
    axes = figure.subplots(rows, 1, sharex=True, squeeze=False)[:, 0].tolist()
    for ax in axes:
        ax.grid(True, alpha=0.3)
        ax.spines[["top", "right"]].set_visible(False)
    return figure, axes


def _end_to_end_s(record: RunRecord, group: GroupRecord) -> np.ndarray:
    """End-to-end latency of each message's first completed processing, published after the warm-up."""
    deliveries = group.deliveries
    rows = first_processing(deliveries)
    publish_s = record.messages.publish_s[group.message_ids[deliveries.message[rows]]]
    measured = publish_s >= record.scenario.warmup
    return deliveries.done_s[rows][measured] - publish_s[measured]


def latency_cdf(result: Result) -> Figure:
    """The distribution of end-to-end latency per consumer, on a log time axis, with p50, p99 and p99.9."""
    figure, (ax,) = _figure()
    smallest = np.inf
    for colour, group in zip(PALETTE, result.record.groups):
        latency_s = np.sort(_end_to_end_s(result.record, group))
        if latency_s.size == 0:
            continue
        latency_s = np.maximum(latency_s, 1e-6)  # a log axis has no 0
        smallest = min(smallest, latency_s[0])
        fraction = np.arange(1, latency_s.size + 1) / latency_s.size
        ax.step(latency_s, fraction, where="post", color=colour, label=group.name, linewidth=2)
        # Label p50 to the right of its point; p99 and p99.9, near the top, to the left, one above the other.
        for percentile, offset, align in ((50, (8, -4), "left"), (99, (-8, -12), "right"), (99.9, (-8, 4), "right")):
            value = float(np.percentile(latency_s, percentile))
            ax.plot(value, percentile / 100, "o", color=colour, markersize=6)
            ax.annotate(
                f"p{percentile:g} {format_duration(value)}",
                (value, percentile / 100),
                textcoords="offset points",
                xytext=offset,
                ha=align,
                fontsize=9,
                color=colour,
            )
    ax.set_xscale("log")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("end-to-end latency (seconds, log scale)")
    ax.set_ylabel("fraction of messages")
    ax.set_title(f"{result.scenario.name}: end-to-end latency, publish to first processing")
    ax.legend(loc="lower right")
    return figure


def _shade_outages(ax, result: Result) -> None:
    for index, outage in enumerate(result.scenario.broker.outages):
        ax.axvspan(
            outage.at, outage.end_s, color=OUTAGE_COLOUR, alpha=0.25, label="broker outage" if index == 0 else None
        )


def _window_starts(series) -> np.ndarray:
    return np.arange(len(series.published)) * series.window_s


def latency_over_time(result: Result) -> Figure:
    """p50 and p99 latency of the messages published in each window, with outages and crashes marked."""
    figure, (ax,) = _figure()
    _shade_outages(ax, result)
    for colour, group in zip(PALETTE, result.record.groups):
        series = result.summary.consumers[group.name].series
        starts = _window_starts(series)
        p50 = np.array([np.nan if v is None else v for v in series.latency_p50_s])
        p99 = np.array([np.nan if v is None else v for v in series.latency_p99_s])
        ax.plot(starts, p99, color=colour, linewidth=2, label=f"{group.name} p99")
        ax.plot(starts, p50, color=colour, linewidth=1.5, linestyle="--", label=f"{group.name} p50")
        for index, crash_s in enumerate(group.crash_s):
            ax.axvline(
                crash_s, color=colour, alpha=0.4, linewidth=0.8, label=f"{group.name} crash" if index == 0 else None
            )
    if any(line.get_ydata().size and np.nanmax(line.get_ydata(), initial=0) > 0 for line in ax.get_lines()):
        ax.set_yscale("log")
    ax.set_xlabel("publish time (seconds)")
    ax.set_ylabel("end-to-end latency (seconds" + (", log scale)" if ax.get_yscale() == "log" else ")"))
    ax.set_title(f"{result.scenario.name}: latency over time (per {format_duration(series.window_s)} window)")
    ax.legend(loc="upper left", fontsize=8, ncols=2)
    return figure


def throughput_and_backlog(result: Result) -> Figure:
    """Messages published and processed per second, and the backlog at the broker, per window."""
    figure, (top, bottom) = _figure(rows=2)
    for ax in (top, bottom):
        _shade_outages(ax, result)
    for index, (colour, group) in enumerate(zip(PALETTE, result.record.groups)):
        series = result.summary.consumers[group.name].series
        starts = _window_starts(series)
        if index == 0:
            published = np.array(series.published) / series.window_s
            top.step(starts, published, where="post", color=PALETTE[-1], linewidth=1.5, label="published")
        processed = np.array(series.processed) / series.window_s
        top.step(starts, processed, where="post", color=colour, linewidth=2, label=f"{group.name} processed")
        bottom.step(starts, series.backlog, where="post", color=colour, linewidth=2, label=group.name)
    top.set_ylabel("messages per second")
    top.set_title(f"{result.scenario.name}: throughput and backlog")
    top.legend(loc="upper right", fontsize=8)
    bottom.set_ylabel("copies queued at the broker")
    bottom.set_xlabel("time (seconds)")
    bottom.legend(loc="upper right", fontsize=8)
    return figure


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


def delivery_funnel(result: Result) -> Figure:
    """From published to processed, and what went astray, by reason where known."""
    consumers = result.summary.consumers
    figure, (ax,) = _figure()
    height = 0.8 / len(consumers)
    labels = [label for label, _ in _FUNNEL]
    positions = np.arange(len(labels))
    preset = result.scenario.broker.preset
    for offset, (colour, (name, consumer)) in enumerate(zip(PALETTE, consumers.items())):
        values = [getattr(consumer, attribute) for _, attribute in _FUNNEL]
        y = positions + offset * height
        ax.barh(y, values, height=height, color=colour, label=name)
        largest = max(values) or 1
        for value, row, (_, attribute) in zip(values, y, _FUNNEL):
            reasons = consumer.by_reason.get(attribute) or {}
            why = ", ".join(f"{count:,} {reason_label(reason, preset)}" for reason, count in reasons.items())
            text = f"{value:,}" + (f"  ({why})" if why else "")
            ax.text(value + largest * 0.01, row, text, va="center", fontsize=8)
    ax.set_yticks(positions + height * (len(consumers) - 1) / 2, labels)
    ax.invert_yaxis()
    ax.set_xlabel("messages or deliveries")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}"))
    ax.set_xlim(0, max(max(getattr(c, a) for _, a in _FUNNEL) for c in consumers.values()) * 1.6 or 1)
    ax.set_title(f"{result.scenario.name}: delivery funnel")
    if len(consumers) > 1:
        ax.legend(loc="lower right")
    return figure


def consistency(result: Result) -> Figure | None:
    """Expected against actual state for the keys that drift most; None when no consumer keeps state."""
    counters = [
        (name, counter, state)
        for name, consumer in result.summary.consumers.items()
        for counter, state in consumer.state.items()
    ]
    if not counters:
        return None
    figure = Figure(figsize=_SIZE, dpi=150, layout="constrained")
    axes = figure.subplots(1, len(counters), squeeze=False)[0]
    for ax, (name, counter, state) in zip(axes, counters):
        drifted = state.most_drifted
        ax.spines[["top", "right"]].set_visible(False)
        if not drifted:
            ax.text(0.5, 0.5, "no key drifted", ha="center", va="center", transform=ax.transAxes)
            ax.set_title(f"{name} {counter}")
            continue
        keys = [str(item.key) for item in drifted]
        drift = [item.actual - item.expected for item in drifted]
        positions = np.arange(len(keys))
        colours = [PALETTE[3] if value < 0 else PALETTE[0] for value in drift]
        ax.bar(positions, drift, 0.6, color=colours)
        ax.axhline(0, color=PALETTE[-1], linewidth=0.8)
        for position, value, item in zip(positions, drift, drifted):
            ax.annotate(
                f"{item.expected:,} → {item.actual:,}",
                (position, value),
                textcoords="offset points",
                xytext=(0, -12 if value < 0 else 4),
                ha="center",
                fontsize=8,
            )
        ax.set_xticks(positions, keys, rotation=45 if len(keys) > 6 else 0)
        ax.set_xlabel(f"{counter} key (expected → actual)")
        ax.set_ylabel(f"{counter}: actual − exactly once")
        ax.margins(y=0.15)
        ax.set_title(f"{name} {counter}: drift {state.abs_drift:,} over {state.keys_diverged:,} keys")
    figure.suptitle(f"{result.scenario.name}: state against an exactly-once reference, most drifted keys")
    return figure


CHARTS = {
    "latency-cdf": latency_cdf,
    "latency-over-time": latency_over_time,
    "throughput-backlog": throughput_and_backlog,
    "delivery-funnel": delivery_funnel,
    "consistency": consistency,
}


def write_charts(result: Result, folder: Path) -> list[Path]:
    """Save every chart that applies as PNG and SVG in ``folder``; return the paths."""
    written = []
    for name, chart in CHARTS.items():
        figure = chart(result)
        if figure is not None:
            written += _save(figure, folder, name)
    return written


def _save(figure: Figure, folder: Path, name: str) -> list[Path]:
    """Save ``figure`` as ``name`` in every format; an SVG carries the figure's title."""
    paths = []
    for suffix in FORMATS:
        path = folder / f"{name}.{suffix}"
        figure.savefig(path, metadata={"Title": figure_title(figure)} if suffix == "svg" else None)
        paths.append(path)
    return paths


def figure_title(figure: Figure) -> str:
    """The title a figure states: its suptitle, else its first axes' title."""
    suptitle = figure.get_suptitle()
    return suptitle or figure.axes[0].get_title()


def comparison_latency_cdf(comparison: Comparison, consumer: str | None = None) -> Figure:
    """One consumer's end-to-end latency distribution under each variant, overlaid (single runs only)."""
    figure, (ax,) = _figure()
    consumer = consumer or _first_consumer(comparison)
    styles = ("-", "--", "-.", ":")  # identical curves (a variant that changes no latency) stay visible
    for index, (name, outcome) in enumerate(zip(comparison.names, comparison.outcomes)):
        if not isinstance(outcome, Result):
            raise ValueError("latency distributions need single runs; compare without replications")
        group = next(group for group in outcome.record.groups if group.name == consumer)
        latency_s = np.sort(np.maximum(_end_to_end_s(outcome.record, group), 1e-6))
        if latency_s.size == 0:
            continue
        fraction = np.arange(1, latency_s.size + 1) / latency_s.size
        colour = PALETTE[index % len(PALETTE)]
        style = styles[index % len(styles)]
        ax.step(latency_s, fraction, where="post", color=colour, linestyle=style, linewidth=2, label=name)
    ax.set_xscale("log")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("end-to-end latency (seconds, log scale)")
    ax.set_ylabel("fraction of messages")
    ax.set_title(f"{_scenario_name(comparison)}: {consumer} latency by variant")
    ax.legend(loc="lower right", fontsize=8)
    return figure


_ANOMALIES = (
    ("duplicate effects", ("duplicate_effects",)),
    ("lost", ("lost",)),
    ("dead-lettered", ("dead_lettered",)),
    ("wrongly rejected", ("wrongly_rejected",)),
    ("wrongly accepted", ("wrongly_accepted",)),
)


def comparison_anomalies(comparison: Comparison, consumer: str | None = None) -> Figure:
    """One consumer's departures from exactly-once under each variant, as grouped bars (means, with
    95 % confidence intervals when the variants were replicated)."""
    figure, (ax,) = _figure()
    consumer = consumer or _first_consumer(comparison)
    anomalies = list(_ANOMALIES)
    counters = dict.fromkeys(
        counter
        for outcome in comparison.outcomes
        for counter in (
            outcome.summary.consumers[consumer].state
            if isinstance(outcome, Result)
            else outcome.results[0]["consumers"][consumer]["state"]
        )
    )
    anomalies += [(f"{counter} drift", ("state", counter, "abs_drift")) for counter in counters]
    positions = np.arange(len(anomalies))
    width = 0.8 / len(comparison.names)
    for index, (name, outcome) in enumerate(zip(comparison.names, comparison.outcomes)):
        figures = [_comparison_figure(outcome, consumer, path) for _, path in anomalies]
        means = [0.0 if figure is None else figure.mean for figure in figures]
        errors = None
        if isinstance(outcome, Replications):
            errors = [0.0 if figure is None or np.isnan(figure.half_width) else figure.half_width for figure in figures]
        ax.bar(
            positions + (index - (len(comparison.names) - 1) / 2) * width,
            means,
            width,
            yerr=errors,
            capsize=3,
            color=PALETTE[index % len(PALETTE)],
            label=name,
        )
    ax.set_xticks(positions, [label for label, _ in anomalies])
    ax.set_yscale("symlog", linthresh=10)  # a few wrongly refused orders stay visible beside thousands
    ax.set_ylabel("messages or units of drift (log above 10)")
    ax.set_title(f"{_scenario_name(comparison)}: {consumer} departures from exactly-once by variant")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return figure


def _comparison_figure(outcome: Result | Replications, consumer: str, path: tuple[str, ...]) -> Interval | None:
    try:
        if isinstance(outcome, Replications):
            return outcome.interval("consumers", consumer, *path)
        value: object = asdict(outcome.summary.consumers[consumer])
        for key in path:
            value = value[key]  # type: ignore[index]
    except KeyError:
        return None
    return Interval(float(value), np.nan, np.nan, 1)  # type: ignore[arg-type]


def _first_consumer(comparison: Comparison) -> str:
    outcome = comparison.outcomes[0]
    return next(iter(outcome.summary.consumers if isinstance(outcome, Result) else outcome.results[0]["consumers"]))


def _scenario_name(comparison: Comparison) -> str:
    outcome = comparison.outcomes[0]
    return outcome.scenario.name


COMPARISON_CHARTS = {"compare-latency-cdf": comparison_latency_cdf, "compare-anomalies": comparison_anomalies}


def write_comparison_charts(comparison: Comparison, folder: Path) -> list[Path]:
    """Save the comparison charts that apply as PNG and SVG in ``folder``; return the paths."""
    written = []
    for name, chart in COMPARISON_CHARTS.items():
        if chart is comparison_latency_cdf and not all(isinstance(o, Result) for o in comparison.outcomes):
            continue  # replications keep figures, not every delivery
        written += _save(chart(comparison), folder, name)
    return written
