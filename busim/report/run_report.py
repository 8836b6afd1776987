"""A run's report for a review board: report.md and a self-contained report.html; and a comparison's,
compare.md and compare.html.

Both are the views of :mod:`busim.report.views` laid out by Jinja2
templates (busim/report/templates), from a finished run or from a run's
folder, so ``busim report RUN_DIR`` draws them again without simulating.
They open with the verdict and the figures that matter, then the charts,
every table, and the configuration as run. The HTML embeds its charts as
SVG and loads nothing from the network.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from markupsafe import Markup

from busim.errors import OutputError
from busim.report.charts import Chart, write_charts
from busim.report.files import write_files
from busim.report.templating import render
from busim.report.views import comparison_views, run_views
from busim.results import Comparison, Result

MARKDOWN_FILE = "report.md"
HTML_FILE = "report.html"
COMPARE_MARKDOWN_FILE = "compare.md"
COMPARE_HTML_FILE = "compare.html"


@dataclass(frozen=True)
class ShownChart:
    """A chart as a report shows it: its title, its PNG file beside the report, and its SVG markup."""

    title: str
    file: str
    svg: Markup

    @classmethod
    def of(cls, chart: Chart) -> ShownChart:
        """A chart as its writer returned it, its title included."""
        return cls(chart.title, chart.path("png").name, Markup(_inline(chart.path("svg").read_text(encoding="utf-8"))))


def report_markdown(run: Result, charts: list[ShownChart]) -> str:
    """report.md; every text escaped (:mod:`busim.report.markdown`): names, descriptions and values are the user's."""
    return render("report.md.j2", run=run_views(run), charts=charts)


def report_html(run: Result, charts: list[ShownChart]) -> str:
    """report.html, self-contained."""
    return render("report.html.j2", run=run_views(run), charts=charts)


def comparison_questions(comparison: Comparison) -> tuple[tuple[str, str], ...]:
    """What a comparison asks, as ``(variant, description)``: the scenario's description, under no name, when
    the variants vary one file (or their files ask the same); each file's, under its variant's name, when they
    come from several."""
    outcomes = list(zip(comparison.names, comparison.outcomes))
    if len({outcome.scenario.description for _name, outcome in outcomes}) == 1:
        return (("", comparison.outcomes[0].scenario.description),)
    return tuple((name, outcome.scenario.description) for name, outcome in outcomes)


def comparison_markdown(comparison: Comparison, charts: list[ShownChart] | tuple[()] = ()) -> str:
    """compare.md: the question, what each variant changes, their verdicts, the variants side by side and the
    charts; names escaped, as the user wrote them."""
    return _comparison_page("compare.md.j2", comparison, charts)


def comparison_html(comparison: Comparison, charts: list[ShownChart] | tuple[()] = ()) -> str:
    """compare.html, self-contained, laid out as compare.md."""
    return _comparison_page("compare.html.j2", comparison, charts)


def _comparison_page(template: str, comparison: Comparison, charts: list[ShownChart] | tuple[()]) -> str:
    questions = comparison_questions(comparison)
    return render(template, views=comparison_views(comparison), questions=questions, charts=charts)


def _inline(svg: str) -> str:
    """An SVG file's markup without its XML prologue and doctype, to sit inside HTML."""
    start = svg.find("<svg")
    return svg[start:] if start >= 0 else svg


def drawn_charts(draw: Callable[[], list[Chart]], folder: Path, what: str) -> tuple[list[Path], list[ShownChart]]:
    """Draw charts into ``folder`` with ``draw``: their files, and each chart as a page shows it.

    Raises:
        OutputError: the folder cannot be written (``what`` names what was being written: "the report").
    """
    try:
        drawn = draw()
        shown = [ShownChart.of(chart) for chart in drawn]
    except OSError as error:
        raise OutputError(f"cannot write {what} to {folder}: {error.strerror or error}") from None
    return [path for chart in drawn for path in chart.paths], shown


def write_pages(
    folder: Path,
    draw: Callable[[], list[Chart]],
    what: str,
    pages: Callable[[list[ShownChart]], tuple[tuple[str, str], ...]],
) -> list[Path]:
    """Draw charts into ``folder`` with ``draw``, then write the ``(name, text)`` files that ``pages`` makes
    of them (a page shows its charts); return every path written.

    Raises:
        OutputError: the folder cannot be written (``what`` names what was being written: "the sweep").
    """
    written, shown = drawn_charts(draw, folder, what)
    return written + write_files(folder, pages(shown))


def write_report(result: Result, folder: Path, charts: bool = True) -> list[Path]:
    """Draw the charts (unless ``charts`` is false) and write report.md and report.html into ``folder``.

    Raises:
        OutputError: the folder cannot be written.
    """
    written, shown = drawn_charts(lambda: write_charts(result, folder) if charts else [], folder, "the report")
    return written + write_files(
        folder, ((MARKDOWN_FILE, report_markdown(result, shown)), (HTML_FILE, report_html(result, shown)))
    )


def is_report_file(name: str) -> bool:
    """Whether a file of a run's or a comparison's folder is part of its report (report.md, report.html,
    compare.md, compare.html, a chart), which ``busim report`` writes anew."""
    from busim.report.charts import CHARTS, COMPARISON_CHARTS, FORMATS, LIFECYCLE_CHARTS

    charts = {f"{chart}.{suffix}" for chart in (*CHARTS, *LIFECYCLE_CHARTS, *COMPARISON_CHARTS) for suffix in FORMATS}
    return name in (MARKDOWN_FILE, HTML_FILE, COMPARE_MARKDOWN_FILE, COMPARE_HTML_FILE) or name in charts


def write_comparison_report(comparison: Comparison, folder: Path, charts: bool = True) -> list[Path]:
    """Draw the comparison charts (unless ``charts`` is false) and write compare.md and compare.html into ``folder``.

    Raises:
        OutputError: the folder cannot be written.
    """
    from busim.report.charts import write_comparison_charts

    written, shown = drawn_charts(
        lambda: write_comparison_charts(comparison, folder) if charts else [], folder, "the comparison"
    )
    pages = (
        (COMPARE_MARKDOWN_FILE, comparison_markdown(comparison, shown)),
        (COMPARE_HTML_FILE, comparison_html(comparison, shown)),
    )
    return written + write_files(folder, pages)
