"""A calibration's report: the console tables, calibration.md, calibration.html, calibration.json and the charts.

A real run needs a broker; here a simulated run stands in for it (the
renderer reads a Summary, whoever made it), and a known case is built by
hand: checks whose verdicts and gaps are worked out below.
"""

from __future__ import annotations

import dataclasses
import json
import math
import struct
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

import busim
from busim.analysis.calibration import Calibration, FigureCheck, LatencyCurves, calibrate
from busim.analysis.fitting import Fitted
from busim.analysis.intervals import Interval
from busim.analysis.real import RealFigures, generator_figures
from busim.report.calibration import (
    calibration_html,
    calibration_markdown,
    calibration_views,
    explained_text,
    is_calibration_file,
    write_calibration,
)
from busim.report.calibration_charts import calibration_counts, calibration_latency_cdf
from busim.report.console import render_calibration
from busim.results import Result
from busim.results.calibration import CalibrationRun
from tests.conftest import consumer, scenario

REPLICATIONS = 4
NOTES = {
    "broker.latency": "measured: publish to receipt of the 812 messages that found their group idle",
    "consumers.worker.processing_time": "kept: the real cost, 5.1 ms a message, did not exceed the declared 6 ms",
}


def _run(real: Result, declared: Calibration, after_fit: Calibration, notes: dict[str, str] = NOTES) -> CalibrationRun:
    return CalibrationRun(
        Path("runs/real-run"), real, (11, 12, 13, 14), declared, Fitted(real.scenario, notes), after_fit
    )


def _on_rabbitmq(result: Result) -> Result:
    """``result`` as if run against RabbitMQ."""
    nothing = np.zeros(0)
    figures = RealFigures(
        broker="amqp://localhost",
        driver="RabbitMQ",
        run_id="test",
        partial=False,
        stores={},
        generator=generator_figures(nothing, nothing, nothing.astype(bool), 0.0),
        latency_from_send_s={},
    )
    return dataclasses.replace(result, real=figures)


@pytest.fixture(scope="module")
def simulated() -> CalibrationRun:
    """A run of 200 messages, with crashes and a counter, beside 4 replications of it."""
    worker = consumer(
        processing_time="5ms",
        crash={"probability": 0.1, "restart_after": "0s"},
        state={"done": {}},
        effects=[{"counter": "done", "key": "item", "add": 1}],
    )
    small = scenario([worker], duration=20)
    real = _on_rabbitmq(busim.simulate(small, seed=99))
    replications = [busim.simulate(small, seed=seed).summary for seed in range(1, REPLICATIONS + 1)]
    checks = calibrate(real.summary, replications)
    return _run(real, checks, checks)


def _check(figure: str, mean: float, low: float, high: float, real: float | None, consumer: str = "inventory"):
    unit = "s" if figure.startswith("latency_s.") else "count"
    # The confidence interval of the mean is not shown; only the one-run range is.
    return FigureCheck(consumer, figure, unit, Interval(mean, mean, mean, 5), low, high, real)


CURVES = LatencyCurves(((0.0, 0.01), (50.0, 0.05), (100.0, 0.2)), ((0.0, 0.012), (50.0, 0.06), (100.0, 0.15)))
KNOWN = Calibration(
    5,
    (
        _check("delivered", 100.4, 98.2, 102.6, 101.0),  # inside the range
        _check("redelivered", 10.0, 4.0, 16.0, 20.0),  # (20 - 10) / 10 = +100 %
        _check("lost", 0.0, 0.0, 0.0, 3.0),  # above a mean of 0: no percentage
        _check("duplicate_effects", 400.0, 399.0, 401.0, 402.0),  # 2 / 400 = +0.5 %
        _check("state.stock.abs_drift", 2.5, 0.0, 6.1, 0.0),
        _check("latency_s.end_to_end.p99", 0.1, 0.08, 0.12, 0.07),  # (0.07 - 0.1) / 0.1 = -30 %
        _check("latency_s.processing.p999", math.nan, math.nan, math.nan, None),
    ),
    {"inventory": CURVES},
)
AFTER_FIT = Calibration(
    5,
    (
        _check("redelivered", 12.0, 5.0, 19.0, 20.0),
        _check("latency_s.end_to_end.p99", 0.075, 0.06, 0.09, 0.07),
        _check("latency_s.processing.p999", 0.0125, 0.011, 0.014, 0.0161),  # +28.8 %, shown +29 %
    ),
    {"inventory": CURVES},
)
KNOWN_ROWS = [
    ("delivered", "100.4 [98.2, 102.6]", "101", "within"),
    ("redelivered", "10.0 [4.0, 16.0]", "20", "above (+100\u00a0%)"),
    ("lost", "0", "3", "above"),
    ("duplicate effects", "400.0 [399.0, 401.0]", "402", "above (+0.5\u00a0%)"),
    ("stock drift", "2.5 [0.0, 6.1]", "0", "within"),
    ("end-to-end p99", "100ms [80ms, 120ms]", "70ms", "below (-30\u00a0%)"),
    ("processing p99.9", "—", "—", "not measured"),
]
KNOWN_AFTER_FIT_ROWS = [
    ("redelivered", "12.0 [5.0, 19.0]", "20", "above (+67\u00a0%)"),
    ("end-to-end p99", "75ms [60ms, 90ms]", "70ms", "within"),
    ("processing p99.9", "12.5ms [11ms, 14ms]", "16.1ms", "above (+29\u00a0%)"),
]


