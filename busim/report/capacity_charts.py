"""Charts of a capacity search for a slide: an objective's figure at every probe, against the key searched.

In the style of :mod:`busim.report.charts`: each probe is a dot on its 95 %
interval, green where it meets the objective, vermillion where it fails
and grey where the interval straddles the bound; the bound is a horizontal
line and the answer a vertical one, each labelled. One chart per figure
the objectives bound (two bounds on one figure share its chart).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from busim.planning.capacity import CapacityAnswer
from busim.planning.slo import Objective, Verdict
from busim.report.capacity import answer_sentence, short_key, value_text
from busim.report.charts import PALETTE, Chart, _figure, _legend, _plain, _titled, _written
from busim.report.sweep_charts import duration_unit, figure_name, plain_log_ticks, safe_name

_VERDICT_COLOURS = {Verdict.MEETS: PALETTE[2], Verdict.FAILS: PALETTE[3], Verdict.UNDECIDED: "#999999"}
_LOG_SPAN = 8  # probes spanning more than this factor read best on a log axis (bracketing doubles)
CAPACITY_CHART = "capacity"


def answer_label(answer: CapacityAnswer) -> str:
    """How the chart labels the answer: ``8 instances`` for a whole number, ``answer: 812/s`` otherwise."""
    assert answer.answer is not None
    shown = value_text(answer, answer.answer)
    return f"{shown} {short_key(answer.space.key)}" if answer.space.integer else f"answer: {shown}"


def _figure_groups(answer: CapacityAnswer) -> list[list[int]]:
    """The indices of the objectives, grouped by the figure they bound, in their order."""
    groups: dict[tuple[str, tuple[str, ...]], list[int]] = {}
    for index, objective in enumerate(answer.objectives):
        groups.setdefault((objective.figure.consumer, objective.figure.path), []).append(index)
    return list(groups.values())


def capacity_chart(answer: CapacityAnswer, indices: list[int]) -> Figure:
    """The figure the objectives at ``indices`` bound, at every probe, against the key searched."""
    objectives: list[Objective] = [answer.objectives[index] for index in indices]
    figure = objectives[0].figure
    probes = sorted(answer.probes, key=lambda probe: probe.value)
    chart, (ax,), key = _figure(legend=True)
    values = np.array([probe.value for probe in probes], dtype=float)
    checks = [probe.checks[indices[0]] for probe in probes]
    intervals = [check.interval for check in checks]
    means = np.array([math.nan if i is None else i.mean for i in intervals], dtype=float)
    lows = np.array([math.nan if i is None or i.replications < 2 else i.low for i in intervals], dtype=float)
    highs = np.array([math.nan if i is None or i.replications < 2 else i.high for i in intervals], dtype=float)
    scale, unit = (1.0, "")
    if figure.duration:
        # In the unit of the bounds, where the answer is decided; probes far above them go on a log axis.
        scale, symbol = duration_unit([objective.bound for objective in objectives])
        unit = f" ({symbol})"
    for verdict, colour in _VERDICT_COLOURS.items():
        chosen = np.array([check.verdict is verdict for check in checks], dtype=bool)
        if not chosen.any():
            continue
        mean = means[chosen] / scale
        errors = np.nan_to_num(np.vstack([mean - lows[chosen] / scale, highs[chosen] / scale - mean]))
        ax.errorbar(values[chosen], mean, yerr=errors, fmt="o", color=colour, capsize=4, markersize=6, zorder=3)
    for objective in objectives:
        ax.axhline(objective.bound / scale, color=PALETTE[7], linestyle="--", linewidth=1.2)
        ax.annotate(
            _plain(objective.label),
            (0.01, objective.bound / scale),
            xycoords=("axes fraction", "data"),
            xytext=(0, 3),
            textcoords="offset points",
            fontsize=8,
        )
    if answer.answer is not None:
        # Behind the probes and light: the answer's own probe and its interval stay in sight on the line.
        ax.axvline(answer.answer, color=PALETTE[0], linewidth=1.5, alpha=0.4, zorder=1)
        ax.annotate(
            _plain(answer_label(answer)),
            (answer.answer, 0.98),
            xycoords=("data", "axes fraction"),
            # Left of the line where it is the last probe, so the label stays inside the axes.
            xytext=(-4, 0) if answer.answer >= values.max() else (4, 0),
            textcoords="offset points",
            ha="right" if answer.answer >= values.max() else "left",
            va="top",
            color=PALETTE[0],
            fontsize=9,
        )
    positive = values[values > 0]
    if positive.size == values.size and positive.size and positive.max() / positive.min() > _LOG_SPAN:
        ax.set_xscale("log")
        plain_log_ticks(ax.xaxis, whole=answer.space.integer)
    elif answer.space.integer:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    shown_means = means[np.isfinite(means)]
    bounds_positive = all(objective.bound > 0 for objective in objectives)
    # A log axis has no 0: a probe at 0 (a drain time of none) would vanish from it.
    if (
        bounds_positive
        and shown_means.size
        and (shown_means > 0).all()
        and shown_means.max() / shown_means.min() > _LOG_SPAN
    ):
        ax.set_yscale("log")
        plain_log_ticks(ax.yaxis, whole=False)
    ax.margins(x=0.08)
    rate = answer.space.key.rsplit(".", 1)[-1] == "rate"
    ax.set_xlabel(_plain(answer.space.key + (" (/s)" if rate else "")))
    ax.set_ylabel(_plain(f"{figure.consumer}: {figure_name(figure)}{unit}"))
    shown = [verdict for verdict in _VERDICT_COLOURS if any(check.verdict is verdict for check in checks)]
    handles = [Line2D([], [], color=_VERDICT_COLOURS[verdict], marker="o", linestyle="") for verdict in shown]
    labels = [verdict.value for verdict in shown]
    handles.append(Line2D([], [], color=PALETTE[7], linestyle="--", linewidth=1.2))
    labels.append("bound")
    if answer.answer is not None:
        handles.append(Line2D([], [], color=PALETTE[0], linewidth=1.5, alpha=0.4))
        labels.append("answer")
    _legend(key, handles, labels, "probes")
    scenario = probes[0].outcome.scenario.name if probes else ""
    return _titled(chart, f"{scenario}: {figure.label} against {answer.space.key}", [answer_sentence(answer)])


def capacity_charts(answer: CapacityAnswer) -> dict[str, Figure]:
    """The search's charts by the name of their files, one per figure the objectives bound:
    ``capacity-<consumer>-<figure>`` (``capacity-payment-p99``), whatever the other objectives. None without
    a probe."""
    if not answer.probes:
        return {}
    charts = {}
    for group in _figure_groups(answer):
        figure = answer.objectives[group[0]].figure
        name = f"{CAPACITY_CHART}-{safe_name(figure.consumer)}-{safe_name(figure.name)}"
        charts[name] = capacity_chart(answer, group)
    return charts


def write_capacity_charts(answer: CapacityAnswer, folder: Path) -> list[Chart]:
    """Save the search's charts as PNG and SVG in ``folder``; return each chart's files and title."""
    return [_written(figure, folder, name) for name, figure in capacity_charts(answer).items()]
