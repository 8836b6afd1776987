"""What a run leaves in its output folder: results.json and the resolved scenario."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from busim.analysis.fitting import Fitted
from busim.errors import OutputError
from busim.results import Comparison, Replications, Result, comparison_document, document, json_text
from busim.scenario import Scenario

RESULTS_FILE = "results.json"
SCENARIO_FILE = "scenario.yaml"
CALIBRATED_FILE = "calibrated.yaml"


def results_json(result: Result | Replications) -> str:
    """results.json as text: stable key order, so identical runs give identical files."""
    return json_text(document(result))


def resolved_scenario_yaml(scenario: Scenario) -> str:
    """The scenario as run, every default filled in; durations in seconds, rates per second."""
    data: dict[str, Any] = scenario.model_dump(mode="json")
    header = "# The scenario as run: every default filled in, durations in seconds, rates per second.\n"
    return header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)


def calibrated_scenario_yaml(fitted: Fitted, run: str) -> str:
    """The scenario fitted to the real run in folder ``run``, each fitted key preceded by where it came from."""
    data: dict[str, Any] = fitted.scenario.model_dump(mode="json")
    markers = {}
    for index, (path, note) in enumerate(fitted.notes.items()):
        marker = f"busim-note-{index}"
        _insert_before(data, path, marker)
        markers[marker] = note
    header = (
        f"# The scenario of the real run in {run}, fitted to what the run measured (busim calibrate).\n"
        "# Durations in seconds, rates per second. Simulate it to see the simulation as close to the run as\n"
        "# the fit brings it; each fitted key says where its numbers came from.\n"
    )
    lines = []
    for line in yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100).splitlines():
        key = line.strip().removesuffix(": null")
        if key in markers:
            indent = line[: len(line) - len(line.lstrip())]
            lines.append(f"{indent}# {markers[key]}")
        else:
            lines.append(line)
    return header + "\n".join(lines) + "\n"


def _insert_before(data: dict[str, Any], path: str, marker: str) -> None:
    """Put the key ``marker`` (no value) just before the key at ``path``, such as "broker.latency" or
    "consumers.<name>.crash.restart_after" (a consumer by its name)."""
    *parents, last = path.split(".")
    holder: Any = data
    parts = iter(parents)
    for part in parts:
        holder = holder[part]
        if part == "consumers":
            name = next(parts)
            (holder,) = [consumer for consumer in holder if consumer["name"] == name]
    rebuilt = {}
    for key, value in holder.items():
        if key == last:
            rebuilt[marker] = None
        rebuilt[key] = value
    holder.clear()
    holder.update(rebuilt)


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
