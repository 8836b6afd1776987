"""Counted nouns, as every message, table and report writes them: 1 chart, 5 charts, 1,234 messages."""

from __future__ import annotations

import re

_SIBILANT = re.compile(r"(s|x|z|ch|sh)$")
_CONSONANT_Y = re.compile(r"[^aeiou]y$")


def plural(noun: str) -> str:
    """The plural of ``noun`` (of its last word): chart → charts, crash → crashes, entry → entries."""
    if _CONSONANT_Y.search(noun):
        return noun[:-1] + "ies"
    if _SIBILANT.search(noun):
        return noun + "es"
    return noun + "s"


def counted(count: int, noun: str, many: str | None = None) -> str:
    """``count``, grouped by thousands, and ``noun``, plural unless ``count`` is 1; ``many``: an irregular plural.

    ``counted(1, "chart")`` is ``1 chart``, ``counted(1234, "message")`` is ``1,234 messages``.
    """
    return f"{count:,} {noun if count == 1 else many or plural(noun)}"


def count_of(part: int, total: int, noun: str, many: str | None = None) -> str:
    """``part`` of ``total`` nouns, the noun agreeing with ``total``: ``1 of 1 invariant``, ``3 of 4 invariants``."""
    return f"{part:,} of {counted(total, noun, many)}"
