"""Output folders: busim writes only where it may, replaces only what it wrote, and never leaves half a run."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

import busim.cli
from busim.cli import app
from busim.report.output import LOCK_FILE, MANIFEST_FILE, OutputFolder
from tests.conftest import ROOT, SCENARIOS

runner = CliRunner()
CRASHING = str(ROOT / "tests" / "data" / "crash-before-ack.yaml")
FLASH_SALE = str(SCENARIOS / "flash-sale.yaml")


def contents(folder: Path) -> dict[str, bytes]:
    """Every file in ``folder`` (and below), by relative path, with its bytes."""
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def visible(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir() if not path.name.startswith("."))


@pytest.fixture
def no_simulation(monkeypatch):
    """Fail the test if a command gets as far as simulating."""

    def refuse(*args, **kwargs):
        raise AssertionError("simulated before checking the output folder")

    monkeypatch.setattr(busim.cli, "run_scenario", refuse)
    monkeypatch.setattr(busim.cli, "compare", refuse)


def test_a_folder_of_files_busim_did_not_write_is_refused_before_simulating(tmp_path, no_simulation):
    folder = tmp_path / "mine"
    folder.mkdir()
    names = ["trace.json", "trace.jsonl", "latency-cdf.png", "consistency.svg", "report.md", "results.json"]
    for name in names:
        (folder / name).write_text(f"the user's own {name}\n")
    before = contents(folder)
    result = runner.invoke(app, ["run", CRASHING, "--out", str(folder), "--no-charts"])
    assert result.exit_code == 2
    assert result.stderr == (
        f"busim: {folder} holds files busim did not write (consistency.svg, latency-cdf.png, report.md, "
        "results.json, trace.json and 1 more); give an empty or new folder with --out\n"
    )
    assert contents(folder) == before


def test_busim_compare_refuses_a_folder_of_files_it_did_not_write(tmp_path, no_simulation):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "compare-anomalies.png").write_bytes(b"mine")
    result = runner.invoke(app, ["compare", FLASH_SALE, "--vary", "broker.preset=kafka,rabbitmq", "--out", str(folder)])
    assert result.exit_code == 2
    assert "holds files busim did not write (compare-anomalies.png)" in result.stderr
    assert (folder / "compare-anomalies.png").read_bytes() == b"mine"


def test_the_scenario_being_run_is_never_written_over(tmp_path, monkeypatch, no_simulation):
    folder = tmp_path / "work"
    folder.mkdir()
    scenario = folder / "scenario.yaml"
    scenario.write_text(Path(CRASHING).read_text() + "# my comments\n")
    monkeypatch.chdir(folder)
    result = runner.invoke(app, ["run", "scenario.yaml", "--out", ".", "--set", "seed=9"])
    assert result.exit_code == 2
    assert "holds files busim did not write (scenario.yaml)" in result.stderr
    assert scenario.read_text().endswith("# my comments\n")


def test_the_resolved_scenario_of_a_run_cannot_be_run_into_its_own_folder(tmp_path):
    folder = tmp_path / "run"
    assert runner.invoke(app, ["run", CRASHING, "--out", str(folder), "--no-charts", "-q"]).exit_code == 0
    before = contents(folder)
    result = runner.invoke(app, ["run", str(folder / "scenario.yaml"), "--out", str(folder), "--set", "seed=9"])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"busim: {folder} would lose the scenario being run, {folder / 'scenario.yaml'}")
    assert contents(folder) == before


def test_a_second_run_replaces_exactly_the_files_of_the_first(tmp_path):
    folder = tmp_path / "run"
    first = ["run", CRASHING, "--out", str(folder), "--trace", "-q"]
    assert runner.invoke(app, first).exit_code == 0
    assert "trace.json" in visible(folder) and "latency-cdf.png" in visible(folder)
    (folder / "notes.txt").write_text("kept\n")
    assert runner.invoke(app, ["run", CRASHING, "--out", str(folder), "--no-charts", "-q"]).exit_code == 0
    assert visible(folder) == ["notes.txt", "report.html", "report.md", "results.json", "scenario.yaml", "series.csv"]
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    assert sorted(manifest["files"]) == ["report.html", "report.md", "results.json", "scenario.yaml", "series.csv"]
    assert not [path for path in folder.iterdir() if path.name.startswith(".busim-staging")]


def test_a_file_changed_since_busim_wrote_it_is_not_replaced(tmp_path):
    folder = tmp_path / "run"
    assert runner.invoke(app, ["run", CRASHING, "--out", str(folder), "--no-charts", "-q"]).exit_code == 0
    (folder / "report.md").write_text("my edits\n")
    result = runner.invoke(app, ["run", CRASHING, "--out", str(folder), "--no-charts", "-q"])
    assert result.exit_code == 2
    assert result.stderr == (
        f"busim: {folder / 'report.md'} was changed since busim wrote it; move it away, or choose another --out\n"
    )
    assert (folder / "report.md").read_text() == "my edits\n"


def test_a_second_run_into_a_folder_in_use_is_refused_naming_the_first(tmp_path, no_simulation):
    folder = tmp_path / "run"
    with OutputFolder.claim(folder, "busim run first.yaml"):
        result = runner.invoke(app, ["run", CRASHING, "--out", str(folder)])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"busim: {folder} is being written by busim (pid {os.getpid()}, since ")
    assert result.stderr.endswith(
        "): busim run first.yaml; wait for it to finish, or choose another folder with --out\n"
    )
    # Once the first lets go, a folder made for it and left empty is gone again.
    assert not folder.exists()


def test_a_folder_that_cannot_be_made_is_reported_before_simulating(tmp_path, no_simulation):
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = runner.invoke(app, ["run", CRASHING, "--out", str(blocker / "run")])
    assert result.exit_code == 2
    assert result.stderr == f"busim: cannot write the results to {blocker / 'run'}: Not a directory\n"


@pytest.mark.parametrize("stop", [KeyboardInterrupt, busim.cli._Terminated], ids=["SIGINT", "SIGTERM"])
def test_an_interrupted_run_leaves_its_folder_as_it_was(tmp_path, monkeypatch, stop):
    folder = tmp_path / "run"
    assert runner.invoke(app, ["run", CRASHING, "--out", str(folder), "-q"]).exit_code == 0
    before = contents(folder)

    def interrupted(*args, **kwargs):
        raise stop

    monkeypatch.setattr(busim.cli, "run_scenario", interrupted)
    result = runner.invoke(app, ["run", CRASHING, "--out", str(folder), "-q"])
    code, word = (130, "interrupted") if stop is KeyboardInterrupt else (143, "terminated")
    assert result.exit_code == code
    assert result.stderr == f"busim: {word}; nothing was written, and {folder} is as it was\n"
    assert contents(folder) == before
    # A folder made for the interrupted run goes again.
    fresh = tmp_path / "fresh"
    result = runner.invoke(app, ["run", CRASHING, "--out", str(fresh), "-q"])
    assert result.exit_code == code
    assert result.stderr == f"busim: {word}; nothing was written\n"
    assert not fresh.exists()


def test_sigterm_stops_a_real_run_cleanly(tmp_path):
    # A run of about half a minute, stopped once it is simulating.
    command = [sys.executable, "-c", "import busim.cli; busim.cli.main()", "run", FLASH_SALE, "--no-charts"]
    command += ["--set", "duration=3000s", "--out", str(tmp_path / "run")]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while not (tmp_path / "run" / LOCK_FILE).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # into the simulation
    process.send_signal(signal.SIGTERM)
    try:
        _, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 143, stderr
    assert stderr == "busim: terminated; nothing was written\n"
    assert not (tmp_path / "run").exists()


def test_a_folder_written_before_manifests_is_taken_over_by_busim_report(tmp_path):
    folder = tmp_path / "old"
    assert runner.invoke(app, ["run", CRASHING, "--out", str(folder), "--no-charts", "-q"]).exit_code == 0
    (folder / MANIFEST_FILE).unlink()
    result = runner.invoke(app, ["report", str(folder), "--no-charts", "-q"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    assert sorted(manifest["files"]) == ["report.html", "report.md", "results.json", "scenario.yaml", "series.csv"]
    assert manifest["files"]["results.json"] is None  # taken over by name, without a hash of what busim wrote
