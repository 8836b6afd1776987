"""User text in Markdown, shown as written.

report.md and compare.md quote what the user wrote (a scenario's
description, names, field values, variants), which may hold characters
that Markdown reads as formatting or HTML: ``<script>``, ``*``, a backtick,
a ``|`` that would end a table cell. Each is escaped with a backslash, so a
Markdown viewer shows the text as written and renders none of it.
"""

from __future__ import annotations

import re

# Inline Markdown, anywhere in a line: code, emphasis, links and images, table cells, strikethrough and
# math (GitHub), HTML tags and autolinks (< before a letter, /, ! or ?) and entities (& before a letter or
# #). With every [ and such < escaped no link, image, footnote or tag can open, so ] and > are left as they
# are (inventory > payment, <= 1); an underscore inside a word (restart_after) emphasises nothing.
_INLINE = re.compile(r"[\\`*\[|~$]|<(?=[A-Za-z/!?])|&(?=[A-Za-z#])|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")
# What opens a block at the start of a line: a heading, a quote, a list item, a thematic break or setext
# underline (# > - + = *), or an ordered list item (1. or 1)).
_BLOCK = re.compile(r"^([#>+=-])|^(\d+)([.)])")


def markdown_text(text: str) -> str:
    """``text`` as Markdown that renders it as written, line breaks kept as soft breaks (one paragraph).

    Leading spaces go: in Markdown they would make an indented line a code block.
    """
    return "\n".join(_BLOCK.sub(_escaped_block, _inline(line.strip())) for line in text.splitlines())


def markdown_cell(text: str) -> str:
    """``text`` as the content of a Markdown table cell: on one line, and never empty (an empty cell
    is a space)."""
    return _inline(" ".join(text.split())) or " "


def _inline(line: str) -> str:
    return _INLINE.sub(lambda match: "\\" + match.group(), line)


def _escaped_block(match: re.Match[str]) -> str:
    marker, number, delimiter = match.groups()
    return f"\\{marker}" if marker else f"{number}\\{delimiter}"
