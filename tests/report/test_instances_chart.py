"""Deploys and scaling in the reports: the chart of instances over time, drawn for runs whose consumers deploy
or scale and only for those, and the verdict's notes."""

import json

import numpy as np

import busim
from busim.analysis.stories import Stories, What
from busim.engine.records import Outcome
from busim.report.charts import LIFECYCLE_CHARTS, draw_charts, figure_title
from busim.report.run_report import report_markdown
from busim.report.stories import deploy_lines
from busim.report.trace import chrome_trace_lines
from busim.report.views import lifecycle_rows
from busim.scenario.units import format_duration
from tests.conftest import consumer, scenario
from tests.engine.test_autoscale import scaled_beyond_the_partitions
from tests.engine.test_deploys import held_at_30s
from tests.report.test_chart_layout import layout_problems


def scaled_and_deployed():
    autoscale = {"min": 2, "max": 8, "metric": "lag_s", "target": 0.5, "interval": "2s", "scale_up_delay": "3s"}
    deploys = [{"at": "6s", "restart_time": "1s"}]
    return busim.simulate(
        scenario(
            [consumer(instances=2, processing_time="300ms", autoscale=autoscale, deploys=deploys)],
            broker={"preset": "rabbitmq", "prefetch": 1},
        )
    )


def test_a_run_that_scales_charts_its_instances_beside_its_backlog_and_latency(monkeypatch):
    result = scaled_and_deployed()
    figure = draw_charts(result)["instances"]
    assert figure_title(figure) == "test: instances, backlog and latency over time"
    assert [ax.get_ylabel() for ax in figure.axes if ax.get_visible() and ax.has_data()] == [
        "instances",
        "copies queued\nat the broker",
        "p99 latency (log)",
    ]
    assert figure.canvas.get_width_height() == (1280, 720)
    assert layout_problems(figure, monkeypatch) == []


def test_a_run_whose_instances_never_stop_has_no_instances_chart():
    assert LIFECYCLE_CHARTS["instances"](busim.simulate(scenario())) is None


def test_the_reports_verdict_says_when_a_scaler_ran_more_members_than_partitions():
    result = scaled_beyond_the_partitions()
    (note,) = result.summary.lifecycle["worker"].notes
    assert f"Note: W{note[1:]}." in report_markdown(result, [])


def test_a_story_says_a_deploy_killed_the_instance_and_explain_lists_the_deploy_windows():
    result, group = held_at_30s("kill")
    deliveries = group.deliveries
    stories = Stories(result.record)
    for row in np.flatnonzero(deliveries.outcome == Outcome.ABORTED).tolist():  # the ten held at 30 s
        message = int(group.message_ids[deliveries.message[row]])
        at_30s = [happening.what for happening in stories.story(message).happenings if happening.time_s == 30.0]
        assert at_30s == [What.KILLED, What.ARRIVED]  # and RabbitMQ requeues it at once
    assert deploy_lines(result.record) == [
        "Deployed in worker (2 instances down in turn): #0 from 30.000 s to 35.000 s, #1 from 30.000 s to 35.000 s."
    ]


def test_a_trace_gives_every_instance_a_scaler_started_a_track_of_its_own():
    result = scaled_and_deployed()
    events = [json.loads(line) for line in chrome_trace_lines(result.record)]
    tracks = {event["tid"]: event["args"]["name"] for event in events if event["name"] == "thread_name"}
    started = np.unique(result.record.groups[0].deliveries.instance).tolist()
    assert max(started) >= 2  # beyond the 2 it starts with
    assert all(f"worker #{instance}" in tracks.values() for instance in started)
    assert len(set(tracks.values())) == len(tracks)  # no track named twice: none shared by two instances


def test_the_consumers_table_gives_the_deploys_and_the_scaling_with_their_cost():
    result = scaled_beyond_the_partitions()
    figures = result.summary.lifecycle["worker"]
    rows = {row.label: ([cell.text for cell in row.cells], row.why) for row in lifecycle_rows(result)}
    assert rows == {
        "deploys": (["0"], ""),
        "delayed by deploys": (["0"], "messages that waited for a worker during a deploy"),
        "peak instances": (
            [f"{figures.peak_instances}"],
            f"{figures.instance_seconds:,.0f} instance-seconds; the backlog drained "
            f"{format_duration(figures.backlog_drain_s)} after its peak",
        ),
        "scale changes": ([f"{figures.scale_changes}"], f"{figures.rebalances} rebalances"),
    }
    assert lifecycle_rows(busim.simulate(scenario())) == []
