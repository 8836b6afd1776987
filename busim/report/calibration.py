"""A calibration's report: a real run's figures beside replications of its scenario, as tables, pages and files.

The checks of :mod:`busim.analysis.calibration` become plain tables here,
once, for the console (:func:`busim.report.console.render_calibration`),
calibration.md and a self-contained calibration.html: per consumer, each
figure's simulated mean with where one simulated run falls, the real value
and the verdict; then what fitting the scenario to the run changed and the
figures after fitting. :func:`write_calibration` writes those pages,
calibration.json and the charts into the real run's folder.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from busim.analysis.calibration import Calibration, FigureCheck
from busim.analysis.intervals import CONFIDENCE, Interval
from busim.report.files import write_files
from busim.report.run_report import ShownChart, drawn_charts
from busim.report.tables import Cell, Column, Row, TableView, text_cell
from busim.report.templating import render
from busim.report.views import FIGURE_ROWS, count_text, intervaltext_cell
from busim.results import json_text
from busim.results.calibration import CalibrationRun, calibration_document
from busim.scenario.units import ABSENT, format_duration
from busim.words import count_of, counted

CALIBRATION_JSON = "calibration.json"
CALIBRATION_MARKDOWN = "calibration.md"
CALIBRATION_HTML = "calibration.html"

_COLUMNS = (Column("simulated mean [one run]"), Column("real"), Column("verdict", right=False))
_LATENCY_PARTS = {"end_to_end": "end-to-end", "processing": "processing"}
_STATISTICS = {"p50": "p50", "p90": "p90", "p99": "p99", "p999": "p99.9"}
_COUNT_LABELS = {path[0]: label for label, path, _, _ in FIGURE_ROWS if len(path) == 1}


@dataclass(frozen=True)
class CalibrationViews:
    """Everything a calibration shows, in the order its report reads it."""

    title: str  # "<scenario> on <driver>: how close is the simulation?"
    folder: str  # the real run's folder
    replications: str  # how many replications, on which seeds
    key: str  # what the columns show
    declared: tuple[TableView, ...]  # one per consumer: every figure against the scenario as declared
    declared_outside: (
        str  # how many figures lie outside where one simulated run falls, which, and which the fit explains
    )
    notes: TableView  # per key path of the fitted scenario, where its number came from
    after_fit: tuple[TableView, ...]  # one per consumer: its figures against the fitted scenario
    after_fit_outside: str


def figure_label(figure: str) -> str:
    """A figure as a table's row names it: ``latency_s.end_to_end.p999`` is ``end-to-end p99.9``,
    ``state.stock.abs_drift`` is ``stock drift``, ``dead_lettered`` is ``dead-lettered``."""
    if figure.startswith("state.") and figure.endswith(".abs_drift"):  # a counter's name may hold a dot
        return f"{figure.removeprefix('state.').removesuffix('.abs_drift')} drift"
    match figure.split("."):
        case ["latency_s", part, statistic]:
            return f"{_LATENCY_PARTS.get(part, part)} {_STATISTICS.get(statistic, statistic)}"
    return _COUNT_LABELS.get(figure, figure.replace("_", " "))


def verdict_cell(check: FigureCheck) -> Cell:
    """``within``; ``above (+12 %)`` or ``below (-30 %)``, the gap relative to the simulated mean (``above``
    alone where that mean is 0); ``not measured``."""
    verdict = check.verdict
    if verdict == "within":
        return Cell(verdict, verdict, "good")
    if verdict == "not measured":
        return Cell(verdict, verdict, "quiet")
    gap = check.gap
    return Cell(verdict, verdict, "bad", "" if gap is None else f" ({_percent(gap)})", "bad")


def _percent(gap: float) -> str:
    """A relative gap in percent, to whole percents unless smaller than one."""
    percent = gap * 100
    # A no-break space: a line of the console breaks between figures, never inside one.
    return f"{percent:+,.1f}\u00a0%" if abs(percent) < 1 else f"{percent:+,.0f}\u00a0%"


def simulated_cell(check: FigureCheck) -> Cell:
    """The simulated mean and, in brackets, where one simulated run falls (95 % of them)."""
    mean = check.simulated.mean
    if math.isnan(mean):
        return Cell(ABSENT)
    one_run = Interval(mean, check.one_run_low, check.one_run_high, check.simulated.replications)
    return Cell(intervaltext_cell(one_run, check.unit == "s"), mean)


def real_cell(check: FigureCheck) -> Cell:
    if check.real is None:
        return Cell(ABSENT)
    return Cell(format_duration(check.real) if check.unit == "s" else count_text(check.real), check.real)


def check_rows(checks: Sequence[FigureCheck]) -> tuple[Row, ...]:
    return tuple(
        Row(figure_label(check.figure), (simulated_cell(check), real_cell(check), verdict_cell(check)))
        for check in checks
    )


def _consumer_tables(calibration: Calibration) -> tuple[TableView, ...]:
    """One table per consumer of ``calibration``'s checks."""
    tables = []
    for consumer in calibration.curves:
        checks = [check for check in calibration.checks if check.consumer == consumer]
        if checks:
            tables.append(TableView(consumer, _COLUMNS, check_rows(checks), label="figure"))
    return tuple(tables)


