"""Every chart's legend keys what it draws: each entry's colour, dash, width, marker and hatch are those of
the lines, markers or shaded areas it names. And every tick label, major or minor, reads at one size."""

from __future__ import annotations

import math

import pytest
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

import busim
from busim.planning.runner import sweep
from busim.report.calibration_charts import calibration_counts, calibration_latency_cdf
from busim.report.capacity_charts import capacity_charts
from busim.report.charts import COMPARISON_CHARTS, PALETTE, draw_charts
from busim.report.sweep_charts import sweep_charts
from tests.conftest import VARIANTS_COMPARED, scenario, simulated, variants_compared
from tests.report.test_calibration_report import AFTER_FIT, KNOWN, _on_rabbitmq, _run
from tests.report.test_capacity_report import KEY, answer  # noqa: F401
from tests.report.test_chart_layout import drawn_texts, many_consumers
from tests.report.test_instances_chart import scaled_and_deployed

pytestmark = VARIANTS_COMPARED  # the order pipeline's variants, shared with the modules that read them

# A key in black may stand for a dash or a shade drawn in each consumer's colour (one panel each).
_STYLE_KEY = to_rgba(PALETTE[-1])


def _drawn(figure: Figure) -> tuple[list[Line2D], list[Patch]]:
    """The lines (markers included) and shaded areas or bars the figure's axes draw."""
    axes = [ax for ax in figure.axes if ax.get_visible()]
    return [line for ax in axes for line in ax.get_lines()], [patch for ax in axes for patch in ax.patches]


def _colour(artist: Line2D | Patch) -> tuple[float, ...]:
    if isinstance(artist, Line2D):
        return to_rgba(artist.get_color(), artist.get_alpha())
    return tuple(artist.get_facecolor())


def _has_line(line: Line2D) -> bool:
    return line.get_linestyle() not in ("None", "", " ")


def _has_marker(line: Line2D) -> bool:
    return line.get_marker() not in (None, "None", "", " ")


def _dashed_alike(key: Line2D, line: Line2D) -> bool:
    return key.get_linestyle() == line.get_linestyle() and math.isclose(key.get_linewidth(), line.get_linewidth())


def key_mismatches(figure: Figure) -> list[str]:
    """The legend entries of ``figure`` that no drawn artist matches in colour and style."""
    lines, patches = _drawn(figure)
    legends = [ax.get_legend() for ax in figure.axes if ax.get_legend()] + list(figure.legends)
    problems = []
    for legend in legends:
        for key, text in zip(legend.legend_handles, legend.get_texts()):
            label = " ".join(text.get_text().split())
            wanted = []
            if isinstance(key, Patch):
                wanted.append(("shade", [patch for patch in patches if patch.get_hatch() == key.get_hatch()]))
            else:
                if _has_line(key):
                    drawn = [line for line in lines if _has_line(line) and _dashed_alike(key, line)]
                    wanted.append(("line", drawn))
                if _has_marker(key):
                    drawn = [line for line in lines if _has_marker(line) and key.get_marker() == line.get_marker()]
                    wanted.append(("marker", drawn))
            for part, drawn in wanted:
                colours = {_colour(artist) for artist in drawn}
                if _colour(key) in colours:
                    continue
                style_key = _colour(key)[:3] == _STYLE_KEY[:3] and len({colour[:3] for colour in colours}) > 1
                alpha = {colour[3] for colour in colours} == {_colour(key)[3]}
                if not (style_key and alpha):
                    problems.append(f"{label!r}: {part} keyed {_colour(key)}, drawn {sorted(colours)}")
    return problems


INSTANCES, PRESETS, CONCURRENCY = KEY + "=1,2", "broker.preset=kafka,rabbitmq", "consumers.worker.concurrency=1,2"


def swept(request, axes: list[str]) -> dict[str, Figure]:
    """A line (on numbers) or dots with error bars (on words) per combination of the second and third axes."""
    return sweep_charts(sweep(request.getfixturevalue("queueing_file"), axes, replications=2, figures=["p99"]))


def calibration_charts() -> dict[str, Figure | None]:
    """A calibration's charts for checks worked out by hand, some real figures within and some outside."""
    run = _run(_on_rabbitmq(busim.simulate(scenario(duration=5), seed=1)), KNOWN, AFTER_FIT)
    return {"calibration-latency-cdf": calibration_latency_cdf(run), "calibration-counts": calibration_counts(run)}


CASES = {
    "flash-sale": lambda request: draw_charts(simulated("flash-sale.yaml")),
    "order-pipeline": lambda request: draw_charts(simulated("order-pipeline.yaml")),
    "many-consumers": lambda request: draw_charts(busim.simulate(many_consumers())),
    "scaled-and-deployed": lambda request: draw_charts(scaled_and_deployed()),
    "black-friday-autoscaling": lambda request: draw_charts(simulated("black-friday-autoscaling.yaml")),
    "order-pipeline-compared": lambda request: {
        name: chart(variants_compared("order-pipeline.yaml")) for name, chart in COMPARISON_CHARTS.items()
    },
    "capacity": lambda request: capacity_charts(request.getfixturevalue("answer")),
    "sweep-on-numbers": lambda request: swept(request, [INSTANCES, PRESETS, CONCURRENCY]),
    "sweep-on-words": lambda request: swept(request, [PRESETS, INSTANCES, CONCURRENCY]),
    "calibration": lambda request: calibration_charts(),
}


def _has_legend(figure: Figure) -> bool:
    return bool(figure.legends or any(ax.get_legend() for ax in figure.axes))


def tick_label_sizes(figure: Figure, monkeypatch) -> dict[float, list[str]]:
    """The tick labels the figure draws, major and minor, by font size."""
    drawn = set(map(id, drawn_texts(figure, monkeypatch)))
    sizes: dict[float, list[str]] = {}
    for ax in figure.axes:
        for axis in (ax.xaxis, ax.yaxis):
            for label in axis.get_ticklabels(which="both"):
                if id(label) in drawn:
                    sizes.setdefault(label.get_fontsize(), []).append(label.get_text())
    return sizes


@pytest.mark.parametrize("case", CASES)
def test_each_legend_entry_is_drawn_as_it_is_keyed_and_every_tick_label_is_of_one_size(request, monkeypatch, case):
    charts = {name: figure for name, figure in CASES[case](request).items() if figure is not None}
    keyed = {name: figure for name, figure in charts.items() if _has_legend(figure)}
    assert keyed, "a case with no legend checks nothing"
    assert {name: key_mismatches(figure) for name, figure in keyed.items()} == {name: [] for name in keyed}
    for name, figure in charts.items():
        sizes = tick_label_sizes(figure, monkeypatch)
        assert len(sizes) == 1, f"{name}: {sizes}"
