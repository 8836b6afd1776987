"""The empirical distribution as a file writes it: percentiles as keys or a list, its refusals, and its round trip."""

import re

import jsonschema
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError
from typer.testing import CliRunner

from busim.cli import app
from busim.report.files import resolved_scenario_yaml
from busim.scenario import load_scenario
from busim.scenario.json_schema import SCHEMA_FILE
from busim.scenario.loader import parse_yaml, validate
from busim.scenario.schema import EmpiricalTime
from busim.scenario.units import parse_duration
from tests.conftest import ROOT
from tests.scenario.test_fuzz import fuzz_settings

GOOD = ROOT / "tests" / "data" / "empirical.yaml"
BAD = ROOT / "tests" / "data" / "bad" / "empirical.yaml"


def seconds(*durations: str) -> list[float]:
    return [parse_duration(duration) for duration in durations]


def test_percentiles_as_keys_load_as_written():
    latency = load_scenario(GOOD).scenario.broker.latency
    assert isinstance(latency, EmpiricalTime)
    assert latency.points == dict(
        zip([0, 50, 90, 99, 99.9, 100], seconds("0.2ms", "0.9ms", "1.6ms", "4ms", "7ms", "11ms"), strict=True)
    )


def test_a_list_stands_at_evenly_spaced_percentiles():
    even, thirds = (consumer.processing_time for consumer in load_scenario(GOOD).scenario.consumers)
    assert even.points == dict(
        zip([0, 25, 50, 75, 100], seconds("0.2ms", "0.5ms", "0.9ms", "1.6ms", "11ms"), strict=True)
    )
    assert thirds.points == {0: 0.001, 100 / 3: 0.001, 200 / 3: 0.002, 100: 0.004}  # 1 ms twice: an atom


def test_the_resolved_scenario_writes_the_mapping_form_and_loads_back_to_the_same_scenario():
    scenario = load_scenario(GOOD).scenario
    text = resolved_scenario_yaml(scenario)
    data = yaml.safe_load(text)
    assert data["consumers"][0]["processing_time"] == {
        "empirical": {"p0": 0.0002, "p25": 0.0005, "p50": 0.0009000000000000001, "p75": 0.0016, "p100": 0.011}
    }
    # Thirds are written in full, to read back exactly.
    assert list(data["consumers"][1]["processing_time"]["empirical"]) == [
        "p0",
        "p33.333333333333336",
        "p66.66666666666667",
        "p100",
    ]
    assert validate(parse_yaml(text, "resolved.yaml")) == scenario


def test_every_duration_may_be_the_same():
    atom = EmpiricalTime.model_validate({"kind": "empirical", "p0": 0, "p50": "0ms", "p100": 0.0})
    assert atom.points == {0: 0.0, 50: 0.0, 100: 0.0}


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        (
            {"p0": "1ms"},
            "empirical needs p0 and p100, the shortest and the longest duration: the distribution is "
            "bounded (missing p100)",
        ),
        ({"p0": "2ms", "p100": "1ms"}, "p100 (=0.001s) must be at least as long as p0 (=0.002s)"),
        ({"p-1": "1ms", "p100": "1ms"}, "write empirical as pNN: DURATION"),
        ({"p0": "1ms", "p101": "1ms"}, "p101: a percentile must lie between 0 and 100"),
        ({"p0": "1ms", "p100": "1ms", "p100.0": "2ms"}, "p100.0: p100 is given twice"),
    ],
)
def test_each_refusal_names_its_key(parameters, message):
    with pytest.raises(ValidationError, match=re.escape(message)):
        EmpiricalTime.model_validate({"kind": "empirical", **parameters})


def test_bad_input_exits_2_with_each_problem_at_its_line_and_no_traceback():
    result = CliRunner().invoke(app, ["validate", str(BAD)])
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 11
    assert lines[0] == (
        f"{BAD}:6:24: broker.latency.empirical: empirical needs p0 and p100, the shortest and the longest "
        "duration: the distribution is bounded (missing p100)"
    )
    assert (
        lines[8] == f"{BAD}:15:61: consumers[7].processing_time.empirical: [2] (=0.002s) must be at least as long as "
        "[1] (=0.003s)"
    )
    assert "Traceback" not in result.output


def test_the_json_schema_takes_both_forms_and_asks_for_both_ends():
    validator = jsonschema.Draft7Validator(yaml.safe_load(SCHEMA_FILE.read_text(encoding="utf-8")))
    document = yaml.safe_load(GOOD.read_text(encoding="utf-8"))
    assert list(validator.iter_errors(document)) == []
    document["broker"]["latency"] = {"empirical": {"p0": "1ms", "p50": "2ms"}}
    document["consumers"][0]["processing_time"] = {"empirical": ["1ms"]}
    paths = sorted(".".join(map(str, error.absolute_path)) for error in validator.iter_errors(document))
    assert paths == ["broker.latency", "consumers.0.processing_time"]


@fuzz_settings(200)
@given(st.lists(st.floats(0, 1e3, allow_nan=False, allow_infinity=False), min_size=2, max_size=40))
def test_any_list_of_durations_writes_percentiles_that_read_back_exactly(durations_s):
    listed = EmpiricalTime.model_validate({"kind": "empirical", "points": sorted(durations_s)})
    written = yaml.safe_load(yaml.safe_dump(listed.model_dump()))
    assert EmpiricalTime.model_validate({"kind": "empirical", **written["empirical"]}) == listed