@pytest.fixture(scope="module")
def known(simulated: CalibrationRun) -> CalibrationRun:
    return _run(simulated.real, KNOWN, AFTER_FIT)


def _rows(view) -> list[tuple[str, ...]]:
    return [(row.label, *(cell.full for cell in row.cells)) for row in view.rows]


def test_known_case_rows_verdicts_and_gaps(known):
    views = calibration_views(known)
    (declared,) = views.declared
    (after_fit,) = views.after_fit
    assert declared.title == "inventory"
    assert _rows(declared) == KNOWN_ROWS
    assert _rows(after_fit) == KNOWN_AFTER_FIT_ROWS
    assert views.declared_outside == (
        "4 of 7 figures lie outside where one simulated run falls: inventory: redelivered (+100\u00a0%), "
        "lost (above), duplicate effects (+0.5\u00a0%), end-to-end p99 (-30\u00a0%). Fitted to the run's measured "
        "times, 1 of the 4 lies within: inventory: end-to-end p99."
    )
    assert views.after_fit_outside == (
        "2 of 3 figures lie outside where one simulated run falls: inventory: redelivered (+67\u00a0%), "
        "processing p99.9 (+29\u00a0%)."
    )
    assert views.title == "test on RabbitMQ: how close is the simulation?"
    assert [(row.label, row.cells[0].text) for row in views.notes.rows] == list(NOTES.items())


def test_nothing_outside_says_so(simulated):
    checks = (_check("delivered", 100.4, 98.2, 102.6, 101.0),)
    views = calibration_views(_run(simulated.real, Calibration(5, checks, {"inventory": CURVES}), AFTER_FIT))
    assert views.declared_outside == "The 1 figure lies where one simulated run falls."
    assert views.after_fit_outside.startswith("2 of 3 figures lie outside")


def _console_text(run: CalibrationRun, width: int = 80) -> str:
    console = Console(width=width, record=True, color_system=None, file=open("/dev/null", "w"))  # noqa: SIM115
    render_calibration(console, run)
    return console.export_text()


def test_console_fits_80_columns_without_cutting_a_cell(known):
    text = _console_text(known)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "…" not in text
    # Every row on one line, its cells whole and in order.
    for rows in (KNOWN_ROWS, KNOWN_AFTER_FIT_ROWS):
        for row in rows:
            assert any(_in_order(line, row) for line in lines), row
    assert "After fitting the scenario to the run" in text
    assert "4 of 7 figures lie outside" in text


def _in_order(line: str, cells: tuple[str, ...]) -> bool:
    position = 0
    for cell in cells:
        found = line.find(cell, position)
        if found < 0:
            return False
        position = found + len(cell)
    return line.split()[0] == cells[0].split()[0]


def test_console_fits_80_columns_for_a_simulated_stand_in(simulated):
    lines = _console_text(simulated).splitlines()
    assert max(len(line) for line in lines) <= 80
    rows = _rows(calibration_views(simulated).declared[0])
    assert len(rows) == 17  # 8 counts, 1 drift, 8 latency figures
    for row in rows:
        assert any(_in_order(line, row) for line in lines), row


def test_pages_hold_every_figure_and_note(known):
    markdown = calibration_markdown(known)
    html = calibration_html(known)
    assert markdown.startswith("# test on RabbitMQ: how close is the simulation?\n")
    assert "<h1>test on RabbitMQ: how close is the simulation?</h1>" in html
    assert "runs/real-run" in markdown and "runs/real-run" in html
    assert "5 replications" in markdown and "5 replications" in html
    for label, simulated, real, verdict in KNOWN_ROWS:
        # Markdown escapes the bracket that would open a link,
        # and a Markdown cell is on one line anyway: its no-break spaces are plain ones.
        plain = verdict.replace("\u00a0", " ")
        assert f"| {label} | {simulated.replace('[', chr(92) + '[')} | {real} | {plain} |" in markdown
        assert f'<th scope="row">{label}</th>' in html
    assert "| end-to-end p99 | 75ms \\[60ms, 90ms] | 70ms | within |" in markdown
    for key, note in NOTES.items():
        assert f"| {key} | {note} |" in markdown
        assert f'<th scope="row">{key}</th><td>{note}</td>' in html
    assert '<td class="bad">above<span class="note-bad"> (+100\u00a0%)</span></td>' in html


