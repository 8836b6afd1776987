"""Invariants on the command line: the table, the report section and the exit code they decide."""

import io
import json

from rich.console import Console
from typer.testing import CliRunner

import busim
from busim.cli import app
from busim.report.console import render_result
from busim.scenario import load_scenario
from tests.conftest import ROOT, consumer, scenario

runner = CliRunner()
# A naive consumer that crashes before acking, on seed 7: 2 duplicate effects, so the run is not
# consistent, but all its invariants hold (lowest stock 7, p99 85.9 ms, nothing lost).
INVARIANTS = str(ROOT / "tests" / "data" / "invariants.yaml")


def run(tmp_path, *options):
    return runner.invoke(app, ["run", INVARIANTS, "--quiet", "--no-charts", "--out", str(tmp_path), *options])


def test_fail_on_violation_exits_0_when_every_invariant_holds_though_the_run_has_duplicates(tmp_path):
    result = run(tmp_path, "--fail-on-violation")
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    document = json.loads((tmp_path / "results.json").read_text())
    assert document["consistency"]["consistent"] is False
    assert document["consumers"]["inventory"]["duplicate_effects"] == 2
    assert [outcome["passed"] for outcome in document["invariants"]] == [True, True, True, True]


def test_fail_on_violation_exits_1_and_names_each_failed_invariant_on_stderr(tmp_path):
    result = run(
        tmp_path,
        "--fail-on-violation",
        "--set",
        "invariants.few-duplicates.max.duplicate_effects=1",
        "--set",
        "invariants.fast-enough.max.latency_p99=50ms",
    )
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == (
        "busim: invariant few-duplicates: inventory duplicate effects <= 1 (measured 2)\n"
        "busim: invariant fast-enough: inventory latency p99 <= 50ms (measured 85.9ms)\n"
    )


def test_without_fail_on_violation_a_failed_invariant_still_exits_0(tmp_path):
    result = run(tmp_path, "--set", "invariants.few-duplicates.max.duplicate_effects=1")
    assert result.exit_code == 0
    assert result.stderr == ""


def test_fail_on_violation_exits_1_when_an_invariant_fails_in_any_replication(tmp_path):
    # On the replications' seeds the lowest stock is -4, 17, -1 and 11.
    result = runner.invoke(
        app,
        ["run", INVARIANTS, "--no-charts", "--out", str(tmp_path), "--replications", "4", "--fail-on-violation"],
        env={"COLUMNS": "120"},
    )
    assert result.exit_code == 1
    assert result.stderr == (
        "busim: invariant no-oversell: lowest inventory stock >= 0 (failed in 2 of 4 replications)\n"
    )
    rows = [line.strip() for line in result.stdout.splitlines()]
    # Means of counts read as in the table of figures; a lowest stock's interval may reach below 0.
    assert "no-oversell      lowest inventory stock >= 0              5.8 [-10.0, 21.5]   passed in 2 of 4" in rows
    assert "few-duplicates   inventory duplicate effects <= 10           4.2 [1.5, 7.0]   passed in 4 of 4" in rows
    bounds = json.loads((tmp_path / "results.json").read_text())["invariants"]
    assert [(bound["name"], bound["metric"], bound["passed"]) for bound in bounds] == [
        ("no-oversell", "lowest", 2),
        ("few-duplicates", "duplicate_effects", 4),
        ("fast-enough", "latency_p99", 4),
        ("fast-enough", "lost_fraction", 4),
    ]
    assert bounds[0]["measured"]["mean"] == 5.75


