"""A run's report for a review board: report.md and a self-contained report.html; and compare.html.

Both are the views of :mod:`busim.report.views` laid out by Jinja2
templates (busim/report/templates), from a finished run or from a run's
folder, so ``busim report RUN_DIR`` draws them again without simulating.
They open with the verdict and the figures that matter, then the charts,
every table, and the configuration as run. The HTML embeds its charts as
SVG and loads nothing from the network.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

from markupsafe import Markup

from busim.errors import OutputError
from busim.report.charts import RunView, draw_charts, figure_title, save_figure
from busim.report.files import write_files
from busim.report.templating import render
from busim.report.views import comparison_views, run_views
from busim.results import Comparison, Result

MARKDOWN_FILE = "report.md"
HTML_FILE = "report.html"
COMPARE_HTML_FILE = "compare.html"


@dataclass(frozen=True)
class Chart:
    """A chart as a report shows it: its title, its PNG file beside the report, and its SVG markup."""

    title: str
    file: str
    svg: Markup


def report_markdown(run: Result, charts: list[Chart]) -> str:
    """report.md; every text escaped (:mod:`busim.report.markdown`): names, descriptions and values are the user's."""
    return render("report.md.j2", run=run_views(run), charts=charts)


def report_html(run: Result, charts: list[Chart]) -> str:
    """report.html, self-contained."""
    return render("report.html.j2", run=run_views(run), charts=charts)


def comparison_html(comparison: Comparison, charts: list[Chart]) -> str:
    """compare.html, self-contained: what each variant changes, their verdicts, the variants side by side."""
    return render("compare.html.j2", views=comparison_views(comparison), charts=charts)


def _inline(svg: str) -> str:
    """An SVG file's markup without its XML prologue and doctype, to sit inside HTML."""
    start = svg.find("<svg")
    return svg[start:] if start >= 0 else svg


def write_report(result: Result, folder: Path, charts: bool = True) -> list[Path]:
    """Draw the charts (unless ``charts`` is false) and write report.md and report.html into ``folder``.

    Raises:
        OutputError: the folder cannot be written.
    """
    written: list[Path] = []
    shown: list[Chart] = []
    try:
        if charts:
            for name, figure in draw_charts(RunView.of(result)).items():
                paths = save_figure(figure, folder, name)
                written += paths
                svg = (folder / f"{name}.svg").read_text(encoding="utf-8")
                shown.append(Chart(figure_title(figure), f"{name}.png", Markup(_inline(svg))))
    except OSError as error:
        raise OutputError(f"cannot write the report to {folder}: {error.strerror or error}") from None
    return written + write_files(
        folder, ((MARKDOWN_FILE, report_markdown(result, shown)), (HTML_FILE, report_html(result, shown)))
    )


def is_report_file(name: str) -> bool:
    """Whether a file of a run's or a comparison's folder is part of its report (report.md, report.html,
    compare.md, compare.html, a chart), which ``busim report`` writes anew."""
    from busim.report.charts import CHARTS, COMPARISON_CHARTS, FORMATS
    from busim.report.files import COMPARE_MARKDOWN

    charts = {f"{chart}.{suffix}" for chart in (*CHARTS, *COMPARISON_CHARTS) for suffix in FORMATS}
    return name in (MARKDOWN_FILE, HTML_FILE, COMPARE_MARKDOWN, COMPARE_HTML_FILE) or name in charts


def write_comparison_report(comparison: Comparison, folder: Path, charts: bool = True) -> list[Path]:
    """Draw the comparison charts (unless ``charts`` is false) and write compare.html into ``folder``.

    Raises:
        OutputError: the folder cannot be written.
    """
    from busim.report.charts import write_comparison_charts

    try:
        written = write_comparison_charts(comparison, folder) if charts else []
        shown = [
            Chart(
                figure_title_of(path), path.with_suffix(".png").name, Markup(_inline(path.read_text(encoding="utf-8")))
            )
            for path in written
            if path.suffix == ".svg"
        ]
        path = folder / COMPARE_HTML_FILE
        path.write_text(comparison_html(comparison, shown), encoding="utf-8")
    except OSError as error:
        raise OutputError(f"cannot write the comparison to {folder}: {error.strerror or error}") from None
    return [*written, path]


def figure_title_of(svg_path: Path) -> str:
    """The title an SVG chart carries in its metadata, else its file name."""
    text = svg_path.read_text(encoding="utf-8")
    start = text.find("<dc:title>")
    if start < 0:
        return svg_path.stem
    return html.unescape(text[start + len("<dc:title>") : text.find("</dc:title>", start)])
