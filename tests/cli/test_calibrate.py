"""busim calibrate refuses what is not a real run's folder, plainly (the real runs are in tests/loadtest)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from busim.cli import app
from busim.report.files import resolved_scenario_yaml
from tests.conftest import scenario

runner = CliRunner()


@pytest.fixture(scope="module")
def simulated_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("calibrate") / "run"
    file = folder.parent / "tiny.yaml"
    file.write_text(resolved_scenario_yaml(scenario()))
    ran = runner.invoke(app, ["run", str(file), "--out", str(folder), "--quiet", "--no-charts"])
    assert ran.exit_code == 0, ran.output
    return folder


def test_a_simulated_run_is_refused_saying_what_calibrate_needs(simulated_folder):
    refused = runner.invoke(app, ["calibrate", str(simulated_folder)])
    assert refused.exit_code == 2
    assert refused.output == (
        f"busim: {simulated_folder}: holds a simulated run; calibrate sets a real run "
        "(busim run FILE --broker URL) beside the simulation of its scenario\n"
    )
    assert not (simulated_folder / "calibration.md").exists()


def test_a_real_run_without_its_record_is_refused(simulated_folder, tmp_path):
    folder = shutil.copytree(simulated_folder, tmp_path / "run")
    results = json.loads((folder / "results.json").read_text())
    real = json.loads((Path(__file__).parent / "real-section.json").read_text())
    (folder / "results.json").write_text(json.dumps(results | {"mode": "real", "real": real}))
    refused = runner.invoke(app, ["calibrate", str(folder)])
    assert refused.exit_code == 2, refused.output
    assert refused.output == (
        f"busim: {folder}: no record.npz here; calibrate fits the scenario to the real run's record\n"
    )


@pytest.mark.parametrize("replications", ["1", "0", "two"])
def test_fewer_than_two_replications_tell_no_spread_and_are_refused(simulated_folder, replications):
    refused = runner.invoke(app, ["calibrate", str(simulated_folder), "--replications", replications])
    assert refused.exit_code == 2
    assert "--replications" in refused.output


def test_a_missing_folder_says_so(tmp_path):
    refused = runner.invoke(app, ["calibrate", str(tmp_path / "nowhere")])
    assert refused.exit_code == 2
    assert refused.output == f"busim: {tmp_path / 'nowhere'}: no such folder; give the output folder of a busim run\n"


def test_a_folder_of_replications_is_refused_saying_what_calibrate_needs(tmp_path):
    file = tmp_path / "tiny.yaml"
    file.write_text(resolved_scenario_yaml(scenario(duration=2)))
    folder = tmp_path / "replicated"
    ran = runner.invoke(app, ["run", str(file), "--out", str(folder), "--replications", "2", "--quiet"])
    assert ran.exit_code == 0, ran.output
    refused = runner.invoke(app, ["calibrate", str(folder)])
    assert refused.exit_code == 2
    assert refused.output == (
        f"busim: {folder}: holds replications of a simulation; calibrate sets a real run "
        "(busim run FILE --broker URL) beside the simulation of its scenario\n"
    )
