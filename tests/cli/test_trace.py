"""``busim run --trace`` writes every message's deliveries beside the results."""

import json

from typer.testing import CliRunner

from busim.cli import app
from tests.analysis.test_stories import CRASH_BEFORE_ACK

runner = CliRunner()
CRASHING = str(CRASH_BEFORE_ACK)


def test_trace_writes_a_line_per_message_and_a_chrome_trace(tmp_path):
    folder = tmp_path / "run"
    result = runner.invoke(app, ["run", CRASHING, "--out", str(folder), "--no-charts", "--trace"])
    assert result.exit_code == 0, result.output
    assert f"report.html, trace.jsonl, trace.json in {folder}" in result.stdout
    published = json.loads((folder / "results.json").read_text())["messages"]["published"]
    lines = (folder / "trace.jsonl").read_text().splitlines()
    assert len(lines) == published == 4
    assert [json.loads(line)["id"] for line in lines] == [0, 1, 2, 3]
    trace = json.loads((folder / "trace.json").read_text())
    assert sum(event["ph"] == "X" for event in trace["traceEvents"]) == 8


def test_a_run_without_trace_removes_an_earlier_runs_trace(tmp_path):
    folder = tmp_path / "run"
    path = CRASHING
    assert runner.invoke(app, ["run", path, "--out", str(folder), "--no-charts", "--quiet", "--trace"]).exit_code == 0
    assert runner.invoke(app, ["run", path, "--out", str(folder), "--no-charts", "--quiet"]).exit_code == 0
    assert not (folder / "trace.jsonl").exists() and not (folder / "trace.json").exists()


def test_trace_is_refused_with_replications(tmp_path):
    result = runner.invoke(app, ["run", CRASHING, "--out", str(tmp_path / "run"), "--trace", "--replications", "3"])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == (
        "busim: --trace records a single run, not 3 replications; drop --replications "
        "(and --seed for one replication's seed)\n"
    )
    assert not (tmp_path / "run").exists()
