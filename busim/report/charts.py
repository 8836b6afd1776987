"""Charts of a run for a slide: matplotlib figures built with the object-oriented API.

Each function takes a :class:`~busim.api.Result` and returns a
``matplotlib.figure.Figure``; nothing here shows a window or touches
pyplot's global state. :func:`write_charts` saves them as PNG and SVG.
Colours are the Okabe-Ito palette, which colour-blind readers tell apart.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import rc_context
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter

from busim.analysis.intervals import Interval
from busim.api import Comparison, Replications, Result
from busim.report.console import format_duration, reason_label
from busim.report.folder import RunView
from busim.scenario import Scenario
from busim.words import counted

PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
OUTAGE_COLOUR = "#999999"
FORMATS = ("png", "svg")
_SIZE = (10, 5.6)  # inches: 16:9, for a slide


def _plain(text: object) -> str:
    """Text as matplotlib shows it as written: between two $ it would read mathematical notation, and fail on
    what is not (a variant named after a price, a key with a backslash)."""
    return str(text).replace("$", r"\$")


def _figure(rows: int = 1) -> tuple[Figure, list]:
    figure = Figure(figsize=_SIZE, dpi=150, layout="constrained")
    axes = figure.subplots(rows, 1, sharex=True, squeeze=False)[:, 0].tolist()
    for ax in axes:
        ax.grid(True, alpha=0.3)
        ax.spines[["top", "right"]].set_visible(False)
    return figure, axes


def latency_cdf(result: Result | RunView) -> Figure:
    """The distribution of end-to-end latency per consumer, on a log time axis, with p50, p99 and p99.9."""
    view = RunView.of(result)
    figure, (ax,) = _figure()
    for colour, (name, consumer) in zip(PALETTE, view.consumers.items()):
        quantiles = np.array(consumer["latency_quantiles_s"], dtype=float).reshape(-1, 2)
        if quantiles.size == 0:
            continue
        latency_s = np.maximum(quantiles[:, 1], 1e-6)  # a log axis has no 0
        ax.plot(latency_s, quantiles[:, 0] / 100, color=colour, label=name, linewidth=2)
        end_to_end = consumer["latency_s"]["end_to_end"]
        # Label p50 to the right of its point; p99 and p99.9, near the top, to the left, one above the other.
        for key, percentile, offset, align in (
            ("p50", 50, (8, -4), "left"),
            ("p99", 99, (-8, -12), "right"),
            ("p999", 99.9, (-8, 4), "right"),
        ):
            if end_to_end[key] is None:
                continue
            value = max(end_to_end[key], 1e-6)
            ax.plot(value, percentile / 100, "o", color=colour, markersize=6)
            ax.annotate(
                f"p{percentile:g} {format_duration(end_to_end[key])}",
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
    ax.set_title(f"{view.scenario.name}: end-to-end latency, publish to first processing")
    ax.legend(loc="lower right")
    return figure


def _shade_outages(ax, scenario: Scenario) -> None:
    for index, outage in enumerate(scenario.broker.outages):
        label = "broker outage" if index == 0 else None
        ax.axvspan(outage.at, outage.end_s, color=OUTAGE_COLOUR, alpha=0.25, label=label)


def _window_starts(series: dict[str, Any]) -> np.ndarray:
    return np.arange(len(series["published"])) * series["window_s"]


def _values(items: list[float | None]) -> np.ndarray:
    return np.array([np.nan if value is None else value for value in items], dtype=float)


def latency_over_time(result: Result | RunView) -> Figure:
    """p50 and p99 latency of the messages published in each window, with outages and crashes marked."""
    view = RunView.of(result)
    figure, (ax,) = _figure()
    _shade_outages(ax, view.scenario)
    window_s = 0.0
    for colour, (name, consumer) in zip(PALETTE, view.consumers.items()):
        series = consumer["series"]
        window_s = series["window_s"]
        starts = _window_starts(series)
        ax.plot(starts, _values(series["latency_p99_s"]), color=colour, linewidth=2, label=f"{name} p99")
        p50 = _values(series["latency_p50_s"])
        ax.plot(starts, p50, color=colour, linewidth=1.5, linestyle="--", label=f"{name} p50")
        for index, crash_s in enumerate(consumer["crash_times_s"]):
            label = f"{name} crash" if index == 0 else None
            ax.axvline(crash_s, color=colour, alpha=0.4, linewidth=0.8, label=label)
    if any(line.get_ydata().size and np.nanmax(line.get_ydata(), initial=0) > 0 for line in ax.get_lines()):
        ax.set_yscale("log")
    ax.set_xlabel("publish time (seconds)")
    ax.set_ylabel("end-to-end latency (seconds" + (", log scale)" if ax.get_yscale() == "log" else ")"))
    ax.set_title(f"{view.scenario.name}: latency over time (per {format_duration(window_s)} window)")
    ax.legend(loc="upper left", fontsize=8, ncols=2)
    return figure


def throughput_and_backlog(result: Result | RunView) -> Figure:
    """Messages published and processed per second, and the backlog at the broker, per window."""
    view = RunView.of(result)
    figure, (top, bottom) = _figure(rows=2)
    for ax in (top, bottom):
        _shade_outages(ax, view.scenario)
    for index, (colour, (name, consumer)) in enumerate(zip(PALETTE, view.consumers.items())):
        series = consumer["series"]
        starts = _window_starts(series)
        if index == 0:
            published = np.array(series["published"]) / series["window_s"]
            top.step(starts, published, where="post", color=PALETTE[-1], linewidth=1.5, label="published")
        processed = np.array(series["processed"]) / series["window_s"]
        top.step(starts, processed, where="post", color=colour, linewidth=2, label=f"{name} processed")
        bottom.step(starts, series["backlog"], where="post", color=colour, linewidth=2, label=name)
    top.set_ylabel("messages per second")
    top.set_title(f"{view.scenario.name}: throughput and backlog")
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
# Rows of the funnel that only some brokers produce, drawn where a consumer has any.
_FUNNEL_WHEN_SEEN = (("stuck pending", "stuck_pending"),)


def delivery_funnel(result: Result | RunView) -> Figure:
    """From published to processed, and what went astray, by reason where known."""
    view = RunView.of(result)
    consumers = view.consumers
    figure, (ax,) = _figure()
    height = 0.8 / len(consumers)
    funnel = _FUNNEL + tuple(
        (label, key) for label, key in _FUNNEL_WHEN_SEEN if any(consumer[key] for consumer in consumers.values())
    )
    labels = [label for label, _ in funnel]
    positions = np.arange(len(labels))
    preset = view.scenario.broker.preset
    largest = max(max(consumer[key] for _, key in funnel) for consumer in consumers.values()) or 1
    for offset, (colour, (name, consumer)) in enumerate(zip(PALETTE, consumers.items())):
        values = [consumer[key] for _, key in funnel]
        y = positions + offset * height
        ax.barh(y, values, height=height, color=colour, label=name)
        for value, row, (_, key) in zip(values, y, funnel):
            reasons = consumer["by_reason"].get(key) or {}
            why = ", ".join(f"{count:,} {_plain(reason_label(reason, preset))}" for reason, count in reasons.items())
            ax.text(value + largest * 0.01, row, f"{value:,}" + (f"  ({why})" if why else ""), va="center", fontsize=8)
    ax.set_yticks(positions + height * (len(consumers) - 1) / 2, labels)
    ax.invert_yaxis()
    ax.set_xlabel("messages or deliveries")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}"))
    ax.set_xlim(0, largest * 1.6)
    ax.set_title(f"{view.scenario.name}: delivery funnel")
    ax.legend(loc="lower right")
    return figure


def consistency(result: Result | RunView) -> Figure | None:
    """Expected against actual state for the keys that drift most; None when no consumer keeps state."""
    view = RunView.of(result)
    counters = [
        (name, counter, state)
        for name, consumer in view.consumers.items()
        for counter, state in consumer["state"].items()
    ]
    if not counters:
        return None
    figure = Figure(figsize=_SIZE, dpi=150, layout="constrained")
    axes = figure.subplots(1, len(counters), squeeze=False)[0]
    for ax, (name, counter, state) in zip(axes, counters):
        drifted = state["most_drifted"]
        ax.spines[["top", "right"]].set_visible(False)
        if not drifted:
            ax.text(0.5, 0.5, "no key drifted", ha="center", va="center", transform=ax.transAxes)
            ax.set_title(f"{name} {counter}")
            continue
        keys = [_plain(item["key"]) for item in drifted]
        drift = [float(item["actual"]) - float(item["expected"]) for item in drifted]  # may pass int64's range
        positions = np.arange(len(keys))
        colours = [PALETTE[3] if value < 0 else PALETTE[0] for value in drift]
        ax.bar(positions, drift, 0.6, color=colours)
        ax.axhline(0, color=PALETTE[-1], linewidth=0.8)
        for position, value, item in zip(positions, drift, drifted):
            ax.annotate(
                f"{item['expected']:,} → {item['actual']:,}",
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
        ax.set_title(f"{name} {counter}: drift {state['abs_drift']:,} over {counted(state['keys_diverged'], 'key')}")
        ax.legend(
            handles=[Patch(color=PALETTE[3], label="below exactly-once"), Patch(color=PALETTE[0], label="above")],
            loc="best",
        )
    figure.suptitle(f"{view.scenario.name}: state against an exactly-once reference, most drifted keys")
    return figure


def chain_latency(result: Result | RunView) -> Figure | None:
    """Latency of each hop of each event chain, and from publish to the chain's end; None without chains.

    Bars are medians and whiskers run to the p99, on a log axis: a chain's
    hops differ by orders of magnitude. Medians do not add up along a chain,
    so the end-to-end figures are drawn from the messages themselves.
    """
    view = RunView.of(result)
    chains = view.document.get("chains") or {}
    if not chains:
        return None
    figure = Figure(figsize=_SIZE, dpi=150, layout="constrained")
    axes = figure.subplots(len(chains), 1, squeeze=False)[:, 0]
    for ax, chain in zip(axes, chains.values()):
        ax.grid(True, axis="x", alpha=0.3)
        ax.spines[["top", "right"]].set_visible(False)
        rows = [(_plain(f"{hop['event']} > {hop['consumer']}"), hop["latency_s"]) for hop in chain["hops"]]
        rows.append(("publish to the end", chain["latency_s"]))
        positions = np.arange(len(rows))
        for position, (_, latency) in zip(positions, rows):
            if not latency["count"]:
                continue
            end_to_end = position == len(rows) - 1
            colour = PALETTE[3] if end_to_end else PALETTE[0]
            ax.barh(
                position, latency["p50"], 0.6, color=colour, label="p50, publish to the end" if end_to_end else None
            )
            ax.plot([latency["p50"], latency["p99"]], [position, position], color=PALETTE[-1], linewidth=1)
            ax.plot(latency["p99"], position, "|", color=PALETTE[-1], markersize=12)
            ax.annotate(
                f"p50 {format_duration(latency['p50'])}, p99 {format_duration(latency['p99'])}",
                (latency["p99"], position),
                textcoords="offset points",
                xytext=(6, 0),
                va="center",
                fontsize=8,
            )
        ax.set_yticks(positions, [label for label, _ in rows])
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.margins(x=0.4)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: format_duration(value)))
        ax.set_xlabel("latency (log scale)")
        ax.set_title(
            f"{_plain(' > '.join(hop['consumer'] for hop in chain['hops']))}: {chain['completed']:,} of "
            f"{chain['published']:,} reached the end",
            fontsize=10,
        )
    figure.legend(
        handles=[
            Patch(color=PALETTE[0], label="p50 of a hop"),
            Patch(color=PALETTE[3], label="p50 from publish to the end"),
            Patch(color=PALETTE[-1], label="whisker to the p99"),
        ],
        loc="outside lower center",
        ncols=3,
        fontsize=8,
    )
    figure.suptitle(f"{view.scenario.name}: latency along each event chain")
    return figure


CHARTS = {
    "latency-cdf": latency_cdf,
    "latency-over-time": latency_over_time,
    "throughput-backlog": throughput_and_backlog,
    "delivery-funnel": delivery_funnel,
    "consistency": consistency,
    "chain-latency": chain_latency,
}


def draw_charts(result: Result | RunView) -> dict[str, Figure]:
    """Every chart that applies to the run, by name."""
    view = RunView.of(result)
    figures = {name: chart(view) for name, chart in CHARTS.items()}
    return {name: figure for name, figure in figures.items() if figure is not None}


def write_charts(result: Result | RunView, folder: Path) -> list[Path]:
    """Save every chart that applies as PNG and SVG in ``folder``; return the paths."""
    written = []
    for name, figure in draw_charts(result).items():
        written += save_figure(figure, folder, name)
    return written


def save_figure(figure: Figure, folder: Path, name: str) -> list[Path]:
    """Save ``figure`` as ``name`` in every format; an SVG carries the figure's title."""
    paths = []
    # A fixed salt and no date: the same run gives byte-identical files.
    with rc_context({"svg.hashsalt": "busim"}):
        for suffix in FORMATS:
            path = folder / f"{name}.{suffix}"
            metadata = {"Title": figure_title(figure), "Date": None} if suffix == "svg" else {"Software": "busim"}
            figure.savefig(path, metadata=metadata)
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
        quantiles = np.array(outcome.summary.consumers[consumer].latency_quantiles_s, dtype=float).reshape(-1, 2)
        if quantiles.size == 0:
            continue
        latency_s = np.maximum(quantiles[:, 1], 1e-6)  # a log axis has no 0
        fraction = quantiles[:, 0] / 100
        colour = PALETTE[index % len(PALETTE)]
        style = styles[index % len(styles)]
        ax.plot(latency_s, fraction, color=colour, linestyle=style, linewidth=2, label=_plain(name))
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
_ANOMALIES_WHEN_SEEN = (("stuck pending", ("stuck_pending",)),)  # only some brokers produce these


def comparison_anomalies(comparison: Comparison, consumer: str | None = None) -> Figure:
    """One consumer's departures from exactly-once under each variant, as grouped bars (means, with
    95 % confidence intervals when the variants were replicated)."""
    figure, (ax,) = _figure()
    consumer = consumer or _first_consumer(comparison)
    anomalies = list(_ANOMALIES)
    for label, path in _ANOMALIES_WHEN_SEEN:
        seen = (_comparison_figure(outcome, consumer, path) for outcome in comparison.outcomes)
        if any(figure is not None and figure.mean for figure in seen):
            anomalies.append((label, path))
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
            label=_plain(name),
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
        written += save_figure(chart(comparison), folder, name)
    return written
