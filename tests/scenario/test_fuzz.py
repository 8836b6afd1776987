"""A fuzzer of the loader: whatever the input, busim reports it with its own errors, or accepts it.

It mutates the shipped scenarios (characters, lines, tokens, and values
swapped for lists, mappings, huge numbers and odd strings) and feeds random
text, then checks that loading raises nothing but a :class:`BusimError`, and
that ``busim validate`` exits with 0 or 2. Bounded to a few seconds here; for
a long run, ``BUSIM_FUZZ_EXAMPLES=20000 python -m pytest -n0 tests/scenario/test_fuzz.py``.
"""

from __future__ import annotations

import contextlib
import copy
import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from busim.cli import app
from busim.errors import BusimError
from busim.scenario import load_scenario
from busim.scenario.loader import apply_override, parse_yaml, validate
from busim.scenario.variants import load_variants
from tests.conftest import SCENARIOS

SHIPPED = {path.name: path.read_text(encoding="utf-8") for path in sorted(SCENARIOS.glob("*.yaml"))}


def examples(default: int) -> int:
    """``default``, or the number of examples BUSIM_FUZZ_EXAMPLES asks for a long run."""
    return int(os.environ.get("BUSIM_FUZZ_EXAMPLES", default))


def fuzz_settings(default: int) -> Any:
    return settings(
        max_examples=examples(default),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# Values that broke, or could break, a reader that trusts its input.
ODD = [
    "[]", "{}", "[a, b]", "{a: 1}", "[[[1]]]", "null", "~", "''", '""', "-1", "0", "-0", "1.5", ".5", "+1",
    "1e999", "-.inf", ".nan", "1_000", "0o777", "0b101", "0x1F", "9" * 5000, "9" * 400, "9" * 330 + "s",
    "0x" + "f" * 2000, "1" + ":59" * 600, "190:20:30", "2024-13-45", "2024-01-01", "2001-12-14t21:59:43.10-99:00",
    "!!int x", "!!bool x", "!!binary x", "!!timestamp x", "!!float x", "!!str 1", "!!set {a}", "!!omap [a: 1]",
    "!!python/object:os.system x", "!foo x", "&a x", "*a", "*nowhere", "{<<: *a}", "{<<: [1]}", "{<<: {<<: {}}}",
    "{? [a]: 1}", "? {a: 1}", "yes", "off", "on", "No", "'on'", "1/s", "1/0s", "-5/s", "5min", "1h30m", "nan/s",
    "1e400s", "1e400/s", "random", "unlimited", "dedup", "none", "kafka", "redis-streams", "always", "é", "\u2028",
    "\x85", "\t", "\\", "'", '"', "{", "[", "]", ": ", "- ", "? ", "#", "|", ">", "%YAML 1.1", "---", "...", "@",
    "`", "\ufeff", "\x00", "\x07", "\x7f", "\ufffe", "a" * 5000, "[" * 150 + "]" * 150, "{a: " * 120 + "1" + "}" * 120,
    "- " * 150 + "x",
]  # fmt: skip
TOKEN = re.compile(r"[^\s:,\[\]{}#'\"]+")

odd = st.sampled_from(ODD) | st.text(max_size=20)


@st.composite
def mutated_text(draw: st.DrawFn) -> str:
    """A shipped scenario with a few characters, lines or tokens changed."""
    text = SHIPPED[draw(st.sampled_from(sorted(SHIPPED)))]
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["insert", "delete", "duplicate", "token", "line", "character"]))
        if kind == "token" and TOKEN.search(text):
            spans = [match.span() for match in TOKEN.finditer(text)]
            start, end = draw(st.sampled_from(spans))
            text = text[:start] + draw(odd) + text[end:]
        elif kind == "line":
            lines = text.split("\n")
            index = draw(st.integers(0, len(lines) - 1))
            change = draw(st.sampled_from(["delete", "duplicate", "indent", "dedent", "swap", "replace"]))
            if change == "delete":
                del lines[index]
            elif change == "duplicate":
                lines.insert(index, lines[index])
            elif change == "indent":
                lines[index] = "  " + lines[index]
            elif change == "dedent":
                lines[index] = lines[index].lstrip()
            elif change == "swap":
                other = draw(st.integers(0, len(lines) - 1))
                lines[index], lines[other] = lines[other], lines[index]
            else:
                lines[index] = draw(odd)
            text = "\n".join(lines)
        else:
            start = draw(st.integers(0, len(text)))
            end = draw(st.integers(start, min(len(text), start + 40)))
            if kind == "insert":
                text = text[:start] + draw(odd) + text[start:]
            elif kind == "delete":
                text = text[:start] + text[end:]
            elif kind == "duplicate":
                text = text[:end] + text[start:end] + text[end:]
            else:
                text = text[:start] + draw(st.characters()) + text[start + 1 :]
    return text


