"""report.md and report.html: what a review board reads, drawn again from a run's folder alone."""

import json
import shutil
import subprocess
from html.parser import HTMLParser

import pytest
from typer.testing import CliRunner

from busim.cli import app
from busim.report.charts import CHARTS
from tests.conftest import CHROMIUM_INSTALL, FLASH_SALE_RUNS, SCENARIOS, can_install_chromium

pytestmark = FLASH_SALE_RUNS  # one worker: the runs the module shares run once

runner = CliRunner()
FLASH_SALE = str(SCENARIOS / "flash-sale.yaml")


class Outline(HTMLParser):
    """The tags, headings and external references of an HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.headings: list[str] = []
        self.external: list[str] = []
        self._heading = False

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self._heading = tag in ("h1", "h2", "h3")
        for name, value in attrs:
            # In-document references (#glyph) and XML namespaces load nothing.
            if name in ("src", "href", "xlink:href") and value and not value.startswith("#"):
                self.external.append(value)

    def handle_data(self, data):
        if self._heading and data.strip():
            self.headings.append(data.strip())
            self._heading = False


def test_run_writes_a_self_contained_html_report_with_every_chart(flash_sale_run):
    page = Outline()
    page.feed((flash_sale_run / "report.html").read_text())
    # The verdict and the figures that matter first, then the charts, every table, and the configuration.
    assert page.headings == [
        "flash-sale",
        "Verdict",
        "At a glance",
        "Charts",
        "Results",
        "Publishers",
        "Consumers",
        "Latency: publish to first completed processing",
        "State against an exactly-once reference",
        "Configuration",
        "Broker: rabbitmq",
        "Publisher: order-service",
        "Consumer: inventory",
    ]
    assert page.tags.count("svg") == len(CHARTS) - 1  # no event chains, so no chain-latency chart
    assert page.external == []
    assert "script" not in page.tags and "link" not in page.tags


def test_the_markdown_report_states_the_verdict_the_figures_and_the_assumptions(flash_sale_run):
    report = (flash_sale_run / "report.md").read_text()
    assert report.startswith("# flash-sale\n\nDoors open at 30 s")
    assert "\nseed 42 · simulated 3m00s, drained · 52,365 messages.\n\n## Verdict\n\n" in report
    assert (
        "## Verdict\n\nInconsistent with exactly-once processing:\n\n"
        "- inventory: 8 duplicate effects\n- inventory: 22 messages wrongly rejected\n"
        "- inventory: 17 messages wrongly accepted\n- inventory: stock drifts by 10 over 5 keys\n\n"
        "## At a glance\n\n"
        "| consumer | deliveries | duplicate effects | lost | latency p99 | abs drift |\n"
        "|---|---:|---:|---:|---:|---:|\n"
        "| inventory | 56,589 | 8 | 0 | 9.98s | 10 |\n\n## Charts\n\n"
        "![flash-sale: end-to-end latency, publish to first processing](latency-cdf.png)\n"
    ) in report
    # The console's rows and words: the even share beside the busiest instance, the latency's parts.
    assert "| busiest instance | 35% | 33% would be an even share |" in report
    assert "| ↳ queue wait | 52,365 | 2.83s | 1.25s | 8.3s | 8.83s | 8.94s | 8.97s |" in report
    # Every setting in the units a scenario states it in; a [ is escaped, as in all user text.
    assert "| prefetch | 250 |" in report
    assert "| consumer_timeout | 30min |" in report
    assert "| latency | {quantiles: {p50: 430µs, p99: 730µs}} |" in report
    assert "| effects | \\[{counter: stock, key: productId, add: -quantity, floor: 0}] |" in report
    assert "| crash | {probability: 0.0005, restart_after: 2s} |" in report
    assert "| outages | \\[{at: 1min, duration: 10s}] |" in report
    assert "| rate | \\[{at: 0s, rate: 50/s}, {at: 30s, rate: 700/s}, {at: 90s, rate: 100/s}] |" in report
    assert report.index("## Verdict") < report.index("## Charts") < report.index("## Results")
    assert report.index("## Results") < report.index("## Configuration")


def test_busim_report_draws_the_same_report_again_from_the_folder_alone(flash_sale_run, tmp_path):
    folder = shutil.copytree(flash_sale_run, tmp_path / "run")
    first = {name: (folder / name).read_bytes() for name in ("report.md", "report.html", "latency-cdf.svg")}
    for name in first:
        (folder / name).unlink()
    result = runner.invoke(app, ["report", str(folder)])
    assert result.exit_code == 0, result.output
    assert {name: (folder / name).read_bytes() for name in first} == first


def test_busim_report_needs_a_single_runs_folder(tmp_path):
    empty = runner.invoke(app, ["report", str(tmp_path)])
    assert empty.exit_code == 2
    assert empty.stderr == f"busim: {tmp_path}: no results.json here; give the output folder of a busim run\n"
    (tmp_path / "results.json").write_text(json.dumps({"schema": "busim.replications/1"}))
    (tmp_path / "scenario.yaml").write_text((SCENARIOS / "flash-sale.yaml").read_text())
    replicated = runner.invoke(app, ["report", str(tmp_path)])
    assert replicated.exit_code == 2
    assert replicated.stderr == (
        f"busim: {tmp_path}: holds replications; report needs a single run (run one of them with --seed)\n"
    )


def chromium() -> str:
    """Debian's headless Chromium, installed with apt-get where it is missing (the CI machine runs as root)."""
    if (
        can_install_chromium()
        and subprocess.run(CHROMIUM_INSTALL, capture_output=True, timeout=900, check=False).returncode
    ):
        subprocess.run(["apt-get", "update", "-q"], capture_output=True, timeout=900, check=False)
        subprocess.run(CHROMIUM_INSTALL, capture_output=True, timeout=900, check=False)
    found = shutil.which("chromium")
    if found is None:
        pytest.fail("Chromium is needed to render report.html: install Debian's chromium package")
    return found


