"""A sweep's report: sweep.json, sweep.csv, sweep.md, the console table and the charts.

The sweeps run the small queueing scenario (seed 7): its figures are golden,
as the runs are seeded; a figure's interval is the sweep's own, so the
numbers here only change when the simulation does.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import matplotlib
import pytest
from rich.console import Console

from busim.planning.figures import Figure
from busim.planning.runner import sweep
from busim.planning.sweep import Sweep
from busim.report.charts import figure_title
from busim.report.sweep import (
    SWEEP_CSV,
    SWEEP_FILE,
    render_sweep,
    same_lines,
    sweep_csv,
    sweep_json,
    sweep_markdown,
    write_sweep,
)
from busim.report.sweep_charts import duration_unit, geometric, sweep_charts
from busim.results import RunMetadata
from busim.scenario.ranges import Axis, AxisValue

matplotlib.use("Agg")

KEY = "consumers.worker.instances"


def _steady(swept: Sweep) -> Sweep:
    """``swept`` with a fixed file name and wall time, as the console and sweep.md state them."""
    return dataclasses.replace(swept, file="queueing.yaml", run=RunMetadata(wall_time_s=1.25, busim_version="0.1.0"))


@pytest.fixture(scope="module")
def instances(queueing_file: Path) -> Sweep:
    """1, 2 and 4 instances, 2 replications each, the latency p99 and the lost messages."""
    return _steady(sweep(queueing_file, [f"{KEY}=1..4:x2"], replications=2, figures=["p99", "lost"]))


@pytest.fixture(scope="module")
def presets(queueing_file: Path) -> Sweep:
    """Two broker presets, one run each: a word axis, and figures without an interval."""
    return _steady(sweep(queueing_file, ["broker.preset=kafka,rabbitmq"], replications=1, figures=["p99"]))


def _no_nan(text: str) -> dict:
    def refuse(constant: str) -> None:
        raise AssertionError(f"sweep.json holds {constant}")

    return json.loads(text, parse_constant=refuse)


def test_sweep_json_holds_the_grid_and_each_points_figures(instances: Sweep) -> None:
    document = _no_nan(sweep_json(instances))
    assert list(document) == [
        "schema",
        "scenario",
        "file",
        "seed",
        "replications",
        "overrides",
        "axes",
        "figures",
        "points",
        "run",
    ]
    assert document["schema"] == "busim.sweep/1"
    assert (document["scenario"], document["seed"], document["replications"], document["overrides"]) == (
        "test",
        7,
        2,
        [],
    )
    assert document["axes"] == [
        {
            "key": KEY,
            "values": [
                {"text": "1", "label": "1", "number": 1.0},
                {"text": "2", "label": "2", "number": 2.0},
                {"text": "4", "label": "4", "number": 4.0},
            ],
        }
    ]
    assert document["figures"] == [
        {"consumer": "worker", "name": "p99", "duration": True},
        {"consumer": "worker", "name": "lost", "duration": False},
    ]
    assert [point["name"] for point in document["points"]] == ["instances=1", "instances=2", "instances=4"]
    last = document["points"][2]
    assert last == {
        "name": "instances=4",
        "values": {KEY: "4"},
        "numbers": {KEY: 4.0},
        "left_out": [],
        "runs": 2,
        "figures": {
            "worker.p99": {
                "mean": 0.33361519059753114,
                "low": 0.28535927315980175,
                "high": 0.38187110803526053,
                "runs_with_value": 2,
            },
            "worker.lost": {"mean": 0.0, "low": 0.0, "high": 0.0, "runs_with_value": 2},
        },
    }
    assert document["run"]["wall_time_s"] == 1.25
    assert set(document["run"]) == {"wall_time_s", "busim_version", "python_version", "numpy_version", "simpy_version"}


def test_sweep_json_writes_null_where_one_run_gives_no_interval(presets: Sweep) -> None:
    document = _no_nan(sweep_json(presets))
    assert document["axes"][0]["values"][0] == {"text": "kafka", "label": "kafka", "number": None}
    first = document["points"][0]
    assert first["numbers"] == {"broker.preset": None}
    assert first["figures"] == {
        "worker.p99": {"mean": 5.494549912228157, "low": None, "high": None, "runs_with_value": 1}
    }
    assert "NaN" not in sweep_json(presets)


def test_sweep_csv_is_a_header_then_a_row_per_point_and_figure(instances: Sweep, presets: Sweep) -> None:
    lines = sweep_csv(instances).splitlines()
    assert lines[0] == f"point,{KEY},consumer,figure,unit,mean,low,high,runs,runs_with_value"
    assert len(lines) == 1 + 3 * 2
    assert lines[5] == "2,4,worker,p99,s,0.33361519059753114,0.28535927315980175,0.38187110803526053,2,2"
    assert lines[6] == "2,4,worker,lost,,0.0,0.0,0.0,2,2"
    # one run: no interval, empty cells; a word keeps its label
    assert sweep_csv(presets).splitlines()[1] == "0,kafka,worker,p99,s,5.494549912228157,,,1,1"


def test_sweep_csv_holds_a_numeric_keys_number_in_base_units_not_its_label(instances: Sweep) -> None:
    rate = Axis("publishers.source.rate", (AxisValue("644.4444", "644.4/s", 644.4444),))
    wait = Axis("broker.ack_timeout", (AxisValue("0.0012s", "1.2ms", 0.0012),))
    point = dataclasses.replace(instances.points[0], values=(rate.values[0], wait.values[0]))
    swept = dataclasses.replace(instances, axes=(rate, wait), whole_numbers=(False, False), points=(point,))
    lines = sweep_csv(swept).splitlines()
    assert lines[0].startswith("point,publishers.source.rate,broker.ack_timeout,consumer,figure,unit,")
    assert lines[1].startswith("0,644.4444,0.0012,worker,p99,s,")


def test_sweep_rows_hold_each_keys_value_in_the_type_the_scenario_gives_the_key(
    instances: Sweep, queueing_file: Path
) -> None:
    assert [(row[KEY], type(row[KEY])) for row in instances.rows()][::2] == [(1, int), (2, int), (4, int)]
    durations = sweep(queueing_file, ["duration=5s,10s"], replications=1, figures=["p99"])
    assert [(row["duration"], type(row["duration"])) for row in durations.rows()] == [(5.0, float), (10.0, float)]


def test_sweep_markdown_has_a_table_per_figure(instances: Sweep) -> None:
    lines = sweep_markdown(instances).splitlines()
    assert lines[0] == f"# test: p99, lost by {KEY}"
    headings = [line for line in lines if line.startswith("## ")]
    assert headings == ["## worker.p99", "## worker.lost"]
    expected = {
        "- 3 points x 2 replications on the same seeds, 6 runs in 1.2s",
        "| instances | mean \\[95 % interval] | runs with a value |",
        "| 4 | 334ms \\[285ms, 382ms] | 2 |",
        "| 1 | 0 | 2 |",  # lost: 0 in every run, no interval to show
    }
    assert expected <= set(lines)


def test_console_shows_a_row_per_point_within_80_columns(instances: Sweep) -> None:
    console = Console(record=True, width=80)
    render_sweep(console, instances)
    text = console.export_text()
    # Each figure on one line, as an interval: 5.69s ± 11.4s would read as a latency below 0.
    assert text.splitlines() == [
        f"test: p99, lost by {KEY}",
        "scenario file queueing.yaml, seed 7 · 3 points x 2 replications on the same",
        "seeds, 6 runs in 1.2s",
        "worker: figures at each point",
        "",
        "  instances                    p99   lost",
        " ─────────────────────────────────────────",
        "  1              5.69s [0s, 17.1s]      0",
        "  2              547ms [0s, 1.62s]      0",
        "  4           334ms [285ms, 382ms]      0",
        "",
        "each figure: the mean of the runs [its 95% confidence interval]",
    ]
    assert max(len(line) for line in text.splitlines()) <= 80


def test_a_count_shows_whole_numbers_past_10_on_one_line(instances: Sweep) -> None:
    backlog = Figure("worker", "max_backlog", ("max_backlog",), False)
    console = Console(record=True, width=80)
    render_sweep(console, dataclasses.replace(instances, figures=(backlog,)))
    lines = console.export_text().splitlines()
    assert lines[5:10] == [
        "  instances   max_backlog",
        " ─────────────────────────",
        "  1           76 [0, 323]",
        "  2            10 [0, 55]",
        "  4             3 [0, 16]",
    ]


def test_console_names_each_set_key_left_out_once_with_the_values_that_left_it(instances: Sweep) -> None:
    one, two, four = instances.points
    left = "--set broker.partitions=4"
    swept = dataclasses.replace(
        instances,
        points=(dataclasses.replace(one, left_out=(left,)), two, dataclasses.replace(four, left_out=(left,))),
    )
    console = Console(record=True, width=80)
    render_sweep(console, swept)
    lines = console.export_text().splitlines()
    assert lines[-2:] == ["--set broker.partitions=4 left out at instances=1, instances=4: not a key of its", "preset"]
    assert [line for line in lines if "left out" in line] == [lines[-2]]
    assert json.loads(sweep_json(swept))["points"][0]["left_out"] == [left]


def test_console_names_the_set_keys_a_point_left_out(presets: Sweep) -> None:
    kafka, rabbitmq = presets.points
    swept = dataclasses.replace(
        presets, points=(dataclasses.replace(kafka, left_out=("--set broker.prefetch=5",)), rabbitmq)
    )
    console = Console(record=True, width=80)
    render_sweep(console, swept)
    assert (
        console.export_text().splitlines()[-1]
        == "--set broker.prefetch=5 left out at preset=kafka: not a key of its preset"
    )
    assert json.loads(sweep_json(swept))["points"][0]["left_out"] == ["--set broker.prefetch=5"]


def test_a_varied_key_left_out_is_named_once_whatever_its_value(presets: Sweep) -> None:
    kafka, rabbitmq = presets.points
    swept = dataclasses.replace(
        presets,
        points=(
            dataclasses.replace(kafka, left_out=("--vary broker.prefetch=10",)),
            dataclasses.replace(kafka, name="other kafka", left_out=("--vary broker.prefetch=50",)),
            rabbitmq,
        ),
    )
    console = Console(record=True, width=80)
    render_sweep(console, swept)
    assert [line for line in console.export_text().splitlines() if "left out" in line] == [
        "--vary broker.prefetch left out at preset=kafka: not a key of its preset"
    ]


def test_points_with_another_points_figures_are_noted_under_the_table(instances: Sweep) -> None:
    one, two, four = instances.points
    swept = dataclasses.replace(instances, points=(one, two, dataclasses.replace(four, outcome=two.outcome)))
    assert same_lines(swept) == ("instances=4: same as instances=2",)
    assert same_lines(instances) == ()
    console = Console(record=True, width=80)
    render_sweep(console, swept)
    assert console.export_text().splitlines()[-1] == "instances=4: same as instances=2"
    assert "- instances=4: same as instances=2" in sweep_markdown(swept).splitlines()


def test_geometric_values_are_those_with_a_constant_ratio_of_two_or_more() -> None:
    assert geometric([1.0, 2.0, 4.0, 8.0])
    assert geometric([0.01, 0.1, 1.0])
    assert not geometric([1.0, 2.0, 3.0])
    assert not geometric([1.0, 1.5, 2.25])  # constant, but below 2
    assert not geometric([1.0, 2.0])  # two values set no ratio
    assert not geometric([0.0, 1.0, 2.0])


def test_duration_unit_reads_in_the_unit_of_the_largest_value() -> None:
    assert duration_unit([0.0004, 0.02]) == (1e-3, "ms")
    assert duration_unit([0.3, 5.7]) == (1.0, "s")
    assert duration_unit([2e-6, float("nan")]) == (1e-6, "µs")


def test_one_numeric_axis_draws_a_line_with_its_band_on_a_log_axis(instances: Sweep) -> None:
    charts = sweep_charts(instances)
    assert list(charts) == ["sweep-p99-worker", "sweep-lost-worker"]  # as with two axes
    (ax,) = charts["sweep-p99-worker"].axes
    assert figure_title(charts["sweep-p99-worker"]).startswith(f"test: end-to-end p99 of worker by {KEY}")
    assert ax.get_xscale() == "log"
    assert ax.get_xlabel() == KEY
    assert ax.get_ylabel() == "end-to-end p99 (s)"
    assert [label.get_text() for label in ax.get_xticklabels()] == ["1", "2", "4"]
    (line,) = ax.get_lines()
    assert list(line.get_ydata()) == pytest.approx([5.687329062068354, 0.547047339988591, 0.33361519059753114])
    assert len(ax.collections) == 1  # the 95 % band
    assert charts["sweep-lost-worker"].axes[0].get_ylabel() == "lost"


def test_a_word_axis_is_categorical_with_error_bars(presets: Sweep) -> None:
    (ax,) = sweep_charts(presets)["sweep-p99-worker"].axes
    assert ax.get_xscale() == "linear"
    assert [label.get_text() for label in ax.get_xticklabels()] == ["kafka", "rabbitmq"]
    assert list(ax.get_xticks()) == [0.0, 1.0]
    assert len(ax.containers) == 1  # the error bars
    assert ax.get_ylabel() == "end-to-end p99 (s)"


def test_two_axes_draw_a_heat_map_per_figure_and_consumer(queueing_file: Path) -> None:
    swept = sweep(queueing_file, [f"{KEY}=1,2", "broker.preset=kafka,rabbitmq"], replications=1, figures=["p99"])
    charts = sweep_charts(swept)
    assert list(charts) == ["sweep-p99-worker"]
    ax, bar = charts["sweep-p99-worker"].axes
    assert len(ax.images) == 1
    assert (ax.get_xlabel(), ax.get_ylabel()) == (KEY, "broker.preset")
    assert bar.get_ylabel() == "worker: end-to-end p99 (s)"
    assert len(ax.texts) == 4  # a value in each cell
    assert figure_title(charts["sweep-p99-worker"]).startswith(
        f"test: end-to-end p99 of worker by {KEY} and broker.preset"
    )


def test_a_heat_map_says_it_shows_means_and_scales_one_value_everywhere_from_0(queueing_file: Path) -> None:
    swept = sweep(
        queueing_file, [f"{KEY}=1,2", "broker.preset=kafka,rabbitmq"], replications=2, figures=["duplicate_effects"]
    )
    chart = sweep_charts(swept)["sweep-duplicate_effects-worker"]
    ax, bar = chart.axes
    assert bar.get_ylim() == (0.0, 1.0)  # not -0.1 to 0.1 around the 0 of every point
    assert bar.get_ylabel() == "worker: duplicate effects, 0 at every point"
    assert {(text.get_text(), text.get_color()) for text in ax.texts} == {("0", "white")}  # light on dark
    assert figure_title(chart).endswith(
        "each cell: the mean of 2 replications on the same seeds (sweep.md has its 95% interval)"
    )


def test_a_title_names_a_long_set_value_by_its_key_and_a_line_clears_the_edges(instances: Sweep) -> None:
    schedule = "publishers.source.rate=[{at: 0s, rate: 20/s}, {at: 5s, rate: 40/s}, {at: 8s, rate: 20/s}]"
    chart = sweep_charts(dataclasses.replace(instances, overrides=("duration=20s", schedule)))["sweep-p99-worker"]
    assert figure_title(chart).endswith(
        "each point: the mean of 2 replications on the same seeds, with its 95% interval; "
        "with duration=20s, publishers.source.rate set"
    )
    low, high = chart.axes[0].get_xlim()
    assert low < 1 and high > 4  # the first and last instances off the edges


def test_three_axes_draw_a_line_per_combination_of_the_others(queueing_file: Path) -> None:
    swept = sweep(
        queueing_file,
        [f"{KEY}=1,2", "broker.preset=kafka,rabbitmq", "consumers.worker.concurrency=1,2"],
        replications=1,
        figures=["lost"],
    )
    figure = sweep_charts(swept)["sweep-lost-worker"]
    key, ax = figure.axes  # the legend's place comes first
    assert len(ax.get_lines()) == 4
    assert ax.get_xlabel() == KEY
    legend = key.get_legend()
    assert [text.get_text() for text in legend.get_texts()] == [
        "preset=kafka concurrency=1",
        "preset=kafka concurrency=2",
        "preset=rabbitmq concurrency=1",
        "preset=rabbitmq concurrency=2",
    ]


def test_chart_names_hold_only_what_file_systems_take(instances: Sweep) -> None:
    queue_wait = Figure("worker", "latency_s.queue_wait.mean", ("latency_s", "queue_wait", "mean"), True)
    charts = sweep_charts(dataclasses.replace(instances, figures=(queue_wait,)))
    assert list(charts) == ["sweep-latency_s-queue_wait-mean-worker"]


def test_write_sweep_writes_the_files_and_the_charts(instances: Sweep, tmp_path: Path) -> None:
    text = sweep_json(instances)
    write_sweep(instances, tmp_path, text, charts=True)
    assert (tmp_path / SWEEP_FILE).read_text(encoding="utf-8") == text
    assert (tmp_path / SWEEP_CSV).read_text(encoding="utf-8") == sweep_csv(instances)
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "sweep-lost-worker.png",
        "sweep-lost-worker.svg",
        "sweep-p99-worker.png",
        "sweep-p99-worker.svg",
        "sweep.csv",
        "sweep.json",
        "sweep.md",
    ]
    assert (tmp_path / "sweep-p99-worker.png").read_bytes().startswith(b"\x89PNG")
    assert "![test: end-to-end p99 of worker" in (tmp_path / "sweep.md").read_text(encoding="utf-8")


def test_write_sweep_without_charts_writes_the_documents_only(instances: Sweep, tmp_path: Path) -> None:
    write_sweep(instances, tmp_path, sweep_json(instances), charts=False)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["sweep.csv", "sweep.json", "sweep.md"]
