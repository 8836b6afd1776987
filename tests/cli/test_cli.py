"""The command line as a user meets it, through Typer's CliRunner."""

import json
import re
import subprocess
import sys
from pathlib import Path
from subprocess import PIPE

import pytest
from typer.testing import CliRunner

from busim import __version__
from busim.cli import app
from busim.scenario.presets import PRESET_NAMES
from tests.conftest import ROOT, SCENARIOS

runner = CliRunner()
FLASH_SALE = str(SCENARIOS / "flash-sale.yaml")
FLASH_SALE_TEXT = (SCENARIOS / "flash-sale.yaml").read_text()
IDEMPOTENT = str(SCENARIOS / "flash-sale-idempotent.yaml")


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout == f"busim {__version__}\n"


def test_run_prints_the_tables_and_writes_results_and_the_resolved_scenario(tmp_path):
    # No charts: tests/report/test_charts.py reads those of the same run.
    result = runner.invoke(app, ["run", FLASH_SALE, "--out", str(tmp_path), "--no-charts"])
    assert result.exit_code == 0, result.output
    for heading in ("Publishers", "Consumers", "Latency", "State against an exactly-once reference"):
        assert heading in result.stdout
    assert "Inconsistent with exactly-once processing" in result.stdout
    document = json.loads((tmp_path / "results.json").read_text())
    assert document["schema"] == "busim.result/1"
    assert document["scenario"]["seed"] == 42
    assert document["scenario"]["file"] == FLASH_SALE
    inventory = document["consumers"]["inventory"]
    assert inventory["duplicate_effects"] > 0
    assert set(inventory["latency_s"]["end_to_end"]) == {"count", "mean", "p50", "p90", "p95", "p99", "p999", "max"}
    resolved = (tmp_path / "scenario.yaml").read_text()
    assert "seed: 42" in resolved and "consumer_timeout: 1800.0" in resolved


def test_each_run_keeps_a_folder_of_its_own_in_runs_slash_the_scenario_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["run", FLASH_SALE, "--quiet", "--no-charts"])
    assert result.exit_code == 0
    assert result.stdout == ""
    runs = tmp_path / "runs" / "flash-sale"
    (first,) = [path for path in runs.iterdir() if path.name != "latest"]
    assert re.fullmatch(r"\d{8}-\d{6}", first.name)
    assert (runs / "latest").resolve() == first.resolve()
    baseline = (first / "results.json").read_bytes()
    # A run with an override gets a folder of its own: the baseline stays as it was.
    again = runner.invoke(app, ["run", FLASH_SALE, "--no-charts", "--set", "seed=7"], env={"COLUMNS": "200"})
    assert again.exit_code == 0
    (second,) = [path for path in runs.iterdir() if path.name not in ("latest", first.name)]
    assert (runs / "latest").resolve() == second.resolve()
    assert (first / "results.json").read_bytes() == baseline
    assert "overrides: --set seed=7" in again.stdout
    assert f"in runs/flash-sale/{second.name} (runs/flash-sale/latest)" in again.stdout
    assert "Overrides: --set seed=7." in (second / "report.md").read_text()
    # busim explain and report take the scenario's folder for its newest run.
    assert runner.invoke(app, ["report", str(runs), "--no-charts", "--quiet"]).exit_code == 0


def test_json_prints_results_json_and_nothing_else(tmp_path):
    result = runner.invoke(app, ["run", FLASH_SALE, "--json", "--no-charts", "--out", str(tmp_path)])
    assert result.exit_code == 0
    assert json.loads(result.stdout) == json.loads((tmp_path / "results.json").read_text())


