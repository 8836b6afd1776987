"""The JSON Schema of scenario files: up to date with the models, and true to what the loader accepts."""

import json

import jsonschema
import pytest
import yaml
from hypothesis import given
from typer.testing import CliRunner

import busim
from busim.cli import app
from busim.errors import BusimError
from busim.scenario.json_schema import SCHEMA_FILE, schema_text
from busim.scenario.loader import parse_yaml, validate
from busim.scenario.presets import PRESET_NAMES
from busim.scenario.starter import starter_text
from tests.conftest import ROOT, SCENARIOS
from tests.scenario.test_fuzz import fuzz_settings, mutated_text

SCHEMA = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
VALIDATOR = jsonschema.Draft7Validator(SCHEMA)
GOOD_FILES = sorted(SCENARIOS.glob("*.yaml")) + sorted((ROOT / "tests" / "data").glob("*.yaml"))


def problems(document: object) -> list[str]:
    """The schema's objections to ``document``, each as ``key.path: message``."""
    return sorted(
        ".".join(map(str, error.absolute_path)) + ": " + error.message for error in VALIDATOR.iter_errors(document)
    )


def test_the_shipped_schema_is_what_the_models_generate():
    assert SCHEMA_FILE.read_text(encoding="utf-8") == schema_text(), (
        "the models or the docs changed: python -m busim.scenario.json_schema writes the schema again"
    )
    jsonschema.Draft7Validator.check_schema(SCHEMA)


@pytest.mark.parametrize("path", GOOD_FILES, ids=lambda path: path.name)
def test_every_shipped_scenario_is_accepted(path):
    assert problems(yaml.safe_load(path.read_text(encoding="utf-8"))) == []


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_the_starter_is_accepted_for_every_preset(preset):
    assert problems(yaml.safe_load(starter_text("orders", preset, "scenario.schema.json"))) == []


def test_the_forms_the_loader_reads_are_accepted(tmp_path):
    document = yaml.safe_load(starter_text("orders", "redis-streams", "scenario.schema.json"))
    document.update({"x-anchors": {"slow": "2s"}, "duration": "1.5 min", "drain_timeout": 30})
    document.pop("name")  # a scenario without a name takes its file's
    document["publishers"][0].update({"rate": [{"at": 0, "rate": 10}, {"at": "30s", "rate": "600/min"}]})
    document["broker"].update(
        {"claim_interval": False, "capacity": "unlimited", "latency": {"quantiles": {"p50": "1ms", "p99.9": "4ms"}}}
    )
    document["consumers"][0].update(
        {
            "crash": {"at": "20s", "after_messages": 100, "instance": "random"},
            "processing_time": "3ms",
            "idempotency": "dedup",
            "dedup": {"capacity": 1000, "ttl": "10min"},
        }
    )
    document["events"]["OrderPlaced"]["fields"]["coupon"] = {"choice": {"values": ["none", "SALE"], "weights": [3, 1]}}
    document["events"]["OrderPlaced"]["fields"]["order_id"] = {"sequence": None}
    document["invariants"].append({"name": "fast", "consumer": "inventory", "max": {"latency_p99": "250ms"}})
    assert problems(document) == []
    path = tmp_path / "forms.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    assert busim.load(path).name == "forms"  # and busim reads it too


def _starter() -> dict:
    return yaml.safe_load(starter_text("orders", "rabbitmq", "scenario.schema.json"))


def _changed(path: str, value: object) -> dict:
    document = _starter()
    *parents, last = path.split(".")
    node = document
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    node[last] = value
    return document


@pytest.mark.parametrize(
    ("path", "value", "objection"),
    [
        ("duration", "10 minutes later", "duration: '10 minutes later' is not valid under any of the given schemas"),
        ("duration", -5, "duration: -5 is not valid under any of the given schemas"),
        ("publishers.0.rate", "fast", "publishers.0.rate: 'fast' is not valid under any of the given schemas"),
        ("broker.preset", "rabitmq", "broker.preset: 'rabitmq' is not one of ['ideal', 'kafka', 'rabbitmq', "),
        ("broker.partitions", 6, "broker.partitions: 6 is not of type 'null'"),
        ("broker.prefetch", 0, "broker.prefetch: 0 is not valid under any of the given schemas"),
        ("consumers.0.instances", "three", "consumers.0.instances: 'three' is not of type 'integer'"),
        ("consumers.0.subscribes", "OrderPlaced", "consumers.0.subscribes: 'OrderPlaced' is not of type 'array'"),
        ("consumers.0.processing_time", {"exponentail": {"mean": "3ms"}}, "consumers.0.processing_time: "),
        ("consumers.0.instanses", 2, "consumers.0: Additional properties are not allowed ('instanses' was unexpected)"),
    ],
)
def test_a_wrong_key_or_value_is_rejected(path, value, objection):
    found = problems(_changed(path, value))
    assert [problem for problem in found if problem.startswith(objection)], found


@pytest.mark.parametrize("name", ["unknown-key.yaml", "wrong-type.yaml", "unknown-preset.yaml", "units.yaml"])
def test_the_bad_example_files_are_rejected(name):
    assert problems(yaml.safe_load((ROOT / "tests" / "data" / "bad" / name).read_text(encoding="utf-8")))


def test_busim_schema_prints_the_schema_and_where_it_is():
    printed = CliRunner().invoke(app, ["schema"])
    assert printed.exit_code == 0
    assert json.loads(printed.stdout) == SCHEMA
    located = CliRunner().invoke(app, ["schema", "--path"])
    assert located.stdout == f"{SCHEMA_FILE}\n"


@pytest.mark.parametrize(
    "model", ["", "Event", "Publisher", "Consumer", "Effect", "Queries", "Invariant", "Broker", "MetricLimits"]
)
def test_every_key_carries_its_meaning_from_the_docs_for_an_editor_to_show(model):
    node = SCHEMA["$defs"][model] if model else SCHEMA
    assert [key for key, value in node["properties"].items() if "description" not in value] == []


def test_a_meaning_is_the_docs_text_without_its_links():
    assert SCHEMA["properties"]["duration"]["description"] == (
        "Publishers publish from 0 until here; then the bus drains."
    )
    assert SCHEMA["$defs"]["Broker"]["properties"]["latency"]["description"].startswith(
        "A time distribution: the time from publish"
    )


@fuzz_settings(150)
@given(text=mutated_text())
def test_whatever_busim_loads_the_schema_accepts(text):
    # The schema checks keys one at a time, so it accepts more than busim (cross-references); never less.
    try:
        document = parse_yaml(text, "fuzzed.yaml")
        if isinstance(document.data, dict):
            document.data.setdefault("name", "fuzzed")
        validate(document)
    except BusimError:
        return
    assert problems(document.data) == []
