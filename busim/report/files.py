"""What a run leaves in its output folder: results.json and the resolved scenario."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from busim.errors import OutputError
from busim.report.templating import render
from busim.report.views import comparison_views
from busim.results import Comparison, Replications, Result, comparison_document, document, json_text
from busim.scenario import Scenario

RESULTS_FILE = "results.json"
SCENARIO_FILE = "scenario.yaml"


def results_json(result: Result | Replications) -> str:
    """results.json as text: stable key order, so identical runs give identical files."""
    return json_text(document(result))


def resolved_scenario_yaml(scenario: Scenario) -> str:
    """The scenario as run, every default filled in; durations in seconds, rates per second."""
    data: dict[str, Any] = scenario.model_dump(mode="json")
    header = "# The scenario as run: every default filled in, durations in seconds, rates per second.\n"
    return header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)


def prepare_folder(folder: Path) -> None:
    """Create the output folder before a run, so that a bad ``--out`` fails before simulating.

    Raises:
        OutputError: the folder cannot be created.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"cannot write the results to {folder}: {error.strerror or error}") from None


def write_run(result: Result | Replications, folder: Path, results_text: str | None = None) -> list[Path]:
    """Write the run's results.json (``results_text``, if already made) and scenario.yaml into ``folder``.

    Raises:
        OutputError: the folder cannot be created or written.
    """
    text = results_text if results_text is not None else results_json(result)
    return write_files(folder, ((RESULTS_FILE, text), (SCENARIO_FILE, resolved_scenario_yaml(result.scenario))))


COMPARE_JSON = "compare.json"
COMPARE_MARKDOWN = "compare.md"


def comparison_markdown(comparison: Comparison) -> str:
    """compare.md: what each variant changes, their verdicts, and a table per consumer with the variants side by
    side; names escaped, as the user wrote them."""
    return render("compare.md.j2", views=comparison_views(comparison), charts=[])


def comparison_json(comparison: Comparison) -> str:
    """compare.json as text: stable key order, so identical comparisons give identical files."""
    return json_text(comparison_document(comparison))


def write_comparison(comparison: Comparison, folder: Path, compare_text: str | None = None) -> list[Path]:
    """Write compare.json (``compare_text``, if already made) and compare.md into ``folder``; return their paths.

    Raises:
        OutputError: the folder cannot be created or written.
    """
    text = compare_text if compare_text is not None else comparison_json(comparison)
    written = write_files(folder, ((COMPARE_JSON, text),))
    return written + write_comparison_markdown(comparison, folder)


def write_comparison_markdown(comparison: Comparison, folder: Path) -> list[Path]:
    """Write compare.md into ``folder``; return its path.

    Raises:
        OutputError: the folder cannot be created or written.
    """
    return write_files(folder, ((COMPARE_MARKDOWN, comparison_markdown(comparison)),))


def write_files(folder: Path, files: tuple[tuple[str, str], ...]) -> list[Path]:
    """Write each ``(name, text)`` into ``folder`` (created if needed); return the paths.

    Raises:
        OutputError: the folder cannot be created or written.
    """
    prepare_folder(folder)
    written = []
    try:
        for name, text in files:
            path = folder / name
            path.write_text(text, encoding="utf-8")
            written.append(path)
    except OSError as error:
        raise OutputError(f"cannot write the results to {folder}: {error.strerror or error}") from None
    return written
