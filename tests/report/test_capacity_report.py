"""A capacity search's report: capacity.json, capacity.md, the console, the progress lines and the chart.

The search runs the small queueing scenario (seed 7) for the fewest worker
instances whose p99 stays under 500 ms, on 2 replications per probe: 1, 2
and 3 instances straddle the bound and count as not meeting it, 4 meets it.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import matplotlib
import pytest
from matplotlib.colors import to_hex
from rich.console import Console

from busim.planning.capacity import CapacityAnswer
from busim.planning.runner import capacity
from busim.report.capacity import (
    CAPACITY_FILE,
    answer_sentence,
    beside_text,
    capacity_json,
    capacity_markdown,
    capacity_progress,
    check_text,
    checked_text,
    margin_text,
    render_capacity,
    value_text,
    write_capacity,
)
from busim.report.capacity_charts import answer_label, capacity_charts
from busim.report.charts import PALETTE, figure_title

matplotlib.use("Agg")

KEY = "consumers.worker.instances"
SENTENCE = f"{KEY} = 4: the smallest value that meets every objective"


@pytest.fixture(scope="module")
def answer(queueing_file: Path) -> CapacityAnswer:
    return capacity(queueing_file, KEY, "min", ["worker.p99 < 500ms"], replications=2, max_replications=2)


def _none_found(answer: CapacityAnswer) -> CapacityAnswer:
    """The search as if it had stopped after its first two probes, neither meeting the objective."""
    return dataclasses.replace(answer, probes=answer.probes[:2], answer=None, notes=("no value up to 2 meets it",))


def test_capacity_json_holds_the_answer_the_margins_and_every_probe(answer: CapacityAnswer) -> None:
    document = json.loads(capacity_json(answer), parse_constant=lambda constant: pytest.fail(constant))
    assert list(document) == [
        "schema",
        "key",
        "goal",
        "search",
        "objectives",
        "answer",
        "margins",
        "nearest_failing",
        "probes",
        "notes",
        "seed",
    ]
    assert (document["schema"], document["key"], document["goal"], document["seed"]) == (
        "busim.capacity/1",
        KEY,
        "min",
        7,
    )
    assert document["search"] == {
        "start": 1.0,
        "lowest": 1.0,
        "highest": 1048576.0,
        "integer": True,
        "tolerance": 0.01,
    }
    assert document["objectives"] == [
        {
            "text": "worker.p99 < 500ms",
            "label": "worker.p99 < 500ms",
            "consumer": "worker",
            "figure": "p99",
            "op": "<",
            "bound": 0.5,
        }
    ]
    assert document["answer"] == 4.0
    assert document["margins"] == [
        {
            "objective": "worker.p99 < 500ms",
            "margin": pytest.approx(0.5 - 0.38187110803526053),
            "fraction_of_bound": pytest.approx((0.5 - 0.38187110803526053) / 0.5),
        }
    ]
    assert document["nearest_failing"] == 3.0
    assert [(probe["value"], probe["phase"], probe["verdict"]) for probe in document["probes"]] == [
        (1.0, "bracket", "undecided"),
        (2.0, "bracket", "undecided"),
        (4.0, "bracket", "meets"),
        (3.0, "bisect", "undecided"),
    ]
    assert document["probes"][2] == {
        "value": 4.0,
        "phase": "bracket",
        "replications": 2,
        "verdict": "meets",
        "checks": [
            {
                "objective": "worker.p99 < 500ms",
                "mean": 0.33361519059753114,
                "low": 0.28535927315980175,
                "high": 0.38187110803526053,
                "verdict": "meets",
            }
        ],
    }
    assert document["notes"] == ["3 probes still straddled a bound after 2 replications and counted as not meeting it"]


def test_capacity_json_without_an_answer_has_null_and_no_margins(answer: CapacityAnswer) -> None:
    document = json.loads(capacity_json(_none_found(answer)))
    assert (document["answer"], document["margins"], document["nearest_failing"]) == (None, [], None)
    assert len(document["probes"]) == 2


def test_the_answer_comes_first_and_plainly(answer: CapacityAnswer) -> None:
    assert answer_sentence(answer) == SENTENCE
    assert answer_sentence(_none_found(answer)) == f"{KEY}: no value tried (2 probes, 1 to 2) meets every objective"


def test_a_rate_reads_per_second_and_the_chart_says_answer() -> None:
    from busim.planning.capacity import SearchSpace

    space = SearchSpace("publishers.source.rate", "max", 100.0, integer=False, lowest=1.0, highest=1e6)
    found = CapacityAnswer(space, (), (), 812.3, ())
    assert value_text(found, 812.3) == "812/s"
    assert answer_label(found) == "answer: 812/s"
    assert answer_sentence(found) == "publishers.source.rate = 812/s: the largest value that meets every objective"


def test_console_shows_the_answer_the_probes_by_value_the_margin_and_the_notes(answer: CapacityAnswer) -> None:
    console = Console(record=True, width=80)
    render_capacity(console, answer)
    assert console.export_text().splitlines() == [
        SENTENCE,
        "Each probe: worker's means [95% confidence interval]",
        "",
        "  instances   runs            p99 < 500ms   verdict",
        " ─────────────────────────────────────────────────────────────",
        "  1              2      5.69s [0s, 17.1s]   undecided",
        "  2              2      547ms [0s, 1.62s]   undecided",
        "  3              2   347ms [127ms, 568ms]   undecided",
        "  4              2   334ms [285ms, 382ms]   meets, the answer",
        "",
        "Margin at the answer:",
        "  worker.p99 < 500ms: 118ms to spare (24% of the bound)",
        "The nearest value that does not meet them, 3: worker.p99 = 347ms [127ms, 568ms]",
        "straddles 500ms",
        "Note: 3 probes still straddled a bound after 2 replications and counted as not",
        "meeting it",
    ]


def test_console_says_when_no_value_was_found(answer: CapacityAnswer) -> None:
    console = Console(record=True, width=80)
    render_capacity(console, _none_found(answer))
    lines = console.export_text().splitlines()
    assert lines[:2] == [f"{KEY}: no value tried (2 probes, 1 to 2) meets every", "objective"]
    assert lines[-1] == "Note: no value up to 2 meets it"
    assert "Margin at the answer:" not in lines


def test_capacity_markdown_has_the_answer_the_probes_and_the_notes(answer: CapacityAnswer) -> None:
    lines = capacity_markdown(answer).splitlines()
    assert lines[0] == f"# {SENTENCE}"
    assert "| instances | runs | p99 < 500ms | verdict |" in lines
    assert "| 3 | 2 | 347ms \\[127ms, 568ms] | undecided |" in lines
    assert "- worker.p99 < 500ms: 118ms to spare (24% of the bound)" in lines
    assert "- 3 probes still straddled a bound after 2 replications and counted as not meeting it" in lines


def test_a_value_near_its_bound_shows_the_digits_that_tell_them_apart() -> None:
    assert beside_text(49.996, 50.0, duration=False) == "49.996"  # not 50.0 against < 50
    assert beside_text(45.4, 50.0, duration=False) == "45.4"
    assert beside_text(0.24996, 0.25, duration=True) == "249.96ms"
    assert beside_text(0.25, 0.25, duration=True) == "250ms"
    assert beside_text(0.0048, 0.0, duration=False) == "0.0048"  # a margin, not 0.0
    assert beside_text(0.0, 0.0, duration=False) == "0"


def test_a_check_near_its_bound_and_a_small_margin_keep_their_digits(answer: CapacityAnswer) -> None:
    check = answer.probes[2].checks[0]  # 4 instances: p99 334ms [285ms, 382ms] < 500ms
    near = dataclasses.replace(
        check,
        objective=dataclasses.replace(check.objective, bound=0.38187),
        interval=dataclasses.replace(check.interval, high=0.381869),
    )
    assert checked_text(near) == "334ms [285ms, 381.869ms]"
    assert check_text(near) == "worker.p99 = 334ms [285ms, 381.869ms] < 382ms"
    assert margin_text(near) == "worker.p99 < 382ms: 1µs to spare (0.00026% of the bound)"


def test_progress_prints_a_line_per_probe(answer: CapacityAnswer) -> None:
    console = Console(record=True, width=120)
    with capacity_progress(console, enabled=True) as progress:
        assert progress is not None
        progress.run_done(3, 0)
        progress.probed(answer.probes[3])
        progress.probed(answer.probes[2])
    lines = console.export_text().splitlines()
    assert "instances=3  undecided  worker.p99 = 347ms [127ms, 568ms] straddles 500ms  (2 runs)" in lines
    assert "instances=4  meets  worker.p99 = 334ms [285ms, 382ms] < 500ms  (2 runs)" in lines
    with capacity_progress(console, enabled=False) as progress:
        assert progress is None


def test_the_chart_shows_each_probe_the_bound_and_the_answer(answer: CapacityAnswer) -> None:
    charts = capacity_charts(answer)
    assert list(charts) == ["capacity-worker-p99"]  # named the same whatever the other objectives
    figure = charts["capacity-worker-p99"]
    assert figure_title(figure).startswith(f"test: worker.p99 against {KEY}")
    _key, ax = figure.axes
    assert ax.get_xlabel() == KEY
    assert ax.get_ylabel() == "worker: end-to-end p99 (ms)"  # the unit of the bound
    # 1 to 4 instances: within a factor 8; p99 from seconds down to 334ms: beyond it
    assert (ax.get_xscale(), ax.get_yscale()) == ("linear", "log")
    colours = [to_hex(container.lines[0].get_color()) for container in ax.containers]
    assert colours == [PALETTE[2].lower(), "#999999"]  # meeting, then undecided
    bound, vertical = ax.get_lines()[-2:]
    assert list(bound.get_ydata()) == [500, 500]
    assert list(vertical.get_xdata()) == [4.0, 4.0]
    assert [text.get_text() for text in ax.texts] == ["worker.p99 < 500ms", "4 instances"]


def test_objectives_on_several_figures_draw_a_chart_each(queueing_file: Path) -> None:
    found = capacity(queueing_file, KEY, "min", ["worker.p99 < 500ms", "lost == 0"], replications=2, max_replications=2)
    charts = capacity_charts(found)
    assert list(charts) == ["capacity-worker-p99", "capacity-worker-lost"]
    _key, ax = charts["capacity-worker-lost"].axes
    assert ax.get_ylabel() == "worker: lost"
    assert ax.get_yscale() == "linear"  # lost is 0 at some probes: a log axis would drop them
    ax.figure.canvas.draw()
    ticks = [label.get_text() for label in ax.get_xticklabels() if label.get_text()]
    assert ticks and all(float(tick.replace(",", "")).is_integer() for tick in ticks)


def test_a_log_axis_reads_in_plain_numbers_and_an_integer_key_in_whole_ones(answer: CapacityAnswer) -> None:
    probes = tuple(dataclasses.replace(probe, value=probe.value**3) for probe in answer.probes)
    (figure,) = capacity_charts(dataclasses.replace(answer, probes=probes, answer=64.0)).values()
    _key, ax = figure.axes
    figure.canvas.draw()
    assert (ax.get_xscale(), ax.get_yscale()) == ("log", "log")  # 1 to 64 instances, 334ms to 5.69s
    for axis in (ax.xaxis, ax.yaxis):
        labels = [tick.get_text() for tick in [*axis.get_ticklabels(), *axis.get_ticklabels(minor=True)]]
        assert all("$" not in label and "^" not in label for label in labels), labels
        sizes = {tick.get_fontsize() for tick in [*axis.get_ticklabels(), *axis.get_ticklabels(minor=True)]}
        assert len(sizes) == 1  # minor labels as large as the major ones
    xticks = [label.get_text() for label in [*ax.get_xticklabels(), *ax.get_xticklabels(minor=True)]]
    assert [tick for tick in xticks if tick] == ["1", "10", "100", "2", "3", "4", "6", "20", "30", "40", "60"]


def test_a_probe_at_0_keeps_a_linear_axis_where_it_shows(answer: CapacityAnswer) -> None:
    one, two, four, three = answer.probes
    check = four.checks[0]
    zero = dataclasses.replace(check, interval=dataclasses.replace(check.interval, mean=0.0, low=0.0, high=0.0))
    probes = (one, two, dataclasses.replace(four, checks=(zero,)), three)
    (figure,) = capacity_charts(dataclasses.replace(answer, probes=probes)).values()
    # 5.69s down to 347ms would read best on a log axis, but it has no 0
    assert figure.axes[1].get_yscale() == "linear"


def test_a_rate_key_reads_per_second_and_drain_s_reads_as_a_time(queueing_file: Path) -> None:
    drain = capacity(queueing_file, KEY, "min", ["drain_s < 5s"], replications=1, max_replications=1)
    (figure,) = capacity_charts(drain).values()
    assert figure.axes[1].get_ylabel() == "worker: drain time (s)"
    space = dataclasses.replace(drain.space, key="publishers.source.rate", integer=False)
    (figure,) = capacity_charts(dataclasses.replace(drain, space=space)).values()
    assert figure.axes[1].get_xlabel() == "publishers.source.rate (/s)"


def test_write_capacity_writes_the_json_the_page_and_the_chart(answer: CapacityAnswer, tmp_path: Path) -> None:
    text = capacity_json(answer)
    write_capacity(answer, tmp_path, text, charts=True)
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "capacity-worker-p99.png",
        "capacity-worker-p99.svg",
        "capacity.json",
        "capacity.md",
    ]
    assert (tmp_path / CAPACITY_FILE).read_text(encoding="utf-8") == text
    assert (tmp_path / "capacity-worker-p99.svg").read_text(encoding="utf-8").lstrip().startswith("<?xml")
    write_capacity(answer, tmp_path / "plain", text, charts=False)
    assert sorted(path.name for path in (tmp_path / "plain").iterdir()) == ["capacity.json", "capacity.md"]
