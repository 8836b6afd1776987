"""Counted nouns: one noun, its plural for any other count."""

from pathlib import Path

import pytest

from busim.cli import _wrote
from busim.words import count_of, counted, plural


@pytest.mark.parametrize(
    ("noun", "expected"),
    [
        ("chart", "charts"),
        ("crash", "crashes"),
        ("entry", "entries"),
        ("delivery", "deliveries"),
        ("key", "keys"),
        ("scheduled crash", "scheduled crashes"),
        ("OrderPlaced message", "OrderPlaced messages"),
    ],
)
def test_the_plural_of_a_noun(noun, expected):
    assert plural(noun) == expected


def test_one_is_singular_and_every_other_count_plural():
    assert [counted(count, "violation") for count in (0, 1, 2, 1234)] == [
        "0 violations",
        "1 violation",
        "2 violations",
        "1,234 violations",
    ]
    assert counted(1, "message lost", "messages lost") == "1 message lost"
    assert counted(3, "message lost", "messages lost") == "3 messages lost"
    assert count_of(1, 1, "invariant") == "1 of 1 invariant"
    assert count_of(0, 4, "replication") == "0 of 4 replications"


def test_the_files_written_count_one_chart_as_one():
    wrote = _wrote([Path("out/results.json"), Path("out/latency-cdf.png"), Path("out/latency-cdf.svg")], Path("out"))
    assert wrote.plain == "Wrote results.json, 1 chart (PNG, SVG) in out"
