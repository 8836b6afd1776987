"""One set of views: the console, report.md and report.html (and compare.md and compare.html) show the same
labels and cells, in the order that matters, and fit a terminal of 80 columns without cutting a figure."""

from __future__ import annotations

import importlib.resources
import io
import re
import tomllib
from html.parser import HTMLParser

import pytest
from markdown_it import MarkdownIt
from rich.console import Console

import busim
from busim.report.console import render_comparison, render_result
from busim.report.run_report import comparison_html, comparison_markdown, report_html, report_markdown
from busim.report.views import TableView, comparison_views, run_views
from busim.scenario.variants import load_variants
from tests.conftest import ROOT, SCENARIOS, VARIANTS_COMPARED, eight_presets_compared, simulated, variants_compared

pytestmark = VARIANTS_COMPARED  # one worker: the runs the module shares run once


class Tables(HTMLParser):
    """Every table of an HTML page: its rows, each a list of its cells' text (headers included)."""

    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: list[list[list[str]]] = []
        self.aligned: list[list[bool]] = []  # per table, whether each td is right-aligned
        self._cell: list[str] | None = None
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
            self.aligned.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("th", "td"):
            self._cell = [""]
            if tag == "td":
                self.aligned[-1].append("num" in (dict(attrs).get("class") or "").split())

    def handle_endtag(self, tag):
        if tag in ("th", "td") and self._cell is not None:
            self.tables[-1][-1].append(self._cell[0].strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell[0] += data


def expected_rows(view: TableView) -> list[list[str]]:
    """A view's table as every renderer must show it: the header, then each row's label, cells and why."""
    header = [view.label, *(column.header for column in view.columns)] + (["why"] if view.why else [])
    rows = [[row.label, *(cell.full for cell in row.cells)] + ([row.why] if view.why else []) for row in view.rows]
    return [header, *rows]


def markdown_tables(markdown: str) -> list[list[list[str]]]:
    tables = Tables(MarkdownIt("commonmark").enable("table").render(markdown)).tables
    return [[[cell.removeprefix("↳ ") for cell in row] for row in table] for table in tables]


def console_lines(render, *arguments) -> list[list[str]]:
    """What the console prints at 250 columns, each line split into its columns (2 spaces or more apart)."""
    output = io.StringIO()
    render(Console(file=output, width=250, color_system=None), *arguments)
    return [re.split(r"\s{2,}", line.strip()) for line in output.getvalue().splitlines()]


@pytest.fixture(scope="module")
def order_pipeline():
    return simulated("order-pipeline.yaml")


def test_the_console_and_both_reports_show_the_same_labels_and_cells(order_pipeline):
    views = run_views(order_pipeline)
    facts = order_pipeline
    results = [*views.tables, *views.configuration]
    markdown = markdown_tables(report_markdown(facts, []))
    html = Tables(report_html(facts, [])).tables
    assert markdown == html == [expected_rows(view) for view in results]
    # The console shows every results table (not the configuration, nor the summary at a glance) row by row.
    printed = console_lines(render_result, order_pipeline)
    for view in views.tables[1:]:
        for row in expected_rows(view):
            assert [cell for cell in row if cell] in printed, row


def test_a_comparison_shows_the_same_labels_and_cells_in_every_format():
    variants = load_variants([SCENARIOS / "flash-sale.yaml"], ["broker.preset=rabbitmq,kafka"], ["duration=100s"])
    comparison = busim.compare([(variant.name, variant.loaded) for variant in variants])
    views = comparison_views(comparison)
    tables = [views.variants, *(view for _, view in views.consumers)]
    expected = [expected_rows(view) for view in tables]
    verdicts = [["variant", "verdict"], *([name, cell.text] for name, cell in views.verdicts)]
    html = Tables(comparison_html(comparison, [])).tables
    markdown = markdown_tables(comparison_markdown(comparison))
    assert markdown == html == [expected[0], verdicts, *expected[1:]]
    printed = console_lines(render_comparison, comparison)
    for row in expected[1]:
        assert [cell for cell in row if cell] in printed, row
    # Every figure and its change align right, as figures do; the labels are headers of their rows.
    page = Tables(comparison_html(comparison, []))
    assert page.aligned[2] and all(page.aligned[2])


def test_the_key_rows_read_the_same_everywhere(order_pipeline):
    rows = {row.label: row for row in run_views(order_pipeline).consumers.rows}
    busiest = rows["busiest instance"]
    assert [cell.text for cell in busiest.cells] == ["34%", "50%", "50%"]
    assert busiest.why == (
        "inventory: 33% would be an even share; payment: 50% would be an even share; "
        "shipping: 50% would be an even share"
    )
    emitted = rows["emitted"]
    assert [cell.text for cell in emitted.cells] == ["45,514", "17,721", "—"]
    assert emitted.why == "inventory: 17,721 StockReserved, 27,793 OutOfStock; payment: 17,721 PaymentCaptured"
    assert [cell.bad for cell in rows["duplicate effects"].cells] == [True, True, True]
    facts = order_pipeline
    markdown = report_markdown(facts, [])
    assert "| busiest instance | 34% | 50% | 50% | " + busiest.why + " |" in markdown
    assert "| emitted | 45,514 | 17,721 | — | " + emitted.why + " |" in markdown
    assert (
        "| inventory > payment > shipping | 17,702 | 19 | 43.9ms | 2.31s | 3.39s |\n"
        "| ↳ OrderPlaced > inventory | 45,475 | 0 | 3.98ms | 2.36s | 3.34s |\n"
    ) in markdown
    assert "\n\ninventory > payment > shipping: 17,702 of 45,475 OrderPlaced messages reached shipping" in markdown
    html = report_html(facts, [])
    assert (
        '<tr><th scope="row">duplicate effects</th><td class="num bad">19</td><td class="num bad">19</td>'
        '<td class="num bad">19</td><td class="why">inventory: 19 crash before ack; payment: 19 upstream duplicate; '
        "shipping: 19 upstream duplicate</td></tr>"
    ) in html


def test_report_html_opens_with_the_verdict_then_the_charts_then_the_configuration(order_pipeline):
    from markupsafe import Markup

    from busim.report.run_report import ShownChart

    chart = ShownChart("order-pipeline: a chart", "chart.png", Markup("<svg></svg>"))
    html = report_html(order_pipeline, [chart])
    order = ['<h2 id="verdict">', '<h2 id="at-a-glance">', '<h2 id="charts">', '<h2 id="results">']
    order += ['<h2 id="configuration">']
    assert [html.index(heading) for heading in order] == sorted(html.index(heading) for heading in order)
    verdict = html.split('<h2 id="verdict">Verdict</h2>\n', 1)[1].split("<h2", 1)[0]
    assert verdict.startswith(
        '<p class="verdict bad">Inconsistent with exactly-once processing, and invariants fail:</p>\n'
        '<ul class="failures">\n<li>inventory: 19 duplicate effects</li>\n'
    )
    assert "<li>charge-once: payment duplicate effects &lt;= 0 (measured 19)</li>" in verdict
    assert "<figure><svg></svg><figcaption>order-pipeline: a chart</figcaption></figure>" in html


SCENARIO_FILES = sorted(SCENARIOS.glob("*.yaml"))
UNSET = re.compile(r"\b(None|null|nan|NaN)\b")


@pytest.mark.parametrize("path", SCENARIO_FILES, ids=[path.stem for path in SCENARIO_FILES])
def test_no_report_shows_null_or_none(path):
    facts = simulated(path.name)
    for text in (report_markdown(facts, []), report_html(facts, [])):
        assert not UNSET.findall(text)
    # Durations in the units a scenario states them in, never a bare number of seconds.
    assert not re.search(r"(timeout|_after|interval|duration) \| [0-9.]+ \|", report_markdown(facts, []))


def assert_no_null(comparison) -> None:
    for text in (comparison_markdown(comparison), comparison_html(comparison, [])):
        assert not UNSET.findall(text)


def test_no_comparison_report_shows_null_or_none():
    # The other scenarios with variants are checked at 80 columns below.
    assert_no_null(variants_compared("event-sourced-recovery.yaml"))


# ---------------------------------------------------------------- 80 columns, as in CI logs and pipes
def printed_at_80(comparison) -> str:
    output = io.StringIO()
    render_comparison(Console(file=output, width=80, color_system=None), comparison)
    return output.getvalue()


def assert_whole(printed: str, names: tuple[str, ...]) -> None:
    """No cell cut short and every variant's name on one line, in its table and in its verdict."""
    assert "…" not in printed
    lines = printed.splitlines()
    assert max(len(line.rstrip()) for line in lines) <= 80
    for name in names:
        assert sum(line.strip().split("  ")[0] == name for line in lines) >= 2, name


@pytest.mark.parametrize("file", ["order-pipeline.yaml", "broker-tradeoffs.yaml"])
def test_a_comparison_fits_80_columns_without_cutting_a_figure_or_a_name(file):
    comparison = variants_compared(file)
    assert_whole(printed_at_80(comparison), comparison.names)
    assert_no_null(comparison)


def test_eight_values_of_vary_fit_80_columns():
    comparison = eight_presets_compared()
    printed = printed_at_80(comparison)
    assert_whole(printed, comparison.names)
    # What does not fit goes to a continued table, and the short headings are explained.
    assert "inventory, continued" in printed and "stuck pending" in printed
    assert "\ndup. effects: duplicate effects; wrong rej.: wrongly rejected\n" in printed


def test_a_run_of_three_consumers_fits_80_columns_one_table_per_consumer(order_pipeline):
    output = io.StringIO()
    render_result(Console(file=output, width=80, color_system=None), order_pipeline)
    printed = output.getvalue()
    assert "…" not in printed
    titles = [line.strip() for line in printed.splitlines() if line.startswith("Consumers")]
    assert titles == ["Consumers: inventory", "Consumers: payment", "Consumers: shipping"]
    assert "  busiest instance           50%   50% would be an even share" in [
        line.rstrip() for line in printed.splitlines()
    ]


def test_long_consumer_names_fold_rather_than_cut_a_figure_or_a_heading():
    from tests.conftest import consumer, scenario

    counted = {"state": {"stock": {}}, "effects": [{"counter": "stock", "key": "item", "add": 1}]}
    names = ("inventory-reservations-service", "payments-and-refunds-gateway", "shipping-labels-printer")
    run = busim.simulate(scenario(consumers=[consumer(name=name, **counted) for name in names]))
    output = io.StringIO()
    render_result(Console(file=output, width=80, color_system=None), run)
    lines = [line.rstrip() for line in output.getvalue().splitlines()]
    assert "…" not in output.getvalue() and max(len(line) for line in lines) <= 80
    # The names whole; the headings wrap at their words to make room.
    assert "  consumer                         counter   expected   actual     off   drift" in lines
    assert "  inventory-reservations-service   stock          100      100       0       0" in lines
    # The latency's figures beside names this long go on in a continued table, none dropped.
    headings = [line.split() for line in lines if line.split() == ["max"] or line.split()[:1] == ["count"]]
    assert headings == [["count", "mean", "p50", "p90", "p99", "p99.9"], ["max"]]


# ---------------------------------------------------------------- the templates ship with the package
def test_the_templates_are_package_data_a_non_editable_install_includes():
    templates = importlib.resources.files("busim.report") / "templates"
    names = sorted(entry.name for entry in templates.iterdir() if entry.name.endswith(".j2"))
    assert {"report.md.j2", "report.html.j2", "compare.md.j2", "compare.html.j2"} <= set(names)
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    patterns = setuptools["package-data"]["busim.report"]
    shipped = {path.name for pattern in patterns for path in (ROOT / "busim" / "report").glob(pattern)}
    assert shipped == set(names)
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert "jinja2>=3.1" in dependencies


@pytest.mark.parametrize(
    ("seconds", "written"),
    [(1800, "30min"), (7200, "2h"), (90, "90s"), (1.5, "1.5s"), (0.25, "250ms"), (0.0005, "500µs"), (0, "0s")],
)
def test_a_duration_setting_reads_as_a_scenario_would_state_it(seconds, written):
    from busim.report.settings import format_setting_duration
    from busim.scenario.units import parse_duration

    assert format_setting_duration(seconds) == written
    assert parse_duration(written) == pytest.approx(seconds)  # and a scenario reads it back


def test_settings_left_unset_read_as_a_dash_and_empty_ones_as_none():
    from busim.report.settings import configuration
    from tests.conftest import scenario

    tables = {view.title: {row.label: row.cells[0].text for row in view.rows} for view in configuration(scenario())}
    assert tables["Consumer: worker"]["crash"] == "—"
    assert tables["Consumer: worker"]["emits"] == "none"
    assert tables["Consumer: worker"]["state"] == "none"
    assert tables["Publisher: source"]["rate"] == "[{at: 0s, rate: 10/s}]"
    # The keys of the broker's preset and those every broker takes; no other preset's.
    assert "prefetch" not in tables["Broker: ideal"] and "ack_timeout" in tables["Broker: ideal"]
