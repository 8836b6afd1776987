from pathlib import Path

import pytest
import yaml

from busim.errors import OverrideError, ScenarioError, ScenarioFileError
from busim.report.files import resolved_scenario_yaml
from busim.scenario import load_scenario
from busim.scenario.loader import parse_yaml, validate
from tests.conftest import ROOT, SCENARIOS

BAD = ROOT / "tests" / "data" / "bad"


def expected_problems(path: Path) -> list[str]:
    """The ``# expect:`` lines of a bad scenario, with ``{file}`` filled in."""
    lines = path.read_text().splitlines()
    return [
        line.removeprefix("# expect: ").replace("{file}", str(path)) for line in lines if line.startswith("# expect: ")
    ]


@pytest.mark.parametrize("path", sorted(BAD.glob("*.yaml")), ids=lambda p: p.stem)
def test_bad_scenarios_report_every_problem_at_its_line(path):
    with pytest.raises(ScenarioError) as error:
        load_scenario(path)
    assert [str(problem) for problem in error.value.problems] == expected_problems(path)


@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_scenarios_are_valid(path):
    assert load_scenario(path).scenario.name == path.stem


@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("*.yaml")), ids=lambda p: p.stem)
def test_the_resolved_scenario_loads_back_to_the_same_scenario(path):
    scenario = load_scenario(path).scenario
    document = parse_yaml(resolved_scenario_yaml(scenario), "resolved.yaml")
    assert validate(document) == scenario


def test_a_constant_duration_and_a_single_rate_are_written_bare(tmp_path):
    scenario = load_scenario(SCENARIOS / "flash-sale.yaml", ["broker.latency=2ms"]).scenario
    data = yaml.safe_load(resolved_scenario_yaml(scenario))
    assert data["broker"]["latency"] == 0.002
    assert data["consumers"][0]["processing_time"] == {"exponential": {"mean": 0.003}}


def test_overrides_address_list_entries_by_name_or_index():
    loaded = load_scenario(
        SCENARIOS / "flash-sale.yaml",
        ["consumers.inventory.instances=8", "publishers.0.arrivals=uniform", "broker.duplication=0.01"],
    )
    scenario = loaded.scenario
    assert scenario.consumers[0].instances == 8
    assert scenario.publishers[0].arrivals == "uniform"
    assert scenario.broker.duplication == 0.01
    assert loaded.overrides == (
        "consumers.inventory.instances=8",
        "publishers.0.arrivals=uniform",
        "broker.duplication=0.01",
    )


def test_an_override_that_breaks_the_scenario_is_reported_as_the_override():
    with pytest.raises(ScenarioError) as error:
        load_scenario(SCENARIOS / "flash-sale.yaml", ["consumers.inventory.instances=0"])
    assert str(error.value) == ("--set consumers.inventory.instances=0: consumers[0].instances: must be >= 1 (got 0)")


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        (
            "consumers.inventry.instances=8",
            "--set consumers.inventry.instances=8: no entry named 'inventry' in consumers; "
            "did you mean 'inventory'? (names: inventory)",
        ),
        ("broker.loss", "--set broker.loss: expected KEY=VALUE, for example broker.loss=0.01"),
        ("consumers.5.instances=2", "--set consumers.5.instances=2: consumers has 1 entry, no [5]"),
    ],
)
def test_malformed_overrides_say_why(assignment, message):
    with pytest.raises(OverrideError) as error:
        load_scenario(SCENARIOS / "flash-sale.yaml", [assignment])
    assert str(error.value) == message


def test_an_unknown_key_set_by_override_is_caught_with_a_suggestion():
    with pytest.raises(ScenarioError) as error:
        load_scenario(SCENARIOS / "flash-sale.yaml", ["broker.duplicaton=0.5"])
    assert str(error.value) == (
        "--set broker.duplicaton=0.5: broker.duplicaton: unknown key 'duplicaton'; did you mean 'duplication'?"
    )


def test_a_missing_file_says_so(tmp_path):
    with pytest.raises(ScenarioFileError) as error:
        load_scenario(tmp_path / "nope.yaml")
    assert str(error.value) == f"{tmp_path / 'nope.yaml'}: no such file"


def test_a_folder_given_as_a_file_says_so(tmp_path):
    with pytest.raises(ScenarioFileError) as error:
        load_scenario(tmp_path)
    assert str(error.value) == f"{tmp_path}: is a folder; give a scenario file (there is no .yaml file in {tmp_path})"
    for name in ("b.yaml", "a.yaml", "c.yaml", "d.yml"):
        (tmp_path / name).write_text("")
    with pytest.raises(ScenarioFileError) as error:
        load_scenario(tmp_path)
    assert str(error.value) == (
        f"{tmp_path}: is a folder; give a scenario file (none of its .yaml files is a valid scenario: "
        "a.yaml, b.yaml, c.yaml, ...)"
    )
    # The first file that is a valid scenario, not the first by name.
    (tmp_path / "b.yaml").write_text((SCENARIOS / "flash-sale.yaml").read_text())
    with pytest.raises(ScenarioFileError) as error:
        load_scenario(tmp_path)
    assert str(error.value) == f"{tmp_path}: is a folder; give a scenario file such as {tmp_path / 'b.yaml'}"


def test_a_scenario_without_a_name_takes_the_file_stem(tmp_path):
    path = tmp_path / "checkout.yaml"
    path.write_text(
        "duration: 1s\nevents: {E: {}}\npublishers: [{name: p, event: E, rate: 1}]\n"
        "consumers: [{name: c, subscribes: [E]}]\n"
    )
    assert load_scenario(path).scenario.name == "checkout"


def test_the_file_hash_is_recorded():
    import hashlib

    path = SCENARIOS / "flash-sale.yaml"
    assert load_scenario(path).sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