def outside_text(checks: Sequence[FigureCheck], what: str = "figure") -> str:
    """How many of ``checks`` lie outside where one simulated run falls, naming them by consumer with their
    gap: ``2 of 17 figures lie outside where one simulated run falls: inventory: out of order (+60 %), ...``."""
    outside = [check for check in checks if check.verdict in ("above", "below")]
    if not outside:
        if not checks:
            return ""
        every = "All" if len(checks) > 1 else "The"
        return f"{every} {counted(len(checks), what)} {_lie(len(checks))} where one simulated run falls."
    by_consumer: dict[str, list[str]] = {}
    for check in outside:
        gap = verdict_cell(check).note or f" ({check.verdict})"
        by_consumer.setdefault(check.consumer, []).append(figure_label(check.figure) + gap)
    named = "; ".join(f"{consumer}: {', '.join(figures)}" for consumer, figures in by_consumer.items())
    where = f"outside where one simulated run falls: {named}."
    return f"{count_of(len(outside), len(checks), what)} {_lie(len(outside))} {where}"


def explained_text(declared: Sequence[FigureCheck], after_fit: Sequence[FigureCheck]) -> str:
    """Which figures outside before fitting lie within after it: the run's measured times explain them
    (``Fitted to the run's measured times, 2 of the 10 lie within: inventory: out of order, stock drift.``);
    or "" where none does."""
    fitted = {(check.consumer, check.figure): check.verdict for check in after_fit}
    outside = [check for check in declared if check.verdict in ("above", "below")]
    explained = [check for check in outside if fitted.get((check.consumer, check.figure)) == "within"]
    if not explained:
        return ""
    by_consumer: dict[str, list[str]] = {}
    for check in explained:
        by_consumer.setdefault(check.consumer, []).append(figure_label(check.figure))
    named = "; ".join(f"{consumer}: {', '.join(figures)}" for consumer, figures in by_consumer.items())
    if len(explained) < len(outside):
        which = f"{len(explained)} of the {len(outside)} {_lie(len(explained))}"
    else:
        which = "it lies" if len(outside) == 1 else f"all {len(outside)} lie"
    return f"Fitted to the run's measured times, {which} within: {named}."


def _lie(count: int) -> str:
    return "lies" if count == 1 else "lie"


def calibration_subject(run: CalibrationRun) -> str:
    """What was calibrated: ``<scenario> on <broker>`` (RabbitMQ, Redis Streams, NATS JetStream)."""
    driver = run.real.real.driver if run.real.real is not None else "a broker"
    return f"{run.real.scenario.name} on {driver}"


def calibration_views(run: CalibrationRun) -> CalibrationViews:
    """The tables and sentences of a calibration, built once for every view of it."""
    scenario = run.real.scenario
    replications = run.declared.replications
    notes = TableView(
        "Where each fitted number came from",
        (Column("where it came from", right=False),),
        tuple(Row(key, (text_cell(note),)) for key, note in run.fitted.notes.items()),
        label="key",
    )
    return CalibrationViews(
        title=f"{calibration_subject(run)}: how close is the simulation?",
        folder=str(run.folder),
        replications=(
            f"{counted(replications, 'replication')} of the scenario, publishing the real run's messages "
            f"(seed {scenario.seed}), their other draws on seeds spawned from it (calibration.json lists them)"
        ),
        key=(
            f"simulated: the mean of {counted(replications, 'replication')} [where {CONFIDENCE:.0%} of single "
            "runs fall]; verdict: where the real value lies against that range, and its gap to the mean"
        ),
        declared=_consumer_tables(run.declared),
        declared_outside=" ".join(
            text
            for text in (outside_text(run.declared.checks), explained_text(run.declared.checks, run.after_fit.checks))
            if text
        ),
        notes=notes,
        after_fit=_consumer_tables(run.after_fit),
        after_fit_outside=outside_text(run.after_fit.checks),
    )


def calibration_markdown(run: CalibrationRun, charts: Sequence[ShownChart] = ()) -> str:
    """calibration.md; every text escaped (:mod:`busim.report.markdown`)."""
    return render("calibration.md.j2", views=calibration_views(run), charts=charts)


def calibration_html(run: CalibrationRun, charts: Sequence[ShownChart] = ()) -> str:
    """calibration.html, self-contained: its charts inline as SVG."""
    return render("calibration.html.j2", views=calibration_views(run), charts=charts)


def is_calibration_file(name: str) -> bool:
    """Whether a file of a real run's folder is one :func:`write_calibration` writes (so that calibrating the run
    again replaces it)."""
    from busim.report.calibration_charts import CALIBRATION_CHARTS
    from busim.report.charts import FORMATS

    charts = {f"{chart}.{suffix}" for chart in CALIBRATION_CHARTS for suffix in FORMATS}
    return name in (CALIBRATION_JSON, CALIBRATION_MARKDOWN, CALIBRATION_HTML) or name in charts


def write_calibration(run: CalibrationRun, folder: Path, charts: bool = True) -> list[Path]:
    """Draw the calibration's charts (unless ``charts`` is false) and write them, calibration.json,
    calibration.md and calibration.html into ``folder`` (the real run's); return the paths written.

    Raises:
        OutputError: the folder cannot be written.
    """
    from busim.report.calibration_charts import write_calibration_charts

    written, shown = drawn_charts(
        lambda: write_calibration_charts(run, folder) if charts else [], folder, "the calibration"
    )
    pages = (
        (CALIBRATION_JSON, json_text(calibration_document(run))),
        (CALIBRATION_MARKDOWN, calibration_markdown(run, shown)),
        (CALIBRATION_HTML, calibration_html(run, shown)),
    )
    return written + write_files(folder, pages)
