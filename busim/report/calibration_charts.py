"""Charts of a calibration for a slide: the real run's figures against where simulated runs fall.

Two charts, in the style of :mod:`busim.report.charts` (1280 x 720 pixels,
the Okabe-Ito palette, legends beside the axes): each consumer's end-to-end
latency distribution, real against simulated as declared and after fitting,
on one log time axis; and the count figures, each row scaled to its largest
value so that a count of 3 and one of 3,000 both read, the simulated mean a
dot on where one simulated run falls and the real value a diamond.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import PercentFormatter

from busim.report.calibration import (
    calibration_subject,
    figure_label,
    real_cell,
    simulated_cell,
    verdict_cell,
)
from busim.report.charts import (
    _SMALL_PT,
    _TABLE_ROWS,
    PALETTE,
    Chart,
    _figure,
    _legend,
    _new_figure,
    _panels,
    _quantiles,
    _titled,
    _written,
    distributions_axes,
    distributions_panel,
)
from busim.results.calibration import CalibrationRun
from busim.words import counted

REAL_COLOUR = PALETTE[7]  # black: the run, against the simulation's colours
OUTSIDE_COLOUR = PALETTE[3]  # vermillion: a real figure outside where one simulated run falls
# (label, colour, dash) of each latency curve: the real run's, then the simulation's as declared and as fitted.
_CURVES = (
    ("real", REAL_COLOUR, "-"),
    ("simulated, declared", PALETTE[0], "--"),
    ("simulated, fitted", PALETTE[2], ":"),
)


def calibration_latency_cdf(run: CalibrationRun) -> Figure:
    """Each consumer's end-to-end latency distribution, real against simulated (as declared and after fitting:
    at each percentile the mean of the replications), one panel per consumer on a shared log time axis."""
    consumers = list(run.declared.curves)
    figure = _new_figure()
    axes, key = _panels(figure, len(consumers), sharex=True, sharey=True, legend=True)
    latencies_s = [1e-6]
    names = [label for label, _, _ in _CURVES]
    styles = [(colour, style) for _, colour, style in _CURVES]
    for ax, name in zip(axes, consumers):
        declared = run.declared.curves[name]
        fitted = run.after_fit.curves.get(name)
        distributions = [
            _quantiles(points) for points in (declared.real, declared.simulated, fitted.simulated if fitted else ())
        ]
        latencies_s += distributions_panel(ax, name, distributions, styles, names, "real and simulated the same")
    distributions_axes(figure, axes, latencies_s)
    handles = [Line2D([], [], color=colour, linestyle=style, linewidth=1.8) for colour, style in styles]
    _legend(key, handles, names)
    replications = counted(run.declared.replications, "replication")
    return _titled(
        figure,
        f"{calibration_subject(run)}: end-to-end latency, real and simulated",
        [f"simulated: at each percentile, the mean of {replications}"],
    )


def calibration_counts(run: CalibrationRun) -> Figure | None:
    """Each count figure that is not 0 everywhere: the simulated mean (a dot) on where 95 % of single simulated
    runs fall (a bar), and the real value (a diamond, vermillion where outside that range), each row scaled to
    its largest value and labelled with its figures. None where every count is 0, real and simulated."""
    checks = [
        check
        for check in run.declared.checks
        if check.unit == "count" and check.verdict != "not measured"
        if max(check.simulated.mean, check.one_run_high, check.real or 0.0) > 0
    ]
    if not checks:
        return None
    notes = [f"simulated: {counted(run.declared.replications, 'replication')} of the scenario as declared"]
    if len(checks) > _TABLE_ROWS:
        notes.append(f"{len(checks) - _TABLE_ROWS} more figures left out (see calibration.md)")
        checks = checks[:_TABLE_ROWS]
    several = len(run.declared.curves) > 1
    figure, (ax,), key = _figure(legend=True)
    rows = np.arange(len(checks))[::-1]  # the first figure at the top
    for row, check in zip(rows, checks):
        scale = max(check.simulated.mean, check.one_run_high, check.real or 0.0)
        ax.plot(
            [check.one_run_low / scale, check.one_run_high / scale],
            [row, row],
            color=PALETTE[0],
            linewidth=7,
            alpha=0.35,
            solid_capstyle="butt",
        )
        outside = check.verdict in ("above", "below")
        ax.plot((check.real or 0.0) / scale, row, "D", color=OUTSIDE_COLOUR if outside else REAL_COLOUR, markersize=8)
        # The mean on top, smaller: where the real value equals it, a dot inside the diamond.
        ax.plot(check.simulated.mean / scale, row, "o", color=PALETTE[0], markersize=5, zorder=3)
    labels = [
        f"{check.consumer}: {figure_label(check.figure)}" if several else figure_label(check.figure) for check in checks
    ]
    ax.set_yticks(rows, labels=labels, fontsize=_SMALL_PT)
    ax.set_ylim(-0.7, len(checks) - 0.3)
    ax.set_xlim(-0.03, 1.05)
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlabel("each row relative to its largest value")
    figures = ax.twinx()
    figures.set_ylim(ax.get_ylim())
    figures.set_yticks(
        rows,
        labels=[
            f"real {real_cell(check).text} · simulated {simulated_cell(check).text} · {verdict_cell(check).full}"
            for check in checks
        ],
        fontsize=_SMALL_PT,
    )
    figures.spines[["top"]].set_visible(False)
    outside = [check.verdict in ("above", "below") for check in checks]
    keys = [
        (Line2D([], [], color=PALETTE[0], linewidth=7, alpha=0.35), "95 % of single simulated runs", True),
        (Line2D([], [], color=PALETTE[0], marker="o", linestyle="", markersize=5), "simulated mean", True),
        (Line2D([], [], color=REAL_COLOUR, marker="D", linestyle="", markersize=8), "real, within", not all(outside)),
        (Line2D([], [], color=OUTSIDE_COLOUR, marker="D", linestyle="", markersize=8), "real, outside", any(outside)),
    ]
    # Keyed as drawn: a diamond no row has gets no entry.
    _legend(key, [handle for handle, _, drawn in keys if drawn], [label for _, label, drawn in keys if drawn])
    return _titled(figure, f"{calibration_subject(run)}: counts, real and simulated", notes)


CALIBRATION_CHARTS = {"calibration-latency-cdf": calibration_latency_cdf, "calibration-counts": calibration_counts}


def write_calibration_charts(run: CalibrationRun, folder: Path) -> list[Chart]:
    """Save the calibration charts that apply as PNG and SVG in ``folder``; return each chart's files and title."""
    drawn = ((name, chart(run)) for name, chart in CALIBRATION_CHARTS.items())
    return [_written(figure, folder, name) for name, figure in drawn if figure is not None]
