"""The configuration as run shows the settings that apply, as a scenario states them."""

from __future__ import annotations

from busim.report.settings import configuration
from busim.scenario import load_scenario
from tests.conftest import SCENARIOS


def _tables(path):
    scenario = load_scenario(path).scenario
    return {view.title: {row.label: row.cells[0].text for row in view.rows} for view in configuration(scenario)}


def test_a_random_crash_shows_no_instance_which_only_scheduled_crashes_read():
    tables = _tables(SCENARIOS / "order-pipeline.yaml")
    assert tables["Consumer: inventory"]["crash"] == "{probability: 0.001, restart_after: 5s}"


def test_a_scheduled_crash_shows_its_instance(tmp_path):
    text = (SCENARIOS / "order-pipeline.yaml").read_text(encoding="utf-8")
    edited = text.replace("crash: {probability: 0.001, restart_after: 5s}", "crash: {at: [30s], instance: 1}")
    assert edited != text
    path = tmp_path / "scheduled.yaml"
    path.write_text(edited, encoding="utf-8")
    assert (
        _tables(path)["Consumer: inventory"]["crash"] == "{probability: 0, at: [30s], instance: 1, restart_after: 5s}"
    )
