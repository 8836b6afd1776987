"""The JSON Schema of a scenario file, for editors that complete and check keys as one types.

Generated from the pydantic models of :mod:`busim.scenario.schema`, then
reshaped to what the loader reads rather than what it holds: a duration is
seconds or a string such as ``250ms``, a distribution is ``{kind: {params}}``
or a bare duration, a single crash time stands for a list of one, and a
broker key that does not apply to the preset is refused. Each key carries
its meaning from the tables of docs/, for the editor to show. The schema ships in
the package (:data:`SCHEMA_FILE`); a test regenerates it and compares, and
``python -m busim.scenario.json_schema`` writes it again after a change.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from busim.scenario.loader import IGNORED_PREFIX
from busim.scenario.presets import BROKER_KEYS, PRESET_NAMES, PRESETS
from busim.scenario.schema import (
    FAILURE_KEYS,
    FIELD_KINDS,
    MODEL_REF,
    NAME_PATTERN,
    TIME_KINDS,
    MetricLimits,
    RateStep,
    Scenario,
)
from busim.scenario.units import duration_json_schema, rate_json_schema

SCHEMA_FILE = Path(__file__).with_name("scenario.schema.json")
DOCS = Path(__file__).resolve().parents[2] / "docs"  # in a checkout, where the schema is generated
# Which section of the docs gives the meaning of which model's keys: (file, heading, model; "" for the top level).
DOCUMENTED = (
    ("scenarios.md", "## Top level", ""),
    ("scenarios.md", "## `events.<Event>`", "Event"),
    ("scenarios.md", "## `publishers[]`", "Publisher"),
    ("scenarios.md", "## `consumers[]`", "Consumer"),
    ("scenarios.md", "### `effects[]`", "Effect"),
    ("scenarios.md", "### `queries`", "Queries"),
    ("scenarios.md", "### `deploys[]`", "Deploy"),
    ("scenarios.md", "### `autoscale`", "Autoscale"),
    ("scenarios.md", "## `invariants[]`", "Invariant"),
    ("brokers.md", "## Keys every preset accepts", "Broker"),
    ("brokers.md", "## What the keys mean", "Broker"),
)
_LINK = re.compile(r"\[([^\]]+)\]\([^)]+\)")
# Draft 7, which every editor's schema support reads; the schema uses nothing newer (its $defs is only where
# the $refs point).
DRAFT = "http://json-schema.org/draft-07/schema#"
_PERCENTILE_PATTERN = r"^p\d+(?:\.\d+)?$"

# Shapes used in many places, each given once in $defs.
_SHARED = {
    "Duration": duration_json_schema(),
    "PositiveDuration": duration_json_schema(positive=True),
    "Rate": rate_json_schema(),
    "PositiveRate": rate_json_schema(positive=True),
}


# The model of each member of the tagged unions, by its kind.
_TIME_MODELS = {
    "constant": "ConstantTime",
    "exponential": "ExponentialTime",
    "uniform": "UniformTime",
    "normal": "NormalTime",
    "lognormal": "LogNormalTime",
    "quantiles": "QuantileTime",
    "empirical": "EmpiricalTime",
}
_FIELD_MODELS = {
    "constant": "ConstantField",
    "uniform_int": "UniformIntField",
    "choice": "ChoiceField",
    "zipf": "ZipfField",
    "sequence": "SequenceField",
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/$defs/{name}"}


def _walk(node: Any, change: Any) -> Any:
    """``node`` with ``change`` applied to every mapping in it, innermost first."""
    if isinstance(node, dict):
        return change({key: _walk(value, change) for key, value in node.items()})
    if isinstance(node, list):
        return [_walk(value, change) for value in node]
    return node


def _summary(docstring: str) -> str:
    """A model's docstring as an editor shows it: its first paragraph, in one line, without reST quotes."""
    return " ".join(docstring.split("\n\n", 1)[0].split()).replace("``", "`")