def test_names_and_notes_are_escaped(simulated):
    odd = "<script>alert(1)</script>|*x*.y"
    checks = (_check(f"state.{odd}.abs_drift", 1.0, 0.0, 2.0, 5.0, consumer="_inv_:fire:"),)
    calibration = Calibration(5, checks, {"_inv_:fire:": CURVES})
    run = _run(simulated.real, calibration, calibration, {"broker.latency": f"measured: {odd}"})
    html = calibration_html(run)
    markdown = calibration_markdown(run)
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;|*x*.y drift" in html
    assert "measured: &lt;script&gt;" in html
    assert "<script>" not in markdown.replace("\\<script>", "")
    assert "\\<script>alert(1)\\</script>\\|\\*x\\*.y drift" in markdown
    assert "### \\_inv\\_:fire:" in markdown
    text = _console_text(run)
    assert "_inv_:fire:" in text and "🔥" not in text  # Rich shows the name, not an emoji


def _png_size(path: Path) -> tuple[int, int]:
    with path.open("rb") as file:
        header = file.read(24)
    return struct.unpack(">II", header[16:24])


def test_write_calibration_writes_pages_json_and_charts(simulated, tmp_path):
    written = write_calibration(simulated, tmp_path)
    names = sorted(path.name for path in written)
    charts = [
        f"{chart}.{suffix}" for chart in ("calibration-counts", "calibration-latency-cdf") for suffix in ["png", "svg"]
    ]
    assert names == [*charts, "calibration.html", "calibration.json", "calibration.md"]
    assert all(path.parent == tmp_path and path.stat().st_size > 0 for path in written)
    assert _png_size(tmp_path / "calibration-latency-cdf.png") == (1280, 720)
    assert _png_size(tmp_path / "calibration-counts.png") == (1280, 720)
    html = (tmp_path / "calibration.html").read_text(encoding="utf-8")
    assert html.count("<svg") == 2 and "<?xml" not in html
    assert "<figcaption>test on RabbitMQ: end-to-end latency, real and simulated" in html
    assert "<figcaption>test on RabbitMQ: counts, real and simulated" in html
    assert "src=" not in html and "<link" not in html  # loads nothing
    markdown = (tmp_path / "calibration.md").read_text(encoding="utf-8")
    assert "(calibration-latency-cdf.png)" in markdown and "(calibration-counts.png)" in markdown
    document = json.loads((tmp_path / "calibration.json").read_text(encoding="utf-8"))
    assert document["schema"] == "busim.calibration/1"
    assert document["replications"] == REPLICATIONS
    assert len(document["declared"]["checks"]) == 17
    assert document["fitted"]["notes"] == NOTES
    assert all(is_calibration_file(path.name) for path in written)
    assert not is_calibration_file("report.html") and not is_calibration_file("results.json")


def test_without_charts_only_the_pages_and_json(known, tmp_path):
    written = write_calibration(known, tmp_path, charts=False)
    assert [path.name for path in written] == ["calibration.json", "calibration.md", "calibration.html"]
    assert "<svg" not in (tmp_path / "calibration.html").read_text(encoding="utf-8")


def test_counts_chart_is_left_out_when_every_count_is_0(simulated):
    checks = (_check("lost", 0.0, 0.0, 0.0, 0.0), _check("latency_s.end_to_end.p99", 0.1, 0.08, 0.12, 0.07))
    calibration = Calibration(5, checks, {"inventory": CURVES})
    assert calibration_counts(_run(simulated.real, calibration, calibration)) is None


def test_latency_chart_names_the_curves_that_coincide(known, simulated):
    # KNOWN and AFTER_FIT share their curves: the simulation as fitted draws over the simulation as declared.
    (panel,) = [ax for ax in calibration_latency_cdf(known).axes if ax.get_title()]
    assert panel.get_title() == "inventory\nsimulated, declared = simulated, fitted"
    alike = LatencyCurves(CURVES.real, CURVES.real)
    calibration = Calibration(5, KNOWN.checks, {"inventory": alike})
    figure = calibration_latency_cdf(_run(simulated.real, calibration, calibration))
    (panel,) = [ax for ax in figure.axes if ax.get_title()]
    assert panel.get_title() == "inventory: real and simulated the same"
    assert figure.get_label() == (
        "test on RabbitMQ: end-to-end latency, real and simulated — "
        "simulated: at each percentile, the mean of 5 replications"
    )


def test_the_figures_a_fit_brings_within_are_named_as_explained_by_the_run_s_times():
    off = [_check("redelivered", 10.0, 4.0, 16.0, 20.0), _check("lost", 0.0, 0.0, 0.0, 3.0)]
    fixed = [_check("redelivered", 19.0, 14.0, 24.0, 20.0), _check("lost", 2.5, 0.0, 6.0, 3.0)]
    assert (
        explained_text(off, fixed)
        == "Fitted to the run's measured times, all 2 lie within: inventory: redelivered, lost."
    )
    assert explained_text(off, [fixed[0], off[1]]) == (
        "Fitted to the run's measured times, 1 of the 2 lies within: inventory: redelivered."
    )
    assert (
        explained_text(off[:1], fixed[:1])
        == "Fitted to the run's measured times, it lies within: inventory: redelivered."
    )
    assert explained_text(off, off) == ""
    assert explained_text(fixed, fixed) == ""  # nothing was outside