def test_set_and_seed_change_the_run_and_are_recorded(tmp_path):
    result = runner.invoke(
        app,
        [
            "run",
            FLASH_SALE,
            "--json",
            "--no-charts",
            "--out",
            str(tmp_path),
            "--seed",
            "7",
            "--set",
            "consumers.inventory.idempotency=dedup",
            "--set",
            "broker.duplication=0.01",
        ],
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["scenario"]["seed"] == 7
    assert document["scenario"]["overrides"] == ["consumers.inventory.idempotency=dedup", "broker.duplication=0.01"]
    assert document["consumers"]["inventory"]["duplicate_effects"] == 0


@pytest.mark.parametrize("path", [FLASH_SALE, IDEMPOTENT], ids=["naive", "idempotent"])
def test_fail_on_violation_exits_1_when_the_run_departs_from_exactly_once(tmp_path, path):
    # The idempotent sale still refuses some orders out of turn: competing consumers reorder them.
    result = runner.invoke(app, ["run", path, "--quiet", "--no-charts", "--fail-on-violation", "--out", str(tmp_path)])
    assert result.exit_code == 1
    # Quiet, yet it says why: each departure on stderr.
    violations = json.loads((tmp_path / "results.json").read_text())["consistency"]["violations"]
    assert result.stderr.splitlines() == [
        f"busim: inconsistent with exactly-once processing: {violation}" for violation in violations
    ]
    assert violations


def test_fail_on_violation_exits_0_for_a_consistent_run(tmp_path):
    # One worker, a constant latency and no loss: the idempotent consumer processes in publish order.
    result = runner.invoke(
        app,
        [
            "run",
            IDEMPOTENT,
            "--quiet",
            "--no-charts",
            "--fail-on-violation",
            "--out",
            str(tmp_path),
            "--set",
            "consumers.inventory.instances=1",
            "--set",
            "broker.latency=2ms",
            "--set",
            "broker.loss=0",
        ],
    )
    assert result.exit_code == 0, result.output


def test_bad_input_exits_2_with_every_problem_and_no_traceback():
    path = ROOT / "tests" / "data" / "bad" / "references.yaml"
    result = runner.invoke(app, ["run", str(path)])
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 4
    assert all(line.startswith(f"{path}:") for line in lines)
    assert "Traceback" not in result.stderr


def test_a_missing_file_says_so_plainly(tmp_path):
    result = runner.invoke(app, ["run", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert result.stderr == f"busim: {tmp_path / 'nope.yaml'}: no such file\n"


def test_a_bad_override_says_so_plainly():
    result = runner.invoke(app, ["run", FLASH_SALE, "--set", "consumers.nobody.instances=2"])
    assert result.exit_code == 2
    assert result.stderr == (
        "--set consumers.nobody.instances=2: no entry named 'nobody' in consumers (names: inventory)\n"
    )


@pytest.mark.parametrize(
    ("option", "message"),
    [(["--seed", "-3"], "must be >= 0 (got -3)"), (["--seed", "abc"], "expected a whole number (got 'abc')")],
)
def test_a_bad_option_value_says_what_it_wants(option, message):
    result = runner.invoke(app, ["run", FLASH_SALE, *option])
    assert (result.exit_code, result.stderr) == (2, f"busim: --seed: {message}\n")


def test_validate_checks_every_file_and_reports_each():
    bad = ROOT / "tests" / "data" / "bad" / "duplicate-key.yaml"
    result = runner.invoke(app, ["validate", FLASH_SALE, str(bad)])
    assert result.exit_code == 2
    assert result.stdout == f"{FLASH_SALE}: ok\n"
    assert result.stderr == f"{bad}:3:1: duration: duplicate key 'duration' (first given on line 2)\n"


def test_validate_accepts_every_shipped_scenario():
    paths = [str(path) for path in sorted(SCENARIOS.glob("*.yaml"))]
    result = runner.invoke(app, ["validate", *paths])
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [f"{path}: ok" for path in paths]


def test_an_output_folder_that_is_a_file_is_reported(tmp_path):
    blocker = tmp_path / "taken"
    blocker.write_text("")
    result = runner.invoke(app, ["run", FLASH_SALE, "--quiet", "--out", str(blocker)])
    assert result.exit_code == 2
    assert result.stderr == f"busim: cannot write the results to {blocker}: File exists\n"
    assert blocker.read_text() == ""


def test_a_bug_keeps_its_traceback_and_exits_with_its_own_code(monkeypatch, capsys, tmp_path):
    import busim.cli

    monkeypatch.chdir(tmp_path)  # the run claims runs/flash-sale before the bug: not in the checkout

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(busim.cli, "run_scenario", broken)
    monkeypatch.setattr("sys.argv", ["busim", "run", FLASH_SALE, "--quiet", "--no-charts"])
    with pytest.raises(SystemExit) as exit_:
        busim.cli.main()
    assert exit_.value.code == 70
    stderr = capsys.readouterr().err
    assert "Traceback" in stderr and "RuntimeError: boom" in stderr
    assert stderr.endswith("please report it with the traceback above\n")


def test_a_reader_that_closes_the_output_early_ends_busim_quietly_with_141(tmp_path):
    # busim run ... | head -1: the first line, then the run's tables go to a closed pipe.
    command = [sys.executable, "-m", "busim", "run", FLASH_SALE, "--no-charts"]
    with subprocess.Popen([*command, "--out", str(tmp_path / "run")], stdout=PIPE, stderr=PIPE, cwd=ROOT) as busim:
        assert busim.stdout.readline().strip()
        busim.stdout.close()
        stderr = busim.stderr.read()
        code = busim.wait(timeout=120)
    assert (code, stderr.decode()) == (141, "")  # not 1, which a failed invariant gives


@pytest.mark.parametrize(
    ("text", "overrides", "message"),
    [
        ("seed: 1 # \x00\n", [], "{file}:1:11: the control character U+0000 (NUL) is not allowed in YAML"),
        ("seed: " + "[" * 500 + "]" * 500 + "\n", [], "{file}:1:106: lists and mappings nest more than 100 levels"),
        ("", ["seed=" + "9" * 5000], "--set seed=999"),
        ("", ["duration=" + "[" * 3000], "--set duration=[[["),
    ],
    ids=["nul", "deep", "long-seed", "deep-override"],
)
def test_input_that_once_crashed_the_loader_exits_with_2_without_a_traceback(
    tmp_path, monkeypatch, capsys, text, overrides, message
):
    import busim.cli

    path = tmp_path / "s.yaml"
    path.write_text(text or FLASH_SALE_TEXT)
    sets = [option for assignment in overrides for option in ("--set", assignment)]
    monkeypatch.setattr("sys.argv", ["busim", "validate", str(path), *sets])
    with pytest.raises(SystemExit) as exit_:
        busim.cli.main()
    assert exit_.value.code == 2
    stderr = capsys.readouterr().err
    assert stderr.startswith(message.format(file=path)) and "Traceback" not in stderr


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero")
def test_validate_refuses_a_device_without_reading_it():
    result = runner.invoke(app, ["validate", "/dev/zero"])
    assert result.exit_code == 2
    assert result.stderr == "busim: /dev/zero: is a character device, not a regular file; give a scenario file\n"


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_the_flash_sale_runs_on_every_preset_with_one_override(preset, tmp_path):
    result = runner.invoke(
        app, ["run", FLASH_SALE, "--set", f"broker.preset={preset}", "--out", str(tmp_path), "--json", "--no-charts"]
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["scenario"]["overrides"] == [f"broker.preset={preset}"]
    resolved = (tmp_path / "scenario.yaml").read_text()
    assert f"preset: {preset}" in resolved
    # The resolved scenario runs again, unchanged, without the override.
    again = runner.invoke(
        app, ["run", str(tmp_path / "scenario.yaml"), "--out", str(tmp_path / "again"), "--json", "--no-charts"]
    )
    assert json.loads(again.stdout)["consumers"] == document["consumers"]


def test_presets_lists_every_preset_and_shows_one_with_its_sources():
    listing = runner.invoke(app, ["presets"], env={"COLUMNS": "200"})
    assert listing.exit_code == 0
    for name in ("ideal", "kafka", "rabbitmq-quorum", "sqs-fifo", "sns-sqs", "nats-jetstream", "redis-streams"):
        assert f"  {name} " in listing.stdout
    kafka = runner.invoke(app, ["presets", "kafka"], env={"COLUMNS": "200"})
    assert "session_timeout" in kafka.stdout and "session.timeout.ms=45000" in kafka.stdout
    assert "https://kafka.apache.org/documentation/#consumerconfigs" in kafka.stdout


def test_presets_names_the_valid_presets_for_a_typo():
    result = runner.invoke(app, ["presets", "sqs"])
    assert result.exit_code == 2
    assert result.stderr == (
        "busim: unknown preset 'sqs'; did you mean 'sqs-standard'? (presets: ideal, kafka, rabbitmq, "
        "rabbitmq-quorum, sqs-standard, sqs-fifo, sns-sqs, nats-jetstream, redis-streams)\n"
    )


def test_set_takes_off_unquoted_as_yaml_reads_it_and_the_resolved_scenario_runs_again(tmp_path):
    # The shell passes off as it is; YAML 1.1 reads it as false, which claim_interval takes as off.
    overrides = ["--set", "broker.preset=redis-streams", "--set", "broker.claim_interval=off"]
    result = runner.invoke(app, ["run", FLASH_SALE, *overrides, "--out", str(tmp_path), "--json", "--no-charts"])
    assert result.exit_code == 0, result.output
    resolved = (tmp_path / "scenario.yaml").read_text()
    assert "  claim_interval: 'off'\n" in resolved
    again = runner.invoke(
        app, ["run", str(tmp_path / "scenario.yaml"), "--out", str(tmp_path / "again"), "--json", "--no-charts"]
    )
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["consumers"] == json.loads(result.stdout)["consumers"]


def test_set_names_a_word_yaml_reads_as_true_as_it_was_written():
    result = runner.invoke(
        app, ["validate", FLASH_SALE, "--set", "broker.preset=redis-streams", "--set", "broker.claim_interval=on"]
    )
    assert result.exit_code == 2
    assert result.stderr == (
        "--set broker.claim_interval=on: broker.claim_interval: expected a duration such as 5s, or off "
        "(got on, which YAML reads as true)\n"
    )


@pytest.mark.parametrize(
    ("arguments", "stderr"),
    [
        (["explain", "runs/x", "--top", "0"], "busim: --top: must be >= 1 (got 0)\n"),
        (["explain", "runs/x", "--message", "-1"], "busim: --message: must be >= 0 (got -1)\n"),
        (["run", FLASH_SALE, "--seed", "abc"], "busim: --seed: expected a whole number (got 'abc')\n"),
        (["run", FLASH_SALE, "--replications", "0"], "busim: --replications: must be >= 1 (got 0)\n"),
        (
            ["compare", FLASH_SALE, "--max-memory", "lots"],
            "busim: --max-memory: expected an amount of memory such as 800MB, 16GB or 2GiB (got 'lots')\n",
        ),
    ],
)
def test_a_bad_option_value_is_one_line_naming_the_option(arguments, stderr):
    result = runner.invoke(app, arguments)
    assert (result.exit_code, result.stderr, result.stdout) == (2, stderr, "")


def test_an_unknown_option_still_shows_the_usage():
    result = runner.invoke(app, ["run", FLASH_SALE, "--bogus"], prog_name="busim")
    assert result.exit_code == 2
    assert result.stderr.startswith("Usage: busim run [OPTIONS]")
    assert "No such option: --bogus" in result.stderr
