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