def _tidy(node: dict[str, Any]) -> dict[str, Any]:
    """Named models and shared shapes as references; no generated titles; model summaries only."""
    if MODEL_REF in node:
        return _ref(node[MODEL_REF])
    node = {key: value for key, value in node.items() if key != "title" or not isinstance(value, str)}
    bare = {key: value for key, value in node.items() if key != "default"}
    for name, shape in _SHARED.items():
        if bare == shape:
            return {**_ref(name), **{key: value for key, value in node.items() if key == "default"}}
    if node.get("type") == "object" and isinstance(node.get("description"), str):
        node["description"] = _summary(node["description"])
    if "discriminator" in node:  # a tagged union: a distribution or a field generator
        kinds = set(node["discriminator"]["mapping"])
        return _ref("TimeDistribution" if kinds == set(TIME_KINDS) else "FieldGenerator")
    pattern_keys = node.get("patternProperties")
    if pattern_keys is not None and list(pattern_keys) == [NAME_PATTERN.pattern]:
        node["propertyNames"] = {"pattern": NAME_PATTERN.pattern}
        node["additionalProperties"] = False
    return node


def _ref_alone(node: dict[str, Any]) -> dict[str, Any]:
    """A $ref with a description or a default beside it, as draft 7 reads them: inside an allOf."""
    if "$ref" in node and len(node) > 1:
        return {"allOf": [{"$ref": node["$ref"]}], **{key: value for key, value in node.items() if key != "$ref"}}
    return node


def _tagged(kind: str, definition: dict[str, Any]) -> dict[str, Any]:
    """``{kind: {parameters}}``, the way the file writes a member of a tagged union."""
    properties = {key: value for key, value in definition["properties"].items() if key != "kind"}
    required = [key for key in definition.get("required", []) if key != "kind"]
    if kind == "constant":
        parameters = properties["value"]  # {constant: VALUE}, the value itself
    elif kind == "quantiles":
        parameters = {
            "type": "object",
            "description": "durations at percentiles, such as {p50: 3ms, p99: 5.4ms}: at least two",
            "patternProperties": {_PERCENTILE_PATTERN: _ref("PositiveDuration")},
            "additionalProperties": False,
            "minProperties": 2,
        }
    elif kind == "empirical":
        parameters = {
            "anyOf": [
                {
                    "type": "object",
                    "description": "durations at percentiles from p0 to p100, such as {p0: 0.2ms, p50: 0.9ms, "
                    "p100: 11ms}",
                    "patternProperties": {_PERCENTILE_PATTERN: _ref("Duration")},
                    "additionalProperties": False,
                    "required": ["p0", "p100"],
                },
                {
                    "type": "array",
                    "description": "durations at evenly spaced percentiles from p0 to p100, such as "
                    "[0.2ms, 0.9ms, 11ms] for p0, p50 and p100",
                    "items": _ref("Duration"),
                    "minItems": 2,
                },
            ]
        }
    else:
        parameters = {"type": "object", "properties": properties, "additionalProperties": False}
        if required:
            parameters["required"] = required
        else:  # {sequence: } reads as no parameters, all defaults
            parameters = {"anyOf": [parameters, {"type": "null"}]}
    tagged = {"type": "object", "properties": {kind: parameters}, "required": [kind], "additionalProperties": False}
    if "description" in definition:
        tagged["description"] = definition["description"]
    return tagged


def _union(kinds: tuple[str, ...], models: dict[str, str], defs: dict[str, Any], description: str) -> dict[str, Any]:
    forms = [_tagged(kind, defs.pop(models[kind])) for kind in kinds]
    return {"description": description, "anyOf": forms}


