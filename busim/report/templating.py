"""The Jinja2 templates of report.md, report.html, compare.md and compare.html.

The templates only lay the views of :mod:`busim.report.views` out; HTML is
escaped automatically, and Markdown through the ``cell`` and ``text``
filters (:mod:`busim.report.markdown`), as every name, description and
value may hold characters that would otherwise format.
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING, Any

from busim.report.markdown import markdown_cell, markdown_text

if TYPE_CHECKING:
    import jinja2

TEMPLATES = "templates"  # the folder of busim.report that holds them, shipped as package data


@functools.cache
def environment() -> jinja2.Environment:
    """The templates' environment: autoescaping for .html templates, none for .md ones.

    Jinja2 loads here, when a report is first written, not with every command.
    """
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("busim.report", TEMPLATES),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default_for_string=False),
        undefined=jinja2.StrictUndefined,  # a misspelt field fails loudly, never renders as nothing
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["cell"] = markdown_cell
    env.filters["text"] = markdown_text
    return env


def render(template: str, **context: Any) -> str:
    """``template`` (a file name under busim/report/templates) filled with ``context``.

    Markdown keeps one blank line between blocks, however the template's sections happen to join.
    """
    text = environment().get_template(template).render(**context)
    return re.sub(r"\n{3,}", "\n\n", text) if template.endswith(".md.j2") else text
