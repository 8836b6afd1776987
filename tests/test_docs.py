"""The documentation states what the code does."""

from busim.scenario.presets import COMMON_KEYS, PRESETS, preset_rows
from busim.scenario.schema import Broker
from tests.conftest import ROOT

BROKERS = (ROOT / "docs" / "brokers.md").read_text()


def preset_table() -> str:
    lines = ["| preset | key | default | basis | source |", "|---|---|---|---|---|"]
    for name in PRESETS:
        for key, default, basis, url in preset_rows(name):
            source = f"<{url}>" if url else ""
            lines.append(f"| `{name}` | `{key}` | `{default}` | {basis.replace('|', chr(92) + '|')} | {source} |")
    return "\n".join(lines) + "\n"


def test_the_broker_table_lists_every_preset_default_with_its_basis():
    start = BROKERS.index("<!-- preset table")
    start = BROKERS.index("\n", start) + 1
    end = BROKERS.index("<!-- end of preset table -->")
    assert BROKERS[start:end] == preset_table()


def test_every_broker_key_is_explained():
    explained = BROKERS.split("## What the keys mean", 1)[1].split("## How busim models", 1)[0]
    common = BROKERS.split("## Keys every preset accepts", 1)[1].split("## Every preset's defaults", 1)[0]
    for key in Broker.model_fields:
        section = common if key in COMMON_KEYS else explained
        assert f"`{key}`" in section, key


def test_every_preset_has_a_section_on_what_it_captures_and_leaves_out():
    sections = BROKERS.split("## How busim models each broker", 1)[1].split("\n### ")[1:]
    covered = {name for section in sections for name in section.split("\n", 1)[0].split(" and ")}
    assert covered == set(PRESETS)
    for section in sections:
        assert "Captures:" in section and "Leaves out:" in section, section.split("\n", 1)[0]


SCENARIOS_DOC = (ROOT / "docs" / "scenarios.md").read_text()


def test_every_invariant_metric_is_documented():
    from busim.scenario.schema import INVARIANT_METRICS

    section = SCENARIOS_DOC.split("## `invariants[]`", 1)[1].split("\n## ", 1)[0]
    for metric in INVARIANT_METRICS:
        assert f"`{metric}`" in section, metric


def test_the_invariants_example_prints_the_table_shown(tmp_path):
    import io

    from rich.console import Console

    import busim
    from busim.report.console import render_result

    section = SCENARIOS_DOC.split("## `invariants[]`", 1)[1].split("\n## ", 1)[0]
    example = section.split("A full scenario", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    shown = section.split("exits with code 0:\n\n```\n", 1)[1].split("\n```", 1)[0]
    path = tmp_path / "checkout-fitness.yaml"
    path.write_text(example)
    output = io.StringIO()
    render_result(Console(file=output, width=80, color_system=None), busim.simulate(busim.load(path)))
    printed = [line.rstrip() for line in output.getvalue().splitlines()]
    start = printed.index("Invariants")
    assert printed[start : start + len(shown.splitlines())] == shown.splitlines()


def test_the_units_table_lists_every_unit_a_duration_takes():
    import re

    from busim.scenario.units import SECONDS_PER_DURATION_UNIT

    section = SCENARIOS_DOC.split("## Units", 1)[1].split("\n## ", 1)[0]
    table = section.split("| unit | also written |", 1)[1].split("\n\n", 1)[0]
    # The Greek mu goes unlisted: it looks the same as the micro sign.
    assert set(re.findall(r"`([^`]+)`", table)) | {"μs"} == set(SECONDS_PER_DURATION_UNIT)
