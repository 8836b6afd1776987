"""The shapes of what busim shows: tables of cells, a verdict, a heading; plain data, without Rich or markup.

A cell carries its value, its text and its tone (an anomaly, a check that
held, a figure that matters little), so that the console, Markdown and
HTML each style it in their own way from the same data.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from busim.scenario.units import format_duration

Tone = Literal["bad", "good", "quiet"] | None


@dataclass(frozen=True)
class Cell:
    """A figure as shown: its text, its raw value (a number, or None where there is none) and its tone.

    ``bad`` is an anomaly (red), ``good`` a check that held (green), ``quiet``
    a figure that matters little (a zero count, dim). ``note`` follows the
    text with its own tone: a change against a baseline, ``(+5%)``.
    """

    text: str
    value: float | int | str | bool | None = None
    tone: Tone = None
    note: str = ""
    note_tone: Tone = None

    @property
    def bad(self) -> bool:
        return self.tone == "bad"

    @property
    def full(self) -> str:
        """The text and its note, as a file shows the cell."""
        return self.text + self.note


@dataclass(frozen=True)
class Column:
    """A value column: its heading, and whether its figures align right."""

    header: str
    right: bool = True


@dataclass(frozen=True)
class Row:
    """A row: its label, a cell per value column and why (the causes, in words).

    ``sub`` marks a part of the row above (a latency's broker part, a chain's
    hop): indented and dim. ``why_parts`` holds why by the column it is about
    ("" for all), for a layout that splits the columns. ``short`` names the
    row where a narrow layout turns rows into columns; a row without one is
    left out there.
    """

    label: str
    cells: tuple[Cell, ...]
    why: str = ""
    sub: bool = False
    why_parts: tuple[tuple[str, str], ...] = ()
    short: str = ""


def legend(rows: Iterable[Row]) -> str:
    """What the short labels of ``rows`` that abbreviate stand for: ``dup. effects: duplicate effects``.

    A short label whose words are all the label's (``p50`` for ``latency p50``) needs no entry.
    """
    entries = [
        f"{row.short}: {row.label}"
        for row in rows
        if row.short and not set(row.short.split()) <= set(row.label.split())
    ]
    return "; ".join(entries)


@dataclass(frozen=True)
class TableView:
    """A titled table: a label column (headed ``label``), value columns, rows, an optional why column and caption."""

    title: str
    columns: tuple[Column, ...]
    rows: tuple[Row, ...]
    label: str = ""
    why: bool = False
    caption: str = ""


@dataclass(frozen=True)
class Verdict:
    """The verdict: whether all is well, a headline, and the failures (departures, then failed invariants)."""

    good: bool
    headline: str
    items: tuple[str, ...] = ()


@dataclass(frozen=True)
class Heading:
    """What a run is: its name, description, facts (``seed 7``, ``simulated 10m00s, drained``) and overrides."""

    name: str
    description: str
    facts: tuple[Cell, ...]
    overrides: tuple[str, ...] = ()


def count_cell(value: int) -> Cell:
    """A count where anything but 0 is an anomaly."""
    return Cell(f"{value:,}", value, "bad" if value else "quiet")


def number_cell(value: int | float) -> Cell:
    return Cell(f"{value:,}", value)


def duration_cell(seconds: float | None) -> Cell:
    return Cell(format_duration(seconds), seconds)


def text_cell(text: str) -> Cell:
    return Cell(text, text)


BLANK = Cell("")