def test_the_console_shows_each_bound_with_its_measure_and_the_words_pass_and_fail():
    loaded = load_scenario(INVARIANTS, ["invariants.few-duplicates.min.latency_max=1s"])
    output = io.StringIO()
    render_result(Console(file=output, width=100, color_system=None), busim.simulate(loaded))
    printed = [line.rstrip() for line in output.getvalue().splitlines()]
    start = printed.index("Invariants")
    assert printed[start : start + 10] == [
        "Invariants",
        "",
        "  invariant        checks                              measured   result",
        " ────────────────────────────────────────────────────────────────────────",
        "  no-oversell      lowest inventory stock >= 0                7   PASS",
        "  few-duplicates   inventory latency max >= 1s            265ms   FAIL",
        "  few-duplicates   inventory duplicate effects <= 10          2   PASS",
        "  fast-enough      inventory latency p99 <= 250ms        85.9ms   PASS",
        "  fast-enough      inventory lost fraction <= 0%             0%   PASS",
        "",
    ]


def test_a_figure_without_a_value_is_shown_as_not_measured():
    lost = scenario(
        broker={"delivery": "at-most-once", "loss": 1.0},
        invariants=[{"name": "fast", "consumer": "worker", "max": {"latency_p999": "1s", "lost_fraction": 0.001}}],
    )
    output = io.StringIO()
    render_result(Console(file=output, width=100, color_system=None), busim.simulate(lost))
    printed = [line.rstrip() for line in output.getvalue().splitlines()]
    assert "  fast        worker latency p99.9 <= 1s          n/a   FAIL" in printed
    assert "  fast        worker lost fraction <= 0.1%       100%   FAIL" in printed


def test_the_report_has_an_invariants_section(tmp_path):
    result = run(tmp_path, "--set", "invariants.few-duplicates.max.duplicate_effects=1")
    assert result.exit_code == 0, result.output
    markdown = (tmp_path / "report.md").read_text()
    section = markdown.split("### Invariants\n\n", 1)[1].split("\n\n", 1)[0]
    assert section.splitlines() == [
        "| invariant | checks | measured | result |",
        "|---|---|---:|---|",
        "| no-oversell | lowest inventory stock >= 0 | 7 | PASS |",
        "| few-duplicates | inventory duplicate effects <= 1 | 2 | FAIL |",
        "| fast-enough | inventory latency p99 <= 250ms | 85.9ms | PASS |",
        "| fast-enough | inventory lost fraction <= 0% | 0% | PASS |",
    ]
    # The verdict names the failed invariant before the tables show them all.
    assert "\n- few-duplicates: inventory duplicate effects <= 1 (measured 2)\n" in markdown
    assert markdown.index("## Verdict") < markdown.index("### Invariants")
    html = (tmp_path / "report.html").read_text()
    assert "<h3>Invariants</h3>" in html
    assert (
        '<th scope="row">few-duplicates</th><td>inventory duplicate effects &lt;= 1</td>'
        '<td class="num">2</td><td class="bad">FAIL</td>'
    ) in html


def test_a_comparison_verdict_says_which_invariants_hold():
    from busim.report.views import comparison_verdicts

    limits = {"name": "exactly-once-effects", "consumer": "worker", "max": {"duplicate_effects": 0}}
    fast = {"name": "fast", "consumer": "worker", "max": {"latency_p99": "1s"}}
    crashing = scenario(
        broker={"ack_timeout": "1s", "max_deliveries": 3},
        consumers=[consumer(crash={"probability": 1.0, "restart_after": 0})],
        invariants=[limits, fast],
    )
    steady = scenario(invariants=[limits, fast])
    comparison = busim.compare([("crashing", crashing), ("steady", steady)])
    assert comparison_verdicts(comparison) == [
        ("inconsistent (2 violations); 1 of 2 invariants hold; fails exactly-once-effects", False),
        ("consistent; 2 of 2 invariants hold", True),
    ]
    replicated = busim.compare([("crashing", crashing), ("steady", steady)], replications=2)
    assert comparison_verdicts(replicated) == [
        (
            "consistent in 0 of 2 replications; invariants hold in 0 of 2 replications; fails exactly-once-effects",
            False,
        ),
        ("consistent in 2 of 2 replications; invariants hold in 2 of 2 replications", True),
    ]
