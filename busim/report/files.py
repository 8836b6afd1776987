"""What a run leaves in its output folder: results.json and the resolved scenario."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from busim.errors import OutputError
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


def comparison_json(comparison: Comparison) -> str:
    """compare.json as text: stable key order, so identical comparisons give identical files."""
    return json_text(comparison_document(comparison))


def write_comparison(comparison: Comparison, folder: Path, compare_text: str | None = None) -> list[Path]:
    """Write compare.json (``compare_text``, if already made) into ``folder``; return its path.

    Its reports, compare.md and compare.html, are :mod:`busim.report.run_report`'s.

    Raises:
        OutputError: the folder cannot be created or written.
    """
    text = compare_text if compare_text is not None else comparison_json(comparison)
    return write_files(folder, ((COMPARE_JSON, text),))


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
