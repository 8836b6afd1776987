"""A run's output folder read back: its results, checked against their schema, and the scenario it ran.

``busim report`` and ``busim explain`` start from a run's folder rather than
from a simulation, and read it with :func:`read_run_folder`; ``busim report``
also reads a comparison's folder with :func:`read_comparison_folder`. The
documents are checked by :mod:`busim.results.document`, which wrote them, and
a run's results against the folder's scenario.yaml, so that a file cut
short, edited by hand or paired with another run's scenario is refused
naming the first bad key, instead of failing halfway through a chart.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from busim.errors import RunFolderError
from busim.report.files import COMPARE_JSON, RESULTS_FILE, SCENARIO_FILE
from busim.results import (
    COMPARISON_SCHEMA,
    REPLICATIONS_SCHEMA,
    RESULT_SCHEMA,
    Comparison,
    Replications,
    Result,
    json_words,
    parse_json,
    read_comparison,
    read_outcome,
)
from busim.scenario import LoadedScenario, load_scenario
from busim.words import counted


# ---------------------------------------------------------------- a run's folder
@dataclass(frozen=True)
class RunFolder:
    """A single run's folder, read and checked: its resolved scenario and its results."""

    path: Path
    loaded: LoadedScenario
    result: Result


def read_run_folder(folder: Path, command: str) -> RunFolder:
    """Read a single run's folder (results.json and scenario.yaml, as ``busim run`` writes them) for ``command``.

    Raises:
        RunFolderError: the folder is missing or lacks either file; it holds replications or a comparison;
            results.json is not JSON, departs from its schema, or names other consumers or publishers than
            scenario.yaml.
        ScenarioError: its scenario.yaml is not a valid scenario.
    """
    data = _results_data(folder, command)
    if data.get("schema") == REPLICATIONS_SCHEMA:
        count, seeds = data.get("replications"), data.get("seeds")
        how = "run one of them with --seed"
        if isinstance(seeds, list) and seeds and _whole(seeds[0]):
            how += f", e.g. --seed {seeds[0]}"
        held = counted(count, "replication") if _whole(count) else "replications"
        raise RunFolderError(f"{folder}: holds {held}; {command} needs a single run ({how})")
    loaded, result = _outcome(folder, data, command)
    assert isinstance(result, Result)  # by its schema
    return RunFolder(folder, loaded, result)


def read_finished_run(folder: Path, command: str) -> tuple[LoadedScenario, Result | Replications]:
    """Read a run's folder as ``busim run`` wrote it, a single run or replications, for ``command``.

    Raises:
        RunFolderError: the folder is missing or lacks either file; it holds a comparison; results.json is
            not JSON, departs from its schema, or names other consumers or publishers than scenario.yaml.
        ScenarioError: its scenario.yaml is not a valid scenario.
    """
    return _outcome(folder, _results_data(folder, command), command)


def _results_data(folder: Path, command: str) -> dict[str, Any]:
    """A run's folder's results.json, parsed, once the folder is known to hold a run's two files."""
    _check_folder(folder)
    results = folder / RESULTS_FILE
    if not results.is_file() and (folder / COMPARE_JSON).is_file():
        raise RunFolderError(
            f"{folder}: holds a comparison ({COMPARE_JSON}); {command} needs a single run's folder, "
            "such as one made by busim run"
        )
    for path in (results, folder / SCENARIO_FILE):
        if not path.is_file():
            raise RunFolderError(f"{folder}: no {path.name} here; give the output folder of a busim run")
    return parse_json(_text(results), str(results))


def _outcome(folder: Path, data: dict[str, Any], command: str) -> tuple[LoadedScenario, Result | Replications]:
    """The folder's scenario and its results (``data``, parsed from its results.json), checked together."""
    results = folder / RESULTS_FILE
    schema = data.get("schema")
    if schema == COMPARISON_SCHEMA:
        raise RunFolderError(f"{folder}: holds a comparison; {command} needs a single run's folder")
    if schema not in (RESULT_SCHEMA, REPLICATIONS_SCHEMA):
        raise RunFolderError(
            f"{results}: not the results of a busim run (schema {json_words(schema)}, not {RESULT_SCHEMA!r})"
        )
    loaded = load_scenario(folder / SCENARIO_FILE)
    return loaded, read_outcome(data, loaded.scenario, str(results))


def read_comparison_folder(folder: Path) -> Comparison:
    """Read a comparison's folder (compare.json, as ``busim compare`` writes it).

    Raises:
        RunFolderError: the folder is missing or holds no compare.json, or compare.json departs from its schema.
    """
    _check_folder(folder)
    path = folder / COMPARE_JSON
    if not path.is_file():
        raise RunFolderError(f"{folder}: no {COMPARE_JSON} here; give the output folder of busim compare")
    return read_comparison(parse_json(_text(path), str(path)), str(path))


def is_comparison_folder(folder: Path) -> bool:
    """Whether ``folder`` holds a comparison rather than a run."""
    return (folder / COMPARE_JSON).is_file() and not (folder / RESULTS_FILE).is_file()


def _check_folder(folder: Path) -> None:
    if not folder.exists():
        raise RunFolderError(f"{folder}: no such folder; give the output folder of a busim run")
    if not folder.is_dir():
        raise RunFolderError(f"{folder}: not a folder; give the output folder of a busim run")


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise RunFolderError(f"{path}: cannot read it ({getattr(error, 'strerror', None) or error})") from None


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
