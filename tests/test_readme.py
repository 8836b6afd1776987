"""The README shows what busim prints, and its commands are the ones CI runs."""

import io
import re
import subprocess

from rich.console import Console

import busim
from busim.report.console import render_result
from tests.conftest import ROOT, SCENARIOS

README = (ROOT / "README.md").read_text()


def test_the_sample_output_is_what_the_flash_sale_prints():
    sample = README.split("## What you get\n\n```\n", 1)[1].split("\n```", 1)[0]
    output = io.StringIO()
    render_result(
        Console(file=output, width=80, color_system=None), busim.simulate(busim.load(SCENARIOS / "flash-sale.yaml"))
    )
    printed = [line.rstrip() for line in output.getvalue().splitlines()]
    expected = sample.splitlines()
    start = printed.index(expected[0])
    # The last README line is the "Wrote ..." line from the command line, not from the renderer.
    assert printed[start:] == expected[:-1]
    assert expected[-1] == (
        "Wrote results.json, scenario.yaml, series.csv, report.md, report.html, 5 charts (PNG, SVG) in "
        "runs/flash-sale/20261206-101500 (runs/flash-sale/latest)"
    )


def test_the_stale_reads_sample_is_what_the_flash_sale_prints_with_queries():
    command, sample = re.findall(r"## Stale reads\n.*?```\n(.*?)\n```\n\n```\n(.*?)\n```", README, re.DOTALL)[0]
    assignment = "consumers.inventory.queries={rate: 200/s, counter: stock}"
    assert command == f"busim run scenarios/flash-sale.yaml --set '{assignment}'"
    output = io.StringIO()
    render_result(
        Console(file=output, width=80, color_system=None),
        busim.simulate(busim.load(SCENARIOS / "flash-sale.yaml", [assignment])),
    )
    printed = [line.rstrip() for line in output.getvalue().splitlines()]
    expected = sample.splitlines()
    start = printed.index(expected[0])
    assert printed[start : start + len(expected)] == expected


def test_ci_runs_the_readme_test_command():
    printed = subprocess.run(["bash", ".ci/run", "--print"], cwd=ROOT, capture_output=True, text=True, check=True)
    block = re.search(r"<!-- test command[^\n]*\n```\n([^\n]+)\n```", README)
    assert block is not None
    assert printed.stdout == block.group(1) + "\n" == "pip install -e '.[test]' && python -m pytest\n"


def compared(file: str) -> list[str]:
    """What ``busim compare scenarios/FILE`` prints at 80 columns, line by line."""
    from busim.report.console import render_comparison
    from busim.scenario.variants import load_variants

    variants = load_variants([SCENARIOS / file], [], [])
    output = io.StringIO()
    render_comparison(
        Console(file=output, width=80, color_system=None),
        busim.compare([(variant.name, variant.loaded) for variant in variants]),
    )
    return [line.rstrip() for line in output.getvalue().splitlines()]


def test_the_comparison_sample_is_what_busim_compare_prints():
    sample = README.split("busim compare scenarios/broker-tradeoffs.yaml\n```\n\n```\n", 1)[1].split("\n```", 1)[0]
    printed = compared("broker-tradeoffs.yaml")
    expected = sample.splitlines()
    assert printed == expected[:-1]
    assert expected[-1] == (
        "Wrote compare.json, compare.md, compare.html, 2 charts (PNG, SVG) in "
        "runs/compare-broker-tradeoffs/20261206-101530 (runs/compare-broker-tradeoffs/latest)"
    )


def _block_after(marker: str) -> str:
    """The code block that follows ``marker`` (itself a code block's only line) in the README."""
    return README.split(f"{marker}\n```\n\n```\n", 1)[1].split("\n```", 1)[0]


def test_the_order_pipeline_samples_are_what_busim_prints(tmp_path):
    from typer.testing import CliRunner

    from busim.cli import app

    result = busim.simulate(busim.load(SCENARIOS / "order-pipeline.yaml"))
    output = io.StringIO()
    render_result(Console(file=output, width=80, color_system=None), result)
    printed = [line.rstrip() for line in output.getvalue().splitlines()]
    for sample in (
        _block_after("busim run scenarios/order-pipeline.yaml"),
        README.split("when one fails, so a CI job can hold the architecture to them:\n\n```\n", 1)[1].split("\n```")[0],
    ):
        expected = sample.splitlines()
        start = printed.index(expected[0])
        assert printed[start : start + len(expected)] == expected

    folder = tmp_path / "order-pipeline"
    runner = CliRunner()
    ran = runner.invoke(app, ["run", str(SCENARIOS / "order-pipeline.yaml"), "--out", str(folder), "--no-charts", "-q"])
    assert ran.exit_code == 0, ran.output
    explained = runner.invoke(app, ["explain", str(folder), "--message", "1067"], env={"COLUMNS": "200"})
    assert explained.exit_code == 0, explained.output
    sample = _block_after("busim explain runs/order-pipeline --message 1067")
    assert explained.stdout.splitlines() == sample.splitlines()


def test_the_order_pipeline_verdicts_are_what_busim_compare_prints():
    sample = README.split("`busim compare scenarios/order-pipeline.yaml` ends:\n\n```\n", 1)[1].split("\n```")[0]
    printed = compared("order-pipeline.yaml")
    expected = sample.splitlines()
    assert printed[-len(expected) :] == expected


def test_the_scheduled_crash_does_what_the_readme_says():
    command = re.search(r"## Faults on a schedule\n.*?```\n(busim run [^\n]+)\n```", README, re.DOTALL).group(1)
    assignment = "consumers.inventory.crash={at: 72s, instance: 1}"
    assert command == f"busim run scenarios/flash-sale.yaml --set '{assignment}'"
    inventory = busim.simulate(busim.load(SCENARIOS / "flash-sale.yaml", [assignment])).summary.consumers["inventory"]
    assert inventory.crash_times_s == (72.0,)
    assert inventory.by_reason["redelivered"] == {"crash_in_flight": 1, "prefetched": 249}
    assert inventory.duplicate_effects == 0