def test_the_html_report_renders_in_a_browser(flash_sale_run, tmp_path):
    page = (flash_sale_run / "report.html").as_uri()
    screenshot = tmp_path / "report.png"
    # One launch both prints the document it built and paints it: a browser's first start on a machine is slow.
    headless = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1280,4000"]
    browse = [*headless, f"--screenshot={screenshot}", "--dump-dom", page]
    dom = subprocess.run(browse, capture_output=True, text=True, timeout=120, check=True)
    # The browser built the whole document: the title, every table and every chart's drawing.
    assert "<h1>flash-sale</h1>" in dom.stdout
    # Tables: at a glance, publishers, consumers, latency, state; the broker, the publisher, the consumer.
    assert dom.stdout.count("<table>") == 8 and dom.stdout.count("<svg") == len(CHARTS) - 1
    assert screenshot.read_bytes().startswith(b"\x89PNG") and screenshot.stat().st_size > 50_000


def test_a_replicated_run_leaves_no_earlier_report_beside_its_results(flash_sale_run, tmp_path):
    folder = shutil.copytree(flash_sale_run, tmp_path / "run")
    assert (folder / "report.html").exists()
    replicated = runner.invoke(
        app, ["run", FLASH_SALE, "--quiet", "--replications", "2", "--set", "duration=100s", "--out", str(folder)]
    )
    assert replicated.exit_code == 0, replicated.output
    assert sorted(path.name for path in folder.iterdir() if not path.name.startswith(".")) == [
        "results.json",
        "scenario.yaml",
    ]


def test_the_consumers_table_shows_the_reads_of_a_read_model():
    import busim
    from busim.report.views import run_views
    from tests.analysis.test_reads import crash_and_loss
    from tests.conftest import scenario

    rows = {
        row.label: ([cell.text for cell in row.cells], row.why) for row in run_views(crash_and_loss()).consumers.rows
    }
    assert rows["stale reads"] == (["151"], "77.0% of 196 reads of seen at 20/s")
    assert rows["staleness p50"] == (["4.52s"], "since the oldest event not yet applied")
    assert rows["staleness p99"] == (["9.77s"], "")
    plain = run_views(busim.simulate(scenario())).consumers.rows
    assert not any(row.label.startswith("stale") for row in plain)