def documented_meanings(docs: Path = DOCS) -> dict[str, dict[str, str]]:
    """The meaning of each key from the docs' tables, by model (``""``: the top level): what an editor shows
    beside a key. Empty where the docs are not at hand (an installed package ships the schema ready made)."""
    meanings: dict[str, dict[str, str]] = {}
    for file, heading, model in DOCUMENTED:
        if not (docs / file).is_file():
            return {}
        section = (docs / file).read_text(encoding="utf-8").split(f"\n{heading}\n", 1)[1].split("\n#", 1)[0]
        for row in re.findall(r"^\| (`[^|]*`) \|.*\| ([^|]*) \|$", section, re.MULTILINE):
            keys, meaning = row
            for key in re.findall(r"`([a-z0-9_]+)`", keys):
                meanings.setdefault(model, {}).setdefault(key, _LINK.sub(_link_text, meaning.strip()))
    return meanings


def _link_text(link: re.Match[str]) -> str:
    """A Markdown link as plain text; a link to another page of the docs names it as a path."""
    text = link.group(1)
    return f"docs/{text}" if text.endswith(".md") else text


def _describe(node: dict[str, Any], meanings: dict[str, str]) -> None:
    """Give each property of ``node`` its documented meaning."""
    for key, meaning in meanings.items():
        if key in node.get("properties", {}):
            node["properties"][key]["description"] = meaning


def _preset_rules() -> list[dict[str, Any]]:
    """A broker key that does not apply to the preset (ideal when none is given) may only be null."""
    rules = []
    for preset in PRESET_NAMES:
        chosen: dict[str, Any] = {"properties": {"preset": {"const": preset}}, "required": ["preset"]}
        if preset == "ideal":
            chosen = {"anyOf": [chosen, {"not": {"required": ["preset"]}}]}
        foreign = [key for key in BROKER_KEYS if key not in PRESETS[preset].keys]
        foreign += [key for key, presets in FAILURE_KEYS.items() if preset not in presets]
        rules.append({"if": chosen, "then": {"properties": {key: {"type": "null"} for key in foreign}}})
    return rules


def scenario_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 7) of a scenario file."""
    generated = Scenario.model_json_schema()
    defs = generated.pop("$defs")
    defs["RateStep"] = RateStep.model_json_schema()
    defs["MetricLimits"] = MetricLimits.model_json_schema()
    defs["MetricLimits"]["description"] = (
        "limits on figures of the consumer: at least one, such as {duplicate_effects: 0}"
    )
    defs["MetricLimits"]["minProperties"] = 1
    defs = _walk(defs, _tidy)
    root = _walk(generated, _tidy)
    time_distribution = _union(
        TIME_KINDS, _TIME_MODELS, defs, "a duration, or a distribution written as {kind: {parameters}}"
    )
    time_distribution["anyOf"].insert(0, _ref("Duration"))
    defs["TimeDistribution"] = time_distribution
    defs["FieldGenerator"] = _union(
        FIELD_KINDS, _FIELD_MODELS, defs, "how each message's value of the field is drawn, as {kind: {parameters}}"
    )
    defs["Broker"]["allOf"] = _preset_rules()
    meanings = documented_meanings()
    _describe(root, meanings.get("", {}))
    for model, described in meanings.items():
        if model:
            _describe(defs[model], described)
    _describe(defs["MetricLimits"], meanings.get("Invariant", {}))  # the metrics' table is the invariants'
    root["properties"]["broker"].pop("default", None)  # the ideal preset's defaults; another preset has its own
    root["required"].remove("name")  # a scenario without a name takes its file's name
    root["patternProperties"] = {f"^{IGNORED_PREFIX}": {}}  # ignored keys, for YAML anchors
    root, defs = _walk(root, _ref_alone), _walk(defs, _ref_alone)
    return {
        "$schema": DRAFT,
        "title": "busim scenario",
        "description": "A scenario for busim, the event-bus simulator: see docs/scenarios.md, or busim init for a "
        "commented starter.",
        **root,
        "$defs": {**_SHARED, **dict(sorted(defs.items()))},
    }


def schema_text() -> str:
    """The schema as the shipped file holds it."""
    return json.dumps(scenario_json_schema(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    SCHEMA_FILE.write_text(schema_text(), encoding="utf-8")
    print(f"wrote {SCHEMA_FILE}")