def paths(data: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path in ``data``, the root included."""
    found = [path]
    if isinstance(data, dict):
        for key, value in data.items():
            found += paths(value, (*path, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found += paths(value, (*path, index))
    return found


def value_at(data: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        data = data[step]
    return data


# Numbers at the edges of what a float, an int64 and Python's int-to-text conversion hold.
EDGES = [0, -1, 1, 0.5, -0.0, 1e-300, 5e-324, 1e308, 1.7976931348623157e308, float("inf"), float("nan")]
EDGES += [2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64, 10**308, 10**309, 10**399 - 1, 10**400]


def names(data: Any) -> list[str]:
    """Every string in ``data``, keys included: names to put where others were."""
    if isinstance(data, dict):
        return [str(key) for key in data] + [name for value in data.values() for name in names(value)]
    if isinstance(data, list):
        return [name for value in data for name in names(value)]
    return [data] if isinstance(data, str) else []


def values(known: list[str]) -> st.SearchStrategy[Any]:
    scalars = (
        st.none()
        | st.booleans()
        | st.integers(-600, 600).map(lambda digits: (10 ** abs(digits) - 1) * (1 if digits >= 0 else -1))
        | st.integers(-5, 5)
        | st.floats()
        | st.text(max_size=10)
        | st.sampled_from(known)
        | st.sampled_from([odd_value for odd_value in ODD if "\x00" not in odd_value])
    )
    return st.recursive(
        scalars,
        lambda children: st.lists(children, max_size=3) | st.dictionaries(st.sampled_from(known), children, max_size=3),
        max_leaves=8,
    )


@st.composite
def mutated_data(draw: st.DrawFn) -> str:
    """A shipped scenario, read, with a few values replaced, deleted or duplicated, and written again."""
    data = yaml.safe_load(SHIPPED[draw(st.sampled_from(sorted(SHIPPED)))])
    known = names(data)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(paths(data)[1:]))
        parent = data
        for step in path[:-1]:
            parent = parent[step]
        change = draw(st.sampled_from(["replace", "delete", "duplicate", "rename", "number"]))
        if change == "replace":
            parent[path[-1]] = draw(values(known))
        elif change == "number":  # a number at an edge, where a number was, so that the schema gets as far as it
            numbers = [path for path in paths(data) if isinstance(value_at(data, path), int | float)]
            if numbers:
                *steps, last = draw(st.sampled_from(numbers))
                value_at(data, tuple(steps))[last] = draw(st.sampled_from(EDGES))
        elif change == "delete":
            del parent[path[-1]]
        elif change == "duplicate" and isinstance(parent, list):
            parent.append(parent[path[-1]])
        elif change == "rename" and isinstance(parent, dict):
            parent[draw(st.sampled_from(known))] = parent.pop(path[-1])
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=draw(st.sampled_from([False, None, True])))


def load(path: Path, text: str | bytes) -> None:
    """Load ``text`` from ``path``, and its variants if it has them; only busim's own errors may come out."""
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass"))
    try:
        loaded = load_scenario(path)
        if loaded.scenario.variants:
            load_variants([path], [], [])
    except BusimError:
        pass


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz") / "scenario.yaml"


@fuzz_settings(150)
@given(text=mutated_text())
def test_a_mutated_scenario_loads_or_is_refused_with_busims_errors(scratch, text):
    load(scratch, text)


@fuzz_settings(100)
@given(text=mutated_data())
def test_a_scenario_with_odd_values_loads_or_is_refused_with_busims_errors(scratch, text):
    load(scratch, text)


@fuzz_settings(100)
@given(text=st.text() | st.binary())
def test_random_text_is_refused_with_busims_errors(scratch, text):
    load(scratch, text)


DOCUMENTS = {name: yaml.safe_load(text) for name, text in SHIPPED.items()}
# Every value of every shipped scenario, to be swapped for each of these: what the schema and
# the cross-checks meet when one value is wrong and the rest right.
SWAPS = [*EDGES, None, True, False, "", "x", "9" * 350, [], {}, ["x"], {"x": 1}, [[]], [{}], {"x": {"y": []}}]
SWAPPABLE = [(name, path) for name, data in DOCUMENTS.items() for path in paths(data)[1:]]


def dotted(path: tuple[Any, ...]) -> str:
    return ".".join(str(step) for step in path)


@st.composite
def overrides(draw: st.DrawFn) -> tuple[str, list[str]]:
    """A shipped scenario and one to three ``KEY=VALUE`` overrides of its keys (or of random ones)."""
    name = draw(st.sampled_from(sorted(SHIPPED)))
    keys = [dotted(path) for path in paths(DOCUMENTS[name])[1:]]
    key = st.sampled_from(keys) | st.text(max_size=15) | st.sampled_from(ODD)
    assignments = st.builds(lambda k, v: f"{k}={v}", key, odd | st.sampled_from(names(DOCUMENTS[name])))
    return name, draw(st.lists(assignments | st.text(max_size=15), min_size=1, max_size=3))


@fuzz_settings(150)
@given(case=overrides())
def test_an_odd_override_is_applied_or_refused_with_busims_errors(case):
    name, assignments = case
    document = parse_yaml(SHIPPED[name], name)
    try:
        for assignment in assignments:
            apply_override(document, assignment)
        validate(document)
    except BusimError:
        pass


@fuzz_settings(50)
@given(case=overrides(), values=st.lists(odd, min_size=1, max_size=3))
def test_an_odd_vary_is_compared_or_refused_with_busims_errors(scratch, case, values):
    name, assignments = case
    scratch.write_text(SHIPPED[name], encoding="utf-8")
    key = assignments[0].partition("=")[0]
    with contextlib.suppress(BusimError):
        load_variants([scratch], [f"{key}={','.join(values)}"], assignments[1:])


@fuzz_settings(150)
@given(where=st.sampled_from(SWAPPABLE), swap=st.sampled_from(SWAPS))
def test_any_one_value_swapped_for_an_edge_is_reported_with_busims_errors(scratch, where, swap):
    name, (*steps, last) = where
    data = copy.deepcopy(DOCUMENTS[name])
    value_at(data, tuple(steps))[last] = swap
    load(scratch, yaml.safe_dump(data, sort_keys=False))


runner = CliRunner()


@fuzz_settings(30)
@given(text=mutated_text() | mutated_data(), sets=st.lists(st.sampled_from(ODD) | st.text(max_size=15), max_size=1))
def test_validate_exits_with_0_or_2_never_with_a_traceback(scratch, text, sets):
    scratch.write_bytes(text.encode("utf-8", "surrogatepass"))
    options = [option for value in sets for option in ("--set", f"seed={value}")]
    result = runner.invoke(app, ["validate", str(scratch), *options])
    assert result.exit_code in (0, 2), result.exception


def test_a_deployed_consumer_with_an_instance_count_past_any_float_is_refused_for_its_count(tmp_path):
    # Found by the edge-swapping test above: the deploy check multiplied the count into seconds and overflowed.
    source = tmp_path / "huge.yaml"
    source.write_text(
        "name: huge\nduration: 10s\nevents: {Job: {}}\npublishers: [{name: p, event: Job, rate: 1/s}]\n"
        f"consumers:\n  - {{name: w, subscribes: [Job], instances: {10**309},\n"
        "     deploys: [{at: 1s, kind: rolling, max_unavailable: 1, restart_time: 1s}]}\n",
        encoding="utf-8",
    )
    with pytest.raises(BusimError, match=r"huge\.yaml:6:45: consumers\[0\]\.instances: must be <= 1000000 \(got 1000"):
        load_scenario(source)
