"""Slowdown windows are shaded on the time-axis charts, and named in their legend."""

from __future__ import annotations

import busim
from busim.report.charts import latency_over_time, throughput_and_backlog
from tests.conftest import consumer, scenario

SLOWED = scenario(
    [
        consumer(processing_time="10ms", slowdowns=[{"from": "2s", "to": "4s", "factor": 5}]),
        consumer(name="other", processing_time="10ms"),
    ],
    broker={"slowdowns": [{"from": "6s", "to": "7s", "factor": 3}]},
)


def _spans(ax) -> list[tuple[float, float]]:
    """The shaded windows of ``ax``: (start, end) of each hatched span."""
    spans = []
    for patch in ax.patches:
        if patch.get_hatch() == "//":
            x = patch.get_patch_transform().transform(patch.get_path().vertices)[:, 0]
            spans.append((round(float(x.min()), 6), round(float(x.max()), 6)))
    return sorted(spans)


def test_each_consumer_panel_shades_its_own_slowdowns_and_the_brokers():
    figure = latency_over_time(busim.simulate(SLOWED, seed=1))
    panels = {ax.get_title(): ax for ax in figure.axes}
    worker, other = panels["worker"], panels["other"]
    assert _spans(worker) == [(2.0, 4.0), (6.0, 7.0)]
    assert _spans(other) == [(6.0, 7.0)]
    legends = [ax.get_legend() for ax in figure.axes if ax.get_legend()]
    assert [text.get_text() for text in legends[0].get_texts()][-1] == "slowdown"


def test_the_throughput_chart_shades_every_slowdown():
    figure = throughput_and_backlog(busim.simulate(SLOWED, seed=1))
    assert [_spans(ax) for ax in figure.axes if ax.has_data()][:2] == [[(2.0, 4.0), (6.0, 7.0)]] * 2
