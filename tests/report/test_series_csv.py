"""series.csv: the per-window series of results.json, one row per window and consumer."""

import json
from pathlib import Path
from types import SimpleNamespace

from typer.testing import CliRunner

from busim.analysis.series import Series
from busim.cli import app
from busim.report.series_csv import SERIES_COLUMNS, series_csv
from tests.conftest import ROOT

SMALL_PIPELINE = ROOT / "tests" / "data" / "small-pipeline.yaml"


def _run(folder: Path) -> None:
    ran = CliRunner().invoke(app, ["run", str(SMALL_PIPELINE), "--out", str(folder), "--no-charts", "-q"])
    assert ran.exit_code == 0, ran.output


def test_a_run_writes_its_series_beside_results_json_and_lists_it_in_its_manifest(tmp_path):
    _run(tmp_path)
    lines = (tmp_path / "series.csv").read_text().splitlines()
    assert lines[0] == (
        "window_start_s,window_end_s,consumer,published,processed,throughput_per_s,backlog,latency_p50_s,latency_p99_s"
    )
    assert lines[1:5] == [
        "0,10,inventory,220,216,21.6,0,0.005177,0.568611",
        "0,10,payment,225,223,22.3,0,0.01048,0.070528",
        "10,20,inventory,0,0,0,0,,",
        "10,20,payment,0,1,0.1,0,,",
    ]
    document = json.loads((tmp_path / "results.json").read_text())
    windows = len(document["consumers"]["inventory"]["series"]["processed"])
    assert len(lines) == 1 + 2 * windows
    assert "series.csv" in json.loads((tmp_path / ".busim-manifest.json").read_text())["files"]


def test_the_csv_is_each_consumers_series_in_long_form():
    series = {
        "a": Series(0.1, (3, 0), (2, 1), (1, 0), (0.0123456789, None), (0.5, None)),
        "b": Series(0.1, (1, 1), (1, 1), (0, 0), (0.25, 2.0), (0.25, 2.0)),
    }
    # Only the series is read: a run's summary with nothing else in it.
    run = SimpleNamespace(
        summary=SimpleNamespace(consumers={name: SimpleNamespace(series=s) for name, s in series.items()})
    )
    assert series_csv(run).splitlines() == [
        ",".join(SERIES_COLUMNS),
        "0,0.1,a,3,2,20,1,0.012346,0.5",
        "0,0.1,b,1,1,10,0,0.25,0.25",
        "0.1,0.2,a,0,1,10,0,,",
        "0.1,0.2,b,1,1,10,0,2,2",
    ]


def test_busim_report_writes_the_series_only_where_it_is_missing(tmp_path):
    _run(tmp_path)
    written = (tmp_path / "series.csv").read_text()
    (tmp_path / "series.csv").unlink()
    reported = CliRunner().invoke(app, ["report", str(tmp_path), "--no-charts"])
    assert reported.exit_code == 0, reported.output
    assert reported.stdout.startswith("Wrote series.csv, report.md, report.html in ")
    assert (tmp_path / "series.csv").read_text() == written
    again = CliRunner().invoke(app, ["report", str(tmp_path), "--no-charts"])
    assert again.stdout.startswith("Wrote report.md, report.html in ")


def test_the_docs_list_every_file_busim_writes_and_every_column_of_the_series():
    from busim.report.output import DOCUMENT_NAMES

    files = (ROOT / "docs" / "files.md").read_text()
    assert [name for name in DOCUMENT_NAMES if f"`{name}`" not in files] == []
    section = (ROOT / "docs" / "results.md").read_text().split("### `series.csv`", 1)[1].split("\n#", 1)[0]
    assert [column for column in SERIES_COLUMNS if f"`{column}`" not in section] == []
